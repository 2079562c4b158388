//! Post a no-op task and wait for its result: taskrunner's `TaskHandle` against the usual ways
//! of doing the same with tokio and rayon.
//!
//! * **allocations per post + join** (printed first, a count, not a timing): a counting global
//!   allocator around `BENCH_HANDLE_N` sequential post+join round trips, after a warm-up. The
//!   counters are process-wide, so the worker's side (running the task, storing the result) is
//!   included. The issue's target is <= 1 for taskrunner (closure and result cell share one
//!   allocation; kelindar/async needs 2).
//! * **`handle/post_join_one`**: one round trip at a time (post, then block for the value): the
//!   latency of waking a parked worker and being woken back.
//! * **`handle/post_join_batch`**: post `BENCH_HANDLE_BATCH` tasks, then collect every result
//!   in posting order: the throughput of the result path (next to the same tasks posted
//!   without handles, counting down a shared counter instead).
//!
//! Peers: taskrunner `ThreadPool::post_task_with_result` + `join` (and the same through a
//! sequenced runner, and awaited from a current-thread tokio runtime); tokio `Runtime::spawn`
//! then `block_on(JoinHandle)`, and `spawn_blocking`; rayon `spawn` with a crossbeam or std
//! channel for the result. Every pool has `BENCH_WORKERS` workers (default 2).
//!
//! ```text
//! cargo bench --bench handle
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// The counting allocator needs `unsafe` (`GlobalAlloc` is an unsafe trait); see benches/memory.rs
// for why Cargo.toml denies rather than forbids `unsafe_code`.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{env_usize, rayon_pool, tokio_runtime, workers};
use criterion::{Criterion, Throughput};
use taskrunner::PostTask;
use taskrunner::{TaskTraits, ThreadPool};

// ---- counting allocator ---------------------------------------------------------------------

/// Forwards to `System`, counting allocation calls and requested bytes.
struct CountingAlloc;

static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: each method passes its arguments unchanged to `System` and returns its result, so the
// contract of `GlobalAlloc` holds exactly as it does for `System`; the counters are atomics that
// never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, for this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size` is
        // valid for `layout.align()`, which is `System.realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocation calls and bytes per operation over `n` runs of `op` (after `n / 10` warm-up runs).
