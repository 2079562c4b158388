//! The executor's shared state: admission into the bounded queue, the slots (attempts posted
//! to the runner), the queue of attempts waiting for a slot, and the bookkeeping that tells
//! `wait_idle` and a draining shutdown when tasks have ended.
//!
//! # Who holds what
//!
//! * A **task** (one submission) is admitted by [`Core::admit`], which takes a *reservation*
//!   (`waiting`, bounded by the queue capacity) and counts it as *live*. Its [`TaskMeta`] lives
//!   as long as the retry engine's state for it (the engine owns an [`ExecRunner`] holding the
//!   meta), so the meta is dropped exactly when the engine is done with the task: its `Drop`
//!   ends the task here ([`Core::task_ended`]).
//! * An **attempt** is what the engine posts through [`ExecRunner::post_task`]. It takes a
//!   *slot* (`running < max_workers`) and goes to the runner, or waits in `queue`. The slot is
//!   held by a [`SlotGuard`] captured by the posted closure: when the closure is dropped (run
//!   or not), the guard hands the slot to the next queued attempt, or frees it. A task in
//!   retry backoff or waiting for a [`Semaphore`](crate::sync::Semaphore) permit holds no slot.
//! * The reservation is given back when the task's first attempt takes a slot, or when the
//!   task ends without one.
//!
//! # Rules that keep it deadlock-free
//!
//! * Nothing runs or is dropped under the state lock except plain counters: engine closures,
//!   metas and posts are handled after the guard is released (dropping an engine closure can
//!   resolve a handle, which can wake anything).
//! * The retry engine calls `post_task` while holding its own per-task lock, so `post_task`
//!   never runs engine code inline: a cancellation noticed during a post ([`IN_POST`]) sends the
//!   unqueued attempt to the runner instead of running it on this thread.
//!
//! # Queue order
//!
//! Keys order the queue: attempts of tasks that already ran once (retries) come before fresh
//! submissions, FIFO within each, so started work finishes before new work starts. A key is
//! never reused, so a stale key (the attempt was dispatched meanwhile) finds nothing.
//!
//! # Blocking
//!
//! Every wait here that actually blocks (admission into a full queue, `wait_idle`, a draining
//! shutdown) is a blocking scope ([`blocking_unchecked`]): on a pool worker the pool runs one
//! more worker meanwhile, so tasks of a pool that wait on an executor running on the same pool
//! cannot take every worker. A wait by a task of the sequence the executor's runner posts to
//! could never end (the executor's attempts are queued behind the waiter): it panics instead.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::error::PostError;
use crate::base::shim::{AtomicBool, AtomicU64, Condvar, Mutex, Ordering};
use crate::cancel::CancellationToken;
use crate::engine::{blocking_unchecked, check_not_own_sequence};
use crate::runner::PostTask;

use super::error::SubmitRefusal;
use super::options::ShutdownMode;

/// Retries sort before fresh submissions.
const FRESH: u64 = 1 << 63;

/// Attempts a worker runs back to back (the first included) before handing the slot on.
const INLINE_BATCH: usize = 16;

type Run = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The executor (its `Core` address) whose task this thread is running, or 0.
    static RUNNING_FOR: Cell<usize> = const { Cell::new(0) };
    /// Set while this thread is inside `ExecRunner::post_task` (the engine holds a lock).
    static IN_POST: Cell<bool> = const { Cell::new(false) };
    /// A task of the executor `.0` that ended inside one of its attempts: `(core, epoch,
    /// dispatched, succeeded)`, accounted by the attempt's [`SlotGuard`] in the same locked section as
    /// the slot (one lock instead of two, and `running` is never seen above zero by a
    /// `wait_idle` that returned because every task ended).
    static ENDED_HERE: Cell<Option<(usize, u64, bool, bool)>> = const { Cell::new(None) };
}

/// Restores a thread-local `Cell` on drop (also on unwind).
struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<Cell<T>>, T);

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        self.0.with(|c| c.set(self.1));
    }
}

