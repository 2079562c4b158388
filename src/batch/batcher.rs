//! `Batcher`: the open batch, its three closing triggers, and the handles of its requests.

use std::collections::HashSet;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::deadline::Deadline;
use crate::engine::{DelayId, Destination, Engine, PostDest, Sequence, Task};
use crate::handle::{Promise, TaskHandle};
use crate::runner::PoolLink;
use crate::sync::semaphore::Semaphore;
// The batcher's own state is behind std's `Arc` even under loom (its methods take
// `self: &Arc<Self>`, which loom's `Arc` does not support); the pool's types keep the shim's.
use std::sync::Arc;

use crate::base::shim::{Arc as SyncArc, Mutex};
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::base::unwind::drop_quietly;

use super::builder::BatcherBuilder;
use super::dispatch::Dispatcher;
use super::place::Place;
use super::stats::{BatchStats, Closed, Counters};

/// Gathers the requests that many tasks make into batches, hands each batch to one dispatcher
/// call (a database `WHERE id IN (...)`, a bulk RPC), and routes response `i` back to request
/// `i`. Tasks run their CPU phase, every request
/// made meanwhile joins the open batch, and the batch goes out when that work goes idle.
///
/// Build one with [`Batcher::builder`]; cloning is cheap and shares the batcher. `Send` and
/// `Sync` when requests and responses are `Send`.
///
/// # When a batch is dispatched
///
/// [`call`](Self::call) adds a request to the **open batch** and returns a [`TaskHandle`]
/// (`.await` it in a `post_future` task, or `join` it). The batch is closed, and then
/// dispatched, exactly once, at the first of these triggers:
///
/// 1. **Full**: the request that brings it to
///    [`max_batch_size`](BatcherBuilder::max_batch_size) closes it, on the caller's thread.
/// 2. **Idle** (unless [`flush_when_idle(false)`](BatcherBuilder::flush_when_idle)): the
///    submitting work has gone idle. When a batch's first request arrives, a flush task is
///    posted to the batcher's pool at [`TaskPriority::BestEffort`](crate::TaskPriority). The
///    scheduler gives a worker a best-effort task only when no `UserVisible` or
///    `UserBlocking` task is queued (and a best-effort slot is free), so the flush runs once
///    every higher-priority task queued before it *or while it waited* has been taken by a
///    worker. It then closes the batch if two more things hold, and is otherwise parked and
///    posted again as soon as they do:
///    * every **sequence** that made a request to the batch has run the tasks that were
///      queued on it when it made its latest one. A sequence that a worker is running is not
///      in the pool's queue, so its backlog would be invisible to the flush: each request from
///      a sequenced task leaves a marker task at the back of its sequence (one per sequence
///      and batch), and the flush waits for the markers;
///    * no **delivery** of this batcher is under way: completing a batch wakes its tasks one
///      by one, and idle workers may take each wake-up's poll before the next one is posted,
///      so the queue looks empty in between; those wake-ups are the next CPU phase.
///
///    What this rule does not see, precisely:
///    * a **parallel** (unsequenced) task still *running* on another worker when the flush
///      runs: its requests go to the next batch;
///    * callers that themselves run at `BestEffort` are ordered with the flush by posting time
///      (FIFO within a priority): the flush waits for the best-effort work queued before it,
///      not for what is queued after it;
///    * work posted from **outside** the pool: callers on plain threads find the pool idle,
///      and so do tasks that a plain thread posts one at a time while idle workers run them;
///      batches then close early. Rely on `max_batch_size` and `max_wait` there (turn the flush
///      off), or start the tasks while the pool is busy;
///    * a sequenced task that **blocks** on a request's handle (`join`) instead of awaiting it
///      keeps its sequence running, so its marker cannot run: that batch closes by size or
///      `max_wait` only, never by this rule (so do not combine it with no time limit);
///    * under sustained higher-priority load the flush may never run (priorities do not age):
///      `max_wait` bounds the wait.
/// 3. **Max wait**: [`max_wait`](BatcherBuilder::max_wait) after its first request (pool
///    clock), a timer on the delay thread closes it, even when every worker is busy.
///
/// Every batch has an id; each trigger is armed for one id and closes the batch only if it is
/// still the open one (under the batch lock), so a batch is closed exactly once and the other
/// triggers do nothing (the timer is cancelled). [`Batcher::flush`] closes it explicitly.
///
/// A closed batch waits for one of [`max_in_flight`](BatcherBuilder::max_in_flight) slots
/// (default 128) without holding a worker ([`Semaphore::acquire_then`](crate::sync::Semaphore)),
/// then runs as one dispatch task: a blocking dispatcher as a may-block task inside
/// [`blocking`](crate::blocking), an async one as a `post_future` future. Requests cancelled
/// through their handle before that moment are left out. Response `i` goes to request `i`.
///
/// # Failures
///
/// A dispatcher error, a dispatcher panic, or a wrong number of responses
/// ([`BatchError::WrongResponseCount`](crate::batch::BatchError::WrongResponseCount)) reaches every
/// request of that batch, and only of that batch: the error as
/// [`TaskError::from_error`](crate::TaskError::from_error) with one shared original (every
/// request's [`downcast_ref`](crate::TaskError::downcast_ref) sees the same value), a panic as a
/// panicked error that keeps the payload ([`TaskError::into_panic`](crate::TaskError::into_panic)).
/// A dispatcher's panic is reported exactly like a task's, before any request hears of it: the
/// dispatch task's [`PanicPolicy`](crate::PanicPolicy) applies (dispatching on a `Poison`
/// sequence poisons it), then tracing and the pool's panic handler, with the line that built the
/// batcher as `posted_from`. [`timeout`](BatcherBuilder::timeout) bounds an unanswered dispatch. At
/// shutdown a closed or open batch that can no longer be dispatched is dropped, and its
/// requests resolve as not run; so are those of a dispatch future dropped unfinished (the
/// runner drops a future that returned `Pending` without keeping its waker). None stays
/// pending.
///
/// # Guarantees
///
/// * Nothing waits forever on the batcher: requests can be cancelled until dispatched and
///   joined with a timeout, and a dispatch can be given a deadline; a stuck dispatcher holds
///   one in-flight slot, never the pool.
/// * Responses never cross: every batch owns its requests' promises, so nothing is routed by
///   position across batches or batchers.
/// * A malformed answer (a wrong number of responses) is an error for that batch's requests,
///   not a panic.
/// * Each dispatch is its own task, bounded by `max_in_flight`: the dispatcher needs no
///   concurrency discipline of its own.
/// * Durations mean what they say: a `max_wait` or `timeout` too large to represent as a point
///   in time (`Duration::MAX`) is no limit, and never panics.
///
/// ```
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// use taskrunner::batch::Batcher;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let db = Batcher::builder()
///     .pool(&pool)
///     .build(|ids: Vec<u32>| Ok::<_, String>(ids.iter().map(|id| id * 100).collect()));
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let tasks: Vec<_> = (0..50)
///     .map(|i| {
///         let db = db.clone();
///         seq.post_future(async move { db.call(i).await.unwrap() + db.call(i + 1).await.unwrap() })
///             .unwrap()
///     })
///     .collect();
/// for (i, t) in tasks.into_iter().enumerate() {
///     assert_eq!(t.join().unwrap(), 200 * i as u32 + 100);
/// }
/// assert!(db.dispatches() < 100); // 100 requests, far fewer dispatcher calls
/// ```
pub struct Batcher<Req: Send + 'static, Resp: Send + 'static> {
    shared: Arc<Shared<Req, Resp>>,
}

