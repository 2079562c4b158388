//! A job over a slice (`ThreadPool::post_job`) against what a user would write instead:
//! rayon's `par_iter` and `par_chunks`, and scoped std threads splitting the slice.
//!
//! The work: `N` items (`BENCH_JOB_N`, default 1,000,000) of a small integer mix (about 20-30
//! ns each), summed. One iteration = start, process every item, join, check the sum.
//!
//! * `taskrunner_job_chunk_1024`: a job whose worker function claims chunks of 1024 items from
//!   an atomic counter and checks `should_yield` between chunks; max concurrency = chunks left;
//!   `join` (the calling thread helps).
//! * `taskrunner_job_chunk_64`: the same with chunks of 64 (more claims, finer balance).
//! * `taskrunner_job_chunk_1024_cap_workers`: chunks of 1024, max concurrency capped at
//!   `BENCH_WORKERS` (the joiner counts as one), so no more threads compute than rayon uses.
//! * `taskrunner_job_work_range`: the job claiming from a `WorkRange` (shrinking chunks: a
//!   quarter of what is left on a 2-worker pool, at least 1024 items).
//! * `rayon_par_iter`: `pool.install(|| items.par_iter().map(mix).sum())`.
//! * `rayon_par_chunks_1024`: `par_chunks(1024)`, each chunk summed sequentially.
//!
//! The chunked variants (the jobs, `par_chunks`, the scoped threads) sum every chunk with the
//! same out-of-line function, so they run identical code per item and differ only in how the
//! chunks are handed out; `rayon_par_iter` maps item by item.
//! * `std_scoped_threads`: `BENCH_WORKERS` scoped threads, each summing one contiguous part.
//!
//! A second group, `job/small_10k`, runs the same with 10,000 items, where starting and joining
//! is a large share of the time.
//!
//! Every pool has `BENCH_WORKERS` worker threads (default 2). Note that a job's `join` runs
//! the worker function on the calling thread too, so taskrunner may use one thread more than
//! rayon (whose caller waits in `install`); on 2 cores that thread only time-shares.
//!
//! ```text
//! cargo bench --bench job
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{env_usize, rayon_pool, workers};
use criterion::{Criterion, Throughput};
use rayon::prelude::*;
use taskrunner::job::WorkRange;
use taskrunner::{TaskTraits, ThreadPool};

/// The per-item work: a few rounds of an integer mix (not optimised away: the sum is checked).
#[inline]
fn mix(x: u64) -> u64 {
    let mut h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..8 {
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    h >> 32
}

/// The sum of one chunk: one out-of-line function shared by every chunked variant, so that
/// they run the very same machine code per item and differ only in how chunks are handed out.
#[inline(never)]
fn sum_chunk(c: &[u64]) -> u64 {
    c.iter().map(|&x| mix(x)).sum()
}

struct Peers {
    pool: ThreadPool,
    rayon: rayon::ThreadPool,
    workers: usize,
}

/// A job over `items`: its workers sum the chunks `claim` hands out; `wanted` is its
/// max-concurrency callback.
fn job_sum<C, M>(pool: &ThreadPool, items: &Arc<Vec<u64>>, claim: C, wanted: M) -> u64
where
    C: Fn() -> Option<Range<usize>> + Send + Sync + 'static,
    M: Fn(usize) -> usize + Send + Sync + 'static,
{
    let sum = Arc::new(AtomicUsize::new(0));
    let (it, total) = (items.clone(), sum.clone());
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |d| {
                let mut part = 0u64;
                while !d.should_yield() {
                    let Some(c) = claim() else { break };
                    part += sum_chunk(&it[c]);
                }
                total.fetch_add(part as usize, Ordering::Relaxed);
            },
            wanted,
        )
        .expect("post_job");
    job.join().expect("job");
    sum.load(Ordering::Relaxed) as u64
}

/// Fixed chunks of `chunk` items from an atomic counter, at most `cap` workers.
fn job_fixed_sum(pool: &ThreadPool, items: &Arc<Vec<u64>>, chunk: usize, cap: usize) -> u64 {
    let (len, chunks) = (items.len(), items.len().div_ceil(chunk));
    let next = Arc::new(AtomicUsize::new(0));
    let left = next.clone();
    let claim = move || {
        let c = next.fetch_add(1, Ordering::Relaxed);
        (c < chunks).then(|| c * chunk..((c + 1) * chunk).min(len))
    };
    let wanted = move |_| chunks.saturating_sub(left.load(Ordering::Relaxed)).min(cap);
    job_sum(pool, items, claim, wanted)
}

/// Shrinking chunks from a [`WorkRange`].
fn job_range_sum(pool: &ThreadPool, items: &Arc<Vec<u64>>, min_chunk: usize) -> u64 {
    let range = Arc::new(WorkRange::new(items.len(), min_chunk, pool.max_workers()));
    let r = range.clone();
    job_sum(
        pool,
        items,
        move || r.claim(),
        move |_| range.remaining_chunks(),
    )
}

fn scoped_sum(items: &[u64], workers: usize) -> u64 {
    let part = items.len().div_ceil(workers);
    std::thread::scope(|s| {
        let hs: Vec<_> = items
            .chunks(part)
            .map(|c| s.spawn(move || sum_chunk(c)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

type Op = fn(&Peers, &Arc<Vec<u64>>) -> u64;

const OPS: &[(&str, Op)] = &[
    ("taskrunner_job_chunk_1024", |p, it| {
        job_fixed_sum(&p.pool, it, 1024, usize::MAX)
    }),
    ("taskrunner_job_chunk_64", |p, it| {
        job_fixed_sum(&p.pool, it, 64, usize::MAX)
    }),
    ("taskrunner_job_chunk_1024_cap_workers", |p, it| {
        job_fixed_sum(&p.pool, it, 1024, p.workers)
    }),
    ("taskrunner_job_work_range", |p, it| {
        job_range_sum(&p.pool, it, 1024)
    }),
    ("rayon_par_iter", |p, it| {
        p.rayon.install(|| it.par_iter().map(|&x| mix(x)).sum())
    }),
    ("rayon_par_chunks_1024", |p, it| {
        p.rayon.install(|| it.par_chunks(1024).map(sum_chunk).sum())
    }),
    ("std_scoped_threads", |p, it| scoped_sum(it, p.workers)),
];

fn group(c: &mut Criterion, p: &Peers, name: &str, n: usize) {
    let items: Arc<Vec<u64>> = Arc::new((0..n as u64).collect());
    let expected: u64 = items.iter().map(|&x| mix(x)).sum();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n as u64));
    for (label, op) in OPS {
        assert_eq!(op(p, &items), expected, "{label}");
        g.bench_function(*label, |b| {
            b.iter(|| assert_eq!(black_box(op(p, &items)), expected))
        });
    }
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let workers = workers();
    let p = Peers {
        pool: ThreadPool::builder()
            .max_workers(workers)
            .build()
            .expect("pool"),
        rayon: rayon_pool(workers),
        workers,
    };
    let mut c = common::criterion();
    group(&mut c, &p, "job/slice", env_usize("BENCH_JOB_N", 1_000_000));
    group(&mut c, &p, "job/small_10k", 10_000);
    c.final_summary();
}
