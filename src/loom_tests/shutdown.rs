//! Shutdown accounting (see `tracker`): the state word (`STARTED`, `COMPLETED`, block-shutdown
//! items), the workers' running slots (skip-on-shutdown tasks), and the completion check
//! (`Inner::maybe_complete_shutdown`), against posts, task runs and re-queues. Shutdown always
//! completes, and only once nothing that must run or must be waited for is left. (Exactly one
//! completer is structural: the check ends with a CAS from `STARTED` to `COMPLETED`.)

use std::panic::Location;
use std::time::Duration;

use super::{model, new_worker, worker_loop, LoopEnd, Probe};
use crate::pool::{Inner, PostDest};
use crate::scheduler::{Home, Push, Sequence, State};
use crate::sync::{thread, Arc};
use crate::traits::{ShutdownBehavior, TaskTraits};
use crate::worker::{run_sequence_task, Finished, Work, WorkerShared};

fn block() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown)
}

/// A post takes a block-shutdown sequence idle → queued (registering it as an item) while
/// another thread starts shutdown (`Inner::start_shutdown`: `STARTED`, then the completion
/// check). Either the registration is refused (shutdown had already completed: the check found
/// no item) or it is counted, and then shutdown completes only once the sequence drained
/// (`did_run` → `unregister_block` → the completion check on the worker), after its task ran.
/// Shutdown always completes.
#[test]
fn loom_shutdown_block_register_vs_start() {
    model(|| {
        let inner = Inner::new_for_loom(0, 0);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(block(), Home::Pool));

        let poster = {
            let (inner, probe, seq) = (Arc::clone(&inner), probe.clone(), Arc::clone(&seq));
            thread::spawn(
                move || match seq.push(probe.task(1, Some(&inner)), &inner.tracker) {
                    Push::Enqueue(_) => {
                        // The poster's thread plays the worker that pops the sequence (a worker
                        // of its own: block tasks are not looked up in the slots).
                        let me = WorkerShared::new(usize::MAX);
                        assert!(run_sequence_task(&inner, seq, &me).is_none());
                        true
                    }
                    Push::Refused(task) => {
                        assert!(
                            inner.tracker.shutdown_completed(),
                            "a block registration refused before completion"
                        );
                        drop(task);
                        assert_eq!(seq.state(), State::Idle, "a refused push leaves it idle");
                        false
                    }
                    Push::Done => panic!("the sequence was idle"),
                },
            )
        };
        Inner::start_shutdown_for_loom(&inner);
        let registered = poster.join().unwrap();

        assert!(
            inner.tracker.shutdown_completed(),
            "nobody completed shutdown"
        );
        assert_eq!(inner.tracker.pending_items(), 0);
        assert_eq!(probe.dropped(), 1);
        let runs = probe.runs();
        assert!(
            runs.iter().all(|r| !r.after_completion),
            "shutdown completed while a registered block sequence had not drained"
        );
        assert_eq!(runs.len(), usize::from(registered));
    });
}

/// A worker starts a skip-on-shutdown task while shutdown starts. The worker checks `STARTED`
/// and records the task in its slot under the slot's lock; the completion check scans the
/// slots. Either the task is skipped, or it runs and shutdown completes only after it ended
/// (the worker's `after_run` runs the completion check). The worker exits either way.
#[test]
fn loom_shutdown_skip_run_vs_start() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        Inner::post(
            &inner,
            PostDest::Parallel(TaskTraits::default()),
            Duration::ZERO,
            probe.closure(1, Some(&inner)),
            Location::caller(),
        )
        .expect("accepted");

        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
        };
        Inner::start_shutdown_for_loom(&inner);
        assert_eq!(worker.join().unwrap(), LoopEnd::Exit);

        assert!(
            inner.tracker.shutdown_completed(),
            "nobody completed shutdown"
        );
        assert_eq!(probe.dropped(), 1);
        assert!(
            probe.runs().iter().all(|r| !r.after_completion),
            "shutdown completed while a skip task was running"
        );
        assert_eq!(inner.group.queued(), 0);
    });
}

