//! `Engine`: the engine behind a `ThreadPool`. It owns the tracker, the thread group and the
//! delay manager, and is what every post goes through and every worker runs on:
//!
//! * **post** (`admit` → `submit`): admission by the tracker (shutdown), then a [`Work`] entry
//!   into the ready queue of its priority, kept on the posting worker when that overtakes
//!   nothing (`worker::try_keep_local`), or into the delay manager;
//! * **forward** (`forward_ripe`): the delay manager's callback for ripe tasks;
//! * **run** (`run_work`): a worker's entry, through its sequence's turn-taking
//!   ([`Sequence::begin`] / [`Sequence::finish`]), the running slot (shutdown), the task's
//!   context (thread-locals), and panic reporting.
//!
//! The shutdown protocol lives in `shutdown.rs`, the public facade in `mod.rs`.

use std::fmt;
use std::panic::Location;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::base::clock::Clock;
use crate::base::deadline::Deadline;
use crate::base::error::{PostError, PostRefusal};
#[cfg(loom)]
use crate::base::shim::Ordering;
use crate::base::shim::{Arc, AtomicUsize, Mutex};
use crate::base::traits::{PanicPolicy, ShutdownBehavior, TaskPriority};
use crate::base::unwind::{drop_each_quietly, drop_quietly};
use crate::engine::current::{self, TaskKind, TaskScope};
use crate::engine::delay::{DelayId, DelayManager, Delayed, Destination};
use crate::engine::gate::{FenceKind, Gate};
use crate::engine::metrics::{Counters, Flow};
use crate::engine::scheduler::{Begin, Home, Sequence, Work};
use crate::engine::task::{BoxedFn, Job, Task};
use crate::engine::tracker::{Completion, Tracker};
use crate::engine::worker::{Dedicated, DedicatedHost, Group, Host, RunningTask, WorkerShared};
use crate::engine::{Config, PostDest};

/// The bit that `Engine::sample_off` sets to turn timing off (no shard counts that far).
const SAMPLE_TOP: u64 = 1 << 63;

