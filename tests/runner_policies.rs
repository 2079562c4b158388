#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
//! Issue 3 core: panic policy per runner, live priority, blocking(), SequenceLocal.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use taskrunner::PostTask;
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

// ---- regressions from the issue-3 review ---------------------------------------------------

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("sequence-local destructor panicked");
    }
}
static BAD: SequenceLocal<PanicOnDrop> = SequenceLocal::new();

#[test]
fn a_panicking_sequence_local_destructor_does_not_take_the_process_down() {
    let pool = quiet_pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq.post_task_with_result(|| {
        BAD.set(PanicOnDrop);
    });
    drop(seq); // the task's queue entry holds the last reference to the sequence
    h.unwrap().join().unwrap();
    // The sequence (and its locals) were dropped on the worker; the worker survived it.
    let after = pool
        .post_task_with_result(TaskTraits::default(), || 7)
        .unwrap();
    assert_eq!(after.join().unwrap(), 7);
}

#[test]
fn cancelling_a_delayed_handle_removes_its_pending_entry_at_once() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            pool.post_delayed_task_with_result(
                TaskTraits::default(),
                Duration::from_secs(3600),
                || (),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(pool.pending_delayed_tasks(), 100);
    for h in &handles {
        assert!(h.cancel());
    }
    assert_eq!(
        pool.pending_delayed_tasks(),
        0,
        "cancel frees the entry, not just the closure"
    );
}

#[test]
fn a_blocked_best_effort_task_does_not_starve_other_best_effort_work() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .max_best_effort_workers(1)
        .build()
        .unwrap();
    let be = TaskTraits::new()
        .priority(TaskPriority::BestEffort)
        .may_block(true);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let blocked = pool
        .post_task_with_result(be, move || {
            taskrunner::blocking(|| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap()
            })
        })
        .unwrap();
    entered_rx.recv_timeout(T).unwrap();
    let mut other = pool.post_task_with_result(be, || 5).unwrap();
    assert_eq!(
        other
            .join_timeout(T)
            .expect("best-effort work starved")
            .unwrap(),
        5
    );
    release_tx.send(()).unwrap();
    blocked.join().unwrap();
}

#[test]
fn nested_blocking_scopes_count_once() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let io = TaskTraits::new().may_block(true);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let blocked = pool
        .post_task_with_result(io, move || {
            taskrunner::blocking(|| {
                taskrunner::blocking(|| {
                    entered_tx.send(()).unwrap();
                    release_rx.recv().unwrap()
                })
            })
        })
        .unwrap();
    entered_rx.recv_timeout(T).unwrap();
    // Capacity is max_workers + 1 (one blocked task), not + 2: at most two workers ever exist.
    let cpu: Vec<_> = (0..8)
        .map(|_| {
            pool.post_task_with_result(TaskTraits::default(), || ())
                .unwrap()
        })
        .collect();
    for h in cpu {
        h.join().unwrap();
    }
    assert!(
        pool.live_workers() <= 2,
        "live workers: {}",
        pool.live_workers()
    );
    release_tx.send(()).unwrap();
    blocked.join().unwrap();
}

#[test]
fn a_sequence_is_poisoned_before_the_panic_handler_hears_of_the_panic() {
    let slot: Arc<std::sync::Mutex<Option<taskrunner::SequencedTaskRunner>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let s2 = slot.clone();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(move |_| {
            let runner = s2.lock().unwrap().clone().unwrap();
            let refused = runner.post_task(|| ()).map_err(|e| e.reason());
            tx.send(refused).unwrap();
        })
        .build()
        .unwrap();
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    *slot.lock().unwrap() = Some(seq.clone());
    seq.post_task(|| panic!("broken")).unwrap();
    assert_eq!(
        rx.recv_timeout(T).unwrap(),
        Err(PostRefusal::SequencePoisoned)
    );
    slot.lock().unwrap().take();
}

/// A post racing a worker's entry into `blocking()` is never stranded in the inbox: the raised
/// capacity is published before the inbox is drained, so the post wakes a compensating worker.
/// (It used to hang about once in a thousand rounds on a 1-worker pool.)
#[test]
fn a_post_racing_entry_into_blocking_is_not_stranded() {
    let rounds = (600.0 * support::scale()).max(50.0) as usize;
    for _ in 0..rounds {
        let pool = ThreadPool::builder().max_workers(1).build().unwrap();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let io = TaskTraits::new().may_block(true);
        let blocked = pool
            .post_task_with_result(io, move || {
                started_tx.send(()).unwrap();
                taskrunner::blocking(|| release_rx.recv().unwrap())
            })
            .unwrap();
        started_rx.recv().unwrap();
        let mut cpu = pool
            .post_task_with_result(TaskTraits::default(), || 4)
            .unwrap();
        let got = cpu.join_timeout(Duration::from_secs(20));
        release_tx.send(()).unwrap();
        assert_eq!(got.map(Result::unwrap), Some(4), "the post was stranded");
        blocked.join().unwrap();
        pool.shutdown();
    }
}

