//! The worker loop and the task-running path shared with dedicated threads.

use std::panic::Location;
use std::time::Instant;

use crate::current::{self, TaskScope};
use crate::pool::Inner;
use crate::scheduler::{AfterRun, OneOff, Sequence, SortKey};
use crate::sync::{thread, Arc, Mutex};
use crate::task::{Job, Task};
use crate::tracker::{Completion, Tracker};
use crate::traits::{PanicPolicy, ShutdownBehavior, TaskPriority};
use crate::unwind::{drop_each_quietly, drop_quietly, AbortOnUnwind};
use crate::worker::{Finished, Parker, Work};

/// A task that was running when a report was taken (see
/// [`ShutdownTimedOut`](crate::ShutdownTimedOut)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningTask {
    /// Where the task was posted from.
    pub posted_from: &'static Location<'static>,
    /// The priority it runs at.
    pub priority: TaskPriority,
    /// Its shutdown behaviour.
    pub shutdown_behavior: ShutdownBehavior,
    /// `true` for a task of a sequenced or single-thread runner.
    pub sequenced: bool,
}

/// What a worker is running right now.
#[derive(Debug, Default)]
struct Slot {
    task: Option<RunningTask>,
    /// For a continue-on-shutdown sequenced task: its sequence (see `continue_sequence`).
    continue_seq: Option<Arc<Sequence>>,
}

/// The part of a worker that other threads may touch.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    pub(crate) parker: Parker,
    /// Set while a task runs (read by shutdown reports, joins and the completion check).
    running: Mutex<Slot>,
    /// The thread's handle, for joining at shutdown.
    pub(crate) join: Mutex<Option<thread::JoinHandle<()>>>,
}

impl WorkerShared {
    pub(crate) fn new(index: usize) -> Self {
        WorkerShared {
            index,
            parker: Parker::new(),
            running: Mutex::new(Slot::default()),
            join: Mutex::new(None),
        }
    }

    pub(crate) fn running(&self) -> Option<RunningTask> {
        self.running.lock().task
    }

    /// Records `task` as running if the tracker lets it start; `false` means skip it. The
    /// check is made under the slot lock: that is what orders a starting skip task against
    /// shutdown's scan of the slots (see `tracker.rs`).
    #[inline]
    fn begin(
        &self,
        tracker: &Tracker,
        task: RunningTask,
        was_delayed: bool,
        seq: Option<&Arc<Sequence>>,
    ) -> bool {
        let mut slot = self.running.lock();
        if !tracker.may_run(task.shutdown_behavior, was_delayed) {
            return false;
        }
        if task.shutdown_behavior == ShutdownBehavior::ContinueOnShutdown {
            slot.continue_seq = seq.cloned();
        }
        slot.task = Some(task);
        true
    }

    /// Clears the slot after the task ran.
    #[inline]
    fn end(&self) {
        let mut slot = self.running.lock();
        slot.task = None;
        let seq = slot.continue_seq.take();
        drop(slot);
        drop(seq);
    }

    /// `true` while a skip-on-shutdown task runs here (shutdown must wait for it).
    pub(crate) fn runs_skip_task(&self) -> bool {
        self.running
            .lock()
            .task
            .is_some_and(|r| r.shutdown_behavior == ShutdownBehavior::SkipOnShutdown)
    }

    /// The sequence of the continue-on-shutdown task running here, if any (shutdown drops the
    /// tasks queued behind it, which would otherwise live until that task ends).
    pub(crate) fn continue_sequence(&self) -> Option<Arc<Sequence>> {
        self.running.lock().continue_seq.clone()
    }
}

/// Starts the OS thread of a worker the group just created.
pub(crate) fn spawn_worker(inner: &Arc<Inner>, worker: Arc<WorkerShared>) {
    let name = inner.config.thread_name(worker.index);
    let mut b = thread::Builder::new().name(name);
    if let Some(sz) = inner.config.stack_size {
        b = b.stack_size(sz);
    }
    let inner2 = Arc::clone(inner);
    let w2 = Arc::clone(&worker);
    // Held across the spawn, so `shutdown()` can never see the worker without its handle.
    let mut slot = worker.join.lock();
    match b.spawn(move || worker_main(inner2, w2)) {
        Ok(h) => {
            *slot = Some(h);
            drop(slot);
            inner.group.spawn_succeeded();
        }
        Err(e) => {
            drop(slot);
            tracing::error!(target: "taskrunner", error = %e, "failed to spawn a worker thread");
            inner.group.spawn_failed(&worker);
        }
    }
}

