//! Fork/join: `invoke_all` (order, limit, the error rule, cancellation), `consume` (FIFO,
//! workers, closing, cancellation, sequences), `wait_all` and `cancel_all`.
//!
//! Nothing here asserts on timing: running tasks are held with gates (channels), concurrency is
//! counted with atomics, and timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use taskrunner::cancel::{Interrupted, TaskContext};
use taskrunner::fork_join::{
    cancel_all, consume, invoke_all, invoke_all_fail_fast, wait_all, ConsumeReport,
};
use taskrunner::{Deferred, TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool};

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

/// Spins until `cond` holds (fails after [`HANG`]).
fn eventually(mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "condition never became true");
        thread::sleep(Duration::from_micros(200));
    }
}

/// Tracks how many tasks run at once, and the peak.
#[derive(Clone, Default)]
struct Concurrency {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Concurrency {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Blocks until `n` tasks have arrived (all running at once), or fails after [`HANG`].
#[derive(Clone)]
struct Rendezvous {
    arrived: Arc<AtomicUsize>,
    n: usize,
}

impl Rendezvous {
    fn new(n: usize) -> Self {
        Rendezvous {
            arrived: Arc::new(AtomicUsize::new(0)),
            n,
        }
    }
    /// `true` if all `n` met.
    fn meet(&self) -> bool {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        while self.arrived.load(Ordering::SeqCst) < self.n {
            if t0.elapsed() > HANG {
                return false;
            }
            thread::sleep(Duration::from_micros(100));
        }
        true
    }
}

/// A tiny deterministic PRNG for "random" task durations.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

// ---- invoke_all: order and limits -------------------------------------------------------------

#[test]
fn invoke_all_keeps_input_order_under_random_completion_order() {
    let pool = pool(4);
    for limit in [None, Some(3)] {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let tasks: Vec<_> = (0..40u64)
            .map(|i| {
                let micros = xorshift(&mut seed) % 2000;
                move || {
                    thread::sleep(Duration::from_micros(micros));
                    Ok::<_, Infallible>(i)
                }
            })
            .collect();
        let out = within_hang({
            let pool = pool.clone();
            move || invoke_all(&pool, tasks, limit).join()
        });
        let values: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, (0..40).collect::<Vec<_>>(), "limit {limit:?}");
    }
}

#[test]
fn invoke_all_runs_at_most_limit_tasks_at_once() {
    let pool = pool(6); // more workers than the limit
    let c = Concurrency::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (c, ran) = (c.clone(), ran.clone());
            move || {
                c.enter();
                thread::sleep(Duration::from_millis(1));
                c.exit();
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        })
        .collect();
    let out = within_hang(move || invoke_all(&pool, tasks, 3).join());
    assert_eq!(out.len(), 50);
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    assert!(c.peak() <= 3, "peak {} above the limit 3", c.peak());
    assert!(c.peak() >= 1);
}

#[test]
fn a_zero_or_absent_limit_is_unbounded() {
    // Four tasks that can only finish if all four run at the same time.
    let pool = pool(4);
    for limit in [None, Some(0)] {
        let meet = Rendezvous::new(4);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let meet = meet.clone();
                move || Ok::<_, Infallible>(meet.meet())
            })
            .collect();
        let p = pool.clone();
        let out = within_hang(move || invoke_all(&p, tasks, limit).join());
        assert!(
            out.into_iter().all(|r| r.unwrap()),
            "limit {limit:?}: the four tasks did not all run at once"
        );
    }
    // `0` as a plain integer means the same.
    let meet = Rendezvous::new(4);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let meet = meet.clone();
            move || Ok::<_, Infallible>(meet.meet())
        })
        .collect();
    let out = within_hang(move || invoke_all(&pool, tasks, 0).join());
    assert!(out.into_iter().all(|r| r.unwrap()));
}

#[test]
fn an_empty_batch_is_finished_at_once() {
    let pool = pool(1);
    let none: Vec<fn() -> Result<u8, Infallible>> = Vec::new();
    let batch = invoke_all(&pool, none.clone(), 3);
    assert!(batch.is_empty());
    assert!(batch.is_finished());
    assert!(batch.join().is_empty());
    assert_eq!(invoke_all(&pool, none, None).join_fail_fast(), Ok(vec![]));
}

