//! A bank account as an actor, with no lock anywhere in this file.
//!
//! The `Account` lives on one sequence inside a [`SequenceBound`]: it is built there, every
//! deposit and withdrawal runs there (one at a time, in order), and it is destroyed there.
//! Several client sequences hammer it concurrently with `async_call(..).then(..)`; each reply
//! comes back on the client's own sequence. At the end the balance is checked against what the
//! clients were told.
//!
//! ```text
//! cargo run --example sequence_bound
//! ```
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use taskrunner::PostTask;
use taskrunner::{SequenceBound, SequencedTaskRunner, TaskTraits, ThreadPool};

const CLIENTS: u64 = 4;
const OPS_PER_CLIENT: u64 = 250;
const OPENING_BALANCE: i64 = 1_000;

/// One operation on the account.
#[derive(Clone, Copy, Debug)]
enum Op {
    Deposit(i64),
    Withdraw(i64),
}

/// The account's state: plain fields, no `Mutex`, no atomics. `SequenceBound` guarantees
/// that only one task at a time ever touches it.
struct Account {
    balance: i64,
    /// Every accepted operation, in the order the account applied them.
    ledger: Vec<(u64, Op)>,
    refused: u64,
    home: SequencedTaskRunner,
    closed: mpsc::Sender<bool>,
}

impl Account {
    /// Applies `op` for `client`: the new balance, or `Err(balance)` if a withdrawal would
    /// overdraw the account.
    fn apply(&mut self, client: u64, op: Op) -> Result<i64, i64> {
        debug_assert!(self.home.runs_tasks_in_current_sequence());
        match op {
            Op::Deposit(n) => self.balance += n,
            Op::Withdraw(n) if n > self.balance => {
                self.refused += 1;
                return Err(self.balance);
            }
            Op::Withdraw(n) => self.balance -= n,
        }
        self.ledger.push((client, op));
        Ok(self.balance)
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        // Reports whether the account was destroyed on its own sequence.
        let _ = self.closed.send(self.home.runs_tasks_in_current_sequence());
    }
}

/// What a client learned from one reply.
struct Receipt {
    client: u64,
    op: Op,
    accepted: bool,
    reply_on_client_sequence: bool,
}

/// A small deterministic generator, so that every run does the same operations.
fn ops_for(client: u64) -> Vec<Op> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (client + 1);
    (0..OPS_PER_CLIENT)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let amount = (x % 200) as i64 + 1;
            if x % 3 == 0 {
                Op::Deposit(amount)
            } else {
                Op::Withdraw(amount)
            }
        })
        .collect()
}

fn main() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();

    // The account's home sequence, and the account built on it.
    let (closed_tx, closed_rx) = mpsc::channel();
    let home = pool.create_sequenced_task_runner(TaskTraits::default());
    let h2 = home.clone();
    let bank = Arc::new(
        SequenceBound::new(home, move || Account {
            balance: OPENING_BALANCE,
            ledger: Vec::new(),
            refused: 0,
            home: h2,
            closed: closed_tx,
        })
        .unwrap(),
    );

    // Several clients, each on its own sequence, all calling the account at once.
    let (receipts_tx, receipts_rx) = mpsc::channel::<Receipt>();
    for client in 0..CLIENTS {
        let me = pool.create_sequenced_task_runner(TaskTraits::default());
        let (bank, receipts_tx, me2) = (bank.clone(), receipts_tx.clone(), me.clone());
        me.post_task(move || {
            for op in ops_for(client) {
                let (receipts_tx, me3) = (receipts_tx.clone(), me2.clone());
                bank.async_call(move |acct: &mut Account| acct.apply(client, op))
                    .then(move |result: Result<i64, i64>| {
                        // Runs on this client's sequence, with the result moved in.
                        receipts_tx
                            .send(Receipt {
                                client,
                                op,
                                accepted: result.is_ok(),
                                reply_on_client_sequence: me3.runs_tasks_in_current_sequence(),
                            })
                            .unwrap();
                    })
                    .unwrap();
            }
        })
        .unwrap();
    }
    drop(receipts_tx);

    // What the clients were told.
    let mut expected = OPENING_BALANCE;
    let mut accepted = 0;
    let mut refused = 0;
    let mut per_client = vec![0_u64; CLIENTS as usize];
    for r in receipts_rx.iter().take((CLIENTS * OPS_PER_CLIENT) as usize) {
        assert!(
            r.reply_on_client_sequence,
            "a reply ran off its client's sequence"
        );
        per_client[r.client as usize] += 1;
        if r.accepted {
            accepted += 1;
            expected += match r.op {
                Op::Deposit(n) => n,
                Op::Withdraw(n) => -n,
            };
        } else {
            refused += 1;
        }
    }

    // What the account says. Every call was applied before its reply was posted, so the
    // account has seen all of them.
    let (balance, ledger_len, refused_by_account, replayed) = bank
        .post_with_result(|acct| {
            let replayed = acct.ledger.iter().try_fold(OPENING_BALANCE, |b, (_, op)| {
                let b = match *op {
                    Op::Deposit(n) => b + n,
                    Op::Withdraw(n) => b - n,
                };
                (b >= 0).then_some(b)
            });
            (acct.balance, acct.ledger.len(), acct.refused, replayed)
        })
        .unwrap()
        .join()
        .unwrap();

    println!(
        "clients: {CLIENTS}, operations: {}",
        CLIENTS * OPS_PER_CLIENT
    );
    println!("replies per client: {per_client:?} (each on its own client's sequence)");
    println!("accepted: {accepted}, refused (would overdraw): {refused}");
    println!("final balance: {balance} (clients' view: {expected})");

    assert_eq!(balance, expected);
    assert_eq!(ledger_len as u64, accepted);
    assert_eq!(refused_by_account, refused);
    assert_eq!(
        replayed,
        Some(balance),
        "the ledger replays to the balance, never negative"
    );
    assert!(per_client.iter().all(|&n| n == OPS_PER_CLIENT));

    // Dropping the last owner destroys the account on its sequence.
    drop(bank);
    let on_sequence = closed_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the account was never destroyed");
    println!("account closed on its own sequence: {on_sequence}");
    assert!(on_sequence);
    pool.shutdown();
}
