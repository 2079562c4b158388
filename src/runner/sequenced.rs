//! `SequencedTaskRunner`: posts to one sequence.

use crate::pool::Inner;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::current;
use crate::error::PostError;
use crate::handle::ReplyFn;
use crate::handle::TaskHandle;
use crate::pool::{PoolRef, PostDest};
use crate::runner::single_thread::ThreadOwner;
use crate::scheduler::{Home, Sequence};
use crate::shim::Arc;
use crate::traits::{TaskPriority, TaskTraits};
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
/// use taskrunner::{ThreadPool, TaskTraits};
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
            .field("sequence", &self.seq.token)
            .field("priority", &self.seq.priority())
            .finish_non_exhaustive()
    }
}

impl SequencedTaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::pool::PostDest<'_> {
        PostDest::Sequence(&self.seq)
    }

    pub(crate) fn pool_inner(&self) -> &crate::shim::Arc<crate::pool::Inner> {
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
    pub(crate) fn parts(&self) -> (&Arc<crate::pool::Inner>, &Arc<Sequence>) {
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

    /// Posts a task to the end of the sequence. Never runs it synchronously inside the call.
    /// Refused (closure handed back) after shutdown started, unless the runner is
    /// `BlockShutdown` and shutdown has not completed.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// seq.post_task(move || tx.send(1).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 1);
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

    /// Posts a task that is appended to the sequence no sooner than `delay` from now (by the
    /// pool's clock). Delayed tasks with equal deadlines run in posting order. Refused once
    /// shutdown has started.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t1 = tx.clone();
    /// seq.post_task(move || tx.send("now").unwrap()).unwrap();
    /// seq.post_delayed_task(Duration::from_millis(30), move || t1.send("late").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "now");
    /// assert_eq!(rx.recv().unwrap(), "late");
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
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_task_with_result(|| 2 + 2).unwrap();
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
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_delayed_task_with_result(Duration::from_millis(5), || "later").unwrap();
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
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let (o2, target) = (origin.clone(), seq.clone());
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
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let target = seq.clone();
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

    /// `true` if called from a task running on this sequence.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
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
    /// # use taskrunner::{ThreadPool, TaskTraits, SequencedTaskRunner};
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
