//! `Executor`: submit tasks, get handles; bounded queue, shutdown, drop.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::cancel::{CancellationToken, Interrupted, TaskContext};
use crate::handle::{TaskError, TaskHandle};
use crate::retry::{retry_with_at, RetryPolicy};
use crate::runner::{PostTask, TaskRunner};
use crate::sync::semaphore::Semaphore;

use super::builder::ExecutorBuilder;
use super::core::{Core, ExecRunner, TaskMeta, Wait};
use super::error::SubmitError;
use super::options::{ShutdownMode, SubmitOptions};

/// What the retry engine runs per attempt.
pub(crate) type Attempt<T> = Box<dyn FnMut() -> Result<T, TaskError> + Send>;

/// How one task is run: resolved [`SubmitOptions`].
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) policy: RetryPolicy,
    pub(crate) gate: Option<Semaphore>,
    /// Cancel the task's token with `DeadlineExceeded` after this long.
    pub(crate) timer: Option<Duration>,
    /// No attempt starts at or after this instant (runner clock).
    pub(crate) deadline: Option<Instant>,
    pub(crate) token: Option<CancellationToken>,
}

impl Plan {
    pub(crate) fn once() -> Plan {
        Plan {
            policy: RetryPolicy::never(),
            gate: None,
            timer: None,
            deadline: None,
            token: None,
        }
    }

    fn gated(gate: &Semaphore) -> Plan {
        Plan {
            gate: Some(gate.clone()),
            ..Plan::once()
        }
    }

    fn retried(policy: RetryPolicy) -> Plan {
        Plan {
            policy,
            ..Plan::once()
        }
    }

    /// The absolute deadline `opts` asks for, measured from `now` (a timeout too large to
    /// represent is no deadline).
    pub(crate) fn deadline_of(opts: &SubmitOptions, now: Instant) -> Option<Instant> {
        let by_timeout = opts.timeout.and_then(|t| Deadline::after(now, t).instant());
        match (by_timeout, opts.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn from_options(opts: SubmitOptions, now: Instant) -> Plan {
        let deadline = Self::deadline_of(&opts, now);
        Plan {
            policy: opts.retry.unwrap_or_else(RetryPolicy::never),
            gate: opts.limit,
            timer: deadline.map(|d| d.saturating_duration_since(now)),
            deadline,
            token: opts.token,
        }
    }
}

/// A one-shot closure as an attempt (its policy never retries, so it is called once).
pub(crate) fn once<F, T>(f: F) -> Attempt<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut f = Some(f);
    Box::new(move || match f.take() {
        Some(f) => Ok(f()),
        None => Err(TaskError::new("an executor task was started twice")),
    })
}

/// A one-shot fallible closure as an attempt.
pub(crate) fn once_fallible<F, T, E>(f: F) -> Attempt<T>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    let mut f = Some(f);
    Box::new(move || match f.take() {
        Some(f) => f().map_err(TaskError::from_error),
        None => Err(TaskError::new("an executor task was started twice")),
    })
}

fn current_context() -> TaskContext {
    TaskContext::current().expect("executor attempts run inside a TaskContext")
}

