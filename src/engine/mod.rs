//! The engine: what runs behind every [`ThreadPool`](crate::ThreadPool). It takes posts into
//! the ready queues ([`core`]: posting, forwarding, running one task), keeps the sequences'
//! state ([`scheduler`]), runs the worker threads ([`worker`]), holds delayed tasks until they
//! are ripe ([`delay`]), and shuts down ([`shutdown`]). The thread-local context of the running
//! task ([`current`]), the unit of work ([`task`]) and the shutdown accounting ([`tracker`])
//! live here too.
//!
//! Nothing in this folder imports the layers above it (the facade, runners, handles, time and
//! the rest): they reach the engine through [`Engine`]'s methods and the types re-exported
//! here.

pub(crate) mod blocking;
mod core;
pub(crate) mod current;
pub(crate) mod delay;
pub(crate) mod gate;
pub(crate) mod metrics;
pub(crate) mod panics;
pub(crate) mod runner_stats;
pub(crate) mod scheduler;
mod shutdown;
pub(crate) mod task;
pub(crate) mod times;
pub(crate) mod tracker;
pub(crate) mod worker;

// ---- the seam -------------------------------------------------------------------------------
// What the layers above the runners (`sync`, `time`, `retry`, `fork_join`, `executor`, `batch`,
// `registry`) take from the engine: the waiting rules every blocking wait follows, panic
// reporting, the running task's context, and (for timers and the batcher) posting a task at a
// time. They import these names from `crate::engine`, never from its submodules.
pub(crate) use self::blocking::{blocking_unchecked, check_can_block, check_not_own_sequence};
#[cfg(feature = "test-util")]
pub(crate) use self::current::drives_test_env;
#[cfg(feature = "batch")]
pub(crate) use self::current::{current_sequence, may_block};
pub(crate) use self::current::{current_token, running_sequence_ref};
pub(crate) use self::delay::{DelayId, Destination};
pub(crate) use self::panics::report_task_panic;
pub(crate) use self::scheduler::Sequence;
pub(crate) use self::task::{BoxedFn, Task};

use std::fmt;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::Duration;

pub(crate) use self::core::Engine;
use crate::base::shim::{Arc, Ordering};
use crate::base::traits::TaskTraits;
use crate::engine::worker::RunningTask;

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
    runner: Option<StdArc<str>>,
}

impl TaskPanic {
    pub(crate) fn new(
        message: String,
        posted_from: &'static Location<'static>,
        runner: Option<StdArc<str>>,
    ) -> Self {
        TaskPanic {
            message,
            posted_from,
            runner,
        }
    }

    /// The name of the runner the task ran on, if it was given one
    /// ([`SequencedTaskRunner::named`](crate::SequencedTaskRunner::named)).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let (tx, rx) = mpsc::channel();
    /// let pool = ThreadPool::builder()
    ///     .max_workers(1)
    ///     .panic_handler(move |p| tx.send(p.runner_name().map(str::to_owned)).unwrap())
    ///     .build()
    ///     .unwrap();
    /// let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
    /// db.post_task(|| panic!("lost the connection")).unwrap();
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("db"));
    /// ```
    pub fn runner_name(&self) -> Option<&str> {
        self.runner.as_deref()
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
    /// How late a flexible delayed task may run (`ThreadPoolBuilder::timer_leeway`).
    pub(crate) timer_leeway: Duration,
    /// Built with `build_not_started`: nothing runs until `ThreadPool::start`.
    pub(crate) not_started: bool,
    /// A tokio runtime that futures' polls enter (`ThreadPoolBuilder::tokio_handle`).
    #[cfg(feature = "tokio")]
    pub(crate) tokio: Option<tokio::runtime::Handle>,
    /// The pool belongs to a test environment: it counts its tasks.
    #[cfg(feature = "test-util")]
    pub(crate) test_hooks: bool,
    /// Time one task in this many (per posting thread); 0: none.
    pub(crate) sample_task_times: u32,
}

impl Config {
    /// The name of worker `index`. A user naming function that panics falls back to the
    /// default name (a panic here would unwind through the scheduler), and NUL bytes, which
    /// thread names cannot hold, are replaced.
    pub(crate) fn thread_name(&self, index: usize) -> String {
        let name = self
            .thread_name
            .as_ref()
            .and_then(|f| crate::base::unwind::catch(|| f(index)).ok());
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
    /// A parallel runner's one-off task, carrying the runner.
    Runner(&'a Arc<scheduler::ParallelRunner>),
}

/// A counted handle to the pool: when the last one drops, the pool winds down (queued
/// immediate tasks still run, pending delayed tasks are dropped, threads exit).
pub(crate) struct PoolRef(Arc<Engine>);

impl PoolRef {
    pub(crate) fn new(inner: Arc<Engine>) -> Self {
        if inner.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            // First handle, or a handle coming back after the last one dropped.
            Engine::handle_revived(&inner);
        }
        PoolRef(inner)
    }

    pub(crate) fn from_inner(inner: &Arc<Engine>) -> Self {
        Self::new(Arc::clone(inner))
    }

    pub(crate) fn inner(&self) -> &Arc<Engine> {
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
            Engine::last_handle_dropped(&self.0);
        }
    }
}

impl fmt::Debug for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An opaque reference to a pool (see `PostTask::pool_link`); nothing to do with it outside
/// the crate.
#[doc(hidden)]
#[derive(Clone, Debug)]
#[cfg_attr(loom, allow(dead_code))]
pub struct PoolLink(pub(crate) Arc<Engine>);

impl PoolLink {
    /// The pool, as its handles see it.
    #[cfg(feature = "test-util")]
    pub(crate) fn handle_host(&self) -> Arc<Engine> {
        Arc::clone(&self.0)
    }
}
