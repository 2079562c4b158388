//! `Deferred`: a task created now, started later (kelindar's `NewTask` + `Run`).

use std::error::Error;
use std::fmt;
use std::panic::Location;

use crate::base::error::PostRefusal;
use crate::handle::cell::{new_cell, new_outcome_cell, CellJob};
use crate::handle::{TaskError, TaskHandle};
use crate::runner::PostTask;

/// A task that exists (with its [`TaskHandle`]) before it runs: run it here with
/// [`run`](Self::run), post it with [`run_on`](Self::run_on), or send it through a channel to
/// [`consume`](crate::fork_join::consume). It runs at most once.
///
/// Every way a `Deferred` can end resolves its handle: run (completed, failed or panicked),
/// [`cancel`](Self::cancel) (cancelled), or dropped unrun (not run). A waiter never hangs on a
/// task that was never started — kelindar/async's tasks left in a closed channel stayed
/// "created" forever.
///
/// ```
/// use taskrunner::{Deferred, TaskState};
/// let (task, handle) = Deferred::new(|| 2 + 2);
/// assert_eq!(handle.state(), TaskState::Pending);
/// task.run();
/// assert_eq!(handle.join().unwrap(), 4);
///
/// let (task, handle) = Deferred::new(|| 1);
/// drop(task); // never started
/// assert!(handle.join().unwrap_err().is_not_run());
/// ```
pub struct Deferred {
    job: CellJob,
}

impl Deferred {
    /// A deferred task returning `T`.
    ///
    /// See [`Deferred`] for an example.
    pub fn new<F, T>(f: F) -> (Deferred, TaskHandle<T>)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, cell) = new_cell(f);
        (Deferred { job }, TaskHandle::from_cell(cell))
    }

    /// A deferred fallible task: `Err(e)` resolves the handle as failed, keeping `e` as the
    /// error's source ([`TaskError::from_error`]).
    ///
    /// ```
    /// use taskrunner::{Deferred, TaskState};
    /// let (task, handle) = Deferred::fallible(|| "x".parse::<u32>());
    /// task.run();
    /// assert_eq!(handle.state(), TaskState::Failed);
    /// let err = handle.join().unwrap_err();
    /// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    pub fn fallible<F, T, E>(f: F) -> (Deferred, TaskHandle<T>)
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        let (job, cell) = new_outcome_cell(move || f().map_err(TaskError::from_error));
        (Deferred { job }, TaskHandle::from_cell(cell))
    }

    /// Runs the task on this thread, now (unless its handle was cancelled). A panic is caught
    /// and resolves the handle as panicked.
    ///
    /// See [`Deferred`] for an example.
    pub fn run(self) {
        if let Err(msg) = self.job.run_with(&|_| {}) {
            tracing::error!(target: "taskrunner", message = %msg, "a deferred task panicked");
        }
    }

    /// Runs the task as part of a pool task (a `consume` driver): a panic is reported like a
    /// plain task's (pool handler, runner's panic policy), as from `posted_from`.
    pub(crate) fn run_reporting(self, posted_from: &'static Location<'static>) {
        let _ = self
            .job
            .run_with(&|msg| crate::engine::panics::report_task_panic(msg.to_owned(), posted_from));
    }

    /// Posts the task to `runner`. On refusal (shutdown) the task is dropped unrun, so its
    /// handle resolves as not run, and the reason is returned.
    ///
    /// ```
    /// # use taskrunner::{Deferred, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (task, handle) = Deferred::new(|| "ran");
    /// task.run_on(&seq).unwrap();
    /// assert_eq!(handle.join().unwrap(), "ran");
    /// ```
    ///
    /// Run this way it is a task of `runner`: a panic goes through the pool's panic handler and
    /// the runner's [`PanicPolicy`](crate::PanicPolicy), like a plain task's.
    #[track_caller]
    pub fn run_on<R: PostTask + ?Sized>(self, runner: &R) -> Result<(), PostRefusal> {
        let posted_from = Location::caller();
        let job = self.job;
        runner
            .post_task_from(
                move || {
                    let _ = job.run_with(&|msg| {
                        crate::engine::panics::report_task_panic(msg.to_owned(), posted_from)
                    });
                },
                posted_from,
            )
            .map_err(|e| e.reason())
    }

    /// Resolves the handle as cancelled without running the task. `false` if the handle was
    /// already resolved (cancelled through it).
    ///
    /// ```
    /// let (task, handle) = taskrunner::Deferred::new(|| 1);
    /// assert!(task.cancel());
    /// assert!(handle.join().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(self) -> bool {
        self.job.cancel_with(TaskError::cancelled())
    }

    /// Resolves the handle with `err` (cancelled or deadline exceeded) without running.
    pub(crate) fn cancel_with(self, err: TaskError) -> bool {
        self.job.cancel_with(err)
    }
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred")
    }
}