#[test]
fn every_task_runs_in_a_task_context_under_a_child_token() {
    let pool = pool(2);
    // Task 0 cancels its own token; that must not cancel the batch nor task 1 (same driver).
    let tasks: Vec<Box<dyn FnOnce() -> Result<bool, Infallible> + Send>> = vec![
        Box::new(|| {
            let ctx = TaskContext::current().expect("a task context");
            assert_eq!(ctx.attempt(), 1);
            ctx.token().cancel();
            Ok(ctx.is_cancelled())
        }),
        Box::new(|| {
            Ok(TaskContext::current()
                .expect("a task context")
                .is_cancelled())
        }),
    ];
    let batch = invoke_all(&pool, tasks, 1);
    let token = batch.token().clone();
    let out = within_hang(move || batch.join());
    assert!(*out[0].as_ref().unwrap());
    assert!(
        !*out[1].as_ref().unwrap(),
        "task 1 saw task 0's cancellation"
    );
    assert!(
        !token.is_cancelled(),
        "a task's own token cancelled the batch"
    );
}

#[test]
fn invoke_all_on_a_sequence_runs_one_task_at_a_time_in_input_order() {
    let pool = pool(4);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    for limit in [None, Some(4)] {
        let c = Concurrency::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let (c, order) = (c.clone(), order.clone());
                move || {
                    c.enter();
                    order.lock().unwrap().push(i);
                    thread::sleep(Duration::from_micros(200));
                    c.exit();
                    Ok::<_, Infallible>(i)
                }
            })
            .collect();
        let s = seq.clone();
        let out = within_hang(move || invoke_all(&s, tasks, limit).join_fail_fast());
        assert_eq!(out.unwrap(), (0..30).collect::<Vec<_>>());
        assert_eq!(*order.lock().unwrap(), (0..30).collect::<Vec<_>>());
        assert_eq!(
            c.peak(),
            1,
            "limit {limit:?}: tasks overlapped on a sequence"
        );
    }
}

// ---- invoke_all: the error rule ---------------------------------------------------------------

#[derive(Debug)]
struct Broken(usize);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {} is broken", self.0)
    }
}

impl std::error::Error for Broken {}

type Task = Box<dyn FnOnce() -> Result<usize, Broken> + Send>;

/// Ok, failure, ok, panic, ok.
fn mixed() -> Vec<Task> {
    vec![
        Box::new(|| Ok(0)),
        Box::new(|| Err(Broken(1))),
        Box::new(|| Ok(2)),
        Box::new(|| panic!("item 3 panicked")),
        Box::new(|| Ok(4)),
    ]
}

fn kinds(out: &[Result<usize, TaskError>]) -> Vec<&'static str> {
    out.iter()
        .map(|r| match r {
            Ok(_) => "ok",
            Err(e) if e.is_failed() => "failed",
            Err(e) if e.is_panic() => "panicked",
            Err(e) if e.is_cancelled() => "cancelled",
            Err(_) => "other",
        })
        .collect()
}

#[test]
fn join_returns_every_outcome_in_input_order() {
    let pool = pool(2);
    let out = within_hang(move || invoke_all(&pool, mixed(), None).join());
    assert_eq!(
        kinds(&out),
        ["ok", "failed", "ok", "panicked", "ok"],
        "{out:?}"
    );
    let failed = out[1].as_ref().unwrap_err();
    assert_eq!(failed.downcast_ref::<Broken>().unwrap().0, 1);
    assert_eq!(
        out[3].as_ref().unwrap_err().panic_message(),
        Some("item 3 panicked")
    );
}

#[test]
fn errors_are_reported_the_same_whatever_the_limit() {
    // Errors are reported the same way whatever the limit.
    let pool = pool(3);
    for limit in [None, Some(0), Some(1), Some(2), Some(10)] {
        let p = pool.clone();
        let out = within_hang(move || invoke_all(&p, mixed(), limit).join());
        assert_eq!(
            kinds(&out),
            ["ok", "failed", "ok", "panicked", "ok"],
            "limit {limit:?}"
        );
        let p = pool.clone();
        let err = within_hang(move || invoke_all(&p, mixed(), limit).join_fail_fast());
        let err = err.expect_err("fail-fast must report the failure");
        assert!(
            err.is_failed() || err.is_panic(),
            "limit {limit:?}: {err:?}"
        );
    }
}

