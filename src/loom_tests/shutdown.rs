//! Shutdown accounting (see `tracker` and `pool/shutdown.rs`): the state word (`STARTED`,
//! `COMPLETED`, block-shutdown items), the workers' running slots (skip-on-shutdown tasks), and
//! the completion check, against posts and task runs. Shutdown always completes, and only once
//! nothing that must run or must be waited for is left; a task never starts after completion;
//! nothing posted is left stranded in a queue.

use std::panic::Location;
use std::time::Duration;

use super::{model, stop_workers, Probe};
use crate::base::shim::{thread, Arc};
use crate::base::traits::{ShutdownBehavior, TaskTraits};
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::{Engine, PostDest};

fn block() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown)
}

fn wait_for(probe: &Probe, n: usize) {
    while probe.dropped() < n {
        thread::yield_now();
    }
}

/// A worker starts a skip-on-shutdown task while shutdown starts: through the running slot's
/// handshake either the worker sees `STARTED` (and skips the task) or the completion check sees
/// the slot (and completion waits for the task's end, whose completion check completes it).
#[test]
fn loom_shutdown_skip_run_vs_start() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        Engine::post(
            &inner,
            PostDest::Parallel(TaskTraits::default()),
            Duration::ZERO,
            probe.closure(1, Some(&inner)),
            Location::caller(),
        )
        .expect("accepted before shutdown");
        Engine::start_shutdown_for_loom(&inner);
        wait_for(&probe, 1);
        // Shutdown completes (a model that never completes it deadlocks here).
        assert!(inner.tracker.wait_completed(None));
        for r in probe.runs() {
            assert!(!r.after_completion, "a skip task ran after completion");
        }
        stop_workers(&inner);
    });
}

/// `Engine::post` of a block one-off (its item taken before the closure is boxed) races
/// shutdown: `Ok` means it runs, before completion; a refusal hands the closure back.
#[test]
fn loom_shutdown_block_post_vs_shutdown() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let poster = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                Engine::post(
                    &inner,
                    PostDest::Parallel(block()),
                    Duration::ZERO,
                    probe.closure(1, Some(&inner)),
                    Location::caller(),
                )
                .is_ok()
            })
        };
        Engine::start_shutdown_for_loom(&inner);
        let accepted = poster.join().unwrap();
        wait_for(&probe, 1);
        assert!(inner.tracker.wait_completed(None));
        if accepted {
            assert_eq!(probe.runs().len(), 1, "an accepted block task runs");
            assert!(!probe.runs()[0].after_completion);
        } else {
            assert!(probe.runs().is_empty());
        }
        stop_workers(&inner);
    });
}

/// The same through a block-shutdown sequence (the entry holds the post's item until it ran).
#[test]
fn loom_shutdown_block_sequence_post_vs_shutdown() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(block(), Home::Pool));
        let poster = {
            let (inner, probe, seq) = (Arc::clone(&inner), probe.clone(), Arc::clone(&seq));
            thread::spawn(move || {
                Engine::post(
                    &inner,
                    PostDest::Sequence(&seq),
                    Duration::ZERO,
                    probe.closure(1, Some(&inner)),
                    Location::caller(),
                )
                .is_ok()
            })
        };
        Engine::start_shutdown_for_loom(&inner);
        let accepted = poster.join().unwrap();
        wait_for(&probe, 1);
        assert!(inner.tracker.wait_completed(None));
        assert_eq!(probe.runs().len(), usize::from(accepted));
        assert!(probe.runs().iter().all(|r| !r.after_completion));
        stop_workers(&inner);
    });
}

/// A skip post admitted just before completion races the completion duties (which drain every
/// queue): the entry runs before completion, or is discarded by whichever side comes second;
/// it is never left behind in a queue no worker will look at.
#[test]
fn loom_shutdown_post_vs_complete() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let poster = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                let _ = Engine::post(
                    &inner,
                    PostDest::Parallel(TaskTraits::default()),
                    Duration::ZERO,
                    probe.closure(1, Some(&inner)),
                    Location::caller(),
                );
            })
        };
        Engine::start_shutdown_for_loom(&inner);
        poster.join().unwrap();
        assert!(inner.tracker.wait_completed(None));
        stop_workers(&inner);
        assert_eq!(
            probe.dropped(),
            1,
            "the task ran or was discarded, exactly once"
        );
        assert!(probe.runs().iter().all(|r| !r.after_completion));
    });
}
