//! What a pool counts about itself, and the snapshot users read ([`PoolMetrics`]).
//!
//! The counters cost one atomic add where they count, on a cache line that other threads
//! rarely write: a started task adds to one of eight cache-padded shards picked by its
//! worker's index (workers 0 and 8 would share one); panics and refusals are rare paths. The
//! snapshot sums the shards and reads the gauges (workers, queue lengths, delayed tasks); the
//! only lock it takes is the worker group's, for a moment.

use std::fmt;
use std::sync::{Arc as StdArc, RwLock, Weak};

use crossbeam_utils::CachePadded;

use crate::base::shim::{AtomicU64, Ordering};
use crate::base::traits::TaskPriority;
use crate::engine::runner_stats::{RunnerMetrics, RunnerStats};
use crate::engine::times::{Histogram, TaskTimes};

const SHARDS: usize = 8;

/// A count that many threads add to: eight cache-padded shards, summed when read, so threads
/// rarely write the same cache line. A thread adds to its own shard (handed out round-robin
/// on first use), or a worker to the shard of its index, which it already has at hand.
#[derive(Debug, Default)]
struct Sharded([CachePadded<AtomicU64>; SHARDS]);

impl Sharded {
    /// Adds `n` to this thread's shard; returns the shard's previous value.
    #[inline]
    fn add(&self, n: u64, order: Ordering) -> u64 {
        self.add_at(my_shard(), n, order)
    }

    #[inline]
    fn add_at(&self, shard: usize, n: u64, order: Ordering) -> u64 {
        self.0[shard % SHARDS].fetch_add(n, order)
    }

    fn sum(&self, order: Ordering) -> u64 {
        self.0.iter().map(|c| c.load(order)).sum()
    }
}

/// The pool's event counters, time histograms, and its named runners' counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    started: Sharded,
    panicked: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    /// Out of line, like `runners`: the engine's hot fields keep the layout they had without
    /// them (their cache lines are shared with nothing written per task).
    pub(crate) queue_time: Box<Histogram>,
    pub(crate) run_time: Box<Histogram>,
    /// Named runners of this pool (pruned of dropped ones when a snapshot is taken). A plain
    /// std lock: written when a runner is named, read by snapshots; no hand-off.
    runners: Box<RwLock<Vec<Weak<RunnerStats>>>>,
}

impl Counters {
    /// A task is about to run on the worker (or dedicated thread) with index `worker`.
    #[inline]
    pub(crate) fn started(&self, worker: usize) {
        self.started.add_at(worker, 1, Ordering::Relaxed);
    }