/// One request waiting in a batch.
pub(crate) struct Entry<Req, Resp: Send + 'static> {
    pub(crate) req: Req,
    pub(crate) promise: Promise<Resp>,
    /// This request's attempt (1 for the first; more once the dispatcher sent it back).
    pub(crate) attempt: u32,
}

/// The batch being filled. `id` names it: a trigger armed for batch `id` closes it only if it
/// is still the open one, so each batch is closed (and dispatched) exactly once.
struct Open<Req, Resp: Send + 'static> {
    id: u64,
    entries: Vec<Entry<Req, Resp>>,
    /// The max-wait timer of this batch, cancelled when another trigger closes it first.
    timer: Option<DelayId>,
    /// Deliveries in progress: their wake-ups are posting the next CPU phase. Batcher-wide
    /// (a delivery of an earlier batch feeds this one).
    resuming: usize,
    /// Sequences that made a request to this batch and whose marker has not run yet (by the
    /// address of their `Sequence`, alive while the marker is queued on it).
    marked: HashSet<usize>,
    /// The idle flush of this batch ran while `resuming > 0` or `marked` was not empty: it is
    /// posted again once both clear.
    flush_parked: bool,
}

impl<Req, Resp: Send + 'static> Open<Req, Resp> {
    /// Closes the open batch: the next request opens batch `id + 1`.
    fn close(&mut self) -> (Vec<Entry<Req, Resp>>, Option<DelayId>) {
        self.id += 1;
        self.marked.clear();
        self.flush_parked = false;
        (std::mem::take(&mut self.entries), self.timer.take())
    }

    /// The parked idle flush may run now: returns the batch to flush (the caller posts it).
    fn unpark_flush(&mut self) -> Option<u64> {
        if self.flush_parked && self.resuming == 0 && self.marked.is_empty() {
            self.flush_parked = false;
            (!self.entries.is_empty()).then_some(self.id)
        } else {
            None
        }
    }
}

