//! Post-and-reply: the reply runs on the posting sequence with the value moved into it; a reply
//! whose origin pool is gone is dropped unrun (and nothing hangs); outside a sequence the post
//! is refused with both closures handed back; a single-thread origin gets its reply on its own
//! thread.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Sender};
use taskrunner::PostTask;
use taskrunner::{
    PostRefusal, SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner, TaskTraits, ThreadPool,
};

const HANG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Not `Clone`, and remembers where its heap buffer lives: a reply that sees the same address
/// got the value moved, not copied.
struct Payload(Vec<u8>);

impl Payload {
    fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// The three runner kinds, as a post-and-reply target.
enum Target {
    Parallel(TaskRunner),
    Sequenced(SequencedTaskRunner),
    SingleThread(SingleThreadTaskRunner),
}

impl Target {
    fn all(pool: &ThreadPool) -> Vec<(&'static str, Target)> {
        let t = TaskTraits::default();
        vec![
            ("parallel", Target::Parallel(pool.create_task_runner(t))),
            (
                "sequenced",
                Target::Sequenced(pool.create_sequenced_task_runner(t)),
            ),
            (
                "single-thread",
                Target::SingleThread(pool.create_single_thread_task_runner(t)),
            ),
        ]
    }

    /// `true` if the calling task runs where this target runs its tasks.
    fn here(&self) -> bool {
        match self {
            Target::Parallel(_) => SequencedTaskRunner::current().is_none(),
            Target::Sequenced(s) => s.runs_tasks_in_current_sequence(),
            Target::SingleThread(s) => s.belongs_to_current_thread(),
        }
    }

    fn clone_target(&self) -> Target {
        match self {
            Target::Parallel(r) => Target::Parallel(r.clone()),
            Target::Sequenced(r) => Target::Sequenced(r.clone()),
            Target::SingleThread(r) => Target::SingleThread(r.clone()),
        }
    }

    fn and_reply_with_result<F, T, R>(&self, task: F, reply: R) -> Result<(), (PostRefusal, F, R)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        let r = match self {
            Target::Parallel(r) => r.post_task_and_reply_with_result(task, reply),
            Target::Sequenced(r) => r.post_task_and_reply_with_result(task, reply),
            Target::SingleThread(r) => r.post_task_and_reply_with_result(task, reply),
        };
        r.map_err(|e| {
            let reason = e.reason();
            let (t, r) = e.into_inner();
            (reason, t, r)
        })
    }

    fn and_reply<F, R>(&self, task: F, reply: R) -> Result<(), (PostRefusal, F, R)>
    where
        F: FnOnce() + Send + 'static,
        R: FnOnce() + Send + 'static,
    {
        let r = match self {
            Target::Parallel(r) => r.post_task_and_reply(task, reply),
            Target::Sequenced(r) => r.post_task_and_reply(task, reply),
            Target::SingleThread(r) => r.post_task_and_reply(task, reply),
        };
        r.map_err(|e| {
            let reason = e.reason();
            let (t, r) = e.into_inner();
            (reason, t, r)
        })
    }
}

/// What a reply saw.
#[derive(Debug, PartialEq)]
struct Seen {
    task_ran_at_target: bool,
    reply_on_origin: bool,
    moved: bool,
    len: usize,
}