    /// A task panicked (counted before the panic handler hears of it).
    pub(crate) fn panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    /// A post was refused.
    #[cold]
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` accepted tasks were dropped unrun.
    #[cold]
    pub(crate) fn dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn started_total(&self) -> u64 {
        self.started.sum(Ordering::Relaxed)
    }

    /// A runner of this pool was named: its counters join the pool's snapshot.
    pub(crate) fn register_runner(&self, stats: &StdArc<RunnerStats>) {
        let mut runners = self.runners.write().unwrap_or_else(|e| e.into_inner());
        runners.retain(|w| w.strong_count() > 0);
        runners.push(StdArc::downgrade(stats));
    }

    fn runner_snapshots(&self) -> Vec<RunnerMetrics> {
        let runners = self.runners.read().unwrap_or_else(|e| e.into_inner());
        runners
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.snapshot())
            .collect()
    }
}

/// Tasks that entered the pool's queues and tasks that left them (ran, or were dropped unrun
/// outside shutdown): what [`ThreadPool::flush`](crate::ThreadPool::flush) waits on, each a
/// [`Sharded`] count.
///
/// A task is counted in `entered` before it can be taken, and in `left` (with `Release`)
/// after it ran; reading every `left` shard (with `Acquire`) and then every `entered` shard
/// gives equal sums only if every task entered before the reads had left: a task counted in
/// `left` was counted in `entered` before, and the `Acquire` read makes that visible.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    entered: Sharded,
    left: Sharded,
}

#[cfg(not(loom))]
#[inline]
fn my_shard() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    // A plain std counter: it hands out shard numbers and takes part in no protocol.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Const-initialised (no lazy-initialisation state to check on every access); `usize::MAX`
    // until the thread's first count picks its shard.
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        let shard = s.get();
        if shard != usize::MAX {
            return shard;
        }
        let shard = NEXT.fetch_add(1, StdOrdering::Relaxed) % SHARDS;
        s.set(shard);
        shard
    })
}

/// Loom models run every model thread on one OS thread: one shard.
#[cfg(loom)]
fn my_shard() -> usize {
    0
}

impl Flow {
    /// `n` tasks entered the queues (before they can be taken). Returns how many had entered
    /// through this thread's shard before: the pool samples tasks for timing by it (one in
    /// every power of two of a shard's posts), which costs a post no extra shared write.
    #[inline]
    pub(crate) fn entered(&self, n: u64) -> u64 {
        self.entered.add(n, Ordering::Relaxed)
    }

    /// `n` tasks left: ran, or were dropped unrun.
    #[inline]
    pub(crate) fn left(&self, n: u64) {
        self.left.add(n, Ordering::Release);
    }

    /// No task is queued or running (a snapshot; see the type's docs).
    pub(crate) fn is_idle(&self) -> bool {
        let left = self.left.sum(Ordering::Acquire);
        let entered = self.entered.sum(Ordering::Acquire);
        left == entered
    }
}

/// A snapshot of what a pool is doing, from [`ThreadPool::metrics`](crate::ThreadPool::metrics).
///
/// Counters (`delay_wakeups`, `tasks_started`, `tasks_panicked`, `tasks_dropped`, `posts_refused`, and the
/// time histograms `queue_time` and `run_time`) only grow, from the pool's creation; gauges
/// (`workers`, `idle_workers`, `ready`, `ready_in_local_queues`, `delayed`) say how things
/// stand at the moment of the call; `runners` holds each named runner's own figures. Taking a
/// snapshot is cheap enough to do from a repeating task, and counting costs the pool one
/// uncontended atomic add per task (a sampled task also reads the clock three times).
/// The snapshot takes the worker group's lock for a moment (the lock that parking and waking
/// workers take), never one on the posting fast path.
///
/// A counter increment happens before anything the task does, so once the effects of `n`
/// tasks were observed (through a channel, a join, a lock), a snapshot counts at least `n`.
///
/// `Display` prints one line, for a progress log.
///
/// ```
/// use taskrunner::{PostTask, TaskPriority, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let handles: Vec<_> = (0..10).map(|i| pool.post_task_with_result(TaskTraits::default(), move || i).unwrap()).collect();
/// for h in handles { h.join().unwrap(); }
/// let m = pool.metrics();
/// assert_eq!(m.tasks_started(), 10);
/// assert_eq!(m.tasks_panicked(), 0);
/// assert_eq!(m.ready(TaskPriority::UserBlocking), 0);
/// assert!(m.workers() <= 2);
/// println!("{m}");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PoolMetrics {
    pub(crate) workers: usize,
    pub(crate) idle_workers: usize,
    pub(crate) ready: [usize; 3],
    pub(crate) ready_local: usize,
    pub(crate) delayed: usize,
    pub(crate) delay_wakeups: u64,
    pub(crate) tasks_started: u64,
    pub(crate) tasks_panicked: u64,
    pub(crate) tasks_dropped: u64,
    pub(crate) posts_refused: u64,
    pub(crate) queue_time: TaskTimes,
    pub(crate) run_time: TaskTimes,
    pub(crate) runners: Vec<RunnerMetrics>,
}

impl PoolMetrics {
    pub(crate) fn new(
        counters: &Counters,
        (workers, idle_workers, ready_local): (usize, usize, usize),
        ready: [usize; 3],
        (delayed, dropped_by_delay_manager, delay_wakeups): (usize, u64, u64),
    ) -> Self {
        PoolMetrics {
            workers,
            idle_workers,
            ready,
            ready_local,
            delayed,
            delay_wakeups,
            tasks_started: counters.started_total(),
            tasks_panicked: counters.panicked.load(Ordering::Relaxed),
            tasks_dropped: counters.dropped.load(Ordering::Relaxed) + dropped_by_delay_manager,
            posts_refused: counters.refused.load(Ordering::Relaxed),
            queue_time: counters.queue_time.snapshot(),
            run_time: counters.run_time.snapshot(),
            runners: counters.runner_snapshots(),
        }
    }

