//! Async tasks on sequences: `post_future` polls a future **as tasks of a runner**. Each poll is
//! one task posted to the runner; a wake-up posts the next poll. On a sequence, polls are
//! ordinary tasks of the sequence: they run in posting order with the other tasks, never two at
//! once, each seeing the effects of the task before it. Between two awaits the sequence runs
//! whatever else was posted to it, so state owned by the sequence (a
//! [`SequenceLocal`](crate::SequenceLocal), a [`SequenceBound`](crate::SequenceBound)'s object)
//! can be used from the future between awaits without a lock: the sequence is an async actor.
//!
//! One engine ([`FutureTask`]) serves every runner: it is generic over the runner
//! (`R: PostTask`) and over where the future lives ([`FutureSlot`]): in the task itself for a
//! `Send` future ([`SendSlot`]), or in a thread-local slab of a single-thread runner's
//! dedicated thread for a `!Send` one ([`LocalSlot`]; the waker then carries only the id, the
//! runner and the state word). The task is also the handle's result cell (it implements
//! `HandleCell`) and the waker (`std::task::Wake` on its `Arc`).
//!
//! # State machine (`FutureTask::state`)
//!
//! A phase in the low bits, plus a `CANCELLED` flag.
//!
//! | phase | meaning | who owns the future |
//! |---|---|---|
//! | `IDLE` | polled, returned `Pending`, waiting for a wake-up; no poll task exists | nobody (a wake or a cancel takes the duty) |
//! | `SCHEDULED` | exactly one poll task is posted (or being posted) | that poll task |
//! | `RUNNING` | a poll is in progress | the poller |
//! | `NOTIFIED` | woken during the poll in progress: poll again after it | the poller |
//! | `DONE` | terminal: the future was (or is being) dropped; the handle is (being) resolved | the one that set `DONE` |
//!
//! | transition | by | duty |
//! |---|---|---|
//! | `→ SCHEDULED` | `post_future` (initial state) | post the first poll task; refused: hand the future back |
//! | `IDLE → SCHEDULED` | a wake | post a poll task |
//! | `SCHEDULED / NOTIFIED / DONE → same` | a wake | none: one poll serves every wake of the batch |
//! | `RUNNING → NOTIFIED` | a wake during the poll | none: the poller re-posts |
//! | `SCHEDULED → RUNNING` | the poll task | poll once (the handle's state becomes `Running`) |
//! | `RUNNING → IDLE` | the poller, on `Pending` | none |
//! | `NOTIFIED → SCHEDULED` | the poller, on `Pending` | post the next poll task (to the back of the sequence) |
//! | `RUNNING / NOTIFIED → DONE` | the poller, on `Ready` or a panic | a panic is first reported like a task's panic (see below); drop the future, resolve the handle (value, or the panic) |
//! | `IDLE → SCHEDULED + CANCELLED` | `cancel()` | post a poll task, which drops the future on the runner |
//! | `SCHEDULED / RUNNING / NOTIFIED → same + CANCELLED` | `cancel()` | none: the poll task, or the poll in progress when it ends, sees the flag |
//! | `(any) + CANCELLED → DONE` | the poll task, or the poller after its poll | drop the future (a value the last poll produced too), resolve `Cancelled` |
//! | `SCHEDULED → DONE` | a poll task dropped unrun (its post was refused, or shutdown discarded it) | drop the future where the task is dropped, resolve "not run" (`Cancelled` if the flag is set) |
//!
//! Only the owner of the future (the holder of the single poll task, or the poller) moves the
//! phase out of `SCHEDULED`, `RUNNING` or `NOTIFIED`, so the future is polled by one thread at a
//! time and dropped exactly once, and exactly one party resolves the handle. `cancel()` returns
//! `true` iff it set the flag before `DONE`, and then the handle ends `Cancelled`: a value
//! produced by a poll that was in progress when `cancel()` returned `true` is dropped, a value
//! produced before is never replaced.
//!
//! Every wake is a read-modify-write on the state word (a no-op wake is a compare-exchange
//! that stores the value it read), so it is ordered against the poller's transitions: either
//! the poller's `RUNNING → IDLE` comes first and the wake posts, or the wake comes first and
//! the poll that follows synchronizes with it and sees what the waker published. All RMWs are
//! `AcqRel`. Loom models: `src/loom_tests/future_task.rs`.
//!
//! Memory: the future lives in a small lock (`SendSlot`) taken only by its owner, so
//! consecutive polls on different workers are ordered by it as well. The task is one `Arc`
//! shared by the handle, the wakers and the posted poll task; it holds a clone of the runner,
//! so a future waiting for a wake-up keeps its runner (and pool) alive, as a queued task does.
//! When the last reference goes while the future is idle (no handle, no waker: nothing can poll
//! or cancel it again), the future is dropped by whoever dropped that reference. A future that
//! holds its own waker (a reference cycle) and is never woken stays, with its runner, until its
//! handle cancels it: like any executor, the engine cannot tell it from one that is waiting. Shutdown does not visit idle
//! futures; each is dropped at its next wake-up, whose post is refused.
//!
//! Panics in `poll` are caught by the slot (the future stays there to be dropped quietly) and
//! reported exactly as a task's panic, *before* the handle resolves: the poll task's
//! `PanicPolicy` applies (`Poison` poisons the sequence, so nobody who sees the handle resolve
//! can still post to it; `Abort` aborts), then tracing and the pool's panic handler, with
//! `post_future`'s call site as `posted_from` for every poll. The handle then resolves with the
//! payload kept ([`TaskError::into_panic`](crate::TaskError::into_panic)); the poll task
//! itself returns normally. A payload whose destructor panics is dropped without unwinding.
//!
//! # tokio
//!
//! With the `tokio` feature and a pool built with
//! [`ThreadPoolBuilder::tokio_handle`](crate::ThreadPoolBuilder::tokio_handle), every poll runs
//! inside that runtime's context (`Handle::enter`), so futures may use tokio's timers and I/O.
//! Without it, a poll that panics because no tokio reactor is running gets a message saying
//! how to fix that.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::base::error::PostError;
use crate::base::shim::{AtomicU8, Mutex, Ordering};
use crate::base::traits::TaskTraits;
use crate::base::unwind::{catch, drop_quietly, Payload};
use crate::engine::panics::report_task_panic;
use crate::handle::cell::{
    state_of, CellCore, HandleCell, PENDING as CELL_PENDING, RUNNING as CELL_RUNNING,
};
use crate::handle::{TaskError, TaskHandle};
use crate::pool::ThreadPool;
use crate::runner::{PostTask, SingleThreadTaskRunner};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;
const PHASE: u8 = 0b0111;
const CANCELLED: u8 = 0b1000;

