//! Fork/join at kelindar/async's published scenario: **1000 no-op tasks at concurrency 8**,
//! created, run and joined per iteration, through taskrunner's `invoke_all` and `consume`,
//! against tokio (`JoinSet` + a shared `Semaphore` with 8 permits) and rayon.
//!
//! * **allocations per task** (printed first, a count, not a timing): a counting global
//!   allocator around whole batches, divided by the batch size. Process-wide, so the workers'
//!   side is included.
//! * **`orchestration/batch_1000_c8`**: one iteration = build 1000 tasks, run them at most 8 at
//!   a time, collect the 1000 results.
//!   - `taskrunner_invoke_all_limit_8`: `invoke_all(&pool, tasks, 8).join()` (8 drivers pull
//!     tasks from the batch and run them inline; results in input order).
//!   - `taskrunner_invoke_all_unbounded`: the same with no limit (one driver posted per task).
//!   - `taskrunner_consume_8_workers`: 1000 `Deferred`s in a pre-filled, closed crossbeam
//!     channel, `consume(&pool, rx, 8).join()`, then the 1000 handles joined.
//!   - `tokio_joinset_semaphore_8`: `block_on` a future that spawns 1000 tasks into a
//!     `JoinSet`, each acquiring one of 8 permits of an `Arc<Semaphore>` first, then drains
//!     the set (results in completion order).
//!   - `rayon_par_iter` / `rayon_scope_spawn`: rayon has no per-batch limit, its concurrency is
//!     its thread count; `par_iter().map().collect()` (input order) and `scope` + `spawn` into
//!     a slot per task.
//! * **`orchestration/invoke_one`**: one task per iteration (kelindar's `Invoke` + `Outcome`,
//!   published at about 508 ns): `invoke_all` of a single task next to the plain
//!   `post_task_with_result` + `join` and tokio `spawn` + `block_on`.
//!
//! Every pool has `BENCH_WORKERS` worker threads (default 2, the bench machine's cores): the
//! taskrunner pool, the tokio runtime and the rayon pool. A limit of 8 on 2 workers still means
//! at most 2 tasks run at once; it is the scenario's bookkeeping (8 drivers, 8 permits) that
//! is measured. kelindar's figures (about 303-310 µs per 1000-task batch, GOMAXPROCS 24) are
//! from other hardware and only a rough reference.
//!
//! ```text
//! cargo bench --bench orchestration
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// The counting allocator needs `unsafe` (`GlobalAlloc` is an unsafe trait); see benches/memory.rs
// for why Cargo.toml denies rather than forbids `unsafe_code`.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{env_usize, rayon_pool, tokio_runtime, workers};
use criterion::{Criterion, Throughput};
use rayon::prelude::*;
use taskrunner::fork_join::{consume, invoke_all};
use taskrunner::{Deferred, TaskTraits, ThreadPool};

// ---- counting allocator ---------------------------------------------------------------------

/// Forwards to `System`, counting allocation calls.
struct CountingAlloc;

static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);

// SAFETY: each method passes its arguments unchanged to `System` and returns its result, so the
// contract of `GlobalAlloc` holds exactly as it does for `System`; the counter is an atomic that
// never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, for this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size` is
        // valid for `layout.align()`, which is `System.realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ---- the peers --------------------------------------------------------------------------------

/// kelindar/async's concurrency.
const LIMIT: usize = 8;

struct Peers {
    pool: ThreadPool,
    tokio: tokio::runtime::Runtime,
    rayon: rayon::ThreadPool,
}

