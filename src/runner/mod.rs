//! Task runners: the handles users post through. All are cheap to clone (two reference
//! counts) and `Send + Sync`.
//!
//! | runner | ordering | thread |
//! |---|---|---|
//! | [`TaskRunner`] | none: tasks may run in parallel, in any order | any worker |
//! | [`SequencedTaskRunner`] | posting order, one at a time, happens-before between tasks | any worker (may hop) |
//! | [`SingleThreadTaskRunner`] | as sequenced | always the runner's own dedicated thread |

pub(crate) mod bound;
pub(crate) mod bounded;
mod cancel_after;
pub(crate) mod checker;
mod control;
mod create;
mod deferred;
pub(crate) mod future_task;
pub(crate) mod keyed;
pub(crate) mod local;
mod parallel;
mod sequenced;
pub(crate) mod single_thread;
mod then;
mod updateable;

pub use bounded::{BoundedRunner, DroppedTask, QueuePolicy};
pub use deferred::Deferred;
pub use parallel::TaskRunner;
pub use sequenced::SequencedTaskRunner;
pub use single_thread::SingleThreadTaskRunner;
pub use updateable::UpdateableSequencedTaskRunner;

pub(crate) mod generic;

use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::base::error::PostError;
use crate::handle::{Reply, ReplyFn, TaskHandle};
use crate::pool::ThreadPool;

/// Anything tasks can be posted to: the pool and every runner. Orchestration helpers
/// ([`Executor`](crate::executor::Executor), [`invoke_all`](crate::fork_join::invoke_all), [`retry`](crate::retry::retry),
/// [`TaskHandle::then`](crate::TaskHandle::then), ...) are generic over it, so they work on the
/// pool, on a parallel runner, and on sequences alike.
///
/// It is the one way to post: every variant (delayed, with a result, with a reply, a future)
/// is a provided method here, so every runner has all of them. An implementation supplies
/// [`post_task`](Self::post_task), [`post_delayed_task`](Self::post_delayed_task),
/// [`now`](Self::now) and [`max_concurrency`](Self::max_concurrency); the rest follows (a post
/// with a result then costs three allocations instead of the crate's runners' one: the result
/// cell, a slot that can hand the closure back, and the posted box). Through this trait a [`ThreadPool`] posts with
/// [`TaskTraits::default()`](crate::TaskTraits); its inherent methods take the traits as their
/// first argument.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// fn post_two<R: PostTask>(r: &R, tx: std::sync::mpsc::Sender<u8>) {
///     let tx2 = tx.clone();
///     r.post_task(move || tx.send(1).unwrap()).unwrap();
///     r.post_task(move || tx2.send(2).unwrap()).unwrap();
/// }
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// post_two(&pool.create_sequenced_task_runner(TaskTraits::default()), tx);
/// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (1, 2)); // a sequence keeps the order
/// ```
pub trait PostTask {
    /// Posts a task; refused (closure handed back) after shutdown started.
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static;

    /// Posts a task that runs no sooner than `delay` from now, by [`now`](Self::now)'s clock.
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static;

    /// The current time of the pool's clock (a mock clock in a `TestEnvironment`).
    fn now(&self) -> Instant;

    /// How many of this runner's tasks can run at once: 1 for a sequence, the pool's
    /// `max_workers` otherwise.
    fn max_concurrency(&self) -> usize;

