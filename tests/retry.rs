//! Retries: `retry` and `RetryPolicy` on mock time (attempt 1 at once, attempt 2 exactly
//! `base_delay` later, growth by `factor`, the `max_delay` cap, jitter bounds), the final error
//! (original cause kept, attempt count), what is never retried (panics,
//! `Interrupted`), cancellation during a backoff, no worker held while backing off, sequences,
//! and shutdown during a backoff.
//!
//! Nothing asserts on real time: mock time is exact, and real-time tests only use timeouts to
//! turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::unbounded;
use support::{must_return, wait_until, Blocker, Counter, TIMEOUT};
use taskrunner::cancel::{Interrupted, TaskContext};
use taskrunner::retry::{retry, RetryPolicy};
use taskrunner::PostTask;
use taskrunner::{TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

#[track_caller]
fn join<T: Send + 'static>(h: TaskHandle<T>) -> Result<T, TaskError> {
    must_return("joining a retry handle", move || h.join())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy(max_attempts: u32, base: Duration, factor: f64, max: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: base,
        factor,
        max_delay: max,
        jitter: 0.0,
    }
}

/// An error that says which attempt produced it.
#[derive(Debug, PartialEq)]
struct Flaky(u32);

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flaky attempt {}", self.0)
    }
}

impl Error for Flaky {}

// ---- the policy's arithmetic -------------------------------------------------------------------

#[test]
fn delay_after_grows_by_factor_and_is_capped_by_max_delay() {
    let p = policy(10, ms(100), 3.0, ms(1000));
    let got: Vec<_> = (1..=5).map(|n| p.delay_after(n)).collect();
    assert_eq!(got, vec![ms(100), ms(300), ms(900), ms(1000), ms(1000)]);
    // Constant backoff.
    let p = policy(10, ms(40), 1.0, ms(1000));
    assert!((1..=6).all(|n| p.delay_after(n) == ms(40)));
    // Attempt 0 is treated like attempt 1; absurd attempt numbers saturate at the cap.
    let p = policy(10, ms(100), 2.0, Duration::from_secs(30));
    assert_eq!(p.delay_after(0), ms(100));
    assert_eq!(p.delay_after(u32::MAX), Duration::from_secs(30));
    // A base above the cap is capped; a zero base stays zero.
    assert_eq!(policy(3, ms(500), 2.0, ms(200)).delay_after(1), ms(200));
    assert_eq!(
        policy(3, Duration::ZERO, 2.0, ms(200)).delay_after(4),
        Duration::ZERO
    );
    // A nonsensical factor means constant, never a panic.
    for bad in [f64::NAN, f64::INFINITY, -2.0, 0.0] {
        assert_eq!(
            policy(3, ms(10), bad, ms(1000)).delay_after(3),
            ms(10),
            "{bad}"
        );
    }
}

#[test]
fn jitter_stays_within_its_bounds_and_never_exceeds_max_delay() {
    let p = policy(10, ms(100), 2.0, ms(1000)).jitter(0.25);
    assert_eq!(p.jitter, 0.25);
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..5000 {
        let d = p.backoff(2); // 200 ms ± 25 %
        assert!(d >= ms(150) && d <= ms(250), "{d:?}");
        distinct.insert(d);
    }
    assert!(distinct.len() > 100, "jitter spreads the waits");
    // At the cap, jitter only shortens.
    for _ in 0..2000 {
        let d = p.backoff(9);
        assert!(d >= ms(750) && d <= ms(1000), "{d:?}");
    }
    // Full jitter: [0, 2d], still capped.
    let p = policy(10, ms(100), 1.0, ms(150)).jitter(1.0);
    for _ in 0..2000 {
        assert!(p.backoff(1) <= ms(150));
    }
    // The builder clamps the fraction; zero jitter is exact.
    assert_eq!(RetryPolicy::default().jitter(7.0).jitter, 1.0);
    assert_eq!(RetryPolicy::default().jitter(-1.0).jitter, 0.0);
    assert_eq!(RetryPolicy::default().backoff(2), ms(200));
    // A NaN written straight into the field does not panic.
    let p = RetryPolicy {
        jitter: f64::NAN,
        ..RetryPolicy::default()
    };
    let _ = p.backoff(1);
}

