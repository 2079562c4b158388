//! Timer coalescing: 100,000 delayed tasks with uniform random delays over one second,
//! posted as precise delays and as flexible ones (`DelayPolicy::FlexibleNoSooner`) with a
//! 1 ms and an 8 ms timer leeway, each in a fresh pool. Reports how often the delay thread
//! woke (`PoolMetrics::delay_wakeups`), how late the tasks started (p50 / p99 / max of
//! `start - run time`), and how many started before their run time (must be 0).
//!
//! `BENCH_TIMERS` timers (default 100,000), `BENCH_TIMER_SPREAD_MS` (default 1000),
//! `BENCH_ROUNDS` rounds (default 3), `BENCH_WORKERS` workers (default 2). Prints a table;
//! `--test` (as `cargo bench --no-run`'s smoke run passes) uses 2,000 timers over 100 ms.
//!
//! ```text
//! cargo bench --bench coalescing
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env_usize, workers, XorShift};
use taskrunner::{DelayPolicy, TaskTraits, ThreadPool};

struct Outcome {
    wakeups: u64,
    early: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn run(n: usize, spread: Duration, leeway: Option<Duration>, seed: u64) -> Outcome {
    let pool = ThreadPool::builder()
        .max_workers(workers())
        .timer_leeway(leeway.unwrap_or(Duration::ZERO))
        .build()
        .expect("pool");
    let traits = TaskTraits::new().delay_policy(if leeway.is_some() {
        DelayPolicy::FlexibleNoSooner
    } else {
        DelayPolicy::Precise
    });
    let mut rng = XorShift::new(seed);
    let spread_us = spread.as_micros() as u64;
    let late_ns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let early = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let before = pool.metrics().delay_wakeups();
    for i in 0..n {
        let delay = Duration::from_micros(rng.below_incl(spread_us));
        let due = Instant::now() + delay;
        let (late_ns, early, done) = (late_ns.clone(), early.clone(), done.clone());
        pool.post_delayed_task(traits, delay, move || {
            let now = Instant::now();
            if now < due {
                early.fetch_add(1, Ordering::Relaxed);
            }
            late_ns[i].store(
                now.saturating_duration_since(due).as_nanos() as u64,
                Ordering::Relaxed,
            );
            done.fetch_add(1, Ordering::Release);
        })
        .expect("post");
    }
    let limit = Instant::now() + spread + Duration::from_secs(60);
    while done.load(Ordering::Acquire) < n {
        assert!(Instant::now() < limit, "timers did not all run");
        std::thread::sleep(Duration::from_millis(5));
    }
    let wakeups = pool.metrics().delay_wakeups() - before;
    let mut late: Vec<u64> = late_ns.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    late.sort_unstable();
    let at = |q: f64| Duration::from_nanos(late[((late.len() - 1) as f64 * q) as usize]);
    Outcome {
        wakeups,
        early: early.load(Ordering::Relaxed),
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let test = args.iter().any(|a| a == "--test");
    let n = if test {
        2_000
    } else {
        env_usize("BENCH_TIMERS", 100_000)
    };
    let spread = Duration::from_millis(if test {
        100
    } else {
        env_usize("BENCH_TIMER_SPREAD_MS", 1000) as u64
    });
    let rounds = if test {
        1
    } else {
        env_usize("BENCH_ROUNDS", 3)
    };
    println!("{n} timers over {spread:?}, {} workers", workers());
    println!(
        "{:<22} {:>5} {:>9} {:>8} {:>10} {:>10} {:>10}",
        "policy", "round", "wake-ups", "early", "late p50", "late p99", "late max"
    );
    let configs: [(&str, Option<Duration>); 3] = [
        ("precise", None),
        ("flexible, leeway 1 ms", Some(Duration::from_millis(1))),
        ("flexible, leeway 8 ms", Some(Duration::from_millis(8))),
    ];
    for round in 0..rounds {
        for (name, leeway) in configs {
            let o = run(n, spread, leeway, 0x5eed + round as u64);
            assert_eq!(o.early, 0, "{name}: a task ran before its run time");
            println!(
                "{name:<22} {round:>5} {:>9} {:>8} {:>10.2?} {:>10.2?} {:>10.2?}",
                o.wakeups, o.early, o.p50, o.p99, o.max
            );
        }
    }
}
