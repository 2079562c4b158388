//! Fork/join: [`invoke_all`] (and [`invoke_all_fail_fast`]) runs a batch of fallible tasks, at
//! most `limit` at a time, and joins them; [`consume`] drains a channel of [`Deferred`] tasks
//! with N concurrent workers; [`wait_all`] and [`cancel_all`] act on any slice of handles.
//!
//! # The error rule
//!
//! Errors are reported the same way whatever the limit and the runner:
//!
//! * every task ends with its own outcome in its own [`TaskHandle`]: a value, or a
//!   [`TaskError`] saying it failed (it returned `Err`, kept as the error's source), panicked,
//!   or was cancelled (also by a deadline) before it started;
//! * [`InvokeAll::join`] returns **all** outcomes, in **input order**;
//! * [`InvokeAll::join_fail_fast`] returns the values in input order, or the **first** task to
//!   end without a value, **by completion time**; that first failure cancels the rest (tasks not
//!   started never run and end cancelled; running ones see their token cancelled) as soon as
//!   `join_fail_fast` is called, or at the failure itself for a batch made with
//!   [`invoke_all_fail_fast`]. Tasks that end without running because the batch was cancelled
//!   count as ending when they were cancelled;
//! * [`wait_all`] reports every handle that did not complete (index and state);
//! * a [`Consumer`] cannot see inside the [`Deferred`]s it runs: their outcomes are in the
//!   handles their senders kept, and [`ConsumeReport`] counts what it ran and what it resolved
//!   without running.
//!
//! # How a batch runs: drivers
//!
//! `invoke_all` with a limit `n` does not post one task per item plus a supervisor. It posts
//! `n` **drivers**: each claims the next item (an atomic index into the batch), runs it inline
//! inside a [`TaskContext`], and claims again until none is left. Per item this costs one
//! result cell (one allocation: closure and result together, as a [`Deferred`]) and no post at
//! all. Without
//! a limit, one driver per item is posted at once, so every item can start as soon as a worker
//! is free; a driver that finds its item already taken by a faster one exits at once.
//!
//! Each driver runs its items under one child token of the batch token (replaced by a fresh
//! child if an item cancels its own token), so a task that cancels its own
//! [`TaskContext::token`] stops only itself, while cancelling the batch reaches every task.
//!
//! # Cancellation never leaves a task pending
//!
//! Cancelling a batch or a consumer (explicitly, by a deadline on its token, or by a fail-fast
//! failure) resolves every task that has not started, at once, on the cancelling thread, so
//! nothing waiting on them can hang. If the runner refuses the drivers (shutdown), the tasks
//! they would have run end as not run.
//!
//! # Panics
//!
//! An `invoke_all` task that panics is caught and reported exactly like a plain task's panic
//! (the runner's [`PanicPolicy`](crate::PanicPolicy), then the pool's panic handler, with the
//! location of the `invoke_all` call), before its handle resolves as panicked with the payload.
//!
//! # Blocking
//!
//! Every wait here that blocks (`join`, `join_fail_fast`, `Consumer::join`, `wait_all`, a
//! consumer's driver waiting for the next task) is a blocking scope on a pool worker: the pool
//! runs one more worker meanwhile. A join by a task of the very sequence the batch (or
//! consumer) runs on could never end, since its drivers are queued behind the caller: it
//! panics at once instead.

pub(crate) mod scope;
pub(crate) mod wait;

pub use crate::fork_join::scope::{scope, Scope, ScopedHandle};
pub use crate::fork_join::wait::{as_completed, wait, AsCompleted, WaitStrategy, Waited};
pub use crate::sync::wait_group::TaskGroup;

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Weak};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::base::shim::{AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};
use crate::base::unwind::catch;
use crate::cancel::{CancellationToken, Interrupted, TaskContext};
use crate::engine::{
    blocking_unchecked, check_can_block, check_not_own_sequence, report_task_panic,
};
use crate::handle::cell::new_outcome_cell;
use crate::handle::{CellJob, TaskError, TaskHandle, TaskState};
use crate::runner::Deferred;
use crate::runner::PostTask;

/// `first_failure` before any task failed.
const NO_FAILURE: usize = usize::MAX;

// ---- invoke_all -------------------------------------------------------------------------------

