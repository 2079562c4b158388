//! The delay manager's data: the pending entries by post number, each removable by its
//! [`DelayId`], and a heap of small [`Key`]s ordered by (run time, post number). Pure data;
//! unit-tested.
//!
//! The entries (task, destination) live in [`Pending`]; the heap holds only `(run_at, seq)`
//! keys (a flexible entry's key has the top bit of `seq` set), so sifting moves 24-byte keys, and removing an entry by id is O(1): take it out of
//! `Pending` and leave its key behind as a *tombstone*, skipped when it comes up. The heap
//! drops tombstones whenever they outnumber live keys; `Pending` gives memory back when it is
//! mostly empty.
//!
//! An id is the post number alone, handed out before the entry reaches the service thread, so
//! a post never waits for storage. Looking one up hashes it (one multiplication); that happens
//! on the service thread and in cancellations, never on the posting path. The heap itself is
//! std's `BinaryHeap`: `benches/delay_heap.rs` compares it with the `priority-queue` crate's
//! indexed heap, which hashes on every push and pop.
//!
//! Precise and flexible keys live in two heaps, so that the service thread can sleep until the
//! earlier of the first precise run time and the first flexible run time plus the leeway (all
//! flexible entries share one leeway, so the earliest run time also has the earliest latest
//! time), and then take everything ripe from both.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::shim::Arc;
use crate::base::traits::TaskTraits;
use crate::engine::scheduler::Sequence;
use crate::engine::task::Task;

/// Capacity (entries) kept however empty `Pending` gets.
const KEEP_CAPACITY: usize = 64;

/// Where a ripe task goes.
#[derive(Debug)]
pub(crate) enum Destination {
    /// The tail of this sequence.
    Sequence(Arc<Sequence>),
    /// The ready queue, as a one-off task with these traits.
    Parallel(TaskTraits),
    /// The ready queue, as a task of this parallel runner (not in flight until it ripens).
    Runner(Arc<crate::engine::scheduler::ParallelRunner>),
    /// Run on the forwarding thread itself (the delay service thread, or a test environment's
    /// driver): short timer callbacks such as deadlines, which must fire even when every
    /// worker is busy. Never used for user tasks.
    Inline,
}

/// A delayed task waiting for its run time.
#[derive(Debug)]
pub(crate) struct Delayed {
    /// When it ripens; [`Deadline::NEVER`] (a delay too large for `Instant`) never does.
    pub(crate) run_at: Deadline,
    /// Post order: the tie-breaker for equal run times.
    pub(crate) seq: u64,
    pub(crate) task: Task,
    pub(crate) dest: Destination,
    /// [`DelayPolicy::FlexibleNoSooner`](crate::DelayPolicy): may run up to the leeway late.
    pub(crate) flexible: bool,
}

impl Destination {
    /// Whether a task bound here may run up to the leeway late (its runner's delay policy).
    pub(crate) fn is_flexible(&self) -> bool {
        use crate::base::traits::DelayPolicy::FlexibleNoSooner;
        match self {
            Destination::Sequence(s) => s.traits().delay_policy == FlexibleNoSooner,
            Destination::Parallel(t) => t.delay_policy == FlexibleNoSooner,
            Destination::Runner(r) => r.seq.traits().delay_policy == FlexibleNoSooner,
            Destination::Inline => false,
        }
    }
}

/// In a key's `seq`: the entry is flexible (post numbers never reach this bit).
const FLEXIBLE: u64 = 1 << 63;

/// Names one pending delayed task. Stale ids (the task ripened, was cancelled, or the manager
/// was emptied) are harmless: cancelling one finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DelayId {
    seq: u64,
}

impl DelayId {
    pub(crate) fn new(seq: u64) -> Self {
        DelayId { seq }
    }
}

/// A heap key. Ordered reversed, so that std's max-heap pops the earliest (run_at, seq) first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) run_at: Deadline,
    seq: u64,
}

impl Key {
    fn of(d: &Delayed) -> Key {
        Key {
            run_at: d.run_at,
            seq: d.seq | if d.flexible { FLEXIBLE } else { 0 },
        }
    }

    pub(crate) fn id(&self) -> DelayId {
        DelayId {
            seq: self.seq & !FLEXIBLE,
        }
    }

    fn is_flexible(&self) -> bool {
        self.seq & FLEXIBLE != 0
    }
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

/// Pending entries by post number: a hash map with a multiplicative hash of the (unique,
/// mostly consecutive) post number, so an id needs no slot of its own and stays valid however
/// the storage is rearranged. Only the service thread and cancellations touch it, never a
/// post (see `manager.rs`).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    map: HashMap<u64, Delayed, BuildHasherDefault<PostNumberHasher>>,
}

