//! `SortKey`: the order in which ready sources compete for workers.

use std::cmp::Ordering;

use crate::traits::TaskPriority;

/// "Greater runs first": a higher priority wins; at equal priority the *older* next task wins
/// (smaller `order`). Sequences are keyed by the age of their next task, not sent to the back
/// of a line, so the pool approximates one global FIFO per priority (Chromium's rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub(crate) priority: TaskPriority,
    pub(crate) order: u64,
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.order.cmp(&self.order))
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_wins_regardless_of_age() {
        let old_low = SortKey {
            priority: TaskPriority::BestEffort,
            order: 1,
        };
        let new_high = SortKey {
            priority: TaskPriority::UserBlocking,
            order: 100,
        };
        assert!(new_high > old_low);
    }

    #[test]
    fn older_wins_at_equal_priority() {
        let a = SortKey {
            priority: TaskPriority::UserVisible,
            order: 5,
        };
        let b = SortKey {
            priority: TaskPriority::UserVisible,
            order: 6,
        };
        assert!(a > b);
        assert_eq!(a.cmp(&a), Ordering::Equal);
    }
}
