//! `DelayHeap`: delayed tasks, earliest (run time, post number) first, each removable by its
//! [`DelayId`]. Pure data; unit-tested.
//!
//! # Layout
//!
//! The entries (closure, destination) live in a slab (`slots`, a `Vec` with a free list); the
//! binary heap holds only small [`Key`]s: `(run_at, seq, slot)`. Sifting moves 32-byte keys, not
//! whole entries, and removing an entry by id is O(1): take it out of its slot and leave its key
//! behind as a *tombstone*. A key is live when its slot holds an entry with the same post number
//! (a slot is reused, a post number never is).
//!
//! Invariants, kept by every method:
//! - the heap's top key is live (or the heap is empty), so [`next_run_at`](DelayHeap::next_run_at)
//!   is exact and the service thread never wakes for a cancelled entry;
//! - tombstones never outnumber live keys by more than [`COMPACT_MIN`]: past that, `cancel`
//!   rebuilds the heap without them (O(n), so O(1) amortised per cancel). Memory therefore stays
//!   proportional to the live entries however often timers are restarted.
//!
//! Why not the `priority-queue` crate's indexed heap: it hashes the id on every push, pop and
//! remove; the slab needs no hashing, and pushes and pops (the common path) stay as cheap as a
//! plain `BinaryHeap`'s (`benches/delay_heap.rs`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::scheduler::Sequence;
use crate::sync::Arc;
use crate::task::Task;
use crate::traits::TaskTraits;

/// Tombstones tolerated before `cancel` considers compacting.
const COMPACT_MIN: usize = 64;

/// Where a ripe task goes.
#[derive(Debug)]
pub(crate) enum Destination {
    /// The tail of this sequence.
    Sequence(Arc<Sequence>),
    /// The parallel queue, as a one-off task with these traits.
    Parallel(TaskTraits),
    /// Run on the forwarding thread itself (the delay service thread, or a test environment's
    /// driver): short timer callbacks such as deadlines, which must fire even when every
    /// worker is busy. Never used for user tasks.
    Inline,
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

/// Names one pending delayed task, for [`DelayHeap::cancel`]. Stale ids (the task ripened,
/// was cancelled, or the heap was emptied) are harmless: cancelling one finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DelayId {
    slot: usize,
    seq: u64,
}

/// A heap key. Ordered reversed, so that std's max-heap pops the earliest (run_at, seq) first.
#[derive(Debug, Clone, Copy)]
struct Key {
    run_at: Instant,
    seq: u64,
    slot: usize,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.run_at == other.run_at && self.seq == other.seq
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .run_at
            .cmp(&self.run_at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
pub(crate) struct DelayHeap {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<Delayed>>,
    /// Empty slots, reused last-freed first.
    free: Vec<usize>,
    /// Entries in `slots` (live keys in `heap`).
    live: usize,
}

impl DelayHeap {
    /// Adds a task; returns its id, and `true` if it became the earliest (the waiter must
    /// re-arm).
    pub(crate) fn push(&mut self, d: Delayed) -> (DelayId, bool) {
        let earlier = self.heap.peek().is_none_or(|top| d.run_at < top.run_at);
        let key = Key {
            run_at: d.run_at,
            seq: d.seq,
            slot: 0,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                debug_assert!(self.slots[i].is_none(), "a free slot is empty");
                self.slots[i] = Some(d);
                i
            }
            None => {
                self.slots.push(Some(d));
                self.slots.len() - 1
            }
        };
        self.heap.push(Key { slot, ..key });
        self.live += 1;
        (DelayId { slot, seq: key.seq }, earlier)
    }

    /// The earliest run time.
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        self.heap.peek().map(|k| k.run_at)
    }

    /// Moves every task with `run_at <= now` into `out`, in (run_at, seq) order.
    pub(crate) fn pop_ripe(&mut self, now: Instant, out: &mut Vec<Delayed>) {
        while self.heap.peek().is_some_and(|k| k.run_at <= now) {
            let key = self.heap.pop().expect("peeked");
            if let Some(d) = self.take_slot(key.slot, key.seq) {
                out.push(d);
            }
        }
        self.drop_dead_top();
    }

    /// `true` if the entry `id` is still waiting in the heap.
    #[cfg(feature = "test-util")]
    pub(crate) fn contains(&self, id: DelayId) -> bool {
        self.slots
            .get(id.slot)
            .is_some_and(|e| e.as_ref().is_some_and(|d| d.seq == id.seq))
    }

