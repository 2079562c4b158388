//! Cooperative cancellation and concurrency limits: `CancellationToken` (trees, reasons,
//! deadlines on mock time, waiting across threads, callbacks under races, children that
//! deregister), `TaskContext` (inside retried attempts), and `Semaphore` (FIFO hand-off to
//! queued callbacks, no third acquirer after a hand-off, timeouts, a mixed stress run with a
//! holder-count invariant, no permit leak).
//!
//! Nothing asserts on timing; timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use crossbeam_channel::unbounded;
use support::{must_return, wait_until, DropCounter, TIMEOUT};
use taskrunner::cancel::{CancellationToken, Interrupted, TaskContext};
use taskrunner::retry::{retry, RetryPolicy};
use taskrunner::sync::{Permit, Semaphore};
use taskrunner::{TaskTraits, ThreadPool};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

// ---- CancellationToken: trees and reasons ------------------------------------------------------

#[test]
fn cancelling_a_token_cancels_its_subtree_but_never_its_parent_or_siblings() {
    let root = CancellationToken::new();
    let a = root.child();
    let (a1, a2) = (a.child(), a.child());
    let a1x = a1.child();
    let b = root.child();
    let b1 = b.child();

    assert!(a.cancel());
    for t in [&a, &a1, &a2, &a1x] {
        assert_eq!(t.reason(), Some(Interrupted::Cancelled));
    }
    for t in [&root, &b, &b1] {
        assert!(!t.is_cancelled());
        assert_eq!(t.check(), Ok(()));
    }

    // Cancelling a leaf touches nothing above it.
    assert!(b1.cancel());
    assert!(!b.is_cancelled() && !root.is_cancelled());

    assert!(root.cancel_with(Interrupted::DeadlineExceeded));
    assert_eq!(b.reason(), Some(Interrupted::DeadlineExceeded));
    // Already cancelled tokens keep their first reason.
    assert_eq!(a.reason(), Some(Interrupted::Cancelled));
    assert_eq!(b1.reason(), Some(Interrupted::Cancelled));
    assert!(!root.cancel() && !root.cancel_with(Interrupted::Cancelled));
    assert_eq!(root.reason(), Some(Interrupted::DeadlineExceeded));
}

#[test]
fn a_deadline_reason_reaches_every_descendant_and_their_callbacks() {
    let root = CancellationToken::new();
    let leaf = root.child().child().child();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    leaf.on_cancel(move |why| s.lock().unwrap().push(why));
    root.cancel_with(Interrupted::DeadlineExceeded);
    assert_eq!(leaf.check(), Err(Interrupted::DeadlineExceeded));
    assert_eq!(*seen.lock().unwrap(), vec![Interrupted::DeadlineExceeded]);
    // A child made afterwards is born cancelled, with the reason.
    assert_eq!(leaf.child().reason(), Some(Interrupted::DeadlineExceeded));
}

#[test]
fn clones_share_one_state() {
    let t = CancellationToken::new();
    let c = t.clone();
    let child = c.child();
    assert!(t.cancel());
    assert!(c.is_cancelled() && child.is_cancelled());
    assert!(!c.cancel());
    assert!(format!("{t:?}").contains("Cancelled"));
}

// ---- CancellationToken: deadlines --------------------------------------------------------------

#[cfg(feature = "test-util")]
#[test]
fn cancel_after_on_mock_time_fires_at_the_deadline_not_a_nanosecond_before() {
    use taskrunner::testing::TestEnvironment;
    let env = TestEnvironment::new();
    let t = CancellationToken::new();
    let child = t.child();
    assert!(t.cancel_after(env.pool(), Duration::from_millis(100)));
    env.fast_forward_by(Duration::from_millis(100) - Duration::from_nanos(1));
    assert!(!t.is_cancelled() && !child.is_cancelled());
    env.fast_forward_by(Duration::from_nanos(1));
    assert_eq!(t.reason(), Some(Interrupted::DeadlineExceeded));
    assert_eq!(child.reason(), Some(Interrupted::DeadlineExceeded));
    assert!(t.wait_timeout(Duration::ZERO));

    // On a sequence of the environment too; an explicit cancel before the deadline wins and
    // keeps its reason when the deadline passes.
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let early = CancellationToken::new();
    assert!(early.cancel_after(&seq, Duration::from_secs(10)));
    let late = CancellationToken::new();
    assert!(late.cancel_after(&seq, Duration::from_secs(10)));
    env.fast_forward_by(Duration::from_secs(5));
    assert!(early.cancel());
    env.fast_forward_by(Duration::from_secs(5));
    assert_eq!(early.reason(), Some(Interrupted::Cancelled));
    assert_eq!(late.reason(), Some(Interrupted::DeadlineExceeded));
}

