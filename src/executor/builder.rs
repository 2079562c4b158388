//! `ExecutorBuilder`: the runner, the concurrency, the queue bound, the drop behaviour.

use std::fmt;

use std::sync::Arc as StdArc;

use crate::base::traits::TaskTraits;
use crate::pool::ThreadPool;
use crate::runner::{PostTask, TaskRunner};

use super::core::Core;
use super::error::ExecutorBuildError;
use super::options::ShutdownMode;
use super::Executor;

/// Configures an [`Executor`].
///
/// Defaults: a parallel [`TaskRunner`] on the global pool with [`TaskTraits::default()`];
/// `max_workers` = the runner's [`max_concurrency`](PostTask::max_concurrency) (the pool's
/// `max_workers`; 1 for a sequence); `queue_capacity` = `max_workers × 10`; dropping the
/// executor drains it ([`ShutdownMode::Drain`]).
///
/// ```
/// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
/// use taskrunner::executor::{Executor, ShutdownMode};
/// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
/// let exec = Executor::builder()
///     .pool(&pool)
///     .traits(TaskTraits::new().priority(TaskPriority::UserVisible))
///     .max_workers(2)
///     .on_drop(ShutdownMode::Cancel)
///     .build()
///     .unwrap();
/// assert_eq!((exec.max_workers(), exec.queue_capacity()), (2, 20));
///
/// // Any runner works, a sequence too (one task at a time, in submission order):
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let exec = Executor::builder().runner(seq).build().unwrap();
/// assert_eq!(exec.max_workers(), 1);
/// ```
pub struct ExecutorBuilder<R = TaskRunner> {
    runner: Option<R>,
    make_runner: MakeRunner<R>,
    name: Option<StdArc<str>>,
    pool: Option<ThreadPool>,
    traits: TaskTraits,
    max_workers: Option<usize>,
    queue_capacity: Option<usize>,
    on_drop: ShutdownMode,
}

/// How the builder makes its own runner: from the pool (or the global one), the traits and
/// the name; `None` when a runner was given.
type MakeRunner<R> = fn(Option<&ThreadPool>, TaskTraits, Option<StdArc<str>>) -> Option<R>;

fn parallel_runner(
    pool: Option<&ThreadPool>,
    traits: TaskTraits,
    name: Option<StdArc<str>>,
) -> Option<TaskRunner> {
    let runner = match pool {
        Some(p) => p.create_task_runner(traits),
        None => crate::create_task_runner(traits),
    };
    Some(match name {
        Some(name) => runner.named(name),
        None => runner,
    })
}

fn given_runner<R>(_: Option<&ThreadPool>, _: TaskTraits, _: Option<StdArc<str>>) -> Option<R> {
    None
}

impl Default for ExecutorBuilder<TaskRunner> {
    fn default() -> Self {
        ExecutorBuilder {
            runner: None,
            make_runner: parallel_runner,
            name: None,
            pool: None,
            traits: TaskTraits::default(),
            max_workers: None,
            queue_capacity: None,
            on_drop: ShutdownMode::Drain,
        }
    }
}

impl ExecutorBuilder<TaskRunner> {
    /// A builder with the defaults.
    ///
    /// ```
    /// let exec = taskrunner::executor::ExecutorBuilder::new().max_workers(3).build().unwrap();
    /// assert_eq!(exec.max_workers(), 3);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Run the tasks on `pool` (through a parallel runner with the builder's
    /// [`traits`](Self::traits)) instead of the global pool.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(3).build().unwrap();
    /// let exec = taskrunner::executor::Executor::builder().pool(&pool).build().unwrap();
    /// assert_eq!(exec.max_workers(), 3);
    /// ```
    #[must_use]
    pub fn pool(mut self, pool: &ThreadPool) -> Self {
        self.pool = Some(pool.clone());
        self
    }

