//! Where the store's synchronous work (redb's) runs: on the calling runtime's blocking
//! pool, awaited, so that no thread others wait on waits on a commit; or inline, on a
//! thread that runs one loop alone and says so.

use std::cell::Cell;

use futures_util::future::BoxFuture;

use super::model::StoreError;

/// What a store method answers when its work on the blocking pool was cut off before it
/// ran (the runtime is stopping).
pub(in crate::store) trait Interrupted {
    /// The answer.
    fn interrupted() -> Self;
}

impl<T, E: From<StoreError>> Interrupted for Result<T, E> {
    fn interrupted() -> Self {
        Err(StoreError::Unavailable("the process is stopping".into()).into())
    }
}

#[cfg(test)]
impl Interrupted for () {
    fn interrupted() -> Self {
        panic!("the test's runtime stopped")
    }
}

#[cfg(test)]
impl Interrupted for crate::store::model::Owner {
    fn interrupted() -> Self {
        panic!("the test's runtime stopped")
    }
}

thread_local! {
    /// Whether this thread runs one loop alone, so the store's synchronous work may
    /// block it (see [`allow_blocking_on_this_thread`]).
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Lets the store's synchronous work (redb's) run inline on the calling thread from now
/// on: for a thread that runs one loop alone on a runtime of its own (the engine's
/// scheduler and writer), where nothing else waits for the thread, and a hop to the
/// blocking pool per call would only add a thread hand-off (it cost W1 a fifth of its
/// throughput).
pub fn allow_blocking_on_this_thread() {
    MAY_BLOCK.with(|may| may.set(true));
}

/// Runs `work`, synchronous store work, where it belongs: inline on a thread that
/// [allows it](allow_blocking_on_this_thread), else on the current runtime's blocking
/// pool, awaited without blocking the caller's thread. A panic in `work` is the caller's
/// panic, as it would be inline.
pub(in crate::store) fn run_sync<T: Interrupted + Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> BoxFuture<'static, T> {
    if MAY_BLOCK.with(Cell::get) {
        let done = work();
        return Box::pin(std::future::ready(done));
    }
    Box::pin(async move {
        match tokio::task::spawn_blocking(work).await {
            Ok(answer) => answer,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => T::interrupted(),
        }
    })
}
