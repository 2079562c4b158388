//! Regression tests for the orchestration layer's traps (executor, retry, repeat, fork/join,
//! semaphore, async mutex, registry, waits, groups, scopes, single-flight):
//!
//! 1. blocking waits inside pool tasks compensate (the pool runs another worker meanwhile);
//! 2. a wait that can never end (for work queued behind the caller on its own sequence)
//!    panics at once, with advice, instead of hanging;
//! 3. panics of orchestration tasks are reported like plain tasks' panics (panic handler,
//!    `PanicPolicy` Isolate / Poison / Abort), and handles keep the payload;
//! 4. panic payloads whose destructor panics never abort nor escape;
//! 5. `Duration::MAX` (or any duration too large for an `Instant`) means "no limit";
//! 6. the error types compose with `?`;
//! 7. a task's posted-from location is the user's call.
//!
//! Every scenario that could hang runs under a watchdog ([`within`]): a hang fails the test
//! after [`HANG`] instead of blocking the run. No test asserts on how long anything took.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::convert::Infallible;
use std::error::Error;
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::executor::{
    Executor, ExecutorBuildError, ShutdownMode, SubmitError, SubmitOptions, SubmitRefusal,
};
use taskrunner::fork_join::{
    as_completed, consume, invoke_all, invoke_all_fail_fast, wait, wait_all, TaskGroup,
    WaitAllError, WaitStrategy,
};
use taskrunner::registry::{HandleRegistry, RegistryError, RegistryFull};
use taskrunner::retry::{retry, RetryPolicy};
use taskrunner::sync::{AsyncMutex, Semaphore, SingleFlight, WaitGroup};
use taskrunner::testing::TestEnvironment;
use taskrunner::time::{repeat, Repeat, RepeatMode};
use taskrunner::{
    Deferred, PanicPolicy, PostRefusal, PostTask, TaskError, TaskHandle, TaskTraits, ThreadPool,
};

/// How long a scenario may take before it counts as hung.
const HANG: Duration = Duration::from_secs(20);

/// A duration far beyond anything an `Instant` can hold.
const FOREVER: Duration = Duration::MAX;

/// A long but representable wait (longer than any test may take).
const HOUR: Duration = Duration::from_secs(3600);

// ---- helpers ------------------------------------------------------------------------------------

/// Runs `f` on a thread of its own and returns its value; fails the test if it has not
/// finished within [`HANG`] (the thread is left behind: it is hung), and resumes its panic.
#[track_caller]
fn within<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(HANG) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => panic::resume_unwind(p),
        Err(_) => panic!("{what}: still not finished after {HANG:?} (hung)"),
    }
}

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Runs `body` as a task of a fresh one-worker pool and returns its value (failing the test if
/// it hangs): whatever `body` waits for on that pool can only run if the pool runs another
/// worker while `body` blocks.
#[track_caller]
fn in_the_only_worker<R: Send + 'static>(
    what: &'static str,
    body: impl FnOnce(ThreadPool) -> R + Send + 'static,
) -> R {
    within(what, move || {
        let pool = pool(1);
        let p = pool.clone();
        let h = pool
            .post_task_with_result(TaskTraits::default(), move || body(p))
            .unwrap();
        match h.join() {
            Ok(v) => v,
            Err(e) => panic!("{what}: the task did not complete: {e}"),
        }
    })
}

/// On a one-worker pool: runs `wait` in a task, and once that task has started, posts
/// `release` as a second task. `wait` can only return after `release` ran, which needs the
/// pool to run another worker while `wait` blocks.
#[track_caller]
fn released_by_another_task(
    what: &'static str,
    setup: impl FnOnce(&ThreadPool) -> (Box<dyn FnOnce() + Send>, Box<dyn FnOnce() + Send>)
        + Send
        + 'static,
) {
    within(what, move || {
        let pool = pool(1);
        let (wait, release) = setup(&pool);
        let (started_tx, started_rx) = mpsc::channel();
        let waiter = pool
            .post_task_with_result(TaskTraits::default(), move || {
                started_tx.send(()).unwrap();
                wait();
            })
            .unwrap();
        started_rx.recv().unwrap();
        pool.post_task(TaskTraits::default(), release).unwrap();
        if let Err(e) = waiter.join() {
            panic!("{what}: the waiting task did not complete: {e}");
        }
    });
}

/// The message of a caught panic.
fn message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// What a pool's panic handler saw: (message, posted-from location).
type Seen = Arc<Mutex<Vec<(String, &'static Location<'static>)>>>;

/// A pool whose panic handler records every panic it is told of.
fn recording_pool(workers: usize) -> (ThreadPool, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let pool = ThreadPool::builder()
        .max_workers(workers)
        .panic_handler(move |p| {
            s.lock()
                .unwrap()
                .push((p.message().to_owned(), p.posted_from()))
        })
        .build()
        .unwrap();
    (pool, seen)
}

/// Waits (polling) until `cond` holds; fails after [`HANG`].
#[track_caller]
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "{what}: still false after {HANG:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Asserts that the handler saw `msg` exactly once, posted from this test file.
#[track_caller]
fn assert_reported_once_from_here(seen: &Seen, msg: &str) {
    let seen = seen.lock().unwrap();
    let hits: Vec<_> = seen.iter().filter(|(m, _)| m == msg).collect();
    assert_eq!(
        hits.len(),
        1,
        "the panic handler saw {msg:?} {} times: {seen:?}",
        hits.len()
    );
    let at = hits[0].1;
    assert!(
        at.file().ends_with("no_traps_orchestration.rs"),
        "{msg:?} was reported as posted from {at}, not from the user's call in this file"
    );
}

/// A panic payload whose destructor panics `self.0` more times (each time with another such
/// payload).
struct PanicsOnDrop(u32);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.0 > 0 {
            panic::panic_any(PanicsOnDrop(self.0 - 1));
        }
    }
}

