//! How an event's payload is stored: only its `data`, when the rest is the envelope stile
//! writes around every event, which is rebuilt from the event's metadata when read.
//!
//! A payload is `{"id":…,"object":"event","type":…,"livemode":…,"created":…,"data":<data>}`
//! (see `crate::payload`); everything before `<data>` is said by the event's key and
//! metadata, and at 200 bytes of payload it is more than half of them. Stored (before
//! sealing), such a payload is [`DATA_ONLY_V1`] then the data's bytes, exactly as
//! published. A payload of any other shape, and every payload of earlier layouts, is
//! stored whole (JSON, which starts with `{`), so reading rebuilds the exact bytes sent.

use crate::ids::EventId;

/// The first byte of a stored payload that holds only the event's data.
const DATA_ONLY_V1: u8 = 0;

/// What the envelope of an event says, from its key and metadata.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The event's id.
    pub id: EventId,
    /// Its type (as published: an endpoint that knows it by another name gets that name
    /// written in at delivery).
    pub event_type: &'a str,
    /// Whether it is a live-mode event.
    pub livemode: bool,
    /// When it was made (Unix seconds).
    pub created: i64,
}

impl Envelope<'_> {
    /// Everything the payload holds before its data.
    fn head(&self) -> String {
        let event_type = serde_json::to_string(self.event_type).expect("a string serialises");
        format!(
            r#"{{"id":"{}","object":"event","type":{event_type},"livemode":{},"created":{},"data":"#,
            self.id, self.livemode, self.created
        )
    }

    /// The bytes to store for `payload`: its data alone if the rest is this envelope,
    /// else the payload whole.
    pub fn stored(&self, payload: &[u8]) -> Vec<u8> {
        let head = self.head();
        match payload.strip_prefix(head.as_bytes()).and_then(|rest| rest.strip_suffix(b"}")) {
            Some(data) => {
                let mut out = Vec::with_capacity(1 + data.len());
                out.push(DATA_ONLY_V1);
                out.extend_from_slice(data);
                out
            }
            None => payload.to_vec(),
        }
    }

    /// The payload that `stored` (as [`Envelope::stored`] wrote it, or whole) stands for.
    pub fn payload(&self, stored: &[u8]) -> Vec<u8> {
        let Some((&DATA_ONLY_V1, data)) = stored.split_first() else { return stored.to_vec() };
        let head = self.head();
        let mut out = Vec::with_capacity(head.len() + data.len() + 1);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(data);
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_type: &str) -> Envelope<'_> {
        Envelope { id: EventId::at(1_764_000_000_123), event_type, livemode: false, created: 1_764_000_000 }
    }

    /// The payload `crate::payload` writes: serde, fields in this order.
    fn written(envelope: &Envelope, data: &serde_json::Value) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Written<'a> {
            id: String,
            object: &'static str,
            #[serde(rename = "type")]
            event_type: &'a str,
            livemode: bool,
            created: i64,
            data: &'a serde_json::Value,
        }
        let e = envelope;
        let written = Written {
            id: e.id.to_string(),
            object: "event",
            event_type: e.event_type,
            livemode: e.livemode,
            created: e.created,
            data,
        };
        serde_json::to_vec(&written).unwrap()
    }

    #[test]
    fn a_payload_in_the_envelope_is_stored_as_its_data_and_rebuilt_exactly() {
        let e = envelope("invoice.paid");
        let data = br#"{"id":"vks_1","amount":12,"nested":{"z":[1,2,{"q":"}"}]}}"#;
        let mut payload = e.head().into_bytes();
        payload.extend_from_slice(data);
        payload.push(b'}');
        let stored = e.stored(&payload);
        assert_eq!(stored[0], DATA_ONLY_V1);
        assert_eq!(&stored[1..], data);
        assert_eq!(e.payload(&stored), payload);
        assert!(stored.len() + 100 < payload.len());
        let sorted = written(&e, &serde_json::json!({"a": 1}));
        assert_eq!(e.payload(&e.stored(&sorted)), sorted, "{}", String::from_utf8_lossy(&sorted));
    }

    #[test]
    fn any_other_payload_is_stored_whole() {
        let e = envelope("a.b");
        let data = serde_json::json!({"id": "x"});
        let cases = [
            written(&Envelope { created: 5, ..e }, &data),
            written(&Envelope { livemode: true, ..e }, &data),
            written(&envelope("a.c"), &data),
            br#"{"id":"evt_1","data":{}}"#.to_vec(),
            Vec::new(),
        ];
        for payload in cases {
            let stored = e.stored(&payload);
            assert_eq!(stored, payload);
            assert_eq!(e.payload(&stored), payload);
        }
        // A type that needs escaping is escaped as serde writes it.
        let odd = envelope("we\"ird");
        let payload = written(&odd, &data);
        assert_eq!(odd.stored(&payload)[0], DATA_ONLY_V1);
        assert_eq!(odd.payload(&odd.stored(&payload)), payload);
    }
}
