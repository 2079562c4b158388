#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
//! Issue 3 core: panic policy per runner, live priority, blocking(), SequenceLocal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{PanicPolicy, PostRefusal, SequenceLocal, TaskPriority, TaskTraits, ThreadPool};

const T: Duration = Duration::from_secs(30);

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn quiet_pool(workers: usize) -> ThreadPool {
    ThreadPool::builder()
        .max_workers(workers)
        .panic_handler(|_| {})
        .build()
        .unwrap()
}

#[test]
fn isolate_policy_keeps_running_the_sequence_after_a_panic() {
    let pool = quiet_pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq
        .post_task_with_result(|| -> u8 { panic!("first") })
        .unwrap();
    let after = seq.post_task_with_result(|| 2).unwrap();
    assert_eq!(h.join().unwrap_err().panic_message(), Some("first"));
    assert_eq!(after.join().unwrap(), 2);
    assert!(seq.post_task(|| ()).is_ok());
}

#[test]
fn poison_policy_drops_queued_tasks_and_refuses_later_posts() {
    let pool = quiet_pool(1);
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    // Hold the sequence so the panicking task and the ones behind it are queued together.
    seq.post_task(move || gate_rx.recv().unwrap()).unwrap();
    let boom = seq
        .post_task_with_result(|| panic!("corrupt state"))
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = DropCount(drops.clone());
    let behind = seq.post_task_with_result(move || drop(d)).unwrap();
    gate_tx.send(()).unwrap();
    assert!(boom.join().unwrap_err().is_panic());
    let err = behind.join().unwrap_err();
    assert!(
        err.is_not_run(),
        "queued task behind the panic must not run: {err}"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1, "its closure was dropped");
    let refused = seq.post_task(|| ()).unwrap_err();
    assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);
    assert!(refused.to_string().contains("Poison"));
}

#[test]
fn poison_policy_on_a_parallel_runner_behaves_as_isolate() {
    let pool = quiet_pool(1);
    let r = pool.create_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    assert!(r
        .post_task_with_result(|| panic!("x"))
        .unwrap()
        .join()
        .is_err());
    assert_eq!(r.post_task_with_result(|| 5).unwrap().join().unwrap(), 5);
}

/// Run in a child process by `abort_policy_aborts_the_process`.
#[test]
#[ignore = "run by abort_policy_aborts_the_process in a child process"]
fn abort_policy_child() {
    let pool = quiet_pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Abort));
    let h = seq.post_task_with_result(|| panic!("fatal")).unwrap();
    let _ = h.join();
    // The handle may resolve a moment before the worker aborts the process: wait for it.
    std::thread::sleep(T);
    std::process::exit(0);
}

#[test]
fn abort_policy_aborts_the_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "abort_policy_child", "--nocapture"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must abort");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PanicPolicy::Abort"), "stderr: {stderr}");
}

#[test]
fn update_priority_rekeys_a_sequence_already_waiting_in_the_queue() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    pool.post_task(TaskTraits::default(), move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
    })
    .unwrap();
    started_rx.recv_timeout(T).unwrap();
    let (tx, rx) = mpsc::channel();
    let low = pool.create_updateable_sequenced_task_runner(TaskPriority::BestEffort.into());
    let mid = pool.create_sequenced_task_runner(TaskPriority::UserVisible.into());
    let t1 = tx.clone();
    low.post_task(move || t1.send("was best-effort").unwrap())
        .unwrap();
    mid.post_task(move || tx.send("user-visible").unwrap())
        .unwrap();
    // Both are queued behind the blocker; raise the best-effort sequence above the other.
    low.update_priority(TaskPriority::UserBlocking);
    gate_tx.send(()).unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "was best-effort");
    assert_eq!(rx.recv_timeout(T).unwrap(), "user-visible");
}

#[test]
fn update_priority_lowers_tasks_not_yet_started() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    pool.post_task(TaskTraits::default(), move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
    })
    .unwrap();
    started_rx.recv_timeout(T).unwrap();
    let (tx, rx) = mpsc::channel();
    let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::UserBlocking.into());
    let other = pool.create_sequenced_task_runner(TaskPriority::UserVisible.into());
    let t1 = tx.clone();
    seq.post_task(move || t1.send("lowered").unwrap()).unwrap();
    other.post_task(move || tx.send("other").unwrap()).unwrap();
    seq.update_priority(TaskPriority::BestEffort);
    gate_tx.send(()).unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "other");
    assert_eq!(rx.recv_timeout(T).unwrap(), "lowered");
}

#[test]
fn blocking_lets_cpu_work_run_while_every_worker_is_blocked() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let io = TaskTraits::new().may_block(true);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let mut blocked = Vec::new();
    for _ in 0..2 {
        let (rx, entered) = (release_rx.clone(), entered_tx.clone());
        blocked.push(
            pool.post_task_with_result(io, move || {
                taskrunner::blocking(|| {
                    entered.send(()).unwrap();
                    rx.lock().unwrap().recv().unwrap()
                })
            })
            .unwrap(),
        );
    }
    entered_rx.recv_timeout(T).unwrap();
    entered_rx.recv_timeout(T).unwrap();
    // Both workers are inside blocking scopes: CPU work still gets a compensating worker.
    let cpu = pool
        .post_task_with_result(TaskTraits::default(), || 21 * 2)
        .unwrap();
    let mut cpu = cpu;
    assert_eq!(cpu.join_timeout(T).expect("cpu work starved").unwrap(), 42);
    release_tx.send(()).unwrap();
    release_tx.send(()).unwrap();
    for h in blocked {
        h.join().unwrap();
    }
}

#[test]
#[cfg(debug_assertions)]
fn blocking_without_may_block_panics_with_a_clear_message_in_debug_builds() {
    let pool = quiet_pool(1);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || taskrunner::blocking(|| 1))
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(
        err.panic_message().unwrap().contains("may_block(true)"),
        "{err}"
    );
}

#[test]
fn blocking_outside_the_pool_just_runs() {
    assert_eq!(taskrunner::blocking(|| 3), 3);
}

static SLOT: SequenceLocal<DropCount> = SequenceLocal::new();
static NUM: SequenceLocal<u64> = SequenceLocal::new();

#[test]
fn sequence_local_values_are_per_sequence_and_dropped_with_the_sequence() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..4u64 {
        let seq = pool.create_sequenced_task_runner(TaskTraits::default());
        let d = drops.clone();
        seq.post_task(move || {
            SLOT.set(DropCount(d));
            NUM.set(i);
        })
        .unwrap();
        handles.push(
            seq.post_task_with_result(move || NUM.with(|v| *v.unwrap()))
                .unwrap(),
        );
        // `seq` (the only runner handle) is dropped here; the sequence lives while tasks are queued.
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64);
    }
    // Every sequence is gone once its tasks ran and its runner dropped: its locals are dropped.
    let deadline = std::time::Instant::now() + T;
    while drops.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "locals leaked: {}",
            drops.load(Ordering::SeqCst)
        );
        std::thread::yield_now();
    }
}

#[test]
fn sequence_local_outside_a_sequence_panics_clearly() {
    let err = std::panic::catch_unwind(|| NUM.set(1)).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("outside a sequenced task"), "{msg}");
    let pool = quiet_pool(1);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || NUM.set(1))
        .unwrap();
    assert!(h
        .join()
        .unwrap_err()
        .panic_message()
        .unwrap()
        .contains("outside a sequenced task"));
}
