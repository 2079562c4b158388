//! Task runners: the handles users post through. All are cheap to clone (two reference
//! counts) and `Send + Sync`.
//!
//! | runner | ordering | thread |
//! |---|---|---|
//! | [`TaskRunner`] | none: tasks may run in parallel, in any order | any worker |
//! | [`SequencedTaskRunner`] | posting order, one at a time, happens-before between tasks | any worker (may hop) |
//! | [`SingleThreadTaskRunner`] | as sequenced | always the runner's own dedicated thread |

mod parallel;
mod sequenced;
mod single_thread;
mod updateable;

pub use parallel::TaskRunner;
pub use sequenced::SequencedTaskRunner;
pub use single_thread::SingleThreadTaskRunner;
pub use updateable::UpdateableSequencedTaskRunner;