// ---- where the future lives -----------------------------------------------------------------

/// Holds a future for the engine. Only the owner of the poll duty calls these (see the module
/// doc), one call at a time.
pub(crate) trait FutureSlot: Send + Sync + 'static {
    /// The future's output.
    type Output: Send + 'static;
    /// What a refused first post hands back (the future, or the closure that makes it).
    type Unstarted;
    /// Polls once. A panic is caught and returned; the future then stays in the slot until
    /// [`drop_future`](Self::drop_future).
    fn poll_once(&self, cx: &mut Context<'_>) -> Result<Poll<Self::Output>, Payload>;
    /// Drops the future (or what makes it) if this thread can reach it, catching a panic in its
    /// destructor.
    fn drop_future(&self);
    /// Takes back what was never polled (refused first post).
    fn take_unstarted(&self) -> Option<Self::Unstarted>;
}

enum SendState<F> {
    /// Not polled yet: kept unpinned so that a refused first post can hand it back.
    Fresh(F),
    Pinned(Pin<Box<F>>),
    Gone,
}

/// A `Send` future, held in the task itself.
pub(crate) struct SendSlot<F>(Mutex<SendState<F>>);

impl<F> SendSlot<F> {
    pub(crate) fn new(fut: F) -> Self {
        SendSlot(Mutex::new(SendState::Fresh(fut)))
    }
}

/// The last reference to a task that never finished (nobody can wake it or cancel it any
/// more) drops its future wherever that happens: quietly.
impl<F> Drop for SendSlot<F> {
    fn drop(&mut self) {
        let old = std::mem::replace(&mut *self.0.lock(), SendState::Gone);
        drop_quietly(old);
    }
}

