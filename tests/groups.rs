//! `WaitGroup` (reuse without stale wake-ups, blocking and async waits) and
//! `TaskGroup` (first error wins and cancels the rest, panics, cancellation, reuse, limits,
//! `.await`).
//!
//! Nothing here asserts on timing: tasks are held with gates and timeouts only turn a hang into
//! a failure. A `wait_timeout` that must *not* be released is asserted only where nothing can
//! release it.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::cancel::{CancellationToken, Interrupted, TaskContext};
use taskrunner::fork_join::TaskGroup;
use taskrunner::sync::WaitGroup;
use taskrunner::{TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(30);
/// A short wait that nothing can release (only used to show something is still blocked).
const BRIEF: Duration = Duration::from_millis(20);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

fn within_hang<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("hung")
}

fn eventually(cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "condition never became true");
        thread::yield_now();
    }
}

// ---- a tiny block_on: a thread-parking waker ------------------------------------------------

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls; fails after [`HANG`].
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let t0 = Instant::now();
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(t0.elapsed() < HANG, "future never completed");
        thread::park_timeout(Duration::from_millis(100));
    }
}

/// Polls once with a waker that records wake-ups.
struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---- WaitGroup -------------------------------------------------------------------------------

#[test]
fn wait_group_reuse_does_not_return_early() {
    // After a round of waiters, a later wait with the counter above zero must not return at
    // once (nothing is left over from round 1). Round 1 releases three waiters; round 2 must
    // block.
    let wg = WaitGroup::new();
    wg.add(1);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let wg = wg.clone();
            thread::spawn(move || wg.wait())
        })
        .collect();
    wg.done();
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(wg.count(), 0);

    // Round 2.
    wg.add(1);
    assert!(!wg.wait_timeout(BRIEF), "round 2 returned before done()");
    let done_called = Arc::new(AtomicBool::new(false));
    let (wg2, d2) = (wg.clone(), done_called.clone());
    let waiter = thread::spawn(move || {
        wg2.wait();
        d2.load(Ordering::SeqCst) // must be true: wait returned only after done()
    });
    assert!(!wg.wait_timeout(BRIEF));
    done_called.store(true, Ordering::SeqCst);
    wg.done();
    assert!(waiter.join().unwrap());

    // Round 3, async: the future stays pending until done().
    wg.add(2);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut fut = pin!(wg.wait_async());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    wg.done();
    assert!(!flag.0.load(Ordering::SeqCst));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    wg.done();
    assert!(
        flag.0.load(Ordering::SeqCst),
        "reaching zero wakes the future"
    );
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready());
}

#[test]
fn a_wait_is_released_by_zero_even_if_the_counter_rises_again() {
    let wg = WaitGroup::new();
    wg.add(1);
    let mut fut = pin!(wg.wait_async());
    let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    wg.done();
    wg.add(1); // the next round starts before the waiter runs
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready());
    wg.done();
}

#[test]
fn done_below_zero_panics_with_a_clear_message() {
    let wg = WaitGroup::new();
    wg.add(1);
    wg.done();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.done())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("below zero"), "{msg}");
    assert_eq!(wg.count(), 0);
}

#[test]
fn wait_group_counts_pool_tasks_with_guards_even_when_they_panic() {
    let pool = pool(3);
    let wg = WaitGroup::new();
    let hits = Arc::new(AtomicUsize::new(0));
    for i in 0..50 {
        let guard = wg.guard();
        let hits = hits.clone();
        pool.post_task(TaskTraits::default(), move || {
            let _guard = guard;
            hits.fetch_add(1, Ordering::SeqCst);
            if i % 10 == 0 {
                panic!("task {i} failed");
            }
        })
        .unwrap();
    }
    assert!(wg.wait_timeout(HANG));
    assert_eq!(hits.load(Ordering::SeqCst), 50);
    pool.shutdown();
}

