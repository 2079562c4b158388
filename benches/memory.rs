//! Memory per post and per idle sequence, measured with a counting global allocator (a custom
//! `main`, not criterion: these are counts, not timings).
//!
//! * **allocations per post** and **heap bytes per queued task**: the destination is blocked
//!   (a first task waits on a channel), then `BENCH_MEM_N` non-zero-sized closures (16-byte
//!   capture) are posted and the allocator's counters are compared before/after. Round 1 starts
//!   from empty queues (includes queue growth); round 2 posts again to the same, now drained,
//!   destination (queue capacity is already there: the steady state).
//! * **heap bytes per idle sequence**: live bytes after creating `BENCH_MEM_N` strands, divided
//!   by `BENCH_MEM_N` ("fresh"), and again after each strand has run one task and gone idle
//!   ("after 1 task": what a strand keeps once used; posted 64 strands at a time so that shared
//!   queues stay small and only per-strand memory is counted).
//!
//! Bytes are the sizes requested from the allocator (`Layout::size`), without malloc's own
//! per-block overhead; a `realloc` counts as one allocation. The counters are process-wide, so
//! every pool is quiescent (workers blocked or idle) while a window is open.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// The counting allocator is the one place in the crate that needs `unsafe`: `GlobalAlloc` is an
// unsafe trait and `System`'s methods are unsafe fns. Cargo.toml sets `unsafe_code = "deny"`
// rather than "forbid" precisely so that this bench (and nothing else) can opt out here.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use common::{
    rayon_pool, tokio_runtime, workers, Executor, Floor, Latch, RayonSpawn, RayonSpawnFifo, Strand,
    StrandExecutor, Taskrunner, ThreadPoolCrate, TokioActors, TokioSpawn, TokioSpawnBlocking,
};

/// Counts allocation events and live requested bytes, then defers to `System`.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

