//! The delay manager's hand-off to the scheduler against shutdown (`delay::manager`'s
//! `stopped` flag, `Engine::forward_ripe`, `Engine::start_shutdown`).
//!
//! Also the manager's own protocols (`delay::manager`'s wake protocol and `thread_running`),
//! with a model thread running the service thread's loop without a clock (`loom_service`).
//!
//! Scope: a real `Engine` with a manual delay manager (no service thread under loom): a model
//! thread plays the service thread, taking what is ripe (`take_ripe`) and forwarding it
//! (`Engine::forward_ripe`). Run times are taken before the add, so the task is ripe whenever
//! the forwarder looks.

use std::time::Instant;

use super::{model, stop_workers, Probe};
use crate::base::deadline::Deadline;
use crate::base::shim::{thread, Arc, AtomicUsize, Ordering};
use crate::base::traits::{ShutdownBehavior, TaskTraits};
use crate::engine::delay::{DelayManager, Destination};
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::task::Task;
use crate::engine::Engine;

/// A ripe delayed task of a block-shutdown sequence is forwarded while shutdown starts, with a
/// live worker. Delayed tasks never block shutdown: the task runs only if it was forwarded and
/// started before shutdown started (never after completion), is otherwise dropped, and
/// shutdown completes even when the forward took its item after shutdown started (the worker
/// skips the task and releases it).
#[test]
fn loom_delay_forward_vs_shutdown() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(
            TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
            Home::Pool,
        ));
        let run_at = Instant::now();
        Engine::add_delayed(
            &inner,
            Deadline::at(run_at),
            probe.task(1, Some(&inner)),
            Destination::Sequence(Arc::clone(&seq)),
        )
        .expect("not stopped yet");
        let forwarder = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || Engine::forward_ripe(&inner, inner.delay.take_ripe(run_at)))
        };
        Engine::start_shutdown_for_loom(&inner);
        forwarder.join().unwrap();
        while probe.dropped() == 0 {
            thread::yield_now();
        }
        assert!(inner.tracker.wait_completed(None));
        stop_workers(&inner);

        assert_eq!(inner.tracker.pending_items(), 0);
        assert_eq!(
            probe.dropped(),
            1,
            "the delayed task was neither run nor dropped"
        );
        assert!(probe.runs().iter().all(|r| !r.after_completion));
        assert_eq!(inner.delay.len(), 0);
    });
}

/// A delayed post reaches `DelayManager::add` while shutdown stops the manager. The task is
/// refused by a stopped manager, or taken back by `stop()`; either way it is dropped exactly
/// once and never runs, and nothing stays behind.
#[test]
fn loom_delay_add_vs_stop() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let run_at = Instant::now();
        let shutdown = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || Engine::start_shutdown_for_loom(&inner))
        };
        if let Err(refused) = Engine::add_delayed(
            &inner,
            Deadline::at(run_at),
            probe.task(1, Some(&inner)),
            Destination::Parallel(TaskTraits::default()),
        ) {
            drop(refused);
        }
        shutdown.join().unwrap();
        // Whatever is still pending is dropped by the stopped manager; a forwarder that took
        // it would drop it too (shutdown started).
        Engine::forward_ripe(&inner, inner.delay.take_ripe(run_at));
        assert!(inner.tracker.wait_completed(None));
        stop_workers(&inner);

        assert_eq!(probe.dropped(), 1);
        assert!(
            probe.runs().is_empty(),
            "a delayed task ran after shutdown started"
        );
        assert_eq!(inner.delay.len(), 0, "a task was left in the manager");
    });
}

fn plain_task() -> Task {
    Task::new(Box::new(|| {}), std::panic::Location::caller())
}

/// A service thread (the model's, at a fixed `now`) that serves until it has forwarded one
/// task; returns it and the count of tasks it forwarded.
fn serve_one(mgr: &Arc<DelayManager>, now: Instant) -> (thread::JoinHandle<()>, Arc<AtomicUsize>) {
    let forwarded = Arc::new(AtomicUsize::new(0));
    let service = {
        let mgr = Arc::clone(mgr);
        let forwarded = Arc::clone(&forwarded);
        let seen = Arc::clone(&forwarded);
        thread::spawn(move || {
            crate::engine::delay::loom_service(
                &mgr,
                now,
                |ripe| {
                    forwarded.fetch_add(ripe.len(), Ordering::SeqCst);
                },
                move || seen.load(Ordering::SeqCst) == 1,
            )
        })
    };
    (service, forwarded)
}

