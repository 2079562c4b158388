//! `SequenceLocal<T>`: per-sequence storage, like `thread_local!` but per sequence.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::current;

/// A slot that holds one `T` per sequence (Chromium's `SequenceLocalStorageSlot`): each
/// sequence sees its own value, values live in the sequence and are dropped when the sequence
/// is dropped (when its last runner handle and last queued task are gone).
///
/// Usable only from tasks of a sequenced or single-thread runner; elsewhere the methods panic
/// with a message saying so. Usually a `static`:
///
/// ```
/// use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
/// static VISITS: SequenceLocal<u32> = SequenceLocal::new();
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let a = pool.create_sequenced_task_runner(TaskTraits::default());
/// let b = pool.create_sequenced_task_runner(TaskTraits::default());
/// let bump = || VISITS.get_or_insert_with(|| 0, |v| { *v += 1; *v });
/// a.post_task_with_result(bump).unwrap().join().unwrap();
/// assert_eq!(a.post_task_with_result(bump).unwrap().join().unwrap(), 2);
/// assert_eq!(b.post_task_with_result(bump).unwrap().join().unwrap(), 1); // b has its own
/// ```
pub struct SequenceLocal<T: Send + 'static> {
    /// Unique slot id, assigned on first use (0 = not yet). A plain std atomic: it only has to
    /// hand out one stable number.
    id: AtomicU64,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> SequenceLocal<T> {
    /// A new slot (no sequence has a value yet). `const`, so it can initialise a `static`.
    ///
    /// ```
    /// static NAME: taskrunner::SequenceLocal<String> = taskrunner::SequenceLocal::new();
    /// ```
    pub const fn new() -> Self {
        SequenceLocal {
            id: AtomicU64::new(0),
            _marker: PhantomData,
        }
    }

    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Acquire);
        if id != 0 {
            return id;
        }
        let fresh = crate::engine::task::next_id();
        match self
            .id
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }

    #[track_caller]
    fn on_sequence<R>(&self, f: impl FnOnce(&crate::engine::scheduler::Sequence) -> R) -> R {
        current::running_sequence_ref(f).unwrap_or_else(|| {
            panic!(
                "SequenceLocal used outside a sequenced task: it can only be used from tasks of a \
                 SequencedTaskRunner or SingleThreadTaskRunner"
            )
        })
    }

    /// Sets this sequence's value, returning the previous one.
    ///
    /// ```
    /// # use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
    /// static SLOT: SequenceLocal<&str> = SequenceLocal::new();
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_task_with_result(|| (SLOT.set("a"), SLOT.set("b"))).unwrap();
    /// assert_eq!(h.join().unwrap(), (None, Some("a")));
    /// ```
    #[track_caller]
    pub fn set(&self, value: T) -> Option<T> {
        let id = self.id();
        self.on_sequence(|s| s.put_local(id, Box::new(value)))
            .map(|old| *downcast::<T>(old))
    }

    /// Takes this sequence's value out, leaving the slot empty.
    ///
    /// ```
    /// # use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
    /// static SLOT: SequenceLocal<u8> = SequenceLocal::new();
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_task_with_result(|| { SLOT.set(7); (SLOT.take(), SLOT.take()) }).unwrap();
    /// assert_eq!(h.join().unwrap(), (Some(7), None));
    /// ```
    #[track_caller]
    pub fn take(&self) -> Option<T> {
        let id = self.id();
        self.on_sequence(|s| s.take_local(id))
            .map(|v| *downcast::<T>(v))
    }

    /// Calls `f` with this sequence's value (`None` if unset). The value is taken out of the
    /// sequence while `f` runs, so `f` may use other slots freely; using this same slot inside
    /// `f` sees it empty, and a value `f` sets in this same slot is replaced by the taken one
    /// when `f` returns. If `f` panics, the value is dropped.
    ///
    /// ```
    /// # use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
    /// static SLOT: SequenceLocal<Vec<u8>> = SequenceLocal::new();
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = seq.post_task_with_result(|| {
    ///     let before = SLOT.with(|v| v.is_some());
    ///     SLOT.set(vec![1]);
    ///     (before, SLOT.with(|v| v.map(|v| v.len())))
    /// }).unwrap();
    /// assert_eq!(h.join().unwrap(), (false, Some(1)));
    /// ```
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(Option<&mut T>) -> R) -> R {
        let id = self.id();
        let mut value = self.on_sequence(|s| s.take_local(id)).map(downcast::<T>);
        let r = f(value.as_deref_mut());
        if let Some(v) = value {
            self.on_sequence(|s| s.put_local(id, v));
        }
        r
    }

    /// Calls `f` with this sequence's value, first creating it with `init` if unset.
    ///
    /// See [`SequenceLocal`] for an example.
    #[track_caller]
    pub fn get_or_insert_with<R>(
        &self,
        init: impl FnOnce() -> T,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let id = self.id();
        let mut value = self
            .on_sequence(|s| s.take_local(id))
            .map(downcast::<T>)
            .unwrap_or_else(|| Box::new(init()));
        let r = f(&mut value);
        self.on_sequence(|s| s.put_local(id, value));
        r
    }

    /// `true` if this sequence has a value.
    ///
    /// ```
    /// # use taskrunner::{PostTask, SequenceLocal, ThreadPool, TaskTraits};
    /// static SLOT: SequenceLocal<()> = SequenceLocal::new();
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(!seq.post_task_with_result(|| SLOT.is_set()).unwrap().join().unwrap());
    /// ```
    #[track_caller]
    pub fn is_set(&self) -> bool {
        self.with(|v| v.is_some())
    }
}

fn downcast<T: 'static>(b: Box<dyn Any + Send>) -> Box<T> {
    b.downcast::<T>()
        .unwrap_or_else(|_| unreachable!("a SequenceLocal slot id holds values of one type"))
}

impl<T: Send + 'static> Default for SequenceLocal<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> fmt::Debug for SequenceLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceLocal")
            .field("id", &self.id.load(Ordering::Relaxed))
            .finish()
    }
}
