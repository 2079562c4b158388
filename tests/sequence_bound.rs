//! `SequenceBound<T>`: constructed on its sequence, called in order, destroyed on its sequence
//! after every queued call, replies through `async_call(..).then(..)` on the caller's sequence,
//! and no lock or `Sync` bound in user code (`T` may be `!Sync`).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use taskrunner::PostTask;
use taskrunner::{PostRefusal, SequenceBound, SequencedTaskRunner, TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// What happened to a [`Tracked`] state, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Made { on_sequence: bool },
    Call(u32),
    Dropped { on_sequence: bool },
}

/// A state that reports its construction, calls and destruction, and whether each happened on
/// its own sequence. Deliberately `!Sync` (a `Cell`).
struct Tracked {
    seq: SequencedTaskRunner,
    events: Sender<Event>,
    calls: Cell<u32>,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn bind(
        seq: &SequencedTaskRunner,
        drops: &Arc<AtomicUsize>,
    ) -> (SequenceBound<Tracked>, Receiver<Event>) {
        let (tx, rx) = unbounded();
        let (s2, d2) = (seq.clone(), drops.clone());
        let bound = SequenceBound::new(seq.clone(), move || {
            tx.send(Event::Made {
                on_sequence: s2.runs_tasks_in_current_sequence(),
            })
            .unwrap();
            Tracked {
                seq: s2,
                events: tx,
                calls: Cell::new(0),
                drops: d2,
            }
        })
        .unwrap();
        (bound, rx)
    }

    fn call(&self, i: u32) {
        self.calls.set(self.calls.get() + 1);
        self.events.send(Event::Call(i)).unwrap();
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        let _ = self.events.send(Event::Dropped {
            on_sequence: self.seq.runs_tasks_in_current_sequence(),
        });
    }
}

fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(HANG)
        .expect("no event from the bound state")
}

/// Holds a sequence: the returned sender releases it.
fn hold(seq: &SequencedTaskRunner) -> Sender<()> {
    let (go_tx, go_rx) = bounded::<()>(1);
    let (started_tx, started_rx) = bounded::<()>(1);
    seq.post_task(move || {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(HANG).expect("sequence never released");
    })
    .unwrap();
    started_rx.recv_timeout(HANG).unwrap();
    go_tx
}

#[test]
fn the_state_is_constructed_on_its_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Arc::new(AtomicUsize::new(0));
    let (bound, rx) = Tracked::bind(&seq, &drops);
    assert_eq!(next(&rx), Event::Made { on_sequence: true });
    assert!(bound.runner().is_same_sequence(&seq));
    assert!(format!("{bound:?}").contains("SequenceBound"));
}

#[test]
fn calls_run_in_posting_order() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let log = SequenceBound::new(seq, Vec::<u32>::new).unwrap();
    for i in 0..1000 {
        if i % 3 == 0 {
            log.post(move |v| v.push(i)).unwrap();
        } else {
            let h = log
                .post_with_result(move |v| {
                    v.push(i);
                    v.len()
                })
                .unwrap();
            drop(h); // not joined: dropping a handle does not cancel
        }
    }
    let all = log
        .post_with_result(std::mem::take)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

/// Several threads call one bound concurrently (it is `Sync`): each thread's calls stay in its
/// own order, and no call is lost — with a plain `Vec`, no lock in user code.
#[test]
fn concurrent_callers_keep_their_own_order() {
    const THREADS: u32 = 4;
    const CALLS: u32 = 500;
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let log = SequenceBound::new(seq, Vec::<(u32, u32)>::new).unwrap();
    thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                for i in 0..CALLS {
                    log.post(move |v| v.push((t, i))).unwrap();
                }
            });
        }
    });
    let all = log
        .post_with_result(std::mem::take)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(all.len(), (THREADS * CALLS) as usize);
    for t in 0..THREADS {
        let mine: Vec<u32> = all.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
        assert_eq!(mine, (0..CALLS).collect::<Vec<_>>(), "thread {t}");
    }
}

#[test]
fn dropping_the_bound_destroys_the_state_on_its_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Arc::new(AtomicUsize::new(0));
    let (bound, rx) = Tracked::bind(&seq, &drops);
    assert_eq!(next(&rx), Event::Made { on_sequence: true });
    bound.post(|t| t.call(1)).unwrap();
    assert_eq!(next(&rx), Event::Call(1));
    assert_eq!(drops.load(Ordering::SeqCst), 0, "alive while the bound is");
    drop(bound);
    assert_eq!(next(&rx), Event::Dropped { on_sequence: true });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "nothing after destruction"
    );
}

/// The bound is dropped while its sequence is held with calls queued: every queued call runs
/// first, in order, then the state is destroyed — on the sequence.
#[test]
fn drop_while_calls_are_queued_runs_them_all_then_destroys() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Arc::new(AtomicUsize::new(0));
    let (bound, rx) = Tracked::bind(&seq, &drops);
    assert_eq!(next(&rx), Event::Made { on_sequence: true });
    let release = hold(&seq);
    for i in 0..100 {
        bound.post(move |t| t.call(i)).unwrap();
    }
    let last = bound.post_with_result(|t| t.calls.get()).unwrap();
    drop(bound);
    // Nothing has run yet: the sequence is held.
    assert!(rx.try_recv().is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    release.send(()).unwrap();
    for i in 0..100 {
        assert_eq!(next(&rx), Event::Call(i));
    }
    assert_eq!(next(&rx), Event::Dropped { on_sequence: true });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // A call queued before the drop still got the live state.
    assert_eq!(last.join().unwrap(), 100);
}

