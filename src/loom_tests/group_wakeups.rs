//! Worker parking: the group's inbox and `sleepy` handshake (`worker::group`), the idle stack,
//! `Wakeups` and the `Parker`. A post appends to the inbox and wakes a worker only if `sleepy`
//! says one may be asleep; a worker about to park registers itself idle (raising `sleepy`)
//! and drains the inbox once more before parking; whoever pops a worker from the idle stack
//! unparks it after the locks are released, and the sticky `notified` flag keeps a wake-up
//! sent before the park. A lost wake-up leaves the worker parked with work queued, which loom
//! reports as a deadlock.

use std::panic::Location;
use std::time::Duration;

use super::{model, new_worker, worker_loop, LoopEnd, Probe};
use crate::pool::{Inner, PostDest};
use crate::scheduler::{Home, Push, Sequence};
use crate::sync::{thread, Arc};
use crate::traits::TaskTraits;

fn park_vs_post(dest_is_sequence: bool) {
    model(move || {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));

        let worker = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                worker_loop(&inner, &me, Some(finished), &|| probe.dropped() == 1, false)
            })
        };
        let dest = if dest_is_sequence {
            PostDest::Sequence(&seq)
        } else {
            PostDest::Parallel(TaskTraits::default())
        };
        Inner::post(
            &inner,
            dest,
            Duration::ZERO,
            probe.closure(1, None),
            Location::caller(),
        )
        .expect("accepted");
        assert_eq!(worker.join().unwrap(), LoopEnd::Done);
        assert_eq!(probe.ran_ids(), vec![1]);
        assert_eq!(inner.group.queued(), 0);
    });
}

/// A worker runs out of work (`next_work` → `Retry`, then → `Idle`: on the idle stack with
/// `sleepy` raised) and parks, while a post takes a sequence idle → queued (`push_sequence`
/// into the inbox) and runs the returned wake-ups. Either the worker's second drain finds the
/// item or the post sees `sleepy` and wakes it: the worker always runs the task.
#[test]
fn loom_group_park_vs_post() {
    park_vs_post(true);
}

/// The same through the parallel path (`push_one_off`).
#[test]
fn loom_group_park_vs_post_one_off() {
    park_vs_post(false);
}

/// An idle worker's idle timeout fires (`try_reclaim`) while a post arrives. Either the post
/// popped the worker from the idle stack first (the reclaim fails, the worker stays and runs
/// the task) or the worker left the pool first (the post finds no worker and requests a spawn,
/// which this model runs as a worker on the poster's thread). The task runs exactly once and
/// the pool ends with one worker.
#[test]
fn loom_group_reclaim_vs_post() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));

        let worker = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                worker_loop(&inner, &me, Some(finished), &|| probe.dropped() == 1, true)
            })
        };
        // `Inner::push_to_sequence`, with the spawn request taken out of the wake-ups.
        let spawned = match seq.push(probe.task(1, None), &inner.tracker) {
            Push::Enqueue(key) => {
                let mut wakeups = inner.group.push_sequence(key, Arc::clone(&seq));
                let spawns = wakeups.take_spawns();
                assert!(
                    spawns.len() + wakeups.unparks() <= 1,
                    "one task must not wake or create two workers"
                );
                wakeups.run(&inner);
                for w in &spawns {
                    let end = worker_loop(&inner, w, None, &|| probe.dropped() == 1, false);
                    assert_eq!(end, LoopEnd::Done);
                }
                spawns.len()
            }
            other => panic!("the sequence was idle: {other:?}"),
        };
        let end = worker.join().unwrap();
        match end {
            LoopEnd::Reclaimed => assert_eq!(spawned, 1, "the worker left and nobody replaced it"),
            LoopEnd::Done => assert_eq!(spawned, 0, "a spawn although a worker was idle"),
            LoopEnd::Exit => panic!("no shutdown in this model"),
        }
        assert_eq!(probe.ran_ids(), vec![1]);
        assert_eq!(inner.group.workers().len(), 1);
        assert_eq!(inner.group.queued(), 0);
    });
}

/// Two workers go idle and park (the idle stack holds both) while one thread posts two
/// one-off tasks and then drops the pool's last handle (`Group::set_terminating`, which wakes
/// every idle worker). Each post wakes one worker (`ensure_enough_workers` pops the most
/// recently idle one). Queued work still runs after the last handle is gone, then both
/// workers exit; a lost wake-up leaves a worker parked (a loom deadlock).
/// One-off tasks only: loom threads share the OS thread's thread-locals, so two model workers
/// must not run sequenced tasks at the same time (their `TaskScope`s would interleave).
#[test]
fn loom_group_two_parked_two_posts_then_terminate() {
    model(|| {
        let inner = Inner::new_for_loom(2, 2);
        let (w1, f1) = new_worker(&inner);
        let (w2, f2) = new_worker(&inner);
        let probe = Probe::new();

        let workers: Vec<_> = [(w1, f1), (w2, f2)]
            .into_iter()
            .map(|(me, finished)| {
                let inner = Arc::clone(&inner);
                thread::spawn(move || worker_loop(&inner, &me, Some(finished), &|| false, false))
            })
            .collect();
        for id in 1..=2 {
            Inner::post(
                &inner,
                PostDest::Parallel(TaskTraits::default()),
                Duration::ZERO,
                probe.closure(id, None),
                Location::caller(),
            )
            .expect("accepted");
        }
        inner.group.set_terminating(true).run(&inner);
        for w in workers {
            assert_eq!(w.join().unwrap(), LoopEnd::Exit);
        }
        let mut ids = probe.ran_ids();
        ids.sort_unstable();
        assert_eq!(
            ids,
            vec![1, 2],
            "queued work must run after the last handle drops"
        );
        assert_eq!(inner.group.queued(), 0);
        assert!(inner.group.workers().is_empty());
    });
}