fn worker_main(inner: Arc<Inner>, me: Arc<WorkerShared>) {
    let guard = AbortOnUnwind;
    current::set_thread_pool(Arc::clone(&inner));
    current::set_thread_of(Arc::as_ptr(&inner) as usize);
    current::set_worker();
    let mut finished: Option<Finished> = None;
    let mut may_park = false;
    loop {
        let (work, wakeups) = inner.group.next_work(&me, finished.take(), may_park);
        wakeups.run(&inner);
        match work {
            Work::Sequence(seq, prio) => {
                may_park = false;
                let requeue = run_sequence_task(&inner, seq, &me);
                finished = Some(Finished {
                    priority: prio,
                    requeue,
                });
            }
            Work::Single(one, prio) => {
                may_park = false;
                run_one_off(&inner, one, &me);
                finished = Some(Finished {
                    priority: prio,
                    requeue: None,
                });
            }
            Work::Retry => {
                // Spin briefly before parking: when posts arrive a little slower than workers
                // drain them, a few microseconds of spinning saves a park/unpark (two futex
                // calls) per task. Bounded, so an idle pool still parks within microseconds.
                may_park = !spin_for_work(&inner);
            }
            Work::Idle => {
                may_park = false;
                if !me.parker.park(Some(inner.config.idle_timeout)) {
                    if inner.group.try_reclaim(&me) {
                        break;
                    }
                    // Not on the idle stack any more: whoever popped us is about to unpark us.
                    // Consume that wake-up now, or it would linger and make a later park return
                    // at once (and the worker would push itself onto the idle stack twice).
                    me.parker.park(None);
                }
            }
            Work::Exit => break,
        }
    }
    current::clear_thread_pool();
    drop(guard);
}

