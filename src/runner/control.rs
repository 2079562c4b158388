//! Per-runner control: a name, metrics, `flush`, `close`, `is_closed`, for the runners that own
//! a sequence and for parallel runners. The methods are documented on [`TaskRunner`],
//! [`SequencedTaskRunner`] and [`SingleThreadTaskRunner`]; they share these bodies.

use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::Duration;

use crate::base::error::PostRefusal;
use crate::base::shim::Arc;
use crate::engine::runner_stats::RunnerMetrics;
use crate::engine::scheduler::{ParallelRunner, Sequence};
use crate::engine::{check_can_block, check_not_own_sequence, Engine};
use crate::runner::{
    SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner, UpdateableSequencedTaskRunner,
};

/// Names the runner whose identity is `seq`; the first name registers its counters with the
/// pool (for `PoolMetrics::runners`).
pub(crate) fn name_runner(pool: &Arc<Engine>, seq: &Sequence, name: StdArc<str>) {
    if let Some(stats) = seq.set_name(name) {
        pool.counters.register_runner(&stats);
    }
}

/// Waits until none of the parallel runner `runner`'s tasks is queued or running (or the
/// pool's shutdown completed).
fn flush_parallel(pool: &Arc<Engine>, runner: &ParallelRunner) {
    assert!(
        crate::engine::current::parallel_runner() != Arc::as_ptr(&runner.seq) as usize,
        "TaskRunner::flush called from a task of the same runner would wait for itself: flush \
         from outside the runner, or wait for the specific work (a TaskHandle) instead"
    );
    check_can_block("TaskRunner::flush");
    let idle = || runner.in_flight() == 0 || pool.tracker.shutdown_completed();
    if idle() {
        return;
    }
    crate::engine::blocking_unchecked(|| {
        let mut pause = Duration::from_micros(20);
        while !idle() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    });
}

/// Waits until everything queued on `seq` before the call has run or been dropped.
fn flush(
    pool: &Arc<Engine>,
    seq: &Arc<Sequence>,
    what: &str,
    posted_from: &'static Location<'static>,
) -> Result<(), PostRefusal> {
    check_not_own_sequence(Some(seq.token), what);
    check_can_block(what);
    let marker = Engine::post_marker(pool, seq, posted_from)?;
    // `Err` when the marker itself was dropped (a closed runner, shutdown): its turn came all
    // the same, so everything before it has run or been dropped.
    let _ = marker.join();
    Ok(())
}

