//! The executor under the mock clock (issue 5, parts 4-5): retry backoff timing, no worker or
//! slot held during backoff, deadlines that pass before a task starts, a map's total timeout.
//! Time moves only when the test moves it.
#![cfg(feature = "test-util")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::cancel::{Interrupted, TaskContext};
use taskrunner::executor::{Executor, SubmitOptions};
use taskrunner::retry::RetryPolicy;
use taskrunner::testing::TestEnvironment;
use taskrunner::time::Clock;
use taskrunner::TaskState;

const TIMEOUT: Duration = Duration::from_secs(30);
const MS: Duration = Duration::from_millis(1);

fn exec(env: &TestEnvironment, workers: usize) -> Executor {
    Executor::builder()
        .pool(env.pool())
        .max_workers(workers)
        .build()
        .unwrap()
}

#[derive(Debug)]
struct Flaky(u32);

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flaky failure #{}", self.0)
    }
}

impl std::error::Error for Flaky {}

#[test]
fn retry_backoff_follows_the_mock_clock_and_the_final_error_keeps_its_cause() {
    // The final error keeps the original cause (downcastable) and the attempt count.
    let env = TestEnvironment::new();
    let exec = exec(&env, 2);
    let (t0, clock) = (env.now(), env.clock().clone());
    let at = Arc::new(Mutex::new(Vec::new()));
    let a = at.clone();
    let policy = RetryPolicy::attempts(3)
        .base_delay(100 * MS)
        .factor(2.0)
        .jitter(0.0);
    let h = exec
        .submit_with_retry(policy, move || {
            let mut at = a.lock().unwrap();
            at.push(clock.now() - t0);
            Err::<(), _>(Flaky(at.len() as u32))
        })
        .unwrap();
    env.run_until_idle();
    assert_eq!(*at.lock().unwrap(), vec![Duration::ZERO]);
    env.fast_forward_by(99 * MS);
    assert_eq!(at.lock().unwrap().len(), 1, "no attempt before base_delay");
    env.fast_forward_by(MS);
    assert_eq!(*at.lock().unwrap(), vec![Duration::ZERO, 100 * MS]);
    env.fast_forward_by(199 * MS);
    assert_eq!(at.lock().unwrap().len(), 2, "the second wait is doubled");
    env.fast_forward_by(MS);
    assert_eq!(
        *at.lock().unwrap(),
        vec![Duration::ZERO, 100 * MS, 300 * MS]
    );
    assert_eq!(h.state(), TaskState::Failed);
    let err = h.join().unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.downcast_ref::<Flaky>().unwrap().0, 3, "the last cause");
    assert!(err.to_string().contains("flaky failure #3"), "{err}");
    assert_eq!(env.pending_task_count(), 0, "no attempt after the last");
}

#[test]
fn no_worker_and_no_slot_is_held_during_backoff() {
    // A task in retry backoff holds no worker while it waits.
    let env = TestEnvironment::builder().workers(1).build();
    let exec = exec(&env, 1);
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let retried = exec
        .submit_with_retry(
            RetryPolicy::attempts(2).base_delay(Duration::from_secs(1)),
            move || {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("first attempt fails")
                } else {
                    Ok("second attempt")
                }
            },
        )
        .unwrap();
    env.run_until_idle();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // In the backoff: the only worker and the only slot are free for other work.
    assert_eq!(exec.running(), 0);
    let other = exec.submit(|| "ran during the backoff").unwrap();
    env.run_until_idle();
    assert!(other.is_finished());
    assert!(!retried.is_finished());
    assert_eq!(other.join().unwrap(), "ran during the backoff");
    env.fast_forward_by(Duration::from_secs(1));
    assert_eq!(retried.join().unwrap(), "second attempt");
}

