//! Loom models of the task handle's terminal-state machine (`src/handle/cell.rs`), driving the
//! real cell: `new_cell`, `CellJob::run`, dropping a `CellJob` unrun (`abandon`), and the real
//! `TaskHandle` (`cancel`, `state`, `join`, `poll`).
//!
//! | model | race | what must hold | executions (bound 2) |
//! |---|---|---|---:|
//! | `loom_handle_cancel_vs_run` | `PENDING → RUNNING` (worker) vs `PENDING → CANCELLED` (`cancel`) | exactly one wins; the closure runs xor is dropped unrun, and is dropped exactly once; a winning `cancel` has dropped it by the time it returns; the handle's result matches the state | 14 |
//! | `loom_handle_cancel_vs_abandon` | `cancel` vs the queued job being dropped unrun (shutdown) | exactly one wins (`is_cancelled` xor `is_not_run`); the closure never runs and is dropped once | 8 |
//! | `loom_handle_join_vs_finish` | a joiner blocked in `join` vs the worker storing the result | no lost wake-up (loom reports a deadlock otherwise); the joiner gets the value | 7 |
//! | `loom_handle_join_vs_abandon` | a joiner blocked in `join` vs the job dropped unrun | no lost wake-up; the joiner gets `is_not_run` | 7 |
//! | `loom_handle_await_vs_finish` | `.await` (poll, register the waker) vs the worker finishing | no lost wake-up through the waker path | 10 |
//! | `loom_handle_cancel_vs_run_with_joiner` | all three at once: worker, canceller, joiner | one terminal state, and the joiner sees it | 45 |
//!
//! `loom_handle_await_vs_finish` drives the future with a small `block_on` whose waker is the
//! shim's lock and condition variable, so the waker path is part of the model.
//!
//! Together they take under 0.01 s of model checking at bound 2 (168 executions for the
//! three-thread model at bound 3). Each was checked against a broken copy of the cell and caught
//! it: `cancel` as load-then-store instead of a compare-and-swap; `finish` notifying before
//! setting `done`; `poll` storing the waker after re-taking the lock.
//!
//! Probes use loom atomics so that every read is part of the model; closures record what they
//! did and the model asserts after the threads join.

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};

use super::model;
use crate::base::shim::{Condvar, Mutex};
use crate::handle::{new_cell, CellJob, TaskHandle, TaskState};

/// A waker built from the shim's lock and condition variable, so that loom sees the wake-up
/// handshake: `wake` sets the flag and notifies; `block_on` sleeps until the flag is set.
#[derive(Debug)]
struct Signal {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Signal {
    fn wake(self: std::sync::Arc<Self>) {
        *self.woken.lock() = true;
        self.cv.notify_one();
    }
}

/// Polls `fut` to completion on this model thread, sleeping between polls until woken. A lost
/// wake-up leaves every thread blocked, which loom reports as a deadlock.
fn block_on<F: Future>(fut: F) -> F::Output {
    let signal = std::sync::Arc::new(Signal {
        woken: Mutex::new(false),
        cv: Condvar::new(),
    });
    let waker = Waker::from(std::sync::Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let mut woken = signal.woken.lock();
        while !*woken {
            signal.cv.wait(&mut woken);
        }
        *woken = false;
    }
}

#[derive(Default)]
struct Probe {
    runs: AtomicUsize,
    drops: AtomicUsize,
}

/// Captured by the task closure: its drop is the closure's drop.
struct Token(Arc<Probe>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, SeqCst);
    }
}

/// A queued job and its handle; the closure counts its runs and its drop in the probe.
fn cell(probe: &Arc<Probe>) -> (CellJob, TaskHandle<u32>) {
    let token = Token(Arc::clone(probe));
    let (job, cell) = new_cell(move || {
        token.0.runs.fetch_add(1, SeqCst);
        7_u32
    });
    (job, TaskHandle::from_cell(cell))
}

