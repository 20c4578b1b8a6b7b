//! The store's decisions, each written once over primitives both backends implement: which
//! endpoints a published event goes to ([`publish`]), what recording an attempt's result does ([`record`]), what enabling an endpoint again
//! resumes ([`resume`]), what expiring a verification session publishes ([`expire`]),
//! what ending an endpoint's deliveries files ([`cancel`]), what retrying an attempt now
//! moves ([`retry`]), what resending an event queues ([`resend`]), what a step of a replay queues ([`replay`]),
//! what the scheduler's parking does with each entry ([`park`]), which parked attempts go
//! back on the queue ([`unpark`]).
//!
//! A rule is an `async fn` over a trait of primitives (read this row, write that one). The
//! Postgres backend runs it inside its transaction, where a primitive may wait on the
//! database. The redb backend's primitives never wait, so the rule's future is done on its
//! first poll: `settle` polls it once, with no runtime.

pub mod cancel;
pub mod expire;
pub mod park;
pub mod publish;
pub mod record;
pub mod replay;
pub mod resend;
pub mod resume;
pub mod retry;
pub mod unpark;

use std::future::Future;

use futures_util::FutureExt;

/// The output of a rule run over primitives that never wait (the redb backend's).
///
/// # Panics
/// If the future is not done on its first poll: a redb primitive waited, which none does.
pub(crate) fn settle<F: Future>(rule: F) -> F::Output {
    rule.now_or_never().expect("a rule over redb primitives is done on its first poll")
}