impl<F> FutureSlot for SendSlot<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;
    type Unstarted = F;

    fn poll_once(&self, cx: &mut Context<'_>) -> Result<Poll<F::Output>, Payload> {
        let mut s = self.0.lock();
        if matches!(*s, SendState::Fresh(_)) {
            let SendState::Fresh(f) = std::mem::replace(&mut *s, SendState::Gone) else {
                unreachable!("checked just above")
            };
            *s = SendState::Pinned(Box::pin(f));
        }
        let SendState::Pinned(fut) = &mut *s else {
            unreachable!("the owner of the poll duty polls a future that is still there")
        };
        catch(|| fut.as_mut().poll(cx))
    }

    fn drop_future(&self) {
        let old = std::mem::replace(&mut *self.0.lock(), SendState::Gone);
        drop_quietly(old);
    }

    fn take_unstarted(&self) -> Option<F> {
        let mut s = self.0.lock();
        match std::mem::replace(&mut *s, SendState::Gone) {
            SendState::Fresh(f) => Some(f),
            other => {
                *s = other;
                None
            }
        }
    }
}

/// The `!Send` futures of the dedicated threads, by task id. Dropped (each future quietly)
/// when the thread exits.
struct LocalSlab(HashMap<u64, Box<dyn Any>>);

impl Drop for LocalSlab {
    fn drop(&mut self) {
        for (_, f) in self.0.drain() {
            drop_quietly(f);
        }
    }
}

thread_local! {
    static LOCAL_FUTURES: RefCell<LocalSlab> = RefCell::new(LocalSlab(HashMap::new()));
}

/// Takes a local future out of this thread's slab (the slab is not borrowed while it is polled
/// or dropped, so the future may post local futures itself).
fn slab_take(id: u64) -> Option<Box<dyn Any>> {
    LOCAL_FUTURES
        .try_with(|s| s.borrow_mut().0.remove(&id))
        .ok()
        .flatten()
}

fn slab_put(id: u64, fut: Box<dyn Any>) {
    let mut fut = Some(fut);
    let _ = LOCAL_FUTURES.try_with(|s| {
        if let Some(f) = fut.take() {
            s.borrow_mut().0.insert(id, f);
        }
    });
    // The thread is exiting and its slab is gone: nothing can poll the future again.
    drop_quietly(fut);
}

/// A `!Send` future: made by `make` on the first poll, on the runner's dedicated thread, and
/// kept in that thread's slab. The slot itself holds only `make` (`Send`) and the id.
pub(crate) struct LocalSlot<M, Fut> {
    make: Mutex<Option<M>>,
    id: u64,
    _fut: PhantomData<fn() -> Fut>,
}

impl<M, Fut> LocalSlot<M, Fut> {
    pub(crate) fn new(make: M) -> Self {
        LocalSlot {
            make: Mutex::new(Some(make)),
            id: crate::engine::task::next_id(),
            _fut: PhantomData,
        }
    }
}

/// As for `SendSlot`; the future itself can only be reached on its thread (elsewhere it stays
/// in the slab until that thread exits).
impl<M, Fut> Drop for LocalSlot<M, Fut> {
    fn drop(&mut self) {
        drop_quietly(self.make.lock().take());
        if let Some(f) = slab_take(self.id) {
            drop_quietly(f);
        }
    }
}

impl<M, Fut> FutureSlot for LocalSlot<M, Fut>
where
    M: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;
    type Unstarted = M;

    fn poll_once(&self, cx: &mut Context<'_>) -> Result<Poll<Fut::Output>, Payload> {
        let make = self.make.lock().take();
        let mut fut: Pin<Box<Fut>> = match make {
            Some(m) => Box::pin(catch(m)?),
            None => {
                let any = slab_take(self.id)
                    .expect("a local future is polled on the thread whose slab holds it");
                *any.downcast::<Pin<Box<Fut>>>()
                    .expect("the slab entry has the slot's future type")
            }
        };
        let r = catch(|| fut.as_mut().poll(cx));
        match r {
            Ok(Poll::Ready(v)) => {
                drop_quietly(fut);
                Ok(Poll::Ready(v))
            }
            // Kept for the next poll, or for `drop_future` after a panic.
            other => {
                slab_put(self.id, Box::new(fut));
                other
            }
        }
    }

    fn drop_future(&self) {
        let make = self.make.lock().take();
        drop_quietly(make);
        // Off the dedicated thread the slab entry is out of reach: it is dropped when that
        // thread exits.
        if let Some(f) = slab_take(self.id) {
            drop_quietly(f);
        }
    }

    fn take_unstarted(&self) -> Option<M> {
        self.make.lock().take()
    }
}

