//! Timers: `OneShotTimer`, `RetainingOneShotTimer`, `RepeatingTimer`, `post_repeating_task`.
//! Schedules are checked under a manual clock (nothing sleeps); the stop-vs-fire races run on
//! real threads. Drop counters prove that stopped and cancelled closures are freed at once.
//! `post_repeating_task` is deprecated in favour of `time::repeat`; its tests stay while it does.
#![allow(deprecated)]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use taskrunner::time::{
    Clock, ClockWaker, OneShotTimer, RepeatingTaskHandle, RepeatingTimer, RetainingOneShotTimer,
};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskState, TaskTraits, ThreadPool};

// ---- helpers ----------------------------------------------------------------------------------

/// Turns a hang into a failure; never a timing assertion.
const HANG: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A clock that moves only when told to, and wakes the pool's delay manager when it does.
#[derive(Clone)]
struct ManualClock(Arc<ManualState>);

struct ManualState {
    base: Instant,
    offset: Mutex<Duration>,
    wakers: Mutex<Vec<ClockWaker>>,
}

impl ManualClock {
    fn new() -> Self {
        ManualClock(Arc::new(ManualState {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
            wakers: Mutex::new(Vec::new()),
        }))
    }

    fn advance(&self, d: Duration) {
        *self.0.offset.lock().unwrap() += d;
        let wakers = self.0.wakers.lock().unwrap().clone();
        for w in wakers {
            w();
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock")
            .field(&*self.0.offset.lock().unwrap())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.0.base + *self.0.offset.lock().unwrap()
    }
    fn real_time_until(&self, _deadline: Instant) -> Option<Duration> {
        None
    }
    fn register_waker(&self, waker: ClockWaker) {
        self.0.wakers.lock().unwrap().push(waker);
    }
}

fn manual_pool() -> (ThreadPool, ManualClock, SequencedTaskRunner) {
    let clock = ManualClock::new();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    (pool, clock, seq)
}

/// Counts drops of the values it hands out (move one into a closure to count its drop).
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

struct Tally(Arc<AtomicUsize>);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    fn tally(&self) -> Tally {
        Tally(Arc::clone(&self.0))
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    /// Waits (bounded) until `n` drops happened.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + HANG;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} drops, saw {}",
                self.count()
            );
            std::thread::sleep(ms(1));
        }
    }
}

fn recv<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(HANG).expect("timed out waiting for a task")
}

/// Waits until every delayed task of `seq` due at or before `delay` from the clock's *current*
/// time has been forwarded and has run: posts a sentinel with that delay, moves the clock by
/// `delay`, and waits for the sentinel. Tasks due later than the clock stay pending, so this
/// proves "not run yet" without sleeping.
fn advance_and_flush(clock: &ManualClock, seq: &SequencedTaskRunner, delay: Duration) {
    let (tx, rx) = mpsc::channel();
    seq.post_delayed_task(delay, move || tx.send(()).unwrap())
        .unwrap();
    clock.advance(delay);
    recv(&rx);
}

/// Waits until every task posted to `seq` before this call has run.
fn flush(seq: &SequencedTaskRunner) {
    let (tx, rx) = mpsc::channel();
    seq.post_task(move || tx.send(()).unwrap()).unwrap();
    recv(&rx);
}