#[cfg(feature = "test-util")]
#[test]
fn a_dropped_token_with_a_pending_deadline_is_freed_and_the_deadline_is_harmless() {
    use taskrunner::testing::TestEnvironment;
    let env = TestEnvironment::new();
    let drops = DropCounter::new();
    let t = CancellationToken::new();
    let tok = drops.token();
    t.on_cancel(move |_| tok.keep());
    assert!(t.cancel_after(env.pool(), Duration::from_secs(1)));
    drop(t);
    // The deadline task holds the token weakly: the token (and its callback) are gone now.
    assert_eq!(drops.dropped(), 1);
    env.fast_forward_by(Duration::from_secs(2));
    assert_eq!(env.pending_task_count(), 0);
}

#[test]
fn cancel_after_on_a_shut_down_runner_returns_false_and_leaves_the_token_live() {
    let p = pool(1);
    let seq = p.create_sequenced_task_runner(TaskTraits::default());
    p.shutdown();
    let t = CancellationToken::new();
    assert!(!t.cancel_after(&p, Duration::from_millis(1)));
    assert!(!t.cancel_after(&seq, Duration::from_millis(1)));
    assert!(!t.is_cancelled());
    assert!(t.cancel());
}

#[test]
fn cancel_after_on_real_time_wakes_a_waiter() {
    let p = pool(1);
    let t = CancellationToken::new();
    assert!(t.cancel_after(&p, Duration::from_millis(2)));
    assert!(t.wait_timeout(TIMEOUT));
    assert_eq!(t.reason(), Some(Interrupted::DeadlineExceeded));
}

// A deadline fires on the delay manager's thread, not as a task: a task that occupies the only
// worker while it waits for its own deadline (or polls `ctx.is_cancelled()`) still sees it.
// (It used to be a posted task, starved here until `wait_timeout` gave up.)
#[test]
fn cancel_after_fires_while_every_worker_waits_for_the_token() {
    let p = pool(1);
    let t = CancellationToken::new();
    let (t2, started) = (t.clone(), Arc::new(AtomicBool::new(false)));
    let s = started.clone();
    let h = p
        .post_task_with_result(TaskTraits::default(), move || {
            s.store(true, Ordering::SeqCst);
            t2.wait_timeout(TIMEOUT)
        })
        .unwrap();
    wait_until("the waiting task started", || {
        started.load(Ordering::SeqCst)
    });
    assert!(t.cancel_after(&p, Duration::from_millis(1)));
    assert!(h.join().unwrap(), "the deadline never fired");
}

// ---- CancellationToken: waiting ----------------------------------------------------------------

#[test]
fn wait_and_wait_timeout_return_when_another_thread_cancels() {
    let root = CancellationToken::new();
    let child = root.child();
    let waiters: Vec<_> = (0..6)
        .map(|i| {
            let t = if i % 2 == 0 {
                root.clone()
            } else {
                child.clone()
            };
            std::thread::spawn(move || {
                if i < 3 {
                    t.wait();
                    true
                } else {
                    t.wait_timeout(TIMEOUT)
                }
            })
        })
        .collect();
    assert!(!root.wait_timeout(Duration::from_millis(5)));
    root.cancel();
    for w in waiters {
        assert!(must_return("a token waiter", move || w.join().unwrap()));
    }
    // Waiting on a cancelled token returns at once.
    child.wait();
    assert!(child.wait_timeout(Duration::ZERO));
}

