//! `AsyncMutex<T>`: a lock that async code can hold across an `.await`, handed from one owner
//! to the next in arrival order.
//!
//! # You may not need it: a sequence is the lock
//!
//! A task-aware mutex is what you reach for when many tasks share one piece of state. Here,
//! state that belongs to one logical thread is owned by a **sequence**, and needs no lock:
//!
//! * keep it in a [`SequenceBound<T>`](crate::SequenceBound) (the object lives on its
//!   sequence; callers post closures to it) or a [`SequenceLocal`](crate::SequenceLocal);
//! * run the code that touches it as tasks or `post_future` futures **of that sequence**: they
//!   run one at a time, in posting order, each seeing the previous one's writes. Between two
//!   awaits of a future the state is yours; across an await, other tasks of the sequence may
//!   run (an actor's mailbox) and see the state as you left it. That is the one difference
//!   from a lock held across the await, which would keep them out: keep each invariant
//!   whole at every await, or use `AsyncMutex`.
//!
//! Use `AsyncMutex` only when futures that run on *different* runners must hold one piece of
//! state across an `.await` (a connection used for a multi-step exchange, a file written in
//! several awaited parts).
//!
//! # Protocol
//!
//! One small lock guards the state: the value when nobody owns it (`free`), the value handed
//! to a waiter that has not picked it up yet (`handed`), and the FIFO of waiters.
//!
//! | event | rule |
//! |---|---|
//! | lock, nobody owns it | take `free` at once (`free` is only ever `Some` when nobody waits) |
//! | lock, owned | join the back of the queue; wait |
//! | unlock, a waiter queued | move the value to `handed` for the **first** waiter and wake it: the lock stays held, by that waiter |
//! | unlock, nobody waits | put the value back in `free` |
//! | a waiting future is dropped | leave the queue |
//! | a future that was handed the lock is dropped | pass the lock on, as an unlock would |
//!
//! The value moves between `free`, `handed` and one guard, so there is always exactly one owner
//! and never both a free lock and a handed one: a third locker arriving just after a hand-off
//! finds the lock owned (by the woken waiter) and queues behind it; it can never get in beside
//! it. [`try_lock`](AsyncMutex::try_lock) succeeds only when `free` is set, so it never barges
//! past queued waiters either.
//!
//! A panic while a guard is held releases the lock as the guard unwinds (no poisoning, as in
//! `parking_lot`). The value lives in a `Box`, so a hand-off moves one pointer, and no `unsafe`
//! is needed: the guard owns the box while it holds the lock.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use crate::base::shim::Mutex;

/// A mutual-exclusion lock for async code: [`lock`](Self::lock)`.await` waits without holding a
/// thread, and the guard may be held across `.await`s. Waiters are served first come, first
/// served: an unlock hands the lock straight to the oldest waiter, which wakes up owning it.
///
/// Consider a sequence first: state owned by one sequence needs no lock. Keep it in a
/// [`SequenceBound`](crate::SequenceBound) or [`SequenceLocal`](crate::SequenceLocal), and run
/// the code that uses it as tasks or `post_future` futures of that sequence; they run one at a
/// time, in order. `AsyncMutex` is for futures on *different* runners that must hold shared
/// state across an `.await`.
///
/// ```
/// use std::sync::Arc;
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// use taskrunner::sync::AsyncMutex;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let log = Arc::new(AsyncMutex::new(Vec::new()));
/// let handles: Vec<_> = (0..4)
///     .map(|i| {
///         let log = log.clone();
///         let step = pool.post_task_with_result(TaskTraits::default(), move || i).unwrap();
///         pool.post_future(TaskTraits::default(), async move {
///             let mut entries = log.lock().await;
///             entries.push(format!("{i}: begin"));
///             let v = step.await.unwrap(); // still holding the lock
///             entries.push(format!("{v}: end"));
///         })
///         .unwrap()
///     })
///     .collect();
/// for h in handles { h.join().unwrap(); }
/// let entries = log.lock_blocking();
/// for pair in entries.chunks(2) { // never interleaved
///     assert_eq!(pair[0].split(':').next(), pair[1].split(':').next());
/// }
/// ```
pub struct AsyncMutex<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The value while nobody owns the lock. `Some` only when `waiters` is empty.
    free: Option<Box<T>>,
    /// The lock handed to waiter `.0`, which owns it but has not picked it up yet.
    handed: Option<(u64, Box<T>)>,
    /// Waiting lockers, oldest first.
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

