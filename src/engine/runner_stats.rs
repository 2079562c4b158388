//! What a named runner counts about its own tasks ([`RunnerStats`]), and the snapshot users read
//! ([`RunnerMetrics`]).
//!
//! A named runner's tasks are queued wrapped in a [`Tracked`] job that carries the runner's
//! stats: the worker that runs one counts its start and end (and its times, when the task was
//! sampled), and a tracked job dropped unrun counts itself as dropped. Unnamed runners queue
//! their jobs bare and pay nothing. The counters are plain std atomics: they take part in no
//! hand-off between threads.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc as StdArc, RwLock};

use crossbeam_utils::CachePadded;

use crate::engine::task::Job;
use crate::engine::times::{Histogram, TaskTimes};

/// The counters of one named runner (shared by its clones, and by every key of a keyed runner).
pub(crate) struct RunnerStats {
    name: RwLock<StdArc<str>>,
    /// Written by posters; the counts below by workers: apart, so posting and running do not
    /// contend for one cache line.
    posted: CachePadded<AtomicU64>,
    started: AtomicU64,
    finished: AtomicU64,
    panicked: AtomicU64,
    dropped: AtomicU64,
    pub(crate) queue_time: Histogram,
    pub(crate) run_time: Histogram,
}

impl fmt::Debug for RunnerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

impl RunnerStats {
    pub(crate) fn new(name: StdArc<str>) -> Self {
        RunnerStats {
            name: RwLock::new(name),
            posted: CachePadded::new(AtomicU64::new(0)),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queue_time: Histogram::default(),
            run_time: Histogram::default(),
        }
    }

