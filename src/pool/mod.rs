//! `ThreadPool`: the public facade of a pool. The engine behind it (posting, forwarding,
//! running) is `engine.rs`; the shutdown protocol and the pool's lifetime are `shutdown.rs`.

mod builder;
mod engine;
pub(crate) mod global;
mod shutdown;

use std::fmt;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

pub use builder::ThreadPoolBuilder;
pub(crate) use engine::Inner;

use crate::clock::Clock;
use crate::error::PostError;
use crate::handle::TaskHandle;
use crate::runner::{
    SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner, UpdateableSequencedTaskRunner,
};
use crate::scheduler::{Home, Sequence};
use crate::shim::{Arc, Ordering};
use crate::traits::TaskTraits;
use crate::worker::{Dedicated, RunningTask};

pub(crate) type PanicHandler = StdArc<dyn Fn(&TaskPanic) + Send + Sync + 'static>;

/// A task's panic, as given to the pool's panic handler.
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use taskrunner::{PostTask, ThreadPool, TaskTraits, ShutdownBehavior};
/// let seen = Arc::new(Mutex::new(None));
/// let s2 = seen.clone();
/// let pool = ThreadPool::builder()
///     .max_workers(1)
///     .panic_handler(move |p| *s2.lock().unwrap() = Some((p.message().to_owned(), p.posted_from().line())))
///     .build()
///     .unwrap();
/// let line = line!() + 1;
/// pool.post_task(TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown), || panic!("oops")).unwrap();
/// pool.shutdown();
/// assert_eq!(*seen.lock().unwrap(), Some(("oops".to_owned(), line)));
/// ```
#[derive(Debug)]
pub struct TaskPanic {
    message: String,
    posted_from: &'static Location<'static>,
}

impl TaskPanic {
    pub(crate) fn new(message: String, posted_from: &'static Location<'static>) -> Self {
        TaskPanic {
            message,
            posted_from,
        }
    }

    /// The panic message (`"<non-string panic payload>"` if the payload was not a string).
    ///
    /// See [`TaskPanic`] for an example.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panicking task was posted from.
    ///
    /// See [`TaskPanic`] for an example.
    pub fn posted_from(&self) -> &'static Location<'static> {
        self.posted_from
    }
}

/// `shutdown_timeout` gave up waiting: what was still running or pending then.
///
/// ```
/// # use std::time::Duration;
/// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let (started_tx, started) = std::sync::mpsc::channel();
/// pool.post_task(TaskTraits::default(), move || { started_tx.send(()).unwrap(); let _ = rx.recv(); }).unwrap();
/// started.recv().unwrap();
/// let err = pool.shutdown_timeout(Duration::from_millis(20)).unwrap_err();
/// assert_eq!(err.running().len(), 1);
/// drop(tx); // let the task finish; shutdown then completes by itself
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownTimedOut {
    running: Vec<RunningTask>,
    pending: usize,
}

impl ShutdownTimedOut {
    pub(crate) fn new(running: Vec<RunningTask>, pending: usize) -> Self {
        ShutdownTimedOut { running, pending }
    }

    /// The tasks that were running when the timeout expired.
    ///
    /// See [`ShutdownTimedOut`] for an example.
    pub fn running(&self) -> &[RunningTask] {
        &self.running
    }

    /// The number of things shutdown was still waiting for: running skip-on-shutdown tasks,
    /// plus block-shutdown tasks not yet run.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.shutdown_timeout(std::time::Duration::from_secs(1)).is_ok());
    /// ```
    pub fn pending_items(&self) -> usize {
        self.pending
    }
}

