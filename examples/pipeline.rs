//! Processing a batch of log lines three ways the crate offers:
//!
//! 1. a **pipeline**: parse (2 workers) → look up the user, retried when the lookup times out
//!    (2 workers) → append to the user's file, one sequence per user; bounded queues between
//!    the stages, a status per line, results in input order;
//! 2. a **job** that counts words over all lines, its workers taking shrinking chunks from a
//!    `WorkRange` and yielding to more urgent work;
//! 3. a **fence** around start-up: nothing runs until the components are wired.
//!
//! ```text
//! cargo run --release --example pipeline
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::job::WorkRange;
use taskrunner::pipeline::{ItemStatus, Order, Pipeline};
use taskrunner::retry::RetryPolicy;
use taskrunner::{TaskPriority, TaskTraits, ThreadPool};

#[derive(Clone, Debug)]
struct Entry {
    user: u32,
    text: String,
}

fn main() {
    let pool = ThreadPool::builder().max_workers(4).build().expect("pool");
    let lines: Vec<String> = (0..200)
        .map(|i| match i {
            17 => "garbage".to_string(),
            _ => format!("{}|request {} served in {} ms", i % 5, i, (i * 7) % 90),
        })
        .collect();

    // 3. Start-up: wire everything under a fence, so no stage starts half-configured.
    let fence = pool.begin_fence();

    // 1. The pipeline.
    let lookups = Arc::new(AtomicU32::new(0));
    let files: Arc<Mutex<HashMap<u32, Vec<String>>>> = Arc::default();
    let (l, f) = (lookups.clone(), files.clone());
    let pipeline = Pipeline::<String>::builder(&pool)
        .capacity(16)
        .stage("parse", 2, |line: String| {
            let (user, text) = line.split_once('|').ok_or("no user field")?;
            let user = user.parse::<u32>().map_err(|e| e.to_string())?;
            Ok::<_, String>(Entry {
                user,
                text: text.to_string(),
            })
        })
        .retrying_stage(
            "lookup",
            2,
            RetryPolicy::attempts(3).base_delay(Duration::from_millis(1)),
            move |e: Entry| {
                // Every seventh lookup times out once.
                if l.fetch_add(1, Ordering::Relaxed) % 7 == 3 {
                    return Err("lookup timed out");
                }
                Ok((format!("user-{}", e.user), e))
            },
        )
        .keyed_stage(
            "append",
            |(_, e): &(String, Entry)| e.user,
            move |(name, e): (String, Entry)| {
                f.lock()
                    .unwrap()
                    .entry(e.user)
                    .or_default()
                    .push(e.text.clone());
                Ok::<_, String>(name)
            },
        )
        .order(Order::Input)
        .build();
    let run = pipeline.start();
    drop(fence); // wired: let work start
    let ids: Vec<_> = lines.iter().cloned().map(|l| run.submit(l)).collect();
    let mut results = run.results();
    let (mut ok, mut failed) = (0, Vec::new());
    for (id, r) in results.by_ref() {
        match r {
            Ok(_) => ok += 1,
            Err(e) => failed.push((id, e.to_string())),
        }
    }
    println!(
        "pipeline: {ok} lines stored, {} failed, {} lookups (retries included)",
        failed.len(),
        lookups.load(Ordering::Relaxed)
    );
    for (id, why) in &failed {
        println!(
            "  line {id}: {why} (status {:?})",
            results.status(*id).unwrap()
        );
    }
    assert_eq!(ok + failed.len(), lines.len());
    assert_eq!(
        results.status(ids[17]),
        Some(ItemStatus::Failed { stage: 0 })
    );
    let per_user: Vec<usize> = (0..5).map(|u| files.lock().unwrap()[&u].len()).collect();
    println!("  lines per user file: {per_user:?}");

    // 2. A job: count words over all lines, at background priority.
    let lines = Arc::new(lines);
    let range = Arc::new(WorkRange::new(lines.len(), 8, pool.max_workers()));
    let words = Arc::new(AtomicUsize::new(0));
    let (r, ls, w) = (range.clone(), lines.clone(), words.clone());
    let job = pool
        .post_job(
            TaskTraits::new().priority(TaskPriority::BestEffort),
            move |d| {
                while !d.should_yield() {
                    let Some(chunk) = r.claim() else { return };
                    let n: usize = ls[chunk].iter().map(|l| l.split_whitespace().count()).sum();
                    w.fetch_add(n, Ordering::Relaxed);
                }
            },
            move |_| range.remaining_chunks(),
        )
        .expect("post_job");
    job.update_priority(TaskPriority::UserVisible); // someone is waiting for it now
    job.join().expect("the job ran");
    let expected: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
    assert_eq!(words.load(Ordering::Relaxed), expected);
    println!("job: {expected} words counted");
}