    /// Worker threads alive: running a task, looking for one, or parked. Dedicated threads of
    /// single-thread runners are not counted. Workers start on demand and leave after an idle
    /// timeout, so this moves between 0 and `max_workers` (more while tasks block in
    /// [`blocking`](crate::blocking)).
    ///
    /// See [`PoolMetrics`] for an example.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Of the [`workers`](Self::workers), those parked: waiting for work.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let m = pool.metrics();
    /// assert!(m.idle_workers() <= m.workers());
    /// ```
    pub fn idle_workers(&self) -> usize {
        self.idle_workers
    }

    /// Tasks waiting in the pool's ready queue of `priority`: posted, ripe, not yet taken by a
    /// worker. A sequence's task counts here too while it waits for its turn. Tasks a worker
    /// keeps in its local queue (ones that a running task posted) are
    /// [`ready_in_local_queues`](Self::ready_in_local_queues).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskPriority, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (release, wait) = std::sync::mpsc::channel::<()>();
    /// let (started, is_running) = std::sync::mpsc::channel();
    /// pool.post_task(TaskTraits::default(), move || { started.send(()).unwrap(); wait.recv().unwrap(); }).unwrap();
    /// is_running.recv().unwrap(); // the only worker is busy now
    /// let later = TaskTraits::new().priority(TaskPriority::BestEffort);
    /// pool.post_task(later, || ()).unwrap();
    /// pool.post_task(later, || ()).unwrap();
    /// assert_eq!(pool.metrics().ready(TaskPriority::BestEffort), 2);
    /// release.send(()).unwrap();
    /// ```
    pub fn ready(&self, priority: TaskPriority) -> usize {
        self.ready[priority.index()]
    }

    /// Tasks in workers' local queues: posted by a running task and kept by its worker, which
    /// runs them next unless another worker steals them first.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert_eq!(pool.metrics().ready_in_local_queues(), 0);
    /// ```
    pub fn ready_in_local_queues(&self) -> usize {
        self.ready_local
    }

    /// Delayed tasks not yet due ([`ThreadPool::pending_delayed_tasks`](crate::ThreadPool::pending_delayed_tasks)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ()).unwrap();
    /// assert_eq!(pool.metrics().delayed(), 1);
    /// ```
    pub fn delayed(&self) -> usize {
        self.delayed
    }