fn set_local<T: Copy + 'static>(key: &'static std::thread::LocalKey<Cell<T>>, v: T) -> Restore<T> {
    Restore(key, key.with(|c| c.replace(v)))
}

/// How long an admission may wait for room in the queue.
#[derive(Clone, Debug)]
pub(crate) enum Wait {
    /// Fail with `Full` at once.
    Try,
    /// Wait as long as it takes (never, from inside one of the executor's own tasks).
    Block,
    /// Wait until this instant (real time), then fail with `TimedOut`.
    Until(Instant),
    /// Wait as `Block`, but stop waiting once the caller's token is cancelled: the task is
    /// then admitted over capacity, and the engine resolves it as cancelled at once without
    /// running it (a blocked submission honours the caller's token too).
    BlockUnless(CancellationToken),
}

/// An attempt waiting for a slot.
struct Ready<R: PostTask + Clone + Send + Sync + 'static> {
    meta: Arc<TaskMeta<R>>,
    run: Run,
}

struct State<R: PostTask + Clone + Send + Sync + 'static> {
    /// Accepting submissions.
    open: bool,
    /// The runner refused a post (its pool shut down): nothing more is posted.
    runner_refused: bool,
    /// Attempts posted to the runner whose closure has not been dropped yet.
    running: usize,
    /// Attempts waiting for a slot, by key (see the module doc).
    queue: BTreeMap<u64, Ready<R>>,
    next_key: u64,
    /// Admitted tasks whose first attempt has not taken a slot (bounded by `capacity`).
    waiting: usize,
    /// Admitted tasks that have not ended.
    live: usize,
    /// Tasks admitted since the executor was built, tasks ended, and of those the ones
    /// that ended without a value (`Executor::progress`).
    submitted: u64,
    ended: u64,
    failed: u64,
    /// `wait_idle` snapshots: live tasks per admission epoch, oldest first.
    epoch: u64,
    epochs: VecDeque<(u64, usize)>,
    space_waiters: usize,
    idle_waiters: usize,
}

/// Shared by the [`Executor`](super::Executor), its tasks' metas and the posted attempts.
pub(crate) struct Core<R: PostTask + Clone + Send + Sync + 'static> {
    pub(crate) runner: R,
    pub(crate) max_workers: usize,
    pub(crate) capacity: usize,
    /// The executor's token: every task's token is a child of it.
    pub(crate) token: CancellationToken,
    state: Mutex<State<R>>,
    /// Submitters waiting for room.
    space: Condvar,
    /// `wait_idle` and draining shutdowns.
    idle: Condvar,
}

