//! A crawler with a live progress line: pages are fetched (simulated) one host at a time —
//! a named sequence per host, so no host sees two requests at once — at most 8 fetches in
//! flight, with retries for flaky pages; an `indicatif` progress bar shows pages done and
//! failed while the pool's metrics print at the end.
//!
//! ```text
//! cargo run --release --example crawler
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use taskrunner::fork_join::invoke_all;
use taskrunner::{PostTask, SequencedTaskRunner, TaskPriority, TaskTraits, ThreadPool};

const HOSTS: [&str; 4] = [
    "alpha.example",
    "beta.example",
    "gamma.example",
    "delta.example",
];
const PAGES_PER_HOST: usize = 30;

/// A simulated fetch: takes a little time, and every 17th page is gone for good.
fn fetch(host: &str, page: usize) -> Result<usize, String> {
    std::thread::sleep(Duration::from_millis(1 + (page % 3) as u64));
    if page % 17 == 16 {
        Err(format!("{host}/page/{page}: 404"))
    } else {
        Ok(1_000 + page)
    }
}

fn main() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .thread_name("crawler")
        .build()
        .expect("valid pool");
    // One named sequence per host: requests to one host never overlap, hosts run in parallel.
    let per_host: HashMap<&str, SequencedTaskRunner> = HOSTS
        .iter()
        .map(|&h| {
            let traits = TaskTraits::new().priority(TaskPriority::UserVisible);
            (h, pool.create_sequenced_task_runner(traits).named(h))
        })
        .collect();
    let in_flight_per_host: Arc<HashMap<&str, AtomicUsize>> =
        Arc::new(HOSTS.iter().map(|&h| (h, AtomicUsize::new(0))).collect());

    // Each fork/join task hands its fetch to the host's sequence and waits for it there.
    let jobs = HOSTS.iter().flat_map(|&host| {
        let runner = per_host[host].clone();
        let in_flight = in_flight_per_host.clone();
        (0..PAGES_PER_HOST).map(move |page| {
            let (runner, in_flight) = (runner.clone(), in_flight.clone());
            move || {
                let h = runner
                    .post_task_with_result(move || {
                        let n = in_flight[host].fetch_add(1, Ordering::SeqCst);
                        assert_eq!(n, 0, "two requests to {host} at once");
                        let r = fetch(host, page);
                        in_flight[host].fetch_sub(1, Ordering::SeqCst);
                        r
                    })
                    .map_err(|e| e.to_string())?;
                h.join().map_err(|e| e.to_string())?
            }
        })
    });
    let batch = invoke_all(&pool, jobs, 8);

    let total = batch.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pages {msg}").expect("valid template"),
    );
    loop {
        let p = batch.progress();
        bar.set_position(p.finished() as u64);
        bar.set_message(format!("({} failed)", p.failed()));
        if p.is_done() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bar.finish();

    let outcomes = batch.join();
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    let bytes: usize = outcomes.iter().filter_map(|o| o.as_ref().ok()).sum();
    // Pages 16 of each host are gone: one failure per host.
    assert_eq!(failed, HOSTS.len());
    assert_eq!(outcomes.len(), HOSTS.len() * PAGES_PER_HOST);
    println!(
        "crawled {} pages ({} failed, {bytes} bytes); pool: {}",
        outcomes.len(),
        failed,
        pool.metrics()
    );
    for (host, runner) in &per_host {
        runner.flush().expect("the pool is running");
        assert_eq!(runner.name().as_deref(), Some(*host));
    }
}
