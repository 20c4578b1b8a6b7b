//! Attempts: each try to deliver an event to an endpoint, and what recording one decides with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::sealing::Sealer;

use super::apps::AppRecord;
use super::endpoints::EndpointRecord;
use super::errors::StoreError;
use super::events::NewEvent;
use super::queue::{QueueKey, Scheduled};
/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptStatus {
    /// Scheduled or in flight.
    Pending,
    /// Answered with a 2xx.
    Succeeded,
    /// Failed; another attempt is scheduled (`next_retry_at`).
    Retrying,
    /// Failed, and no attempt follows.
    Failed,
}

impl AttemptStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "pending",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Retrying => "retrying",
            AttemptStatus::Failed => "failed",
        }
    }
}

/// One delivery attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Its id.
    pub id: DeliveryId,
    /// The application of its endpoint and event.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// Where it goes.
    pub endpoint_id: EndpointId,
    /// What it carries.
    pub event_id: EventId,
    /// The event's type, kept here so lists need not read events.
    pub event_type: String,
    /// 1 for the first try of a delivery, 2 for the first retry, ...
    pub attempt: u32,
    /// Where it stands.
    pub status: AttemptStatus,
    /// The HTTP status the endpoint answered, if it answered.
    pub response_status: Option<u16>,
    /// The start of the response body (at most 2 KiB).
    pub response_body: Option<String>,
    /// Why it failed without an HTTP answer (or with a non-2xx one).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: Option<u64>,
    /// When it was made, or is scheduled for while pending (Unix seconds).
    pub created: i64,
    /// When the next attempt goes, while `retrying`.
    pub next_retry_at: Option<i64>,
    /// Its place in the queue (Unix ms) while pending.
    pub due_ms: u64,
    /// The request headers sent, once sent.
    pub request_headers: Vec<(String, String)>,
    /// The method, URL and body sent, where the endpoint's transformation made them
    /// (its body sealed with the payload key while stored); `None`: the event's body was
    /// POSTed to the endpoint's URL, or nothing was sent (pending, or the transformation
    /// cancelled the request or failed).
    pub sent: Option<SentRequest>,
}

/// A request as an endpoint's transformation made it: what an attempt records beside its
/// headers when it did not send the event's body to the endpoint's URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRequest {
    /// The version of the transformation that made it.
    pub version: u32,
    /// `POST` or `PUT`.
    pub method: String,
    /// Where it went.
    pub url: String,
    /// The body, byte for byte (JSON, so text).
    pub body: String,
}

impl AttemptRecord {
    /// The record as read back: its response excerpt opened with the payload key.
    pub(crate) fn opened(mut self, sealer: &Sealer) -> Result<AttemptRecord, StoreError> {
        if let Some(body) = self.response_body.take() {
            self.response_body = Some(sealer.open_text(&response_row(self.id), body)?);
        }
        if let Some(sent) = &mut self.sent {
            sent.body = sealer.open_text(&sent_row(self.id), std::mem::take(&mut sent.body))?;
        }
        Ok(self)
    }
}

impl AttemptRecord {
    /// The record as stored: its response excerpt and the body its transformation made
    /// sealed with the payload key (what [`AttemptRecord::opened`] opens).
    pub(crate) fn sealed(mut self, sealer: &Sealer) -> AttemptRecord {
        seal_answer(sealer, self.id, &mut self.response_body, &mut self.sent);
        self
    }

    /// Attempt `number` of `event_id` to `endpoint`, scheduled for `due_ms`: a new
    /// pending record (what every backend stores when it schedules one).
    pub fn pending(endpoint: &EndpointRecord, event_id: EventId, event_type: &str, number: u32, due_ms: u64) -> Self {
        AttemptRecord {
            id: DeliveryId::new(),
            app: endpoint.app,
            mode: endpoint.mode,
            endpoint_id: endpoint.id,
            event_id,
            event_type: event_type.to_string(),
            attempt: number,
            status: AttemptStatus::Pending,
            response_status: None,
            response_body: None,
            error: None,
            duration_ms: None,
            created: (due_ms / 1000) as i64,
            next_retry_at: None,
            due_ms,
            request_headers: Vec::new(),
            sent: None,
        }
    }

    /// Its queue entry, while pending and queued.
    pub(crate) fn queue_key(&self) -> QueueKey {
        QueueKey::new(self.due_ms, self.id)
    }
}

