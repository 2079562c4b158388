//! A sequence runs its tasks one at a time, in posting order, and each task sees the effects of
//! the one before it, whichever worker runs it.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use support::{Latch, Recorder};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskPriority, TaskTraits, ThreadPool};

/// What one sequence observed while its tasks ran.
#[derive(Default)]
struct SeqLog {
    /// Set for the duration of each task: must never be seen set on entry.
    in_task: AtomicBool,
    overlaps: AtomicUsize,
    /// (poster, index) in run order.
    order: Mutex<Vec<(usize, usize)>>,
}

#[test]
fn sequence_runs_tasks_in_posting_order_one_at_a_time_under_many_posters() {
    const SEQUENCES: usize = 8;
    const POSTERS: usize = 4;
    const PER_POSTER_PER_SEQ: usize = 300;
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let priorities = [
        TaskPriority::UserBlocking,
        TaskPriority::UserVisible,
        TaskPriority::BestEffort,
    ];
    let seqs: Vec<(SequencedTaskRunner, Arc<SeqLog>)> = (0..SEQUENCES)
        .map(|i| {
            let traits = TaskTraits::new().priority(priorities[i % priorities.len()]);
            (
                pool.create_sequenced_task_runner(traits),
                Arc::new(SeqLog::default()),
            )
        })
        .collect();
    let total = SEQUENCES * POSTERS * PER_POSTER_PER_SEQ;
    let done = Latch::new(total);

    std::thread::scope(|s| {
        for poster in 0..POSTERS {
            let seqs = &seqs;
            let done = &done;
            s.spawn(move || {
                for i in 0..PER_POSTER_PER_SEQ {
                    // Each poster walks the sequences from a different start, so posts to one
                    // sequence from different threads genuinely interleave.
                    for k in 0..SEQUENCES {
                        let (runner, log) = &seqs[(k + poster) % SEQUENCES];
                        let log = log.clone();
                        let done = done.clone();
                        runner
                            .post_task(move || {
                                if log.in_task.swap(true, Ordering::SeqCst) {
                                    log.overlaps.fetch_add(1, Ordering::SeqCst);
                                }
                                log.order.lock().unwrap().push((poster, i));
                                if i % 16 == 0 {
                                    std::thread::yield_now(); // widen the window for an overlap
                                }
                                log.in_task.store(false, Ordering::SeqCst);
                                done.count_down();
                            })
                            .unwrap();
                    }
                }
            });
        }
    });
    done.wait();

    for (n, (_, log)) in seqs.iter().enumerate() {
        assert_eq!(
            log.overlaps.load(Ordering::SeqCst),
            0,
            "sequence {n}: two tasks ran at once"
        );
        let order = log.order.lock().unwrap();
        assert_eq!(
            order.len(),
            POSTERS * PER_POSTER_PER_SEQ,
            "sequence {n}: every task runs once"
        );
        for poster in 0..POSTERS {
            let mine: Vec<usize> = order
                .iter()
                .filter(|(p, _)| *p == poster)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(
                mine,
                (0..PER_POSTER_PER_SEQ).collect::<Vec<_>>(),
                "sequence {n}: poster {poster}'s tasks ran out of posting order"
            );
        }
    }
    pool.shutdown();
}

#[test]
fn sequence_runs_tasks_of_one_poster_in_exact_posting_order() {
    let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    for i in 0..2000 {
        seq.post_task(rec.task(i)).unwrap();
    }
    assert_eq!(rec.wait_for_len(2000), (0..2000).collect::<Vec<_>>());
    pool.shutdown();
}

