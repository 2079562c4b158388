//! Task runners: the handles users post through. All are cheap to clone (two reference
//! counts) and `Send + Sync`.
//!
//! | runner | ordering | thread |
//! |---|---|---|
//! | [`TaskRunner`] | none: tasks may run in parallel, in any order | any worker |
//! | [`SequencedTaskRunner`] | posting order, one at a time, happens-before between tasks | any worker (may hop) |
//! | [`SingleThreadTaskRunner`] | as sequenced | always the runner's own dedicated thread |

mod parallel;
mod sequenced;
pub(crate) mod single_thread;
mod updateable;

pub use parallel::TaskRunner;
pub use sequenced::SequencedTaskRunner;
pub use single_thread::SingleThreadTaskRunner;
pub use updateable::UpdateableSequencedTaskRunner;

use std::time::{Duration, Instant};

use crate::error::PostError;
use crate::pool::ThreadPool;

/// Anything tasks can be posted to: the pool and every runner. Orchestration helpers
/// ([`Executor`](crate::executor::Executor), [`invoke_all`](crate::fork_join::invoke_all), [`retry`](crate::retry::retry),
/// [`TaskHandle::then`](crate::TaskHandle::then), ...) are generic over it, so they work on the
/// pool, on a parallel runner, and on sequences alike.
///
/// The runners' inherent `post_task` / `post_delayed_task` have the same meaning; a
/// [`ThreadPool`] posts with [`TaskTraits::default()`](crate::TaskTraits) (use a runner made with
/// [`ThreadPool::create_task_runner`] for other traits).
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// fn post_two<R: PostTask>(r: &R, tx: std::sync::mpsc::Sender<u8>) {
///     let tx2 = tx.clone();
///     r.post_task(move || tx.send(1).unwrap()).unwrap();
///     r.post_task(move || tx2.send(2).unwrap()).unwrap();
/// }
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// post_two(&pool.create_sequenced_task_runner(TaskTraits::default()), tx);
/// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (1, 2)); // a sequence keeps the order
/// ```
pub trait PostTask {
    /// Posts a task; refused (closure handed back) after shutdown started.
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static;

    /// Posts a task that runs no sooner than `delay` from now, by [`now`](Self::now)'s clock.
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static;

    /// The current time of the pool's clock (a mock clock in a `TestEnvironment`).
    fn now(&self) -> Instant;

    /// How many of this runner's tasks can run at once: 1 for a sequence, the pool's
    /// `max_workers` otherwise.
    fn max_concurrency(&self) -> usize;

    /// [`post_task`](Self::post_task) recording `posted_from` as the task's origin (what the
    /// panic handler and tracing report), for helpers that post on a user's behalf later
    /// (retries, continuations, repeats). Implementations outside the crate keep the default,
    /// which ignores the location.
    #[doc(hidden)]
    fn post_task_at<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let _ = posted_from;
        self.post_task(f)
    }

    /// [`post_delayed_task`](Self::post_delayed_task) recording `posted_from` as the task's
    /// origin (see [`post_task_at`](Self::post_task_at)).
    #[doc(hidden)]
    fn post_delayed_task_at<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let _ = posted_from;
        self.post_delayed_task(delay, f)
    }

    /// The token of the sequence this runner posts to, if it is sequenced: a crate wait for
    /// work queued there, made from a task of that sequence, could never end (it panics with
    /// advice instead). Implementations outside the crate keep the default `None`.
    #[doc(hidden)]
    fn sequence_token(&self) -> Option<u64> {
        None
    }

    /// The pool behind the runner, for crate-internal services (deadline timers that fire on
    /// the delay thread, mock-clock awareness of handles). Implementations outside the crate
    /// keep the default `None`; everything still works through `post_delayed_task`.
    #[doc(hidden)]
    fn pool_link(&self) -> Option<PoolLink> {
        None
    }
}

/// An opaque reference to a pool (see [`PostTask::pool_link`]); nothing to do with it outside
/// the crate.
#[doc(hidden)]
#[derive(Clone, Debug)]
#[cfg_attr(loom, allow(dead_code))]
pub struct PoolLink(pub(crate) crate::shim::Arc<crate::pool::Inner>);

