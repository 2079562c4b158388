//! `SingleThreadTaskRunner`: a sequence with a dedicated thread.

use crate::pool::Inner;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::current;
use crate::error::PostError;
use crate::handle::ReplyFn;
use crate::handle::TaskHandle;
use crate::pool::{PoolRef, PostDest};
use crate::runner::SequencedTaskRunner;
use crate::scheduler::Sequence;
use crate::shim::Arc;
use crate::worker::Dedicated;
use std::sync::Arc as StdArc;

/// Posts tasks that run one at a time, in posting order, always on the same dedicated thread
/// (for thread-affine resources). The thread is created with the runner and joined when the
/// last clone of the runner is dropped (after it has run everything queued) or at shutdown.
///
/// ```
/// use taskrunner::{ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let st = pool.create_single_thread_task_runner(TaskTraits::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// let st2 = st.clone();
/// st.post_task(move || tx.send(st2.belongs_to_current_thread()).unwrap()).unwrap();
/// assert!(rx.recv().unwrap());
/// assert!(!st.belongs_to_current_thread());
/// ```
#[derive(Clone)]
pub struct SingleThreadTaskRunner {
    pool: PoolRef,
    seq: Arc<Sequence>,
    owner: StdArc<ThreadOwner>,
}

impl fmt::Debug for SingleThreadTaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleThreadTaskRunner")
            .field("sequence", &self.seq.token)
            .finish_non_exhaustive()
    }
}

impl SingleThreadTaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::pool::PostDest<'_> {
        PostDest::Sequence(&self.seq)
    }

    pub(crate) fn pool_inner(&self) -> &crate::shim::Arc<crate::pool::Inner> {
        self.pool.inner()
    }

    pub(crate) fn new(pool: PoolRef, seq: Arc<Sequence>, d: Arc<Dedicated>) -> Self {
        let owner = ThreadOwner::new(d, Arc::clone(pool.inner()));
        SingleThreadTaskRunner { pool, seq, owner }
    }

    /// Posts a task to run on the runner's thread, after everything posted before it.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// st.post_task(move || tx.send(2).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.pool.inner(),
            PostDest::Sequence(&self.seq),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a task that runs on the runner's thread no sooner than `delay` from now.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t0 = Instant::now();
    /// st.post_delayed_task(Duration::from_millis(10), move || tx.send(Instant::now()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap() - t0 >= Duration::from_millis(10));
    /// ```
    #[track_caller]
    pub fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.pool.inner(),
            PostDest::Sequence(&self.seq),
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
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let h = st.post_task_with_result(|| 2 + 2).unwrap();
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
            PostDest::Sequence(&self.seq),
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
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let h = st.post_delayed_task_with_result(Duration::from_millis(5), || "later").unwrap();
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
            PostDest::Sequence(&self.seq),
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
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let (o2, target) = (origin.clone(), st.clone());
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
            PostDest::Sequence(&self.seq),
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
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let target = st.clone();
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
            PostDest::Sequence(&self.seq),
            task,
            |t| t,
            reply,
            Location::caller(),
        )
    }

    /// `true` if called from a task of this runner.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// assert!(!st.runs_tasks_in_current_sequence());
    /// ```
    pub fn runs_tasks_in_current_sequence(&self) -> bool {
        current::current_token() == self.seq.token
    }

    /// `true` if the calling thread is this runner's dedicated thread.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// assert!(!st.belongs_to_current_thread());
    /// ```
    pub fn belongs_to_current_thread(&self) -> bool {
        self.owner.dedicated().is_current_thread()
    }

    /// This runner viewed as a [`SequencedTaskRunner`] (same sequence, same thread). While a
    /// task of this runner runs, [`SequencedTaskRunner::current`] returns this view.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let seq = st.as_sequenced();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// seq.post_task(move || tx.send(()).unwrap()).unwrap();
    /// rx.recv().unwrap();
    /// ```
    pub fn as_sequenced(&self) -> SequencedTaskRunner {
        SequencedTaskRunner::from_parts(
            self.pool.clone(),
            Arc::clone(&self.seq),
            Some(StdArc::clone(&self.owner)),
        )
    }
}

/// Owns the dedicated thread: when the last runner holding it drops, the thread finishes what
/// is queued and is joined (unless the drop happens on that very thread). A plain std `Arc`:
/// this is ownership, not part of any protocol loom models.
#[derive(Debug)]
pub(crate) struct ThreadOwner {
    d: Arc<Dedicated>,
    inner: Arc<Inner>,
}

impl ThreadOwner {
    pub(crate) fn new(d: Arc<Dedicated>, inner: Arc<Inner>) -> StdArc<Self> {
        let owner = StdArc::new(ThreadOwner { d, inner });
        let any: StdArc<dyn std::any::Any + Send + Sync> = owner.clone();
        owner.d.set_owner(StdArc::downgrade(&any));
        owner
    }

    pub(crate) fn dedicated(&self) -> &Arc<Dedicated> {
        &self.d
    }

    /// The owner of `d`'s thread, if a runner still holds it.
    pub(crate) fn of(d: &Dedicated) -> Option<StdArc<ThreadOwner>> {
        d.owner().and_then(|a| a.downcast::<ThreadOwner>().ok())
    }
}

impl Drop for ThreadOwner {
    /// Asks the thread to finish what is queued and exit, then joins it, except where joining
    /// could wait on something that waits on us: on a pool thread (a task dropping the last
    /// handle would block its worker), or once shutdown started (the thread may be running a
    /// continue-on-shutdown task; `shutdown()` joins what it safely can).
    fn drop(&mut self) {
        self.d.request_exit();
        if current::current_pool().is_none() && !self.inner.tracker.shutdown_started() {
            self.d.join();
        }
    }
}
