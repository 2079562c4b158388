//! Waiting on many handles: [`as_completed`] (an iterator in completion order) and [`wait`]
//! with a [`WaitStrategy`] (the shape of Python's `concurrent.futures.as_completed` / `wait`).
//!
//! Both are driven by **one completion channel**: each handle gets a waker that sends its index
//! when the handle ends, so waiting on `n` handles costs O(n) in all.
//!
//! # Timeouts
//!
//! * A timeout covers the **whole** wait: [`AsCompleted::timeout`] is one deadline for the
//!   whole iteration (not one per item), and [`wait`]'s timeout is one deadline for the call.
//! * `Duration::ZERO` means "look once, do not wait".
//! * A timeout too large to add to the current [`Instant`] (`Duration::MAX`, say) means **no
//!   limit**: the wait is unbounded, exactly as with no timeout at all. It never panics.
//! * On timeout nothing is raised: every strategy returns what finished and what did not.
//! * Timeouts are **real time** ([`Instant`]), also for tasks of a `TestEnvironment` pool,
//!   whose mock clock is not consulted: a test drives the environment first
//!   (`run_until_idle`, `fast_forward_by`), then looks with a zero timeout, or waits with a
//!   generous one.
//!
//! # Blocking inside pool tasks
//!
//! A wait that has to block on a pool worker is a blocking scope (as
//! [`blocking`](crate::blocking), without its may-block check): the pool runs one more worker
//! while it blocks, so tasks that wait for other tasks of the same pool cannot starve it. A
//! wait that need not block (everything it waits for has ended) costs nothing of the kind.

use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::base::deadline::Deadline;
use crate::engine::{blocking_unchecked, check_can_block};
use crate::handle::{TaskError, TaskHandle, TaskState};

/// Sends its handle's index when the handle ends.
struct IndexWake {
    index: usize,
    tx: Sender<usize>,
}

impl Wake for IndexWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // The receiver may be gone (the wait returned); nothing to tell then.
        let _ = self.tx.send(self.index);
    }
}

/// Registers a completion waker on every handle; ended handles report at once.
fn watch<T: Send + 'static>(handles: &[Option<TaskHandle<T>>]) -> Receiver<usize> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for (index, h) in handles.iter().enumerate() {
        if let Some(h) = h {
            let waker = Waker::from(Arc::new(IndexWake {
                index,
                tx: tx.clone(),
            }));
            h.wake_when_done(&waker);
        }
    }
    rx
}

/// Receives the next completed index, waiting until `deadline` ([`Deadline::NEVER`]: no
/// limit). `None` on timeout (or if no handle can report any more). The blocking part is a
/// blocking scope (see the module docs).
fn next_index(rx: &Receiver<usize>, deadline: Deadline, what: &str) -> Option<usize> {
    match rx.try_recv() {
        Ok(i) => return Some(i),
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) => {}
    }
    match deadline.instant() {
        None => {
            check_can_block(what);
            blocking_unchecked(|| rx.recv().ok())
        }
        Some(d) => {
            if Instant::now() >= d {
                return None; // timed out: nothing to block for
            }
            // Timed out, or no handle can report any more.
            blocking_unchecked(|| rx.recv_deadline(d).ok())
        }
    }
}

/// The deadline `timeout` from now ([`Deadline::NEVER`] if that is too far to represent).
fn deadline_after(timeout: Duration) -> Deadline {
    Deadline::real_after(timeout)
}

/// Yields `(index, outcome)` for each handle as it ends, in **completion order** (`index` is
/// the handle's position in the input). See [`as_completed`].
///
/// With a [`timeout`](Self::timeout) or [`deadline`](Self::deadline), the iteration stops
/// waiting at that instant: handles that have already ended are still yielded, then the
/// iterator ends, [`timed_out`](Self::timed_out) says so, and
/// [`into_pending`](Self::into_pending) gives back the handles that have not ended.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::TaskHandle;
/// use taskrunner::fork_join::as_completed;
/// let mut it = as_completed(vec![TaskHandle::ready(1), TaskHandle::ready(2)]).timeout(Duration::from_secs(10));
/// assert_eq!(it.remaining(), 2);
/// let mut sum = 0;
/// for (_, r) in &mut it { sum += r.unwrap(); }
/// assert_eq!(sum, 3);
/// assert!(!it.timed_out());
/// assert!(it.into_pending().is_empty());
/// ```
pub struct AsCompleted<T> {
    slots: Vec<Option<TaskHandle<T>>>,
    rx: Receiver<usize>,
    left: usize,
    deadline: Deadline,
    ended: bool,
    timed_out: bool,
}