/// A delayed post races the service thread going to sleep with nothing pending (`armed` =
/// "until a post"). The post's push-fence-load and the thread's store-fence-check rule out a
/// lost wake-up: the thread forwards the task instead of parking forever (loom reports a
/// thread parked forever as a deadlock).
#[test]
fn loom_delay_post_wakes_the_sleeping_service_thread() {
    model(|| {
        let mgr = Arc::new(DelayManager::new());
        let run_at = Instant::now();
        let (service, forwarded) = serve_one(&mgr, run_at);
        let added = mgr
            .add(
                Deadline::at(run_at),
                plain_task(),
                Destination::Parallel(TaskTraits::default()),
            )
            .expect("not stopped");
        assert!(
            added.start_thread,
            "the first post asks for the service thread"
        );
        service.join().unwrap();
        assert_eq!(forwarded.load(Ordering::SeqCst), 1);
        assert_eq!(mgr.len(), 0);
    });
}

/// The service thread exits after a stop while the manager is reopened and a task posted (a
/// pool whose last handle was dropped gets one back). The post either starts a new service
/// thread, or the exiting thread sees the reopen and carries on: never neither (the task
/// would wait forever), never both.
#[test]
fn loom_delay_service_exit_vs_reopen_and_post() {
    model(|| {
        let mgr = Arc::new(DelayManager::new());
        let run_at = Instant::now();
        // A service thread is running (the first post asked for it); then the pool stops.
        let first = mgr
            .add(
                Deadline::NEVER,
                plain_task(),
                Destination::Parallel(TaskTraits::default()),
            )
            .expect("not stopped");
        assert!(first.start_thread);
        drop(mgr.stop());
        let (service, forwarded) = serve_one(&mgr, run_at);
        mgr.reopen();
        let added = mgr
            .add(
                Deadline::at(run_at),
                plain_task(),
                Destination::Parallel(TaskTraits::default()),
            )
            .expect("reopened");
        service.join().unwrap();
        let carried_on = forwarded.load(Ordering::SeqCst) == 1;
        assert!(
            added.start_thread != carried_on,
            "start a new thread xor carry on (start: {}, carried on: {carried_on})",
            added.start_thread
        );
        if added.start_thread {
            // The new thread serves it: play it here.
            crate::engine::delay::loom_service(&mgr, run_at, drop, || mgr.len() == 0);
        }
        assert_eq!(mgr.len(), 0, "the task was left behind");
    });
}

/// A flexible post (leeway 1 ms) races the service thread sleeping until a far precise
/// deadline: the post's latest time (its run time plus the leeway) is earlier than what the
/// thread sleeps until, so it must wake it, and the thread forwards the flexible task (due at
/// the model's `now`). A missed wake-up leaves the thread parked: a loom deadlock.
#[test]
fn loom_delay_flexible_post_wakes_a_thread_sleeping_until_later() {
    use crate::base::traits::DelayPolicy;
    model(|| {
        let mgr = Arc::new(DelayManager::with_leeway(std::time::Duration::from_millis(
            1,
        )));
        let now = Instant::now();
        let far = Deadline::after(now, std::time::Duration::from_secs(3600));
        let first = mgr
            .add(
                far,
                plain_task(),
                Destination::Parallel(TaskTraits::default()),
            )
            .expect("not stopped");
        assert!(first.start_thread);
        let (service, forwarded) = serve_one(&mgr, now);
        let flexible = TaskTraits::default().delay_policy(DelayPolicy::FlexibleNoSooner);
        let added = mgr
            .add(
                Deadline::at(now),
                plain_task(),
                Destination::Parallel(flexible),
            )
            .expect("not stopped");
        assert!(
            !added.start_thread,
            "the first post already asked for the thread"
        );
        service.join().unwrap();
        assert_eq!(
            forwarded.load(Ordering::SeqCst),
            1,
            "the flexible task was forwarded"
        );
        assert_eq!(mgr.len(), 1, "the far precise task is still pending");
        drop(mgr.stop());
    });
}