#[test]
fn policy_constructors_and_builders() {
    let d = RetryPolicy::default();
    assert_eq!(
        (
            d.max_attempts,
            d.base_delay,
            d.factor,
            d.max_delay,
            d.jitter
        ),
        (3, ms(100), 2.0, Duration::from_secs(30), 0.0)
    );
    assert_eq!(RetryPolicy::never().max_attempts, 1);
    let p = RetryPolicy::attempts(4)
        .base_delay(ms(7))
        .factor(1.5)
        .max_delay(ms(9));
    assert_eq!(p, policy(4, ms(7), 1.5, ms(9)));
}

// ---- timing on mock time -----------------------------------------------------------------------

#[cfg(feature = "test-util")]
mod mock_time {
    use super::*;
    use taskrunner::testing::TestEnvironment;
    use taskrunner::time::Clock;

    /// A retry whose attempts record the mock time they ran at (relative to the start) and
    /// fail until `succeed_at` (never if 0).
    fn timed_retry(
        env: &TestEnvironment,
        p: RetryPolicy,
        succeed_at: u32,
    ) -> (TaskHandle<u32>, Arc<Mutex<Vec<Duration>>>) {
        let times = Arc::new(Mutex::new(Vec::new()));
        let (t, clock, t0) = (times.clone(), env.clock().clone(), env.now());
        let h = retry(env.pool(), p, move || {
            let n = TaskContext::current().unwrap().attempt();
            t.lock().unwrap().push(clock.now() - t0);
            if n == succeed_at {
                Ok(n)
            } else {
                Err(Flaky(n))
            }
        });
        (h, times)
    }

    #[test]
    fn attempt_one_runs_at_once_and_attempt_two_exactly_base_delay_later() {
        let env = TestEnvironment::new();
        let (h, times) = timed_retry(&env, policy(3, ms(100), 2.0, ms(10_000)), 0);
        env.run_until_idle();
        assert_eq!(*times.lock().unwrap(), vec![Duration::ZERO]);
        env.fast_forward_by(ms(100) - Duration::from_nanos(1));
        assert_eq!(times.lock().unwrap().len(), 1, "not a nanosecond early");
        env.fast_forward_by(Duration::from_nanos(1));
        assert_eq!(*times.lock().unwrap(), vec![Duration::ZERO, ms(100)]);
        env.fast_forward_by(ms(200) - Duration::from_nanos(1));
        assert_eq!(times.lock().unwrap().len(), 2);
        assert_eq!(h.state(), TaskState::Running);
        env.fast_forward_by(Duration::from_nanos(1));
        assert_eq!(
            *times.lock().unwrap(),
            vec![Duration::ZERO, ms(100), ms(300)]
        );
        assert!(h.is_finished());
        let e = h.join().unwrap_err();
        assert_eq!(e.attempts(), 3);
        assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(3)));
        assert_eq!(env.pending_task_count(), 0);
    }

    #[test]
    fn waits_grow_by_factor_up_to_max_delay() {
        let env = TestEnvironment::new();
        let (h, times) = timed_retry(&env, policy(6, ms(100), 3.0, ms(500)), 0);
        env.fast_forward_until_no_tasks_remain();
        // Waits 100, 300, 500 (900 capped), 500, 500.
        let want: Vec<_> = [0, 100, 400, 900, 1400, 1900].map(ms).to_vec();
        assert_eq!(*times.lock().unwrap(), want);
        assert_eq!(h.join().unwrap_err().attempts(), 6);
    }

    #[test]
    fn a_success_ends_the_retries_with_its_value() {
        let env = TestEnvironment::new();
        let (h, times) = timed_retry(&env, policy(5, ms(10), 2.0, ms(1000)), 3);
        env.fast_forward_until_no_tasks_remain();
        assert_eq!(*times.lock().unwrap(), [0, 10, 30].map(ms).to_vec());
        assert_eq!(h.state(), TaskState::Completed);
        assert!(h.duration().is_some());
        assert_eq!(h.join().unwrap(), 3);
    }

    #[test]
    fn jittered_waits_on_mock_time_stay_within_bounds() {
        for _ in 0..20 {
            let env = TestEnvironment::new();
            let p = policy(3, ms(100), 2.0, ms(10_000)).jitter(0.5);
            let (h, times) = timed_retry(&env, p, 0);
            env.fast_forward_until_no_tasks_remain();
            let t = times.lock().unwrap().clone();
            assert_eq!(t.len(), 3);
            let (w1, w2) = (t[1] - t[0], t[2] - t[1]);
            assert!(w1 >= ms(50) && w1 <= ms(150), "{w1:?}");
            assert!(w2 >= ms(100) && w2 <= ms(300), "{w2:?}");
            assert!(h.is_finished());
        }
    }

    #[test]
    fn cancel_during_a_backoff_resolves_at_once_and_stops_further_attempts() {
        let env = TestEnvironment::new();
        let (h, times) = timed_retry(&env, policy(5, ms(100), 2.0, ms(10_000)), 0);
        env.run_until_idle();
        assert_eq!(times.lock().unwrap().len(), 1);
        assert_eq!(h.state(), TaskState::Running);
        // Running (between attempts): `cancel` only signals, and the retry engine stops.
        assert!(!h.cancel());
        // Resolved now, without moving time.
        assert!(h.is_finished());
        assert_eq!(h.state(), TaskState::Cancelled);
        env.fast_forward_until_no_tasks_remain();
        assert_eq!(
            times.lock().unwrap().len(),
            1,
            "no attempt after the cancel"
        );
        let e = h.join().unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
        assert_eq!(e.attempts(), 1, "one attempt was made");
    }

    #[test]
    fn the_backoff_holds_no_worker() {
        let env = TestEnvironment::builder().workers(1).build();
        let (h, times) = timed_retry(
            &env,
            policy(2, Duration::from_secs(60), 2.0, ms(100_000)),
            0,
        );
        env.run_until_idle();
        let other = env
            .pool()
            .post_task_with_result(TaskTraits::default(), || "ran during the backoff")
            .unwrap();
        env.run_until_idle();
        assert!(other.is_finished());
        assert_eq!(other.join().unwrap(), "ran during the backoff");
        assert_eq!(times.lock().unwrap().len(), 1);
        env.fast_forward_by(Duration::from_secs(60));
        assert_eq!(h.join().unwrap_err().attempts(), 2);
    }

    #[test]
    fn dropping_the_environment_during_a_backoff_resolves_with_the_last_error() {
        let env = TestEnvironment::new();
        let (h, times) = timed_retry(&env, policy(3, Duration::from_secs(5), 2.0, ms(100_000)), 0);
        env.run_until_idle();
        assert_eq!(times.lock().unwrap().len(), 1);
        drop(env); // shuts the pool down: the pending backoff is dropped
        let e = join(h).unwrap_err();
        assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(1)));
        assert_eq!(e.attempts(), 1);
    }
}

