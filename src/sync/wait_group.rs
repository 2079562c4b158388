//! Groups of tasks: [`WaitGroup`] (a reusable counter to wait on, Go's `sync.WaitGroup`) and
//! [`TaskGroup`] (Go's `errgroup`: the first error cancels the rest and is what `wait`
//! returns). Both wait by blocking or by `.await`.
//!
//! # WaitGroup protocol
//!
//! One lock guards `count`, `generation` and the waker list. A waiter records the generation
//! when it starts and is released when the count is zero **or** the generation moved: every
//! transition of the count to zero bumps the generation (under the lock) and wakes everyone.
//! There are no permits, so nothing can be left over from an earlier round: a waiter that
//! starts while the count is above zero can only be released by that count reaching zero.
//!
//! # Panics in group tasks
//!
//! A [`TaskGroup`] task that panics is caught (its payload kept in the group's error) and
//! reported exactly like a plain task's panic: the pool's panic handler sees it with the
//! location of the `spawn` call, and the runner's [`PanicPolicy`](crate::PanicPolicy) applies
//! (`Poison` poisons the sequence before the group hears of the panic; `Abort` aborts).
//!
//! # TaskGroup error rule
//!
//! Each spawned task ends with one outcome: ok, failed (it returned `Err`), panicked, cancelled
//! (not run because the group's token was cancelled before it started), or not run (the runner
//! refused it or dropped it at shutdown). The first non-ok outcome **by completion time** is
//! stored (once) and cancels the group's token; `wait` waits for every task and returns it.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::shim::{Condvar, Mutex};
use crate::base::unwind::catch;
use crate::cancel::{CancellationToken, TaskContext};
use crate::engine::{blocking_unchecked, check_not_own_sequence, report_task_panic};
use crate::handle::TaskError;
use crate::runner::PostTask;
use crate::sync::semaphore::Semaphore;

// ---- waker list ------------------------------------------------------------------------------

/// Wakers of pending futures, one slot per future. A slot is freed only by the future that owns
/// it (when it completes or is dropped), so a key never points at another future's slot.
#[derive(Default)]
pub(crate) struct WakerList {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl WakerList {
    /// Stores `waker` in the future's slot (allocating one on first use).
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        match *key {
            Some(k) => match &mut self.slots[k] {
                Some(old) if old.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            },
            None => {
                let k = match self.free.pop() {
                    Some(k) => {
                        self.slots[k] = Some(waker.clone());
                        k
                    }
                    None => {
                        self.slots.push(Some(waker.clone()));
                        self.slots.len() - 1
                    }
                };
                *key = Some(k);
            }
        }
    }

    /// Frees the future's slot.
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            self.slots[k] = None;
            self.free.push(k);
        }
    }

    /// Takes every stored waker (to wake outside the lock); slots stay owned.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.slots.iter_mut().filter_map(Option::take).collect()
    }
}

// ---- WaitGroup -------------------------------------------------------------------------------

struct WgState {
    count: usize,
    /// Bumped each time `count` reaches zero.
    generation: u64,
    wakers: WakerList,
}

struct WgInner {
    state: Mutex<WgState>,
    cv: Condvar,
}