#[test]
fn join_fail_fast_returns_the_first_failure_and_never_starts_the_rest() {
    let pool = pool(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
                if i == 2 {
                    Err(Broken(i))
                } else {
                    Ok(i)
                }
            }
        })
        .collect();
    let batch = invoke_all_fail_fast(&pool, tasks, 1);
    let token = batch.token().clone();
    // Cancelled at the failure itself, before anyone joins.
    let t = token.clone();
    within_hang(move || t.wait());
    let err = within_hang(move || batch.join_fail_fast()).unwrap_err();
    assert!(err.is_failed());
    assert_eq!(err.downcast_ref::<Broken>().unwrap().0, 2);
    assert_eq!(ran.load(Ordering::SeqCst), 3, "tasks after the failure ran");
}

#[test]
fn a_fail_fast_batch_joined_in_full_reports_the_rest_as_cancelled() {
    let pool = pool(1);
    let tasks = (0..6).map(|i| move || if i == 1 { Err(Broken(i)) } else { Ok(i) });
    let out = within_hang(move || invoke_all_fail_fast(&pool, tasks, 1).join());
    assert_eq!(
        kinds(&out),
        [
            "ok",
            "failed",
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled"
        ]
    );
}

#[test]
fn join_fail_fast_on_a_plain_batch_cancels_what_has_not_started_when_called() {
    // Task 0 fails while tasks 1 and 2 are held running (limit 2: the driver that ran 0 took
    // 2); tasks 3.. wait. join_fail_fast, called after the failure, returns task 0's error and
    // cancels the batch then: tasks 1 and 2 see their token cancelled, tasks 3.. never run.
    let pool = pool(3);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (one_tx, one_rx) = bounded::<()>(1);
    let (two_tx, two_rx) = bounded::<()>(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<Task> = (0..10)
        .map(|i| -> Task {
            let (ran, saw_cancel) = (ran.clone(), saw_cancel.clone());
            let (gate_rx, one_tx, one_rx, two_tx) = (
                gate_rx.clone(),
                one_tx.clone(),
                one_rx.clone(),
                two_tx.clone(),
            );
            Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                match i {
                    0 => {
                        one_rx.recv_timeout(HANG).unwrap(); // task 1 is running
                        Err(Broken(0))
                    }
                    1 | 2 => {
                        if i == 1 {
                            one_tx.send(()).unwrap()
                        } else {
                            two_tx.send(()).unwrap()
                        }
                        gate_rx.recv_timeout(HANG).unwrap();
                        if TaskContext::current().unwrap().is_cancelled() {
                            saw_cancel.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(i)
                    }
                    _ => Ok(i),
                }
            })
        })
        .collect();
    let batch = invoke_all(&pool, tasks, 2);
    two_rx.recv_timeout(HANG).unwrap(); // task 0 has failed, 1 and 2 are held
    assert_eq!(batch.handles()[0].state(), TaskState::Failed);
    assert!(
        !batch.token().is_cancelled(),
        "a plain batch does not cancel by itself"
    );
    let err = within_hang(move || batch.join_fail_fast()).unwrap_err();
    assert_eq!(err.downcast_ref::<Broken>().unwrap().0, 0);
    for _ in 0..2 {
        gate_tx.send_timeout((), HANG).unwrap();
    }
    eventually(|| saw_cancel.load(Ordering::SeqCst) == 2);
    assert_eq!(ran.load(Ordering::SeqCst), 3, "a task not started ran");
}

#[test]
fn join_fail_fast_reports_a_panic() {
    let pool = pool(1);
    let tasks: Vec<Task> = vec![
        Box::new(|| Ok(0)),
        Box::new(|| panic!("boom")),
        Box::new(|| Ok(2)),
    ];
    let err = within_hang(move || invoke_all(&pool, tasks, 1).join_fail_fast()).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom"));
}

#[test]
fn join_fail_fast_picks_the_first_failure_by_completion_time() {
    // Task 0 fails, but only after task 3 has failed: task 3's error wins, and task 0, still
    // running when the batch is cancelled, sees its token cancelled.
    let pool = pool(2);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let s = saw_cancel.clone();
    let tasks: Vec<Task> = vec![
        Box::new(move || {
            gate_rx.recv_timeout(HANG).unwrap();
            s.store(
                TaskContext::current().unwrap().is_cancelled(),
                Ordering::SeqCst,
            );
            Err(Broken(0))
        }),
        Box::new(|| Ok(1)),
        Box::new(|| Ok(2)),
        Box::new(|| Err(Broken(3))),
    ];
    let batch = invoke_all(&pool, tasks, None);
    let err = within_hang(move || batch.join_fail_fast()).unwrap_err();
    assert_eq!(err.downcast_ref::<Broken>().unwrap().0, 3);
    gate_tx.send_timeout((), HANG).unwrap();
    eventually(|| saw_cancel.load(Ordering::SeqCst));
}

