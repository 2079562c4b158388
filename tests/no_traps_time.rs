//! Regression tests for the time, test-environment, batcher, timer, keyed and future layer:
//! durations too large to represent mean "no limit" and never panic; mock time is exact and
//! unbounded fast-forwards stop promptly on work that repeats forever; nested global-pool
//! guards route correctly whatever the drop order; `fire_now` then `stop` agree with the docs;
//! keyed runners on absurdly large pools; futures polled inside a tokio runtime (or told how);
//! panics reported exactly like a plain task's, with the user's line as `posted_from`, and
//! payloads whose destructor panics never abort; public errors compose with `?`.
//!
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything took.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// `post_repeating_task` is deprecated in favour of `time::repeat`; its tests stay while it does.
#![allow(deprecated)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::batch::{BatchError, Batcher};
use taskrunner::cancel::{CancellationToken, Interrupted};
use taskrunner::time::{OneShotTimer, RepeatingTaskHandle, RepeatingTimer, RetainingOneShotTimer};
use taskrunner::PostTask;
use taskrunner::{
    KeyedTaskRunner, PanicPolicy, PostRefusal, SequencedTaskRunner, TaskError, TaskHandle,
    TaskPanic, TaskTraits, ThreadPool,
};

/// Turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// `join`, failing instead of hanging.
trait JoinOrHang<T> {
    fn join_or_hang(self) -> Result<T, TaskError>;
}

impl<T: Send + 'static> JoinOrHang<T> for TaskHandle<T> {
    fn join_or_hang(mut self) -> Result<T, TaskError> {
        self.join_timeout(HANG).expect("the task hung")
    }
}

/// This file's name, as `Location::file()` reports it.
const THIS_FILE: &str = "no_traps_time.rs";

/// What a pool's panic handler saw: (message, file, line) per panic.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, u32)>>>);

impl Seen {
    fn handler(&self) -> impl Fn(&TaskPanic) + Send + Sync + 'static {
        let seen = self.0.clone();
        move |p: &TaskPanic| {
            seen.lock().unwrap().push((
                p.message().to_owned(),
                p.posted_from().file().to_owned(),
                p.posted_from().line(),
            ))
        }
    }

    fn all(&self) -> Vec<(String, String, u32)> {
        self.0.lock().unwrap().clone()
    }

    fn wait_for(&self, n: usize) -> Vec<(String, String, u32)> {
        let deadline = std::time::Instant::now() + HANG;
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the panic handler never saw {n} panics: {all:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn pool_with_handler(workers: usize, seen: &Seen) -> ThreadPool {
    ThreadPool::builder()
        .max_workers(workers)
        .panic_handler(seen.handler())
        .build()
        .unwrap()
}

fn poison() -> TaskTraits {
    TaskTraits::new().panic_policy(PanicPolicy::Poison)
}

// Each helper posts on the line of its `line!()`: `#[track_caller]` must report that line
// (these helpers themselves are not `#[track_caller]`).

#[rustfmt::skip]
fn post_future_here<F>(seq: &SequencedTaskRunner, fut: F) -> (TaskHandle<F::Output>, u32)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (seq.post_future(fut).unwrap(), line!())
}

#[rustfmt::skip]
fn start_here(timer: &OneShotTimer, delay: Duration, f: impl FnOnce() + Send + 'static) -> u32 {
    (timer.start(delay, f).unwrap(), line!()).1
}

#[rustfmt::skip]
fn reset_here(timer: &RetainingOneShotTimer) -> (bool, u32) {
    (timer.reset(), line!())
}

#[rustfmt::skip]
fn keyed_post_here(keyed: &KeyedTaskRunner<u8>, key: u8, f: impl FnOnce() + Send + 'static) -> u32 {
    (keyed.post_task(key, f).unwrap(), line!()).1
}

#[rustfmt::skip]
fn keyed_delayed_here(keyed: &KeyedTaskRunner<u8>, key: u8, f: impl FnOnce() + Send + 'static) -> (TaskHandle<()>, u32) {
    (keyed.post_delayed_task_with_result(key, Duration::from_millis(1), f).unwrap(), line!())
}

#[rustfmt::skip]
fn repeating_here(pool: &ThreadPool, f: impl FnMut() + Send + 'static) -> (RepeatingTaskHandle, u32) {
    (pool.post_repeating_task(TaskTraits::default(), Duration::from_millis(1), f).unwrap(), line!())
}

type Dispatch = fn(Vec<u32>) -> Result<Vec<u32>, String>;

#[rustfmt::skip]
fn build_here(seq: &SequencedTaskRunner, d: Dispatch) -> (Batcher<u32, u32>, u32) {
    (Batcher::builder().runner(seq.clone()).flush_when_idle(false).max_wait(Duration::MAX).build(d), line!())
}

/// A panic payload whose destructor panics, `0` more levels deep: dropping it carelessly
/// unwinds out of the scheduler or aborts the process.
struct PanicsOnDrop(u32);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.0 > 0 {
            std::panic::panic_any(PanicsOnDrop(self.0 - 1));
        }
    }
}