/// A counter of outstanding work that threads and futures can wait on (Go's
/// `sync.WaitGroup`): [`add`](Self::add) before starting work, [`done`](Self::done) when each
/// piece ends, [`wait`](Self::wait) (or [`wait_async`](Self::wait_async)`.await`) until the
/// counter is zero. Clones share the counter.
///
/// * **Reusable**: after the counter reached zero, a new round of `add`/`wait`/`done` works the
///   same way. A wait that starts while the counter is above zero returns only once it reaches
///   zero (there are no stale wake-ups from earlier rounds; see the module docs).
/// * A wait is released when the counter reaches zero **at some point** after the wait began,
///   even if an `add` raises it again before the waiter gets to run.
/// * `done` below zero panics (a bug in the caller's bookkeeping).
/// * A blocking wait on a pool worker lets the pool run one more worker meanwhile (as
///   [`blocking`](crate::blocking)), so waiting for tasks of the same pool cannot deadlock it.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// use taskrunner::sync::WaitGroup;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let wg = WaitGroup::new();
/// let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// for _ in 0..4 {
///     wg.add(1);
///     let (wg, hits) = (wg.clone(), hits.clone());
///     pool.post_task(TaskTraits::default(), move || {
///         hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         wg.done();
///     }).unwrap();
/// }
/// wg.wait();
/// assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4);
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<WgInner>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitGroup {
    /// A wait group with the counter at zero.
    ///
    /// ```
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// assert_eq!(wg.count(), 0);
    /// wg.wait(); // returns at once
    /// ```
    pub fn new() -> Self {
        WaitGroup {
            inner: Arc::new(WgInner {
                state: Mutex::new(WgState {
                    count: 0,
                    generation: 0,
                    wakers: WakerList::default(),
                }),
                cv: Condvar::new(),
            }),
        }
    }

    /// Adds `n` to the counter. Panics if the counter would overflow.
    ///
    /// ```
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// wg.add(2);
    /// assert_eq!(wg.count(), 2);
    /// ```
    pub fn add(&self, n: usize) {
        let mut s = self.inner.state.lock();
        s.count = s
            .count
            .checked_add(n)
            .expect("WaitGroup::add: the counter overflowed");
    }

    /// Subtracts one from the counter; at zero, releases every waiter. Panics if the counter
    /// is already zero (more `done` than `add`).
    ///
    /// ```
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// assert_eq!(wg.count(), 0);
    /// let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.done()));
    /// assert!(again.is_err()); // below zero
    /// ```
    pub fn done(&self) {
        let wakers = {
            let mut s = self.inner.state.lock();
            if s.count == 0 {
                drop(s);
                panic!("WaitGroup::done: the counter would go below zero (done() called more often than add())");
            }
            s.count -= 1;
            if s.count > 0 {
                return;
            }
            s.generation = s.generation.wrapping_add(1);
            s.wakers.take_all()
        };
        self.inner.cv.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// The current value of the counter.
    ///
    /// See [`add`](Self::add) for an example.
    pub fn count(&self) -> usize {
        self.inner.state.lock().count
    }

    /// Adds one to the counter and returns a guard that calls [`done`](Self::done) when
    /// dropped, also when the work panics.
    ///
    /// ```
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// let guard = wg.guard();
    /// assert_eq!(wg.count(), 1);
    /// std::thread::spawn(move || { let _g = guard; /* work */ });
    /// wg.wait();
    /// ```
    pub fn guard(&self) -> WaitGroupGuard {
        self.add(1);
        WaitGroupGuard { wg: self.clone() }
    }

    /// Blocks until the counter is zero (at once if it is). On a pool worker the pool runs
    /// one more worker while this blocks.
    ///
    /// See [`WaitGroup`] for an example.
    pub fn wait(&self) {
        self.wait_until(Deadline::NEVER);
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; `true` if the wait was released
    /// (the counter reached zero), `false` on timeout. A timeout too large to represent
    /// (`Duration::MAX`) means no limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// wg.add(1);
    /// assert!(!wg.wait_timeout(Duration::from_millis(1)));
    /// wg.done();
    /// assert!(wg.wait_timeout(Duration::from_millis(1)));
    /// assert!(wg.wait_timeout(Duration::MAX)); // no limit (and no overflow)
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Deadline::real_after(timeout))
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        let generation = {
            let s = self.inner.state.lock();
            if s.count == 0 {
                return true;
            }
            s.generation
        };
        if deadline.is_never() {
            crate::engine::check_can_block("WaitGroup::wait");
        }
        blocking_unchecked(|| {
            let mut s = self.inner.state.lock();
            while s.count > 0 && s.generation == generation {
                match deadline.instant() {
                    None => self.inner.cv.wait(&mut s),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return false;
                        }
                        self.inner.cv.wait_for(&mut s, d - now);
                    }
                }
            }
            true
        })
    }

    /// A future that completes when the counter is zero, under the same rule as
    /// [`wait`](Self::wait) (the round is the one current when `wait_async` is called). It
    /// does not block a thread: pending futures are woken when the counter reaches zero.
    ///
    /// ```
    /// let wg = taskrunner::sync::WaitGroup::new();
    /// wg.add(1);
    /// let fut = wg.wait_async();
    /// let wg2 = wg.clone();
    /// std::thread::spawn(move || wg2.done());
    /// tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(fut);
    /// assert_eq!(wg.count(), 0);
    /// ```
    pub fn wait_async(&self) -> WaitGroupFuture {
        let generation = self.inner.state.lock().generation;
        WaitGroupFuture {
            inner: self.inner.clone(),
            generation,
            key: None,
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

/// Calls [`WaitGroup::done`] when dropped; made by [`WaitGroup::guard`].
///
/// ```
/// let wg = taskrunner::sync::WaitGroup::new();
/// drop(wg.guard());
/// assert_eq!(wg.count(), 0);
/// ```
#[must_use = "dropping the guard at once calls done() at once"]
pub struct WaitGroupGuard {
    wg: WaitGroup,
}

impl Drop for WaitGroupGuard {
    fn drop(&mut self) {
        self.wg.done();
    }
}

impl fmt::Debug for WaitGroupGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroupGuard").finish_non_exhaustive()
    }
}