fn poison_seq(pool: &ThreadPool) -> taskrunner::SequencedTaskRunner {
    pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison))
}

// ---- 1. blocking waits inside pool tasks compensate ---------------------------------------------

#[test]
fn submitters_blocked_on_a_full_executor_of_their_own_pool_do_not_starve_it() {
    within("four pool tasks submitting into a full executor", || {
        let pool = pool(2);
        let exec = Arc::new(
            Executor::builder()
                .pool(&pool)
                .max_workers(1)
                .queue_capacity(2)
                .build()
                .unwrap(),
        );
        // Fill the queue without holding a worker: tasks waiting for a permit.
        let gate = Semaphore::new(1);
        let held = gate.acquire();
        let queued: Vec<_> = (0..2)
            .map(|i| exec.submit_with_limit(&gate, move || i).unwrap())
            .collect();
        assert_eq!(exec.queued(), 2);
        // Every worker is now taken by a submitter blocked on the full queue.
        let done = Arc::new(AtomicUsize::new(0));
        let submitters: Vec<_> = (0..4)
            .map(|i| {
                let (exec, done) = (exec.clone(), done.clone());
                pool.post_task_with_result(TaskTraits::default(), move || {
                    let h = exec.submit(move || i).unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                    h
                })
                .unwrap()
            })
            .collect();
        drop(held); // the queued tasks can run now, if the pool has a worker for them
        for h in submitters {
            assert!(h.join().unwrap().join().is_ok());
        }
        assert_eq!(done.load(Ordering::SeqCst), 4);
        for h in queued {
            h.join().unwrap();
        }
    });
}

#[test]
fn submit_timeout_on_a_full_queue_inside_the_only_worker_compensates() {
    // The handles are joined outside the pool: only the executor's own waits are under test.
    let (queued, h) = in_the_only_worker("submit_timeout on a full queue", |pool| {
        let exec = Executor::builder()
            .pool(&pool)
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let gate = Semaphore::new(1);
        let held = gate.acquire();
        let queued = exec.submit_with_limit(&gate, || 1).unwrap();
        let p = pool.clone();
        // Released by another task of this pool, which needs a worker.
        p.post_task(TaskTraits::default(), move || drop(held))
            .unwrap();
        let h = exec.submit_timeout(|| 2, HOUR).unwrap();
        (queued, h)
    });
    assert_eq!((queued.join().unwrap(), h.join().unwrap()), (1, 2));
}

#[test]
fn executor_wait_idle_inside_the_only_worker_compensates() {
    assert!(in_the_only_worker("Executor::wait_idle", |pool| {
        let exec = Executor::builder().pool(&pool).build().unwrap();
        exec.submit(|| ()).unwrap();
        exec.wait_idle()
    }));
}

#[test]
fn executor_maps_inside_the_only_worker_compensate() {
    let out = in_the_only_worker("Executor::map / try_map / map_timeout / map_iter", |pool| {
        let exec = Executor::builder().pool(&pool).build().unwrap();
        let a: Vec<u32> = exec
            .map(0..4u32, |x| x * 2)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let b = exec
            .try_map(0..4u32, |x| Ok::<_, Infallible>(x + 1))
            .unwrap();
        let c: Vec<u32> = exec
            .map_timeout(0..2u32, HOUR, |x| x)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let d: Vec<u32> = exec.map_iter(0..3u32, |x| x).map(Result::unwrap).collect();
        (a, b, c, d)
    });
    assert_eq!(
        out,
        (
            vec![0, 2, 4, 6],
            vec![1, 2, 3, 4],
            vec![0, 1],
            vec![0, 1, 2]
        )
    );
}

#[test]
fn a_draining_shutdown_and_drop_inside_the_only_worker_compensate() {
    let n = in_the_only_worker("Executor::shutdown(Drain) and drop", |pool| {
        let ran = Arc::new(AtomicUsize::new(0));
        let exec = Executor::builder().pool(&pool).build().unwrap();
        let r = ran.clone();
        exec.submit(move || r.fetch_add(1, Ordering::SeqCst))
            .unwrap();
        exec.shutdown(ShutdownMode::Drain);
        let exec = Executor::builder().pool(&pool).build().unwrap();
        let r = ran.clone();
        exec.submit(move || r.fetch_add(1, Ordering::SeqCst))
            .unwrap();
        drop(exec); // drains
        ran.load(Ordering::SeqCst)
    });
    assert_eq!(n, 2);
}

#[test]
fn semaphore_acquire_inside_the_only_worker_compensates() {
    released_by_another_task("Semaphore::acquire", |_| {
        let s = Semaphore::new(1);
        let held = s.acquire();
        let s2 = s.clone();
        (
            Box::new(move || drop(s2.acquire())),
            Box::new(move || drop(held)),
        )
    });
    released_by_another_task("Semaphore::acquire_timeout", |_| {
        let s = Semaphore::new(1);
        let held = s.acquire();
        let s2 = s.clone();
        (
            Box::new(move || assert!(s2.acquire_timeout(HOUR).is_some())),
            Box::new(move || drop(held)),
        )
    });
}

#[test]
fn async_mutex_lock_blocking_inside_the_only_worker_compensates() {
    released_by_another_task("AsyncMutex::lock_blocking", |pool| {
        let m = Arc::new(AsyncMutex::new(0u32));
        // A future of the same pool holds the lock until a deferred task has run.
        let (task, done) = Deferred::new(|| ());
        let m2 = m.clone();
        pool.create_task_runner(TaskTraits::default())
            .post_future(async move {
                let mut g = m2.lock().await;
                done.await.unwrap();
                *g += 1;
            })
            .unwrap();
        eventually("the future holds the lock", || m.is_locked());
        (
            Box::new(move || assert_eq!(*m.lock_blocking(), 1)),
            Box::new(move || task.run()),
        )
    });
}