// ---- the final error ------------------------------------------------------------------------

// The final error is the last attempt's own error (downcastable), not a wrapper hiding it.
#[test]
fn the_final_error_keeps_the_original_cause_and_counts_every_attempt() {
    let p = pool(2);
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(
        &p,
        RetryPolicy::attempts(4).base_delay(Duration::ZERO),
        move || {
            r.incr();
            Err::<(), _>(Flaky(TaskContext::current().unwrap().attempt()))
        },
    );
    let e = join(h).unwrap_err();
    assert!(e.is_failed());
    assert_eq!(e.attempts(), 4);
    assert_eq!(runs.get(), 4);
    // The last attempt's own error, downcastable, and the error chain's source.
    assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(4)));
    assert_eq!(e.source().unwrap().to_string(), "flaky attempt 4");
    assert_eq!(
        e.to_string(),
        "task failed: flaky attempt 4 (after 4 attempts)"
    );
}

#[test]
fn zero_max_attempts_means_one_attempt() {
    let p = pool(1);
    let runs = Counter::new();
    let r = runs.clone();
    let policy = RetryPolicy::attempts(0).base_delay(Duration::ZERO);
    let h = retry(&p, policy, move || {
        r.incr();
        Err::<(), _>("no")
    });
    assert_eq!(join(h).unwrap_err().attempts(), 1);
    assert_eq!(runs.get(), 1);
}

