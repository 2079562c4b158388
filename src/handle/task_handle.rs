//! `TaskHandle<T>`: join, poll, cancel, inspect, or `.await` a posted task's result.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::shim::Ordering;
use crate::engine::delay::DelayId;
use crate::handle::cell::{
    CellCore, HandleCell, CANCELLED, COMPLETED, FAILED, PANICKED, PENDING, RUNNING,
};
use crate::handle::TaskError;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Queued (or delayed), not started.
    Pending,
    /// Running on a worker now.
    Running,
    /// Finished with a value.
    Completed,
    /// Finished by panicking.
    Panicked,
    /// Finished by returning an error: a fallible task of the [`Executor`](crate::executor::Executor),
    /// fork/join or a retry (see [`TaskError::is_failed`]).
    Failed,
    /// Ended without a value because of a cancellation: cancelled before it started, dropped
    /// unrun at shutdown, its deadline passed, or (orchestrated tasks) it stopped on its
    /// cancelled token — see [`TaskError`] for which.
    Cancelled,
}

impl TaskState {
    /// `true` for the four terminal states.
    ///
    /// ```
    /// use taskrunner::TaskState;
    /// assert!(TaskState::Completed.is_terminal());
    /// assert!(!TaskState::Running.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Panicked | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// The result of a task posted with `post_task_with_result` (on any runner or pool).
///
/// * [`join`](TaskHandle::join) blocks for the result; [`join_timeout`](TaskHandle::join_timeout)
///   and [`try_result`](TaskHandle::try_result) don't consume the handle.
/// * It implements [`Future`], so async code (tokio, smol, any executor) can `.await` it without
///   blocking a thread.
/// * [`cancel`](TaskHandle::cancel) stops a task that has not started: it never runs and its
///   closure is dropped at once. A task that already started runs to the end and keeps its
///   value.
/// * A panic inside the task resolves the handle to a [`TaskError`] carrying the message.
/// * **Dropping a handle does not cancel the task** (it runs, its value is dropped), unless the
///   handle was made with [`abort_on_drop`](TaskHandle::abort_on_drop).
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskState};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let h = pool.post_task_with_result(TaskTraits::default(), || 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
///
/// let h = taskrunner::TaskHandle::ready("cached");
/// assert_eq!(h.state(), TaskState::Completed);
/// assert_eq!(h.join().unwrap(), "cached");
/// ```
pub struct TaskHandle<T> {
    pub(crate) cell: Arc<dyn HandleCell<T>>,
    abort_on_drop: bool,
    /// The token of the sequence the task was posted to (0: not a sequence). A blocking wait
    /// made from a task of that same sequence could never end (see `assert_can_wait`).
    sequence: u64,
    /// The task was posted to a seeded single-thread test pool (only the driving thread runs
    /// it, so a blocking join there could never finish).
    #[cfg(feature = "test-util")]
    seeded_pool: bool,
    /// A delayed task's pending entry: cancelling removes it from the delay manager at once
    /// (the closure is freed by the cell either way; this frees the entry and its sequence).
    /// A weak reference, so a handle does not keep a dropped pool's state alive.
    #[cfg(not(loom))]
    delay_entry: DelayEntry,
    /// The pool, when it is a `TestEnvironment`'s (mock clock, manual delays): waits obey the
    /// mock clock.
    #[cfg(feature = "test-util")]
    mock: Option<std::sync::Weak<dyn HandleHost>>,
}

/// What a handle needs from the pool its task was posted to: the pool implements it, and a
/// handle holds it weakly (a handle never keeps a dropped pool's state alive). The only way
/// a handle reaches its pool.
pub(crate) trait HandleHost: Send + Sync {
    /// Removes a delayed task's pending entry at once (the entry is dropped outside the
    /// delay manager's lock).
    fn cancel_delayed(&self, id: DelayId);
    /// `true` if the delayed task `id` has not ripened yet.
    #[cfg(feature = "test-util")]
    fn delay_pending(&self, id: DelayId) -> bool;
    /// The pool's clock.
    #[cfg(feature = "test-util")]
    fn now(&self) -> std::time::Instant;
    /// The pool is a `TestEnvironment`'s (mock clock, delays forwarded by the test).
    #[cfg(feature = "test-util")]
    fn is_mock(&self) -> bool;
    /// The pool is a seeded single-thread test pool (no worker threads).
    #[cfg(feature = "test-util")]
    fn is_seeded(&self) -> bool;
}

impl<T: Send + 'static> TaskHandle<T> {
    pub(crate) fn from_cell(cell: Arc<dyn HandleCell<T>>) -> Self {
        TaskHandle {
            cell,
            abort_on_drop: false,
            sequence: 0,
            #[cfg(feature = "test-util")]
            seeded_pool: false,
            #[cfg(not(loom))]
            delay_entry: None,
            #[cfg(feature = "test-util")]
            mock: None,
        }
    }

    /// Records the sequence the task was posted to (its token), for the own-sequence check.
    pub(crate) fn on_sequence(mut self, token: u64) -> Self {
        self.sequence = token;
        self
    }

    /// Marks a handle of a task posted to a `TestEnvironment` pool.
    #[cfg(all(feature = "test-util", not(loom)))]
    pub(crate) fn on_mock_pool<H: HandleHost + 'static>(
        mut self,
        pool: &std::sync::Arc<H>,
    ) -> Self {
        if pool.is_mock() {
            let weak: std::sync::Weak<H> = std::sync::Arc::downgrade(pool);
            let weak: std::sync::Weak<dyn HandleHost> = weak;
            self.mock = Some(weak);
        }
        self
    }

    /// Loom builds keep no reference (loom's `Arc` has no weak references).
    #[cfg(all(feature = "test-util", loom))]
    pub(crate) fn on_mock_pool<H: HandleHost + 'static>(
        self,
        _pool: &crate::base::shim::Arc<H>,
    ) -> Self {
        self
    }

    /// Marks a handle whose work runs on the pool behind `link` (orchestration handles:
    /// continuations, retries, executor tasks), so that waits on a `TestEnvironment` pool obey
    /// its mock clock and misuse from the driving thread panics with advice.
    #[cfg_attr(not(feature = "test-util"), allow(unused_mut, unused_variables))]
    pub(crate) fn for_pool(mut self, link: Option<crate::engine::PoolLink>) -> Self {
        #[cfg(feature = "test-util")]
        if let Some(l) = link {
            let host = l.handle_host();
            self = self.on_seeded_pool(host.is_seeded()).on_mock_pool(&host);
        }
        self
    }

    /// Remembers the pending delay-manager entry of a delayed task.
    #[cfg(not(loom))]
    pub(crate) fn with_delay_entry<H: HandleHost + 'static>(
        mut self,
        pool: &std::sync::Arc<H>,
        id: DelayId,
    ) -> Self {
        let weak: std::sync::Weak<H> = std::sync::Arc::downgrade(pool);
        let weak: std::sync::Weak<dyn HandleHost> = weak;
        self.delay_entry = Some((weak, id));
        self
    }

    /// Loom builds keep no entry (loom's `Arc` has no weak references).
    #[cfg(loom)]
    pub(crate) fn with_delay_entry<H: HandleHost + 'static>(
        self,
        _pool: &crate::base::shim::Arc<H>,
        _id: DelayId,
    ) -> Self {
        self
    }

    /// Marks a handle of a task posted to a seeded single-thread test pool.
    #[cfg(feature = "test-util")]
    pub(crate) fn on_seeded_pool(mut self, seeded: bool) -> Self {
        self.seeded_pool = seeded;
        self
    }

    /// A handle that is already completed with `value`.
    ///
    /// ```
    /// let h = taskrunner::TaskHandle::ready(5);
    /// assert!(h.is_finished());
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    pub fn ready(value: T) -> Self {
        Self::from_cell(Arc::new(CellCore::finished(Ok(value))))
    }

    /// A handle that has already failed with `error`.
    ///
    /// ```
    /// use taskrunner::{TaskError, TaskHandle};
    /// let h: TaskHandle<u8> = TaskHandle::failed(TaskError::new("offline"));
    /// let err = h.join().unwrap_err();
    /// assert!(err.is_failed());
    /// assert_eq!(err.to_string(), "task failed: offline");
    /// ```
    pub fn failed(error: TaskError) -> Self {
        Self::from_cell(Arc::new(CellCore::finished(Err(error))))
    }

    fn core(&self) -> &CellCore<T> {
        self.cell.core()
    }

    /// Blocks until the task ends, without taking the result (any number of threads may wait
    /// at once: they wait on the cell's condition variable, not on its single waker slot).
    pub(crate) fn wait_done(&self) {
        let core = self.core();
        spin_until_terminal(core);
        if core.sync.lock().done {
            return;
        }
        self.assert_can_wait("waiting for a task handle");
        crate::engine::blocking::blocking_unchecked(|| {
            let mut s = core.sync.lock();
            while !s.done {
                core.cv.wait(&mut s);
            }
        });
    }

    /// Panics with advice when the caller is a task of the sequence this task was posted to:
    /// the task is queued behind the caller (or is the caller), and the sequence runs one task
    /// at a time, so the wait could never end.
    #[track_caller]
    fn assert_can_wait(&self, what: &str) {
        crate::engine::current::assert_not_waiting_on_own_sequence(self.sequence, what);
    }

    /// `true` if a wait by the calling thread could never end (see `assert_can_wait`).
    fn waits_on_own_sequence(&self) -> bool {
        self.sequence != 0 && crate::engine::current::current_token() == self.sequence
    }

    /// Wakes `waker` when the task ends (at once if it has), without taking the result.
    /// Replaces a waker stored by an earlier poll.
    pub(crate) fn wake_when_done(&self, waker: &std::task::Waker) {
        let ended = {
            let mut s = self.core().sync.lock();
            if !s.done {
                match &s.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => s.waker = Some(waker.clone()),
                }
            }
            s.done
        };
        if ended {
            waker.wake_by_ref();
        }
    }

    /// Blocks until the task ends and returns its value, or why there is none.
    ///
    /// Called from a task of the same pool, the wait is a blocking scope: the pool runs one
    /// more worker meanwhile, so joins inside tasks can never use up every worker and deadlock
    /// the pool. From async code, `.await` the handle instead of blocking a thread.
    ///
    /// # Panics
    ///
    /// If the result was already taken with [`try_result`](Self::try_result) or
    /// [`join_timeout`](Self::join_timeout); and, at once, if the caller is a task of the
    /// sequence (or single-thread runner) this task was posted to and the task has not ended:
    /// it is queued behind the caller, which would wait forever. Use post-and-reply
    /// (`post_task_and_reply_with_result`), [`then`](Self::then), or `.await` the handle in a
    /// future (`post_future`) instead.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || "done").unwrap();
    /// assert_eq!(h.join().unwrap(), "done");
    /// ```
    #[track_caller]
    pub fn join(mut self) -> Result<T, TaskError> {
        self.wait_take(None).expect(
            "TaskHandle::join: the result was already taken (by try_result or join_timeout)",
        )
    }

    /// Waits at most `timeout` for the result. `None` if the task has not ended yet (the handle
    /// stays usable), or if the result was already taken. A timeout too large for `Instant`
    /// (`Duration::MAX`) waits without limit.
    ///
    /// Like [`join`](Self::join), the wait compensates the pool when made from a pool task.
    /// Called from a task of the sequence this task is queued on, it returns `None` at once
    /// (the task cannot run before the caller ends).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let mut h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap();
    /// assert!(h.join_timeout(Duration::from_millis(5)).is_none());
    /// h.cancel();
    /// ```
    #[track_caller]
    pub fn join_timeout(&mut self, timeout: Duration) -> Option<Result<T, TaskError>> {
        self.wait_take(Some(timeout))
    }

    /// The result if the task has ended (taken: a second call returns `None`). Never blocks.
    ///
    /// ```
    /// let mut h = taskrunner::TaskHandle::ready(3);
    /// assert_eq!(h.try_result().unwrap().unwrap(), 3);
    /// assert!(h.try_result().is_none());
    /// ```
    pub fn try_result(&mut self) -> Option<Result<T, TaskError>> {
        self.core().sync.lock().result.take()
    }

    #[track_caller]
    fn wait_take(&mut self, timeout: Option<Duration>) -> Option<Result<T, TaskError>> {
        if self.wait_done_within(timeout) {
            self.core().sync.lock().result.take()
        } else {
            None
        }
    }

    /// The result, taken, if the task has ended and nobody took it yet (a shared handle takes
    /// it once, under its own lock).
    pub(crate) fn take_result(&self) -> Option<Result<T, TaskError>> {
        self.core().sync.lock().result.take()
    }

    /// Turns this handle into a [`SharedHandle`](crate::SharedHandle): cloneable, and every
    /// clone can wait for the task and read a clone of its outcome (the value or the
    /// [`TaskError`]), by blocking or by `.await`. The task is not affected: it still runs
    /// once, and cancelling through any clone cancels it for all.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let config = pool.post_task_with_result(TaskTraits::default(), || String::from("loaded")).unwrap().shared();
    /// let readers: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let config = config.clone();
    ///         std::thread::spawn(move || config.join().unwrap())
    ///     })
    ///     .collect();
    /// for r in readers {
    ///     assert_eq!(r.join().unwrap(), "loaded");
    /// }
    /// assert_eq!(config.join().unwrap(), "loaded"); // as often as you like
    /// ```
    pub fn shared(self) -> crate::handle::SharedHandle<T>
    where
        T: Clone,
    {
        crate::handle::SharedHandle::new(self)
    }

    /// Waits until the task ended (`true`), at most `timeout` (`false`), without taking the
    /// result: what [`join`](Self::join) and [`join_timeout`](Self::join_timeout) wait with,
    /// and what a [`SharedHandle`](crate::SharedHandle)'s waiters wait with, any number at once.
    #[track_caller]
    pub(crate) fn wait_done_within(&self, timeout: Option<Duration>) -> bool {
        #[cfg(feature = "test-util")]
        if let Some(inner) = self.mock.as_ref().and_then(std::sync::Weak::upgrade) {
            return self.wait_done_mock(&*inner, timeout);
        }
        let core = self.cell.core();
        spin_until_terminal(core);
        if core.sync.lock().done {
            return true;
        }
        if self.waits_on_own_sequence() {
            if timeout.is_some() {
                return false;
            }
            self.assert_can_wait("TaskHandle::join");
        }
        let deadline = match timeout {
            Some(t) => Deadline::real_after(t),
            None => Deadline::NEVER,
        };
        crate::engine::blocking::blocking_unchecked(|| {
            let mut s = core.sync.lock();
            while !s.done {
                match deadline.remaining(Instant::now()) {
                    None => core.cv.wait(&mut s),
                    Some(left) if left.is_zero() => return false,
                    Some(left) => {
                        core.cv.wait_for(&mut s, left);
                    }
                }
            }
            true
        })
    }

    /// Waiting on a task of a `TestEnvironment` pool: a timeout is measured on the mock clock
    /// (it elapses when the test moves time past it), and a wait that only the thread driving
    /// the environment could end panics with advice instead of hanging.
    #[cfg(feature = "test-util")]
    #[track_caller]
    fn wait_done_mock(&self, inner: &dyn HandleHost, timeout: Option<Duration>) -> bool {
        let deadline = match timeout {
            Some(t) => Deadline::after(inner.now(), t),
            None => Deadline::NEVER,
        };
        if self.core().sync.lock().done {
            return true;
        }
        // Workers of a threaded environment compensate like real pools while they wait.
        crate::engine::blocking::blocking_unchecked(|| {
            let core = self.cell.core();
            let mut s = core.sync.lock();
            loop {
                if s.done {
                    return true;
                }
                if deadline.is_reached(inner.now()) {
                    return false;
                }
                if self.waits_on_own_sequence() {
                    if timeout.is_some() {
                        return false;
                    }
                    drop(s);
                    self.assert_can_wait("TaskHandle::join");
                    s = core.sync.lock();
                    continue;
                }
                if crate::engine::current::drives_test_env() {
                    if self.seeded_pool {
                        panic!(
                            "waiting for a task on the thread that drives a seeded single-thread TestEnvironment would \
                             block forever: only this thread runs its tasks. Call env.run_until_idle() or \
                             env.fast_forward_by(..) first (or use try_result())."
                        );
                    }
                    let not_due = self
                        .delay_entry
                        .as_ref()
                        .is_some_and(|(_, id)| inner.delay_pending(*id));
                    // A task that needs no mock time runs on the environment's workers: waiting for
                    // it (with or without a mock-time timeout, which cannot elapse meanwhile) is a
                    // plain join. One that is not due yet needs this thread to move the clock.
                    if not_due {
                        panic!(
                            "waiting for a delayed task that is not due yet on the thread that drives a \
                             TestEnvironment would block forever: mock time only moves when this thread moves it. \
                             Call env.fast_forward_by(..) (or advance_clock + run_until_idle) first, then join."
                        );
                    }
                }
                // Another thread may move the mock clock: look again every millisecond.
                core.cv.wait_for(&mut s, Duration::from_millis(1));
            }
        })
    }

    /// `true` once the task has ended (completed, failed, panicked or cancelled). Never blocks.
    ///
    /// ```
    /// assert!(taskrunner::TaskHandle::ready(()).is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        // `done`, not the state word: the state turns terminal a moment before the result is
        // stored (a cancelled closure is dropped in between), and `is_finished() == true` must
        // mean the result can be taken.
        self.core().sync.lock().done
    }

    /// The task's state now.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskState};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || ()).unwrap();
    /// assert_eq!(h.state(), TaskState::Pending);
    /// h.cancel();
    /// assert_eq!(h.state(), TaskState::Cancelled);
    /// ```
    pub fn state(&self) -> TaskState {
        decode_state(self.core().state.load(Ordering::Acquire))
    }

    /// A cloneable handle that cancels this task from anywhere, while the `TaskHandle` itself is
    /// used elsewhere (for example while another thread is blocked in [`join`](Self::join),
    /// which then returns the cancellation). It has the same effect as
    /// [`cancel`](Self::cancel) and does not keep the task's result.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 1).unwrap();
    /// let abort = h.abort_handle();
    /// let joiner = std::thread::spawn(move || h.join());
    /// assert!(abort.cancel());
    /// assert!(joiner.join().unwrap().unwrap_err().is_cancelled());
    /// assert!(abort.is_finished());
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle {
            target: Arc::new(Target {
                cell: Arc::clone(&self.cell),
                #[cfg(not(loom))]
                delay_entry: self.delay_entry.clone(),
            }),
        }
    }

    /// Cancels the task if it has not started: it will never run, and its closure is dropped
    /// now (for a delayed task: now, not at its deadline). Returns `true` if this call
    /// cancelled it; `false` if it had already started or ended (a running task finishes and
    /// keeps its value).
    ///
    /// A task that runs with a [`CancellationToken`](crate::cancel::CancellationToken) (executor,
    /// fork/join and retry tasks) also has its token cancelled, whether or not it started: a
    /// running task sees it through its [`TaskContext`](crate::cancel::TaskContext) and may stop early;
    /// whatever it returns is its result.
    ///
    /// A future posted with `post_future` is different, as dropping a future is how async Rust
    /// cancels: `cancel()` returns `true` until the future has completed, and the future is
    /// then dropped on its runner at its next turn (a value produced by a poll that was in
    /// progress is dropped with it); the handle ends cancelled.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap();
    /// assert!(h.cancel());
    /// assert!(!h.cancel()); // already cancelled
    /// ```
    pub fn cancel(&self) -> bool {
        self.cancel_now()
    }

    /// How long the task ran (`None` until it ends, and for cancelled tasks).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let mut h = pool.post_task_with_result(TaskTraits::default(), || std::thread::sleep(std::time::Duration::from_millis(2))).unwrap();
    /// let _ = h.join_timeout(std::time::Duration::from_secs(10));
    /// assert!(h.duration().unwrap() >= std::time::Duration::from_millis(2));
    /// ```
    pub fn duration(&self) -> Option<Duration> {
        self.core().sync.lock().duration
    }

    /// Makes dropping this handle cancel the task (if it has not started yet).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// struct Flag(Arc<AtomicBool>);
    /// impl Drop for Flag { fn drop(&mut self) { self.0.store(true, Ordering::SeqCst); } }
    /// let freed = Arc::new(AtomicBool::new(false));
    /// let flag = Flag(freed.clone());
    /// let h = pool
    ///     .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), move || drop(flag))
    ///     .unwrap();
    /// drop(h.abort_on_drop());
    /// assert!(freed.load(Ordering::SeqCst)); // cancelled: the closure was freed at once
    /// ```
    #[must_use]
    pub fn abort_on_drop(mut self) -> Self {
        self.abort_on_drop = true;
        self
    }
}

