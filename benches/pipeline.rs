//! A three-stage pipeline (`taskrunner::pipeline`) against what a user would write instead:
//! a chain of threads connected by bounded crossbeam channels.
//!
//! N items (`BENCH_PIPELINE_N`, default 20,000) go through three stages of `mix` (integer work:
//! `BENCH_PIPELINE_WORK` rounds per stage, default 1, a few ns); results are collected
//! (taskrunner: in completion order, and in input order). Each stage has one worker, queues
//! hold 64 items. With the default work what is measured is the hand-off between stages;
//! `BENCH_PIPELINE_WORK=2000` gives each stage a few microseconds per item. One iteration =
//! feed every item, collect every result.
//!
//! * `taskrunner_pipeline_completion` / `taskrunner_pipeline_input`: `Pipeline::run`.
//! * `channel_chain_threads`: three spawned threads, `crossbeam_channel::bounded(64)` between
//!   them, fed and drained by the calling thread (threads spawned per iteration, as a user's
//!   one-shot chain would).
//! * `channel_chain_pool`: the same chain as three long-lived tasks on a rayon pool of 3 threads
//!   (no spawn per iteration).
//!
//! ```text
//! cargo bench --bench pipeline
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::hint::black_box;

use common::{env_usize, workers};
use criterion::Throughput;
use taskrunner::pipeline::{Order, Pipeline};
use taskrunner::ThreadPool;

/// Rounds of the integer mix per stage and item (`BENCH_PIPELINE_WORK`, default 1).
static WORK: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

#[inline]
fn mix(x: u64) -> u64 {
    let mut h = x;
    for _ in 0..*WORK.get().expect("set in main") {
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    h
}

fn chain_threads(n: u64) -> u64 {
    let (tx0, rx0) = crossbeam_channel::bounded::<u64>(64);
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(64);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(64);
    let (tx3, rx3) = crossbeam_channel::bounded::<u64>(64);
    std::thread::scope(|s| {
        s.spawn(move || rx0.iter().for_each(|x| tx1.send(mix(x)).unwrap()));
        s.spawn(move || rx1.iter().for_each(|x| tx2.send(mix(x)).unwrap()));
        s.spawn(move || rx2.iter().for_each(|x| tx3.send(mix(x)).unwrap()));
        let feeder = s.spawn(move || (0..n).for_each(|x| tx0.send(x).unwrap()));
        let sum = rx3.iter().fold(0u64, u64::wrapping_add);
        feeder.join().unwrap();
        sum
    })
}

fn chain_pool(rayon: &rayon::ThreadPool, n: u64) -> u64 {
    let (tx0, rx0) = crossbeam_channel::bounded::<u64>(64);
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(64);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(64);
    let (tx3, rx3) = crossbeam_channel::bounded::<u64>(64);
    rayon.spawn(move || rx0.iter().for_each(|x| tx1.send(mix(x)).unwrap()));
    rayon.spawn(move || rx1.iter().for_each(|x| tx2.send(mix(x)).unwrap()));
    rayon.spawn(move || rx2.iter().for_each(|x| tx3.send(mix(x)).unwrap()));
    let feeder = std::thread::spawn(move || (0..n).for_each(|x| tx0.send(x).unwrap()));
    let sum = rx3.iter().fold(0u64, u64::wrapping_add);
    feeder.join().unwrap();
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("BENCH_PIPELINE_N", 20_000) as u64;
    WORK.set(env_usize("BENCH_PIPELINE_WORK", 1)).expect("once");
    let pool = ThreadPool::builder()
        .max_workers(workers().max(3))
        .build()
        .expect("pool");
    let rayon = common::rayon_pool(3);
    let expected = (0..n)
        .map(|x| mix(mix(mix(x))))
        .fold(0u64, u64::wrapping_add);
    let build = |order| {
        Pipeline::<u64>::builder(&pool)
            .capacity(64)
            .stage("a", 1, |x: u64| Ok::<_, std::convert::Infallible>(mix(x)))
            .stage("b", 1, |x: u64| Ok::<_, std::convert::Infallible>(mix(x)))
            .stage("c", 1, |x: u64| Ok::<_, std::convert::Infallible>(mix(x)))
            .order(order)
            .build()
    };
    let completion = build(Order::Completion);
    let input = build(Order::Input);
    let run = |p: &Pipeline<u64>| {
        p.run(0..n)
            .into_iter()
            .map(|r| r.unwrap())
            .fold(0u64, u64::wrapping_add)
    };
    assert_eq!(run(&completion), expected);
    assert_eq!(chain_threads(n), expected);
    assert_eq!(chain_pool(&rayon, n), expected);
    let mut c = common::criterion();
    let mut g = c.benchmark_group("pipeline/3_stages");
    g.throughput(Throughput::Elements(n));
    g.bench_function("taskrunner_pipeline_completion", |b| {
        b.iter(|| assert_eq!(black_box(run(&completion)), expected))
    });
    g.bench_function("taskrunner_pipeline_input", |b| {
        b.iter(|| assert_eq!(black_box(run(&input)), expected))
    });
    g.bench_function("channel_chain_threads", |b| {
        b.iter(|| assert_eq!(black_box(chain_threads(n)), expected))
    });
    g.bench_function("channel_chain_pool", |b| {
        b.iter(|| assert_eq!(black_box(chain_pool(&rayon, n)), expected))
    });
    g.finish();
    c.final_summary();
}