#[inline]
fn grew(bytes: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    LIVE.fetch_add(bytes as i64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator returns exactly what `System` returns and upholds `GlobalAlloc`'s contract as
// `System` does; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller guarantees `layout` has a non-zero size (GlobalAlloc::alloc).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`: the caller guarantees a non-zero size.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`,
        // which did the actual allocation) with this same `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` was allocated by this allocator (so by `System`)
        // with `layout`, and that `new_size` is non-zero and does not overflow when rounded
        // up to `layout.align()`; `System.realloc` has exactly that contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy)]
struct Snap {
    allocs: u64,
    live: i64,
}

fn snap() -> Snap {
    Snap {
        allocs: ALLOCS.load(Ordering::SeqCst),
        live: LIVE.load(Ordering::SeqCst),
    }
}

/// Per-item deltas between two snapshots.
#[derive(Clone, Copy)]
struct PerItem {
    allocs: f64,
    bytes: f64,
}

fn per_item(before: Snap, after: Snap, n: usize) -> PerItem {
    PerItem {
        allocs: (after.allocs - before.allocs) as f64 / n as f64,
        bytes: (after.live - before.live) as f64 / n as f64,
    }
}

/// A gate that blocks the tasks it is given until it is opened.
struct Gate {
    started: (
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    ),
    release: (
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    ),
}

impl Gate {
    fn new() -> Self {
        Gate {
            started: crossbeam_channel::unbounded(),
            release: crossbeam_channel::unbounded(),
        }
    }

    /// A closure that reports it started, then blocks until `open`.
    fn blocker(&self) -> impl FnOnce() + Send + 'static {
        let started = self.started.0.clone();
        let release = self.release.1.clone();
        move || {
            started.send(()).unwrap();
            release
                .recv_timeout(Duration::from_secs(60))
                .expect("gate never opened");
        }
    }

    fn wait_started(&self, k: usize) {
        for _ in 0..k {
            self.started
                .1
                .recv_timeout(Duration::from_secs(60))
                .expect("blocker never started");
        }
    }

    fn open(&self, k: usize) {
        for _ in 0..k {
            self.release.0.send(()).unwrap();
        }
    }
}

/// The posted closure: non-zero-sized (16-byte capture), so every peer must box it.
#[inline]
fn payload(i: usize, latch: &'static Latch) -> impl FnOnce() + Send + 'static {
    let x = [i as u32; 2];
    move || {
        black_box(x);
        latch.count_down();
    }
}

struct Row {
    peer: String,
    round1: PerItem,
    round2: PerItem,
}

/// Parallel posts while all `w` workers are blocked.
fn parallel_posts<E: Executor>(e: &E, w: usize, n: usize) -> Row {
    let latch = Latch::leak();
    let mut rounds = [PerItem {
        allocs: 0.0,
        bytes: 0.0,
    }; 2];
    for r in &mut rounds {
        let gate = Gate::new();
        for _ in 0..w {
            e.post(gate.blocker());
        }
        gate.wait_started(w);
        latch.reset(n);
        let before = snap();
        for i in 0..n {
            e.post(payload(i, latch));
        }
        let after = snap();
        *r = per_item(before, after, n);
        gate.open(w);
        latch.wait();
    }
    Row {
        peer: e.name().to_owned(),
        round1: rounds[0],
        round2: rounds[1],
    }
}

/// Posts to one blocked strand.
fn strand_posts<E: StrandExecutor>(e: &E, n: usize) -> Row {
    let s = e.strand();
    let latch = Latch::leak();
    let mut rounds = [PerItem {
        allocs: 0.0,
        bytes: 0.0,
    }; 2];
    for r in &mut rounds {
        let gate = Gate::new();
        s.post(gate.blocker());
        gate.wait_started(1);
        latch.reset(n);
        let before = snap();
        for i in 0..n {
            s.post(payload(i, latch));
        }
        let after = snap();
        *r = per_item(before, after, n);
        gate.open(1);
        latch.wait();
    }
    Row {
        peer: e.name().to_owned(),
        round1: rounds[0],
        round2: rounds[1],
    }
}

/// Bytes per idle strand: fresh, and after each ran one task.
fn idle_strands<E: StrandExecutor>(e: &E, n: usize) -> (String, f64, f64, f64) {
    let mut v: Vec<E::S> = Vec::with_capacity(n);
    let latch = Latch::leak();
    // Let any earlier activity settle before opening the window.
    std::thread::sleep(Duration::from_millis(50));
    let before = snap();
    for _ in 0..n {
        v.push(e.strand());
    }
    std::thread::sleep(Duration::from_millis(50));
    let fresh = snap();
    // In small batches, so that shared structures (a ready queue holding every strand at
    // once) do not grow and get counted as per-strand bytes.
    for batch in v.chunks(64) {
        latch.reset(batch.len());
        for s in batch {
            s.post(move || latch.count_down());
        }
        latch.wait();
    }
    std::thread::sleep(Duration::from_millis(50));
    let used = snap();
    let allocs = (fresh.allocs - before.allocs) as f64 / n as f64;
    let b_fresh = (fresh.live - before.live) as f64 / n as f64;
    let b_used = (used.live - before.live) as f64 / n as f64;
    drop(v);
    (e.name().to_owned(), allocs, b_fresh, b_used)
}

fn print_rows(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| peer | allocs/post (round 1) | bytes/queued task (round 1) | allocs/post (round 2, steady) | bytes/queued task (round 2) |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.4} | {:.1} | {:.4} | {:.1} |",
            r.peer, r.round1.allocs, r.round1.bytes, r.round2.allocs, r.round2.bytes
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let n = common::env_usize("BENCH_MEM_N", 10_000);
    let w = workers();
    println!("memory: N = {n}, workers = {w}, closure capture = 16 bytes");

    let rows = vec![
        strand_posts(&Taskrunner::new(w), n),
        strand_posts(&Floor::new(w), n),
        strand_posts(&TokioActors(tokio_runtime(w)), n),
    ];
    print_rows("posts to one blocked strand", &rows);

    let rows = vec![
        parallel_posts(&Taskrunner::new(w), w, n),
        parallel_posts(&Floor::new(w), w, n),
        parallel_posts(&RayonSpawn(rayon_pool(w)), w, n),
        parallel_posts(&RayonSpawnFifo(rayon_pool(w)), w, n),
        parallel_posts(&TokioSpawn(tokio_runtime(w)), w, n),
        parallel_posts(&TokioSpawnBlocking(tokio_runtime(w)), w, n),
        parallel_posts(&ThreadPoolCrate::new(w), w, n),
    ];
    print_rows("parallel posts, every worker blocked", &rows);

    println!("\n### idle strands\n");
    println!(
        "| peer | allocs/strand | bytes/idle strand (fresh) | bytes/idle strand (after 1 task) |"
    );
    println!("|---|---:|---:|---:|");
    let idle = [
        idle_strands(&Taskrunner::new(w), n),
        idle_strands(&Floor::new(w), n),
        idle_strands(&TokioActors(tokio_runtime(w)), n),
    ];
    for (name, allocs, fresh, used) in idle {
        println!("| {name} | {allocs:.2} | {fresh:.1} | {used:.1} |");
    }
}