#[test]
fn registry_wait_inside_the_only_worker_compensates() {
    released_by_another_task("HandleRegistry::wait", |_| {
        let reg = HandleRegistry::new(4);
        let (task, h) = Deferred::new(|| 5u32);
        let id = reg.insert(h).unwrap();
        (
            Box::new(move || assert_eq!(reg.wait(id), Ok(5))),
            Box::new(move || task.run()),
        )
    });
    released_by_another_task("HandleRegistry::wait_timeout", |_| {
        let reg = HandleRegistry::new(4);
        let (task, h) = Deferred::new(|| 6u32);
        let id = reg.insert(h).unwrap();
        (
            Box::new(move || assert_eq!(reg.wait_timeout(id, HOUR), Ok(6))),
            Box::new(move || task.run()),
        )
    });
}

#[test]
fn wait_as_completed_and_wait_all_inside_the_only_worker_compensate() {
    released_by_another_task("wait", |_| {
        let (task, h) = Deferred::new(|| 1);
        (
            Box::new(move || {
                let w = wait(vec![h], WaitStrategy::AllCompleted, None);
                assert_eq!(w.done.len(), 1);
            }),
            Box::new(move || task.run()),
        )
    });
    released_by_another_task("as_completed", |_| {
        let (task, h) = Deferred::new(|| 2);
        (
            Box::new(move || assert_eq!(as_completed(vec![h]).count(), 1)),
            Box::new(move || task.run()),
        )
    });
    released_by_another_task("wait_all", |_| {
        let (task, h) = Deferred::new(|| 3);
        (
            Box::new(move || assert!(wait_all(&[h]).is_ok())),
            Box::new(move || task.run()),
        )
    });
}

#[test]
fn fork_join_waits_inside_the_only_worker_compensate() {
    let all = in_the_only_worker("InvokeAll::join", |pool| {
        invoke_all(&pool, (0..3).map(|i| move || Ok::<_, Infallible>(i)), None)
            .join()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    assert_eq!(all, vec![0, 1, 2]);
    let ff = in_the_only_worker("InvokeAll::join_fail_fast", |pool| {
        invoke_all_fail_fast(&pool, (0..3).map(|i| move || Ok::<_, Infallible>(i)), 1)
            .join_fail_fast()
            .unwrap()
    });
    assert_eq!(ff, vec![0, 1, 2]);
    let ran = in_the_only_worker("Consumer::join", |pool| {
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..3 {
            tx.send(Deferred::new(move || i).0).unwrap();
        }
        drop(tx);
        consume(&pool, rx, 2).join().ran
    });
    assert_eq!(ran, 3);
}

#[test]
fn an_idle_consumer_does_not_hold_the_only_worker() {
    within("a task next to an idle consumer", || {
        let pool = pool(1);
        let (tx, rx) = crossbeam_channel::unbounded::<Deferred>();
        let consumer = consume(&pool, rx, 1); // its driver waits for tasks on the channel
        let h = pool
            .post_task_with_result(TaskTraits::default(), || 5)
            .unwrap();
        assert_eq!(h.join().unwrap(), 5);
        drop(tx);
        consumer.join();
    });
}

#[test]
fn repeat_wait_inside_the_only_worker_compensates() {
    released_by_another_task("RepeatHandle::wait", |pool| {
        let h = Arc::new(
            Repeat::new(HOUR, RepeatMode::FixedDelay)
                .start(pool, || ())
                .unwrap(),
        );
        let h2 = h.clone();
        (
            Box::new(move || h.wait()),
            Box::new(move || assert!(h2.cancel())),
        )
    });
}

// ---- 2. a wait that can never end panics at once ------------------------------------------------

/// Runs `body` as a task of a fresh sequence (on a two-worker pool) and returns the message of
/// the panic it must raise.
#[track_caller]
fn panic_on_own_sequence(
    what: &'static str,
    body: impl FnOnce(ThreadPool, taskrunner::SequencedTaskRunner) + Send + 'static,
) -> String {
    within(what, move || {
        let pool = pool(2);
        let seq = pool.create_sequenced_task_runner(TaskTraits::default());
        let (p, s) = (pool.clone(), seq.clone());
        let h = seq
            .post_task_with_result(move || {
                panic::catch_unwind(AssertUnwindSafe(move || body(p, s))).map_err(|e| message(&*e))
            })
            .unwrap();
        match h.join().unwrap() {
            Ok(()) => panic!("{what}: returned instead of panicking"),
            Err(msg) => msg,
        }
    })
}

#[track_caller]
fn assert_advice(msg: &str) {
    assert!(
        msg.contains("forever"),
        "the message names the cause: {msg}"
    );
    assert!(
        msg.contains("post_task_and_reply") && msg.contains(".await"),
        "the message names the fix: {msg}"
    );
}

#[test]
fn a_scope_posting_to_its_owners_sequence_panics_instead_of_hanging() {
    let msg = panic_on_own_sequence("scope.post_task_on(own sequence)", |pool, seq| {
        pool.scope(|s| {
            s.post_task_on(&seq, || ()).unwrap();
        });
    });
    assert_advice(&msg);
    // Also from a scoped task running elsewhere, posting back to the owner's sequence.
    let msg = panic_on_own_sequence(
        "a scoped task posting to the owner's sequence",
        |pool, seq| {
            pool.scope(|s| {
                let seq = &seq;
                s.post_task(move || {
                    s.post_task_on(seq, || ()).unwrap();
                })
                .unwrap();
            });
        },
    );
    assert_advice(&msg);
    // And on a single-thread runner.
    let msg = within("scope on a single-thread runner's own thread", || {
        let pool = pool(1);
        let st = pool.create_single_thread_task_runner(TaskTraits::default());
        let st2 = st.clone();
        st.post_task_with_result(move || {
            panic::catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    s.post_task_with_result_on(&st2, || 1)
                        .unwrap()
                        .join()
                        .unwrap();
                })
            }))
            .map_err(|e| message(&*e))
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap_err()
    });
    assert_advice(&msg);
}