// ---- CancellationToken: callbacks --------------------------------------------------------------

#[test]
fn callbacks_run_once_in_registration_order_and_see_the_cancelled_token() {
    let t = CancellationToken::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        let (l, t2) = (log.clone(), t.clone());
        t.on_cancel(move |why| {
            assert!(t2.is_cancelled(), "a callback runs after the state changed");
            l.lock().unwrap().push((i, why));
        });
    }
    assert!(log.lock().unwrap().is_empty());
    t.cancel_with(Interrupted::DeadlineExceeded);
    let want: Vec<_> = (0..20)
        .map(|i| (i, Interrupted::DeadlineExceeded))
        .collect();
    assert_eq!(*log.lock().unwrap(), want);
    t.cancel();
    assert_eq!(log.lock().unwrap().len(), 20, "never twice");

    // Registered after the fact: runs at once, on this thread, before on_cancel returns.
    let me = std::thread::current().id();
    let (l, ran_here) = (log.clone(), Arc::new(AtomicBool::new(false)));
    let r = ran_here.clone();
    t.on_cancel(move |why| {
        r.store(std::thread::current().id() == me, Ordering::SeqCst);
        l.lock().unwrap().push((99, why));
    });
    assert!(ran_here.load(Ordering::SeqCst));
    assert_eq!(
        log.lock().unwrap().last(),
        Some(&(99, Interrupted::DeadlineExceeded))
    );
}

#[test]
fn a_panicking_callback_does_not_unwind_into_cancel_or_stop_the_others() {
    let t = CancellationToken::new();
    let child = t.child();
    let ran = Arc::new(AtomicUsize::new(0));
    t.on_cancel(|_| panic!("callback bug"));
    let r = ran.clone();
    t.on_cancel(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    });
    assert!(t.cancel());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert!(child.is_cancelled());
}

#[test]
fn dropping_every_clone_of_a_live_token_drops_its_callbacks_uncalled() {
    let drops = DropCounter::new();
    let called = Arc::new(AtomicBool::new(false));
    let t = CancellationToken::new();
    let (tok, c) = (drops.token(), called.clone());
    t.on_cancel(move |_| {
        tok.keep();
        c.store(true, Ordering::SeqCst);
    });
    let clone = t.clone();
    drop(t);
    assert_eq!(drops.dropped(), 0);
    drop(clone);
    assert_eq!(drops.dropped(), 1);
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn many_threads_cancelling_and_registering_at_once_run_every_callback_exactly_once() {
    const THREADS: usize = 8;
    for round in 0..200 {
        let t = CancellationToken::new();
        let child = t.child();
        let runs = Arc::new(AtomicUsize::new(0));
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let register = |tok: &CancellationToken| {
            let (r, rs) = (runs.clone(), reasons.clone());
            tok.on_cancel(move |why| {
                r.fetch_add(1, Ordering::SeqCst);
                rs.lock().unwrap().push(why);
            });
        };
        for _ in 0..4 {
            register(&t);
            register(&child);
        }
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (t, child, barrier) = (t.clone(), child.clone(), barrier.clone());
                let (runs, reasons) = (runs.clone(), reasons.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match i % 4 {
                        0 => t.cancel(),
                        1 => t.cancel_with(Interrupted::DeadlineExceeded),
                        _ => {
                            // Register while others cancel: before or after the transition.
                            let tok = if i % 2 == 0 { &t } else { &child };
                            let (r, rs) = (runs.clone(), reasons.clone());
                            tok.on_cancel(move |why| {
                                r.fetch_add(1, Ordering::SeqCst);
                                rs.lock().unwrap().push(why);
                            });
                            let _ = child.child(); // children come and go meanwhile
                            false
                        }
                    }
                })
            })
            .collect();
        let winners = threads
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&won| won)
            .count();
        assert_eq!(winners, 1, "round {round}: exactly one cancel wins");
        let registered = 8 + THREADS / 2;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            registered,
            "round {round}: each callback runs exactly once"
        );
        let why = t.reason().unwrap();
        assert_eq!(child.reason(), Some(why));
        assert!(
            reasons.lock().unwrap().iter().all(|&r| r == why),
            "round {round}: every callback saw the winner's reason"
        );
    }
}

