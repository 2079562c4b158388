//! Pipelines: order of results, back-pressure between stages, per-stage retries, panics,
//! keyed stages, item status, and shutdown in the middle of a run.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{must_return, wait_until, Latch, Rng, TIMEOUT};
use taskrunner::pipeline::{ItemStatus, Order, Pipeline};
use taskrunner::retry::RetryPolicy;
use taskrunner::ThreadPool;

fn pool(n: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(n).build().unwrap()
}

#[test]
fn results_come_in_input_order_or_completion_order() {
    let pool = pool(4);
    for order in [Order::Input, Order::Completion] {
        let p = Pipeline::<u64>::builder(&pool)
            .stage("jitter", 3, |x: u64| {
                let mut rng = Rng::new(x + 1);
                std::thread::sleep(Duration::from_micros(rng.below(300) as u64));
                Ok::<_, String>(x)
            })
            .stage("plus one", 2, |x: u64| Ok::<_, String>(x + 1))
            .order(order)
            .build();
        let run = p.start();
        for x in 0..200 {
            assert_eq!(run.submit(x), x);
        }
        let got: Vec<(u64, u64)> = run.results().map(|(id, r)| (id, r.unwrap())).collect();
        assert_eq!(got.len(), 200);
        assert!(got.iter().all(|&(id, v)| v == id + 1));
        if order == Order::Input {
            assert!(got.windows(2).all(|w| w[0].0 + 1 == w[1].0));
        }
    }
}

#[test]
fn a_slow_stage_holds_back_the_stages_before_it() {
    let pool = pool(4);
    let gate = Latch::new(1);
    let g = gate.clone();
    let p = Pipeline::<u32>::builder(&pool)
        .capacity(2)
        .stage("fast", 1, |x: u32| Ok::<_, String>(x))
        .stage("blocked", 1, move |x: u32| {
            assert!(g.wait_timeout(TIMEOUT));
            Ok::<_, String>(x)
        })
        .build();
    let run = Arc::new(p.start());
    let feeder = {
        let run = run.clone();
        std::thread::spawn(move || {
            for x in 0..100 {
                run.submit(x);
            }
        })
    };
    // In flight at most: 1 running + 2 queued in "blocked", 1 running (waiting to hand on)
    // + 2 queued in "fast", and the feeder's own submission.
    wait_until("the feeder is held back", || run.submitted() >= 5);
    std::thread::sleep(Duration::from_millis(50));
    let held_at = run.submitted();
    assert!(held_at <= 7, "{held_at} items got in past a full pipeline");
    gate.count_down();
    feeder.join().unwrap();
    let run = Arc::try_unwrap(run).unwrap();
    assert_eq!(run.results().filter(|(_, r)| r.is_ok()).count(), 100);
}

#[test]
fn a_retrying_stage_retries_then_fails_the_item_at_that_stage() {
    let pool = pool(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let p = Pipeline::<u32>::builder(&pool)
        .stage("first", 1, |x: u32| Ok::<_, String>(x))
        .retrying_stage(
            "flaky",
            2,
            RetryPolicy::attempts(3).base_delay(Duration::from_millis(1)),
            move |x: u32| {
                c.fetch_add(1, SeqCst);
                if x == 0 {
                    Err(format!("{x} always fails"))
                } else {
                    Ok(x)
                }
            },
        )
        .stage("last", 1, |x: u32| Ok::<_, String>(x * 10))
        .build();
    let run = p.start();
    let (bad, good) = (run.submit(0), run.submit(1));
    let mut results = run.results();
    let out: Vec<_> = results.by_ref().collect();
    let err = out[0].1.as_ref().unwrap_err();
    assert_eq!((err.stage(), err.stage_name()), (1, "flaky"));
    assert_eq!(err.error().attempts(), 3);
    assert!(
        err.error().to_string().contains("0 always fails"),
        "{}",
        err.error()
    );
    assert!(err.to_string().contains("stage 1 (flaky)"));
    assert_eq!(*out[1].1.as_ref().unwrap(), 10);
    assert_eq!(calls.load(SeqCst), 4);
    assert_eq!(results.status(bad), Some(ItemStatus::Failed { stage: 1 }));
    assert_eq!(results.status(good), Some(ItemStatus::Done));
}

#[test]
fn a_panicking_stage_fails_only_that_item_and_is_reported() {
    let pool = pool(2);
    let p = Pipeline::<u32>::builder(&pool)
        .stage("explode on 3", 2, |x: u32| {
            if x == 3 {
                panic!("bad record {x}");
            }
            Ok::<_, String>(x)
        })
        .build();
    let out = p.run(0..6);
    for (i, r) in out.iter().enumerate() {
        if i == 3 {
            let e = r.as_ref().unwrap_err();
            assert!(e.error().is_panic());
            assert_eq!(e.error().panic_message(), Some("bad record 3"));
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u32);
        }
    }
    wait_until("the panic reached the pool", || {
        pool.metrics().tasks_panicked() >= 1
    });
}

