//! `Inner`: the engine behind a `ThreadPool`. It owns the tracker, the thread group and the
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

use crate::clock::Clock;
use crate::current::{self, TaskKind, TaskScope};
use crate::deadline::Deadline;
use crate::delay::{DelayId, DelayManager, Delayed, Destination};
use crate::error::{PostError, PostRefusal};
use crate::handle::{new_cell, Reply, TaskHandle};
use crate::pool::{Config, PoolRef, PostDest};
use crate::scheduler::{Begin, Home, Sequence, Work};
use crate::shim::{Arc, AtomicUsize, Mutex};
use crate::task::{BoxedFn, Job, Task};
use crate::tracker::{Completion, Tracker};
use crate::traits::{PanicPolicy, ShutdownBehavior, TaskPriority};
use crate::unwind::{drop_each_quietly, drop_quietly};
use crate::worker::{Dedicated, DedicatedHost, Group, Host, RunningTask, WorkerShared};

/// The pool's shared state. Runners and `ThreadPool` hold it through a counted [`PoolRef`];
/// worker, service and dedicated threads hold plain `Arc`s.
pub(crate) struct Inner {
    pub(crate) group: Group,
    pub(crate) tracker: Tracker,
    pub(crate) delay: DelayManager,
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
    /// The origin of the queue-time stamps that tracing reports.
    epoch: Instant,
    /// Test environments: tasks posted and not yet run (see `TestEnvironment::run_until_idle`).
    #[cfg(feature = "test-util")]
    pub(crate) test: Option<crate::test_util::TestHooks>,
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
        #[cfg(feature = "test-util")]
        let test = config.test_hooks.then(crate::test_util::TestHooks::new);
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
            epoch: Instant::now(),
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
        Inner::post_mapped(this, dest, delay, f, |f| f, posted_from)
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
        match Inner::admit(this, &dest, delay) {
            Ok(block) => {
                let job: BoxedFn = Box::new(wrap(f));
                let _ = Inner::submit(this, dest, delay, Task::new(job, posted_from), block);
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
            Ok(block) => {
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
                    block,
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
    /// that is current at the call. See `PostTask::post_task_and_reply_with_result`.
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
        let block = match Inner::admit(this, &dest, Duration::ZERO) {
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
            block,
        );
        Ok(())
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
        let delayed = !delay.is_zero();
        let behavior = match dest {
            PostDest::Sequence(s) => s.shutdown(),
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
    /// pending entry, so a cancelled handle can remove it).
    pub(crate) fn submit(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        task: Task,
        block: bool,
    ) -> Option<DelayId> {
        if delay.is_zero() {
            match dest {
                PostDest::Sequence(s) => Inner::push_sequenced(this, s, task, false, block),
                PostDest::Parallel(t) => {
                    Inner::push_work(this, Work::one_off(task, t, false));
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
        };
        match Inner::add_delayed(this, run_at, task, dest) {
            Ok(id) => Some(id),
            Err(task) => {
                // Shutdown stopped the delay manager after admission: the task never runs (a
                // handle resolves as not run).
                drop_quietly(task);
                None
            }
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
            Inner::start_service_thread(this);
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
            move || current::set_thread_of(Inner::addr(&started)),
            move |ripe: &mut Vec<Delayed>| Inner::forward_ripe(&inner, ripe.drain(..)),
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
        match Inner::add_delayed(this, run_at, Task::new(f, posted_from), Destination::Inline) {
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
    ) {
        match &seq.home {
            Home::Pool => {
                let work = if seq.is_held() {
                    let (epoch, _) = seq.push_held(task, delayed);
                    #[cfg(feature = "test-util")]
                    if let Some(t) = &this.test {
                        t.posted();
                    }
                    Work::ticket(Arc::clone(seq), epoch)
                } else {
                    Work::sequenced(task, Arc::clone(seq), seq.next_position(), delayed)
                };
                Inner::push_work(this, work);
            }
            Home::Dedicated(d) => {
                if let Err(task) = d.push(task, delayed) {
                    // The thread exited after the poster's check (posts are normally refused
                    // with `ThreadExited` up front): drop the task rather than strand it.
                    tracing::warn!(target: "taskrunner", "task posted to a single-thread runner whose thread has exited; dropped");
                    drop_quietly(task);
                    if block {
                        Inner::check_completion(this, this.tracker.unregister_block());
                    }
                }
            }
        }
    }

    /// Puts an entry where a worker will find it, and wakes one if needed.
    #[inline(always)]
    pub(crate) fn push_work(this: &Arc<Self>, mut work: Work) {
        // A ticket stands for a task that was counted when it was held.
        #[cfg(feature = "test-util")]
        if let (Some(t), Some(_)) = (&this.test, &work.task) {
            t.posted();
        }
        if tracing::enabled!(target: "taskrunner::task", tracing::Level::TRACE) {
            work.set_ready_at(this.stamp_now());
        }
        let addr = Inner::addr(this);
        // Only a worker of this pool keeps work local; the check of a plain thread-local word
        // spares other threads the worker's thread-local.
        let work = if current::is_thread_of(addr) {
            match crate::worker::try_keep_local(&this.group, addr, work) {
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
            Inner::discard(this.group.drain_queues());
        }
    }

    /// Microseconds since the pool's epoch, for queue-time stamps (wraps after ~35 minutes;
    /// 0 means "not recorded", so 1 is the smallest stamp).
    fn stamp_now(&self) -> u32 {
        ((self.epoch.elapsed().as_micros() as u32) & 0x7FFF_FFFF).max(1)
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
                drop_quietly(d.task);
                drop_quietly(d.dest);
                continue;
            }
            match d.dest {
                Destination::Sequence(s) => {
                    let block = s.shutdown() == ShutdownBehavior::BlockShutdown;
                    if block && this.tracker.register_block().is_err() {
                        // Shutdown completed since the check above: delayed tasks never run then.
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
                            Inner::push_sequenced(this, &s, d.task, true, block);
                        }
                    }
                }
                Destination::Parallel(t) => {
                    if t.get_shutdown_behavior() == ShutdownBehavior::BlockShutdown
                        && this.tracker.register_block().is_err()
                    {
                        drop_quietly(d.task);
                        continue;
                    }
                    works.push(Work::one_off(d.task, t, true));
                }
                Destination::Inline => {
                    let posted_from = d.task.posted_from;
                    if let Job::Fn(f) = d.task.job {
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
        if works.is_empty() {
            return;
        }
        // Stable: equal priorities keep (run time, post) order.
        works.sort_by_key(|w| std::cmp::Reverse(w.priority()));
        #[cfg(feature = "test-util")]
        if let Some(t) = &this.test {
            for _ in &works {
                t.posted();
            }
        }
        let stamp = if tracing::enabled!(target: "taskrunner::task", tracing::Level::TRACE) {
            this.stamp_now()
        } else {
            0
        };
        this.group
            .push_all(works.into_iter().map(|mut w| {
                if stamp != 0 {
                    w.set_ready_at(stamp);
                }
                w
            }))
            .run(this);
    }

    /// Test environments: forwards every delayed task ripe at the clock's current time, as the
    /// service thread would.
    #[cfg(feature = "test-util")]
    pub(crate) fn forward_ripe_now(this: &Arc<Self>) {
        Inner::forward_ripe(this, this.delay.take_ripe(this.clock.now()));
    }

    /// Test environments: `true` if no dedicated thread has work queued or running.
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

    // ---- running ----------------------------------------------------------------------------

    /// Runs one entry a worker took (see the module doc).
    #[inline]
    pub(crate) fn run_work(this: &Arc<Self>, mut work: Work, me: &WorkerShared) {
        let Some(seq) = work.seq.take() else {
            Inner::run_one_off(this, work, me);
            return;
        };
        let mut entry = match seq.begin(work) {
            Begin::Run(w) => w,
            // Parked in the sequence's buffer for its turn, or a stale or deferred ticket.
            Begin::Later => return,
        };
        let mut seq = seq;
        loop {
            let task = entry.task.take().expect("a runnable entry holds its task");
            seq = Inner::run_sequence_task(
                this,
                seq,
                task,
                entry.was_delayed(),
                entry.ready_at(),
                me,
            );
            #[cfg(feature = "test-util")]
            if let Some(t) = &this.test {
                t.ran();
            }
            match seq.finish() {
                Some(next) => entry = next,
                None => return,
            }
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
        let behavior = traits.get_shutdown_behavior();
        let info = RunningTask {
            posted_from: task.posted_from,
            priority: traits.get_priority(),
            shutdown_behavior: behavior,
            sequenced: true,
        };
        let token = seq.token;
        let may_block = traits.get_may_block();
        let policy = traits.get_panic_policy();
        let seq = if seq.is_poisoned() {
            // A post admitted just before the sequence was poisoned: never run it. It is
            // dropped in the sequence's context.
            let scope = TaskScope::enter(token, Some(seq), may_block);
            drop_quietly(task);
            scope.exit().expect("the task scope keeps the sequence")
        } else if me.begin(&this.tracker, info, was_delayed) {
            let kind = TaskKind {
                may_block,
                best_effort: info.priority == TaskPriority::BestEffort,
                policy,
            };
            let (scope, _) = TaskScope::enter_task(token, Some(seq), kind);
            let panicked = this.run_task(task, token, info.priority, policy, ready_at);
            if panicked && policy == PanicPolicy::Poison {
                // Poisoned: what it holds never runs (dropped here, in the sequence's
                // context); later posts are refused at admission, queued entries are dropped
                // when they come up.
                if let Some(held) = current::running_sequence_ref(|s| s.poison()) {
                    Inner::drop_never_run(this, behavior, held);
                }
            }
            let seq = scope.exit().expect("the task scope keeps the sequence");
            me.end();
            Inner::after_run(this, behavior);
            seq
        } else {
            // Skipped (shutdown started). Its captures are dropped in the sequence's context,
            // and so is what a held sequence queued behind it (it would be skipped too).
            let scope = TaskScope::enter(token, Some(seq), may_block);
            drop_quietly(task);
            if behavior != ShutdownBehavior::BlockShutdown {
                if let Some(held) = current::running_sequence_ref(|s| s.take_held_tasks()) {
                    drop_each_quietly(held);
                }
            }
            let seq = scope.exit().expect("the task scope keeps the sequence");
            // The slot showed the task for a moment: a completion check that saw it waits for
            // this one.
            Inner::after_run(this, behavior);
            seq
        };
        if behavior == ShutdownBehavior::BlockShutdown {
            Inner::check_completion(this, this.tracker.unregister_block());
        }
        seq
    }

    /// Runs a one-off task.
    #[inline]
    fn run_one_off(this: &Arc<Self>, work: Work, me: &WorkerShared) {
        let traits = work.one_off_traits();
        let was_delayed = work.was_delayed();
        let ready_at = work.ready_at();
        let task = work.task.expect("a one-off entry holds its task");
        let behavior = traits.get_shutdown_behavior();
        let info = RunningTask {
            posted_from: task.posted_from,
            priority: traits.get_priority(),
            shutdown_behavior: behavior,
            sequenced: false,
        };
        if me.begin(&this.tracker, info, was_delayed) {
            // A one-off task's token is unique to it ("no sequence"): token 0 takes a fresh one.
            let kind = TaskKind {
                may_block: traits.get_may_block(),
                best_effort: info.priority == TaskPriority::BestEffort,
                policy: traits.get_panic_policy(),
            };
            let (scope, token) = TaskScope::enter_task(0, None, kind);
            // Poison has nothing to poison for a one-off task: it behaves as Isolate.
            this.run_task(task, token, info.priority, kind.policy, ready_at);
            let _ = scope.exit();
            me.end();
            Inner::after_run(this, behavior);
        } else {
            let scope = TaskScope::enter(0, None, traits.get_may_block());
            drop_quietly(task);
            let _ = scope.exit();
            // The slot showed the task for a moment: a completion check that saw it waits for
            // this one.
            Inner::after_run(this, behavior);
        }
        if behavior == ShutdownBehavior::BlockShutdown {
            Inner::check_completion(this, this.tracker.unregister_block());
        }
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
        drop_each_quietly(tasks);
        if behavior == ShutdownBehavior::BlockShutdown {
            for _ in 0..n {
                Inner::check_completion(this, this.tracker.unregister_block());
            }
        }
    }

    /// A skip task that ends after shutdown started may have been the last thing it waited for.
    #[inline]
    fn after_run(this: &Arc<Self>, behavior: ShutdownBehavior) {
        if behavior == ShutdownBehavior::SkipOnShutdown && this.tracker.shutdown_started() {
            Inner::maybe_complete_shutdown(this);
        }
    }

    /// Runs the closure inside a tracing span, catching a panic so it never reaches the worker.
    /// The closure is consumed by the call, so its captures are dropped inside the task scope.
    /// Returns `true` if the task panicked (after reporting it; `PanicPolicy::Abort` aborts).
    fn run_task(
        &self,
        task: Task,
        token: u64,
        priority: TaskPriority,
        policy: PanicPolicy,
        ready_at: u32,
    ) -> bool {
        let Task { job, posted_from } = task;
        let span = tracing::trace_span!(
            target: "taskrunner::task",
            "task",
            sequence = token,
            priority = ?priority,
            posted_from = %posted_from,
            queue_time_us = if ready_at == 0 { 0 } else { self.stamp_now().wrapping_sub(ready_at) & 0x7FFF_FFFF },
        );
        let _entered = span.enter();
        // Under `Poison`, the sequence is marked before anyone hears of the panic (the panic
        // handler, or — for a handle — its joiner): a post made in reaction is refused, not
        // accepted and dropped.
        let poison = || {
            if policy == PanicPolicy::Poison {
                current::running_sequence_ref(|s| s.mark_poisoned());
            }
        };
        let panicked = match job {
            Job::Fn(f) => match crate::unwind::catch(f) {
                Ok(()) => false,
                Err(payload) => {
                    poison();
                    let message = payload.message();
                    drop(payload);
                    self.report_panic_message(posted_from, message);
                    true
                }
            },
            // The cell catches the panic itself (its handle gets it) and reports it back.
            Job::Cell(cell) => match cell.run_with(&|_| poison()) {
                Ok(()) => false,
                Err(message) => {
                    self.report_panic_message(posted_from, message);
                    true
                }
            },
        };
        if panicked && policy == PanicPolicy::Abort {
            crate::unwind::abort_for_policy(posted_from);
        }
        panicked
    }

    pub(crate) fn report_panic_message(
        &self,
        posted_from: &'static Location<'static>,
        message: String,
    ) {
        tracing::error!(target: "taskrunner", posted_from = %posted_from, "task panicked: {message}");
        if let Some(h) = &self.config.panic_handler {
            let p = crate::pool::TaskPanic::new(message, posted_from);
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

    /// Loom models: an `Inner` that starts no thread by itself (no handle, so no lifecycle
    /// calls; models take worker spawn requests and run them as model threads).
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
            #[cfg(feature = "test-util")]
            test_hooks: false,
        };
        let clock: StdArc<dyn Clock> = StdArc::new(crate::clock::SystemClock);
        let inner = Arc::new(Inner::new(max_workers, max_best_effort, config, clock));
        inner.delay.set_manual_for_loom();
        inner
    }
}

// ---- the seams the worker threads see --------------------------------------------------------

impl Host for Inner {
    #[inline]
    fn group(&self) -> &Group {
        &self.group
    }

    #[inline]
    fn run(this: &Arc<Self>, work: Work, me: &WorkerShared) {
        Inner::run_work(this, work, me);
    }

    fn idle_timeout(&self) -> Duration {
        self.config.idle_timeout
    }

    fn thread_started(this: &Arc<Self>, _me: &Arc<WorkerShared>) {
        current::set_thread_pool(Arc::clone(this));
        current::set_thread_of(Inner::addr(this));
        current::set_worker();
    }

    fn thread_exiting(&self) {
        current::clear_thread_pool();
    }

    #[cfg(not(loom))]
    fn spawn(this: &Arc<Self>, worker: Arc<WorkerShared>) {
        let name = this.config.thread_name(worker.index);
        match crate::worker::spawn_worker(this, Arc::clone(&worker), name, this.config.stack_size) {
            Ok(()) => this.group.spawn_succeeded(),
            Err(e) => {
                tracing::error!(target: "taskrunner", error = %e, "failed to spawn a worker thread");
                this.group.spawn_failed(&worker);
            }
        }
    }

    /// Loom models run workers as model threads themselves (`loom_tests::spawn_worker`).
    #[cfg(loom)]
    fn spawn(this: &Arc<Self>, worker: Arc<WorkerShared>) {
        crate::loom_tests::spawn_worker(this, worker);
    }

    fn discard(works: Vec<Work>) {
        Inner::discard(works);
    }
}

impl crate::handle::HandleHost for Inner {
    fn cancel_delayed(&self, id: DelayId) {
        // Dropped outside the delay lock (the entry may hold the last sequence reference).
        drop_quietly(self.delay.cancel(id));
    }

    #[cfg(feature = "test-util")]
    fn delay_pending(&self, id: DelayId) -> bool {
        self.delay.is_pending(id)
    }

    #[cfg(feature = "test-util")]
    fn now(&self) -> Instant {
        self.clock.now()
    }

    #[cfg(feature = "test-util")]
    fn is_mock(&self) -> bool {
        self.delay.is_manual()
    }

    #[cfg(feature = "test-util")]
    fn is_seeded(&self) -> bool {
        self.group.is_manual()
    }
}

impl DedicatedHost for Inner {
    fn run_dedicated(
        this: &Arc<Self>,
        seq: &Arc<Sequence>,
        task: Task,
        delayed: bool,
        me: &WorkerShared,
    ) {
        let seq = Inner::run_sequence_task(this, Arc::clone(seq), task, delayed, 0, me);
        if seq.is_poisoned() {
            if let Home::Dedicated(d) = &seq.home {
                let queued = d.take_queued().into_iter().map(|(task, _)| task).collect();
                Inner::drop_never_run(this, seq.shutdown(), queued);
            }
        }
    }

    fn shutdown_completed(&self) -> bool {
        self.tracker.shutdown_completed()
    }

    fn thread_started(this: &Arc<Self>, _d: &Arc<Dedicated>) {
        current::set_thread_pool(Arc::clone(this));
        current::set_thread_of(Inner::addr(this));
    }

    fn thread_exiting(this: &Arc<Self>, d: &Arc<Dedicated>) {
        this.forget_dedicated(d);
        current::clear_thread_pool();
    }
}