fn allocs_per_op(n: usize, mut op: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        op();
    }
    let (c0, b0) = (
        ALLOC_CALLS.load(Ordering::SeqCst),
        ALLOC_BYTES.load(Ordering::SeqCst),
    );
    for _ in 0..n {
        op();
    }
    let (c1, b1) = (
        ALLOC_CALLS.load(Ordering::SeqCst),
        ALLOC_BYTES.load(Ordering::SeqCst),
    );
    ((c1 - c0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

// ---- the peers --------------------------------------------------------------------------------

struct Peers {
    pool: ThreadPool,
    seq: taskrunner::SequencedTaskRunner,
    tokio: tokio::runtime::Runtime,
    tokio_local: tokio::runtime::Runtime,
    rayon: rayon::ThreadPool,
}

impl Peers {
    fn new() -> Self {
        let w = workers();
        let pool = ThreadPool::builder()
            .max_workers(w)
            .thread_name("bench")
            .build()
            .expect("build taskrunner pool");
        let seq = pool.create_sequenced_task_runner(TaskTraits::default());
        Peers {
            pool,
            seq,
            tokio: tokio_runtime(w),
            tokio_local: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("build current-thread runtime"),
            rayon: rayon_pool(w),
        }
    }

    fn taskrunner(&self) -> u64 {
        self.pool
            .post_task_with_result(TaskTraits::default(), || black_box(1_u64))
            .unwrap()
            .join()
            .unwrap()
    }

    /// A closure with a 16-byte capture (the memory bench's payload size).
    fn taskrunner_capture(&self) -> u64 {
        let x = black_box([7_u64; 2]);
        self.pool
            .post_task_with_result(TaskTraits::default(), move || x[0] + x[1])
            .unwrap()
            .join()
            .unwrap()
    }

    fn taskrunner_sequenced(&self) -> u64 {
        self.seq
            .post_task_with_result(|| black_box(1_u64))
            .unwrap()
            .join()
            .unwrap()
    }

    fn taskrunner_await(&self) -> u64 {
        let h = self
            .pool
            .post_task_with_result(TaskTraits::default(), || black_box(1_u64))
            .unwrap();
        self.tokio_local.block_on(h).unwrap()
    }

    fn tokio_spawn(&self) -> u64 {
        let h = self.tokio.spawn(async { black_box(1_u64) });
        self.tokio.block_on(h).unwrap()
    }

    fn tokio_spawn_blocking(&self) -> u64 {
        let h = self.tokio.spawn_blocking(|| black_box(1_u64));
        self.tokio.block_on(h).unwrap()
    }

    fn rayon_crossbeam(&self) -> u64 {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.rayon.spawn(move || tx.send(black_box(1_u64)).unwrap());
        rx.recv().unwrap()
    }

    fn rayon_std(&self) -> u64 {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rayon.spawn(move || tx.send(black_box(1_u64)).unwrap());
        rx.recv().unwrap()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

type Op = (&'static str, fn(&Peers) -> u64);

const ONE: &[Op] = &[
    ("taskrunner_post_with_result_join", Peers::taskrunner),
    ("taskrunner_sequenced_join", Peers::taskrunner_sequenced),
    ("taskrunner_await_current_thread", Peers::taskrunner_await),
    ("tokio_spawn_block_on", Peers::tokio_spawn),
    ("tokio_spawn_blocking_block_on", Peers::tokio_spawn_blocking),
    ("rayon_spawn_crossbeam_channel", Peers::rayon_crossbeam),
    ("rayon_spawn_std_channel", Peers::rayon_std),
];

fn alloc_report(p: &Peers, n: usize) {
    println!("\n### allocations per post + join of a no-op task (N = {n}, sequential)\n");
    println!("| peer | allocations / op | bytes allocated / op |");
    println!("|---|---:|---:|");
    let mut ops: Vec<Op> = ONE.to_vec();
    ops.insert(
        1,
        (
            "taskrunner_post_with_result_join (16-byte capture)",
            Peers::taskrunner_capture,
        ),
    );
    for (name, op) in ops {
        let (calls, bytes) = allocs_per_op(n, || {
            black_box(op(p));
        });
        println!("| {name} | {calls:.3} | {bytes:.1} |");
    }
    println!();
}

fn post_join_one(c: &mut Criterion, p: &Peers) {
    let mut g = c.benchmark_group("handle/post_join_one");
    g.throughput(Throughput::Elements(1));
    for (name, op) in ONE {
        g.bench_function(*name, |b| b.iter(|| op(p)));
    }
    g.finish();
}

fn post_join_batch(c: &mut Criterion, p: &Peers, n: usize) {
    let mut g = c.benchmark_group("handle/post_join_batch");
    g.throughput(Throughput::Elements(n as u64));
    let expect = n as u64;
    g.bench_function("taskrunner_post_with_result_join", |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    p.pool
                        .post_task_with_result(TaskTraits::default(), || black_box(1_u64))
                        .unwrap()
                })
                .collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, expect);
        })
    });
    g.bench_function("taskrunner_post_task_no_handle", |b| {
        // The same tasks without handles (a shared countdown instead): what the result path
        // adds to a plain post.
        let left = Arc::new(AtomicU64::new(0));
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        b.iter(|| {
            left.store(n as u64, Ordering::SeqCst);
            for _ in 0..n {
                let (left, tx) = (left.clone(), tx.clone());
                p.pool
                    .post_task(TaskTraits::default(), move || {
                        if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                            tx.send(()).unwrap();
                        }
                    })
                    .unwrap();
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("taskrunner_await_current_thread", |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    p.pool
                        .post_task_with_result(TaskTraits::default(), || black_box(1_u64))
                        .unwrap()
                })
                .collect();
            let sum = p.tokio_local.block_on(async move {
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            });
            assert_eq!(sum, expect);
        })
    });
    g.bench_function("tokio_spawn_block_on", |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..n)
                .map(|_| p.tokio.spawn(async { black_box(1_u64) }))
                .collect();
            let sum = p.tokio.block_on(async move {
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            });
            assert_eq!(sum, expect);
        })
    });
    g.bench_function("rayon_spawn_crossbeam_channel", |b| {
        b.iter(|| {
            let rxs: Vec<_> = (0..n)
                .map(|_| {
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    p.rayon.spawn(move || tx.send(black_box(1_u64)).unwrap());
                    rx
                })
                .collect();
            let sum: u64 = rxs.into_iter().map(|rx| rx.recv().unwrap()).sum();
            assert_eq!(sum, expect);
        })
    });
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let test_mode = args.iter().any(|a| a == "--test");
    let p = Peers::new();
    let n = if test_mode {
        100
    } else {
        env_usize("BENCH_HANDLE_N", 20_000)
    };
    alloc_report(&p, n);
    let batch = env_usize("BENCH_HANDLE_BATCH", 1_000);
    let mut c = common::criterion();
    post_join_one(&mut c, &p);
    post_join_batch(&mut c, &p, batch);
    c.final_summary();
}