impl<R: PostTask + Clone + Send + Sync + 'static> Core<R> {
    pub(crate) fn new(runner: R, max_workers: usize, capacity: usize) -> Arc<Self> {
        Arc::new(Core {
            runner,
            max_workers,
            capacity,
            token: CancellationToken::new(),
            state: Mutex::new(State {
                open: true,
                runner_refused: false,
                running: 0,
                queue: BTreeMap::new(),
                next_key: 1,
                waiting: 0,
                live: 0,
                submitted: 0,
                ended: 0,
                failed: 0,
                epoch: 0,
                epochs: VecDeque::new(),
                space_waiters: 0,
                idle_waiters: 0,
            }),
            space: Condvar::new(),
            idle: Condvar::new(),
        })
    }

    fn id(&self) -> usize {
        self as *const Self as *const () as usize
    }

    /// `true` if this thread is running one of this executor's tasks.
    pub(crate) fn in_own_task(self: &Arc<Self>) -> bool {
        RUNNING_FOR.with(Cell::get) == self.id()
    }

    /// Panics if the caller is a task of the sequence the executor's runner posts to: a wait
    /// there for the executor's tasks could never end.
    #[track_caller]
    pub(crate) fn check_not_own_sequence(&self, what: &str) {
        check_not_own_sequence(self.seq(), what);
    }

    /// The sequence `runner` posts to, if it is one of the crate's sequenced runners. Asked at
    /// each check, not once: a key of a keyed runner has a sequence only while it has work,
    /// and a different one after it was retired.
    pub(crate) fn seq(&self) -> Option<u64> {
        self.runner.sequence_token()
    }

    /// Takes a reservation in the queue for a new task; returns its epoch. A wait for room is
    /// a blocking scope; one that could never end (a task of the executor's own sequence on a
    /// full queue, without a time limit) panics.
    #[track_caller]
    pub(crate) fn admit(self: &Arc<Self>, wait: Wait) -> Result<u64, SubmitRefusal> {
        let own = matches!(wait, Wait::Block | Wait::BlockUnless(_)) && self.in_own_task();
        {
            let mut s = self.state.lock();
            if !s.open {
                return Err(SubmitRefusal::Shutdown);
            }
            // A task blocked on its own executor's queue may be the one that has to finish to
            // make room: from inside a task, a blocking submit is admitted over capacity.
            if s.waiting < self.capacity || own {
                return Ok(Self::take_reservation(&mut s));
            }
            match wait {
                Wait::Try => return Err(SubmitRefusal::Full),
                Wait::BlockUnless(ref token) if token.is_cancelled() => {
                    // Admitted over capacity: the engine resolves it at once, unrun.
                    return Ok(Self::take_reservation(&mut s));
                }
                Wait::Until(deadline) if Instant::now() >= deadline => {
                    return Err(SubmitRefusal::TimedOut);
                }
                _ => {}
            }
        }
        if matches!(wait, Wait::Block | Wait::BlockUnless(_)) {
            self.check_not_own_sequence("Executor::submit on a full queue");
        }
        blocking_unchecked(|| self.admit_slow(wait, own))
    }

    /// The blocking part of [`admit`](Self::admit).
    fn admit_slow(self: &Arc<Self>, wait: Wait, own: bool) -> Result<u64, SubmitRefusal> {
        let mut s = self.state.lock();
        loop {
            if !s.open {
                return Err(SubmitRefusal::Shutdown);
            }
            // A task blocked on its own executor's queue may be the one that has to finish to
            // make room: from inside a task, a blocking submit is admitted over capacity.
            if s.waiting < self.capacity || own {
                return Ok(Self::take_reservation(&mut s));
            }
            match wait {
                Wait::Try => return Err(SubmitRefusal::Full),
                Wait::Block => {
                    s.space_waiters += 1;
                    self.space.wait(&mut s);
                    s.space_waiters -= 1;
                }
                Wait::BlockUnless(ref token) => {
                    if token.is_cancelled() {
                        // Admitted over capacity: the engine resolves it at once, unrun.
                        return Ok(Self::take_reservation(&mut s));
                    }
                    // Polls the token every few milliseconds: registering a wake-up on a
                    // caller's (possibly long-lived) token for every blocked submit would
                    // accumulate callbacks on it.
                    s.space_waiters += 1;
                    self.space.wait_for(&mut s, Duration::from_millis(5));
                    s.space_waiters -= 1;
                }
                Wait::Until(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // A wake-up meant for room may have reached us as we gave up: pass
                        // it on.
                        if s.waiting < self.capacity && s.space_waiters > 0 {
                            self.space.notify_one();
                        }
                        return Err(SubmitRefusal::TimedOut);
                    }
                    s.space_waiters += 1;
                    self.space.wait_for(&mut s, deadline - now);
                    s.space_waiters -= 1;
                }
            }
        }
    }

    /// Counts one admitted task (a reservation in the queue, live, in the current epoch).
    fn take_reservation(s: &mut State<R>) -> u64 {
        s.submitted += 1;
        s.waiting += 1;
        s.live += 1;
        let epoch = s.epoch;
        match s.epochs.back_mut() {
            Some((e, n)) if *e == epoch => *n += 1,
            _ => s.epochs.push_back((epoch, 1)),
        }
        epoch
    }

    /// A task's meta was dropped: the engine is done with it.
    fn task_ended(&self, epoch: u64, dispatched: bool, succeeded: bool) {
        let mut s = self.state.lock();
        self.task_ended_locked(&mut s, epoch, dispatched, succeeded);
    }

    fn task_ended_locked(&self, s: &mut State<R>, epoch: u64, dispatched: bool, succeeded: bool) {
        s.live -= 1;
        s.ended += 1;
        if !succeeded {
            s.failed += 1;
        }
        if !dispatched {
            s.waiting -= 1;
            if s.space_waiters > 0 {
                self.space.notify_one();
            }
        }
        let mut oldest_done = false;
        if let Ok(i) = s.epochs.binary_search_by_key(&epoch, |&(e, _)| e) {
            s.epochs[i].1 -= 1;
            if s.epochs[i].1 == 0 {
                s.epochs.remove(i);
                oldest_done = i == 0;
            }
        }
        if s.idle_waiters > 0 && (oldest_done || s.live == 0) {
            self.idle.notify_all();
        }
    }

    /// Marks a task's first attempt as dispatched: its reservation is given back.
    fn dispatched(&self, s: &mut State<R>, meta: &TaskMeta<R>) {
        if !meta.dispatched.swap(true, Ordering::Relaxed) {
            s.waiting -= 1;
            if s.space_waiters > 0 {
                self.space.notify_one();
            }
        }
    }

    /// An attempt of `meta`'s task, from the engine: takes a slot or waits in the queue. After
    /// the runner refused a post, the attempt is dropped (its handle resolves as not run).
    fn post_attempt<F>(self: &Arc<Self>, meta: &Arc<TaskMeta<R>>, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let _in_post = set_local(&IN_POST, true);
        enum Then<F> {
            Start(F),
            Queued,
            Drop(F),
        }
        let then = {
            let mut s = self.state.lock();
            if s.runner_refused {
                Then::Drop(f)
            } else if s.running < self.max_workers {
                s.running += 1;
                self.dispatched(&mut s, meta);
                Then::Start(f)
            } else {
                let base = if meta.dispatched.load(Ordering::Relaxed) {
                    0
                } else {
                    FRESH
                };
                let key = base | s.next_key;
                s.next_key += 1;
                meta.key.store(key, Ordering::Relaxed);
                s.queue.insert(
                    key,
                    Ready {
                        meta: meta.clone(),
                        run: Box::new(f),
                    },
                );
                Then::Queued
            }
        };
        match then {
            Then::Start(f) => self.start(f),
            Then::Drop(f) => drop(f),
            Then::Queued => {
                // Queued: from now on a cancelled token must take the attempt out of the
                // queue at once (a cancelled queued attempt never runs).
                if !meta.watching.swap(true, Ordering::Relaxed) {
                    let weak: Weak<TaskMeta<R>> = Arc::downgrade(meta);
                    meta.token.on_cancel(move |_| {
                        if let Some(m) = weak.upgrade() {
                            m.core.unqueue(&m);
                        }
                    });
                }
            }
        }
    }

    /// The task's token was cancelled: if its attempt is queued, take it out and let the
    /// engine resolve the handle (it sees the token and does not call the task).
    fn unqueue(self: &Arc<Self>, meta: &TaskMeta<R>) {
        let entry = {
            let mut s = self.state.lock();
            let key = meta.key.load(Ordering::Relaxed);
            s.queue.remove(&key)
        };
        let Some(entry) = entry else { return };
        if IN_POST.with(Cell::get) {
            // The engine holds its lock around this post: resolve on a worker instead.
            let _ = self.runner.post_task(entry.run);
        } else {
            (entry.run)();
        }
    }

    /// Posts an attempt that already holds a slot. When it ends, the worker runs the next
    /// queued attempts itself, up to [`INLINE_BATCH`] in all, before handing the slot on by a
    /// post (saves a post and a wake-up per task; the batch bound keeps the worker fair to
    /// the rest of the pool).
    fn start<F>(self: &Arc<Self>, run: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let guard = SlotGuard {
            core: self.clone(),
            held: true,
        };
        let id = self.id();
        let task = move || {
            let mut slot = guard;
            let _mark = set_local(&RUNNING_FOR, id);
            run();
            for _ in 1..INLINE_BATCH {
                if running_sequence_poisoned() {
                    // An attempt panicked under `PanicPolicy::Poison`: nothing more runs on
                    // this sequence. The slot's guard posts the next attempt, which the
                    // poisoned sequence refuses (the queued handles then end as not run).
                    break;
                }
                match slot.pass() {
                    Some(Ready { meta, run }) => {
                        drop(meta);
                        run();
                    }
                    None => return,
                }
            }
            // `slot` drops after `_mark`: it posts the next queued attempt, if any.
        };
        if let Err(refused) = self.runner.post_task(task) {
            // The pool is shutting down: nothing queued here can run any more. The dropped
            // closures resolve their handles as not run.
            let dropped = {
                let mut s = self.state.lock();
                s.runner_refused = true;
                std::mem::take(&mut s.queue)
            };
            drop(refused); // its guard frees the slot without dispatching
            drop(dropped);
        }
    }

    /// Closes the executor; see [`Executor::shutdown`](super::Executor::shutdown). A drain that
    /// has to wait is a blocking scope.
    pub(crate) fn shutdown(self: &Arc<Self>, mode: ShutdownMode) {
        let cancelled = {
            let mut s = self.state.lock();
            s.open = false;
            self.space.notify_all();
            self.idle.notify_all();
            if mode.cancels_pending() {
                std::mem::take(&mut s.queue)
            } else {
                BTreeMap::new()
            }
        };
        if mode.cancels_pending() {
            // Running tasks see their token; queued ones are resolved here as cancelled
            // without running (the engine checks the token first).
            self.token.cancel();
            for (_, entry) in cancelled {
                (entry.run)();
            }
        }
        if mode.waits() && self.state.lock().live > 0 {
            blocking_unchecked(|| {
                let mut s = self.state.lock();
                s.idle_waiters += 1;
                while s.live > 0 {
                    self.idle.wait(&mut s);
                }
                s.idle_waiters -= 1;
            });
        }
    }

    /// Waits until every task admitted before the call has ended; `false` if the executor
    /// was shut down first, or on timeout. A wait that blocks is a blocking scope.
    pub(crate) fn wait_idle(&self, deadline: Deadline) -> bool {
        let target = {
            let mut s = self.state.lock();
            let target = s.epoch;
            s.epoch += 1;
            if s.epochs.front().is_none_or(|&(e, _)| e > target) {
                return true;
            }
            if !s.open || deadline.is_reached(Instant::now()) {
                return false;
            }
            target
        };
        blocking_unchecked(|| {
            let mut s = self.state.lock();
            s.idle_waiters += 1;
            let done = loop {
                if s.epochs.front().is_none_or(|&(e, _)| e > target) {
                    break true;
                }
                if !s.open {
                    break false;
                }
                match deadline.instant() {
                    None => self.idle.wait(&mut s),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            break false;
                        }
                        self.idle.wait_for(&mut s, d - now);
                    }
                }
            };
            s.idle_waiters -= 1;
            done
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.lock().open
    }

    /// (waiting, running, live)
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.lock();
        (s.waiting, s.running, s.live)
    }

    /// Tasks admitted, ended, and ended without a value.
    pub(crate) fn progress(&self) -> (u64, u64, u64) {
        let s = self.state.lock();
        (s.submitted, s.ended, s.failed)
    }
}

