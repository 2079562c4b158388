//! `engine::metrics::Flow`, what `ThreadPool::flush` waits on: a task counted as entered by its
//! poster and as left by the worker that ran it, read as "every `left` shard, then every
//! `entered` shard". The model checks the one claim `flush` relies on: when the sums are
//! equal, every task whose post happened before the reads has run (its effects are visible).

use super::model;
use crate::base::shim::{thread, Arc, AtomicBool, Mutex, Ordering};
use crate::engine::metrics::Flow;

#[test]
fn loom_flow_idle_means_every_earlier_task_ran() {
    model(|| {
        let flow = Arc::new(Flow::default());
        let queue = Arc::new(Mutex::new(Vec::new()));
        let ran = Arc::new(AtomicBool::new(false));
        // The poster: counts the task, then queues it.
        {
            let (flow, queue) = (flow.clone(), queue.clone());
            thread::spawn(move || {
                flow.entered(1);
                queue.lock().push(());
            })
            .join()
            .unwrap();
        }
        // The worker: takes the task, runs it (a relaxed effect), counts it as left.
        let worker = {
            let (flow, queue, ran) = (flow.clone(), queue.clone(), ran.clone());
            thread::spawn(move || {
                if queue.lock().pop().is_some() {
                    ran.store(true, Ordering::Relaxed);
                    flow.left(1);
                }
            })
        };
        // The flusher, after the post: idle only once the task's effects are visible.
        if flow.is_idle() {
            assert!(ran.load(Ordering::Relaxed), "idle before the task ran");
        }
        worker.join().unwrap();
        assert!(flow.is_idle());
        assert!(ran.load(Ordering::Relaxed));
    });
}

/// Two tasks from two posters, one worker each: idle is never reported while either is
/// queued or running.
#[test]
fn loom_flow_two_posters_two_workers() {
    model(|| {
        let flow = Arc::new(Flow::default());
        let ran = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
        let posts: Vec<_> = (0..2)
            .map(|i| {
                let (flow, ran) = (flow.clone(), ran.clone());
                thread::spawn(move || {
                    flow.entered(1);
                    // Posting hands the task to its worker (the join below stands for the
                    // queue's hand-off).
                    let (f2, r2) = (flow.clone(), ran.clone());
                    thread::spawn(move || {
                        if i == 0 { &r2.0 } else { &r2.1 }.store(true, Ordering::Relaxed);
                        f2.left(1);
                    })
                })
            })
            .collect();
        let workers: Vec<_> = posts.into_iter().map(|p| p.join().unwrap()).collect();
        if flow.is_idle() {
            assert!(ran.0.load(Ordering::Relaxed) && ran.1.load(Ordering::Relaxed));
        }
        for w in workers {
            w.join().unwrap();
        }
        assert!(flow.is_idle());
    });
}