/// The configuration fixed at build time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) max_batch_size: usize,
    /// Measured from a batch's first request; a duration too large to represent means no
    /// limit (see [`add_timer`]).
    pub(crate) max_wait: Duration,
    pub(crate) flush_when_idle: bool,
    /// `None`, or a duration too large to represent: dispatches are not bounded.
    pub(crate) timeout: Option<Duration>,
}

/// Runs `f` on the delay manager's thread at `deadline` (pool clock), like
/// `Engine::add_timer_callback`, but for any deadline: [`Deadline::NEVER`] (a duration too large
/// to represent) is kept at the end of time, which no clock reaches, so the entry never fires
/// and shutdown still drops it (its closure's drop then does the clean-up). `None` if the
/// delay manager has stopped (shutdown); `f` is then dropped.
pub(crate) fn add_timer(
    pool: &SyncArc<Engine>,
    delay: Duration,
    f: Box<dyn FnOnce() + Send>,
    posted_from: &'static Location<'static>,
) -> Option<DelayId> {
    if pool.tracker.shutdown_started() {
        drop_quietly(f);
        return None;
    }
    let run_at = Deadline::after(pool.clock.now(), delay);
    let task = Task::new(f, posted_from);
    match Engine::add_delayed(pool, run_at, task, Destination::Inline) {
        Ok(id) => Some(id),
        Err(task) => {
            drop_quietly(task);
            None
        }
    }
}

/// Everything the batcher's clones, triggers and dispatch tasks share.
pub(crate) struct Shared<Req, Resp: Send + 'static> {
    pub(crate) config: Config,
    pub(crate) place: Place,
    pub(crate) dispatcher: Dispatcher<Req, Resp>,
    /// `max_in_flight` dispatcher calls at once; a closed batch waits for a permit here
    /// (`acquire_then`: no worker is held while it waits).
    pub(crate) limit: Semaphore,
    open: Mutex<Open<Req, Resp>>,
    pub(crate) counters: Arc<Counters>,
    /// Where the batcher was built: reported with a dispatcher's panic.
    pub(crate) built_at: &'static Location<'static>,
    /// How often, and after what wait, a request the dispatcher sends back
    /// (`Answer::Retry`) is tried again; `None`: never (a batcher built without retries).
    pub(crate) retry: Option<crate::retry::RetryPolicy>,
}