    /// Posts a task and returns a [`TaskHandle`] to its result (join, cancel, `.await`). On the
    /// crate's runners the closure and the result cell share one allocation. Refused like
    /// [`post_task`](Self::post_task), with the closure handed back.
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_task_with_result(|| 2 + 2).unwrap();
    /// assert_eq!(h.join().unwrap(), 4);
    /// ```
    #[track_caller]
    fn post_task_with_result<F, T>(&self, f: F) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.post_with_result_from(Duration::ZERO, f, Location::caller())
    }

    /// Posts a delayed task and returns a [`TaskHandle`] to its result. Cancelling the handle
    /// before the deadline drops the closure at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_delayed_task_with_result(Duration::from_millis(5), || "later").unwrap();
    /// assert_eq!(h.join().unwrap(), "later");
    /// ```
    #[track_caller]
    fn post_delayed_task_with_result<F, T>(
        &self,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.post_with_result_from(delay, f, Location::caller())
    }

    /// Runs `task` here, then runs `reply` on the sequence that called this (the current
    /// sequence, see [`SequencedTaskRunner::current`]).
    ///
    /// Refused with [`PostRefusal::NoCurrentSequence`](crate::PostRefusal::NoCurrentSequence)
    /// outside a sequenced task, and like `post_task` otherwise; both closures are handed back.
    /// If the origin sequence refuses the reply (shutdown), the reply is dropped unrun on this
    /// runner's side: it is `Send`, so that is sound (Chromium leaks it instead).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let (o2, target) = (origin.clone(), seq.clone());
    /// origin.post_task(move || {
    ///     target.post_task_and_reply(|| (), move || tx.send(o2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// }).unwrap();
    /// assert!(rx.recv().unwrap()); // the reply ran on the origin sequence
    /// ```
    #[track_caller]
    fn post_task_and_reply<F, R>(&self, task: F, reply: R) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() + Send + 'static,
        R: FnOnce() + Send + 'static,
    {
        self.post_and_reply_from(Duration::ZERO, task, ReplyFn(reply), Location::caller())
            .map_err(|e| e.map(|(t, r)| (t, r.0)))
    }

    /// Runs `task` here, then runs `reply(value)` on the sequence that called this, with the
    /// task's value moved (not shared) into the reply. Refusals as in
    /// [`post_task_and_reply`](Self::post_task_and_reply).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let target = seq.clone();
    /// origin.post_task(move || {
    ///     target.post_task_and_reply_with_result(|| vec![1, 2, 3], move |v: Vec<i32>| tx.send(v.len()).unwrap()).unwrap();
    /// }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 3);
    /// ```
    #[track_caller]
    fn post_task_and_reply_with_result<F, T, R>(
        &self,
        task: F,
        reply: R,
    ) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        self.post_and_reply_from(Duration::ZERO, task, reply, Location::caller())
    }

    /// [`post_task_and_reply`](Self::post_task_and_reply) with a delay: `task` runs here no
    /// sooner than `delay` from now (by [`now`](Self::now)'s clock), then `reply` runs on the
    /// sequence that called this. Refused like `post_task_and_reply` (both closures handed
    /// back). Once shutdown starts, a delayed task never runs: both closures are then dropped
    /// unrun, the reply on the runner's side.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let worker = pool.create_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let o2 = origin.clone();
    /// origin.post_task(move || {
    ///     let posted = o2.now();
    ///     worker.post_delayed_task_and_reply(Duration::from_millis(5), || (), move || {
    ///         tx.send((o2.runs_tasks_in_current_sequence(), o2.now() - posted)).unwrap()
    ///     }).unwrap();
    /// }).unwrap();
    /// let (on_origin, waited) = rx.recv().unwrap();
    /// assert!(on_origin && waited >= Duration::from_millis(5));
    /// ```
    #[track_caller]
    fn post_delayed_task_and_reply<F, R>(
        &self,
        delay: Duration,
        task: F,
        reply: R,
    ) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() + Send + 'static,
        R: FnOnce() + Send + 'static,
    {
        self.post_and_reply_from(delay, task, ReplyFn(reply), Location::caller())
            .map_err(|e| e.map(|(t, r)| (t, r.0)))
    }

    /// [`post_task_and_reply_with_result`](Self::post_task_and_reply_with_result) with a
    /// delay, as [`post_delayed_task_and_reply`](Self::post_delayed_task_and_reply).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let worker = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// origin.post_task(move || {
    ///     worker.post_delayed_task_and_reply_with_result(Duration::from_millis(2), || 6 * 7, move |v: u32| {
    ///         tx.send(v).unwrap()
    ///     }).unwrap();
    /// }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// ```
    #[track_caller]
    fn post_delayed_task_and_reply_with_result<F, T, R>(
        &self,
        delay: Duration,
        task: F,
        reply: R,
    ) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        self.post_and_reply_from(delay, task, reply, Location::caller())
    }

    /// Posts a task that runs no sooner than `deadline`, a time of [`now`](Self::now)'s
    /// clock (Chromium's `PostDelayedTaskAt`): a deadline already past runs it as soon as
    /// possible, like a zero delay. Useful when the time comes from elsewhere (a schedule, a
    /// deadline carried in a request), so that no delay has to be computed and go stale.
    /// Refused like [`post_delayed_task`](Self::post_delayed_task).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let deadline = seq.now() + Duration::from_millis(5);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_delayed_task_at(deadline, move || tx.send(s2.now()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap() >= deadline);
    /// ```
    #[track_caller]
    fn post_delayed_task_at<F>(&self, deadline: Instant, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let delay = deadline.saturating_duration_since(self.now());
        self.post_delayed_task_from(delay, f, Location::caller())
    }

    /// [`post_delayed_task_at`](Self::post_delayed_task_at) returning a [`TaskHandle`] to the
    /// task's result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let deadline = r.now() + Duration::from_millis(3);
    /// let h = r.post_delayed_task_with_result_at(deadline, move || 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 7);
    /// assert!(r.now() >= deadline);
    /// ```
    #[track_caller]
    fn post_delayed_task_with_result_at<F, T>(
        &self,
        deadline: Instant,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let delay = deadline.saturating_duration_since(self.now());
        self.post_with_result_from(delay, f, Location::caller())
    }

    /// Runs `fut` on this runner and returns a [`TaskHandle`] to its output (join, `.await`,
    /// cancel). The future is polled **as tasks of the runner**: each poll is one task posted
    /// to it. On a sequence the sequence's guarantees hold for every poll (posting order, never two at
    /// once, each sees the effects of the previous task), and between two awaits the other
    /// tasks posted to the sequence run. State owned by the sequence can be used from the future
    /// without a lock: the sequence is an async actor.
    ///
    /// * A waker re-posts the future to the back of the sequence; wakes that arrive before the
    ///   next poll (from any number of threads) cause one poll.
    /// * On a parallel runner polls may run on any worker, but never two at once.
    /// * The first poll is posted, never run inside this call; refused (the future handed back
    ///   in the [`PostError`]) like [`post_task`](Self::post_task).
    /// * [`TaskHandle::state`](crate::TaskHandle::state) is `Pending` before the first poll, `Running` after it.
    /// * [`TaskHandle::cancel`](crate::TaskHandle::cancel) drops the future on the sequence at the next opportunity (at
    ///   once through a posted task if it is waiting for a wake-up) and the handle then resolves
    ///   cancelled; `true` iff it will end cancelled. A value produced before the cancel is kept.
    /// * A panic inside `poll` is reported like a panic of any task of the sequence, before
    ///   the handle resolves: its [`PanicPolicy`](crate::PanicPolicy) applies (under `Poison`
    ///   later posts are refused with
    ///   [`PostRefusal::SequencePoisoned`](crate::PostRefusal::SequencePoisoned)) and the pool's
    ///   panic handler sees it, with this call's location as
    ///   [`posted_from`](crate::TaskPanic::posted_from). The future is dropped and the handle
    ///   resolves as panicked, keeping the payload. The sequence carries on under the default
    ///   policy.
    /// * **tokio**: with the `tokio` feature and a pool built with
    ///   `ThreadPoolBuilder::tokio_handle(handle)`, every poll runs inside that runtime, so `tokio::time::sleep` and tokio's I/O work. Without it,
    ///   tokio's "no reactor running" panic resolves the handle with a message that says so.
    /// * A wake-up after shutdown started is refused like any post: the future is dropped by the
    ///   waking thread and the handle resolves as not run. A future waiting for a wake-up keeps
    ///   the runner alive, as a queued task does.
    ///
    /// ```
    /// use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
    /// static BALANCE: SequenceLocal<i64> = SequenceLocal::new();
    ///
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let account = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = tokio::sync::oneshot::channel::<i64>();
    /// let actor = account
    ///     .post_future(async move {
    ///         BALANCE.set(100); // the sequence's own state: no lock
    ///         let deposit = rx.await.unwrap(); // other tasks of the sequence run meanwhile
    ///         BALANCE.with(|b| {
    ///             let b = b.unwrap();
    ///             *b += deposit;
    ///             *b
    ///         })
    ///     })
    ///     .unwrap();
    /// // A plain task of the same sequence, between the two polls: it sees the first one's write.
    /// let seen = account.post_task_with_result(|| BALANCE.with(|b| *b.unwrap())).unwrap();
    /// assert_eq!(seen.join().unwrap(), 100);
    /// tx.send(5).unwrap();
    /// assert_eq!(actor.join().unwrap(), 105);
    /// ```
    #[track_caller]
    fn post_future<Fut>(&self, fut: Fut) -> Result<TaskHandle<Fut::Output>, PostError<Fut>>
    where
        Self: Clone + Send + Sync + Sized + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        crate::runner::future_task::spawn_future(self, fut)
    }

    /// [`post_delayed_task_with_result`](Self::post_delayed_task_with_result) recording
    /// `posted_from` as the task's origin. The crate's runners override it to put closure and
    /// result in one allocation; the default posts a [`Deferred`](crate::Deferred) through
    /// [`post_delayed_task_from`](Self::post_delayed_task_from).
    #[doc(hidden)]
    fn post_with_result_from<F, T>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        generic::post_with_result(self, delay, f, posted_from)
    }

    /// The post-and-reply path behind every reply variant (the task runs no sooner than
    /// `delay` from now), recording `posted_from`. The crate's runners override it; the default
    /// posts through [`post_delayed_task_from`](Self::post_delayed_task_from).
    #[doc(hidden)]
    fn post_and_reply_from<F, T, R>(
        &self,
        delay: Duration,
        task: F,
        reply: R,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<(F, R)>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        generic::post_and_reply(self, delay, task, reply, posted_from)
    }

    /// [`post_task`](Self::post_task) recording `posted_from` as the task's origin (what the
    /// panic handler and tracing report), for helpers that post on a user's behalf later
    /// (retries, continuations, repeats). Implementations outside the crate keep the default,
    /// which ignores the location.
    #[doc(hidden)]
    fn post_task_from<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let _ = posted_from;
        self.post_task(f)
    }

    /// [`post_delayed_task`](Self::post_delayed_task) recording `posted_from` as the task's
    /// origin (see [`post_task_from`](Self::post_task_from)).
    #[doc(hidden)]
    fn post_delayed_task_from<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let _ = posted_from;
        self.post_delayed_task(delay, f)
    }

    /// The token of the sequence this runner posts to, if it is sequenced: a crate wait for
    /// work queued there, made from a task of that sequence, could never end (it panics with
    /// advice instead). Implementations outside the crate keep the default `None`.
    #[doc(hidden)]
    fn sequence_token(&self) -> Option<u64> {
        None
    }

    /// The pool behind the runner, for crate-internal services (deadline timers that fire on
    /// the delay thread, mock-clock awareness of handles). Implementations outside the crate
    /// keep the default `None`; everything still works through `post_delayed_task`.
    #[doc(hidden)]
    fn pool_link(&self) -> Option<PoolLink> {
        None
    }
}

