//! Sequenced throughput: S sequences x T tasks, each task incrementing state owned by its
//! sequence with a plain (non-atomic-RMW) load + store, which is only correct because the
//! strand runs its tasks one at a time with happens-before between them. A lost update leaves
//! the latch short and the bench panics instead of reporting a number.
//!
//! Posting is interleaved from one external thread (task t of every sequence, then task t+1),
//! so sequences go idle and come back all the time: the strands' scheduling path is exercised,
//! not only their queue push.
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

fn bench_strands<E: StrandExecutor>(g: &mut Group<'_>, e: E, s: usize, t: u64) {
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
                for _ in 0..t {
                    for (strand, c) in strands.iter().zip(counters) {
                        strand.post(move || {
                            // Sequence-owned state: no RMW, the strand orders us.
                            let v = c.load(Ordering::Relaxed) + 1;
                            c.store(v, Ordering::Relaxed);
                            if v == t {
                                latch.count_down();
                            }
                        });
                    }
                }
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
fn bench_rayon_mutex(g: &mut Group<'_>, w: usize, s: usize, t: u64) {
    let pool = rayon_pool(w);
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
                for _ in 0..t {
                    for m in states {
                        pool.spawn(move || {
                            let mut g = m.lock();
                            *g += 1;
                            if *g == t {
                                latch.count_down();
                            }
                        });
                    }
                }
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
    let mut g = c.benchmark_group(format!("sequenced/{s}x{t}_w{w}"));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(s as u64 * t));
    bench_strands(&mut g, Taskrunner::new(w), s, t);
    bench_strands(&mut g, Floor::new(w), s, t);
    bench_strands(&mut g, TokioActors(tokio_runtime(w)), s, t);
    bench_rayon_mutex(&mut g, w, s, t);
    g.finish();
    c.final_summary();
}
