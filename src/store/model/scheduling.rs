//! What the writes that queue answer with: what they published, scheduled and recorded.

use super::attempts::{AttemptRecord, AttemptStatus, Recorded};
use super::endpoints::EndpointRecord;
use super::events::Published;
use super::queue::Scheduled;

/// What `publish_and_record` wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// What each publish did, in order.
    pub published: Vec<Published>,
    /// The published events' first attempts.
    pub first_attempts: Scheduled,
    /// What recording the results changed.
    pub recorded: Recorded,
}

/// What [`QueueWrites::retry_now`](crate::store::QueueWrites::retry_now) did.
#[derive(Debug)]
pub enum RetryNow {
    /// The pending attempt now goes at once: its record, and its new queue entry.
    Moved(Box<AttemptRecord>, Scheduled),
    /// No attempt with that id belongs to that endpoint in that mode.
    NoSuchAttempt,
    /// The attempt has no scheduled retry (it has this status and nothing follows it).
    NotScheduled(AttemptStatus),
    /// The retry waits for its endpoint to be enabled.
    EndpointDisabled,
}

/// An endpoint after an update, and what enabling it released.
#[derive(Debug)]
pub struct EndpointUpdated {
    /// The endpoint as stored now.
    pub endpoint: EndpointRecord,
    /// Parked attempts that went back on the queue.
    pub resumed: Scheduled,
}
