//! A crawler-like fan-out over a fake web: an [`Executor`] with a concurrency limit, a
//! [`Semaphore`] per host, a [`RetryPolicy`] for flaky pages, a deadline per fetch (one page is
//! too slow for it), and breadth-first levels whose progress is printed through
//! [`as_completed`].
//!
//! ```text
//! cargo run --release --example orchestration
//! ```
//!
//! What it fetches is deterministic (the progress lines of one level may come in any order);
//! the run asserts the outcome and takes a fraction of a second. See docs/orchestration.md.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::cancel::TaskContext;
use taskrunner::executor::{Executor, ShutdownMode, SubmitOptions};
use taskrunner::fork_join::as_completed;
use taskrunner::retry::RetryPolicy;
use taskrunner::sync::Semaphore;
use taskrunner::{TaskError, ThreadPool};

/// At most this many fetches run at once (the executor's limit).
const MAX_IN_FLIGHT: usize = 4;
/// At most this many fetches per host at once (one shared semaphore per host).
const PER_HOST: usize = 2;
/// Attempts per fetch, the first included.
const ATTEMPTS: u32 = 3;
/// Each fetch must end within this time after it was submitted.
const PAGE_TIMEOUT: Duration = Duration::from_millis(250);
const ROOT: &str = "site.test/";

/// One page of the fake web.
struct Page {
    links: &'static [&'static str],
    /// The first `flaky` attempts answer 503.
    flaky: u32,
    latency: Duration,
}

fn page(links: &'static [&'static str], flaky: u32, latency_ms: u64) -> Page {
    Page {
        links,
        flaky,
        latency: Duration::from_millis(latency_ms),
    }
}

/// The fake web: url -> (links, flaky failures, latency).
fn fake_web() -> HashMap<&'static str, Page> {
    HashMap::from([
        (
            "site.test/",
            page(
                &["site.test/a", "site.test/b", "docs.test/", "cdn.test/logo"],
                0,
                3,
            ),
        ),
        (
            "site.test/a",
            page(&["site.test/a/1", "site.test/a/2", "site.test/b"], 1, 4),
        ),
        (
            "site.test/b",
            page(&["site.test/b/1", "slow.test/report", "site.test/"], 0, 2),
        ),
        ("site.test/a/1", page(&["docs.test/api"], 0, 3)),
        ("site.test/a/2", page(&["cdn.test/down"], 2, 2)),
        (
            "site.test/b/1",
            page(&["docs.test/guide", "site.test/a/1"], 0, 5),
        ),
        (
            "docs.test/",
            page(&["docs.test/guide", "docs.test/api"], 0, 4),
        ),
        ("docs.test/guide", page(&["docs.test/guide/faq"], 1, 3)),
        ("docs.test/guide/faq", page(&[], 0, 2)),
        ("docs.test/api", page(&["docs.test/"], 0, 6)),
        ("cdn.test/logo", page(&[], 0, 1)),
        // Never answers: every attempt gets a 503.
        ("cdn.test/down", page(&[], u32::MAX, 2)),
        // Far slower than PAGE_TIMEOUT: its deadline cuts it short.
        (
            "slow.test/report",
            page(&["site.test/never-reached"], 0, 5_000),
        ),
    ])
}

fn host(url: &str) -> &str {
    url.split('/').next().unwrap_or(url)
}

/// A failed fetch (the original error a retried task keeps).
#[derive(Debug, Clone, PartialEq)]
enum FetchError {
    Unavailable { status: u16 },
    NotFound,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unavailable { status } => write!(f, "HTTP {status} Service Unavailable"),
            FetchError::NotFound => f.write_str("HTTP 404 Not Found"),
        }
    }
}

impl Error for FetchError {}

/// What a successful fetch returns.
struct Fetched {
    links: &'static [&'static str],
    attempts: u32,
}

