//! Async tasks on runners (`post_future`, `post_local_future`): polls are tasks
//! of the sequence (FIFO with plain tasks, never overlapping, across many workers), wake-ups
//! are batched, `!Send` futures stay on their dedicated thread, cancellation drops the future on
//! its sequence, panics in `poll` are isolated and reported, shutdown resolves every handle, and
//! handles can be awaited inside futures and awaited/joined from outside.
//!
//! Nothing asserts on timing; timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::{wait_until, Blocker, TIMEOUT};
use taskrunner::PostTask;
use taskrunner::{
    PanicPolicy, PostRefusal, SequenceLocal, SequencedTaskRunner, TaskError, TaskHandle,
    TaskPriority, TaskState, TaskTraits, ThreadPool,
};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Joins with a generous timeout (a hang fails the test instead of blocking it).
#[track_caller]
fn join<T: Send + 'static>(mut h: TaskHandle<T>) -> Result<T, TaskError> {
    h.join_timeout(TIMEOUT)
        .expect("the handle did not resolve within the timeout")
}

/// Returns `Pending` once after waking itself: the rest of the future runs in a later poll,
/// posted behind whatever the sequence already has queued.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// A future that counts its polls.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// Checks that no two polls or tasks guarded by the same flag overlap.
#[derive(Clone, Default)]
struct Exclusive {
    inside: Arc<AtomicBool>,
    overlaps: Arc<AtomicUsize>,
    entries: Arc<AtomicUsize>,
}

impl Exclusive {
    fn enter(&self) {
        if self.inside.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.entries.fetch_add(1, Ordering::SeqCst);
        // Widen the window a little so an overlap has a chance to show.
        for _ in 0..50 {
            std::hint::spin_loop();
        }
    }

    fn exit(&self) {
        self.inside.store(false, Ordering::SeqCst);
    }
}

/// A future whose every poll is guarded by an [`Exclusive`].
struct Guarded<F> {
    inner: Pin<Box<F>>,
    ex: Exclusive,
}

impl<F: Future> Future for Guarded<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.ex.enter();
        let r = self.inner.as_mut().poll(cx);
        self.ex.exit();
        r
    }
}

/// Reports, when dropped, whether the drop ran in a task of `seq`.
struct DropProbe {
    seq: SequencedTaskRunner,
    tx: mpsc::Sender<bool>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.tx.send(self.seq.runs_tasks_in_current_sequence());
    }
}

