//! The batcher against one dispatcher call per request, for **1000 concurrent requesters**:
//! one iteration posts 1000 `post_future` tasks that each make one request and `.await` it,
//! then joins them all. The dispatcher's cost is a fixed per-call overhead (a 20 µs spin: the
//! round trip, or the per-call work of a bulk API) plus 50 ns per item.
//!
//! * **`batching/1000_requests`** (time per 1000 requests):
//!   - `batcher_sync`: `Batcher::build` (a blocking dispatcher, run as may-block pool tasks);
//!   - `batcher_async`: `Batcher::build_async` (the dispatcher's future polled with
//!     `post_future`);
//!   - `batcher_max_batch_1`: the same batcher with `max_batch_size(1)`: every request is its
//!     own dispatch, so this is the batcher's machinery without its benefit;
//!   - `one_call_per_request`: each task calls the dispatcher itself, for its one request (the
//!     code without a batcher).
//!
//! Before the timings, the batch sizes the batched peers produced are printed (the requests
//! come from tasks posted by the bench thread while the workers already run them, so the
//! first batches close as soon as the workers catch up with the poster: see the idle rule in
//! `Batcher`'s docs). Every pool has `BENCH_WORKERS` workers (default 2).
//!
//! ```text
//! cargo bench --bench batching
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{env_usize, workers};
use criterion::{Criterion, Throughput};
use taskrunner::batch::Batcher;
use taskrunner::{TaskTraits, ThreadPool};

/// The fixed cost of one dispatcher call.
const PER_CALL: Duration = Duration::from_micros(20);
/// The cost of one item in a call.
const PER_ITEM: Duration = Duration::from_nanos(50);

fn spin(d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The dispatcher: answers `k + 1` for every key, after the call's cost.
fn dispatch(keys: Vec<u64>) -> Result<Vec<u64>, Infallible> {
    spin(PER_CALL + PER_ITEM * keys.len() as u32);
    Ok(keys.into_iter().map(|k| k + 1).collect())
}

struct Peers {
    pool: ThreadPool,
    sync: Batcher<u64, u64>,
    async_: Batcher<u64, u64>,
    one: Batcher<u64, u64>,
}

type Op = (&'static str, fn(&Peers, usize) -> u64);

impl Peers {
    fn new() -> Self {
        let pool = ThreadPool::builder()
            .max_workers(workers())
            .build()
            .unwrap();
        let sync = Batcher::builder().pool(&pool).build(dispatch);
        let async_ = Batcher::builder()
            .pool(&pool)
            .build_async(|keys: Vec<u64>| async move { dispatch(keys) });
        let one = Batcher::builder()
            .pool(&pool)
            .max_batch_size(1)
            .build(dispatch);
        Peers {
            pool,
            sync,
            async_,
            one,
        }
    }

    /// `n` tasks, each one request through `b`, joined.
    fn through(&self, b: &Batcher<u64, u64>, n: usize) -> u64 {
        let tasks: Vec<_> = (0..n as u64)
            .map(|k| {
                let b = b.clone();
                self.pool
                    .post_future(
                        TaskTraits::default(),
                        async move { b.call(k).await.unwrap() },
                    )
                    .unwrap()
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).sum()
    }

    fn batcher_sync(&self, n: usize) -> u64 {
        self.through(&self.sync, n)
    }

    fn batcher_async(&self, n: usize) -> u64 {
        self.through(&self.async_, n)
    }

    fn batcher_max_batch_1(&self, n: usize) -> u64 {
        self.through(&self.one, n)
    }

    fn one_call_per_request(&self, n: usize) -> u64 {
        let tasks: Vec<_> = (0..n as u64)
            .map(|k| {
                self.pool
                    .post_future(TaskTraits::default(), async move {
                        black_box(dispatch(vec![k]).unwrap())[0]
                    })
                    .unwrap()
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

const PEERS: &[Op] = &[
    ("batcher_sync", Peers::batcher_sync),
    ("batcher_async", Peers::batcher_async),
    ("batcher_max_batch_1", Peers::batcher_max_batch_1),
    ("one_call_per_request", Peers::one_call_per_request),
];

fn expected(n: usize) -> u64 {
    let n = n as u64;
    n * (n + 1) / 2
}

fn batch_report(p: &Peers, n: usize, rounds: usize) {
    println!("\n### dispatcher calls per {n} requests ({rounds} rounds)\n");
    println!("| peer | calls / round | mean batch | largest |");
    println!("|---|---:|---:|---:|");
    for (name, op, b) in [
        ("batcher_sync", PEERS[0].1, &p.sync),
        ("batcher_async", PEERS[1].1, &p.async_),
    ] {
        let before = b.stats();
        for _ in 0..rounds {
            assert_eq!(op(p, n), expected(n));
        }
        let after = b.stats();
        let calls = after.dispatches - before.dispatches;
        println!(
            "| {name} | {:.1} | {:.1} | {} |",
            calls as f64 / rounds as f64,
            (rounds * n) as f64 / calls as f64,
            after.largest_batch
        );
    }
    println!("| one_call_per_request | {n} | 1 | 1 |\n");
}

fn bench(c: &mut Criterion, p: &Peers, n: usize) {
    let mut g = c.benchmark_group(format!("batching/{n}_requests"));
    g.throughput(Throughput::Elements(n as u64));
    for (name, op) in PEERS {
        g.bench_function(*name, |b| b.iter(|| assert_eq!(op(p, n), expected(n))));
    }
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let test_mode = args.iter().any(|a| a == "--test");
    let p = Peers::new();
    let n = env_usize("BENCH_BATCHING_N", 1_000);
    batch_report(&p, n, if test_mode { 1 } else { 20 });
    let mut c = common::criterion();
    bench(&mut c, &p, n);
    c.final_summary();
}
