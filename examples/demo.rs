//! A tour of taskrunner: sequences, priorities, delays, panics and shutdown.
//!
//! Run it with `cargo run --release --example demo`. Every section prints what happened and
//! asserts it, so the demo fails loudly if the behaviour is wrong. Nothing here asserts on how
//! long anything took: durations are printed for information only.
//!
//! `cargo run --release --example demo -- --trace demo-trace.json` also records the run as a
//! Chrome trace (every task a slice on its worker's track, every post a `ready` instant),
//! which <https://ui.perfetto.dev> or `chrome://tracing` opens.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::PostTask;
use taskrunner::{
    PostRefusal, SequencedTaskRunner, ShutdownBehavior, TaskPriority, TaskTraits, ThreadPool,
    ThreadPoolBuilder,
};

/// Turns a hang into a failure; never used to judge speed.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Marks the panic that section 4 provokes, so the panic hook can keep it off stderr.
const DELIBERATE: &str = "deliberate panic";

fn main() {
    let _trace = record_trace_if_asked();
    install_quiet_panic_hook();
    let t0 = Instant::now();
    println!("taskrunner demo\n");
    sequences();
    priorities();
    delays();
    panics();
    shutdown();
    println!("\nall checks passed in {:.2} s", t0.elapsed().as_secs_f64());
}

/// With `--trace FILE`: records every task span and `ready` event of the crate to FILE as a
/// Chrome trace, through `tracing-chrome`. The returned guard writes the file out when dropped
/// (at the end of `main`).
fn record_trace_if_asked() -> Option<tracing_chrome::FlushGuard> {
    use tracing_subscriber::prelude::*;
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--trace")?;
    let path = args
        .get(i + 1)
        .expect("--trace needs a file name: --trace demo-trace.json");
    let (chrome, guard) = tracing_chrome::ChromeLayerBuilder::new()
        .file(path)
        .include_args(true)
        .build();
    let only_taskrunner =
        tracing_subscriber::filter::Targets::new().with_target("taskrunner", tracing::Level::TRACE);
    tracing_subscriber::registry()
        .with(chrome.with_filter(only_taskrunner))
        .init();
    println!("recording a Chrome trace to {path}\n");
    Some(guard)
}

/// What each task of section 1 records: its index and the thread it ran on.
type TaskLog = Arc<Mutex<Vec<(usize, String)>>>;

/// 1. Two sequences, posted to alternately: each runs its own tasks in posting order and one
///    at a time, while the two sequences share (and hop between) the workers.
fn sequences() {
    println!("== 1. sequences: posting order, one task at a time ==");
    let pool = builder("demo-seq", 4).build().expect("valid pool");
    const N: usize = 20;
    let in_flight = Arc::new(AtomicUsize::new(0)); // tasks running right now, both sequences
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let runners: Vec<(&str, SequencedTaskRunner)> = ["A", "B"]
        .into_iter()
        .map(|name| {
            (
                name,
                pool.create_sequenced_task_runner(TaskTraits::default())
                    .named(format!("sequence {name}")),
            )
        })
        .collect();
    let logs: Vec<TaskLog> = runners.iter().map(|_| Arc::default()).collect();
    let busy: Vec<Arc<AtomicBool>> = runners.iter().map(|_| Arc::default()).collect();

    // Interleaved posts: A0 B0 A1 B1 ...
    for i in 0..N {
        for (k, (name, runner)) in runners.iter().enumerate() {
            let (log, busy, me) = (logs[k].clone(), busy[k].clone(), runner.clone());
            let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
            let name = *name;
            runner
                .post_task(move || {
                    // Mutual exclusion: no other task of this sequence is running.
                    assert!(
                        !busy.swap(true, Ordering::SeqCst),
                        "sequence {name} ran two tasks at once"
                    );
                    assert!(me.runs_tasks_in_current_sequence());
                    let current = SequencedTaskRunner::current().expect("inside a sequenced task");
                    assert!(current.is_same_sequence(&me));
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let thread = thread::current().name().unwrap_or("?").to_owned();
                    log.lock().unwrap().push((i, thread));
                    thread::sleep(Duration::from_micros(300)); // widen any overlap window
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    busy.store(false, Ordering::SeqCst);
                })
                .expect("pool is running");
        }
    }
    // A last task per sequence: when it runs, everything posted before it has run (FIFO).
    for (name, runner) in &runners {
        let (tx, name) = (done_tx.clone(), *name);
        runner.post_task(move || tx.send(name).unwrap()).unwrap();
    }
    for _ in &runners {
        recv(&done_rx, "the sequences to finish");
    }

    for (k, (name, _)) in runners.iter().enumerate() {
        let log = logs[k].lock().unwrap();
        let order: Vec<usize> = log.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            order,
            (0..N).collect::<Vec<_>>(),
            "sequence {name} out of order"
        );
        let threads: BTreeSet<&str> = log.iter().map(|(_, t)| t.as_str()).collect();
        let threads: Vec<&str> = threads.into_iter().collect();
        println!(
            "  sequence {name}: tasks 0..{} ran in posting order, never two at once (on {})",
            N - 1,
            threads.join(", ")
        );
    }
    // Informational only: whether A and B overlapped depends on the machine.
    println!(
        "  most tasks running at once across both sequences: {}",
        max_in_flight.load(Ordering::SeqCst)
    );
    pool.shutdown();
}

