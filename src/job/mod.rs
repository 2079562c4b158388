//! Jobs: one piece of parallel work whose number of workers follows how much work is left
//! (Chromium's `PostJob`).
//!
//! A job is a worker function and a **max-concurrency** callback. The pool runs the worker
//! function on as many workers as the callback asks for (never more than the pool's worker
//! count, the joining thread included, so a job does not oversubscribe the CPUs), calls
//! it again on the same worker while the job still wants that many, and posts more workers
//! when [`notify_concurrency_increase`](JobHandle::notify_concurrency_increase) says more work
//! arrived. It is the answer to "process this set in parallel without flooding the pool": one
//! job instead of one task per item, with no item queue of its own (the worker function takes
//! items from wherever the work lives) and no oversubscription.
//!
//! * The **worker function** `Fn(&JobDelegate)` processes work until there is none left or
//!   [`JobDelegate::should_yield`] says to stop, and returns. It should take work in small
//!   pieces and check `should_yield` between them: it turns true when the job is cancelled,
//!   when work of a higher priority waits in the pool, when the job's priority changed, or
//!   when the pool is shutting down (unless the job blocks shutdown).
//! * The **max-concurrency callback** `Fn(workers) -> usize` says how many workers the job
//!   wants, given how many run now; it must be cheap and thread-safe (it is called on every
//!   worker start and after every call of the worker function), typically "work items left,
//!   capped". It must reach 0 when the work is done: the job is complete when no worker runs
//!   and the callback returns 0.
//! * [`JobHandle::join`] waits for the job to complete **and contributes**: the calling thread
//!   runs the worker function too while the job wants one more worker, so a join never waits
//!   on a busy pool, and it completes the job even on a pool that has shut down or is fully
//!   blocked. Joining from a pool task is a blocking scope (the pool runs one more worker).
//!
//! A worker that finishes a call gives its thread back to the pool, and a fresh worker is
//! queued behind the work that waits, if work of the same or a higher priority waits; else it
//! simply calls the worker function again. A job of priority `BestEffort` never runs on more
//! workers than the pool's best-effort limit.
//!
//! # Panics
//!
//! A panic in the worker function (or the callback) is reported like any task's panic (the
//! job's [`PanicPolicy`](crate::PanicPolicy), then the pool's panic handler), and **cancels
//! the job**: no worker starts or calls again, and `join` returns the first panic as a
//! [`TaskError`] once every worker has left. The panicking worker's thread goes on serving the
//! pool.
//!
//! # Shutdown
//!
//! Workers are posted with the job's traits. Once shutdown starts, workers of a job that does
//! not [block shutdown](crate::ShutdownBehavior::BlockShutdown) see `should_yield` true, and
//! no new worker starts; queued ones are dropped unrun. `join` still completes the job on the
//! calling thread. Work a detached job (its handle dropped) had not done by then is not done.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use taskrunner::{TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().max_workers(2).build().unwrap();
//! let items: Arc<Vec<u64>> = Arc::new((1..=10_000).collect());
//! let next = Arc::new(AtomicUsize::new(0)); // the next unclaimed chunk
//! let sum = Arc::new(AtomicUsize::new(0));
//! const CHUNK: usize = 256;
//! let chunks = items.len().div_ceil(CHUNK);
//!
//! let (it, nx, total) = (items.clone(), next.clone(), sum.clone());
//! let left = next.clone();
//! let job = pool.post_job(
//!     TaskTraits::default(),
//!     move |delegate| {
//!         while !delegate.should_yield() {
//!             let c = nx.fetch_add(1, Ordering::Relaxed);
//!             if c >= chunks {
//!                 return;
//!             }
//!             let part: u64 = it[c * CHUNK..((c + 1) * CHUNK).min(it.len())].iter().sum();
//!             total.fetch_add(part as usize, Ordering::Relaxed);
//!         }
//!     },
//!     // As many workers as chunks are left.
//!     move |_workers| chunks.saturating_sub(left.load(Ordering::Relaxed)),
//! ).unwrap();
//! job.join().unwrap(); // this thread helps
//! assert_eq!(sum.load(Ordering::Relaxed), 10_000 * 10_001 / 2);
//! ```

mod core;
mod range;

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::error::PostError;
use std::sync::Arc;

use crate::base::shim::Arc as ShimArc;
use crate::base::traits::{ShutdownBehavior, TaskPriority, TaskTraits};
use crate::base::unwind::{catch, Payload};
use crate::engine::{blocking_unchecked, report_task_panic, Engine, PoolRef, PostDest};
use crate::handle::TaskError;
use crate::pool::ThreadPool;