pub(crate) use crate::engine::PoolLink;

macro_rules! impl_post_task_for_runner {
    ($t:ty, $conc:expr) => {
        impl PostTask for $t {
            #[track_caller]
            fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                self.post_task_from(f, Location::caller())
            }
            #[track_caller]
            fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                self.post_delayed_task_from(delay, f, Location::caller())
            }
            fn now(&self) -> Instant {
                self.pool_inner().clock.now()
            }
            fn max_concurrency(&self) -> usize {
                let c: fn(&$t) -> usize = $conc;
                c(self)
            }
            fn pool_link(&self) -> Option<PoolLink> {
                Some(PoolLink(self.pool_inner().clone()))
            }
            fn sequence_token(&self) -> Option<u64> {
                match self.post_dest() {
                    crate::engine::PostDest::Sequence(s) => Some(s.token),
                    _ => None,
                }
            }
            fn post_task_from<F>(
                &self,
                f: F,
                posted_from: &'static std::panic::Location<'static>,
            ) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                crate::engine::Engine::post(
                    self.pool_inner(),
                    self.post_dest(),
                    Duration::ZERO,
                    f,
                    posted_from,
                )
            }
            fn post_delayed_task_from<F>(
                &self,
                delay: Duration,
                f: F,
                posted_from: &'static std::panic::Location<'static>,
            ) -> Result<(), PostError<F>>
            where
                F: FnOnce() + Send + 'static,
            {
                crate::engine::Engine::post(
                    self.pool_inner(),
                    self.post_dest(),
                    delay,
                    f,
                    posted_from,
                )
            }
            fn post_with_result_from<F, T>(
                &self,
                delay: Duration,
                f: F,
                posted_from: &'static Location<'static>,
            ) -> Result<TaskHandle<T>, PostError<F>>
            where
                F: FnOnce() -> T + Send + 'static,
                T: Send + 'static,
            {
                crate::engine::Engine::post_with_result(
                    self.pool_inner(),
                    self.post_dest(),
                    delay,
                    f,
                    posted_from,
                )
            }
            fn post_and_reply_from<F, T, R>(
                &self,
                delay: Duration,
                task: F,
                reply: R,
                posted_from: &'static Location<'static>,
            ) -> Result<(), PostError<(F, R)>>
            where
                F: FnOnce() -> T + Send + 'static,
                T: Send + 'static,
                R: Reply<T>,
            {
                crate::engine::Engine::post_and_reply(
                    self.pool_inner(),
                    self.post_dest(),
                    delay,
                    task,
                    |t| t,
                    reply,
                    posted_from,
                )
            }
        }
    };
}

