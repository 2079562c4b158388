//! The delay manager's hand-off to the scheduler against shutdown (`delay::manager`'s
//! `stopped` / `thread_running` flags, `Inner::forward_ripe`, `Inner::start_shutdown`).
//!
//! Scope: the models use a real `Inner`. `loom_delay_forward_vs_shutdown` starts where the
//! service thread has popped a ripe task from the heap and calls `Inner::forward_ripe` (the
//! service loop's wait on the clock is not modelled there); `loom_delay_add_vs_stop` runs the
//! whole path, including the service thread, which `DelayManager::add` starts as a model
//! thread. Run times are taken before the add, so the task is ripe whenever the service
//! thread looks (the model stays deterministic).

use std::time::Instant;

use super::{model, new_worker, worker_loop, LoopEnd, Probe};
use crate::delay::Destination;
use crate::pool::Inner;
use crate::scheduler::{Home, Sequence, State};
use crate::sync::{thread, Arc};
use crate::task::Task;
use crate::traits::{ShutdownBehavior, TaskTraits};

/// The service thread forwards a ripe delayed task of a block-shutdown sequence while
/// shutdown starts, with a live worker. Delayed tasks never block shutdown: the task runs only
/// if it was forwarded and started before shutdown started (never after completion), is
/// otherwise dropped, and shutdown completes even when the forward registered the sequence
/// after shutdown started (the worker skips the task and the sequence unregisters).
#[test]
fn loom_delay_forward_vs_shutdown() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(
            TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
            Home::Pool,
        ));
        let mut task: Task = probe.task(1, Some(&inner));
        task.was_delayed = true;

        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
        };
        let forwarder = {
            let (inner, seq) = (Arc::clone(&inner), Arc::clone(&seq));
            thread::spawn(move || Inner::forward_ripe(&inner, Destination::Sequence(seq), task))
        };
        Inner::start_shutdown_for_loom(&inner);
        forwarder.join().unwrap();
        assert_eq!(worker.join().unwrap(), LoopEnd::Exit);

        assert!(inner.tracker.shutdown_completed());
        assert_eq!(inner.tracker.pending_items(), 0);
        assert_eq!(
            probe.dropped(),
            1,
            "the delayed task was neither run nor dropped"
        );
        assert!(probe.runs().iter().all(|r| !r.after_completion));
        assert_eq!(seq.state(), State::Idle);
        assert_eq!(inner.group.queued(), 0);
        assert_eq!(inner.delay.len(), 0);
    });
}

/// A delayed post reaches `DelayManager::add` (which starts the service thread) while shutdown
/// stops the manager. The task is refused by a stopped manager, or taken back by `stop()`, or
/// forwarded by the service thread (and then dropped by `forward_ripe` or discarded by the
/// completed group: no worker exists); either way it is dropped exactly once and never runs,
/// nothing stays in the heap, and the service thread exits (a service thread left waiting
/// would be a loom deadlock).
#[test]
fn loom_delay_add_vs_stop() {
    model(|| {
        // No worker may exist: a forwarded task must not run, whatever the interleaving.
        let inner = Inner::new_for_loom(0, 0);
        let probe = Probe::new();
        let mut task: Task = probe.task(1, Some(&inner));
        task.was_delayed = true;
        let run_at = Instant::now();

        let shutdown = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || Inner::start_shutdown_for_loom(&inner))
        };
        if let Err(refused) = inner.delay.add(
            &inner,
            crate::deadline::Deadline::at(run_at),
            task,
            Destination::Parallel(TaskTraits::default()),
        ) {
            drop(refused);
        }
        shutdown.join().unwrap();
        // The service thread (if `add` started it) may still be forwarding.
        while probe.dropped() == 0 {
            thread::yield_now();
        }

        assert!(inner.tracker.shutdown_completed());
        assert_eq!(probe.dropped(), 1);
        assert!(probe.runs().is_empty(), "a delayed task ran with no worker");
        assert_eq!(inner.delay.len(), 0, "a task was left in the heap");
        assert_eq!(inner.group.queued(), 0);
    });
}

/// The whole delayed path with a live worker: `DelayManager::add` (starting the service
/// thread, which forwards the ripe task through `Inner::forward_ripe`) races shutdown, and a
/// worker runs whatever reaches the ready queue. A skip-on-shutdown delayed task runs only if
/// it was forwarded and counted before shutdown started, never after completion; otherwise it
/// is dropped. Shutdown completes, the worker and the service thread exit, the heap is empty.
#[test]
fn loom_delay_add_vs_shutdown_with_worker() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let mut task: Task = probe.task(1, Some(&inner));
        task.was_delayed = true;
        let run_at = Instant::now();

        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
        };
        let shutdown = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || Inner::start_shutdown_for_loom(&inner))
        };
        if let Err(refused) = inner.delay.add(
            &inner,
            crate::deadline::Deadline::at(run_at),
            task,
            Destination::Parallel(TaskTraits::default()),
        ) {
            drop(refused);
        }
        shutdown.join().unwrap();
        assert_eq!(worker.join().unwrap(), LoopEnd::Exit);
        // The service thread (if `add` started it) may still be forwarding.
        while probe.dropped() == 0 {
            thread::yield_now();
        }

        assert!(inner.tracker.shutdown_completed());
        assert_eq!(inner.tracker.pending_items(), 0);
        assert_eq!(probe.dropped(), 1);
        assert!(probe.runs().iter().all(|r| !r.after_completion));
        assert_eq!(inner.delay.len(), 0, "a task was left in the heap");
        assert_eq!(inner.group.queued(), 0);
    });
}
