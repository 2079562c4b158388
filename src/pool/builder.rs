//! `ThreadPoolBuilder`: worker count, names, clock, panic handler.

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Duration;

use crate::base::clock::{Clock, SystemClock};
use crate::base::error::{BuildError, BuildErrorKind};
use crate::engine::{Config, PanicHandler};
use crate::pool::{TaskPanic, ThreadPool};

/// Configures and builds a [`ThreadPool`].
///
/// Defaults: `max_workers` = available parallelism; `max_best_effort_workers` =
/// `max(1, min(2, max_workers - 1))` (so best-effort work never occupies every worker when
/// there are at least two); thread names `taskrunner-worker-N`; [`SystemClock`]; idle workers
/// exit after 30 s; panics are reported through `tracing` only.
///
/// ```
/// use taskrunner::ThreadPool;
/// let pool = ThreadPool::builder().max_workers(2).thread_name("app").build().unwrap();
/// assert_eq!(pool.max_workers(), 2);
/// assert_eq!(pool.max_best_effort_workers(), 1);
/// ```
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    max_best_effort: Option<usize>,
    thread_name: Option<StdArc<dyn Fn(usize) -> String + Send + Sync>>,
    name_prefix: String,
    stack_size: Option<usize>,
    clock: StdArc<dyn Clock>,
    panic_handler: Option<PanicHandler>,
    idle_timeout: Duration,
    sample_task_times: u32,
    timer_leeway: Duration,
    #[cfg(feature = "tokio")]
    tokio: Option<tokio::runtime::Handle>,
    #[cfg(feature = "test-util")]
    test_hooks: bool,
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        ThreadPoolBuilder {
            max_workers: None,
            max_best_effort: None,
            thread_name: None,
            name_prefix: "taskrunner".to_owned(),
            stack_size: None,
            clock: StdArc::new(SystemClock),
            panic_handler: None,
            idle_timeout: Duration::from_secs(30),
            sample_task_times: 64,
            timer_leeway: Duration::from_millis(8),
            #[cfg(feature = "tokio")]
            tokio: None,
            #[cfg(feature = "test-util")]
            test_hooks: false,
        }
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("max_best_effort", &self.max_best_effort)
            .field("name_prefix", &self.name_prefix)
            .field("stack_size", &self.stack_size)
            .field("clock", &self.clock)
            .field("idle_timeout", &self.idle_timeout)
            .field("sample_task_times", &self.sample_task_times)
            .finish_non_exhaustive()
    }
}

impl ThreadPoolBuilder {
    /// The largest `max_workers` a pool accepts.
    ///
    /// ```
    /// # use taskrunner::ThreadPoolBuilder;
    /// let err = ThreadPoolBuilder::new().max_workers(usize::MAX).build().unwrap_err();
    /// assert!(err.is_invalid_config());
    /// assert!(err.to_string().contains(&ThreadPoolBuilder::MAX_WORKERS.to_string()));
    /// ```
    pub const MAX_WORKERS: usize = crate::base::error::MAX_WORKERS;

    /// A builder with the defaults.
    ///
    /// ```
    /// let b = taskrunner::ThreadPoolBuilder::new();
    /// assert!(b.max_workers(1).build().is_ok());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The most workers (OS threads) the pool will run at once. Must be at least 1.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert_eq!(ThreadPool::builder().max_workers(3).build().unwrap().max_workers(), 3);
    /// ```
    #[must_use]
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// The most `BestEffort` tasks that run at once (Chromium's max best-effort tasks). Must be
    /// between 1 and `max_workers`; keep it below `max_workers` so higher priorities always find
    /// a free worker.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(4).max_best_effort_workers(1).build().unwrap();
    /// assert_eq!(pool.max_best_effort_workers(), 1);
    /// ```
    #[must_use]
    pub fn max_best_effort_workers(mut self, n: usize) -> Self {
        self.max_best_effort = Some(n);
        self
    }

