//! Async actor ping-pong: two actors exchange a message back and forth through two
//! runtime-agnostic channels (`tokio::sync::mpsc`, which needs no tokio runtime). One round
//! trip is A → B → A: two sends, two wake-ups, two polls. An iteration of criterion is one round
//! trip, so the reported time is time per round trip.
//!
//! Peers, each with `BENCH_WORKERS` workers (default 2):
//! * `taskrunner_post_future`: each actor is a `post_future` on its own `SequencedTaskRunner`
//!   (every poll is a task of the actor's sequence; a wake posts the next poll).
//! * `tokio_spawn`: the same two async blocks as `tokio::spawn`ed tasks on a multi-thread
//!   runtime.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::{tokio_runtime, workers, Latch};
use criterion::{BenchmarkGroup, SamplingMode};
use taskrunner::PostTask;
use taskrunner::{TaskTraits, ThreadPool};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// A run: how many round trips, and the latch A counts down when it is done.
type Run = (u64, &'static Latch);

/// Actor B: echoes every message back to A.
async fn echo(mut from_a: UnboundedReceiver<u64>, to_a: UnboundedSender<u64>) {
    while let Some(v) = from_a.recv().await {
        if to_a.send(v).is_err() {
            break;
        }
    }
}

/// Actor A: for each run, sends to B and awaits the echo, `n` times.
async fn ping(
    mut runs: UnboundedReceiver<Run>,
    to_b: UnboundedSender<u64>,
    mut from_b: UnboundedReceiver<u64>,
) {
    while let Some((n, done)) = runs.recv().await {
        for i in 0..n {
            to_b.send(i).expect("B is alive");
            let back = from_b.recv().await.expect("B is alive");
            debug_assert_eq!(back, i);
        }
        done.count_down();
    }
}

/// The two actors' channels; `spawn` starts A and B; returns the sender that starts runs.
fn actors(
    spawn: impl Fn(bool, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) -> UnboundedSender<Run> {
    let (to_b, from_a) = unbounded_channel();
    let (to_a, from_b) = unbounded_channel();
    let (runs_tx, runs) = unbounded_channel();
    spawn(false, Box::pin(echo(from_a, to_a)));
    spawn(true, Box::pin(ping(runs, to_b, from_b)));
    runs_tx
}

fn bench(g: &mut Group<'_>, name: &str, runs: &UnboundedSender<Run>) {
    let latch = Latch::leak();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            latch.reset(1);
            let t0 = Instant::now();
            runs.send((iters, latch)).expect("actor A is alive");
            latch.wait();
            t0.elapsed()
        })
    });
}

fn main() {
    let w = workers();
    let mut c = common::criterion();
    let mut g = c.benchmark_group(format!("async_ping_pong/round_trip_w{w}"));
    g.sampling_mode(SamplingMode::Flat);

    {
        let pool = ThreadPool::builder()
            .max_workers(w)
            .thread_name("bench")
            .build()
            .expect("build taskrunner pool");
        let (a, b) = (
            pool.create_sequenced_task_runner(TaskTraits::default()),
            pool.create_sequenced_task_runner(TaskTraits::default()),
        );
        let runs = actors(|is_a, fut| {
            let seq = if is_a { &a } else { &b };
            // The handles are dropped: the actors end when their channels close.
            drop(seq.post_future(fut).expect("post the actor"));
        });
        bench(&mut g, "taskrunner_post_future", &runs);
        drop(runs);
        pool.shutdown();
    }
    {
        let rt = tokio_runtime(w);
        let runs = actors(|_, fut| drop(rt.spawn(fut)));
        bench(&mut g, "tokio_spawn", &runs);
        drop(runs);
    }
    g.finish();
    c.final_summary();
}