/// A future that stays pending until [`Gate::open`], from any thread.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let g = self.clone();
        std::future::poll_fn(move |cx| {
            let mut s = g.0.lock().unwrap();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

// ---- sequence semantics -------------------------------------------------------------------------

#[test]
fn a_task_posted_between_two_awaits_runs_between_the_two_polls() {
    let pool = pool(4);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let log = Arc::new(Mutex::new(Vec::new()));

    // 1. A self-wake re-posts the future behind a task that was already queued. (The
    //    sequence is held busy until both are queued, so that the first poll cannot run
    //    before the task is posted.)
    let (l1, l2) = (log.clone(), log.clone());
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    seq.post_task(move || hold_rx.recv().unwrap()).unwrap();
    let h = seq
        .post_future(async move {
            l1.lock().unwrap().push("poll 1");
            yield_now().await;
            l1.lock().unwrap().push("poll 2");
        })
        .unwrap();
    seq.post_task(move || l2.lock().unwrap().push("task"))
        .unwrap();
    hold_tx.send(()).unwrap();
    join(h).unwrap();
    assert_eq!(*log.lock().unwrap(), ["poll 1", "task", "poll 2"]);

    // 2. A task posted while the future waits for an outside event runs before it resumes,
    //    and sees what the first poll did (happens-before across workers).
    static STEP: SequenceLocal<u32> = SequenceLocal::new();
    let gate = Gate::default();
    let (polled_tx, polled) = mpsc::channel();
    let wait = gate.wait();
    let h = seq
        .post_future(async move {
            STEP.set(1);
            polled_tx.send(()).unwrap();
            wait.await;
            STEP.with(|s| *s.unwrap())
        })
        .unwrap();
    polled.recv_timeout(TIMEOUT).unwrap();
    let between = seq
        .post_task_with_result(|| {
            STEP.with(|s| {
                let s = s.unwrap();
                let seen = *s;
                *s = 2;
                seen
            })
        })
        .unwrap();
    assert_eq!(join(between).unwrap(), 1);
    gate.open();
    assert_eq!(join(h).unwrap(), 2);
}

#[test]
fn polls_and_tasks_of_one_sequence_never_overlap_on_many_workers() {
    const FUTURES: usize = 40;
    const YIELDS: usize = 25;
    const TASKS: usize = 400;
    let pool = pool(4);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let ex = Exclusive::default();
    // Plain data guarded only by the sequence: every poll and task increments it.
    static COUNT: SequenceLocal<usize> = SequenceLocal::new();

    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..FUTURES {
        let fut = Guarded {
            inner: Box::pin(async move {
                for _ in 0..YIELDS {
                    COUNT.get_or_insert_with(|| 0, |c| *c += 1);
                    yield_now().await;
                }
                i
            }),
            ex: ex.clone(),
        };
        handles.push(seq.post_future(fut).unwrap());
        for _ in 0..TASKS / FUTURES {
            let ex = ex.clone();
            tasks.push(
                seq.post_task_with_result(move || {
                    ex.enter();
                    COUNT.get_or_insert_with(|| 0, |c| *c += 1);
                    ex.exit();
                })
                .unwrap(),
            );
        }
    }
    // Wake-ups from other threads too: a parallel runner's tasks poke the sequence.
    let other = pool.create_task_runner(TaskTraits::default());
    for _ in 0..100 {
        let ex = ex.clone();
        let seq2 = seq.clone();
        other
            .post_task(move || {
                seq2.post_task(move || {
                    ex.enter();
                    ex.exit();
                })
                .unwrap();
            })
            .unwrap();
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(join(h).unwrap(), i);
    }
    for t in tasks {
        join(t).unwrap();
    }
    let total = seq
        .post_task_with_result(|| COUNT.with(|c| *c.unwrap()))
        .unwrap();
    assert_eq!(join(total).unwrap(), FUTURES * YIELDS + TASKS);
    wait_until("the poke tasks ran", || {
        ex.entries.load(Ordering::SeqCst) >= FUTURES * (YIELDS + 1) + TASKS + 100
    });
    assert_eq!(
        ex.overlaps.load(Ordering::SeqCst),
        0,
        "two polls/tasks overlapped"
    );
}

#[test]
fn a_parallel_runner_never_polls_one_future_twice_at_once() {
    let pool = pool(4);
    let runner = pool.create_task_runner(TaskTraits::default());
    let ex = Exclusive::default();
    let polls = Arc::new(AtomicUsize::new(0));
    let woken = Arc::new(AtomicUsize::new(0));
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (slot2, woken2) = (slot.clone(), woken.clone());
    let fut = Counted {
        inner: Box::pin(Guarded {
            inner: Box::pin(std::future::poll_fn(move |cx| {
                *slot2.lock().unwrap() = Some(cx.waker().clone());
                if woken2.load(Ordering::SeqCst) >= 4000 {
                    Poll::Ready("done")
                } else {
                    Poll::Pending
                }
            })),
            ex: ex.clone(),
        }),
        polls: polls.clone(),
    };
    let h = runner.post_future(fut).unwrap();
    wait_until("the first poll stored a waker", || {
        slot.lock().unwrap().is_some()
    });
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (slot, woken) = (slot.clone(), woken.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    woken.fetch_add(1, Ordering::SeqCst);
                    let w = slot.lock().unwrap().clone();
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(join(h).unwrap(), "done");
    assert_eq!(ex.overlaps.load(Ordering::SeqCst), 0);
    // At most one poll per wake, plus the first.
    assert!(polls.load(Ordering::SeqCst) <= 4001);
}

#[test]
fn a_thousand_wakes_before_the_next_poll_cause_one_poll() {
    let pool = pool(4);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let polls = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (slot2, go2) = (slot.clone(), go.clone());
    let fut = Counted {
        inner: Box::pin(std::future::poll_fn(move |cx| {
            if go2.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                *slot2.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        })),
        polls: polls.clone(),
    };
    let h = seq.post_future(fut).unwrap();
    wait_until("the first poll stored a waker", || {
        slot.lock().unwrap().is_some()
    });
    // Hold the sequence so that no poll can run while the wakes arrive.
    let blocker = Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    blocker.wait_started();
    go.store(true, Ordering::SeqCst);
    let waker = slot.lock().unwrap().clone().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let w = waker.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    w.wake_by_ref();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(waker);
    blocker.release();
    join(h).unwrap();
    // The first poll, then one poll for the whole batch of 1000 wakes.
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[test]
fn the_handle_reports_pending_then_running_then_completed() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let blocker = Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    blocker.wait_started();
    let gate = Gate::default();
    let wait = gate.wait();
    let mut h = seq.post_future(wait).unwrap();
    assert_eq!(h.state(), TaskState::Pending); // the first poll is posted, never run inline
    blocker.release();
    wait_until("the first poll ran", || h.state() == TaskState::Running);
    assert!(h.try_result().is_none());
    gate.open();
    wait_until("the future completed", || h.is_finished());
    assert_eq!(h.state(), TaskState::Completed);
    assert!(h.duration().is_some());
    h.try_result().unwrap().unwrap();
}

// ---- !Send futures -------------------------------------------------------------------------------

#[test]
fn a_local_future_holds_an_rc_across_awaits_on_the_dedicated_thread() {
    let pool = pool(2);
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let worker = pool.create_task_runner(TaskTraits::default());
    let (st2, st3) = (st.clone(), st.clone());
    let h = st
        .post_local_future(move || {
            let on_thread = Rc::new(RefCell::new(Vec::new())); // not Send
            async move {
                let mut total = 0;
                for i in 1..=5 {
                    on_thread.borrow_mut().push(st2.belongs_to_current_thread());
                    // Awaits work done elsewhere: the wake comes from another thread.
                    total += worker
                        .post_task_with_result(move || i * 10)
                        .unwrap()
                        .await
                        .unwrap();
                    yield_now().await;
                }
                let all_on_thread = on_thread.borrow().iter().all(|b| *b);
                (total, all_on_thread && st2.belongs_to_current_thread())
            }
        })
        .unwrap();
    assert_eq!(join(h).unwrap(), (150, true));

    // Cancelled while pending: dropped on the dedicated thread.
    struct OnThread(taskrunner::SingleThreadTaskRunner, mpsc::Sender<bool>);
    impl Drop for OnThread {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.belongs_to_current_thread());
        }
    }
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let gate = Gate::default();
    let wait = gate.wait();
    let h = st
        .post_local_future(move || {
            let probe = Rc::new(OnThread(st3, tx));
            async move {
                started_tx.send(()).unwrap();
                wait.await;
                drop(probe);
            }
        })
        .unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    assert!(h.cancel());
    assert!(rx.recv_timeout(TIMEOUT).unwrap(), "dropped off its thread");
    assert!(join(h).unwrap_err().is_cancelled());
}

// ---- cancellation ----------------------------------------------------------------------------------

#[test]
fn cancel_before_the_first_poll_never_polls_and_drops_on_the_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let blocker = Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    blocker.wait_started();
    let (tx, rx) = mpsc::channel();
    let polled = Arc::new(AtomicBool::new(false));
    let (probe, p2) = (
        DropProbe {
            seq: seq.clone(),
            tx,
        },
        polled.clone(),
    );
    let h = seq
        .post_future(async move {
            p2.store(true, Ordering::SeqCst);
            drop(probe);
        })
        .unwrap();
    assert!(h.cancel());
    assert!(!h.cancel(), "a second cancel reports false");
    blocker.release();
    assert!(join(h).unwrap_err().is_cancelled());
    assert!(
        rx.recv_timeout(TIMEOUT).unwrap(),
        "dropped off the sequence"
    );
    assert!(!polled.load(Ordering::SeqCst));
}

