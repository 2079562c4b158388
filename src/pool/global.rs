//! The process-wide pool: installed once (`build_global`), or built with defaults by the first
//! use of `ThreadPool::global()`. Never dropped.

use std::sync::OnceLock;

use crate::base::error::{BuildError, BuildErrorKind};
use crate::pool::ThreadPool;

static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

pub(crate) fn install(pool: ThreadPool) -> Result<(), BuildError> {
    let mut installed = false;
    GLOBAL.get_or_init(|| {
        installed = true;
        pool
    });
    if installed {
        Ok(())
    } else {
        Err(BuildError::new(BuildErrorKind::GlobalAlreadyInstalled))
    }
}

/// The pool the crate's free functions use: a test environment installed as the global pool
/// for this thread's scope (or, on its own threads, for its tasks), else the process-wide pool.
pub(crate) fn current() -> Current {
    #[cfg(feature = "test-util")]
    if let Some(inner) = crate::engine::current::global_override() {
        return Current::Override(ThreadPool::from_ref(crate::engine::PoolRef::from_inner(
            &inner,
        )));
    }
    Current::Static(get())
}

/// See [`current`].
pub(crate) enum Current {
    Static(&'static ThreadPool),
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    Override(ThreadPool),
}

impl std::ops::Deref for Current {
    type Target = ThreadPool;
    fn deref(&self) -> &ThreadPool {
        match self {
            Current::Static(p) => p,
            Current::Override(p) => p,
        }
    }
}

pub(crate) fn get() -> &'static ThreadPool {
    GLOBAL.get_or_init(|| {
        ThreadPool::builder()
            .build()
            .expect("the default thread pool configuration is valid")
    })
}