pub(crate) use self::core::{JobCore, Next, Spawn};
pub use self::range::WorkRange;

thread_local! {
    /// The job whose worker function runs on this thread (its address), 0 if none: a `join`
    /// from inside its own job would wait for itself.
    static IN_JOB: Cell<usize> = const { Cell::new(0) };
}

/// What the pool's workers and the handle share.
struct Job {
    core: JobCore,
    worker: Box<dyn Fn(&JobDelegate<'_>) + Send + Sync>,
    engine: ShimArc<Engine>,
    traits: TaskTraits,
    posted_from: &'static Location<'static>,
}

impl Job {
    fn addr(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as *const () as usize
    }

    fn report_callback_panic(&self, p: &Payload) {
        report_task_panic(
            format!("a job's max-concurrency callback panicked: {}", p.message()),
            self.posted_from,
        );
    }

    /// Posts more workers if the job wants them.
    fn schedule(self: &Arc<Self>) {
        if let Some(spawn) = self.core.schedule(&|p| self.report_callback_panic(p)) {
            self.post(spawn);
        }
    }

    /// Posts `spawn.n` worker tickets. A refused one is dropped, which un-reserves it; the
    /// ones after it are not posted and are un-reserved here.
    fn post(self: &Arc<Self>, spawn: Spawn) {
        let traits = self.traits.priority(spawn.priority);
        for i in 0..spawn.n {
            let ticket = Ticket {
                job: Some(Arc::clone(self)),
                gen: spawn.gen,
            };
            let posted = Engine::post(
                &self.engine,
                PostDest::Parallel(traits),
                Duration::ZERO,
                move || ticket.run(),
                self.posted_from,
            );
            if posted.is_err() {
                for _ in i + 1..spawn.n {
                    self.core.ticket_dropped(spawn.gen);
                }
                break;
            }
        }
    }

    /// Calls the worker function once, catching a panic (reported, kept, cancels the job).
    fn call(self: &Arc<Self>, delegate: &JobDelegate<'_>) {
        let outer = IN_JOB.with(|c| c.replace(self.addr()));
        let r = catch(|| (self.worker)(delegate));
        IN_JOB.with(|c| c.set(outer));
        if let Err(p) = r {
            report_task_panic(p.message(), self.posted_from);
            self.core.record_panic(p);
        }
    }

    /// The pool is shutting down and this job does not block it.
    fn stopping(&self) -> bool {
        self.traits.shutdown_behavior != ShutdownBehavior::BlockShutdown
            && self.engine.tracker.shutdown_started()
    }
}

/// One queued worker: runs as a worker if the job still wants one when it starts; dropped
/// unrun (shutdown, refusal), it gives its reservation back.
struct Ticket {
    job: Option<Arc<Job>>,
    gen: u64,
}

impl Ticket {
    fn run(mut self) {
        let job = self.job.take().expect("a ticket runs once");
        let report = |p: &Payload| job.report_callback_panic(p);
        let Some(slot) = job.core.worker_start(self.gen, &report) else {
            return;
        };
        let delegate = JobDelegate {
            job: &job,
            id: slot.id,
            priority: job.core.priority(),
            joining: false,
        };
        loop {
            job.call(&delegate);
            let give_way = job.engine.group.waiting_at_or_above(delegate.priority);
            match job
                .core
                .worker_next(slot, give_way, job.stopping(), &report)
            {
                Next::Again => {}
                Next::GiveWay(spawn) => {
                    job.post(spawn);
                    return;
                }
                Next::Exit => return,
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            job.core.ticket_dropped(self.gen);
        }
    }
}

/// What the worker function is given: whether to stop, and a way to ask for more workers.
///
/// ```
/// use taskrunner::{TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let d = done.clone();
/// let job = pool.post_job(TaskTraits::default(), move |delegate| {
///     assert_eq!(delegate.task_id(), 0); // the only worker
///     if !delegate.should_yield() {
///         d.store(true, std::sync::atomic::Ordering::SeqCst);
///     }
/// }, {
///     let done = done.clone();
///     move |_| usize::from(!done.load(std::sync::atomic::Ordering::SeqCst))
/// }).unwrap();
/// job.join().unwrap();
/// assert!(done.load(std::sync::atomic::Ordering::SeqCst));
/// ```
pub struct JobDelegate<'a> {
    job: &'a Arc<Job>,
    id: usize,
    priority: TaskPriority,
    joining: bool,
}

impl JobDelegate<'_> {
    /// `true` if the worker function should return soon: the job was cancelled (or another
    /// worker panicked), work of a higher priority than the job's waits in the pool, the job's
    /// priority changed, or the pool is shutting down and the job does not block shutdown.
    /// On the joining thread only cancellation counts. Cheap (a few atomic loads): call it
    /// between small pieces of work.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let job = pool.post_job(TaskTraits::default(), |d| {
    ///     // Stops at once: the job is cancelled before it can run.
    ///     while !d.should_yield() { std::thread::yield_now(); }
    /// }, |_| 1).unwrap();
    /// job.cancel();
    /// job.join().unwrap();
    /// ```
    #[inline]
    pub fn should_yield(&self) -> bool {
        let core = &self.job.core;
        if core.is_cancelled() {
            return true;
        }
        if self.joining {
            return false;
        }
        let p = core.priority();
        p != self.priority || self.job.engine.group.waiting_above(p) || self.job.stopping()
    }