/// Keeps the default panic hook from printing the many expected panics of these tests.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("expected:"))
                || info.payload().downcast_ref::<String>().is_some_and(|m| {
                    m.starts_with("expected:")
                        || m.contains("no reactor running")
                        || m.contains("tasks keep coming")
                })
                || info.payload().is::<PanicsOnDrop>();
            if !expected {
                default(info);
            }
        }));
    });
}

// ---- 1. durations mean what they say (real clock) -------------------------------------------

#[test]
fn cancel_after_max_is_no_deadline_and_does_not_panic() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let t = CancellationToken::new();
    assert!(t.cancel_after(&pool, Duration::MAX));
    assert!(!t.is_cancelled());
    assert_eq!(pool.pending_delayed_tasks(), 0, "nothing to schedule");
    // Huge but finite-looking: still beyond what `Instant` holds.
    assert!(t.cancel_after(&pool, Duration::MAX - Duration::from_nanos(1)));
    assert!(!t.wait_timeout(Duration::from_millis(1)));
    // A runner (not the pool itself) takes the same path.
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    assert!(t.cancel_after(&seq, Duration::MAX));
    t.cancel();
    assert_eq!(t.reason(), Some(Interrupted::Cancelled));
}

#[test]
fn wait_timeout_max_waits_without_limit_and_does_not_panic() {
    let done = CancellationToken::new();
    done.cancel();
    assert!(
        done.wait_timeout(Duration::MAX),
        "cancelled: returns at once"
    );

    let t = CancellationToken::new();
    let t2 = t.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        t2.cancel();
    });
    assert!(t.wait_timeout(Duration::MAX));
    canceller.join().unwrap();
}

#[test]
fn batcher_max_wait_just_below_max_does_not_panic() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let b = Batcher::builder()
        .pool(&pool)
        .flush_when_idle(false)
        .max_wait(Duration::MAX - Duration::from_nanos(1))
        .build(|xs: Vec<u32>| Ok::<_, String>(xs));
    let h = b.call(7);
    assert_eq!(b.pending(), 1, "no time limit: the batch stays open");
    b.flush();
    assert_eq!(h.join_or_hang().unwrap(), 7);
    assert_eq!(b.stats().closed_max_wait, 0);
}

#[test]
fn batcher_timeout_max_answers_every_request() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    for timeout in [Duration::MAX, Duration::MAX - Duration::from_nanos(1)] {
        let b = Batcher::builder()
            .pool(&pool)
            .timeout(timeout)
            .build(|xs: Vec<u32>| Ok::<_, String>(xs.iter().map(|x| x * 2).collect()));
        let hs: Vec<_> = (0..5).map(|i| b.call(i)).collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join_or_hang().unwrap(), 2 * i as u32, "{timeout:?}");
        }
        assert_eq!(b.stats().timed_out, 0);
        let async_b = Batcher::builder()
            .pool(&pool)
            .timeout(timeout)
            .build_async(|xs: Vec<u32>| async move { Ok::<_, String>(xs) });
        assert_eq!(async_b.call(3).join_or_hang().unwrap(), 3);
    }
}

// ---- 3. fire_now then stop -------------------------------------------------------------------