/// Spins briefly (bounded backoff, a few microseconds) on the state word before a join parks:
/// a short task often finishes within that time, and parking plus the wake-up would cost two
/// futex calls and a context switch on each side. The lock-protected wait that follows is what
/// guarantees correctness; this only saves time.
#[cfg(not(loom))]
fn spin_until_terminal<T>(core: &CellCore<T>) {
    for step in 0..8u32 {
        if core.state.load(Ordering::Acquire) >= COMPLETED {
            return;
        }
        for _ in 0..(1u32 << step) {
            std::hint::spin_loop();
        }
    }
}

/// Under loom, spinning only multiplies the explored states.
#[cfg(loom)]
fn spin_until_terminal<T>(_core: &CellCore<T>) {}

fn decode_state(state: u8) -> TaskState {
    match state {
        PENDING => TaskState::Pending,
        RUNNING => TaskState::Running,
        COMPLETED => TaskState::Completed,
        PANICKED => TaskState::Panicked,
        CANCELLED => TaskState::Cancelled,
        FAILED => TaskState::Failed,
        _ => unreachable!("invalid task state"),
    }
}

/// A delayed task's pending entry in its pool's delay manager.
#[cfg(not(loom))]
type DelayEntry = Option<(std::sync::Weak<dyn HandleHost>, DelayId)>;