fn stress_iterations(n: usize) -> usize {
    let scale: f64 = std::env::var("TASKRUNNER_STRESS_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale).round() as usize).max(1)
}

// ---- OneShotTimer -------------------------------------------------------------------------------

#[test]
fn one_shot_fires_once_on_its_sequence_not_before_its_delay() {
    let (pool, clock, seq) = manual_pool();
    let timer = OneShotTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let s2 = seq.clone();
    timer
        .start(ms(10), move || {
            tx.send(s2.runs_tasks_in_current_sequence()).unwrap()
        })
        .unwrap();
    assert!(timer.is_running());
    assert_eq!(pool.pending_delayed_tasks(), 1);

    advance_and_flush(&clock, &seq, ms(9));
    assert!(rx.try_recv().is_err(), "fired before its delay");
    assert!(timer.is_running());

    clock.advance(ms(1));
    assert!(recv(&rx), "the task ran off its sequence");
    assert!(!timer.is_running());
    assert_eq!(pool.pending_delayed_tasks(), 0);
    // Once only.
    advance_and_flush(&clock, &seq, ms(100));
    assert!(rx.try_recv().is_err());
    assert!(
        !timer.reset(),
        "a fired one-shot timer has no task to reset"
    );
}

#[test]
fn one_shot_stop_removes_the_entry_and_frees_the_task_at_once() {
    let (pool, clock, seq) = manual_pool();
    let timer = OneShotTimer::new(&seq);
    let drops = Drops::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (t, r) = (drops.tally(), ran.clone());
    timer
        .start(ms(10), move || {
            let _t = t;
            r.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(timer.stop());
    assert_eq!(drops.count(), 1, "stop must free the task at once");
    assert_eq!(
        pool.pending_delayed_tasks(),
        0,
        "the pending entry stays in the heap"
    );
    assert!(!timer.is_running());
    assert!(!timer.stop(), "a second stop has nothing to cancel");
    advance_and_flush(&clock, &seq, ms(50));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn one_shot_restart_replaces_the_task_and_the_deadline() {
    let (pool, clock, seq) = manual_pool();
    let timer = OneShotTimer::new(&seq);
    let drops = Drops::default();
    let (tx, rx) = mpsc::channel();
    let (t, tx1) = (drops.tally(), tx.clone());
    timer
        .start(ms(5), move || {
            let _t = t;
            tx1.send("first").unwrap();
        })
        .unwrap();
    timer
        .start(ms(20), move || tx.send("second").unwrap())
        .unwrap();
    assert_eq!(drops.count(), 1, "the replaced task is freed at restart");
    assert_eq!(
        pool.pending_delayed_tasks(),
        1,
        "the replaced entry is removed"
    );

    advance_and_flush(&clock, &seq, ms(19));
    assert!(
        rx.try_recv().is_err(),
        "the first deadline must not fire anything"
    );
    clock.advance(ms(1));
    assert_eq!(recv(&rx), "second");
    assert!(rx.recv_timeout(ms(50)).is_err());
}

#[test]
fn one_shot_reset_restarts_the_countdown_from_now() {
    let (_pool, clock, seq) = manual_pool();
    let timer = OneShotTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    timer.start(ms(10), move || tx.send(()).unwrap()).unwrap();
    advance_and_flush(&clock, &seq, ms(6));
    assert!(timer.reset()); // due at 16 now
    advance_and_flush(&clock, &seq, ms(6)); // 12: the old deadline (10) has passed
    assert!(rx.try_recv().is_err(), "reset did not move the deadline");
    assert!(timer.is_running());
    clock.advance(ms(4));
    recv(&rx);
    assert!(!timer.is_running());
}

#[test]
fn one_shot_fire_now_from_another_thread_posts_the_task() {
    let (pool, _clock, seq) = manual_pool();
    let timer = OneShotTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let s2 = seq.clone();
    timer
        .start(Duration::from_secs(3600), move || {
            tx.send(s2.runs_tasks_in_current_sequence()).unwrap()
        })
        .unwrap();
    assert!(timer.fire_now());
    // The deadline's entry is gone; the posted run counts as pending until it starts.
    assert_eq!(pool.pending_delayed_tasks(), 0);
    assert!(
        recv(&rx),
        "fire_now must run the task on the timer's sequence"
    );
    flush(&seq);
    assert!(!timer.is_running());
    assert!(!timer.fire_now(), "the task was used up");
}

#[test]
fn one_shot_fire_now_on_its_sequence_runs_inside_the_call() {
    let (_pool, _clock, seq) = manual_pool();
    let timer = Arc::new(OneShotTimer::new(&seq));
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    timer
        .start(Duration::from_secs(3600), move || {
            f2.store(true, Ordering::SeqCst)
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let (t2, f3) = (timer.clone(), flag.clone());
    seq.post_task(move || {
        let fired = t2.fire_now();
        // Synchronous: the task has already run when fire_now returns.
        tx.send((fired, f3.load(Ordering::SeqCst))).unwrap();
    })
    .unwrap();
    assert_eq!(recv(&rx), (true, true));
}

#[test]
fn one_shot_stop_after_fire_now_from_another_thread_cancels_it() {
    // A one-worker pool whose only worker is held busy on the timer's sequence, so the posted
    // fire cannot start before `stop`.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel();
    seq.post_task(move || {
        busy_tx.send(()).unwrap();
        let _ = hold_rx.recv();
    })
    .unwrap();
    recv(&busy_rx);
    let timer = OneShotTimer::new(&seq);
    let drops = Drops::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (t, r) = (drops.tally(), ran.clone());
    timer
        .start(Duration::from_secs(3600), move || {
            let _t = t;
            r.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(timer.fire_now());
    assert!(
        timer.is_running(),
        "the posted run is pending until it starts"
    );
    assert!(timer.stop(), "stop cancelled the pending run: it says so");
    assert!(!timer.is_running());
    assert_eq!(drops.count(), 1);
    drop(hold_tx);
    flush(&seq);
    assert!(!ran.load(Ordering::SeqCst), "a stopped fire_now still ran");
}

#[test]
fn dropping_a_timer_stops_it_and_frees_its_task() {
    let (pool, clock, seq) = manual_pool();
    let drops = Drops::default();
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let one = OneShotTimer::new(&seq);
        let (t, r) = (drops.tally(), ran.clone());
        one.start(ms(10), move || {
            let _t = t;
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let retaining = RetainingOneShotTimer::new(&seq);
        let (t, r) = (drops.tally(), ran.clone());
        retaining
            .start(ms(10), move || {
                let _ = &t;
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let repeating = RepeatingTimer::new(&seq);
        let (t, r) = (drops.tally(), ran.clone());
        repeating
            .start(ms(10), move || {
                let _ = &t;
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        assert_eq!(pool.pending_delayed_tasks(), 3);
    }
    assert_eq!(
        drops.count(),
        3,
        "every dropped timer frees its task at once"
    );
    assert_eq!(pool.pending_delayed_tasks(), 0);
    advance_and_flush(&clock, &seq, ms(100));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn one_shot_can_restart_itself_from_its_own_task() {
    // A retry loop: the task re-arms its own timer with a new task while it runs.
    let (_pool, clock, seq) = manual_pool();
    let timer = Arc::new(OneShotTimer::new(&seq));
    let (tx, rx) = mpsc::channel();
    fn attempt(timer: std::sync::Weak<OneShotTimer>, n: u32, tx: mpsc::Sender<u32>) {
        if n < 3 {
            // Re-armed before reporting, so the test's next advance finds the new deadline.
            let t = timer.upgrade().unwrap();
            let (timer, tx) = (timer.clone(), tx.clone());
            t.start(ms(10), move || attempt(timer, n + 1, tx)).unwrap();
        }
        tx.send(n).unwrap();
    }
    let weak = Arc::downgrade(&timer);
    timer.start(ms(10), move || attempt(weak, 1, tx)).unwrap();
    for expect in 1..=3 {
        clock.advance(ms(10));
        assert_eq!(recv(&rx), expect);
    }
    assert!(!timer.is_running());
}

#[test]
fn timers_and_handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<OneShotTimer>();
    check::<RetainingOneShotTimer>();
    check::<RepeatingTimer>();
    check::<RepeatingTaskHandle>();
}

// ---- RetainingOneShotTimer --------------------------------------------------------------------

#[test]
fn retaining_timer_keeps_its_task_and_reset_rearms_it() {
    let (pool, clock, seq) = manual_pool();
    let timer = RetainingOneShotTimer::new(&seq);
    let drops = Drops::default();
    let (tx, rx) = mpsc::channel();
    let t = drops.tally();
    let mut runs = 0;
    timer
        .start(ms(10), move || {
            let _ = &t;
            runs += 1;
            tx.send(runs).unwrap();
        })
        .unwrap();
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 1);
    assert!(!timer.is_running(), "a retaining timer stops after firing");
    assert_eq!(drops.count(), 0, "…but keeps its task");

    // Re-armed with the same task (its state carried over) and the same delay.
    assert!(timer.reset());
    advance_and_flush(&clock, &seq, ms(9));
    assert!(rx.try_recv().is_err());
    clock.advance(ms(1));
    assert_eq!(recv(&rx), 2);

    // stop() keeps the task too; reset() after stop() re-arms.
    assert!(timer.reset());
    assert!(timer.stop());
    assert_eq!(pool.pending_delayed_tasks(), 0);
    assert_eq!(drops.count(), 0);
    advance_and_flush(&clock, &seq, ms(20));
    assert!(rx.try_recv().is_err(), "a stopped retaining timer fired");
    assert!(timer.reset());
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 3);

    flush(&seq); // the run has ended and given the task back
    drop(timer);
    assert_eq!(
        drops.count(),
        1,
        "dropping the timer frees the retained task"
    );
}

#[test]
fn retaining_timer_can_reset_itself_from_its_own_task() {
    // A debounce-like self re-arm: the task resets its own timer while it runs (borrowed).
    let (_pool, clock, seq) = manual_pool();
    let timer = Arc::new(RetainingOneShotTimer::new(&seq));
    let (tx, rx) = mpsc::channel();
    let t2 = Arc::downgrade(&timer);
    let mut n = 0;
    timer
        .start(ms(10), move || {
            n += 1;
            if n < 3 {
                assert!(t2.upgrade().unwrap().reset());
            }
            tx.send(n).unwrap();
        })
        .unwrap();
    for expect in 1..=3 {
        clock.advance(ms(10));
        assert_eq!(recv(&rx), expect);
    }
    assert!(!timer.is_running());
    assert!(timer.reset(), "the task was given back after its runs");
}

// ---- RepeatingTimer -----------------------------------------------------------------------------

#[test]
fn repeating_timer_runs_every_period_under_a_manual_clock() {
    let (pool, clock, seq) = manual_pool();
    let timer = RepeatingTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let mut n = 0;
    timer
        .start(ms(10), move || {
            n += 1;
            tx.send(n).unwrap();
        })
        .unwrap();
    for expect in 1..=5 {
        advance_and_flush(&clock, &seq, ms(9));
        assert!(rx.try_recv().is_err(), "run {expect} came early");
        clock.advance(ms(1));
        assert_eq!(recv(&rx), expect);
        assert!(timer.is_running());
        assert_eq!(pool.pending_delayed_tasks(), 1, "exactly one pending run");
    }
    assert!(timer.stop());
    advance_and_flush(&clock, &seq, ms(100));
    assert!(rx.try_recv().is_err(), "ran after stop");
}

#[test]
fn repeating_period_is_start_to_start() {
    // Each run "takes" 4 ms of clock time. The next run was scheduled before the task was
    // invoked, so it is due 10 ms after the previous *start*, not 10 ms after its end.
    let (_pool, clock, seq) = manual_pool();
    let timer = RepeatingTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let c2 = clock.clone();
    timer
        .start(ms(10), move || {
            c2.advance(ms(4));
            tx.send(()).unwrap();
        })
        .unwrap();
    clock.advance(ms(10)); // t = 10: run 1 starts, clock ends at 14
    recv(&rx);
    clock.advance(ms(6)); // t = 20: run 2 is due (start-to-start), not at 24
    recv(&rx);
    timer.stop();
}

#[test]
fn repeating_reset_and_restart_rephase_it() {
    let (_pool, clock, seq) = manual_pool();
    let timer = RepeatingTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let tx1 = tx.clone();
    timer.start(ms(10), move || tx1.send("a").unwrap()).unwrap();
    advance_and_flush(&clock, &seq, ms(8));
    assert!(timer.reset()); // next at 18
    advance_and_flush(&clock, &seq, ms(9)); // 17
    assert!(rx.try_recv().is_err());
    clock.advance(ms(1));
    assert_eq!(recv(&rx), "a");
    // Restart with a new task and period: the old task is gone.
    timer.start(ms(3), move || tx.send("b").unwrap()).unwrap();
    clock.advance(ms(3));
    assert_eq!(recv(&rx), "b");
    clock.advance(ms(3));
    assert_eq!(recv(&rx), "b");
    timer.stop();
    assert!(!timer.reset(), "a stopped repeating timer has no task");
}

#[test]
fn repeating_task_that_stops_itself_is_freed_when_its_run_ends() {
    let (pool, clock, seq) = manual_pool();
    let slot: Arc<Mutex<Option<RepeatingTaskHandle>>> = Arc::new(Mutex::new(None));
    let drops = Drops::default();
    let (tx, rx) = mpsc::channel();
    let (s2, t) = (slot.clone(), drops.tally());
    let mut n = 0;
    let h = seq
        .post_repeating_task(ms(10), move || {
            let _ = &t;
            n += 1;
            if n == 2 {
                assert!(s2.lock().unwrap().as_ref().unwrap().stop());
            }
            tx.send(n).unwrap();
        })
        .unwrap();
    *slot.lock().unwrap() = Some(h);
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 1);
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 2);
    drops.wait_for(1); // freed at the end of the run that stopped it
    assert_eq!(pool.pending_delayed_tasks(), 0);
    assert!(!slot.lock().unwrap().as_ref().unwrap().is_running());
    advance_and_flush(&clock, &seq, ms(50));
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_panicking_repeating_task_keeps_repeating() {
    let (_pool, clock, seq) = manual_pool();
    let timer = RepeatingTimer::new(&seq);
    let (tx, rx) = mpsc::channel();
    let mut n = 0;
    timer
        .start(ms(10), move || {
            n += 1;
            tx.send(n).unwrap();
            if n == 1 {
                panic!("first run panics (expected by the test)");
            }
        })
        .unwrap();
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 1);
    clock.advance(ms(10));
    assert_eq!(recv(&rx), 2, "the task was lost after its panic");
    assert!(timer.is_running());
}

#[test]
#[should_panic(expected = "period must be greater than zero")]
fn a_zero_period_is_refused_with_a_clear_panic() {
    let (_pool, _clock, seq) = manual_pool();
    let _ = RepeatingTimer::new(&seq).start(Duration::ZERO, || ());
}

// ---- post_repeating_task ------------------------------------------------------------------------

#[test]
fn post_repeating_task_on_the_pool_counts_runs_under_a_manual_clock() {
    let (pool, clock, seq) = manual_pool();
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let c2 = count.clone();
    let h = pool
        .post_repeating_task(TaskTraits::default(), ms(25), move || {
            tx.send(c2.fetch_add(1, Ordering::SeqCst) + 1).unwrap();
        })
        .unwrap();
    for expect in 1..=4 {
        clock.advance(ms(25));
        assert_eq!(recv(&rx), expect);
    }
    assert!(h.stop());
    advance_and_flush(&clock, &seq, ms(100));
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn post_repeating_task_stop_from_another_thread_frees_the_closure_and_no_run_follows() {
    // Real time, real threads.
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Drops::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let (t, r) = (drops.tally(), runs.clone());
    let h = seq
        .post_repeating_task(ms(1), move || {
            let _ = &t;
            let _ = tx.send(r.fetch_add(1, Ordering::SeqCst));
        })
        .unwrap();
    recv(&rx);
    recv(&rx);
    let stopper = std::thread::spawn(move || {
        let was_running = h.stop();
        (was_running, h)
    });
    let (was_running, h) = stopper.join().unwrap();
    assert!(was_running);
    assert!(!h.is_running());
    assert_eq!(
        pool.pending_delayed_tasks(),
        0,
        "stop left an entry in the heap"
    );
    // Freed at stop, or when a run already in progress ended.
    drops.wait_for(1);
    let after = runs.load(Ordering::SeqCst);
    // Long enough for several periods: nothing runs any more.
    let (sent_tx, sent_rx) = mpsc::channel();
    seq.post_delayed_task(ms(20), move || sent_tx.send(()).unwrap())
        .unwrap();
    recv(&sent_rx);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        after,
        "a run started after stop"
    );
    // The closure (and with it the sender) is gone: the channel is closed.
    while rx.try_recv().is_ok() {}
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
}

#[test]
fn post_repeating_task_handle_dropped_keeps_running_unless_stop_on_drop() {
    let (_pool, clock, seq) = manual_pool();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    drop(
        seq.post_repeating_task(ms(10), move || tx.send("detached").unwrap())
            .unwrap(),
    );
    let drops = Drops::default();
    let t = drops.tally();
    drop(
        seq.post_repeating_task(ms(10), move || {
            let _ = &t;
            tx2.send("stopped").unwrap();
        })
        .unwrap()
        .stop_on_drop(),
    );
    assert_eq!(drops.count(), 1);
    clock.advance(ms(10));
    assert_eq!(recv(&rx), "detached");
    clock.advance(ms(10));
    assert_eq!(recv(&rx), "detached");
}

#[test]
fn post_repeating_task_is_refused_after_shutdown_and_hands_the_closure_back() {
    let (pool, _clock, seq) = manual_pool();
    pool.shutdown();
    let err = seq.post_repeating_task(ms(10), || ()).unwrap_err();
    assert!(err.is_shutdown());
    let mut f = err.into_inner();
    f();
}

#[test]
fn shutdown_stops_timers_and_frees_their_tasks() {
    let (pool, _clock, seq) = manual_pool();
    let drops = Drops::default();
    let timer = RepeatingTimer::new(&seq);
    let t = drops.tally();
    timer
        .start(ms(10), move || {
            let _ = &t;
        })
        .unwrap();
    let one = OneShotTimer::new(&seq);
    let t = drops.tally();
    one.start(ms(10), move || drop(t)).unwrap();
    let h = pool
        .post_repeating_task(TaskTraits::default(), ms(10), {
            let t = drops.tally();
            move || {
                let _ = &t;
            }
        })
        .unwrap();
    pool.shutdown();
    assert!(!timer.is_running() && !one.is_running() && !h.is_running());
    assert_eq!(
        drops.count(),
        3,
        "shutdown dropped the pending runs: the tasks are freed"
    );
    assert!(timer.start(ms(10), || ()).is_err());
}

#[test]
fn timers_work_on_a_single_thread_runner() {
    let clock = ManualClock::new();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let timer = RepeatingTimer::new(&st.as_sequenced());
    let (tx, rx) = mpsc::channel();
    timer
        .start(ms(5), move || tx.send(std::thread::current().id()).unwrap())
        .unwrap();
    clock.advance(ms(5));
    let a = recv(&rx);
    clock.advance(ms(5));
    let b = recv(&rx);
    assert_eq!(a, b, "every run on the runner's one thread");
    drop(timer);
}

// ---- delayed TaskHandle cancel --------------------------------------------------------------

#[test]
fn cancelling_a_delayed_task_handle_frees_its_closure_immediately() {
    let (pool, clock, seq) = manual_pool();
    let drops = Drops::default();
    let t = drops.tally();
    let h = seq
        .post_delayed_task_with_result(Duration::from_secs(3600), move || {
            let _t = t;
            7
        })
        .unwrap();
    let t = drops.tally();
    let h2 = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            Duration::from_secs(3600),
            move || {
                let _t = t;
            },
        )
        .unwrap();
    assert!(h.cancel());
    assert!(h2.cancel());
    assert_eq!(
        drops.count(),
        2,
        "cancel must free the closures now, not at their deadline"
    );
    assert_eq!(h.state(), TaskState::Cancelled);
    clock.advance(Duration::from_secs(3600));
    flush(&seq);
    assert!(h.join().is_err());
}

// ---- stop vs fire races (real threads) ------------------------------------------------------

#[test]
fn stress_one_shot_stop_vs_fire() {
    // A zero-delay one-shot timer fires as soon as the service thread forwards it; another
    // thread stops it at the same moment. stop() == true must mean the task never runs and
    // was already freed; false means the fire won and the task runs (once).
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (mut cancelled, mut fired) = (0, 0);
    for _ in 0..stress_iterations(2000) {
        let timer = Arc::new(OneShotTimer::new(&seq));
        let drops = Drops::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(2));
        let (t, r) = (drops.tally(), runs.clone());
        timer
            .start(Duration::ZERO, move || {
                let _t = t;
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let stopper = {
            let (timer, barrier, drops, runs) =
                (timer.clone(), barrier.clone(), drops.clone(), runs.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let cancelled = timer.stop();
                // Observed right after stop returned.
                (cancelled, drops.count(), runs.load(Ordering::SeqCst))
            })
        };
        barrier.wait();
        let (was_cancelled, drops_at_stop, runs_at_stop) = stopper.join().unwrap();
        flush(&seq);
        if was_cancelled {
            cancelled += 1;
            assert_eq!(drops_at_stop, 1, "stop returned before freeing the task");
            assert_eq!(runs_at_stop, 0);
            assert_eq!(runs.load(Ordering::SeqCst), 0, "a cancelled run happened");
        } else {
            fired += 1;
            // The fire took the task first: it runs exactly once (it may still be finishing).
            drops.wait_for(1);
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
        assert_eq!(drops.count(), 1);
        assert!(!timer.is_running());
    }
    eprintln!("one-shot stop vs fire: {cancelled} cancelled, {fired} fired");
    assert_eq!(pool.pending_delayed_tasks(), 0);
}

#[test]
fn stress_repeating_stop_vs_fire() {
    // A fast repeating task is stopped from another thread while it fires. After stop
    // returns: no entry is pending, the closure is freed (at once, or when the run in progress
    // ends), and no further run starts.
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    for i in 0..stress_iterations(300) {
        let drops = Drops::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (t, r) = (drops.tally(), runs.clone());
        let h = seq
            .post_repeating_task(Duration::from_micros(50), move || {
                let _ = &t;
                let _ = tx.send(r.fetch_add(1, Ordering::SeqCst));
            })
            .unwrap();
        if i % 2 == 0 {
            // Let it get going first, half of the time.
            recv(&rx);
        }
        let stopper = std::thread::spawn(move || {
            let _ = h.stop();
            h
        });
        let h = stopper.join().unwrap();
        assert!(!h.is_running());
        assert_eq!(pool.pending_delayed_tasks(), 0);
        drops.wait_for(1);
        let after = runs.load(Ordering::SeqCst);
        flush(&seq);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            after,
            "a run started after stop"
        );
        // The closure (with its sender) is gone.
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    }
}
