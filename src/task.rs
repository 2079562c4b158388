//! `Task`: one posted closure plus what the scheduler needs to know about it.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};
use std::time::Instant;

use crate::handle::CellJob;

/// The boxed closure type. A zero-sized closure costs no allocation; any other closure costs
/// exactly one (the box), and the task itself lives inline in its sequence's `VecDeque`.
pub(crate) type BoxedFn = Box<dyn FnOnce() + Send + 'static>;

/// What a task runs: a plain closure, or a result cell shared with a `TaskHandle` (one
/// allocation for closure and result together).
pub(crate) enum Job {
    Fn(BoxedFn),
    Cell(CellJob),
}

/// Process-wide source of unique, increasing numbers: task post order and sequence tokens share
/// it, so a one-off task's order number doubles as its sequence token.
///
/// A plain std atomic, not the loom shim: it takes part in no protocol (it only has to hand out
/// distinct increasing values), and a `static` cannot hold a loom atomic.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh unique number, greater than every number handed out before it on any thread that
/// this thread has synchronised with.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, StdOrdering::Relaxed)
}

/// One unit of work.
pub(crate) struct Task {
    pub(crate) job: Job,
    pub(crate) posted_from: &'static Location<'static>,
    /// The age used by sort keys: assigned when the task becomes ready (at post for immediate
    /// tasks, when forwarded for delayed ones). Smaller is older.
    pub(crate) order: u64,
    /// When the task became ready; only recorded while a `tracing` subscriber listens at TRACE
    /// level, so that the common path does not read the clock.
    pub(crate) queued_at: Option<Instant>,
    /// The task was posted with a delay: once shutdown has started it never runs, whatever its
    /// shutdown behaviour (Chromium's rule: delayed tasks never block shutdown).
    pub(crate) was_delayed: bool,
}

impl Task {
    #[inline]
    pub(crate) fn new(f: BoxedFn, posted_from: &'static Location<'static>) -> Self {
        Self::from_job(Job::Fn(f), posted_from)
    }

    #[inline]
    pub(crate) fn from_job(job: Job, posted_from: &'static Location<'static>) -> Self {
        Task {
            job,
            posted_from,
            order: next_id(),
            queued_at: queued_at_if_traced(),
            was_delayed: false,
        }
    }

    /// Runs a plain-closure task directly (loom models drive tasks by hand).
    #[cfg(all(test, loom))]
    pub(crate) fn call(self) {
        match self.job {
            Job::Fn(f) => f(),
            Job::Cell(c) => {
                let _ = c.run();
            }
        }
    }

    /// Marks the task ready now (used when a delayed task is forwarded).
    pub(crate) fn mark_ready(&mut self) {
        self.order = next_id();
        self.queued_at = queued_at_if_traced();
    }
}

#[inline]
fn queued_at_if_traced() -> Option<Instant> {
    if tracing::enabled!(target: "taskrunner::task", tracing::Level::TRACE) {
        Some(Instant::now())
    } else {
        None
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("posted_from", &format_args!("{}", self.posted_from))
            .field("order", &self.order)
            .field("was_delayed", &self.was_delayed)
            .finish_non_exhaustive()
    }
}
