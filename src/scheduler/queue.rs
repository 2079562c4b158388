//! `ReadyQueue`: the thread group's queue of ready sources, best first.
//!
//! Sequences wait in a binary max-heap keyed by [`SortKey`]. Immediate one-off parallel tasks
//! wait in one FIFO per priority instead: they arrive in (nearly) `order`, so each FIFO is
//! sorted by key and a deque gives O(1) push/pop where a heap would cost O(log n). `pop`
//! compares the heap top with the three FIFO fronts, which is the order one heap over all of
//! them would give (up to posts from different threads reaching the group in a slightly
//! different order than they drew their numbers, which only blurs age order among posts made
//! at the same instant). Delayed one-off tasks are keyed by when they ripened, which is not
//! monotonic with the FIFO, so they go into the heap as single-task sources.
//! Not thread-safe by design: it lives inside the group's `Synced`.

use std::collections::{BinaryHeap, VecDeque};

use crate::scheduler::{Sequence, SortKey};
use crate::sync::Arc;
use crate::task::Task;
use crate::traits::{TaskPriority, TaskTraits};

/// A one-off parallel task and its traits.
#[derive(Debug)]
pub(crate) struct OneOff {
    pub(crate) task: Task,
    pub(crate) traits: TaskTraits,
}

impl OneOff {
    fn key(&self) -> SortKey {
        SortKey {
            priority: self.traits.get_priority(),
            order: self.task.order,
        }
    }
}

/// Something a worker can take from the ready queue.
#[derive(Debug)]
pub(crate) enum Source {
    Sequence(Arc<Sequence>),
    Single(OneOff),
}

#[derive(Debug)]
struct Entry {
    key: SortKey,
    source: Source,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

#[derive(Debug, Default)]
pub(crate) struct ReadyQueue {
    heap: BinaryHeap<Entry>,
    fifo: [VecDeque<OneOff>; 3],
    counts: [usize; 3],
}

/// Where the best source is.
#[derive(Clone, Copy)]
enum Best {
    Heap,
    Fifo(usize),
}

impl ReadyQueue {
    pub(crate) fn push_sequence(&mut self, key: SortKey, seq: Arc<Sequence>) {
        self.counts[key.priority.index()] += 1;
        self.heap.push(Entry {
            key,
            source: Source::Sequence(seq),
        });
    }

    /// An immediate one-off: appended to its priority's FIFO.
    pub(crate) fn push_one_off(&mut self, one: OneOff) {
        let p = one.traits.get_priority().index();
        self.counts[p] += 1;
        self.fifo[p].push_back(one);
    }

    /// A ripe delayed one-off: keyed into the heap.
    pub(crate) fn push_ripe_one_off(&mut self, one: OneOff) {
        let key = one.key();
        self.counts[key.priority.index()] += 1;
        self.heap.push(Entry {
            key,
            source: Source::Single(one),
        });
    }

    fn best(&self) -> Option<(Best, SortKey)> {
        let mut best: Option<(Best, SortKey)> = self.heap.peek().map(|e| (Best::Heap, e.key));
        for (p, q) in self.fifo.iter().enumerate().rev() {
            if let Some(front) = q.front() {
                let k = front.key();
                if best.is_none_or(|(_, b)| k > b) {
                    best = Some((Best::Fifo(p), k));
                }
            }
        }
        best
    }

    /// The key of the best source, if any.
    pub(crate) fn best_key(&self) -> Option<SortKey> {
        self.best().map(|(_, k)| k)
    }

    /// The priority of the best source, if any.
    pub(crate) fn peek_priority(&self) -> Option<TaskPriority> {
        self.best().map(|(_, k)| k.priority)
    }

    /// Removes and returns the best source with the priority it was keyed at.
    pub(crate) fn pop(&mut self) -> Option<(Source, TaskPriority)> {
        let (where_, key) = self.best()?;
        self.counts[key.priority.index()] -= 1;
        let source = match where_ {
            Best::Heap => self.heap.pop().expect("peeked").source,
            Best::Fifo(p) => Source::Single(self.fifo[p].pop_front().expect("peeked")),
        };
        Some((source, key.priority))
    }

    /// Number of queued sources of priority `p`.
    pub(crate) fn count(&self, p: TaskPriority) -> usize {
        self.counts[p.index()]
    }

    pub(crate) fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-keys `seq` at priority `p` if it is queued (O(n): priority updates are rare).
    /// Returns `true` if it was found.
    pub(crate) fn update_sequence_priority(
        &mut self,
        seq: &Arc<Sequence>,
        p: TaskPriority,
    ) -> bool {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        let mut found = false;
        for e in &mut entries {
            if let Source::Sequence(s) = &e.source {
                if Arc::ptr_eq(s, seq) && e.key.priority != p {
                    self.counts[e.key.priority.index()] -= 1;
                    self.counts[p.index()] += 1;
                    e.key.priority = p;
                    found = true;
                }
            }
        }
        self.heap = BinaryHeap::from(entries);
        found
    }

