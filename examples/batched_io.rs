//! Batched "database" reads, the corio model: 200 async tasks each make 4 dependent reads
//! (a user, that user's best friend, the friend's city, the user's own city), one `.await` at a
//! time. Every read goes through a [`Batcher`]: the reads made while the pool is busy become one
//! batch, sent to the fake database in one round trip once the tasks have all gone idle, so
//! 800 reads cost a handful of round trips instead of 800.
//!
//! ```text
//! cargo run --release --example batched_io
//! ```
//!
//! The database is a `HashMap` behind a dispatcher that sleeps 1.5 ms per call (the round
//! trip). The run prints each batch as it is dispatched, then compares with the same reads made
//! one call per request through the same number of connections. Typically 4 round trips of
//! 200 keys; the first batch can close early when the workers run the first tasks faster than
//! `main` posts them (the pool looks idle in between: see the idle rule in `Batcher`'s docs).
//! See docs/async-and-batching.md.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::batch::Batcher;
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskTraits, ThreadPool};

const USERS: u32 = 1000;
const CITIES: u32 = 40;
const TASKS: u32 = 200;
const ROUND_TRIP: Duration = Duration::from_micros(1500);
/// Round trips that may be in flight at once (a connection pool).
const CONNECTIONS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(u32),
    City(u32),
}

#[derive(Clone, Debug)]
enum Row {
    User {
        name: String,
        friend: u32,
        city: u32,
    },
    City {
        name: String,
    },
}

#[derive(Debug)]
struct DbError(String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// The fake database: one round trip per call, whatever the number of keys.
struct Database {
    rows: HashMap<Key, Row>,
    round_trips: AtomicUsize,
}

impl Database {
    fn new() -> Self {
        let mut rows = HashMap::new();
        for id in 0..USERS {
            let row = Row::User {
                name: format!("user{id}"),
                friend: (id * 7 + 3) % USERS,
                city: id % CITIES,
            };
            rows.insert(Key::User(id), row);
        }
        for id in 0..CITIES {
            let row = Row::City {
                name: format!("city{id}"),
            };
            rows.insert(Key::City(id), row);
        }
        Database {
            rows,
            round_trips: AtomicUsize::new(0),
        }
    }

    /// `SELECT ... WHERE key IN (keys)`: one row (or none) per key, in order.
    fn query(&self, keys: &[Key]) -> Result<Vec<Option<Row>>, DbError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(ROUND_TRIP);
        Ok(keys.iter().map(|k| self.rows.get(k).cloned()).collect())
    }
}

/// The CPU part of each step (parsing, rendering): a few microseconds of work.
fn cpu_work(seed: u32) -> u64 {
    let mut x = u64::from(seed) | 1;
    for _ in 0..1000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    std::hint::black_box(x)
}

/// What each task computes: "user3's friend user24 lives in city24; user3 lives in city3".
/// Each step does a little CPU work, then one read: the CPU phase, then the I/O phase.
async fn profile(db: Batcher<Key, Option<Row>>, id: u32) -> String {
    let read = |key| {
        let db = db.clone();
        cpu_work(id);
        async move { db.call(key).await.expect("the read failed") }
    };
    let Some(Row::User { name, friend, city }) = read(Key::User(id)).await else {
        panic!("no user {id}");
    };
    let Some(Row::User {
        name: friend_name,
        city: friend_city,
        ..
    }) = read(Key::User(friend)).await
    else {
        panic!("no user {friend}");
    };
    let Some(Row::City { name: friend_city }) = read(Key::City(friend_city)).await else {
        panic!("no city {friend_city}");
    };
    let Some(Row::City { name: own_city }) = read(Key::City(city)).await else {
        panic!("no city {city}");
    };
    format!("{name}'s friend {friend_name} lives in {friend_city}; {name} lives in {own_city}")
}

/// Runs the 200 tasks on 8 sequences, reading through `db`; returns their results.
fn run(pool: &ThreadPool, db: &Batcher<Key, Option<Row>>) -> Vec<String> {
    let sessions: Vec<SequencedTaskRunner> = (0..8)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|id| {
            sessions[id as usize % sessions.len()]
                .post_future(profile(db.clone(), id))
                .unwrap()
        })
        .collect();
    tasks.into_iter().map(|t| t.join().unwrap()).collect()
}

fn main() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let db = Arc::new(Database::new());

    println!("{TASKS} tasks x 4 dependent reads, {ROUND_TRIP:?} per round trip, {CONNECTIONS} connections\n");
    println!("batched:");
    let d = db.clone();
    let batched = Batcher::builder()
        .pool(&pool)
        .max_in_flight(CONNECTIONS)
        // A safety net only: the batches close when the tasks go idle.
        .max_wait(Duration::from_millis(50))
        .build(move |keys: Vec<Key>| {
            let n = d.round_trips.load(Ordering::Relaxed) + 1;
            println!("  round trip #{n}: {} keys", keys.len());
            d.query(&keys)
        });
    let t0 = Instant::now();
    let results = run(&pool, &batched);
    let batched_time = t0.elapsed();
    let stats = batched.stats();
    let batched_trips = db.round_trips.swap(0, Ordering::Relaxed);
    println!("  e.g. \"{}\"", results[3]);

    println!("\none call per request:");
    let d = db.clone();
    let unbatched = Batcher::builder()
        .pool(&pool)
        .max_batch_size(1)
        .max_in_flight(CONNECTIONS)
        .build(move |keys: Vec<Key>| d.query(&keys));
    let t0 = Instant::now();
    let again = run(&pool, &unbatched);
    let unbatched_time = t0.elapsed();
    let unbatched_trips = db.round_trips.load(Ordering::Relaxed);
    assert_eq!(results, again, "batching changed an answer");
    println!("  {unbatched_trips} round trips");

    println!("\nsummary:");
    println!(
        "  requests: {}, dispatches: {} (closed: {} idle, {} full, {} max-wait), mean batch {:.1}, largest {}",
        stats.requests,
        stats.dispatches,
        stats.closed_idle,
        stats.closed_full,
        stats.closed_max_wait,
        stats.dispatched_requests as f64 / stats.dispatches as f64,
        stats.largest_batch
    );
    println!(
        "  batched:              {batched_trips:>4} round trips in {:>6.1} ms",
        batched_time.as_secs_f64() * 1e3
    );
    println!(
        "  one call per request: {unbatched_trips:>4} round trips in {:>6.1} ms ({:.0}x the time)",
        unbatched_time.as_secs_f64() * 1e3,
        unbatched_time.as_secs_f64() / batched_time.as_secs_f64()
    );
    assert_eq!(stats.requests, u64::from(TASKS) * 4);
    assert_eq!(stats.dispatched_requests, stats.requests);
    assert!(
        batched_trips * 10 <= unbatched_trips,
        "batching should save most round trips"
    );
    pool.shutdown();
}