#[test]
fn dropped_children_deregister_so_cancelling_the_parent_runs_no_stale_callbacks() {
    let parent = CancellationToken::new();
    let freed = DropCounter::new();
    let stale_runs = Arc::new(AtomicUsize::new(0));
    let attach = |child: &CancellationToken| {
        let (tok, runs) = (freed.token(), stale_runs.clone());
        child.on_cancel(move |_| {
            tok.keep();
            runs.fetch_add(1, Ordering::SeqCst);
        });
    };
    // One at a time...
    for _ in 0..100_000 {
        let c = parent.child();
        attach(&c);
    }
    // ...and many alive at once, then dropped together.
    let batch: Vec<_> = (0..10_000).map(|_| parent.child()).collect();
    for c in &batch {
        attach(c);
    }
    drop(batch);
    // Each child's state (and its callback) was freed with the child: the parent kept nothing
    // that holds it.
    assert_eq!(freed.dropped(), 110_000);

    let kept = parent.child();
    let kept_ran = Arc::new(AtomicBool::new(false));
    let k = kept_ran.clone();
    kept.on_cancel(move |_| k.store(true, Ordering::SeqCst));
    parent.cancel();
    assert_eq!(stale_runs.load(Ordering::SeqCst), 0);
    assert!(kept.is_cancelled() && kept_ran.load(Ordering::SeqCst));
}

// ---- TaskContext -------------------------------------------------------------------------------

#[test]
fn plain_tasks_have_no_context_and_an_attempts_context_does_not_leak_to_the_next_task() {
    assert!(TaskContext::current().is_none());
    let p = pool(1);
    let h = retry(&p, RetryPolicy::never(), || {
        Ok::<_, &str>(TaskContext::current().map(|c| c.attempt()))
    });
    assert_eq!(h.join().unwrap(), Some(1));
    // Same (only) worker, next task: no context.
    let plain = p
        .post_task_with_result(TaskTraits::default(), || TaskContext::current().is_none())
        .unwrap();
    assert!(plain.join().unwrap());
}