impl<Req, Resp> Shared<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    pub(crate) fn new(
        config: Config,
        place: Place,
        dispatcher: Dispatcher<Req, Resp>,
        max_in_flight: usize,
        built_at: &'static Location<'static>,
    ) -> Self {
        Shared {
            config,
            place,
            dispatcher,
            limit: Semaphore::new(max_in_flight),
            open: Mutex::new(Open {
                id: 0,
                entries: Vec::new(),
                timer: None,
                resuming: 0,
                marked: HashSet::new(),
                flush_parked: false,
            }),
            counters: Arc::new(Counters::new()),
            built_at,
            retry: None,
        }
    }

    /// The same batcher state, sending requests the dispatcher answers with `Answer::Retry`
    /// back for another attempt under `policy`.
    pub(crate) fn with_retry(mut self, policy: crate::retry::RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Adds `entry` to the open batch (closing and dispatching it if it is full, arming its
    /// triggers if it is the first request). `seq_key`: the calling sequence, marked for the
    /// idle flush (see [`mark`](Self::mark)).
    pub(crate) fn add(
        self: &Arc<Self>,
        entry: Entry<Req, Resp>,
        seq_key: Option<usize>,
        called_from: &'static Location<'static>,
    ) {
        enum Next<Req: Send + 'static, Resp: Send + 'static> {
            Nothing,
            Arm(u64),
            Dispatch(Vec<Entry<Req, Resp>>, Option<DelayId>),
        }
        let (next, mark) = {
            let mut open = self.open.lock();
            open.entries.push(entry);
            if open.entries.len() >= self.config.max_batch_size {
                let (entries, timer) = open.close();
                (Next::Dispatch(entries, timer), None)
            } else {
                let mark = seq_key
                    .filter(|&k| open.marked.insert(k))
                    .map(|k| (open.id, k));
                let next = if open.entries.len() == 1 {
                    Next::Arm(open.id)
                } else {
                    Next::Nothing
                };
                (next, mark)
            }
        };
        if let Some((id, key)) = mark {
            match crate::engine::current_sequence() {
                Some((seq, pool)) => self.mark(id, key, seq, pool, called_from),
                None => self.unmark(id, key),
            }
        }
        match next {
            Next::Nothing => {}
            Next::Arm(id) => self.arm(id, called_from),
            Next::Dispatch(entries, timer) => self.closed(entries, timer, Closed::Full),
        }
    }

    pub(crate) fn pool(&self) -> &SyncArc<Engine> {
        self.place.inner()
    }

    /// Closes batch `id` if it is still the open one, then dispatches it. The idle flush is
    /// parked while the submitting work is not done (see [`resuming`](Self::resuming) and
    /// [`mark`](Self::mark)).
    fn close(self: &Arc<Self>, id: u64, why: Closed) {
        let (entries, timer) = {
            let mut open = self.open.lock();
            if open.id != id || open.entries.is_empty() {
                return; // another trigger closed it first
            }
            if why == Closed::Idle && (open.resuming > 0 || !open.marked.is_empty()) {
                open.flush_parked = true;
                return;
            }
            open.close()
        };
        self.closed(entries, timer, why);
    }

    /// Marks a delivery in progress until the returned guard drops. Completing a batch's
    /// promises wakes its tasks one by one, and each wake-up posts a poll; idle workers take
    /// those polls as fast as they come, so the queue can look empty between two wake-ups and
    /// an idle flush would close the next batch after its first few requests. The wake-ups
    /// are the next CPU phase being posted, so the flush waits for them: one that runs
    /// meanwhile is parked, and posted again (behind the polls) when the last delivery ends.
    pub(crate) fn resuming(self: &Arc<Self>) -> Resuming<Req, Resp> {
        self.open.lock().resuming += 1;
        Resuming(Arc::clone(self))
    }

    /// A request of batch `id` came from a task of sequence `seq`: posts a marker to the back
    /// of that sequence. A sequence that a worker is running is not in the pool's queue, so
    /// the tasks still queued behind the running one are invisible to the best-effort flush;
    /// the marker runs after them, and the flush is parked until every marked sequence's
    /// marker has run. `called_from`: the request's `call` site.
    fn mark(
        self: &Arc<Self>,
        id: u64,
        key: usize,
        seq: SyncArc<Sequence>,
        pool: SyncArc<Engine>,
        called_from: &'static Location<'static>,
    ) {
        let marker = Marker {
            shared: Some(Arc::clone(self)),
            id,
            key,
        };
        // Refused (shutdown, a poisoned sequence): the dropped marker unmarks.
        let _ = Engine::post(
            &pool,
            PostDest::Sequence(&seq),
            Duration::ZERO,
            move || drop(marker),
            called_from,
        );
    }

    fn unmark(self: &Arc<Self>, id: u64, key: usize) {
        let flush = {
            let mut open = self.open.lock();
            if open.id != id {
                return;
            }
            open.marked.remove(&key);
            open.unpark_flush()
        };
        if let Some(id) = flush {
            self.post_flush(id, self.built_at);
        }
    }

    /// Posts the idle flush of batch `id` (best effort: the scheduler runs it only when no
    /// higher-priority work is queued). Refused (shutdown): the closure is dropped, and the
    /// trigger closes the batch, whose dispatch is refused in turn, so its requests resolve
    /// as not run.
    fn post_flush(self: &Arc<Self>, id: u64, posted_from: &'static Location<'static>) {
        let trigger = Trigger::new(self, id, Closed::Idle);
        let _ = Engine::post(
            self.pool(),
            PostDest::Parallel(TaskTraits::new().priority(TaskPriority::BestEffort)),
            Duration::ZERO,
            move || trigger.fire(),
            posted_from,
        );
    }

    /// A batch was taken out of `open` (the lock is released): cancel its pending timer and
    /// send it on its way.
    fn closed(
        self: &Arc<Self>,
        entries: Vec<Entry<Req, Resp>>,
        timer: Option<DelayId>,
        why: Closed,
    ) {
        if let Some(t) = timer {
            // The entry's closure holds a trigger for the batch just closed: dropping it finds
            // a newer open id and does nothing. Dropped here, outside every lock.
            drop_quietly(self.pool().delay.cancel(t));
        }
        self.counters.closed(why);
        let this = Arc::clone(self);
        self.limit
            .acquire_then(move |permit| Shared::start(this, entries, permit));
    }

    /// Arms the idle flush and the max-wait timer of batch `id` (just opened by a request
    /// made at `called_from`).
    fn arm(self: &Arc<Self>, id: u64, called_from: &'static Location<'static>) {
        let pool = self.pool();
        if self.config.flush_when_idle {
            self.post_flush(id, called_from);
        }
        {
            // Without a time limit the timer is still set, at the end of time (never reached):
            // shutdown drops pending timers, and the dropped trigger resolves the open batch's
            // requests.
            let trigger = Trigger::new(self, id, Closed::MaxWait);
            // On the delay thread: fires on time even when every worker is busy.
            let timer = add_timer(
                pool,
                self.config.max_wait,
                Box::new(move || trigger.fire()),
                called_from,
            );
            if let Some(t) = timer {
                let mut open = self.open.lock();
                if open.id == id {
                    open.timer = Some(t);
                } else {
                    drop(open);
                    drop_quietly(pool.delay.cancel(t));
                }
            }
        }
    }
}

/// A delivery in progress (see [`Shared::resuming`]); the last one to end re-posts a parked
/// flush.
pub(crate) struct Resuming<Req: Send + 'static, Resp: Send + 'static>(Arc<Shared<Req, Resp>>);

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Resuming<Req, Resp> {
    fn drop(&mut self) {
        let flush = {
            let mut open = self.0.open.lock();
            open.resuming -= 1;
            open.unpark_flush()
        };
        if let Some(id) = flush {
            self.0.post_flush(id, self.0.built_at);
        }
    }
}

/// The marker a sequenced caller's request leaves at the back of its sequence (see
/// [`Shared::mark`]): run or dropped, it unmarks the sequence.
struct Marker<Req: Send + 'static, Resp: Send + 'static> {
    shared: Option<Arc<Shared<Req, Resp>>>,
    id: u64,
    key: usize,
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Marker<Req, Resp> {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            s.unmark(self.id, self.key);
        }
    }
}