#[test]
fn scopes_may_still_post_to_other_sequences_from_a_sequence() {
    let v = within("scope on a sequence posting to another sequence", || {
        let pool = pool(2);
        let (a, b) = (
            pool.create_sequenced_task_runner(TaskTraits::default()),
            pool.create_sequenced_task_runner(TaskTraits::default()),
        );
        a.post_task_with_result(move || {
            pool.scope(|s| {
                s.post_task_with_result_on(&b, || 7)
                    .unwrap()
                    .join()
                    .unwrap()
            })
        })
        .unwrap()
        .join()
        .unwrap()
    });
    assert_eq!(v, 7);
}

#[test]
fn submitting_from_its_own_sequence_into_a_full_executor_panics() {
    let msg = panic_on_own_sequence(
        "Executor::submit on a full queue, own sequence",
        |_, seq| {
            let exec = Executor::builder()
                .runner(seq)
                .queue_capacity(1)
                .build()
                .unwrap();
            let gate = Semaphore::new(1);
            let _held = gate.acquire();
            let _queued = exec.submit_with_limit(&gate, || ()).unwrap(); // the queue is full
            let _ = exec.submit(|| ());
        },
    );
    assert_advice(&msg);
}

#[test]
fn waiting_for_an_executor_from_its_own_sequence_panics() {
    let msg = panic_on_own_sequence("Executor::wait_idle, own sequence", |_, seq| {
        let exec = Executor::builder().runner(seq).build().unwrap();
        exec.submit(|| ()).unwrap();
        exec.wait_idle();
    });
    assert_advice(&msg);
    let msg = panic_on_own_sequence("Executor::map, own sequence", |_, seq| {
        let exec = Executor::builder().runner(seq).build().unwrap();
        let _ = exec.map(0..2, |x: u32| x);
    });
    assert_advice(&msg);
}

#[test]
fn dropping_an_executor_inside_a_task_of_its_own_sequence_does_not_wait() {
    let v = within("drop of an executor on its own sequence", || {
        let pool = pool(2);
        let seq = pool.create_sequenced_task_runner(TaskTraits::default());
        let s = seq.clone();
        let h = seq
            .post_task_with_result(move || {
                let exec = Executor::builder().runner(s).build().unwrap();
                let h = exec.submit(|| 5).unwrap();
                drop(exec); // a drain here would wait for a task queued behind this one
                h
            })
            .unwrap();
        h.join().unwrap().join().unwrap()
    });
    assert_eq!(v, 5);
}

#[test]
fn joining_an_invoke_all_on_its_own_sequence_panics() {
    let msg = panic_on_own_sequence("InvokeAll::join, own sequence", |_, seq| {
        let _ = invoke_all(&seq, (0..2).map(|i| move || Ok::<_, Infallible>(i)), None).join();
    });
    assert_advice(&msg);
}

#[test]
fn group_and_consumer_waits_on_their_own_sequence_panic() {
    let msg = panic_on_own_sequence("TaskGroup::wait, own sequence", |_, seq| {
        let group = TaskGroup::new(&seq);
        group.spawn(|_| Ok::<(), Infallible>(()));
        let _ = group.wait();
    });
    assert_advice(&msg);
    let msg = panic_on_own_sequence("Consumer::join, own sequence", |_, seq| {
        let (tx, rx) = crossbeam_channel::unbounded::<Deferred>();
        drop(tx);
        consume(&seq, rx, 1).join();
    });
    assert_advice(&msg);
}

#[test]
fn a_single_flight_call_waiting_for_its_own_thread_panics() {
    let err = within("SingleFlight re-entered with the same key", || {
        let flights = SingleFlight::<&str, u32>::new();
        let inner = flights.clone();
        flights.call("k", move || inner.call("k", || 1).map_or(0, |(v, _)| v))
    })
    .unwrap_err();
    let msg = err.panic_message().unwrap_or_default().to_owned();
    assert!(msg.contains("forever"), "{msg}");
    let flights = SingleFlight::<&str, u32>::new();
    assert_eq!(flights.call("k", || 2).unwrap(), (2, false)); // nothing left behind
}

// ---- 3. panics are routed like plain tasks' --------------------------------------------------

#[test]
fn an_executor_task_panicking_on_a_poison_sequence_poisons_it() {
    within("executor on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let exec = Executor::builder().runner(seq.clone()).build().unwrap();
        let err = exec
            .submit(|| -> u32 { panic!("exec-poison") })
            .unwrap()
            .join()
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "exec-poison");
        // Later submissions end without running.
        assert!(exec.submit(|| 1).unwrap().join().unwrap_err().is_not_run());
    });
}

#[test]
fn a_retry_attempt_panicking_on_a_poison_sequence_poisons_it() {
    within("retry on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let h = retry(&seq, RetryPolicy::attempts(3), || -> Result<(), &str> {
            panic!("retry-poison")
        });
        let err = h.join().unwrap_err();
        assert!(err.is_panic() && err.attempts() == 1);
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "retry-poison");
    });
}

#[test]
fn an_invoke_all_task_panicking_on_a_poison_sequence_poisons_it() {
    within("invoke_all on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let tasks: Vec<Box<dyn FnOnce() -> Result<u32, Infallible> + Send>> =
            vec![Box::new(|| Ok(1)), Box::new(|| panic!("fork-poison"))];
        let out = invoke_all(&seq, tasks, None).join();
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert!(out[1].as_ref().unwrap_err().is_panic());
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "fork-poison");
    });
}