#[test]
fn task_context_inside_retry_attempts_numbers_them_and_carries_the_handles_token() {
    let p = pool(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let first_token: Arc<Mutex<Option<CancellationToken>>> = Arc::default();
    let (tx_started, rx_started) = unbounded();
    let (s, ft) = (seen.clone(), first_token.clone());
    let policy = RetryPolicy::attempts(5).base_delay(Duration::ZERO);
    let h = retry(
        &p,
        policy,
        move || -> Result<(), Box<dyn Error + Send + Sync>> {
            let ctx = TaskContext::current().expect("attempts run inside a context");
            s.lock().unwrap().push(ctx.attempt());
            if ctx.attempt() == 1 {
                *ft.lock().unwrap() = Some(ctx.token().clone());
            }
            if ctx.attempt() < 3 {
                return Err("transient".into());
            }
            // Attempt 3 waits until the handle is cancelled, seeing it through its context.
            tx_started.send(()).unwrap();
            ctx.token().wait_timeout(TIMEOUT);
            ctx.check()?;
            Ok(())
        },
    );
    rx_started.recv_timeout(TIMEOUT).unwrap();
    let first = first_token.lock().unwrap().clone().unwrap();
    assert!(!first.is_cancelled());
    assert!(!h.cancel(), "running: only the token is cancelled");
    // Attempt 1's token is the one the handle cancels: every attempt shares it.
    assert!(first.is_cancelled());
    let e = must_return("the cancelled retry", move || h.join()).unwrap_err();
    assert!(e.is_cancelled(), "{e:?}");
    assert_eq!(e.attempts(), 3);
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
}

// ---- Semaphore ---------------------------------------------------------------------------------

#[test]
fn queued_callbacks_receive_permits_first_come_first_served() {
    let s = Semaphore::new(2);
    let (a, b) = (s.acquire(), s.acquire());
    let (tx, rx) = unbounded::<(usize, Permit)>();
    for i in 0..10 {
        let tx = tx.clone();
        s.acquire_then(move |p| tx.send((i, p)).unwrap());
    }
    assert!(rx.try_recv().is_err());
    assert!(s.try_acquire().is_none());
    drop(a);
    drop(b);
    let mut order = Vec::new();
    // Each released permit goes to the oldest queued callback.
    while order.len() < 10 {
        let (i, p) = rx.recv_timeout(TIMEOUT).unwrap();
        order.push(i);
        // Two permits circulate; while callbacks are still queued, none is ever free.
        if i < 8 {
            assert_eq!(s.available(), 0, "handed over, never also returned");
        }
        drop(p);
    }
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    assert_eq!(s.available(), 2);
}

// A release that both added a permit and woke the waiter would let a third acquirer in while
// the woken waiter holds the permit. With real threads: T1 releases on its own thread,
// T2 (a queued callback) receives the permit, T3 on a third thread must not get in until T2
// releases.
#[test]
fn a_third_acquirer_after_a_hand_off_does_not_get_in() {
    for _ in 0..50 {
        let s = Semaphore::new(1);
        let inside = Arc::new(AtomicUsize::new(0));
        let t1_permit = s.acquire();
        inside.fetch_add(1, Ordering::SeqCst);

        let (to_t2, t2_rx) = unbounded::<Permit>();
        s.acquire_then(move |p| to_t2.send(p).unwrap());
        let t2 = {
            let inside = inside.clone();
            std::thread::spawn(move || {
                let p = t2_rx.recv_timeout(TIMEOUT).unwrap();
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                (p, n)
            })
        };
        let t1 = {
            let inside = inside.clone();
            std::thread::spawn(move || {
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(t1_permit);
            })
        };
        t1.join().unwrap();
        let (t2_permit, n_when_t2_entered) = t2.join().unwrap();
        assert_eq!(n_when_t2_entered, 1);

        let (checked_tx, checked_rx) = unbounded();
        let t3 = {
            let (s, inside) = (s.clone(), inside.clone());
            std::thread::spawn(move || {
                // T2 holds the permit throughout these two attempts.
                let stale = s.try_acquire().is_some();
                let stale_timed = s.acquire_timeout(Duration::from_millis(1)).is_some();
                checked_tx.send((stale, stale_timed)).unwrap();
                let p = s.acquire();
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(p);
                n
            })
        };
        let (stale, stale_timed) = checked_rx.recv_timeout(TIMEOUT).unwrap();
        assert!(!stale, "T3 found a stale permit (try_acquire)");
        assert!(!stale_timed, "T3 found a stale permit (acquire_timeout)");
        assert_eq!(s.available(), 0);
        inside.fetch_sub(1, Ordering::SeqCst);
        drop(t2_permit);
        assert_eq!(
            must_return("T3", move || t3.join().unwrap()),
            1,
            "two holders"
        );
        assert_eq!(s.available(), 1);
    }
}

#[test]
fn acquire_timeout_gives_up_while_held_and_succeeds_once_released() {
    let s = Semaphore::new(1);
    let held = s.acquire();
    assert!(s.acquire_timeout(Duration::from_millis(1)).is_none());
    assert!(s.acquire_timeout(Duration::ZERO).is_none());
    let s2 = s.clone();
    let waiter = std::thread::spawn(move || s2.acquire_timeout(TIMEOUT).is_some());
    std::thread::sleep(Duration::from_millis(2));
    drop(held);
    assert!(must_return("acquire_timeout", move || waiter
        .join()
        .unwrap()));
    assert_eq!(s.available(), 1);
    assert!(s.acquire_timeout(Duration::ZERO).is_some());
}

#[test]
fn a_blocking_acquirer_is_woken_when_a_hand_off_chain_ends_with_a_free_permit() {
    let s = Semaphore::new(1);
    let held = s.acquire();
    let s2 = s.clone();
    let blocked = std::thread::spawn(move || {
        drop(s2.acquire());
    });
    std::thread::sleep(Duration::from_millis(2));
    // Callbacks that give their permit straight back: the chain ends with the permit free.
    let served = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let served = served.clone();
        s.acquire_then(move |p| {
            served.fetch_add(1, Ordering::SeqCst);
            drop(p);
        });
    }
    drop(held);
    must_return("the blocking acquirer", move || blocked.join().unwrap());
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(s.available(), 1);
}