    /// Removes a pending task by id and returns it (for the caller to drop outside the lock);
    /// `None` if it is no longer pending.
    pub(crate) fn cancel(&mut self, id: DelayId) -> Option<Delayed> {
        let d = self.take_slot(id.slot, id.seq)?;
        self.drop_dead_top();
        let dead = self.heap.len() - self.live;
        if dead > COMPACT_MIN && dead > self.live {
            let slots = &self.slots;
            self.heap.retain(|k| is_live(slots, k));
        }
        Some(d)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Takes everything (shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<Delayed> {
        self.heap.clear();
        self.free.clear();
        self.live = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    fn take_slot(&mut self, slot: usize, seq: u64) -> Option<Delayed> {
        let entry = self.slots.get_mut(slot)?;
        if entry.as_ref().is_none_or(|d| d.seq != seq) {
            return None;
        }
        let d = entry.take();
        self.free.push(slot);
        self.live -= 1;
        if self.live == 0 {
            // Everything left in the heap is a tombstone: start afresh (capacity is kept).
            self.heap.clear();
            self.slots.clear();
            self.free.clear();
        }
        d
    }

    /// Restores "the top key is live".
    fn drop_dead_top(&mut self) {
        while self.heap.peek().is_some_and(|k| !is_live(&self.slots, k)) {
            self.heap.pop();
        }
    }
}

fn is_live(slots: &[Option<Delayed>], k: &Key) -> bool {
    slots
        .get(k.slot)
        .and_then(Option::as_ref)
        .is_some_and(|d| d.seq == k.seq)
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pops_in_run_time_then_post_order() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        assert!(h.push(d(t0 + ms(20), 1)).1);
        assert!(h.push(d(t0 + ms(10), 3)).1);
        assert!(!h.push(d(t0 + ms(10), 2)).1);
        assert!(!h.push(d(t0 + ms(30), 0)).1);
        assert_eq!(h.next_run_at(), Some(t0 + ms(10)));
        let mut out = Vec::new();
        h.pop_ripe(t0 + ms(20), &mut out);
        let order: Vec<u64> = out.iter().map(|x| x.seq).collect();
        assert_eq!(order, vec![2, 3, 1]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn nothing_is_early() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        h.push(d(t0 + ms(5), 1));
        let mut out = Vec::new();
        h.pop_ripe(t0 + ms(4), &mut out);
        assert!(out.is_empty());
        h.pop_ripe(t0 + ms(5), &mut out);
        assert_eq!(out.len(), 1);
        assert!(h.take_all().is_empty());
    }

    #[test]
    fn cancel_removes_the_entry_and_keeps_the_order_of_the_rest() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        let (a, _) = h.push(d(t0 + ms(10), 1));
        let (b, _) = h.push(d(t0 + ms(20), 2));
        let (c, _) = h.push(d(t0 + ms(20), 3));
        assert_eq!(h.cancel(b).map(|x| x.seq), Some(2));
        assert!(h.cancel(b).is_none(), "a second cancel finds nothing");
        assert_eq!(h.len(), 2);
        // Cancelling the earliest moves the next deadline: the top is always live.
        assert_eq!(h.cancel(a).map(|x| x.seq), Some(1));
        assert_eq!(h.next_run_at(), Some(t0 + ms(20)));
        let mut out = Vec::new();
        h.pop_ripe(t0 + ms(100), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![3]);
        assert!(h.cancel(c).is_none(), "a popped entry cannot be cancelled");
        assert_eq!(h.len(), 0);
        assert_eq!(h.next_run_at(), None);
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_id() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        let (keep, _) = h.push(d(t0 + ms(50), 1));
        let (old, _) = h.push(d(t0 + ms(10), 2));
        assert!(h.cancel(old).is_some());
        let (new, _) = h.push(d(t0 + ms(10), 3));
        assert!(
            h.cancel(old).is_none(),
            "the stale id must not remove the new entry"
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h.cancel(new).map(|x| x.seq), Some(3));
        assert_eq!(h.cancel(keep).map(|x| x.seq), Some(1));
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn tombstones_are_compacted() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        // A far-away live entry keeps the heap non-empty; restarted "timers" churn in front.
        let (_far, _) = h.push(d(t0 + ms(1_000_000), 0));
        for i in 1..10_000u64 {
            let (id, _) = h.push(d(t0 + ms(1_000 + i), i));
            // Cancel an interior entry (not the top): its key stays behind as a tombstone.
            assert!(h.cancel(id).is_some());
            assert!(
                h.heap.len() <= 2 * h.len() + COMPACT_MIN + 1,
                "tombstones piled up: {} keys for {} live entries",
                h.heap.len(),
                h.len()
            );
        }
        assert_eq!(h.len(), 1);
        let mut out = Vec::new();
        h.pop_ripe(t0 + ms(2_000_000), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn interleaved_cancel_and_pop_match_a_model() {
        // A deterministic pseudo-random workload checked against a sorted-vector model.
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        let mut model: Vec<(Instant, u64, DelayId)> = Vec::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = t0;
        for seq in 0..5_000u64 {
            let at = now + ms(next() % 100);
            let (id, _) = h.push(d(at, seq));
            model.push((at, seq, id));
            match next() % 4 {
                0 if !model.is_empty() => {
                    let i = (next() as usize) % model.len();
                    let (_, s, id) = model.swap_remove(i);
                    assert_eq!(h.cancel(id).map(|x| x.seq), Some(s));
                }
                1 => {
                    now += ms(next() % 20);
                    let mut out = Vec::new();
                    h.pop_ripe(now, &mut out);
                    model.sort_by_key(|&(at, s, _)| (at, s));
                    let split = model.partition_point(|&(at, _, _)| at <= now);
                    let expect: Vec<u64> = model.drain(..split).map(|(_, s, _)| s).collect();
                    assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), expect);
                }
                _ => {}
            }
            assert_eq!(h.len(), model.len());
            assert_eq!(
                h.next_run_at(),
                model.iter().map(|&(at, _, _)| at).min(),
                "the top key must be live"
            );
        }
    }
}
