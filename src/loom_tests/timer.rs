//! The timer's stop-vs-fire race (`timer::timer_core`: the `generation << 1 | ARMED` word, the
//! task slot, and the pending entry's removal from the delay heap by id).
//!
//! Scope: a real `Engine`, a real `TimerCore` and the real `DelayManager` (its heap, `add`,
//! `cancel`, `stop`). The service thread and the worker are replaced by one model thread, the
//! *firer*, which pops the ripe entries from the heap (`take_ripe`, the service
//! thread's `pop_ripe`) and runs their jobs as the sequence's worker would; the forwarding
//! through the sequence queue adds nothing to the timer's protocol (a fire that waits there is
//! just a fire that runs later, which the models cover). Fire tasks are posted with zero delay,
//! so they are ripe whenever the firer looks.

use std::panic::Location;
use std::time::{Duration, Instant};

use super::model;
use crate::base::shim::{thread, Arc, AtomicUsize, Ordering};
use crate::base::traits::TaskTraits;
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::task::Job;
use crate::engine::Engine;
use crate::time::{Kind, TimerCore, UserTask};

/// What the user task did: runs started, and drops of its closure.
#[derive(Clone)]
struct Counts(Arc<(AtomicUsize, AtomicUsize)>);

/// Counts the drop of the closure that holds it.
struct Tally(Counts);

impl Drop for Tally {
    fn drop(&mut self) {
        ((self.0).0).1.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counts {
    fn new() -> Self {
        Counts(Arc::new((AtomicUsize::new(0), AtomicUsize::new(0))))
    }
    fn runs(&self) -> usize {
        (self.0).0.load(Ordering::SeqCst)
    }
    fn drops(&self) -> usize {
        (self.0).1.load(Ordering::SeqCst)
    }
    fn once(&self) -> impl FnOnce() + Send + 'static {
        let tally = Tally(self.clone());
        move || {
            ((tally.0).0).0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn many(&self) -> impl FnMut() + Send + 'static {
        let tally = Tally(self.clone());
        move || {
            ((tally.0).0).0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A pool with no service thread (the model forwards) and a timer of `kind` on a sequence.
fn setup(kind: Kind) -> (Arc<Engine>, Arc<TimerCore>) {
    let inner = Engine::new_for_loom(1, 1);
    let seq = Arc::new(Sequence::new(TaskTraits::default(), Home::Pool));
    let core = Arc::new(TimerCore::new(kind, Arc::clone(&inner), seq));
    (inner, core)
}

fn start_once(core: &Arc<TimerCore>, delay: Duration, f: impl FnOnce() + Send + 'static) {
    TimerCore::start(
        core,
        delay,
        f,
        |f| UserTask::Once(Box::new(f)),
        Location::caller(),
    )
    .expect("no shutdown in this model");
}

fn start_many(core: &Arc<TimerCore>, delay: Duration, f: impl FnMut() + Send + 'static) {
    TimerCore::start(
        core,
        delay,
        f,
        |f| UserTask::Many(Box::new(f)),
        Location::caller(),
    )
    .expect("no shutdown in this model");
}

/// The service thread and the worker in one: pops what is ripe now and runs it.
fn fire_ripe(inner: &Engine) {
    for d in inner.delay.take_ripe(Instant::now()) {
        d.task.call();
    }
}

/// A one-shot timer's fire races `stop()` from another thread. `stop() == true` means the
/// pending run was cancelled: the task never runs and was freed before `stop` returned.
/// `false` means the fire took the task first: it runs exactly once. Either way the task is
/// dropped exactly once, the timer ends stopped, and nothing is left in the heap.
#[test]
fn loom_timer_one_shot_stop_vs_fire() {
    model(|| {
        let (inner, core) = setup(Kind::OneShot);
        let counts = Counts::new();
        start_once(&core, Duration::ZERO, counts.once());

        let firer = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || fire_ripe(&inner))
        };
        let cancelled = core.stop(true);
        let (runs_at_stop, drops_at_stop) = (counts.runs(), counts.drops());
        firer.join().unwrap();

        if cancelled {
            assert_eq!(drops_at_stop, 1, "stop returned before freeing the task");
            assert_eq!(runs_at_stop, 0);
            assert_eq!(counts.runs(), 0, "a cancelled run happened");
        } else {
            assert_eq!(counts.runs(), 1, "the fire won but the task did not run");
        }
        assert_eq!(counts.drops(), 1);
        assert!(!core.is_running());
        assert_eq!(inner.delay.len(), 0, "an entry was left in the heap");
    });
}

/// A fire races the `start` that posted it (the fire task is in the heap before `start` has
/// published the new generation in the state word). The fire is never lost: the task runs
/// exactly once, whoever gets there first, and the timer ends stopped.
#[test]
fn loom_timer_start_vs_fire() {
    model(|| {
        let (inner, core) = setup(Kind::OneShot);
        let counts = Counts::new();

        let firer = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || fire_ripe(&inner))
        };
        start_once(&core, Duration::ZERO, counts.once());
        firer.join().unwrap();
        fire_ripe(&inner); // whatever the firer did not find yet

        assert_eq!(counts.runs(), 1, "the fire was lost");
        assert_eq!(counts.drops(), 1);
        assert!(!core.is_running());
        assert_eq!(inner.delay.len(), 0);
    });
}

/// A repeating timer's fire (which schedules the next run before running the task) races
/// `stop()`. After both: at most one run, no entry left in the heap (a reschedule that
/// happened before the stop was removed by it; none happened after), the task dropped exactly
/// once, the timer stopped; and firing whatever is still around runs nothing more.
#[test]
fn loom_timer_repeating_stop_vs_fire() {
    model(|| {
        let (inner, core) = setup(Kind::Repeating);
        let counts = Counts::new();
        // A zero period, so that a reschedule is ripe at once too (the public API refuses a
        // zero period; the core does not care).
        start_many(&core, Duration::ZERO, counts.many());

        let firer = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || fire_ripe(&inner))
        };
        assert!(core.stop(true), "stop found the timer stopped");
        firer.join().unwrap();

        let runs = counts.runs();
        assert!(runs <= 1);
        assert_eq!(inner.delay.len(), 0, "a reschedule survived the stop");
        assert_eq!(counts.drops(), 1, "the task was not freed exactly once");
        assert!(!core.is_running());
        fire_ripe(&inner);
        assert_eq!(counts.runs(), runs, "a run started after stop returned");
    });
}

