//! Scopes: tasks borrowing the caller's stack, joined before the scope returns (also on panics
//! and when tasks are dropped unrun), nested scopes, scopes inside a one-worker pool, scoped
//! tasks on a sequence.
//!
//! Nothing here asserts on timing: tasks are held with gates (channels, flags) and timeouts
//! only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::{PostRefusal, ShutdownBehavior, TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Runs `f` on a helper thread and fails the test if it does not return within [`HANG`].
fn within_hang<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("hung")
}

/// Spins (yielding) until `cond` holds; fails after [`HANG`].
fn eventually(cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "condition never became true");
        thread::yield_now();
    }
}

fn message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);
struct Tracked(Arc<AtomicUsize>);
impl Drops {
    fn tracked(&self) -> Tracked {
        Tracked(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn tasks_borrow_a_stack_vec_mutably_in_chunks() {
    let pool = pool(3);
    let mut v: Vec<u64> = (0..10_000).collect();
    pool.scope(|s| {
        let mut rest: &mut [u64] = &mut v;
        while !rest.is_empty() {
            let n = rest.len().min(1_000);
            let (chunk, tail) = rest.split_at_mut(n);
            rest = tail;
            s.post_task(move || chunk.iter_mut().for_each(|x| *x *= 2))
                .unwrap();
        }
    });
    assert!(v.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));
    pool.shutdown();
}

#[test]
fn the_scope_returns_the_bodys_value_and_handles_join_borrowed_results() {
    let pool = pool(2);
    let names = ["ada".to_string(), "grace".to_string(), "edsger".to_string()];
    let longest = pool.scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|n| s.post_task_with_result(move || n.as_str()).unwrap())
            .collect();
        // The results borrow `names` too.
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .max_by_key(|n| n.len())
            .unwrap()
            .len()
    });
    assert_eq!(longest, 6);
    pool.shutdown();
}

#[test]
fn tasks_post_more_tasks_into_the_same_scope() {
    // rayon-style recursion: each task splits its slice and posts the halves.
    fn sum_into<'scope>(
        s: &'scope taskrunner::fork_join::Scope<'scope, '_>,
        xs: &'scope [u64],
        total: &'scope AtomicUsize,
    ) {
        if xs.len() <= 64 {
            total.fetch_add(xs.iter().sum::<u64>() as usize, Ordering::SeqCst);
            return;
        }
        let (a, b) = xs.split_at(xs.len() / 2);
        s.post_task(move || sum_into(s, a, total)).unwrap();
        s.post_task(move || sum_into(s, b, total)).unwrap();
    }
    let pool = pool(2);
    let xs: Vec<u64> = (1..=5_000).collect();
    let total = AtomicUsize::new(0);
    pool.scope(|s| sum_into(s, &xs, &total));
    assert_eq!(total.into_inner(), 5_000 * 5_001 / 2);
    pool.shutdown();
}

#[test]
fn nested_scopes_join_inner_before_outer() {
    let pool = pool(2);
    let mut outer = [0usize; 4];
    let inner_done = AtomicUsize::new(0);
    pool.scope(|s| {
        for (i, slot) in outer.iter_mut().enumerate() {
            let pool = &pool;
            let inner_done = &inner_done;
            s.post_task(move || {
                let mut parts = [0usize; 3];
                // A scope opened inside a scoped task, on the same pool.
                pool.scope(|inner| {
                    for (j, p) in parts.iter_mut().enumerate() {
                        inner.post_task(move || *p = i * 10 + j).unwrap();
                    }
                });
                inner_done.fetch_add(1, Ordering::SeqCst);
                *slot = parts.iter().sum();
            })
            .unwrap();
        }
    });
    assert_eq!(inner_done.load(Ordering::SeqCst), 4);
    assert_eq!(outer, [3, 33, 63, 93]);
    pool.shutdown();
}

#[test]
fn a_task_panic_propagates_after_all_other_tasks_finished() {
    let pool = pool(3);
    let panicked = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            s.post_task(|| {
                panicked.store(true, Ordering::SeqCst);
                panic!("task exploded");
            })
            .unwrap();
            for _ in 0..4 {
                s.post_task(|| {
                    // Finish only after the panic happened: the scope must still wait.
                    eventually(|| panicked.load(Ordering::SeqCst));
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        })
    }));
    let payload = r.expect_err("the task's panic is resumed by the scope");
    assert_eq!(message(&*payload), "task exploded"); // the original payload
    assert_eq!(finished.load(Ordering::SeqCst), 4);
    pool.shutdown();
}

#[test]
fn only_the_first_task_panic_is_resumed() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            s.post_task_on(&seq, || panic!("first")).unwrap();
            s.post_task_on(&seq, || panic!("second")).unwrap();
        })
    }));
    assert_eq!(message(&*r.unwrap_err()), "first");
    pool.shutdown();
}

#[test]
fn a_panic_in_the_body_waits_for_the_tasks() {
    let pool = pool(2);
    let body_panicked = Arc::new(AtomicBool::new(false));
    let finished = AtomicUsize::new(0);
    let (release_tx, release_rx) = channel::<()>();
    let release_rx = Mutex::new(release_rx);
    // Releases the tasks only once the body has panicked.
    let b = body_panicked.clone();
    let releaser = thread::spawn(move || {
        eventually(|| b.load(Ordering::SeqCst));
        drop(release_tx);
    });
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            for _ in 0..3 {
                let (finished, release_rx) = (&finished, &release_rx);
                s.post_task(move || {
                    let _ = release_rx.lock().unwrap().recv_timeout(HANG);
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
            body_panicked.store(true, Ordering::SeqCst);
            panic!("body exploded");
        })
    }));
    assert_eq!(message(&*r.unwrap_err()), "body exploded");
    assert_eq!(finished.load(Ordering::SeqCst), 3); // all ended before the scope returned
    releaser.join().unwrap();
    pool.shutdown();
}