#[test]
fn fire_now_from_another_thread_is_pending_until_it_starts_and_stop_says_it_cancelled_it() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    // Keep the sequence busy so that the posted run cannot start before `stop`.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    seq.post_task(move || {
        busy_tx.send(()).unwrap();
        let _ = gate_rx.recv_timeout(HANG);
    })
    .unwrap();
    busy_rx.recv_timeout(HANG).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let timer = OneShotTimer::new(&seq);
    let r = ran.clone();
    timer
        .start(Duration::from_secs(3600), move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    assert!(timer.fire_now());
    assert!(timer.is_running(), "the posted run is pending");
    assert!(timer.stop(), "stop cancelled a pending run: it must say so");
    assert!(!timer.is_running());
    assert!(!timer.stop());
    gate_tx.send(()).unwrap();
    let flushed = seq.post_task_with_result(|| ()).unwrap();
    flushed.join_or_hang().unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a stopped fire_now still ran"
    );

    // Not stopped: the run happens, and the timer is stopped once it has started.
    let (tx, rx) = mpsc::channel();
    timer
        .start(Duration::from_secs(3600), move || tx.send(()).unwrap())
        .unwrap();
    assert!(timer.fire_now());
    rx.recv_timeout(HANG).unwrap();
    seq.post_task_with_result(|| ())
        .unwrap()
        .join_or_hang()
        .unwrap();
    assert!(!timer.is_running());
    assert!(!timer.stop(), "nothing was pending any more");
}

// ---- 4. keyed runners on huge pools ----------------------------------------------------------

#[test]
fn keyed_runner_on_a_pool_with_an_absurd_worker_count() {
    let mut tried = 0;
    for workers in [usize::MAX, usize::MAX - 1, usize::MAX / 4 + 1, 1 << 40] {
        // The builder may reject such counts; the keyed runner must not overflow if it doesn't.
        let Ok(pool) = ThreadPool::builder().max_workers(workers).build() else {
            continue;
        };
        tried += 1;
        let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
        let h = keyed.post_task_with_result(1, || 42).unwrap();
        assert_eq!(h.join_or_hang().unwrap(), 42);
        pool.shutdown();
    }
    // Whatever the builder accepts, a normal pool still works.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    assert_eq!(
        keyed
            .post_task_with_result(1, move || tried)
            .unwrap()
            .join_or_hang()
            .unwrap(),
        tried
    );
}

// ---- 5. futures and tokio --------------------------------------------------------------------

#[test]
fn a_future_using_tokio_without_a_runtime_gets_advice() {
    quiet_panics();
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq
        .post_future(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let err = h.join_or_hang().unwrap_err();
    assert!(err.is_panic(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no reactor running"), "{msg}");
    assert!(
        msg.contains("ThreadPoolBuilder::tokio_handle") && msg.contains("`tokio` feature"),
        "the message must say how to fix it: {msg}"
    );
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_sequence_future_awaits_tokio_sleep() {
        let rt = runtime();
        let pool = ThreadPool::builder()
            .max_workers(2)
            .tokio_handle(rt.handle().clone())
            .build()
            .unwrap();
        let seq = pool.create_sequenced_task_runner(TaskTraits::default());
        let h = seq
            .post_future(async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                7
            })
            .unwrap();
        assert_eq!(h.join_or_hang().unwrap(), 7);
        let spawned = pool
            .create_task_runner(TaskTraits::default())
            .post_future(async {
                tokio::time::timeout(Duration::from_secs(30), async { 8 })
                    .await
                    .unwrap()
            })
            .unwrap();
        assert_eq!(spawned.join_or_hang().unwrap(), 8);
        let pooled = pool
            .post_future(TaskTraits::default(), async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                9
            })
            .unwrap();
        assert_eq!(pooled.join_or_hang().unwrap(), 9);
    }

    #[test]
    fn a_local_future_and_an_async_batcher_use_tokio_too() {
        let rt = runtime();
        let pool = ThreadPool::builder()
            .max_workers(2)
            .tokio_handle(rt.handle().clone())
            .build()
            .unwrap();
        let st = pool.create_single_thread_task_runner(TaskTraits::default());
        let h = st
            .post_local_future(|| async {
                let local = std::rc::Rc::new(5);
                tokio::time::sleep(Duration::from_millis(1)).await;
                *local
            })
            .unwrap();
        assert_eq!(h.join_or_hang().unwrap(), 5);
        let b = Batcher::builder()
            .pool(&pool)
            .build_async(|xs: Vec<u32>| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, String>(xs)
            });
        assert_eq!(b.call(4).join_or_hang().unwrap(), 4);
    }
}

