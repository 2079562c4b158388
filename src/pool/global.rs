//! The process-wide pool: installed once (`build_global`), or built with defaults by the first
//! use of `ThreadPool::global()`. Never dropped.

use std::sync::OnceLock;

use crate::error::{BuildError, BuildErrorKind};
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

pub(crate) fn get() -> &'static ThreadPool {
    GLOBAL.get_or_init(|| {
        ThreadPool::builder()
            .build()
            .expect("the default thread pool configuration is valid")
    })
}