#[test]
fn the_bodys_panic_wins_over_a_task_panic() {
    let pool = pool(1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            let h = s
                .post_task_with_result(|| -> u8 { panic!("task") })
                .unwrap();
            while !h.is_finished() {
                thread::yield_now();
            }
            drop(h); // not joined: its panic goes to the scope
            panic!("body");
        })
    }));
    assert_eq!(message(&*r.unwrap_err()), "body");
    pool.shutdown();
}

#[test]
fn a_joined_panic_is_handled_and_an_unjoined_one_is_resumed() {
    let pool = pool(2);
    pool.scope(|s| {
        let h = s
            .post_task_with_result(|| -> u32 { panic!("seen") })
            .unwrap();
        let err = h.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("seen"));
    }); // returns normally
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            // Dropped before the task ends (or after): the panic reaches the scope either way.
            let _ = s
                .post_task_with_result(|| -> u32 { panic!("unseen") })
                .unwrap();
        })
    }));
    assert_eq!(message(&*r.unwrap_err()), "unseen");
    pool.shutdown();
}

#[test]
fn a_scope_opened_inside_the_only_worker_completes() {
    let pool = pool(1);
    let p = pool.clone();
    let sums = within_hang(move || {
        let h = p
            .post_task_with_result(TaskTraits::default(), {
                let p = p.clone();
                move || {
                    let data = [1u32, 2, 3, 4, 5, 6];
                    // Nested: a scoped task on the one worker opens another scope.
                    p.scope(|s| {
                        let hs: Vec<_> = data
                            .chunks(2)
                            .map(|c| {
                                let p = &p;
                                s.post_task_with_result(move || {
                                    p.scope(|s2| {
                                        s2.post_task_with_result(|| c.iter().sum::<u32>())
                                            .unwrap()
                                            .join()
                                            .unwrap()
                                    })
                                })
                                .unwrap()
                            })
                            .collect();
                        hs.into_iter()
                            .map(|h| h.join().unwrap())
                            .collect::<Vec<_>>()
                    })
                }
            })
            .unwrap();
        h.join().unwrap()
    });
    assert_eq!(sums, [3, 7, 11]);
    pool.shutdown();
}

#[test]
fn scoped_tasks_on_a_sequence_run_in_order() {
    let pool = pool(3);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let log = Mutex::new(Vec::new());
    let running = AtomicUsize::new(0);
    pool.scope(|s| {
        for i in 0..200 {
            let (log, running) = (&log, &running);
            s.post_task_on(&seq, move || {
                assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                log.lock().unwrap().push(i);
                running.fetch_sub(1, Ordering::SeqCst);
            })
            .unwrap();
        }
    });
    assert_eq!(log.into_inner().unwrap(), (0..200).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn tasks_dropped_unrun_at_shutdown_still_let_the_scope_return() {
    let pool = pool(1);
    let drops = Drops::default();
    let ran = AtomicUsize::new(0);
    let p = pool.clone();
    let continue_on_shutdown = pool.create_task_runner(
        TaskTraits::new().shutdown_behavior(ShutdownBehavior::ContinueOnShutdown),
    );
    pool.scope(|s| {
        let (started_tx, started_rx) = channel();
        let (release_tx, release_rx) = channel::<()>();
        // Holds the only worker until shutdown has started.
        s.post_task_on(&continue_on_shutdown, move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(HANG);
        })
        .unwrap();
        started_rx.recv_timeout(HANG).unwrap();
        // Queued behind it with the default SkipOnShutdown: discarded unrun by shutdown.
        for _ in 0..5 {
            let (t, ran) = (drops.tracked(), &ran);
            s.post_task(move || {
                let _t = t;
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let delayed_drop = drops.tracked();
        let h = s
            .post_task_with_result(move || {
                let _t = delayed_drop;
            })
            .unwrap();
        p.shutdown();
        release_tx.send(()).unwrap();
        assert!(h.join().unwrap_err().is_not_run());
    });
    // The scope returned only after every discarded closure had been dropped.
    assert_eq!(drops.count(), 6);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_refused_post_hands_the_borrowing_closure_back() {
    let pool = pool(1);
    pool.shutdown();
    let mut total = 0;
    pool.scope(|s| {
        let err = s.post_task(|| total += 5).unwrap_err();
        assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
        (err.into_inner())(); // still borrowing `total`, run here
        let err = s.post_task_with_result(|| 1).unwrap_err();
        assert_eq!(err.into_inner()(), 1);
        assert_eq!(s.outstanding(), 0);
    });
    assert_eq!(total, 5);
}

#[test]
fn the_free_scope_uses_the_global_pool() {
    let mut v = vec![1, 2, 3];
    let n = taskrunner::fork_join::scope(|s| {
        for x in v.iter_mut() {
            s.post_task(move || *x += 1).unwrap();
        }
        7
    });
    assert_eq!((n, v), (7, vec![2, 3, 4]));
}

#[test]
fn scoped_tasks_run_with_the_runners_traits() {
    let pool = pool(2);
    let io = pool.create_task_runner(TaskTraits::new().may_block(true));
    let got = pool.scope(|s| {
        s.post_task_with_result_on(&io, || taskrunner::blocking(|| 5))
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(got, 5);
    pool.shutdown();
}