/// Hashes a post number by one multiplication (Fibonacci hashing): consecutive numbers spread
/// over every bucket, and the high bits (the table's tag) are well mixed.
#[derive(Debug, Default)]
pub(crate) struct PostNumberHasher(u64);

impl Hasher for PostNumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Pending {
    /// Stores an entry; returns its heap key.
    pub(crate) fn insert(&mut self, d: Delayed) -> Key {
        let key = Key::of(&d);
        let old = self.map.insert(d.seq, d);
        debug_assert!(old.is_none(), "post numbers are unique");
        key
    }

    /// `true` if entry `id` is still pending.
    pub(crate) fn contains(&self, id: DelayId) -> bool {
        self.map.contains_key(&id.seq)
    }

    /// Removes entry `id` and returns it (for the caller to drop outside any lock).
    pub(crate) fn take(&mut self, id: DelayId) -> Option<Delayed> {
        let d = self.map.remove(&id.seq)?;
        self.shrink_if_sparse();
        Some(d)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Takes every entry (shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<Delayed> {
        std::mem::take(&mut self.map).into_values().collect()
    }

    /// Keys of every live entry (to rebuild a heap without tombstones).
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.map.values().map(Key::of)
    }

    /// Gives memory back once the table is mostly empty (amortised O(1) per removal).
    fn shrink_if_sparse(&mut self) {
        if self.map.capacity() > KEEP_CAPACITY && self.map.len() * 4 < self.map.capacity() {
            self.map.shrink_to(KEEP_CAPACITY.max(self.map.len() * 2));
        }
    }

    /// Storage reserved, in entries (unit tests).
    #[cfg(test)]
    fn reserved(&self) -> usize {
        self.map.capacity()
    }
}

/// Keys by (run time, post number), with tombstones skipped on the way out: precise and
/// flexible keys in two heaps.
#[derive(Debug, Default)]
pub(crate) struct KeyHeap {
    precise: BinaryHeap<Key>,
    flexible: BinaryHeap<Key>,
}

impl KeyHeap {
    pub(crate) fn push(&mut self, k: Key) {
        if k.is_flexible() {
            self.flexible.push(k);
        } else {
            self.precise.push(k);
        }
    }

    pub(crate) fn extend(&mut self, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            self.push(k);
        }
    }

    /// Drops dead keys from the tops, so that each top (if any) is live.
    pub(crate) fn settle(&mut self, pending: &Pending) {
        for heap in [&mut self.precise, &mut self.flexible] {
            while heap.peek().is_some_and(|k| !pending.contains(k.id())) {
                heap.pop();
            }
        }
        if self.len() > 2 * pending.len() + KEEP_CAPACITY {
            // Tombstones dominate: rebuild from the live entries.
            self.clear();
            self.extend(pending.keys());
        }
    }