#[test]
fn a_task_returning_interrupted_ends_cancelled_not_failed() {
    let pool = pool(1);
    let tasks = [|| -> Result<u8, Interrupted> {
        TaskContext::current().unwrap().token().cancel();
        TaskContext::current().unwrap().check()?;
        Ok(1)
    }];
    let out = within_hang(move || invoke_all(&pool, tasks, None).join());
    assert!(out[0].as_ref().unwrap_err().is_cancelled());
}

// ---- invoke_all: cancellation -----------------------------------------------------------------

/// `n` tasks; tasks `0..held` block on `gate` once started. Returns the tasks, how many ran.
fn gated_tasks(
    n: usize,
    held: usize,
    gate: Receiver<()>,
    started: Sender<usize>,
) -> (
    Vec<impl FnOnce() -> Result<bool, Infallible> + Send>,
    Arc<AtomicUsize>,
) {
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|i| {
            let (gate, started, ran) = (gate.clone(), started.clone(), ran.clone());
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
                if i < held {
                    started.send(i).unwrap();
                    gate.recv_timeout(HANG).unwrap();
                }
                Ok(TaskContext::current().unwrap().is_cancelled())
            }
        })
        .collect();
    (tasks, ran)
}

#[test]
fn cancel_resolves_every_task_not_started_at_once_and_they_never_run() {
    // Cancelling resolves the tasks not yet taken at once: nothing is left pending.
    let pool = pool(2);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = unbounded();
    let (tasks, ran) = gated_tasks(20, 2, gate_rx, started_tx);
    let batch = invoke_all(&pool, tasks, 2);
    for _ in 0..2 {
        started_rx.recv_timeout(HANG).unwrap();
    }
    assert!(batch.cancel());
    assert!(!batch.cancel());
    // No handle is left pending: the 18 not started ended now, the 2 running are running.
    for (i, h) in batch.handles().iter().enumerate() {
        if i < 2 {
            assert_eq!(h.state(), TaskState::Running);
        } else {
            assert!(h.is_finished(), "task {i} left pending after cancel");
            assert_eq!(h.state(), TaskState::Cancelled);
        }
    }
    for _ in 0..2 {
        gate_tx.send_timeout((), HANG).unwrap();
    }
    let out = within_hang(move || batch.join());
    // The running ones finished with their value and saw their token cancelled.
    assert!(*out[0].as_ref().unwrap() && *out[1].as_ref().unwrap());
    assert!(out[2..]
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_cancelled()));
    assert_eq!(ran.load(Ordering::SeqCst), 2, "a cancelled task ran");
}

#[test]
fn cancelled_handles_of_a_batch_can_be_awaited_with_wait_all() {
    // wait_all over the tasks of a cancelled batch returns.
    let pool = pool(1);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = unbounded();
    let (tasks, _ran) = gated_tasks(10, 1, gate_rx, started_tx);
    let batch = invoke_all(&pool, tasks, 1);
    started_rx.recv_timeout(HANG).unwrap();
    batch.cancel();
    let handles = batch.into_handles();
    thread::spawn(move || gate_tx.send_timeout((), HANG).unwrap());
    let err = within_hang(move || wait_all(&handles)).unwrap_err();
    let expected: Vec<_> = (1..10).map(|i| (i, TaskState::Cancelled)).collect();
    assert_eq!(err.failures(), expected.as_slice());
}

