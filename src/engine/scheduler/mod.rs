//! The scheduler's data: [`Work`] entries (what ready queues hold) and [`Sequence`]s (tasks
//! that run one at a time, in posting order).
//!
//! Data flow: a post makes a `Work` entry and puts it into the ready queue of its priority
//! (`worker/group.rs`): a one-off task as it is, a sequenced task stamped with its position in
//! its sequence. A worker takes the entry and asks its sequence whether it may run it now
//! ([`Sequence::begin`]); after the run, the sequence hands on the next entry if it is already
//! waiting ([`Sequence::finish`]).

mod sequence;
mod work;

pub(crate) use sequence::{Begin, Home, ParallelRunner, Sequence};
pub(crate) use work::Work;
