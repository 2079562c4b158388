//! Exports a pool's metrics, named runners included, to the [`metrics`] facade: the way a
//! service hands its figures to Prometheus, StatsD or any other exporter that plugs in behind
//! the facade. Here a small recorder keeps the last value of each metric and prints them.
//!
//! `cargo run --example export_metrics`
#![allow(clippy::disallowed_types)] // the recorder's own std lock

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use taskrunner::metrics::{MetricKind, PoolMetrics};
use taskrunner::{PostTask, TaskTraits, ThreadPool};

/// Hands every figure of a snapshot to the `metrics` facade: counters as absolute values,
/// gauges as they stand.
fn export(m: &PoolMetrics) {
    m.for_each(|name, kind, value| match kind {
        MetricKind::Counter => metrics::counter!(format!("taskrunner.{name}")).absolute(value),
        MetricKind::Gauge => metrics::gauge!(format!("taskrunner.{name}")).set(value as f64),
    });
}

/// A recorder that keeps the last value of each metric. A real service installs an exporter's
/// recorder instead (once, with `metrics::set_global_recorder`).
#[derive(Clone, Default)]
struct LastValues(Arc<Mutex<BTreeMap<String, f64>>>);

struct Slot {
    name: String,
    values: LastValues,
}

impl Slot {
    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let mut values = self.values.0.lock().unwrap();
        let v = values.entry(self.name.clone()).or_insert(0.0);
        *v = f(*v);
    }
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        self.update(|v| v + value as f64);
    }
    fn absolute(&self, value: u64) {
        self.update(|_| value as f64);
    }
}

impl GaugeFn for Slot {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

impl LastValues {
    fn slot(&self, key: &Key) -> Arc<Slot> {
        Arc::new(Slot {
            name: key.name().to_owned(),
            values: self.clone(),
        })
    }
}

impl Recorder for LastValues {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn main() {
    let pool = ThreadPool::builder()
        .max_workers(2)
        .sample_task_times(1)
        .build()
        .expect("build the pool");
    let db = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .named("db");
    let images = pool
        .create_task_runner(TaskTraits::default())
        .named("images");
    for i in 0..50 {
        db.post_task(move || {
            std::hint::black_box(i);
        })
        .unwrap();
        images
            .post_task(move || {
                std::hint::black_box(i * 2);
            })
            .unwrap();
    }
    let failed = images.post_task_with_result(|| -> u32 { panic!("a corrupt image") });
    assert!(failed.unwrap().join().is_err());
    db.flush().unwrap();
    images.flush();

    let recorder = LastValues::default();
    metrics::with_local_recorder(&recorder, || export(&pool.metrics()));

    let values = recorder.0.lock().unwrap();
    for (name, value) in values.iter() {
        println!("{name:<48} {value}");
    }
    assert_eq!(values["taskrunner.runner.db.ran"], 50.0);
    assert_eq!(values["taskrunner.runner.images.ran"], 51.0);
    assert_eq!(values["taskrunner.runner.images.panicked"], 1.0);
    // 101 tasks, and the empty task that `db.flush()` queued behind them (the pool counts it
    // like any task; the runner's own figures do not).
    assert_eq!(values["taskrunner.tasks_started"], 102.0);
    assert_eq!(values["taskrunner.tasks_panicked"], 1.0);
}
