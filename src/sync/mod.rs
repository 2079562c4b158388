//! Synchronisation for tasks: an async mutex, a semaphore whose waits hold no worker, wait
//! groups and single-flight calls.
//!
//! ```
//! use taskrunner::sync::WaitGroup;
//! use taskrunner::{PostTask, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().max_workers(2).build().unwrap();
//! let runner = pool.create_task_runner(TaskTraits::default());
//! let wg = WaitGroup::new();
//! wg.add(3);
//! for _ in 0..3 {
//!     let wg = wg.clone();
//!     runner.post_task(move || wg.done()).unwrap();
//! }
//! wg.wait();
//! assert_eq!(wg.count(), 0);
//! ```

pub(crate) mod async_mutex;
pub(crate) mod semaphore;
pub(crate) mod single_flight;
pub(crate) mod wait_group;

pub use async_mutex::{AsyncMutex, AsyncMutexGuard, AsyncMutexLock};
pub use semaphore::{Permit, Semaphore};
pub use single_flight::SingleFlight;
pub use wait_group::{WaitGroup, WaitGroupFuture, WaitGroupGuard};