#[test]
fn a_repeat_run_panicking_on_a_poison_sequence_poisons_it_and_ends_it() {
    within("repeat on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedDelay)
            .initial_delay(Duration::ZERO)
            .start(&seq, || panic!("repeat-poison"))
            .unwrap();
        h.wait(); // ended: its next run was refused
        assert_eq!(h.runs(), 1);
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "repeat-poison");
    });
}

#[test]
fn group_and_scope_tasks_panicking_on_a_poison_sequence_poison_it() {
    within("TaskGroup on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let group = TaskGroup::new(&seq);
        group.spawn(|_| -> Result<(), Infallible> { panic!("group-poison") });
        assert!(group.wait().unwrap_err().is_panic());
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "group-poison");
    });
    within("scope on a Poison sequence", || {
        let (pool, seen) = recording_pool(2);
        let seq = poison_seq(&pool);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.post_task_on(&seq, || panic!("scope-poison")).unwrap();
            })
        }));
        assert_eq!(message(&*r.unwrap_err()), "scope-poison"); // resumed by the scope
        assert_eq!(
            seq.post_task(|| ()).unwrap_err().reason(),
            PostRefusal::SequencePoisoned
        );
        assert_reported_once_from_here(&seen, "scope-poison");
    });
}

#[test]
fn the_panic_handler_sees_each_orchestration_panic_once_from_the_users_call() {
    within("panic handler locations", || {
        let (pool, seen) = recording_pool(2);
        let exec = Executor::builder().pool(&pool).build().unwrap();
        exec.submit(|| -> u8 { panic!("p-submit") })
            .unwrap()
            .join()
            .unwrap_err();
        exec.submit_fallible(|| -> Result<(), &str> { panic!("p-fallible") })
            .unwrap()
            .join()
            .unwrap_err();
        exec.submit_with_retry(RetryPolicy::attempts(2), || -> Result<(), &str> {
            panic!("p-submit-retry")
        })
        .unwrap()
        .join()
        .unwrap_err();
        exec.submit_with(SubmitOptions::new(), |_| -> Result<(), &str> {
            panic!("p-with")
        })
        .unwrap()
        .join()
        .unwrap_err();
        assert!(exec.map(0..1, |_: u32| -> u32 { panic!("p-map") })[0].is_err());
        let mut it = exec.map_iter(0..1, |_: u32| -> u32 { panic!("p-map-iter") });
        assert!(it.next().unwrap().is_err());
        drop(it);
        retry(&pool, RetryPolicy::attempts(2), || -> Result<(), &str> {
            panic!("p-retry")
        })
        .join()
        .unwrap_err();
        let tasks = [|| -> Result<(), Infallible> { panic!("p-invoke") }];
        invoke_all(&pool, tasks, None).join();
        let group = TaskGroup::new(&pool);
        group.spawn(|_| -> Result<(), Infallible> { panic!("p-group") });
        group.wait().unwrap_err();
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.post_task(|| panic!("p-scope")).unwrap();
            })
        }));
        pool.scope(|s| {
            let h = s
                .post_task_with_result(|| -> u8 { panic!("p-scope-handle") })
                .unwrap();
            assert!(h.join().unwrap_err().is_panic());
        });
        let h = Repeat::new(HOUR, RepeatMode::FixedDelay)
            .initial_delay(Duration::ZERO)
            .start(&pool, || panic!("p-repeat"))
            .unwrap();
        eventually("the repeat's run was reported", || {
            seen.lock().unwrap().iter().any(|(m, _)| m == "p-repeat")
        });
        h.cancel();
        let h2 = repeat(
            &pool,
            Duration::from_millis(1),
            RepeatMode::FixedRate,
            || panic!("p-repeat-fn"),
        )
        .unwrap();
        eventually("the repeat fn's run was reported", || {
            seen.lock().unwrap().iter().any(|(m, _)| m == "p-repeat-fn")
        });
        h2.cancel();
        for msg in [
            "p-submit",
            "p-fallible",
            "p-submit-retry",
            "p-with",
            "p-map",
            "p-map-iter",
            "p-retry",
            "p-invoke",
            "p-group",
            "p-scope",
            "p-scope-handle",
            "p-repeat",
        ] {
            assert_reported_once_from_here(&seen, msg);
        }
        // A repetition reports each panicking run, always from the user's call.
        let seen = seen.lock().unwrap();
        assert!(seen
            .iter()
            .filter(|(m, _)| m == "p-repeat-fn")
            .all(|(_, at)| at.file().ends_with("no_traps_orchestration.rs")));
    });
}

#[test]
fn orchestration_handles_keep_the_panic_payload() {
    within("payloads", || {
        let pool = ThreadPool::builder()
            .max_workers(2)
            .panic_handler(|_| {})
            .build()
            .unwrap();
        let exec = Executor::builder().pool(&pool).build().unwrap();
        let payload = |e: TaskError| {
            *e.into_panic()
                .downcast::<u32>()
                .expect("the original payload")
        };
        let e = exec
            .submit(|| -> u8 { panic::panic_any(1_u32) })
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(payload(e), 1);
        let e = retry(&pool, RetryPolicy::attempts(2), || -> Result<(), &str> {
            panic::panic_any(2_u32)
        })
        .join()
        .unwrap_err();
        assert_eq!(payload(e), 2);
        let tasks = [|| -> Result<(), Infallible> { panic::panic_any(3_u32) }];
        let e = invoke_all(&pool, tasks, None)
            .join()
            .pop()
            .unwrap()
            .unwrap_err();
        assert_eq!(payload(e), 3);
        let group = TaskGroup::new(&pool);
        group.spawn(|_| -> Result<(), Infallible> { panic::panic_any(4_u32) });
        assert_eq!(payload(group.wait().unwrap_err()), 4);
        let e = pool.scope(|s| {
            s.post_task_with_result(|| -> u8 { panic::panic_any(5_u32) })
                .unwrap()
                .join()
                .unwrap_err()
        });
        assert_eq!(payload(e), 5);
        let flights = SingleFlight::<u8, u8>::new();
        let e = flights.call(1, || panic::panic_any(6_u32)).unwrap_err();
        assert_eq!(payload(e), 6);
    });
}