    /// Seeded test mode: removes a source chosen by `r` uniformly among those of the highest
    /// priority present (a sequence is one source, so its FIFO order is kept; priorities still
    /// dominate). O(n): test-only.
    #[cfg(feature = "test-util")]
    pub(crate) fn pop_random(&mut self, r: u64) -> Option<(Source, TaskPriority)> {
        let p = self.peek_priority()?;
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        let in_heap: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].key.priority == p)
            .collect();
        let total = in_heap.len() + self.fifo[p.index()].len();
        let k = (r % total as u64) as usize;
        let source = if k < in_heap.len() {
            let e = entries.swap_remove(in_heap[k]);
            e.source
        } else {
            let one = self.fifo[p.index()]
                .remove(k - in_heap.len())
                .expect("index within the FIFO");
            Source::Single(one)
        };
        self.heap = BinaryHeap::from(entries);
        self.counts[p.index()] -= 1;
        Some((source, p))
    }

    /// Gives back the memory of a burst: once the queue is empty, buffers larger than a small
    /// working size are released (called when a worker finds nothing to do, so never on a
    /// busy path).
    pub(crate) fn shrink_if_empty(&mut self) {
        const KEEP: usize = 64;
        if !self.is_empty() {
            return;
        }
        if self.heap.capacity() > KEEP {
            self.heap = BinaryHeap::new();
        }
        for q in &mut self.fifo {
            if q.capacity() > KEEP {
                *q = VecDeque::new();
            }
        }
    }

    /// Takes every queued source (shutdown completion).
    pub(crate) fn drain(&mut self) -> Vec<Source> {
        let mut out: Vec<Source> = self.heap.drain().map(|e| e.source).collect();
        for q in &mut self.fifo {
            out.extend(q.drain(..).map(Source::Single));
        }
        self.counts = [0; 3];
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Home;

    fn one(p: TaskPriority) -> OneOff {
        OneOff {
            task: Task::new(
                Box::new(|| {}) as crate::task::BoxedFn,
                std::panic::Location::caller(),
            ),
            traits: TaskTraits::new().priority(p),
        }
    }

    fn seq(p: TaskPriority) -> Arc<Sequence> {
        Arc::new(Sequence::new(TaskTraits::new().priority(p), Home::Pool))
    }

    #[test]
    fn fifo_and_heap_interleave_by_age() {
        let mut q = ReadyQueue::default();
        let a = one(TaskPriority::UserVisible); // oldest
        let s = seq(TaskPriority::UserVisible);
        let k = SortKey {
            priority: TaskPriority::UserVisible,
            order: crate::task::next_id(),
        };
        let b = one(TaskPriority::UserVisible); // newest
        let a_order = a.task.order;
        q.push_one_off(a);
        q.push_one_off(b);
        q.push_sequence(k, s);
        assert_eq!(q.len(), 3);
        match q.pop().unwrap().0 {
            Source::Single(o) => assert_eq!(o.task.order, a_order),
            Source::Sequence(_) => panic!("oldest one-off should win"),
        }
        assert!(matches!(q.pop().unwrap().0, Source::Sequence(_)));
        assert!(matches!(q.pop().unwrap().0, Source::Single(_)));
        assert!(q.pop().is_none());
    }

    #[test]
    fn priority_dominates_age() {
        let mut q = ReadyQueue::default();
        q.push_one_off(one(TaskPriority::BestEffort));
        q.push_one_off(one(TaskPriority::UserVisible));
        q.push_one_off(one(TaskPriority::UserBlocking));
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, p)| p)).collect();
        assert_eq!(
            order,
            vec![
                TaskPriority::UserBlocking,
                TaskPriority::UserVisible,
                TaskPriority::BestEffort
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn counts_track_priorities_and_drain_empties() {
        let mut q = ReadyQueue::default();
        q.push_one_off(one(TaskPriority::BestEffort));
        q.push_ripe_one_off(one(TaskPriority::BestEffort));
        q.push_sequence(
            SortKey {
                priority: TaskPriority::UserBlocking,
                order: 1,
            },
            seq(TaskPriority::UserBlocking),
        );
        assert_eq!(q.count(TaskPriority::BestEffort), 2);
        assert_eq!(q.count(TaskPriority::UserBlocking), 1);
        assert_eq!(q.drain().len(), 3);
        assert!(q.is_empty());
        assert_eq!(q.count(TaskPriority::BestEffort), 0);
    }
}