/// Cancels through the cell, then frees a delayed task's pending entry at once.
fn cancel_cell<T>(cell: &dyn HandleCell<T>, #[cfg(not(loom))] delay_entry: &DelayEntry) -> bool {
    let cancelled = cell.cancel();
    #[cfg(not(loom))]
    if cancelled {
        if let Some((pool, id)) = delay_entry {
            if let Some(host) = pool.upgrade() {
                host.cancel_delayed(*id);
            }
        }
    }
    cancelled
}

impl<T> TaskHandle<T> {
    fn cancel_now(&self) -> bool {
        cancel_cell(
            &*self.cell,
            #[cfg(not(loom))]
            &self.delay_entry,
        )
    }
}

/// Cancels a task whose [`TaskHandle`] is used elsewhere; made by
/// [`TaskHandle::abort_handle`]. Cheap to clone, `Send + Sync`, and it never keeps the task's
/// result or closure alive beyond the task itself.
///
/// ```
/// # use std::time::Duration;
/// # use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskState};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || ()).unwrap();
/// let a = h.abort_handle();
/// assert_eq!(a.state(), TaskState::Pending);
/// assert!(a.clone().cancel());
/// assert!(!a.cancel()); // already cancelled
/// assert_eq!(h.state(), TaskState::Cancelled);
/// ```
#[derive(Clone)]
#[doc(alias = "abort")]
pub struct AbortHandle {
    target: Arc<dyn AbortTarget>,
}