/// What happened when an attempt was made.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The attempt's queue entry (which names the attempt).
    pub queue_key: QueueKey,
    /// The endpoint it went to.
    pub endpoint: EndpointId,
    /// Whether the endpoint answered 2xx in time.
    pub succeeded: bool,
    /// The answer's status, if any.
    pub response_status: Option<u16>,
    /// The start of the answer's body.
    pub response_body: Option<String>,
    /// A human description of the failure.
    pub error: Option<String>,
    /// Time taken.
    pub duration_ms: u64,
    /// When it was made (Unix ms: the health rule measures runs of failures finer than
    /// seconds).
    pub attempted_at_ms: u64,
    /// The headers that were sent.
    pub request_headers: Vec<(String, String)>,
    /// The least delay before the next attempt the endpoint asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// It failed before reaching the endpoint (at the egress proxy, or in the endpoint's
    /// transformation): retried as any failure, but not counted against the endpoint's
    /// health.
    pub unreached: bool,
    /// The endpoint's transformation cancelled it: nothing was sent, and nothing follows.
    pub cancelled: bool,
    /// The request as the endpoint's transformation made it (sealed when recorded, unless
    /// `sealed`); `None`: not transformed.
    pub sent: Option<SentRequest>,
    /// `response_body` and `sent`'s body are sealed already ([`AttemptResult::sealed_ahead`]);
    /// `false`: in clear, sealed as the result is recorded.
    pub sealed: bool,
}

impl AttemptResult {
    /// The attempt this is the result of.
    pub fn attempt(&self) -> DeliveryId {
        self.queue_key.attempt()
    }

    /// This result with its response excerpt and transformed body sealed now, as the
    /// attempt's record stores them: the engine does it where the attempt ran, so the one
    /// writer every result waits on does not.
    pub fn sealed_ahead(mut self, sealer: &Sealer) -> Self {
        if !self.sealed {
            seal_answer(sealer, self.attempt(), &mut self.response_body, &mut self.sent);
            self.sealed = true;
        }
        self
    }
}

/// Seals attempt `id`'s response excerpt and the body its transformation made, as its
/// record stores them.
fn seal_answer(sealer: &Sealer, id: DeliveryId, response_body: &mut Option<String>, sent: &mut Option<SentRequest>) {
    if let Some(body) = response_body {
        *body = sealer.seal_text(&response_row(id), body);
    }
    if let Some(sent) = sent {
        sent.body = sealer.seal_text(&sent_row(id), &sent.body);
    }
}

#[cfg(test)]
impl AttemptResult {
    /// The result of the attempt `queue_key` names, made at `at_ms`: a 200 if it
    /// `succeeded`, else a 500; for tests of the store.
    pub(crate) fn for_test(queue_key: QueueKey, endpoint: EndpointId, succeeded: bool, at_ms: u64) -> Self {
        AttemptResult {
            queue_key,
            endpoint,
            succeeded,
            response_status: Some(if succeeded { 200 } else { 500 }),
            response_body: None,
            error: None,
            duration_ms: 1,
            attempted_at_ms: at_ms,
            request_headers: vec![],
            retry_after: None,
            unreached: false,
            cancelled: false,
            sent: None,
            sealed: false,
        }
    }
}

/// The decisions recording a result needs: pure functions of values, owned by the
/// delivery policy (`crate::delivery::policy`), applied by the store.
pub trait RecordPolicy {
    /// How long after a failed attempt `number` (1-based) the next one goes, or `None`
    /// when the delivery has failed for good.
    fn retry_delay(&self, number: u32, retry_after: Option<Duration>) -> Option<Duration>;
    /// The endpoint's health after one more attempt, given its run of failures so far.
    fn health(&self, run: Option<FailureRun>, result: &AttemptResult) -> HealthVerdict;
    /// How long the payload of a delivery that failed for good stays available to resend
    /// to an endpoint that sets `endpoint_hours` (`None`: the configured default).
    fn undelivered_retention(&self, endpoint_hours: Option<u32>) -> Duration;
    /// How many failed attempts in a row make an endpoint failing ([`Told::Failing`]);
    /// `None`: never.
    fn failing_after(&self) -> Option<u32> {
        None
    }
    /// The event that tells the platform of `told`, about an endpoint of `app`, at
    /// `now_ms`; `None`: nothing is told.
    fn tell(&self, told: &Told, app: &AppRecord, now_ms: u64) -> Option<NewEvent> {
        let _ = (told, app, now_ms);
        None
    }
}

