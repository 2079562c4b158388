//! `Group`: the thread group. The ready queues (one lock-free FIFO per priority), the worker
//! threads, and the protocol that wakes at most one of them per post.
//!
//! # Ready queues
//!
//! `queues[p]` is a crossbeam `Injector` of [`Work`] entries of priority `p`: one-off tasks,
//! tasks of direct sequences (stamped with their position) and tickets of held sequences, in the
//! order they became ready. Its FIFO order is the pool's age order within a priority; a worker
//! always looks at higher priorities first. Workers also keep small local queues (batches taken
//! from an injector, and work posted by their own tasks; `thread.rs`) that others may steal.
//!
//! # Waking: searching workers (tokio's protocol, Go's spinning threads)
//!
//! A worker with nothing local to run becomes *searching*: it looks at the injectors and the
//! other workers' queues, spinning a little, before it parks. A post wakes a worker only when
//! **no** worker is searching (a searcher will find the new entry) and fewer workers are awake
//! than the pool may run; the woken worker starts as a searcher. A searcher that finds work
//! stops searching, and if it was the last one it wakes another worker when work is left
//! (so a burst spreads over the workers one wake-up at a time).
//!
//! | counter | meaning | changed by |
//! |---|---|---|
//! | `searching` | awake workers looking for work | `+1` by the waker for the worker it wakes (or spawns), or by a worker that starts searching; `-1` when it stops |
//! | `active` | workers not parked (running or searching) | `-1` when a worker parks, `+1` by its waker |
//! | `capacity` | workers that may be awake: `max_workers` plus tasks inside blocking scopes | `begin_blocking` / `end_blocking` |
//!
//! Not losing a wake-up (all `SeqCst`):
//!
//! | side | steps |
//! |---|---|
//! | poster | 1. push the entry 2. fence (for an injector push, the push's own `SeqCst` compare-and-swap takes its place; see [`notify_after_injector_push`](Group::notify_after_injector_push)) 3. load `searching` (`SeqCst`): non-zero → done 4. else lock, re-check, wake a parked worker or spawn one |
//! | last searcher about to park | 1. `searching -= 1` 2. register as parked (lock) 3. fence 4. look at every queue: work → wake a worker (possibly itself) |
//!
//! Either the poster's load sees the searcher (which then looks at the queues after its fence
//! and finds the entry), or the searcher's look finds the entry. The loom models in
//! `src/loom_tests/group_wakeups.rs` check this.
//!
//! Every side effect that needs the pool (spawning a thread) is returned as [`Wake`] and run by
//! the caller after the group's lock is released.

use crate::base::shim::{fence, Arc, AtomicBool, AtomicUsize, Injector, Mutex, Ordering, Steal};
use crate::base::traits::TaskPriority;
use crate::engine::scheduler::Work;
use crate::engine::worker::WorkerShared;
use crossbeam_utils::CachePadded;

/// A thread the group wants started (run by the caller once no lock is held).
#[must_use = "a spawn request must be run: the group counts the worker as alive"]
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pub(crate) spawn: Option<Arc<WorkerShared>>,
}

impl Wake {
    #[inline]
    pub(crate) fn none() -> Self {
        Wake { spawn: None }
    }
}

#[derive(Debug, Default)]
struct Synced {
    /// Parked workers, most recently parked last (LIFO: reuse warm threads, let cold ones time
    /// out).
    idle: Vec<Arc<WorkerShared>>,
    /// Every live worker (reports, joins, stealing).
    all: Vec<Arc<WorkerShared>>,
    /// Workers that left for good (completion or wind-down), still to be joined.
    exited: Vec<Arc<WorkerShared>>,
    next_index: usize,
    /// Shutdown completed: workers exit, queued work is discarded.
    completed: bool,
    /// Every handle to the pool is gone: workers exit once no work is left.
    terminating: bool,
    /// Seeded single-thread test mode: no worker threads.
    manual: bool,
}

