//! `SingleThreadTaskRunner`: a sequence with a dedicated thread.

use crate::engine::Engine;
use std::fmt;

use crate::base::shim::Arc;
use crate::engine::current;
use crate::engine::scheduler::Sequence;
use crate::engine::worker::Dedicated;
use crate::engine::{PoolRef, PostDest};
use crate::runner::SequencedTaskRunner;
use std::sync::Arc as StdArc;

/// Posts tasks that run one at a time, in posting order, always on the same dedicated thread
/// (for thread-affine resources). The thread is created with the runner and joined when the
/// last clone of the runner is dropped (after it has run everything queued) or at shutdown.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
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
            .field("name", &self.seq.name())
            .field("sequence", &self.seq.token)
            .finish_non_exhaustive()
    }
}

impl SingleThreadTaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::engine::PostDest<'_> {
        PostDest::Sequence(&self.seq)
    }

    /// The pool and sequence behind this runner (for crate-internal helpers).
    pub(crate) fn parts(&self) -> (&Arc<crate::engine::Engine>, &Arc<Sequence>) {
        (self.pool.inner(), &self.seq)
    }

    pub(crate) fn pool_inner(&self) -> &crate::base::shim::Arc<crate::engine::Engine> {
        self.pool.inner()
    }

    pub(crate) fn new(pool: PoolRef, seq: Arc<Sequence>, d: Arc<Dedicated>) -> Self {
        let owner = ThreadOwner::new(d, Arc::clone(pool.inner()));
        SingleThreadTaskRunner { pool, seq, owner }
    }

    /// This runner with a queue of at most `capacity` waiting tasks; a post to a full queue
    /// follows `policy`. See [`BoundedRunner`](crate::BoundedRunner) and
    /// [`SequencedTaskRunner::bounded`](crate::SequencedTaskRunner::bounded).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ui = pool.create_single_thread_task_runner(TaskTraits::default()).bounded(8, QueuePolicy::DropOldest);
    /// let h = ui.post_task_with_result(|| "painted").unwrap();
    /// assert_eq!(h.join().unwrap(), "painted");
    /// ```
    #[must_use = "the bounded runner is the one to post to"]
    pub fn bounded(
        self,
        capacity: usize,
        policy: crate::QueuePolicy,
    ) -> crate::BoundedRunner<SingleThreadTaskRunner> {
        crate::BoundedRunner::new(self, capacity, policy)
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
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
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
    inner: Arc<Engine>,
}

impl ThreadOwner {
    pub(crate) fn new(d: Arc<Dedicated>, inner: Arc<Engine>) -> StdArc<Self> {
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