/// `async_call(..).then(reply)` runs the call on the state's sequence and the reply on the
/// caller's, with the value moved.
#[test]
fn async_call_then_replies_on_the_callers_sequence() {
    let pool = pool(2);
    let state_seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let caller = pool.create_sequenced_task_runner(TaskTraits::default());
    let cache =
        Arc::new(SequenceBound::new(state_seq.clone(), || vec![String::from("v1")]).unwrap());
    let (tx, rx) = bounded(1);
    let (c2, s2) = (caller.clone(), state_seq.clone());
    let cache2 = cache.clone();
    caller
        .post_task(move || {
            let s3 = s2.clone();
            cache2
                .async_call(move |c: &mut Vec<String>| {
                    assert!(s3.runs_tasks_in_current_sequence());
                    c.push(String::from("v2"));
                    c.clone()
                })
                .then(move |v: Vec<String>| {
                    tx.send((
                        v,
                        c2.runs_tasks_in_current_sequence(),
                        s2.runs_tasks_in_current_sequence(),
                    ))
                    .unwrap();
                })
                .unwrap();
        })
        .unwrap();
    let (v, on_caller, on_state) = rx.recv_timeout(HANG).unwrap();
    assert_eq!(v, ["v1", "v2"]);
    assert!(on_caller, "the reply runs on the caller's sequence");
    assert!(!on_state);
    // The call really changed the state.
    assert_eq!(
        cache.post_with_result(|c| c.len()).unwrap().join().unwrap(),
        2
    );
}

#[test]
fn async_call_outside_a_sequence_is_refused_with_the_call_handed_back() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let bound = SequenceBound::new(seq, || 41_u32).unwrap();
    let e = bound
        .async_call(|n: &mut u32| {
            *n += 1;
            *n
        })
        .then(|_n| ())
        .unwrap_err();
    assert_eq!(e.reason(), PostRefusal::NoCurrentSequence);
    let mut local = 1;
    assert_eq!(
        (e.into_inner())(&mut local),
        2,
        "the call closure comes back"
    );
    // The state was not touched.
    assert_eq!(bound.post_with_result(|n| *n).unwrap().join().unwrap(), 41);
}

/// The whole point: a `!Sync` state (`Cell`, `RefCell`), mutated from many threads through the
/// bound, with no `Mutex` anywhere in user code.
#[test]
fn a_not_sync_state_needs_no_lock() {
    struct Counter {
        hits: Cell<u32>,
        history: RefCell<Vec<u32>>,
    }
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let counter = SequenceBound::new(seq, || Counter {
        hits: Cell::new(0),
        history: RefCell::new(Vec::new()),
    })
    .unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            let counter = &counter;
            s.spawn(move || {
                for _ in 0..1000 {
                    counter
                        .post(|c| {
                            let n = c.hits.get() + 1;
                            c.hits.set(n);
                            c.history.borrow_mut().push(n);
                        })
                        .unwrap();
                }
            });
        }
    });
    let (hits, history_ok) = counter
        .post_with_result(|c| {
            let h = c.history.borrow();
            (c.hits.get(), h.iter().copied().eq(1..=4000))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(hits, 4000);
    assert!(history_ok, "no increment was lost or reordered");
}

#[test]
fn calls_on_a_single_thread_runner_stay_on_its_thread() {
    let pool = pool(2);
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let bound = SequenceBound::new(st.as_sequenced(), || thread::current().id()).unwrap();
    let (made_on, now_on) = bound
        .post_with_result(|made_on| (*made_on, thread::current().id()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(made_on, now_on);
    let st_thread = st
        .post_task_with_result(|| thread::current().id())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(made_on, st_thread);
}

/// After shutdown the destruction task is refused: the state is then dropped by whoever holds
/// it last (here, the dropping thread), so nothing leaks.
#[test]
fn dropping_after_shutdown_still_destroys_the_state() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Arc::new(AtomicUsize::new(0));
    let (bound, rx) = Tracked::bind(&seq, &drops);
    assert_eq!(next(&rx), Event::Made { on_sequence: true });
    pool.shutdown();
    let e = bound.post(|t| t.call(9)).unwrap_err();
    assert!(e.is_shutdown());
    drop(bound);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(next(&rx), Event::Dropped { on_sequence: false });
}

#[test]
fn construction_refused_after_shutdown_hands_make_back() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    pool.shutdown();
    let e = SequenceBound::new(seq, || 5_u8).unwrap_err();
    assert!(e.is_shutdown());
    assert_eq!((e.into_inner())(), 5);
}

/// A constructor that panics leaves no state: later calls resolve as panics (they never hang and
/// never see a half-built `T`), and dropping the bound is fine.
#[test]
fn a_panicking_constructor_fails_the_calls() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let bound = SequenceBound::new(seq.clone(), || -> u32 { panic!("cannot build") }).unwrap();
    let err = bound.post_with_result(|n| *n).unwrap().join().unwrap_err();
    assert!(err.is_panic());
    drop(bound);
    // The sequence carries on.
    assert_eq!(seq.post_task_with_result(|| 1).unwrap().join().unwrap(), 1);
}
