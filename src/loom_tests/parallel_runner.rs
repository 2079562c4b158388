//! A parallel runner's identity (`ParallelRunner`): each of its tasks' queue entries holds a
//! reference to it, taken before the entry can be taken and dropped (`Release`) after the task
//! ran or was dropped, so its tasks in flight are its reference count minus the runner's own;
//! its closed flag refuses posts and closes out queued tasks when they come up. The models run
//! the real posting path and worker loop and check the claims `TaskRunner::flush` and
//! `TaskRunner::close` rely on:
//!
//! * when the in-flight count reads 0 (then an `Acquire` fence) after a post, the task has
//!   run and its effects are visible;
//! * a post racing a close is either refused (closure handed back) or queued and then run or
//!   dropped, exactly once, and the count returns to 0 either way.

use std::panic::Location;
use std::time::Duration;

use super::{model, stop_workers, Probe};
use crate::base::shim::{thread, Arc, AtomicBool, Ordering};
use crate::base::traits::{ShutdownBehavior, TaskTraits};
use crate::engine::scheduler::ParallelRunner;
use crate::engine::{Engine, PostDest};

#[test]
fn loom_parallel_runner_idle_means_its_task_ran() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let runner = Arc::new(ParallelRunner::new(TaskTraits::default()));
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        Engine::post(
            &inner,
            PostDest::Runner(&runner),
            Duration::ZERO,
            move || r2.store(true, Ordering::Relaxed),
            Location::caller(),
        )
        .expect("accepted");
        // The flusher, after the post: 0 in flight only once the task's effects are visible.
        if runner.in_flight() == 0 {
            assert!(ran.load(Ordering::Relaxed), "idle before the task ran");
        }
        while runner.in_flight() != 0 {
            thread::yield_now();
        }
        assert!(ran.load(Ordering::Relaxed));
        stop_workers(&inner);
    });
}

#[test]
fn loom_parallel_runner_close_vs_post() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let traits = TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown);
        let runner = Arc::new(ParallelRunner::new(traits));
        let probe = Probe::new();
        let closer = {
            let runner = runner.clone();
            thread::spawn(move || {
                runner.seq.close();
            })
        };
        let accepted = Engine::post(
            &inner,
            PostDest::Runner(&runner),
            Duration::ZERO,
            probe.closure(1, None),
            Location::caller(),
        )
        .is_ok();
        closer.join().unwrap();
        // Refused: the closure came back and was dropped here. Accepted: it runs, or the
        // worker finds the runner closed and drops it; once, either way.
        while probe.dropped() < 1 {
            thread::yield_now();
        }
        while runner.in_flight() != 0 {
            thread::yield_now();
        }
        stop_workers(&inner);
        assert_eq!(probe.dropped(), 1);
        assert!(probe.runs().len() <= usize::from(accepted));
        assert!(runner.seq.is_closed());
    });
}