/// The shared state of one `invoke_all` batch.
///
/// | field | written by | rule |
/// |---|---|---|
/// | `next` | drivers (`fetch_add`), drains (`fetch_max(len)`) | each index is claimed exactly once |
/// | `remaining` | whoever resolved a claimed item | decremented after the item's handle resolved; 0 = all ended |
/// | `first_failure` | the first task to end without a value | CAS from `NO_FAILURE`, once |
/// | `drivers` | drivers on exit (run or dropped unrun) | the last one resolves any unclaimed item |
struct Batch {
    slots: Box<[Mutex<Option<CellJob>>]>,
    next: AtomicUsize,
    remaining: AtomicUsize,
    drivers: AtomicUsize,
    first_failure: AtomicUsize,
    fail_fast: AtomicBool,
    token: CancellationToken,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Batch {
    /// Runs items until none is left or the batch is cancelled. The items run inside one
    /// [`TaskContext`] scope (entered once, not per item), renewed only if an item cancelled
    /// its own token.
    fn drive(&self) {
        let mut next = self.claim();
        while let Some(first) = next {
            let ctx = TaskContext::new(self.token.child());
            next = ctx.scope(|| {
                let mut task = first;
                loop {
                    // The item catches (and reports) its own panic: nothing unwinds here.
                    let _ = task.run_with(&|_| {});
                    self.items_done(1);
                    let following = self.claim()?;
                    if ctx.is_cancelled() {
                        return Some(following); // run it under a fresh token
                    }
                    task = following;
                }
            });
        }
    }

    /// Claims the next item to run; `None` when none is left or the batch is cancelled (the
    /// unclaimed items are then resolved).
    fn claim(&self) -> Option<CellJob> {
        let n = self.slots.len();
        loop {
            if let Some(why) = self.token.reason() {
                self.drain(TaskError::interrupted(why));
                return None;
            }
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= n {
                return None;
            }
            let task = self.slots[i].lock().take();
            let Some(task) = task else {
                self.items_done(1);
                continue;
            };
            if let Some(why) = self.token.reason() {
                // Cancelled between the check and the claim: this one never starts either.
                task.cancel_with(TaskError::interrupted(why));
                self.note_failure(i);
                self.items_done(1);
                self.drain(TaskError::interrupted(why));
                return None;
            }
            return Some(task);
        }
    }

    /// Resolves every unclaimed item with `err` without running it.
    fn drain(&self, err: TaskError) {
        let n = self.slots.len();
        let start = self.next.fetch_max(n, Ordering::AcqRel);
        if start >= n {
            return;
        }
        for slot in &self.slots[start..] {
            let task = slot.lock().take();
            if let Some(task) = task {
                task.cancel_with(err.clone());
            }
        }
        // The drained items ended now, together: the first of them stands for them.
        self.note_failure(start);
        self.items_done(n - start);
    }

    fn items_done(&self, k: usize) {
        if self.remaining.fetch_sub(k, Ordering::AcqRel) == k {
            self.notify();
        }
    }

    /// Item `i` is ending without a value. The first such item is the batch's first failure;
    /// in fail-fast mode it cancels the rest.
    fn note_failure(&self, i: usize) {
        if self
            .first_failure
            .compare_exchange(NO_FAILURE, i, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // Pairs with `join_fail_fast` (store `fail_fast`, then load `first_failure`): at
            // least one side sees the other and cancels.
            if self.fail_fast.load(Ordering::SeqCst) {
                self.token.cancel();
            }
            self.notify();
        }
    }

    fn notify(&self) {
        let _g = self.lock.lock();
        self.cv.notify_all();
    }

    /// `seq`: the sequence the drivers were posted to, if any (see [`InvokeAll`]).
    #[track_caller]
    fn wait_until(&self, seq: Option<u64>, done: impl Fn() -> bool) {
        // A short batch often ends within a few microseconds: spin briefly (bounded backoff)
        // before parking, which would cost a futex call and a context switch on each side.
        for step in 0..8u32 {
            if done() {
                return;
            }
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        }
        if done() {
            return;
        }
        check_can_block("joining an invoke_all batch");
        check_not_own_sequence(seq, "joining an invoke_all batch");
        blocking_unchecked(|| {
            let mut g = self.lock.lock();
            while !done() {
                self.cv.wait(&mut g);
            }
        });
    }
}

/// A posted driver of a batch. Dropped (after running, or unrun because the runner refused it
/// or wound down), the last one resolves whatever no driver claimed.
struct Driver(Arc<Batch>);

impl Driver {
    fn run(self) {
        self.0.drive();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.0.drivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let err = match self.0.token.reason() {
                Some(why) => TaskError::interrupted(why),
                None => TaskError::not_run(),
            };
            self.0.drain(err);
        }
    }
}

/// Runs every task of `tasks` on `runner`, at most `limit` at a time, and returns the batch:
/// join it for all outcomes in input order ([`InvokeAll::join`]) or for the values with the
/// first failure cancelling the rest ([`InvokeAll::join_fail_fast`]).
///
/// `limit`: `None` or `Some(0)` (or `0`) means unbounded (every task may start at once);
/// `n` means at most `n` tasks run at the same time (fewer if the runner has fewer workers; a
/// sequenced runner runs them one at a time, in input order). Each task runs inside a
/// [`TaskContext`] whose token is a child of the batch's [`token`](InvokeAll::token).
///
/// A task returns `Result<T, E>`; an `Err` ends its handle as failed with the error as the
/// source (see the module docs for the error rule). For infallible work return
/// `Ok::<_, std::convert::Infallible>(v)`. To mix different closures, box them
/// (`Box<dyn FnOnce() -> Result<T, E> + Send>`).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use taskrunner::ThreadPool;
/// use taskrunner::fork_join::invoke_all;
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let running = Arc::new(AtomicUsize::new(0));
/// let peak = Arc::new(AtomicUsize::new(0));
/// let tasks = (0..20u64).map(|i| {
///     let (running, peak) = (running.clone(), peak.clone());
///     move || {
///         let now = running.fetch_add(1, Ordering::SeqCst) + 1;
///         peak.fetch_max(now, Ordering::SeqCst);
///         std::thread::sleep(std::time::Duration::from_millis(1));
///         running.fetch_sub(1, Ordering::SeqCst);
///         if i == 7 { Err("seven") } else { Ok(i * 10) }
///     }
/// });
/// let results = invoke_all(&pool, tasks, 2).join();
/// assert_eq!(results.len(), 20);
/// assert_eq!(*results[3].as_ref().unwrap(), 30); // input order
/// assert!(results[7].as_ref().unwrap_err().is_failed());
/// assert!(peak.load(Ordering::SeqCst) <= 2);
/// ```
#[track_caller]
pub fn invoke_all<R, I, F, T, E>(
    runner: &R,
    tasks: I,
    limit: impl Into<Option<usize>>,
) -> InvokeAll<T>
where
    R: PostTask + ?Sized,
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    start(runner, tasks, limit.into(), false, Location::caller())
}

