//! The delay manager's heap: `std::collections::BinaryHeap` (what `src/engine/delay/heap.rs` uses) vs
//! the `priority-queue` crate, for the delay manager's pattern: push N `(run_at, post number)`
//! keys with random run times, then pop them all in (run_at, post number) order.
//!
//! Two entry shapes: keys only, and keys plus a 48-byte payload moving with the entry (about
//! what a `Delayed` carries besides its key: boxed closure, location, order, destination).
//! `BENCH_HEAP_N` entries (default 100 000).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::XorShift;
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use priority_queue::PriorityQueue;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;
type Key = (Instant, u64);

fn keys(n: usize) -> Vec<Key> {
    let base = Instant::now();
    let mut rng = XorShift::new(0x4EA9);
    (0..n as u64)
        .map(|seq| (base + Duration::from_micros(rng.below_incl(50_000)), seq))
        .collect()
}

/// Checks the pop order; every peer pays for it equally.
#[inline]
fn check(prev: &mut Option<Key>, k: Key) {
    if let Some(p) = *prev {
        assert!(p < k, "heap popped out of order");
    }
    *prev = Some(k);
}

fn keys_only(g: &mut Group<'_>, ks: &[Key]) {
    g.bench_function("binary_heap", |b| {
        b.iter(|| {
            let mut h: BinaryHeap<Reverse<Key>> = BinaryHeap::new();
            for &k in ks {
                h.push(Reverse(k));
            }
            let mut prev = None;
            while let Some(Reverse(k)) = h.pop() {
                check(&mut prev, k);
            }
            black_box(prev)
        })
    });
    g.bench_function("priority_queue", |b| {
        b.iter(|| {
            // The crate's queue is keyed by an item (the post number) with a priority.
            let mut h: PriorityQueue<u64, Reverse<Key>> = PriorityQueue::new();
            for &k in ks {
                h.push(k.1, Reverse(k));
            }
            let mut prev = None;
            while let Some((_, Reverse(k))) = h.pop() {
                check(&mut prev, k);
            }
            black_box(prev)
        })
    });
}

#[derive(Clone, Copy, Debug)]
struct Payload([u64; 6]);

/// A heap entry ordered by key only (reversed: std's max-heap pops the earliest).
#[derive(Debug)]
struct Entry {
    key: Key,
    payload: Payload,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.key.cmp(&self.key)
    }
}

/// The item for `priority-queue`: identity is the post number; the payload rides along.
#[derive(Debug)]
struct Item {
    seq: u64,
    payload: Payload,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        self.seq == o.seq
    }
}
impl Eq for Item {}
impl Hash for Item {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.seq.hash(h);
    }
}

fn with_payload(g: &mut Group<'_>, ks: &[Key]) {
    g.bench_function("binary_heap_payload48", |b| {
        b.iter(|| {
            let mut h: BinaryHeap<Entry> = BinaryHeap::new();
            for &k in ks {
                h.push(Entry {
                    key: k,
                    payload: Payload([k.1; 6]),
                });
            }
            let mut prev = None;
            let mut sum = 0u64;
            while let Some(e) = h.pop() {
                check(&mut prev, e.key);
                sum = sum.wrapping_add(e.payload.0[5]);
            }
            black_box(sum)
        })
    });
    g.bench_function("priority_queue_payload48", |b| {
        b.iter(|| {
            let mut h: PriorityQueue<Item, Reverse<Key>> = PriorityQueue::new();
            for &k in ks {
                h.push(
                    Item {
                        seq: k.1,
                        payload: Payload([k.1; 6]),
                    },
                    Reverse(k),
                );
            }
            let mut prev = None;
            let mut sum = 0u64;
            while let Some((item, Reverse(k))) = h.pop() {
                check(&mut prev, k);
                sum = sum.wrapping_add(item.payload.0[5]);
            }
            black_box(sum)
        })
    });
}

fn main() {
    let n = common::env_usize("BENCH_HEAP_N", 100_000);
    let ks = keys(n);
    let mut c = common::criterion();
    let mut g = c.benchmark_group(format!("delay_heap/push_pop_{n}"));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(n as u64));
    keys_only(&mut g, &ks);
    with_payload(&mut g, &ks);
    g.finish();
    c.final_summary();
}
