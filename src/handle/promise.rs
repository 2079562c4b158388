//! `Promise<T>`: a [`TaskHandle`] resolved by code rather than by one closure run. The
//! orchestration layer uses it where a handle must exist before (or outlive) any single posted
//! task: executor submissions waiting in its queue, retries across attempts, fork/join totals.
//!
//! # State machine (the cell's `state`)
//!
//! | transition | by | rule |
//! |---|---|---|
//! | `PENDING → RUNNING` | [`Promise::start`] | CAS; fails once cancelled |
//! | `PENDING → CANCELLED` | `TaskHandle::cancel` | CAS; the promise's token is cancelled too |
//! | `RUNNING → RUNNING` | `TaskHandle::cancel` | no transition: the token is cancelled, the work decides |
//! | `PENDING / RUNNING → terminal` | [`Promise::complete`] | CAS from the state it read; loses to a cancel that got there first |
//! | `PENDING / RUNNING → CANCELLED` (not run) | dropping an unresolved `Promise` | as `complete` |
//!
//! A produced value is never replaced: `complete` is the only writer after `RUNNING`, and it
//! writes once.

use std::sync::Arc;
use std::time::Duration;

use crate::base::shim::Ordering;
use crate::cancel::CancellationToken;
use crate::handle::cell::{state_of, CellCore, HandleCell, CANCELLED, PENDING, RUNNING};
use crate::handle::{TaskError, TaskHandle};

struct PromiseCell<T> {
    core: CellCore<T>,
    token: Option<CancellationToken>,
}

impl<T: Send> HandleCell<T> for PromiseCell<T> {
    fn core(&self) -> &CellCore<T> {
        &self.core
    }

    fn cancel(&self) -> bool {
        if self
            .core
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.core
                .finish(CANCELLED, Err(TaskError::cancelled()), None);
            if let Some(t) = &self.token {
                t.cancel();
            }
            return true;
        }
        if self.core.state.load(Ordering::Acquire) == RUNNING {
            if let Some(t) = &self.token {
                t.cancel();
            }
        }
        false
    }
}

/// The writing side of a handle (crate-internal).
pub(crate) struct Promise<T: Send + 'static> {
    cell: Arc<PromiseCell<T>>,
    resolved: bool,
}

impl<T: Send + 'static> Promise<T> {
    /// A pending promise and its handle. `token`, if any, is cancelled by `handle.cancel()`.
    pub(crate) fn new(token: Option<CancellationToken>) -> (Promise<T>, TaskHandle<T>) {
        let cell = Arc::new(PromiseCell {
            core: CellCore::new(PENDING),
            token,
        });
        let handle = TaskHandle::from_cell(cell.clone());
        (
            Promise {
                cell,
                resolved: false,
            },
            handle,
        )
    }

    /// Marks the work as started; `false` if the handle was cancelled first (do not run).
    pub(crate) fn start(&self) -> bool {
        let s = &self.cell.core.state;
        match s.compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(cur) => cur == RUNNING,
        }
    }

    /// `true` once the handle was cancelled before the work started (loom models check it).
    #[cfg(all(test, loom))]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cell.core.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Resolves the handle; `false` (and `result` is dropped) if it was already resolved by a
    /// cancel.
    pub(crate) fn complete(mut self, result: Result<T, TaskError>, took: Option<Duration>) -> bool {
        self.resolved = true;
        self.resolve(result, took)
    }

    fn resolve(&self, result: Result<T, TaskError>, took: Option<Duration>) -> bool {
        let to = state_of(&result);
        let s = &self.cell.core.state;
        let mut cur = s.load(Ordering::Acquire);
        loop {
            if cur != PENDING && cur != RUNNING {
                return false;
            }
            match s.compare_exchange(cur, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.cell.core.finish(to, result, took);
        true
    }
}

impl<T: Send + 'static> Drop for Promise<T> {
    fn drop(&mut self) {
        if !self.resolved {
            self.resolve(Err(TaskError::not_run()), None);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::TaskState;

    #[test]
    fn cancel_before_start_wins_and_cancels_the_token() {
        let token = CancellationToken::new();
        let (p, h) = Promise::<u32>::new(Some(token.clone()));
        assert!(h.cancel());
        assert!(token.is_cancelled());
        assert!(!p.start());
        assert!(!p.complete(Ok(1), None));
        assert!(h.join().unwrap_err().is_cancelled());
    }

    #[test]
    fn cancel_while_running_only_signals_and_the_value_is_kept() {
        let token = CancellationToken::new();
        let (p, h) = Promise::<u32>::new(Some(token.clone()));
        assert!(p.start());
        assert!(!h.cancel());
        assert!(token.is_cancelled());
        assert_eq!(h.state(), TaskState::Running);
        assert!(p.complete(Ok(7), None));
        assert_eq!(h.join().unwrap(), 7);
    }

    #[test]
    fn a_dropped_promise_resolves_as_not_run() {
        let (p, h) = Promise::<u32>::new(None);
        drop(p);
        assert!(h.join().unwrap_err().is_not_run());
    }

    #[test]
    fn a_failure_sets_the_failed_state() {
        let (p, h) = Promise::<u32>::new(None);
        p.complete(Err(TaskError::from_error("boom")), None);
        assert_eq!(h.state(), TaskState::Failed);
    }
}