// ---- the engine -----------------------------------------------------------------------------

/// A future being polled as tasks of `runner`: state word, future slot, result cell, waker.
pub(crate) struct FutureTask<R, S: FutureSlot> {
    state: AtomicU8,
    runner: R,
    slot: S,
    core: CellCore<S::Output>,
    /// For `cancel()` (which gets `&self`) to post the dropping poll task.
    me: Weak<Self>,
    /// Total time spent inside `poll` (the handle's `duration`), in nanoseconds.
    busy_ns: StdAtomicU64,
    /// Where the future was posted (`post_future`'s caller): reported with a panic of any poll.
    posted_from: &'static Location<'static>,
    /// The runtime every poll enters (the pool's `tokio_handle`).
    #[cfg(feature = "tokio")]
    tokio: Option<tokio::runtime::Handle>,
}

/// The posted poll task. Dropped without running (refused post, shutdown), it gives up the
/// poll duty: the future is dropped where the task is dropped and the handle resolves.
struct PollJob<R: PostTask + Send + Sync + 'static, S: FutureSlot>(Option<Arc<FutureTask<R, S>>>);

impl<R: PostTask + Send + Sync + 'static, S: FutureSlot> PollJob<R, S> {
    fn run(mut self) {
        if let Some(t) = self.0.take() {
            t.run_poll();
        }
    }
}

impl<R: PostTask + Send + Sync + 'static, S: FutureSlot> Drop for PollJob<R, S> {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abandon();
        }
    }
}