impl fmt::Display for ShutdownTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread pool shutdown timed out with {} item(s) blocking it; still running:",
            self.pending
        )?;
        for r in &self.running {
            write!(
                f,
                " [{:?} {:?} task posted from {}]",
                r.priority, r.shutdown_behavior, r.posted_from
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownTimedOut {}

pub(crate) struct Config {
    pub(crate) name_prefix: String,
    pub(crate) thread_name: Option<StdArc<dyn Fn(usize) -> String + Send + Sync>>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) idle_timeout: Duration,
    /// A tokio runtime that futures' polls enter (`ThreadPoolBuilder::tokio_handle`).
    #[cfg(feature = "tokio")]
    pub(crate) tokio: Option<tokio::runtime::Handle>,
    /// The pool belongs to a test environment: it counts its tasks.
    #[cfg(feature = "test-util")]
    pub(crate) test_hooks: bool,
}

impl Config {
    /// The name of worker `index`. A user naming function that panics falls back to the
    /// default name (a panic here would unwind through the scheduler), and NUL bytes, which
    /// thread names cannot hold, are replaced.
    pub(crate) fn thread_name(&self, index: usize) -> String {
        let name = self
            .thread_name
            .as_ref()
            .and_then(|f| crate::unwind::catch(|| f(index)).ok());
        sanitize(name.unwrap_or_else(|| format!("{}-worker-{index}", self.name_prefix)))
    }

    pub(crate) fn service_thread_name(&self) -> String {
        sanitize(format!("{}-delay", self.name_prefix))
    }

    pub(crate) fn dedicated_thread_name(&self, index: usize) -> String {
        sanitize(format!("{}-single-{index}", self.name_prefix))
    }
}

fn sanitize(name: String) -> String {
    if name.contains('\0') {
        name.replace('\0', "?")
    } else {
        name
    }
}

/// Where a post goes.
pub(crate) enum PostDest<'a> {
    Sequence(&'a Arc<Sequence>),
    Parallel(TaskTraits),
}

/// A counted handle to the pool: when the last one drops, the pool winds down (queued
/// immediate tasks still run, pending delayed tasks are dropped, threads exit).
pub(crate) struct PoolRef(Arc<Inner>);

impl PoolRef {
    fn new(inner: Arc<Inner>) -> Self {
        if inner.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            // First handle, or a handle coming back after the last one dropped.
            Inner::handle_revived(&inner);
        }
        PoolRef(inner)
    }

    pub(crate) fn from_inner(inner: &Arc<Inner>) -> Self {
        Self::new(Arc::clone(inner))
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.0
    }
}

impl Clone for PoolRef {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        PoolRef(Arc::clone(&self.0))
    }
}

impl Drop for PoolRef {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            Inner::last_handle_dropped(&self.0);
        }
    }
}

impl fmt::Debug for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A pool of worker threads with a priority scheduler, sequenced runners and a delay manager.
///
/// Build one with [`ThreadPool::builder`] (for a library or a test), or use the process-wide
/// pool through [`ThreadPool::global`] and the crate's free functions. Cloning is cheap (a
/// reference count); all clones and all runners created from the pool share it.
///
/// **Lifetime.** [`shutdown`](ThreadPool::shutdown) applies Chromium's contract (see
/// [`ShutdownBehavior`](crate::ShutdownBehavior)). Without it, when the last `ThreadPool` clone and the last runner of a
/// non-global pool are dropped, the pool winds down like rayon's: tasks already queued still
/// run, pending delayed tasks are dropped unrun, and the threads exit once idle.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskPriority};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::UserVisible));
/// let (tx, rx) = mpsc::channel();
/// for i in 0..5 {
///     let tx = tx.clone();
///     seq.post_task(move || tx.send(i).unwrap()).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
/// pool.shutdown();
/// ```
#[derive(Clone, Debug)]
pub struct ThreadPool {
    r: PoolRef,
}

impl ThreadPool {
    pub(crate) fn from_parts(
        max_workers: usize,
        be: usize,
        config: Config,
        clock: StdArc<dyn Clock>,
    ) -> Self {
        ThreadPool {
            r: PoolRef::new(Arc::new(Inner::new(max_workers, be, config, clock))),
        }
    }