/// Iterates over `handles` in the order they end, as `(input index, outcome)`. Each outcome is
/// taken from its handle ([`TaskHandle::join`] of an ended handle); the iteration ends when
/// every handle has been yielded, or at the [`timeout`](AsCompleted::timeout) /
/// [`deadline`](AsCompleted::deadline) if one is set (one deadline for the whole iteration).
/// On a pool worker, waiting for the next handle is a blocking scope (the pool runs one more
/// worker meanwhile).
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// use taskrunner::fork_join::as_completed;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
/// let slow = pool.post_task_with_result(TaskTraits::default(), move || { release_rx.recv().unwrap(); "slow" }).unwrap();
/// let fast = pool.post_task_with_result(TaskTraits::default(), || "fast").unwrap();
/// let mut it = as_completed(vec![slow, fast]);
/// assert_eq!(it.next().unwrap(), (1, Ok("fast")));
/// release_tx.send(()).unwrap();
/// assert_eq!(it.next().unwrap(), (0, Ok("slow")));
/// assert!(it.next().is_none());
/// ```
pub fn as_completed<T, I>(handles: I) -> AsCompleted<T>
where
    T: Send + 'static,
    I: IntoIterator<Item = TaskHandle<T>>,
{
    let slots: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
    let rx = watch(&slots);
    AsCompleted {
        left: slots.len(),
        slots,
        rx,
        deadline: Deadline::NEVER,
        ended: false,
        timed_out: false,
    }
}

impl<T: Send + 'static> AsCompleted<T> {
    /// Stops waiting `timeout` from now (one limit for the whole iteration, not per item).
    /// `Duration::ZERO` yields only what has already ended; a timeout too large to represent
    /// (`Duration::MAX`) means no limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::fork_join::as_completed;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let never = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 0).unwrap();
    /// let mut it = as_completed(vec![taskrunner::TaskHandle::ready(7), never]).timeout(Duration::ZERO);
    /// assert_eq!(it.next().unwrap(), (0, Ok(7)));
    /// assert!(it.next().is_none());
    /// assert!(it.timed_out());
    /// let pending = it.into_pending();
    /// assert_eq!(pending.len(), 1);
    /// assert_eq!(pending[0].0, 1);
    /// pending[0].1.cancel();
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = deadline_after(timeout);
        self
    }

    /// Stops waiting at `deadline` (real time).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use taskrunner::TaskHandle;
    /// use taskrunner::fork_join::as_completed;
    /// let it = as_completed(vec![TaskHandle::ready(())]).deadline(Instant::now() + Duration::from_secs(5));
    /// assert_eq!(it.count(), 1);
    /// ```
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Deadline::at(deadline);
        self
    }

    /// How many handles have not been yielded yet.
    ///
    /// See [`AsCompleted`] for an example.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// `true` if the iteration ended because its deadline passed (with handles left).
    ///
    /// See [`timeout`](Self::timeout) for an example.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The handles not yielded yet, with their input indices, in index order.
    ///
    /// See [`timeout`](Self::timeout) for an example.
    pub fn into_pending(self) -> Vec<(usize, TaskHandle<T>)> {
        self.slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|h| (i, h)))
            .collect()
    }
}

impl<T: Send + 'static> Iterator for AsCompleted<T> {
    type Item = (usize, Result<T, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.left > 0 && !self.ended {
            let Some(i) = next_index(&self.rx, self.deadline, "as_completed without a deadline")
            else {
                self.ended = true;
                self.timed_out = !self.deadline.is_never();
                return None;
            };
            // Each handle reports once; a stray index is ignored.
            if let Some(h) = self.slots.get_mut(i).and_then(Option::take) {
                self.left -= 1;
                return Some((i, h.join()));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            (0, Some(0))
        } else {
            (0, Some(self.left))
        }
    }
}

impl<T: Send + 'static> FusedIterator for AsCompleted<T> {}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.left)
            .field("deadline", &self.deadline.instant())
            .field("timed_out", &self.timed_out)
            .finish()
    }
}