/// Counts fetches in flight, overall and per host, and remembers the peaks.
#[derive(Default)]
struct Gauges {
    now: AtomicUsize,
    peak: AtomicUsize,
    per_host: HashMap<&'static str, (AtomicUsize, AtomicUsize)>,
}

impl Gauges {
    fn new(hosts: &HashSet<&'static str>) -> Self {
        Gauges {
            per_host: hosts.iter().map(|h| (*h, Default::default())).collect(),
            ..Default::default()
        }
    }

    fn enter(&self, host: &str) -> impl Drop + '_ {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let (now, peak) = &self.per_host[host];
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(n, Ordering::SeqCst);
        Leave(&self.now, now)
    }
}

struct Leave<'a>(&'a AtomicUsize, &'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

/// One attempt at fetching `url`: waits out the page's latency in small steps, giving up as
/// soon as the task's token is cancelled (its deadline), then answers.
fn fetch(
    web: &HashMap<&'static str, Page>,
    gauges: &Gauges,
    url: &str,
    ctx: &TaskContext,
) -> Result<Fetched, BoxError> {
    let _in_flight = gauges.enter(host(url));
    let page = web.get(url).ok_or(FetchError::NotFound)?;
    let started = Instant::now();
    while started.elapsed() < page.latency {
        ctx.check()?; // `Interrupted::DeadlineExceeded` once the deadline has passed
        thread::sleep(Duration::from_millis(1).min(page.latency - started.elapsed()));
    }
    if ctx.attempt() <= page.flaky {
        let next = if ctx.attempt() < ATTEMPTS {
            "will retry"
        } else {
            "giving up"
        };
        println!(
            "        {url}: HTTP 503 on attempt {}, {next}",
            ctx.attempt()
        );
        return Err(FetchError::Unavailable { status: 503 }.into());
    }
    Ok(Fetched {
        links: page.links,
        attempts: ctx.attempt(),
    })
}

/// How a failure is reported in the summary.
fn describe(err: &TaskError) -> String {
    if err.is_deadline_exceeded() {
        format!("deadline of {} ms exceeded", PAGE_TIMEOUT.as_millis())
    } else if let Some(cause) = err.downcast_ref::<FetchError>() {
        format!("{cause} (after {} attempts)", err.attempts())
    } else {
        err.to_string()
    }
}

