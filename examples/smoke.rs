use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskrunner::*;
fn main() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let seqs: Vec<_> = (0..100)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    for s in &seqs {
        for _ in 0..1000 {
            let n = n.clone();
            s.post_task(move || {
                n.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
    }
    for _ in 0..100000 {
        let n = n.clone();
        pool.post_task(TaskTraits::default(), move || {
            n.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    pool.post_delayed_task(
        TaskTraits::default(),
        Duration::from_millis(30),
        move || tx.send(Instant::now()).unwrap(),
    )
    .unwrap();
    let fired = rx.recv().unwrap();
    while n.load(Ordering::Relaxed) < 200000 {
        std::thread::yield_now();
    }
    println!(
        "all done in {:?}; delayed fired after {:?}",
        t0.elapsed(),
        fired - t0
    );
    pool.shutdown();
    println!(
        "shutdown ok; post after: {:?}",
        pool.post_task(TaskTraits::default(), || ())
            .map_err(|e| e.to_string())
    );
}