/// When [`wait`] returns (besides its timeout).
///
/// ```
/// assert_eq!(taskrunner::fork_join::WaitStrategy::default(), taskrunner::fork_join::WaitStrategy::AllCompleted);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// When every handle has ended.
    #[default]
    AllCompleted,
    /// When at least one handle has ended; every handle ended by then is reported done.
    FirstCompleted,
    /// When a handle ends in anything but [`TaskState::Completed`] (failed, panicked,
    /// cancelled, deadline exceeded); otherwise when every handle has ended.
    FirstError,
}

/// What [`wait`] found: the handles that had ended and those that had not, each with its
/// index in the input, in index order. No result is taken: join the handles for them.
///
/// ```
/// use taskrunner::TaskHandle;
/// use taskrunner::fork_join::{wait, WaitStrategy, Waited};
/// let Waited { done, pending } = wait(vec![TaskHandle::ready(1)], WaitStrategy::AllCompleted, None);
/// assert_eq!(done.len(), 1);
/// assert!(pending.is_empty());
/// ```
pub struct Waited<T> {
    /// Handles that had ended (in any state), with their input indices.
    pub done: Vec<(usize, TaskHandle<T>)>,
    /// Handles that had not ended, with their input indices.
    pub pending: Vec<(usize, TaskHandle<T>)>,
}

impl<T> fmt::Debug for Waited<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idx = |v: &Vec<(usize, TaskHandle<T>)>| v.iter().map(|(i, _)| *i).collect::<Vec<_>>();
        f.debug_struct("Waited")
            .field("done", &idx(&self.done))
            .field("pending", &idx(&self.pending))
            .finish()
    }
}

/// Waits until `strategy` is satisfied or `timeout` passes, then splits `handles` into those
/// that have ended and those that have not (input indices kept, no result taken).
///
/// * `timeout`: `None` waits without limit; `Some(Duration::ZERO)` looks once and returns at
///   once; otherwise one real-time limit for the whole call (a timeout too large to represent,
///   such as `Duration::MAX`, is no limit). On timeout every strategy simply returns the
///   partial split (nothing is raised).
/// * On a pool worker the wait is a blocking scope: the pool runs one more worker while it
///   blocks, so the handles' tasks can run even on a one-worker pool.
/// * An empty input returns at once.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// use taskrunner::fork_join::{wait, WaitStrategy};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
/// let handles = vec![
///     pool.post_task_with_result(TaskTraits::default(), move || { gate_rx.recv().unwrap(); 0 }).unwrap(),
///     pool.post_task_with_result(TaskTraits::default(), || -> i32 { panic!("one") }).unwrap(),
/// ];
/// let w = wait(handles, WaitStrategy::FirstError, Some(Duration::from_secs(30)));
/// assert_eq!(w.done.len(), 1);
/// assert_eq!(w.done[0].0, 1);
/// assert_eq!(w.pending[0].0, 0);
/// gate_tx.send(()).unwrap();
/// ```
pub fn wait<T: Send + 'static>(
    handles: Vec<TaskHandle<T>>,
    strategy: WaitStrategy,
    timeout: Option<Duration>,
) -> Waited<T> {
    let n = handles.len();
    if n > 0 && timeout != Some(Duration::ZERO) {
        let slots: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
        let deadline = timeout.map_or(Deadline::NEVER, deadline_after);
        let rx = watch(&slots);
        let mut ended = 0;
        loop {
            let satisfied = match strategy {
                WaitStrategy::AllCompleted => ended == n,
                WaitStrategy::FirstCompleted => ended > 0,
                WaitStrategy::FirstError => ended == n,
            };
            if satisfied {
                break;
            }
            let Some(i) = next_index(&rx, deadline, "wait without a timeout") else {
                break; // timed out
            };
            ended += 1;
            if strategy == WaitStrategy::FirstError {
                let failed = slots[i]
                    .as_ref()
                    .is_some_and(|h| h.state() != TaskState::Completed);
                if failed {
                    break;
                }
            }
        }
        return split(slots.into_iter().flatten().collect());
    }
    split(handles)
}

/// Splits by "has ended" as of now (so every handle ended by the time `wait` returns is
/// reported done, not only the one that satisfied the strategy).
fn split<T: Send + 'static>(handles: Vec<TaskHandle<T>>) -> Waited<T> {
    let mut done = Vec::new();
    let mut pending = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if h.is_finished() {
            done.push((i, h));
        } else {
            pending.push((i, h));
        }
    }
    Waited { done, pending }
}
