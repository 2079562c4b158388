//! Error types: refused posts hand the closure back; build errors say what was wrong.

use std::error::Error;
use std::fmt;

/// Holds a refused closure inside an error so that the error is `Sync` whatever the closure
/// captures (a `Receiver`, a `Cell`): the closure is only ever reached by value
/// ([`into_inner`](SyncCell::into_inner)), never shared, so wrapping it in a lock costs nothing
/// on the success path and makes `?` into `Box<dyn Error + Send + Sync>` or `anyhow::Error` work
/// for every closure. A plain std lock, not the loom shim: no protocol runs through it.
#[allow(clippy::disallowed_types)]
pub(crate) struct SyncCell<F>(std::sync::Mutex<F>);

#[allow(clippy::disallowed_types)]
impl<F> SyncCell<F> {
    pub(crate) fn new(f: F) -> Self {
        SyncCell(std::sync::Mutex::new(f))
    }

    pub(crate) fn into_inner(self) -> F {
        // A poisoned lock still holds the closure: nothing ever locks it, so it cannot be.
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a post was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PostRefusal {
    /// The pool's shutdown has started: only immediate `BlockShutdown` tasks are still
    /// accepted, until shutdown completes.
    ShutdownStarted,
    /// The pool's shutdown has completed: nothing is accepted any more.
    ShutdownCompleted,
    /// The runner's dedicated thread has exited (a `SingleThreadTaskRunner` view outlived the
    /// last runner handle that kept the thread alive).
    ThreadExited,
    /// `post_task_and_reply` (or `SequenceBound::async_call(..).then(..)`) was called outside a
    /// sequenced task, so there is no sequence to send the reply to.
    NoCurrentSequence,
    /// A task of this sequence panicked and the runner's [`PanicPolicy`](crate::PanicPolicy) is
    /// `Poison`: the sequence accepts no more work.
    SequencePoisoned,
    /// No thread could be started to run the task: the operating system refused to create the
    /// pool's worker threads (and none is alive), or the single-thread runner's thread. Each
    /// refused post retries the start first, so posts succeed again once threads can be made.
    ThreadSpawnFailed,
    /// The runner was closed (`SequencedTaskRunner::close`, `SingleThreadTaskRunner::close`):
    /// it accepts no more work, while the pool goes on.
    RunnerClosed,
    /// The runner's queue is full and its policy is [`QueuePolicy::Reject`](crate::QueuePolicy)
    /// (a [`BoundedRunner`](crate::BoundedRunner)).
    QueueFull,
}

/// A refused post. Holds the closure that was not posted, like crossbeam's `SendError`, so
/// nothing is lost silently: take it back with [`into_inner`](PostError::into_inner).
///
/// It is `Send + Sync + 'static` for every closure (the closure is only reachable by value), so
/// `?` converts it into `Box<dyn Error + Send + Sync>` or `anyhow::Error` whatever the closure
/// captures; it also converts into its [`PostRefusal`] reason.
///
/// ```
/// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// fn post(pool: &ThreadPool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     let (tx, rx) = std::sync::mpsc::channel::<u8>();
///     pool.post_task(TaskTraits::default(), move || { let _ = rx.recv(); })?; // `rx` is not Sync
///     drop(tx);
///     Ok(())
/// }
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// pool.shutdown();
/// assert!(post(&pool).unwrap_err().to_string().contains("shut down"));
/// ```
///
/// ```
/// use taskrunner::{PostTask, PostRefusal, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// pool.shutdown();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let err = pool.post_task(TaskTraits::default(), move || tx.send(42).unwrap()).unwrap_err();
/// assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
/// assert!(err.is_shutdown());
/// let f = err.into_inner(); // nothing was lost: run it here instead
/// f();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub struct PostError<F> {
    reason: PostRefusal,
    task: SyncCell<F>,
}

impl<F> PostError<F> {
    pub(crate) fn new(reason: PostRefusal, task: F) -> Self {
        PostError {
            reason,
            task: SyncCell::new(task),
        }
    }

    /// Why the post was refused.
    ///
    /// ```
    /// # use taskrunner::{PostTask, PostRefusal, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.shutdown();
    /// let err = pool.post_task(TaskTraits::default(), || ()).unwrap_err();
    /// assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    /// ```
    pub fn reason(&self) -> PostRefusal {
        self.reason
    }

    /// `true` if the post was refused because of shutdown (started or completed).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.shutdown();
    /// assert!(pool.post_task(TaskTraits::default(), || ()).unwrap_err().is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        matches!(
            self.reason,
            PostRefusal::ShutdownStarted | PostRefusal::ShutdownCompleted
        )
    }

    /// Maps the handed-back payload (used to unwrap internal adapters).
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> PostError<G> {
        PostError::new(self.reason, f(self.task.into_inner()))
    }

    /// Gives back the closure that was not posted.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.shutdown();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let f = pool.post_task(TaskTraits::default(), move || tx.send(7).unwrap()).unwrap_err().into_inner();
    /// f();
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        self.task.into_inner()
    }
}

impl<F> fmt::Debug for PostError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostError")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for PostError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl<F> Error for PostError<F> {}

