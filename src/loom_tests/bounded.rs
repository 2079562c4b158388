//! A bounded runner's queue and its pump (`runner::bounded`, state tables there), over a fake
//! runner whose posts a model thread runs (a bounded runner has one pump posted at a time, so
//! the fake's order does not matter).
//!
//! * a post racing the pump that takes the last task never leaves a task without a pump
//!   (every task runs exactly once; a task left behind shows up as a missing run);
//! * a poster blocked on a full queue is woken by the pump that makes room (a missed wake-up
//!   is a loom deadlock), and its task runs;
//! * a pump the sequence drops unrun (shutdown, poison) abandons the queue and wakes a blocked
//!   poster.

use std::panic::Location;

use super::model;
use super::orchestration::FakeRunner;
use crate::base::shim::{thread, Arc, AtomicBool, AtomicUsize, Ordering};
use crate::runner::{BoundedRunner, PostTask, QueuePolicy};

/// Plays the sequence beneath: takes what is posted (one pump at a time) and runs it, or
/// drops it unrun (`run == false`: shutdown, a poisoned sequence), until `done` is set and
/// nothing is left.
fn serve(inner: FakeRunner, done: Arc<AtomicBool>, run: bool) -> thread::JoinHandle<()> {
    thread::spawn(move || loop {
        // `done` first: it is set after the last post, so an empty runner seen after it
        // stays empty.
        let finished = done.load(Ordering::SeqCst);
        match inner.take_one() {
            Some(job) if run => job(),
            Some(job) => drop(job),
            None if finished => return,
            None => thread::yield_now(),
        }
    })
}

fn counted(ran: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let ran = ran.clone();
    move || {
        ran.fetch_add(1, Ordering::SeqCst);
    }
}

/// Posts one task to a bounded runner over a fake sequence, starts the sequence's thread
/// (running what it is given, or dropping it unrun if `run` is false), and posts a second task
/// while that thread takes the first pump. Returns the runner and how many tasks ran.
fn two_posts(
    capacity: usize,
    policy: QueuePolicy,
    run: bool,
) -> (BoundedRunner<FakeRunner>, usize) {
    let inner = FakeRunner::new();
    let r = BoundedRunner::new(inner.clone(), capacity, policy);
    let ran = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    r.post_task_from(counted(&ran), Location::caller())
        .expect("room");
    let sequence = serve(inner, done.clone(), run);
    // Under `Block` this post may wait for the pump to take the first task (or, if the pump is
    // dropped, for it to abandon the queue).
    r.post_task_from(counted(&ran), Location::caller())
        .expect("accepted");
    done.store(true, Ordering::SeqCst);
    sequence.join().unwrap();
    let n = ran.load(Ordering::SeqCst);
    (r, n)
}

#[test]
fn loom_bounded_post_vs_last_take() {
    model(|| {
        let (r, ran) = two_posts(2, QueuePolicy::Reject, true);
        // Whatever the interleaving, both ran: no task was left without a pump.
        assert_eq!(ran, 2);
        assert!(r.is_empty());
    });
}

#[test]
fn loom_bounded_blocked_poster_woken_by_the_pump() {
    model(|| {
        // Full until the sequence's pump takes the first task.
        let (_, ran) = two_posts(1, QueuePolicy::Block, true);
        assert_eq!(ran, 2);
    });
}

#[test]
fn loom_bounded_dropped_pump_wakes_blocked_poster() {
    model(|| {
        // The sequence drops what is posted to it (as shutdown or a poisoned sequence would):
        // the second post waits until the dropped pump abandons the queue, then is dropped too.
        let (r, ran) = two_posts(1, QueuePolicy::Block, false);
        assert_eq!(ran, 0);
        assert!(r.is_empty());
    });
}