/// A bounded executor with the `concurrent.futures` shape: submit closures, get
/// [`TaskHandle`]s; map over inputs; retries, deadlines, cancellation tokens and a shared
/// [`Semaphore`] limit per task; a bounded submission queue with backpressure; shutdown that
/// drains or cancels; [`Drop`] that shuts down (Python's `with ThreadPoolExecutor(..)`).
///
/// * **Concurrency**: at most [`max_workers`](Self::max_workers) of its tasks run at once
///   (attempts posted to the runner). A task waiting in retry backoff or for a semaphore
///   permit holds no worker and no slot: the backoff is a delayed post, the permit a
///   hand-off ([`Semaphore::acquire_then`]).
/// * **Queue**: at most [`queue_capacity`](Self::queue_capacity) tasks wait to start;
///   [`submit`](Self::submit) blocks beyond that, [`try_submit`](Self::try_submit) refuses
///   with [`SubmitRefusal::Full`](crate::executor::SubmitRefusal::Full) and hands the closure back,
///   [`submit_timeout`](Self::submit_timeout) gives up after a while. A blocking `submit` from
///   inside one of the executor's own tasks is admitted over capacity instead of blocking (the
///   task blocked on the full queue could be the one that must finish to make room).
/// * **Blocking inside pool tasks**: every wait of the executor that blocks (`submit*` on a
///   full queue, [`submit_timeout`](Self::submit_timeout), the `map*` family,
///   [`wait_idle`](Self::wait_idle), a draining [`shutdown`](Self::shutdown) or drop) is a
///   blocking scope when it happens on a pool worker (as [`blocking`](crate::blocking), without
///   its may-block check): the pool runs one more worker meanwhile, so tasks that submit into
///   an executor running on their own pool cannot occupy every worker and starve it. A wait
///   that could **never** end panics at once instead, with advice: one made by a task of the
///   sequence the executor runs on (its runner is a `SequencedTaskRunner` or a
///   `SingleThreadTaskRunner`) for the executor's tasks, which are queued behind that very
///   task: a blocking submit on a full queue, a map, `wait_idle`, a draining shutdown.
/// * **Every handle ends**: completed, failed (a fallible task's error, downcastable),
///   panicked, cancelled, or deadline exceeded (a [`TaskError`] with
///   [`is_deadline_exceeded`](TaskError::is_deadline_exceeded); the handle's state is
///   `Cancelled`). A task runs even if nothing else happens (no `with` block is needed).
/// * **Panics** are caught and reported exactly like a plain task's: the runner's
///   [`PanicPolicy`](crate::PanicPolicy) applies (`Poison` poisons the sequence before the
///   handle resolves, `Abort` aborts the process) and the pool's panic handler sees the panic
///   with the location of the `submit` call as the task's posted-from location. The handle
///   keeps the payload ([`TaskError::into_panic`]).
/// * **Cancellation**: [`TaskHandle::cancel`] on a queued task resolves it at once and it
///   never runs; on a running task it cancels the task's token, which the task sees through
///   its [`TaskContext`]. Cancel racing completion ends in exactly one terminal state.
///
/// ```
/// use taskrunner::ThreadPool;
/// use taskrunner::executor::Executor;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let exec = Executor::builder().pool(&pool).max_workers(2).build().unwrap();
/// let h = exec.submit(|| 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// let squares = exec.map(1..=4, |x: u64| x * x);
/// assert_eq!(squares.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![1, 4, 9, 16]);
/// drop(exec); // drains: waits for everything submitted
/// ```
pub struct Executor<R = TaskRunner>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    pub(crate) core: Arc<Core<R>>,
    pub(crate) on_drop: ShutdownMode,
    pub(crate) name: Option<Arc<str>>,
}

impl Executor<TaskRunner> {
    /// An executor on the global pool running at most `workers` tasks at once, with the
    /// default queue (`workers × 10`). Panics if `workers` is 0 (use
    /// [`builder`](Self::builder) to handle that as an error).
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(4);
    /// assert_eq!(exec.max_workers(), 4);
    /// assert_eq!(exec.queue_capacity(), 40);
    /// assert_eq!(exec.submit(|| "ran").unwrap().join().unwrap(), "ran");
    /// ```
    pub fn new(workers: usize) -> Self {
        match Self::builder().max_workers(workers).build() {
            Ok(e) => e,
            Err(e) => panic!("Executor::new({workers}): {e}"),
        }
    }

    /// A builder; see [`ExecutorBuilder`].
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::builder().max_workers(2).queue_capacity(8).build().unwrap();
    /// assert_eq!(exec.queue_capacity(), 8);
    /// ```
    pub fn builder() -> ExecutorBuilder<TaskRunner> {
        ExecutorBuilder::new()
    }
}