/// 2. Priorities: with the only worker busy, queued tasks run strictly by priority, and in
///    posting order within a priority. Then the best-effort cap keeps a worker free for
///    foreground work.
fn priorities() {
    println!("\n== 2. priorities: UserBlocking > UserVisible > BestEffort ==");
    let pool = builder("demo-prio", 1).build().expect("valid pool");
    let (gate, started) = block_worker(&pool, TaskPriority::UserBlocking);

    let (tx, rx) = mpsc::channel();
    let posts = [
        (TaskPriority::BestEffort, "BE-1"),
        (TaskPriority::UserVisible, "UV-1"),
        (TaskPriority::UserBlocking, "UB-1"),
        (TaskPriority::BestEffort, "BE-2"),
        (TaskPriority::UserVisible, "UV-2"),
        (TaskPriority::UserBlocking, "UB-2"),
    ];
    started.recv_timeout(TIMEOUT).expect("gate task started");
    for (priority, label) in posts {
        let tx = tx.clone();
        pool.post_task(TaskTraits::new().priority(priority), move || {
            tx.send(label).unwrap()
        })
        .unwrap();
    }
    gate.send(()).unwrap(); // release the worker
    let ran: Vec<&str> = (0..posts.len())
        .map(|_| recv(&rx, "the prioritised tasks"))
        .collect();
    let posted: Vec<&str> = posts.iter().map(|(_, l)| *l).collect();
    println!(
        "  posted while the only worker was busy: {}",
        posted.join(" ")
    );
    println!("  ran once it was free:                  {}", ran.join(" "));
    assert_eq!(ran, ["UB-1", "UB-2", "UV-1", "UV-2", "BE-1", "BE-2"]);
    pool.shutdown();

    // The cap: 2 workers, at most 1 best-effort task at a time.
    let pool = builder("demo-cap", 2)
        .max_best_effort_workers(1)
        .build()
        .expect("valid pool");
    let (gate, started) = block_worker(&pool, TaskPriority::BestEffort);
    started
        .recv_timeout(TIMEOUT)
        .expect("best-effort task started");
    let second_started = Arc::new(AtomicBool::new(false));
    let flag = second_started.clone();
    let (be_tx, be_rx) = mpsc::channel();
    pool.post_task(TaskPriority::BestEffort.into(), move || {
        flag.store(true, Ordering::SeqCst);
        be_tx.send(()).unwrap();
    })
    .unwrap();
    let (ub_tx, ub_rx) = mpsc::channel();
    pool.post_task(TaskPriority::UserBlocking.into(), move || {
        ub_tx.send(()).unwrap()
    })
    .unwrap();
    recv(&ub_rx, "the user-blocking task");
    // The second best-effort task cannot have started: the cap is taken by the first one.
    assert!(!second_started.load(Ordering::SeqCst));
    println!(
        "  2 workers, best-effort cap 1: a UserBlocking task ran while one BestEffort task held the cap;"
    );
    println!("  the second BestEffort task waited until the first finished");
    gate.send(()).unwrap();
    recv(&be_rx, "the second best-effort task");
    pool.shutdown();
}