/// A change in how an endpoint's deliveries go, found while recording results, which the
/// platform's operational endpoints are told of (`crate::operational`).
#[derive(Debug, Clone, PartialEq)]
pub enum Told {
    /// Stile disabled the endpoint (its `disabled_reason` says why) after this attempt.
    Disabled {
        /// The endpoint, disabled.
        endpoint: EndpointRecord,
        /// The attempt that disabled it.
        attempt: AttemptRecord,
    },
    /// A delivery failed for good: this attempt was its last.
    Exhausted {
        /// The endpoint.
        endpoint: EndpointRecord,
        /// The attempt, `failed`.
        attempt: AttemptRecord,
    },
    /// The endpoint's run of failed attempts reached the policy's threshold with this one.
    Failing {
        /// The endpoint.
        endpoint: EndpointRecord,
        /// The attempt that reached it.
        attempt: AttemptRecord,
        /// Failed attempts in the run.
        failures: u32,
    },
    /// The endpoint answered with success after a failing run.
    Recovered {
        /// The endpoint.
        endpoint: EndpointRecord,
        /// The attempt that succeeded.
        attempt: AttemptRecord,
        /// Failed attempts in the run it ended.
        failures: u32,
    },
}

/// A policy shared between tasks is the policy.
impl<P: RecordPolicy + ?Sized> RecordPolicy for std::sync::Arc<P> {
    fn retry_delay(&self, number: u32, retry_after: Option<Duration>) -> Option<Duration> {
        (**self).retry_delay(number, retry_after)
    }

    fn health(&self, run: Option<FailureRun>, result: &AttemptResult) -> HealthVerdict {
        (**self).health(run, result)
    }

    fn undelivered_retention(&self, endpoint_hours: Option<u32>) -> Duration {
        (**self).undelivered_retention(endpoint_hours)
    }

    fn failing_after(&self) -> Option<u32> {
        (**self).failing_after()
    }

    fn tell(&self, told: &Told, app: &AppRecord, now_ms: u64) -> Option<NewEvent> {
        (**self).tell(told, app, now_ms)
    }
}

/// What recording a batch of results changed in the queue.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The retries scheduled.
    pub scheduled: Scheduled,
    /// Attempts whose delivery ended (succeeded or failed for good).
    pub finished: usize,
    /// The operational events that tell of what changed (the backend publishes them in the
    /// same transaction).
    pub told: Vec<NewEvent>,
    /// How many endpoints the results disabled (their health): what the scheduler kept of
    /// them is stale.
    pub disabled: usize,
}

/// The undelivered-payload window of endpoints that set none, unless the configuration
/// says otherwise (`[retention] undelivered_payload_hours`).
pub const DEFAULT_UNDELIVERED_HOURS: u32 = 72;

/// Until when (Unix ms) a delivery to `endpoint` skipped at `now_ms` may be replayed, its
/// payload kept: the endpoint's undelivered-payload window, else `default_hours`.
pub fn skipped_until(endpoint: &EndpointRecord, default_hours: u32, now_ms: u64) -> u64 {
    now_ms + u64::from(endpoint.undelivered_retention_hours.unwrap_or(default_hours)) * 3_600_000
}

/// Whether the undelivered payload of a delivery whose latest attempt has `status` and
/// was made at `made_secs` is past its endpoint's window of `hours` at `now_ms`: only a
/// delivery that failed for good has such a window.
pub fn undelivered_expired(status: AttemptStatus, made_secs: i64, hours: u32, now_ms: u64) -> bool {
    status == AttemptStatus::Failed && (made_secs.max(0) as u64) * 1000 + u64::from(hours) * 3_600_000 <= now_ms
}

/// The row a sealed response excerpt of attempt `id` belongs to.
pub(crate) fn response_row(id: DeliveryId) -> [u8; 16] {
    id.as_u128().to_be_bytes()
}

/// The row the sealed body a transformation made for attempt `id` belongs to (not the
/// response's: one cannot be passed off as the other).
pub(crate) fn sent_row(id: DeliveryId) -> Vec<u8> {
    let mut row = b"sent body\0".to_vec();
    row.extend_from_slice(&id.as_u128().to_be_bytes());
    row
}

/// An endpoint's current run of failed attempts. An endpoint without one is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRun {
    /// When the first failure of the run was, in Unix ms.
    pub since_ms: u64,
    /// Failed attempts in the run.
    pub failures: u32,
}

/// What the delivery policy decided about an endpoint after one more attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthVerdict {
    /// The run of failures after the attempt (`None`: healthy again).
    pub run: Option<FailureRun>,
    /// Disable the endpoint, for this reason (shown to people).
    pub disable: Option<String>,
}

/// Everything a worker needs to make one attempt.
#[derive(Debug, Clone)]
pub struct Job {
    /// The attempt.
    pub attempt: AttemptRecord,
    /// The endpoint, unless it was deleted.
    pub endpoint: Option<EndpointRecord>,
    /// The event payload, unless it was pruned.
    pub body: Option<Vec<u8>>,
    /// The event's trace, which the attempt's `traceparent` continues (`None`: the event
    /// has none, or is gone).
    pub trace: Option<crate::trace::EventTrace>,
}