/// The thread group.
#[derive(Debug)]
pub(crate) struct Group {
    queues: [CachePadded<Injector<Work>>; 3],
    // Counters that workers write as they search, park, wake, run best-effort tasks and fill
    // their local queues each sit on a cache line of their own; the flags below, which every
    // post reads and which change rarely, share one that nobody writes in a steady state.
    searching: CachePadded<AtomicUsize>,
    active: CachePadded<AtomicUsize>,
    /// Best-effort tasks running now, and how many may (the cap plus blocked best-effort tasks).
    be_running: CachePadded<AtomicUsize>,
    /// How many workers may hold local entries of each priority (see `thread.rs`): a worker
    /// takes from a lower-priority injector, or best-effort work at all, only after those are
    /// stolen, so entries kept local never lose their priority.
    local_workers: CachePadded<[AtomicUsize; 3]>,
    /// Bumped (under the lock) every time the list of live workers changes: searchers keep a
    /// copy of the list and refresh it only when this moved, so a search step takes no lock
    /// and allocates nothing.
    roster: AtomicUsize,
    capacity: AtomicUsize,
    be_capacity: AtomicUsize,
    /// No worker is alive and the last start failed (see `Engine::admit`).
    stalled: AtomicBool,
    /// Mirror of `Synced::completed` / `terminating` / `manual` for lock-free reads.
    completed: AtomicBool,
    terminating: AtomicBool,
    #[cfg(feature = "test-util")]
    manual: AtomicBool,
    synced: CachePadded<Mutex<Synced>>,
    /// Loom models: workers started from now on time out at their first park.
    #[cfg(loom)]
    pub(crate) loom_time_out_first_park: AtomicBool,
    pub(crate) max_workers: usize,
    pub(crate) max_best_effort: usize,
}

impl Group {
    pub(crate) fn new(max_workers: usize, max_best_effort: usize) -> Self {
        Group {
            queues: [
                CachePadded::new(Injector::new()),
                CachePadded::new(Injector::new()),
                CachePadded::new(Injector::new()),
            ],
            searching: CachePadded::new(AtomicUsize::new(0)),
            active: CachePadded::new(AtomicUsize::new(0)),
            be_running: CachePadded::new(AtomicUsize::new(0)),
            local_workers: CachePadded::new([
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ]),
            roster: AtomicUsize::new(0),
            capacity: AtomicUsize::new(max_workers),
            be_capacity: AtomicUsize::new(max_best_effort),
            stalled: AtomicBool::new(false),
            completed: AtomicBool::new(false),
            terminating: AtomicBool::new(false),
            #[cfg(feature = "test-util")]
            manual: AtomicBool::new(false),
            synced: CachePadded::new(Mutex::new(Synced::default())),
            #[cfg(loom)]
            loom_time_out_first_park: AtomicBool::new(false),
            max_workers,
            max_best_effort,
        }
    }

    // ---- posting ----------------------------------------------------------------------------

    /// Appends `work` to the ready queue of its priority and makes sure a worker will look.
    #[inline]
    pub(crate) fn push(&self, work: Work) -> Wake {
        let p = work.priority().index();
        self.queues[p].push(work);
        self.notify_after_injector_push()
    }

    /// Appends several entries that became ready together (tasks that ripened at one moment),
    /// then makes sure a worker will look (one wake-up for the batch).
    pub(crate) fn push_all(&self, works: impl IntoIterator<Item = Work>) -> Wake {
        for w in works {
            let p = w.priority().index();
            self.queues[p].push(w);
        }
        self.notify()
    }

    /// Direct access to a ready queue (workers, test environments).
    #[inline]
    pub(crate) fn queue(&self, p: TaskPriority) -> &Injector<Work> {
        &self.queues[p.index()]
    }

    /// `true` if an entry of priority `p` or higher waits in a ready queue (a racy look).
    #[inline]
    pub(crate) fn waiting_at_or_above(&self, p: TaskPriority) -> bool {
        self.queues[p.index()..].iter().any(|q| !q.is_empty())
    }

    /// `true` if an entry of a priority strictly above `p` waits.
    #[inline]
    pub(crate) fn waiting_above(&self, p: TaskPriority) -> bool {
        self.queues[p.index() + 1..].iter().any(|q| !q.is_empty())
    }