/// Like [`invoke_all`], but the batch **stops at its first failure from the start** (Go's
/// `errgroup.WithContext`): the first task to end without a value (by completion time) cancels
/// the batch at once, whether or not anyone is joining yet, so no task starts after it.
/// [`InvokeAll::join_fail_fast`] then returns that failure; [`InvokeAll::join`] returns every
/// outcome, the tasks that never started ending cancelled.
///
/// With a plain [`invoke_all`], fail-fast starts when `join_fail_fast` is called: tasks that
/// started between the first failure and that call have run.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use taskrunner::ThreadPool;
/// use taskrunner::fork_join::invoke_all_fail_fast;
///
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let ran = Arc::new(AtomicUsize::new(0));
/// let tasks = (0..100).map(|i| {
///     let ran = ran.clone();
///     move || {
///         ran.fetch_add(1, Ordering::SeqCst);
///         if i == 2 { Err(format!("item {i} is broken")) } else { Ok(i) }
///     }
/// });
/// // One at a time, in order: item 2 fails, items 3.. never run.
/// let batch = invoke_all_fail_fast(&pool, tasks, 1);
/// let err = batch.join_fail_fast().unwrap_err();
/// assert_eq!(err.to_string(), "task failed: item 2 is broken");
/// assert_eq!(ran.load(Ordering::SeqCst), 3);
/// ```
#[track_caller]
pub fn invoke_all_fail_fast<R, I, F, T, E>(
    runner: &R,
    tasks: I,
    limit: impl Into<Option<usize>>,
) -> InvokeAll<T>
where
    R: PostTask + ?Sized,
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    start(runner, tasks, limit.into(), true, Location::caller())
}

fn start<R, I, F, T, E>(
    runner: &R,
    tasks: I,
    limit: Option<usize>,
    fail_fast: bool,
    posted_from: &'static Location<'static>,
) -> InvokeAll<T>
where
    R: PostTask + ?Sized,
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    let tasks = tasks.into_iter();
    let mut handles = Vec::with_capacity(tasks.size_hint().0);
    let batch = Arc::new_cyclic(|weak: &Weak<Batch>| {
        let slots: Box<[Mutex<Option<CellJob>>]> = tasks
            .enumerate()
            .map(|(i, f)| {
                let batch = weak.clone();
                let failed = move || {
                    if let Some(b) = batch.upgrade() {
                        b.note_failure(i);
                    }
                };
                // Notes the item as failed if it returns `Err` or panics (fail-fast joins). A
                // panic is reported like a plain task's (panic policy, the pool's handler)
                // before the handle resolves; the handle keeps the payload.
                let (job, cell) = new_outcome_cell(move || -> Result<T, TaskError> {
                    match catch(f) {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => {
                            failed();
                            Err(TaskError::from_error(e))
                        }
                        Err(p) => {
                            report_task_panic(p.message(), posted_from);
                            failed();
                            Err(TaskError::from_panic(p))
                        }
                    }
                });
                handles.push(TaskHandle::from_cell(cell));
                Mutex::new(Some(job))
            })
            .collect();
        let n = slots.len();
        Batch {
            slots,
            next: AtomicUsize::new(0),
            remaining: AtomicUsize::new(n),
            drivers: AtomicUsize::new(0),
            first_failure: AtomicUsize::new(NO_FAILURE),
            fail_fast: AtomicBool::new(fail_fast),
            token: CancellationToken::new(),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    });
    let weak = Arc::downgrade(&batch);
    batch.token.on_cancel(move |why| {
        if let Some(b) = weak.upgrade() {
            b.drain(TaskError::interrupted(why));
        }
    });
    let n = handles.len();
    let drivers = match limit {
        None | Some(0) => n,
        Some(l) => l.min(n),
    };
    batch.drivers.store(drivers, Ordering::Release);
    for _ in 0..drivers {
        let driver = Driver(batch.clone());
        // Refused (shutdown): the error drops the closure, and with it the driver.
        drop(runner.post_task(move || driver.run()));
    }
    // Asked after posting: a runner whose sequence exists only while it has work (a key of a
    // keyed runner) has it now, and keeps it while the drivers are queued or running.
    let seq = runner.sequence_token();
    InvokeAll {
        handles,
        batch,
        seq,
    }
}

/// How far a batch of tasks has got ([`InvokeAll::progress`], or an executor's
/// [`Executor::progress`](crate::executor::Executor::progress)): how many finished (completed,
/// failed, panicked or cancelled) and how many of those failed, out of the total.
///
/// ```
/// use taskrunner::fork_join::Progress;
/// let p = Progress::default();
/// assert!(p.is_done()); // nothing to do
/// assert_eq!(p.remaining(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    total: usize,
    finished: usize,
    failed: usize,
}

impl Progress {
    pub(crate) fn new(total: usize, finished: usize, failed: usize) -> Self {
        Progress {
            total,
            finished,
            failed,
        }
    }

    /// Tasks in the batch.
    ///
    /// See [`InvokeAll::progress`] for an example.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Tasks that ended, in any way.
    ///
    /// See [`InvokeAll::progress`] for an example.
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// Tasks that ended without a value: returned `Err`, panicked, or were cancelled.
    ///
    /// See [`InvokeAll::progress`] for an example.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Tasks that ended with a value.
    ///
    /// See [`InvokeAll::progress`] for an example.
    pub fn succeeded(&self) -> usize {
        self.finished - self.failed
    }

    /// Tasks not finished yet (queued or running).
    ///
    /// See [`Progress`] for an example.
    pub fn remaining(&self) -> usize {
        self.total - self.finished
    }

    /// `true` once every task has ended.
    ///
    /// See [`Progress`] for an example.
    pub fn is_done(&self) -> bool {
        self.finished == self.total
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} finished, {} failed",
            self.finished, self.total, self.failed
        )
    }
}

/// A running [`invoke_all`] batch: its tasks' handles, in input order, and the batch token.
///
/// Dropping it does not cancel anything: the tasks run to the end (like dropping a
/// [`TaskHandle`]). Call [`cancel`](Self::cancel) first to stop them.
///
/// ```
/// use taskrunner::ThreadPool;
/// use taskrunner::fork_join::invoke_all;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let batch = invoke_all(&pool, (1..=4).map(|i| move || Ok::<_, std::convert::Infallible>(i * i)), None);
/// assert_eq!(batch.len(), 4);
/// assert_eq!(batch.join_fail_fast().unwrap(), vec![1, 4, 9, 16]);
/// ```
pub struct InvokeAll<T> {
    handles: Vec<TaskHandle<T>>,
    batch: Arc<Batch>,
    /// The sequence the drivers were posted to, if the runner is sequenced.
    seq: Option<u64>,
}