#[test]
fn the_reply_runs_on_the_origin_sequence_with_the_value_moved() {
    let pool = pool(2);
    for (name, target) in Target::all(&pool) {
        let origin = pool.create_sequenced_task_runner(TaskTraits::default());
        let (tx, rx) = unbounded::<Seen>();
        let o2 = origin.clone();
        origin
            .post_task(move || {
                let t2 = target.clone_target();
                let (addr_tx, addr_rx) = bounded(1);
                target
                    .and_reply_with_result(
                        move || {
                            let p = Payload(vec![7; 64]);
                            addr_tx.send((p.addr(), t2.here())).unwrap();
                            p
                        },
                        move |p: Payload| {
                            let (addr, at_target) = addr_rx.recv().unwrap();
                            tx.send(Seen {
                                task_ran_at_target: at_target,
                                reply_on_origin: o2.runs_tasks_in_current_sequence(),
                                moved: p.addr() == addr,
                                len: p.0.len(),
                            })
                            .unwrap();
                        },
                    )
                    .map_err(|(reason, _, _)| reason)
                    .unwrap();
            })
            .unwrap();
        let seen = rx.recv_timeout(HANG).expect("no reply");
        assert_eq!(
            seen,
            Seen {
                task_ran_at_target: true,
                reply_on_origin: true,
                moved: true,
                len: 64
            },
            "target: {name}"
        );
    }
}

/// The reply runs after the task, and sees everything the task wrote (happens-before task →
/// reply), even with no synchronisation in user code beyond the reply itself.
#[test]
fn post_task_and_reply_runs_the_reply_after_the_task() {
    let pool = pool(2);
    for (name, target) in Target::all(&pool) {
        let origin = pool.create_sequenced_task_runner(TaskTraits::default());
        let (tx, rx) = unbounded();
        let o2 = origin.clone();
        let step = Arc::new(AtomicUsize::new(0));
        origin
            .post_task(move || {
                let (s1, s2) = (step.clone(), step.clone());
                target
                    .and_reply(
                        move || {
                            s1.store(1, Ordering::Relaxed);
                        },
                        move || {
                            tx.send((
                                s2.load(Ordering::Relaxed),
                                o2.runs_tasks_in_current_sequence(),
                            ))
                            .unwrap();
                        },
                    )
                    .map_err(|(reason, _, _)| reason)
                    .unwrap();
            })
            .unwrap();
        assert_eq!(rx.recv_timeout(HANG).unwrap(), (1, true), "target: {name}");
    }
}

/// Replies from many concurrent post-and-replies come back to their origin in the order the
/// replies were posted by one target sequence, and all on the origin sequence.
#[test]
fn many_replies_all_land_on_the_origin() {
    let pool = pool(2);
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let target = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = unbounded();
    let o2 = origin.clone();
    origin
        .post_task(move || {
            for i in 0..100u32 {
                let (tx, o3) = (tx.clone(), o2.clone());
                target
                    .post_task_and_reply_with_result(
                        move || i * 2,
                        move |v| {
                            tx.send((v, o3.runs_tasks_in_current_sequence())).unwrap();
                        },
                    )
                    .unwrap();
            }
        })
        .unwrap();
    for i in 0..100u32 {
        assert_eq!(rx.recv_timeout(HANG).unwrap(), (i * 2, true));
    }
}

/// Records whether it was dropped, and on which thread.
struct ReplyProbe {
    dropped: Sender<String>,
}

impl Drop for ReplyProbe {
    fn drop(&mut self) {
        let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
        let _ = self.dropped.send(name);
    }
}