/// A closing trigger for one batch, posted as the idle flush or set as the max-wait timer.
/// Dropped without firing (shutdown dropped the task or the timer, or the pool refused it),
/// it closes its batch anyway: the dispatch is then refused too (unless the dispatch traits
/// are `BlockShutdown`) and the requests resolve as not run, instead of waiting forever.
struct Trigger<Req: Send + 'static, Resp: Send + 'static> {
    shared: Option<Arc<Shared<Req, Resp>>>,
    id: u64,
    why: Closed,
}

impl<Req: Send + 'static, Resp: Send + 'static> Trigger<Req, Resp> {
    fn new(shared: &Arc<Shared<Req, Resp>>, id: u64, why: Closed) -> Self {
        Trigger {
            shared: Some(Arc::clone(shared)),
            id,
            why,
        }
    }

    fn fire(mut self) {
        if let Some(s) = self.shared.take() {
            s.close(self.id, self.why);
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Trigger<Req, Resp> {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            s.close(self.id, Closed::Dropped);
        }
    }
}

impl Batcher<(), ()> {
    /// A builder with the defaults (see [`BatcherBuilder`]).
    ///
    /// ```
    /// let b = taskrunner::batch::Batcher::builder()
    ///     .build(|reqs: Vec<i32>| Ok::<_, std::convert::Infallible>(reqs.iter().map(|x| -x).collect()));
    /// assert_eq!(b.call(5).join().unwrap(), -5);
    /// ```
    pub fn builder() -> BatcherBuilder {
        BatcherBuilder::new()
    }
}

impl<Req, Resp> Batcher<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    pub(crate) fn from_shared(shared: Shared<Req, Resp>) -> Self {
        Batcher {
            shared: Arc::new(shared),
        }
    }

