//! Memory comes back after a burst, without shutdown: the delay manager's storage after many
//! delayed tasks are cancelled, the ready queue after a burst of one-off tasks, and per-strand
//! queues after many sequences ran. Live heap bytes are counted by a global allocator in this
//! test binary (one test function, so nothing else allocates concurrently), and compared with
//! what the same pool held before the burst.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// A counting global allocator needs `unsafe` (`GlobalAlloc` is an unsafe trait); the library
// itself has none of it.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use support::{wait_until, Blocker, Latch};
use taskrunner::PostTask;
use taskrunner::{TaskTraits, ThreadPool};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator returns exactly what `System` returns and upholds `GlobalAlloc`'s contract as
// `System` does; the counter is a plain atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl comment).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl comment).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Live bytes above `before` once the pool's threads have tidied up: memory comes back
/// shortly after a burst (the delay thread rebuilds its heap when woken), not necessarily at
/// the very moment the last entry goes. Polls for up to a few seconds.
fn kept_after(before: i64) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let kept = live() - before;
        if kept < MIB || std::time::Instant::now() >= deadline {
            return kept;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const MIB: i64 = 1 << 20;

/// Waits until the pool's workers have parked (an idle worker gives back the ready queue's
/// buffers before it parks).
fn settle(pool: &ThreadPool) {
    // One round trip through every worker, then a moment for them to park.
    for _ in 0..pool.max_workers() * 2 {
        pool.post_task_with_result(TaskTraits::default(), || ())
            .unwrap()
            .join()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn memory_comes_back_after_bursts_without_shutdown() {
    let scale = support::scale().min(1.0);
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    settle(&pool);

    // 1. Many delayed tasks, all cancelled.
    let n = (100_000.0 * scale) as usize;
    let before = live();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            pool.post_delayed_task_with_result(
                TaskTraits::default(),
                Duration::from_secs(3600),
                move || i,
            )
            .unwrap()
        })
        .collect();
    let peak = live() - before;
    for h in &handles {
        assert!(h.cancel());
    }
    drop(handles);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    let kept = kept_after(before);
    assert!(
        kept < MIB,
        "after {n} delayed tasks were cancelled {kept} bytes stay (peak {peak})"
    );

    // 2. The same with a few long-lived survivors spread over the burst.
    let before = live();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            pool.post_delayed_task_with_result(
                TaskTraits::default(),
                Duration::from_secs(3600),
                move || i,
            )
            .unwrap()
        })
        .collect();
    let mut survivors = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if i % (n / 5) == 3 {
            survivors.push(h);
        } else {
            assert!(h.cancel());
        }
    }
    assert_eq!(pool.pending_delayed_tasks(), survivors.len());
    let kept = kept_after(before);
    assert!(kept < MIB, "5 survivors keep {kept} bytes");
    for h in &survivors {
        assert!(
            h.cancel(),
            "survivors can still be cancelled by their handles"
        );
    }
    drop(survivors);

    // 3. A burst of one-off tasks queued behind busy workers.
    let n = (250_000.0 * scale) as usize;
    settle(&pool);
    let before = live();
    let blockers = [Blocker::new(), Blocker::new()];
    for b in &blockers {
        pool.post_task(TaskTraits::default(), b.task()).unwrap();
    }
    for b in &blockers {
        b.wait_started();
    }
    let done = Latch::new(n);
    for _ in 0..n {
        let d = done.clone();
        pool.post_task(TaskTraits::default(), move || d.count_down())
            .unwrap();
    }
    let peak = live() - before;
    for b in &blockers {
        b.release();
    }
    done.wait();
    drop(done);
    settle(&pool);
    let kept = kept_after(before);
    assert!(
        kept < MIB,
        "after a burst of {n} one-off tasks {kept} bytes stay (peak {peak})"
    );

    // 4. Many sequences, each with a burst of its own, then idle (the runners are kept).
    let seqs: Vec<_> = (0..(1000.0 * scale) as usize + 10)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    settle(&pool);
    let before = live();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    let blocker2 = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker2.task())
        .unwrap();
    blocker.wait_started();
    blocker2.wait_started();
    let per = 100;
    let done = Latch::new(seqs.len() * per);
    for s in &seqs {
        for _ in 0..per {
            let d = done.clone();
            s.post_task(move || d.count_down()).unwrap();
        }
    }
    let peak = live() - before;
    blocker.release();
    blocker2.release();
    done.wait();
    drop(done);
    settle(&pool);
    let kept = kept_after(before);
    assert!(
        kept < MIB,
        "after {} sequences ran {per} tasks each and went idle, {kept} bytes stay (peak {peak})",
        seqs.len()
    );
    wait_until("the pool is quiet", || pool.pending_delayed_tasks() == 0);
}
