#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
//! Per-user ordering with `KeyedTaskRunner`: events for 2,000 accounts arrive from four
//! producer threads and must be applied to each account in order, while different accounts
//! are processed in parallel. No partitions to size, no per-account mutex, no map of runners
//! that only grows: each account gets a sequence while it has work and loses it when idle.
//!
//! Run with `cargo run --example keyed`.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use taskrunner::{TaskTraits, ThreadPool};

const ACCOUNTS: usize = 2_000;
const EVENTS_PER_ACCOUNT: u32 = 50;
const PRODUCERS: usize = 4;

/// Per-account state. Every access happens inside a task of that account's keyed sequence,
/// and those run one at a time with happens-before between them, so `Relaxed` loads and
/// stores are enough: the atomics are only here because the table is shared, not for ordering.
struct Account {
    balance: AtomicI64,
    next_event: AtomicU32,
}

fn main() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let by_account = pool.create_keyed_task_runner::<usize>(TaskTraits::default());
    let accounts: Arc<Vec<Account>> = Arc::new(
        (0..ACCOUNTS)
            .map(|_| Account {
                balance: AtomicI64::new(0),
                next_event: AtomicU32::new(0),
            })
            .collect(),
    );
    let out_of_order = Arc::new(AtomicUsize::new(0));
    let peak_live = Arc::new(AtomicUsize::new(0));

    // Each producer owns a quarter of the accounts (as a consumer owns Kafka partitions) and
    // emits their events round-robin: event n of every account, then event n + 1, ...
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (by_account, accounts) = (by_account.clone(), accounts.clone());
            let (out_of_order, peak_live) = (out_of_order.clone(), peak_live.clone());
            thread::spawn(move || {
                for n in 0..EVENTS_PER_ACCOUNT {
                    for id in (p..ACCOUNTS).step_by(PRODUCERS) {
                        let (accounts, out_of_order) = (accounts.clone(), out_of_order.clone());
                        let amount = if n % 5 == 4 { -30 } else { 10 };
                        by_account
                            .post_task(id, move || {
                                let acct = &accounts[id];
                                if acct.next_event.load(Ordering::Relaxed) != n {
                                    out_of_order.fetch_add(1, Ordering::Relaxed);
                                }
                                acct.next_event.store(n + 1, Ordering::Relaxed);
                                let b = acct.balance.load(Ordering::Relaxed);
                                acct.balance.store(b + amount, Ordering::Relaxed);
                            })
                            .unwrap();
                    }
                    peak_live.fetch_max(by_account.live_keys(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }

    // A read posted to an account runs after everything already queued for it: read-your-writes
    // per key, without waiting for the other accounts.
    let acc = accounts.clone();
    let balance_of_7 = by_account
        .post_task_with_result(7, move || acc[7].balance.load(Ordering::Relaxed))
        .unwrap()
        .join()
        .unwrap();
    let expected: i64 = (0..EVENTS_PER_ACCOUNT)
        .map(|n| if n % 5 == 4 { -30 } else { 10 })
        .sum();
    assert_eq!(balance_of_7, expected);
    println!("account 7 after {EVENTS_PER_ACCOUNT} events: balance {balance_of_7}");

    // Drain: one final read per account runs after all of that account's events.
    let finals: Vec<_> = (0..ACCOUNTS)
        .map(|id| {
            let acc = accounts.clone();
            by_account
                .post_task_with_result(id, move || acc[id].balance.load(Ordering::Relaxed))
                .unwrap()
        })
        .collect();
    for h in finals {
        assert_eq!(h.join().unwrap(), expected);
    }

    assert_eq!(out_of_order.load(Ordering::Relaxed), 0);
    println!(
        "{} events applied in per-account order across {ACCOUNTS} accounts",
        ACCOUNTS as u32 * EVENTS_PER_ACCOUNT
    );
    println!(
        "live accounts: peak {} while producing, {} now (idle accounts are retired)",
        peak_live.load(Ordering::Relaxed),
        by_account.live_keys()
    );
    assert_eq!(by_account.live_keys(), 0);
    pool.shutdown();
}
