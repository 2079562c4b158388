//! The delay manager: one min-heap of delayed tasks ordered by (run time, post number), one
//! service thread that sleeps until the earliest run time and forwards ripe tasks to the tail
//! of their destination (a sequence, or the parallel queue).
//!
//! Why a binary heap and not a timing wheel: ties must break by posting order and the number of
//! pending delayed tasks is modest (thousands, not millions of timeouts), so a heap gives exact
//! FIFO tie-breaks at O(log n); tokio's wheel exists for millions of 1 ms-resolution timeouts.
//! Why `BinaryHeap` and not the `priority-queue` crate: measured in `benches/delay_heap.rs`;
//! the std heap needs no hashing and no per-entry index (numbers in docs/performance.md).

mod heap;
mod manager;

pub(crate) use heap::{DelayHeap, Delayed, Destination};
pub(crate) use manager::DelayManager;