impl<R> Executor<R>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    /// Starts one admitted task through the retry engine; `posted_from` is the user's call.
    pub(crate) fn launch<T: Send + 'static>(
        &self,
        epoch: u64,
        plan: Plan,
        attempt: Attempt<T>,
        posted_from: &'static Location<'static>,
    ) -> TaskHandle<T> {
        let core = &self.core;
        // The executor's token reaches every task (a shutdown with `cancel_pending` reaches
        // tasks that have a token of their own), and so does the caller's.
        let token = core.token.child();
        let link = plan.token.map(|caller| {
            let link = caller.child();
            let t = token.clone();
            link.on_cancel(move |why| {
                t.cancel_with(why);
            });
            link
        });
        if let Some(after) = plan.timer {
            token.cancel_after(&core.runner, after);
        }
        let attempt = match plan.deadline {
            None => attempt,
            Some(deadline) => {
                // Checked on the runner's clock before each attempt, so a deadline that passed
                // before the task started wins even if its timer has not fired yet.
                let (core, t, mut attempt) = (core.clone(), token.clone(), attempt);
                Box::new(move || {
                    if core.runner.now() >= deadline {
                        t.cancel_with(Interrupted::DeadlineExceeded);
                        return Err(TaskError::deadline_exceeded());
                    }
                    attempt()
                })
            }
        };
        let meta = TaskMeta::new(core.clone(), epoch, token.clone(), link);
        // Each attempt records whether it returned a value: the task's last attempt decides
        // how it counts in `progress` when it ends.
        let succeeded = Arc::clone(&meta.succeeded);
        let mut attempt = attempt;
        let attempt: Attempt<T> = Box::new(move || {
            let outcome = attempt();
            succeeded.store(outcome.is_ok(), std::sync::atomic::Ordering::Release);
            outcome
        });
        retry_with_at(
            &ExecRunner { meta },
            plan.policy,
            token,
            plan.gate,
            attempt,
            posted_from,
        )
    }

    /// Admits then launches; a refusal hands `f` back. The caller's caller is the task's
    /// posted-from location.
    #[track_caller]
    fn submit_inner<F, T>(
        &self,
        wait: Wait,
        f: F,
        plan: impl FnOnce(&Self) -> Plan,
        make: impl FnOnce(F) -> Attempt<T>,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        T: Send + 'static,
    {
        let posted_from = Location::caller();
        match self.core.admit(wait) {
            Ok(epoch) => Ok(self.launch(epoch, plan(self), make(f), posted_from)),
            Err(reason) => Err(SubmitError::new(reason, f)),
        }
    }

    /// Admits (blocking) then launches an already built attempt; a refusal gives a handle
    /// that has ended as not run.
    #[track_caller]
    pub(crate) fn submit_attempt<T: Send + 'static>(
        &self,
        plan: Plan,
        attempt: Attempt<T>,
        posted_from: &'static Location<'static>,
    ) -> TaskHandle<T> {
        match self.core.admit(Wait::Block) {
            Ok(epoch) => self.launch(epoch, plan, attempt, posted_from),
            Err(_) => TaskHandle::failed(TaskError::not_run()),
        }
    }

    /// Submits `f`, blocking while the queue is full. Refused (with `f` handed back) only if
    /// the executor is shut down, also while waiting for room. A wait for room on a pool worker
    /// is a blocking scope (the pool runs one more worker meanwhile).
    ///
    /// # Panics
    ///
    /// If the queue is full and the caller is a task of the sequence the executor runs on (but
    /// not one of the executor's own tasks, which are admitted over capacity): room could only
    /// be made by tasks queued behind the caller. The same holds for every blocking variant
    /// (`submit_fallible`, `submit_with_context`, `submit_with_limit`, `submit_with_retry`,
    /// `submit_with`, and `submit_timeout` without a representable limit).
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let h = exec.submit(|| 1 + 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_inner(Wait::Block, f, |_| Plan::once(), once)
    }

    /// Submits `f` if the queue has room; otherwise refuses at once with
    /// [`SubmitRefusal::Full`](crate::executor::SubmitRefusal::Full) and hands `f` back.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::executor::{Executor, SubmitRefusal};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let exec = Executor::builder().pool(&pool).max_workers(1).queue_capacity(1).build().unwrap();
    /// let (release, gate) = channel::<()>();
    /// let (started_tx, started) = channel();
    /// let busy = exec.submit(move || { started_tx.send(()).unwrap(); gate.recv().unwrap() }).unwrap();
    /// started.recv().unwrap(); // the only slot is taken
    /// let queued = exec.try_submit(|| 1).unwrap(); // the only queue place
    /// let err = exec.try_submit(|| 2).unwrap_err();
    /// assert_eq!(err.reason(), SubmitRefusal::Full);
    /// assert_eq!(err.into_inner()(), 2);
    /// release.send(()).unwrap();
    /// busy.join().unwrap();
    /// assert_eq!(queued.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_inner(Wait::Try, f, |_| Plan::once(), once)
    }

    /// Submits `f`, waiting at most `timeout` (real time) for room in the queue; then refuses
    /// with [`SubmitRefusal::TimedOut`](crate::executor::SubmitRefusal::TimedOut) and hands `f` back. A
    /// timeout too large to represent (`Duration::MAX`) means no limit: it waits as
    /// [`submit`](Self::submit) does.
    ///
    /// ```
    /// use std::time::Duration;
    /// let exec = taskrunner::executor::Executor::new(1);
    /// let h = exec.submit_timeout(|| 5, Duration::from_secs(1)).unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn submit_timeout<F, T>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // A timeout too large to represent is no limit: wait as `submit` does.
        let wait = Deadline::real_after(timeout)
            .instant()
            .map_or(Wait::Block, Wait::Until);
        self.submit_inner(wait, f, |_| Plan::once(), once)
    }

    /// Submits a fallible task: `Err(e)` ends the handle as
    /// [`Failed`](crate::TaskState::Failed), keeping `e` as the error's source.
    ///
    /// ```
    /// use taskrunner::TaskState;
    /// let exec = taskrunner::executor::Executor::new(1);
    /// let h = exec.submit_fallible(|| "x".parse::<u32>()).unwrap();
    /// exec.wait_idle();
    /// assert_eq!(h.state(), TaskState::Failed);
    /// assert!(h.join().unwrap_err().downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    #[track_caller]
    pub fn submit_fallible<F, T, E>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        self.submit_inner(Wait::Block, f, |_| Plan::once(), once_fallible)
    }

    /// Submits a task that takes its [`TaskContext`]: its cancellation token (cancelled by
    /// the handle, the executor's shutdown with `cancel_pending`, a deadline or a caller's
    /// token) and its attempt number. `ctx.check()?` ends it as cancelled or deadline
    /// exceeded.
    ///
    /// ```
    /// use taskrunner::cancel::Interrupted;
    /// use taskrunner::executor::Executor;
    /// let exec = Executor::new(1);
    /// let h = exec.submit_with_context(|ctx| {
    ///     ctx.check()?;
    ///     Ok::<_, Interrupted>(ctx.attempt())
    /// }).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn submit_with_context<F, T, E>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce(&TaskContext) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        self.submit_inner(
            Wait::Block,
            f,
            |_| Plan::once(),
            |f| once_fallible(move || f(&current_context())),
        )
    }

    /// Submits `f` to run while holding a permit of `limit`, a concurrency limit independent
    /// of `max_workers` that may be shared by several executors (at most N requests to one
    /// host). The task waits for the permit without holding a worker or a slot.
    ///
    /// ```
    /// use taskrunner::executor::Executor;
    /// use taskrunner::sync::Semaphore;
    /// let exec = Executor::new(4);
    /// let host = Semaphore::new(1);
    /// let hs: Vec<_> = (0..3).map(|i| exec.submit_with_limit(&host, move || i).unwrap()).collect();
    /// assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 3);
    /// assert_eq!(host.available(), 1);
    /// ```
    #[track_caller]
    pub fn submit_with_limit<F, T>(
        &self,
        limit: &Semaphore,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_inner(Wait::Block, f, |_| Plan::gated(limit), once)
    }

    /// Submits a fallible task retried by `policy` while it returns `Err`. The backoff is a
    /// delayed post: no worker sleeps and no slot is held meanwhile. The final error is the
    /// last attempt's, kept as the source (downcastable), with
    /// [`attempts`](TaskError::attempts).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use taskrunner::executor::Executor;
    /// use taskrunner::retry::RetryPolicy;
    /// let exec = Executor::new(2);
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let policy = RetryPolicy::attempts(3).base_delay(Duration::from_millis(1));
    /// let h = exec.submit_with_retry(policy, move || {
    ///     Err::<(), _>(std::io::Error::other(format!("try {}", c.fetch_add(1, Ordering::SeqCst) + 1)))
    /// }).unwrap();
    /// let err = h.join().unwrap_err();
    /// assert_eq!(err.attempts(), 3);
    /// assert_eq!(err.downcast_ref::<std::io::Error>().unwrap().to_string(), "try 3");
    /// ```
    #[track_caller]
    pub fn submit_with_retry<F, T, E>(
        &self,
        policy: RetryPolicy,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnMut() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        self.submit_inner(
            Wait::Block,
            f,
            |_| Plan::retried(policy),
            |mut f| Box::new(move || f().map_err(TaskError::from_error)),
        )
    }

    /// The general form: a fallible task taking its [`TaskContext`], with any of
    /// [`SubmitOptions`]' retries, limit, deadline and caller's token. Blocks while the queue
    /// is full, like [`submit`](Self::submit).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::cancel::CancellationToken;
    /// use taskrunner::executor::{Executor, SubmitOptions};
    /// use taskrunner::retry::RetryPolicy;
    /// use taskrunner::sync::Semaphore;
    /// let exec = Executor::new(2);
    /// let stop = CancellationToken::new();
    /// let opts = SubmitOptions::new()
    ///     .retry(RetryPolicy::attempts(3).base_delay(Duration::ZERO))
    ///     .limit(&Semaphore::new(1))
    ///     .timeout(Duration::from_secs(30))
    ///     .token(stop.clone());
    /// let h = exec.submit_with(opts, |ctx| {
    ///     if ctx.attempt() < 2 { Err("flaky") } else { Ok(ctx.attempt()) }
    /// }).unwrap();
    /// assert_eq!(h.join().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn submit_with<F, T, E>(
        &self,
        options: SubmitOptions,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnMut(&TaskContext) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        let wait = match &options.token {
            Some(t) => Wait::BlockUnless(t.clone()),
            None => Wait::Block,
        };
        self.submit_inner(
            wait,
            f,
            |me| Plan::from_options(options, me.core.runner.now()),
            |mut f| Box::new(move || f(&current_context()).map_err(TaskError::from_error)),
        )
    }

    /// Blocks until every task submitted before the call has ended (a snapshot: later
    /// submissions are not waited for). Returns `true` then, or `false` as soon as the
    /// executor is shut down. On a pool worker the pool runs one more worker while it blocks.
    ///
    /// # Panics
    ///
    /// If called from one of the executor's own tasks (it would wait for itself), or from a
    /// task of the sequence the executor runs on (its tasks are queued behind the caller).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let n = Arc::new(AtomicU32::new(0));
    /// for _ in 0..10 {
    ///     let n = n.clone();
    ///     exec.submit(move || { n.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// }
    /// assert!(exec.wait_idle());
    /// assert_eq!(n.load(Ordering::SeqCst), 10);
    /// ```
    #[track_caller]
    pub fn wait_idle(&self) -> bool {
        self.check_not_own_task("wait_idle");
        self.core.check_not_own_sequence("Executor::wait_idle");
        self.core.wait_idle(Deadline::NEVER)
    }

    /// Like [`wait_idle`](Self::wait_idle), giving up after `timeout` (real time): `false` if
    /// the tasks had not all ended by then. A timeout too large to represent (`Duration::MAX`)
    /// means no limit. Panics as `wait_idle` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// let exec = taskrunner::executor::Executor::new(1);
    /// exec.submit(|| ()).unwrap();
    /// assert!(exec.wait_idle_timeout(Duration::from_secs(10)));
    /// ```
    #[track_caller]
    pub fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        self.check_not_own_task("wait_idle_timeout");
        self.core
            .check_not_own_sequence("Executor::wait_idle_timeout");
        self.core.wait_idle(Deadline::real_after(timeout))
    }

    /// Stops accepting submissions and ends the executor as `mode` says (see
    /// [`ShutdownMode`]): blocked submitters wake with
    /// [`SubmitRefusal::Shutdown`](crate::executor::SubmitRefusal::Shutdown); `cancel_pending` resolves
    /// every queued handle as cancelled and cancels the executor's token; `drain` waits for
    /// the tasks to end (a blocking scope on a pool worker), otherwise the call returns at once
    /// and queued tasks still run in the background. Every handle ends; none stays pending.
    /// Idempotent; a later call may escalate (cancel what an earlier one let run, or wait).
    ///
    /// A task waiting in retry backoff or for a semaphore permit is resolved at once, as
    /// cancelled, and stops counting as live (its stale timer or permit callback, when it comes,
    /// does nothing).
    ///
    /// Panics if `mode` waits and this is called from one of the executor's own tasks (it
    /// would wait for itself) or from a task of the sequence the executor runs on (its tasks
    /// are queued behind the caller); dropping the executor there does not wait (see
    /// [`Drop`]).
    ///
    /// ```
    /// use taskrunner::executor::{Executor, ShutdownMode, SubmitRefusal};
    /// let exec = Executor::new(2);
    /// let h = exec.submit(|| 1).unwrap();
    /// exec.shutdown(ShutdownMode::Drain);
    /// assert!(h.is_finished());
    /// assert!(exec.is_shutdown());
    /// assert_eq!(exec.submit(|| 2).unwrap_err().reason(), SubmitRefusal::Shutdown);
    /// exec.shutdown(ShutdownMode::Cancel); // idempotent
    /// ```
    #[track_caller]
    pub fn shutdown(&self, mode: ShutdownMode) {
        if mode.waits() {
            self.check_not_own_task("shutdown with drain");
            self.core
                .check_not_own_sequence("Executor::shutdown with drain");
        }
        self.core.shutdown(mode);
    }

    /// `true` if the caller is a task of the sequence the executor's runner posts to.
    fn on_own_sequence(&self) -> bool {
        self.core
            .seq()
            .is_some_and(|t| t == crate::engine::current_token())
    }

    fn check_not_own_task(&self, what: &str) {
        if self.core.in_own_task() {
            panic!(
                "Executor::{what} was called from inside one of the executor's own tasks: it waits for \
                 the executor's tasks to end, including this one, so it would never return. Call it from \
                 outside the executor (or use ShutdownMode::NoWait / CancelNoWait)."
            );
        }
    }

    /// `true` once [`shutdown`](Self::shutdown) was called.
    ///
    /// See [`shutdown`](Self::shutdown) for an example.
    pub fn is_shutdown(&self) -> bool {
        !self.core.is_open()
    }

    /// The executor's cancellation token: every task's token is a child of it. Cancelling
    /// it cancels every task, queued or running, **and every task submitted later** (they
    /// end as cancelled without running); use [`shutdown`](Self::shutdown) with
    /// `cancel_pending` to also stop accepting work.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(1);
    /// let h = exec.submit_with_context(|ctx| Ok::<_, taskrunner::cancel::Interrupted>(ctx.is_cancelled())).unwrap();
    /// assert_eq!(h.join().unwrap(), false);
    /// exec.token().cancel();
    /// assert!(exec.submit(|| ()).unwrap().join().unwrap_err().is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.core.token.clone()
    }

    /// The name given with [`ExecutorBuilder::name`](crate::executor::ExecutorBuilder::name).
    ///
    /// ```
    /// assert_eq!(taskrunner::executor::Executor::new(1).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How many tasks run at once, at most.
    ///
    /// ```
    /// assert_eq!(taskrunner::executor::Executor::new(3).max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.core.max_workers
    }

    /// How many tasks may wait to start before [`submit`](Self::submit) blocks.
    ///
    /// ```
    /// assert_eq!(taskrunner::executor::Executor::new(3).queue_capacity(), 30);
    /// ```
    pub fn queue_capacity(&self) -> usize {
        self.core.capacity
    }

    /// Tasks submitted that have not started yet (waiting for a slot, or for a semaphore
    /// permit before their first attempt). A snapshot.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(1);
    /// exec.submit(|| ()).unwrap();
    /// exec.wait_idle();
    /// assert_eq!(exec.queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.core.counts().0
    }

    /// Attempts posted to the runner and not finished (at most
    /// [`max_workers`](Self::max_workers)). A snapshot.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(1);
    /// let h = exec.submit(|| ()).unwrap();
    /// h.join().unwrap();
    /// exec.wait_idle();
    /// assert_eq!(exec.running(), 0);
    /// ```
    pub fn running(&self) -> usize {
        self.core.counts().1
    }

    /// Tasks submitted that have not ended: queued, running, in retry backoff or waiting for
    /// a permit. A snapshot.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(1);
    /// exec.submit(|| ()).unwrap();
    /// exec.wait_idle();
    /// assert_eq!(exec.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.core.counts().2
    }

    /// How far the executor has got: tasks submitted since it was built (the total, which
    /// grows with each submission), how many ended, and how many of those ended without a
    /// value (an error, a panic, cancelled, timed out, or not run). A snapshot, never
    /// blocking: poll it from another thread (or a repeating task) to report on a long
    /// [`map`](Self::map) or a stream of submissions.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(2);
    /// exec.submit(|| 1).unwrap();
    /// exec.submit_fallible(|| Err::<u8, _>("no")).unwrap();
    /// exec.wait_idle();
    /// let p = exec.progress();
    /// assert_eq!((p.total(), p.finished(), p.failed(), p.succeeded()), (2, 2, 1, 1));
    /// assert!(p.is_done());
    /// ```
    pub fn progress(&self) -> crate::fork_join::Progress {
        let (total, finished, failed) = self.core.progress();
        crate::fork_join::Progress::new(total as usize, finished as usize, failed as usize)
    }
}

