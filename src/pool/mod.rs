//! `ThreadPool`: the public facade of a pool, its builder and the process-wide pool. The
//! machinery behind it is the engine (`src/engine/`).

mod builder;
mod fence;
pub(crate) mod global;

use std::fmt;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

pub use crate::engine::{ShutdownTimedOut, TaskPanic};
pub use builder::ThreadPoolBuilder;
pub use fence::Fence;

use crate::base::clock::Clock;
use crate::base::error::PostError;
use crate::base::shim::Arc;
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::metrics::PoolMetrics;
use crate::engine::{Config, Engine, PoolRef, PostDest};
use crate::handle::TaskHandle;

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
#[derive(Clone)]
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
            r: PoolRef::new(Arc::new(Engine::new(max_workers, be, config, clock))),
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
        Engine::post(
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
        Engine::post(
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
        Engine::post_with_result(
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
        Engine::post_with_result(
            self.r.inner(),
            PostDest::Parallel(traits),
            delay,
            f,
            Location::caller(),
        )
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
        let _ = Engine::shutdown_and_wait(self.r.inner(), None);
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
        Engine::shutdown_and_wait(self.r.inner(), Some(timeout))
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

    /// Blocks until no task is queued or running on the pool: everything posted before the
    /// call, through any of its runners, has run (or was dropped unrun: a closed runner, a
    /// poisoned sequence), and so has anything posted meanwhile. Delayed tasks that are not
    /// due are not waited for; once one ripens it is waited for like the others. This is
    /// Chromium's `FlushForTesting`: meant for tests and for quiet points of a program, since
    /// a pool that never runs out of work never flushes. Returns once shutdown has completed.
    ///
    /// From a task of another pool the wait is a blocking scope there.
    ///
    /// # Panics
    ///
    /// If called from a task of this pool (it would wait for itself), or on the thread that
    /// drives a seeded single-thread `TestEnvironment`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for i in 0..50 {
    ///     let n = n.clone();
    ///     let bump = move || { n.fetch_add(1, Ordering::SeqCst); };
    ///     if i % 2 == 0 { pool.post_task(TaskTraits::default(), bump).unwrap() } else { seq.post_task(bump).unwrap() }
    /// }
    /// pool.flush();
    /// assert_eq!(n.load(Ordering::SeqCst), 50);
    /// ```
    pub fn flush(&self) {
        let e = self.r.inner();
        if let Some(current) = crate::engine::current::current_pool() {
            assert!(
                !Arc::ptr_eq(&current, e) || !crate::engine::current::in_task(),
                "ThreadPool::flush called from a task of the same pool would wait for itself: \
                 flush from outside the pool, or wait for the specific work (a TaskHandle, a \
                 runner's flush) instead"
            );
        }
        crate::engine::check_can_block("ThreadPool::flush");
        if e.flow.is_idle() || e.tracker.shutdown_completed() {
            return;
        }
        crate::engine::blocking_unchecked(|| {
            let mut pause = Duration::from_micros(20);
            while !e.flow.is_idle() && !e.tracker.shutdown_completed() {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
        });
    }

    /// A snapshot of what the pool is doing: workers, queued and delayed tasks, and counts of
    /// tasks started, panicked and refused. See [`PoolMetrics`] for each figure.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// pool.post_task_with_result(TaskTraits::default(), || ()).unwrap().join().unwrap();
    /// assert_eq!(pool.metrics().tasks_started(), 1);
    /// ```
    pub fn metrics(&self) -> PoolMetrics {
        let e = self.r.inner();
        let ready = [
            e.group.ready_len(TaskPriority::BestEffort),
            e.group.ready_len(TaskPriority::UserVisible),
            e.group.ready_len(TaskPriority::UserBlocking),
        ];
        PoolMetrics::new(
            &e.counters,
            e.group.worker_counts(),
            ready,
            (e.delay.len(), e.delay.dropped(), e.delay.wakeups()),
        )
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
    pub(crate) fn pool_inner(&self) -> &Arc<Engine> {
        self.r.inner()
    }

    /// Where `PostTask` posts on a pool go: one-off tasks with default traits.
    pub(crate) fn post_dest(&self) -> PostDest<'_> {
        PostDest::Parallel(TaskTraits::default())
    }
}

/// The pool's settings and a [`metrics`](ThreadPool::metrics) snapshot.
///
/// ```
/// let pool = taskrunner::ThreadPool::builder().max_workers(3).build().unwrap();
/// let shown = format!("{pool:?}");
/// assert!(shown.contains("max_workers: 3") && shown.contains("tasks_started: 0"), "{shown}");
/// ```
impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.r.inner();
        f.debug_struct("ThreadPool")
            .field("name", &e.config.name_prefix)
            .field("max_workers", &e.group.max_workers)
            .field("max_best_effort_workers", &e.group.max_best_effort)
            .field("shutdown_started", &e.tracker.shutdown_started())
            .field("metrics", &self.metrics())
            .finish()
    }
}