impl<R, S> FutureTask<R, S>
where
    R: PostTask + Send + Sync + 'static,
    S: FutureSlot,
{
    /// A new task in `SCHEDULED` (its first poll task is about to be posted), posted from the
    /// caller's location.
    #[track_caller]
    pub(crate) fn new(runner: R, slot: S) -> Arc<Self> {
        let posted_from = Location::caller();
        #[cfg(all(feature = "tokio", not(loom)))]
        let tokio = runner
            .pool_link()
            .and_then(|link| link.0.config.tokio.clone());
        #[cfg(all(feature = "tokio", loom))]
        let tokio = None;
        Arc::new_cyclic(|me| FutureTask {
            state: AtomicU8::new(SCHEDULED),
            runner,
            slot,
            core: CellCore::new(CELL_PENDING),
            me: me.clone(),
            busy_ns: StdAtomicU64::new(0),
            posted_from,
            #[cfg(feature = "tokio")]
            tokio,
        })
    }

    /// Polls the future once, inside the pool's tokio runtime if it has one.
    fn poll_slot(&self, cx: &mut Context<'_>) -> Result<Poll<S::Output>, Payload> {
        #[cfg(feature = "tokio")]
        let _runtime = self.tokio.as_ref().map(tokio::runtime::Handle::enter);
        self.slot.poll_once(cx)
    }

    /// Posts the first poll. Refused: hands back what was never polled.
    #[track_caller]
    pub(crate) fn start(self: Arc<Self>) -> Result<TaskHandle<S::Output>, PostError<S::Unstarted>> {
        let job = PollJob(Some(Arc::clone(&self)));
        match self.runner.post_task(move || job.run()) {
            Ok(()) => {
                let link = self.runner.pool_link();
                Ok(TaskHandle::from_cell(self).for_pool(link))
            }
            Err(refused) => Err(refused.map(|job| {
                let unstarted = self
                    .slot
                    .take_unstarted()
                    .expect("a refused first post leaves the future unpolled");
                drop(job); // gives up the duty: `DONE`, the (unobserved) handle resolves
                unstarted
            })),
        }
    }

    /// One CAS step of a transition computed from the current state; returns the state it
    /// replaced. Always a read-modify-write, also when `f` changes nothing (see the module doc).
    fn transition(&self, f: impl Fn(u8) -> u8) -> u8 {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            match self
                .state
                .compare_exchange(cur, f(cur), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(prev) => return prev,
                Err(now) => cur = now,
            }
        }
    }

    /// Posts a poll task (the caller holds the duty: the phase is `SCHEDULED`).
    fn schedule(self: &Arc<Self>) {
        let job = PollJob(Some(Arc::clone(self)));
        if let Err(refused) = self.runner.post_task(move || job.run()) {
            // Dropping the refused job gives up the duty (see `PollJob`).
            drop(refused);
        }
    }

    /// A wake-up (from any thread).
    fn notify(self: &Arc<Self>) {
        let prev = self.transition(|s| match s & PHASE {
            IDLE => SCHEDULED | (s & CANCELLED),
            RUNNING => NOTIFIED | (s & CANCELLED),
            _ => s,
        });
        if prev & PHASE == IDLE {
            self.schedule();
        }
    }

    /// The poll task: poll once, or drop the future if it was cancelled.
    fn run_poll(self: Arc<Self>) {
        let prev = self.transition(|s| {
            debug_assert_eq!(s & PHASE, SCHEDULED, "a poll task runs only when scheduled");
            if s & CANCELLED != 0 {
                DONE | CANCELLED
            } else {
                RUNNING
            }
        });
        if prev & CANCELLED != 0 {
            self.finish(Err(TaskError::cancelled()));
            return;
        }
        // The handle reports `Running` from the first poll on (only the poller writes the
        // cell's state before the end).
        if self.core.state.load(Ordering::Acquire) == CELL_PENDING {
            self.core.state.store(CELL_RUNNING, Ordering::Release);
        }
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        let t0 = Instant::now();
        let outcome = self.poll_slot(&mut cx);
        self.busy_ns.fetch_add(
            u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        drop(waker);
        match outcome {
            Ok(Poll::Pending) => {
                let prev = self.transition(|s| match (s & PHASE, s & CANCELLED != 0) {
                    (_, true) => DONE | CANCELLED,
                    (RUNNING, false) => IDLE,
                    (NOTIFIED, false) => SCHEDULED,
                    _ => unreachable!("the poller owns the phase"),
                });
                if prev & CANCELLED != 0 {
                    self.finish(Err(TaskError::cancelled()));
                } else if prev & PHASE == NOTIFIED {
                    self.schedule();
                }
            }
            Ok(Poll::Ready(v)) => {
                let prev = self.state.swap(DONE, Ordering::AcqRel);
                if prev & CANCELLED != 0 {
                    // cancel() returned true before this value existed: it is not the result.
                    drop_quietly(v);
                    self.finish(Err(TaskError::cancelled()));
                } else {
                    self.finish(Ok(v));
                }
            }
            Err(payload) => {
                let prev = self.state.swap(DONE, Ordering::AcqRel);
                let payload = with_tokio_advice(payload);
                // Reported as the poll task's own panic (its `PanicPolicy`, the pool's panic
                // handler) before anyone can hear of it through the handle.
                report_task_panic(payload.message(), self.posted_from);
                let result = if prev & CANCELLED != 0 {
                    drop(payload);
                    Err(TaskError::cancelled())
                } else {
                    Err(TaskError::from_panic(payload))
                };
                self.finish(result);
            }
        }
    }

    /// The poll task was dropped unrun: give up the duty.
    fn abandon(&self) {
        let prev = self.state.swap(DONE, Ordering::AcqRel);
        debug_assert_eq!(
            prev & PHASE,
            SCHEDULED,
            "only a scheduled task has a poll job"
        );
        self.finish(Err(if prev & CANCELLED != 0 {
            TaskError::cancelled()
        } else {
            TaskError::not_run()
        }));
    }

    /// After `DONE`: drops the future, then resolves the handle (so a joiner sees the drop's
    /// effects).
    fn finish(&self, result: Result<S::Output, TaskError>) {
        self.slot.drop_future();
        // Total poll time, for a future that ran to a value or a panic (as `duration` reports
        // the run time of a task; `None` for one that was cancelled or never ran).
        let ran = match &result {
            Ok(_) => true,
            Err(e) => e.is_panic(),
        };
        let busy = ran
            .then(|| Duration::from_nanos(self.busy_ns.load(std::sync::atomic::Ordering::Relaxed)));
        self.core.finish(state_of(&result), result, busy);
    }
}