#[test]
fn cancel_while_waiting_between_awaits_drops_the_future_on_its_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let probe = DropProbe {
        seq: seq.clone(),
        tx,
    };
    let gate = Gate::default();
    let wait = gate.wait();
    let h = seq
        .post_future(async move {
            let _probe = probe;
            started_tx.send(()).unwrap();
            wait.await;
            "never"
        })
        .unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    wait_until("the first poll returned", || {
        h.state() == TaskState::Running
    });
    assert!(h.cancel());
    assert!(
        rx.recv_timeout(TIMEOUT).unwrap(),
        "dropped off the sequence"
    );
    assert!(join(h).unwrap_err().is_cancelled());
    gate.open(); // a late wake of a finished future does nothing
                 // The sequence carries on.
    assert_eq!(join(seq.post_task_with_result(|| 7).unwrap()).unwrap(), 7);
}

#[test]
fn cancel_after_completion_returns_false_and_keeps_the_value() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq.post_future(async { 41 + 1 }).unwrap();
    wait_until("the future completed", || h.is_finished());
    assert!(!h.cancel());
    assert_eq!(h.state(), TaskState::Completed);
    assert_eq!(join(h).unwrap(), 42);
}

#[test]
fn an_abort_on_drop_handle_drops_a_waiting_future_on_its_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let probe = DropProbe {
        seq: seq.clone(),
        tx,
    };
    let gate = Gate::default();
    let wait = gate.wait();
    let h = seq
        .post_future(async move {
            let _probe = probe;
            started_tx.send(()).unwrap();
            wait.await;
        })
        .unwrap()
        .abort_on_drop();
    started.recv_timeout(TIMEOUT).unwrap();
    drop(h);
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
}

