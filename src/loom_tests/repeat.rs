//! `time::repeat`: a cancel racing a run and the reschedule that follows it (`repeat.rs`:
//! `State::{stopped, running, gen, f, pending}` under one lock, and the pending post's handle).
//!
//! Scope: the real repetition (`Repeat::start`, `Shared::fire`, `stop`, `abandoned`) on the
//! orchestration models' `FakeRunner`: its posts (delays ignored) wait until a *firer* thread
//! runs them, the way a worker would, so every interleaving of a run, its reschedule and a cancel from another
//! thread is explored. The post goes through `PostTask`'s default with-result path (a result
//! cell and a queued closure), so a cancel of the pending post resolves its cell and the queued
//! closure finds nothing to run: the property this models is the repetition's, not the delay
//! manager's (whose removal by id the timer models cover).
//!
//! Checked: no run starts after `cancel` returns (a run that had already borrowed the closure
//! finishes); the closure is dropped exactly once; the repetition is finished, and draining
//! what is still queued runs nothing. That a reschedule racing the cancel withdraws its own
//! post from the delay manager is checked on real threads (`tests/repeat.rs`).

use std::time::Duration;

use super::model;
use super::orchestration::FakeRunner;
use crate::base::shim::{thread, Arc, AtomicUsize, Ordering};
use crate::time::{Repeat, RepeatHandle, RepeatMode};

/// Runs of the user's closure, and drops of it.
struct Counts {
    runs: AtomicUsize,
    drops: AtomicUsize,
}

struct Tally(Arc<Counts>);

impl Tally {
    fn ran(&self) {
        self.0.runs.fetch_add(1, Ordering::SeqCst);
    }
}

/// A runner, the counts, and the tally the repeated closure owns.
fn setup() -> (FakeRunner, Arc<Counts>, Tally) {
    let counts = Arc::new(Counts {
        runs: AtomicUsize::new(0),
        drops: AtomicUsize::new(0),
    });
    let tally = Tally(Arc::clone(&counts));
    (FakeRunner::new(), counts, tally)
}

/// The end of every model: whatever is still queued runs nothing, the repetition is finished,
/// and its closure was dropped exactly once.
fn drain_and_check(runner: &FakeRunner, counts: &Counts, h: &RepeatHandle) -> usize {
    let runs = counts.runs.load(Ordering::SeqCst);
    runner.drain();
    assert_eq!(counts.runs.load(Ordering::SeqCst), runs);
    assert!(h.is_finished());
    assert!(!h.is_running());
    assert_eq!(counts.drops.load(Ordering::SeqCst), 1);
    runs
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// The first run is due at once; the firer runs it (and so reschedules the next) while the
/// main thread cancels. Then the queue is drained: nothing posted after the cancel may run.
#[test]
fn loom_repeat_cancel_vs_run_and_reschedule() {
    model(|| {
        let (runner, counts, tally) = setup();
        let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedDelay)
            .initial_delay(Duration::ZERO)
            .start(&runner, move || tally.ran())
            .expect("the model's runner accepts every post");

        let firer = {
            let runner = runner.clone();
            thread::spawn(move || {
                // The first run, then the run it scheduled (if the cancel had not come yet).
                runner.run_one();
                runner.run_one();
            })
        };

        assert!(h.cancel());
        let runs_at_cancel = counts.runs.load(Ordering::SeqCst);
        firer.join().unwrap();
        // A run that had borrowed the closure before the cancel may still have counted itself
        // after it; no other run starts.
        let runs = drain_and_check(&runner, &counts, &h);
        assert!(
            runs <= runs_at_cancel + 1,
            "a run started after cancel returned"
        );
    });
}

/// The closure stops the repetition itself (`Break`) while another thread cancels: one of
/// them stops it, the closure is dropped once, and nothing is left to run.
#[test]
fn loom_repeat_break_vs_cancel() {
    model(|| {
        let (runner, counts, tally) = setup();
        let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedRate)
            .initial_delay(Duration::ZERO)
            .start_with_flow(&runner, move || {
                tally.ran();
                std::ops::ControlFlow::Break(())
            })
            .expect("the model's runner accepts every post");
        let firer = {
            let runner = runner.clone();
            thread::spawn(move || {
                runner.run_one();
            })
        };
        h.cancel();
        firer.join().unwrap();
        assert!(drain_and_check(&runner, &counts, &h) <= 1);
    });
}