/// Happens-before between consecutive tasks: each task does a non-atomic-style
/// read-modify-write (a relaxed load, then a relaxed store) of the sequence's counter. Only the
/// sequence's ordering makes the next task read the latest value, so a lost update or a stale
/// read shows up as a wrong value, even when consecutive tasks run on different workers.
#[test]
fn sequence_tasks_see_the_effects_of_earlier_tasks() {
    const SEQUENCES: usize = 6;
    const TASKS: u64 = 2000;
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let done = Latch::new(SEQUENCES * TASKS as usize);
    let stale_reads = Arc::new(AtomicUsize::new(0));
    let threads: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
    let counters: Vec<Arc<AtomicU64>> = (0..SEQUENCES).map(|_| Arc::default()).collect();

    std::thread::scope(|s| {
        for counter in &counters {
            let seq = pool.create_sequenced_task_runner(TaskTraits::default());
            let (done, stale_reads, threads) = (done.clone(), stale_reads.clone(), threads.clone());
            s.spawn(move || {
                for expected in 0..TASKS {
                    let (counter, done, stale_reads, threads) = (
                        counter.clone(),
                        done.clone(),
                        stale_reads.clone(),
                        threads.clone(),
                    );
                    seq.post_task(move || {
                        let v = counter.load(Ordering::Relaxed);
                        if v != expected {
                            stale_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        counter.store(v + 1, Ordering::Relaxed);
                        if expected % 64 == 0 {
                            threads.lock().unwrap().insert(std::thread::current().id());
                        }
                        done.count_down();
                    })
                    .unwrap();
                }
            });
        }
    });
    done.wait();
    assert_eq!(stale_reads.load(Ordering::SeqCst), 0);
    for c in &counters {
        assert_eq!(c.load(Ordering::SeqCst), TASKS);
    }
    // Not asserted (the scheduler may legitimately keep a sequence on one thread), but with 4
    // workers and 6 busy sequences the tasks normally hop between threads.
    assert!(!threads.lock().unwrap().is_empty());
    pool.shutdown();
}

/// State owned by a sequence can be moved from task to task without any synchronisation of
/// its own: the sequence provides it.
#[test]
fn sequence_owned_state_moves_between_tasks_without_locks() {
    struct State {
        visits: Vec<u32>,
    }
    fn step(
        seq: SequencedTaskRunner,
        mut state: State,
        n: u32,
        out: std::sync::mpsc::Sender<Vec<u32>>,
    ) {
        state.visits.push(n);
        if n == 500 {
            out.send(state.visits).unwrap();
            return;
        }
        let next = seq.clone();
        seq.post_task(move || step(next, state, n + 1, out))
            .unwrap();
    }
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = seq.clone();
    seq.post_task(move || step(s2, State { visits: Vec::new() }, 0, tx))
        .unwrap();
    let visits = rx.recv_timeout(support::TIMEOUT).unwrap();
    assert_eq!(visits, (0..=500).collect::<Vec<_>>());
    pool.shutdown();
}

/// A post happens-before the run of the posted task.
#[test]
fn post_happens_before_the_posted_task_runs() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let runner = pool.create_task_runner(TaskTraits::default());
    let bad = Arc::new(AtomicUsize::new(0));
    let done = Latch::new(2000);
    for i in 0..1000u64 {
        let cell = Arc::new(AtomicU64::new(0));
        cell.store(i + 1, Ordering::Relaxed);
        let (c2, bad2, done2) = (cell.clone(), bad.clone(), done.clone());
        seq.post_task(move || {
            if c2.load(Ordering::Relaxed) != i + 1 {
                bad2.fetch_add(1, Ordering::SeqCst);
            }
            done2.count_down();
        })
        .unwrap();
        let (bad3, done3) = (bad.clone(), done.clone());
        runner
            .post_task(move || {
                if cell.load(Ordering::Relaxed) != i + 1 {
                    bad3.fetch_add(1, Ordering::SeqCst);
                }
                done3.count_down();
            })
            .unwrap();
    }
    done.wait();
    assert_eq!(bad.load(Ordering::SeqCst), 0);
    pool.shutdown();
}

/// A task that posts to its own sequence: the new task goes to the tail, behind tasks posted
/// earlier from elsewhere, and never runs while its poster is still running.
#[test]
fn task_posted_to_its_own_sequence_runs_after_the_poster_and_earlier_posts() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    let go = Latch::new(1);
    let poster_done = Arc::new(AtomicBool::new(false));

    let (rec_a, go_a, done_a) = (rec.clone(), go.clone(), poster_done.clone());
    seq.post_task(move || {
        rec_a.push("A");
        go_a.wait(); // "C" is posted from the main thread while A runs
        let me = SequencedTaskRunner::current().expect("inside a sequenced task");
        let (rec_b, done_b) = (rec_a.clone(), done_a.clone());
        me.post_task(move || {
            // A must have returned before B starts.
            rec_b.push(if done_b.load(Ordering::SeqCst) {
                "B"
            } else {
                "B-overlapping-A"
            });
        })
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20)); // give an overlap a chance
        done_a.store(true, Ordering::SeqCst);
    })
    .unwrap();
    seq.post_task(rec.task("C")).unwrap();
    go.count_down();
    assert_eq!(rec.wait_for_len(3), vec!["A", "C", "B"]);
    pool.shutdown();
}

#[test]
fn task_reposting_itself_many_times_runs_every_repost_in_order() {
    fn again(seq: SequencedTaskRunner, n: usize, rec: Recorder<usize>) {
        rec.push(n);
        if n + 1 < 1000 {
            let s2 = seq.clone();
            seq.post_task(move || again(s2, n + 1, rec)).unwrap();
        }
    }
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    // Two independent chains on one sequence interleave but each stays in order.
    let (s1, s2) = (seq.clone(), seq.clone());
    let (r1, r2) = (rec.clone(), Recorder::new());
    let r2c = r2.clone();
    seq.post_task(move || again(s1, 0, r1)).unwrap();
    seq.post_task(move || again(s2, 0, r2c)).unwrap();
    assert_eq!(rec.wait_for_len(1000), (0..1000).collect::<Vec<_>>());
    assert_eq!(r2.wait_for_len(1000), (0..1000).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn different_sequences_run_in_parallel() {
    // Two sequences each block until the other has started: only possible if they run at once.
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    let b = pool.create_sequenced_task_runner(TaskTraits::default());
    let both = Latch::new(2);
    let done = Latch::new(2);
    for r in [&a, &b] {
        let (both, done) = (both.clone(), done.clone());
        r.post_task(move || {
            both.count_down();
            both.wait();
            done.count_down();
        })
        .unwrap();
    }
    done.wait();
    pool.shutdown();
}