impl<T: Send + 'static> InvokeAll<T> {
    /// Waits for every task and returns every outcome, in input order.
    ///
    /// Joining from inside a pool task is a blocking scope: the pool runs one more worker while
    /// it blocks, so the batch makes progress even on a one-worker pool.
    ///
    /// # Panics
    ///
    /// If it has to wait and the caller is a task of the sequence the batch runs on (the
    /// batch's tasks are queued behind it: the join could never end). Join from elsewhere, or
    /// `.await` the handles ([`into_handles`](Self::into_handles)) in a future.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let tasks: Vec<Box<dyn FnOnce() -> Result<u32, String> + Send>> = vec![
    ///     Box::new(|| Ok(1)),
    ///     Box::new(|| Err("bad".to_string())),
    ///     Box::new(|| panic!("worse")),
    /// ];
    /// let out = invoke_all(&pool, tasks, 1).join();
    /// assert_eq!(*out[0].as_ref().unwrap(), 1);
    /// assert!(out[1].as_ref().unwrap_err().is_failed());
    /// assert!(out[2].as_ref().unwrap_err().is_panic());
    /// ```
    #[track_caller]
    pub fn join(self) -> Vec<Result<T, TaskError>> {
        let b = &self.batch;
        b.wait_until(self.seq, || b.remaining.load(Ordering::Acquire) == 0);
        self.handles.into_iter().map(TaskHandle::join).collect()
    }

    /// Waits for every value, or returns the first task to end without one, by completion
    /// time (failed, panicked, or cancelled). Returns as soon as that failure is known; tasks
    /// still running then finish in the background.
    ///
    /// The first failure cancels the batch: tasks not started never run (their handles end
    /// cancelled) and running ones see their token cancelled. For a batch from
    /// [`invoke_all_fail_fast`] that happens at the failure itself; for one from
    /// [`invoke_all`], when this is called (at once if a task has already failed), so tasks
    /// that started in between have run.
    ///
    /// Blocks and panics as [`join`](Self::join) does.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let tasks = (0..10).map(|i| move || if i == 4 { Err(format!("item {i} is broken")) } else { Ok(i) });
    /// let err = invoke_all(&pool, tasks, 3).join_fail_fast().unwrap_err();
    /// assert_eq!(err.to_string(), "task failed: item 4 is broken");
    ///
    /// let tasks = (0..10).map(|i| move || Ok::<_, std::io::Error>(i));
    /// assert_eq!(invoke_all(&pool, tasks, 3).join_fail_fast().unwrap(), (0..10).collect::<Vec<_>>());
    /// ```
    #[track_caller]
    pub fn join_fail_fast(self) -> Result<Vec<T>, TaskError> {
        let b = &self.batch;
        b.fail_fast.store(true, Ordering::SeqCst);
        if b.first_failure.load(Ordering::SeqCst) != NO_FAILURE {
            b.token.cancel();
        }
        b.wait_until(self.seq, || {
            b.remaining.load(Ordering::Acquire) == 0
                || b.first_failure.load(Ordering::Acquire) != NO_FAILURE
        });
        let first = b.first_failure.load(Ordering::Acquire);
        if first != NO_FAILURE {
            b.token.cancel();
            let handle = self
                .handles
                .into_iter()
                .nth(first)
                .expect("the failed index is in range");
            // Noted as failed just before its handle resolves: a short wait, if any.
            let joined = if handle.is_finished() {
                handle.join()
            } else {
                blocking_unchecked(|| handle.join())
            };
            return match joined {
                Err(e) => Err(e),
                Ok(_) => unreachable!("a task noted as failed produced a value"),
            };
        }
        // Every task ended and none noted a failure; a handle cancelled by the caller (through
        // `handles()`) still has no value: report the first such, in input order.
        self.handles.into_iter().map(TaskHandle::join).collect()
    }

    /// Cancels the batch: every task not started yet ends cancelled now, without running (it
    /// is never left pending), and running tasks see their [`TaskContext`] token cancelled (what
    /// they return is their outcome). `true` if this call cancelled it. Same as cancelling
    /// [`token`](Self::token).
    ///
    /// ```
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    /// let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    /// let tasks = (0..5).map(move |i| {
    ///     let (gate_rx, started_tx) = (gate_rx.clone(), started_tx.clone());
    ///     move || {
    ///         if i == 0 { started_tx.send(()).unwrap(); gate_rx.recv().unwrap(); }
    ///         Ok::<_, std::convert::Infallible>(i)
    ///     }
    /// });
    /// let batch = invoke_all(&pool, tasks, 1);
    /// started_rx.recv().unwrap(); // task 0 is running, 1..5 wait
    /// assert!(batch.cancel());
    /// assert!(batch.handles()[1..].iter().all(|h| h.is_finished()));
    /// gate_tx.send(()).unwrap();
    /// let out = batch.join();
    /// assert_eq!(*out[0].as_ref().unwrap(), 0); // it had started: it keeps its value
    /// assert!(out[1..].iter().all(|r| r.as_ref().unwrap_err().is_cancelled()));
    /// ```
    pub fn cancel(&self) -> bool {
        self.batch.token.cancel()
    }

    /// The batch token: every task's [`TaskContext`] token is a child of it. Cancel it (or set
    /// a deadline with [`CancellationToken::cancel_after`]) to cancel the batch; tasks not
    /// started then end with the token's reason (cancelled or deadline exceeded).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::cancel::TaskContext;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let batch = invoke_all(&pool, [|| Ok::<_, taskrunner::cancel::Interrupted>(TaskContext::current().is_some())], None);
    /// assert!(!batch.token().is_cancelled());
    /// assert_eq!(batch.join_fail_fast().unwrap(), vec![true]);
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.batch.token
    }

    /// The tasks' handles, in input order (to inspect or cancel one task).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let batch = invoke_all(&pool, (0..2).map(|i| move || if i == 0 { Ok(1) } else { Err("no") }), None);
    /// assert_eq!(batch.handles().len(), 2);
    /// let out = batch.join();
    /// assert!(out[1].as_ref().unwrap_err().is_failed());
    /// ```
    pub fn handles(&self) -> &[TaskHandle<T>] {
        &self.handles
    }

    /// The tasks' handles, in input order, to wait for them any other way
    /// ([`as_completed`], [`wait`], `.await`). The batch keeps
    /// running.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::{as_completed, invoke_all};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let batch = invoke_all(&pool, (0..3).map(|i| move || Ok::<_, std::convert::Infallible>(i)), None);
    /// let mut seen: Vec<usize> = as_completed(batch.into_handles()).map(|(i, r)| { assert_eq!(r.unwrap(), i); i }).collect();
    /// seen.sort();
    /// assert_eq!(seen, vec![0, 1, 2]);
    /// ```
    pub fn into_handles(self) -> Vec<TaskHandle<T>> {
        self.handles
    }

    /// How many tasks the batch has.
    ///
    /// See [`InvokeAll`] for an example.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// `true` for a batch of no tasks (it is finished at once).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let none: Vec<fn() -> Result<(), std::io::Error>> = Vec::new();
    /// let batch = invoke_all(&pool, none, 4);
    /// assert!(batch.is_empty() && batch.is_finished());
    /// assert!(batch.join().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// How far the batch has got: tasks finished in any way and tasks failed, out of the
    /// total. Never blocks; poll it to drive a progress line.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let batch = invoke_all(&pool, (0..10).map(|i| move || if i < 7 { Ok(i) } else { Err("odd job") }), 4);
    /// while !batch.progress().is_done() { std::thread::yield_now(); }
    /// let p = batch.progress();
    /// assert_eq!((p.total(), p.finished(), p.failed(), p.succeeded()), (10, 10, 3, 7));
    /// assert_eq!(p.to_string(), "10/10 finished, 3 failed");
    /// ```
    pub fn progress(&self) -> Progress {
        let total = self.handles.len();
        let (mut finished, mut failed) = (0, 0);
        for h in &self.handles {
            match h.state() {
                TaskState::Pending | TaskState::Running => {}
                TaskState::Completed => finished += 1,
                _ => {
                    finished += 1;
                    failed += 1;
                }
            }
        }
        Progress {
            total,
            finished,
            failed,
        }
    }

    /// `true` once every task has ended (completed, failed, panicked or cancelled). Never
    /// blocks.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::fork_join::invoke_all;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let batch = invoke_all(&pool, [|| Ok::<_, std::convert::Infallible>(())], None);
    /// while !batch.is_finished() { std::thread::yield_now(); }
    /// assert!(batch.handles()[0].is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.batch.remaining.load(Ordering::Acquire) == 0
    }
}

