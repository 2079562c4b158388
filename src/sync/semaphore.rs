//! `Semaphore`: a counting limit shared across tasks, independent of the worker count.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::shim::{Arc, Condvar, Mutex};
use crate::engine::blocking_unchecked;

type Waiter = Box<dyn FnOnce(Permit) + Send>;

struct State {
    permits: usize,
    /// Queued `acquire_then` callbacks, served first-come first-served. Blocking `acquire`
    /// callers wait on the condvar and take a permit only when no callback is queued, so the
    /// two kinds never steal a permit from each other out of order by more than one wake-up.
    waiters: VecDeque<Waiter>,
    /// A `Permit::drop` is handing permits to queued callbacks (outside the lock). A permit
    /// dropped meanwhile (typically by a callback that could not use it) is returned to
    /// `permits` and that loop hands it on: the hand-off is a loop, not a recursion through
    /// the callbacks, however many are queued.
    handing: bool,
}

struct SemaphoreState {
    total: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// A counting semaphore for limiting how many tasks do something at once (open connections,
/// requests to one host), shared across runners and [`Executor`](crate::executor::Executor)s.
///
/// Unlike a blocking semaphore inside a task, [`Executor::submit_with_limit`](crate::executor::Executor)
/// does not hold a worker while it waits: the task is posted only once a permit is free
/// ([`acquire_then`](Self::acquire_then)). A [`Permit`] returns itself on drop, and hands
/// itself directly to the oldest queued waiter: a permit is either handed over or returned,
/// never both, so a third acquirer can never slip in beside the one it was handed to.
///
/// **Blocking inside pool tasks.** [`acquire`](Self::acquire) and
/// [`acquire_timeout`](Self::acquire_timeout) called from a pool task that has to wait are a
/// blocking scope (as [`blocking`](crate::blocking), without its may-block check): the pool
/// runs one more worker while they block, so the task holding the permit can always run and
/// release it, even on a one-worker pool. An acquire that finds a free permit does not block.
///
/// ```
/// use taskrunner::sync::Semaphore;
/// let s = Semaphore::new(2);
/// let a = s.acquire();
/// let b = s.try_acquire().unwrap();
/// assert!(s.try_acquire().is_none());
/// drop(a);
/// assert_eq!(s.available(), 1);
/// drop(b);
/// assert_eq!(s.available(), 2);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<SemaphoreState>,
}

/// One unit of a [`Semaphore`], released on drop.
///
/// See [`Semaphore`] for an example.
pub struct Permit {
    inner: Option<Arc<SemaphoreState>>,
}

impl Semaphore {
    /// A semaphore with `permits` units. Panics if `permits` is 0 (nothing could ever run).
    ///
    /// ```
    /// assert_eq!(taskrunner::sync::Semaphore::new(3).available(), 3);
    /// ```
    pub fn new(permits: usize) -> Self {
        assert!(
            permits > 0,
            "Semaphore::new(0): a semaphore needs at least one permit"
        );
        Semaphore {
            inner: Arc::new(SemaphoreState {
                total: permits,
                state: Mutex::new(State {
                    permits,
                    waiters: VecDeque::new(),
                    handing: false,
                }),
                cv: Condvar::new(),
            }),
        }
    }

    /// Permits free right now.
    ///
    /// See [`Semaphore`] for an example.
    pub fn available(&self) -> usize {
        self.inner.state.lock().permits
    }

