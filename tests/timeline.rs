//! The timeline: with a Chrome-trace layer installed (`tracing-chrome`, as the demo's
//! `--trace FILE` does), every task is a `task` span on the thread that ran it and every post a
//! `ready` event, and the two share `ready_at_us`; a named runner's tasks carry its name. Runs in its own test binary because it
//! installs a global subscriber.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeSet;

use taskrunner::{PostTask, TaskPriority, TaskTraits, ThreadPool};
use tracing_subscriber::prelude::*;

/// The value of `"key":"value"` in one line of the trace, if present.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = line.find(&pat)? + pat.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

#[test]
fn every_task_span_is_linked_to_the_post_that_made_it_ready() {
    let path = std::env::temp_dir().join(format!("taskrunner-trace-{}.json", std::process::id()));
    let (chrome, guard) = tracing_chrome::ChromeLayerBuilder::new()
        .file(&path)
        .include_args(true)
        .build();
    let filter =
        tracing_subscriber::filter::Targets::new().with_target("taskrunner", tracing::Level::TRACE);
    tracing_subscriber::registry()
        .with(chrome.with_filter(filter))
        .init();

    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool
        .create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::UserVisible))
        .named("ledger");
    for _ in 0..10 {
        seq.post_task(|| ()).unwrap();
        pool.post_task(TaskTraits::default(), || ()).unwrap();
    }
    let delayed = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            std::time::Duration::from_millis(1),
            || (),
        )
        .unwrap();
    let p2 = pool.clone();
    pool.post_task(TaskTraits::default(), move || {
        // Posted from a worker: kept in its local queue, traced all the same.
        p2.post_task(TaskTraits::default(), || ()).unwrap();
    })
    .unwrap();
    delayed.join().unwrap();
    pool.flush();
    pool.shutdown();
    drop(guard); // writes the file out

    let trace = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let (mut spans, mut readies) = (Vec::new(), BTreeSet::new());
    for line in trace.lines() {
        if line.contains("\"name\":\"task\"") && line.contains("\"ph\":\"B\"") {
            spans.push((
                field(line, "ready_at_us").unwrap().to_owned(),
                field(line, "posted_from").unwrap().to_owned(),
                field(line, "priority").unwrap().to_owned(),
                field(line, "runner").map(str::to_owned),
            ));
        } else if field(line, "message") == Some("ready") {
            readies.insert(field(line, "ready_at_us").unwrap().to_owned());
        }
    }
    assert_eq!(spans.len(), 23, "one span per task:\n{trace}");
    for (at, posted_from, priority, runner) in &spans {
        assert!(posted_from.contains("tests/timeline.rs"), "{posted_from}");
        assert!(
            readies.contains(at),
            "span ready at {at} has no ready event"
        );
        // The named sequence's tasks (the only UserVisible ones) carry its name.
        let expected = (priority == "UserVisible").then_some("ledger");
        assert_eq!(runner.as_deref(), expected, "{priority}");
    }
}