    pub(crate) fn name(&self) -> StdArc<str> {
        StdArc::clone(&self.name.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn set_name(&self, name: StdArc<str>) {
        *self.name.write().unwrap_or_else(|e| e.into_inner()) = name;
    }

    /// A task of this runner panicked (a panic its task caught and reported counts too).
    pub(crate) fn count_panic(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    /// Wraps a job of this runner, posted at `stamp` (0: not sampled).
    pub(crate) fn track(self: &StdArc<Self>, job: Job, stamp: u32) -> Job {
        self.posted.fetch_add(1, Ordering::Relaxed);
        Job::Tracked(Box::new(Tracked {
            job: Some(job),
            stats: Some(StdArc::clone(self)),
            stamp,
        }))
    }

    /// A task of this runner ran to the end (it panicked if `panicked`).
    pub(crate) fn end(&self, panicked: bool) {
        if panicked {
            self.count_panic();
        }
        self.finished.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> RunnerMetrics {
        // Read in the reverse order of the counts' life, so that a task counted in a later
        // stage was counted in the earlier one too (up to racing updates: saturating).
        let finished = self.finished.load(Ordering::Acquire);
        let panicked = self.panicked.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let dropped = self.dropped.load(Ordering::Acquire);
        let posted = self.posted.load(Ordering::Acquire);
        RunnerMetrics {
            name: self.name(),
            queued: posted.saturating_sub(started).saturating_sub(dropped),
            running: started.saturating_sub(finished),
            ran: finished,
            panicked,
            dropped,
            queue_time: self.queue_time.snapshot(),
            run_time: self.run_time.snapshot(),
        }
    }
}

/// A named runner's job: counted as started and finished when it runs, as dropped when it is
/// dropped unrun (wherever that happens: shutdown, a closed runner, a poisoned sequence).
pub(crate) struct Tracked {
    job: Option<Job>,
    /// Taken by the worker while the job runs (it is the running task's runner then).
    stats: Option<StdArc<RunnerStats>>,
    /// When it was posted (µs on the pool's epoch), if sampled and posted without a delay.
    pub(crate) stamp: u32,
}

impl Tracked {
    /// Takes the job and the runner's counters out to run the job: counts the start. The
    /// caller ends it with [`RunnerStats::end`].
    pub(crate) fn begin(&mut self) -> (Job, StdArc<RunnerStats>) {
        let stats = self.stats.take().expect("a tracked job runs once");
        stats.started.fetch_add(1, Ordering::Relaxed);
        (self.job.take().expect("a tracked job runs once"), stats)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let (Some(_), Some(stats)) = (&self.job, &self.stats) {
            stats.dropped.fetch_add(1, Ordering::Release);
        }
    }
}

/// A snapshot of one named runner: its tasks queued, running, ran, panicked and dropped, and
/// how long they waited and ran. From [`PoolMetrics::runners`](crate::PoolMetrics::runners),
/// or from the runner's own `metrics()` (for example
/// [`SequencedTaskRunner::metrics`](crate::SequencedTaskRunner::metrics)).
///
/// Only named runners keep these counts (see [`SequencedTaskRunner::named`](crate::SequencedTaskRunner::named)):
/// each task of a named runner costs one more small allocation and a few atomic adds on the
/// runner's own counters.
///
/// ```
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
/// for _ in 0..10 { db.post_task(|| ()).unwrap(); }
/// db.flush().unwrap();
/// let m = db.metrics().unwrap();
/// assert_eq!(m.name(), "db");
/// assert_eq!((m.queued(), m.running(), m.ran(), m.dropped()), (0, 0, 10, 0));
/// println!("{m}");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RunnerMetrics {
    name: StdArc<str>,
    queued: u64,
    running: u64,
    ran: u64,
    panicked: u64,
    dropped: u64,
    queue_time: TaskTimes,
    run_time: TaskTimes,
}

impl RunnerMetrics {
    /// The runner's name.
    ///
    /// See [`RunnerMetrics`] for an example.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tasks posted and not yet started: waiting in a queue, or delayed and not due yet.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let jobs = pool.create_task_runner(TaskTraits::default()).named("jobs");
    /// jobs.post_delayed_task(Duration::from_secs(3600), || ()).unwrap();
    /// assert_eq!(jobs.metrics().unwrap().queued(), 1);
    /// ```
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Tasks running now.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default()).named("seq");
    /// let probe = seq.clone();
    /// let running = seq.post_task_with_result(move || probe.metrics().unwrap().running()).unwrap();
    /// assert_eq!(running.join().unwrap(), 1); // itself
    /// ```
    pub fn running(&self) -> u64 {
        self.running
    }

    /// Tasks that ran to the end (panicked ones included) since the runner was named.
    ///
    /// See [`RunnerMetrics`] for an example.
    pub fn ran(&self) -> u64 {
        self.ran
    }

    /// Of the tasks that [`ran`](Self::ran), those that panicked.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default()).named("r");
    /// assert!(r.post_task_with_result(|| -> u8 { panic!("no") }).unwrap().join().is_err());
    /// let m = r.metrics().unwrap();
    /// assert_eq!((m.ran(), m.panicked()), (1, 1));
    /// ```
    pub fn panicked(&self) -> u64 {
        self.panicked
    }

    /// Tasks accepted but dropped unrun: skipped or discarded at shutdown, dropped because the
    /// runner was closed or its sequence poisoned, or cancelled through a handle before they
    /// were due.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// use std::time::Duration;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_sequenced_task_runner(TaskTraits::default()).named("r");
    /// r.post_delayed_task(Duration::from_secs(3600), || ()).unwrap();
    /// pool.shutdown(); // delayed tasks never run once shutdown starts
    /// assert_eq!(r.metrics().unwrap().dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How long its tasks waited from being posted (or, for delayed tasks, from becoming due)
    /// to starting, for the tasks the pool sampled. See [`TaskTimes`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).sample_task_times(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default()).named("r");
    /// r.post_task_with_result(|| ()).unwrap().join().unwrap();
    /// assert_eq!(r.metrics().unwrap().queue_time().count(), 1);
    /// ```
    pub fn queue_time(&self) -> TaskTimes {
        self.queue_time
    }

    /// How long its sampled tasks ran. See [`TaskTimes`].
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).sample_task_times(1).build().unwrap();
    /// let r = pool.create_single_thread_task_runner(TaskTraits::default()).named("ui");
    /// r.post_task_with_result(|| std::thread::sleep(std::time::Duration::from_millis(1))).unwrap().join().unwrap();
    /// assert!(r.metrics().unwrap().run_time().mean().unwrap() >= std::time::Duration::from_millis(1));
    /// ```
    pub fn run_time(&self) -> TaskTimes {
        self.run_time
    }
}

impl fmt::Debug for RunnerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerMetrics")
            .field("name", &self.name)
            .field("queued", &self.queued)
            .field("running", &self.running)
            .field("ran", &self.ran)
            .field("panicked", &self.panicked)
            .field("dropped", &self.dropped)
            .field("queue_time", &self.queue_time)
            .field("run_time", &self.run_time)
            .finish()
    }
}

/// One line: `db: queued 2, running 1, ran 120 (0 panicked), dropped 0; queue p50 ≤ ...`.
impl fmt::Display for RunnerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: queued {}, running {}, ran {} ({} panicked), dropped {}; queue {}; run {}",
            self.name,
            self.queued,
            self.running,
            self.ran,
            self.panicked,
            self.dropped,
            self.queue_time,
            self.run_time
        )
    }
}