type Op = (&'static str, fn(&Peers, usize) -> u64);

fn no_op() -> Result<u64, Infallible> {
    Ok(black_box(1))
}

impl Peers {
    fn new() -> Self {
        let w = workers();
        Peers {
            pool: ThreadPool::builder()
                .max_workers(w)
                .thread_name("bench")
                .build()
                .expect("build taskrunner pool"),
            tokio: tokio_runtime(w),
            rayon: rayon_pool(w),
        }
    }

    fn invoke_all_limit(&self, n: usize) -> u64 {
        let tasks = (0..n).map(|_| no_op);
        invoke_all(&self.pool, tasks, LIMIT)
            .join()
            .into_iter()
            .map(Result::unwrap)
            .sum()
    }

    fn invoke_all_unbounded(&self, n: usize) -> u64 {
        let tasks = (0..n).map(|_| no_op);
        invoke_all(&self.pool, tasks, None)
            .join()
            .into_iter()
            .map(Result::unwrap)
            .sum()
    }

    fn consume(&self, n: usize) -> u64 {
        let (tx, rx) = crossbeam_channel::bounded(n);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (task, handle) = Deferred::new(|| black_box(1_u64));
                tx.send(task).unwrap();
                handle
            })
            .collect();
        drop(tx);
        let report = consume(&self.pool, rx, LIMIT).join();
        assert_eq!(report.ran, n);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    }

    fn tokio_joinset(&self, n: usize) -> u64 {
        self.tokio.block_on(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(LIMIT));
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..n {
                let permits = permits.clone();
                set.spawn(async move {
                    let _permit = permits.acquire_owned().await.unwrap();
                    black_box(1_u64)
                });
            }
            let mut sum = 0;
            while let Some(r) = set.join_next().await {
                sum += r.unwrap();
            }
            sum
        })
    }

    fn rayon_par_iter(&self, n: usize) -> u64 {
        let out: Vec<u64> = self
            .rayon
            .install(|| (0..n).into_par_iter().map(|_| no_op().unwrap()).collect());
        out.into_iter().sum()
    }

    fn rayon_scope(&self, n: usize) -> u64 {
        let mut out = vec![0_u64; n];
        self.rayon.scope(|s| {
            for slot in out.iter_mut() {
                s.spawn(move |_| *slot = no_op().unwrap());
            }
        });
        out.into_iter().sum()
    }

    fn invoke_one(&self, _n: usize) -> u64 {
        invoke_all(&self.pool, [no_op], None)
            .join()
            .pop()
            .unwrap()
            .unwrap()
    }

    fn post_join_one(&self, _n: usize) -> u64 {
        self.pool
            .post_task_with_result(TaskTraits::default(), || black_box(1_u64))
            .unwrap()
            .join()
            .unwrap()
    }

    fn tokio_one(&self, _n: usize) -> u64 {
        let h = self.tokio.spawn(async { black_box(1_u64) });
        self.tokio.block_on(h).unwrap()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

const BATCH: &[Op] = &[
    ("taskrunner_invoke_all_limit_8", Peers::invoke_all_limit),
    (
        "taskrunner_invoke_all_unbounded",
        Peers::invoke_all_unbounded,
    ),
    ("taskrunner_consume_8_workers", Peers::consume),
    ("tokio_joinset_semaphore_8", Peers::tokio_joinset),
    ("rayon_par_iter", Peers::rayon_par_iter),
    ("rayon_scope_spawn", Peers::rayon_scope),
];

const ONE: &[Op] = &[
    ("taskrunner_invoke_all_one_task", Peers::invoke_one),
    ("taskrunner_post_with_result_join", Peers::post_join_one),
    ("tokio_spawn_block_on", Peers::tokio_one),
];

fn alloc_report(p: &Peers, n: usize, rounds: usize) {
    println!("\n### allocations per task ({rounds} batches of {n} tasks)\n");
    println!("| peer | allocations / task |");
    println!("|---|---:|");
    for (name, op) in BATCH {
        for _ in 0..rounds.div_ceil(10) {
            black_box(op(p, n)); // warm-up
        }
        let c0 = ALLOC_CALLS.load(Ordering::SeqCst);
        for _ in 0..rounds {
            assert_eq!(op(p, n), n as u64);
        }
        let c1 = ALLOC_CALLS.load(Ordering::SeqCst);
        println!("| {name} | {:.2} |", (c1 - c0) as f64 / (rounds * n) as f64);
    }
    println!();
}

fn batch(c: &mut Criterion, p: &Peers, n: usize) {
    let mut g = c.benchmark_group(format!("orchestration/batch_{n}_c{LIMIT}"));
    g.throughput(Throughput::Elements(n as u64));
    for (name, op) in BATCH {
        g.bench_function(*name, |b| b.iter(|| assert_eq!(op(p, n), n as u64)));
    }
    g.finish();
}

fn one(c: &mut Criterion, p: &Peers) {
    let mut g = c.benchmark_group("orchestration/invoke_one");
    g.throughput(Throughput::Elements(1));
    for (name, op) in ONE {
        g.bench_function(*name, |b| b.iter(|| op(p, 1)));
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
    let n = env_usize("BENCH_ORCHESTRATION_N", 1_000);
    alloc_report(&p, n, if test_mode { 2 } else { 50 });
    let mut c = common::criterion();
    batch(&mut c, &p, n);
    one(&mut c, &p);
    c.final_summary();
}
