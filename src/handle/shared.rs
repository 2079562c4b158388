//! `SharedHandle`: one task's outcome, read by any number of waiters.
//!
//! It owns the task's [`TaskHandle`]. Waiters wait on the result cell without taking the result
//! (its condition variable wakes them all); the first one to see the task ended takes the
//! result into `outcome`, under that lock, and every waiter returns a clone of it. For async
//! waiters the handle's single waker slot holds one relay waker (the shared state itself),
//! which wakes every waker registered here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::base::shim::Mutex;
use crate::handle::{TaskError, TaskHandle, TaskState};

/// A task's outcome that several waiters can each read: a cloneable handle, from
/// [`TaskHandle::shared`]. Every clone can [`join`](Self::join) (blocking, as
/// [`TaskHandle::join`] does: a blocking scope on a pool worker, a panic with advice from the
/// task's own sequence) or `.await` it, as often as it likes, and gets a clone of the value (or
/// of the [`TaskError`]). No registry or channel is needed to hand one result to many
/// consumers.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let token = pool.post_task_with_result(TaskTraits::default(), || 7u64).unwrap().shared();
/// let (a, b) = (token.clone(), token.clone());
/// assert_eq!((a.await.unwrap(), b.await.unwrap()), (7, 7));
/// assert_eq!(token.try_get().unwrap().unwrap(), 7);
/// # });
/// ```
pub struct SharedHandle<T> {
    inner: Arc<Shared<T>>,
}

struct Shared<T> {
    handle: TaskHandle<T>,
    /// The outcome, once a waiter took it from the handle.
    outcome: Mutex<Option<Result<T, TaskError>>>,
    /// Async waiters to wake when the task ends.
    wakers: Mutex<Vec<Waker>>,
}

impl<T> Clone for SharedHandle<T> {
    fn clone(&self) -> Self {
        SharedHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Send + 'static> Wake for Shared<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = std::mem::take(&mut *self.wakers.lock());
        for w in wakers {
            w.wake();
        }
    }
}

impl<T: Clone + Send + 'static> SharedHandle<T> {
    pub(crate) fn new(handle: TaskHandle<T>) -> Self {
        SharedHandle {
            inner: Arc::new(Shared {
                handle,
                outcome: Mutex::new(None),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A clone of the outcome if the task has ended. Never blocks.
    ///
    /// ```
    /// let h = taskrunner::TaskHandle::ready(5).shared();
    /// assert_eq!(h.try_get().unwrap().unwrap(), 5);
    /// assert_eq!(h.try_get().unwrap().unwrap(), 5); // not taken: every call gets it
    /// ```
    pub fn try_get(&self) -> Option<Result<T, TaskError>> {
        let mut outcome = self.inner.outcome.lock();
        if outcome.is_none() {
            *outcome = self.inner.handle.take_result();
        }
        outcome.clone()
    }

    /// Blocks until the task ends and returns a clone of its outcome. Waits like
    /// [`TaskHandle::join`]: a blocking scope when called from a pool task, and a panic with
    /// advice (instead of a wait that could never end) when called from a task of the sequence
    /// the task is queued on.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || -> u8 { panic!("no") }).unwrap().shared();
    /// let other = h.clone();
    /// assert!(h.join().unwrap_err().is_panic());
    /// assert!(other.join().unwrap_err().is_panic()); // each waiter sees the failure
    /// ```
    #[track_caller]
    pub fn join(&self) -> Result<T, TaskError> {
        loop {
            if let Some(outcome) = self.try_get() {
                return outcome;
            }
            self.inner.handle.wait_done_within(None);
        }
    }

    /// Waits at most `timeout` for the task to end; `None` if it has not. Like
    /// [`TaskHandle::join_timeout`] (from a task of the sequence the task is queued on, `None`
    /// at once).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap().shared();
    /// assert!(h.join_timeout(Duration::from_millis(5)).is_none());
    /// h.cancel();
    /// assert!(h.join_timeout(Duration::from_secs(10)).unwrap().unwrap_err().is_cancelled());
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Option<Result<T, TaskError>> {
        if let Some(outcome) = self.try_get() {
            return Some(outcome);
        }
        if self.inner.handle.wait_done_within(Some(timeout)) {
            self.try_get()
        } else {
            None
        }
    }

    /// `true` once the task has ended. Never blocks.
    ///
    /// ```
    /// assert!(taskrunner::TaskHandle::ready(()).shared().is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.handle.is_finished()
    }

    /// Where the task is (see [`TaskState`]).
    ///
    /// ```
    /// use taskrunner::TaskState;
    /// assert_eq!(taskrunner::TaskHandle::ready(1).shared().state(), TaskState::Completed);
    /// ```
    pub fn state(&self) -> TaskState {
        self.inner.handle.state()
    }

    /// Cancels the task for every holder, as [`TaskHandle::cancel`]; `true` if it will end
    /// cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap().shared();
    /// assert!(h.clone().cancel());
    /// assert!(h.join().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.inner.handle.cancel()
    }
}

impl<T: Clone + Send + 'static> Future for SharedHandle<T> {
    type Output = Result<T, TaskError>;

    /// Ready with a clone of the outcome once the task has ended; every clone can be awaited.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.try_get() {
            return Poll::Ready(outcome);
        }
        {
            let mut wakers = self.inner.wakers.lock();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        // The handle's one waker slot holds the relay, which wakes every waiter above (at once
        // if the task ended meanwhile).
        self.inner
            .handle
            .wake_when_done(&Waker::from(Arc::clone(&self.inner)));
        match self.try_get() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for SharedHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHandle")
            .field("handle", &self.inner.handle)
            .finish_non_exhaustive()
    }
}
