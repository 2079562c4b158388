//! The one post path: a runner defined outside the crate implements `post_task`,
//! `post_delayed_task`, `now` and `max_concurrency`, and gets every other variant from
//! `PostTask` (with a result, with a reply, futures), with the same refusals (the closures
//! handed back) as the crate's runners.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::{PostError, PostRefusal, PostTask, SequencedTaskRunner, TaskTraits, ThreadPool};

/// A user's runner: counts its posts and forwards them to a sequence.
#[derive(Clone)]
struct Counting {
    inner: SequencedTaskRunner,
    posts: Arc<AtomicUsize>,
}

impl PostTask for Counting {
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.post_task(f)
    }

    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.post_delayed_task(delay, f)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn max_concurrency(&self) -> usize {
        1
    }
}

fn setup() -> (ThreadPool, Counting) {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let r = Counting {
        inner: pool.create_sequenced_task_runner(TaskTraits::default()),
        posts: Arc::new(AtomicUsize::new(0)),
    };
    (pool, r)
}

#[test]
fn a_user_runner_gets_results_through_its_own_post() {
    let (_pool, r) = setup();
    let h = r.post_task_with_result(|| 6 * 7).unwrap();
    assert_eq!(h.join().unwrap(), 42);
    let h = r
        .post_delayed_task_with_result(Duration::from_millis(2), || "later")
        .unwrap();
    assert_eq!(h.join().unwrap(), "later");
    assert_eq!(
        r.posts.load(Ordering::SeqCst),
        2,
        "each went through the user's post"
    );
}

#[test]
fn a_refused_post_with_a_result_hands_the_closure_back() {
    let (pool, r) = setup();
    pool.shutdown();
    let err = r.post_task_with_result(|| 5).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    assert_eq!(
        (err.into_inner())(),
        5,
        "the caller's own closure, callable"
    );
}

#[test]
fn replies_run_on_the_calling_sequence() {
    let (pool, r) = setup();
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let o2 = origin.clone();
    let r2 = r.clone();
    origin
        .post_task(move || {
            r2.post_task_and_reply_with_result(
                || vec![1, 2, 3],
                move |v: Vec<i32>| {
                    tx.send((v.len(), o2.runs_tasks_in_current_sequence()))
                        .unwrap()
                },
            )
            .unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv().unwrap(), (3, true));
}

#[test]
fn a_reply_without_a_calling_sequence_is_refused_with_both_closures() {
    let (_pool, r) = setup();
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let err = r
        .post_task_and_reply_with_result(|| 1, move |v: usize| g.store(v, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(err.reason(), PostRefusal::NoCurrentSequence);
    let (task, reply) = err.into_inner();
    reply(task() + 1);
    assert_eq!(
        got.load(Ordering::SeqCst),
        2,
        "both closures came back, callable"
    );
    assert_eq!(r.posts.load(Ordering::SeqCst), 0, "nothing was posted");
}

#[test]
fn a_refused_reply_post_hands_both_closures_back() {
    let (pool, r) = setup();
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let target = Counting {
        inner: {
            let other = ThreadPool::builder().max_workers(1).build().unwrap();
            let seq = other.create_sequenced_task_runner(TaskTraits::default());
            other.shutdown();
            seq
        },
        posts: r.posts.clone(),
    };
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    origin
        .post_task(move || {
            let err = target
                .post_task_and_reply_with_result(
                    || 1,
                    move |v: usize| g.store(v * 10, Ordering::SeqCst),
                )
                .unwrap_err();
            let reason = err.reason();
            let (task, reply) = err.into_inner();
            reply(task());
            tx.send(reason).unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv().unwrap(), PostRefusal::ShutdownCompleted);
    assert_eq!(
        got.load(Ordering::SeqCst),
        10,
        "both closures came back, callable"
    );
}

#[test]
fn futures_run_on_a_user_runner() {
    let (_pool, r) = setup();
    let first = r.post_task_with_result(|| 20).unwrap();
    let h = r
        .post_future(async move { first.await.unwrap() + 1 })
        .unwrap();
    assert_eq!(h.join().unwrap(), 21);
}

#[test]
fn every_receiver_has_every_variant() {
    fn all<R: PostTask + Clone + Send + Sync + 'static>(r: &R) -> i32 {
        let a = r.post_task_with_result(|| 1).unwrap().join().unwrap();
        let b = r
            .post_delayed_task_with_result(Duration::from_millis(1), || 2)
            .unwrap()
            .join()
            .unwrap();
        let c = r.post_future(async { 3 }).unwrap().join().unwrap();
        let d = r
            .post_delayed_task_with_result_at(r.now() + Duration::from_millis(1), || 4)
            .unwrap()
            .join()
            .unwrap();
        a + b + c + d
    }
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    assert_eq!(all(&pool), 10);
    assert_eq!(all(&pool.create_task_runner(TaskTraits::default())), 10);
    assert_eq!(
        all(&pool.create_sequenced_task_runner(TaskTraits::default())),
        10
    );
    assert_eq!(
        all(&pool.create_single_thread_task_runner(TaskTraits::default())),
        10
    );
    assert_eq!(
        all(&pool.create_updateable_sequenced_task_runner(TaskTraits::default())),
        10
    );
    assert_eq!(all(&keyed.runner(7)), 10);
}

#[test]
fn a_user_runner_gets_delayed_replies_and_deadlines_through_its_own_delayed_post() {
    let (pool, r) = setup();
    let origin = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let (target, o2) = (r.clone(), origin.clone());
    origin
        .post_task(move || {
            target
                .post_delayed_task_and_reply_with_result(
                    Duration::from_millis(2),
                    || 6 * 7,
                    move |v: i32| tx.send((v, o2.runs_tasks_in_current_sequence())).unwrap(),
                )
                .unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv().unwrap(), (42, true));
    let deadline = r.now() + Duration::from_millis(2);
    let h = r.post_delayed_task_with_result_at(deadline, || ()).unwrap();
    h.join().unwrap();
    assert!(r.now() >= deadline);
    assert_eq!(
        r.posts.load(Ordering::SeqCst),
        2,
        "each went through the user's delayed post"
    );
}