impl SequencedTaskRunner {
    /// Gives the runner a name (for all its clones): it appears as the `runner` field of its
    /// tasks' tracing spans, in the pool's panic reports
    /// ([`TaskPanic::runner_name`](crate::TaskPanic::runner_name)), in `Debug`, and in the
    /// runner's own [metrics](Self::metrics), which it keeps from then on (also listed in
    /// [`PoolMetrics::runners`](crate::PoolMetrics::runners)). A name given later replaces
    /// the earlier one and keeps the counts.
    ///
    /// A named runner's tasks are counted: each costs one more small allocation (the wrapper
    /// that carries the runner's counters) and a few atomic adds. Unnamed runners pay nothing.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
    /// assert_eq!(db.name().as_deref(), Some("db"));
    /// assert!(format!("{db:?}").contains("\"db\""));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        let (pool, seq) = self.parts();
        name_runner(pool, seq, name.into());
        self
    }

    /// The runner's name, if it was given one ([`named`](Self::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_sequenced_task_runner(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.parts().1.name()
    }

    /// A snapshot of the runner's own counts and times; `None` unless it was
    /// [named](Self::named). See [`RunnerMetrics`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(seq.metrics().is_none());
    /// let seq = seq.named("log");
    /// seq.post_task(|| ()).unwrap();
    /// seq.flush().unwrap();
    /// assert_eq!(seq.metrics().unwrap().ran(), 1);
    /// ```
    pub fn metrics(&self) -> Option<RunnerMetrics> {
        self.parts().1.stats().map(|s| s.snapshot())
    }

    /// Blocks until every task posted to this runner before the call has run (or been dropped:
    /// a closed runner, shutdown, a poisoned sequence). Delayed tasks that are not due yet are
    /// not waited for (as Chromium's `FlushForTesting`); a task posted meanwhile by another
    /// thread may or may not have run. It queues an empty task behind the others and waits
    /// for its turn, so it works on a closed runner too; on a pool worker the wait is a
    /// blocking scope.
    ///
    /// `Err` if that empty task is refused, and then nothing was waited for: the pool is
    /// shutting down (and this runner's tasks are not `BlockShutdown`), or the sequence was
    /// poisoned.
    ///
    /// # Panics
    ///
    /// If called from a task of this sequence (it would wait for itself), or on the thread
    /// that drives a seeded single-thread `TestEnvironment`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let n = n.clone();
    ///     seq.post_task(move || { n.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// }
    /// seq.flush().unwrap();
    /// assert_eq!(n.load(Ordering::SeqCst), 100);
    /// ```
    #[track_caller]
    pub fn flush(&self) -> Result<(), PostRefusal> {
        let (pool, seq) = self.parts();
        flush(pool, seq, "SequencedTaskRunner::flush", Location::caller())
    }

    /// Closes the runner, for every clone of it, while the pool goes on: later posts are
    /// refused with [`PostRefusal::RunnerClosed`] (the closure handed back), and the tasks
    /// already queued follow the runner's shutdown behaviour, as at pool shutdown:
    /// immediate `BlockShutdown` tasks still run, in order; the others never start (they are
    /// dropped, and their handles end as not run). A task running now finishes. Returns
    /// `true` if this call closed it. A post racing the close is either refused or queued
    /// and treated like the tasks already queued.
    ///
    /// ```
    /// use taskrunner::{PostRefusal, PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(seq.close());
    /// assert!(seq.is_closed());
    /// let err = seq.post_task(|| ()).unwrap_err();
    /// assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    /// // The pool and its other runners go on.
    /// assert!(pool.create_sequenced_task_runner(TaskTraits::default()).post_task(|| ()).is_ok());
    /// ```
    pub fn close(&self) -> bool {
        self.parts().1.close()
    }

    /// `true` once the runner was [closed](Self::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(Default::default());
    /// let view = seq.clone();
    /// seq.close();
    /// assert!(view.is_closed()); // every clone
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts().1.is_closed()
    }
}

impl SingleThreadTaskRunner {
    /// Gives the runner a name (for all its clones and views); as
    /// [`SequencedTaskRunner::named`].
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ui = pool.create_single_thread_task_runner(TaskTraits::default()).named("ui");
    /// assert_eq!(ui.name().as_deref(), Some("ui"));
    /// assert_eq!(ui.as_sequenced().name().as_deref(), Some("ui"));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        let (pool, seq) = self.parts();
        name_runner(pool, seq, name.into());
        self
    }

    /// The runner's name, if it was given one ([`named`](Self::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_single_thread_task_runner(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.parts().1.name()
    }

    /// The runner's own metrics if it was [named](Self::named); as
    /// [`SequencedTaskRunner::metrics`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ui = pool.create_single_thread_task_runner(TaskTraits::default()).named("ui");
    /// ui.post_task(|| ()).unwrap();
    /// ui.flush().unwrap();
    /// assert_eq!(ui.metrics().unwrap().ran(), 1);
    /// ```
    pub fn metrics(&self) -> Option<RunnerMetrics> {
        self.parts().1.stats().map(|s| s.snapshot())
    }

    /// Blocks until every task posted to this runner before the call has run (or been
    /// dropped); as [`SequencedTaskRunner::flush`].
    ///
    /// # Panics
    ///
    /// If called on this runner's own thread (it would wait for itself).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// st.post_task(move || tx.send(1).unwrap()).unwrap();
    /// st.flush().unwrap();
    /// assert_eq!(rx.try_recv().unwrap(), 1); // already ran
    /// ```
    #[track_caller]
    pub fn flush(&self) -> Result<(), PostRefusal> {
        let (pool, seq) = self.parts();
        flush(
            pool,
            seq,
            "SingleThreadTaskRunner::flush",
            Location::caller(),
        )
    }

    /// Closes the runner while the pool goes on; as [`SequencedTaskRunner::close`]. The
    /// runner's thread is still joined when the last clone is dropped (or at shutdown).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// assert!(st.close());
    /// assert!(!st.close()); // already closed
    /// assert!(st.post_task(|| ()).is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.parts().1.close()
    }

    /// `true` once the runner was [closed](Self::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(Default::default());
    /// assert!(!st.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts().1.is_closed()
    }
}