#[test]
fn a_batch_token_deadline_ends_tasks_not_started_as_deadline_exceeded() {
    let pool = pool(1);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = unbounded();
    let (tasks, ran) = gated_tasks(5, 1, gate_rx, started_tx);
    let batch = invoke_all(&pool, tasks, 1);
    started_rx.recv_timeout(HANG).unwrap();
    batch.token().cancel_with(Interrupted::DeadlineExceeded);
    gate_tx.send_timeout((), HANG).unwrap();
    let out = within_hang(move || batch.join());
    assert!(out[0].is_ok());
    assert!(out[1..]
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_deadline_exceeded()));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn cancelling_one_task_through_its_handle_leaves_the_others() {
    let pool = pool(1);
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = unbounded();
    let (tasks, ran) = gated_tasks(4, 1, gate_rx, started_tx);
    let batch = invoke_all(&pool, tasks, 1);
    started_rx.recv_timeout(HANG).unwrap();
    assert!(batch.handles()[2].cancel());
    gate_tx.send_timeout((), HANG).unwrap();
    let batch_token = batch.token().clone();
    let out = within_hang(move || batch.join());
    assert_eq!(kinds_bool(&out), ["ok", "ok", "cancelled", "ok"]);
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    assert!(!batch_token.is_cancelled());
}

fn kinds_bool(out: &[Result<bool, TaskError>]) -> Vec<&'static str> {
    out.iter()
        .map(|r| match r {
            Ok(_) => "ok",
            Err(e) if e.is_cancelled() => "cancelled",
            Err(_) => "other",
        })
        .collect()
}

#[test]
fn a_shut_down_runner_resolves_the_batch_as_not_run() {
    let pool = pool(1);
    pool.shutdown();
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        })
        .collect();
    let batch = invoke_all(&pool, tasks, 2);
    assert!(batch.is_finished());
    let out = batch.join();
    assert!(out.iter().all(|r| r.as_ref().unwrap_err().is_not_run()));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// ---- wait_all / cancel_all --------------------------------------------------------------------

#[test]
fn wait_all_lists_every_handle_that_did_not_complete_and_takes_no_result() {
    let pool = pool(2);
    let t = TaskTraits::default();
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let handles: Vec<TaskHandle<u32>> = vec![
        pool.post_task_with_result(t, move || {
            gate_rx.recv_timeout(HANG).unwrap();
            1
        })
        .unwrap(),
        pool.post_task_with_result(t, || panic!("two")).unwrap(),
        pool.post_delayed_task_with_result(t, Duration::from_secs(3600), || 3)
            .unwrap(),
        TaskHandle::failed(TaskError::from_error("four")),
    ];
    assert!(handles[2].cancel());
    thread::spawn(move || gate_tx.send_timeout((), HANG).unwrap());
    let (handles, result) = within_hang(move || {
        let r = wait_all(&handles);
        (handles, r)
    });
    let err = result.unwrap_err();
    assert_eq!(
        err.failures(),
        &[
            (1, TaskState::Panicked),
            (2, TaskState::Cancelled),
            (3, TaskState::Failed)
        ]
    );
    assert!(err.to_string().starts_with("3 tasks did not complete"));
    let first = handles.into_iter().next().unwrap();
    assert_eq!(first.join().unwrap(), 1, "wait_all took the result");
}

#[test]
fn wait_all_of_completed_handles_is_ok() {
    let pool = pool(2);
    let handles: Vec<_> = (0..100)
        .map(|i| {
            pool.post_task_with_result(TaskTraits::default(), move || i)
                .unwrap()
        })
        .collect();
    let handles = within_hang(move || {
        wait_all(&handles).unwrap();
        handles
    });
    assert!(handles.iter().all(TaskHandle::is_finished));
    assert_eq!(wait_all::<u8>(&[]), Ok(()));
}

#[test]
fn cancel_all_counts_what_it_cancelled() {
    let pool = pool(1);
    let t = TaskTraits::default();
    let mut handles: Vec<_> = (0..3)
        .map(|i| {
            pool.post_delayed_task_with_result(t, Duration::from_secs(3600), move || i)
                .unwrap()
        })
        .collect();
    handles.push(TaskHandle::ready(9));
    assert_eq!(cancel_all(&handles), 3);
    assert_eq!(cancel_all(&handles), 0);
    assert!(handles[..3]
        .iter()
        .all(|h| h.state() == TaskState::Cancelled));
}

// ---- consume ----------------------------------------------------------------------------------

/// Sends `n` deferred tasks recording their index into `order`; returns the handles.
fn send_recording(
    tx: &Sender<Deferred>,
    range: std::ops::Range<usize>,
    order: &Arc<Mutex<Vec<usize>>>,
    c: &Concurrency,
) -> Vec<TaskHandle<usize>> {
    range
        .map(|i| {
            let (order, c) = (order.clone(), c.clone());
            let (task, handle) = Deferred::new(move || {
                c.enter();
                order.lock().unwrap().push(i);
                thread::sleep(Duration::from_micros(200));
                c.exit();
                i
            });
            tx.send(task).unwrap();
            handle
        })
        .collect()
}

