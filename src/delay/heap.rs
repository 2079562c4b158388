//! `DelayHeap`: delayed tasks, earliest (run time, post number) first. Pure data; unit-tested.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::scheduler::Sequence;
use crate::sync::Arc;
use crate::task::Task;
use crate::traits::TaskTraits;

/// Where a ripe task goes.
#[derive(Debug)]
pub(crate) enum Destination {
    /// The tail of this sequence.
    Sequence(Arc<Sequence>),
    /// The parallel queue, as a one-off task with these traits.
    Parallel(TaskTraits),
}

/// A delayed task waiting in the heap.
#[derive(Debug)]
pub(crate) struct Delayed {
    pub(crate) run_at: Instant,
    /// Post order: the tie-breaker for equal run times.
    pub(crate) seq: u64,
    pub(crate) task: Task,
    pub(crate) dest: Destination,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.run_at == other.run_at && self.seq == other.seq
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Reversed, so that std's max-heap pops the earliest (run_at, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .run_at
            .cmp(&self.run_at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
pub(crate) struct DelayHeap {
    heap: BinaryHeap<Delayed>,
}

impl DelayHeap {
    /// Adds a task; returns `true` if it became the earliest (the waiter must re-arm).
    pub(crate) fn push(&mut self, d: Delayed) -> bool {
        let earlier = self.heap.peek().is_none_or(|top| d.run_at < top.run_at);
        self.heap.push(d);
        earlier
    }

    /// The earliest run time.
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        self.heap.peek().map(|d| d.run_at)
    }

    /// Moves every task with `run_at <= now` into `out`, in (run_at, seq) order.
    pub(crate) fn pop_ripe(&mut self, now: Instant, out: &mut Vec<Delayed>) {
        while self.heap.peek().is_some_and(|d| d.run_at <= now) {
            out.push(self.heap.pop().expect("peeked"));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Takes everything (shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<Delayed> {
        std::mem::take(&mut self.heap).into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn d(run_at: Instant, seq: u64) -> Delayed {
        Delayed {
            run_at,
            seq,
            task: Task::new(
                Box::new(|| {}) as crate::task::BoxedFn,
                std::panic::Location::caller(),
            ),
            dest: Destination::Parallel(TaskTraits::default()),
        }
    }

    #[test]
    fn pops_in_run_time_then_post_order() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        assert!(h.push(d(t0 + Duration::from_millis(20), 1)));
        assert!(h.push(d(t0 + Duration::from_millis(10), 3)));
        assert!(!h.push(d(t0 + Duration::from_millis(10), 2)));
        assert!(!h.push(d(t0 + Duration::from_millis(30), 0)));
        assert_eq!(h.next_run_at(), Some(t0 + Duration::from_millis(10)));
        let mut out = Vec::new();
        h.pop_ripe(t0 + Duration::from_millis(20), &mut out);
        let order: Vec<u64> = out.iter().map(|x| x.seq).collect();
        assert_eq!(order, vec![2, 3, 1]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn nothing_is_early() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        h.push(d(t0 + Duration::from_millis(5), 1));
        let mut out = Vec::new();
        h.pop_ripe(t0 + Duration::from_millis(4), &mut out);
        assert!(out.is_empty());
        h.pop_ripe(t0 + Duration::from_millis(5), &mut out);
        assert_eq!(out.len(), 1);
        assert!(h.take_all().is_empty());
    }
}
