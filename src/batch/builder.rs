//! `BatcherBuilder`: batch size, waits, in-flight limit, where dispatches run, the dispatcher.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::base::traits::TaskTraits;
use crate::handle::TaskError;
use crate::pool::ThreadPool;
use crate::retry::RetryPolicy;

use super::batcher::{Batcher, Config, Shared};
use super::dispatch::{Answer, BoxFuture, Dispatcher, Outcome};
use super::place::sealed::Sealed;
use super::place::{DispatchRunner, Place};

/// The default [`max_batch_size`](BatcherBuilder::max_batch_size).
const DEFAULT_MAX_BATCH: usize = 256;
/// The default [`max_wait`](BatcherBuilder::max_wait).
const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1);
/// The default [`max_in_flight`](BatcherBuilder::max_in_flight).
const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Configures a [`Batcher`]; finish with [`build`](Self::build) (a blocking dispatcher) or
/// [`build_async`](Self::build_async) (a dispatcher returning a future).
///
/// Defaults: `max_batch_size` 256, `max_wait` 1 ms, `max_in_flight` 128, the idle flush on,
/// no dispatch timeout, dispatches on the global pool with [`TaskTraits::default()`] (plus
/// may-block for [`build`](Self::build)).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::ThreadPool;
/// use taskrunner::batch::Batcher;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let b = Batcher::builder()
///     .pool(&pool)
///     .max_batch_size(64)
///     .max_wait(Duration::from_millis(2))
///     .max_in_flight(4)
///     .timeout(Duration::from_secs(5))
///     .build(|keys: Vec<String>| Ok::<_, std::io::Error>(keys.iter().map(|k| k.len()).collect()));
/// assert_eq!(b.call("four".to_owned()).join().unwrap(), 4);
/// ```
pub struct BatcherBuilder {
    max_batch_size: usize,
    max_wait: Duration,
    max_in_flight: usize,
    flush_when_idle: bool,
    timeout: Option<Duration>,
    pool: Option<ThreadPool>,
    traits: TaskTraits,
    place: Option<Place>,
}

impl Default for BatcherBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatcherBuilder {
    /// A builder with the defaults (the same as [`Batcher::builder`]).
    ///
    /// ```
    /// let b = taskrunner::batch::BatcherBuilder::new().build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.call(9).join().unwrap(), 9);
    /// ```
    pub fn new() -> Self {
        BatcherBuilder {
            max_batch_size: DEFAULT_MAX_BATCH,
            max_wait: DEFAULT_MAX_WAIT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            flush_when_idle: true,
            timeout: None,
            pool: None,
            traits: TaskTraits::default(),
            place: None,
        }
    }

