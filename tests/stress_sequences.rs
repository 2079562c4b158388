//! Stress: many real threads post to many sequences and parallel runners at once, tasks post
//! more tasks, and every invariant is checked at the end: per-poster FIFO on every sequence,
//! mutual exclusion, happens-before between consecutive tasks, and an exact count of runs.
//!
//! Scaled by `TASKRUNNER_STRESS_SCALE` (default 1.0; CI uses 0.25): scaled down, never skipped.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{scaled, wait_until, DropCounter, Rng};
use taskrunner::PostTask;
use taskrunner::{
    PostRefusal, SequencedTaskRunner, ShutdownBehavior, TaskPriority, TaskRunner, TaskTraits,
    ThreadPool,
};

const POSTERS: usize = 6;
const SEQUENCES: usize = 24;
/// Poster ids: `0..POSTERS` are threads, `POSTERS + s` is sequence `s` posting from its tasks;
/// `UNORDERED` marks posts with no FIFO promise (delayed, or from parallel tasks).
const UNORDERED: usize = usize::MAX;

/// State owned by one sequence. The mutex is only ever taken with `try_lock`: if a task of the
/// sequence ever found it held, two tasks of the sequence would be running at once.
struct SeqState {
    /// Per poster id, the index its next task must carry.
    next_from: Vec<usize>,
    /// Per target sequence, the index of this sequence's next post to it.
    next_to: Vec<usize>,
    runs: u64,
}

struct Seq {
    runner: SequencedTaskRunner,
    state: Mutex<SeqState>,
    in_task: AtomicBool,
    /// Read-modify-written with relaxed ordering by every task: only the sequence's
    /// happens-before edges keep it exact.
    relaxed_runs: AtomicU64,
}

#[derive(Default)]
struct Checks {
    posted: AtomicUsize,
    ran: AtomicUsize,
    overlaps: AtomicUsize,
    out_of_order: AtomicUsize,
    stale_reads: AtomicUsize,
}

struct World {
    seqs: Vec<Seq>,
    parallel: Vec<TaskRunner>,
    checks: Checks,
}

