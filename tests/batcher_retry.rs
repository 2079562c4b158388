//! Per-request retry in the batcher (`BatcherBuilder::build_with_retry`): a request the
//! dispatcher hands back joins a later batch after the policy's wait, up to the policy's
//! attempts; its neighbours are unaffected; a request's own failure stays its own; shutdown
//! never leaves a request waiting for its next attempt pending. Timeouts only turn a hang into
//! a failure; the one timing assertion is a lower bound (a retry never comes before its wait).
#![cfg(feature = "batch")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::TIMEOUT;
use taskrunner::batch::{Answer, BatchError, Batcher};
use taskrunner::retry::RetryPolicy;
use taskrunner::{TaskError, TaskHandle, ThreadPool};

fn pool() -> ThreadPool {
    ThreadPool::builder().max_workers(2).build().unwrap()
}

#[track_caller]
fn join<T: Send + 'static>(mut h: TaskHandle<T>) -> Result<T, TaskError> {
    h.join_timeout(TIMEOUT)
        .expect("the handle did not resolve within the timeout")
}

/// Every dispatcher call: its requests and when it started.
type Calls = Arc<Mutex<Vec<(Vec<u32>, Instant)>>>;

/// A batcher closed by size or `flush()` only, whose dispatcher sends request `id` back the
/// first `throttled[id]` times it sees it, and fails `id` for good if it is 99.
fn throttling(
    pool: &ThreadPool,
    policy: RetryPolicy,
    throttled: HashMap<u32, usize>,
) -> (Batcher<u32, u32>, Calls) {
    let calls: Calls = Arc::default();
    let seen = Arc::new(Mutex::new(HashMap::<u32, usize>::new()));
    let c = calls.clone();
    let b = Batcher::builder()
        .pool(pool)
        .flush_when_idle(false)
        .max_wait(Duration::from_millis(1))
        .build_with_retry(policy, move |ids: Vec<u32>| {
            c.lock().unwrap().push((ids.clone(), Instant::now()));
            let mut seen = seen.lock().unwrap();
            Ok::<_, String>(
                ids.into_iter()
                    .map(|id| {
                        let n = seen.entry(id).or_insert(0);
                        *n += 1;
                        if id == 99 {
                            Answer::Failed("no such id".into())
                        } else if *n <= throttled.get(&id).copied().unwrap_or(0) {
                            Answer::Retry(id)
                        } else {
                            Answer::Done(id * 10)
                        }
                    })
                    .collect(),
            )
        });
    (b, calls)
}

#[test]
fn a_request_sent_back_joins_a_later_batch_and_its_neighbours_are_answered_at_once() {
    let pool = pool();
    let policy = RetryPolicy::attempts(3).base_delay(Duration::from_millis(20));
    let (b, calls) = throttling(&pool, policy, HashMap::from([(2, 1)]));
    let handles: Vec<_> = (1..=3).map(|id| b.call(id)).collect();
    b.flush();
    let got: Vec<u32> = handles.into_iter().map(|h| join(h).unwrap()).collect();
    assert_eq!(got, [10, 20, 30]);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].0, [1, 2, 3]);
    assert_eq!(calls[1].0, [2], "only the throttled request went again");
    assert!(
        calls[1].1 >= calls[0].1 + Duration::from_millis(20),
        "the retry came before the policy's wait"
    );
    let s = b.stats();
    assert_eq!((s.retried, s.dispatches, s.dispatched_requests), (1, 2, 4));
}

#[test]
fn a_request_sent_back_every_time_fails_after_the_policys_attempts() {
    let pool = pool();
    let policy = RetryPolicy::attempts(4).base_delay(Duration::from_millis(1));
    let (b, calls) = throttling(&pool, policy, HashMap::from([(7, usize::MAX)]));
    let stubborn = b.call(7);
    let fine = b.call(8);
    b.flush();
    assert_eq!(join(fine).unwrap(), 80);
    let err = join(stubborn).unwrap_err();
    assert!(err.is_failed());
    assert_eq!(
        err.downcast_ref::<BatchError>(),
        Some(&BatchError::RetriesExhausted { attempts: 4 })
    );
    let tries = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(ids, _)| ids.contains(&7))
        .count();
    assert_eq!(tries, 4, "dispatched exactly max_attempts times");
    assert_eq!(b.stats().retried, 3);
}

#[test]
fn a_requests_own_failure_reaches_only_that_request() {
    let pool = pool();
    let (b, _calls) = throttling(&pool, RetryPolicy::attempts(2), HashMap::new());
    let bad = b.call(99);
    let good = b.call(5);
    b.flush();
    assert_eq!(join(good).unwrap(), 50);
    let err = join(bad).unwrap_err();
    assert!(err.is_failed());
    assert!(err.to_string().contains("no such id"), "{err}");
}

#[test]
fn an_error_of_the_whole_call_fails_every_request_without_retries() {
    let pool = pool();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let b = Batcher::builder()
        .pool(&pool)
        .flush_when_idle(false)
        .build_with_retry(RetryPolicy::attempts(5), move |_: Vec<u32>| {
            *c.lock().unwrap() += 1;
            Err::<Vec<Answer<u32, u32>>, _>("database down")
        });
    let handles: Vec<_> = (0..3).map(|i| b.call(i)).collect();
    b.flush();
    for h in handles {
        assert!(join(h).unwrap_err().is_failed());
    }
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(b.stats().retried, 0);
}

#[test]
fn a_wrong_number_of_answers_is_still_an_error_for_the_batch() {
    let pool = pool();
    let b = Batcher::builder()
        .pool(&pool)
        .flush_when_idle(false)
        .build_with_retry(RetryPolicy::attempts(3), |ids: Vec<u32>| {
            Ok::<_, String>(vec![Answer::Done(ids[0])])
        });
    let (a, c) = (b.call(1), b.call(2));
    b.flush();
    for h in [a, c] {
        assert_eq!(
            join(h).unwrap_err().downcast_ref::<BatchError>(),
            Some(&BatchError::WrongResponseCount {
                expected: 2,
                got: 1
            })
        );
    }
}

#[test]
fn shutdown_resolves_a_request_waiting_for_its_next_attempt_as_not_run() {
    let pool = pool();
    let policy = RetryPolicy::attempts(3).base_delay(Duration::from_secs(3600));
    let (b, _calls) = throttling(&pool, policy, HashMap::from([(1, 1)]));
    let h = b.call(1);
    b.flush();
    support::wait_until("the request was sent back", || b.stats().retried == 1);
    pool.shutdown();
    assert!(join(h).unwrap_err().is_not_run());
}

#[test]
fn a_plain_batcher_never_retries() {
    let pool = pool();
    let b = Batcher::builder()
        .pool(&pool)
        .flush_when_idle(false)
        .build(|ids: Vec<u32>| Ok::<_, String>(ids));
    let h = b.call(3);
    b.flush();
    assert_eq!(join(h).unwrap(), 3);
    assert_eq!(b.stats().retried, 0);
}