fn main() {
    let t0 = Instant::now();
    let web = Arc::new(fake_web());
    let hosts: HashSet<&'static str> = web
        .keys()
        .chain(web.values().flat_map(|p| p.links.iter()))
        .map(|u| host(u))
        .collect();
    let gauges = Arc::new(Gauges::new(&hosts));
    // One semaphore per host, shared by every fetch to that host, independent of the
    // executor's own limit.
    let host_limits: HashMap<&str, Semaphore> = hosts
        .iter()
        .map(|h| (*h, Semaphore::new(PER_HOST)))
        .collect();

    let pool = ThreadPool::builder()
        .max_workers(6)
        .thread_name("crawler")
        .build()
        .expect("pool");
    let exec = Executor::builder()
        .pool(&pool)
        .max_workers(MAX_IN_FLIGHT)
        .build()
        .expect("executor");
    let retry = RetryPolicy::attempts(ATTEMPTS)
        .base_delay(Duration::from_millis(10))
        .factor(2.0)
        .jitter(0.2);
    println!(
        "crawling from {ROOT}: at most {MAX_IN_FLIGHT} fetches at once, {PER_HOST} per host, \
         {} attempts each, {} ms per fetch\n",
        retry.max_attempts,
        PAGE_TIMEOUT.as_millis()
    );

    let mut seen: HashSet<&'static str> = HashSet::from([ROOT]);
    let mut level: Vec<&'static str> = vec![ROOT];
    let mut fetched: Vec<(&'static str, u32)> = Vec::new();
    let mut failures: BTreeMap<&'static str, TaskError> = BTreeMap::new();
    let mut done = 0;
    let mut depth = 0;
    while !level.is_empty() {
        println!("level {depth}: {} page(s)", level.len());
        let handles: Vec<_> = level
            .iter()
            .map(|&url| {
                let opts = SubmitOptions::new()
                    .retry(retry)
                    .limit(&host_limits[host(url)])
                    .timeout(PAGE_TIMEOUT);
                let (web, gauges) = (web.clone(), gauges.clone());
                exec.submit_with(opts, move |ctx| fetch(&web, &gauges, url, ctx))
                    .unwrap_or_else(|e| panic!("submit {url}: {e}"))
            })
            .collect();
        let mut next = Vec::new();
        for (i, outcome) in as_completed(handles) {
            let url = level[i];
            done += 1;
            let total = seen.len();
            match outcome {
                Ok(page) => {
                    let s = if page.attempts == 1 { "" } else { "s" };
                    println!(
                        "[{done:>2}/{total:>2}] fetched {url} ({} attempt{s})",
                        page.attempts
                    );
                    fetched.push((url, page.attempts));
                    for &link in page.links {
                        if seen.insert(link) {
                            next.push(link);
                        }
                    }
                }
                Err(err) => {
                    println!("[{done:>2}/{total:>2}] FAILED  {url}: {}", describe(&err));
                    failures.insert(url, err);
                }
            }
        }
        next.sort_unstable(); // the next level's set is deterministic; make its order so too
        level = next;
        depth += 1;
    }
    exec.shutdown(ShutdownMode::Drain);
    let elapsed = t0.elapsed();

    println!(
        "\nsummary: {} pages fetched, {} failed, {} levels, in {:.2} s",
        fetched.len(),
        failures.len(),
        depth,
        elapsed.as_secs_f64()
    );
    let retried: Vec<String> = {
        let mut r: Vec<_> = fetched.iter().filter(|(_, a)| *a > 1).collect();
        r.sort();
        r.iter()
            .map(|(u, a)| format!("{u} ({a} attempts)"))
            .collect()
    };
    println!("  fetched after retries: {}", retried.join(", "));
    println!("  failures:");
    for (url, err) in &failures {
        println!(
            "    {url}: {} [attempts: {}]",
            describe(err),
            err.attempts()
        );
    }
    let peak = gauges.peak.load(Ordering::SeqCst);
    let mut per_host: Vec<_> = gauges
        .per_host
        .iter()
        .map(|(h, (_, p))| (*h, p.load(Ordering::SeqCst)))
        .filter(|(_, p)| *p > 0)
        .collect();
    per_host.sort();
    let per_host_text: Vec<String> = per_host
        .iter()
        .map(|(h, p)| format!("{h} {p}/{PER_HOST}"))
        .collect();
    println!(
        "  peak fetches in flight: {peak}/{MAX_IN_FLIGHT}; per host: {}",
        per_host_text.join(", ")
    );

    // The outcome is deterministic; check it.
    assert_eq!(fetched.len(), 11, "pages fetched");
    assert_eq!(
        failures.keys().copied().collect::<Vec<_>>(),
        vec!["cdn.test/down", "slow.test/report"]
    );
    let down = &failures["cdn.test/down"];
    assert_eq!(
        down.downcast_ref::<FetchError>(),
        Some(&FetchError::Unavailable { status: 503 }),
        "the final error keeps its original cause"
    );
    assert_eq!(down.attempts(), ATTEMPTS);
    assert!(failures["slow.test/report"].is_deadline_exceeded());
    assert!(!seen.contains("site.test/never-reached"));
    let attempts: HashMap<_, _> = fetched.iter().copied().collect();
    assert_eq!(attempts["site.test/a"], 2);
    assert_eq!(attempts["site.test/a/2"], 3);
    assert_eq!(attempts["docs.test/guide"], 2);
    assert!(peak <= MAX_IN_FLIGHT);
    assert!(per_host.iter().all(|(_, p)| *p <= PER_HOST));
    assert!(host_limits.values().all(|s| s.available() == PER_HOST));
    pool.shutdown();
    println!("\nall checks passed");
}