/// The future of [`WaitGroup::wait_async`].
///
/// ```
/// let wg = taskrunner::sync::WaitGroup::new();
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(wg.wait_async()); // already zero
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WaitGroupFuture {
    inner: Arc<WgInner>,
    generation: u64,
    key: Option<usize>,
}

impl Future for WaitGroupFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut s = this.inner.state.lock();
        if s.count == 0 || s.generation != this.generation {
            s.wakers.remove(&mut this.key);
            return Poll::Ready(());
        }
        s.wakers.register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

impl Drop for WaitGroupFuture {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.inner.state.lock().wakers.remove(&mut self.key);
        }
    }
}

impl fmt::Debug for WaitGroupFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroupFuture").finish_non_exhaustive()
    }
}

// ---- TaskGroup -------------------------------------------------------------------------------

struct GroupShared {
    wg: WaitGroup,
    first_error: Mutex<Option<TaskError>>,
    token: CancellationToken,
}

impl GroupShared {
    /// Stores `e` if it is the first error, and then cancels the group.
    fn record(&self, e: TaskError) {
        let first = {
            let mut slot = self.first_error.lock();
            if slot.is_none() {
                *slot = Some(e);
                true
            } else {
                false
            }
        };
        if first {
            self.token.cancel();
        }
    }

    fn result(&self) -> Result<(), TaskError> {
        match &*self.first_error.lock() {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }
}

/// One spawned task's place in the group: counted on creation, resolved exactly once (by
/// `finish`, or as not run when dropped unresolved: refused, or discarded by the runner).
struct Ticket {
    shared: Arc<GroupShared>,
    resolved: bool,
    /// Where the task was spawned (what the pool's panic handler is told).
    posted_from: &'static Location<'static>,
}

impl Ticket {
    fn new(shared: Arc<GroupShared>, posted_from: &'static Location<'static>) -> Self {
        shared.wg.add(1);
        Ticket {
            shared,
            resolved: false,
            posted_from,
        }
    }

    fn finish(mut self, outcome: Result<(), TaskError>) {
        self.resolved = true;
        if let Err(e) = outcome {
            self.shared.record(e);
        }
        // The error is stored before the count moves: a released `wait` sees it.
        self.shared.wg.done();
    }

    fn run<F, E>(self, f: F)
    where
        F: FnOnce(&TaskContext) -> Result<(), E>,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        if let Some(why) = self.shared.token.reason() {
            // Cancelled while it waited in the queue (or for a permit): not run.
            return self.finish(Err(TaskError::interrupted(why)));
        }
        let ctx = TaskContext::new(self.shared.token.clone());
        let outcome = match catch(|| ctx.scope(|| f(&ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TaskError::from_error(e)),
            Err(p) => {
                // Reported (and the runner's panic policy applied) before the group hears of
                // it, as the worker does for a plain task.
                report_task_panic(p.message(), self.posted_from);
                Err(TaskError::from_panic(p))
            }
        };
        self.finish(outcome);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.resolved {
            self.resolved = true;
            self.shared.record(TaskError::not_run());
            self.shared.wg.done();
        }
    }
}

/// A group of fallible tasks that succeed or fail together (Go's `errgroup`):
/// [`spawn`](Self::spawn) posts tasks to a runner, [`wait`](Self::wait) waits for all of them
/// and returns the **first** error.
///
/// * Each task runs inside a [`TaskContext`] whose token is the group's
///   ([`token`](Self::token)). The first task to end without success — it returned `Err`, it
///   panicked, or it could not run (refused or dropped at shutdown: `is_not_run`) — wins, by
///   completion time: its error is stored and the token is cancelled at once, so the others can
///   stop early through [`TaskContext::check`] / `is_cancelled`. Tasks that have not started
///   yet are then not run (they end cancelled).
/// * Returning `ctx.check()?`'s error ends a task as cancelled (see
///   [`TaskError::from_error`]); that only becomes the group's error if nothing failed first,
///   e.g. when the parent token of [`with_token`](Self::with_token) was cancelled.
/// * Spawning after the token is cancelled does not run the task: it counts as ending
///   cancelled (it still goes through `wait`).
/// * **Reuse**: the group can keep spawning after a `wait`; the next `wait` waits for the new
///   tasks. The first error is sticky: once a task failed, the token stays cancelled, later
///   tasks are not run, and every `wait` returns that error. Make a new group for a new try.
/// * Dropping the group does not cancel or wait for its tasks.
/// * [`limit`](Self::limit) caps how many of its tasks run at once, without holding workers
///   while the rest wait.
///
/// ```
/// use taskrunner::ThreadPool;
/// use taskrunner::fork_join::TaskGroup;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let group = TaskGroup::new(&pool);
/// group.spawn(|_ctx| Ok::<(), std::io::Error>(()));
/// group.spawn(|_ctx| Err("disk full"));
/// group.spawn(|ctx| { ctx.token().wait(); ctx.check()?; Ok::<_, taskrunner::cancel::Interrupted>(()) });
/// let err = group.wait().unwrap_err();
/// assert_eq!(err.to_string(), "task failed: disk full");
/// assert!(group.token().is_cancelled());
/// ```
pub struct TaskGroup<R> {
    runner: R,
    shared: Arc<GroupShared>,
    limit: Option<Semaphore>,
}

impl<R> TaskGroup<R>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    /// A group posting its tasks to `runner` (the pool, any runner; a sequence runs them one
    /// at a time), with a fresh token.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// assert!(group.wait().is_ok()); // nothing spawned
    /// ```
    pub fn new(runner: &R) -> Self {
        Self::from_token(runner, CancellationToken::new())
    }