/// The body of the Abort-policy scenarios, run in a child process (see
/// [`the_abort_policy_aborts_for_orchestration_tasks`]); does nothing in a normal run.
#[test]
fn abort_policy_child() {
    let Ok(which) = std::env::var(ABORT_SCENARIO) else {
        return;
    };
    let pool = pool(2);
    let runner = pool.create_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Abort));
    let seq = pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Abort));
    match which.as_str() {
        "executor" => {
            let exec = Executor::builder().runner(runner).build().unwrap();
            let _ = exec
                .submit(|| -> u8 { panic!("abort: executor") })
                .unwrap()
                .join();
        }
        "retry" => {
            let _ = retry(&seq, RetryPolicy::attempts(3), || -> Result<(), &str> {
                panic!("abort: retry")
            })
            .join();
        }
        "invoke_all" => {
            let tasks = [|| -> Result<(), Infallible> { panic!("abort: invoke_all") }];
            let _ = invoke_all(&runner, tasks, None).join();
        }
        "group" => {
            let group = TaskGroup::new(&seq);
            group.spawn(|_| -> Result<(), Infallible> { panic!("abort: group") });
            let _ = group.wait();
        }
        "repeat" => {
            let h = Repeat::new(HOUR, RepeatMode::FixedDelay)
                .initial_delay(Duration::ZERO)
                .start(&seq, || panic!("abort: repeat"))
                .unwrap();
            // Not aborted within this time: the policy was ignored (the parent sees exit 0).
            let _ = h.wait_timeout(Duration::from_secs(5));
            h.cancel();
        }
        other => panic!("unknown scenario {other}"),
    }
}

const ABORT_SCENARIO: &str = "TASKRUNNER_NO_TRAPS_ABORT_SCENARIO";

#[test]
fn the_abort_policy_aborts_for_orchestration_tasks() {
    use std::os::unix::process::ExitStatusExt;
    for which in ["executor", "retry", "invoke_all", "group", "repeat"] {
        let status = within("the abort child process", move || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "abort_policy_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ABORT_SCENARIO, which)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
        });
        assert_eq!(
            status.signal(),
            Some(6),
            "{which}: a panic under PanicPolicy::Abort must abort the process (got {status:?})"
        );
    }
}

// ---- tracing: the message fits what happened ---------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process-wide tracing output (installed once for this test binary).
fn captured_tracing() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let c = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(c.clone())
                .with_max_level(tracing::Level::WARN)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            c
        })
        .clone()
}

#[test]
fn tracing_tells_a_plain_submit_from_an_attempt_of_a_retried_task() {
    let captured = captured_tracing();
    within("tracing of executor panics", || {
        let pool = ThreadPool::builder()
            .max_workers(1)
            .panic_handler(|_| {})
            .build()
            .unwrap();
        let exec = Executor::builder().pool(&pool).build().unwrap();
        exec.submit(|| -> u8 { panic!("plain-submit-4711") })
            .unwrap()
            .join()
            .unwrap_err();
        exec.submit_with_retry(RetryPolicy::attempts(3), || -> Result<(), &str> {
            panic!("retried-submit-4711")
        })
        .unwrap()
        .join()
        .unwrap_err();
    });
    let out = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let plain: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("plain-submit-4711"))
        .collect();
    assert!(
        !plain.is_empty(),
        "the plain task's panic was logged: {out}"
    );
    assert!(
        plain
            .iter()
            .all(|l| !l.contains("retried") && !l.contains("attempt")),
        "a plain submit is not a retried task: {plain:?}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("attempt 1 of 3") && l.contains("no_traps_orchestration.rs")),
        "an attempt of a retried task says which: {out}"
    );
}

// ---- 4. payloads whose destructor panics ------------------------------------------------------

#[test]
fn a_scope_resumes_its_bodys_panic_past_a_task_payload_whose_drop_panics() {
    // The task's payload is dropped while the body's panic is being resumed: dropped raw,
    // its destructor would panic during unwinding and abort the process.
    let r = within("scope with a panicking payload destructor", || {
        let pool = ThreadPool::builder()
            .max_workers(2)
            .panic_handler(|_| {})
            .build()
            .unwrap();
        panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.post_task(|| panic::panic_any(PanicsOnDrop(2))).unwrap();
                while s.outstanding() > 0 {
                    std::thread::yield_now();
                }
                panic!("the body's own panic");
            })
        }))
        .map_err(|p| message(&*p))
    });
    assert_eq!(r.unwrap_err(), "the body's own panic");
}

#[test]
fn group_single_flight_and_semaphore_survive_payloads_whose_drop_panics() {
    within("payloads whose destructor panics", || {
        let pool = ThreadPool::builder()
            .max_workers(2)
            .panic_handler(|_| {})
            .build()
            .unwrap();
        let group = TaskGroup::new(&pool);
        group.spawn(|_| -> Result<(), Infallible> { panic::panic_any(PanicsOnDrop(2)) });
        assert!(group.wait().unwrap_err().is_panic());

        let flights = SingleFlight::<u8, u8>::new();
        let e = flights
            .call(1, || panic::panic_any(PanicsOnDrop(2)))
            .unwrap_err();
        assert!(e.is_panic());
        drop(e);

        let s = Semaphore::new(1);
        let held = s.acquire();
        s.acquire_then(|_permit| panic::panic_any(PanicsOnDrop(2)));
        let (tx, rx) = mpsc::channel();
        s.acquire_then(move |p| tx.send(p).unwrap());
        drop(held); // hands over to both callbacks; nothing escapes
        drop(rx.recv().unwrap());
        assert_eq!(s.available(), 1);

        let exec = Executor::builder().pool(&pool).build().unwrap();
        let e = exec
            .submit(|| -> u8 { panic::panic_any(PanicsOnDrop(2)) })
            .unwrap()
            .join()
            .unwrap_err();
        assert!(e.is_panic());
        drop(e);
        let tasks = [|| -> Result<(), Infallible> { panic::panic_any(PanicsOnDrop(2)) }];
        assert!(invoke_all(&pool, tasks, None).join()[0]
            .as_ref()
            .unwrap_err()
            .is_panic());
    });
}