#[test]
fn panics_are_not_retried() {
    let p = pool(2);
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(
        &p,
        RetryPolicy::attempts(5).base_delay(Duration::ZERO),
        move || {
            r.incr();
            panic!("a bug, not a transient failure");
            #[allow(unreachable_code)]
            Ok::<_, &str>(())
        },
    );
    let e = join(h).unwrap_err();
    assert!(e.is_panic());
    assert_eq!(e.panic_message(), Some("a bug, not a transient failure"));
    assert_eq!(e.attempts(), 1);
    // The pool and its worker survive; nothing else runs.
    join(
        p.post_task_with_result(TaskTraits::default(), || ())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(runs.get(), 1);
}

#[test]
fn interrupted_errors_are_not_retried() {
    let p = pool(2);
    for why in [Interrupted::Cancelled, Interrupted::DeadlineExceeded] {
        let runs = Counter::new();
        let r = runs.clone();
        let h = retry(
            &p,
            RetryPolicy::attempts(5).base_delay(Duration::ZERO),
            move || {
                r.incr();
                Err::<(), _>(why)
            },
        );
        let e = join(h).unwrap_err();
        assert_eq!(e.is_cancelled(), why == Interrupted::Cancelled);
        assert_eq!(
            e.is_deadline_exceeded(),
            why == Interrupted::DeadlineExceeded
        );
        assert_eq!(e.attempts(), 1);
        assert_eq!(runs.get(), 1);
    }
}

#[test]
fn an_attempt_that_cancels_its_own_token_is_not_retried() {
    let p = pool(1);
    let runs = Counter::new();
    let r = runs.clone();
    // It returns an ordinary failure after cancelling: the failure is the result (no deadlock
    // from cancelling inside the attempt, no retry).
    let h = retry(
        &p,
        RetryPolicy::attempts(5).base_delay(Duration::ZERO),
        move || {
            r.incr();
            let ctx = TaskContext::current().unwrap();
            ctx.token().cancel();
            Err::<(), _>(Flaky(ctx.attempt()))
        },
    );
    let e = join(h).unwrap_err();
    assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(1)));
    assert_eq!(runs.get(), 1);
}

// ---- cancellation ------------------------------------------------------------------------------

#[test]
fn cancel_before_the_first_attempt_means_it_never_runs() {
    let p = pool(1);
    let blocker = Blocker::new();
    p.post_task(TaskTraits::default(), blocker.task()).unwrap();
    blocker.wait_started();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = retry(&p, RetryPolicy::attempts(3), move || {
        r.store(true, Ordering::SeqCst);
        Ok::<_, &str>(())
    });
    assert_eq!(h.state(), TaskState::Pending);
    assert!(h.cancel());
    assert!(h.is_finished());
    blocker.release();
    join(
        p.post_task_with_result(TaskTraits::default(), || ())
            .unwrap(),
    )
    .unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert!(join(h).unwrap_err().is_cancelled());
}

#[test]
fn cancel_during_a_real_time_backoff_resolves_without_waiting_for_it() {
    let p = pool(1);
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(
        &p,
        RetryPolicy::attempts(3).base_delay(Duration::from_secs(3600)),
        move || {
            r.incr();
            Err::<(), _>(Flaky(1))
        },
    );
    runs.wait_for(1);
    wait_until("the backoff is pending", || p.pending_delayed_tasks() == 1);
    assert!(!h.cancel());
    // Not an hour later: at once.
    let e = join(h).unwrap_err();
    assert!(e.is_cancelled());
    assert_eq!(runs.get(), 1);
}

#[test]
fn cancel_during_an_attempt_lets_the_attempt_decide_and_stops_the_rest() {
    let p = pool(2);
    let (started_tx, started_rx) = unbounded();
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(
        &p,
        RetryPolicy::attempts(5).base_delay(Duration::ZERO),
        move || {
            r.incr();
            let ctx = TaskContext::current().unwrap();
            started_tx.send(()).unwrap();
            ctx.token().wait_timeout(TIMEOUT);
            // Finishes its work anyway: a produced value is kept.
            Ok::<_, &str>("finished regardless")
        },
    );
    started_rx.recv_timeout(TIMEOUT).unwrap();
    assert!(!h.cancel());
    assert_eq!(join(h).unwrap(), "finished regardless");
    assert_eq!(runs.get(), 1);
}

// ---- workers, sequences, shutdown --------------------------------------------------------------

#[test]
fn a_backoff_holds_no_worker_on_a_real_one_worker_pool() {
    let p = pool(1);
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(
        &p,
        RetryPolicy::attempts(2).base_delay(Duration::from_secs(3600)),
        move || {
            r.incr();
            Err::<(), _>("later")
        },
    );
    runs.wait_for(1);
    // An hour-long backoff is pending; the only worker is free.
    let other = p
        .post_task_with_result(TaskTraits::default(), || 7)
        .unwrap();
    assert_eq!(join(other).unwrap(), 7);
    assert_eq!(h.state(), TaskState::Running);
    h.cancel();
}

