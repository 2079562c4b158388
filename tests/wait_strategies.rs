//! `as_completed` (completion order, one deadline for the whole iteration) and `wait` with its
//! strategies (AllCompleted, FirstCompleted, FirstError), timeouts including zero (poll).
//!
//! Tasks are held with gates and released in a chosen order; timeouts only turn a hang into a
//! failure, except in `as_completed_timeout_covers_the_whole_iteration`, which needs a deadline
//! to pass (its margins are wide, and it says why).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use taskrunner::fork_join::{as_completed, invoke_all, wait, WaitStrategy, Waited};
use taskrunner::{TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool};

/// How long anything may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Runs `f` on a helper thread and fails the test if it does not return within [`HANG`].
fn within_hang<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("hung")
}

/// A task that returns `value` once its gate is opened; returns the gate.
fn gated<T: Send + 'static>(pool: &ThreadPool, value: T) -> (Sender<()>, TaskHandle<T>) {
    let (tx, rx) = bounded::<()>(0);
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            rx.recv_timeout(HANG).expect("gate never opened");
            value
        })
        .unwrap();
    (tx, h)
}

/// A handle that will not end during the test (a task delayed by an hour).
fn never(pool: &ThreadPool) -> TaskHandle<u32> {
    pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 0)
        .unwrap()
}

fn indices<T>(v: &[(usize, TaskHandle<T>)]) -> Vec<usize> {
    v.iter().map(|(i, _)| *i).collect()
}

// ---- as_completed -----------------------------------------------------------------------------

#[test]
fn as_completed_yields_in_completion_order() {
    let pool = pool(5);
    let (gates, handles): (Vec<_>, Vec<_>) = (0..5).map(|i| gated(&pool, i * 10)).unzip();
    let mut it = as_completed(handles);
    for i in [3, 1, 4, 0, 2] {
        gates[i].send_timeout((), HANG).unwrap();
        let (idx, r) = it.next().expect("an item");
        assert_eq!((idx, r.unwrap()), (i, i * 10));
    }
    assert!(it.next().is_none());
    assert_eq!(it.remaining(), 0);
    assert!(!it.timed_out());
}

#[test]
fn as_completed_yields_every_outcome_once_over_many_handles() {
    let pool = pool(2);
    let tasks = (0..2000usize).map(|i| {
        move || {
            if i % 7 == 0 {
                Err(format!("{i}"))
            } else {
                Ok(i)
            }
        }
    });
    let handles = invoke_all(&pool, tasks, None).into_handles();
    let seen = within_hang(move || {
        let mut seen = vec![false; 2000];
        for (i, r) in as_completed(handles) {
            assert!(!seen[i], "index {i} yielded twice");
            seen[i] = true;
            match r {
                Ok(v) => assert_eq!(v, i),
                Err(e) => {
                    assert!(i % 7 == 0 && e.is_failed());
                }
            }
        }
        seen
    });
    assert!(seen.into_iter().all(|s| s));
}

#[test]
fn as_completed_reports_failures_panics_and_cancellations() {
    let pool = pool(2);
    let t = TaskTraits::default();
    let cancelled = never(&pool);
    assert!(cancelled.cancel());
    let handles: Vec<TaskHandle<u32>> = vec![
        pool.post_task_with_result(t, || panic!("boom")).unwrap(),
        cancelled,
        TaskHandle::failed(TaskError::from_error("io")),
    ];
    let mut out: Vec<(usize, Result<u32, TaskError>)> =
        within_hang(move || as_completed(handles).collect());
    out.sort_by_key(|(i, _)| *i);
    assert!(out[0].1.as_ref().unwrap_err().is_panic());
    assert!(out[1].1.as_ref().unwrap_err().is_cancelled());
    assert!(out[2].1.as_ref().unwrap_err().is_failed());
}

