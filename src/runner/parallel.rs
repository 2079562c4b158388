//! `TaskRunner`: posts one-off parallel tasks with fixed traits.

use std::fmt;

use crate::base::shim::Arc;
use crate::base::traits::TaskTraits;
use crate::engine::scheduler::{ParallelRunner, Sequence};
use crate::engine::{PoolRef, PostDest};

/// Posts tasks that run in parallel, in no particular order, with the traits it was created
/// with. Get one from [`ThreadPool::create_task_runner`](crate::ThreadPool::create_task_runner)
/// or [`create_task_runner`](crate::create_task_runner).
///
/// Unlike posting on the pool directly, a runner is something of its own: it can be
/// [named](Self::named) (its tasks then carry the name in spans and panic reports, and it keeps
/// [metrics](Self::metrics)), [flushed](Self::flush) and [closed](Self::close) while the pool
/// goes on. Each of its tasks carries the runner in its queue entry (one reference count, which
/// is also how the runner counts its tasks in flight).
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
#[derive(Clone)]
pub struct TaskRunner {
    pool: PoolRef,
    /// The runner's identity, carried by each of its tasks' queue entries: its traits, name,
    /// closed flag, and (through its reference count) its tasks in flight.
    runner: Arc<ParallelRunner>,
}

impl fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRunner")
            .field("name", &self.runner.seq.name())
            .field("traits", &self.runner.seq.traits())
            .field("closed", &self.runner.seq.is_closed())
            .finish_non_exhaustive()
    }
}

impl TaskRunner {
    /// Where this runner's posts go (crate-internal posting helpers).
    pub(crate) fn post_dest(&self) -> PostDest<'_> {
        PostDest::Runner(&self.runner)
    }

    /// The pool behind this runner (crate-internal helpers: clock, worker count).
    pub(crate) fn pool_inner(&self) -> &Arc<crate::engine::Engine> {
        self.pool.inner()
    }

    pub(crate) fn parts(&self) -> (&Arc<crate::engine::Engine>, &Arc<Sequence>) {
        (self.pool.inner(), &self.runner.seq)
    }

    pub(crate) fn identity(&self) -> &ParallelRunner {
        &self.runner
    }

    pub(crate) fn new(pool: PoolRef, traits: TaskTraits) -> Self {
        TaskRunner {
            pool,
            runner: Arc::new(ParallelRunner::new(traits)),
        }
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
        self.runner.seq.traits()
    }
}
