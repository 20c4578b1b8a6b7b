//! The messages of a listen connection, as JSON text frames. The server sends `ready`
//! once, then a `delivery` per attempt; the CLI answers each with a `result`. Pings are
//! WebSocket pings.

use serde::{Deserialize, Serialize};

/// The path a CLI connects to (a WebSocket upgrade).
pub const PATH: &str = "/v1/listen";

/// From the server to the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The connection is set up: deliveries follow.
    Ready(Ready),
    /// One attempt to forward.
    Delivery(Delivery),
}

/// What the CLI is told when it connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The listener endpoint (`we_...`).
    pub endpoint_id: String,
    /// Its current signing secret, for the local app's configuration; the same on every
    /// run with the same key.
    pub secret: String,
    /// Whether the endpoint was made by this connection (the first run of this key here).
    pub created: bool,
    /// `enabled`, or `disabled` (then deliveries wait until it is enabled).
    pub status: String,
    /// How long the server waits for each result, in ms: the CLI gives its local request
    /// a little less.
    pub timeout_ms: u64,
}

/// One attempt: the exact body and the headers stile signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The attempt (`dlv_...`), which its result names.
    pub delivery_id: String,
    /// The event (`evt_...`).
    pub event_id: String,
    /// The event's type as delivered.
    pub event_type: String,
    /// Which attempt of the event to this endpoint it is (1 for the first).
    pub attempt: u32,
    /// Header name and value pairs, signatures included.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte (stile's payloads are UTF-8 JSON).
    pub body: String,
}

/// From the CLI to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// What the local app answered to a delivery.
    Result(DeliveryResult),
}

/// The local app's answer to one delivery, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResult {
    /// The attempt it answers.
    pub delivery_id: String,
    /// The HTTP status, if the local app answered.
    pub status: Option<u16>,
    /// The start of its body (at most 2 KiB).
    pub body: Option<String>,
    /// What went wrong (connection refused, timeout, a non-2xx status), if anything.
    pub error: Option<String>,
    /// How long the local request took.
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let delivery = ServerMessage::Delivery(Delivery {
            delivery_id: "dlv_1".into(),
            event_id: "evt_1".into(),
            event_type: "a.b".into(),
            attempt: 2,
            headers: vec![("stile-signature".into(), "t=1,v1=x".into())],
            body: "{\"id\":\"evt_1\"}".into(),
        });
        let text = serde_json::to_string(&delivery).unwrap();
        assert!(text.starts_with(r#"{"type":"delivery","#), "{text}");
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), delivery);
        let result: ClientMessage = serde_json::from_str(
            r#"{"type":"result","delivery_id":"dlv_1","status":500,"body":"no","error":"HTTP 500","duration_ms":3}"#,
        )
        .unwrap();
        let ClientMessage::Result(result) = result;
        assert_eq!((result.status, result.duration_ms), (Some(500), 3));
    }
}