    /// The traits of the tasks (priority, shutdown behaviour, may-block).
    ///
    /// ```
    /// use taskrunner::TaskTraits;
    /// use taskrunner::executor::Executor;
    /// let io = TaskTraits::new().may_block(true);
    /// let exec = Executor::builder().traits(io).max_workers(1).build().unwrap();
    /// assert_eq!(exec.submit(|| taskrunner::blocking(|| 7)).unwrap().join().unwrap(), 7);
    /// ```
    #[must_use]
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }
}

impl<R> ExecutorBuilder<R> {
    /// Run the tasks on `runner` (any [`PostTask`]: a parallel runner, a sequence, a
    /// single-thread runner). Replaces [`pool`](ExecutorBuilder::pool) and
    /// [`traits`](ExecutorBuilder::traits).
    ///
    /// See [`ExecutorBuilder`] for an example.
    pub fn runner<R2>(self, runner: R2) -> ExecutorBuilder<R2> {
        ExecutorBuilder {
            runner: Some(runner),
            make_runner: given_runner::<R2>,
            name: self.name,
            pool: None,
            traits: self.traits,
            max_workers: self.max_workers,
            queue_capacity: self.queue_capacity,
            on_drop: self.on_drop,
        }
    }

    /// Names the executor: the name shows in its `Debug` and [`Executor::name`], and the
    /// parallel runner it makes for itself (the default, or with [`pool`](ExecutorBuilder::pool))
    /// carries it, so its tasks have it in their spans and panic reports and the pool lists
    /// the runner's [metrics](crate::metrics::RunnerMetrics). With a runner of your own
    /// ([`runner`](Self::runner)), name that runner too.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::executor::Executor;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let exec = Executor::builder().pool(&pool).name("thumbnails").build().unwrap();
    /// assert_eq!(exec.name(), Some("thumbnails"));
    /// exec.submit(|| ()).unwrap().join().unwrap();
    /// assert_eq!(pool.metrics().runners()[0].name(), "thumbnails");
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<StdArc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many of the executor's tasks run at once (attempts posted to the runner). Must be
    /// at least 1.
    ///
    /// See [`ExecutorBuilder`] for an example.
    #[must_use]
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// How many submitted tasks may wait to start; [`submit`](Executor::submit) blocks beyond
    /// that. Must be at least 1: 0 is an error, not "unbounded".
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::builder().max_workers(1).queue_capacity(5).build().unwrap();
    /// assert_eq!(exec.queue_capacity(), 5);
    /// ```
    #[must_use]
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }

    /// What dropping the executor does (default [`ShutdownMode::Drain`]).
    ///
    /// See [`ExecutorBuilder`] for an example.
    #[must_use]
    pub fn on_drop(mut self, mode: ShutdownMode) -> Self {
        self.on_drop = mode;
        self
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> ExecutorBuilder<R> {
    /// Builds the executor. Fails if `max_workers` or `queue_capacity` is 0.
    ///
    /// See [`ExecutorBuilder`] for an example.
    pub fn build(self) -> Result<Executor<R>, ExecutorBuildError> {
        if self.max_workers == Some(0) {
            return Err(ExecutorBuildError::new("max_workers must be at least 1"));
        }
        if self.queue_capacity == Some(0) {
            return Err(ExecutorBuildError::new(
                "queue_capacity must be at least 1 (0 does not mean unbounded)",
            ));
        }
        let runner = match self.runner {
            Some(r) => r,
            None => (self.make_runner)(self.pool.as_ref(), self.traits, self.name.clone())
                .expect("ExecutorBuilder: a runner or a way to make one is always set"),
        };
        let max_workers = self
            .max_workers
            .unwrap_or_else(|| runner.max_concurrency())
            .max(1);
        let capacity = self
            .queue_capacity
            .unwrap_or_else(|| max_workers.saturating_mul(10));
        Ok(Executor {
            core: Core::new(runner, max_workers, capacity),
            on_drop: self.on_drop,
            name: self.name,
        })
    }
}

impl<R> fmt::Debug for ExecutorBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("name", &self.name)
            .field("max_workers", &self.max_workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("on_drop", &self.on_drop)
            .field("traits", &self.traits)
            .finish_non_exhaustive()
    }
}