impl<R, S> Wake for FutureTask<R, S>
where
    R: PostTask + Send + Sync + 'static,
    S: FutureSlot,
{
    fn wake(self: Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify();
    }
}

impl<R, S> HandleCell<S::Output> for FutureTask<R, S>
where
    R: PostTask + Send + Sync + 'static,
    S: FutureSlot,
{
    fn core(&self) -> &CellCore<S::Output> {
        &self.core
    }

    fn cancel(&self) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CANCELLED != 0 || cur & PHASE == DONE {
                return false;
            }
            let next = if cur & PHASE == IDLE {
                SCHEDULED | CANCELLED
            } else {
                cur | CANCELLED
            };
            match self
                .state
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur & PHASE == IDLE {
            // This call took the duty: a poll task drops the future on the runner.
            let me = self
                .me
                .upgrade()
                .expect("the handle that cancels keeps the task alive");
            me.schedule();
        }
        true
    }
}

/// What tokio says when a future uses its timers or I/O outside a runtime.
const TOKIO_NO_REACTOR: [&str; 2] = [
    "no reactor running",
    "must be called from the context of a Tokio",
];

/// A panic of a poll: if it is tokio complaining that no runtime is running, the payload is
/// replaced by its message plus how to give the pool a runtime; any other payload is returned
/// as it is.
pub(crate) fn with_tokio_advice(payload: Payload) -> Payload {
    let message = payload.message();
    if !TOKIO_NO_REACTOR.iter().any(|m| message.contains(m)) {
        return payload;
    }
    let advised = format!(
        "{message} (taskrunner: this future was polled outside a tokio runtime; to use tokio's \
         timers and I/O in post_future, build the pool with the `tokio` feature and \
         ThreadPoolBuilder::tokio_handle(..), and every poll runs inside that runtime)"
    );
    drop(payload);
    Payload::new(Box::new(advised))
}

// ---- the API --------------------------------------------------------------------------------

/// Polls `fut` as tasks of `runner` and returns a handle to its output: the body of
/// [`PostTask::post_future`], which documents the semantics. Each poll is one task posted to
/// `runner`; a wake-up posts the next one.
#[track_caller]
pub(crate) fn spawn_future<R, F>(runner: &R, fut: F) -> Result<TaskHandle<F::Output>, PostError<F>>
where
    R: PostTask + Clone + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    FutureTask::new(runner.clone(), SendSlot::new(fut)).start()
}

impl SingleThreadTaskRunner {
    /// Runs a future that need not be `Send` (it may hold an `Rc` or a `RefCell` across an
    /// await) on this runner's dedicated thread. `make` is sent to the thread and called there
    /// at the first poll; the future is then only ever polled and dropped on that thread (it
    /// lives in the thread's own storage; the waker, which any thread may use, carries only an
    /// id). Only the output must be `Send`.
    ///
    /// Semantics as [`PostTask::post_future`], except where the future is dropped
    /// when that cannot happen on the thread (a wake-up refused after shutdown, a cancel whose
    /// task is refused): the handle resolves at once and the future is dropped when the thread
    /// exits. A refused first post hands `make` back.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let first = st.post_task_with_result(|| 1).unwrap();
    /// let h = st
    ///     .post_local_future(move || async move {
    ///         let log = Rc::new(RefCell::new(vec![0])); // not Send
    ///         let v = first.await.unwrap(); // held across an await
    ///         log.borrow_mut().push(v);
    ///         let total: i32 = log.borrow().iter().sum();
    ///         total
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post_local_future<M, Fut>(
        &self,
        make: M,
    ) -> Result<TaskHandle<Fut::Output>, PostError<M>>
    where
        M: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        FutureTask::new(self.clone(), LocalSlot::new(make)).start()
    }
}

impl ThreadPool {
    /// Runs `fut` on the pool with `traits`: each poll is a one-off task with those traits and
    /// two polls never run at once. As [`PostTask::post_future`].
    ///
    /// ```
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskPriority};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let h = pool
    ///     .post_future(TaskTraits::new().priority(TaskPriority::BestEffort), async { 6 * 7 })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn post_future<F>(
        &self,
        traits: TaskTraits,
        fut: F,
    ) -> Result<TaskHandle<F::Output>, PostError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_future(&self.create_task_runner(traits), fut)
    }
}