#[test]
fn consume_with_one_worker_runs_tasks_in_fifo_order() {
    let pool = pool(3);
    let (tx, rx) = unbounded();
    let order = Arc::new(Mutex::new(Vec::new()));
    let c = Concurrency::default();
    let handles = send_recording(&tx, 0..30, &order, &c);
    drop(tx);
    let report = within_hang(move || consume(&pool, rx, 1).join());
    assert_eq!(
        report,
        ConsumeReport {
            ran: 30,
            cancelled: 0,
            not_run: 0
        }
    );
    assert_eq!(*order.lock().unwrap(), (0..30).collect::<Vec<_>>());
    assert_eq!(c.peak(), 1);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
}

#[test]
fn consume_runs_at_most_workers_tasks_at_once() {
    let pool = pool(6);
    let (tx, rx) = unbounded();
    let order = Arc::new(Mutex::new(Vec::new()));
    let c = Concurrency::default();
    let handles = send_recording(&tx, 0..60, &order, &c);
    drop(tx);
    let report = within_hang(move || consume(&pool, rx, 3).join());
    assert_eq!(report.ran, 60);
    assert!(c.peak() <= 3, "peak {} above 3 workers", c.peak());
    assert!(handles.into_iter().all(|h| h.join().is_ok()));
}

#[test]
fn a_consumer_grows_to_its_workers_for_tasks_sent_later() {
    // An idle consumer holds one waiting driver; a burst must still run `workers` at once.
    let pool = pool(4);
    let runner = pool.create_task_runner(TaskTraits::new().may_block(true));
    let (tx, rx) = unbounded();
    let consumer = consume(&runner, rx, 3);
    thread::sleep(Duration::from_millis(5)); // let it go idle (not required for correctness)
    let meet = Rendezvous::new(3);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let meet = meet.clone();
            let (task, handle) = Deferred::new(move || meet.meet());
            tx.send(task).unwrap();
            handle
        })
        .collect();
    for h in handles {
        assert!(
            within_hang(move || h.join().unwrap()),
            "the three tasks did not run at once"
        );
    }
    // A second burst after another idle period.
    let (task, handle) = Deferred::new(|| TaskContext::current().is_some());
    tx.send(task).unwrap();
    assert!(within_hang(move || handle.join().unwrap()));
    assert!(!consumer.is_finished());
    drop(tx);
    let report = within_hang(move || consumer.join());
    assert_eq!(report.ran, 4);
}

#[test]
fn zero_workers_means_the_runners_concurrency() {
    let pool = pool(3);
    let (tx, rx) = unbounded();
    let meet = Rendezvous::new(3);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let meet = meet.clone();
            let (task, handle) = Deferred::new(move || meet.meet());
            tx.send(task).unwrap();
            handle
        })
        .collect();
    drop(tx);
    let report = within_hang(move || consume(&pool, rx, 0).join());
    assert_eq!(report.ran, 3);
    assert!(handles.into_iter().all(|h| h.join().unwrap()));
}

#[test]
fn closing_the_channel_ends_the_consumer() {
    let pool = pool(2);
    let (tx, rx) = unbounded();
    let consumer = consume(&pool, rx, 2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles = send_recording(&tx, 0..5, &order, &Concurrency::default());
    for h in handles {
        within_hang(move || h.join().unwrap());
    }
    assert!(!consumer.is_finished());
    drop(tx);
    let report = within_hang(move || consumer.join());
    assert_eq!(report.ran, 5);
}

#[test]
fn consumer_cancel_resolves_every_queued_task_as_cancelled() {
    // Cancelling a consumer resolves the tasks still in the channel: none is left pending.
    let pool = pool(2);
    let (tx, rx) = unbounded();
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = bounded::<()>(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let (first, first_h) = Deferred::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        started_tx.send(()).unwrap();
        gate_rx.recv_timeout(HANG).unwrap();
        TaskContext::current().unwrap().is_cancelled()
    });
    tx.send(first).unwrap();
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let r = ran.clone();
            let (task, handle) = Deferred::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
            tx.send(task).unwrap();
            handle
        })
        .collect();
    let consumer = consume(&pool, rx, 1);
    started_rx.recv_timeout(HANG).unwrap();
    assert!(consumer.cancel());
    for h in &queued {
        assert!(h.is_finished(), "a queued task was left pending");
        assert_eq!(h.state(), TaskState::Cancelled);
    }
    gate_tx.send_timeout((), HANG).unwrap();
    assert!(
        within_hang(move || first_h.join().unwrap()),
        "the running task did not see its token cancelled"
    );
    let report = within_hang(move || consumer.join());
    assert_eq!(
        report,
        ConsumeReport {
            ran: 1,
            cancelled: 10,
            not_run: 0
        }
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // The consumer let go of the channel: a later send hands the task back, never pending.
    let (late, late_h) = Deferred::new(|| ());
    let refused = tx.send(late).expect_err("nobody receives any more");
    assert!(refused.into_inner().cancel());
    assert!(late_h.join().unwrap_err().is_cancelled());
}