    /// The most requests in one batch (default 256): the request that fills a batch closes it
    /// and sends it at once. 1 disables batching. A request cancelled while its batch is open
    /// still counts until the batch is dispatched (it is left out then). Panics if `n` is 0.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).max_batch_size(1).build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// let hs: Vec<_> = (0..3).map(|i| b.call(i)).collect();
    /// for h in hs { h.join().unwrap(); }
    /// assert_eq!(b.dispatches(), 3);
    /// ```
    #[must_use]
    pub fn max_batch_size(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "BatcherBuilder::max_batch_size(0): a batch holds at least one request"
        );
        self.max_batch_size = n;
        self
    }

    /// The longest a request waits for its batch to close (default 1 ms): a batch is closed
    /// `d` after its first request even if it is not full and the pool is still busy, measured
    /// on the pool's clock (a mock clock in a `TestEnvironment`) by the delay thread, so it
    /// fires even when every worker is busy. `Duration::MAX`, or any duration too large to
    /// represent as a point in time, means **no time limit**: the batch then closes only when
    /// full, idle, or flushed. (An open batch still holds one pending timer entry, at the end of
    /// time, which no clock reaches, not even a `TestEnvironment`'s fast-forwards: it is there
    /// so that shutdown, which drops pending timers, resolves the batch's requests.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .flush_when_idle(false) // only the timer (or a full batch) closes a batch
    ///     .max_wait(Duration::from_millis(5))
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.call(1).join().unwrap(), 1);
    /// assert_eq!(b.stats().closed_max_wait, 1);
    /// ```
    #[must_use]
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// How many dispatcher calls may run at once (default 128). A closed batch
    /// beyond that waits for a running one to finish, in closing order, without holding a
    /// worker. Panics if `n` is 0.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).max_in_flight(1).build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.call(3).join().unwrap(), 3);
    /// ```
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "BatcherBuilder::max_in_flight(0): no batch could ever be dispatched"
        );
        self.max_in_flight = n;
        self
    }

    /// Whether a batch also closes when the submitting work goes idle (default `true`; see
    /// [`Batcher`] for the rule). Turn it off when the callers are not
    /// pool tasks (plain threads see an idle pool, so their batches would close almost at
    /// once): batches then close only when full, after `max_wait`, or on
    /// [`Batcher::flush`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .flush_when_idle(false)
    ///     .max_wait(Duration::from_millis(20))
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// let hs: Vec<_> = (0..5).map(|i| b.call(i)).collect(); // from a plain thread
    /// for h in hs { h.join().unwrap(); }
    /// assert_eq!(b.stats().closed_idle, 0);
    /// ```
    #[must_use]
    pub fn flush_when_idle(mut self, on: bool) -> Self {
        self.flush_when_idle = on;
        self
    }

    /// Bounds how long a dispatched batch may go unanswered (default: no bound). When `d`
    /// passes after the dispatcher was called, every request of the batch resolves with a
    /// deadline-exceeded error ([`TaskError::is_deadline_exceeded`]) and the late answer is
    /// dropped. The call itself keeps its in-flight slot until it returns: a stuck dispatcher
    /// still counts against `max_in_flight`, but never hangs its callers. `Duration::MAX` (or
    /// any duration too large to represent as a point in time) means no bound, as by default.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .timeout(Duration::from_millis(10))
    ///     .build(|xs: Vec<u8>| {
    ///         std::thread::sleep(Duration::from_millis(300)); // a server that does not answer in time
    ///         Ok::<_, String>(xs)
    ///     });
    /// assert!(b.call(1).join().unwrap_err().is_deadline_exceeded());
    ///
    /// let unbounded = Batcher::builder()
    ///     .pool(&pool)
    ///     .timeout(Duration::MAX) // no bound
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(unbounded.call(2).join().unwrap(), 2);
    /// ```
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Run the dispatches (and the idle flush) on `pool` instead of the global pool, as
    /// parallel tasks with the builder's [`traits`](Self::traits).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.call(2).join().unwrap(), 2);
    /// ```
    #[must_use]
    pub fn pool(mut self, pool: &ThreadPool) -> Self {
        self.pool = Some(pool.clone());
        self.place = None;
        self
    }

    /// The traits of the dispatch tasks on the pool (priority, shutdown behaviour). A
    /// blocking dispatcher ([`build`](Self::build)) always gets may-block and runs inside
    /// [`blocking`](crate::blocking), so the pool keeps its CPU workers while it waits.
    ///
    /// ```
    /// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .traits(TaskTraits::new().priority(TaskPriority::UserVisible))
    ///     .build(|xs: Vec<u8>| Ok::<_, String>(xs));
    /// assert_eq!(b.call(4).join().unwrap(), 4);
    /// ```
    #[must_use]
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }

    /// Run the dispatches on `runner` (a parallel runner, a sequence, a single-thread runner),
    /// with its traits; replaces [`pool`](Self::pool) and [`traits`](Self::traits). The idle
    /// flush and the timers use the runner's pool. A blocking dispatcher runs inside
    /// [`blocking`](crate::blocking) only if the runner was created with may-block.
    ///
    /// See [`DispatchRunner`] for an example.
    #[must_use]
    pub fn runner<R: DispatchRunner>(mut self, runner: R) -> Self {
        self.place = Some(Sealed::into_place(runner).0);
        self.pool = None;
        self
    }

    fn config(&self) -> Config {
        Config {
            max_batch_size: self.max_batch_size,
            max_wait: self.max_wait,
            flush_when_idle: self.flush_when_idle,
            timeout: self.timeout,
        }
    }

    fn place(&mut self, may_block: bool) -> Place {
        if let Some(p) = self.place.take() {
            return p;
        }
        let pool = match self.pool.take() {
            Some(p) => p,
            None => (*crate::pool::global::current()).clone(),
        };
        let traits = if may_block {
            self.traits.may_block(true)
        } else {
            self.traits
        };
        Place::Pool(pool, traits)
    }

    /// Builds a batcher whose dispatcher blocks: `dispatcher(batch)` returns one response per
    /// request, in order, or an error for the whole batch. Each call runs as one pool task
    /// (may-block, inside [`blocking`](crate::blocking)). The error reaches every request as
    /// [`TaskError::from_error`]: one shared original, so
    /// [`downcast_ref`](TaskError::downcast_ref) works on each.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .build(|_: Vec<u8>| Err::<Vec<u8>, _>(std::io::Error::other("database down")));
    /// let err = b.call(1).join().unwrap_err();
    /// assert!(err.is_failed());
    /// assert_eq!(err.downcast_ref::<std::io::Error>().unwrap().to_string(), "database down");
    /// ```
    #[track_caller]
    pub fn build<Req, Resp, E, D>(self, dispatcher: D) -> Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        D: Fn(Vec<Req>) -> Result<Vec<Resp>, E> + Send + Sync + 'static,
    {
        let d = Dispatcher::Sync(Box::new(move |reqs: Vec<Req>| -> Outcome<Req, Resp> {
            dispatcher(reqs)
                .map(|resps| resps.into_iter().map(Answer::Done).collect())
                .map_err(TaskError::from_error)
        }));
        self.assemble(d, None, Location::caller())
    }

    /// Builds a batcher whose blocking dispatcher answers each request on its own
    /// ([`Answer`]): a response, a failure of that request alone, or [`Answer::Retry`] with
    /// the request handed back, which then joins a later batch after `policy`'s wait
    /// ([`RetryPolicy::backoff`]), up to `policy.max_attempts` attempts in all; after the last
    /// one the request fails with [`BatchError::RetriesExhausted`](crate::batch::BatchError::RetriesExhausted).
    /// An error of the whole call (`Err`) still fails every request of the batch, without
    /// retries. A request sent back stays running (it can no longer be cancelled through its
    /// handle); at shutdown a request waiting to be sent again resolves as not run.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::{Answer, Batcher};
    /// use taskrunner::retry::RetryPolicy;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let b = Batcher::builder().pool(&pool).build_with_retry(
    ///     RetryPolicy::attempts(3).base_delay(Duration::from_millis(1)),
    ///     move |ids: Vec<u32>| {
    ///         let first_call = c.fetch_add(1, Ordering::SeqCst) == 0;
    ///         Ok::<_, String>(ids.into_iter().map(|id| {
    ///             // Id 2 is throttled on the first call only.
    ///             if id == 2 && first_call { Answer::Retry(id) } else { Answer::Done(id * 10) }
    ///         }).collect())
    ///     },
    /// );
    /// let handles: Vec<_> = (1..=3).map(|id| b.call(id)).collect();
    /// b.flush();
    /// let got: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(got, [10, 20, 30]);
    /// assert_eq!(b.stats().retried, 1);
    /// ```
    #[track_caller]
    pub fn build_with_retry<Req, Resp, E, D>(
        self,
        policy: RetryPolicy,
        dispatcher: D,
    ) -> Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        D: Fn(Vec<Req>) -> Result<Vec<Answer<Req, Resp>>, E> + Send + Sync + 'static,
    {
        let d = Dispatcher::Sync(Box::new(move |reqs: Vec<Req>| -> Outcome<Req, Resp> {
            dispatcher(reqs).map_err(TaskError::from_error)
        }));
        self.assemble(d, Some(policy), Location::caller())
    }

    /// Builds a batcher whose dispatcher is async: `dispatcher(batch)` returns a future of
    /// the responses, polled with `post_future` on the pool or runner (it must not block;
    /// use [`build`](Self::build) for a blocking client). Results and errors as for `build`.
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::Batcher;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder()
    ///     .pool(&pool)
    ///     .build_async(|xs: Vec<u32>| async move { Ok::<_, String>(xs.into_iter().map(|x| x + 1).collect()) });
    /// assert_eq!(b.call(41).join().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn build_async<Req, Resp, E, D, Fut>(self, dispatcher: D) -> Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        D: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send + 'static,
    {
        let d = Dispatcher::Async(Box::new(
            move |reqs: Vec<Req>| -> BoxFuture<Outcome<Req, Resp>> {
                let fut = dispatcher(reqs);
                Box::pin(async move {
                    fut.await
                        .map(|resps| resps.into_iter().map(Answer::Done).collect())
                        .map_err(TaskError::from_error)
                })
            },
        ));
        self.assemble(d, None, Location::caller())
    }

    /// [`build_with_retry`](Self::build_with_retry) for an async dispatcher (polled as for
    /// [`build_async`](Self::build_async)).
    ///
    /// ```
    /// use taskrunner::ThreadPool;
    /// use taskrunner::batch::{Answer, Batcher};
    /// use taskrunner::retry::RetryPolicy;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let b = Batcher::builder().pool(&pool).build_async_with_retry(
    ///     RetryPolicy::attempts(2).base_delay(std::time::Duration::ZERO),
    ///     |xs: Vec<u32>| async move {
    ///         Ok::<_, String>(xs.into_iter().map(|x| if x == 0 { Answer::Retry(x) } else { Answer::Done(x) }).collect())
    ///     },
    /// );
    /// assert_eq!(b.call(5).join().unwrap(), 5);
    /// let err = b.call(0).join().unwrap_err(); // asked for a retry every time
    /// assert_eq!(
    ///     err.downcast_ref::<taskrunner::batch::BatchError>(),
    ///     Some(&taskrunner::batch::BatchError::RetriesExhausted { attempts: 2 })
    /// );
    /// ```
    #[track_caller]
    pub fn build_async_with_retry<Req, Resp, E, D, Fut>(
        self,
        policy: RetryPolicy,
        dispatcher: D,
    ) -> Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        D: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Answer<Req, Resp>>, E>> + Send + 'static,
    {
        let d = Dispatcher::Async(Box::new(
            move |reqs: Vec<Req>| -> BoxFuture<Outcome<Req, Resp>> {
                let fut = dispatcher(reqs);
                Box::pin(async move { fut.await.map_err(TaskError::from_error) })
            },
        ));
        self.assemble(d, Some(policy), Location::caller())
    }

    /// The batcher of every `build` variant: its place (a blocking dispatcher's tasks may
    /// block), its configuration, and the retry policy of a retrying dispatcher.
    fn assemble<Req, Resp>(
        mut self,
        d: Dispatcher<Req, Resp>,
        retry: Option<RetryPolicy>,
        built_at: &'static Location<'static>,
    ) -> Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let config = self.config();
        let place = self.place(matches!(d, Dispatcher::Sync(_)));
        let shared = Shared::new(config, place, d, self.max_in_flight, built_at);
        Batcher::from_shared(match retry {
            Some(policy) => shared.with_retry(policy),
            None => shared,
        })
    }
}

impl fmt::Debug for BatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatcherBuilder")
            .field("max_batch_size", &self.max_batch_size)
            .field("max_wait", &self.max_wait)
            .field("max_in_flight", &self.max_in_flight)
            .field("flush_when_idle", &self.flush_when_idle)
            .field("timeout", &self.timeout)
            .field("traits", &self.traits)
            .finish_non_exhaustive()
    }
}
