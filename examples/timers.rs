//! Timers on a sequence: a request timeout (`OneShotTimer`), a debounced save
//! (`RetainingOneShotTimer`), a heartbeat (`RepeatingTimer`) and a metrics tick
//! (`repeat`) cancelled from another thread. Runs in about a second.
//!
//! ```text
//! cargo run --release --example timers
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::time::{repeat, OneShotTimer, RepeatMode, RepeatingTimer, RetainingOneShotTimer};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskTraits, ThreadPool};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sets its flag when dropped: shows when a timer's closure is freed.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits until every task posted to `seq` so far has run.
fn flush(seq: &SequencedTaskRunner) {
    let (tx, rx) = mpsc::channel();
    seq.post_task(move || tx.send(()).unwrap()).unwrap();
    rx.recv().unwrap();
}

fn main() {
    let t0 = Instant::now();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name("timers")
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());

    // 1. A request timeout: armed when the request goes out, stopped when the answer comes.
    let timeout = OneShotTimer::new(&seq);
    let timed_out = Arc::new(AtomicBool::new(false));
    let t2 = timed_out.clone();
    timeout
        .start(ms(500), move || t2.store(true, Ordering::SeqCst))
        .unwrap();
    println!(
        "[timeout] request sent, timeout armed: running = {}",
        timeout.is_running()
    );
    let answered = timeout.stop(); // the answer arrived in time
    println!("[timeout] answer received, pending timeout cancelled: {answered}");
    assert!(answered);
    assert!(!timeout.is_running());
    assert_eq!(
        pool.pending_delayed_tasks(),
        0,
        "the timeout's entry is gone at once"
    );

    // A second request gets no answer; fire_now plays "the connection closed": the timeout
    // handler runs now, on the sequence, instead of in 10 s.
    let (tx, rx) = mpsc::channel();
    timeout
        .start(Duration::from_secs(10), move || {
            tx.send("timed out").unwrap()
        })
        .unwrap();
    assert!(timeout.fire_now());
    println!(
        "[timeout] connection closed early: handler says {:?}",
        rx.recv().unwrap()
    );

    // 2. A debounced save: every edit re-arms the timer; only a quiet period saves.
    let saved = Arc::new(Mutex::new(Vec::new()));
    let document = Arc::new(AtomicUsize::new(0));
    let debounce = RetainingOneShotTimer::new(&seq);
    let (saved_tx, saved_rx) = mpsc::channel();
    {
        let (saved, document) = (saved.clone(), document.clone());
        debounce
            .start(ms(150), move || {
                let version = document.load(Ordering::SeqCst);
                saved.lock().unwrap().push(version);
                let _ = saved_tx.send(version);
            })
            .unwrap();
    }
    for version in 1..=5 {
        document.store(version, Ordering::SeqCst);
        debounce.reset(); // another edit: wait for quiet again
        std::thread::sleep(ms(10));
    }
    // Edits 10 ms apart never leave 150 ms of quiet, so one save is expected; a machine
    // stalled for longer may save an intermediate version first, which is still correct.
    while saved_rx.recv().unwrap() != 5 {}
    let saves = saved.lock().unwrap().clone();
    println!("[debounce] 5 edits, {} save(s): {saves:?}", saves.len());
    assert_eq!(saves.last(), Some(&5), "the last save saw the final edit");
    // The task was kept: one more edit, one more save.
    document.store(6, Ordering::SeqCst);
    assert!(debounce.reset());
    assert_eq!(saved_rx.recv().unwrap(), 6);
    println!("[debounce] edit 6 saved by the same retained task");

    // 3. A heartbeat every 40 ms, start to start, stopped after three beats.
    let heartbeat = RepeatingTimer::new(&seq);
    let beats = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(AtomicBool::new(false));
    let (beat_tx, beat_rx) = mpsc::channel();
    {
        let (beats, flag) = (beats.clone(), DropFlag(freed.clone()));
        heartbeat
            .start(ms(40), move || {
                let _ = &flag;
                let n = beats.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = beat_tx.send(n);
            })
            .unwrap();
    }
    for _ in 0..3 {
        let n = beat_rx.recv().unwrap();
        println!("[heartbeat] beat {n} at {:?}", t0.elapsed());
    }
    heartbeat.stop();
    flush(&seq); // a beat in progress has ended
    assert!(
        freed.load(Ordering::SeqCst),
        "stop frees the heartbeat's closure"
    );
    let after_stop = beats.load(Ordering::SeqCst);
    std::thread::sleep(ms(100)); // over two periods: nothing more may beat
    assert_eq!(beats.load(Ordering::SeqCst), after_stop);
    println!("[heartbeat] stopped after {after_stop} beats; closure freed, no beat since");

    // 4. A metrics tick on the pool, stopped from another thread.
    let ticks = Arc::new(AtomicUsize::new(0));
    let (tick_tx, tick_rx) = mpsc::channel();
    let handle = {
        let ticks = ticks.clone();
        repeat(&pool, ms(20), RepeatMode::FixedRate, move || {
            let _ = tick_tx.send(ticks.fetch_add(1, Ordering::SeqCst) + 1);
        })
        .unwrap()
    };
    tick_rx.recv().unwrap();
    tick_rx.recv().unwrap();
    let stopped = std::thread::spawn(move || handle.cancel()).join().unwrap();
    assert!(stopped);
    // The closure (and its sender) was freed: the channel drains and closes.
    let total = tick_rx.iter().count() + 2;
    println!("[metrics] stopped from another thread after {total} tick(s); channel closed");
    assert_eq!(ticks.load(Ordering::SeqCst), total);

    drop((timeout, debounce, heartbeat));
    pool.shutdown();
    assert!(!timed_out.load(Ordering::SeqCst));
    println!("done in {:?}", t0.elapsed());
}
