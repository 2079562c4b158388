//! `SequencedTaskRunner::current()`, `runs_tasks_in_current_sequence()`, `SequenceChecker`, and
//! the posting `Location` captured by `#[track_caller]`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use support::{Recorder, TIMEOUT};
use taskrunner::PostTask;
use taskrunner::{SequenceChecker, SequencedTaskRunner, ShutdownBehavior, TaskTraits, ThreadPool};

fn pool() -> ThreadPool {
    ThreadPool::builder().max_workers(2).build().unwrap()
}

/// Runs `f` as a task of `seq` and returns its result.
fn on<T: Send + 'static>(seq: &SequencedTaskRunner, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    seq.post_task(move || tx.send(f()).unwrap()).unwrap();
    rx.recv_timeout(TIMEOUT).expect("task ran")
}

#[test]
fn current_is_none_outside_any_task() {
    assert!(SequencedTaskRunner::current().is_none());
    let other = std::thread::spawn(|| SequencedTaskRunner::current().is_none());
    assert!(other.join().unwrap());
}

#[test]
fn current_is_none_inside_parallel_tasks() {
    let pool = pool();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(SequencedTaskRunner::current().is_none()).unwrap()
    })
    .unwrap();
    pool.create_task_runner(TaskTraits::default())
        .post_task(move || tx2.send(SequencedTaskRunner::current().is_none()).unwrap())
        .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    pool.shutdown();
}

#[test]
fn current_inside_a_sequenced_task_is_that_sequence_and_posts_to_it() {
    let pool = pool();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let other = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    let (s2, o2, r2) = (seq.clone(), other.clone(), rec.clone());
    let (same, not_other) = on(&seq, move || {
        let cur = SequencedTaskRunner::current().expect("set while a sequenced task runs");
        let r3 = r2.clone();
        cur.post_task(move || {
            // Posted through current(): runs on the same sequence.
            let cur = SequencedTaskRunner::current().unwrap();
            r3.push(cur.runs_tasks_in_current_sequence());
        })
        .unwrap();
        (cur.is_same_sequence(&s2), !cur.is_same_sequence(&o2))
    });
    assert!(same && not_other);
    assert_eq!(rec.wait_for_len(1), vec![true]);
    // Cleared again once the task is over.
    assert!(SequencedTaskRunner::current().is_none());
    pool.shutdown();
}

#[test]
fn current_is_cleared_between_tasks_on_the_same_worker() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    seq.post_task(|| ()).unwrap();
    // The same single worker runs a parallel task right after a sequenced one.
    pool.post_task(TaskTraits::default(), move || {
        tx.send(SequencedTaskRunner::current().is_none()).unwrap()
    })
    .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    pool.shutdown();
}

#[test]
fn runs_tasks_in_current_sequence_is_true_only_on_its_own_sequence() {
    let pool = pool();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::default());
    assert!(!a.runs_tasks_in_current_sequence(), "main thread");
    let a2 = a.clone();
    assert!(on(&a, move || a2.runs_tasks_in_current_sequence()));
    let a2 = a.clone();
    assert!(!on(&b, move || a2.runs_tasks_in_current_sequence()));
    // A clone is the same sequence; a parallel task is no sequence.
    let a2 = a.clone();
    let (tx, rx) = mpsc::channel();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(a2.runs_tasks_in_current_sequence()).unwrap()
    })
    .unwrap();
    assert!(!rx.recv_timeout(TIMEOUT).unwrap());
    // Another thread outside the pool.
    let a2 = a.clone();
    assert!(
        !std::thread::spawn(move || a2.runs_tasks_in_current_sequence())
            .join()
            .unwrap()
    );
    pool.shutdown();
}

#[test]
fn runs_tasks_in_current_sequence_for_single_thread_runners() {
    let pool = pool();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    assert!(!st.runs_tasks_in_current_sequence());
    let (tx, rx) = mpsc::channel();
    let (st2, view) = (st.clone(), st.as_sequenced());
    st.post_task(move || {
        tx.send((
            st2.runs_tasks_in_current_sequence(),
            view.runs_tasks_in_current_sequence(),
        ))
        .unwrap()
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), (true, true));
    let st2 = st.clone();
    assert!(!on(&seq, move || st2.runs_tasks_in_current_sequence()));
    pool.shutdown();
}

#[test]
fn sequence_checker_passes_on_its_own_sequence_across_workers() {
    let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let checker = Arc::new(on(&seq, SequenceChecker::new));
    let mut results = Vec::new();
    for _ in 0..50 {
        let c = checker.clone();
        results.push(on(&seq, move || {
            c.check(); // must not panic
            c.called_on_valid_sequence()
        }));
    }
    assert!(results.into_iter().all(|ok| ok));
    pool.shutdown();
}

#[test]
fn sequence_checker_bound_to_one_sequence_fails_on_another() {
    let pool = pool();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::default());
    let checker = Arc::new(on(&a, SequenceChecker::new));
    let c = checker.clone();
    let on_b = on(&b, move || c.called_on_valid_sequence());
    let on_main = checker.called_on_valid_sequence();
    let c = checker.clone();
    let (tx, rx) = mpsc::channel();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(c.called_on_valid_sequence()).unwrap()
    })
    .unwrap();
    let on_parallel = rx.recv_timeout(TIMEOUT).unwrap();
    if cfg!(debug_assertions) {
        assert!(!on_b, "another sequence");
        assert!(!on_main, "the main thread");
        assert!(!on_parallel, "a parallel task");
    } else {
        assert!(
            on_b && on_main && on_parallel,
            "release builds never fail a check"
        );
    }
    let c = checker.clone();
    assert!(
        on(&a, move || c.called_on_valid_sequence()),
        "still valid on its own sequence"
    );
    pool.shutdown();
}