/// Holds the pool's only worker until `open` is called.
fn hold_the_worker(pool: &ThreadPool) -> mpsc::Sender<()> {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    pool.post_task(TaskTraits::default(), move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
    })
    .unwrap();
    started_rx.recv_timeout(T).unwrap();
    gate_tx
}

#[test]
fn a_ticket_made_stale_by_update_priority_stays_stale_after_the_sequence_went_idle() {
    static LOCAL: SequenceLocal<u32> = SequenceLocal::new();
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let gate = hold_the_worker(&pool);
    let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::BestEffort.into());
    let ran = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let (s2, t2, r2) = (seq.clone(), tx.clone(), Arc::clone(&ran));
    seq.post_task(move || {
        r2.fetch_add(1, Ordering::SeqCst);
        // The sequence's queue is empty now; a sequence-local value and a new task bring its
        // queue state back while the first, stale ticket still waits at best-effort.
        LOCAL.set(7);
        let r3 = Arc::clone(&r2);
        let t3 = t2.clone();
        s2.post_task(move || {
            r3.fetch_add(1, Ordering::SeqCst);
            t3.send("second").unwrap();
        })
        .unwrap();
        t2.send("first").unwrap();
    })
    .unwrap();
    // The best-effort ticket goes stale; a fresh one is queued at user-blocking.
    seq.update_priority(TaskPriority::UserBlocking);
    gate.send(()).unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "first");
    assert_eq!(rx.recv_timeout(T).unwrap(), "second");
    // A best-effort task queued now runs after the stale ticket came up: it ran nothing.
    let (done_tx, done_rx) = mpsc::channel();
    pool.post_task(TaskPriority::BestEffort.into(), move || {
        done_tx.send(()).unwrap()
    })
    .unwrap();
    done_rx.recv_timeout(T).unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "a task ran twice or a ticket ran nothing"
    );
    seq.post_task(move || tx.send("third").unwrap()).unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "third");
}

/// Posts `n` tasks to a block-shutdown, poison-policy runner: the first panics once released,
/// the others (queued behind it) are dropped unrun. Shutdown must not wait for them.
fn poisoned_block_shutdown_runner_lets_shutdown_complete(
    post: impl Fn(Box<dyn FnOnce() + Send>),
    pool: &ThreadPool,
) {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    post(Box::new(move || {
        gate_rx.recv().unwrap();
        panic!("poison the sequence");
    }));
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let d = DropCount(Arc::clone(&dropped));
        post(Box::new(move || {
            let _d = d;
            panic!("a task queued behind the panicking one ran");
        }));
    }
    gate_tx.send(()).unwrap();
    let deadline = std::time::Instant::now() + T;
    while dropped.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "queued tasks were not dropped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    pool.shutdown_timeout(T)
        .expect("shutdown waited for tasks a poisoned sequence will never run");
}

fn block_and_poison() -> TaskTraits {
    TaskTraits::new()
        .shutdown_behavior(taskrunner::ShutdownBehavior::BlockShutdown)
        .panic_policy(PanicPolicy::Poison)
}

#[test]
fn poisoned_block_shutdown_sequences_do_not_hold_shutdown_up() {
    let pool = quiet_pool(2);
    let seq = pool.create_sequenced_task_runner(block_and_poison());
    poisoned_block_shutdown_runner_lets_shutdown_complete(
        |f| {
            let _ = seq.post_task(f);
        },
        &pool,
    );
}

#[test]
fn poisoned_block_shutdown_updateable_sequences_do_not_hold_shutdown_up() {
    let pool = quiet_pool(2);
    let seq = pool.create_updateable_sequenced_task_runner(block_and_poison());
    poisoned_block_shutdown_runner_lets_shutdown_complete(
        |f| {
            let _ = seq.post_task(f);
        },
        &pool,
    );
}

#[test]
fn poisoned_block_shutdown_single_thread_runners_do_not_hold_shutdown_up() {
    let pool = quiet_pool(2);
    let runner = pool.create_single_thread_task_runner(block_and_poison());
    poisoned_block_shutdown_runner_lets_shutdown_complete(
        |f| {
            let _ = runner.post_task(f);
        },
        &pool,
    );
}

#[test]
fn a_ripe_delayed_block_shutdown_task_of_an_updateable_runner_is_skipped_once_shutdown_starts() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let gate = hold_the_worker(&pool);
    let seq = pool.create_updateable_sequenced_task_runner(
        TaskTraits::new().shutdown_behavior(taskrunner::ShutdownBehavior::BlockShutdown),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    seq.post_delayed_task(Duration::from_millis(1), move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    // Ripe and forwarded into the ready queue, behind the held worker.
    std::thread::sleep(Duration::from_millis(100));
    let shutting = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown_timeout(T))
    };
    std::thread::sleep(Duration::from_millis(50));
    gate.send(()).unwrap();
    shutting.join().unwrap().expect("shutdown completes");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a delayed task ran after shutdown started (delayed tasks never block shutdown)"
    );
}