#[test]
fn cancelling_during_backoff_stops_further_attempts() {
    let env = TestEnvironment::new();
    let exec = exec(&env, 2);
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let h = exec
        .submit_with_retry(
            RetryPolicy::attempts(5).base_delay(Duration::from_secs(1)),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("down")
            },
        )
        .unwrap();
    env.run_until_idle();
    assert!(!h.cancel(), "started: only its token is cancelled");
    env.fast_forward_by(Duration::from_secs(60));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no attempt after the cancel"
    );
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn a_deadline_that_passes_before_the_task_starts_means_it_never_runs() {
    let env = TestEnvironment::new();
    let exec = exec(&env, 1);
    let (release, gate) = channel::<()>();
    let (started_tx, started) = channel();
    let busy = exec
        .submit(move || {
            started_tx.send(()).unwrap();
            gate.recv_timeout(TIMEOUT).unwrap();
        })
        .unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    let late = exec
        .submit_with(SubmitOptions::new().timeout(10 * MS), move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Interrupted>(())
        })
        .unwrap();
    env.advance_clock(10 * MS); // the deadline passes while it waits for the slot
    release.send(()).unwrap();
    busy.join().unwrap();
    let err = late.join().unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    assert!(!err.is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the closure never ran");
    env.run_until_idle();

    // Before the deadline it runs normally.
    let h = exec
        .submit_with(SubmitOptions::new().timeout(10 * MS), |ctx| {
            Ok::<_, Interrupted>(ctx.is_cancelled())
        })
        .unwrap();
    env.run_until_idle();
    assert!(!h.join().unwrap());
}

#[test]
fn a_maps_total_timeout_reports_unfinished_items_and_keeps_finished_ones() {
    let env = TestEnvironment::new();
    let exec = exec(&env, 2);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (ran_tx, ran) = channel();
    let ran_tx = Mutex::new(ran_tx);
    let c = calls.clone();
    // Item 0 succeeds at once; item 1 fails and would retry after 10 s, past the 1 s total.
    let opts = SubmitOptions::new()
        .retry(RetryPolicy::attempts(2).base_delay(Duration::from_secs(10)))
        .timeout(Duration::from_secs(1));
    let out = std::thread::scope(|s| {
        let mapper = s.spawn(|| {
            exec.map_with(vec![0u32, 1], opts, move |x| {
                let attempt = TaskContext::current().unwrap().attempt();
                c.lock().unwrap().push((x, attempt));
                ran_tx.lock().unwrap().send(()).unwrap();
                if x == 0 {
                    Ok(x)
                } else {
                    Err("unavailable")
                }
            })
        });
        ran.recv_timeout(TIMEOUT).unwrap();
        ran.recv_timeout(TIMEOUT).unwrap();
        env.run_until_idle(); // item 1 is now in its backoff
        env.fast_forward_by(Duration::from_secs(1));
        mapper.join().unwrap()
    });
    assert_eq!(*out[0].as_ref().unwrap(), 0);
    assert!(out[1].as_ref().unwrap_err().is_deadline_exceeded());
    env.fast_forward_by(Duration::from_secs(20));
    let mut calls = calls.lock().unwrap().clone();
    calls.sort_unstable();
    assert_eq!(
        calls,
        vec![(0, 1), (1, 1)],
        "no attempt after the total timeout"
    );
    assert!(exec.wait_idle());
}

#[test]
fn map_with_retry_keeps_each_items_last_error_and_attempts() {
    let env = TestEnvironment::new();
    let exec = exec(&env, 2);
    let policy = RetryPolicy::attempts(3).base_delay(50 * MS);
    let out = std::thread::scope(|s| {
        let mapper = s.spawn(|| {
            exec.map_with_retry(vec![1u32, 5], policy, |x| {
                let attempt = TaskContext::current().unwrap().attempt();
                if attempt >= x {
                    Ok(x)
                } else {
                    Err(Flaky(attempt))
                }
            })
        });
        while !mapper.is_finished() {
            env.fast_forward_by(50 * MS);
        }
        mapper.join().unwrap()
    });
    assert_eq!(*out[0].as_ref().unwrap(), 1);
    let err = out[1].as_ref().unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.downcast_ref::<Flaky>().unwrap().0, 3);
}