#[test]
fn a_future_nobody_can_wake_is_dropped_with_its_last_handle() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let probe = DropProbe {
        seq: seq.clone(),
        tx,
    };
    let h = seq
        .post_future(async move {
            let _probe = probe;
            std::future::pending::<()>().await; // keeps no waker
        })
        .unwrap();
    join(seq.post_task_with_result(|| ()).unwrap()).unwrap(); // the first poll returned
    assert_eq!(h.state(), TaskState::Running);
    assert!(rx.try_recv().is_err());
    drop(h); // the last reference: nothing could ever poll it again
    assert!(
        !rx.recv_timeout(TIMEOUT).unwrap(),
        "dropped by the thread that dropped the handle"
    );
}

// ---- panics ----------------------------------------------------------------------------------------

#[test]
fn a_panic_in_poll_resolves_the_handle_drops_the_future_and_is_reported() {
    let reported = Arc::new(Mutex::new(Vec::new()));
    let r2 = reported.clone();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |p| r2.lock().unwrap().push(p.message().to_owned()))
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let probe = DropProbe {
        seq: seq.clone(),
        tx,
    };
    let h = seq
        .post_future(async move {
            let _probe = probe;
            yield_now().await;
            if true {
                panic!("poll blew up");
            }
            1
        })
        .unwrap();
    let err = join(h).unwrap_err();
    assert_eq!(err.panic_message(), Some("poll blew up"));
    assert!(
        rx.recv_timeout(TIMEOUT).unwrap(),
        "dropped off the sequence"
    );
    // The sequence carries on, and the pool's panic handler saw the panic.
    assert_eq!(join(seq.post_task_with_result(|| 3).unwrap()).unwrap(), 3);
    wait_until("the panic was reported", || {
        !reported.lock().unwrap().is_empty()
    });
    assert_eq!(*reported.lock().unwrap(), ["poll blew up"]);

    // A destructor that panics when the future is dropped after its poll panicked: both
    // caught. (A hand-written future: an `async` block would drop its locals while unwinding,
    // and a second panic there aborts, as it would in any closure.)
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop blew up too");
        }
    }
    struct Bomb(PanicOnDrop, bool);
    impl Future for Bomb {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if !self.1 {
                self.1 = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            panic!("first");
        }
    }
    let h = seq.post_future(Bomb(PanicOnDrop, false)).unwrap();
    assert_eq!(join(h).unwrap_err().panic_message(), Some("first"));
    assert_eq!(join(seq.post_task_with_result(|| 4).unwrap()).unwrap(), 4);
}

#[test]
fn a_panic_in_poll_poisons_a_poison_policy_sequence() {
    let pool = pool(2);
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    let h = seq
        .post_future(async {
            panic!("poisoned");
        })
        .unwrap();
    assert!(join(h).unwrap_err().is_panic());
    wait_until(
        "the sequence is poisoned",
        || matches!(seq.post_task(|| ()), Err(e) if e.reason() == PostRefusal::SequencePoisoned),
    );
}

// ---- shutdown and refusals -------------------------------------------------------------------------

