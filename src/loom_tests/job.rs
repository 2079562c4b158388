//! A job's bookkeeping (`job::JobCore`, state tables in `src/job/core.rs`), driven directly:
//! model threads play the pool workers that run its tickets, the main thread joins. The work is
//! a counter of items left that the worker function drains and the max-concurrency callback
//! reads, as a user's job would.
//!
//! * a worker leaving races the joiner deciding to wait: `join` never misses the wake-up (a
//!   miss is a loom deadlock), and returns only after every item ran exactly once and no
//!   worker is left;
//! * a cancel racing a ticket's start: after `join`, no call of the worker function starts;
//! * a priority change racing a ticket's start: the stale ticket leaves or works, the fresh
//!   one is accounted, and the reservations return to 0;
//! * a ticket dropped unrun (shutdown) while the caller joins: the joiner does all the work;
//! * two workers and a joiner share two items: each runs once, `join` returns last.

use super::model;
use crate::base::shim::{thread, Arc, AtomicBool, AtomicUsize, Ordering};
use crate::base::traits::TaskPriority;
use crate::job::{JobCore, Next, Spawn};

/// A core whose callback wants one worker per item left, on a pool of `cap` workers, and the
/// items counter.
fn job(items: usize, cap: usize) -> (Arc<JobCore>, Arc<AtomicUsize>) {
    let left = Arc::new(AtomicUsize::new(items));
    let l = left.clone();
    let core = JobCore::new(
        TaskPriority::UserVisible,
        (cap, 1),
        Box::new(move |_| l.load(Ordering::SeqCst)),
    );
    (Arc::new(core), left)
}

/// The worker function: drains items, counting each it takes.
fn drain(left: &AtomicUsize, ran: &AtomicUsize) {
    while left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        ran.fetch_add(1, Ordering::SeqCst);
    }
}

const NO_PANIC: &dyn Fn(&crate::base::unwind::Payload) = &|_| unreachable!("no panic here");

/// A pool worker running one ticket of generation `gen` to its end.
fn run_ticket(core: &JobCore, gen: u64, work: impl Fn()) {
    let Some(slot) = core.worker_start(gen, NO_PANIC) else {
        return;
    };
    loop {
        work();
        match core.worker_next(slot, false, false, NO_PANIC) {
            Next::Again => {}
            Next::Exit => return,
            Next::GiveWay(s) => panic!("nothing to give way to: {s:?}"),
        }
    }
}

#[test]
fn loom_job_worker_leaves_while_joiner_waits() {
    model(|| {
        // One worker at a time: the joiner waits while the pool's worker runs.
        let (core, left) = job(2, 1);
        let ran = Arc::new(AtomicUsize::new(0));
        let spawn = core.schedule(NO_PANIC).expect("one worker wanted");
        assert_eq!(spawn.n, 1);
        let worker = {
            let (core, left, ran) = (core.clone(), left.clone(), ran.clone());
            thread::spawn(move || run_ticket(&core, spawn.gen, || drain(&left, &ran)))
        };
        core.join(|_| drain(&left, &ran), |wait| wait(), NO_PANIC);
        // Returned: nothing runs and nothing is left.
        assert_eq!(core.running(), 0);
        assert_eq!(left.load(Ordering::SeqCst), 0);
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        worker.join().unwrap();
        assert_eq!(core.queued(), 0);
    });
}

#[test]
fn loom_job_cancel_vs_ticket_start() {
    model(|| {
        let (core, left) = job(1, 2);
        let ran = Arc::new(AtomicUsize::new(0));
        let joined = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicBool::new(false));
        let spawn = core.schedule(NO_PANIC).expect("one worker wanted");
        let worker = {
            let (core, joined, late) = (core.clone(), joined.clone(), late.clone());
            let (left, ran) = (left.clone(), ran.clone());
            thread::spawn(move || {
                run_ticket(&core, spawn.gen, || {
                    if joined.load(Ordering::SeqCst) {
                        late.store(true, Ordering::SeqCst);
                    }
                    drain(&left, &ran);
                })
            })
        };
        core.cancel();
        core.join(|_| unreachable!("cancelled"), |wait| wait(), NO_PANIC);
        joined.store(true, Ordering::SeqCst);
        worker.join().unwrap();
        assert!(
            !late.load(Ordering::SeqCst),
            "a worker call started after join"
        );
        assert!(ran.load(Ordering::SeqCst) <= 1);
        assert_eq!(core.running(), 0);
    });
}

#[test]
fn loom_job_priority_change_vs_ticket_start() {
    model(|| {
        let (core, left) = job(1, 1);
        let ran = Arc::new(AtomicUsize::new(0));
        let old = core.schedule(NO_PANIC).expect("one worker wanted");
        let worker = {
            let (core, left, ran) = (core.clone(), left.clone(), ran.clone());
            thread::spawn(move || run_ticket(&core, old.gen, || drain(&left, &ran)))
        };
        let fresh: Option<Spawn> = if core.set_priority(TaskPriority::UserBlocking) {
            core.schedule(NO_PANIC)
        } else {
            None
        };
        if let Some(s) = fresh {
            assert_eq!(s.priority, TaskPriority::UserBlocking);
            run_ticket(&core, s.gen, || drain(&left, &ran));
        }
        worker.join().unwrap();
        core.join(|_| drain(&left, &ran), |wait| wait(), NO_PANIC);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(core.queued(), 0);
        assert_eq!(core.running(), 0);
    });
}

#[test]
fn loom_job_ticket_dropped_while_joining() {
    model(|| {
        let (core, left) = job(2, 1);
        let ran = Arc::new(AtomicUsize::new(0));
        let spawn = core.schedule(NO_PANIC).expect("one worker wanted");
        let dropper = {
            let core = core.clone();
            thread::spawn(move || core.ticket_dropped(spawn.gen))
        };
        core.join(|_| drain(&left, &ran), |wait| wait(), NO_PANIC);
        dropper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert_eq!(core.queued(), 0);
    });
}

#[test]
fn loom_job_two_workers_and_a_joiner() {
    model(|| {
        let (core, left) = job(2, 3);
        let ran = Arc::new(AtomicUsize::new(0));
        let spawn = core.schedule(NO_PANIC).expect("two workers wanted");
        assert_eq!(spawn.n, 2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (core, left, ran) = (core.clone(), left.clone(), ran.clone());
                thread::spawn(move || run_ticket(&core, spawn.gen, || drain(&left, &ran)))
            })
            .collect();
        core.join(|_| drain(&left, &ran), |wait| wait(), NO_PANIC);
        assert_eq!(core.running(), 0);
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(core.queued(), 0);
    });
}
