//! The payload endpoints receive: the event object, serialised once when the event is
//! made, stored once, and sent byte for byte on every attempt.

use serde::Serialize;

use crate::ids::EventId;
use crate::store::model::{EventMeta, NewEvent, Owner};
use crate::trace::EventTrace;

/// The event object as delivered (and as `GET /v1/events/:id` shows it, plus
/// `pending_webhooks` there).
#[derive(Serialize)]
struct Payload<'a> {
    id: EventId,
    object: &'static str,
    #[serde(rename = "type")]
    event_type: &'a str,
    livemode: bool,
    created: i64,
    data: &'a serde_json::Value,
}

/// A new event of `event_type` for application `owner` carrying `data`, created at
/// `created_ms` (Unix ms, the server's clock), with its payload, in a new trace of
/// stile's own (a publish request puts it in the request's).
pub fn new_event(
    owner: Owner,
    event_type: &str,
    data: &serde_json::Value,
    created_ms: u64,
) -> Result<NewEvent, serde_json::Error> {
    // The id carries the creation time, so a `created` bound is a key bound.
    let id = EventId::at(created_ms);
    let created = (created_ms / 1000) as i64;
    let payload = Payload { id, object: "event", event_type, livemode: owner.mode.is_live(), created, data };
    let body = serde_json::to_vec(&payload)?;
    let data_id = data.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let trace = Some(EventTrace::of_stiles_own());
    let meta =
        EventMeta { id, app: owner.app, mode: owner.mode, event_type: event_type.to_string(), created, data_id, trace };
    Ok(NewEvent { meta, body, sealed: None })
}

/// The payload as an endpoint that knows the event as `name` receives it: `body` with its
/// `type` set to `name` (an endpoint subscribed by a Kayle name), or `body` itself when
/// it already says `name`. Only the value of the top-level `type` changes, in place, so
/// the result is the same bytes on every attempt. [`new_event`] writes `id`, `object` and
/// then `type`, so the first `"type":"` is the top-level one (a type name has nothing to
/// escape).
pub fn as_delivered(body: Vec<u8>, name: &str) -> Vec<u8> {
    const KEY: &[u8] = b"\"type\":\"";
    let Some(start) = body.windows(KEY.len()).position(|w| w == KEY).map(|at| at + KEY.len()) else {
        return body;
    };
    let Some(len) = body[start..].iter().position(|b| *b == b'"') else { return body };
    if &body[start..start + len] == name.as_bytes() {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + name.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body[start + len..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_event_object_with_its_data() {
        let data = serde_json::json!({"id": "vks_1", "status": "verified"});
        let owner = Owner { app: crate::ids::AppId::new(), mode: crate::mode::Mode::Live };
        let event = new_event(owner, "verification_session.verified", &data, 42_000).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["id"], event.meta.id.to_string());
        assert_eq!(body["object"], "event");
        assert_eq!(body["type"], "verification_session.verified");
        assert_eq!(body["livemode"], true);
        assert_eq!(body["created"], 42);
        assert_eq!(body["data"], data);
        assert_eq!(event.meta.data_id.as_deref(), Some("vks_1"));
        assert_eq!(event.meta.app, owner.app);
        // The store keeps only the data, and rebuilds these exact bytes from the metadata.
        let envelope = event.meta.envelope();
        let stored = envelope.stored(&event.body);
        assert_eq!(stored.len(), 1 + serde_json::to_vec(&data).unwrap().len());
        assert_eq!(envelope.payload(&stored), event.body);
    }

    #[test]
    fn a_delivery_by_another_name_changes_only_the_top_level_type() {
        // `data` carries a `type` of its own, which stays.
        let data = serde_json::json!({"id": "vks_1", "type": "document", "note": "\"type\":\"x\""});
        let owner = Owner { app: crate::ids::AppId::new(), mode: crate::mode::Mode::Test };
        let event = new_event(owner, "verification_session.verified", &data, 42_000).unwrap();
        let renamed = as_delivered(event.body.clone(), "verification.session.succeeded");
        let value: serde_json::Value = serde_json::from_slice(&renamed).unwrap();
        assert_eq!(value["type"], "verification.session.succeeded");
        assert_eq!(value["data"], data);
        assert_eq!(value["id"], event.meta.id.to_string());
        let original = String::from_utf8(event.body.clone()).unwrap();
        let expected = original.replacen("verification_session.verified", "verification.session.succeeded", 1);
        assert_eq!(String::from_utf8(renamed.clone()).unwrap(), expected, "every other byte stays");
        assert_eq!(as_delivered(event.body.clone(), "verification_session.verified"), event.body);
        assert_eq!(as_delivered(renamed.clone(), "verification.session.succeeded"), renamed);
    }
}
