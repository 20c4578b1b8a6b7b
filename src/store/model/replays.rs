//! Replays: a query over an application's deliveries (which endpoints, which event types,
//! a time range, which outcome, what content) whose matches are sent again in the
//! background, a step at a time, resuming where the last committed step left off.

use serde::{Deserialize, Serialize};

use crate::content_filter::ContentFilter;
use crate::ids::{AppId, EndpointId, EventId, ReplayId};
use crate::mode::Mode;

use super::apps::Owner;
use super::attempts::AttemptStatus;

/// Which deliveries of the matched events a replay sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatusFilter {
    /// Deliveries that failed for good (their latest attempt is `failed`).
    Failed,
    /// Events an endpoint missed while it was disabled: recorded for it as skipped, with
    /// no attempt made to it since.
    NeverAttempted,
    /// Every finished delivery (succeeded or failed for good) and every skipped one;
    /// deliveries still pending or retrying are left to their schedule.
    All,
}

impl ReplayStatusFilter {
    /// Whether a delivery that stands at `state` is sent again.
    pub fn takes(self, state: DeliveryState) -> bool {
        match (self, state) {
            (ReplayStatusFilter::Failed, DeliveryState::Attempted(status)) => status == AttemptStatus::Failed,
            (ReplayStatusFilter::NeverAttempted, state) => state == DeliveryState::Skipped,
            (ReplayStatusFilter::All, DeliveryState::Attempted(status)) => {
                matches!(status, AttemptStatus::Succeeded | AttemptStatus::Failed)
            }
            (ReplayStatusFilter::All, DeliveryState::Skipped) => true,
            (ReplayStatusFilter::Failed, DeliveryState::Skipped) => false,
        }
    }
}

/// Where an event's delivery to one endpoint stands, as a replay sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Its latest attempt has this status.
    Attempted(AttemptStatus),
    /// No attempt was made: the endpoint was disabled when the event was published.
    Skipped,
}

/// What a replay sends again: the deliveries of the application's events, newest first,
/// that every part of the query takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayQuery {
    /// Only deliveries to these endpoints (labels are resolved to endpoints when the
    /// replay is made); empty: to any endpoint of the application.
    pub endpoints: Vec<EndpointId>,
    /// Only events of these types; empty: of any type.
    pub event_types: Vec<String>,
    /// Only events created after this time (Unix seconds, exclusive).
    pub created_after: Option<i64>,
    /// Only events created before this time (Unix seconds, exclusive): at most the
    /// replay's creation, so events published later are never part of it.
    pub created_before: i64,
    /// Which deliveries.
    pub status: ReplayStatusFilter,
    /// Only events whose object this content filter takes.
    pub filter: Option<ContentFilter>,
}

/// Where a replay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayState {
    /// Sending what it matched, or waiting for the outcomes of what it sent.
    Running,
    /// Everything it matched was sent and every delivery it made has ended.
    Completed,
    /// Cancelled: it sends nothing more (what it had queued still goes).
    Cancelled,
}

/// A replay as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// Its id.
    pub id: ReplayId,
    /// Its application.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// What it sends again.
    pub query: ReplayQuery,
    /// Where it stands.
    pub state: ReplayState,
    /// The deliveries the query matched when the replay was made.
    pub matched: u64,
    /// The deliveries it has queued again.
    pub sent: u64,
    /// Matched deliveries it could not send: the event, or the endpoint, was gone by
    /// then, or the payload was past its undelivered window.
    pub skipped: u64,
    /// Of those it sent, how many were delivered (each counted as its delivery ended, as
    /// of the replay task's last look).
    pub succeeded: u64,
    /// Of those it sent, how many failed for good (likewise).
    pub failed: u64,
    /// The last event it went through (events are gone through newest first); `None`
    /// before the first step.
    pub position: Option<EventId>,
    /// Whether it has gone through every event the query can take.
    pub queued_all: bool,
    /// Whether some delivery it sent may still end: it is looked at until none can.
    pub watching: bool,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When it was cancelled, or when its last delivery ended (Unix seconds).
    pub finished_at: Option<i64>,
}

/// What one step of a replay did.
#[derive(Debug)]
pub enum ReplayStepped {
    /// The deliveries were queued and the replay moved on: as it is now, and the queue
    /// entries to wake the scheduler for.
    Moved(ReplayRecord, super::queue::Scheduled),
    /// The replay was not where the step started from (another process stepped it, or
    /// it was cancelled or finished): nothing was queued. As it is now.
    Stale(ReplayRecord),
    /// No such replay (its application was deleted).
    Gone,
}

/// A step of a replay, as matched outside the transaction.
#[derive(Debug, Clone)]
pub struct ReplayStep {
    /// Where the replay stood when the step was matched (its `position`).
    pub from: Option<EventId>,
    /// The deliveries to queue again: (event, endpoint).
    pub deliveries: Vec<(EventId, EndpointId)>,
    /// The last event the step went through.
    pub to: Option<EventId>,
    /// Whether the step reached the last event the query can take.
    pub end: bool,
}

impl ReplayRecord {
    /// A new replay of `owner`'s deliveries that `query` matches (`matched` of them now),
    /// made at `now` (Unix seconds): running, at the start.
    pub fn new(owner: Owner, query: ReplayQuery, matched: u64, now: i64) -> ReplayRecord {
        ReplayRecord {
            id: ReplayId::new(),
            app: owner.app,
            mode: owner.mode,
            query,
            state: ReplayState::Running,
            matched,
            sent: 0,
            skipped: 0,
            succeeded: 0,
            failed: 0,
            position: None,
            queued_all: false,
            watching: true,
            created: now,
            finished_at: None,
        }
    }

    /// Cancels the replay at `now` (Unix seconds) if it is running; whether it was.
    pub fn cancel(&mut self, now: i64) -> bool {
        if self.state != ReplayState::Running {
            return false;
        }
        self.state = ReplayState::Cancelled;
        self.finished_at = Some(now);
        true
    }

    /// Counts deliveries it sent that have ended since it was last looked at
    /// (`succeeded`, `failed`), with `unsettled` of them still pending or retrying, at
    /// `now` (Unix seconds): a running replay that has queued everything is completed once
    /// none is left, and a replay whose outcomes can no longer change is no longer watched.
    pub fn settle(&mut self, succeeded: u64, failed: u64, unsettled: u64, now: i64) {
        self.succeeded += succeeded;
        self.failed += failed;
        if unsettled > 0 {
            return;
        }
        match self.state {
            ReplayState::Running if self.queued_all => {
                self.state = ReplayState::Completed;
                self.finished_at = Some(now);
                self.watching = false;
            }
            ReplayState::Running => {}
            ReplayState::Completed | ReplayState::Cancelled => self.watching = false,
        }
    }
}