    /// The number of permits the semaphore was made with.
    ///
    /// ```
    /// assert_eq!(taskrunner::sync::Semaphore::new(4).capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.total
    }

    /// Takes a permit if one is free and no callback is queued for one.
    ///
    /// See [`Semaphore`] for an example.
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut s = self.inner.state.lock();
        if s.permits > 0 && s.waiters.is_empty() {
            s.permits -= 1;
            Some(self.permit())
        } else {
            None
        }
    }

    /// Blocks this thread until a permit is free. Inside pool tasks prefer
    /// [`acquire_then`](Self::acquire_then), which holds no worker while waiting; if a pool task
    /// does block here, the pool runs one more worker meanwhile (see [`Semaphore`]).
    ///
    /// See [`Semaphore`] for an example.
    pub fn acquire(&self) -> Permit {
        self.acquire_until(Deadline::NEVER)
            .expect("an acquire without a deadline always gets a permit")
    }

    /// Like [`acquire`](Self::acquire), giving up after `timeout` (`None` then). A timeout too
    /// large to represent (`Duration::MAX`) means no limit: it waits like `acquire`. A free
    /// permit is taken at once, whatever the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = taskrunner::sync::Semaphore::new(1);
    /// let held = s.acquire();
    /// assert!(s.acquire_timeout(Duration::from_millis(1)).is_none());
    /// drop(held);
    /// assert!(s.acquire_timeout(Duration::MAX).is_some()); // no limit, and no overflow
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Permit> {
        self.acquire_until(Deadline::real_after(timeout))
    }

    /// Takes a permit, waiting until `deadline`; the wait is a blocking scope.
    fn acquire_until(&self, deadline: Deadline) -> Option<Permit> {
        if let Some(p) = self.try_acquire() {
            return Some(p);
        }
        blocking_unchecked(|| {
            let mut s = self.inner.state.lock();
            while s.permits == 0 || !s.waiters.is_empty() {
                match deadline.instant() {
                    None => self.inner.cv.wait(&mut s),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return None;
                        }
                        self.inner.cv.wait_for(&mut s, d - now);
                    }
                }
            }
            s.permits -= 1;
            Some(self.permit())
        })
    }

    /// Calls `f` with a permit as soon as one is free: at once, on this thread, if one is;
    /// otherwise later, on the thread that releases one. `f` should be short (post a task).
    /// Queued callbacks are served in the order they were queued; a queued `f` that panics
    /// when it runs is reported (tracing) and does not stop the others, and its permit is
    /// released.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// let s = taskrunner::sync::Semaphore::new(1);
    /// let held = s.acquire();
    /// let (tx, rx) = channel();
    /// s.acquire_then(move |permit| tx.send(permit).unwrap());
    /// assert!(rx.try_recv().is_err()); // queued
    /// drop(held); // hands the permit straight to the queued callback
    /// let p = rx.recv().unwrap();
    /// assert_eq!(s.available(), 0);
    /// drop(p);
    /// assert_eq!(s.available(), 1);
    /// ```
    pub fn acquire_then<F>(&self, f: F)
    where
        F: FnOnce(Permit) + Send + 'static,
    {
        {
            let mut s = self.inner.state.lock();
            if s.permits == 0 || !s.waiters.is_empty() {
                s.waiters.push_back(Box::new(f));
                return;
            }
            s.permits -= 1;
        }
        f(self.permit());
    }

    fn permit(&self) -> Permit {
        Permit {
            inner: Some(self.inner.clone()),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let mut s = inner.state.lock();
        s.permits += 1;
        if s.waiters.is_empty() || s.handing {
            // Nobody queued, or the thread that is handing permits over takes this one too.
            drop(s);
            inner.cv.notify_one();
            return;
        }
        // Hand permits to queued callbacks, oldest first, while both exist. Each permit goes
        // from the count straight to one callback under the lock, so it is handed over or
        // returned, never both; nobody else takes from the count while callbacks are queued.
        s.handing = true;
        while s.permits > 0 {
            let Some(w) = s.waiters.pop_front() else {
                break;
            };
            s.permits -= 1;
            drop(s);
            let permit = Permit {
                inner: Some(inner.clone()),
            };
            // A panicking callback must not stop the hand-off (queued callbacks would wait
            // forever) nor unwind into whoever dropped the permit; its permit is dropped
            // during the unwind and comes back to this loop. The payload is dropped quietly.
            if let Err(p) = crate::base::unwind::catch(|| w(permit)) {
                tracing::error!(
                    message = %p.message(),
                    "a semaphore acquire_then callback panicked"
                );
            }
            s = inner.state.lock();
        }
        s.handing = false;
        let free = s.permits > 0;
        drop(s);
        if free {
            // Blocking acquirers woken while callbacks were queued went back to sleep.
            inner.cv.notify_all();
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("capacity", &self.inner.total)
            .field("available", &self.available())
            .finish()
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_third_acquirer_after_a_hand_off_does_not_get_in() {
        // After T1 hands off to T2, T3 must not find a stale permit.
        let s = Semaphore::new(1);
        let t1 = s.acquire();
        let (tx, rx) = std::sync::mpsc::channel();
        s.acquire_then(move |p| tx.send(p).unwrap());
        drop(t1);
        let t2 = rx.recv().unwrap();
        assert!(
            s.try_acquire().is_none(),
            "T3 entered while T2 holds the permit"
        );
        assert_eq!(s.available(), 0);
        drop(t2);
        assert!(s.try_acquire().is_some());
    }

    #[test]
    fn callbacks_are_served_in_order() {
        let s = Semaphore::new(1);
        let held = s.acquire();
        let order = std::sync::Arc::new(crate::base::shim::Mutex::new(Vec::new()));
        for i in 0..3 {
            let o = order.clone();
            s.acquire_then(move |_p| o.lock().push(i));
        }
        drop(held);
        assert_eq!(*order.lock(), vec![0, 1, 2]);
        assert_eq!(s.available(), 1);
    }
}