// ---- 6. panics contained and reported like a task's ------------------------------------------

/// A waker that, when the handle it was registered on resolves, checks (synchronously, on the
/// resolving thread) that the sequence is already poisoned and the panic handler already heard.
struct ResolveProbe {
    seq: SequencedTaskRunner,
    seen: Seen,
    /// (sequence refused a post, handler had heard) at the moment of the wake.
    at_wake: Mutex<Option<(bool, bool)>>,
}

impl std::task::Wake for ResolveProbe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut at = self.at_wake.lock().unwrap();
        if at.is_none() {
            let refused = self.seq.post_task(|| ()).is_err();
            *at = Some((refused, !self.seen.all().is_empty()));
        }
    }
}

#[test]
fn a_panicking_future_on_a_poison_sequence_poisons_it_before_its_handle_resolves() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let seq = pool.create_sequenced_task_runner(poison());
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let mut h = seq
        .post_future(async move {
            let _ = go_rx.await;
            std::panic::panic_any("expected: future boom")
        })
        .unwrap();
    // Register the probe as the handle's waker before the panic can happen.
    let probe = Arc::new(ResolveProbe {
        seq: seq.clone(),
        seen: seen.clone(),
        at_wake: Mutex::new(None),
    });
    let waker = std::task::Waker::from(probe.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::pin::Pin::new(&mut h).poll(&mut cx).is_pending());
    go_tx.send(()).unwrap();
    // Wait for the probe itself (a join would replace the handle's waker with its own).
    let deadline = std::time::Instant::now() + HANG;
    while probe.at_wake.lock().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the handle never resolved"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        *probe.at_wake.lock().unwrap(),
        Some((true, true)),
        "when the handle resolved, the sequence must already be poisoned and the panic reported"
    );
    let err = h.join_or_hang().unwrap_err();
    assert!(err.is_panic());
    let refused = seq.post_task(|| ()).unwrap_err();
    assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);
    assert_eq!(seen.all().len(), 1, "reported once: {:?}", seen.all());
}

/// Returns `Pending` once, waking itself: the rest of the future runs in a poll posted by a
/// wake-up.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[test]
fn a_future_panic_keeps_its_payload_and_reports_the_post_future_line_for_every_poll() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (h, line) = post_future_here(&seq, async move {
        YieldOnce(false).await; // the panic happens in a later poll, posted by a wake-up
        std::panic::panic_any("expected: second poll")
    });
    let err = h.join_or_hang().unwrap_err();
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"expected: second poll")
    );
    let all = seen.wait_for(1);
    let (msg, file, at) = &all[0];
    assert_eq!(msg, "expected: second poll");
    assert!(file.ends_with(THIS_FILE), "posted_from {file}:{at}");
    assert_eq!(*at, line, "the post_future call's line");
}

#[test]
fn a_panicking_timer_callback_on_a_poison_sequence_poisons_it_and_reports_the_start_line() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(1, &seen);
    let seq = pool.create_sequenced_task_runner(poison());
    let timer = OneShotTimer::new(&seq);
    let line = start_here(&timer, Duration::from_millis(1), || {
        std::panic::panic_any("expected: timer boom")
    });
    let all = seen.wait_for(1);
    assert_eq!(all[0].0, "expected: timer boom");
    assert!(all[0].1.ends_with(THIS_FILE), "{all:?}");
    assert_eq!(all[0].2, line);
    let refused = seq.post_task(|| ()).unwrap_err();
    assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);

    // post_repeating_task: every run reports the posting line.
    let seen = Seen::default();
    let pool = pool_with_handler(1, &seen);
    let (h, line) = repeating_here(&pool, || std::panic::panic_any("expected: tick"));
    let all = seen.wait_for(2);
    h.stop();
    assert!(
        all.iter()
            .all(|(_, f, l)| f.ends_with(THIS_FILE) && *l == line),
        "{all:?}"
    );
}