    /// Adds `req` to the open batch and returns a handle to its response. Never blocks and
    /// never runs the dispatcher on this thread (a full batch is posted).
    ///
    /// The handle resolves to the response, or to the batch's error (see [`Batcher`]). It
    /// resolves as cancelled if [`TaskHandle::cancel`] is called before the batch is
    /// dispatched (the request is then left out of the batch); once dispatched, a request
    /// runs to the end like a started task. If the pool shuts down first, it resolves as not
    /// run. It never stays pending because of the batcher: a dispatcher that never answers
    /// is bounded by [`BatcherBuilder::timeout`].
    ///
    /// ```
    /// use taskrunner::{PostTask, ThreadPool};
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).build(|xs: Vec<u64>| Ok::<_, String>(xs.iter().map(|x| x * x).collect()));
    /// let squares = pool.post_future(Default::default(), {
    ///     let b = b.clone();
    ///     async move { b.call(3).await.unwrap() + b.call(4).await.unwrap() }
    /// }).unwrap();
    /// assert_eq!(squares.join().unwrap(), 25);
    /// ```
    #[track_caller]
    pub fn call(&self, req: Req) -> TaskHandle<Resp> {
        let called_from = Location::caller();
        let s = &self.shared;
        s.counters
            .requests
            .fetch_add(1, crate::base::shim::Ordering::Relaxed);
        let (promise, handle) = Promise::new(None);
        let handle = handle.for_pool(Some(PoolLink(SyncArc::clone(s.pool()))));
        // The caller's sequence, if it is a sequenced task (see `Shared::mark`).
        let seq_key = if s.config.flush_when_idle {
            crate::engine::running_sequence_ref(|q| q as *const Sequence as usize)
        } else {
            None
        };
        s.add(
            Entry {
                req,
                promise,
                attempt: 1,
            },
            seq_key,
            called_from,
        );
        handle
    }

    /// Closes the open batch now and dispatches it (if it has any request), without waiting
    /// for a trigger: for a caller that knows no more requests are coming.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .flush_when_idle(false)
    ///     .max_wait(std::time::Duration::MAX) // only size or flush() closes a batch
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// let h = b.call(1);
    /// b.flush();
    /// assert_eq!(h.join().unwrap(), 1);
    /// assert_eq!(b.stats().closed_explicitly, 1);
    /// ```
    pub fn flush(&self) {
        let id = self.shared.open.lock().id;
        self.shared.close(id, Closed::Explicit);
    }

    /// The counters so far.
    ///
    /// See [`BatchStats`] for an example.
    pub fn stats(&self) -> BatchStats {
        self.shared.counters.snapshot()
    }

    /// How many times the dispatcher has been called.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.dispatches(), 0);
    /// b.call(1).join().unwrap();
    /// assert_eq!(b.dispatches(), 1);
    /// ```
    pub fn dispatches(&self) -> u64 {
        self.shared.counters.dispatches()
    }

    /// The sizes of the batches handed to the dispatcher, oldest first (the last 4096).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .max_batch_size(2)
    ///     .flush_when_idle(false) // called from a plain thread: close by size only
    ///     .max_wait(std::time::Duration::MAX)
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// let hs: Vec<_> = (0..4).map(|i| b.call(i)).collect();
    /// for h in hs { h.join().unwrap(); }
    /// assert_eq!(b.batch_sizes(), vec![2, 2]);
    /// ```
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.shared.counters.sizes()
    }

    /// Requests waiting in the open batch (not yet closed).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .flush_when_idle(false)
    ///     .max_wait(std::time::Duration::MAX)
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// let _h = b.call(1);
    /// assert_eq!(b.pending(), 1);
    /// b.flush();
    /// assert_eq!(b.pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.shared.open.lock().entries.len()
    }

    /// Dispatcher calls running now (at most `max_in_flight`).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.limit.capacity() - self.shared.limit.available()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Batcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> fmt::Debug for Batcher<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Batcher")
            .field("max_batch_size", &s.config.max_batch_size)
            .field("max_wait", &s.config.max_wait)
            .field("flush_when_idle", &s.config.flush_when_idle)
            .field("max_in_flight", &s.limit.capacity())
            .field("pending", &s.open.lock().entries.len())
            .field("dispatches", &s.counters.dispatches())
            .finish_non_exhaustive()
    }
}
