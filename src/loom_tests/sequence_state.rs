//! The sequence's turn-taking (`scheduler::sequence`): the state word (`next_run`, `RUNNING`,
//! `BUFFERED`), the reorder buffer behind the cold lock, and held-mode tickets. Entries of one
//! sequence are taken by different workers in any order; each must run exactly once, in
//! position order, one at a time, each seeing the effects of the one before it.
//!
//! The models drive `begin`/`finish` directly (as `Engine::run_work` does, minus the task
//! context, whose thread-locals loom threads would share).

use std::panic::Location;

use super::{model, Probe};
use crate::base::shim::{thread, Arc};
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::scheduler::{Begin, Home, Sequence, Work};
use crate::engine::task::Task;

fn sequence() -> Arc<Sequence> {
    Arc::new(Sequence::new(TaskTraits::default(), Home::Pool))
}

/// A post: the entry for the sequence's next position.
fn entry(seq: &Arc<Sequence>, probe: &Probe, id: usize) -> Work {
    let pos = seq.next_position();
    Work::sequenced(probe.task(id, None), Arc::clone(seq), pos, false)
}

/// What a worker does with an entry it took: run it (and whatever the sequence hands on) or
/// leave it to the sequence.
fn take(seq: &Sequence, work: Work) {
    let mut w = match seq.begin(work) {
        Begin::Run(w) => w,
        Begin::Later => return,
    };
    loop {
        w.task
            .take()
            .expect("a runnable entry holds its task")
            .call();
        match seq.finish() {
            Some(next) => w = next,
            None => return,
        }
    }
}

/// Two workers take the two entries of one sequence at the same time: whichever takes entry
/// 1 first either finds the sequence idle at its turn or parks it in the buffer for the run of
/// entry 0 to hand on.
#[test]
fn loom_sequence_entries_taken_out_of_order() {
    model(|| {
        let probe = Probe::new();
        let seq = sequence();
        let (e0, e1) = (entry(&seq, &probe, 1), entry(&seq, &probe, 2));
        let other = {
            let seq = Arc::clone(&seq);
            thread::spawn(move || take(&seq, e1))
        };
        take(&seq, e0);
        other.join().unwrap();
        assert_eq!(probe.ran_ids(), vec![1, 2]);
        probe.assert_chained();
        assert_eq!(seq.next_run(), 2);
        assert!(!seq.is_running());
    });
}

/// A post while the previous entry runs: the poster takes the next position and (as the worker
/// that takes the entry right away) races the running worker's unlocked `finish`.
#[test]
fn loom_sequence_post_while_running() {
    model(|| {
        let probe = Probe::new();
        let seq = sequence();
        let e0 = entry(&seq, &probe, 1);
        let runner = {
            let seq = Arc::clone(&seq);
            thread::spawn(move || take(&seq, e0))
        };
        let e1 = entry(&seq, &probe, 2);
        take(&seq, e1);
        runner.join().unwrap();
        assert_eq!(probe.ran_ids(), vec![1, 2]);
        probe.assert_chained();
        assert!(!seq.is_running());
    });
}

/// Three entries, two workers: one takes entry 2 then entry 0, the other entry 1.
#[test]
fn loom_sequence_three_entries_two_workers() {
    model(|| {
        let probe = Probe::new();
        let seq = sequence();
        let e0 = entry(&seq, &probe, 1);
        let e1 = entry(&seq, &probe, 2);
        let e2 = entry(&seq, &probe, 3);
        let other = {
            let seq = Arc::clone(&seq);
            thread::spawn(move || take(&seq, e1))
        };
        take(&seq, e2);
        take(&seq, e0);
        other.join().unwrap();
        assert_eq!(probe.ran_ids(), vec![1, 2, 3]);
        probe.assert_chained();
        assert_eq!(seq.next_run(), 3);
        assert!(!seq.is_running());
    });
}

/// A held sequence with two tasks: a worker takes the first ticket while another thread
/// re-keys the sequence (`set_priority_held`) and issues fresh tickets, which it then takes
/// itself. Stale tickets do nothing, deferred ones are run by the running worker, and every
/// task runs exactly once, in order.
#[test]
fn loom_sequence_held_ticket_vs_update_priority() {
    model(|| {
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new_held(TaskTraits::default(), Home::Pool));
        let mut tickets = Vec::new();
        for id in 1..=2 {
            let (epoch, _) = seq.push_held(probe.task(id, None), false);
            tickets.push(Work::ticket(Arc::clone(&seq), epoch));
        }
        let t2 = tickets.pop().unwrap();
        let t1 = tickets.pop().unwrap();
        let worker = {
            let seq = Arc::clone(&seq);
            thread::spawn(move || {
                take(&seq, t1);
                take(&seq, t2);
            })
        };
        let (epoch, n) = seq.set_priority_held(TaskPriority::BestEffort);
        for _ in 0..n {
            take(&seq, Work::ticket(Arc::clone(&seq), epoch));
        }
        worker.join().unwrap();
        assert_eq!(probe.ran_ids(), vec![1, 2]);
        probe.assert_chained();
        assert_eq!(probe.dropped(), 2);
        assert!(!seq.is_running());
    });
}

/// Keeps `Task` and `Location` in use for the helpers above under every cfg.
#[allow(dead_code)]
fn _uses(_: Task, _: &'static Location<'static>) {}