impl<T> fmt::Debug for InvokeAll<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvokeAll")
            .field("len", &self.handles.len())
            .field("remaining", &self.batch.remaining.load(Ordering::Acquire))
            .field("cancelled", &self.batch.token.is_cancelled())
            .finish()
    }
}

// ---- consume ----------------------------------------------------------------------------------

type PostDriver = Box<dyn Fn(ConsumeDriver) + Send + Sync>;

/// The shared state of one consumer.
///
/// Drivers are elastic: at most `workers` are live at once; a driver that finds the channel
/// empty either becomes **the** waiter (`waiting`, at most one, blocked in `select!` on the
/// channel and the cancel signal) or exits; a driver that takes a task while more are queued,
/// or while no driver waits, posts one more driver (up to `workers`), so that a task sent
/// while it runs is taken at once. An idle consumer therefore holds one worker, not
/// `workers`, and a busy one runs up to `workers` tasks at once.
struct Hub {
    /// The consumer's receiver (drivers clone it). Taken and dropped when the consumer ends,
    /// so that later sends fail and hand the task back instead of leaving it pending.
    rx: Mutex<Option<Receiver<Deferred>>>,
    /// Dropped on cancel: wakes the waiter.
    wake_tx: Mutex<Option<Sender<()>>>,
    wake_rx: Receiver<()>,
    token: CancellationToken,
    workers: usize,
    /// Drivers posted and not yet dropped. Only a live driver adds one, so 0 is final.
    live: AtomicUsize,
    waiting: AtomicBool,
    ran: AtomicUsize,
    cancelled: AtomicUsize,
    not_run: AtomicUsize,
    /// The `consume` call: tasks report their panics (and are posted) from there.
    posted_from: &'static Location<'static>,
    finished: Mutex<bool>,
    cv: Condvar,
    post: PostDriver,
}

impl Hub {
    /// Runs tasks from the channel until it is closed and empty, the consumer is cancelled,
    /// or another driver is already waiting for the next task. One [`TaskContext`] scope for
    /// all of them, renewed only if a task cancelled its own token.
    fn drive(self: &Arc<Self>) {
        let Some(rx) = self.rx.lock().clone() else {
            return;
        };
        let mut next = self.take(&rx);
        while let Some(first) = next {
            let ctx = TaskContext::new(self.token.child());
            next = ctx.scope(|| {
                let mut task = first;
                loop {
                    // A panic goes through the pool's panic handler and policy, like a task's.
                    task.run_reporting(self.posted_from);
                    self.ran.fetch_add(1, Ordering::Relaxed);
                    let following = self.take(&rx)?;
                    if ctx.is_cancelled() {
                        return Some(following); // run it under a fresh token
                    }
                    task = following;
                }
            });
        }
    }