    /// A group whose token is a child of `parent`: cancelling `parent` cancels the group's
    /// tasks (never the reverse).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::cancel::CancellationToken;
    /// use taskrunner::fork_join::TaskGroup;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let parent = CancellationToken::new();
    /// let group = TaskGroup::with_token(&pool, &parent);
    /// parent.cancel();
    /// group.spawn(|_| Ok::<(), std::io::Error>(())); // not run: the group is cancelled
    /// assert!(group.wait().unwrap_err().is_cancelled());
    /// ```
    pub fn with_token(runner: &R, parent: &CancellationToken) -> Self {
        Self::from_token(runner, parent.child())
    }

    fn from_token(runner: &R, token: CancellationToken) -> Self {
        TaskGroup {
            runner: runner.clone(),
            shared: Arc::new(GroupShared {
                wg: WaitGroup::new(),
                first_error: Mutex::new(None),
                token,
            }),
            limit: None,
        }
    }

    /// At most `n` of the group's tasks run at once (set it before spawning; tasks spawned
    /// earlier are not counted). The others wait for a [`Semaphore`] permit without being
    /// posted, so they hold no worker. Panics if `n` is 0.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(4).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool).limit(2);
    /// let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// for _ in 0..8 {
    ///     let (now, max) = (now.clone(), max.clone());
    ///     group.spawn(move |_| {
    ///         let n = now.fetch_add(1, Ordering::SeqCst) + 1;
    ///         max.fetch_max(n, Ordering::SeqCst);
    ///         std::thread::yield_now();
    ///         now.fetch_sub(1, Ordering::SeqCst);
    ///         Ok::<(), std::io::Error>(())
    ///     });
    /// }
    /// group.wait().unwrap();
    /// assert!(max.load(Ordering::SeqCst) <= 2);
    /// ```
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(Semaphore::new(n));
        self
    }

    /// Posts `f` as a task of the group. `f` gets the task's [`TaskContext`] (also reachable
    /// with [`TaskContext::current`]). See [`TaskGroup`] for how its outcome counts.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// group.spawn(|ctx| { assert!(!ctx.is_cancelled()); Ok::<(), std::fmt::Error>(()) });
    /// assert!(group.wait().is_ok());
    /// ```
    #[track_caller]
    pub fn spawn<F, E>(&self, f: F)
    where
        F: FnOnce(&TaskContext) -> Result<(), E> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        let ticket = Ticket::new(self.shared.clone(), Location::caller());
        if let Some(why) = self.shared.token.reason() {
            return ticket.finish(Err(TaskError::interrupted(why)));
        }
        match &self.limit {
            None => {
                // A refusal drops the closure, and with it the ticket: not run.
                let posted_from = ticket.posted_from;
                let _ = self
                    .runner
                    .post_task_from(move || ticket.run(f), posted_from);
            }
            Some(sem) => {
                let runner = self.runner.clone();
                let token = self.shared.token.clone();
                sem.acquire_then(move |permit| {
                    if let Some(why) = token.reason() {
                        drop(permit);
                        return ticket.finish(Err(TaskError::interrupted(why)));
                    }
                    let posted_from = ticket.posted_from;
                    let _ = runner.post_task_from(
                        move || {
                            let _permit = permit;
                            ticket.run(f);
                        },
                        posted_from,
                    );
                });
            }
        }
    }

    /// Blocks until every task spawned so far has ended; `Ok` if all succeeded, else the
    /// group's first error. On a pool worker the pool runs one more worker meanwhile.
    ///
    /// # Panics
    ///
    /// If it would have to wait and is called from a task of the sequence the group posts to
    /// (its runner is a `SequencedTaskRunner` or a `SingleThreadTaskRunner`): the group's
    /// tasks are queued behind the caller on that sequence, so the wait could never end. Wait
    /// from elsewhere, or use [`wait_async`](Self::wait_async) in a future.
    ///
    /// See [`TaskGroup`] for an example.
    #[track_caller]
    pub fn wait(&self) -> Result<(), TaskError> {
        self.check_wait("TaskGroup::wait");
        self.shared.wg.wait();
        self.shared.result()
    }

    /// Panics if a wait from here for pending tasks could never end (see [`wait`](Self::wait)).
    #[track_caller]
    fn check_wait(&self, what: &str) {
        if self.shared.wg.count() > 0 {
            // Asked now, not when the group was made: a key of a keyed runner has a sequence
            // only while it has work, and a different one after it was retired.
            check_not_own_sequence(self.runner.sequence_token(), what);
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (`None`: tasks are still running).
    /// A timeout too large to represent (`Duration::MAX`) means no limit, and then it panics
    /// as `wait` does for a wait on the group's own sequence (a bounded wait there just times
    /// out).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// let (release, gate) = std::sync::mpsc::channel::<()>();
    /// group.spawn(move |_| { let _ = gate.recv(); Ok::<(), std::io::Error>(()) });
    /// assert!(group.wait_timeout(std::time::Duration::from_millis(1)).is_none());
    /// drop(release);
    /// assert!(group.wait_timeout(std::time::Duration::from_secs(30)).unwrap().is_ok());
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), TaskError>> {
        if Deadline::real_after(timeout).is_never() {
            self.check_wait("TaskGroup::wait_timeout without a limit");
        }
        if self.shared.wg.wait_timeout(timeout) {
            Some(self.shared.result())
        } else {
            None
        }
    }

    /// A future of [`wait`](Self::wait)'s result (the tasks spawned before it is called); it
    /// blocks no thread.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// group.spawn(|_| Err("nope"));
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let err = rt.block_on(group.wait_async()).unwrap_err();
    /// assert!(err.is_failed());
    /// ```
    pub fn wait_async(&self) -> impl Future<Output = Result<(), TaskError>> + Send + 'static {
        let done = self.shared.wg.wait_async();
        let shared = self.shared.clone();
        async move {
            done.await;
            shared.result()
        }
    }

    /// The group's cancellation token (the one its tasks' contexts carry).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// assert!(!group.token().is_cancelled());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.shared.token
    }

    /// Cancels the group's token: running tasks see it, tasks not started are not run (they
    /// end cancelled, which is the group's error unless one failed first). `true` if this call
    /// cancelled it.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// assert!(group.cancel());
    /// group.spawn(|_| Ok::<(), std::io::Error>(()));
    /// assert!(group.wait().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.shared.token.cancel()
    }

    /// How many spawned tasks have not ended yet.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let group = taskrunner::fork_join::TaskGroup::new(&pool);
    /// group.spawn(|_| Ok::<(), std::io::Error>(()));
    /// group.wait().unwrap();
    /// assert_eq!(group.pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.shared.wg.count()
    }
}

impl<R: Clone> Clone for TaskGroup<R> {
    /// Another handle to the same group (same tasks, token and error), e.g. to spawn from
    /// inside a task.
    fn clone(&self) -> Self {
        TaskGroup {
            runner: self.runner.clone(),
            shared: self.shared.clone(),
            limit: self.limit.clone(),
        }
    }
}

impl<R> fmt::Debug for TaskGroup<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("pending", &self.shared.wg.count())
            .field("first_error", &*self.shared.first_error.lock())
            .field("cancelled", &self.shared.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waker_slots_are_reused_only_after_their_owner_frees_them() {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let mut l = WakerList::default();
        let w = &Waker::from(Arc::new(Noop));
        let (mut a, mut b) = (None, None);
        l.register(&mut a, w);
        l.register(&mut b, w);
        assert_eq!(l.take_all().len(), 2);
        l.register(&mut a, w); // re-register in its own slot
        assert_eq!((a, b), (Some(0), Some(1)));
        l.remove(&mut a);
        let mut c = None;
        l.register(&mut c, w);
        assert_eq!(c, Some(0));
        assert_eq!(l.take_all().len(), 1);
    }
}