#[test]
fn attempts_on_a_sequence_stay_on_it_in_order_with_its_other_tasks() {
    let p = pool(2);
    let seq = p.create_sequenced_task_runner(TaskTraits::default());
    let inside = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (s, i, l) = (seq.clone(), inside.clone(), log.clone());
    let h = retry(
        &seq,
        RetryPolicy::attempts(4).base_delay(ms(1)),
        move || {
            assert_eq!(i.fetch_add(1, Ordering::SeqCst), 0, "overlapping tasks");
            let n = TaskContext::current().unwrap().attempt();
            l.lock()
                .unwrap()
                .push((n, s.runs_tasks_in_current_sequence()));
            i.fetch_sub(1, Ordering::SeqCst);
            if n < 4 {
                Err(Flaky(n))
            } else {
                Ok(n)
            }
        },
    );
    // Other tasks of the sequence interleave with the attempts, never concurrently.
    for _ in 0..50 {
        let i = inside.clone();
        seq.post_task(move || {
            assert_eq!(i.fetch_add(1, Ordering::SeqCst), 0, "overlapping tasks");
            i.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(join(h).unwrap(), 4);
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
}

#[test]
fn shutdown_during_a_backoff_resolves_with_the_last_error_and_never_hangs() {
    let p = pool(1);
    let seq = p.create_sequenced_task_runner(TaskTraits::default());
    let runs = Counter::new();
    let (r1, r2) = (runs.clone(), runs.clone());
    let on_pool = retry(
        &p,
        RetryPolicy::attempts(3).base_delay(Duration::from_secs(3600)),
        move || {
            r1.incr();
            Err::<(), _>(Flaky(1))
        },
    );
    let on_seq = retry(
        &seq,
        RetryPolicy::attempts(3).base_delay(Duration::from_secs(3600)),
        move || {
            r2.incr();
            Err::<(), _>(Flaky(1))
        },
    );
    runs.wait_for(2);
    // Both are in their backoff (the delayed relaunch is pending).
    wait_until("both backoffs are pending", || {
        p.pending_delayed_tasks() == 2
    });
    p.shutdown();
    for h in [on_pool, on_seq] {
        let e = join(h).unwrap_err();
        assert!(e.is_failed(), "{e:?}");
        assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(1)));
        assert_eq!(e.attempts(), 1);
    }
    assert_eq!(runs.get(), 2);
}

#[test]
fn a_retry_on_a_shut_down_runner_resolves_not_run_without_running() {
    let p = pool(1);
    p.shutdown();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = retry(&p, RetryPolicy::attempts(3), move || {
        r.store(true, Ordering::SeqCst);
        Ok::<_, &str>(())
    });
    assert!(h.is_finished());
    assert!(join(h).unwrap_err().is_not_run());
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_retry_handle_chains_with_then() {
    let p = pool(2);
    let runs = Counter::new();
    let r = runs.clone();
    let h = retry(&p, RetryPolicy::attempts(3).base_delay(ms(1)), move || {
        r.incr();
        if TaskContext::current().unwrap().attempt() < 2 {
            Err("once")
        } else {
            Ok(20)
        }
    });
    let next = h.then(&p, |r| r.unwrap() + 1);
    assert_eq!(join(next).unwrap(), 21);
    assert_eq!(runs.get(), 2);
}

#[test]
fn many_concurrent_retries_each_end_with_their_own_outcome() {
    let p = pool(2);
    let handles: Vec<_> = (0..300u32)
        .map(|i| {
            let succeed_at = i % 4; // 0: never
            let h = retry(
                &p,
                RetryPolicy::attempts(3).base_delay(Duration::ZERO),
                move || {
                    let n = TaskContext::current().unwrap().attempt();
                    if n == succeed_at {
                        Ok(i)
                    } else {
                        Err(Flaky(n))
                    }
                },
            );
            (i, h)
        })
        .collect();
    for (i, h) in handles {
        match (i % 4, join(h)) {
            (0, Err(e)) => {
                assert_eq!(e.attempts(), 3);
                assert_eq!(e.downcast_ref::<Flaky>(), Some(&Flaky(3)));
            }
            (_, Ok(v)) => assert_eq!(v, i),
            (k, r) => panic!("task {i} (succeeds at {k}): {r:?}"),
        }
    }
}