#[test]
fn as_completed_with_a_zero_timeout_yields_only_what_has_ended() {
    // A timeout of 0 means "look once", not "no timeout".
    let pool = pool(1);
    let handles = vec![TaskHandle::ready(1), never(&pool), TaskHandle::ready(3)];
    let (got, pending) = within_hang(move || {
        let mut it = as_completed(handles).timeout(Duration::ZERO);
        let mut got: Vec<(usize, u32)> = (&mut it).map(|(i, r)| (i, r.unwrap())).collect();
        got.sort();
        assert!(it.timed_out());
        assert_eq!(it.remaining(), 1);
        assert!(it.next().is_none(), "the iterator is fused");
        (got, it.into_pending())
    });
    assert_eq!(got, vec![(0, 1), (2, 3)]);
    assert_eq!(indices(&pending), vec![1]);
    assert_eq!(pending[0].1.state(), TaskState::Pending);
    assert!(pending[0].1.cancel(), "the pending handle is usable");
}

#[test]
fn as_completed_timeout_covers_the_whole_iteration() {
    // The timeout covers the whole iteration, not each round: items arriving at intervals
    // shorter than the timeout must not keep it going forever.
    //
    // Deadline D = start + 1 s. Item 0 is ready at once; item 1 ends about 1.6 s after start.
    // The second `next()` is called about 1.1 s after start: with one deadline for the whole
    // iteration it ends at once (D has passed, item 1 has not ended); a per-round timeout
    // would wait until 2.1 s and get item 1. Only a stall of ~0.5 s between the sleep and the
    // call could make item 1 ready first.
    let pool = pool(1);
    let start = Instant::now();
    let late = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(1600), || 1u32)
        .unwrap();
    let mut it =
        as_completed(vec![TaskHandle::ready(0u32), late]).deadline(start + Duration::from_secs(1));
    assert_eq!(it.next().map(|(i, r)| (i, r.unwrap())), Some((0, 0)));
    thread::sleep((start + Duration::from_millis(1100)).saturating_duration_since(Instant::now()));
    assert!(
        it.next().is_none(),
        "the iteration went on past its deadline"
    );
    assert!(it.timed_out());
    let pending = it.into_pending();
    assert_eq!(indices(&pending), vec![1]);
    // The handle still works: its task ends later.
    let (_, late) = pending.into_iter().next().unwrap();
    assert_eq!(within_hang(move || late.join().unwrap()), 1);
}

#[test]
fn as_completed_of_nothing_ends_at_once() {
    let mut it = as_completed(Vec::<TaskHandle<u8>>::new());
    assert!(it.next().is_none());
    assert!(!it.timed_out());
}

// ---- wait -------------------------------------------------------------------------------------

#[test]
fn wait_with_a_zero_timeout_polls_once_for_every_strategy() {
    // `timeout = 0` looks once and does not wait.
    let pool = pool(1);
    for strategy in [
        WaitStrategy::AllCompleted,
        WaitStrategy::FirstCompleted,
        WaitStrategy::FirstError,
    ] {
        let handles = vec![TaskHandle::ready(1), never(&pool), TaskHandle::ready(3)];
        let w = within_hang(move || wait(handles, strategy, Some(Duration::ZERO)));
        assert_eq!(indices(&w.done), vec![0, 2], "{strategy:?}");
        assert_eq!(indices(&w.pending), vec![1], "{strategy:?}");
        w.pending[0].1.cancel();
    }
}

#[test]
fn first_completed_reports_everything_already_finished() {
    // FirstCompleted reports every handle already ended as done.
    let pool = pool(1);
    let handles = vec![
        TaskHandle::ready(1),
        never(&pool),
        TaskHandle::ready(2),
        TaskHandle::ready(3),
    ];
    let Waited { done, pending } =
        within_hang(move || wait(handles, WaitStrategy::FirstCompleted, None));
    assert_eq!(indices(&done), vec![0, 2, 3]);
    assert_eq!(indices(&pending), vec![1]);
    pending[0].1.cancel();
}

#[test]
fn first_completed_returns_when_one_ends() {
    let pool = pool(3);
    let (g0, h0) = gated(&pool, 0);
    let (_g1, h1) = gated(&pool, 1);
    thread::spawn(move || g0.send_timeout((), HANG).unwrap());
    let w = within_hang(move || wait(vec![h0, h1], WaitStrategy::FirstCompleted, None));
    assert_eq!(indices(&w.done), vec![0]);
    assert_eq!(indices(&w.pending), vec![1]);
    let (_, h0) = w.done.into_iter().next().unwrap();
    assert_eq!(h0.join().unwrap(), 0, "wait took the result");
}