/// Spins (bounded, with backoff) until the inbox looks non-empty. Returns `true` if it does.
#[cfg(not(loom))]
fn spin_for_work(inner: &Inner) -> bool {
    for step in 0..SPIN_STEPS {
        if inner.group.has_pending() {
            return true;
        }
        if step < 6 {
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
    inner.group.has_pending()
}

/// Under loom, spinning only multiplies the explored states: go straight to parking.
#[cfg(loom)]
fn spin_for_work(_inner: &Inner) -> bool {
    false
}

#[cfg(not(loom))]
const SPIN_STEPS: u32 = 10;

/// Runs the front task of `seq` (which the caller popped from a ready queue) and returns the
/// sequence with its new key if it must be re-queued.
pub(crate) fn run_sequence_task(
    inner: &Arc<Inner>,
    seq: Arc<Sequence>,
    me: &WorkerShared,
) -> Option<(SortKey, Arc<Sequence>)> {
    let task = seq.take_task();
    let behavior = seq.shutdown;
    let priority = seq.priority();
    let info = RunningTask {
        posted_from: task.posted_from,
        priority,
        shutdown_behavior: behavior,
        sequenced: true,
    };
    let token = seq.token;
    let may_block = seq.may_block;
    let seq_policy = seq.panic_policy;
    let mut seq = seq;
    if seq.is_poisoned() {
        // A post admitted just before the sequence was poisoned: never run it. `did_run` below
        // then finds the queue empty and the sequence goes idle (releasing a block item).
        let scope = TaskScope::enter(token, Some(seq), may_block);
        drop_quietly(task);
        seq = scope.exit().expect("the task scope keeps the sequence");
        drop_each_quietly(seq.poison());
    } else if me.begin(&inner.tracker, info, task.was_delayed, Some(&seq)) {
        let scope = TaskScope::enter(token, Some(seq), may_block);
        let panicked = run_task(inner, task, token, priority, seq_policy);
        if panicked && seq_policy == PanicPolicy::Poison {
            // Poisoned: what is queued never runs (dropped here, in the sequence's context);
            // later posts are refused at admission.
            if let Some(s) = current::running_sequence_ref(|s| s.poison()) {
                drop_each_quietly(s);
            }
        }
        seq = scope.exit().expect("the task scope keeps the sequence");
        me.end();
        after_run(inner, behavior);
    } else {
        // Skipped (shutdown started). Captures are still dropped in the sequence's context.
        let scope = TaskScope::enter(token, Some(seq), may_block);
        drop_quietly(task);
        seq = scope.exit().expect("the task scope keeps the sequence");
        if behavior != ShutdownBehavior::BlockShutdown {
            // Everything behind it would be skipped too: drop it all now, in context.
            let rest = seq.clear();
            let scope = TaskScope::enter(token, Some(seq), may_block);
            drop_each_quietly(rest);
            let _ = scope.exit();
            return None;
        }
        // A delayed task of a block sequence: skipped, the rest of the sequence still runs.
    }
    match seq.did_run(&inner.tracker) {
        AfterRun::Requeue(key) => Some((key, seq)),
        AfterRun::Idle(c) => {
            check_completion(inner, c);
            None
        }
    }
}

/// Runs a one-off parallel task.
fn run_one_off(inner: &Arc<Inner>, one: OneOff, me: &WorkerShared) {
    let OneOff { task, traits } = one;
    let behavior = traits.get_shutdown_behavior();
    let info = RunningTask {
        posted_from: task.posted_from,
        priority: traits.get_priority(),
        shutdown_behavior: behavior,
        sequenced: false,
    };
    let token = task.order;
    if me.begin(&inner.tracker, info, task.was_delayed, None) {
        let scope = TaskScope::enter(token, None, traits.get_may_block());
        // Poison has nothing to poison for a one-off task: it behaves as Isolate.
        run_task(
            inner,
            task,
            token,
            traits.get_priority(),
            traits.get_panic_policy(),
        );
        let _ = scope.exit();
        me.end();
        after_run(inner, behavior);
    } else {
        let scope = TaskScope::enter(token, None, traits.get_may_block());
        drop_quietly(task);
        let _ = scope.exit();
    }
    if behavior == ShutdownBehavior::BlockShutdown {
        check_completion(inner, inner.tracker.unregister_block());
    }
}

/// Loom models: the real one-off running path.
#[cfg(all(test, loom))]
pub(crate) fn run_one_off_for_loom(inner: &Arc<Inner>, one: OneOff, me: &WorkerShared) {
    run_one_off(inner, one, me);
}

/// Seeded test mode: the one-off running path, on the test thread.
#[cfg(feature = "test-util")]
pub(crate) fn run_one_off_on_test_thread(inner: &Arc<Inner>, one: OneOff, me: &WorkerShared) {
    run_one_off(inner, one, me);
}

/// A skip task that ends after shutdown started may have been the last thing it waited for.
#[inline]
fn after_run(inner: &Arc<Inner>, behavior: ShutdownBehavior) {
    if behavior == ShutdownBehavior::SkipOnShutdown && inner.tracker.shutdown_started() {
        Inner::maybe_complete_shutdown(inner);
    }
}

fn check_completion(inner: &Arc<Inner>, c: Completion) {
    Inner::check_completion(inner, c);
}

/// Runs the closure inside a tracing span, catching a panic so it never reaches the worker.
/// The closure is consumed by the call, so its captures are dropped inside the task scope.
/// Returns `true` if the task panicked (after reporting it; `PanicPolicy::Abort` aborts here).
fn run_task(
    inner: &Inner,
    task: Task,
    token: u64,
    priority: TaskPriority,
    policy: PanicPolicy,
) -> bool {
    let Task {
        job,
        posted_from,
        queued_at,
        ..
    } = task;
    current::set_best_effort(priority == TaskPriority::BestEffort);
    let prev_policy = current::set_panic_policy(policy);
    let span = tracing::trace_span!(
        target: "taskrunner::task",
        "task",
        sequence = token,
        priority = ?priority,
        posted_from = %posted_from,
        queue_time_us = queued_at.map_or(0, |q| Instant::now().saturating_duration_since(q).as_micros() as u64),
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
                inner.report_panic_message(posted_from, message);
                true
            }
        },
        // The cell catches the panic itself (its handle gets the message) and reports it back.
        Job::Cell(cell) => match cell.run_with(&|_| poison()) {
            Ok(()) => false,
            Err(message) => {
                inner.report_panic_message(posted_from, message);
                true
            }
        },
    };
    current::set_panic_policy(prev_policy);
    if panicked && policy == PanicPolicy::Abort {
        crate::unwind::abort_for_policy(posted_from);
    }
    panicked
}