    /// The next task for this driver, or `None` if it should exit.
    fn take(self: &Arc<Self>, rx: &Receiver<Deferred>) -> Option<Deferred> {
        if self.token.is_cancelled() {
            return None;
        }
        let task = match rx.try_recv() {
            Ok(t) => t,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                if self.waiting.swap(true, Ordering::AcqRel) {
                    return None; // another driver waits for the next task
                }
                let got = self.wait_for_task(rx);
                self.waiting.store(false, Ordering::Release);
                got? // `None`: closed, or cancelled
            }
        };
        if let Some(why) = self.token.reason() {
            self.resolve_unrun(task, TaskError::interrupted(why));
            return None;
        }
        // Keep a driver waiting for (or taking) the next task while this one runs, up to
        // `workers`: otherwise a task sent now would wait for this one to finish.
        if !self.waiting.load(Ordering::Acquire) || !rx.is_empty() {
            self.grow();
        }
        Some(task)
    }

    /// Blocks for the next task, or `None` if the channel closed or the consumer was
    /// cancelled. On a pool worker this is a blocking scope (as [`blocking`](crate::blocking),
    /// without its may-block check), so the pool runs another worker meanwhile.
    fn wait_for_task(&self, rx: &Receiver<Deferred>) -> Option<Deferred> {
        blocking_unchecked(|| {
            crossbeam_channel::select! {
                recv(rx) -> msg => msg.ok(),
                recv(self.wake_rx) -> _ => None,
            }
        })
    }

    /// Posts one more driver if fewer than `workers` are live.
    fn grow(self: &Arc<Self>) {
        let mut cur = self.live.load(Ordering::Acquire);
        loop {
            if cur >= self.workers {
                return;
            }
            match self
                .live
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        (self.post)(ConsumeDriver(self.clone()));
    }

    fn resolve_unrun(&self, task: Deferred, err: TaskError) {
        let counter = if err.is_not_run() {
            &self.not_run
        } else {
            &self.cancelled
        };
        task.cancel_with(err);
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves every task queued now with `err`.
    fn drain(&self, rx: &Receiver<Deferred>, err: &TaskError) {
        while let Ok(task) = rx.try_recv() {
            self.resolve_unrun(task, err.clone());
        }
    }

    fn on_cancel(&self, why: Interrupted) {
        drop(self.wake_tx.lock().take());
        let rx = self.rx.lock().clone();
        if let Some(rx) = rx {
            self.drain(&rx, &TaskError::interrupted(why));
        }
    }

    /// The last driver is gone: resolve what is left, let go of the channel, wake `join`.
    fn finish(&self) {
        drop(self.wake_tx.lock().take());
        let rx = self.rx.lock().take();
        if let Some(rx) = rx {
            let err = match self.token.reason() {
                Some(why) => TaskError::interrupted(why),
                None => TaskError::not_run(), // the runner refused or dropped the drivers
            };
            self.drain(&rx, &err);
        }
        *self.finished.lock() = true;
        self.cv.notify_all();
    }
}

/// A posted consumer driver; the last one dropped finishes the consumer.
struct ConsumeDriver(Arc<Hub>);

impl ConsumeDriver {
    fn run(self) {
        self.0.drive();
    }

    fn posted_from(&self) -> &'static Location<'static> {
        self.0.posted_from
    }
}

impl Drop for ConsumeDriver {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.finish();
        }
    }
}

/// Runs the [`Deferred`] tasks arriving on `rx` on `runner`, in FIFO order, at most `workers`
/// at a time (`0` = [`runner.max_concurrency()`](PostTask::max_concurrency)), until the channel
/// is closed (every `Sender` dropped) and empty, or the consumer is
/// [cancelled](Consumer::cancel). Each task runs inside a [`TaskContext`] whose token is a
/// child of the consumer's [`token`](Consumer::token).
///
/// **Waiting for tasks blocks one driver.** A consumer whose channel is open and empty keeps
/// exactly one driver blocked on the channel (the others exit and are posted again when tasks
/// queue up). On a pool worker that wait is a blocking scope (as
/// [`blocking`](crate::blocking), whatever the runner's traits), so the pool runs another
/// worker meanwhile and an idle consumer never starves the pool. Close the channel or cancel
/// the consumer before shutting the pool down. (In a seeded single-thread `TestEnvironment`,
/// tasks run on the test thread: close the channel before `run_until_idle`, or that wait would
/// block it.)
///
/// **Cancellation** resolves every task still in the channel as cancelled, at once; the
/// consumer then drops its receiver, so a later `send` fails and hands the task back (if the
/// sender drops it, its handle ends as not run): a task is never left pending. A task sent
/// while the consumer is cancelled may race with that and end as not run. If the runner
/// refuses the drivers (shutdown), queued tasks end as not run.
///
/// **Panics** of the tasks are caught by their [`Deferred`] and end their handles as panicked;
/// the consumer carries on.
///
/// ```
/// use taskrunner::{Deferred, ThreadPool};
/// use taskrunner::fork_join::consume;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (tx, rx) = crossbeam_channel::unbounded();
/// let mut handles = Vec::new();
/// for i in 0..10 {
///     let (task, handle) = Deferred::new(move || i * 2);
///     tx.send(task).unwrap();
///     handles.push(handle);
/// }
/// drop(tx); // closed: the consumer ends once the channel is empty
/// let report = consume(&pool, rx, 4).join();
/// assert_eq!(report.ran, 10);
/// assert_eq!(handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 90);
/// ```
#[track_caller]
pub fn consume<R>(runner: &R, rx: Receiver<Deferred>, workers: usize) -> Consumer
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    let workers = if workers == 0 {
        runner.max_concurrency().max(1)
    } else {
        workers
    };
    let first = workers.min(rx.len().max(1));
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(0);
    let poster = runner.clone();
    let hub = Arc::new(Hub {
        rx: Mutex::new(Some(rx)),
        wake_tx: Mutex::new(Some(wake_tx)),
        wake_rx,
        token: CancellationToken::new(),
        workers,
        live: AtomicUsize::new(first),
        waiting: AtomicBool::new(false),
        ran: AtomicUsize::new(0),
        cancelled: AtomicUsize::new(0),
        not_run: AtomicUsize::new(0),
        posted_from: Location::caller(),
        finished: Mutex::new(false),
        cv: Condvar::new(),
        post: Box::new(move |d: ConsumeDriver| {
            // Refused (shutdown): the error drops the closure, and with it the driver.
            let posted_from = d.posted_from();
            drop(poster.post_task_from(move || d.run(), posted_from));
        }),
    });
    let weak = Arc::downgrade(&hub);
    hub.token.on_cancel(move |why| {
        if let Some(h) = weak.upgrade() {
            h.on_cancel(why);
        }
    });
    for _ in 0..first {
        (hub.post)(ConsumeDriver(hub.clone()));
    }
    // Asked after posting, as for `invoke_all`: a keyed runner's key has its sequence now, and
    // keeps it while a driver is queued or running.
    let seq = runner.sequence_token();
    Consumer { hub, seq }
}