#[test]
fn first_error_returns_when_a_handle_fails() {
    let pool = pool(3);
    let (g0, h0) = gated(&pool, 0u32);
    let failing = pool
        .post_task_with_result(TaskTraits::default(), || -> u32 { panic!("one") })
        .unwrap();
    let handles = vec![h0, failing, never(&pool)];
    let w = within_hang(move || wait(handles, WaitStrategy::FirstError, None));
    assert_eq!(indices(&w.done), vec![1]);
    assert_eq!(indices(&w.pending), vec![0, 2]);
    assert_eq!(w.done[0].1.state(), TaskState::Panicked);
    g0.send_timeout((), HANG).unwrap();
    w.pending[1].1.cancel();
}

#[test]
fn first_error_counts_a_cancellation_as_an_error() {
    let pool = pool(2);
    let (g0, h0) = gated(&pool, 0u32);
    let doomed = never(&pool);
    assert!(doomed.cancel());
    let w = within_hang(move || wait(vec![h0, doomed], WaitStrategy::FirstError, None));
    assert_eq!(indices(&w.done), vec![1]);
    assert_eq!(w.done[0].1.state(), TaskState::Cancelled);
    g0.send_timeout((), HANG).unwrap();
}

#[test]
fn first_error_without_errors_waits_for_all() {
    let pool = pool(3);
    let (gates, handles): (Vec<_>, Vec<_>) = (0..3).map(|i| gated(&pool, i)).unzip();
    thread::spawn(move || {
        for g in gates.into_iter().rev() {
            g.send_timeout((), HANG).unwrap();
        }
    });
    let w = within_hang(move || wait(handles, WaitStrategy::FirstError, None));
    assert_eq!(indices(&w.done), vec![0, 1, 2]);
    assert!(w.pending.is_empty());
}

#[test]
fn all_completed_waits_for_every_handle() {
    let pool = pool(3);
    let (gates, handles): (Vec<_>, Vec<_>) = (0..3).map(|i| gated(&pool, i)).unzip();
    thread::spawn(move || {
        for g in gates {
            g.send_timeout((), HANG).unwrap();
        }
    });
    let w = within_hang(move || wait(handles, WaitStrategy::AllCompleted, None));
    assert_eq!(indices(&w.done), vec![0, 1, 2]);
    assert!(w.pending.is_empty());
    let values: Vec<i32> = w.done.into_iter().map(|(_, h)| h.join().unwrap()).collect();
    assert_eq!(values, vec![0, 1, 2]);
}

#[test]
fn a_timeout_returns_the_partial_split_for_every_strategy() {
    // On timeout every strategy returns the split (done, pending); nothing is raised.
    let pool = pool(1);
    for strategy in [
        WaitStrategy::AllCompleted,
        WaitStrategy::FirstCompleted,
        WaitStrategy::FirstError,
    ] {
        let handles = vec![never(&pool), TaskHandle::ready(1)];
        let w = within_hang(move || wait(handles, strategy, Some(Duration::from_millis(20))));
        assert_eq!(indices(&w.done), vec![1], "{strategy:?}");
        assert_eq!(indices(&w.pending), vec![0], "{strategy:?}");
        w.pending[0].1.cancel();
    }
    // Nothing ended at all: FirstCompleted times out with an empty `done`.
    let w = within_hang({
        let pool = pool.clone();
        move || {
            wait(
                vec![never(&pool)],
                WaitStrategy::FirstCompleted,
                Some(Duration::from_millis(20)),
            )
        }
    });
    assert!(w.done.is_empty());
    assert_eq!(indices(&w.pending), vec![0]);
    w.pending[0].1.cancel();
}

#[test]
fn an_empty_input_returns_at_once() {
    for strategy in [
        WaitStrategy::AllCompleted,
        WaitStrategy::FirstCompleted,
        WaitStrategy::FirstError,
    ] {
        let w = within_hang(move || wait(Vec::<TaskHandle<u8>>::new(), strategy, None));
        assert!(w.done.is_empty() && w.pending.is_empty());
    }
}
