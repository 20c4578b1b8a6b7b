//! The store: the data of one stile deployment, in a redb file or a Postgres database.
//!
//! - [`model`]: the records, rules and errors, with no backend code;
//! - [`redb`] and [`postgres`]: the two backends, with the same file name for the same
//!   concern (the twin of `redb/events.rs` is `postgres/events.rs`);
//! - [`Store`] (in [`seam`]): the one type the rest of stile holds, whichever backend is
//!   underneath, and [`QueueWrites`], the engine's handle on the writes that queue;
//! - [`rules`]: the decisions written once over both backends; [`blocking`]: where
//!   synchronous (redb) work runs.
//!
//! The store knows nothing of HTTP. Its methods are `async` and take what they store by
//! value: Postgres is awaited where it is called, and redb's synchronous work runs on the
//! caller's runtime's blocking pool, so no caller's thread waits on a commit (see
//! `backend.rs`), except on a thread that runs one loop alone and says so
//! ([`allow_blocking_on_this_thread`]).

mod backend;
pub mod blocking;
#[cfg(test)]
pub(crate) mod conformance;
pub mod file_modes;
pub mod model;
pub mod postgres;
pub mod queue_writes;
pub mod redb;
pub mod rules;
pub mod sealing;
pub mod seam;

pub use blocking::allow_blocking_on_this_thread;
pub use model::{OpenError, StoreError};
pub use queue_writes::QueueWrites;
pub use redb::{DATA_FILE_NAME, DEFAULT_CACHE_MIB, RedbStore, SCHEMA_VERSION, StoreOptions};
pub use seam::Store;
