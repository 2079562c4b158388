//! The worker loop and the task-running path shared with dedicated threads.

use std::panic::{self, AssertUnwindSafe, Location};
use std::time::Instant;

use crate::current::{self, TaskScope};
use crate::pool::Inner;
use crate::scheduler::{AfterRun, OneOff, Sequence, SortKey};
use crate::sync::{thread, Arc, AtomicBool, Mutex, Ordering};
use crate::task::Task;
use crate::tracker::{Completion, RunPermit};
use crate::traits::{ShutdownBehavior, TaskPriority};
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

/// The part of a worker that other threads may touch.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    pub(crate) parker: Parker,
    /// Set while a task runs (read by shutdown reports and joins).
    running: Mutex<Option<RunningTask>>,
    /// The thread's handle, for joining at shutdown.
    pub(crate) join: Mutex<Option<thread::JoinHandle<()>>>,
    /// The thread has left its loop for good.
    pub(crate) exited: AtomicBool,
}

impl WorkerShared {
    pub(crate) fn new(index: usize) -> Self {
        WorkerShared {
            index,
            parker: Parker::new(),
            running: Mutex::new(None),
            join: Mutex::new(None),
            exited: AtomicBool::new(false),
        }
    }

    pub(crate) fn running(&self) -> Option<RunningTask> {
        *self.running.lock()
    }

    fn set_running(&self, r: Option<RunningTask>) {
        *self.running.lock() = r;
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
    match b.spawn(move || worker_main(inner2, w2)) {
        Ok(h) => *worker.join.lock() = Some(h),
        Err(e) => {
            tracing::error!(target: "taskrunner", error = %e, "failed to spawn a worker thread");
            inner.group.spawn_failed(&worker);
        }
    }
}

/// Aborts the process if the scheduler itself unwinds: a panic there would leave the group's
/// counters and sequence states inconsistent (task panics are caught long before this).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("taskrunner: internal error: the scheduler panicked; aborting");
            std::process::abort();
        }
    }
}

fn worker_main(inner: Arc<Inner>, me: Arc<WorkerShared>) {
    let guard = AbortOnUnwind;
    current::set_thread_pool(Arc::clone(&inner));
    let mut finished: Option<Finished> = None;
    loop {
        let (work, wakeups) = inner.group.next_work(&me, finished.take());
        wakeups.run(&inner);
        match work {
            Work::Sequence(seq, prio) => {
                let requeue = run_sequence_task(&inner, seq, &me);
                finished = Some(Finished {
                    priority: prio,
                    requeue,
                });
            }
            Work::Single(one, prio) => {
                run_one_off(&inner, one, &me);
                finished = Some(Finished {
                    priority: prio,
                    requeue: None,
                });
            }
            Work::Idle => {
                if !me.parker.park(Some(inner.config.idle_timeout)) && inner.group.try_reclaim(&me)
                {
                    break;
                }
            }
            Work::Exit => break,
        }
    }
    me.exited.store(true, Ordering::Release);
    current::clear_thread_pool();
    drop(guard);
}

/// Runs the front task of `seq` (which the caller popped from a ready queue) and returns the
/// sequence with its new key if it must be re-queued.
pub(crate) fn run_sequence_task(
    inner: &Arc<Inner>,
    seq: Arc<Sequence>,
    me: &WorkerShared,
) -> Option<(SortKey, Arc<Sequence>)> {
    let task = seq.take_task();
    let behavior = seq.shutdown;
    let mut seq = seq;
    match inner.tracker.before_run(behavior, task.was_delayed) {
        RunPermit::Skip => {
            drop_quietly(task);
            if behavior != ShutdownBehavior::BlockShutdown {
                // Everything behind it would be skipped too: drop it all now.
                let rest = seq.clear();
                drop_quietly(rest);
                return None;
            }
        }
        permit => {
            let priority = seq.priority();
            me.set_running(Some(RunningTask {
                posted_from: task.posted_from,
                priority,
                shutdown_behavior: behavior,
                sequenced: true,
            }));
            let token = seq.token;
            let may_block = seq.may_block;
            let scope = TaskScope::enter(token, Some(seq), may_block);
            run_task(inner, task, token, priority);
            seq = scope.exit().expect("the task scope keeps the sequence");
            me.set_running(None);
            if permit == RunPermit::RunCounted {
                complete_if(inner, inner.tracker.after_counted_run());
            }
        }
    }
    match seq.did_run(&inner.tracker) {
        AfterRun::Requeue(key) => Some((key, seq)),
        AfterRun::Idle(c) => {
            complete_if(inner, c);
            None
        }
    }
}

/// Runs a one-off parallel task.
fn run_one_off(inner: &Arc<Inner>, one: OneOff, me: &WorkerShared) {
    let OneOff { task, traits } = one;
    let behavior = traits.get_shutdown_behavior();
    match inner.tracker.before_run(behavior, task.was_delayed) {
        RunPermit::Skip => drop_quietly(task),
        permit => {
            me.set_running(Some(RunningTask {
                posted_from: task.posted_from,
                priority: traits.get_priority(),
                shutdown_behavior: behavior,
                sequenced: false,
            }));
            let token = task.order;
            let scope = TaskScope::enter(token, None, traits.get_may_block());
            run_task(inner, task, token, traits.get_priority());
            let _ = scope.exit();
            me.set_running(None);
            if permit == RunPermit::RunCounted {
                complete_if(inner, inner.tracker.after_counted_run());
            }
        }
    }
    if behavior == ShutdownBehavior::BlockShutdown {
        complete_if(inner, inner.tracker.unregister_block());
    }
}

/// Loom models: the real one-off running path.
#[cfg(all(test, loom))]
pub(crate) fn run_one_off_for_loom(inner: &Arc<Inner>, one: OneOff, me: &WorkerShared) {
    run_one_off(inner, one, me);
}

fn complete_if(inner: &Arc<Inner>, c: Completion) {
    if c == Completion::Completed {
        Inner::complete_shutdown(inner);
    }
}

/// Runs the closure inside a tracing span, catching a panic so it never reaches the worker.
/// The closure is consumed by the call, so its captures are dropped inside the task scope.
fn run_task(inner: &Inner, task: Task, token: u64, priority: TaskPriority) {
    let Task {
        f,
        posted_from,
        queued_at,
        ..
    } = task;
    let span = tracing::trace_span!(
        target: "taskrunner::task",
        "task",
        sequence = token,
        priority = ?priority,
        posted_from = %posted_from,
        queue_time_us = queued_at.map_or(0, |q| Instant::now().saturating_duration_since(q).as_micros() as u64),
    );
    let _entered = span.enter();
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        inner.report_panic(posted_from, payload);
    }
}

/// Drops tasks (or anything holding closures) without letting a panicking destructor unwind
/// into the scheduler.
pub(crate) fn drop_quietly<T>(x: T) {
    if panic::catch_unwind(AssertUnwindSafe(move || drop(x))).is_err() {
        tracing::error!(target: "taskrunner", "a task's destructor panicked while it was discarded");
    }
}
