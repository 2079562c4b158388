//! `TaskRunner`: posts one-off parallel tasks with fixed traits.

use crate::pool::Inner;
use std::panic::Location;
use std::time::Duration;

use crate::error::PostError;
use crate::handle::ReplyFn;
use crate::handle::TaskHandle;
use crate::pool::{PoolRef, PostDest};
use crate::traits::TaskTraits;

/// Posts tasks that run in parallel, in no particular order, with the traits it was created
/// with. Get one from [`ThreadPool::create_task_runner`](crate::ThreadPool::create_task_runner)
/// or [`create_task_runner`](crate::create_task_runner).
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use taskrunner::{ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let runner = pool.create_task_runner(TaskTraits::default());
/// let n = Arc::new(AtomicUsize::new(0));
/// let (tx, rx) = std::sync::mpsc::channel();
/// for _ in 0..10 {
///     let (n, tx) = (n.clone(), tx.clone());
///     runner.post_task(move || { n.fetch_add(1, Ordering::SeqCst); tx.send(()).unwrap(); }).unwrap();
/// }
/// for _ in 0..10 { rx.recv().unwrap(); }
/// assert_eq!(n.load(Ordering::SeqCst), 10);
/// ```
#[derive(Clone, Debug)]
pub struct TaskRunner {
    pool: PoolRef,
    traits: TaskTraits,
}

impl TaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::pool::PostDest<'_> {
        PostDest::Parallel(self.traits)
    }

    pub(crate) fn pool_inner(&self) -> &crate::shim::Arc<crate::pool::Inner> {
        self.pool.inner()
    }

    pub(crate) fn new(pool: PoolRef, traits: TaskTraits) -> Self {
        TaskRunner { pool, traits }
    }

    /// Posts a task. Never runs it synchronously inside the call. Refused (closure handed
    /// back) after shutdown started, unless the runner is `BlockShutdown` and shutdown has not
    /// completed.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// r.post_task(move || tx.send(1).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a task that runs no sooner than `delay` from now (by the pool's clock).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t0 = Instant::now();
    /// r.post_delayed_task(Duration::from_millis(10), move || tx.send(Instant::now()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap() - t0 >= Duration::from_millis(10));
    /// ```
    #[track_caller]
    pub fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// Posts a task and returns a [`TaskHandle`] to its result (join, cancel, `.await`). The
    /// closure and the result cell share one allocation. Refused like
    /// [`post_task`](Self::post_task), with the closure handed back.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let h = r.post_task_with_result(|| 2 + 2).unwrap();
    /// assert_eq!(h.join().unwrap(), 4);
    /// ```
    #[track_caller]
    pub fn post_task_with_result<F, T>(&self, f: F) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a delayed task and returns a [`TaskHandle`] to its result. Cancelling the handle
    /// before the deadline drops the closure at once.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let h = r.post_delayed_task_with_result(Duration::from_millis(5), || "later").unwrap();
    /// assert_eq!(h.join().unwrap(), "later");
    /// ```
    #[track_caller]
    pub fn post_delayed_task_with_result<F, T>(
        &self,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// Runs `task` here, then runs `reply` on the sequence that called this (the current
    /// sequence, see [`SequencedTaskRunner::current`](crate::SequencedTaskRunner::current)).
    ///
    /// Refused with [`PostRefusal::NoCurrentSequence`](crate::PostRefusal::NoCurrentSequence)
    /// outside a sequenced task, and like `post_task` otherwise; both closures are handed back.
    /// If the origin sequence refuses the reply (shutdown), the reply is dropped unrun on this
    /// runner's side: it is `Send`, so that is sound (Chromium leaks it instead).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let (o2, target) = (origin.clone(), r.clone());
    /// origin.post_task(move || {
    ///     target.post_task_and_reply(|| (), move || tx.send(o2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// }).unwrap();
    /// assert!(rx.recv().unwrap()); // the reply ran on the origin sequence
    /// ```
    #[track_caller]
    pub fn post_task_and_reply<F, R>(&self, task: F, reply: R) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() + Send + 'static,
        R: FnOnce() + Send + 'static,
    {
        Inner::post_and_reply(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            task,
            |t| t,
            ReplyFn(reply),
            Location::caller(),
        )
        .map_err(|e| e.map(|(t, r)| (t, r.0)))
    }

    /// Runs `task` here, then runs `reply(value)` on the sequence that called this, with the
    /// task's value moved (not shared) into the reply. Refusals as in
    /// [`post_task_and_reply`](Self::post_task_and_reply).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let target = r.clone();
    /// origin.post_task(move || {
    ///     target.post_task_and_reply_with_result(|| vec![1, 2, 3], move |v: Vec<i32>| tx.send(v.len()).unwrap()).unwrap();
    /// }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 3);
    /// ```
    #[track_caller]
    pub fn post_task_and_reply_with_result<F, T, R>(
        &self,
        task: F,
        reply: R,
    ) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        Inner::post_and_reply(
            self.pool.inner(),
            PostDest::Parallel(self.traits),
            task,
            |t| t,
            reply,
            Location::caller(),
        )
    }

    /// The traits every task of this runner gets.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits, TaskPriority};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let t = TaskTraits::new().priority(TaskPriority::BestEffort);
    /// assert_eq!(pool.create_task_runner(t).traits(), t);
    /// ```
    pub fn traits(&self) -> TaskTraits {
        self.traits
    }
}