/// A running [`consume`]: cancel it, or join it for a [`ConsumeReport`].
///
/// Dropping it does not stop it: it runs until its channel is closed and empty (close the
/// channel or [`cancel`](Self::cancel) it to stop it).
///
/// ```
/// use taskrunner::{Deferred, ThreadPool};
/// use taskrunner::fork_join::consume;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (tx, rx) = crossbeam_channel::unbounded::<Deferred>();
/// let consumer = consume(&pool, rx, 2);
/// let (task, handle) = Deferred::new(|| "hello");
/// tx.send(task).unwrap();
/// assert_eq!(handle.join().unwrap(), "hello");
/// assert!(!consumer.is_finished()); // the channel is still open
/// drop(tx);
/// assert_eq!(consumer.join().ran, 1);
/// ```
pub struct Consumer {
    hub: Arc<Hub>,
    /// The sequence the drivers are posted to, if the runner is sequenced.
    seq: Option<u64>,
}

/// What a [`Consumer`] did, from [`Consumer::join`].
///
/// `ran + cancelled + not_run` is the number of tasks the consumer took from the channel. The
/// tasks' own outcomes (value, failure, panic) are in their handles.
///
/// ```
/// let r = taskrunner::fork_join::ConsumeReport::default();
/// assert_eq!(r.ran + r.cancelled + r.not_run, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumeReport {
    /// Tasks taken and run (whatever their outcome; a task already cancelled through its
    /// handle is taken, does nothing, and counts here).
    pub ran: usize,
    /// Tasks resolved as cancelled (or deadline exceeded) without running, because the
    /// consumer was cancelled.
    pub cancelled: usize,
    /// Tasks resolved as not run because the runner refused or dropped the consumer's
    /// drivers (shutdown).
    pub not_run: usize,
}

impl Consumer {
    /// Stops the consumer: drivers take no more tasks, every task still in the channel ends
    /// cancelled now (never left pending), and running tasks see their token cancelled. `true`
    /// if this call cancelled it.
    ///
    /// ```
    /// use taskrunner::{Deferred, ThreadPool};
    /// use taskrunner::fork_join::consume;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    /// let (first, first_h) = Deferred::new(move || gate_rx.recv().unwrap());
    /// let (second, second_h) = Deferred::new(|| ());
    /// tx.send(first).unwrap();
    /// tx.send(second).unwrap();
    /// let consumer = consume(&pool, rx, 1);
    /// while first_h.state() != taskrunner::TaskState::Running { std::thread::yield_now(); }
    /// assert!(consumer.cancel());
    /// assert!(second_h.join().unwrap_err().is_cancelled()); // resolved at once
    /// gate_tx.send(()).unwrap();
    /// first_h.join().unwrap(); // it had started: it finishes
    /// let report = consumer.join();
    /// assert_eq!((report.ran, report.cancelled), (1, 1));
    /// ```
    pub fn cancel(&self) -> bool {
        self.hub.token.cancel()
    }

    /// Blocks until every driver has exited (the channel closed and empty, or the consumer
    /// cancelled) and reports what the consumer did. On a pool worker the pool runs one more
    /// worker while this blocks.
    ///
    /// # Panics
    ///
    /// If it has to wait and the caller is a task of the sequence the consumer runs on: its
    /// drivers are queued behind the caller, so the join could never end.
    ///
    /// See [`consume`] for an example.
    #[track_caller]
    pub fn join(self) -> ConsumeReport {
        let hub = &self.hub;
        if !*hub.finished.lock() {
            check_can_block("joining a consumer");
            check_not_own_sequence(self.seq, "joining a consumer");
            blocking_unchecked(|| {
                let mut done = hub.finished.lock();
                while !*done {
                    hub.cv.wait(&mut done);
                }
            });
        }
        self.progress()
    }

    /// What the consumer has done so far, without waiting: the figures [`join`](Self::join)
    /// reports at the end (a task counts once its driver has moved past it, just after its
    /// handle resolved). Poll it, with [`waiting`](Self::waiting), for a progress line.
    ///
    /// ```
    /// use taskrunner::{Deferred, ThreadPool};
    /// use taskrunner::fork_join::consume;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let consumer = consume(&pool, rx, 1);
    /// assert_eq!(consumer.progress().ran, 0);
    /// for _ in 0..3 {
    ///     tx.send(Deferred::new(|| ()).0).unwrap();
    /// }
    /// drop(tx);
    /// while !consumer.is_finished() { std::thread::yield_now(); }
    /// assert_eq!(consumer.progress().ran, 3);
    /// assert_eq!(consumer.waiting(), 0);
    /// ```
    pub fn progress(&self) -> ConsumeReport {
        let hub = &self.hub;
        ConsumeReport {
            ran: hub.ran.load(Ordering::Relaxed),
            cancelled: hub.cancelled.load(Ordering::Relaxed),
            not_run: hub.not_run.load(Ordering::Relaxed),
        }
    }