    /// The earliest live run time (call [`settle`](Self::settle) first).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn next_run_at(&self) -> Deadline {
        let first = |h: &BinaryHeap<Key>| h.peek().map_or(Deadline::NEVER, |k| k.run_at);
        first(&self.precise).min(first(&self.flexible))
    }

    /// When the service thread must be awake next: the earliest precise run time, or the
    /// earliest flexible run time plus `leeway`, whichever comes first (call
    /// [`settle`](Self::settle) first).
    pub(crate) fn next_wake(&self, leeway: Duration) -> Deadline {
        let precise = self.precise.peek().map_or(Deadline::NEVER, |k| k.run_at);
        let flexible = self
            .flexible
            .peek()
            .map_or(Deadline::NEVER, |k| k.run_at.later_by(leeway));
        precise.min(flexible)
    }

    /// Moves every entry due at `now` out of `pending` into `out`, in (run_at, seq) order.
    pub(crate) fn pop_ripe(&mut self, pending: &mut Pending, now: Instant, out: &mut Vec<Delayed>) {
        let start = out.len();
        let mut heaps_with_ripe = 0;
        for heap in [&mut self.precise, &mut self.flexible] {
            let before = out.len();
            while heap.peek().is_some_and(|k| k.run_at.is_reached(now)) {
                let k = heap.pop().expect("peeked");
                if let Some(d) = pending.take(k.id()) {
                    out.push(d);
                }
            }
            if out.len() > before {
                heaps_with_ripe += 1;
            }
            if heap.capacity() > KEEP_CAPACITY && heap.len() * 4 < heap.capacity() {
                heap.shrink_to(KEEP_CAPACITY.max(heap.len() * 2));
            }
        }
        if heaps_with_ripe == 2 {
            // Each heap gave its entries in order: merge the two runs.
            out[start..].sort_by_key(|d| (d.run_at, d.seq));
        }
        self.settle(pending);
    }

    pub(crate) fn clear(&mut self) {
        self.precise = BinaryHeap::new();
        self.flexible = BinaryHeap::new();
    }

    /// Keys held (live ones and tombstones).
    pub(crate) fn len(&self) -> usize {
        self.precise.len() + self.flexible.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn d(run_at: Instant, seq: u64) -> Delayed {
        Delayed {
            run_at: Deadline::at(run_at),
            seq,
            task: Task::new(
                Box::new(|| {}) as crate::engine::task::BoxedFn,
                std::panic::Location::caller(),
            ),
            dest: Destination::Parallel(TaskTraits::default()),
            flexible: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn flex(run_at: Instant, seq: u64) -> Delayed {
        Delayed {
            flexible: true,
            ..d(run_at, seq)
        }
    }

    #[test]
    fn flexible_keys_wake_at_their_latest_time_and_merge_in_order() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let leeway = ms(8);
        push(&mut s, &mut h, flex(t0 + ms(10), 0));
        push(&mut s, &mut h, flex(t0 + ms(12), 1));
        h.settle(&s);
        // Flexible only: awake by the first run time plus the leeway.
        assert_eq!(h.next_wake(leeway), Deadline::at(t0 + ms(18)));
        assert_eq!(h.next_run_at(), Deadline::at(t0 + ms(10)));
        // A precise key due earlier than that comes first.
        push(&mut s, &mut h, d(t0 + ms(15), 2));
        assert_eq!(h.next_wake(leeway), Deadline::at(t0 + ms(15)));
        push(&mut s, &mut h, d(t0 + ms(11), 3));
        assert_eq!(h.next_wake(leeway), Deadline::at(t0 + ms(11)));
        // Both heaps ripe: one run in (run time, post) order; nothing before its run time.
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(12), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![0, 3, 1]);
        assert_eq!(h.next_wake(leeway), Deadline::at(t0 + ms(15)));
        h.pop_ripe(&mut s, t0 + ms(15), &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(h.next_wake(leeway), Deadline::NEVER);
    }

    #[test]
    fn a_cancelled_flexible_key_is_a_tombstone() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let id = push(&mut s, &mut h, flex(t0 + ms(1), 7));
        push(&mut s, &mut h, flex(t0 + ms(2), 8));
        assert!(s.take(id).is_some());
        h.settle(&s);
        assert_eq!(h.next_wake(ms(1)), Deadline::at(t0 + ms(3)));
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(5), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![8]);
    }

    fn push(pending: &mut Pending, heap: &mut KeyHeap, e: Delayed) -> DelayId {
        let k = pending.insert(e);
        heap.push(k);
        k.id()
    }

    #[test]
    fn pops_in_run_time_then_post_order() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        push(&mut s, &mut h, d(t0 + ms(20), 1));
        push(&mut s, &mut h, d(t0 + ms(10), 3));
        push(&mut s, &mut h, d(t0 + ms(10), 2));
        push(&mut s, &mut h, d(t0 + ms(30), 0));
        h.settle(&s);
        assert_eq!(h.next_run_at(), Deadline::at(t0 + ms(10)));
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(20), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![2, 3, 1]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn nothing_is_early() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        push(&mut s, &mut h, d(t0 + ms(5), 1));
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(4), &mut out);
        assert!(out.is_empty());
        h.pop_ripe(&mut s, t0 + ms(5), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn cancel_removes_the_entry_and_the_top_stays_live() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let a = push(&mut s, &mut h, d(t0 + ms(10), 1));
        let b = push(&mut s, &mut h, d(t0 + ms(20), 2));
        let c = push(&mut s, &mut h, d(t0 + ms(20), 3));
        assert_eq!(s.take(b).map(|x| x.seq), Some(2));
        assert!(s.take(b).is_none(), "a second cancel finds nothing");
        assert_eq!(s.take(a).map(|x| x.seq), Some(1));
        h.settle(&s);
        assert_eq!(h.next_run_at(), Deadline::at(t0 + ms(20)));
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(100), &mut out);
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![3]);
        assert!(s.take(c).is_none(), "a popped entry cannot be cancelled");
        assert_eq!(h.next_run_at(), Deadline::NEVER);
    }

    #[test]
    fn a_stale_id_does_not_answer() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let keep = push(&mut s, &mut h, d(t0 + ms(50), 1));
        let old = push(&mut s, &mut h, d(t0 + ms(10), 2));
        assert!(s.take(old).is_some());
        let new = push(&mut s, &mut h, d(t0 + ms(10), 3));
        assert!(
            s.take(old).is_none(),
            "the stale id must not remove the new entry"
        );
        assert_eq!(s.take(new).map(|x| x.seq), Some(3));
        assert_eq!(s.take(keep).map(|x| x.seq), Some(1));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn never_entries_sort_last_and_never_ripen() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let never = push(
            &mut s,
            &mut h,
            Delayed {
                run_at: Deadline::NEVER,
                ..d(t0, 1)
            },
        );
        h.settle(&s);
        assert_eq!(h.next_run_at(), Deadline::NEVER, "nothing to wake up for");
        push(&mut s, &mut h, d(t0 + ms(5), 2));
        assert_eq!(h.next_run_at(), Deadline::at(t0 + ms(5)));
        let mut out = Vec::new();
        h.pop_ripe(
            &mut s,
            t0 + Duration::from_secs(100 * 365 * 24 * 3600),
            &mut out,
        );
        assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(s.len(), 1);
        assert!(
            s.take(never).is_some(),
            "a never-due entry can be cancelled"
        );
    }

    #[test]
    fn tombstones_are_compacted() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        push(&mut s, &mut h, d(t0 + ms(1_000_000), 0));
        for i in 1..10_000u64 {
            let id = push(&mut s, &mut h, d(t0 + ms(1_000 + i), i));
            assert!(s.take(id).is_some());
            h.settle(&s);
            assert!(
                h.len() <= 2 * s.len() + KEEP_CAPACITY + 1,
                "{} keys",
                h.len()
            );
        }
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(2_000_000), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn storage_shrinks_after_a_burst_and_survivors_keep_their_ids() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
        let ids: Vec<_> = (0..100_000u64)
            .map(|i| push(&mut s, &mut h, d(t0 + ms(1_000 + i), i)))
            .collect();
        let peak = s.reserved();
        for (i, id) in ids.iter().enumerate() {
            if i % 20_000 != 7 {
                assert!(s.take(*id).is_some());
            }
        }
        assert_eq!(s.len(), 5);
        assert!(s.reserved() * 100 < peak, "{} of {peak}", s.reserved());
        // The heap still holds the survivors' keys after the table shrank.
        let mut out = Vec::new();
        h.pop_ripe(&mut s, t0 + ms(1_000 + 20_007), &mut out);
        assert_eq!(
            out.iter().map(|x| x.seq).collect::<Vec<_>>(),
            vec![7, 20_007]
        );
        for (i, id) in ids.iter().enumerate() {
            if i % 20_000 == 7 && i > 20_007 {
                assert!(s.take(*id).is_some(), "survivors keep their ids");
            }
        }
        assert_eq!(s.len(), 0);
        assert!(s.reserved() <= 2 * KEEP_CAPACITY);
    }

    #[test]
    fn interleaved_cancel_and_pop_match_a_model() {
        let t0 = Instant::now();
        let (mut s, mut h) = (Pending::default(), KeyHeap::default());
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
            let id = push(&mut s, &mut h, d(at, seq));
            model.push((at, seq, id));
            match next() % 4 {
                0 if !model.is_empty() => {
                    let i = (next() as usize) % model.len();
                    let (_, sq, id) = model.swap_remove(i);
                    assert_eq!(s.take(id).map(|x| x.seq), Some(sq));
                }
                1 => {
                    now += ms(next() % 20);
                    let mut out = Vec::new();
                    h.pop_ripe(&mut s, now, &mut out);
                    model.sort_by_key(|&(at, sq, _)| (at, sq));
                    let split = model.partition_point(|&(at, _, _)| at <= now);
                    let expect: Vec<u64> = model.drain(..split).map(|(_, sq, _)| sq).collect();
                    assert_eq!(out.iter().map(|x| x.seq).collect::<Vec<_>>(), expect);
                }
                _ => {}
            }
            h.settle(&s);
            assert_eq!(s.len(), model.len());
            assert_eq!(
                h.next_run_at().instant(),
                model.iter().map(|&(at, _, _)| at).min(),
                "the top key must be live"
            );
        }
    }
}