// A queued callback that cannot use its permit drops it at once (an executor whose post is
// refused at shutdown). The hand-off used to recurse through the queue (Permit::drop → callback
// → Permit::drop → ...) and overflowed the stack; on a 256 KiB stack, 100,000 such callbacks
// would abort the test binary.
#[test]
fn handing_permits_to_many_queued_callbacks_that_drop_them_does_not_recurse() {
    let s = Semaphore::new(1);
    let held = s.acquire();
    let served = Arc::new(AtomicUsize::new(0));
    for _ in 0..100_000 {
        let served = served.clone();
        s.acquire_then(move |p| {
            served.fetch_add(1, Ordering::Relaxed);
            drop(p);
        });
    }
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || drop(held))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 100_000);
    assert_eq!(s.available(), 1);
}

#[test]
fn a_panicking_queued_callback_is_contained_and_its_permit_moves_on() {
    let s = Semaphore::new(1);
    let held = s.acquire();
    s.acquire_then(|_p| panic!("callback bug"));
    let (tx, rx) = unbounded();
    s.acquire_then(move |p| tx.send(p).unwrap());
    drop(held); // does not unwind here
    let p = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(s.available(), 0);
    drop(p);
    assert_eq!(s.available(), 1);
}

#[test]
#[should_panic(expected = "at least one permit")]
fn a_semaphore_without_permits_is_refused() {
    let _ = Semaphore::new(0);
}

#[test]
fn blocking_acquire_and_acquire_then_mixed_never_exceed_capacity_nor_leak_permits() {
    const CAP: usize = 3;
    const THREADS: usize = 8;
    const ROUNDS: usize = 1500;
    let p = pool(2);
    let s = Semaphore::new(CAP);
    let holders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let enter = {
        let (holders, max_seen) = (holders.clone(), max_seen.clone());
        move || {
            let n = holders.fetch_add(1, Ordering::SeqCst) + 1;
            max_seen.fetch_max(n, Ordering::SeqCst);
            assert!(n <= CAP, "{n} holders of a {CAP}-permit semaphore");
        }
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, p, holders, done) = (s.clone(), p.clone(), holders.clone(), done.clone());
            let enter = enter.clone();
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    match (t + i) % 3 {
                        0 => {
                            let permit = s.acquire();
                            enter();
                            std::thread::yield_now();
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        1 => {
                            if let Some(permit) = s.acquire_timeout(Duration::from_micros(50)) {
                                enter();
                                holders.fetch_sub(1, Ordering::SeqCst);
                                drop(permit);
                            }
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {
                            // Non-blocking: the permit travels into a pool task.
                            let (p, holders, done) = (p.clone(), holders.clone(), done.clone());
                            let enter = enter.clone();
                            s.acquire_then(move |permit| {
                                p.post_task(TaskTraits::default(), move || {
                                    enter();
                                    holders.fetch_sub(1, Ordering::SeqCst);
                                    drop(permit);
                                    done.fetch_add(1, Ordering::SeqCst);
                                })
                                .unwrap();
                            });
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_until("every acquisition finished", || {
        done.load(Ordering::SeqCst) == THREADS * ROUNDS
    });
    assert!(max_seen.load(Ordering::SeqCst) <= CAP);
    assert_eq!(holders.load(Ordering::SeqCst), 0);
    assert_eq!(s.available(), CAP, "a permit leaked or was duplicated");
    assert_eq!(s.capacity(), CAP);
}