#[test]
fn shutdown_drops_waiting_futures_and_resolves_their_handles() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();

    // (a) Waiting for an outside event that comes after shutdown.
    let gate = Gate::default();
    let wait = gate.wait();
    let (started_tx, started) = mpsc::channel();
    let probe = DropProbe {
        seq: seq.clone(),
        tx: tx.clone(),
    };
    let s1 = started_tx.clone();
    let a = seq
        .post_future(async move {
            let _probe = probe;
            s1.send(()).unwrap();
            wait.await;
            1
        })
        .unwrap();
    // (b) Waiting on a channel whose sender is dropped after shutdown.
    let (otx, orx) = tokio::sync::oneshot::channel::<u32>();
    let s2 = started_tx.clone();
    let b = seq
        .post_future(async move {
            s2.send(()).unwrap();
            orx.await.unwrap_or(0)
        })
        .unwrap();
    // (c) Awaiting a delayed task that shutdown drops unrun.
    let delayed = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 5)
        .unwrap();
    let c = seq
        .post_future(async move {
            started_tx.send(()).unwrap();
            delayed.await
        })
        .unwrap();
    for _ in 0..3 {
        started.recv_timeout(TIMEOUT).unwrap();
    }
    // A task of the sequence runs only once the first polls have returned: all three wait.
    join(seq.post_task_with_result(|| ()).unwrap()).unwrap();
    pool.shutdown();
    gate.open(); // the re-post is refused: the future is dropped here, the handle resolves
    drop(otx);
    assert!(join(a).unwrap_err().is_not_run());
    assert!(
        !rx.recv_timeout(TIMEOUT).unwrap(),
        "dropped by the waking thread"
    );
    assert!(join(b).unwrap_err().is_not_run());
    assert!(join(c).unwrap_err().is_not_run());

    // After shutdown, post_future is refused and hands the future back.
    let err = seq.post_future(async { 9 }).unwrap_err();
    assert!(err.is_shutdown());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(err.into_inner()), 9);
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let make = st
        .post_local_future(|| async { 3 })
        .unwrap_err()
        .into_inner();
    assert_eq!(rt.block_on(make()), 3);
}

#[test]
fn a_future_on_a_block_shutdown_sequence_runs_its_queued_polls_during_shutdown() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(
        TaskTraits::new().shutdown_behavior(taskrunner::ShutdownBehavior::BlockShutdown),
    );
    let blocker = Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    blocker.wait_started();
    let h = seq.post_future(async { 5 }).unwrap(); // queued behind the blocker
    let p2 = pool.clone();
    let shutdown = std::thread::spawn(move || p2.shutdown());
    blocker.release();
    shutdown.join().unwrap();
    assert_eq!(join(h).unwrap(), 5);
}

// ---- awaiting and joining ------------------------------------------------------------------------

#[test]
fn futures_await_other_handles_and_are_joined_and_awaited_elsewhere() {
    let pool = pool(3);
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::BestEffort));
    let parallel = pool.create_task_runner(TaskTraits::default());

    let parts: Vec<_> = (0..10)
        .map(|i| {
            parallel
                .post_task_with_result(move || {
                    std::thread::sleep(Duration::from_millis(1));
                    i
                })
                .unwrap()
        })
        .collect();
    let sum = a
        .post_future(async move {
            let mut s = 0;
            for p in parts {
                s += p.await.unwrap();
            }
            s
        })
        .unwrap();
    // `.await`ed from another post_future (on another sequence), joined from a plain thread.
    let doubled = b
        .post_future(async move { sum.await.unwrap() * 2 })
        .unwrap();
    let joiner = std::thread::spawn(move || join(doubled).unwrap());
    assert_eq!(joiner.join().unwrap(), 90);

    // The generic form, on the pool itself.
    let h = PostTask::post_future(&pool, async { "pooled" }).unwrap();
    assert_eq!(join(h).unwrap(), "pooled");
    let h = pool
        .post_future(TaskTraits::default(), async { 1 })
        .unwrap();
    assert_eq!(join(h).unwrap(), 1);

    // An updateable runner derefs to the sequenced one.
    let u = pool.create_updateable_sequenced_task_runner(TaskTraits::default());
    let h = u.post_future(async { 2 }).unwrap();
    assert_eq!(join(h).unwrap(), 2);
}

#[test]
fn a_handle_of_a_post_future_can_be_awaited_by_a_tokio_runtime() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq
        .post_future(async {
            yield_now().await;
            "from the sequence"
        })
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(h).unwrap(), "from the sequence");
}

#[cfg(feature = "test-util")]
#[test]
fn a_future_awaits_a_delayed_task_on_mock_time() {
    let env = taskrunner::testing::TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let seq2 = seq.clone();
    let mut h = seq
        .post_future(async move {
            let later = seq2
                .post_delayed_task_with_result(Duration::from_secs(60), || "a minute later")
                .unwrap();
            later.await.unwrap()
        })
        .unwrap();
    env.run_until_idle();
    assert_eq!(h.state(), TaskState::Running); // waiting for mock time
    env.fast_forward_by(Duration::from_secs(59));
    assert!(!h.is_finished());
    env.fast_forward_by(Duration::from_secs(1));
    env.run_until_idle();
    assert_eq!(h.try_result().unwrap().unwrap(), "a minute later");
}