impl PoolLink {
    /// The pool, as its handles see it.
    #[cfg(feature = "test-util")]
    pub(crate) fn handle_host(&self) -> crate::shim::Arc<crate::pool::Inner> {
        crate::shim::Arc::clone(&self.0)
    }
}

macro_rules! impl_post_task_for_runner {
    ($t:ty, $conc:expr) => {
        impl PostTask for $t {
            #[track_caller]
            fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                <$t>::post_task(self, f)
            }
            #[track_caller]
            fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                <$t>::post_delayed_task(self, delay, f)
            }
            fn now(&self) -> Instant {
                self.pool_inner().clock.now()
            }
            fn max_concurrency(&self) -> usize {
                let c: fn(&$t) -> usize = $conc;
                c(self)
            }
            fn pool_link(&self) -> Option<PoolLink> {
                Some(PoolLink(self.pool_inner().clone()))
            }
            fn sequence_token(&self) -> Option<u64> {
                match self.post_dest() {
                    crate::pool::PostDest::Sequence(s) => Some(s.token),
                    crate::pool::PostDest::Parallel(_) => None,
                }
            }
            fn post_task_at<F>(
                &self,
                f: F,
                posted_from: &'static std::panic::Location<'static>,
            ) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                crate::pool::Inner::post(
                    self.pool_inner(),
                    self.post_dest(),
                    Duration::ZERO,
                    f,
                    posted_from,
                )
            }
            fn post_delayed_task_at<F>(
                &self,
                delay: Duration,
                f: F,
                posted_from: &'static std::panic::Location<'static>,
            ) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                crate::pool::Inner::post(self.pool_inner(), self.post_dest(), delay, f, posted_from)
            }
        }
    };
}

impl_post_task_for_runner!(TaskRunner, |r| r.pool_inner().group.max_workers);
impl_post_task_for_runner!(SequencedTaskRunner, |_| 1);
impl_post_task_for_runner!(SingleThreadTaskRunner, |_| 1);

impl PostTask for UpdateableSequencedTaskRunner {
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.as_sequenced().post_task(f)
    }
    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.as_sequenced().post_delayed_task(delay, f)
    }
    fn now(&self) -> Instant {
        PostTask::now(self.as_sequenced())
    }
    fn max_concurrency(&self) -> usize {
        1
    }
    fn pool_link(&self) -> Option<PoolLink> {
        self.as_sequenced().pool_link()
    }
    fn sequence_token(&self) -> Option<u64> {
        self.as_sequenced().sequence_token()
    }
    fn post_task_at<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.as_sequenced().post_task_at(f, posted_from)
    }
    fn post_delayed_task_at<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.as_sequenced()
            .post_delayed_task_at(delay, f, posted_from)
    }
}

impl PostTask for ThreadPool {
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        ThreadPool::post_task(self, crate::TaskTraits::default(), f)
    }
    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        ThreadPool::post_delayed_task(self, crate::TaskTraits::default(), delay, f)
    }
    fn now(&self) -> Instant {
        ThreadPool::now(self)
    }
    fn max_concurrency(&self) -> usize {
        self.max_workers()
    }
    fn pool_link(&self) -> Option<PoolLink> {
        Some(PoolLink(self.pool_ref().inner().clone()))
    }
    fn post_task_at<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        crate::pool::Inner::post(
            self.pool_ref().inner(),
            crate::pool::PostDest::Parallel(crate::TaskTraits::default()),
            Duration::ZERO,
            f,
            posted_from,
        )
    }
    fn post_delayed_task_at<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        crate::pool::Inner::post(
            self.pool_ref().inner(),
            crate::pool::PostDest::Parallel(crate::TaskTraits::default()),
            delay,
            f,
            posted_from,
        )
    }
}

impl<R: PostTask + ?Sized> PostTask for &R {
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_task(f)
    }
    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_delayed_task(delay, f)
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn max_concurrency(&self) -> usize {
        (**self).max_concurrency()
    }
    fn pool_link(&self) -> Option<PoolLink> {
        (**self).pool_link()
    }
    fn sequence_token(&self) -> Option<u64> {
        (**self).sequence_token()
    }
    fn post_task_at<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_task_at(f, posted_from)
    }
    fn post_delayed_task_at<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_delayed_task_at(delay, f, posted_from)
    }
}
