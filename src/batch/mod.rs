//! Batched I/O: tasks run until they need I/O, every request made in that CPU
//! phase joins one batch, the batch goes to the dispatcher in one call, and each task resumes
//! with its own response. The public type is [`Batcher`]; its docs hold the dispatch rule.
//!
//! ```
//! use taskrunner::batch::Batcher;
//! use taskrunner::ThreadPool;
//!
//! let pool = ThreadPool::builder().max_workers(2).build().unwrap();
//! let doubler = Batcher::builder()
//!     .pool(&pool)
//!     .build(|xs: Vec<u32>| Ok::<_, String>(xs.into_iter().map(|x| 2 * x).collect()));
//! assert_eq!(doubler.call(21).join().unwrap(), 42);
//! ```
//!
//! Data flow: `call` → the open batch (`batcher.rs`, one lock; a sequenced caller also leaves a
//! marker on its sequence) → closed by a trigger (full, idle flush once the markers ran and no
//! delivery is waking tasks, max-wait timer, explicit flush) → an in-flight slot (`Semaphore::acquire_then`) →
//! one dispatch task or future (`dispatch.rs`) → response `i` to request `i`'s promise; a
//! request a retrying dispatcher sends back (`Answer::Retry`) re-enters the open batch after
//! its retry wait (a timer on the delay thread), with its promise and attempt count.
//! `place.rs` says where dispatches run, `stats.rs` counts, `error.rs` names batch failures.

mod batcher;
mod builder;
mod dispatch;
mod error;
mod place;
mod stats;

pub use batcher::Batcher;
pub use builder::BatcherBuilder;
pub use dispatch::Answer;
pub use error::BatchError;
pub use place::DispatchRunner;
pub use stats::BatchStats;
