//! `Task`: one posted closure and where it was posted from.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};

use std::sync::Arc;

/// The boxed closure type. A zero-sized closure costs no allocation; any other closure costs
/// exactly one (the box).
pub(crate) type BoxedFn = Box<dyn FnOnce() + Send + 'static>;

/// What a task runs: a plain closure, or a result cell shared with a `TaskHandle` (one
/// allocation for closure and result together); either of them wrapped with a named runner's
/// counters (never nested).
pub(crate) enum Job {
    Fn(BoxedFn),
    Cell(QueuedCell),
    Tracked(Box<crate::engine::runner_stats::Tracked>),
}

/// What the scheduler sees of a job whose outcome someone waits for (a task handle's result
/// cell): something to run once, or to abandon.
pub(crate) trait CellRun: Send + Sync {
    /// Runs the closure if it is still pending. `Err(message)` if it panicked (for reporting);
    /// `before_finish` runs after the closure and before the waiter learns the outcome, with
    /// the panic message if it panicked (not at all if the closure did not run: cancelled).
    fn run_reporting(&self, before_finish: &dyn Fn(Option<&str>)) -> Result<(), String>;

    /// [`run_reporting`](Self::run_reporting) with a hook for panics only: `on_panic(message)`
    /// runs before the waiter learns the outcome.
    fn run(&self, on_panic: &dyn Fn(&str)) -> Result<(), String> {
        self.run_reporting(&|panic| {
            if let Some(message) = panic {
                on_panic(message)
            }
        })
    }
    /// The task will never run: drop the closure and tell the waiter it did not run.
    fn abandon(&self);
}

/// A queued cell. Dropping it without running abandons it, so a waiter never waits forever
/// for a task that shutdown skipped or a wound-down pool dropped.
pub(crate) struct QueuedCell(pub(crate) Arc<dyn CellRun>);

impl QueuedCell {
    #[cfg(all(test, loom))]
    pub(crate) fn run_with(&self, on_panic: &dyn Fn(&str)) -> Result<(), String> {
        self.0.run(on_panic)
    }

    pub(crate) fn run_reporting(&self, before_finish: &dyn Fn(Option<&str>)) -> Result<(), String> {
        self.0.run_reporting(before_finish)
    }
}

impl Drop for QueuedCell {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Process-wide source of unique numbers: sequence tokens, thread tokens and one-off task tokens
/// share it, so a token names exactly one sequence, thread or task. Not used on the posting
/// path of sequenced tasks (a sequence orders its own tasks).
///
/// A plain std atomic, not the loom shim: it takes part in no protocol (it only has to hand out
/// distinct values), and a `static` cannot hold a loom atomic.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh unique number.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, StdOrdering::Relaxed)
}

/// `n` fresh unique numbers: the first of `start .. start + n`.
pub(crate) fn next_ids(n: u64) -> u64 {
    NEXT_ID.fetch_add(n, StdOrdering::Relaxed)
}

/// One unit of work: 32 bytes (the job's fat pointer and tag, and the posting location).
pub(crate) struct Task {
    pub(crate) job: Job,
    pub(crate) posted_from: &'static Location<'static>,
}

impl Task {
    #[inline]
    pub(crate) fn new(f: BoxedFn, posted_from: &'static Location<'static>) -> Self {
        Task {
            job: Job::Fn(f),
            posted_from,
        }
    }

    #[inline]
    pub(crate) fn from_job(job: Job, posted_from: &'static Location<'static>) -> Self {
        Task { job, posted_from }
    }

    /// Runs a plain-closure task directly (loom models drive tasks by hand).
    #[cfg(all(test, loom))]
    pub(crate) fn call(self) {
        match self.job {
            Job::Fn(f) => f(),
            Job::Cell(c) => {
                let _ = c.run_with(&|_| {});
            }
            Job::Tracked(mut t) => {
                let (job, stats) = t.begin();
                Task::from_job(job, self.posted_from).call();
                stats.end(false);
            }
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("posted_from", &format_args!("{}", self.posted_from))
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_four_words() {
        assert_eq!(std::mem::size_of::<Task>(), 32);
    }
}
