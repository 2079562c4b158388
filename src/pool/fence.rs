//! `Fence`: while one is up, tasks are accepted but none (or no best-effort one) starts.

use std::fmt;

use crate::base::shim::Arc;
use crate::engine::gate::FenceKind;
use crate::engine::Engine;
use crate::pool::ThreadPool;

/// A fence on a pool, up until dropped: while it is up, posts are accepted but no task
/// starts ([`ThreadPool::begin_fence`]), or no best-effort task starts
/// ([`ThreadPool::begin_best_effort_fence`]); tasks already running go on. Fences are
/// counted: the pool runs again once every fence is down. Chromium's `BeginFence` and
/// `BeginBestEffortFence`, with the end tied to a guard.
///
/// Shutdown lowers every fence for good (block-shutdown work must run), and so does the pool
/// winding down once its last handle is gone (queued work still runs). A task a worker had
/// already taken when the fence went up may still start. Waits for held tasks (a handle's
/// `join`, [`ThreadPool::flush`]) wait until the fence is lowered.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let ran = Arc::new(AtomicUsize::new(0));
/// let fence = pool.begin_fence();
/// for _ in 0..10 {
///     let ran = ran.clone();
///     pool.post_task(TaskTraits::default(), move || { ran.fetch_add(1, SeqCst); }).unwrap();
/// }
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// assert_eq!(ran.load(SeqCst), 0); // accepted, not started
/// drop(fence);
/// pool.flush();
/// assert_eq!(ran.load(SeqCst), 10);
/// ```
#[must_use = "the fence is lowered when it is dropped"]
pub struct Fence {
    engine: Arc<Engine>,
    kind: FenceKind,
}

impl Fence {
    fn raise(pool: &ThreadPool, kind: FenceKind) -> Fence {
        let engine = Arc::clone(pool.pool_inner());
        engine.raise_fence(kind);
        Fence { engine, kind }
    }

    /// `true` for a best-effort fence (only best-effort tasks are held).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.begin_best_effort_fence().is_best_effort_only());
    /// assert!(!pool.begin_fence().is_best_effort_only());
    /// ```
    pub fn is_best_effort_only(&self) -> bool {
        self.kind == FenceKind::BestEffort
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        Engine::lower_fence(&self.engine, self.kind);
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("best_effort_only", &self.is_best_effort_only())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// Raises a fence: until the returned [`Fence`] is dropped, posts are accepted but no
    /// task starts (tasks running go on). Use it during start-up, or in a test to post a batch
    /// and release it at once.
    ///
    /// See [`Fence`] for an example.
    pub fn begin_fence(&self) -> Fence {
        Fence::raise(self, FenceKind::Full)
    }

    /// Raises a best-effort fence: until the returned [`Fence`] is dropped, no
    /// [`BestEffort`](crate::TaskPriority::BestEffort) task starts; other tasks run as usual.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskPriority, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let fence = pool.begin_best_effort_fence();
    /// let later = pool.post_task_with_result(TaskTraits::new().priority(TaskPriority::BestEffort), || "later").unwrap();
    /// let now = pool.post_task_with_result(TaskTraits::default(), || "now").unwrap();
    /// assert_eq!(now.join().unwrap(), "now"); // foreground work runs
    /// assert!(!later.is_finished());
    /// drop(fence);
    /// assert_eq!(later.join().unwrap(), "later");
    /// ```
    pub fn begin_best_effort_fence(&self) -> Fence {
        Fence::raise(self, FenceKind::BestEffort)
    }

    /// Starts a pool built with [`build_not_started`](crate::ThreadPoolBuilder::build_not_started):
    /// the tasks posted so far (and delayed tasks that ripened meanwhile) start now. Does
    /// nothing if the pool was started already (every other pool is).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build_not_started().unwrap();
    /// assert!(!pool.is_started());
    /// let h = pool.post_task_with_result(TaskTraits::default(), || 42).unwrap(); // accepted
    /// std::thread::sleep(std::time::Duration::from_millis(10));
    /// assert!(!h.is_finished()); // nothing runs before start
    /// pool.start();
    /// assert!(pool.is_started());
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub fn start(&self) {
        Engine::start(self.pool_inner());
    }

    /// `false` for a pool built with
    /// [`build_not_started`](crate::ThreadPoolBuilder::build_not_started) until
    /// [`start`](Self::start); `true` for every other pool.
    ///
    /// See [`start`](Self::start) for an example.
    pub fn is_started(&self) -> bool {
        self.pool_inner().gate.is_started()
    }
}
