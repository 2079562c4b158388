//! Ping-pong latency: a task on strand A posts to strand B, whose task posts back to A; one
//! round trip is A -> B -> A (two cross-strand posts, each possibly waking the other worker).
//! An iteration of criterion is one round trip, so the reported time is time per round trip.
//!
//! Peers: two taskrunner `SequencedTaskRunner`s, two floor strands, two tokio mpsc actors.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::{
    tokio_runtime, workers, Floor, Latch, Strand, StrandExecutor, Taskrunner, TokioActors,
};
use criterion::{BenchmarkGroup, SamplingMode};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Posts to A: if rounds are left, A posts to B, and B starts the next round on A.
fn ping<S: Strand>(pair: &'static (S, S), left: u64, done: &'static Latch) {
    pair.0.post(move || {
        if left == 0 {
            done.count_down();
        } else {
            pair.1.post(move || ping(pair, left - 1, done));
        }
    });
}

fn bench_pair<E: StrandExecutor>(g: &mut Group<'_>, e: E) {
    // Leaked for the `'static` capture; the executor's drop stops the threads anyway.
    let pair: &'static (E::S, E::S) = Box::leak(Box::new((e.strand(), e.strand())));
    let latch = Latch::leak();
    g.bench_function(e.name(), |b| {
        b.iter_custom(|iters| {
            latch.reset(1);
            let t0 = Instant::now();
            ping(pair, iters, latch);
            latch.wait();
            t0.elapsed()
        })
    });
}

fn main() {
    let w = workers();
    let mut c = common::criterion();
    let mut g = c.benchmark_group(format!("ping_pong/round_trip_w{w}"));
    g.sampling_mode(SamplingMode::Flat);
    bench_pair(&mut g, Taskrunner::new(w));
    bench_pair(&mut g, Floor::new(w));
    bench_pair(&mut g, TokioActors(tokio_runtime(w)));
    g.finish();
    c.final_summary();
}