#[test]
fn a_panicking_key_function_fails_only_that_item() {
    let pool = pool(2);
    let p = Pipeline::<u32>::builder(&pool)
        .keyed_stage(
            "by key",
            |&x: &u32| {
                if x == 2 {
                    panic!("no key for {x}");
                }
                x % 2
            },
            |x: u32| Ok::<_, String>(x),
        )
        .build();
    let out = p.run(0..4);
    let e = out[2].as_ref().unwrap_err();
    assert_eq!(e.stage_name(), "by key");
    assert_eq!(e.error().panic_message(), Some("no key for 2"));
    assert!(out.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
}

#[test]
fn a_keyed_stage_keeps_each_keys_order_and_runs_keys_in_parallel() {
    let pool = pool(4);
    let log = Arc::new(Mutex::new(Vec::new()));
    let at_once = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, a, pk) = (log.clone(), at_once.clone(), peak.clone());
    let p = Pipeline::<(u8, u32)>::builder(&pool)
        .keyed_stage(
            "per user",
            |&(user, _)| user,
            move |(user, n)| {
                let now = a.fetch_add(1, SeqCst) + 1;
                pk.fetch_max(now, SeqCst);
                std::thread::sleep(Duration::from_micros(200));
                l.lock().unwrap().push((user, n));
                a.fetch_sub(1, SeqCst);
                Ok::<_, String>(n)
            },
        )
        .build();
    let out = p.run((0..120).map(|n| ((n % 4) as u8, n)));
    assert!(out.iter().all(|r| r.is_ok()));
    let log = log.lock().unwrap();
    for user in 0..4u8 {
        let ns: Vec<u32> = log.iter().filter(|e| e.0 == user).map(|e| e.1).collect();
        assert_eq!(ns.len(), 30);
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "user {user} out of order"
        );
    }
    assert!(peak.load(SeqCst) >= 2, "keys never ran in parallel");
}

#[test]
fn status_follows_an_item_through_the_stages() {
    let pool = pool(2);
    let entered = Latch::new(1);
    let go = Latch::new(1);
    let (e, g) = (entered.clone(), go.clone());
    let p = Pipeline::<u32>::builder(&pool)
        .stage("one", 1, |x: u32| Ok::<_, String>(x))
        .stage("two", 1, move |x: u32| {
            e.count_down();
            assert!(g.wait_timeout(TIMEOUT));
            Ok::<_, String>(x)
        })
        .build();
    let run = p.start();
    let id = run.submit(9);
    entered.wait();
    assert_eq!(run.status(id), Some(ItemStatus::Running { stage: 1 }));
    let second = run.submit(10);
    wait_until("the second item waits at stage two", || {
        run.status(second) == Some(ItemStatus::Queued { stage: 1 })
    });
    go.count_down();
    let mut results = run.results();
    assert_eq!(results.by_ref().count(), 2);
    assert_eq!(results.status(id), Some(ItemStatus::Done));
}

#[test]
fn shutdown_in_the_middle_of_a_run_still_ends_every_item() {
    let pool = pool(2);
    let gate = Latch::new(1);
    let g = gate.clone();
    let p = Pipeline::<u32>::builder(&pool)
        .capacity(4)
        .stage("held", 1, move |x: u32| {
            assert!(g.wait_timeout(TIMEOUT));
            Ok::<_, String>(x)
        })
        .stage("after", 1, |x: u32| Ok::<_, String>(x))
        .build();
    let run = p.start();
    for x in 0..4 {
        run.submit(x);
    }
    let shut = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown())
    };
    std::thread::sleep(Duration::from_millis(20));
    gate.count_down();
    shut.join().unwrap();
    let results: Vec<_> = must_return("results after shutdown", move || {
        run.results().collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 4);
    for (_, r) in &results {
        if let Err(e) = r {
            assert!(e.error().is_not_run(), "{e}");
        }
    }
}