#[test]
fn wait_async_works_with_a_parking_block_on_and_with_tokio() {
    let pool = pool(2);
    let wg = WaitGroup::new();
    let (release, gate) = channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    for _ in 0..4 {
        let (wg, gate) = (wg.guard(), gate.clone());
        pool.post_task(TaskTraits::default(), move || {
            let _ = gate.lock().unwrap().recv_timeout(HANG);
            drop(wg);
        })
        .unwrap();
    }
    let fut = wg.wait_async();
    drop(release);
    block_on(fut);
    assert_eq!(wg.count(), 0);

    wg.add(1);
    let wg2 = wg.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let waiter = tokio::spawn(wg2.wait_async());
        tokio::task::yield_now().await;
        wg2.done();
        tokio::time::timeout(HANG, waiter)
            .await
            .expect("hung")
            .unwrap();
    });
    pool.shutdown();
}

#[test]
fn a_wait_inside_the_only_worker_for_tasks_of_the_same_pool_completes() {
    let pool = pool(1);
    let p = pool.clone();
    let n = within_hang(move || {
        p.post_task_with_result(TaskTraits::default(), {
            let p = p.clone();
            move || {
                let wg = WaitGroup::new();
                let hits = Arc::new(AtomicUsize::new(0));
                for _ in 0..3 {
                    let (g, hits) = (wg.guard(), hits.clone());
                    p.post_task(TaskTraits::default(), move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                        drop(g);
                    })
                    .unwrap();
                }
                wg.wait(); // the pool runs another worker meanwhile
                hits.load(Ordering::SeqCst)
            }
        })
        .unwrap()
        .join()
        .unwrap()
    });
    assert_eq!(n, 3);
    pool.shutdown();
}

// ---- TaskGroup -------------------------------------------------------------------------------

#[derive(Debug)]
struct Boom(u32);
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom {}", self.0)
    }
}
impl std::error::Error for Boom {}

#[test]
fn the_first_error_cancels_the_others_and_wait_returns_it() {
    let pool = pool(4);
    let group = TaskGroup::new(&pool);
    let started = Arc::new(AtomicUsize::new(0));
    let observed = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (started, observed) = (started.clone(), observed.clone());
        group.spawn(move |ctx: &TaskContext| {
            started.fetch_add(1, Ordering::SeqCst);
            // Long-running work that checks for cancellation.
            assert!(ctx.token().wait_timeout(HANG), "never cancelled");
            assert!(TaskContext::current().unwrap().is_cancelled());
            observed.fetch_add(1, Ordering::SeqCst);
            ctx.check()?;
            Ok::<(), Interrupted>(())
        });
    }
    let s = started.clone();
    group.spawn(move |_| {
        eventually(|| s.load(Ordering::SeqCst) == 3);
        Err(Boom(7))
    });
    let err = group.wait().unwrap_err();
    assert!(err.is_failed(), "{err:?}");
    assert_eq!(err.downcast_ref::<Boom>().unwrap().0, 7);
    assert_eq!(observed.load(Ordering::SeqCst), 3);
    assert!(group.token().is_cancelled());
    assert_eq!(group.pending(), 0);
    pool.shutdown();
}

#[test]
fn the_first_error_is_by_completion_time() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool);
    let (second_tx, second_rx) = channel::<()>();
    // Spawned first, fails second: it returns only once the group has recorded the other
    // task's error (the first error cancels the group's token).
    group.spawn(move |ctx| {
        let _ = second_rx.recv_timeout(HANG);
        eventually(|| ctx.is_cancelled());
        Err(Boom(1))
    });
    group.spawn(move |_| {
        let r = Err(Boom(2));
        drop(second_tx);
        r
    });
    assert_eq!(
        group.wait().unwrap_err().downcast_ref::<Boom>().unwrap().0,
        2
    );
    pool.shutdown();
}