#[test]
fn timer_reset_reports_its_own_line() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(1, &seen);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let timer = RetainingOneShotTimer::new(&seq);
    // Hold the sequence so that the run armed by `start` cannot start before `reset` replaces
    // it.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    seq.post_task(move || {
        busy_tx.send(()).unwrap();
        let _ = gate_rx.recv_timeout(HANG);
    })
    .unwrap();
    busy_rx.recv_timeout(HANG).unwrap();
    timer
        .start(Duration::from_millis(1), || {
            std::panic::panic_any("expected: reset")
        })
        .unwrap();
    let (reset, line) = reset_here(&timer);
    assert!(reset);
    gate_tx.send(()).unwrap();
    let all = seen.wait_for(1);
    timer.stop();
    assert!(all[0].1.ends_with(THIS_FILE));
    assert_eq!(
        all[0].2, line,
        "the run armed by reset() reports reset's line"
    );
}

#[test]
fn a_panicking_keyed_task_reports_the_posting_line() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let keyed = pool.create_keyed_task_runner::<u8>(poison());
    let line = keyed_post_here(&keyed, 3, || std::panic::panic_any("expected: keyed boom"));
    let all = seen.wait_for(1);
    assert_eq!(all[0].0, "expected: keyed boom");
    assert!(all[0].1.ends_with(THIS_FILE), "{all:?}");
    assert_eq!(all[0].2, line);
    let (h, line) = keyed_delayed_here(&keyed, 4, || {
        std::panic::panic_any("expected: keyed delayed")
    });
    assert!(h.join_or_hang().unwrap_err().is_panic());
    let all = seen.wait_for(2);
    assert!(
        all.iter().any(|(m, f, l)| m == "expected: keyed delayed"
            && f.ends_with(THIS_FILE)
            && *l == line),
        "{all:?}"
    );
}

#[test]
fn a_panicking_batch_dispatcher_on_a_poison_sequence_poisons_it_before_the_requests_resolve() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let seq = pool.create_sequenced_task_runner(poison());
    let (b, line) = build_here(&seq, |_| std::panic::panic_any("expected: dispatcher"));
    let h = b.call(1);
    b.flush();
    let err = h.join_or_hang().unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(
        seq.post_task(|| ()).unwrap_err().reason(),
        PostRefusal::SequencePoisoned
    );
    let all = seen.all();
    assert!(
        all.iter()
            .any(|(m, f, l)| m == "expected: dispatcher" && f.ends_with(THIS_FILE) && *l == line),
        "reported with the build line before the request resolved: {all:?}"
    );
    assert_eq!(
        err.into_panic().downcast_ref::<&str>(),
        Some(&"expected: dispatcher"),
        "the payload is kept"
    );
}

#[test]
fn a_future_panic_payload_whose_destructor_panics_does_not_abort() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let h = seq
        .post_future(async { std::panic::panic_any(PanicsOnDrop(3)) })
        .unwrap();
    let err = h.join_or_hang().unwrap_err();
    assert!(err.is_panic());
    drop(err);
    let later = seq
        .post_future(async {
            YieldOnce(false).await;
            std::panic::panic_any(PanicsOnDrop(3))
        })
        .unwrap();
    assert!(later.join_or_hang().unwrap_err().is_panic());
    assert_eq!(
        seq.post_task_with_result(|| 5)
            .unwrap()
            .join_or_hang()
            .unwrap(),
        5
    );
}

#[test]
fn a_timer_panic_payload_whose_destructor_panics_does_not_abort() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    // A repeating timer's run (its task is caught to be given back to the timer).
    let timer = RepeatingTimer::new(&seq);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    timer
        .start(Duration::from_millis(1), move || {
            if r.fetch_add(1, Ordering::SeqCst) < 2 {
                std::panic::panic_any(PanicsOnDrop(3));
            }
        })
        .unwrap();
    let deadline = std::time::Instant::now() + HANG;
    while runs.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer stopped running"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    timer.stop();
    assert_eq!(
        seq.post_task_with_result(|| 5)
            .unwrap()
            .join_or_hang()
            .unwrap(),
        5
    );
}

