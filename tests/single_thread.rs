//! `SingleThreadTaskRunner`: one dedicated thread, posting order, joined when the last handle
//! drops or at shutdown.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::mpsc;
use std::thread::ThreadId;
use std::time::Duration;

use support::{must_return, wait_until, Recorder, ThreadExitProbe, TIMEOUT};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskTraits, ThreadPool};

#[test]
fn single_thread_runner_runs_every_task_on_one_thread_in_order() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .thread_name("st")
        .build()
        .unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let rec: Recorder<(usize, ThreadId, Option<String>)> = Recorder::new();
    // Posted from several threads at once: each poster's tasks still run in its order.
    std::thread::scope(|s| {
        for poster in 0..4 {
            let (st, rec) = (st.clone(), rec.clone());
            s.spawn(move || {
                for i in 0..100 {
                    let r = rec.clone();
                    st.post_task(move || {
                        let t = std::thread::current();
                        r.push((poster * 1000 + i, t.id(), t.name().map(str::to_owned)));
                    })
                    .unwrap();
                }
            });
        }
    });
    let ran = rec.wait_for_len(400);
    let first = ran[0].1;
    assert_ne!(first, std::thread::current().id());
    assert!(
        ran.iter().all(|r| r.1 == first),
        "every task on the same thread"
    );
    let name = ran[0].2.clone().unwrap_or_default();
    assert!(
        name.starts_with("st-single-"),
        "dedicated thread name: {name}"
    );
    for poster in 0..4 {
        let mine: Vec<usize> = ran
            .iter()
            .map(|r| r.0)
            .filter(|v| v / 1000 == poster)
            .collect();
        assert_eq!(
            mine,
            (0..100).map(|i| poster * 1000 + i).collect::<Vec<_>>()
        );
    }
    pool.shutdown();
}

#[test]
fn single_thread_runners_each_get_their_own_thread() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let a = pool.create_single_thread_task_runner(TaskTraits::default());
    let b = pool.create_single_thread_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    a.post_task(move || tx.send(std::thread::current().id()).unwrap())
        .unwrap();
    b.post_task(move || tx2.send(std::thread::current().id()).unwrap())
        .unwrap();
    let (x, y) = (
        rx.recv_timeout(TIMEOUT).unwrap(),
        rx.recv_timeout(TIMEOUT).unwrap(),
    );
    assert_ne!(x, y);
    pool.shutdown();
}

#[test]
fn belongs_to_current_thread_only_on_the_runners_thread() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    assert!(!st.belongs_to_current_thread());
    let (tx, rx) = mpsc::channel();
    let st2 = st.clone();
    st.post_task(move || tx.send(st2.belongs_to_current_thread()).unwrap())
        .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    let (tx, rx) = mpsc::channel();
    let st2 = st.clone();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(st2.belongs_to_current_thread()).unwrap()
    })
    .unwrap();
    assert!(
        !rx.recv_timeout(TIMEOUT).unwrap(),
        "a pool worker is not the thread"
    );
    pool.shutdown();
}

#[test]
fn thread_is_joined_when_the_last_handle_drops_after_running_what_was_queued() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let probe = ThreadExitProbe::new();
    let p = probe.clone();
    st.post_task(move || p.arm()).unwrap();
    let rec = Recorder::new();
    for i in 0..20 {
        let r = rec.clone();
        st.post_task(move || {
            std::thread::sleep(Duration::from_millis(1));
            r.push(i);
        })
        .unwrap();
    }
    let clone = st.clone();
    let view = st.as_sequenced();
    drop(st);
    drop(clone);
    assert_eq!(probe.exited(), 0, "a sequenced view still holds the thread");
    must_return("dropping the last single-thread runner handle", move || {
        drop(view)
    });
    // The thread-exit hook ran on the dedicated thread before it could be joined.
    assert_eq!(
        probe.exited(),
        1,
        "the thread has exited by the time drop returns"
    );
    assert_eq!(
        rec.snapshot(),
        (0..20).collect::<Vec<_>>(),
        "queued tasks ran first"
    );
    pool.shutdown();
}

#[test]
fn thread_is_joined_at_pool_shutdown_even_while_handles_remain() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let probe = ThreadExitProbe::new();
    let p = probe.clone();
    let (tx, rx) = mpsc::channel();
    st.post_task(move || {
        p.arm();
        tx.send(()).unwrap();
    })
    .unwrap();
    rx.recv_timeout(TIMEOUT).unwrap();
    pool.shutdown();
    assert_eq!(probe.exited(), 1, "shutdown joined the dedicated thread");
    assert!(st.post_task(|| ()).is_err());
    must_return("dropping a runner whose thread already exited", move || {
        drop(st)
    });
}

