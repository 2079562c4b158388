//! `TaskRunner`: posts one-off parallel tasks with fixed traits.

use crate::base::traits::TaskTraits;
use crate::engine::{PoolRef, PostDest};

/// Posts tasks that run in parallel, in no particular order, with the traits it was created
/// with. Get one from [`ThreadPool::create_task_runner`](crate::ThreadPool::create_task_runner)
/// or [`create_task_runner`](crate::create_task_runner).
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let runner = pool.create_task_runner(TaskTraits::default());
/// let n = Arc::new(AtomicUsize::new(0));
/// let (tx, rx) = std::sync::mpsc::channel();
/// for _ in 0..10 {
///     let (n, tx) = (n.clone(), tx.clone());
///     runner.post_task(move || { n.fetch_add(1, Ordering::SeqCst); tx.send(()).unwrap(); }).unwrap();
/// }
/// for _ in 0..10 { rx.recv().unwrap(); }
/// assert_eq!(n.load(Ordering::SeqCst), 10);
/// ```
#[derive(Clone, Debug)]
pub struct TaskRunner {
    pool: PoolRef,
    traits: TaskTraits,
}

impl TaskRunner {
    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> crate::engine::PostDest<'_> {
        PostDest::Parallel(self.traits)
    }

    pub(crate) fn pool_inner(&self) -> &crate::base::shim::Arc<crate::engine::Engine> {
        self.pool.inner()
    }

    pub(crate) fn new(pool: PoolRef, traits: TaskTraits) -> Self {
        TaskRunner { pool, traits }
    }

    /// The traits every task of this runner gets.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits, TaskPriority};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let t = TaskTraits::new().priority(TaskPriority::BestEffort);
    /// assert_eq!(pool.create_task_runner(t).traits(), t);
    /// ```
    pub fn traits(&self) -> TaskTraits {
        self.traits
    }
}