    /// Says that more work arrived: the job's callback is asked again and more workers start
    /// if it wants them. See [`JobHandle::notify_concurrency_increase`].
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let left = Arc::new(AtomicUsize::new(1)); // items waiting
    /// let made = Arc::new(AtomicUsize::new(1)); // items made so far
    /// let done = Arc::new(AtomicUsize::new(0));
    /// let (l, m, dn) = (left.clone(), made.clone(), done.clone());
    /// let job = pool.post_job(TaskTraits::default(), move |d| {
    ///     while !d.should_yield() && l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
    ///         // Each item makes one more, up to 5 in all.
    ///         if m.fetch_add(1, SeqCst) < 5 {
    ///             l.fetch_add(1, SeqCst);
    ///             d.notify_concurrency_increase();
    ///         }
    ///         dn.fetch_add(1, SeqCst);
    ///     }
    /// }, { let left = left.clone(); move |_| left.load(SeqCst) }).unwrap();
    /// job.join().unwrap();
    /// assert_eq!(done.load(SeqCst), 5);
    /// ```
    pub fn notify_concurrency_increase(&self) {
        self.job.core.notify();
        self.job.schedule();
    }

    /// This worker's id: unique among the job's workers running now, and the smallest free
    /// one when it started, so it stays below the job's concurrency (use it to index
    /// per-worker state without a lock).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    /// let left = Arc::new(AtomicUsize::new(100));
    /// let max_id = Arc::new(AtomicUsize::new(0));
    /// let (l, m) = (left.clone(), max_id.clone());
    /// let job = pool.post_job(TaskTraits::default(), move |d| {
    ///     m.fetch_max(d.task_id(), SeqCst);
    ///     let _ = l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
    /// }, { let left = left.clone(); move |_| left.load(SeqCst).min(4) }).unwrap();
    /// job.join().unwrap();
    /// assert_eq!(left.load(SeqCst), 0);
    /// assert!(max_id.load(SeqCst) < 4); // ids stay below the concurrency
    /// ```
    pub fn task_id(&self) -> usize {
        self.id
    }

    /// `true` on the thread that called [`JobHandle::join`] (it runs the worker function too).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// // The pool's only worker is busy until the job is done...
    /// let (release, wait) = std::sync::mpsc::channel::<()>();
    /// pool.post_task(TaskTraits::default(), move || wait.recv().unwrap()).unwrap();
    /// let by_joiner = Arc::new(AtomicBool::new(false));
    /// let b = by_joiner.clone();
    /// let job = pool.post_job(TaskTraits::default(), move |d| {
    ///     b.store(d.is_joining_thread(), SeqCst);
    /// }, { let b = by_joiner.clone(); move |_| usize::from(!b.load(SeqCst)) }).unwrap();
    /// job.join().unwrap(); // ...so the joining thread does the work itself.
    /// assert!(by_joiner.load(SeqCst));
    /// release.send(()).unwrap();
    /// ```
    pub fn is_joining_thread(&self) -> bool {
        self.joining
    }
}

impl fmt::Debug for JobDelegate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDelegate")
            .field("task_id", &self.id)
            .field("joining", &self.joining)
            .finish_non_exhaustive()
    }
}

/// A posted job: join it (the calling thread helps), cancel it, tell it that more work
/// arrived, or change its priority. Clones control the same job (a producer can keep one to
/// notify while another thread joins). Dropping every handle detaches the job: it runs on
/// until complete (or until shutdown).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
/// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let left = Arc::new(AtomicUsize::new(100));
/// let l = left.clone();
/// let job = pool.post_job(TaskTraits::new().priority(TaskPriority::BestEffort), move |d| {
///     while !d.should_yield() && l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {}
/// }, { let left = left.clone(); move |_| left.load(SeqCst) }).unwrap();
/// job.update_priority(TaskPriority::UserBlocking); // the user is waiting now
/// job.join().unwrap();
/// assert_eq!(left.load(SeqCst), 0);
/// ```
#[must_use = "dropping a JobHandle detaches the job; join it to wait for it (the caller helps)"]
#[derive(Clone)]
pub struct JobHandle {
    job: Arc<Job>,
    _pool: PoolRef,
}