    /// Names worker threads `{prefix}-worker-{index}` (and the delay thread `{prefix}-delay`).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).thread_name("app").build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.post_task(TaskTraits::default(), move || {
    ///     tx.send(std::thread::current().name().map(str::to_owned)).unwrap();
    /// }).unwrap();
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("app-worker-0"));
    /// ```
    #[must_use]
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// Names worker threads with a function of the worker index.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().thread_name_fn(|i| format!("w{i}")).build().unwrap();
    /// # drop(pool);
    /// ```
    #[must_use]
    pub fn thread_name_fn(mut self, f: impl Fn(usize) -> String + Send + Sync + 'static) -> Self {
        self.thread_name = Some(StdArc::new(f));
        self
    }

    /// Stack size of worker and dedicated threads.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert!(ThreadPool::builder().stack_size(1 << 20).build().is_ok());
    /// ```
    #[must_use]
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// The clock every delayed task of this pool ripens against (default [`SystemClock`]).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::SystemClock;
    /// let pool = ThreadPool::builder().clock(SystemClock).build().unwrap();
    /// # drop(pool);
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = StdArc::new(clock);
        self
    }

    /// The clock, shared with the caller (who may keep a handle to move a manual clock).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{SystemClock, Clock};
    /// let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    /// let pool = ThreadPool::builder().clock_arc(clock.clone()).build().unwrap();
    /// assert!(pool.now() <= clock.now());
    /// ```
    #[must_use]
    pub fn clock_arc(mut self, clock: StdArc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Called (on the worker) for every task that panics, after the panic is logged through
    /// `tracing`. A panic inside the handler is caught and logged.
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits, ShutdownBehavior};
    /// let panics = Arc::new(AtomicUsize::new(0));
    /// let p2 = panics.clone();
    /// let pool = ThreadPool::builder()
    ///     .max_workers(1)
    ///     .panic_handler(move |p| {
    ///         assert!(p.message().contains("boom"));
    ///         p2.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    /// pool.post_task(block, || panic!("boom")).unwrap();
    /// pool.shutdown();
    /// assert_eq!(panics.load(Ordering::SeqCst), 1);
    /// ```
    #[must_use]
    pub fn panic_handler(mut self, f: impl Fn(&TaskPanic) + Send + Sync + 'static) -> Self {
        self.panic_handler = Some(StdArc::new(f));
        self
    }

    /// How long an idle worker waits for work before its thread exits (default 30 s). Workers
    /// are re-created on demand.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// assert!(ThreadPool::builder().idle_timeout(Duration::from_secs(5)).build().is_ok());
    /// ```
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How many tasks the pool times: one in `every` posted from each thread (default 64;
    /// rounded up to a power of two), every task with 1, none with 0. A timed task costs three reads of the clock (when it
    /// is queued, starts and ends) and two atomic adds; its waiting and running times go into
    /// the histograms of [`PoolMetrics::queue_time`](crate::PoolMetrics::queue_time) and
    /// [`run_time`](crate::PoolMetrics::run_time), and into its runner's if the runner is
    /// named. While `taskrunner::task` spans are traced, every task is timed.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).sample_task_times(1).build().unwrap();
    /// for _ in 0..3 { pool.post_task(TaskTraits::default(), || ()).unwrap(); }
    /// pool.flush();
    /// assert_eq!(pool.metrics().run_time().count(), 3);
    /// ```
    #[must_use]
    pub fn sample_task_times(mut self, every: u32) -> Self {
        self.sample_task_times = every;
        self
    }

    /// How late a delayed task with [`DelayPolicy::FlexibleNoSooner`](crate::DelayPolicy) may
    /// be handed to the workers (default 8 ms, Chromium's default leeway; at most one hour):
    /// the delay thread then wakes once for all the flexible tasks that fall within one
    /// leeway, instead of once for each. Like any task, it then starts when a worker is free.
    /// Precise delayed tasks (the default policy) are not affected. In a test environment,
    /// flexible tasks run at their run time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{DelayPolicy, PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).timer_leeway(Duration::from_millis(20)).build().unwrap();
    /// let flexible = TaskTraits::new().delay_policy(DelayPolicy::FlexibleNoSooner);
    /// let h = pool.post_delayed_task_with_result(flexible, Duration::from_millis(1), || 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 7); // ran between 1 and about 21 ms from now
    /// ```
    #[must_use]
    pub fn timer_leeway(mut self, leeway: Duration) -> Self {
        // Capped, so that a run time plus the leeway is always a time the delay thread can
        // sleep until.
        self.timer_leeway = leeway.min(Duration::from_secs(3600));
        self
    }

    /// Futures posted to this pool (`post_future`, `post_local_future`) are polled inside this
    /// tokio runtime's context, so they may use tokio's timers and I/O (`tokio::time::sleep`,
    /// `tokio::net`). The runtime must outlive the futures that use it. Needs the `tokio`
    /// feature.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().unwrap();
    /// let pool = ThreadPool::builder().max_workers(1).tokio_handle(rt.handle().clone()).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_future(async {
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    ///     7
    /// }).unwrap();
    /// assert_eq!(h.join().unwrap(), 7);
    /// ```
    #[cfg(feature = "tokio")]
    #[must_use]
    pub fn tokio_handle(mut self, handle: tokio::runtime::Handle) -> Self {
        self.tokio = Some(handle);
        self
    }

    /// Test environments: the pool counts its tasks (see `TestHooks`).
    #[cfg(feature = "test-util")]
    pub(crate) fn with_test_hooks(mut self) -> Self {
        self.test_hooks = true;
        self
    }

    fn into_config(self) -> Result<(usize, usize, Config, StdArc<dyn Clock>), BuildError> {
        let max_workers = self
            .max_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if max_workers == 0 {
            return Err(BuildError::new(BuildErrorKind::ZeroWorkers));
        }
        if max_workers > Self::MAX_WORKERS {
            return Err(BuildError::new(BuildErrorKind::TooManyWorkers {
                max_workers,
            }));
        }
        let be = self
            .max_best_effort
            .unwrap_or_else(|| max_workers.saturating_sub(1).clamp(1, 2));
        if be == 0 || be > max_workers {
            return Err(BuildError::new(BuildErrorKind::BestEffortCap {
                cap: be,
                max_workers,
            }));
        }
        let config = Config {
            name_prefix: self.name_prefix,
            thread_name: self.thread_name,
            stack_size: self.stack_size,
            panic_handler: self.panic_handler,
            idle_timeout: self.idle_timeout,
            timer_leeway: self.timer_leeway,
            not_started: false,
            #[cfg(feature = "tokio")]
            tokio: self.tokio,
            #[cfg(feature = "test-util")]
            test_hooks: self.test_hooks,
            // Rounded up to a power of two: the pool picks the tasks it times by a mask.
            sample_task_times: match self.sample_task_times {
                0 => 0,
                every => every.checked_next_power_of_two().unwrap_or(1 << 31),
            },
        };
        Ok((max_workers, be, config, self.clock))
    }

    /// Builds a pool instance (for a library or a test). No thread starts until work arrives.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.post_task(TaskTraits::default(), move || tx.send(1).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let (max_workers, be, config, clock) = self.into_config()?;
        probe_thread_spawn(&config)?;
        Ok(ThreadPool::from_parts(max_workers, be, config, clock))
    }

    /// Builds a pool that accepts posts but runs nothing until
    /// [`ThreadPool::start`](crate::ThreadPool::start) (Chromium's "nothing runs before
    /// `Start`"): wire up components that post at start-up, then start. Delayed tasks ripen
    /// meanwhile and start with the rest. Shutdown, or dropping every handle, starts it
    /// implicitly (queued work is not silently lost).
    ///
    /// See [`ThreadPool::start`](crate::ThreadPool::start) for an example.
    pub fn build_not_started(self) -> Result<ThreadPool, BuildError> {
        let (max_workers, be, mut config, clock) = self.into_config()?;
        config.not_started = true;
        probe_thread_spawn(&config)?;
        Ok(ThreadPool::from_parts(max_workers, be, config, clock))
    }

    /// Builds the pool and installs it as the process-wide global pool used by the free
    /// functions ([`post_task`](crate::post_task) and friends). Fails if a global pool already
    /// exists, including one built lazily by [`ThreadPool::global`].
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// ThreadPool::builder().max_workers(2).build_global().unwrap();
    /// assert_eq!(ThreadPool::global().max_workers(), 2);
    /// assert!(ThreadPool::builder().build_global().unwrap_err().is_global_already_installed());
    /// ```
    pub fn build_global(self) -> Result<(), BuildError> {
        let pool = self.build()?;
        crate::pool::global::install(pool)
    }
}

/// Starts (and joins) one short-lived thread with the workers' name and stack size, so that a
/// pool whose threads can never start fails to build with a clear error instead of accepting
/// tasks it can never run. Workers themselves still start lazily.
#[cfg(not(loom))]
fn probe_thread_spawn(config: &Config) -> Result<(), BuildError> {
    #[allow(clippy::disallowed_methods)]
    let mut b = std::thread::Builder::new();
    if let Some(sz) = config.stack_size {
        b = b.stack_size(sz);
    }
    match b.spawn(|| ()) {
        Ok(h) => {
            let _ = h.join();
            Ok(())
        }
        Err(e) => Err(BuildError::new(BuildErrorKind::ThreadSpawn {
            error: e.to_string(),
        })),
    }
}

#[cfg(loom)]
fn probe_thread_spawn(_config: &Config) -> Result<(), BuildError> {
    Ok(())
}