/// The real post path of a block-shutdown task (`Inner::post`) races the real shutdown path
/// (`Inner::start_shutdown`), with a live worker running the real worker loop. A post that
/// returned `Ok` must run (block-shutdown tasks accepted before completion are waited for);
/// a refused one hands its closure back. Nothing runs after completion, the worker exits, and
/// shutdown completes.
fn block_post_vs_shutdown(to_sequence: bool) {
    model(move || {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(block(), Home::Pool));

        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
        };
        let poster = {
            let (inner, probe, seq) = (Arc::clone(&inner), probe.clone(), Arc::clone(&seq));
            thread::spawn(move || {
                let dest = if to_sequence {
                    PostDest::Sequence(&seq)
                } else {
                    PostDest::Parallel(block())
                };
                match Inner::post(
                    &inner,
                    dest,
                    Duration::ZERO,
                    probe.closure(1, Some(&inner)),
                    Location::caller(),
                ) {
                    Ok(()) => true,
                    Err(e) => {
                        drop(e.into_inner());
                        false
                    }
                }
            })
        };
        Inner::start_shutdown_for_loom(&inner);
        let accepted = poster.join().unwrap();
        assert_eq!(worker.join().unwrap(), LoopEnd::Exit);

        assert!(inner.tracker.shutdown_completed());
        assert_eq!(inner.tracker.pending_items(), 0);
        assert_eq!(probe.dropped(), 1);
        let runs = probe.runs();
        assert!(
            runs.iter().all(|r| !r.after_completion),
            "ran after completion"
        );
        if accepted {
            assert_eq!(
                probe.ran_ids(),
                vec![1],
                "Inner::post returned Ok for a block-shutdown task that never ran"
            );
        } else {
            assert!(runs.is_empty());
        }
        assert_eq!(seq.state(), State::Idle);
    });
}

/// [`block_post_vs_shutdown`] for a one-off task (`Inner::push_one_off` registers it).
#[test]
fn loom_shutdown_block_post_vs_shutdown() {
    block_post_vs_shutdown(false);
}

/// [`block_post_vs_shutdown`] for a block-shutdown sequence (`Sequence::push` registers it on
/// idle → queued).
#[test]
fn loom_shutdown_block_sequence_post_vs_shutdown() {
    block_post_vs_shutdown(true);
}

/// A worker hands back a sequence that still has a task (`next_work` re-queues it) while
/// shutdown starts and completes (`Group::complete` drains the ready queue, via the real
/// shutdown path). The sequence is re-run by the worker, drained by completion, or discarded
/// by the re-queue after completion: never left queued, its tasks all dropped, nothing runs
/// after completion, and the worker exits.
fn requeue_vs_shutdown(behavior: ShutdownBehavior) {
    model(move || {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(
            TaskTraits::new().shutdown_behavior(behavior),
            Home::Pool,
        ));
        for id in 1..=2 {
            Inner::post(
                &inner,
                PostDest::Sequence(&seq),
                Duration::ZERO,
                probe.closure(id, Some(&inner)),
                Location::caller(),
            )
            .expect("accepted");
        }
        // The worker pops the sequence and runs task 1; it must re-queue the sequence.
        let (work, mut wakeups) = inner.group.next_work(&me, Some(finished), false);
        assert!(wakeups.take_spawns().is_empty());
        wakeups.run(&inner);
        let Work::Sequence(popped, priority) = work else {
            panic!("expected the sequence, got {work:?}");
        };
        let requeue = run_sequence_task(&inner, popped, &me);
        assert!(
            requeue.is_some(),
            "task 2 is left: the sequence must be re-queued"
        );
        let finished = Finished { priority, requeue };

        let worker = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
        };
        Inner::start_shutdown_for_loom(&inner);
        assert_eq!(worker.join().unwrap(), LoopEnd::Exit);

        assert!(inner.tracker.shutdown_completed());
        assert_eq!(inner.group.queued(), 0, "a sequence was left queued");
        assert_eq!(seq.state(), State::Idle);
        assert_eq!(probe.dropped(), 2, "a task was neither run nor dropped");
        let ids = probe.ran_ids();
        if behavior == ShutdownBehavior::BlockShutdown {
            assert_eq!(ids, vec![1, 2], "a queued block-shutdown task was not run");
        } else {
            assert!(ids == vec![1] || ids == vec![1, 2], "ran {ids:?}");
        }
        assert!(probe.runs().iter().all(|r| !r.after_completion));
        probe.assert_chained();
    });
}

/// [`requeue_vs_shutdown`] for a skip-on-shutdown sequence: task 2 runs only if it started
/// before shutdown did; the re-queue vs `Group::complete` race decides where it is dropped.
#[test]
fn loom_shutdown_requeue_vs_complete() {
    requeue_vs_shutdown(ShutdownBehavior::SkipOnShutdown);
}

/// [`requeue_vs_shutdown`] for a block-shutdown sequence: the registered sequence keeps
/// shutdown from completing until its last task ran and it went idle (`did_run` →
/// `unregister_block` completes shutdown on the worker).
#[test]
fn loom_shutdown_block_requeue_vs_start() {
    requeue_vs_shutdown(ShutdownBehavior::BlockShutdown);
}