#[test]
fn cancelling_an_idle_consumer_wakes_its_waiting_driver() {
    let pool = pool(1);
    let (_tx, rx) = unbounded::<Deferred>();
    let consumer = consume(&pool, rx, 4);
    thread::sleep(Duration::from_millis(5)); // let its driver block (not required)
    consumer.token().cancel();
    let report = within_hang(move || consumer.join());
    assert_eq!(report, ConsumeReport::default());
    // The worker is free again.
    let h = pool
        .post_task_with_result(TaskTraits::default(), || 5)
        .unwrap();
    assert_eq!(within_hang(move || h.join().unwrap()), 5);
}

#[test]
fn a_consumer_deadline_ends_queued_tasks_as_deadline_exceeded() {
    let pool = pool(1);
    let (tx, rx) = unbounded();
    let (gate_tx, gate_rx) = bounded::<()>(0);
    let (started_tx, started_rx) = bounded::<()>(1);
    let (first, first_h) = Deferred::new(move || {
        started_tx.send(()).unwrap();
        gate_rx.recv_timeout(HANG).unwrap();
    });
    tx.send(first).unwrap();
    let (second, second_h) = Deferred::new(|| ());
    tx.send(second).unwrap();
    let consumer = consume(&pool, rx, 1);
    started_rx.recv_timeout(HANG).unwrap();
    consumer.token().cancel_with(Interrupted::DeadlineExceeded);
    assert!(second_h.join().unwrap_err().is_deadline_exceeded());
    gate_tx.send_timeout((), HANG).unwrap();
    within_hang(move || first_h.join().unwrap());
    let report = within_hang(move || consumer.join());
    assert_eq!((report.ran, report.cancelled), (1, 1));
}

#[test]
fn consume_on_a_sequence_is_sequential_and_fifo() {
    let pool = pool(4);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = unbounded();
    let order = Arc::new(Mutex::new(Vec::new()));
    let c = Concurrency::default();
    let mut handles = send_recording(&tx, 0..20, &order, &c);
    let consumer = consume(&seq, rx, 4);
    handles.extend(send_recording(&tx, 20..40, &order, &c));
    drop(tx);
    let report = within_hang(move || consumer.join());
    assert_eq!(report.ran, 40);
    assert_eq!(c.peak(), 1, "tasks overlapped on a sequence");
    assert_eq!(*order.lock().unwrap(), (0..40).collect::<Vec<_>>());
    assert!(handles.into_iter().all(|h| h.join().is_ok()));
}

#[test]
fn a_shut_down_runner_resolves_queued_tasks_as_not_run() {
    let pool = pool(1);
    pool.shutdown();
    let (tx, rx) = unbounded();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let (task, handle) = Deferred::new(move || i);
            tx.send(task).unwrap();
            handle
        })
        .collect();
    let report = within_hang(move || consume(&pool, rx, 2).join());
    assert_eq!(
        report,
        ConsumeReport {
            ran: 0,
            cancelled: 0,
            not_run: 3
        }
    );
    assert!(handles
        .into_iter()
        .all(|h| h.join().unwrap_err().is_not_run()));
}

// ---- races ------------------------------------------------------------------------------------

