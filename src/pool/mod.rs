//! `ThreadPool`: owns the tracker, the thread group and the delay manager, and routes every
//! post: admission (tracker) → delayed? (delay manager) → sequence or parallel queue (group).

mod builder;
pub(crate) mod global;

use std::fmt;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

pub use builder::ThreadPoolBuilder;

use crate::clock::Clock;
use crate::current;
use crate::deadline::Deadline;
use crate::delay::{DelayId, DelayManager, Delayed, Destination};
use crate::error::{PostError, PostRefusal};
use crate::handle::{new_cell, Reply, TaskHandle};
use crate::runner::{
    SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner, UpdateableSequencedTaskRunner,
};
use crate::scheduler::Home;
use crate::scheduler::{OneOff, Push, Sequence, Source};
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering};
use crate::task::{BoxedFn, Job, Task};
use crate::tracker::{Completion, Tracker};
use crate::traits::{ShutdownBehavior, TaskTraits};
use crate::unwind::{drop_each_quietly, drop_quietly};
#[cfg(not(loom))]
use crate::worker::WorkerShared;
use crate::worker::{Dedicated, Group, Ready, RunningTask};

pub(crate) type PanicHandler = StdArc<dyn Fn(&TaskPanic) + Send + Sync + 'static>;

/// A task's panic, as given to the pool's panic handler.
///
/// ```
/// # use std::sync::{Arc, Mutex};
/// # use taskrunner::{ThreadPool, TaskTraits, ShutdownBehavior};
/// let seen = Arc::new(Mutex::new(None));
/// let s2 = seen.clone();
/// let pool = ThreadPool::builder()
///     .max_workers(1)
///     .panic_handler(move |p| *s2.lock().unwrap() = Some((p.message().to_owned(), p.posted_from().line())))
///     .build()
///     .unwrap();
/// let line = line!() + 1;
/// pool.post_task(TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown), || panic!("oops")).unwrap();
/// pool.shutdown();
/// assert_eq!(*seen.lock().unwrap(), Some(("oops".to_owned(), line)));
/// ```
#[derive(Debug)]
pub struct TaskPanic {
    message: String,
    posted_from: &'static Location<'static>,
}

impl TaskPanic {
    /// The panic message (`"<non-string panic payload>"` if the payload was not a string).
    ///
    /// See [`TaskPanic`] for an example.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panicking task was posted from.
    ///
    /// See [`TaskPanic`] for an example.
    pub fn posted_from(&self) -> &'static Location<'static> {
        self.posted_from
    }
}

/// `shutdown_timeout` gave up waiting: what was still running or pending then.
///
/// ```
/// # use std::time::Duration;
/// # use taskrunner::{ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let (started_tx, started) = std::sync::mpsc::channel();
/// pool.post_task(TaskTraits::default(), move || { started_tx.send(()).unwrap(); let _ = rx.recv(); }).unwrap();
/// started.recv().unwrap();
/// let err = pool.shutdown_timeout(Duration::from_millis(20)).unwrap_err();
/// assert_eq!(err.running().len(), 1);
/// drop(tx); // let the task finish; shutdown then completes by itself
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownTimedOut {
    running: Vec<RunningTask>,
    pending: usize,
}

impl ShutdownTimedOut {
    /// The tasks that were running when the timeout expired.
    ///
    /// See [`ShutdownTimedOut`] for an example.
    pub fn running(&self) -> &[RunningTask] {
        &self.running
    }

    /// The number of items still blocking shutdown (running skip-on-shutdown tasks and
    /// block-shutdown sources not yet drained).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.shutdown_timeout(std::time::Duration::from_secs(1)).is_ok());
    /// ```
    pub fn pending_items(&self) -> usize {
        self.pending
    }
}