    /// Times the delay thread woke from a sleep, to forward ripe delayed tasks or to take new
    /// ones that ripen sooner than it planned. Flexible delayed tasks
    /// ([`DelayPolicy::FlexibleNoSooner`](crate::DelayPolicy)) share wake-ups, which keeps
    /// this low for many timers.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// // Far enough ahead that the delay thread sleeps before it is due.
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(50), || ()).unwrap();
    /// h.join().unwrap();
    /// assert!(pool.metrics().delay_wakeups() >= 1);
    /// ```
    pub fn delay_wakeups(&self) -> u64 {
        self.delay_wakeups
    }

    /// Tasks that started running, on the pool's workers and on its single-thread runners'
    /// threads, since the pool was built. A task that shutdown skipped, or that was dropped
    /// unrun, is not counted. A sequence's `flush` runs one empty task of its own, which
    /// counts here like any task (a named runner's own figures leave it out).
    ///
    /// See [`PoolMetrics`] for an example.
    pub fn tasks_started(&self) -> u64 {
        self.tasks_started
    }

    /// Tasks that panicked (whatever their [`PanicPolicy`](crate::PanicPolicy)), counted
    /// before the pool's panic handler is called. Includes panics that a task handle, an
    /// executor, a retry or a repetition caught and reported.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || -> u32 { panic!("boom") }).unwrap();
    /// assert!(h.join().is_err());
    /// assert_eq!(pool.metrics().tasks_panicked(), 1);
    /// ```
    pub fn tasks_panicked(&self) -> u64 {
        self.tasks_panicked
    }

    /// Posts the pool refused (shutdown, a closed runner, a poisoned sequence, a single-thread
    /// runner whose thread is gone, no thread could be started); each handed its closure back in a
    /// [`PostError`](crate::PostError).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.shutdown();
    /// assert!(pool.post_task(TaskTraits::default(), || ()).is_err());
    /// assert_eq!(pool.metrics().posts_refused(), 1);
    /// ```
    pub fn posts_refused(&self) -> u64 {
        self.posts_refused
    }

    /// Tasks the pool accepted and then dropped unrun: skipped or discarded by shutdown
    /// (delayed tasks, tasks not yet started that do not block shutdown, what was queued when
    /// shutdown completed), dropped when the pool wound down with delayed tasks pending,
    /// dropped because their runner was closed or their sequence poisoned, or delayed tasks
    /// taken out before they ripened (a cancelled handle, a stopped timer). Once a pool has
    /// shut down, every accepted task was either [started](Self::tasks_started) or dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// for _ in 0..3 {
    ///     pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ()).unwrap();
    /// }
    /// pool.shutdown();
    /// assert_eq!(pool.metrics().tasks_dropped(), 3);
    /// ```
    pub fn tasks_dropped(&self) -> u64 {
        self.tasks_dropped
    }

    /// How long tasks waited in the ready queues, from being posted (or from ripening, for a
    /// delayed task) until a worker started them: the tasks the pool samples (one in 64 by
    /// default, see [`ThreadPoolBuilder::sample_task_times`](crate::ThreadPoolBuilder::sample_task_times)),
    /// on its workers (single-thread runners' tasks are not timed here; a named runner's
    /// [`RunnerMetrics`](crate::metrics::RunnerMetrics) times them). See [`TaskTimes`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).sample_task_times(1).build().unwrap();
    /// for _ in 0..5 { pool.post_task(TaskTraits::default(), || ()).unwrap(); }
    /// pool.flush();
    /// assert_eq!(pool.metrics().queue_time().count(), 5);
    /// ```
    pub fn queue_time(&self) -> TaskTimes {
        self.queue_time
    }

    /// How long the sampled tasks ran (see [`queue_time`](Self::queue_time) for which tasks).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).sample_task_times(0).build().unwrap();
    /// pool.post_task(TaskTraits::default(), || ()).unwrap();
    /// pool.flush();
    /// assert_eq!(pool.metrics().run_time().count(), 0); // timing turned off
    /// ```
    pub fn run_time(&self) -> TaskTimes {
        self.run_time
    }

    /// The metrics of each named runner of the pool that is still alive, in the order they
    /// were named.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
    /// let _unnamed = pool.create_sequenced_task_runner(TaskTraits::default());
    /// db.post_task(|| ()).unwrap();
    /// db.flush().unwrap();
    /// let m = pool.metrics();
    /// assert_eq!(m.runners().len(), 1);
    /// assert_eq!((m.runners()[0].name(), m.runners()[0].ran()), ("db", 1));
    /// ```
    pub fn runners(&self) -> &[RunnerMetrics] {
        &self.runners
    }

    /// Calls `f` with every figure of the snapshot as a name, a kind and a value: the way to
    /// export it to a metrics system (see the [`metrics`](crate::metrics) module for a recipe).
    ///
    /// | names | kind |
    /// |---|---|
    /// | `workers`, `idle_workers`, `ready.user_blocking`, `ready.user_visible`, `ready.best_effort`, `ready_in_local_queues`, `delayed` | gauge |
    /// | `delay_wakeups`, `tasks_started`, `tasks_panicked`, `tasks_dropped`, `posts_refused` | counter |
    /// | `queue_time.count`, `run_time.count` | counter |
    /// | `queue_time.p50_us`, `queue_time.p99_us`, `run_time.p50_us`, `run_time.p99_us` (0 while nothing was timed) | gauge |
    /// | per named runner `N`: `runner.N.queued`, `runner.N.running` | gauge |
    /// | `runner.N.ran`, `runner.N.panicked`, `runner.N.dropped` | counter |
    /// | `runner.N.queue_time.p50_us`, `runner.N.queue_time.p99_us` | gauge |
    ///
    /// ```
    /// use taskrunner::metrics::MetricKind;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let mut names = Vec::new();
    /// pool.metrics().for_each(|name, kind, _| names.push((name.to_owned(), kind)));
    /// assert!(names.contains(&("workers".to_owned(), MetricKind::Gauge)));
    /// assert!(names.contains(&("posts_refused".to_owned(), MetricKind::Counter)));
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&str, MetricKind, u64)) {
        use MetricKind::{Counter, Gauge};
        f("workers", Gauge, self.workers as u64);
        f("idle_workers", Gauge, self.idle_workers as u64);
        f(
            "ready.user_blocking",
            Gauge,
            self.ready(TaskPriority::UserBlocking) as u64,
        );
        f(
            "ready.user_visible",
            Gauge,
            self.ready(TaskPriority::UserVisible) as u64,
        );
        f(
            "ready.best_effort",
            Gauge,
            self.ready(TaskPriority::BestEffort) as u64,
        );
        f("ready_in_local_queues", Gauge, self.ready_local as u64);
        f("delayed", Gauge, self.delayed as u64);
        f("delay_wakeups", Counter, self.delay_wakeups);
        f("tasks_started", Counter, self.tasks_started);
        f("tasks_panicked", Counter, self.tasks_panicked);
        f("tasks_dropped", Counter, self.tasks_dropped);
        f("posts_refused", Counter, self.posts_refused);
        let micros = |t: &TaskTimes, q| t.quantile(q).map_or(0, |d| d.as_micros() as u64);
        for (prefix, times) in [
            ("queue_time", &self.queue_time),
            ("run_time", &self.run_time),
        ] {
            f(&format!("{prefix}.count"), Counter, times.count());
            f(&format!("{prefix}.p50_us"), Gauge, micros(times, 0.5));
            f(&format!("{prefix}.p99_us"), Gauge, micros(times, 0.99));
        }
        for r in &self.runners {
            let name = r.name();
            f(&format!("runner.{name}.queued"), Gauge, r.queued());
            f(&format!("runner.{name}.running"), Gauge, r.running());
            f(&format!("runner.{name}.ran"), Counter, r.ran());
            f(&format!("runner.{name}.panicked"), Counter, r.panicked());
            f(&format!("runner.{name}.dropped"), Counter, r.dropped());
            let q = r.queue_time();
            f(
                &format!("runner.{name}.queue_time.p50_us"),
                Gauge,
                micros(&q, 0.5),
            );
            f(
                &format!("runner.{name}.queue_time.p99_us"),
                Gauge,
                micros(&q, 0.99),
            );
        }
    }
}