/// Occupies one worker with a task of `priority` until the returned sender is used (or
/// dropped); the receiver reports that the task has started.
fn block_worker(pool: &ThreadPool, priority: TaskPriority) -> (mpsc::Sender<()>, Receiver<()>) {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.post_task(TaskTraits::new().priority(priority), move || {
        started_tx.send(()).unwrap();
        let _ = gate_rx.recv_timeout(TIMEOUT);
    })
    .unwrap();
    (gate_tx, started_rx)
}

/// 3. Delays: never early; ripe tasks join the tail of their sequence.
fn delays() {
    println!("\n== 3. delays: never early, forwarded to the tail of the sequence ==");
    let pool = builder("demo-delay", 2).build().expect("valid pool");
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let delays_ms = [45u64, 15, 30, 1];
    let posting = Instant::now();
    for ms in delays_ms {
        let delay = Duration::from_millis(ms);
        let tx = tx.clone();
        // Taken before the post, so `deadline` is never later than the pool's own deadline.
        let deadline = Instant::now() + delay;
        seq.post_delayed_task(delay, move || {
            tx.send((ms, Instant::now().checked_duration_since(deadline)))
                .unwrap()
        })
        .unwrap();
    }
    // Deadline order equals delay order only if posting took less than the smallest gap
    // between two delays (14 ms); otherwise this thread was descheduled mid-way.
    let posted_quickly = posting.elapsed() < Duration::from_millis(14);
    let mut order = Vec::new();
    for _ in delays_ms {
        let (ms, late) = recv(&rx, "the delayed tasks");
        let late = late.unwrap_or_else(|| panic!("the {ms} ms task ran early"));
        println!(
            "  posted with a {ms:>2} ms delay: ran {:.2} ms after its deadline",
            late.as_secs_f64() * 1e3
        );
        order.push(ms);
    }
    if posted_quickly {
        assert_eq!(
            order,
            [1, 15, 30, 45],
            "delayed tasks ran out of deadline order"
        );
        println!("  posted as 45 15 30 1 ms, ran in deadline order: 1 15 30 45");
    } else {
        println!("  (order not checked: this thread was descheduled while posting)");
    }

    // X is posted first with a delay, Y right after without one. Y is in the sequence at once;
    // X joins the tail when it ripens, so it runs after Y (and waits for Y to finish).
    let (tx, rx) = mpsc::channel();
    let delay = Duration::from_millis(10);
    let before_x = Instant::now();
    let tx_x = tx.clone();
    let deadline = before_x + delay;
    seq.post_delayed_task(delay, move || {
        tx_x.send(("X", Instant::now().checked_duration_since(deadline)))
            .unwrap()
    })
    .unwrap();
    seq.post_task(move || {
        thread::sleep(Duration::from_millis(30));
        tx.send(("Y", None)).unwrap();
    })
    .unwrap();
    // Only if Y was in the sequence before X could ripen is "Y first" guaranteed.
    let y_posted_in_time = before_x.elapsed() < delay;
    let first = recv(&rx, "Y");
    let (second, x_late) = recv(&rx, "X");
    println!(
        "  X (10 ms delay, posted first) ran after Y (immediate, runs 30 ms): order {} {}, X was {:.1} ms late",
        first.0,
        second,
        x_late.expect("X never runs early").as_secs_f64() * 1e3
    );
    if y_posted_in_time {
        assert_eq!((first.0, second), ("Y", "X"));
    } else {
        println!("  (order not checked: this thread was descheduled for longer than the delay)");
    }
    pool.shutdown();
}