#[test]
fn loom_handle_cancel_vs_run() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let (job, handle) = cell(&probe);
        let worker = thread::spawn(move || {
            let r = job.run();
            drop(job); // after a run (or a lost race) the drop must not touch the cell again
            r
        });
        let cancelled = handle.cancel();
        if cancelled {
            assert_eq!(
                probe.drops.load(SeqCst),
                1,
                "a winning cancel frees the closure"
            );
            assert_eq!(handle.state(), TaskState::Cancelled);
        }
        assert!(worker.join().unwrap().is_ok());

        let runs = probe.runs.load(SeqCst);
        assert_eq!(
            probe.drops.load(SeqCst),
            1,
            "the closure is dropped exactly once"
        );
        let state = handle.state();
        match handle.join() {
            Ok(v) => {
                assert!(!cancelled);
                assert_eq!((v, runs, state), (7, 1, TaskState::Completed));
            }
            Err(e) => {
                assert!(cancelled && e.is_cancelled());
                assert_eq!((runs, state), (0, TaskState::Cancelled));
            }
        }
    });
}

#[test]
fn loom_handle_cancel_vs_abandon() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let (job, handle) = cell(&probe);
        let dropper = thread::spawn(move || drop(job));
        let cancelled = handle.cancel();
        if cancelled {
            assert_eq!(probe.drops.load(SeqCst), 1);
        }
        dropper.join().unwrap();
        assert_eq!(probe.runs.load(SeqCst), 0);
        assert_eq!(probe.drops.load(SeqCst), 1);
        assert_eq!(handle.state(), TaskState::Cancelled);
        let e = handle.join().unwrap_err();
        assert_eq!(e.is_cancelled(), cancelled);
        assert_eq!(e.is_not_run(), !cancelled);
    });
}

#[test]
fn loom_handle_join_vs_finish() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let (job, handle) = cell(&probe);
        let worker = thread::spawn(move || job.run());
        assert_eq!(handle.join().unwrap(), 7);
        assert!(worker.join().unwrap().is_ok());
        assert_eq!(probe.drops.load(SeqCst), 1);
    });
}

#[test]
fn loom_handle_join_vs_abandon() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let (job, handle) = cell(&probe);
        let dropper = thread::spawn(move || drop(job));
        assert!(handle.join().unwrap_err().is_not_run());
        dropper.join().unwrap();
        assert_eq!(probe.runs.load(SeqCst), 0);
        assert_eq!(probe.drops.load(SeqCst), 1);
    });
}

#[test]
fn loom_handle_await_vs_finish() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let (job, handle) = cell(&probe);
        let worker = thread::spawn(move || job.run());
        assert_eq!(block_on(handle).unwrap(), 7);
        assert!(worker.join().unwrap().is_ok());
    });
}

#[test]
fn loom_handle_cancel_vs_run_with_joiner() {
    model(|| {
        let probe = Arc::new(Probe::default());
        let token = Token(Arc::clone(&probe));
        let (job, cell) = new_cell(move || {
            token.0.runs.fetch_add(1, SeqCst);
            7_u32
        });
        // Two handles on one cell: one joins (it must own its handle), one cancels.
        let joiner_handle = TaskHandle::from_cell(std::sync::Arc::clone(&cell));
        let cancel_handle = TaskHandle::from_cell(cell);
        let worker = thread::spawn(move || job.run());
        let joiner = thread::spawn(move || joiner_handle.join());
        let cancelled = cancel_handle.cancel();
        assert!(worker.join().unwrap().is_ok());
        let r = joiner.join().unwrap();
        let runs = probe.runs.load(SeqCst);
        assert_eq!(probe.drops.load(SeqCst), 1);
        match r {
            Ok(v) => assert_eq!((v, runs, cancelled), (7, 1, false)),
            Err(e) => assert!(e.is_cancelled() && cancelled && runs == 0),
        }
    });
}
