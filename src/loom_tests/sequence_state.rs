//! The sequence state machine (`Idle` / `Queued` / `Running`, see `scheduler::sequence`): only
//! the idle → queued transition enqueues, each enqueue duty goes to exactly one caller, and
//! consecutive tasks are ordered by happens-before even when they run on different threads.

use std::panic::Location;
use std::time::Duration;

use super::{model, new_worker, worker_loop, LoopEnd, Probe};
use crate::pool::{Inner, PostDest};
use crate::scheduler::{AfterRun, Home, Push, Sequence, State};
use crate::sync::{thread, Arc};
use crate::tracker::{Completion, Tracker};
use crate::traits::TaskTraits;

/// The owner of a queued sequence runs its front task; the sequence must then be drained.
fn run_last(seq: &Sequence, tracker: &Tracker) {
    let task = seq.take_task();
    task.call();
    match seq.did_run(tracker) {
        AfterRun::Idle(c) => assert_eq!(c, Completion::None),
        AfterRun::Requeue(_) => panic!("the sequence had one task left"),
    }
}

/// A worker has taken task 1 and runs it while a poster appends task 2. Whatever the
/// interleaving, exactly one of them becomes the owner of task 2: the poster (`Push::Enqueue`,
/// when `did_run` already left the sequence idle) or the worker (`AfterRun::Requeue`, when the
/// post landed while it was running, which makes the post `Push::Done`). The owner runs task 2
/// on its own thread, which must see task 1's effects.
#[test]
fn loom_sequence_post_while_running() {
    model(|| {
        let tracker = Arc::new(Tracker::new());
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
        assert!(matches!(
            seq.push(probe.task(1, None), &tracker),
            Push::Enqueue(_)
        ));
        // The worker popped the sequence and took its front task: it is running.
        let t1 = seq.take_task();
        assert_eq!(seq.state(), State::Running);

        let worker = {
            let (seq, tracker) = (Arc::clone(&seq), Arc::clone(&tracker));
            thread::spawn(move || {
                t1.call();
                match seq.did_run(&tracker) {
                    AfterRun::Requeue(_) => {
                        run_last(&seq, &tracker);
                        true
                    }
                    AfterRun::Idle(c) => {
                        assert_eq!(c, Completion::None);
                        false
                    }
                }
            })
        };
        let poster = {
            let (seq, tracker, probe) = (Arc::clone(&seq), Arc::clone(&tracker), probe.clone());
            thread::spawn(move || match seq.push(probe.task(2, None), &tracker) {
                Push::Enqueue(_) => {
                    run_last(&seq, &tracker);
                    true
                }
                Push::Done => false,
                Push::Refused(_) => panic!("no shutdown in this model"),
            })
        };
        let worker_owned = worker.join().unwrap();
        let poster_owned = poster.join().unwrap();
        assert!(
            worker_owned != poster_owned,
            "exactly one enqueue duty: did_run Requeue = {worker_owned}, post Enqueue = {poster_owned}"
        );
        assert_eq!(probe.ran_ids(), vec![1, 2]);
        probe.assert_chained();
        assert_eq!(probe.dropped(), 2);
        assert_eq!(seq.state(), State::Idle);
    });
}

/// Two threads post to the same idle sequence through the real post path. Exactly one of them
/// takes it idle → queued, so the group holds exactly one entry for it; both tasks then run,
/// one at a time.
#[test]
fn loom_sequence_two_posters_race() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
        let posters: Vec<_> = (1..=2)
            .map(|id| {
                let (inner, seq, probe) = (Arc::clone(&inner), Arc::clone(&seq), probe.clone());
                thread::spawn(move || {
                    Inner::post(
                        &inner,
                        PostDest::Sequence(&seq),
                        Duration::ZERO,
                        probe.closure(id, None),
                        Location::caller(),
                    )
                    .expect("no shutdown in this model");
                })
            })
            .collect();
        for p in posters {
            p.join().unwrap();
        }
        assert_eq!(seq.state(), State::Queued);
        assert_eq!(
            inner.group.queued(),
            1,
            "exactly one poster enqueues an idle sequence"
        );
        let end = worker_loop(&inner, &me, Some(finished), &|| probe.dropped() == 2, false);
        assert_eq!(end, LoopEnd::Done);
        let mut ids = probe.ran_ids();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
        probe.assert_chained();
        assert_eq!(seq.state(), State::Idle);
        assert_eq!(inner.group.queued(), 0);
    });
}

/// Task 1 is queued (the sequence is in the group's ready queue) when a worker pops and runs
/// it while a poster appends task 2. A post to a queued or running sequence must not enqueue
/// it again (a second entry would make a second worker `take_task` a sequence that is not
/// queued, which `take_task` asserts); task 2 runs after task 1 and sees its effects. If the
/// post lands after task 1 drained the sequence, the post enqueues it and wakes the (possibly
/// parked) worker.
#[test]
fn loom_sequence_post_while_queued() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
        Inner::post(
            &inner,
            PostDest::Sequence(&seq),
            Duration::ZERO,
            probe.closure(1, None),
            Location::caller(),
        )
        .expect("accepted");
        assert_eq!(seq.state(), State::Queued);

        let worker = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                worker_loop(&inner, &me, Some(finished), &|| probe.dropped() == 2, false)
            })
        };
        Inner::post(
            &inner,
            PostDest::Sequence(&seq),
            Duration::ZERO,
            probe.closure(2, None),
            Location::caller(),
        )
        .expect("accepted");
        assert_eq!(worker.join().unwrap(), LoopEnd::Done);
        assert_eq!(probe.ran_ids(), vec![1, 2]);
        probe.assert_chained();
        assert_eq!(seq.state(), State::Idle);
        assert_eq!(inner.group.queued(), 0);
    });
}

/// Two threads post to a sequence whose first task a worker is popping and running. Every
/// post is to a queued or running sequence, or to one that just went idle; whichever enqueue
/// duty arises goes to one caller only. All three tasks run one at a time, task 1 first, each
/// seeing the previous one's effects.
#[test]
fn loom_sequence_two_posters_vs_worker() {
    model(|| {
        let inner = Inner::new_for_loom(1, 1);
        let (me, finished) = new_worker(&inner);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
        Inner::post(
            &inner,
            PostDest::Sequence(&seq),
            Duration::ZERO,
            probe.closure(1, None),
            Location::caller(),
        )
        .expect("accepted");

        let worker = {
            let (inner, probe) = (Arc::clone(&inner), probe.clone());
            thread::spawn(move || {
                worker_loop(&inner, &me, Some(finished), &|| probe.dropped() == 3, false)
            })
        };
        let poster = {
            let (inner, probe, seq) = (Arc::clone(&inner), probe.clone(), Arc::clone(&seq));
            thread::spawn(move || {
                Inner::post(
                    &inner,
                    PostDest::Sequence(&seq),
                    Duration::ZERO,
                    probe.closure(2, None),
                    Location::caller(),
                )
                .expect("accepted");
            })
        };
        Inner::post(
            &inner,
            PostDest::Sequence(&seq),
            Duration::ZERO,
            probe.closure(3, None),
            Location::caller(),
        )
        .expect("accepted");
        poster.join().unwrap();
        assert_eq!(worker.join().unwrap(), LoopEnd::Done);

        let ids = probe.ran_ids();
        assert!(ids == vec![1, 2, 3] || ids == vec![1, 3, 2], "ran {ids:?}");
        probe.assert_chained();
        assert_eq!(seq.state(), State::Idle);
        assert_eq!(inner.group.queued(), 0);
    });
}