/// 4. A panicking task is caught and reported; its worker and its sequence carry on.
fn panics() {
    println!("\n== 4. panics: reported, and the sequence carries on ==");
    let reports: Arc<Mutex<Vec<(String, &'static Location<'static>)>>> = Arc::default();
    let r2 = reports.clone();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .thread_name("demo-panic")
        .panic_handler(move |p| {
            println!(
                "  panic handler: task posted from {} panicked: {:?}",
                p.posted_from(),
                p.message()
            );
            r2.lock()
                .unwrap()
                .push((p.message().to_owned(), p.posted_from()));
        })
        .build()
        .expect("valid pool");
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let panic_line = line!() + 1;
    seq.post_task(|| panic!("{DELIBERATE} in task 1")).unwrap();
    seq.post_task(move || {
        tx.send(thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    let worker = recv(&rx, "task 2");
    println!(
        "  task 2 of the same sequence ran afterwards, on {}",
        worker.as_deref().unwrap_or("?")
    );
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].0, format!("{DELIBERATE} in task 1"));
    assert_eq!(reports[0].1.line(), panic_line);
    assert!(reports[0].1.file().ends_with("demo.rs"));
    drop(reports);
    // The pool counts what it did: two tasks started, one of them panicked.
    let m = pool.metrics();
    assert_eq!((m.tasks_started(), m.tasks_panicked()), (2, 1));
    println!("  pool metrics: {m}");
    pool.shutdown();
}

/// 5. Shutdown: BlockShutdown work all runs, queued SkipOnShutdown work is skipped (dropped
///    unrun), pending delayed tasks are dropped, and later posts are refused with the closure
///    handed back.
fn shutdown() {
    println!("\n== 5. shutdown: block, skip, refuse ==");
    let pool = builder("demo-shutdown", 2).build().expect("valid pool");
    let block_traits = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let block_seq = pool.create_sequenced_task_runner(block_traits);
    let skip_seq = pool.create_sequenced_task_runner(TaskTraits::default()); // SkipOnShutdown
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = |events: &Arc<Mutex<Vec<String>>>, e: String| events.lock().unwrap().push(e);
    let (started_tx, started_rx) = mpsc::channel();

    // Skip sequence: S0 is running when shutdown starts (so shutdown waits for it); S1..S3
    // are queued behind it and never run.
    {
        let (pool2, ev, started) = (pool.clone(), events.clone(), started_tx.clone());
        skip_seq
            .post_task(move || {
                started.send(()).unwrap();
                wait_until(|| pool2.is_shutdown());
                thread::sleep(Duration::from_millis(20));
                log(&ev, "S0 (skip, running at shutdown) finished".into());
            })
            .unwrap();
    }
    let skipped_dropped = Arc::new(AtomicUsize::new(0));
    for i in 1..=3 {
        let (ev, guard) = (events.clone(), DropCounter(skipped_dropped.clone()));
        skip_seq
            .post_task(move || {
                let _guard = &guard;
                log(&ev, format!("S{i} ran"));
            })
            .unwrap();
    }

    // Block sequence: B0 waits until shutdown has started, then posts more work from inside
    // shutdown; B1..B4 were queued before shutdown and all run.
    {
        let (pool2, ev, started, skip_seq) = (
            pool.clone(),
            events.clone(),
            started_tx.clone(),
            skip_seq.clone(),
        );
        block_seq
            .post_task(move || {
                started.send(()).unwrap();
                wait_until(|| pool2.is_shutdown());
                log(&ev, "B0 (block) ran".into());
                // A BlockShutdown post during shutdown is accepted...
                let me = SequencedTaskRunner::current().expect("sequenced task");
                let ev2 = ev.clone();
                me.post_task(move || log(&ev2, "B5 (posted during shutdown) ran".into()))
                    .expect("block-shutdown posts are accepted until shutdown completes");
                // ...a SkipOnShutdown one is refused, and the closure comes back.
                let ev3 = ev.clone();
                let err = skip_seq
                    .post_task(move || log(&ev3, "B0 called the refused closure itself".into()))
                    .expect_err("skip posts are refused once shutdown started");
                assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
                log(&ev, format!("B0: a SkipOnShutdown post was refused: {err}"));
                err.into_inner()();
            })
            .unwrap();
    }
    for i in 1..=4 {
        let ev = events.clone();
        block_seq
            .post_task(move || {
                thread::sleep(Duration::from_millis(2));
                log(&ev, format!("B{i} (block) ran"));
            })
            .unwrap();
    }

    // A delayed task pending at shutdown: dropped, whatever its behaviour.
    let delayed_dropped = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter(delayed_dropped.clone());
    pool.post_delayed_task(block_traits, Duration::from_secs(3600), move || {
        let _guard = &guard;
        unreachable!("a delayed task never runs after shutdown started");
    })
    .unwrap();
    assert_eq!(pool.pending_delayed_tasks(), 1);

    started_rx.recv_timeout(TIMEOUT).expect("S0 started");
    started_rx.recv_timeout(TIMEOUT).expect("B0 started");
    let t = Instant::now();
    pool.shutdown();
    println!(
        "  shutdown() returned after {:.1} ms; in order, while it waited:",
        t.elapsed().as_secs_f64() * 1e3
    );
    let events = events.lock().unwrap().clone();
    for e in &events {
        println!("    {e}");
    }
    let blocks: Vec<&String> = events.iter().filter(|e| e.starts_with('B')).collect();
    assert_eq!(blocks.len(), 8, "every block-shutdown task ran: {blocks:?}");
    assert!(events
        .iter()
        .any(|e| e.starts_with("S0") && e.ends_with("finished")));
    assert!(!events
        .iter()
        .any(|e| e.starts_with("S1") || e.starts_with("S2") || e.starts_with("S3")));
    let block_order: Vec<&str> = blocks.iter().map(|e| &e[..2]).collect();
    assert_eq!(
        block_order,
        ["B0", "B0", "B0", "B1", "B2", "B3", "B4", "B5"]
    );

    // Skipped closures are dropped, never run, by the worker that skipped them or the thread
    // that completed shutdown; shutdown() joined those threads, so that has happened.
    assert_eq!(skipped_dropped.load(Ordering::SeqCst), 3);
    println!("  S1..S3 (skip, queued at shutdown): never ran, their closures were dropped");
    assert_eq!(delayed_dropped.load(Ordering::SeqCst), 1);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    println!(
        "  the 1 h delayed BlockShutdown task: dropped unrun (delayed tasks never block shutdown)"
    );

    // After shutdown: refused, closure handed back.
    let (back_tx, back_rx) = mpsc::channel();
    let err = pool
        .post_task(TaskTraits::default(), move || back_tx.send(42).unwrap())
        .expect_err("posts after shutdown are refused");
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    println!("  post after shutdown: {err}");
    let f = err.into_inner();
    f();
    assert_eq!(back_rx.try_recv(), Ok(42));
    println!("  ...and into_inner() handed the closure back: calling it sent 42");
}

/// A pool builder whose panic handler ends the demo: a failed check inside a task must not be
/// swallowed (the pool catches task panics; section 4 installs its own handler).
fn builder(name: &str, workers: usize) -> ThreadPoolBuilder {
    ThreadPool::builder()
        .max_workers(workers)
        .thread_name(name)
        .panic_handler(|p| {
            eprintln!(
                "demo: FAILED: a task posted from {} panicked: {}",
                p.posted_from(),
                p.message()
            );
            std::process::exit(1);
        })
}

/// Counts drops of the closures that capture it.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Receives one message or fails the demo after [`TIMEOUT`].
fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|e| panic!("demo: gave up waiting for {what}: {e}"))
}

/// Polls `cond` until it holds, or fails the demo after [`TIMEOUT`].
fn wait_until(cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < TIMEOUT,
            "demo: condition never became true"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Keeps the deliberate panic of section 4 off stderr (the pool's panic handler reports it);
/// every other panic, including a failed check, still prints as usual.
fn install_quiet_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with(DELIBERATE) {
            default_hook(info);
        }
    }));
}