impl fmt::Display for ShutdownTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread pool shutdown timed out with {} item(s) blocking it; still running:",
            self.pending
        )?;
        for r in &self.running {
            write!(
                f,
                " [{:?} {:?} task posted from {}]",
                r.priority, r.shutdown_behavior, r.posted_from
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownTimedOut {}

pub(crate) struct Config {
    pub(crate) name_prefix: String,
    pub(crate) thread_name: Option<StdArc<dyn Fn(usize) -> String + Send + Sync>>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) idle_timeout: Duration,
    /// A tokio runtime that futures' polls enter (`ThreadPoolBuilder::tokio_handle`).
    #[cfg(feature = "tokio")]
    pub(crate) tokio: Option<tokio::runtime::Handle>,
}

impl Config {
    /// The name of worker `index`. A user naming function that panics falls back to the
    /// default name (a panic here would unwind through the scheduler), and NUL bytes, which
    /// thread names cannot hold, are replaced.
    pub(crate) fn thread_name(&self, index: usize) -> String {
        let name = self
            .thread_name
            .as_ref()
            .and_then(|f| crate::unwind::catch(|| f(index)).ok());
        sanitize(name.unwrap_or_else(|| format!("{}-worker-{index}", self.name_prefix)))
    }

    pub(crate) fn service_thread_name(&self) -> String {
        sanitize(format!("{}-delay", self.name_prefix))
    }

    pub(crate) fn dedicated_thread_name(&self, index: usize) -> String {
        sanitize(format!("{}-single-{index}", self.name_prefix))
    }
}

fn sanitize(name: String) -> String {
    if name.contains('\0') {
        name.replace('\0', "?")
    } else {
        name
    }
}

/// The pool's shared state. Runners and `ThreadPool` hold it through a counted [`PoolRef`];
/// worker, service and dedicated threads hold plain `Arc`s.
pub(crate) struct Inner {
    pub(crate) group: Group,
    pub(crate) tracker: Tracker,
    pub(crate) delay: DelayManager,
    pub(crate) clock: StdArc<dyn Clock>,
    pub(crate) config: Config,
    /// Live user handles (`ThreadPool`, runners). At zero the pool winds down.
    handles: AtomicUsize,
    dedicated: Mutex<Vec<Arc<Dedicated>>>,
    next_dedicated: AtomicUsize,
    /// Serialises last-handle-dropped against handle-revived.
    lifecycle: Mutex<()>,
    /// Serialises completion checks.
    completion: Mutex<()>,
    /// A test environment installed this pool as the global pool for its scope: free
    /// functions called from this pool's own threads use it.
    #[cfg(feature = "test-util")]
    pub(crate) acts_as_global: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolInner")
            .field("max_workers", &self.group.max_workers)
            .field("shutdown_started", &self.tracker.shutdown_started())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn new(
        max_workers: usize,
        be: usize,
        config: Config,
        clock: StdArc<dyn Clock>,
    ) -> Self {
        Inner {
            group: Group::new(max_workers, be),
            tracker: Tracker::new(),
            delay: DelayManager::new(),
            clock,
            config,
            handles: AtomicUsize::new(0),
            dedicated: Mutex::new(Vec::new()),
            next_dedicated: AtomicUsize::new(0),
            lifecycle: Mutex::new(()),
            completion: Mutex::new(()),
            #[cfg(feature = "test-util")]
            acts_as_global: std::sync::atomic::AtomicBool::new(false),
        }
    }

    // ---- posting -------------------------------------------------------------------------

    /// Posts an immediate task to a sequence (admission already passed).
    pub(crate) fn push_to_sequence(this: &Arc<Self>, seq: &Arc<Sequence>, task: Task) {
        match seq.push(task, &this.tracker) {
            Push::Enqueue(key) => match &seq.home {
                crate::scheduler::Home::Pool => {
                    this.group.push_sequence(key, Arc::clone(seq)).run(this);
                }
                crate::scheduler::Home::Dedicated(d) => d.schedule(this, seq),
            },
            Push::Done => {}
            // Admission passed but shutdown started before registration: the task never runs
            // (the post raced with shutdown, which is allowed to skip it).
            Push::Refused(task) => drop_quietly(task),
        }
    }

    /// Pushes a one-off task. A block-shutdown one-off must already be registered with the
    /// tracker (its item is released after it runs).
    pub(crate) fn push_one_off(this: &Arc<Self>, traits: TaskTraits, task: Task, ripe: bool) {
        this.group
            .push_one_off(OneOff { task, traits }, ripe)
            .run(this);
    }

    /// The common posting path of every runner. `F` is handed back on refusal.
    pub(crate) fn post<F>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post_mapped(this, dest, delay, f, |f| f, posted_from)
    }

    /// Posts `wrap(f)`; on refusal `f` itself is handed back (so wrappers built by the crate,
    /// e.g. `SequenceBound`'s, never leak into a `PostError`).
    pub(crate) fn post_mapped<F, G>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        wrap: impl FnOnce(F) -> G,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        G: FnOnce() + Send + 'static,
    {
        match Inner::admit(this, &dest, delay) {
            Ok(block_now) => {
                let job: BoxedFn = Box::new(wrap(f));
                let _ = Inner::submit(this, dest, delay, Task::new(job, posted_from), block_now);
                Ok(())
            }
            Err(reason) => Err(PostError::new(reason, f)),
        }
    }

    /// Like [`post`](Inner::post), returning a handle to the task's result. The closure and
    /// the result cell share one allocation.
    pub(crate) fn post_with_result<F, T>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_mapped_with_result(this, dest, delay, f, |f| f, posted_from)
    }

    /// [`post_with_result`](Inner::post_with_result) of `wrap(f)`, handing back `f` on refusal.
    pub(crate) fn post_mapped_with_result<F, G, T>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        wrap: impl FnOnce(F) -> G,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        G: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match Inner::admit(this, &dest, delay) {
            Ok(block_now) => {
                let (job, cell) = new_cell(wrap(f));
                let sequence = match &dest {
                    PostDest::Sequence(s) => s.token,
                    PostDest::Parallel(_) => 0,
                };
                let entry = Inner::submit(
                    this,
                    dest,
                    delay,
                    Task::from_job(Job::Cell(job), posted_from),
                    block_now,
                );
                let handle = TaskHandle::from_cell(cell).on_sequence(sequence);
                #[cfg(feature = "test-util")]
                let handle = handle
                    .on_seeded_pool(this.group.is_manual())
                    .on_mock_pool(this);
                Ok(match entry {
                    Some(id) => handle.with_delay_entry(this, id),
                    None => handle,
                })
            }
            Err(reason) => Err(PostError::new(reason, f)),
        }
    }

    /// Post-and-reply: runs `wrap(task)` at `dest`, then posts `reply(value)` to the sequence
    /// that is current at the call. See `SequencedTaskRunner::post_task_and_reply_with_result`.
    pub(crate) fn post_and_reply<F, G, T, R>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        task: F,
        wrap: impl FnOnce(F) -> G,
        reply: R,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<(F, R)>>
    where
        G: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        let Some((origin_seq, origin_pool)) = current::current_sequence() else {
            return Err(PostError::new(
                PostRefusal::NoCurrentSequence,
                (task, reply),
            ));
        };
        let block_now = match Inner::admit(this, &dest, Duration::ZERO) {
            Ok(b) => b,
            Err(reason) => return Err(PostError::new(reason, (task, reply))),
        };
        let origin = PoolRef::from_inner(&origin_pool);
        let task = wrap(task);
        let job: BoxedFn = Box::new(move || {
            let value = task();
            // The reply goes back to the origin sequence with the value moved into it. If the
            // origin refuses it (shutdown, or its thread exited), the reply is dropped here,
            // unrun: it is `Send`, so dropping it on this sequence is sound, and unlike
            // Chromium (which leaks it) nothing leaks.
            let _ = Inner::post(
                origin.inner(),
                PostDest::Sequence(&origin_seq),
                Duration::ZERO,
                move || reply.call(value),
                posted_from,
            );
        });
        let _ = Inner::submit(
            this,
            dest,
            Duration::ZERO,
            Task::new(job, posted_from),
            block_now,
        );
        Ok(())
    }

    /// Admission, before the closure is boxed so that a refusal can hand it back. Returns
    /// whether the post holds a temporary block-shutdown item that `submit` must release.
    pub(crate) fn admit(
        this: &Arc<Self>,
        dest: &PostDest<'_>,
        delay: Duration,
    ) -> Result<bool, PostRefusal> {
        let delayed = !delay.is_zero();
        let behavior = match dest {
            PostDest::Sequence(s) => s.shutdown,
            PostDest::Parallel(t) => t.get_shutdown_behavior(),
        };
        this.tracker.will_post(behavior, delayed)?;
        let pool_homed = match dest {
            PostDest::Sequence(s) => matches!(s.home, Home::Pool),
            PostDest::Parallel(_) => true,
        };
        if pool_homed && this.group.is_stalled() {
            Inner::retry_start(this)?;
        }
        if let PostDest::Sequence(s) = dest {
            if s.is_poisoned() {
                return Err(PostRefusal::SequencePoisoned);
            }
            if let Home::Dedicated(d) = &s.home {
                if d.is_dead() {
                    if d.spawn_failed() {
                        return Err(PostRefusal::ThreadSpawnFailed);
                    }
                    return Err(PostRefusal::ThreadExited);
                }
            }
        }
        // An immediate block-shutdown post takes a shutdown item *before* the closure is boxed:
        // if shutdown has completed in the meantime the closure is handed back, and otherwise
        // shutdown cannot complete until the task is queued (where it holds its own item: the
        // one-off keeps this one, a sequence registers on idle → queued and this one is
        // released right after the push).
        let block_now = behavior == ShutdownBehavior::BlockShutdown && !delayed;
        if block_now {
            this.tracker.register_block()?;
        }
        Ok(block_now)
    }

    /// The pool has no worker and the last start failed: try again now; refuse the post if no
    /// thread can be started still (the closure is handed back).
    #[cold]
    fn retry_start(this: &Arc<Self>) -> Result<(), PostRefusal> {
        this.group.retry_start().run(this);
        if this.group.is_stalled() {
            Err(PostRefusal::ThreadSpawnFailed)
        } else {
            Ok(())
        }
    }

    /// Shutdown of a pool whose workers cannot start: what is queued can never run, so it is
    /// discarded now (handles resolve as not run) and its shutdown items are released, instead
    /// of shutdown waiting for it forever.
    fn abandon_if_stalled(this: &Arc<Self>) {
        if !this.group.is_stalled() {
            return;
        }
        this.group.retry_start().run(this);
        let Some(sources) = this.group.take_stalled_work() else {
            return;
        };
        tracing::error!(
            target: "taskrunner",
            sources = sources.len(),
            "shutdown discards queued work that no thread can run (worker threads cannot be started)"
        );
        for source in sources {
            let block = match &source {
                Source::Sequence(seq) => seq.shutdown == ShutdownBehavior::BlockShutdown,
                Source::Single(one) => {
                    one.traits.get_shutdown_behavior() == ShutdownBehavior::BlockShutdown
                }
            };
            this.discard(source);
            if block {
                Inner::check_completion(this, this.tracker.unregister_block());
            }
        }
    }

    /// Queues an admitted task: now, or through the delay manager (then returns the id of its
    /// pending entry, so a cancelled handle can remove it).
    fn submit(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        mut task: Task,
        block_now: bool,
    ) -> Option<DelayId> {
        if delay.is_zero() {
            match dest {
                PostDest::Sequence(s) => {
                    Inner::push_to_sequence(this, s, task);
                    if block_now {
                        Inner::check_completion(this, this.tracker.unregister_block());
                    }
                }
                PostDest::Parallel(t) => Inner::push_one_off(this, t, task, false),
            }
            return None;
        }
        task.was_delayed = true;
        // A delay too large for `Instant` (`Duration::MAX`) means never: the task waits, can be
        // cancelled, and is dropped unrun at shutdown, but never ripens.
        let run_at = Deadline::after(this.clock.now(), delay);
        let dest = match dest {
            PostDest::Sequence(s) => Destination::Sequence(Arc::clone(s)),
            PostDest::Parallel(t) => Destination::Parallel(t),
        };
        match this.delay.add(this, run_at, task, dest) {
            Ok(id) => Some(id),
            Err(task) => {
                // Shutdown stopped the delay manager after admission: the task never runs (a
                // handle resolves as not run).
                drop_quietly(task);
                None
            }
        }
    }

    /// Forwards one ripe task (see [`forward_ripe_batch`](Inner::forward_ripe_batch)).
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    pub(crate) fn forward_ripe(this: &Arc<Self>, dest: Destination, task: Task) {
        let mut ready = Vec::new();
        Inner::prepare_ripe(this, dest, task, &mut ready);
        if !ready.is_empty() {
            this.group.push_ripe_batch(ready).run(this);
        }
    }

    /// Called by the delay service thread (or a test environment) with everything ripe at one
    /// moment, in (run time, post) order. The tasks join the tail of their sequences, and every
    /// source that became ready enters the ready queue **in one step**: a worker sees all of
    /// them or none, so tasks that ripen together are picked by priority, then age, exactly as
    /// if they had been posted at once (a one-worker test environment runs them in that order
    /// every time).
    pub(crate) fn forward_ripe_batch(this: &Arc<Self>, ripe: impl IntoIterator<Item = Delayed>) {
        let mut ready = Vec::new();
        for d in ripe {
            Inner::prepare_ripe(this, d.dest, d.task, &mut ready);
        }
        if !ready.is_empty() {
            this.group.push_ripe_batch(ready).run(this);
        }
    }

    /// Appends a ripe task to its destination; a source that became ready is collected in
    /// `ready` for the caller to push into the group. Inline callbacks run here.
    fn prepare_ripe(this: &Arc<Self>, dest: Destination, mut task: Task, ready: &mut Vec<Ready>) {
        if this.tracker.shutdown_started() {
            drop_quietly(task);
            drop_quietly(dest);
            return;
        }
        task.mark_ready();
        match dest {
            Destination::Sequence(s) => match s.push(task, &this.tracker) {
                Push::Enqueue(key) => match &s.home {
                    Home::Pool => ready.push(Ready::Sequence(key, s)),
                    Home::Dedicated(d) => d.schedule(this, &s),
                },
                Push::Done => {}
                Push::Refused(task) => drop_quietly(task),
            },
            Destination::Parallel(t) => {
                if t.get_shutdown_behavior() == ShutdownBehavior::BlockShutdown
                    && this.tracker.register_block().is_err()
                {
                    // Shutdown completed since the check above: delayed tasks never run then.
                    drop_quietly(task);
                    return;
                }
                ready.push(Ready::OneOff(OneOff { task, traits: t }));
            }
            Destination::Inline => {
                let posted_from = task.posted_from;
                if let Job::Fn(f) = task.job {
                    if let Err(p) = crate::unwind::catch(f) {
                        tracing::error!(
                            target: "taskrunner",
                            message = %p.message(),
                            posted_from = %posted_from,
                            "a timer callback panicked"
                        );
                    }
                }
            }
        }
    }

    /// Runs `f` on the delay manager's thread after `delay` (pool clock): for short internal
    /// callbacks (deadlines) that must not wait for a worker. `None` if the delay manager has
    /// stopped (shutdown); `f` is then dropped. Cancel with `self.delay.cancel(id)`.
    pub(crate) fn add_timer_callback(
        this: &Arc<Self>,
        delay: Duration,
        f: Box<dyn FnOnce() + Send>,
        posted_from: &'static Location<'static>,
    ) -> Option<DelayId> {
        if this.tracker.shutdown_started() {
            return None;
        }
        let run_at = Deadline::after(this.clock.now(), delay);
        let mut task = Task::new(f, posted_from);
        task.was_delayed = true;
        match this.delay.add(this, run_at, task, Destination::Inline) {
            Ok(id) => Some(id),
            Err(task) => {
                drop_quietly(task);
                None
            }
        }
    }

    /// Test environments: forwards every delayed task ripe at the clock's current time, in
    /// (run time, post) order, as the service thread would.
    #[cfg(feature = "test-util")]
    pub(crate) fn forward_ripe_now(this: &Arc<Self>) {
        Inner::forward_ripe_batch(this, this.delay.take_ripe(this.clock.now()));
    }

    /// Test environments: `true` if no dedicated thread has work scheduled or running.
    #[cfg(feature = "test-util")]
    pub(crate) fn dedicated_quiet(&self) -> bool {
        self.dedicated.lock().iter().all(|d| d.is_quiet())
    }

    /// Runs the completion check if `c` asks for it.
    pub(crate) fn check_completion(this: &Arc<Self>, c: Completion) {
        if c == Completion::Check {
            Inner::maybe_complete_shutdown(this);
        }
    }

    /// Drops a source that will never run (shutdown completed).
    pub(crate) fn discard(&self, s: Source) {
        match s {
            Source::Sequence(seq) => drop_each_quietly(seq.clear()),
            Source::Single(one) => drop_quietly(one),
        }
    }

    // ---- panics ----------------------------------------------------------------------------

    pub(crate) fn report_panic_message(
        &self,
        posted_from: &'static Location<'static>,
        message: String,
    ) {
        tracing::error!(target: "taskrunner", posted_from = %posted_from, "task panicked: {message}");
        if let Some(h) = &self.config.panic_handler {
            let p = TaskPanic {
                message,
                posted_from,
            };
            // The handler's own panic is caught, and so is a panic of its payload's destructor.
            if let Err(payload) = crate::unwind::catch(|| h(&p)) {
                tracing::error!(
                    target: "taskrunner",
                    message = %payload.message(),
                    "the pool's panic handler panicked"
                );
            }
        }
    }

    // ---- shutdown --------------------------------------------------------------------------

    /// Seeded test mode: starts shutdown without waiting (the test thread then runs what
    /// shutdown still needs).
    #[cfg(feature = "test-util")]
    pub(crate) fn start_shutdown_nowait(this: &Arc<Self>) {
        Inner::start_shutdown(this);
    }

    /// Starts shutdown (idempotent).
    fn start_shutdown(this: &Arc<Self>) {
        if this.tracker.start_shutdown() {
            tracing::debug!(target: "taskrunner", "thread pool shutdown started");
            // Delayed tasks never block shutdown and never run after it starts.
            drop_each_quietly(this.delay.stop());
        }
        Inner::maybe_complete_shutdown(this);
    }

    /// The completion check (see `tracker.rs`): shutdown started, no block item left, no skip
    /// task running in any slot. Serialised by the completion lock; the tracker's CAS picks
    /// exactly one winner, who runs the completion duties.
    pub(crate) fn maybe_complete_shutdown(this: &Arc<Self>) {
        if !this.tracker.shutdown_started() || this.tracker.shutdown_completed() {
            return;
        }
        let won = {
            let _g = this.completion.lock();
            this.tracker.pending_items() == 0
                && !this.group.workers().iter().any(|w| w.runs_skip_task())
                && !this
                    .dedicated
                    .lock()
                    .iter()
                    .any(|d| d.worker.runs_skip_task())
                && this.tracker.try_complete()
        };
        if won {
            Inner::complete_shutdown(this);
        }
    }

    /// The completion duties, run by whoever completed shutdown: discard everything queued,
    /// wake every worker so it exits, stop dedicated threads, release waiters.
    pub(crate) fn complete_shutdown(this: &Arc<Self>) {
        // Destructors of the discarded work run on this thread; one that calls `shutdown()`
        // must not wait for the end of these duties (see `shutdown_and_wait`).
        current::set_completing(Some(Arc::as_ptr(this) as usize));
        let _reset = ResetCompleting;
        this.group.complete().run(this);
        drop_each_quietly(this.delay.stop());
        let dedicated: Vec<_> = this.dedicated.lock().clone();
        // Tasks queued behind a continue-on-shutdown task that is still running can never run
        // now: drop them instead of keeping them until that task ends.
        let workers = this.group.workers();
        let continuing = workers
            .iter()
            .map(|w| &**w)
            .chain(dedicated.iter().map(|d| &d.worker))
            .filter_map(|w| w.continue_sequence())
            .collect::<Vec<_>>();
        for seq in continuing {
            drop_each_quietly(seq.drain_pending());
        }
        for d in dedicated {
            d.request_exit();
        }
        tracing::debug!(target: "taskrunner", "thread pool shutdown completed");
        this.tracker.signal_completed();
    }

    fn shutdown_and_wait(
        this: &Arc<Self>,
        timeout: Option<Duration>,
    ) -> Result<(), ShutdownTimedOut> {
        let addr = Arc::as_ptr(this) as usize;
        let own_thread = current::is_thread_of(addr);
        if timeout.is_none() && own_thread && current::in_task() {
            panic!(
                "ThreadPool::shutdown() was called from inside a task of the same pool: it would wait for that task forever. \
                 Call it from outside the pool, or use shutdown_timeout()"
            );
        }
        if current::is_completing(addr) {
            // A destructor run by the completion duties themselves (a discarded task): shutdown
            // has completed; waiting for the end of the duties would wait for this very call.
            return Ok(());
        }
        Inner::start_shutdown(this);
        Inner::abandon_if_stalled(this);
        if own_thread && !current::in_task() && timeout.is_none() {
            // A destructor run by one of the pool's own threads (a discarded task, a
            // sequence-local value): that thread may be what shutdown waits for, so shutdown is
            // started and the call returns without waiting (see `ThreadPool::shutdown`).
            return Ok(());
        }
        Inner::start_shutdown(this);
        if !this.tracker.wait_completed(timeout) {
            let mut running: Vec<RunningTask> = this
                .group
                .workers()
                .iter()
                .filter_map(|w| w.running())
                .collect();
            running.extend(
                this.dedicated
                    .lock()
                    .iter()
                    .filter_map(|d| d.worker.running()),
            );
            let running_skip = running
                .iter()
                .filter(|r| r.shutdown_behavior == ShutdownBehavior::SkipOnShutdown)
                .count();
            return Err(ShutdownTimedOut {
                running,
                pending: this.tracker.pending_items() + running_skip,
            });
        }
        if !own_thread {
            this.join_threads();
        }
        Ok(())
    }

    /// Joins worker and dedicated threads that have no continue-on-shutdown task running
    /// (those may outlive shutdown, as in Chromium). Never joins the calling thread.
    #[cfg(loom)]
    fn join_threads(&self) {}

    #[cfg(not(loom))]
    fn join_threads(&self) {
        let me = std::thread::current().id();
        let join = |h: Option<std::thread::JoinHandle<()>>| {
            if let Some(h) = h {
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        };
        let continues = |w: &WorkerShared| {
            w.running()
                .is_some_and(|r| r.shutdown_behavior == ShutdownBehavior::ContinueOnShutdown)
        };
        for w in self
            .group
            .workers()
            .into_iter()
            .chain(self.group.take_exited())
        {
            if !continues(&w) {
                // Taken out first: the handle's lock must not be held while joining (the
                // worker may be running a destructor that takes it).
                let handle = w.join.lock().take();
                join(handle);
            }
        }
        let dedicated: Vec<_> = self.dedicated.lock().clone();
        for d in dedicated {
            if !continues(&d.worker) {
                d.join();
            }
        }
        join(self.delay.take_thread());
    }

    /// A dedicated thread is exiting. Once shutdown has started it stays listed, so that
    /// `shutdown()` joins it even if it exits before `join_threads` gets to it; before that, its
    /// owner joins it and the entry goes (the list stays bounded by live runners).
    pub(crate) fn forget_dedicated(&self, d: &Arc<Dedicated>) {
        if !self.tracker.shutdown_started() {
            self.dedicated.lock().retain(|x| !Arc::ptr_eq(x, d));
        }
    }

    // ---- handles ---------------------------------------------------------------------------

    /// The last user handle was dropped: wind down (queued immediate work still runs, pending
    /// delayed tasks are dropped, idle workers exit). Serialised with [`Inner::handle_revived`] by the
    /// lifecycle lock, and re-checks the count under it, so a handle that came back in between
    /// (`SequencedTaskRunner::current()` inside a still-running task) wins.
    fn last_handle_dropped(this: &Arc<Self>) {
        let g = this.lifecycle.lock();
        if this.handles.load(Ordering::Acquire) != 0 {
            return;
        }
        let pending = this.delay.stop();
        this.group.set_terminating(true).run(this);
        drop(g);
        // Dropped after the lock: a destructor may revive a handle, which takes it again.
        drop_each_quietly(pending);
    }

    fn handle_revived(this: &Arc<Self>) {
        let _g = this.lifecycle.lock();
        if !this.tracker.shutdown_started() {
            this.delay.reopen();
        }
        this.group.set_terminating(false).run(this);
    }

    /// Loom models: an `Inner` that starts no thread by itself (no handle, so no lifecycle
    /// calls; models take worker spawn requests out of `Wakeups` and run them as model threads).
    #[cfg(all(test, loom))]
    pub(crate) fn new_for_loom(max_workers: usize, max_best_effort: usize) -> Arc<Self> {
        let config = Config {
            name_prefix: "loom".to_owned(),
            thread_name: None,
            stack_size: None,
            panic_handler: None,
            idle_timeout: Duration::from_secs(1),
            #[cfg(feature = "tokio")]
            tokio: None,
        };
        let clock: StdArc<dyn Clock> = StdArc::new(crate::clock::SystemClock);
        Arc::new(Inner::new(max_workers, max_best_effort, config, clock))
    }

    /// Loom models: the real (private) shutdown entry point, without the wait.
    #[cfg(all(test, loom))]
    pub(crate) fn start_shutdown_for_loom(this: &Arc<Self>) {
        Inner::start_shutdown(this);
    }
}

