//! Delayed tasks: N tasks with uniform random delays in 0..=50 ms (fixed-seed xorshift, the same
//! delays for every peer), taskrunner's delay manager vs tokio's timer (`sleep_until` in a
//! spawned task).
//!
//! 1. **Scheduling cost** (criterion): time to *post* N delayed tasks, per task. Running them
//!    is not timed (each iteration waits for all of them outside the measurement).
//! 2. **Lateness** (a custom harness, run once after criterion): each task records
//!    `actual start - deadline`, where the deadline is taken just *before* the post (so the post
//!    itself counts as lateness: conservative). Reported as p50/p90/p99/max per round, for a
//!    sparse workload (1000 tasks in 50 ms: timer precision), the dense one (N tasks in 50 ms,
//!    posted while they already ripen: throughput-bound), and the dense one pushed 200 ms out
//!    (firing cost only). "early" counts tasks that started before their deadline (must be 0).
//!    A diagnostic row repeats the sparse run with the delay service thread's Linux timer slack
//!    set to 1 ns (through /proc), to separate the kernel's share of lateness from the crate's.
//!
//! `BENCH_DELAYED_N` tasks (default 100 000), `BENCH_LATENESS_ROUNDS` rounds (default 3),
//! `BENCH_LATENESS=0` skips part 2, `BENCH_WORKERS` workers (default 2).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{tokio_runtime, workers, Latch, Taskrunner, XorShift};
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use taskrunner::TaskTraits;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

const MAX_DELAY_US: u64 = 50_000;

fn delays(n: usize, seed: u64) -> Vec<Duration> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|_| Duration::from_micros(rng.below_incl(MAX_DELAY_US)))
        .collect()
}

/// A peer that can run a closure no sooner than a delay from now.
trait DelayedExecutor {
    fn name(&self) -> &'static str;
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F);
}

impl DelayedExecutor for Taskrunner {
    fn name(&self) -> &'static str {
        "taskrunner"
    }

    #[inline]
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) {
        if self
            .pool
            .post_delayed_task(TaskTraits::default(), delay, f)
            .is_err()
        {
            panic!("taskrunner refused a delayed post");
        }
    }
}

struct TokioSleep(tokio::runtime::Runtime);

impl DelayedExecutor for TokioSleep {
    fn name(&self) -> &'static str {
        "tokio_sleep_until"
    }

    #[inline]
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) {
        let deadline = tokio::time::Instant::now() + delay;
        drop(self.0.spawn(async move {
            tokio::time::sleep_until(deadline).await;
            f();
        }));
    }
}

fn bench_post_cost<E: DelayedExecutor>(g: &mut Group<'_>, e: &E, delays: &[Duration]) {
    let latch = Latch::leak();
    g.bench_function(e.name(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                latch.reset(delays.len());
                let t0 = Instant::now();
                for &d in delays {
                    e.post_delayed(d, move || latch.count_down());
                }
                total += t0.elapsed();
                latch.wait(); // not timed
            }
            total
        })
    });
}

