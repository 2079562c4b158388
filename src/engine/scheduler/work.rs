//! `Work`: one entry of a ready queue.

use std::fmt;

use crate::base::shim::Arc;
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::scheduler::Sequence;
use crate::engine::task::Task;

/// Bit 31 of `stamp`: the task was posted with a delay (once shutdown has started it never
/// runs, whatever its shutdown behaviour: delayed tasks never block shutdown).
const DELAYED: u32 = 1 << 31;

/// One entry of a ready queue: 48 bytes.
///
/// | kind | `task` | `seq` | `meta` |
/// |---|---|---|---|
/// | one-off | the task | `None` | its packed traits |
/// | parallel runner's | the task | the runner's identity (`Sequence::new_parallel`) | its packed traits |
/// | sequenced (direct) | the task | its sequence | its position in the sequence |
/// | ticket (held sequence) | `None` | its sequence | the sequence's epoch when issued |
pub(crate) struct Work {
    pub(crate) task: Option<Task>,
    pub(crate) seq: Option<Arc<Sequence>>,
    pub(crate) meta: u32,
    stamp: u32,
}

impl Work {
    #[inline]
    pub(crate) fn one_off(task: Task, traits: TaskTraits, delayed: bool) -> Self {
        Work {
            task: Some(task),
            seq: None,
            meta: traits.pack() as u32,
            stamp: if delayed { DELAYED } else { 0 },
        }
    }

    /// A task of a parallel runner: a one-off entry that carries the runner's identity in the
    /// sequence slot (see `Sequence::new_parallel`).
    #[inline]
    pub(crate) fn of_runner(task: Task, runner: Arc<Sequence>, delayed: bool) -> Self {
        Work {
            task: Some(task),
            meta: runner.traits().pack() as u32,
            seq: Some(runner),
            stamp: if delayed { DELAYED } else { 0 },
        }
    }

    #[inline]
    pub(crate) fn sequenced(task: Task, seq: Arc<Sequence>, pos: u32, delayed: bool) -> Self {
        Work {
            task: Some(task),
            seq: Some(seq),
            meta: pos,
            stamp: if delayed { DELAYED } else { 0 },
        }
    }

    #[inline]
    pub(crate) fn ticket(seq: Arc<Sequence>, epoch: u32) -> Self {
        Work {
            task: None,
            seq: Some(seq),
            meta: epoch,
            stamp: 0,
        }
    }

    /// A held task taken out of its sequence's queue, to run (the runner keeps the sequence).
    #[inline]
    pub(crate) fn held_run(task: Task, delayed: bool) -> Self {
        Work {
            task: Some(task),
            seq: None,
            meta: 0,
            stamp: if delayed { DELAYED } else { 0 },
        }
    }

    /// The ticket, now carrying the task it stands for (and whether that task was delayed).
    #[inline]
    pub(crate) fn with_task(mut self, task: Task, delayed: bool) -> Self {
        self.task = Some(task);
        if delayed {
            self.stamp |= DELAYED;
        }
        self
    }

    /// A one-off's traits (meaningless for sequenced entries: use the sequence's).
    #[inline]
    pub(crate) fn one_off_traits(&self) -> TaskTraits {
        TaskTraits::unpack(self.meta as u8)
    }

    /// The priority this entry is queued at.
    #[inline]
    pub(crate) fn priority(&self) -> TaskPriority {
        match &self.seq {
            Some(s) => s.priority(),
            None => self.one_off_traits().priority,
        }
    }

    /// The task was posted with a delay.
    #[inline]
    pub(crate) fn was_delayed(&self) -> bool {
        self.stamp & DELAYED != 0
    }

    /// Marks when the entry became ready, in microseconds on `epoch_us` (only while tracing
    /// listens: the common path does not read the clock).
    #[inline]
    pub(crate) fn set_ready_at(&mut self, us: u32) {
        self.stamp = (self.stamp & DELAYED) | (us & !DELAYED);
    }

    /// When it became ready (0: not recorded).
    #[inline]
    pub(crate) fn ready_at(&self) -> u32 {
        self.stamp & !DELAYED
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Work")
            .field("task", &self.task)
            .field("sequence", &self.seq.as_ref().map(|s| s.token))
            .field("meta", &self.meta)
            .field("delayed", &self.was_delayed())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_six_words() {
        assert_eq!(std::mem::size_of::<Work>(), 48);
    }

    #[test]
    fn one_off_traits_and_flags_round_trip() {
        let t = TaskTraits::new()
            .priority(TaskPriority::BestEffort)
            .may_block(true);
        let mut w = Work::one_off(
            Task::new(Box::new(|| {}), std::panic::Location::caller()),
            t,
            true,
        );
        assert_eq!(w.one_off_traits(), t);
        assert_eq!(w.priority(), TaskPriority::BestEffort);
        assert!(w.was_delayed());
        w.set_ready_at(12345);
        assert_eq!(w.ready_at(), 12345);
        assert!(w.was_delayed());
    }
}