    /// Tasks waiting in the channel (sent, not yet taken by a driver); 0 once the consumer
    /// has let go of its receiver (cancelled or finished).
    ///
    /// See [`progress`](Self::progress) for an example.
    pub fn waiting(&self) -> usize {
        self.hub.rx.lock().as_ref().map_or(0, |rx| rx.len())
    }

    /// The consumer's token: every task's [`TaskContext`] token is a child of it; cancelling
    /// it cancels the consumer (so can a deadline, [`CancellationToken::cancel_after`]).
    ///
    /// ```
    /// use taskrunner::{Deferred, ThreadPool};
    /// use taskrunner::fork_join::consume;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (_tx, rx) = crossbeam_channel::unbounded::<Deferred>();
    /// let consumer = consume(&pool, rx, 1);
    /// consumer.token().cancel();
    /// assert_eq!(consumer.join().ran, 0);
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.hub.token
    }

    /// `true` once every driver has exited. Never blocks.
    ///
    /// See [`Consumer`] for an example.
    pub fn is_finished(&self) -> bool {
        *self.hub.finished.lock()
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("workers", &self.hub.workers)
            .field("live", &self.hub.live.load(Ordering::Acquire))
            .field("ran", &self.hub.ran.load(Ordering::Relaxed))
            .field("cancelled", &self.hub.token.is_cancelled())
            .finish()
    }
}

// ---- wait_all / cancel_all --------------------------------------------------------------------

/// Blocks until every handle has ended, without taking any result (the handles stay usable:
/// join them afterwards for the values). `Err` lists every handle that did not complete, with
/// its index and final state.
///
/// Several threads may wait on the same handles at once. On a pool worker the wait is a
/// blocking scope: the pool runs one more worker while it blocks.
///
/// ```
/// use taskrunner::{PostTask, TaskState, ThreadPool, TaskTraits};
/// use taskrunner::fork_join::wait_all;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let handles = vec![
///     pool.post_task_with_result(TaskTraits::default(), || 1).unwrap(),
///     pool.post_task_with_result(TaskTraits::default(), || panic!("two")).unwrap(),
///     pool.post_task_with_result(TaskTraits::default(), || 3).unwrap(),
/// ];
/// let err = wait_all(&handles).unwrap_err();
/// assert_eq!(err.failures(), &[(1, TaskState::Panicked)]);
/// let mut it = handles.into_iter();
/// assert_eq!(it.next().unwrap().join().unwrap(), 1); // results were not taken
/// ```
pub fn wait_all<T: Send + 'static>(handles: &[TaskHandle<T>]) -> Result<(), WaitAllError> {
    if !handles.iter().all(TaskHandle::is_finished) {
        check_can_block("wait_all");
        blocking_unchecked(|| {
            for h in handles {
                h.wait_done();
            }
        });
    }
    let failures: Vec<(usize, TaskState)> = handles
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let s = h.state();
            (s != TaskState::Completed).then_some((i, s))
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(WaitAllError { failures })
    }
}

/// Cancels every handle that has not started (see [`TaskHandle::cancel`]) and returns how many
/// this call cancelled. Tasks already running run on (those with a token see it cancelled).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// use taskrunner::fork_join::cancel_all;
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let handles: Vec<_> = (0..3)
///     .map(|i| pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), move || i).unwrap())
///     .collect();
/// assert_eq!(cancel_all(&handles), 3);
/// assert_eq!(cancel_all(&handles), 0); // already cancelled
/// ```
pub fn cancel_all<T: Send + 'static>(handles: &[TaskHandle<T>]) -> usize {
    handles.iter().filter(|h| h.cancel()).count()
}

/// The handles that did not complete, from [`wait_all`]: index and final state of each
/// (failed, panicked or cancelled), in index order.
///
/// It is an [`Error`] (`Send + Sync + 'static`), so `?` works with it.
///
/// ```
/// use taskrunner::{TaskHandle, TaskError, TaskState};
/// use taskrunner::fork_join::wait_all;
/// let handles = vec![TaskHandle::ready(1), TaskHandle::failed(TaskError::new("x"))];
/// let err = wait_all(&handles).unwrap_err();
/// assert_eq!(err.failures(), &[(1, TaskState::Failed)]);
/// assert_eq!(err.to_string(), "1 task did not complete: #1 failed");
/// let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
/// assert!(boxed.to_string().contains("#1 failed"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitAllError {
    failures: Vec<(usize, TaskState)>,
}

impl WaitAllError {
    /// Index (in the slice given to [`wait_all`]) and final state of every handle that did not
    /// complete.
    ///
    /// See [`WaitAllError`] for an example.
    pub fn failures(&self) -> &[(usize, TaskState)] {
        &self.failures
    }
}

impl fmt::Display for WaitAllError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let n = self.failures.len();
        write!(
            f,
            "{n} task{} did not complete:",
            if n == 1 { "" } else { "s" }
        )?;
        for (k, (i, s)) in self.failures.iter().take(SHOWN).enumerate() {
            let state = match s {
                TaskState::Failed => "failed",
                TaskState::Panicked => "panicked",
                TaskState::Cancelled => "cancelled",
                TaskState::Completed => "completed",
                TaskState::Pending => "pending",
                TaskState::Running => "running",
            };
            write!(f, "{} #{i} {state}", if k == 0 { "" } else { "," })?;
        }
        if n > SHOWN {
            write!(f, ", ... ({} more)", n - SHOWN)?;
        }
        Ok(())
    }
}

impl Error for WaitAllError {}