/// The origin's pool shuts down while the task runs elsewhere: the reply cannot be posted
/// back, so it is dropped without running — on the target's worker, where the task finished
/// (the reply is `Send`, so that is sound) — and neither pool's shutdown hangs.
#[test]
fn a_reply_whose_origin_pool_shut_down_is_dropped_unrun() {
    let origin_pool = ThreadPool::builder()
        .max_workers(1)
        .thread_name("origin")
        .build()
        .unwrap();
    let target_pool = ThreadPool::builder()
        .max_workers(1)
        .thread_name("target")
        .build()
        .unwrap();
    let origin = origin_pool.create_sequenced_task_runner(TaskTraits::default());
    let target = target_pool.create_sequenced_task_runner(TaskTraits::default());

    let (go_tx, go_rx) = bounded::<()>(1);
    let (task_done_tx, task_done_rx) = bounded::<()>(1);
    let (dropped_tx, dropped_rx) = unbounded();
    let reply_ran = Arc::new(AtomicBool::new(false));
    let rr = reply_ran.clone();
    let (posted_tx, posted_rx) = bounded(1);
    origin
        .post_task(move || {
            let probe = ReplyProbe {
                dropped: dropped_tx,
            };
            let r = target.post_task_and_reply(
                move || {
                    go_rx.recv_timeout(HANG).unwrap();
                    task_done_tx.send(()).unwrap();
                },
                move || {
                    let _probe = probe;
                    rr.store(true, Ordering::SeqCst);
                },
            );
            posted_tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    assert!(posted_rx.recv_timeout(HANG).unwrap());

    // The origin pool goes away while the task is still held on the target.
    assert!(origin_pool.shutdown_timeout(HANG).is_ok());
    go_tx.send(()).unwrap();
    task_done_rx.recv_timeout(HANG).unwrap();

    let dropped_on = dropped_rx
        .recv_timeout(HANG)
        .expect("the orphaned reply was never dropped");
    assert!(!reply_ran.load(Ordering::SeqCst), "the reply must not run");
    assert!(
        dropped_on.starts_with("target"),
        "dropped on {dropped_on:?}, expected the target's worker"
    );
    assert!(dropped_rx.try_recv().is_err(), "dropped exactly once");
    assert!(target_pool.shutdown_timeout(HANG).is_ok());
}

/// Same, with the origin a single-thread runner whose pool shut down (its thread exited).
#[test]
fn a_reply_to_an_exited_single_thread_origin_is_dropped_unrun() {
    let origin_pool = pool(1);
    let target_pool = pool(1);
    let origin = origin_pool.create_single_thread_task_runner(TaskTraits::default());
    let target = target_pool.create_task_runner(TaskTraits::default());
    let (go_tx, go_rx) = bounded::<()>(1);
    let (dropped_tx, dropped_rx) = unbounded();
    let reply_ran = Arc::new(AtomicBool::new(false));
    let rr = reply_ran.clone();
    let (posted_tx, posted_rx) = bounded(1);
    origin
        .post_task(move || {
            let probe = ReplyProbe {
                dropped: dropped_tx,
            };
            let r = target.post_task_and_reply_with_result(
                move || go_rx.recv_timeout(HANG).map(|_| 5).unwrap(),
                move |_v: i32| {
                    let _probe = probe;
                    rr.store(true, Ordering::SeqCst);
                },
            );
            posted_tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    assert!(posted_rx.recv_timeout(HANG).unwrap());
    assert!(origin_pool.shutdown_timeout(HANG).is_ok());
    go_tx.send(()).unwrap();
    dropped_rx
        .recv_timeout(HANG)
        .expect("the orphaned reply was never dropped");
    assert!(!reply_ran.load(Ordering::SeqCst));
    assert!(target_pool.shutdown_timeout(HANG).is_ok());
}

#[test]
fn outside_a_sequence_the_post_is_refused_and_both_closures_come_back() {
    let pool = pool(2);
    // From the test thread (no task at all).
    for (name, target) in Target::all(&pool) {
        let out = Arc::new(AtomicUsize::new(0));
        let o2 = out.clone();
        let (reason, task, reply) = target
            .and_reply_with_result(
                || 20,
                move |v: usize| {
                    o2.store(v + 1, Ordering::SeqCst);
                },
            )
            .expect_err("no current sequence: must be refused");
        assert_eq!(reason, PostRefusal::NoCurrentSequence, "{name}");
        assert_eq!(out.load(Ordering::SeqCst), 0, "{name}: nothing ran");
        reply(task());
        assert_eq!(
            out.load(Ordering::SeqCst),
            21,
            "{name}: the very closures come back"
        );

        let ran = Arc::new(AtomicUsize::new(0));
        let (r1, r2) = (ran.clone(), ran.clone());
        let (reason, task, reply) = target
            .and_reply(
                move || {
                    r1.fetch_add(1, Ordering::SeqCst);
                },
                move || {
                    r2.fetch_add(10, Ordering::SeqCst);
                },
            )
            .expect_err("no current sequence: must be refused");
        assert_eq!(reason, PostRefusal::NoCurrentSequence);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "{name}: nothing ran");
        task();
        reply();
        assert_eq!(ran.load(Ordering::SeqCst), 11);
    }

    // From inside a parallel one-off task: there is no current sequence there either.
    let target = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            match target.post_task_and_reply_with_result(|| 1, |_: i32| ()) {
                Ok(()) => None,
                Err(e) => Some(e.reason()),
            }
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), Some(PostRefusal::NoCurrentSequence));

    // `PostError`'s message names the reason.
    let e = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .post_task_and_reply(|| (), || ())
        .unwrap_err();
    assert!(!e.is_shutdown());
    assert!(!format!("{e}").is_empty());
}

#[test]
fn a_shut_down_target_refuses_and_hands_both_closures_back() {
    let origin_pool = pool(1);
    let pool = pool(1);
    let origin = origin_pool.create_sequenced_task_runner(TaskTraits::default());
    let target = pool.create_sequenced_task_runner(TaskTraits::default());
    pool.shutdown();
    let h = origin
        .post_task_with_result(move || {
            let out = Arc::new(AtomicUsize::new(0));
            let o2 = out.clone();
            let e = target
                .post_task_and_reply_with_result(
                    || 2,
                    move |v: usize| {
                        o2.store(v * 10, Ordering::SeqCst);
                    },
                )
                .unwrap_err();
            assert!(e.is_shutdown());
            let (task, reply) = e.into_inner();
            reply(task());
            out.load(Ordering::SeqCst)
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 20);
}

#[test]
fn from_a_single_thread_origin_the_reply_runs_on_that_thread() {
    let pool = pool(2);
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let target = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = bounded(1);
    let st2 = st.clone();
    st.post_task(move || {
        let origin_thread = thread::current().id();
        let t2 = target.clone();
        target
            .post_task_and_reply_with_result(
                move || (thread::current().id(), t2.runs_tasks_in_current_sequence()),
                move |(task_thread, on_target)| {
                    tx.send((
                        origin_thread == thread::current().id(),
                        st2.belongs_to_current_thread(),
                        st2.runs_tasks_in_current_sequence(),
                        on_target,
                        task_thread != origin_thread,
                    ))
                    .unwrap();
                },
            )
            .unwrap();
    })
    .unwrap();
    let (same_thread, belongs, in_seq, task_on_target, task_elsewhere) =
        rx.recv_timeout(HANG).unwrap();
    assert!(same_thread, "the reply ran on another thread");
    assert!(belongs && in_seq);
    assert!(task_on_target);
    assert!(
        task_elsewhere,
        "the task ran on the target, not the origin thread"
    );
}

/// A panicking task sends no reply (there is no value to move); the reply is dropped, the
/// origin sequence carries on.
#[test]
fn a_panicking_task_drops_its_reply() {
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let target = pool.create_task_runner(TaskTraits::default());
    let (dropped_tx, dropped_rx) = unbounded();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    origin
        .post_task(move || {
            let probe = ReplyProbe {
                dropped: dropped_tx,
            };
            target
                .post_task_and_reply_with_result(
                    || -> u8 { panic!("task failed") },
                    move |_v| {
                        let _probe = probe;
                        r2.store(true, Ordering::SeqCst);
                    },
                )
                .unwrap();
        })
        .unwrap();
    dropped_rx
        .recv_timeout(HANG)
        .expect("the reply of a panicked task was never dropped");
    assert!(!ran.load(Ordering::SeqCst));
    // The origin is fine.
    let o2 = origin.clone();
    assert!(origin
        .post_task_with_result(move || o2.runs_tasks_in_current_sequence())
        .unwrap()
        .join()
        .unwrap());
}
