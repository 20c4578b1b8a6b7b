//! Events: what a platform publishes, as the store keeps and lists them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, EventId, first_id_at};
use crate::mode::Mode;
use crate::store::model::event_body::Envelope;
use crate::store::sealing::Sealer;
use crate::trace::EventTrace;

use super::queue::Scheduled;
/// What lists and filters need to know of an event, without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Its id.
    pub id: EventId,
    /// Its application.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// `data.id`, for the `session_id` filter.
    pub data_id: Option<String>,
    /// The W3C trace it was published in, which each attempt's `traceparent` continues
    /// (`None`: published before stile kept traces).
    #[serde(skip)]
    pub trace: Option<EventTrace>,
}

impl EventMeta {
    /// What the envelope of its payload says (see `super::event_body`).
    pub fn envelope(&self) -> Envelope<'_> {
        Envelope { id: self.id, event_type: &self.event_type, livemode: self.mode.is_live(), created: self.created }
    }
}

/// An event with its payload and unfinished delivery count, as read back.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its metadata.
    pub meta: EventMeta,
    /// The exact payload delivered.
    pub body: Vec<u8>,
    /// Deliveries not yet final.
    pub pending_webhooks: u32,
}

/// An event about to be stored: metadata and payload (built by the `payload` module).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its metadata.
    pub meta: EventMeta,
    /// The payload.
    pub body: Vec<u8>,
    /// The payload as stored, if it was sealed before it reached the writer
    /// ([`NewEvent::sealed_ahead`]); `None`: sealed as it is written.
    pub sealed: Option<Vec<u8>>,
}

impl NewEvent {
    /// The payload as stored: what its envelope does not say (see `event_body`), sealed
    /// under the event's id.
    pub fn stored_body(&self, sealer: &Sealer) -> Cow<'_, [u8]> {
        match &self.sealed {
            Some(sealed) => Cow::Borrowed(sealed),
            None => {
                let id = self.meta.id.as_u128();
                Cow::Owned(sealer.seal(&id.to_be_bytes(), &self.meta.envelope().stored(&self.body)))
            }
        }
    }

    /// This event with its stored payload sealed now: the engine does it on the
    /// publisher's thread, so the one writer every publish waits on does not. Done last:
    /// the metadata must not change after it.
    pub fn sealed_ahead(mut self, sealer: &Sealer) -> Self {
        if self.sealed.is_none() {
            self.sealed = Some(self.stored_body(sealer).into_owned());
        }
        self
    }
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this type.
    pub event_type: Option<String>,
    /// Only events created after this time (exclusive).
    pub created_after: Option<i64>,
    /// Only events created before this time (exclusive).
    pub created_before: Option<i64>,
    /// Only events whose `data.id` is this.
    pub data_id: Option<String>,
    /// `Some(true)`: only events delivered to every endpoint they went to; `Some(false)`:
    /// only events whose latest attempt to some endpoint did not succeed (still pending,
    /// retrying, or failed for good), as Stripe's `delivery_success`. Events that went to
    /// no endpoint match neither.
    pub delivery_success: Option<bool>,
}

/// How far past a `created_before` bound an event's id may lie: ids of events stored
/// before ids carried the creation time were made a moment after `created` was read (the
/// same second, or just into the next).
const LEGACY_ID_SLACK_MS: u64 = 1_000;

/// In `META`: the time (Unix ms) of the newest event whose id does not carry its creation
/// time (stored before layout 3), set by the backfill of such a file; absent when there
/// is none. Only a `created_before` bound up to a second after it needs the slack.
pub(crate) const LEGACY_EVENT_MS: &str = "legacy_event_ms";

impl EventFilter {
    /// The event ids the time bounds allow: an event's id carries its creation time, so
    /// `created_after`/`created_before` are key bounds (checked exactly by `keeps`).
    /// `legacy_ms`: see [`LEGACY_EVENT_MS`].
    pub(crate) fn id_bounds(&self, legacy_ms: Option<u64>) -> std::ops::RangeInclusive<u128> {
        let ms = |seconds: i64| u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
        let low = self.created_after.map_or(0, |after| first_id_at(ms(after.saturating_add(1))));
        let high = self.created_before.map_or(u128::MAX, |before| {
            let before = ms(before);
            let slack = if legacy_ms.is_some_and(|legacy| before <= legacy.saturating_add(LEGACY_ID_SLACK_MS)) {
                LEGACY_ID_SLACK_MS
            } else {
                0
            };
            first_id_at(before.saturating_add(slack)).saturating_sub(1)
        });
        low..=high
    }

    pub(crate) fn keeps(&self, meta: &EventMeta) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == meta.event_type)
            && self.created_after.is_none_or(|t| meta.created > t)
            && self.created_before.is_none_or(|t| meta.created < t)
            && self.data_id.as_ref().is_none_or(|d| meta.data_id.as_ref() == Some(d))
    }
}

/// What publishing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Deliveries scheduled.
    pub deliveries: u32,
    /// Subscribed endpoints whose content filter refused the event (no delivery).
    pub filtered: u32,
}

/// How many subscribed endpoints' content filters refused `published` events in all.
pub fn filtered_of(published: &[Published]) -> u32 {
    published.iter().map(|p| p.filtered).sum()
}

/// What resending an event did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resent {
    /// New deliveries were scheduled (those of disabled endpoints wait, parked).
    Scheduled(Scheduled),
    /// The event does not exist in this application.
    NoEvent,
    /// The named endpoint does not exist in this application.
    NoEndpoint,
    /// The event's delivery to the named endpoint failed for good longer ago than the
    /// endpoint keeps undelivered payloads (`hours`).
    PayloadExpired {
        /// The endpoint's window, in hours.
        hours: u32,
    },
}

#[cfg(test)]
/// An event as the `payload` module makes one, built here: that module stands above
/// this one.
pub(crate) fn test_event(
    owner: crate::store::model::Owner,
    event_type: &str,
    data: serde_json::Value,
    created_ms: u64,
) -> NewEvent {
    let id = EventId::at(created_ms);
    let data_id = data.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let created = (created_ms / 1000) as i64;
    let body = serde_json::to_vec(&serde_json::json!({"id": id.to_string(), "type": event_type, "data": data}));
    let trace = Some(EventTrace::of_stiles_own());
    let meta =
        EventMeta { id, app: owner.app, mode: owner.mode, event_type: event_type.into(), created, data_id, trace };
    NewEvent { meta, body: body.unwrap(), sealed: None }
}