#[test]
fn a_panic_counts_as_the_groups_error() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool);
    group.spawn(|_| Ok::<(), Boom>(()));
    group.spawn(|_| -> Result<(), Boom> { panic!("worker fell over") });
    let err = group.wait().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("worker fell over"));
    assert!(group.token().is_cancelled());
    pool.shutdown();
}

#[test]
fn all_ok_returns_ok_after_every_task_ran() {
    let pool = pool(3);
    let group = TaskGroup::new(&pool);
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let hits = hits.clone();
        group.spawn(move |_| {
            hits.fetch_add(1, Ordering::SeqCst);
            Ok::<(), Boom>(())
        });
    }
    group.wait().unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 200);
    assert!(!group.token().is_cancelled());
    pool.shutdown();
}

#[test]
fn spawning_after_cancellation_does_not_run_the_task_but_counts_it() {
    let pool = pool(1);
    let group = TaskGroup::new(&pool);
    group.cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    group.spawn(move |_| {
        r.store(true, Ordering::SeqCst);
        Ok::<(), Boom>(())
    });
    assert!(group.wait().unwrap_err().is_cancelled());
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(group.pending(), 0);
    pool.shutdown();
}

#[test]
fn queued_tasks_are_not_run_once_the_group_failed() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let group = TaskGroup::new(&seq);
    let ran = Arc::new(AtomicUsize::new(0));
    group.spawn(|_| Err(Boom(1)));
    for _ in 0..5 {
        let ran = ran.clone();
        group.spawn(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<(), Boom>(())
        });
    }
    assert_eq!(
        group.wait().unwrap_err().downcast_ref::<Boom>().unwrap().0,
        1
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    pool.shutdown();
}

#[test]
fn reuse_after_wait_and_a_sticky_first_error() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool);
    group.spawn(|_| Ok::<(), Boom>(()));
    group.wait().unwrap();
    // Round 2 on the same group: waits for the new tasks.
    let (release, gate) = channel::<()>();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    group.spawn(move |_| {
        let _ = gate.recv_timeout(HANG);
        d.store(true, Ordering::SeqCst);
        Err(Boom(2))
    });
    assert!(group.wait_timeout(BRIEF).is_none());
    drop(release);
    assert_eq!(
        group.wait().unwrap_err().downcast_ref::<Boom>().unwrap().0,
        2
    );
    assert!(done.load(Ordering::SeqCst));
    // Round 3: the error is sticky and new tasks are not run.
    group.spawn(|_| -> Result<(), Boom> { unreachable!("the group already failed") });
    assert_eq!(
        group.wait().unwrap_err().downcast_ref::<Boom>().unwrap().0,
        2
    );
    pool.shutdown();
}

#[test]
fn wait_async_works_with_tokio_and_a_parking_block_on() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool);
    let (release, gate) = channel::<()>();
    group.spawn(move |_| {
        let _ = gate.recv_timeout(HANG);
        Ok::<(), Boom>(())
    });
    let fut = group.wait_async();
    drop(release);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async { tokio::time::timeout(HANG, fut).await })
        .expect("hung")
        .unwrap();

    group.spawn(|_| Err(Boom(3)));
    let err = block_on(group.wait_async()).unwrap_err();
    assert_eq!(err.downcast_ref::<Boom>().unwrap().0, 3);
    pool.shutdown();
}

#[test]
fn a_parent_token_cancels_the_group() {
    let pool = pool(2);
    let parent = CancellationToken::new();
    let group = TaskGroup::with_token(&pool, &parent);
    let (started_tx, started) = channel();
    group.spawn(move |ctx| {
        started_tx.send(()).unwrap();
        assert!(ctx.token().wait_timeout(HANG));
        ctx.check()?;
        Ok::<(), Interrupted>(())
    });
    started.recv_timeout(HANG).unwrap();
    parent.cancel();
    assert!(group.wait().unwrap_err().is_cancelled());
    pool.shutdown();
}