/// `true` if the running task's sequence was poisoned (an attempt panicked under
/// `PanicPolicy::Poison`).
fn running_sequence_poisoned() -> bool {
    crate::engine::running_sequence_ref(|s| s.is_poisoned()).unwrap_or(false)
}

/// Holds a slot for as long as a posted attempt closure exists.
struct SlotGuard<R: PostTask + Clone + Send + Sync + 'static> {
    core: Arc<Core<R>>,
    held: bool,
}

impl<R: PostTask + Clone + Send + Sync + 'static> SlotGuard<R> {
    /// The attempt holding the slot ended: returns the next queued attempt, which now holds
    /// the slot, or frees the slot.
    fn pass(&mut self) -> Option<Ready<R>> {
        let core = &self.core;
        // Only this executor's (a nested guard of another executor may run here too).
        let ended = ENDED_HERE.with(|e| match e.get() {
            Some((id, ..)) if id == core.id() => e.take(),
            _ => None,
        });
        let mut s = core.state.lock();
        if let Some((_, epoch, dispatched, succeeded)) = ended {
            core.task_ended_locked(&mut s, epoch, dispatched, succeeded);
        }
        let next = if s.runner_refused {
            None
        } else {
            s.queue.pop_first().map(|(_, e)| e)
        };
        match &next {
            Some(e) => core.dispatched(&mut s, &e.meta),
            None => {
                s.running -= 1;
                self.held = false;
            }
        }
        next
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> Drop for SlotGuard<R> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        if let Some(e) = self.pass() {
            // The slot passes to the next attempt.
            self.core.start(e.run);
        }
    }
}