fn run_on_sequence(world: &Arc<World>, s: usize, poster: usize, index: usize, may_post: bool) {
    let seq = &world.seqs[s];
    let c = &world.checks;
    if seq.in_task.swap(true, Ordering::SeqCst) {
        c.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    let v = seq.relaxed_runs.load(Ordering::Relaxed);
    let Ok(mut st) = seq.state.try_lock() else {
        c.overlaps.fetch_add(1, Ordering::SeqCst);
        seq.relaxed_runs.store(v + 1, Ordering::Relaxed);
        seq.in_task.store(false, Ordering::SeqCst);
        c.ran.fetch_add(1, Ordering::SeqCst);
        return;
    };
    if v != st.runs {
        c.stale_reads.fetch_add(1, Ordering::SeqCst);
    }
    st.runs += 1;
    seq.relaxed_runs.store(v + 1, Ordering::Relaxed);
    if poster != UNORDERED {
        if st.next_from[poster] != index {
            c.out_of_order.fetch_add(1, Ordering::SeqCst);
        }
        st.next_from[poster] = index + 1;
    }
    // Now and then, post from inside the task: to another sequence (ordered, as this sequence
    // is one poster) or to this very sequence through `current()`.
    if may_post && index % 8 == 3 {
        let target = (s + 1 + index % (SEQUENCES - 1)) % SEQUENCES;
        let i = st.next_to[target];
        st.next_to[target] += 1;
        let w = world.clone();
        c.posted.fetch_add(1, Ordering::SeqCst);
        let runner = if target == s {
            SequencedTaskRunner::current().expect("inside a sequenced task")
        } else {
            world.seqs[target].runner.clone()
        };
        runner
            .post_task(move || run_on_sequence(&w, target, POSTERS + s, i, false))
            .unwrap();
    }
    drop(st);
    seq.in_task.store(false, Ordering::SeqCst);
    c.ran.fetch_add(1, Ordering::SeqCst);
}

fn build_world(pool: &ThreadPool) -> Arc<World> {
    let priorities = [
        TaskPriority::UserBlocking,
        TaskPriority::UserVisible,
        TaskPriority::BestEffort,
    ];
    let seqs = (0..SEQUENCES)
        .map(|i| Seq {
            runner: pool.create_sequenced_task_runner(
                TaskTraits::new().priority(priorities[i % priorities.len()]),
            ),
            state: Mutex::new(SeqState {
                next_from: vec![0; POSTERS + SEQUENCES],
                next_to: vec![0; SEQUENCES],
                runs: 0,
            }),
            in_task: AtomicBool::new(false),
            relaxed_runs: AtomicU64::new(0),
        })
        .collect();
    let parallel = priorities
        .iter()
        .map(|&p| pool.create_task_runner(TaskTraits::new().priority(p)))
        .collect();
    Arc::new(World {
        seqs,
        parallel,
        checks: Checks::default(),
    })
}

#[test]
fn many_posters_many_sequences_keep_fifo_exclusion_and_exact_counts() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let world = build_world(&pool);
    let per_poster = scaled(60_000);

    let sent_by_thread: Vec<[usize; SEQUENCES]> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..POSTERS)
            .map(|poster| {
                let world = world.clone();
                scope.spawn(move || {
                    let mut rng = Rng::new(poster as u64 + 1);
                    let mut next_to = [0usize; SEQUENCES];
                    for n in 0..per_poster {
                        let c = &world.checks;
                        c.posted.fetch_add(1, Ordering::SeqCst);
                        let roll = rng.below(100);
                        if roll < 75 {
                            let s = rng.below(SEQUENCES);
                            let i = next_to[s];
                            next_to[s] += 1;
                            let w = world.clone();
                            world.seqs[s]
                                .runner
                                .post_task(move || run_on_sequence(&w, s, poster, i, true))
                                .unwrap();
                        } else if roll < 77 {
                            // Delayed: appended when ripe, so no FIFO promise against the others.
                            let s = rng.below(SEQUENCES);
                            let w = world.clone();
                            let delay = Duration::from_micros(rng.below(2000) as u64);
                            world.seqs[s]
                                .runner
                                .post_delayed_task(delay, move || {
                                    run_on_sequence(&w, s, UNORDERED, 0, false)
                                })
                                .unwrap();
                        } else {
                            // Parallel; some of these post to a sequence from inside the task.
                            let w = world.clone();
                            let p = rng.below(world.parallel.len());
                            let target = rng.below(SEQUENCES);
                            world.parallel[p]
                                .post_task(move || {
                                    if n % 4 == 0 {
                                        w.checks.posted.fetch_add(1, Ordering::SeqCst);
                                        let w2 = w.clone();
                                        w.seqs[target]
                                            .runner
                                            .post_task(move || {
                                                run_on_sequence(&w2, target, UNORDERED, 0, false)
                                            })
                                            .unwrap();
                                    }
                                    w.checks.ran.fetch_add(1, Ordering::SeqCst);
                                })
                                .unwrap();
                        }
                    }
                    next_to
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // A task only counts itself as run after any post it makes, so ran == posted means nothing
    // is queued or running any more.
    let c = &world.checks;
    wait_until("every posted task has run", || {
        c.ran.load(Ordering::SeqCst) == c.posted.load(Ordering::SeqCst)
    });
    assert_eq!(c.overlaps.load(Ordering::SeqCst), 0, "mutual exclusion");
    assert_eq!(c.out_of_order.load(Ordering::SeqCst), 0, "per-poster FIFO");
    assert_eq!(c.stale_reads.load(Ordering::SeqCst), 0, "happens-before");
    // Exact counts: each sequence expects from every poster (thread or sequence) exactly the
    // next index after the number of tasks that poster sent it, so every task ran exactly once.
    let sent_by_seq: Vec<Vec<usize>> = world
        .seqs
        .iter()
        .map(|s| s.state.lock().unwrap().next_to.clone())
        .collect();
    let mut total_seq_runs = 0;
    for (t, seq) in world.seqs.iter().enumerate() {
        let st = seq.state.lock().unwrap();
        assert_eq!(seq.relaxed_runs.load(Ordering::SeqCst), st.runs);
        total_seq_runs += st.runs;
        for (poster, sent) in sent_by_thread.iter().enumerate() {
            assert_eq!(
                st.next_from[poster], sent[t],
                "thread {poster} -> sequence {t}"
            );
        }
        for (s, sent) in sent_by_seq.iter().enumerate() {
            assert_eq!(
                st.next_from[POSTERS + s],
                sent[t],
                "sequence {s} -> sequence {t}"
            );
        }
    }
    let ordered_posts: usize = sent_by_thread.iter().flatten().sum::<usize>()
        + sent_by_seq.iter().flatten().sum::<usize>();
    assert!(total_seq_runs as usize >= ordered_posts);
    pool.shutdown();
}

/// Chains of tasks hop from sequence to sequence, each hop posted from inside a task; the
/// number of hops is exact and no sequence ever runs two tasks at once.
#[test]
fn chains_hopping_between_sequences_lose_no_hop() {
    struct Hop {
        seqs: Vec<(SequencedTaskRunner, AtomicBool)>,
        hops: AtomicUsize,
        overlaps: AtomicUsize,
        chains_done: AtomicUsize,
    }
    fn hop(h: Arc<Hop>, at: usize, left: usize, rng_state: u64) {
        let (_, busy) = &h.seqs[at];
        if busy.swap(true, Ordering::SeqCst) {
            h.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        h.hops.fetch_add(1, Ordering::SeqCst);
        busy.store(false, Ordering::SeqCst);
        if left == 0 {
            h.chains_done.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut rng = Rng::new(rng_state);
        let next = rng.below(h.seqs.len());
        let seed = rng.next_u64();
        let h2 = h.clone();
        h.seqs[next]
            .0
            .post_task(move || hop(h2, next, left - 1, seed))
            .unwrap();
    }
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let chains = 64;
    let hops_per_chain = scaled(5_000);
    let h = Arc::new(Hop {
        seqs: (0..16)
            .map(|_| {
                (
                    pool.create_sequenced_task_runner(TaskTraits::default()),
                    AtomicBool::new(false),
                )
            })
            .collect(),
        hops: AtomicUsize::new(0),
        overlaps: AtomicUsize::new(0),
        chains_done: AtomicUsize::new(0),
    });
    for c in 0..chains {
        let at = c % h.seqs.len();
        let h2 = h.clone();
        h.seqs[at]
            .0
            .post_task(move || hop(h2, at, hops_per_chain, c as u64 + 7))
            .unwrap();
    }
    wait_until("every chain finished", || {
        h.chains_done.load(Ordering::SeqCst) == chains
    });
    assert_eq!(h.hops.load(Ordering::SeqCst), chains * (hops_per_chain + 1));
    assert_eq!(h.overlaps.load(Ordering::SeqCst), 0);
    pool.shutdown();
}

/// Posts racing with shutdown: every closure is destroyed exactly once (run, skipped, or
/// handed back by a refused post and dropped by the poster); every immediate block-shutdown
/// post that was accepted runs (a block post either counts for shutdown or is refused); and no
/// task starts after `shutdown()` returned.
#[test]
fn posts_racing_with_shutdown_are_run_skipped_or_handed_back_never_lost() {
    #[derive(Default)]
    struct Tally {
        attempted: AtomicUsize,
        block_accepted: AtomicUsize,
        block_ran: AtomicUsize,
        started_after_return: AtomicUsize,
        shutdown_returned: AtomicBool,
    }
    let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let skip = TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown);
    for round in 0..scaled(40) {
        let pool = ThreadPool::builder().max_workers(3).build().unwrap();
        let drops = DropCounter::new();
        let tally = Arc::new(Tally::default());
        let posters: Vec<_> = (0..4)
            .map(|p| {
                let (pool, drops, tally) = (pool.clone(), drops.clone(), tally.clone());
                std::thread::spawn(move || {
                    let traits = if p % 2 == 0 { block } else { skip };
                    let seq = pool.create_sequenced_task_runner(traits);
                    let mut rng = Rng::new((round * 10 + p) as u64);
                    loop {
                        let kind = rng.below(3);
                        let counted = traits == block && kind != 2; // immediate block posts
                        tally.attempted.fetch_add(1, Ordering::SeqCst);
                        let (tok, t) = (drops.token(), tally.clone());
                        let task = move || {
                            tok.keep();
                            if t.shutdown_returned.load(Ordering::SeqCst) {
                                t.started_after_return.fetch_add(1, Ordering::SeqCst);
                            }
                            if counted {
                                t.block_ran.fetch_add(1, Ordering::SeqCst);
                            }
                        };
                        let result = match kind {
                            0 => seq.post_task(task),
                            1 => pool.post_task(traits, task),
                            _ => seq.post_delayed_task(Duration::from_micros(100), task),
                        };
                        match result {
                            Ok(()) if counted => {
                                tally.block_accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(()) => {}
                            Err(e) => {
                                let completed = e.reason() == PostRefusal::ShutdownCompleted;
                                drop(e.into_inner()); // handed back: the poster disposes of it
                                if completed {
                                    break;
                                }
                            }
                        }
                        if traits == block && pool.is_shutdown() {
                            // Block posts keep shutdown waiting; leave it gaps to complete in.
                            std::thread::sleep(Duration::from_micros(100));
                        }
                    }
                })
            })
            .collect();

        wait_until("the posters are under way", || {
            tally.attempted.load(Ordering::SeqCst) > 200
        });
        pool.shutdown();
        tally.shutdown_returned.store(true, Ordering::SeqCst);
        for p in posters {
            p.join().unwrap();
        }
        drop(pool);
        wait_until("every closure was destroyed exactly once", || {
            drops.dropped() == tally.attempted.load(Ordering::SeqCst)
        });
        assert_eq!(
            tally.started_after_return.load(Ordering::SeqCst),
            0,
            "round {round}: a task started after shutdown() returned"
        );
        assert_eq!(
            tally.block_ran.load(Ordering::SeqCst),
            tally.block_accepted.load(Ordering::SeqCst),
            "round {round}: an accepted block-shutdown post did not run"
        );
    }
}
