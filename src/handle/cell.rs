//! The result cell shared by a queued task and its handle.
//!
//! # State machine (`CellCore::state`)
//!
//! | state | meaning |
//! |---|---|
//! | `PENDING` | queued, not started; the closure is in the cell |
//! | `RUNNING` | a worker took the closure and is running it |
//! | `COMPLETED` | the closure returned; the value is (or was) in `result` |
//! | `PANICKED` | the closure panicked; `result` holds the message |
//! | `CANCELLED` | it will never run: cancelled through the handle, or dropped unrun |
//! | `FAILED` | a fallible task returned an error (promise cells only, see `promise.rs`) |
//!
//! | transition | by | rule |
//! |---|---|---|
//! | `PENDING → RUNNING` | worker (`run`) | CAS; the winner alone takes the closure |
//! | `PENDING → CANCELLED` | `cancel()` or the queued task being dropped unrun (`abandon`) | CAS; the winner takes the closure and drops it at once |
//! | `RUNNING → COMPLETED / PANICKED` | the worker that ran it | store; cancel after `RUNNING` loses (a produced value is never replaced) |
//!
//! Exactly one CAS out of `PENDING` succeeds, so cancel and run racing end in exactly one
//! terminal state (loom model `loom_handle_cancel_vs_run`). The result and the waiters live under
//! one small lock; the terminal state is stored before waiters are woken. The `Arc` is std's
//! even under loom (loom's cannot coerce to a trait object); the protocol's atomics and lock
//! are the shim's, and waiters wait for
//! `done` (set under the lock), so a waiter never sees a terminal state without its result.

use std::task::Waker;
use std::time::{Duration, Instant};

use crate::engine::task::{CellRun, QueuedCell};
use crate::handle::TaskError;
use std::sync::Arc;

use crate::base::shim::{AtomicU8, Condvar, Mutex, Ordering};

pub(crate) const PENDING: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const COMPLETED: u8 = 2;
pub(crate) const PANICKED: u8 = 3;
pub(crate) const CANCELLED: u8 = 4;
pub(crate) const FAILED: u8 = 5;

/// The terminal state that matches an outcome.
pub(crate) fn state_of<T>(result: &Result<T, TaskError>) -> u8 {
    match result {
        Ok(_) => COMPLETED,
        Err(e) if e.is_cancelled() || e.is_not_run() || e.is_deadline_exceeded() => CANCELLED,
        Err(e) if e.is_failed() => FAILED,
        Err(_) => PANICKED,
    }
}

#[derive(Debug)]
pub(crate) struct Sync<T> {
    /// The outcome; `None` before the end, and again after a joiner took it.
    pub(crate) result: Option<Result<T, TaskError>>,
    /// The task reached a terminal state and `result` was filled (it may since have been taken).
    pub(crate) done: bool,
    pub(crate) waker: Option<Waker>,
    pub(crate) duration: Option<Duration>,
}

/// The typed half of a cell: state, result, waiters.
#[derive(Debug)]
pub(crate) struct CellCore<T> {
    pub(crate) state: AtomicU8,
    pub(crate) sync: Mutex<Sync<T>>,
    pub(crate) cv: Condvar,
}

impl<T> CellCore<T> {
    pub(crate) fn new(state: u8) -> Self {
        CellCore {
            state: AtomicU8::new(state),
            sync: Mutex::new(Sync {
                result: None,
                done: false,
                waker: None,
                duration: None,
            }),
            cv: Condvar::new(),
        }
    }

    /// A cell that is already finished (`TaskHandle::ready` / `failed`).
    pub(crate) fn finished(result: Result<T, TaskError>) -> Self {
        let state = state_of(&result);
        let core = CellCore::new(state);
        {
            let mut s = core.sync.lock();
            s.result = Some(result);
            s.done = true;
        }
        core
    }