#[test]
fn a_batch_dispatcher_panic_payload_whose_destructor_panics_does_not_abort() {
    quiet_panics();
    let seen = Seen::default();
    let pool = pool_with_handler(2, &seen);
    let b = Batcher::builder()
        .pool(&pool)
        .build(|_: Vec<u32>| -> Result<Vec<u32>, String> {
            std::panic::panic_any(PanicsOnDrop(3))
        });
    assert!(b.call(1).join_or_hang().unwrap_err().is_panic());
    let b = Batcher::builder()
        .pool(&pool)
        .build_async(|_: Vec<u32>| async move {
            YieldOnce(false).await;
            if true {
                std::panic::panic_any(PanicsOnDrop(3));
            }
            Ok::<Vec<u32>, String>(Vec::new())
        });
    assert!(b.call(1).join_or_hang().unwrap_err().is_panic());
    assert_eq!(
        pool.post_task_with_result(TaskTraits::default(), || 5)
            .unwrap()
            .join_or_hang()
            .unwrap(),
        5
    );
}

#[test]
fn a_cancellation_callback_panic_payload_whose_destructor_panics_does_not_abort() {
    quiet_panics();
    let t = CancellationToken::new();
    t.on_cancel(|_| std::panic::panic_any(PanicsOnDrop(3)));
    let after = Arc::new(AtomicUsize::new(0));
    let a = after.clone();
    t.on_cancel(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    t.cancel();
    assert_eq!(
        after.load(Ordering::SeqCst),
        1,
        "the other callbacks still ran"
    );
}

// ---- 7. errors compose with `?` --------------------------------------------------------------

#[test]
fn public_errors_are_std_errors() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<BatchError>();
    assert_error::<Interrupted>();
    fn uses_question_mark() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(BatchError::WrongResponseCount {
            expected: 2,
            got: 1,
        })?;
        Ok(())
    }
    let e = uses_question_mark().unwrap_err();
    assert!(e.to_string().contains("2"), "{e}");
}

// ---- mock time ---------------------------------------------------------------------------------

#[cfg(feature = "test-util")]
mod mock {
    use super::*;
    use taskrunner::testing::{ManualClock, TestEnvironment};
    use taskrunner::time::Clock;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    // ---- 1. durations mean what they say ---------------------------------------------------

