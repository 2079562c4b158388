//! What a pool can tell about itself: [`PoolMetrics`] from
//! [`ThreadPool::metrics`](crate::ThreadPool::metrics), each named runner's [`RunnerMetrics`],
//! and the distributions of task times ([`TaskTimes`]).
//!
//! Snapshots are pulled: take one whenever you want to print, log or export the figures (a
//! repeating task does it every few seconds). Counting is always on and costs the pool one
//! uncontended atomic add per task; a named runner's tasks cost one more small allocation and
//! a few atomic adds; the time histograms are fed by one task in 64
//! ([`ThreadPoolBuilder::sample_task_times`](crate::ThreadPoolBuilder::sample_task_times)).
//!
//! # Exporting
//!
//! [`PoolMetrics::for_each`] walks every figure as a name, a kind (a counter that only grows,
//! or a gauge) and a value, so one loop feeds any metrics system. With the
//! [`metrics`](https://docs.rs/metrics) crate's facade, for example:
//!
//! ```ignore
//! use taskrunner::metrics::MetricKind;
//! let m = pool.metrics();
//! m.for_each(|name, kind, value| match kind {
//!     MetricKind::Counter => metrics::counter!(format!("taskrunner.{name}")).absolute(value),
//!     MetricKind::Gauge => metrics::gauge!(format!("taskrunner.{name}")).set(value as f64),
//! });
//! ```
//!
//! `examples/export_metrics.rs` runs this against a recorder and prints what it received.
//!
//! ```
//! use taskrunner::metrics::MetricKind;
//! use taskrunner::{PostTask, TaskTraits, ThreadPool};
//! let pool = ThreadPool::builder().max_workers(2).build().unwrap();
//! let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
//! db.post_task_with_result(|| ()).unwrap().join().unwrap();
//! let mut seen = Vec::new();
//! pool.metrics().for_each(|name, kind, value| seen.push((name.to_owned(), kind, value)));
//! assert!(seen.contains(&("tasks_started".to_owned(), MetricKind::Counter, 1)));
//! assert!(seen.contains(&("runner.db.ran".to_owned(), MetricKind::Counter, 1)));
//! ```

pub use crate::engine::metrics::{MetricKind, PoolMetrics};
pub use crate::engine::runner_stats::RunnerMetrics;
pub use crate::engine::times::TaskTimes;