impl JobHandle {
    /// Waits until the job is complete (no worker runs and the callback returns 0) or, if it
    /// was cancelled, until every worker has left, running the worker function on this thread
    /// meanwhile whenever the job wants one more worker. Returns the first panic of a worker
    /// (or of the callback) as an error (to every clone that joins; the payload goes to the
    /// first `into_panic`).
    ///
    /// # Panics
    ///
    /// If called from inside one of this job's own worker functions: it would wait for
    /// itself.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let job = pool.post_job(TaskTraits::default(), |_| panic!("bad item"), |_| 1).unwrap();
    /// let err = job.join().unwrap_err();
    /// assert_eq!(err.panic_message(), Some("bad item"));
    /// ```
    pub fn join(self) -> Result<(), TaskError> {
        let job = &self.job;
        if IN_JOB.with(Cell::get) == job.addr() {
            panic!(
                "JobHandle::join called from inside the job's own worker function: it would wait for itself \
                 (return from the worker function instead; the job completes when its callback returns 0)"
            );
        }
        job.core.join(
            |id| {
                let delegate = JobDelegate {
                    job,
                    id,
                    priority: job.core.priority(),
                    joining: true,
                };
                job.call(&delegate);
            },
            |wait| blocking_unchecked(wait),
            &|p| job.report_callback_panic(p),
        );
        match job.core.panic() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Cancels the job: no worker starts or calls the worker function again, and running ones
    /// see [`should_yield`](JobDelegate::should_yield) true. Returns at once; [`join`](Self::join)
    /// then waits for the running ones to return.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// // A job that would never complete by itself:
    /// let job = pool.post_job(TaskTraits::default(), |d| while !d.should_yield() {}, |_| 2).unwrap();
    /// job.cancel();
    /// assert!(job.join().is_ok()); // returns once the running workers have seen the cancel
    /// ```
    pub fn cancel(&self) {
        self.job.core.cancel();
    }

    /// Says that more work arrived, so the job may want more workers: its callback is asked
    /// again and more workers are posted if it says so (a waiting joiner looks again too).
    /// Call it after adding work the callback counts; without it, the job notices new work
    /// only when one of its workers finishes a call.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let left = Arc::new(AtomicUsize::new(0));
    /// let done = Arc::new(AtomicUsize::new(0));
    /// let (l, d) = (left.clone(), done.clone());
    /// let job = pool.post_job(TaskTraits::default(), move |del| {
    ///     while !del.should_yield() && l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
    ///         d.fetch_add(1, SeqCst);
    ///     }
    /// }, { let left = left.clone(); move |_| left.load(SeqCst) }).unwrap();
    /// left.fetch_add(10, SeqCst);
    /// job.notify_concurrency_increase();
    /// job.join().unwrap();
    /// assert_eq!(done.load(SeqCst), 10);
    /// ```
    pub fn notify_concurrency_increase(&self) {
        self.job.core.notify();
        self.job.schedule();
    }

    /// Changes the job's priority: workers posted from now on have it, workers running give
    /// way after their current call (their [`should_yield`](JobDelegate::should_yield) turns
    /// true), and workers queued at the old priority are replaced.
    ///
    /// ```
    /// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let job = pool.post_job(TaskTraits::new().priority(TaskPriority::BestEffort), |_| {}, |_| 0).unwrap();
    /// job.update_priority(TaskPriority::UserVisible);
    /// assert_eq!(job.priority(), TaskPriority::UserVisible);
    /// job.join().unwrap();
    /// ```
    pub fn update_priority(&self, priority: TaskPriority) {
        if self.job.core.set_priority(priority) {
            self.job.schedule();
        }
    }

    /// The job's priority now.
    ///
    /// ```
    /// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let job = pool.post_job(TaskTraits::new().priority(TaskPriority::UserBlocking), |_| {}, |_| 0).unwrap();
    /// assert_eq!(job.priority(), TaskPriority::UserBlocking);
    /// ```
    pub fn priority(&self) -> TaskPriority {
        self.job.core.priority()
    }

    /// `true` if no worker runs and the job wants none (its callback returns 0), or it was
    /// cancelled and every worker has left. A look at one moment: a job whose callback
    /// returns more again (and is notified) runs again.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let job = pool.post_job(TaskTraits::default(), |_| {}, |_| 0).unwrap();
    /// assert!(job.is_completed());
    /// ```
    pub fn is_completed(&self) -> bool {
        let job = &self.job;
        job.core.is_completed(&|p| job.report_callback_panic(p))
    }

    /// How many workers run the worker function now (the joining thread included).
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let job = pool.post_job(TaskTraits::default(), |_| {}, |_| 0).unwrap();
    /// assert_eq!(job.running_workers(), 0);
    /// ```
    pub fn running_workers(&self) -> usize {
        self.job.core.running()
    }
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("priority", &self.priority())
            .field("running_workers", &self.running_workers())
            .field("cancelled", &self.job.core.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Posts a job to `pool`; see [`ThreadPool::post_job`].
pub(crate) fn post_job_on<W, M>(
    pool: &PoolRef,
    traits: TaskTraits,
    worker: W,
    max_concurrency: M,
    posted_from: &'static Location<'static>,
) -> Result<JobHandle, PostError<(W, M)>>
where
    W: Fn(&JobDelegate<'_>) + Send + Sync + 'static,
    M: Fn(usize) -> usize + Send + Sync + 'static,
{
    let engine = pool.inner();
    if let Err(reason) = engine.tracker.will_post(traits.shutdown_behavior, false) {
        engine.counters.refused();
        return Err(PostError::new(reason, (worker, max_concurrency)));
    }
    let job = Arc::new(Job {
        core: JobCore::new(
            traits.priority,
            (engine.group.max_workers, engine.group.max_best_effort),
            Box::new(max_concurrency),
        ),
        worker: Box::new(worker),
        engine: ShimArc::clone(engine),
        traits,
        posted_from,
    });
    job.schedule();
    Ok(JobHandle {
        job,
        _pool: pool.clone(),
    })
}

/// Posts a job to the global pool. See [`ThreadPool::post_job`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
/// let left = Arc::new(AtomicUsize::new(1000));
/// let l = left.clone();
/// let job = taskrunner::job::post_job(Default::default(), move |d| {
///     while !d.should_yield() && l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {}
/// }, { let left = left.clone(); move |_| left.load(SeqCst).min(4) }).unwrap();
/// job.join().unwrap();
/// assert_eq!(left.load(SeqCst), 0);
/// ```
#[track_caller]
pub fn post_job<W, M>(
    traits: TaskTraits,
    worker: W,
    max_concurrency: M,
) -> Result<JobHandle, PostError<(W, M)>>
where
    W: Fn(&JobDelegate<'_>) + Send + Sync + 'static,
    M: Fn(usize) -> usize + Send + Sync + 'static,
{
    let global = crate::pool::global::current();
    post_job_on(
        global.pool_ref(),
        traits,
        worker,
        max_concurrency,
        Location::caller(),
    )
}

impl ThreadPool {
    /// Posts a job: `worker` runs on as many of this pool's workers as `max_concurrency`
    /// asks for, given how many run now (see the [`job`](crate::job) module). Refused (both
    /// closures handed back) once shutdown has started, unless `traits` block shutdown.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    /// let left = Arc::new(AtomicUsize::new(64));
    /// let peak = Arc::new(AtomicUsize::new(0));
    /// let (l, pk) = (left.clone(), peak.clone());
    /// let job = pool.post_job(TaskTraits::default(), move |d| {
    ///     pk.fetch_max(d.task_id() + 1, SeqCst);
    ///     while !d.should_yield() && l.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
    ///         std::thread::sleep(std::time::Duration::from_micros(50));
    ///     }
    /// }, { let left = left.clone(); move |_| left.load(SeqCst).min(2) }).unwrap();
    /// job.join().unwrap();
    /// assert_eq!(left.load(SeqCst), 0);
    /// assert!(peak.load(SeqCst) <= 2); // never more workers than asked for
    ///
    /// pool.shutdown();
    /// assert!(pool.post_job(TaskTraits::default(), |_| {}, |_| 1).unwrap_err().is_shutdown());
    /// ```
    #[track_caller]
    pub fn post_job<W, M>(
        &self,
        traits: TaskTraits,
        worker: W,
        max_concurrency: M,
    ) -> Result<JobHandle, PostError<(W, M)>>
    where
        W: Fn(&JobDelegate<'_>) + Send + Sync + 'static,
        M: Fn(usize) -> usize + Send + Sync + 'static,
    {
        post_job_on(
            self.pool_ref(),
            traits,
            worker,
            max_concurrency,
            Location::caller(),
        )
    }
}