/// Clears the "running completion duties" mark, also if a duty unwinds.
struct ResetCompleting;

impl Drop for ResetCompleting {
    fn drop(&mut self) {
        current::set_completing(None);
    }
}

/// Where a post goes.
pub(crate) enum PostDest<'a> {
    Sequence(&'a Arc<Sequence>),
    Parallel(TaskTraits),
}

/// A counted handle to the pool: when the last one drops, the pool winds down (queued
/// immediate tasks still run, pending delayed tasks are dropped, threads exit).
pub(crate) struct PoolRef(Arc<Inner>);

impl PoolRef {
    fn new(inner: Arc<Inner>) -> Self {
        if inner.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            // First handle, or a handle coming back after the last one dropped.
            Inner::handle_revived(&inner);
        }
        PoolRef(inner)
    }

    pub(crate) fn from_inner(inner: &Arc<Inner>) -> Self {
        Self::new(Arc::clone(inner))
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.0
    }
}

impl Clone for PoolRef {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        PoolRef(Arc::clone(&self.0))
    }
}

impl Drop for PoolRef {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            Inner::last_handle_dropped(&self.0);
        }
    }
}

impl fmt::Debug for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A pool of worker threads with a priority scheduler, sequenced runners and a delay manager.
///
/// Build one with [`ThreadPool::builder`] (for a library or a test), or use the process-wide
/// pool through [`ThreadPool::global`] and the crate's free functions. Cloning is cheap (a
/// reference count); all clones and all runners created from the pool share it.
///
/// **Lifetime.** [`shutdown`](ThreadPool::shutdown) applies Chromium's contract (see
/// [`ShutdownBehavior`]). Without it, when the last `ThreadPool` clone and the last runner of a
/// non-global pool are dropped, the pool winds down like rayon's: tasks already queued still
/// run, pending delayed tasks are dropped unrun, and the threads exit once idle.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{ThreadPool, TaskTraits, TaskPriority};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::UserVisible));
/// let (tx, rx) = mpsc::channel();
/// for i in 0..5 {
///     let tx = tx.clone();
///     seq.post_task(move || tx.send(i).unwrap()).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
/// pool.shutdown();
/// ```
#[derive(Clone, Debug)]
pub struct ThreadPool {
    r: PoolRef,
}

