//! The delay manager: delayed tasks by (run time, post number), and one service thread that
//! sleeps until the earliest run time and forwards ripe tasks to the tail of their destination
//! (a sequence, or the ready queue) through a callback the pool gives it.
//!
//! Why a binary heap and not a timing wheel: ties must break by posting order and pending
//! delayed tasks number thousands, not millions of 1 ms-resolution timeouts, so a heap gives
//! exact FIFO tie-breaks at O(log n); tokio's wheel exists for the latter.
//!
//! Pending tasks are removable by id ([`DelayId`]; timers and handles use it so that a stopped
//! timer's or cancelled handle's entry is freed at once). See `heap.rs` for the layout and
//! `manager.rs` for who holds what.

mod heap;
mod manager;

pub(crate) use heap::{DelayId, Delayed, Destination, Key, KeyHeap, Pending};
#[cfg(all(test, loom))]
pub(crate) use manager::loom_service;
pub(crate) use manager::DelayManager;