impl_post_task_for_runner!(TaskRunner, |r| r.pool_inner().group.max_workers);
impl_post_task_for_runner!(SequencedTaskRunner, |_| 1);
impl_post_task_for_runner!(SingleThreadTaskRunner, |_| 1);

// Through `Deref`, the sequenced runner's `pool_inner` and `post_dest` (its held-mode sequence).
impl_post_task_for_runner!(UpdateableSequencedTaskRunner, |_| 1);

impl_post_task_for_runner!(ThreadPool, |p| p.max_workers());

impl<R: PostTask + ?Sized> PostTask for &R {
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_task(f)
    }
    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_delayed_task(delay, f)
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn max_concurrency(&self) -> usize {
        (**self).max_concurrency()
    }
    fn pool_link(&self) -> Option<PoolLink> {
        (**self).pool_link()
    }
    fn sequence_token(&self) -> Option<u64> {
        (**self).sequence_token()
    }
    fn post_task_from<F>(
        &self,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_task_from(f, posted_from)
    }
    fn post_delayed_task_from<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static std::panic::Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).post_delayed_task_from(delay, f, posted_from)
    }
    fn post_with_result_from<F, T>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        (**self).post_with_result_from(delay, f, posted_from)
    }
    fn post_and_reply_from<F, T, Y>(
        &self,
        delay: Duration,
        task: F,
        reply: Y,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<(F, Y)>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        Y: Reply<T>,
    {
        (**self).post_and_reply_from(delay, task, reply, posted_from)
    }
}
