//! The fence gate (`engine::gate`, state table there), driven directly: a worker holding an
//! entry it took while a fence was up races the fence going down; a sequence's worker (or a
//! dedicated thread) waiting for the gate races the same.
//!
//! * the entry ends up exactly once either with the worker (to run) or in what `lower` hands
//!   back for the ready queues, never in neither (stranded) nor in both;
//! * a waiter is always woken by the lowering (a missed wake-up is a loom deadlock).

use super::model;
use crate::base::shim::{thread, Arc};
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::gate::{FenceKind, Gate};
use crate::engine::scheduler::Work;
use crate::engine::task::Task;

fn entry(p: TaskPriority) -> Work {
    let task = Task::new(
        Box::new(|| {}) as crate::engine::task::BoxedFn,
        std::panic::Location::caller(),
    );
    Work::one_off(task, TaskTraits::new().priority(p), false)
}

#[test]
fn loom_gate_hold_vs_lower() {
    model(|| {
        let gate = Arc::new(Gate::new(true));
        gate.raise(FenceKind::Full);
        let worker = {
            let gate = gate.clone();
            thread::spawn(move || gate.hold(entry(TaskPriority::UserVisible)).is_some())
        };
        let released = gate.lower(FenceKind::Full);
        let kept_by_worker = worker.join().unwrap();
        // Exactly one of the two has it.
        assert_eq!(
            usize::from(kept_by_worker) + released.len() + gate.held_len(),
            1
        );
        assert_eq!(
            gate.held_len(),
            0,
            "nothing stays held once the fence is down"
        );
    });
}

#[test]
fn loom_gate_best_effort_fence_keeps_only_best_effort() {
    model(|| {
        let gate = Arc::new(Gate::new(true));
        gate.raise(FenceKind::BestEffort);
        let worker = {
            let gate = gate.clone();
            thread::spawn(move || {
                let fg = gate.hold(entry(TaskPriority::UserBlocking)).is_some();
                let be = gate.hold(entry(TaskPriority::BestEffort)).is_some();
                (fg, be)
            })
        };
        let released = gate.lower(FenceKind::BestEffort);
        let (fg, be) = worker.join().unwrap();
        assert!(
            fg,
            "a foreground entry is never held by a best-effort fence"
        );
        assert_eq!(usize::from(be) + released.len(), 1);
        assert_eq!(gate.held_len(), 0);
    });
}

#[test]
fn loom_gate_waiter_vs_lower() {
    model(|| {
        let gate = Arc::new(Gate::new(false)); // not started: one full fence
        let waiter = {
            let gate = gate.clone();
            thread::spawn(move || {
                gate.wait_open(TaskPriority::UserVisible, || ());
            })
        };
        let released = gate.start().expect("not started before");
        assert!(released.is_empty());
        assert!(gate.start().is_none(), "start is idempotent");
        waiter.join().unwrap();
    });
}

/// Through the real engine: a task posted while a fence is up, taken by the worker (which
/// holds it, or finds the fence already down), then the fence lowered: it runs exactly once,
/// and the worker that parked after holding it is woken by the requeue.
#[test]
fn loom_gate_engine_post_under_fence_then_lower() {
    use super::{stop_workers, Probe};
    use crate::engine::{Engine, PostDest};
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        inner.raise_fence(FenceKind::Full);
        Engine::post(
            &inner,
            PostDest::Parallel(TaskTraits::default()),
            std::time::Duration::ZERO,
            probe.closure(1, None),
            std::panic::Location::caller(),
        )
        .expect("accepted under a fence");
        Engine::lower_fence(&inner, FenceKind::Full);
        while probe.dropped() < 1 {
            thread::yield_now();
        }
        stop_workers(&inner);
        assert_eq!(probe.ran_ids(), vec![1]);
    });
}