/// A task that panics with `n` as its message.
fn boom(n: u32) -> impl FnOnce() + Send + 'static {
    move || panic!("{n}")
}

fn first_number_after(haystack: &str, marker: &str) -> Option<u64> {
    let rest = &haystack[haystack.find(marker)? + marker.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn sequence_checker_check_panics_naming_both_sequences() {
    let pool = pool();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::default());
    let checker = Arc::new(on(&a, SequenceChecker::new));
    let c = checker.clone();
    let outcome = on(&b, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.check())).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
    });
    if cfg!(debug_assertions) {
        let msg = outcome.expect_err("check() on the wrong sequence panics in debug builds");
        assert!(msg.contains("SequenceChecker"), "{msg}");
        let called_on = first_number_after(&msg, "called on sequence");
        let bound_to = first_number_after(&msg, "bound to sequence");
        assert!(
            called_on.is_some() && bound_to.is_some() && called_on != bound_to,
            "the message names both sequences: {msg}"
        );
    } else {
        assert!(outcome.is_ok(), "release builds never panic");
    }
    pool.shutdown();
}

#[test]
fn sequence_checker_detach_rebinds_to_the_next_sequence_that_checks() {
    let pool = pool();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::default());
    let mut checker = on(&a, SequenceChecker::new);
    checker.detach();
    let checker = Arc::new(checker);
    let c = checker.clone();
    assert!(on(&b, move || c.called_on_valid_sequence()), "binds to b");
    let c = checker.clone();
    assert!(on(&b, move || c.called_on_valid_sequence()));
    let c = checker.clone();
    let on_a = on(&a, move || c.called_on_valid_sequence());
    assert_eq!(on_a, !cfg!(debug_assertions), "now bound to b, not a");

    // A detached checker created outside the pool binds on first use.
    let late = Arc::new(SequenceChecker::detached());
    let c = late.clone();
    assert!(on(&a, move || c.called_on_valid_sequence()));
    assert_eq!(late.called_on_valid_sequence(), !cfg!(debug_assertions));
    pool.shutdown();
}

#[test]
fn sequence_checker_created_outside_the_pool_degrades_to_a_thread_check() {
    let checker = SequenceChecker::new();
    assert!(checker.called_on_valid_sequence());
    let ok = std::thread::scope(|s| {
        s.spawn(|| checker.called_on_valid_sequence())
            .join()
            .unwrap()
    });
    assert_eq!(ok, !cfg!(debug_assertions));
}

#[test]
fn sequence_checker_is_zero_sized_in_release_builds() {
    if !cfg!(debug_assertions) {
        assert_eq!(std::mem::size_of::<SequenceChecker>(), 0);
    }
}

/// `#[track_caller]` on every post method: the location reported for a panicking task is the
/// line of the post call in this file, not a line inside the crate.
#[test]
fn posted_from_is_the_line_of_the_post_call() {
    let seen: Recorder<(String, &'static str, u32)> = Recorder::new();
    let s2 = seen.clone();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |p| {
            s2.push((
                p.message().to_owned(),
                p.posted_from().file(),
                p.posted_from().line(),
            ))
        })
        .build()
        .unwrap();
    let t = TaskTraits::default();
    let seq = pool.create_sequenced_task_runner(t);
    let par = pool.create_task_runner(t);
    let st = pool.create_single_thread_task_runner(t);
    let view = st.as_sequenced();
    let d = Duration::from_millis(1);
    // Kept short so that rustfmt never splits `line!()` and the post call onto two lines.
    let posts = [
        (line!(), pool.post_task(t, boom(1))),
        (line!(), pool.post_delayed_task(t, d, boom(2))),
        (line!(), seq.post_task(boom(3))),
        (line!(), seq.post_delayed_task(d, boom(4))),
        (line!(), par.post_task(boom(5))),
        (line!(), par.post_delayed_task(d, boom(6))),
        (line!(), st.post_task(boom(7))),
        (line!(), st.post_delayed_task(d, boom(8))),
        (line!(), view.post_task(boom(9))),
    ];
    let mut expected = Vec::new();
    for (i, (line, result)) in posts.into_iter().enumerate() {
        assert!(result.is_ok(), "post {} accepted", i + 1);
        expected.push(((i + 1).to_string(), file!(), line));
    }
    let mut got = seen.wait_for_len(expected.len());
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    pool.shutdown();
}

#[test]
fn running_task_report_carries_the_posting_location() {
    // The same location reaches shutdown_timeout's report for sequenced tasks.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(
        TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown),
    );
    let blocker = support::Blocker::new();
    let posted = (line!(), seq.post_task(blocker.task()));
    posted.1.unwrap();
    blocker.wait_started();
    let err = pool
        .shutdown_timeout(Duration::from_millis(20))
        .unwrap_err();
    let running = err.running();
    assert_eq!(running.len(), 1);
    assert!(running[0].sequenced);
    assert_eq!(
        (running[0].posted_from.file(), running[0].posted_from.line()),
        (file!(), posted.0)
    );
    blocker.release();
    pool.shutdown();
}