/// Lateness percentiles of one round, in microseconds.
struct Lateness {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    early: usize,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

const EARLY: u64 = u64::MAX;

fn lateness_round<E: DelayedExecutor>(e: &E, delays: &[Duration]) -> Lateness {
    let slots: &'static [AtomicU64] =
        Box::leak((0..delays.len()).map(|_| AtomicU64::new(0)).collect());
    let latch = Latch::leak();
    latch.reset(delays.len());
    for (i, &d) in delays.iter().enumerate() {
        let deadline = Instant::now() + d;
        let slot = &slots[i];
        e.post_delayed(d, move || {
            let now = Instant::now();
            let late = match now.checked_duration_since(deadline) {
                Some(l) => l.as_nanos() as u64,
                None => EARLY,
            };
            slot.store(late, Ordering::Relaxed);
            latch.count_down();
        });
    }
    latch.wait();
    let mut v: Vec<u64> = slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let early = v.iter().filter(|&&x| x == EARLY).count();
    v.retain(|&x| x != EARLY);
    v.sort_unstable();
    Lateness {
        p50: percentile(&v, 0.50),
        p90: percentile(&v, 0.90),
        p99: percentile(&v, 0.99),
        max: percentile(&v, 1.0),
        early,
    }
}

fn lateness_report<E: DelayedExecutor>(
    label: &str,
    e: &E,
    scenario: &str,
    delays: &[Duration],
    rounds: usize,
) {
    for r in 0..rounds {
        let l = lateness_round(e, delays);
        println!(
            "lateness {label:<22} {scenario:<20} round {}: p50 {:>9.1} us  p90 {:>9.1} us  p99 {:>9.1} us  max {:>9.1} us  early {}",
            r + 1,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            l.early
        );
    }
}

/// Diagnostic only: sets the timer slack (Linux, through /proc) of this process's threads
/// named `name`; returns how many were changed. Linux lets a normal thread's timed waits end up
/// to its slack (50 us by default) late, so this shows how much of the lateness is the
/// kernel's and how much the delay manager's.
fn set_timerslack(name: &str, ns: u64) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut changed = 0;
    for entry in dir.flatten() {
        let p = entry.path();
        let named = std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim_end() == name);
        // The knob lives in /proc/<tid>/, not under /proc/self/task/<tid>/.
        let knob = std::path::Path::new("/proc")
            .join(entry.file_name())
            .join("timerslack_ns");
        if named && std::fs::write(knob, ns.to_string()).is_ok() {
            changed += 1;
        }
    }
    changed
}

fn main() {
    let n = common::env_usize("BENCH_DELAYED_N", 100_000);
    let w = workers();
    let dense = delays(n, 0x5EED_0001);
    let sparse = delays(1000, 0x5EED_0002);

    let mut c = common::criterion();
    let mut g = c.benchmark_group(format!("delayed/post_{n}_0-50ms_w{w}"));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(n as u64));
    {
        let tr = Taskrunner::new(w);
        bench_post_cost(&mut g, &tr, &dense);
    }
    {
        let tk = TokioSleep(tokio_runtime(w));
        bench_post_cost(&mut g, &tk, &dense);
    }
    g.finish();
    c.final_summary();

    // `cargo bench -- --test` / `--list` (and CI smoke runs) skip the lateness harness.
    let args: Vec<String> = std::env::args().collect();
    let skip = args.iter().any(|a| a == "--test" || a == "--list")
        || std::env::var("BENCH_LATENESS").is_ok_and(|v| v == "0");
    if skip {
        return;
    }
    let rounds = common::env_usize("BENCH_LATENESS_ROUNDS", 3);
    let dense_name = format!("dense_{n}");
    // The dense delays pushed 200 ms out: posting ends before the first deadline, so what is
    // left is the cost of firing N tasks in 50 ms.
    let offset: Vec<Duration> = dense
        .iter()
        .map(|&d| d + Duration::from_millis(200))
        .collect();
    let offset_name = format!("dense_{n}_+200ms");
    {
        let tr = Taskrunner::new(w);
        lateness_report("taskrunner", &tr, "sparse_1000", &sparse, rounds);
        lateness_report("taskrunner", &tr, &dense_name, &dense, rounds);
        lateness_report("taskrunner", &tr, &offset_name, &offset, rounds);
        // The service thread exists now (started by the first delayed post).
        if set_timerslack("bench-delay", 1) == 1 {
            let label = "taskrunner_slack_1ns";
            lateness_report(label, &tr, "sparse_1000", &sparse, rounds);
        }
    }
    {
        let tk = TokioSleep(tokio_runtime(w));
        lateness_report("tokio_sleep_until", &tk, "sparse_1000", &sparse, rounds);
        lateness_report("tokio_sleep_until", &tk, &dense_name, &dense, rounds);
        lateness_report("tokio_sleep_until", &tk, &offset_name, &offset, rounds);
    }
}
