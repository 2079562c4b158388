//! `SequencedTaskRunner`: posts to one sequence.

use std::fmt;

use crate::base::shim::Arc;
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::current;
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::{PoolRef, PostDest};
use crate::runner::single_thread::ThreadOwner;
use std::sync::Arc as StdArc;

/// Posts tasks that run **one at a time, in posting order**, on whichever worker is free
/// (a "strand"). Each task sees every side effect of the tasks before it (happens-before), so
/// state touched only by one sequence needs no lock.
///
/// Delayed tasks are appended to the tail of the sequence when they ripen: a task posted with
/// a delay runs after tasks posted (without delay) before it ripened.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let (tx, rx) = mpsc::channel();
/// for i in 0..100 {
///     let tx = tx.clone();
///     seq.post_task(move || tx.send(i).unwrap()).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
/// ```
#[derive(Clone)]
pub struct SequencedTaskRunner {
    pool: PoolRef,
    seq: Arc<Sequence>,
    /// Keeps a single-thread runner's thread alive while this view exists.
    _owner: Option<StdArc<ThreadOwner>>,
}

impl fmt::Debug for SequencedTaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequencedTaskRunner")
            .field("name", &self.seq.name())
            .field("sequence", &self.seq.token)
            .field("priority", &self.seq.priority())
            .finish_non_exhaustive()
    }
}

impl SequencedTaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::engine::PostDest<'_> {
        PostDest::Sequence(&self.seq)
    }

    pub(crate) fn pool_inner(&self) -> &crate::base::shim::Arc<crate::engine::Engine> {
        self.pool.inner()
    }

    pub(crate) fn new(pool: PoolRef, traits: TaskTraits) -> Self {
        SequencedTaskRunner {
            pool,
            seq: Arc::new(Sequence::new(traits, Home::Pool)),
            _owner: None,
        }
    }

    /// The pool and sequence behind this runner (for crate-internal posting helpers).
    pub(crate) fn parts(&self) -> (&Arc<crate::engine::Engine>, &Arc<Sequence>) {
        (self.pool.inner(), &self.seq)
    }

    pub(crate) fn from_parts(
        pool: PoolRef,
        seq: Arc<Sequence>,
        owner: Option<StdArc<ThreadOwner>>,
    ) -> Self {
        SequencedTaskRunner {
            pool,
            seq,
            _owner: owner,
        }
    }

    /// `true` if called from a task running on this sequence.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(!seq.runs_tasks_in_current_sequence());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_task(move || tx.send(s2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn runs_tasks_in_current_sequence(&self) -> bool {
        current::current_token() == self.seq.token
    }

    /// The runner of the sequence whose task is running on this thread. `None` outside
    /// sequenced tasks, including inside one-off parallel tasks (as in Chromium).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits, SequencedTaskRunner};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(SequencedTaskRunner::current().is_none());
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_task(move || {
    ///     let cur = SequencedTaskRunner::current().unwrap();
    ///     tx.send(cur.is_same_sequence(&s2)).unwrap();
    /// }).unwrap();
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn current() -> Option<SequencedTaskRunner> {
        let (seq, inner) = current::current_sequence()?;
        let owner = match &seq.home {
            Home::Dedicated(d) => ThreadOwner::of(d),
            Home::Pool => None,
        };
        Some(SequencedTaskRunner::from_parts(
            PoolRef::from_inner(&inner),
            seq,
            owner,
        ))
    }

    /// `true` if both runners post to the same sequence.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let a = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let b = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(a.is_same_sequence(&a.clone()));
    /// assert!(!a.is_same_sequence(&b));
    /// ```
    pub fn is_same_sequence(&self, other: &SequencedTaskRunner) -> bool {
        Arc::ptr_eq(&self.seq, &other.seq)
    }

    /// This runner with a queue of at most `capacity` waiting tasks; a post to a full queue
    /// follows `policy` (refused with the closure handed back, the oldest waiting task
    /// dropped, or the poster made to wait). See [`BoundedRunner`](crate::BoundedRunner).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let log = pool.create_sequenced_task_runner(TaskTraits::default()).bounded(100, QueuePolicy::Block);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// for i in 0..1000 {
    ///     let tx = tx.clone();
    ///     log.post_task(move || tx.send(i).unwrap()).unwrap(); // waits while 100 are queued
    /// }
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());
    /// ```
    #[must_use = "the bounded runner is the one to post to"]
    pub fn bounded(
        self,
        capacity: usize,
        policy: crate::QueuePolicy,
    ) -> crate::BoundedRunner<SequencedTaskRunner> {
        crate::BoundedRunner::new(self, capacity, policy)
    }

    /// The sequence's current priority.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits, TaskPriority};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskPriority::BestEffort.into());
    /// assert_eq!(seq.priority(), TaskPriority::BestEffort);
    /// ```
    pub fn priority(&self) -> TaskPriority {
        self.seq.priority()
    }
}