#[test]
fn limit_caps_concurrency_and_runs_everything() {
    let pool = pool(4);
    let group = TaskGroup::new(&pool).limit(2);
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..40 {
        let (now, max, hits) = (now.clone(), max.clone(), hits.clone());
        group.spawn(move |_| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            for _ in 0..100 {
                thread::yield_now();
            }
            now.fetch_sub(1, Ordering::SeqCst);
            hits.fetch_add(1, Ordering::SeqCst);
            Ok::<(), Boom>(())
        });
    }
    group.wait().unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 40);
    assert!(max.load(Ordering::SeqCst) <= 2);
    pool.shutdown();
}

#[test]
fn a_limited_group_that_fails_resolves_its_waiting_tasks_without_running_them() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool).limit(1);
    let ran = Arc::new(AtomicUsize::new(0));
    group.spawn(|_| Err(Boom(9)));
    for _ in 0..20 {
        let ran = ran.clone();
        group.spawn(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<(), Boom>(())
        });
    }
    assert_eq!(
        group.wait().unwrap_err().downcast_ref::<Boom>().unwrap().0,
        9
    );
    // The failing task held the only permit until after it cancelled the token: every queued
    // task got its permit with the group already cancelled.
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(group.pending(), 0);
    pool.shutdown();
}

#[test]
fn a_refused_post_ends_the_task_as_not_run() {
    let pool = pool(1);
    pool.shutdown();
    let group = TaskGroup::new(&pool);
    group.spawn(|_| Ok::<(), Boom>(()));
    assert!(group.wait().unwrap_err().is_not_run());
}

#[test]
fn tasks_may_spawn_into_their_own_group() {
    let pool = pool(2);
    let group = TaskGroup::new(&pool);
    let hits = Arc::new(AtomicUsize::new(0));
    let (g, h) = (group.clone(), hits.clone());
    group.spawn(move |_| {
        for _ in 0..10 {
            let h = h.clone();
            g.spawn(move |_| {
                h.fetch_add(1, Ordering::SeqCst);
                Ok::<(), Boom>(())
            });
        }
        Ok::<(), Boom>(())
    });
    group.wait().unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    pool.shutdown();
}

#[test]
fn a_group_waited_on_inside_the_only_worker_completes() {
    let pool = pool(1);
    let p = pool.clone();
    let r = within_hang(move || {
        p.post_task_with_result(TaskTraits::default(), {
            let p = p.clone();
            move || {
                let group = TaskGroup::new(&p);
                for _ in 0..3 {
                    group.spawn(|_| Ok::<(), Boom>(()));
                }
                group.wait()
            }
        })
        .unwrap()
        .join()
        .unwrap()
    });
    assert!(r.is_ok());
    pool.shutdown();
}

/// A blocking group wait on the thread that drives a seeded single-thread `TestEnvironment`
/// could never finish (only that thread runs the tasks): it panics with advice instead of
/// hanging, as `TaskHandle::join` and scopes do there. A threaded environment's driver may wait.
#[cfg(feature = "test-util")]
#[test]
fn group_waits_on_a_seeded_environments_driving_thread_panic_instead_of_hanging() {
    use taskrunner::testing::TestEnvironment;
    let env = TestEnvironment::builder().seed(7).build();
    let wg = WaitGroup::new();
    wg.add(1);
    let w = wg.clone();
    env.pool()
        .post_task(Default::default(), move || w.done())
        .unwrap();
    let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.wait()))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(
        msg.contains("seeded single-thread TestEnvironment"),
        "{msg}"
    );
    env.run_until_idle();
    wg.wait(); // the count is zero now: returns at once
    drop(env);

    let threaded = TestEnvironment::new();
    let wg = WaitGroup::new();
    wg.add(1);
    let w = wg.clone();
    threaded
        .pool()
        .post_task(Default::default(), move || w.done())
        .unwrap();
    wg.wait(); // a worker runs it
}