impl AbortHandle {
    /// Cancels the task if it has not started (see [`TaskHandle::cancel`]); `true` if this call
    /// cancelled it.
    ///
    /// See [`AbortHandle`] for an example.
    #[doc(alias = "abort")]
    pub fn cancel(&self) -> bool {
        self.target.cancel()
    }

    /// `true` once the task has ended (see [`TaskHandle::is_finished`]).
    ///
    /// ```
    /// let a = taskrunner::TaskHandle::ready(1).abort_handle();
    /// assert!(a.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.target.is_finished()
    }

    /// The task's state now (see [`TaskHandle::state`]).
    ///
    /// See [`AbortHandle`] for an example.
    pub fn state(&self) -> TaskState {
        self.target.state()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("state", &self.state())
            .finish()
    }
}

/// The type-erased side of an [`AbortHandle`].
trait AbortTarget: Send + std::marker::Sync {
    fn cancel(&self) -> bool;
    fn is_finished(&self) -> bool;
    fn state(&self) -> TaskState;
}

struct Target<T> {
    cell: Arc<dyn HandleCell<T>>,
    #[cfg(not(loom))]
    delay_entry: DelayEntry,
}

impl<T: Send + 'static> AbortTarget for Target<T> {
    fn cancel(&self) -> bool {
        cancel_cell(
            &*self.cell,
            #[cfg(not(loom))]
            &self.delay_entry,
        )
    }
    fn is_finished(&self) -> bool {
        self.cell.core().sync.lock().done
    }
    fn state(&self) -> TaskState {
        decode_state(self.cell.core().state.load(Ordering::Acquire))
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        if self.abort_on_drop {
            self.cancel_now();
        }
    }
}

impl<T: Send + 'static> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    /// Ready once the task has ended. Polling after the result was taken (by an earlier
    /// `Ready`, `try_result` or `join_timeout`) panics, like polling a finished future.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = self.cell.core();
        let mut s = core.sync.lock();
        if s.done {
            return Poll::Ready(
                s.result
                    .take()
                    .expect("TaskHandle polled after its result was taken"),
            );
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("state", &self.cell.core().state.load(Ordering::Acquire))
            .field("abort_on_drop", &self.abort_on_drop)
            .finish()
    }
}