    /// A worker's local queues now hold entries of priority `to` instead of `from`.
    #[inline]
    pub(crate) fn local_changed(&self, from: Option<TaskPriority>, to: Option<TaskPriority>) {
        if from == to {
            return;
        }
        if let Some(p) = to {
            self.local_workers[p.index()].fetch_add(1, Ordering::SeqCst);
        }
        if let Some(p) = from {
            self.local_workers[p.index()].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `true` if some worker may hold local entries of a priority above `p`.
    #[inline]
    pub(crate) fn local_above(&self, p: TaskPriority) -> bool {
        self.local_workers[p.index() + 1..]
            .iter()
            .any(|n| n.load(Ordering::SeqCst) != 0)
    }

    /// Someone posted: wake a worker unless one is searching or none may run more. See the
    /// module doc for why the fence and the load cannot both miss a parking searcher.
    #[inline]
    pub(crate) fn notify(&self) -> Wake {
        fence(Ordering::SeqCst);
        self.notify_unless_covered()
    }

    /// [`notify`](Self::notify) right after an `Injector::push`, without the fence: the push
    /// is a `SeqCst` compare-and-swap of the injector's tail (crossbeam-deque), which already
    /// orders the `SeqCst` loads below after it in the single total order of `SeqCst`
    /// operations, as the fence would. Under loom the stand-in injector is a mutex, so the
    /// fence stays.
    #[inline]
    pub(crate) fn notify_after_injector_push(&self) -> Wake {
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        self.notify_unless_covered()
    }

    /// No wake-up is needed when every worker that may run is awake (it looks at the queues
    /// before it parks), or when one is searching. `active` is checked first: it changes only
    /// when workers park or wake, while `searching` flips each time a worker finds work, so
    /// in a busy pool a post reads a line that stays in its cache.
    #[inline]
    fn notify_unless_covered(&self) -> Wake {
        if self.active.load(Ordering::SeqCst) >= self.capacity.load(Ordering::SeqCst) {
            return Wake::none();
        }
        if self.searching.load(Ordering::SeqCst) != 0 {
            return Wake::none();
        }
        self.notify_slow()
    }

    #[cold]
    fn notify_slow(&self) -> Wake {
        let mut s = self.synced.lock();
        if s.completed || s.manual {
            return Wake::none();
        }
        if self.searching.load(Ordering::SeqCst) != 0
            || self.active.load(Ordering::SeqCst) >= self.capacity.load(Ordering::SeqCst)
        {
            return Wake::none();
        }
        if let Some(w) = s.idle.pop() {
            drop(s);
            self.wake_parked(&w);
            return Wake::none();
        }
        self.add_worker(&mut s)
    }

    /// Unparks a worker taken off the idle list. It wakes as a searcher: it is counted as
    /// searching and active on its behalf *before* it runs, so posts meanwhile skip waking
    /// another.
    fn wake_parked(&self, w: &Arc<WorkerShared>) {
        self.searching.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        w.parker.unpark();
    }

    /// Creates a worker (searching and active from birth); the caller starts its thread.
    fn add_worker(&self, s: &mut Synced) -> Wake {
        let index = s.next_index;
        s.next_index += 1;
        let worker = Arc::new(WorkerShared::new(index));
        s.all.push(Arc::clone(&worker));
        self.roster.fetch_add(1, Ordering::Release);
        self.searching.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        Wake {
            spawn: Some(worker),
        }
    }

    /// After a searcher's fence: wakes a worker if runnable work is waiting anywhere.
    pub(crate) fn notify_if_work(&self) -> Wake {
        fence(Ordering::SeqCst);
        if self.has_runnable_work() {
            self.notify()
        } else {
            Wake::none()
        }
    }

    /// `true` if some queue holds work a worker may take now (best-effort work only below the
    /// best-effort cap). A racy look, made after a fence by the callers that need it exact.
    pub(crate) fn has_runnable_work(&self) -> bool {
        if !self.queues[TaskPriority::UserBlocking.index()].is_empty()
            || !self.queues[TaskPriority::UserVisible.index()].is_empty()
        {
            return true;
        }
        if !self.queues[TaskPriority::BestEffort.index()].is_empty() && self.be_available() {
            return true;
        }
        if self
            .local_workers
            .iter()
            .all(|n| n.load(Ordering::SeqCst) == 0)
        {
            return false;
        }
        self.synced.lock().all.iter().any(|w| w.has_local_work())
    }

    // ---- searching --------------------------------------------------------------------------

    /// A worker with nothing local wants to search. `false` if enough workers already search
    /// (at most half the workers, at least one): it should park instead.
    pub(crate) fn begin_search(&self) -> bool {
        let n = self.searching.load(Ordering::SeqCst);
        let limit = (self.active.load(Ordering::Relaxed).max(1)).div_ceil(2);
        if n >= limit {
            return false;
        }
        self.searching.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searcher stopped searching. Returns `true` if it was the last one: it must then make
    /// sure a worker looks at what is left ([`notify_if_work`](Self::notify_if_work)).
    #[inline]
    pub(crate) fn end_search(&self) -> bool {
        self.searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// A snapshot of the workers to steal from.
    pub(crate) fn victims(&self) -> Vec<Arc<WorkerShared>> {
        self.synced.lock().all.clone()
    }

    /// Refreshes `copy` (a searcher's list of the workers to steal from) if the list of live
    /// workers changed since `seen`. A stale copy is harmless: a worker that left has nothing
    /// local any more (it flushed before leaving), and one that just arrived has nothing yet.
    #[inline]
    pub(crate) fn refresh_victims(&self, seen: &mut usize, copy: &mut Vec<Arc<WorkerShared>>) {
        let now = self.roster.load(Ordering::Acquire);
        if now != *seen || copy.is_empty() {
            let s = self.synced.lock();
            copy.clone_from(&s.all);
            *seen = self.roster.load(Ordering::Relaxed);
        }
    }

    // ---- best-effort cap --------------------------------------------------------------------

    #[inline]
    pub(crate) fn be_available(&self) -> bool {
        self.be_running.load(Ordering::Relaxed) < self.be_capacity.load(Ordering::Relaxed)
    }

    /// Takes a best-effort slot if the cap allows.
    pub(crate) fn try_acquire_be(&self) -> bool {
        let cap = self.be_capacity.load(Ordering::Acquire);
        let mut n = self.be_running.load(Ordering::Relaxed);
        loop {
            if n >= cap {
                return false;
            }
            match self.be_running.compare_exchange_weak(
                n,
                n + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
    }

    /// A best-effort task ended.
    pub(crate) fn release_be(&self) {
        self.be_running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Takes one best-effort entry if the cap allows (the slot is held on success).
    pub(crate) fn steal_best_effort(&self) -> Option<Work> {
        let q = &self.queues[TaskPriority::BestEffort.index()];
        if q.is_empty() || !self.try_acquire_be() {
            return None;
        }
        loop {
            match q.steal() {
                Steal::Success(w) => return Some(w),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        self.release_be();
        None
    }

    // ---- parking ----------------------------------------------------------------------------

    /// A worker is about to park (it stopped searching first). Registers it as parked; `None`
    /// if it must exit instead (shutdown completed, or the pool was dropped and nothing is
    /// left), in which case it left the group.
    pub(crate) fn park_begin(&self, me: &Arc<WorkerShared>) -> Parking {
        let mut s = self.synced.lock();
        if s.completed || (s.terminating && !self.any_work_locked(&s)) {
            self.remove(&mut s.all, me);
            s.exited.push(Arc::clone(me));
            self.active.fetch_sub(1, Ordering::SeqCst);
            // Parked workers must notice too.
            let idle = std::mem::take(&mut s.idle);
            drop(s);
            for w in &idle {
                self.wake_parked(w);
            }
            return Parking::Exit;
        }
        s.idle.push(Arc::clone(me));
        self.active.fetch_sub(1, Ordering::SeqCst);
        Parking::Parked
    }

    fn any_work_locked(&self, s: &Synced) -> bool {
        self.queues.iter().any(|q| !q.is_empty()) || s.all.iter().any(|w| w.has_local_work())
    }

    /// A parked worker timed out. If it is still registered as parked it leaves the pool
    /// (`true`); otherwise a waker popped it and is about to unpark it.
    pub(crate) fn try_reclaim(&self, me: &Arc<WorkerShared>) -> bool {
        let mut s = self.synced.lock();
        match s.idle.iter().position(|x| Arc::ptr_eq(x, me)) {
            Some(i) => {
                s.idle.remove(i);
                self.remove(&mut s.all, me);
                true
            }
            None => false,
        }
    }

    /// `true` if more workers are awake than the pool may run now (a blocking scope ended):
    /// the caller should park.
    #[inline]
    pub(crate) fn over_capacity(&self) -> bool {
        self.active.load(Ordering::Relaxed) > self.capacity.load(Ordering::Relaxed)
    }

    fn remove(&self, list: &mut Vec<Arc<WorkerShared>>, me: &Arc<WorkerShared>) {
        if let Some(i) = list.iter().position(|x| Arc::ptr_eq(x, me)) {
            list.swap_remove(i);
            self.roster.fetch_add(1, Ordering::Release);
        }
    }

    // ---- spawning ---------------------------------------------------------------------------

    /// A worker thread could not be started: forget it. With no worker left alive the group is
    /// stalled: nothing queued can run until a later start succeeds.
    pub(crate) fn spawn_failed(&self, me: &Arc<WorkerShared>) {
        let mut s = self.synced.lock();
        self.remove(&mut s.all, me);
        self.searching.fetch_sub(1, Ordering::SeqCst);
        self.active.fetch_sub(1, Ordering::SeqCst);
        if s.all.is_empty() {
            self.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// A worker thread started: the group is not stalled.
    #[inline]
    pub(crate) fn spawn_succeeded(&self) {
        if self.stalled.load(Ordering::Relaxed) {
            self.stalled.store(false, Ordering::SeqCst);
        }
    }

    /// `true` while no worker is alive and the last start failed.
    #[inline]
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Stalled: asks for one worker to be started again.
    pub(crate) fn retry_start(&self) -> Wake {
        let mut s = self.synced.lock();
        if s.all.is_empty() && !s.completed && !s.manual {
            return self.add_worker(&mut s);
        }
        Wake::none()
    }

    /// Shutdown of a stalled group: takes everything queued (no thread can run it). `None` if a
    /// worker is alive.
    pub(crate) fn take_stalled_work(&self) -> Option<Vec<Work>> {
        let s = self.synced.lock();
        if !s.all.is_empty() || !self.is_stalled() {
            return None;
        }
        drop(s);
        Some(self.drain_queues())
    }

    // ---- blocking scopes --------------------------------------------------------------------

    /// A task entered a blocking scope: one more worker may be awake meanwhile (and one more
    /// best-effort task may run if the blocked one is best-effort).
    pub(crate) fn begin_blocking(&self, best_effort: bool) -> Wake {
        self.capacity.fetch_add(1, Ordering::SeqCst);
        if best_effort {
            self.be_capacity.fetch_add(1, Ordering::SeqCst);
        }
        self.notify_if_work()
    }

    /// The scope ended: the capacity goes back; surplus workers park at their next look (and
    /// look at the queues once more after that; see the worker loop).
    pub(crate) fn end_blocking(&self, best_effort: bool) {
        self.capacity.fetch_sub(1, Ordering::SeqCst);
        if best_effort {
            self.be_capacity.fetch_sub(1, Ordering::SeqCst);
        }
    }

    // ---- lifecycle --------------------------------------------------------------------------

    /// Every queued entry, taken out (shutdown completion, stalled shutdown).
    pub(crate) fn drain_queues(&self) -> Vec<Work> {
        let mut out = Vec::new();
        for q in &self.queues {
            loop {
                match q.steal() {
                    Steal::Success(w) => out.push(w),
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        for w in self.victims() {
            w.drain_local_into(&mut out);
        }
        out
    }

    /// Shutdown completed: workers exit (parked ones are woken), and everything queued is
    /// returned for the caller to discard. Later pushes are discarded by their pushers' checks
    /// (`is_completed`) or by the workers that find them.
    pub(crate) fn complete(&self) -> Vec<Work> {
        let idle = {
            let mut s = self.synced.lock();
            s.completed = true;
            self.completed.store(true, Ordering::SeqCst);
            std::mem::take(&mut s.idle)
        };
        // Against a post racing completion: it pushes (a `SeqCst` CAS, or a local push and the
        // fence in `notify`), then reads `completed` `SeqCst` (see `Engine::push_work`); this
        // side stores `completed`, fences, then drains. One of the two sees the entry and
        // discards it.
        fence(Ordering::SeqCst);
        for w in &idle {
            self.wake_parked(w);
        }
        self.drain_queues()
    }

    /// `SeqCst`: a poster reads this right after its push (an injector push is a `SeqCst`
    /// compare-and-swap, a local push is followed by the fence in `notify`), and `complete`
    /// stores it `SeqCst` before it drains, so in the single order of `SeqCst` operations
    /// either the poster sees `true` or the drain sees the entry. An `Acquire` load would be
    /// allowed to read the old value on weakly ordered hardware. (On x86 both are a plain load.)
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        self.completed.load(Ordering::SeqCst)
    }

    /// Every handle is gone (`true`) or one came back (`false`). Parked workers are woken so
    /// they can exit once nothing is left.
    pub(crate) fn set_terminating(&self, terminating: bool) {
        let idle = {
            let mut s = self.synced.lock();
            s.terminating = terminating;
            self.terminating.store(terminating, Ordering::SeqCst);
            if terminating {
                std::mem::take(&mut s.idle)
            } else {
                Vec::new()
            }
        };
        for w in &idle {
            self.wake_parked(w);
        }
    }

    /// Takes the workers that exited and were not joined yet.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn take_exited(&self) -> Vec<Arc<WorkerShared>> {
        std::mem::take(&mut self.synced.lock().exited)
    }

    /// A snapshot of every live worker.
    pub(crate) fn workers(&self) -> Vec<Arc<WorkerShared>> {
        self.synced.lock().all.clone()
    }

    /// Live workers, parked ones among them, and entries in their local queues (a snapshot).
    pub(crate) fn worker_counts(&self) -> (usize, usize, usize) {
        let s = self.synced.lock();
        let local = s.all.iter().map(|w| w.local_len()).sum();
        (s.all.len(), s.idle.len(), local)
    }

    /// Entries waiting in the ready queue of `p` (a snapshot).
    pub(crate) fn ready_len(&self, p: TaskPriority) -> usize {
        self.queues[p.index()].len()
    }

    // ---- seeded test mode -------------------------------------------------------------------

    /// Seeded single-thread test mode: from now on no worker thread is started or woken.
    #[cfg(feature = "test-util")]
    pub(crate) fn set_manual(&self) {
        self.synced.lock().manual = true;
        self.manual.store(true, Ordering::Release);
    }

    /// `true` in seeded single-thread test mode.
    #[cfg(feature = "test-util")]
    #[inline]
    pub(crate) fn is_manual(&self) -> bool {
        self.manual.load(Ordering::Relaxed)
    }

    /// Without test utilities there is no seeded mode.
    #[cfg(not(feature = "test-util"))]
    #[inline]
    #[allow(dead_code)] // its callers are test utilities
    pub(crate) fn is_manual(&self) -> bool {
        false
    }

    /// Seeded mode: every entry queued now, taken out (the test thread picks among them and
    /// puts back the rest with [`put_back`](Self::put_back)).
    #[cfg(feature = "test-util")]
    pub(crate) fn take_all_queued(&self) -> Vec<Work> {
        self.drain_queues()
    }

    /// Seeded mode: returns entries the test thread did not run, in their order.
    #[cfg(feature = "test-util")]
    pub(crate) fn put_back(&self, works: Vec<Work>) {
        for w in works {
            let p = w.priority().index();
            self.queues[p].push(w);
        }
    }

    /// Loom models: the searching count.
    #[cfg(all(test, loom))]
    pub(crate) fn searching(&self) -> usize {
        self.searching.load(Ordering::SeqCst)
    }
}

/// What [`Group::park_begin`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parking {
    /// Registered as parked: park (a waker pops and unparks it).
    Parked,
    /// Left the group: the thread must exit.
    Exit,
}