/// One submitted task, as the executor sees it. Dropped when the retry engine is done with
/// the task (see the module doc).
pub(crate) struct TaskMeta<R: PostTask + Clone + Send + Sync + 'static> {
    pub(crate) core: Arc<Core<R>>,
    epoch: u64,
    /// The task's own token (child of the executor's; linked to the caller's, if any).
    token: CancellationToken,
    /// A child of the caller's token that forwards its cancellation to `token`; dropped with
    /// the task so the caller's token does not collect one registration per task.
    _link: Option<CancellationToken>,
    /// Key of its queued attempt (under the state lock).
    key: AtomicU64,
    /// Its first attempt took a slot (under the state lock).
    dispatched: AtomicBool,
    /// A cancellation callback is registered.
    watching: AtomicBool,
    /// The task's last attempt returned a value (set by the attempt itself, see
    /// `Executor::launch`).
    pub(crate) succeeded: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: PostTask + Clone + Send + Sync + 'static> TaskMeta<R> {
    pub(crate) fn new(
        core: Arc<Core<R>>,
        epoch: u64,
        token: CancellationToken,
        link: Option<CancellationToken>,
    ) -> Arc<Self> {
        Arc::new(TaskMeta {
            core,
            epoch,
            token,
            _link: link,
            key: AtomicU64::new(0),
            dispatched: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            succeeded: Arc::default(),
        })
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> Drop for TaskMeta<R> {
    fn drop(&mut self) {
        let dispatched = self.dispatched.load(Ordering::Relaxed);
        let succeeded = self.succeeded.load(std::sync::atomic::Ordering::Acquire);
        let id = self.core.id();
        // Inside one of this executor's attempts (the usual case: the engine lets go of the
        // task at the end of its last attempt), the attempt's slot guard accounts for it.
        if RUNNING_FOR.with(Cell::get) == id && ENDED_HERE.with(|e| e.get().is_none()) {
            ENDED_HERE.with(|e| e.set(Some((id, self.epoch, dispatched, succeeded))));
            return;
        }
        self.core.task_ended(self.epoch, dispatched, succeeded);
    }
}

/// The runner the retry engine posts one task's attempts to: immediate posts go through the
/// executor's slots and queue; delayed posts (backoff) go straight to the runner, holding no
/// slot while they wait.
pub(crate) struct ExecRunner<R: PostTask + Clone + Send + Sync + 'static> {
    pub(crate) meta: Arc<TaskMeta<R>>,
}

impl<R: PostTask + Clone + Send + Sync + 'static> Clone for ExecRunner<R> {
    fn clone(&self) -> Self {
        ExecRunner {
            meta: self.meta.clone(),
        }
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> PostTask for ExecRunner<R> {
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.meta.core.post_attempt(&self.meta, f);
        Ok(())
    }

    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.meta.core.runner.post_delayed_task(delay, f)
    }

    fn now(&self) -> Instant {
        self.meta.core.runner.now()
    }

    fn max_concurrency(&self) -> usize {
        self.meta.core.max_workers
    }
}
