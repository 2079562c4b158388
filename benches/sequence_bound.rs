//! State owned by a sequence versus state behind a lock: a `SequenceBound<T>` call against
//! `Arc<Mutex<T>>` updated by tasks on a plain pool, and against a tokio mpsc actor (one task
//! owning the state, commands over a channel, replies over a oneshot).
//!
//! * **`bound/call_join_one`**: one call at a time that returns the new value to the caller
//!   (post, then block for the reply): the round-trip latency of reaching the state.
//! * **`bound/calls_then_read`**: `BENCH_BOUND_CALLS` fire-and-forget updates from the caller,
//!   then one read that waits for them all: throughput when calls pile up. With the lock, the
//!   pool's workers run updates in parallel and contend on it; with the sequence or the actor,
//!   updates are queued and run one after another without a lock.
//!
//! Peers: taskrunner `SequenceBound::post_with_result` + `join` / `post`; `Arc<Mutex<T>>`
//! (parking_lot) updated by taskrunner parallel tasks, and by rayon `spawn` with a channel for
//! the reply; a tokio `mpsc::unbounded_channel` actor with `oneshot` replies, awaited by
//! `blocking_recv` from the caller thread. Every pool has `BENCH_WORKERS` workers (default 2).
//!
//! ```text
//! cargo bench --bench sequence_bound
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use common::{env_usize, rayon_pool, tokio_runtime, workers};
use criterion::{Criterion, Throughput};
use parking_lot::Mutex;
use taskrunner::PostTask;
use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
use tokio::sync::{mpsc, oneshot};

/// The state every peer updates: a counter and a running checksum (so an update is more than
/// one instruction, but still tiny).
#[derive(Debug, Default)]
struct Account {
    n: u64,
    sum: u64,
}

impl Account {
    #[inline]
    fn apply(&mut self, x: u64) -> u64 {
        self.n += 1;
        self.sum = self.sum.wrapping_mul(31).wrapping_add(x);
        self.n
    }
}

/// A command to the tokio actor.
enum Cmd {
    Apply(u64),
    ApplyAndReply(u64, oneshot::Sender<u64>),
    Read(oneshot::Sender<u64>),
}

struct Peers {
    pool: ThreadPool,
    bound: SequenceBound<Account>,
    locked: Arc<Mutex<Account>>,
    rayon: rayon::ThreadPool,
    _tokio: tokio::runtime::Runtime,
    actor: mpsc::UnboundedSender<Cmd>,
}

impl Peers {
    fn new() -> Self {
        let w = workers();
        let pool = ThreadPool::builder()
            .max_workers(w)
            .thread_name("bench")
            .build()
            .expect("build taskrunner pool");
        let bound = SequenceBound::new(
            pool.create_sequenced_task_runner(TaskTraits::default()),
            Account::default,
        )
        .unwrap();
        let tokio = tokio_runtime(w);
        let (actor, mut rx) = mpsc::unbounded_channel::<Cmd>();
        drop(tokio.spawn(async move {
            let mut state = Account::default();
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    Cmd::Apply(x) => {
                        state.apply(x);
                    }
                    Cmd::ApplyAndReply(x, reply) => {
                        let _ = reply.send(state.apply(x));
                    }
                    Cmd::Read(reply) => {
                        let _ = reply.send(state.n);
                    }
                }
            }
        }));
        Peers {
            pool,
            bound,
            locked: Arc::new(Mutex::new(Account::default())),
            rayon: rayon_pool(w),
            _tokio: tokio,
            actor,
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

fn call_join_one(c: &mut Criterion, p: &Peers) {
    let mut g = c.benchmark_group("bound/call_join_one");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequence_bound_post_with_result_join", |b| {
        b.iter(|| {
            let x = black_box(3);
            p.bound
                .post_with_result(move |a| a.apply(x))
                .unwrap()
                .join()
                .unwrap()
        })
    });
    g.bench_function("mutex_on_taskrunner_pool_join", |b| {
        b.iter(|| {
            let (m, x) = (p.locked.clone(), black_box(3));
            p.pool
                .post_task_with_result(TaskTraits::default(), move || m.lock().apply(x))
                .unwrap()
                .join()
                .unwrap()
        })
    });
    g.bench_function("mutex_on_rayon_channel", |b| {
        b.iter(|| {
            let (m, x) = (p.locked.clone(), black_box(3));
            let (tx, rx) = crossbeam_channel::bounded(1);
            p.rayon.spawn(move || tx.send(m.lock().apply(x)).unwrap());
            rx.recv().unwrap()
        })
    });
    g.bench_function("tokio_mpsc_actor_oneshot", |b| {
        b.iter(|| {
            let (tx, rx) = oneshot::channel();
            p.actor
                .send(Cmd::ApplyAndReply(black_box(3), tx))
                .ok()
                .unwrap();
            rx.blocking_recv().unwrap()
        })
    });
    g.finish();
}

fn calls_then_read(c: &mut Criterion, p: &Peers, n: u64) {
    let mut g = c.benchmark_group("bound/calls_then_read");
    g.throughput(Throughput::Elements(n));
    g.bench_function("sequence_bound_post", |b| {
        b.iter(|| {
            let start = p.bound.post_with_result(|a| a.n).unwrap().join().unwrap();
            for i in 0..n {
                p.bound
                    .post(move |a| {
                        a.apply(i);
                    })
                    .unwrap();
            }
            let end = p.bound.post_with_result(|a| a.n).unwrap().join().unwrap();
            assert_eq!(end - start, n);
        })
    });
    g.bench_function("mutex_on_taskrunner_pool", |b| {
        let runner = p.pool.create_task_runner(TaskTraits::default());
        b.iter(|| {
            // The updates run in parallel on the pool's workers, contending on the lock; the
            // one that brings the count to its target signals the caller.
            let start = p.locked.lock().n;
            let (tx, rx) = crossbeam_channel::bounded(1);
            for i in 0..n {
                let (m, tx) = (p.locked.clone(), tx.clone());
                runner
                    .post_task(move || {
                        if m.lock().apply(i) == start + n {
                            tx.send(()).unwrap();
                        }
                    })
                    .unwrap();
            }
            rx.recv().unwrap();
            assert_eq!(p.locked.lock().n - start, n);
        })
    });
    g.bench_function("mutex_on_rayon", |b| {
        b.iter(|| {
            let start = p.locked.lock().n;
            let (tx, rx) = crossbeam_channel::bounded(1);
            for i in 0..n {
                let (m, tx) = (p.locked.clone(), tx.clone());
                p.rayon.spawn(move || {
                    if m.lock().apply(i) == start + n {
                        tx.send(()).unwrap();
                    }
                });
            }
            rx.recv().unwrap();
            assert_eq!(p.locked.lock().n - start, n);
        })
    });
    g.bench_function("tokio_mpsc_actor", |b| {
        b.iter(|| {
            let (tx, rx) = oneshot::channel();
            p.actor.send(Cmd::Read(tx)).ok().unwrap();
            let start = rx.blocking_recv().unwrap();
            for i in 0..n {
                p.actor.send(Cmd::Apply(i)).ok().unwrap();
            }
            let (tx, rx) = oneshot::channel();
            p.actor.send(Cmd::Read(tx)).ok().unwrap();
            assert_eq!(rx.blocking_recv().unwrap() - start, n);
        })
    });
    g.finish();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let p = Peers::new();
    let n = env_usize("BENCH_BOUND_CALLS", 10_000) as u64;
    let mut c = common::criterion();
    call_join_one(&mut c, &p);
    calls_then_read(&mut c, &p, n);
    c.final_summary();
}