#[test]
fn dropping_the_last_handle_from_inside_its_own_task_does_not_deadlock() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let probe = ThreadExitProbe::new();
    let p = probe.clone();
    let (tx, rx) = mpsc::channel();
    let st2 = st.clone();
    st.post_task(move || {
        p.arm();
        drop(st2); // not the last handle yet
        tx.send(()).unwrap();
    })
    .unwrap();
    rx.recv_timeout(TIMEOUT).unwrap();
    // Hand the last handle to the thread itself and drop it there: the task waits until the
    // main thread has dropped its own handle.
    let last = st.clone();
    drop(st);
    let (tx, rx) = mpsc::channel();
    let go = support::Latch::new(1);
    let (inner, go2) = (last.clone(), go.clone());
    last.post_task(move || {
        go2.wait();
        drop(inner); // the last handle: must not try to join its own thread
        tx.send(()).unwrap();
    })
    .unwrap();
    drop(last);
    go.count_down();
    rx.recv_timeout(TIMEOUT).unwrap();
    wait_until("the dedicated thread exits", || probe.exited() == 1);
    pool.shutdown();
}

#[test]
fn as_sequenced_posts_to_the_same_sequence_and_thread() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let view = st.as_sequenced();
    assert!(view.is_same_sequence(&st.as_sequenced()));
    let rec: Recorder<(usize, ThreadId)> = Recorder::new();
    for i in 0..50 {
        let r = rec.clone();
        let task = move || r.push((i, std::thread::current().id()));
        if i % 2 == 0 {
            st.post_task(task).unwrap();
        } else {
            view.post_task(task).unwrap();
        }
    }
    let ran = rec.wait_for_len(50);
    assert_eq!(
        ran.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(ran.iter().all(|r| r.1 == ran[0].1));
    let (tx, rx) = mpsc::channel();
    let v2 = view.clone();
    view.post_task(move || tx.send(v2.runs_tasks_in_current_sequence()).unwrap())
        .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    pool.shutdown();
}

#[test]
fn current_inside_a_single_thread_task_is_its_sequenced_view() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let view = st.as_sequenced();
    let (tx, rx) = mpsc::channel();
    let st2 = st.clone();
    st.post_task(move || {
        let cur = SequencedTaskRunner::current().expect("set inside single-thread tasks");
        let here = std::thread::current().id();
        let (tx2, st3) = (tx.clone(), st2.clone());
        cur.post_task(move || {
            tx2.send((
                "posted via current",
                std::thread::current().id() == here,
                st3.belongs_to_current_thread(),
            ))
            .unwrap()
        })
        .unwrap();
        tx.send(("same sequence", cur.is_same_sequence(&view), true))
            .unwrap();
    })
    .unwrap();
    let mut got = vec![
        rx.recv_timeout(TIMEOUT).unwrap(),
        rx.recv_timeout(TIMEOUT).unwrap(),
    ];
    got.sort();
    assert_eq!(
        got,
        vec![
            ("posted via current", true, true),
            ("same sequence", true, true)
        ]
    );
    pool.shutdown();
}

#[test]
fn delayed_tasks_run_on_the_dedicated_thread() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let st2 = st.clone();
    st.post_delayed_task(Duration::from_millis(5), move || {
        tx.send(st2.belongs_to_current_thread()).unwrap()
    })
    .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    pool.shutdown();
}

/// A sequenced view obtained with `current()` after the last runner handle was dropped does
/// not keep the thread alive; once the thread has exited, posts through it are refused with
/// `ThreadExited` and the closure is handed back.
#[test]
fn view_outliving_its_dedicated_thread_refuses_posts_with_thread_exited() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let probe = ThreadExitProbe::new();
    let (tx, rx) = mpsc::channel();
    let go = support::Latch::new(1);
    let (p, last, go2) = (probe.clone(), st.clone(), go.clone());
    // The task owns the last handle (once `st` is gone), drops it (the thread then exits once
    // idle), and takes a view of its own sequence, which no longer holds the thread.
    st.post_task(move || {
        p.arm();
        go2.wait();
        drop(last);
        tx.send(SequencedTaskRunner::current().expect("inside the task"))
            .unwrap();
    })
    .unwrap();
    drop(st);
    go.count_down();
    let view = rx.recv_timeout(TIMEOUT).unwrap();
    wait_until("the dedicated thread exits", || probe.exited() == 1);
    let rec = Recorder::new();
    let err = view.post_task(rec.task("handed back")).unwrap_err();
    assert_eq!(err.reason(), taskrunner::PostRefusal::ThreadExited);
    assert!(err.to_string().contains("thread has exited"), "{err}");
    err.into_inner()();
    assert_eq!(rec.snapshot(), vec!["handed back"]);
    pool.shutdown();
}