impl<F> From<PostError<F>> for PostRefusal {
    /// The reason of a refusal (the closure is dropped).
    ///
    /// ```
    /// # use taskrunner::{PostTask, PostRefusal, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.shutdown();
    /// let reason: PostRefusal = pool.post_task(TaskTraits::default(), || ()).unwrap_err().into();
    /// assert_eq!(reason, PostRefusal::ShutdownCompleted);
    /// ```
    fn from(e: PostError<F>) -> Self {
        e.reason
    }
}

impl fmt::Display for PostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostRefusal::ShutdownStarted => f.write_str(
                "task refused: the thread pool is shutting down (only immediate BlockShutdown tasks are accepted)",
            ),
            PostRefusal::ShutdownCompleted => {
                f.write_str("task refused: the thread pool has shut down")
            }
            PostRefusal::ThreadExited => f.write_str(
                "task refused: the single-thread runner's dedicated thread has exited",
            ),
            PostRefusal::ThreadSpawnFailed => f.write_str(
                "task refused: no thread could be started to run it (the operating system refused to create one)",
            ),
            PostRefusal::SequencePoisoned => f.write_str(
                "task refused: a task of this sequence panicked and its panic policy is Poison",
            ),
            PostRefusal::RunnerClosed => {
                f.write_str("task refused: the runner was closed")
            }
            PostRefusal::QueueFull => {
                f.write_str("task refused: the runner's queue is full")
            }
            PostRefusal::NoCurrentSequence => f.write_str(
                "task refused: post-and-reply needs a current sequence to reply to; call it from a task of a sequenced or single-thread runner",
            ),
        }
    }
}

/// A [`PostRefusal`] is an error on its own too (`PostError` converts into it).
///
/// ```
/// let e: Box<dyn std::error::Error + Send + Sync> = taskrunner::PostRefusal::ShutdownStarted.into();
/// assert!(e.to_string().contains("shutting down"));
/// ```
impl Error for PostRefusal {}

/// The most worker threads a pool may have (`ThreadPoolBuilder::MAX_WORKERS`).
pub(crate) const MAX_WORKERS: usize = 32_768;

#[derive(Debug)]
pub(crate) enum BuildErrorKind {
    ZeroWorkers,
    BestEffortCap { cap: usize, max_workers: usize },
    TooManyWorkers { max_workers: usize },
    ThreadSpawn { error: String },
    GlobalAlreadyInstalled,
}

/// The thread pool could not be built or installed.
///
/// ```
/// use taskrunner::ThreadPool;
/// let err = ThreadPool::builder().max_workers(0).build().unwrap_err();
/// assert!(err.is_invalid_config());
/// assert!(err.to_string().contains("max_workers"));
/// ```
#[derive(Debug)]
pub struct BuildError {
    kind: BuildErrorKind,
}

impl BuildError {
    pub(crate) fn new(kind: BuildErrorKind) -> Self {
        BuildError { kind }
    }

    /// `true` if a global pool was already installed (or already built lazily by
    /// [`ThreadPool::global`](crate::ThreadPool::global)) when `build_global` was called.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let _ = ThreadPool::global(); // builds the default global pool
    /// let err = ThreadPool::builder().build_global().unwrap_err();
    /// assert!(err.is_global_already_installed());
    /// ```
    pub fn is_global_already_installed(&self) -> bool {
        matches!(self.kind, BuildErrorKind::GlobalAlreadyInstalled)
    }

    /// `true` if the builder's settings were invalid (zero workers or more than
    /// [`ThreadPoolBuilder::MAX_WORKERS`](crate::ThreadPoolBuilder::MAX_WORKERS), a best-effort
    /// cap of zero or above `max_workers`).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert!(ThreadPool::builder().max_workers(0).build().unwrap_err().is_invalid_config());
    /// ```
    pub fn is_invalid_config(&self) -> bool {
        matches!(
            self.kind,
            BuildErrorKind::ZeroWorkers
                | BuildErrorKind::BestEffortCap { .. }
                | BuildErrorKind::TooManyWorkers { .. }
        )
    }

    /// `true` if the pool's threads cannot be started: the operating system refused to create
    /// a worker thread with the builder's settings (for example a stack size it cannot map).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let err = ThreadPool::builder().stack_size(1 << 60).build().unwrap_err();
    /// assert!(err.is_thread_spawn());
    /// assert!(err.to_string().contains("could not start a worker thread"));
    /// ```
    pub fn is_thread_spawn(&self) -> bool {
        matches!(self.kind, BuildErrorKind::ThreadSpawn { .. })
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::ZeroWorkers => {
                f.write_str("invalid thread pool: max_workers must be at least 1")
            }
            BuildErrorKind::BestEffortCap { cap, max_workers } => write!(
                f,
                "invalid thread pool: max_best_effort_workers ({cap}) must be between 1 and max_workers ({max_workers})"
            ),
            BuildErrorKind::TooManyWorkers { max_workers } => write!(
                f,
                "invalid thread pool: max_workers ({max_workers}) must be between 1 and {}",
                MAX_WORKERS
            ),
            BuildErrorKind::ThreadSpawn { error } => write!(
                f,
                "invalid thread pool: could not start a worker thread with these settings: {error}"
            ),
            BuildErrorKind::GlobalAlreadyInstalled => f.write_str(
                "the global thread pool is already installed (build_global may be called once, before any use of the global pool)",
            ),
        }
    }
}

impl Error for BuildError {}
