//! The scheduler's data: sequences, their sort keys, and the ready queue of sequences.
//!
//! Data flow: a post appends to a [`Sequence`]; only the idle → queued transition puts the
//! sequence into the thread group's [`ReadyQueue`] (keyed by [`SortKey`]: priority, then the
//! age of the sequence's next task). A worker pops the best sequence, runs one task, and the
//! sequence's [`AfterRun`] tells it whether to re-queue (with a fresh key) or let it go idle.

mod queue;
mod sequence;
mod sort_key;

pub(crate) use queue::{OneOff, ReadyQueue, Source};
#[cfg(all(test, loom))]
pub(crate) use sequence::State;
pub(crate) use sequence::{AfterRun, Home, Push, Sequence};
pub(crate) use sort_key::SortKey;
