//! Sequenced throughput: S sequences x T tasks, each task incrementing state owned by its
//! sequence with a plain (non-atomic-RMW) load + store, which is only correct because the
//! strand runs its tasks one at a time with happens-before between them. A lost update leaves
//! the latch short and the bench panics instead of reporting a number.
//!
//! Two posting patterns, both from one external thread:
//! * `interleaved`: task t of every sequence, then task t+1, so sequences go idle and come back
//!   all the time: the strands' scheduling path is exercised, not only their queue push;
//! * `burst`: all T tasks of sequence 0, then all of sequence 1, ...: most posts find their
//!   sequence already queued or running (the cheap path), and the cost is on the running side.
//!
//! Peers: taskrunner `SequencedTaskRunner`, the floor's hand-rolled strand, tokio's mpsc actor
//! (one task per sequence draining boxed closures), and a `rayon::spawn` + `Mutex`-per-sequence
//! baseline (no ordering guarantee: rayon has no strands; it shows what a lock instead of a
//! sequence costs).
//!
//! `BENCH_SEQS` sequences (default 100), `BENCH_SEQ_TASKS` tasks each (default 1000); the issue's
//! full size is `BENCH_SEQS=1000`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    rayon_pool, tokio_runtime, workers, Floor, Latch, Strand, StrandExecutor, Taskrunner,
    TokioActors,
};
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use parking_lot::Mutex;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn leak_counters(s: usize) -> &'static [AtomicU64] {
    Box::leak((0..s).map(|_| AtomicU64::new(0)).collect())
}

/// The posting order: `(round, sequence)` pairs for interleaved, `(sequence, round)` for burst.
#[derive(Clone, Copy)]
enum Pattern {
    Interleaved,
    Burst,
}

/// Calls `post(sequence index)` `s * t` times in the pattern's order.
#[inline]
fn for_each_post(p: Pattern, s: usize, t: u64, mut post: impl FnMut(usize)) {
    match p {
        Pattern::Interleaved => {
            for _ in 0..t {
                for i in 0..s {
                    post(i);
                }
            }
        }
        Pattern::Burst => {
            for i in 0..s {
                for _ in 0..t {
                    post(i);
                }
            }
        }
    }
}

fn bench_strands<E: StrandExecutor>(g: &mut Group<'_>, e: &E, p: Pattern, s: usize, t: u64) {
    let strands: Vec<E::S> = (0..s).map(|_| e.strand()).collect();
    let counters = leak_counters(s);
    let latch = Latch::leak();
    g.bench_function(e.name(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for c in counters {
                    c.store(0, Ordering::Relaxed);
                }
                latch.reset(s);
                let t0 = Instant::now();
                for_each_post(p, s, t, |i| {
                    let c = &counters[i];
                    strands[i].post(move || {
                        // Sequence-owned state: no RMW, the strand orders us.
                        let v = c.load(Ordering::Relaxed) + 1;
                        c.store(v, Ordering::Relaxed);
                        if v == t {
                            latch.count_down();
                        }
                    });
                });
                latch.wait();
                total += t0.elapsed();
                assert!(counters.iter().all(|c| c.load(Ordering::Relaxed) == t));
            }
            total
        })
    });
    drop(strands);
}

/// rayon has no strands: each task locks its sequence's mutex instead (unordered).
fn bench_rayon_mutex(g: &mut Group<'_>, pool: &rayon::ThreadPool, p: Pattern, s: usize, t: u64) {
    let states: &'static [Mutex<u64>] = Box::leak((0..s).map(|_| Mutex::new(0)).collect());
    let latch = Latch::leak();
    g.bench_function("rayon_spawn_mutex", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for m in states {
                    *m.lock() = 0;
                }
                latch.reset(s);
                let t0 = Instant::now();
                for_each_post(p, s, t, |i| {
                    let m = &states[i];
                    pool.spawn(move || {
                        let mut g = m.lock();
                        *g += 1;
                        if *g == t {
                            latch.count_down();
                        }
                    });
                });
                latch.wait();
                total += t0.elapsed();
            }
            total
        })
    });
}

fn main() {
    let s = common::env_usize("BENCH_SEQS", 100);
    let t = common::env_usize("BENCH_SEQ_TASKS", 1000) as u64;
    let w = workers();
    let mut c = common::criterion();
    for (p, name) in [
        (Pattern::Interleaved, "interleaved"),
        (Pattern::Burst, "burst"),
    ] {
        let mut g = c.benchmark_group(format!("sequenced_{name}/{s}x{t}_w{w}"));
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(s as u64 * t));
        bench_strands(&mut g, &Taskrunner::new(w), p, s, t);
        bench_strands(&mut g, &Floor::new(w), p, s, t);
        bench_strands(&mut g, &TokioActors(tokio_runtime(w)), p, s, t);
        bench_rayon_mutex(&mut g, &rayon_pool(w), p, s, t);
        g.finish();
    }
    c.final_summary();
}