impl ThreadPool {
    pub(crate) fn from_parts(
        max_workers: usize,
        be: usize,
        config: Config,
        clock: StdArc<dyn Clock>,
    ) -> Self {
        ThreadPool {
            r: PoolRef::new(Arc::new(Inner::new(max_workers, be, config, clock))),
        }
    }

    /// A builder with the defaults.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert_eq!(pool.max_workers(), 1);
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The process-wide pool. Built with the defaults on first use unless
    /// [`ThreadPoolBuilder::build_global`] installed one first.
    ///
    /// ```
    /// let g = taskrunner::ThreadPool::global();
    /// assert!(g.max_workers() >= 1);
    /// ```
    pub fn global() -> &'static ThreadPool {
        global::get()
    }

    /// Posts a one-off task that runs in parallel with everything else (no ordering).
    ///
    /// Refused (closure handed back) once shutdown has started, unless `traits` say
    /// `BlockShutdown` and shutdown has not completed. A panic in the task is caught, reported,
    /// and does not affect the worker.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.post_task(TaskTraits::default(), move || tx.send("hi").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hi");
    /// ```
    #[track_caller]
    pub fn post_task<F>(&self, traits: TaskTraits, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.r.inner(),
            PostDest::Parallel(traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a one-off task that runs no sooner than `delay` from now (by the pool's clock).
    /// Refused once shutdown has started (delayed tasks never block shutdown).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let start = Instant::now();
    /// pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(20), move || tx.send(Instant::now()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap() - start >= Duration::from_millis(20));
    /// ```
    #[track_caller]
    pub fn post_delayed_task<F>(
        &self,
        traits: TaskTraits,
        delay: Duration,
        f: F,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Inner::post(
            self.r.inner(),
            PostDest::Parallel(traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// Posts a one-off parallel task and returns a [`TaskHandle`] to its result.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || "hello".len()).unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn post_task_with_result<F, T>(
        &self,
        traits: TaskTraits,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.r.inner(),
            PostDest::Parallel(traits),
            Duration::ZERO,
            f,
            Location::caller(),
        )
    }

    /// Posts a delayed one-off task and returns a [`TaskHandle`] to its result.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(5), || 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post_delayed_task_with_result<F, T>(
        &self,
        traits: TaskTraits,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::post_with_result(
            self.r.inner(),
            PostDest::Parallel(traits),
            delay,
            f,
            Location::caller(),
        )
    }

    /// A runner whose tasks run in parallel, in no particular order.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// r.post_task(move || tx.send(5).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn create_task_runner(&self, traits: TaskTraits) -> TaskRunner {
        TaskRunner::new(self.r.clone(), traits)
    }

    /// A runner whose tasks run one at a time, in posting order, on any worker.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_task(move || tx.send(s2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn create_sequenced_task_runner(&self, traits: TaskTraits) -> SequencedTaskRunner {
        SequencedTaskRunner::new(self.r.clone(), traits)
    }

    /// A sequenced runner whose priority can be updated later (see
    /// [`UpdateableSequencedTaskRunner`]).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskPriority, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::UserVisible.into());
    /// assert_eq!(seq.priority(), TaskPriority::UserVisible);
    /// ```
    pub fn create_updateable_sequenced_task_runner(
        &self,
        traits: TaskTraits,
    ) -> UpdateableSequencedTaskRunner {
        UpdateableSequencedTaskRunner::new(self.r.clone(), traits)
    }

    /// A runner with a dedicated thread of its own. The thread is joined when the last clone of
    /// the runner (or of a view from `as_sequenced`) is dropped outside the pool's threads
    /// (after it has run what was queued), or by `shutdown()`. Created after shutdown started,
    /// the runner has no thread and refuses every post.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// for _ in 0..2 {
    ///     let tx = tx.clone();
    ///     st.post_task(move || tx.send(std::thread::current().id()).unwrap()).unwrap();
    /// }
    /// assert_eq!(rx.recv().unwrap(), rx.recv().unwrap());
    /// ```
    pub fn create_single_thread_task_runner(&self, traits: TaskTraits) -> SingleThreadTaskRunner {
        let inner = self.r.inner();
        let index = inner.next_dedicated.fetch_add(1, Ordering::Relaxed);
        let d = Arc::new(Dedicated::new());
        let seq = Arc::new(Sequence::new(
            traits,
            crate::scheduler::Home::Dedicated(Arc::clone(&d)),
        ));
        if inner.tracker.shutdown_started() {
            // No thread: every post is refused (by shutdown, or as ThreadExited).
            d.mark_dead();
            return SingleThreadTaskRunner::new(self.r.clone(), seq, d);
        }
        #[cfg(feature = "test-util")]
        if inner.group.is_manual() {
            // Seeded single-thread test mode: every task runs on the test thread, so the
            // "dedicated thread" is that thread and the sequence competes in the group like any
            // other (thread affinity holds trivially).
            d.adopt_current_thread();
            let seq = Arc::new(Sequence::new(traits, crate::scheduler::Home::Pool));
            return SingleThreadTaskRunner::new(self.r.clone(), seq, d);
        }
        inner.dedicated.lock().push(Arc::clone(&d));
        Dedicated::start(
            inner,
            &d,
            Arc::clone(&seq),
            inner.config.dedicated_thread_name(index),
        );
        SingleThreadTaskRunner::new(self.r.clone(), seq, d)
    }

    /// Shuts the pool down and blocks until shutdown completes (Chromium's contract):
    ///
    /// 1. From now on posts are refused, except immediate `BlockShutdown` tasks (until
    ///    completion); pending delayed tasks are dropped unrun.
    /// 2. Queued `SkipOnShutdown` / `ContinueOnShutdown` tasks never run (they are dropped).
    /// 3. Running `SkipOnShutdown` tasks and every `BlockShutdown` task posted before completion
    ///    run to the end, and this call waits for them.
    /// 4. Running `ContinueOnShutdown` tasks are not waited for.
    ///
    /// Then worker threads are joined (except any still running a continue-on-shutdown task).
    /// Idempotent. Panics if called from inside a task of this pool (it would wait for itself);
    /// use [`shutdown_timeout`](ThreadPool::shutdown_timeout) there. Called on one of the
    /// pool's own threads outside a task (a destructor of a task the pool discards), it starts
    /// shutdown and returns without waiting: that thread may be what shutdown waits for.
    ///
    /// Work that no thread can run (the pool's worker threads cannot be started) does not hold
    /// shutdown up: it is discarded, and its handles resolve as not run.
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// # use taskrunner::{ThreadPool, TaskTraits, ShutdownBehavior};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r2 = ran.clone();
    /// let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    /// pool.post_task(block, move || r2.store(true, Ordering::SeqCst)).unwrap();
    /// pool.shutdown();
    /// assert!(ran.load(Ordering::SeqCst)); // block-shutdown work always runs
    /// assert!(pool.post_task(TaskTraits::default(), || ()).is_err());
    /// ```
    pub fn shutdown(&self) {
        let _ = Inner::shutdown_and_wait(self.r.inner(), None);
    }

    /// Like [`shutdown`](ThreadPool::shutdown) but gives up waiting after `timeout` and reports
    /// what was still running. Shutdown still completes later, by itself, when those finish.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(1)).is_ok());
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), ShutdownTimedOut> {
        Inner::shutdown_and_wait(self.r.inner(), Some(timeout))
    }

    /// `true` once shutdown has started.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.r.inner().tracker.shutdown_started()
    }

    /// The most workers that run at once.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert_eq!(ThreadPool::builder().max_workers(3).build().unwrap().max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.r.inner().group.max_workers
    }

    /// The most best-effort tasks that run at once.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// assert_eq!(ThreadPool::builder().max_workers(8).build().unwrap().max_best_effort_workers(), 2);
    /// ```
    pub fn max_best_effort_workers(&self) -> usize {
        self.r.inner().group.max_best_effort
    }

    /// Worker threads alive right now (workers start lazily and exit when idle too long).
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.live_workers(), 0); // nothing posted yet
    /// ```
    pub fn live_workers(&self) -> usize {
        self.r.inner().group.workers().len()
    }

    /// Delayed tasks waiting in the delay manager.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ()).unwrap();
    /// assert_eq!(pool.pending_delayed_tasks(), 1);
    /// ```
    pub fn pending_delayed_tasks(&self) -> usize {
        self.r.inner().delay.len()
    }

    /// "Now" by this pool's clock.
    ///
    /// ```
    /// # use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().build().unwrap();
    /// assert!(pool.now() <= std::time::Instant::now());
    /// ```
    pub fn now(&self) -> Instant {
        self.r.inner().clock.now()
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn from_ref(r: PoolRef) -> Self {
        ThreadPool { r }
    }

    pub(crate) fn pool_ref(&self) -> &PoolRef {
        &self.r
    }
}