struct Waiter {
    id: u64,
    waker: Waker,
}

impl<T> State<T> {
    /// The owner gives the lock up: to the oldest waiter if there is one (returned, to be woken
    /// after the state lock is released), else back to `free`.
    #[must_use = "the new owner must be woken"]
    fn release(&mut self, value: Box<T>) -> Option<Waker> {
        match self.waiters.pop_front() {
            Some(w) => {
                self.handed = Some((w.id, value));
                Some(w.waker)
            }
            None => {
                self.free = Some(value);
                None
            }
        }
    }
}

impl<T> AsyncMutex<T> {
    /// An unlocked mutex holding `value`.
    ///
    /// ```
    /// let m = taskrunner::sync::AsyncMutex::new(5);
    /// assert_eq!(*m.try_lock().unwrap(), 5);
    /// ```
    pub fn new(value: T) -> Self {
        AsyncMutex {
            state: Mutex::new(State {
                free: Some(Box::new(value)),
                handed: None,
                waiters: VecDeque::new(),
                next_id: 0,
            }),
        }
    }

    /// Waits for the lock and returns its guard. The future joins the queue on its first
    /// poll; dropping it leaves the queue (or, if the lock was already handed to it, passes the
    /// lock on), so a cancelled locker never keeps the lock.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// use taskrunner::sync::AsyncMutex;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let m = std::sync::Arc::new(AsyncMutex::new(0));
    /// let m2 = m.clone();
    /// let h = pool.post_future(TaskTraits::default(), async move {
    ///     let mut g = m2.lock().await;
    ///     *g += 1;
    ///     *g
    /// }).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    pub fn lock(&self) -> AsyncMutexLock<'_, T> {
        AsyncMutexLock {
            mutex: self,
            id: None,
            done: false,
        }
    }

    /// Takes the lock if nobody owns it and nobody is waiting for it (it never jumps the
    /// queue).
    ///
    /// ```
    /// let m = taskrunner::sync::AsyncMutex::new(());
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<AsyncMutexGuard<'_, T>> {
        let value = self.state.lock().free.take()?;
        Some(AsyncMutexGuard {
            mutex: self,
            value: Some(value),
        })
    }

    /// Blocks this thread until it owns the lock (in the same FIFO queue as `lock().await`).
    /// For threads and tasks. A pool task that has to wait here is a blocking scope (as
    /// [`blocking`](crate::blocking), without its may-block check): the pool runs one more
    /// worker while it blocks, so the holder of the lock (a task or a `post_future` future on
    /// the same pool) can always run and release it. A free lock is taken without blocking.
    /// In futures prefer `lock().await`, which blocks no thread at all.
    ///
    /// ```
    /// let m = std::sync::Arc::new(taskrunner::sync::AsyncMutex::new(1));
    /// let m2 = m.clone();
    /// let t = std::thread::spawn(move || *m2.lock_blocking() += 1);
    /// t.join().unwrap();
    /// assert_eq!(*m.lock_blocking(), 2);
    /// ```
    pub fn lock_blocking(&self) -> AsyncMutexGuard<'_, T> {
        if let Some(g) = self.try_lock() {
            return g;
        }
        crate::engine::blocking_unchecked(|| block_on(self.lock()))
    }

    /// `true` if someone owns the lock now (a snapshot).
    ///
    /// ```
    /// let m = taskrunner::sync::AsyncMutex::new(());
    /// let g = m.try_lock();
    /// assert!(m.is_locked());
    /// drop(g);
    /// assert!(!m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.state.lock().free.is_none()
    }

    /// How many lockers are queued now (a snapshot).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(taskrunner::sync::AsyncMutex::new(()));
    /// let g = m.try_lock().unwrap();
    /// let m2 = m.clone();
    /// let t = std::thread::spawn(move || drop(m2.lock_blocking()));
    /// while m.waiting() == 0 { std::thread::yield_now(); }
    /// assert_eq!(m.waiting(), 1);
    /// drop(g); // handed to the waiting thread
    /// t.join().unwrap();
    /// assert_eq!(m.waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        self.state.lock().waiters.len()
    }

    /// The value, consuming the mutex. Panics if a guard was leaked (`mem::forget`), since
    /// the value went with it.
    ///
    /// ```
    /// let m = taskrunner::sync::AsyncMutex::new(String::from("x"));
    /// m.try_lock().unwrap().push('y');
    /// assert_eq!(m.into_inner(), "xy");
    /// ```
    pub fn into_inner(self) -> T {
        let value = self.state.lock().free.take();
        *value.expect("AsyncMutex::into_inner: a guard was leaked and took the value with it")
    }
}

