//! The cost of a bounded queue: N tasks (`BENCH_BOUNDED_N`, default 100,000) posted from one
//! thread to one sequence and run, through a plain `SequencedTaskRunner` and through
//! `bounded(capacity, policy)` runners over it, with a capacity that never fills (the cost of
//! the queue and its pump) and one that fills (`Block`: the poster waits for room).
//! One iteration = post all, then wait for the last.
//!
//! ```text
//! cargo bench --bench bounded
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{env_usize, workers};
use criterion::Throughput;
use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};

/// Posts `n` counting tasks to `r` and waits until all ran.
fn run<R: PostTask>(r: &R, n: usize) {
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let done = done.clone();
        r.post_task(move || {
            done.fetch_add(1, Ordering::Release);
        })
        .expect("post");
    }
    while done.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("BENCH_BOUNDED_N", 100_000);
    let pool = ThreadPool::builder()
        .max_workers(workers())
        .build()
        .expect("pool");
    let seq = || pool.create_sequenced_task_runner(TaskTraits::default());
    let mut c = common::criterion();
    let mut g = c.benchmark_group("bounded/post_and_run");
    g.throughput(Throughput::Elements(n as u64));
    let plain = seq();
    g.bench_function("sequenced", |b| b.iter(|| run(&plain, n)));
    let roomy = seq().bounded(n * 2, QueuePolicy::Reject);
    g.bench_function("bounded_never_full", |b| b.iter(|| run(&roomy, n)));
    let tight = seq().bounded(1024, QueuePolicy::Block);
    g.bench_function("bounded_block_1024", |b| b.iter(|| run(&tight, n)));
    let tiny = seq().bounded(16, QueuePolicy::Block);
    g.bench_function("bounded_block_16", |b| b.iter(|| run(&tiny, n)));
    g.finish();
    c.final_summary();
}
