//! The delay manager: one min-heap of delayed tasks ordered by (run time, post number), one
//! service thread that sleeps until the earliest run time and forwards ripe tasks to the tail
//! of their destination (a sequence, or the parallel queue).
//!
//! Why a binary heap and not a timing wheel: ties must break by posting order and the number of
//! pending delayed tasks is modest (thousands, not millions of timeouts), so a heap gives exact
//! FIFO tie-breaks at O(log n); tokio's wheel exists for millions of 1 ms-resolution timeouts.
//!
//! Pending tasks are removable by id ([`DelayId`]; timers use it so that a stopped timer's
//! entry and closure are freed at once). Why a std `BinaryHeap` of small keys plus a slab, and
//! not the `priority-queue` crate's indexed heap: push and pop need no hashing (measured in
//! `benches/delay_heap.rs`, numbers in docs/performance.md), and a removal is O(1), leaving a
//! tombstone key that is compacted away before tombstones outnumber live entries (`heap.rs`).

mod heap;
mod manager;

pub(crate) use heap::{DelayHeap, DelayId, Delayed, Destination};
pub(crate) use manager::DelayManager;
