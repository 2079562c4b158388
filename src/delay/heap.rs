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
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::deadline::Deadline;

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
    /// When it ripens; [`Deadline::NEVER`] (a delay too large for `Instant`) never does.
    pub(crate) run_at: Deadline,
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
    run_at: Deadline,
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
    /// Entries moved to another slot by a compaction, by post number: an id still names the
    /// slot it was given, so `cancel` looks here when that slot no longer holds it. Empty
    /// unless a compaction moved entries that are still pending.
    moved: HashMap<u64, usize>,
    /// Entries in `slots` (live keys in `heap`).
    live: usize,
}

/// Capacity (entries) kept however empty the heap gets; above it, storage shrinks once it is
/// less than a quarter used, so memory follows the live entries after a burst.
const KEEP_CAPACITY: usize = 64;

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

    /// The earliest run time (`None` if nothing is pending, or only tasks that never ripen).
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        self.heap.peek().and_then(|k| k.run_at.instant())
    }

    /// Moves every task with `run_at <= now` into `out`, in (run_at, seq) order.
    pub(crate) fn pop_ripe(&mut self, now: Instant, out: &mut Vec<Delayed>) {
        while self.heap.peek().is_some_and(|k| k.run_at.is_reached(now)) {
            let key = self.heap.pop().expect("peeked");
            if let Some(d) = self.take_slot(key.slot, key.seq) {
                out.push(d);
            }
        }
        self.drop_dead_top();
        self.shrink_if_sparse();
    }

    /// The slot that holds the entry `id` now, if it is still pending.
    fn locate(&self, id: DelayId) -> Option<usize> {
        let holds = |slot: usize| {
            self.slots
                .get(slot)
                .is_some_and(|e| e.as_ref().is_some_and(|d| d.seq == id.seq))
        };
        if holds(id.slot) {
            return Some(id.slot);
        }
        self.moved.get(&id.seq).copied().filter(|&slot| holds(slot))
    }

    /// `true` if the entry `id` is still waiting in the heap.
    #[cfg(feature = "test-util")]
    pub(crate) fn contains(&self, id: DelayId) -> bool {
        self.locate(id).is_some()
    }

    /// Removes a pending task by id and returns it (for the caller to drop outside the lock);
    /// `None` if it is no longer pending.
    pub(crate) fn cancel(&mut self, id: DelayId) -> Option<Delayed> {
        let slot = self.locate(id)?;
        let d = self.take_slot(slot, id.seq)?;
        self.drop_dead_top();
        let dead = self.heap.len() - self.live;
        if dead > COMPACT_MIN && dead > self.live {
            let slots = &self.slots;
            self.heap.retain(|k| is_live(slots, k));
        }
        self.shrink_if_sparse();
        Some(d)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Takes everything (shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<Delayed> {
        self.heap = BinaryHeap::new();
        self.free = Vec::new();
        self.moved = HashMap::new();
        self.live = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Gives memory back once storage is mostly empty: when fewer than a quarter of the slots
    /// hold entries, the live entries are moved to the front of a smaller slab (recorded in
    /// `moved`, so their ids stay valid) and the heap is rebuilt without tombstones. O(n), but
    /// only after at least 3n removals since the slab last had n slots: O(1) amortised.
    fn shrink_if_sparse(&mut self) {
        if self.slots.len() <= KEEP_CAPACITY || self.live * 4 >= self.slots.len() {
            if self.live == 0 && self.slots.capacity() > KEEP_CAPACITY {
                self.slots = Vec::new();
                self.free = Vec::new();
                self.heap = BinaryHeap::new();
                self.moved = HashMap::new();
            }
            return;
        }
        let old = std::mem::take(&mut self.slots);
        let before = std::mem::take(&mut self.moved);
        let mut slots = Vec::with_capacity((self.live * 2).max(KEEP_CAPACITY));
        let mut moved = HashMap::new();
        for (was, entry) in old.into_iter().enumerate() {
            let Some(d) = entry else { continue };
            let slot = slots.len();
            // An entry needs a record when its slot changes, and keeps one if an earlier
            // compaction moved it (its id still names the slot it was first given).
            if slot != was || before.contains_key(&d.seq) {
                moved.insert(d.seq, slot);
            }
            slots.push(Some(d));
        }
        self.heap = slots
            .iter()
            .enumerate()
            .filter_map(|(slot, e)| {
                e.as_ref().map(|d| Key {
                    run_at: d.run_at,
                    seq: d.seq,
                    slot,
                })
            })
            .collect();
        self.slots = slots;
        self.free = Vec::new();
        self.moved = moved;
    }

    /// Bytes of storage reserved (unit tests of the shrinking).
    #[cfg(test)]
    fn reserved(&self) -> usize {
        self.slots.capacity() + self.free.capacity() + self.heap.capacity() + self.moved.capacity()
    }

    fn take_slot(&mut self, slot: usize, seq: u64) -> Option<Delayed> {
        let entry = self.slots.get_mut(slot)?;
        if entry.as_ref().is_none_or(|d| d.seq != seq) {
            return None;
        }
        let d = entry.take();
        self.free.push(slot);
        self.live -= 1;
        if !self.moved.is_empty() {
            self.moved.remove(&seq);
        }
        if self.live == 0 {
            // Everything left in the heap is a tombstone: start afresh (`shrink_if_sparse`
            // gives the capacity back).
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
            run_at: Deadline::at(run_at),
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
    fn never_entries_sort_last_and_never_ripen() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        let never = Delayed {
            run_at: Deadline::NEVER,
            ..d(t0, 1)
        };
        let (id, earliest) = h.push(never);
        assert!(earliest);
        assert_eq!(h.next_run_at(), None, "nothing to wake up for");
        h.push(d(t0 + ms(5), 2));
        assert_eq!(h.next_run_at(), Some(t0 + ms(5)));
        let mut out = Vec::new();
        h.pop_ripe(t0 + Duration::from_secs(100 * 365 * 24 * 3600), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(h.len(), 1);
        assert!(h.cancel(id).is_some(), "a never-due entry can be cancelled");
    }

    #[test]
    fn storage_shrinks_after_a_burst() {
        let t0 = Instant::now();
        let mut h = DelayHeap::default();
        let ids: Vec<_> = (0..100_000u64)
            .map(|i| h.push(d(t0 + ms(1_000 + i), i)).0)
            .collect();
        let peak = h.reserved();
        // Cancel all but a handful, in an order that leaves holes everywhere.
        for (i, id) in ids.iter().enumerate() {
            if i % 20_000 != 7 {
                assert!(h.cancel(*id).is_some());
            }
        }
        assert_eq!(h.len(), 5);
        assert!(
            h.reserved() * 100 < peak,
            "storage stayed large: {} of {peak}",
            h.reserved()
        );
        for (i, id) in ids.iter().enumerate() {
            if i % 20_000 == 7 {
                assert!(h.cancel(*id).is_some(), "survivors keep their ids");
            }
        }
        assert!(h.reserved() <= 3 * KEEP_CAPACITY);
        // Pops give memory back too.
        for i in 0..50_000u64 {
            h.push(d(t0 + ms(i), i));
        }
        let mut out = Vec::new();
        h.pop_ripe(t0 + ms(60_000), &mut out);
        assert_eq!(out.len(), 50_000);
        assert!(h.reserved() <= 3 * KEEP_CAPACITY);
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