// ---- 5. durations mean what they say ---------------------------------------------------------

#[test]
fn wait_group_and_task_group_timeouts_of_duration_max_mean_no_limit() {
    within("WaitGroup / TaskGroup wait_timeout(MAX)", || {
        let wg = WaitGroup::new();
        assert!(wg.wait_timeout(FOREVER)); // nothing to wait for
        wg.add(1);
        let wg2 = wg.clone();
        let t = std::thread::spawn(move || wg2.wait_timeout(FOREVER));
        wg.done();
        assert!(t.join().unwrap());

        let pool = pool(2);
        let group = TaskGroup::new(&pool);
        assert!(group.wait_timeout(FOREVER).unwrap().is_ok());
        group.spawn(|_| Ok::<(), Infallible>(()));
        assert!(group.wait_timeout(FOREVER).unwrap().is_ok());
    });
}

#[test]
fn semaphore_acquire_timeout_of_duration_max_means_no_limit() {
    within("Semaphore::acquire_timeout(MAX)", || {
        let s = Semaphore::new(1);
        let p = s.acquire_timeout(FOREVER).expect("a free permit");
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.acquire_timeout(FOREVER).is_some());
        drop(p);
        assert!(t.join().unwrap());
    });
}

#[test]
fn retry_policies_with_huge_delays_and_jitter_saturate_instead_of_panicking() {
    let p = RetryPolicy::attempts(3)
        .base_delay(FOREVER)
        .max_delay(FOREVER)
        .factor(3.0)
        .jitter(0.5);
    for attempt in 1..=3 {
        assert_eq!(p.delay_after(attempt), FOREVER);
        for _ in 0..64 {
            // No "cannot convert float seconds to Duration" panic, whatever the jitter drew.
            assert!(p.backoff(attempt) <= FOREVER);
        }
    }
    let q = RetryPolicy::attempts(3)
        .base_delay(FOREVER)
        .max_delay(FOREVER)
        .factor(0.5)
        .jitter(1.0);
    for _ in 0..64 {
        let _ = q.backoff(2);
    }
    // The tiniest jitter still goes through the jitter arithmetic, at the largest delay.
    let p = RetryPolicy::attempts(3)
        .base_delay(FOREVER)
        .max_delay(FOREVER)
        .jitter(1e-300);
    assert_eq!(p.backoff(1), FOREVER);
    within("a retry waiting a Duration::MAX backoff", move || {
        let pool = pool(1);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let h = retry(&pool, p, move || {
            c.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("transient")
        });
        eventually("the first attempt ran", || {
            calls.load(Ordering::SeqCst) == 1
        });
        // Waiting for the next attempt (without limit); cancelling ends it as cancelled,
        // keeping the attempt count.
        assert!(h.cancel() || h.is_finished());
        let err = h.join().unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn executor_durations_of_duration_max_mean_no_limit() {
    within("executor with Duration::MAX", || {
        let pool = pool(2);
        let exec = Executor::builder()
            .pool(&pool)
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        assert_eq!(
            exec.submit_timeout(|| 1, FOREVER).unwrap().join().unwrap(),
            1
        );
        assert!(exec.wait_idle_timeout(FOREVER));
        let opts = SubmitOptions::new().timeout(FOREVER);
        assert_eq!(
            exec.submit_with(opts, |_| Ok::<_, Infallible>(2))
                .unwrap()
                .join()
                .unwrap(),
            2
        );
        let out = exec.map_timeout(0..3u32, FOREVER, |x| x);
        assert_eq!(
            out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let out = exec.map_with(0..2u32, SubmitOptions::new().timeout(FOREVER), |x| {
            Ok::<_, Infallible>(x)
        });
        assert_eq!(out.len(), 2);
        // A full queue: the submitter waits (without limit) until room is made.
        let gate = Semaphore::new(1);
        let held = gate.acquire();
        let queued = exec.submit_with_limit(&gate, || 3).unwrap();
        let exec = Arc::new(exec);
        let e2 = exec.clone();
        let t =
            std::thread::spawn(move || e2.submit_timeout(|| 4, FOREVER).unwrap().join().unwrap());
        drop(held);
        assert_eq!((queued.join().unwrap(), t.join().unwrap()), (3, 4));
        assert!(exec.wait_idle_timeout(FOREVER));
    });
}

#[test]
fn wait_and_as_completed_timeouts_of_duration_max_mean_no_limit() {
    within("wait / as_completed with Duration::MAX", || {
        let w = wait(
            vec![TaskHandle::ready(1)],
            WaitStrategy::AllCompleted,
            Some(FOREVER),
        );
        assert_eq!(w.done.len(), 1);
        let mut it = as_completed(vec![TaskHandle::ready(2)]).timeout(FOREVER);
        assert_eq!(it.next().unwrap().1.unwrap(), 2);
        assert!(!it.timed_out());
        let pool = pool(2);
        let (task, h) = Deferred::new(|| 3);
        pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(5), move || {
            task.run()
        })
        .unwrap();
        let mut it = as_completed(vec![h]).timeout(FOREVER);
        assert_eq!(it.next().unwrap().1.unwrap(), 3);
        let (task, h) = Deferred::new(|| 4);
        pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(5), move || {
            task.run()
        })
        .unwrap();
        let w = wait(vec![h], WaitStrategy::FirstCompleted, Some(FOREVER));
        assert_eq!(w.done.len(), 1);
    });
}

#[test]
fn registry_timeouts_and_retention_of_duration_max_mean_no_limit() {
    within("registry with Duration::MAX", || {
        let reg = HandleRegistry::builder()
            .retain_collected_for(FOREVER)
            .build();
        let id = reg.insert(TaskHandle::ready(1u32)).unwrap();
        assert_eq!(reg.wait_timeout(id, FOREVER), Ok(1));
        assert_eq!(reg.get(id), Ok(1)); // read, never expires
        assert_eq!(reg.purge_expired(), 0);
        let (task, h) = Deferred::new(|| 2u32);
        let id = reg.insert(h).unwrap();
        let t = std::thread::spawn(move || task.run());
        assert_eq!(reg.wait_timeout(id, FOREVER), Ok(2));
        t.join().unwrap();
    });
}

#[test]
fn a_fixed_rate_repetition_every_duration_max_runs_once_not_continuously() {
    within("repeat every Duration::MAX (FixedRate)", || {
        let env = TestEnvironment::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let h = Repeat::new(FOREVER, RepeatMode::FixedRate)
            .initial_delay(Duration::ZERO)
            .start(env.pool(), move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        env.run_until_idle(); // the next tick is never: nothing left to run
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(h.is_running());
        assert!(h.cancel());
        assert!(h.wait_timeout(FOREVER));
    });
    within(
        "repeat every Duration::MAX (FixedDelay), first run never",
        || {
            let pool = pool(1);
            let h = repeat(&pool, FOREVER, RepeatMode::FixedDelay, || ()).unwrap();
            let h2 = Repeat::new(FOREVER, RepeatMode::FixedRate)
                .start(&pool, || ())
                .unwrap();
            assert!(!h.wait_timeout(Duration::from_millis(1)));
            assert!(h.cancel() && h2.cancel());
            assert!(h.wait_timeout(FOREVER) && h2.wait_timeout(FOREVER));
            assert_eq!(h.runs() + h2.runs(), 0);
        },
    );
}

// ---- 6. errors compose with `?` -----------------------------------------------------------------

fn assert_error<E: Error + Send + Sync + 'static>() {}

fn assert_error_of<E: Error + Send + Sync + 'static>(_: &E) {}

#[test]
fn every_public_error_is_an_error_that_is_send_sync_and_static() {
    assert_error::<SubmitRefusal>();
    assert_error::<SubmitError<fn() -> u32>>();
    assert_error::<ExecutorBuildError>();
    assert_error::<RegistryError>();
    assert_error::<RegistryFull<u32>>();
    assert_error::<WaitAllError>();
    // A closure that is Send but not Sync (it owns a Receiver): the error still is both.
    let (_tx, rx) = mpsc::channel::<u32>();
    let exec = Executor::new(1);
    exec.shutdown(ShutdownMode::NoWait);
    let err = exec.submit(move || rx.recv().unwrap()).unwrap_err();
    assert_error_of(&err);
    assert_eq!(err.reason(), SubmitRefusal::Shutdown);
    let reason: SubmitRefusal = err.into();
    assert_eq!(
        reason.to_string(),
        "task refused: the executor was shut down"
    );
}

fn submit_and_join(exec: &Executor) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let (tx, rx) = mpsc::channel::<u32>();
    tx.send(41)?;
    let h = exec.submit(move || rx.recv().unwrap() + 1)?;
    Ok(h.join()?)
}

fn submit_for_reason(exec: &Executor) -> Result<(), SubmitRefusal> {
    let (_tx, rx) = mpsc::channel::<u32>();
    exec.try_submit(move || rx.recv())?;
    Ok(())
}

#[test]
fn submit_errors_compose_with_the_question_mark_operator() {
    let exec = Executor::new(1);
    assert_eq!(submit_and_join(&exec).unwrap(), 42);
    assert!(submit_for_reason(&exec).is_ok());
    exec.shutdown(ShutdownMode::Drain);
    let e = submit_and_join(&exec).unwrap_err();
    assert_eq!(e.to_string(), "task refused: the executor was shut down");
    assert_eq!(submit_for_reason(&exec), Err(SubmitRefusal::Shutdown));
}

// ---- 7. posted-from (also covered by the panic-handler tests above) ----------------------------

#[test]
fn a_tasks_posted_from_location_is_the_users_call_for_every_retry_attempt() {
    within("posted-from of every attempt", || {
        let (pool, seen) = recording_pool(2);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let policy = RetryPolicy::attempts(3).base_delay(Duration::ZERO);
        let h = retry(&pool, policy, move || -> Result<(), &str> {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("again")
            } else {
                panic!("third attempt")
            }
        });
        let err = h.join().unwrap_err();
        assert!(err.is_panic() && err.attempts() == 3);
        assert_reported_once_from_here(&seen, "third attempt");
        // And for a repetition's later runs.
        let mut n = 0;
        let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedDelay)
            .initial_delay(Duration::ZERO)
            .start_with_flow(&pool, move || {
                n += 1;
                if n == 3 {
                    panic!("third run")
                }
                if n == 4 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        h.wait();
        assert_reported_once_from_here(&seen, "third run");
    });
}

#[test]
fn post_task_is_usable_generically_with_the_orchestration_helpers() {
    // `retry` and `invoke_all` take any runner; a sequence keeps its order.
    fn on<R: PostTask + Clone + Send + Sync + 'static>(r: &R) -> Vec<u32> {
        invoke_all(r, (0..3u32).map(|i| move || Ok::<_, Infallible>(i)), None)
            .join_fail_fast()
            .unwrap()
    }
    let pool = pool(2);
    assert_eq!(
        on(&pool.create_sequenced_task_runner(TaskTraits::default())),
        vec![0, 1, 2]
    );
    assert_eq!(on(&pool), vec![0, 1, 2]);
}