/// A restart (new task, long delay) races the fire of the old arming. The old task runs at
/// most once and is dropped exactly once (by the run or by the restart); the fire never runs
/// the new task; the timer ends armed with exactly the new entry pending.
#[test]
fn loom_timer_restart_vs_fire() {
    model(|| {
        let (inner, core) = setup(Kind::OneShot);
        let old = Counts::new();
        let new = Counts::new();
        start_once(&core, Duration::ZERO, old.once());

        let firer = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || fire_ripe(&inner))
        };
        start_once(&core, Duration::from_secs(3600), new.once());
        firer.join().unwrap();

        assert!(old.runs() <= 1);
        assert_eq!(
            old.drops(),
            1,
            "the replaced task was not freed exactly once"
        );
        assert_eq!(new.runs(), 0, "the old arming's fire ran the new task");
        assert_eq!(new.drops(), 0);
        assert!(core.is_running());
        assert_eq!(inner.delay.len(), 1, "exactly the new entry is pending");
        core.stop(true);
        assert_eq!(new.drops(), 1);
        assert_eq!(inner.delay.len(), 0);
    });
}

/// The pool drops the pending entries (`DelayManager::stop`: shutdown, or the last handle
/// dropped) while another thread resets a repeating timer. Whatever the interleaving (reset
/// refused by the stopped manager; reset first and its new entry dropped by the stop; the old
/// entry dropped first), the dropped fire tells the core it will never run: the timer ends
/// stopped, its task freed exactly once, nothing in the heap.
#[test]
fn loom_timer_reset_vs_pool_dropping_entries() {
    model(|| {
        let (inner, core) = setup(Kind::Repeating);
        let counts = Counts::new();
        start_many(&core, Duration::from_secs(3600), counts.many());

        let stopper = {
            let inner = Arc::clone(&inner);
            thread::spawn(move || drop(inner.delay.stop()))
        };
        let _ = TimerCore::reset(&core);
        stopper.join().unwrap();

        assert!(
            !core.is_running(),
            "the timer believes a dropped run is pending"
        );
        assert_eq!(counts.drops(), 1);
        assert_eq!(counts.runs(), 0);
        assert_eq!(inner.delay.len(), 0);
    });
}