#[test]
fn cancelling_a_running_batch_at_any_point_resolves_every_task_exactly_once() {
    let pool = pool(3);
    for round in 0..20u64 {
        let ran = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let ran = ran.clone();
                move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(())
                }
            })
            .collect();
        let limit = [None, Some(1), Some(4)][(round % 3) as usize];
        let batch = invoke_all(&pool, tasks, limit);
        let token = batch.token().clone();
        let canceller = thread::spawn(move || {
            for _ in 0..round * 50 {
                std::hint::spin_loop();
            }
            token.cancel();
        });
        let out = within_hang(move || batch.join());
        canceller.join().unwrap();
        let ok = out.iter().filter(|r| r.is_ok()).count();
        let cancelled = out
            .iter()
            .filter(|r| r.as_ref().is_err_and(TaskError::is_cancelled))
            .count();
        assert_eq!(ok + cancelled, 500, "round {round}: {out:?}");
        assert_eq!(ok, ran.load(Ordering::SeqCst), "round {round}");
    }
}

#[test]
fn tasks_trickled_by_several_senders_all_run() {
    let pool = pool(3);
    let runner = pool.create_task_runner(TaskTraits::new().may_block(true));
    let (tx, rx) = unbounded();
    let consumer = consume(&runner, rx, 3);
    let c = Concurrency::default();
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (tx, c) = (tx.clone(), c.clone());
            thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ s;
                (0..200)
                    .map(|i| {
                        let c = c.clone();
                        let (task, handle) = Deferred::new(move || {
                            c.enter();
                            c.exit();
                            i
                        });
                        tx.send(task).unwrap();
                        if xorshift(&mut seed) % 8 == 0 {
                            thread::sleep(Duration::from_micros(50));
                        }
                        handle
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    drop(tx);
    let handles: Vec<_> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let report = within_hang(move || consumer.join());
    assert_eq!(report.ran, 800);
    assert!(c.peak() <= 3);
    assert!(handles.into_iter().all(|h| h.join().is_ok()));
}

// ---- under a TestEnvironment ------------------------------------------------------------------

#[cfg(feature = "test-util")]
mod test_environment {
    use super::*;
    use taskrunner::testing::TestEnvironment;

    #[test]
    fn a_seeded_environment_runs_a_batch_and_a_consumer_on_the_test_thread() {
        for seed in [1, 2, 3] {
            let env = TestEnvironment::builder().seed(seed).build();
            let tasks = (0..20).map(|i| move || if i == 5 { Err(Broken(i)) } else { Ok(i) });
            let batch = invoke_all(env.pool(), tasks, 3);
            let (tx, rx) = unbounded();
            let handles: Vec<_> = (0..10)
                .map(|i| {
                    let (task, handle) = Deferred::new(move || i);
                    tx.send(task).unwrap();
                    handle
                })
                .collect();
            drop(tx);
            let consumer = consume(env.pool(), rx, 2);
            env.run_until_idle();
            assert!(batch.is_finished() && consumer.is_finished());
            assert_eq!(
                kinds(&batch.join()),
                (0..20)
                    .map(|i| if i == 5 { "failed" } else { "ok" })
                    .collect::<Vec<_>>()
            );
            assert_eq!(consumer.join().ran, 10);
            let values: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(values, (0..10).collect::<Vec<_>>());
        }
    }

    #[test]
    #[should_panic(expected = "drives a seeded single-thread TestEnvironment")]
    fn joining_a_batch_before_the_environment_ran_it_panics_instead_of_hanging() {
        let env = TestEnvironment::builder().seed(1).build();
        let batch = invoke_all(env.pool(), [|| Ok::<_, Infallible>(1)], None);
        batch.join();
    }
}

#[test]
fn progress_only_grows_and_ends_with_every_outcome_counted() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let batch = taskrunner::fork_join::invoke_all(
        &pool,
        (0..200_u32).map(|i| {
            move || {
                if i % 50 == 0 {
                    panic!("task {i}");
                }
                if i % 10 == 0 {
                    Err("failed")
                } else {
                    Ok(i)
                }
            }
        }),
        8,
    );
    let mut last = taskrunner::fork_join::Progress::default();
    loop {
        let p = batch.progress();
        assert_eq!(p.total(), 200);
        assert!(p.finished() >= last.finished() && p.failed() >= last.failed());
        last = p;
        if p.is_done() {
            break;
        }
        std::thread::yield_now();
    }
    // 4 panics (0, 50, 100, 150) and 16 other multiples of 10 returned Err.
    assert_eq!(
        (last.failed(), last.succeeded(), last.remaining()),
        (20, 180, 0)
    );
    let outcomes = batch.join();
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 20);
}
