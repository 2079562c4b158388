//! Parallel post throughput: N tiny tasks posted from one external thread, waited for with a
//! latch; every peer in the same run (see `common`). Each task only counts a shared latch down
//! (one contended atomic decrement), so the numbers are the pools' own per-task overhead.
//!
//! `BENCH_PAR_N` tasks per iteration (default 100 000), `BENCH_WORKERS` workers (default 2).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{
    rayon_pool, tokio_runtime, workers, Executor, Floor, Latch, RayonSpawn, RayonSpawnFifo,
    Taskrunner, ThreadPoolCrate, TokioSpawn, TokioSpawnBlocking,
};
use criterion::{BenchmarkGroup, SamplingMode, Throughput};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// One iteration: post `n` closures from this thread, wait until all ran.
fn bench_one<E: Executor>(g: &mut Group<'_>, e: E, n: usize) {
    let latch = Latch::leak();
    g.bench_function(e.name(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                latch.reset(n);
                let t0 = Instant::now();
                for _ in 0..n {
                    e.post(move || latch.count_down());
                }
                latch.wait();
                total += t0.elapsed();
            }
            total
        })
    });
    // `e` drops here: its threads are gone before the next peer starts.
}

fn main() {
    let n = common::env_usize("BENCH_PAR_N", 100_000);
    let w = workers();
    let mut c = common::criterion();
    let mut g = c.benchmark_group(format!("post_throughput/parallel_{n}_w{w}"));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(n as u64));
    bench_one(&mut g, Taskrunner::new(w), n);
    bench_one(&mut g, Floor::new(w), n);
    bench_one(&mut g, RayonSpawn(rayon_pool(w)), n);
    bench_one(&mut g, RayonSpawnFifo(rayon_pool(w)), n);
    bench_one(&mut g, TokioSpawn(tokio_runtime(w)), n);
    bench_one(&mut g, TokioSpawnBlocking(tokio_runtime(w)), n);
    bench_one(&mut g, ThreadPoolCrate::new(w), n);
    g.finish();
    c.final_summary();
}