impl UpdateableSequencedTaskRunner {
    /// Gives the runner a name; as [`SequencedTaskRunner::named`] (whose other methods,
    /// [`name`](SequencedTaskRunner::name) among them, this runner has through `Deref`).
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let jobs = pool.create_updateable_sequenced_task_runner(TaskTraits::default()).named("jobs");
    /// assert_eq!(jobs.name().as_deref(), Some("jobs"));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        let (pool, seq) = self.parts();
        name_runner(pool, seq, name.into());
        self
    }
}

impl TaskRunner {
    /// Gives the runner a name (for all its clones); as [`SequencedTaskRunner::named`]: the
    /// name is in its tasks' spans and panic reports and in `Debug`, and the runner keeps its
    /// own [metrics](Self::metrics) from then on, at the cost of one small allocation and a few
    /// atomic adds per task.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let images = pool.create_task_runner(TaskTraits::default()).named("images");
    /// assert_eq!(images.name().as_deref(), Some("images"));
    /// images.post_task(|| ()).unwrap();
    /// images.flush();
    /// assert_eq!(pool.metrics().runners()[0].name(), "images");
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        if let Some(stats) = self.identity().set_name(name.into()) {
            self.parts().0.counters.register_runner(&stats);
        }
        self
    }

    /// The runner's name, if it was given one ([`named`](Self::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_task_runner(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.parts().1.name()
    }

    /// The runner's own metrics if it was [named](Self::named); see [`RunnerMetrics`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default()).named("r");
    /// for _ in 0..5 { r.post_task(|| ()).unwrap(); }
    /// r.flush();
    /// let m = r.metrics().unwrap();
    /// assert_eq!((m.queued(), m.running(), m.ran()), (0, 0, 5));
    /// ```
    pub fn metrics(&self) -> Option<RunnerMetrics> {
        self.parts().1.stats().map(|s| s.snapshot())
    }

    /// Blocks until none of this runner's tasks is queued or running: everything posted
    /// before the call has run (or been dropped: a closed runner, shutdown). Delayed tasks
    /// that are not due yet are not waited for (as Chromium's `FlushForTesting`); a task that
    /// ripens or is posted during the wait is waited for too, so under a steady stream of posts
    /// from other threads it returns only once the stream pauses. Returns once the pool's
    /// shutdown has completed. On a pool worker the wait is a blocking scope.
    ///
    /// # Panics
    ///
    /// If called from a task of this runner (it would wait for itself), or on the thread that
    /// drives a seeded single-thread `TestEnvironment`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let n = n.clone();
    ///     r.post_task(move || { n.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// }
    /// r.flush();
    /// assert_eq!(n.load(Ordering::SeqCst), 100);
    /// ```
    pub fn flush(&self) {
        flush_parallel(self.parts().0, self.identity());
    }

    /// Closes the runner, for every clone of it, while the pool goes on; as
    /// [`SequencedTaskRunner::close`]: later posts are refused with
    /// [`PostRefusal::RunnerClosed`] (the closure handed back), queued tasks follow the
    /// runner's shutdown behaviour (immediate `BlockShutdown` tasks still run; the others are
    /// dropped and their handles end as not run), running tasks finish. Returns `true` if this
    /// call closed it.
    ///
    /// ```
    /// use taskrunner::{PostRefusal, PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// assert!(r.close());
    /// assert!(r.is_closed());
    /// let err = r.post_task(|| ()).unwrap_err();
    /// assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    /// assert!(pool.create_task_runner(TaskTraits::default()).post_task(|| ()).is_ok());
    /// ```
    pub fn close(&self) -> bool {
        self.parts().1.close()
    }

    /// `true` once the runner was [closed](Self::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(Default::default());
    /// let view = r.clone();
    /// r.close();
    /// assert!(view.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts().1.is_closed()
    }
}