    /// A builder with the defaults.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert_eq!(pool.max_workers(), 1);
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The process-wide pool. Built with the defaults on first use unless
    /// [`ThreadPoolBuilder::build_global`] installed one first.
    ///
    /// ```
    /// let g = taskrunner::ThreadPool::global();
    /// assert!(g.max_workers() >= 1);
    /// ```
    pub fn global() -> &'static ThreadPool {
        global::get()
    }

    /// Posts a one-off task that runs in parallel with everything else (no ordering).
    ///
    /// Refused (closure handed back) once shutdown has started, unless `traits` say
    /// `BlockShutdown` and shutdown has not completed. A panic in the task is caught, reported,
    /// and does not affect the worker.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.post_task(TaskTraits::default(), move || tx.send("hi").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hi");
    /// ```
    #[track_caller]
    pub fn post_task<F>(&self, traits: TaskTraits, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.r.inner(),
            PostDest::Parallel(traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a one-off task that runs no sooner than `delay` from now (by the pool's clock).
    /// Refused once shutdown has started (delayed tasks never block shutdown).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let start = Instant::now();
    /// pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(20), move || tx.send(Instant::now()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap() - start >= Duration::from_millis(20));
    /// ```
    #[track_caller]
    pub fn post_delayed_task<F>(
        &self,
        traits: TaskTraits,
        delay: Duration,
        f: F,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.r.inner(),
            PostDest::Parallel(traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// Posts a one-off parallel task and returns a [`TaskHandle`] to its result.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || "hello".len()).unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn post_task_with_result<F, T>(
        &self,
        traits: TaskTraits,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.r.inner(),
            PostDest::Parallel(traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a delayed one-off task and returns a [`TaskHandle`] to its result.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(5), || 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post_delayed_task_with_result<F, T>(
        &self,
        traits: TaskTraits,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.r.inner(),
            PostDest::Parallel(traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// A runner whose tasks run in parallel, in no particular order.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// r.post_task(move || tx.send(5).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn create_task_runner(&self, traits: TaskTraits) -> TaskRunner {
        TaskRunner::new(self.r.clone(), traits)
    }

    /// A runner whose tasks run one at a time, in posting order, on any worker.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_task(move || tx.send(s2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn create_sequenced_task_runner(&self, traits: TaskTraits) -> SequencedTaskRunner {
        SequencedTaskRunner::new(self.r.clone(), traits)
    }

    /// A sequenced runner whose priority can be updated later (see
    /// [`UpdateableSequencedTaskRunner`]).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskPriority, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::UserVisible.into());
    /// assert_eq!(seq.priority(), TaskPriority::UserVisible);
    /// ```
    pub fn create_updateable_sequenced_task_runner(
        &self,
        traits: TaskTraits,
    ) -> UpdateableSequencedTaskRunner {
        UpdateableSequencedTaskRunner::new(self.r.clone(), traits)
    }

    /// A runner with a dedicated thread of its own. The thread is joined when the last clone of
    /// the runner (or of a view from `as_sequenced`) is dropped outside the pool's threads
    /// (after it has run what was queued), or by `shutdown()`. Created after shutdown started,
    /// the runner has no thread and refuses every post.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// for _ in 0..2 {
    ///     let tx = tx.clone();
    ///     st.post_task(move || tx.send(std::thread::current().id()).unwrap()).unwrap();
    /// }
    /// assert_eq!(rx.recv().unwrap(), rx.recv().unwrap());
    /// ```
    pub fn create_single_thread_task_runner(&self, traits: TaskTraits) -> SingleThreadTaskRunner {
        let inner = self.r.inner();
        let index = inner.next_dedicated.fetch_add(1, Ordering::Relaxed);
        let d = Arc::new(Dedicated::new());
        let seq = Arc::new(Sequence::new(traits, Home::Dedicated(Arc::clone(&d))));
        if inner.tracker.shutdown_started() {
            // No thread: every post is refused (by shutdown, or as ThreadExited).
            d.mark_dead(false);
            return SingleThreadTaskRunner::new(self.r.clone(), seq, d);
        }
        #[cfg(feature = "test-util")]
        if inner.group.is_manual() {
            // Seeded single-thread test mode: every task runs on the test thread, so the
            // "dedicated thread" is that thread and the sequence competes in the group like any
            // other (thread affinity holds trivially).
            d.adopt_current_thread();
            let seq = Arc::new(Sequence::new(traits, Home::Pool));
            return SingleThreadTaskRunner::new(self.r.clone(), seq, d);
        }
        inner.dedicated.lock().push(Arc::clone(&d));
        #[cfg(not(loom))]
        if !Dedicated::start(
            inner,
            &d,
            Arc::clone(&seq),
            inner.config.dedicated_thread_name(index),
            inner.config.stack_size,
        ) {
            inner.forget_dedicated(&d);
        }
        SingleThreadTaskRunner::new(self.r.clone(), seq, d)
    }

    /// Shuts the pool down and blocks until shutdown completes (Chromium's contract):
    ///
    /// 1. From now on posts are refused, except immediate `BlockShutdown` tasks (until
    ///    completion); pending delayed tasks are dropped unrun.
    /// 2. Queued `SkipOnShutdown` / `ContinueOnShutdown` tasks never run (they are dropped).
    /// 3. Running `SkipOnShutdown` tasks and every `BlockShutdown` task posted before completion
    ///    run to the end, and this call waits for them.
    /// 4. Running `ContinueOnShutdown` tasks are not waited for.
    ///
    /// Then worker threads are joined (except any still running a continue-on-shutdown task).
    /// Idempotent. Panics if called from inside a task of this pool (it would wait for itself);
    /// use [`shutdown_timeout`](ThreadPool::shutdown_timeout) there. Called on one of the
    /// pool's own threads outside a task (a destructor of a task the pool discards), it starts
    /// shutdown and returns without waiting: that thread may be what shutdown waits for.
    ///
    /// Work that no thread can run (the pool's worker threads cannot be started) does not hold
    /// shutdown up: it is discarded, and its handles resolve as not run.
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits, ShutdownBehavior};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r2 = ran.clone();
    /// let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    /// pool.post_task(block, move || r2.store(true, Ordering::SeqCst)).unwrap();
    /// pool.shutdown();
    /// assert!(ran.load(Ordering::SeqCst)); // block-shutdown work always runs
    /// assert!(pool.post_task(TaskTraits::default(), || ()).is_err());
    /// ```
    pub fn shutdown(&self) {
        let _ = Inner::shutdown_and_wait(self.r.inner(), None);
    }

    /// Like [`shutdown`](ThreadPool::shutdown) but gives up waiting after `timeout` and reports
    /// what was still running. Shutdown still completes later, by itself, when those finish.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(1)).is_ok());
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), ShutdownTimedOut> {
        Inner::shutdown_and_wait(self.r.inner(), Some(timeout))
    }

    /// `true` once shutdown has started.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.r.inner().tracker.shutdown_started()
    }

    /// The most workers that run at once.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert_eq!(ThreadPool::builder().max_workers(3).build().unwrap().max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.r.inner().group.max_workers
    }

    /// The most best-effort tasks that run at once.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert_eq!(ThreadPool::builder().max_workers(8).build().unwrap().max_best_effort_workers(), 2);
    /// ```
    pub fn max_best_effort_workers(&self) -> usize {
        self.r.inner().group.max_best_effort
    }

    /// Worker threads alive right now (workers start lazily and exit when idle too long).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.live_workers(), 0); // nothing posted yet
    /// ```
    pub fn live_workers(&self) -> usize {
        self.r.inner().group.workers().len()
    }

    /// Delayed tasks waiting in the delay manager.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ()).unwrap();
    /// assert_eq!(pool.pending_delayed_tasks(), 1);
    /// ```
    pub fn pending_delayed_tasks(&self) -> usize {
        self.r.inner().delay.len()
    }

    /// "Now" by this pool's clock.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().build().unwrap();
    /// assert!(pool.now() <= std::time::Instant::now());
    /// ```
    pub fn now(&self) -> Instant {
        self.r.inner().clock.now()
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn from_ref(r: PoolRef) -> Self {
        ThreadPool { r }
    }

    pub(crate) fn pool_ref(&self) -> &PoolRef {
        &self.r
    }

    /// The engine, for the `PostTask` implementation shared with the runners.
    pub(crate) fn pool_inner(&self) -> &Arc<Inner> {
        self.r.inner()
    }

    /// Where `PostTask` posts on a pool go: one-off tasks with default traits.
    pub(crate) fn post_dest(&self) -> PostDest<'_> {
        PostDest::Parallel(TaskTraits::default())
    }
}