impl<T: Default> Default for AsyncMutex<T> {
    /// An unlocked mutex holding `T::default()`.
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for AsyncMutex<T> {
    /// An unlocked mutex holding `value`.
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> fmt::Debug for AsyncMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("AsyncMutex")
            .field("locked", &s.free.is_none())
            .field("waiting", &s.waiters.len())
            .finish_non_exhaustive()
    }
}

/// The future of [`AsyncMutex::lock`]: resolves to the guard once the lock is this locker's.
///
/// See [`AsyncMutex::lock`] for an example.
#[must_use = "a lock future does nothing unless polled"]
pub struct AsyncMutexLock<'a, T> {
    mutex: &'a AsyncMutex<T>,
    /// Our place in the queue, once we joined it.
    id: Option<u64>,
    done: bool,
}

impl<'a, T> Future for AsyncMutexLock<'a, T> {
    type Output = AsyncMutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "AsyncMutexLock polled after it completed");
        let mutex = self.mutex;
        let mut s = mutex.state.lock();
        let value = match self.id {
            None => match s.free.take() {
                Some(v) => v,
                None => {
                    let id = s.next_id;
                    s.next_id += 1;
                    s.waiters.push_back(Waiter {
                        id,
                        waker: cx.waker().clone(),
                    });
                    drop(s);
                    self.id = Some(id);
                    return Poll::Pending;
                }
            },
            Some(id) => match s.handed.take() {
                Some((to, v)) if to == id => v,
                other => {
                    s.handed = other;
                    if let Some(w) = s.waiters.iter_mut().find(|w| w.id == id) {
                        if !w.waker.will_wake(cx.waker()) {
                            w.waker = cx.waker().clone();
                        }
                    }
                    return Poll::Pending;
                }
            },
        };
        drop(s);
        self.id = None;
        self.done = true;
        Poll::Ready(AsyncMutexGuard {
            mutex,
            value: Some(value),
        })
    }
}

impl<T> Drop for AsyncMutexLock<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.id else {
            return;
        };
        let wake = {
            let mut s = self.mutex.state.lock();
            match s.handed.take() {
                // Handed the lock, never picked it up: pass it on (or free it).
                Some((to, v)) if to == id => s.release(v),
                other => {
                    s.handed = other;
                    s.waiters.retain(|w| w.id != id);
                    None
                }
            }
        };
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for AsyncMutexLock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncMutexLock")
            .field("queued", &self.id.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// Owns an [`AsyncMutex`]'s lock and its value; unlocking (dropping it) hands the lock to the
/// oldest waiter, if any. May be held across `.await`, and is `Send` when `T` is.
///
/// See [`AsyncMutex`] for an example.
pub struct AsyncMutexGuard<'a, T> {
    mutex: &'a AsyncMutex<T>,
    /// `Some` until the guard is dropped.
    value: Option<Box<T>>,
}

impl<T> Deref for AsyncMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_deref().expect("a live guard holds the value")
    }
}

impl<T> DerefMut for AsyncMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_deref_mut()
            .expect("a live guard holds the value")
    }
}

impl<T> Drop for AsyncMutexGuard<'_, T> {
    fn drop(&mut self) {
        let Some(v) = self.value.take() else {
            return;
        };
        let wake = self.mutex.state.lock().release(v);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for AsyncMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncMutexGuard").field(&**self).finish()
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls (a spurious unpark only costs a poll).
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