/// The pool's shared state. Runners and `ThreadPool` hold it through a counted [`PoolRef`];
/// worker, service and dedicated threads hold plain `Arc`s.
pub(crate) struct Engine {
    pub(crate) group: Group,
    pub(crate) tracker: Tracker,
    pub(crate) delay: DelayManager,
    /// Fences and the not-started state (`gate.rs`).
    pub(crate) gate: Gate,
    pub(crate) clock: StdArc<dyn Clock>,
    pub(crate) config: Config,
    /// Live user handles (`ThreadPool`, runners). At zero the pool winds down.
    pub(super) handles: AtomicUsize,
    pub(super) dedicated: Mutex<Vec<Arc<Dedicated>>>,
    pub(super) next_dedicated: AtomicUsize,
    /// Serialises last-handle-dropped against handle-revived.
    pub(super) lifecycle: Mutex<()>,
    /// Serialises completion checks.
    pub(super) completion: Mutex<()>,
    /// `sample_task_times - 1` (a power of two less one) with the top bit set, and the top
    /// bit alone if the pool times no task (else 0): see `push_work`.
    sample_mask: u64,
    sample_off: u64,
    /// The origin of the queue-time stamps that tracing reports.
    epoch: Instant,
    /// Tasks started, panicked, posts refused (`ThreadPool::metrics`).
    pub(crate) counters: Counters,
    /// Tasks in the queues or running (`ThreadPool::flush`).
    pub(crate) flow: Flow,
    /// Test environments: tasks posted and not yet run (see `TestEnvironment::run_until_idle`).
    #[cfg(feature = "test-util")]
    pub(crate) test: Option<crate::engine::tracker::TestHooks>,
    /// A test environment installed this pool as the global pool for its scope: free
    /// functions called from this pool's own threads use it.
    #[cfg(feature = "test-util")]
    pub(crate) acts_as_global: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.config.name_prefix)
            .field("max_workers", &self.group.max_workers)
            .field("shutdown_started", &self.tracker.shutdown_started())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new(
        max_workers: usize,
        be: usize,
        config: Config,
        clock: StdArc<dyn Clock>,
    ) -> Self {
        #[cfg(feature = "test-util")]
        let test = config
            .test_hooks
            .then(crate::engine::tracker::TestHooks::new);
        let every = config.sample_task_times;
        debug_assert!(every == 0 || every.is_power_of_two());
        let sample_mask = (u64::from(every.max(1)) - 1) | SAMPLE_TOP;
        let sample_off = if every == 0 { SAMPLE_TOP } else { 0 };
        Engine {
            group: Group::new(max_workers, be),
            tracker: Tracker::new(),
            delay: DelayManager::with_leeway(config.timer_leeway),
            gate: Gate::new(!config.not_started),
            clock,
            config,
            handles: AtomicUsize::new(0),
            dedicated: Mutex::new(Vec::new()),
            next_dedicated: AtomicUsize::new(0),
            lifecycle: Mutex::new(()),
            completion: Mutex::new(()),
            sample_mask,
            sample_off,
            epoch: Instant::now(),
            counters: Counters::default(),
            flow: Flow::default(),
            #[cfg(feature = "test-util")]
            test,
            #[cfg(feature = "test-util")]
            acts_as_global: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This pool's identity for thread-locals (worker, own-thread checks).
    #[inline]
    pub(crate) fn addr(this: &Arc<Self>) -> usize {
        Arc::as_ptr(this) as *const () as usize
    }

    // ---- posting ----------------------------------------------------------------------------

    /// The common posting path of every runner. `F` is handed back on refusal.
    #[inline]
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
        Engine::post_mapped(this, dest, delay, f, |f| f, posted_from)
    }

    /// Posts `wrap(f)`; on refusal `f` itself is handed back (so wrappers built by the crate,
    /// e.g. `SequenceBound`'s, never leak into a `PostError`).
    #[inline]
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
        match Engine::admit(this, &dest, delay) {
            Ok(block) => {
                let job: BoxedFn = Box::new(wrap(f));
                let _ = Engine::submit(this, dest, delay, Task::new(job, posted_from), block);
                Ok(())
            }
            Err(reason) => Err(PostError::new(reason, f)),
        }
    }

    /// Admission, before the closure is boxed so that a refusal can hand it back. Returns
    /// whether the post holds a block-shutdown item: an immediate `BlockShutdown` task takes one
    /// here and keeps it until it has run (or was dropped), so shutdown cannot complete before
    /// it runs, and a post racing completion is either counted or refused with its closure.
    #[inline]
    pub(crate) fn admit(
        this: &Arc<Self>,
        dest: &PostDest<'_>,
        delay: Duration,
    ) -> Result<bool, PostRefusal> {
        let admitted = Engine::admit_or_refuse(this, dest, delay, false);
        if admitted.is_err() {
            this.counters.refused();
        }
        admitted
    }

    /// [`admit`](Self::admit) for a runner's own `flush` marker: it is queued behind what the
    /// runner holds even after the runner was closed.
    pub(crate) fn admit_past_close(
        this: &Arc<Self>,
        dest: &PostDest<'_>,
    ) -> Result<bool, PostRefusal> {
        Engine::admit_or_refuse(this, dest, Duration::ZERO, true)
    }

    #[inline]
    fn admit_or_refuse(
        this: &Arc<Self>,
        dest: &PostDest<'_>,
        delay: Duration,
        past_close: bool,
    ) -> Result<bool, PostRefusal> {
        let delayed = !delay.is_zero();
        let behavior = match dest {
            PostDest::Sequence(s) => s.shutdown(),
            PostDest::Parallel(t) => t.shutdown_behavior,
            PostDest::Runner(r) => r.seq.shutdown(),
        };
        this.tracker.will_post(behavior, delayed)?;
        let pool_homed = match dest {
            PostDest::Sequence(s) => matches!(s.home, Home::Pool),
            PostDest::Parallel(_) | PostDest::Runner(_) => true,
        };
        if pool_homed && this.group.is_stalled() {
            Engine::retry_start(this)?;
        }
        if let PostDest::Runner(r) = dest {
            if !past_close && r.seq.is_closed() {
                return Err(PostRefusal::RunnerClosed);
            }
        }
        if let PostDest::Sequence(s) = dest {
            if s.is_poisoned() {
                return Err(PostRefusal::SequencePoisoned);
            }
            if !past_close && s.is_closed() {
                return Err(PostRefusal::RunnerClosed);
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
        let block = behavior == ShutdownBehavior::BlockShutdown && !delayed;
        if block {
            this.tracker.register_block()?;
        }
        Ok(block)
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

    /// Queues an admitted task: now, or through the delay manager (then returns the id of its
    /// pending entry, so a cancelled handle can remove it). A named runner's task is wrapped
    /// with its counters; whether a task is timed is decided when it enters a ready queue
    /// (`push_work`).
    #[inline]
    pub(crate) fn submit(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        task: Task,
        block: bool,
    ) -> Option<DelayId> {
        let named = match &dest {
            PostDest::Sequence(s) => s.is_named(),
            PostDest::Runner(r) => r.stats().is_some(),
            PostDest::Parallel(_) => false,
        };
        if named {
            return Engine::submit_named(this, dest, delay, task, block);
        }
        Engine::submit_untracked(this, dest, delay, task, block)
    }

    /// [`submit`](Self::submit) for a named runner: the job is wrapped with the runner's
    /// counters (and stamped, if sampled, for the runner's queue times).
    #[cold]
    #[inline(never)]
    fn submit_named(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        mut task: Task,
        block: bool,
    ) -> Option<DelayId> {
        let stamp = if delay.is_zero() {
            this.sample_stamp()
        } else {
            0
        };
        match &dest {
            PostDest::Runner(r) => {
                if let Some(stats) = r.stats() {
                    task.job = stats.track(task.job, stamp);
                }
            }
            PostDest::Sequence(s) => {
                if let Some(stats) = s.stats() {
                    task.job = stats.track(task.job, stamp);
                }
            }
            PostDest::Parallel(_) => {}
        }
        Engine::submit_stamped(this, dest, delay, task, block, stamp)
    }

    /// [`submit`](Self::submit) without a named runner's counters (also a `flush` marker).
    /// Whether the task is timed is decided when it enters a ready queue (`push_work`).
    #[inline]
    pub(crate) fn submit_untracked(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        task: Task,
        block: bool,
    ) -> Option<DelayId> {
        Engine::submit_stamped(this, dest, delay, task, block, 0)
    }

    /// Queues an admitted task whose post stamp (0: not sampled) was taken.
    #[inline]
    fn submit_stamped(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        task: Task,
        block: bool,
        stamp: u32,
    ) -> Option<DelayId> {
        if delay.is_zero() {
            match dest {
                PostDest::Runner(r) => {
                    let mut work = Work::of_runner(task, Arc::clone(&r.seq), false);
                    if stamp != 0 {
                        work.set_ready_at(stamp);
                    }
                    Engine::push_work(this, work);
                }
                PostDest::Sequence(s) => Engine::push_sequenced(this, s, task, false, block, stamp),
                PostDest::Parallel(t) => {
                    let mut work = Work::one_off(task, t, false);
                    if stamp != 0 {
                        work.set_ready_at(stamp);
                    }
                    Engine::push_work(this, work);
                }
            }
            return None;
        }
        // A delay too large for `Instant` (`Duration::MAX`) means never: the task waits, can be
        // cancelled, and is dropped unrun at shutdown, but never ripens.
        let run_at = Deadline::after(this.clock.now(), delay);
        let dest = match dest {
            PostDest::Sequence(s) => Destination::Sequence(Arc::clone(s)),
            PostDest::Parallel(t) => Destination::Parallel(t),
            PostDest::Runner(r) => Destination::Runner(Arc::clone(r)),
        };
        match Engine::add_delayed(this, run_at, task, dest) {
            Ok(id) => Some(id),
            Err(task) => {
                // Shutdown stopped the delay manager after admission: the task never runs (a
                // handle resolves as not run).
                this.counters.dropped(1);
                drop_quietly(task);
                None
            }
        }
    }

    /// Takes a delayed task out of the delay manager before it ripens (a cancelled handle, a
    /// stopped timer) and drops it, outside the delay lock (the entry may hold the last
    /// reference to a sequence), counting it as dropped.
    pub(crate) fn cancel_delayed_task(&self, id: DelayId) {
        if let Some(d) = self.delay.cancel(id) {
            if !matches!(d.dest, Destination::Inline) {
                self.counters.dropped(1);
            }
            drop_quietly(d);
        }
    }

    /// Adds a delayed entry; starts the service thread on the first one.
    pub(crate) fn add_delayed(
        this: &Arc<Self>,
        run_at: Deadline,
        task: Task,
        dest: Destination,
    ) -> Result<DelayId, Task> {
        let added = this.delay.add(run_at, task, dest)?;
        if added.register_waker {
            this.delay.register_clock_waker(&*this.clock);
        }
        if added.start_thread {
            Engine::start_service_thread(this);
        }
        Ok(added.id)
    }

    #[cfg(not(loom))]
    fn start_service_thread(this: &Arc<Self>) {
        let inner = Arc::clone(this);
        let started = Arc::clone(this);
        this.delay.start_thread(
            this.config.service_thread_name(),
            StdArc::clone(&this.clock),
            move || current::set_thread_of(Engine::addr(&started)),
            move |ripe: &mut Vec<Delayed>| Engine::forward_ripe(&inner, ripe.drain(..)),
        );
    }

    #[cfg(loom)]
    fn start_service_thread(_this: &Arc<Self>) {}

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
        match Engine::add_delayed(this, run_at, Task::new(f, posted_from), Destination::Inline) {
            Ok(id) => Some(id),
            Err(task) => {
                drop_quietly(task);
                None
            }
        }
    }

    /// Appends an admitted task to its sequence: a positioned entry (direct sequences), the
    /// held queue plus a ticket (updateable sequences), or the dedicated thread's queue.
    fn push_sequenced(
        this: &Arc<Self>,
        seq: &Arc<Sequence>,
        task: Task,
        delayed: bool,
        block: bool,
        stamp: u32,
    ) {
        match &seq.home {
            Home::Pool => {
                let mut work = if seq.is_held() {
                    let (epoch, _) = seq.push_held(task, delayed);
                    this.flow.entered(1);
                    #[cfg(feature = "test-util")]
                    if let Some(t) = &this.test {
                        t.posted();
                    }
                    Work::ticket(Arc::clone(seq), epoch)
                } else {
                    Work::sequenced(task, Arc::clone(seq), seq.next_position(), delayed)
                };
                if stamp != 0 {
                    work.set_ready_at(stamp);
                }
                Engine::push_work(this, work);
            }
            Home::Dedicated(d) => {
                this.flow.entered(1);
                if let Err(task) = d.push(task, delayed) {
                    this.flow.left(1);
                    // The thread exited after the poster's check (posts are normally refused
                    // with `ThreadExited` up front): drop the task rather than strand it.
                    tracing::warn!(target: "taskrunner", "task posted to a single-thread runner whose thread has exited; dropped");
                    this.counters.dropped(1);
                    drop_quietly(task);
                    if block {
                        Engine::check_completion(this, this.tracker.unregister_block());
                    }
                }
            }
        }
    }

    /// Puts an entry where a worker will find it, and wakes one if needed.
    #[inline(always)]
    pub(crate) fn push_work(this: &Arc<Self>, mut work: Work) {
        // A ticket stands for a task that was counted when it was held.
        if work.task.is_some() {
            let before = this.flow.entered(1);
            // Sampled for timing: one in `sample_task_times` of this thread's posts (a power of
            // two, so the mask picks them; `sample_mask` has its top bit set, and so does
            // `sample_off` when the pool times nothing).
            if (before | this.sample_off) & this.sample_mask == 0 {
                work.set_ready_at(this.stamp_now());
            }
        }
        #[cfg(feature = "test-util")]
        if let (Some(t), Some(_)) = (&this.test, &work.task) {
            t.posted();
        }
        if tracing::enabled!(target: "taskrunner::task", tracing::Level::TRACE) {
            let at = match work.ready_at() {
                0 => this.stamp_now(),
                at => at,
            };
            work.set_ready_at(at);
            trace_ready(&work, at);
        }
        let addr = Engine::addr(this);
        // Only a worker of this pool keeps work local; the check of a plain thread-local word
        // spares other threads the worker's thread-local.
        let work = if current::is_thread_of(addr) {
            match crate::engine::worker::try_keep_local(&this.group, addr, work) {
                Ok(()) => {
                    this.group.notify().run(this);
                    None
                }
                Err(work) => Some(work),
            }
        } else {
            Some(work)
        };
        if let Some(work) = work {
            this.group.push(work).run(this);
        }
        // A post admitted just before shutdown completed may land after the completion duties
        // drained the queues (the push's `SeqCst` CAS, or the fence in `notify` after a local
        // push, orders this `SeqCst` load after the push): then no
        // worker will look at it any more, so the poster discards what is left itself.
        if this.group.is_completed() {
            this.counters
                .dropped(Engine::discard(this.group.drain_queues()));
        }
    }

    /// Microseconds since the pool's epoch, for queue-time stamps (wraps after ~35 minutes;
    /// 0 means "not recorded", so 1 is the smallest stamp).
    fn stamp_now(&self) -> u32 {
        ((self.epoch.elapsed().as_micros() as u32) & 0x7FFF_FFFF).max(1)
    }

    /// A stamp now if the pool samples this event (one in `sample_task_times` on this thread),
    /// else 0 (the clock is not read): a named runner's post (its stamp times it on a
    /// single-thread runner too), or a batch of ripe delayed tasks.
    #[inline]
    fn sample_stamp(&self) -> u32 {
        if crate::engine::times::sample(self.config.sample_task_times) {
            self.stamp_now()
        } else {
            0
        }
    }

    /// Microseconds from stamp `from` to stamp `to` (0 if `to` is not after `from`).
    #[inline]
    fn micros_between(from: u32, to: u32) -> u64 {
        let d = to.wrapping_sub(from) & 0x7FFF_FFFF;
        // A difference past half the range means `to` came first (stamps taken on two threads
        // race by a few microseconds).
        if d > 0x4000_0000 {
            0
        } else {
            d as u64
        }
    }

    /// Called with everything ripe at one moment, in (run time, post) order. The tasks join the
    /// tail of their sequences (their positions are taken in that order), and the entries are
    /// pushed **highest priority first**: a worker that starts looking meanwhile finds an
    /// urgent entry before a less urgent one that ripened at the same moment, so tasks that
    /// ripen together run by priority, then age (a one-worker test environment runs them in
    /// exactly that order).
    pub(crate) fn forward_ripe(this: &Arc<Self>, ripe: impl IntoIterator<Item = Delayed>) {
        let mut works: Vec<Work> = Vec::new();
        for d in ripe {
            if this.tracker.shutdown_started() {
                if !matches!(d.dest, Destination::Inline) {
                    this.counters.dropped(1);
                }
                drop_quietly(d.task);
                drop_quietly(d.dest);
                continue;
            }
            match d.dest {
                Destination::Sequence(s) => {
                    let block = s.shutdown() == ShutdownBehavior::BlockShutdown;
                    if block && this.tracker.register_block().is_err() {
                        // Shutdown completed since the check above: delayed tasks never run then.
                        this.counters.dropped(1);
                        drop_quietly(d.task);
                        continue;
                    }
                    match &s.home {
                        Home::Pool if s.is_held() => {
                            let (epoch, _) = s.push_held(d.task, true);
                            works.push(Work::ticket(Arc::clone(&s), epoch));
                        }
                        Home::Pool => {
                            let pos = s.next_position();
                            works.push(Work::sequenced(d.task, Arc::clone(&s), pos, true));
                        }
                        Home::Dedicated(_) => {
                            Engine::push_sequenced(this, &s, d.task, true, block, 0);
                        }
                    }
                }
                Destination::Runner(r) => {
                    if r.seq.shutdown() == ShutdownBehavior::BlockShutdown
                        && this.tracker.register_block().is_err()
                    {
                        this.counters.dropped(1);
                        drop_quietly(d.task);
                        continue;
                    }
                    works.push(Work::of_runner(d.task, Arc::clone(&r.seq), true));
                }
                Destination::Parallel(t) => {
                    if t.shutdown_behavior == ShutdownBehavior::BlockShutdown
                        && this.tracker.register_block().is_err()
                    {
                        this.counters.dropped(1);
                        drop_quietly(d.task);
                        continue;
                    }
                    works.push(Work::one_off(d.task, t, true));
                }
                Destination::Inline => {
                    let posted_from = d.task.posted_from;
                    if let Job::Fn(f) = d.task.job {
                        if let Err(p) = crate::base::unwind::catch(f) {
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
        if works.is_empty() {
            return;
        }
        // Stable: equal priorities keep (run time, post) order.
        works.sort_by_key(|w| std::cmp::Reverse(w.priority()));
        this.flow.entered(works.len() as u64);
        #[cfg(feature = "test-util")]
        if let Some(t) = &this.test {
            for _ in &works {
                t.posted();
            }
        }
        let traced = tracing::enabled!(target: "taskrunner::task", tracing::Level::TRACE);
        let stamp = if traced {
            this.stamp_now()
        } else {
            this.sample_stamp()
        };
        this.group
            .push_all(works.into_iter().map(|mut w| {
                if stamp != 0 {
                    w.set_ready_at(stamp);
                    if traced {
                        trace_ready(&w, stamp);
                    }
                }
                w
            }))
            .run(this);
    }

    /// Test environments: forwards every delayed task ripe at the clock's current time, as the
    /// service thread would.
    #[cfg(feature = "test-util")]
    pub(crate) fn forward_ripe_now(this: &Arc<Self>) {
        Engine::forward_ripe(this, this.delay.take_ripe(this.clock.now()));
    }

    /// Test environments: `true` if no dedicated thread has work queued or running.
    #[cfg(feature = "test-util")]
    pub(crate) fn dedicated_quiet(&self) -> bool {
        self.dedicated.lock().iter().all(|d| d.is_quiet())
    }

    /// Runs the completion check if `c` asks for it.
    pub(crate) fn check_completion(this: &Arc<Self>, c: Completion) {
        if c == Completion::Check {
            Engine::maybe_complete_shutdown(this);
        }
    }

    // ---- running ----------------------------------------------------------------------------

    /// Runs one entry a worker took (see the module doc).
    #[inline]
    pub(crate) fn run_work(this: &Arc<Self>, mut work: Work, me: &WorkerShared) {
        if this.gate.is_up() {
            // A fence may hold it back until it is lowered.
            match this.gate.hold(work) {
                Some(w) => work = w,
                None => return,
            }
        }
        let Some(seq) = work.seq.take() else {
            Engine::run_one_off(this, work, me);
            return;
        };
        if seq.is_parallel() {
            Engine::run_runner_task(this, work, me, seq);
            return;
        }
        let mut entry = match seq.begin(work) {
            Begin::Run(w) => w,
            // Parked in the sequence's buffer for its turn, or a stale or deferred ticket.
            Begin::Later => return,
        };
        let mut seq = seq;
        loop {
            let task = entry.task.take().expect("a runnable entry holds its task");
            seq = Engine::run_sequence_task(
                this,
                seq,
                task,
                entry.was_delayed(),
                entry.ready_at(),
                me,
            );
            this.flow.left(1);
            #[cfg(feature = "test-util")]
            if let Some(t) = &this.test {
                t.ran();
            }
            match seq.finish() {
                Some(next) => entry = next,
                None => return,
            }
            if this.gate.is_up() {
                // The sequence's next task, while a fence is up: this worker keeps the
                // sequence and waits, and the pool may run another worker meanwhile.
                Engine::wait_for_gate(this, seq.priority());
            }
        }
    }

    /// Waits (on a pool worker, compensated like a blocking scope) until a task of priority `p`
    /// may start.
    #[cold]
    #[inline(never)]
    fn wait_for_gate(this: &Arc<Self>, p: TaskPriority) {
        let best_effort = p == TaskPriority::BestEffort;
        let compensated = this.gate.wait_open(p, || {
            // What this worker kept for itself goes where other workers take it at once.
            crate::engine::worker::flush_local_before_blocking(&this.group, Engine::addr(this));
            this.group.begin_blocking(best_effort).run(this);
        });
        if compensated.is_some() {
            this.group.end_blocking(best_effort);
        }
    }

    /// Raises a fence of `kind`.
    pub(crate) fn raise_fence(&self, kind: FenceKind) {
        self.gate.raise(kind);
    }

    /// Lowers a fence of `kind`: what it held goes back to the ready queues.
    pub(crate) fn lower_fence(this: &Arc<Self>, kind: FenceKind) {
        let works = this.gate.lower(kind);
        Engine::requeue_held(this, works);
    }

    /// Starts a pool built not started (idempotent).
    pub(crate) fn start(this: &Arc<Self>) {
        if let Some(works) = this.gate.start() {
            Engine::requeue_held(this, works);
        }
    }

    /// Opens the gate for good (shutdown, wind-down): everything held goes back to the queues.
    pub(crate) fn open_gate(this: &Arc<Self>) {
        let works = this.gate.open_for_good();
        Engine::requeue_held(this, works);
    }

    fn requeue_held(this: &Arc<Self>, works: Vec<Work>) {
        if !works.is_empty() {
            this.group.push_all(works).run(this);
        }
    }

    /// Runs (or skips, or drops) one task of `seq`, on a pool worker or on its dedicated thread;
    /// gives the sequence back.
    pub(crate) fn run_sequence_task(
        this: &Arc<Self>,
        seq: Arc<Sequence>,
        task: Task,
        was_delayed: bool,
        ready_at: u32,
        me: &WorkerShared,
    ) -> Arc<Sequence> {
        let traits = seq.traits();
        let behavior = traits.shutdown_behavior;
        let info = RunningTask {
            posted_from: task.posted_from,
            priority: traits.priority,
            shutdown_behavior: behavior,
            sequenced: true,
        };
        let token = seq.token;
        let may_block = traits.may_block;
        let policy = traits.panic_policy;
        // A closed runner's queued tasks run only if they would run at shutdown: immediate
        // block-shutdown tasks.
        let closed_out =
            seq.is_closed() && (behavior != ShutdownBehavior::BlockShutdown || was_delayed);
        let seq = if seq.is_poisoned() || closed_out {
            // A post admitted just before the sequence was poisoned (or the runner closed):
            // never run it. It is dropped in the sequence's context.
            let scope = TaskScope::enter(token, Some(seq), may_block);
            this.counters.dropped(1);
            drop_quietly(task);
            scope.exit().expect("the task scope keeps the sequence")
        } else if me.begin(&this.tracker, info, was_delayed) {
            let kind = TaskKind {
                may_block,
                best_effort: info.priority == TaskPriority::BestEffort,
                policy,
            };
            let (scope, _) = TaskScope::enter_task(token, Some(seq), kind);
            this.counters.started(me.index);
            let panicked = this.run_task(task, token, info.priority, policy, ready_at);
            if panicked && policy == PanicPolicy::Poison {
                // Poisoned: what it holds never runs (dropped here, in the sequence's
                // context); later posts are refused at admission, queued entries are dropped
                // when they come up.
                if let Some(held) = current::running_sequence_ref(|s| s.poison()) {
                    Engine::drop_never_run(this, behavior, held);
                }
            }
            let seq = scope.exit().expect("the task scope keeps the sequence");
            me.end();
            Engine::after_run(this, behavior);
            seq
        } else {
            // Skipped (shutdown started). Its captures are dropped in the sequence's context,
            // and so is what a held sequence queued behind it (it would be skipped too).
            let scope = TaskScope::enter(token, Some(seq), may_block);
            this.counters.dropped(1);
            drop_quietly(task);
            if behavior != ShutdownBehavior::BlockShutdown {
                if let Some(held) = current::running_sequence_ref(|s| s.take_held_tasks()) {
                    this.counters.dropped(held.len() as u64);
                    drop_each_quietly(held);
                }
            }
            let seq = scope.exit().expect("the task scope keeps the sequence");
            // The slot showed the task for a moment: a completion check that saw it waits for
            // this one.
            Engine::after_run(this, behavior);
            seq
        };
        if behavior == ShutdownBehavior::BlockShutdown {
            Engine::check_completion(this, this.tracker.unregister_block());
        }
        seq
    }

    /// Runs a one-off task posted to the pool.
    #[inline]
    fn run_one_off(this: &Arc<Self>, work: Work, me: &WorkerShared) {
        Engine::run_one_off_as(this, work, me, false);
    }

    /// Runs a task of the parallel runner `runner` (marked as the running parallel runner, so
    /// that its `flush` refuses to wait for itself), then lets go of the entry's reference to
    /// the runner, which ends the task's count in flight. A closed runner's queued tasks run
    /// only if they would run at shutdown: immediate block-shutdown tasks.
    #[inline(never)]
    fn run_runner_task(this: &Arc<Self>, work: Work, me: &WorkerShared, runner: Arc<Sequence>) {
        let closed_out = runner.is_closed()
            && (work.one_off_traits().shutdown_behavior != ShutdownBehavior::BlockShutdown
                || work.was_delayed());
        let outer = current::set_parallel_runner(Arc::as_ptr(&runner) as usize);
        Engine::run_one_off_as(this, work, me, closed_out);
        current::set_parallel_runner(outer);
        drop(runner);
    }

    /// Runs a one-off task, or drops it unrun if `closed_out` (its runner was closed) or if
    /// shutdown skips it.
    #[inline(always)]
    fn run_one_off_as(this: &Arc<Self>, work: Work, me: &WorkerShared, closed_out: bool) {
        let traits = work.one_off_traits();
        let was_delayed = work.was_delayed();
        let ready_at = work.ready_at();
        let task = work.task.expect("a one-off entry holds its task");
        let behavior = traits.shutdown_behavior;
        let info = RunningTask {
            posted_from: task.posted_from,
            priority: traits.priority,
            shutdown_behavior: behavior,
            sequenced: false,
        };
        if !closed_out && me.begin(&this.tracker, info, was_delayed) {
            // A one-off task's token is unique to it ("no sequence"): token 0 takes a fresh one.
            let kind = TaskKind {
                may_block: traits.may_block,
                best_effort: info.priority == TaskPriority::BestEffort,
                policy: traits.panic_policy,
            };
            let (scope, token) = TaskScope::enter_task(0, None, kind);
            this.counters.started(me.index);
            // Poison has nothing to poison for a one-off task: it behaves as Isolate.
            this.run_task(task, token, info.priority, kind.policy, ready_at);
            let _ = scope.exit();
            me.end();
            Engine::after_run(this, behavior);
        } else {
            let scope = TaskScope::enter(0, None, traits.may_block);
            this.counters.dropped(1);
            drop_quietly(task);
            let _ = scope.exit();
            // The slot showed the task for a moment: a completion check that saw it waits for
            // this one.
            Engine::after_run(this, behavior);
        }
        if behavior == ShutdownBehavior::BlockShutdown {
            Engine::check_completion(this, this.tracker.unregister_block());
        }
        this.flow.left(1);
        #[cfg(feature = "test-util")]
        if let Some(t) = &this.test {
            t.ran();
        }
    }

    /// Tasks of a poisoned sequence taken out of its queue: they never run. Drops them (in the
    /// caller's context) and releases the shutdown item that each task of a block-shutdown
    /// sequence holds, so that shutdown does not wait for them.
    pub(crate) fn drop_never_run(this: &Arc<Self>, behavior: ShutdownBehavior, tasks: Vec<Task>) {
        let n = tasks.len();
        this.counters.dropped(n as u64);
        drop_each_quietly(tasks);
        this.flow.left(n as u64);
        if behavior == ShutdownBehavior::BlockShutdown {
            for _ in 0..n {
                Engine::check_completion(this, this.tracker.unregister_block());
            }
        }
    }

    /// A skip task that ends after shutdown started may have been the last thing it waited for.
    #[inline]
    fn after_run(this: &Arc<Self>, behavior: ShutdownBehavior) {
        if behavior == ShutdownBehavior::SkipOnShutdown && this.tracker.shutdown_started() {
            Engine::maybe_complete_shutdown(this);
        }
    }

    /// Runs the closure inside a tracing span, catching a panic so it never reaches the worker.
    /// The closure is consumed by the call, so its captures are dropped inside the task scope.
    /// Returns `true` if the task panicked (after reporting it; `PanicPolicy::Abort` aborts).
    /// A sampled task (`ready_at` stamped) or a named runner's task takes
    /// [`run_task_counted`](Self::run_task_counted), the others [`run_task_plain`](Self::run_task_plain).
    #[inline(always)]
    fn run_task(
        &self,
        task: Task,
        token: u64,
        priority: TaskPriority,
        policy: PanicPolicy,
        ready_at: u32,
    ) -> bool {
        if ready_at != 0 || matches!(task.job, Job::Tracked(_)) {
            self.run_task_counted(task, token, priority, policy, ready_at)
        } else {
            self.run_task_plain(task, token, priority, policy)
        }
    }

    #[inline(never)]
    fn run_task_plain(
        &self,
        task: Task,
        token: u64,
        priority: TaskPriority,
        policy: PanicPolicy,
    ) -> bool {
        let Task { job, posted_from } = task;
        let span = task_span(token, priority, posted_from, 0, 0);
        let _entered = span.enter();
        let panicked = self.run_job(job, posted_from, policy, |_| {});
        if panicked && policy == PanicPolicy::Abort {
            crate::engine::panics::abort_for_policy(posted_from);
        }
        panicked
    }

    /// [`run_task`](Self::run_task) for a task that is timed (sampled: `ready_at` stamped, or a
    /// named runner's task with a post stamp) or counted by its named runner. A named runner
    /// counts the task as started, and as finished before anyone hears of its outcome (a handle
    /// resolves after the cell's `before_finish`), so a joiner that then reads the runner's
    /// metrics sees it. A single-thread runner's task has no ready stamp: it is timed from its
    /// post stamp, for its runner only.
    #[cold]
    #[inline(never)]
    fn run_task_counted(
        &self,
        task: Task,
        token: u64,
        priority: TaskPriority,
        policy: PanicPolicy,
        ready_at: u32,
    ) -> bool {
        let Task { job, posted_from } = task;
        let (job, stamp, stats) = match job {
            Job::Tracked(mut t) => {
                let (job, stats) = t.begin();
                (job, t.stamp, Some(stats))
            }
            job => (job, 0, None),
        };
        let tracked = stats.is_some();
        let stamp = if ready_at != 0 { ready_at } else { stamp };
        let (started_at, queue_us) = if stamp != 0 {
            let now = self.stamp_now();
            (now, Engine::micros_between(stamp, now))
        } else {
            (0, 0)
        };
        if ready_at != 0 {
            self.counters.queue_time.record(queue_us);
        }
        let span = task_span(token, priority, posted_from, queue_us, ready_at);
        if let Some(stats) = &stats {
            if stamp != 0 {
                stats.queue_time.record(queue_us);
            }
            if !span.is_disabled() {
                span.record("runner", tracing::field::display(&*stats.name()));
            }
        }
        // The runner's counters are the running task's runner's while it runs (moved, not
        // cloned: for panics the task catches and reports itself).
        let previous = tracked.then(|| current::set_running_runner(stats));
        let _entered = span.enter();
        let ended = std::cell::Cell::new(!tracked);
        let end = |panicked: bool| {
            if !ended.replace(true) {
                current::with_running_runner(|stats| {
                    if started_at != 0 {
                        let run_us = Engine::micros_between(started_at, self.stamp_now());
                        stats.run_time.record(run_us);
                    }
                    stats.end(panicked);
                });
            }
        };
        let panicked = self.run_job(job, posted_from, policy, end);
        end(panicked);
        if let Some(previous) = previous {
            drop(current::set_running_runner(previous));
        }
        if ready_at != 0 {
            let run_us = Engine::micros_between(started_at, self.stamp_now());
            self.counters.run_time.record(run_us);
        }
        if panicked && policy == PanicPolicy::Abort {
            crate::engine::panics::abort_for_policy(posted_from);
        }
        panicked
    }

    /// Runs a plain closure or a result cell, catching and reporting a panic. `end(panicked)`
    /// is called when the closure has returned (before a handle learns the outcome).
    #[inline(always)]
    fn run_job(
        &self,
        job: Job,
        posted_from: &'static Location<'static>,
        policy: PanicPolicy,
        end: impl Fn(bool),
    ) -> bool {
        // Counted, and under `Poison` the sequence marked, before anyone hears of the panic
        // (the panic handler, or — for a handle — its joiner): a post made in reaction is
        // refused, not accepted and dropped.
        let poison = || {
            self.counters.panicked();
            if policy == PanicPolicy::Poison {
                current::running_sequence_ref(|s| s.mark_poisoned());
            }
        };
        match job {
            Job::Fn(f) => match crate::base::unwind::catch(f) {
                Ok(()) => false,
                Err(payload) => {
                    poison();
                    end(true);
                    let message = payload.message();
                    drop(payload);
                    self.report_panic_message(posted_from, message);
                    true
                }
            },
            // The cell catches the panic itself (its handle gets it) and reports it back.
            Job::Cell(cell) => {
                let before_finish = |panic: Option<&str>| {
                    if panic.is_some() {
                        poison();
                    }
                    end(panic.is_some());
                };
                match cell.run_reporting(&before_finish) {
                    Ok(()) => false,
                    Err(message) => {
                        self.report_panic_message(posted_from, message);
                        true
                    }
                }
            }
            Job::Tracked(_) => unreachable!("a tracked job is never wrapped twice"),
        }
    }

    pub(crate) fn report_panic_message(
        &self,
        posted_from: &'static Location<'static>,
        message: String,
    ) {
        let runner = current::running_runner_name()
            .or_else(|| current::running_sequence_ref(|s| s.name()).flatten());
        tracing::error!(
            target: "taskrunner",
            posted_from = %posted_from,
            runner = runner.as_deref().unwrap_or(""),
            "task panicked: {message}"
        );
        if let Some(h) = &self.config.panic_handler {
            let p = crate::engine::TaskPanic::new(message, posted_from, runner);
            // The handler's own panic is caught, and so is a panic of its payload's destructor.
            if let Err(payload) = crate::base::unwind::catch(|| h(&p)) {
                tracing::error!(
                    target: "taskrunner",
                    message = %payload.message(),
                    "the pool's panic handler panicked"
                );
            }
        }
    }

    /// Loom models: an `Engine` that starts no thread by itself (no handle, so no lifecycle
    /// calls; models take worker spawn requests and run them as model threads).
    #[cfg(all(test, loom))]
    pub(crate) fn new_for_loom(max_workers: usize, max_best_effort: usize) -> Arc<Self> {
        let config = Config {
            name_prefix: "loom".to_owned(),
            thread_name: None,
            stack_size: None,
            panic_handler: None,
            idle_timeout: Duration::from_secs(1),
            timer_leeway: Duration::ZERO,
            not_started: false,
            #[cfg(feature = "tokio")]
            tokio: None,
            #[cfg(feature = "test-util")]
            test_hooks: false,
            sample_task_times: 0,
        };
        let clock: StdArc<dyn Clock> = StdArc::new(crate::base::clock::SystemClock);
        let inner = Arc::new(Engine::new(max_workers, max_best_effort, config, clock));
        inner.delay.set_manual_for_loom();
        inner
    }
}

// ---- the seams the worker threads see --------------------------------------------------------

/// The span of a running task (disabled unless `taskrunner::task` is traced at TRACE level; the
/// field values are then not even computed). `runner` is recorded by the caller for a named
/// runner's task.
#[inline(always)]
fn task_span(
    token: u64,
    priority: TaskPriority,
    posted_from: &'static Location<'static>,
    queue_us: u64,
    ready_at: u32,
) -> tracing::Span {
    tracing::trace_span!(
        target: "taskrunner::task",
        "task",
        sequence = token,
        priority = ?priority,
        posted_from = %posted_from,
        queue_time_us = queue_us,
        ready_at_us = ready_at,
        runner = tracing::field::Empty,
    )
}

/// The `ready` event of a task entering a ready queue (only while `taskrunner::task` is traced):
/// where it was posted from and when it became ready. The task's span carries the same
/// `ready_at_us`, which links the two in a timeline.
#[cold]
fn trace_ready(work: &Work, at: u32) {
    if let Some(task) = &work.task {
        tracing::trace!(
            target: "taskrunner::task",
            posted_from = %task.posted_from,
            sequence = work.seq.as_ref().map_or(0, |s| s.token),
            priority = ?work.priority(),
            ready_at_us = at,
            "ready"
        );
    }
}

impl Host for Engine {
    #[inline]
    fn group(&self) -> &Group {
        &self.group
    }

    #[inline]
    fn run(this: &Arc<Self>, work: Work, me: &WorkerShared) {
        Engine::run_work(this, work, me);
    }

    fn idle_timeout(&self) -> Duration {
        self.config.idle_timeout
    }

    fn thread_started(this: &Arc<Self>, _me: &Arc<WorkerShared>) {
        current::set_thread_pool(Arc::clone(this));
        current::set_thread_of(Engine::addr(this));
        current::set_worker();
    }

    fn thread_exiting(&self) {
        current::clear_thread_pool();
    }

    #[cfg(not(loom))]
    fn spawn(this: &Arc<Self>, worker: Arc<WorkerShared>) {
        let name = this.config.thread_name(worker.index);
        match crate::engine::worker::spawn_worker(
            this,
            Arc::clone(&worker),
            name,
            this.config.stack_size,
        ) {
            Ok(()) => this.group.spawn_succeeded(),
            Err(e) => {
                tracing::error!(target: "taskrunner", error = %e, "failed to spawn a worker thread");
                this.group.spawn_failed(&worker);
            }
        }
    }

    /// Under loom the worker loop runs on a model thread; its handle is kept in the worker (as
    /// a real spawn does) for the models to join when they end.
    #[cfg(loom)]
    fn spawn(this: &Arc<Self>, worker: Arc<WorkerShared>) {
        if this.group.loom_time_out_first_park.load(Ordering::SeqCst) {
            worker.time_out_next_park.store(true, Ordering::SeqCst);
        }
        let (i, w) = (Arc::clone(this), Arc::clone(&worker));
        let h = crate::base::shim::thread::spawn(move || {
            crate::engine::worker::run_worker_loop(&i, &w)
        });
        *worker.join.lock() = Some(h);
        this.group.spawn_succeeded();
    }

    fn discard(&self, works: Vec<Work>) {
        self.counters.dropped(Engine::discard(works));
    }
}

impl DedicatedHost for Engine {
    fn run_dedicated(
        this: &Arc<Self>,
        seq: &Arc<Sequence>,
        task: Task,
        delayed: bool,
        me: &WorkerShared,
    ) {
        if this.gate.is_up() {
            // Its own thread: it just waits for the fence to go down.
            this.gate.wait_open(seq.priority(), || ());
        }
        let seq = Engine::run_sequence_task(this, Arc::clone(seq), task, delayed, 0, me);
        this.flow.left(1);
        if seq.is_poisoned() {
            if let Home::Dedicated(d) = &seq.home {
                let queued = d.take_queued().into_iter().map(|(task, _)| task).collect();
                Engine::drop_never_run(this, seq.shutdown(), queued);
            }
        }
    }

    fn shutdown_completed(&self) -> bool {
        self.tracker.shutdown_completed()
    }

    fn dropped(&self, n: usize) {
        self.counters.dropped(n as u64);
    }

    fn thread_started(this: &Arc<Self>, _d: &Arc<Dedicated>) {
        current::set_thread_pool(Arc::clone(this));
        current::set_thread_of(Engine::addr(this));
    }

    fn thread_exiting(this: &Arc<Self>, d: &Arc<Dedicated>) {
        this.forget_dedicated(d);
        current::clear_thread_pool();
    }
}