    /// Stores the outcome and wakes every waiter (the state was already made terminal).
    pub(crate) fn finish(
        &self,
        state: u8,
        result: Result<T, TaskError>,
        duration: Option<Duration>,
    ) {
        let waker = {
            let mut s = self.sync.lock();
            self.state.store(state, Ordering::Release);
            s.result = Some(result);
            s.done = true;
            s.duration = duration;
            s.waker.take()
        };
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the handle sees of a cell, whatever its closure type.
pub(crate) trait HandleCell<T>: Send + std::marker::Sync {
    fn core(&self) -> &CellCore<T>;
    /// Cancels a task that has not started; `true` if this call cancelled it.
    fn cancel(&self) -> bool;
}

impl<T: Send> HandleCell<T> for CellCore<T> {
    fn core(&self) -> &CellCore<T> {
        self
    }
    fn cancel(&self) -> bool {
        false
    }
}

/// What the crate's orchestration sees of a cell: the scheduler's view ([`CellRun`]: run
/// once, or abandon), plus cancellation with a chosen error.
pub(crate) trait RunCell: CellRun {
    /// The task will never run: drop the closure and resolve the handle with `err`
    /// (cancelled, deadline exceeded). `false` if it had already started or ended.
    fn cancel_with_error(&self, err: TaskError) -> bool;
}

/// One allocation: the closure (until it runs or is dropped) and the result cell.
pub(crate) struct Cell<F, T> {
    core: CellCore<T>,
    f: Mutex<Option<F>>,
}

impl<F, T> Cell<F, T>
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    /// Leaves `PENDING` for `CANCELLED`; on success drops the closure and stores `err`.
    fn cancel_with(&self, err: TaskError) -> bool {
        if self
            .core
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let f = self.f.lock().take();
        // Dropped at once (not when the queued entry is reached), outside every lock.
        crate::base::unwind::drop_quietly(f);
        self.core.finish(CANCELLED, Err(err), None);
        true
    }
}

impl<F, T> HandleCell<T> for Cell<F, T>
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    fn core(&self) -> &CellCore<T> {
        &self.core
    }

    fn cancel(&self) -> bool {
        self.cancel_with(TaskError::cancelled())
    }
}

impl<F, T> CellRun for Cell<F, T>
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    fn run_reporting(&self, before_finish: &dyn Fn(Option<&str>)) -> Result<(), String> {
        if self
            .core
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(()); // cancelled before it started
        }
        let f = self
            .f
            .lock()
            .take()
            .expect("the RUNNING winner owns the closure");
        let start = Instant::now();
        let outcome = crate::base::unwind::catch(f);
        let elapsed = Some(start.elapsed());
        match outcome {
            Ok(r) => {
                before_finish(None);
                self.core.finish(state_of(&r), r, elapsed);
                Ok(())
            }
            Err(payload) => {
                let msg = payload.message();
                before_finish(Some(&msg));
                // The payload is kept for `TaskError::into_panic`; dropping it never unwinds.
                self.core
                    .finish(PANICKED, Err(TaskError::from_panic(payload)), elapsed);
                Err(msg)
            }
        }
    }

    fn abandon(&self) {
        self.cancel_with(TaskError::not_run());
    }
}

impl<F, T> RunCell for Cell<F, T>
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    fn cancel_with_error(&self, err: TaskError) -> bool {
        self.cancel_with(err)
    }
}

/// The queued side: a cell to run. Dropping it without running resolves the handle as not
/// run (shutdown skipped it, or the pool wound down), so a joiner never waits forever.
pub(crate) struct CellJob(Arc<dyn RunCell>);

impl CellJob {
    /// Loom models run cells directly.
    #[cfg(all(test, loom))]
    pub(crate) fn run(&self) -> Result<(), String> {
        self.0.run(&|_| {})
    }

    pub(crate) fn run_with(&self, on_panic: &dyn Fn(&str)) -> Result<(), String> {
        self.0.run(on_panic)
    }

    /// Resolves the handle with `err` without running the task (if it has not started).
    pub(crate) fn cancel_with(&self, err: TaskError) -> bool {
        self.0.cancel_with_error(err)
    }
}

impl Drop for CellJob {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

impl std::fmt::Debug for CellJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CellJob")
    }
}

/// Allocates a cell for `f`: the job to queue and the handle's view of it.
pub(crate) fn new_cell<F, T>(f: F) -> (CellJob, Arc<dyn HandleCell<T>>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    new_outcome_cell(move || Ok(f()))
}

/// Like [`new_cell`], for the engine's queue: the job is the scheduler's view of the cell
/// (`Job::Cell`), so the closure and the result share one allocation with no wrapper box.
pub(crate) fn new_queued_cell<F, T>(f: F) -> (QueuedCell, Arc<dyn HandleCell<T>>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cell = Arc::new(Cell {
        core: CellCore::new(PENDING),
        f: Mutex::new(Some(move || Ok(f()))),
    });
    let run: Arc<dyn CellRun> = cell.clone();
    (QueuedCell(run), cell)
}

/// Like [`new_cell`] for a closure that decides its own outcome: `Err` resolves the handle as
/// failed, cancelled or deadline-exceeded (see `state_of`).
pub(crate) fn new_outcome_cell<F, T>(f: F) -> (CellJob, Arc<dyn HandleCell<T>>)
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    let cell = Arc::new(Cell {
        core: CellCore::new(PENDING),
        f: Mutex::new(Some(f)),
    });
    let run: Arc<dyn RunCell> = cell.clone();
    (CellJob(run), cell)
}
