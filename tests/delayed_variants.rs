//! Absolute-time posts (`post_delayed_task_at`, `post_delayed_task_with_result_at`) and delayed
//! post-and-reply (`post_delayed_task_and_reply`, `..._with_result`) on every kind of runner:
//! never early by the runner's clock, replies on the calling sequence, refusals hand every
//! closure back, and shutdown drops what is still delayed. Timeouts only turn a hang into a
//! failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::mpsc;
use std::time::Duration;

use taskrunner::testing::TestEnvironment;
use taskrunner::{PostRefusal, PostTask, SequencedTaskRunner, TaskTraits, ThreadPool};

mod support;
use support::{DropCounter, TIMEOUT};

/// Runs `check` for a fresh runner of every kind on `pool`.
fn for_every_runner(pool: &ThreadPool, check: impl Fn(&str, &dyn Fn() -> Box<dyn Poster>)) {
    let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    let p = pool.clone();
    check("pool", &move || Box::new(p.clone()));
    let p = pool.clone();
    check("parallel", &move || {
        Box::new(p.create_task_runner(TaskTraits::default()))
    });
    let p = pool.clone();
    check("sequenced", &move || {
        Box::new(p.create_sequenced_task_runner(TaskTraits::default()))
    });
    let p = pool.clone();
    check("single-thread", &move || {
        Box::new(p.create_single_thread_task_runner(TaskTraits::default()))
    });
    let p = pool.clone();
    check("updateable", &move || {
        Box::new(p.create_updateable_sequenced_task_runner(TaskTraits::default()))
    });
    check("key", &move || Box::new(keyed.runner(3)));
}

/// The variants under test, object-safe.
trait Poster: Send + Sync {
    fn at(&self, deadline: std::time::Instant, tx: mpsc::Sender<std::time::Instant>);
    fn at_with_result(&self, deadline: std::time::Instant) -> u32;
    fn delayed_reply(&self, delay: Duration, tx: mpsc::Sender<(bool, std::time::Instant)>);
    fn clock_now(&self) -> std::time::Instant;
}

impl<R: PostTask + Clone + Send + Sync + 'static> Poster for R {
    fn at(&self, deadline: std::time::Instant, tx: mpsc::Sender<std::time::Instant>) {
        let me = self.clone();
        self.post_delayed_task_at(deadline, move || tx.send(me.now()).unwrap())
            .unwrap();
    }
    fn at_with_result(&self, deadline: std::time::Instant) -> u32 {
        self.post_delayed_task_with_result_at(deadline, || 7)
            .unwrap()
            .join()
            .unwrap()
    }
    fn delayed_reply(&self, delay: Duration, tx: mpsc::Sender<(bool, std::time::Instant)>) {
        let target = self.clone();
        let origin = pool_of_sequence();
        let o2 = origin.clone();
        origin
            .post_task(move || {
                let o3 = o2.clone();
                target
                    .post_delayed_task_and_reply_with_result(
                        delay,
                        move || PostTask::now(&o3),
                        move |ran_at| {
                            tx.send((o2.runs_tasks_in_current_sequence(), ran_at))
                                .unwrap()
                        },
                    )
                    .unwrap();
            })
            .unwrap();
    }
    fn clock_now(&self) -> std::time::Instant {
        PostTask::now(self)
    }
}

thread_local! {
    static ORIGIN: std::cell::RefCell<Option<SequencedTaskRunner>> = const { std::cell::RefCell::new(None) };
}

/// The sequence replies go back to (set per test thread).
fn pool_of_sequence() -> SequencedTaskRunner {
    ORIGIN.with(|o| o.borrow().clone().expect("an origin sequence"))
}

#[test]
fn a_task_posted_for_a_time_never_runs_before_it_on_any_runner() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    for_every_runner(&pool, |kind, make| {
        let r = make();
        let deadline = r.clock_now() + Duration::from_millis(5);
        let (tx, rx) = mpsc::channel();
        r.at(deadline, tx);
        let ran_at = rx.recv_timeout(TIMEOUT).unwrap();
        assert!(ran_at >= deadline, "{kind}: ran before its deadline");
        let deadline = r.clock_now() + Duration::from_millis(2);
        assert_eq!(r.at_with_result(deadline), 7, "{kind}");
        assert!(r.clock_now() >= deadline, "{kind}");
    });
}

#[test]
fn a_deadline_in_the_past_runs_as_soon_as_possible() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let r = pool.create_sequenced_task_runner(TaskTraits::default());
    let past = PostTask::now(&r) - Duration::from_secs(60);
    let h = r.post_delayed_task_with_result_at(past, || "now").unwrap();
    assert_eq!(h.join().unwrap(), "now");
    assert_eq!(pool.pending_delayed_tasks(), 0);
}

#[test]
fn deadlines_follow_the_mock_clock() {
    let env = TestEnvironment::new();
    let r = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let deadline = env.now() + Duration::from_secs(3600);
    let h = r.post_delayed_task_with_result_at(deadline, || 1).unwrap();
    env.fast_forward_by(Duration::from_secs(3599));
    assert!(!h.is_finished(), "an hour of mock time has not passed");
    env.fast_forward_by(Duration::from_secs(1));
    assert!(h.is_finished());
    assert_eq!(h.join().unwrap(), 1);
}

#[test]
fn a_delayed_reply_comes_back_to_the_calling_sequence_from_every_runner() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    ORIGIN
        .with(|o| *o.borrow_mut() = Some(pool.create_sequenced_task_runner(TaskTraits::default())));
    for_every_runner(&pool, |kind, make| {
        let r = make();
        let posted = r.clock_now();
        let (tx, rx) = mpsc::channel();
        r.delayed_reply(Duration::from_millis(3), tx);
        let (on_origin, ran_at) = rx.recv_timeout(TIMEOUT).unwrap();
        assert!(on_origin, "{kind}: the reply ran on the calling sequence");
        assert!(
            ran_at >= posted + Duration::from_millis(3),
            "{kind}: the task ran early"
        );
    });
}

#[test]
fn a_delayed_reply_without_a_calling_sequence_is_refused_with_both_closures() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let r = pool.create_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let err = r
        .post_delayed_task_and_reply(
            Duration::from_millis(1),
            move || tx.send(1).unwrap(),
            move || tx2.send(2).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.reason(), PostRefusal::NoCurrentSequence);
    let (task, reply) = err.into_inner();
    task();
    reply();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn shutdown_drops_a_delayed_task_and_its_reply_unrun() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let target = pool.create_sequenced_task_runner(TaskTraits::default());
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = DropCounter::new();
    let (task_token, reply_token) = (drops.token(), drops.token());
    let (tx, rx) = mpsc::channel();
    origin
        .post_task(move || {
            let posted = target.post_delayed_task_and_reply(
                Duration::from_secs(3600),
                move || task_token.keep(),
                move || reply_token.keep(),
            );
            tx.send(posted.is_ok()).unwrap();
        })
        .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    assert_eq!(pool.pending_delayed_tasks(), 1);
    pool.shutdown();
    assert_eq!(drops.dropped(), 2, "both closures dropped, neither run");
    assert_eq!(pool.metrics().tasks_dropped(), 1);
}