/// What kind of figure [`PoolMetrics::for_each`] reports.
///
/// ```
/// use taskrunner::metrics::MetricKind;
/// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
/// let mut kind = None;
/// pool.metrics().for_each(|name, k, _| if name == "tasks_started" { kind = Some(k) });
/// assert_eq!(kind, Some(MetricKind::Counter));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Only grows, from the pool's creation (or the runner's naming): export it as a counter
    /// (its absolute value) or take differences between snapshots.
    Counter,
    /// How things stand at the moment of the snapshot.
    Gauge,
}

impl fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolMetrics")
            .field("workers", &self.workers)
            .field("idle_workers", &self.idle_workers)
            .field(
                "ready_user_blocking",
                &self.ready(TaskPriority::UserBlocking),
            )
            .field("ready_user_visible", &self.ready(TaskPriority::UserVisible))
            .field("ready_best_effort", &self.ready(TaskPriority::BestEffort))
            .field("ready_in_local_queues", &self.ready_local)
            .field("delayed", &self.delayed)
            .field("delay_wakeups", &self.delay_wakeups)
            .field("tasks_started", &self.tasks_started)
            .field("tasks_panicked", &self.tasks_panicked)
            .field("tasks_dropped", &self.tasks_dropped)
            .field("posts_refused", &self.posts_refused)
            .field("queue_time", &self.queue_time)
            .field("run_time", &self.run_time)
            .field("runners", &self.runners)
            .finish()
    }
}

impl fmt::Display for PoolMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workers {} ({} idle), ready {}/{}/{} (blocking/visible/best-effort) + {} local, delayed {} ({} wake-ups), started {}, panicked {}, dropped {}, refused {}; queue {}; run {}",
            self.workers,
            self.idle_workers,
            self.ready[TaskPriority::UserBlocking.index()],
            self.ready[TaskPriority::UserVisible.index()],
            self.ready[TaskPriority::BestEffort.index()],
            self.ready_local,
            self.delayed,
            self.delay_wakeups,
            self.tasks_started,
            self.tasks_panicked,
            self.tasks_dropped,
            self.posts_refused,
            self.queue_time,
            self.run_time,
        )
    }
}
