//! The store's writes that put attempts on the delivery queue or take them off, behind a
//! handle only the delivery engine holds.
//!
//! Whoever queues an attempt must wake the scheduler, and only the engine does (STYLE:
//! the engine owns the queue). So these writes are not methods of [`Store`] (and the
//! backends' are private to `store/`): they are methods of [`QueueWrites`] only, written
//! by the same `backend!` as the store's other methods (`backend.rs`), and the one
//! `QueueWrites` of a store comes from [`Store::into_shared`], which consumes the store. `lib.rs` hands it to `Engine::start`; every other part of stile gets the shared
//! store, which reads and makes the plain writes (endpoints, keys, applications) only.
//!
//! Outside the store, a queue write on the shared store does not compile:
//! ```compile_fail
//! fn queue_behind_the_engines_back(store: &stile::store::Store) {
//!     let _ = store.unpark(0);
//! }
//! ```
//! nor on a backend:
//! ```compile_fail
//! fn queue_on_the_file(store: &stile::store::RedbStore) {
//!     let _ = store.unpark(0);
//! }
//! ```
//! while reading through it does:
//! ```
//! async fn depth(store: &stile::store::Store) -> Result<u64, stile::store::StoreError> {
//!     store.queue_depth().await
//! }
//! ```

use std::ops::Deref;
use std::sync::Arc;

use super::Store;

/// The queue writes of one store (see the module doc). Reads go through it to the store
/// (it dereferences to [`Store`]); clones are for the engine's own tasks.
#[derive(Clone)]
pub struct QueueWrites {
    store: Arc<Store>,
}

impl Deref for QueueWrites {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Store {
    /// Shares the store, and gives its queue writes, once, to whoever opened it (the
    /// engine).
    pub fn into_shared(self) -> (Arc<Store>, QueueWrites) {
        let store = Arc::new(self);
        (Arc::clone(&store), QueueWrites { store })
    }
}

impl QueueWrites {
    /// The store these writes go to, shared.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The backend the queue writes (written by `backend!` in `backend.rs`, beside the store's
    /// other methods) go to.
    pub(super) fn backends(&self) -> &Store {
        &self.store
    }
}
