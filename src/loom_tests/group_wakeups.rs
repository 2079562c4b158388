//! Waking and parking (`worker::group`, `worker::thread`): a post wakes a worker only when no
//! worker searches; the last searcher to park registers as parked, fences and looks once more;
//! whoever takes a worker off the parked list unparks it after the lock is released, and the
//! parker's sticky flag keeps a wake-up sent before the park. A lost wake-up leaves a worker
//! parked with work queued, which loom reports as a deadlock (the model waits for the task).
//!
//! Workers are the real worker loop on model threads, started by the group's own `Wake`.

use std::panic::Location;
use std::time::Duration;

use super::{model, stop_workers, Probe};
use crate::base::shim::{thread, Arc, Ordering};
use crate::base::traits::TaskTraits;
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::{Engine, PostDest};

fn post(inner: &Arc<Engine>, dest: PostDest<'_>, probe: &Probe, id: usize) {
    Engine::post(
        inner,
        dest,
        Duration::ZERO,
        probe.closure(id, None),
        Location::caller(),
    )
    .expect("accepted");
}

/// Waits (as a model thread) until `n` tasks have run: a lost wake-up makes this a deadlock.
fn wait_for(probe: &Probe, n: usize) {
    while probe.dropped() < n {
        thread::yield_now();
    }
}

/// The first post finds no worker and asks for one (`Wake` → `Host::spawn`), which runs it.
#[test]
fn loom_group_post_starts_a_worker() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 1);
        wait_for(&probe, 1);
        stop_workers(&inner);
        assert_eq!(probe.ran_ids(), vec![1]);
    });
}

fn park_vs_post(sequenced: bool) {
    model(move || {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
        // A worker that runs a first task, then searches, finds nothing and parks...
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 1);
        // ...while a second post races its parking.
        let dest = if sequenced {
            PostDest::Sequence(&seq)
        } else {
            PostDest::Parallel(TaskTraits::default())
        };
        post(&inner, dest, &probe, 2);
        wait_for(&probe, 2);
        stop_workers(&inner);
        assert_eq!(probe.dropped(), 2);
        assert_eq!(probe.runs().len(), 2);
    });
}

/// The last searcher parks while a one-off post arrives: either the post sees it searching (and
/// it finds the entry when it looks after its fence), or the post sees no searcher and wakes
/// it. The task always runs.
#[test]
fn loom_group_park_vs_post() {
    park_vs_post(false);
}

/// The same through a sequence's entry.
#[test]
fn loom_group_park_vs_post_sequenced() {
    park_vs_post(true);
}

/// Two posts on a two-worker pool: the second may find the first worker searching (and leave
/// the entry to it), or start a second worker; both tasks run, and nothing is left behind.
#[test]
fn loom_group_two_posts_two_workers() {
    model(|| {
        let inner = Engine::new_for_loom(2, 1);
        let probe = Probe::new();
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 1);
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 2);
        wait_for(&probe, 2);
        stop_workers(&inner);
        assert_eq!(probe.dropped(), 2);
        assert!(!inner.group.has_runnable_work());
    });
}

/// An idle worker times out (`try_reclaim`) while a post looks for a worker: the worker either
/// leaves (and the post starts a new one) or is taken off the parked list by the post (and
/// consumes that wake-up). The task runs once, and no worker is left waiting forever.
#[test]
fn loom_group_reclaim_vs_post() {
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        // The worker's first park times out at once (loom's timed waits never do by
        // themselves): after its task it searches, parks, and tries to leave.
        inner
            .group
            .loom_time_out_first_park
            .store(true, Ordering::SeqCst);
        let probe = Probe::new();
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 1);
        inner
            .group
            .loom_time_out_first_park
            .store(false, Ordering::SeqCst);
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 2);
        wait_for(&probe, 2);
        stop_workers(&inner);
        assert_eq!(probe.dropped(), 2);
    });
}

/// Two workers, two posts, then the pool's last handle goes: queued work still runs, and both
/// workers exit (parked ones are woken for it).
#[test]
fn loom_group_terminate_with_parked_workers() {
    model(|| {
        let inner = Engine::new_for_loom(2, 2);
        let probe = Probe::new();
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 1);
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 2);
        stop_workers(&inner);
        assert_eq!(probe.dropped(), 2);
        assert_eq!(
            probe.runs().len(),
            2,
            "queued work runs before the workers leave"
        );
        assert!(inner.group.workers().is_empty());
    });
}

/// A blocking scope ends while two workers are awake: the pool is over capacity, so both
/// stand down at their next look without taking work, and a post made meanwhile woke nobody
/// (every worker still counted as awake). Each worker that stands down looks at the queues
/// after its own `active` decrement, so the last of them finds the post (or the post saw
/// `active` below capacity and woke a worker). The task always runs.
#[test]
fn loom_group_blocking_scope_end_vs_post() {
    use crate::base::shim::{Condvar, Mutex};
    model(|| {
        let inner = Engine::new_for_loom(1, 1);
        let probe = Probe::new();
        // A task blocks: the pool may run one more worker.
        inner.group.begin_blocking(false).run(&inner);
        // (tasks started, may they end), and the condition both sides wait on.
        let gate = Arc::new((Mutex::new((0_usize, false)), Condvar::new()));
        for _ in 0..2 {
            let gate = gate.clone();
            Engine::post(
                &inner,
                PostDest::Parallel(TaskTraits::default()),
                Duration::ZERO,
                move || {
                    let (m, cv) = &*gate;
                    let mut g = m.lock();
                    g.0 += 1;
                    cv.notify_all();
                    while !g.1 {
                        cv.wait(&mut g);
                    }
                },
                Location::caller(),
            )
            .expect("accepted");
        }
        // Two workers are awake, each in a task.
        {
            let (m, cv) = &*gate;
            let mut g = m.lock();
            while g.0 < 2 {
                cv.wait(&mut g);
            }
        }
        // The scope ends, the tasks end, and a post races the workers standing down.
        inner.group.end_blocking(false);
        {
            let (m, cv) = &*gate;
            m.lock().1 = true;
            cv.notify_all();
        }
        post(&inner, PostDest::Parallel(TaskTraits::default()), &probe, 3);
        wait_for(&probe, 1);
        stop_workers(&inner);
        assert_eq!(probe.ran_ids(), vec![3]);
    });
}
