//! Running a closed batch: wait for an in-flight slot, call the dispatcher (sync task or
//! future), and deliver response `i` to request `i`, or the batch's error to every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::engine::{report_task_panic, DelayId};
use crate::handle::{Promise, TaskError};
use crate::sync::semaphore::Permit;
use std::sync::Arc;

use crate::base::shim::Mutex;
use crate::base::unwind::{catch, drop_quietly, Payload};

use super::batcher::{add_timer, Entry, Shared};
use super::error::BatchError;

/// What a dispatcher that retries single requests answers for each request of its batch
/// (see [`BatcherBuilder::build_with_retry`](crate::batch::BatcherBuilder::build_with_retry)),
/// in request order.
///
/// ```
/// use taskrunner::batch::Answer;
/// let a: Answer<u32, &str> = Answer::Retry(7);
/// assert!(matches!(a, Answer::Retry(7)));
/// ```
#[derive(Debug)]
pub enum Answer<Req, Resp> {
    /// The response to this request.
    Done(Resp),
    /// This request failed for now: it is handed back to be sent again in a later batch
    /// (after the retry policy's wait), up to the policy's attempts; after the last one its
    /// handle fails with [`BatchError::RetriesExhausted`](crate::batch::BatchError::RetriesExhausted).
    Retry(Req),
    /// This request failed for good: its handle fails with this error
    /// ([`TaskError::from_error`]), the other requests of the batch are not affected.
    Failed(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A dispatcher's outcome, its error already made a `TaskError` (shared by the batch).
pub(crate) type Outcome<Req, Resp> = Result<Vec<Answer<Req, Resp>>, TaskError>;
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type SyncFn<Req, Resp> = dyn Fn(Vec<Req>) -> Outcome<Req, Resp> + Send + Sync + 'static;
pub(crate) type AsyncFn<Req, Resp> =
    dyn Fn(Vec<Req>) -> BoxFuture<Outcome<Req, Resp>> + Send + Sync + 'static;

/// The user's dispatcher, behind one calling convention per flavour.
pub(crate) enum Dispatcher<Req, Resp> {
    /// Runs as one pool task per batch (inside `blocking()` when the task may block).
    Sync(Box<SyncFn<Req, Resp>>),
    /// Runs as one `post_future` future per batch.
    Async(Box<AsyncFn<Req, Resp>>),
}

impl<Req, Resp> Shared<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// The batch holds an in-flight permit: post its dispatch. A refused post drops the
    /// batch (its requests resolve as not run) and the permit (the next batch gets it).
    pub(crate) fn start(this: Arc<Self>, entries: Vec<Entry<Req, Resp>>, permit: Permit) {
        let place = this.place.clone();
        match &this.dispatcher {
            Dispatcher::Sync(_) => {
                let built_at = this.built_at;
                place.post(move || Shared::run_sync(this, entries, permit), built_at);
            }
            Dispatcher::Async(_) => {
                place.post_future(AsyncDispatch {
                    shared: this,
                    state: State::Start(entries, permit),
                });
            }
        }
    }

    /// Takes the requests that were not cancelled (each one's promise moves to running), and
    /// arms the batch's timeout. `None` if every request was cancelled: no dispatcher call.
    fn begin(
        self: &Arc<Self>,
        entries: Vec<Entry<Req, Resp>>,
    ) -> Option<(Vec<Req>, Delivery<Req, Resp>)> {
        let total = entries.len();
        let mut reqs = Vec::with_capacity(total);
        let mut promises = Vec::with_capacity(total);
        for e in entries {
            // `false`: cancelled through its handle, which already resolved it. (A request
            // sent back for another attempt is running already: it stays in.)
            if e.promise.start() {
                reqs.push(e.req);
                promises.push((e.promise, e.attempt));
            }
        }
        self.counters.cancelled(total - reqs.len());
        if reqs.is_empty() {
            return None;
        }
        self.counters.dispatched(reqs.len());
        Some((reqs, Delivery::new(self, promises)))
    }

    fn run_sync(this: Arc<Self>, entries: Vec<Entry<Req, Resp>>, permit: Permit) {
        let Some((reqs, delivery)) = this.begin(entries) else {
            return;
        };
        let Dispatcher::Sync(d) = &this.dispatcher else {
            unreachable!("run_sync is posted for sync dispatchers only");
        };
        let t0 = Instant::now();
        let outcome = catch(|| {
            if crate::engine::may_block() {
                crate::blocking(|| d(reqs))
            } else {
                d(reqs)
            }
        });
        drop(permit);
        let outcome = outcome.unwrap_or_else(|p| Err(this.panicked(p)));
        delivery.deliver(outcome, t0.elapsed());
    }

    /// The dispatcher sent back `req` after its attempt `attempt`: it joins a later batch
    /// after the retry policy's wait (a timer on the delay thread), or, past the policy's
    /// attempts (or with no policy), its handle fails with `BatchError::RetriesExhausted`. If
    /// the pool is shutting down the timer is refused and the request resolves as not run.
    fn retry(self: &Arc<Self>, req: Req, promise: Promise<Resp>, attempt: u32) {
        let Some(policy) = self.retry.filter(|p| attempt < p.max_attempts.max(1)) else {
            let err = TaskError::from_error(BatchError::RetriesExhausted { attempts: attempt });
            promise.complete(Err(err), None);
            return;
        };
        self.counters.retried();
        let entry = Entry {
            req,
            promise,
            attempt: attempt + 1,
        };
        let wait = policy.backoff(attempt);
        if wait.is_zero() {
            self.add(entry, None, self.built_at);
            return;
        }
        let this = Arc::clone(self);
        // Refused (shutdown): the closure, and with it the entry's promise, is dropped: the
        // request resolves as not run.
        let _ = add_timer(
            self.pool(),
            wait,
            Box::new(move || {
                let at = this.built_at;
                this.add(entry, None, at);
            }),
            self.built_at,
        );
    }

    /// A dispatcher panicked inside the dispatch task: reports it exactly like a task's panic
    /// (the running task's `PanicPolicy`, then tracing and the pool's panic handler, with the
    /// batcher's build site), before any request hears of it, and turns it into the error
    /// every request of the batch gets (the payload kept for `TaskError::into_panic`).
    fn panicked(&self, payload: Payload) -> TaskError {
        let payload = crate::runner::future_task::with_tokio_advice(payload);
        report_task_panic(payload.message(), self.built_at);
        TaskError::from_panic(payload)
    }
}

/// A dispatched request's promise and its attempt.
type Pending<Resp> = (Promise<Resp>, u32);

/// The promises of a dispatched batch, resolved once: by the dispatcher's answer, by the
/// batch's timeout, or (dropped unanswered: shutdown dropped the dispatch) as not run.
pub(crate) struct Delivery<Req: Send + 'static, Resp: Send + 'static> {
    shared: Arc<Shared<Req, Resp>>,
    /// Each request's promise and attempt, until the batch is answered or times out.
    promises: Arc<Mutex<Option<Vec<Pending<Resp>>>>>,
    timer: Option<DelayId>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Delivery<Req, Resp> {
    fn new(shared: &Arc<Shared<Req, Resp>>, promises: Vec<Pending<Resp>>) -> Self {
        let promises = Arc::new(Mutex::new(Some(promises)));
        // A timeout too large to represent is no bound: no timer at all.
        let bounded = shared
            .config
            .timeout
            .filter(|&t| !Deadline::after(shared.pool().clock.now(), t).is_never());
        let timer = bounded.and_then(|timeout| {
            let slot = Arc::clone(&promises);
            let this = Arc::clone(shared);
            add_timer(
                shared.pool(),
                timeout,
                Box::new(move || {
                    let taken = slot.lock().take();
                    if let Some(promises) = taken {
                        this.counters.timed_out();
                        let _resuming = this.resuming();
                        for (p, _) in promises {
                            p.complete(Err(TaskError::deadline_exceeded()), None);
                        }
                    }
                }),
                shared.built_at,
            )
        });
        Delivery {
            shared: Arc::clone(shared),
            promises,
            timer,
        }
    }

    /// Answer `i` to request `i` (a response, a failure of its own, or another attempt); an
    /// error, or a wrong number of answers, to every one. Nothing if the batch's timeout
    /// already resolved the requests (the late answer is dropped).
    fn deliver(mut self, outcome: Outcome<Req, Resp>, took: Duration) {
        if let Some(id) = self.timer.take() {
            drop_quietly(self.shared.pool().delay.cancel(id));
        }
        let taken = self.promises.lock().take();
        let Some(promises) = taken else {
            drop_quietly(outcome);
            return;
        };
        // Completing the promises wakes the waiting tasks: the next CPU phase starts here,
        // and the idle flush waits for it (see `Shared::resuming`).
        let _resuming = self.shared.resuming();
        let took = Some(took);
        match outcome {
            Ok(answers) if answers.len() == promises.len() => {
                for ((p, attempt), answer) in promises.into_iter().zip(answers) {
                    match answer {
                        Answer::Done(r) => {
                            p.complete(Ok(r), took);
                        }
                        Answer::Failed(e) => {
                            p.complete(Err(TaskError::from_error(e)), took);
                        }
                        Answer::Retry(req) => self.shared.retry(req, p, attempt),
                    }
                }
            }
            Ok(resps) => {
                let err = TaskError::from_error(BatchError::WrongResponseCount {
                    expected: promises.len(),
                    got: resps.len(),
                });
                drop_quietly(resps);
                for (p, _) in promises {
                    p.complete(Err(err.clone()), took);
                }
            }
            Err(err) => {
                for (p, _) in promises {
                    p.complete(Err(err.clone()), took);
                }
            }
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for Delivery<Req, Resp> {
    fn drop(&mut self) {
        if let Some(id) = self.timer.take() {
            drop_quietly(self.shared.pool().delay.cancel(id));
        }
        // Unanswered (the dispatch was dropped): the promises resolve as not run.
        let taken = self.promises.lock().take();
        drop_quietly(taken);
    }
}

/// The future posted for an async dispatcher: starts the batch on its first poll (so the
/// dispatcher is called on the pool, not by whoever closed the batch), then polls the
/// dispatcher's future, catching panics from both.
struct AsyncDispatch<Req: Send + 'static, Resp: Send + 'static> {
    shared: Arc<Shared<Req, Resp>>,
    state: State<Req, Resp>,
}

// Nothing in it is pinned in place: the dispatcher's future is boxed.
impl<Req: Send + 'static, Resp: Send + 'static> Unpin for AsyncDispatch<Req, Resp> {}

enum State<Req: Send + 'static, Resp: Send + 'static> {
    Start(Vec<Entry<Req, Resp>>, Permit),
    Running {
        fut: BoxFuture<Outcome<Req, Resp>>,
        delivery: Delivery<Req, Resp>,
        permit: Permit,
        t0: Instant,
    },
    Done,
}

impl<Req: Send + 'static, Resp: Send + 'static> Future for AsyncDispatch<Req, Resp> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Start(entries, permit) => {
                    let Some((reqs, delivery)) = this.shared.begin(entries) else {
                        return Poll::Ready(());
                    };
                    let Dispatcher::Async(d) = &this.shared.dispatcher else {
                        unreachable!("AsyncDispatch is posted for async dispatchers only");
                    };
                    let t0 = Instant::now();
                    match catch(|| d(reqs)) {
                        Ok(fut) => {
                            this.state = State::Running {
                                fut,
                                delivery,
                                permit,
                                t0,
                            }
                        }
                        Err(p) => {
                            drop(permit);
                            delivery.deliver(Err(this.shared.panicked(p)), t0.elapsed());
                            return Poll::Ready(());
                        }
                    }
                }
                State::Running {
                    mut fut,
                    delivery,
                    permit,
                    t0,
                } => {
                    match catch(|| fut.as_mut().poll(cx)) {
                        Ok(Poll::Pending) => {
                            this.state = State::Running {
                                fut,
                                delivery,
                                permit,
                                t0,
                            };
                            return Poll::Pending;
                        }
                        Ok(Poll::Ready(outcome)) => {
                            drop(fut);
                            drop(permit);
                            delivery.deliver(outcome, t0.elapsed());
                        }
                        Err(p) => {
                            drop_quietly(fut);
                            drop(permit);
                            delivery.deliver(Err(this.shared.panicked(p)), t0.elapsed());
                        }
                    }
                    return Poll::Ready(());
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
}