impl<R> Drop for Executor<R>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    /// Shuts down with the builder's [`on_drop`](ExecutorBuilder::on_drop) mode (default
    /// [`ShutdownMode::Drain`]). Dropped inside one of its own tasks, or inside a task of the
    /// sequence it runs on, it does not wait (waiting there would wait forever for tasks that
    /// can only run after this one): the mode's wait is skipped, and a warning is logged.
    /// A drain on a pool worker is a blocking scope.
    fn drop(&mut self) {
        let mut mode = self.on_drop;
        if mode.waits() && (self.core.in_own_task() || self.on_own_sequence()) {
            tracing::warn!(
                "an Executor was dropped inside one of its own tasks (or a task of its own sequence): \
                 shutting down without waiting (draining there would wait forever for tasks that can \
                 only run after this one)"
            );
            mode = mode.without_wait();
        }
        self.core.shutdown(mode);
    }
}

impl<R> fmt::Debug for Executor<R>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (queued, running, in_flight) = self.core.counts();
        f.debug_struct("Executor")
            .field("name", &self.name)
            .field("max_workers", &self.core.max_workers)
            .field("queue_capacity", &self.core.capacity)
            .field("queued", &queued)
            .field("running", &running)
            .field("in_flight", &in_flight)
            .field("shutdown", &!self.core.is_open())
            .finish()
    }
}