    #[test]
    fn the_manual_clock_saturates_instead_of_overflowing() {
        let c = ManualClock::new();
        let t0 = c.now();
        c.advance(Duration::MAX);
        let end = c.now();
        assert!(end > t0);
        c.advance(Duration::MAX);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), end, "the clock stays at the end of its range");
    }

    #[test]
    fn advance_clock_and_fast_forward_by_max_run_every_finite_deadline() {
        let env = TestEnvironment::new();
        let pool = env.pool();
        let soon = pool
            .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(1), || 1)
            .unwrap();
        let late = pool
            .post_delayed_task_with_result(TaskTraits::default(), 200 * YEAR, || 2)
            .unwrap();
        env.fast_forward_by(Duration::MAX);
        assert_eq!(soon.join().unwrap(), 1);
        assert_eq!(late.join().unwrap(), 2);
        env.fast_forward_by(Duration::MAX); // again, at the end of the clock
        env.advance_clock(Duration::MAX);
        env.run_until_idle();

        let env = TestEnvironment::new();
        let h = env
            .pool()
            .post_delayed_task_with_result(TaskTraits::default(), 1000 * YEAR, || 3)
            .unwrap();
        env.advance_clock(Duration::MAX);
        env.run_until_idle();
        assert_eq!(h.join().unwrap(), 3);
        env.clock().advance(Duration::MAX);
    }

    #[test]
    fn a_timer_started_with_max_never_fires_and_can_be_stopped() {
        let env = TestEnvironment::new();
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        let fired = Arc::new(AtomicUsize::new(0));
        let timer = OneShotTimer::new(&seq);
        let f = fired.clone();
        timer
            .start(Duration::MAX, move || {
                f.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let ticking = RepeatingTimer::new(&seq);
        let f = fired.clone();
        ticking
            .start(Duration::MAX, move || {
                f.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        env.fast_forward_until_no_tasks_remain();
        assert_eq!(
            fired.load(Ordering::SeqCst),
            0,
            "fired before the end of time"
        );
        env.fast_forward_by(Duration::MAX);
        env.advance_clock(Duration::MAX);
        env.run_until_idle();
        assert_eq!(fired.load(Ordering::SeqCst), 0, "a never deadline came");
        assert!(timer.is_running() && ticking.is_running());
        assert_eq!(env.next_pending_delay(), None, "nothing will ever be due");
        assert!(timer.stop());
        assert!(ticking.stop());
        assert_eq!(env.pool().pending_delayed_tasks(), 0);
    }

    #[test]
    fn a_fifty_year_timer_fires_after_fifty_mock_years() {
        let env = TestEnvironment::new();
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        let fired = Arc::new(AtomicUsize::new(0));
        let timer = OneShotTimer::new(&seq);
        let f = fired.clone();
        timer
            .start(50 * YEAR, move || {
                f.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        env.fast_forward_by(50 * YEAR - Duration::from_secs(1));
        assert_eq!(fired.load(Ordering::SeqCst), 0, "not a moment early");
        env.fast_forward_by(Duration::from_secs(1));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancel_after_max_on_a_mock_clock_never_expires() {
        let env = TestEnvironment::new();
        let t = CancellationToken::new();
        assert!(t.cancel_after(env.pool(), Duration::MAX));
        let finite = CancellationToken::new();
        assert!(finite.cancel_after(env.pool(), 100 * YEAR));
        env.fast_forward_by(Duration::MAX);
        assert!(!t.is_cancelled());
        assert_eq!(finite.reason(), Some(Interrupted::DeadlineExceeded));
    }

    #[test]
    fn a_batch_without_time_limit_stays_open_however_far_time_moves() {
        let env = TestEnvironment::new();
        let b = Batcher::builder()
            .pool(env.pool())
            .flush_when_idle(false)
            .max_wait(Duration::MAX)
            .build(|xs: Vec<u32>| Ok::<_, String>(xs));
        let h = b.call(1);
        env.fast_forward_until_no_tasks_remain();
        env.fast_forward_by(Duration::MAX);
        assert_eq!(
            b.pending(),
            1,
            "a batch with no time limit was closed by time"
        );
        assert_eq!(b.stats().closed_max_wait, 0);
        b.flush();
        env.run_until_idle();
        assert_eq!(h.join().unwrap(), 1);
    }

    // ---- 2. mock time is exact -------------------------------------------------------------

    fn expect_runaway_panic(env: &TestEnvironment, f: impl FnOnce()) -> String {
        let _ = env;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("an unbounded fast-forward over repeating work must panic");
        caught
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| caught.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    #[test]
    fn fast_forward_until_no_tasks_remain_stops_promptly_on_a_repeating_timer() {
        let env = TestEnvironment::new();
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        let ticks = Arc::new(AtomicUsize::new(0));
        let timer = RepeatingTimer::new(&seq);
        let t = ticks.clone();
        timer
            .start(Duration::from_millis(1), move || {
                t.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let msg = expect_runaway_panic(&env, || env.fast_forward_until_no_tasks_remain());
        assert!(msg.contains("fast_forward_by"), "the advice: {msg}");
        let n = ticks.load(Ordering::SeqCst);
        assert!(n < 100_000, "{n} ticks before giving up: not prompt");
        timer.stop();
        env.fast_forward_until_no_tasks_remain(); // stopped: finishes at once
    }

    #[test]
    fn fast_forward_until_no_tasks_remain_stops_promptly_on_post_repeating_task() {
        let env = TestEnvironment::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let h = env
            .pool()
            .post_repeating_task(TaskTraits::default(), Duration::from_secs(1), move || {
                t.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let msg = expect_runaway_panic(&env, || env.fast_forward_until_no_tasks_remain());
        assert!(msg.contains("fast_forward_by"), "the advice: {msg}");
        assert!(ticks.load(Ordering::SeqCst) < 100_000, "not prompt");
        // fast_forward_by(MAX) has no end in time either: same rule.
        let before = ticks.load(Ordering::SeqCst);
        let msg = expect_runaway_panic(&env, || env.fast_forward_by(Duration::MAX));
        assert!(msg.contains("fast_forward_by"), "{msg}");
        assert!(
            ticks.load(Ordering::SeqCst) - before < 100_000,
            "not prompt"
        );
        assert!(h.stop());
    }

    #[test]
    fn fast_forward_until_no_tasks_remain_stops_promptly_on_a_self_reposting_task() {
        fn again(seq: taskrunner::SequencedTaskRunner, n: Arc<AtomicUsize>) {
            n.fetch_add(1, Ordering::SeqCst);
            let s = seq.clone();
            let _ = seq.post_delayed_task(Duration::from_millis(5), move || again(s, n));
        }
        let env = TestEnvironment::new();
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        let n = Arc::new(AtomicUsize::new(0));
        let (s, n2) = (seq.clone(), n.clone());
        seq.post_task(move || again(s, n2)).unwrap();
        let msg = expect_runaway_panic(&env, || env.fast_forward_until_no_tasks_remain());
        assert!(msg.contains("fast_forward_by"), "the advice: {msg}");
        assert!(n.load(Ordering::SeqCst) < 100_000, "not prompt");
    }

    #[test]
    fn finite_work_is_never_mistaken_for_a_loop() {
        let env = TestEnvironment::new();
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        // A timer that stops itself after 500 ticks, plus many one-shots.
        let ticks = Arc::new(AtomicUsize::new(0));
        let timer = Arc::new(RepeatingTimer::new(&seq));
        let (t, me) = (ticks.clone(), Arc::downgrade(&timer));
        timer
            .start(Duration::from_millis(1), move || {
                if t.fetch_add(1, Ordering::SeqCst) + 1 == 500 {
                    me.upgrade().unwrap().stop();
                }
            })
            .unwrap();
        let hs: Vec<_> = (1..=300u64)
            .map(|i| {
                seq.post_delayed_task_with_result(Duration::from_secs(i), move || i)
                    .unwrap()
            })
            .collect();
        env.fast_forward_until_no_tasks_remain();
        assert_eq!(ticks.load(Ordering::SeqCst), 500);
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64 + 1);
        }
    }

    #[test]
    fn global_guards_dropped_out_of_order_route_to_the_newest_live_environment() {
        let outer = TestEnvironment::new();
        let inner = TestEnvironment::new();
        let g_outer = outer.install_as_global();
        let g_inner = inner.install_as_global();
        let post = || {
            taskrunner::post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ())
                .unwrap()
        };
        post();
        assert_eq!(
            (outer.pending_task_count(), inner.pending_task_count()),
            (0, 1)
        );
        drop(g_outer); // out of order: the inner environment is still installed
        post();
        assert_eq!(
            (outer.pending_task_count(), inner.pending_task_count()),
            (0, 2),
            "after dropping the outer guard, free functions must still use the inner environment"
        );
        // Tasks of the inner pool still see it as the global pool.
        let h = taskrunner::post_task_with_result(TaskTraits::default(), || {
            taskrunner::post_delayed_task(TaskTraits::default(), Duration::from_secs(7200), || ())
                .unwrap();
        })
        .unwrap();
        inner.run_until_idle();
        h.join().unwrap();
        assert_eq!(inner.pending_task_count(), 3);
        drop(g_inner);
        // No environment is installed any more: the real global pool, not a released one.
        post();
        assert_eq!(
            (outer.pending_task_count(), inner.pending_task_count()),
            (0, 3),
            "a released environment received a free function's post"
        );

        // In order, and the same environment twice.
        let g1 = outer.install_as_global();
        let g2 = outer.install_as_global();
        drop(g1);
        post();
        assert_eq!(outer.pending_task_count(), 1);
        drop(g2);
        post();
        assert_eq!(outer.pending_task_count(), 1);
    }
}
