//! For receivers written in Rust: verify a delivery's `stile-signature` header and get
//! the event.
//!
//! ```
//! use std::time::Duration;
//! # let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! # let body = br#"{"id":"evt_1","object":"event","type":"verification_session.verified","livemode":false,"created":1,"data":{}}"#;
//! # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
//! # let header = stile::delivery::signing::stile_signature(&[secret], now, body);
//! // `body` is the raw request body, `header` the `stile-signature` header.
//! let event = stile::webhook::verify(body, &header, secret, Duration::from_secs(300))?;
//! assert_eq!(event.event_type, "verification_session.verified");
//! # Ok::<(), stile::webhook::VerifyError>(())
//! ```

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// A verified event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    /// `evt_...`, the same on every retry: use it to drop duplicates.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Whether it comes from live mode.
    pub livemode: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// The event's object.
    pub data: serde_json::Value,
}

/// Why a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header has no `t=` timestamp, or a malformed one.
    #[error("the signature header has no valid timestamp")]
    MissingTimestamp,
    /// The header has no `v1=` signature.
    #[error("the signature header has no v1 signature")]
    MissingSignature,
    /// No signature in the header matches the body and secret.
    #[error("no signature matches the body and secret")]
    SignatureMismatch,
    /// The timestamp is further from now than the tolerance (a replay, or a clock off).
    #[error("the timestamp is {age_secs}s from now, outside the tolerance")]
    OutsideTolerance {
        /// Seconds between the timestamp and now.
        age_secs: i64,
    },
    /// The body verified but is not an event.
    #[error("the body is not a stile event: {0}")]
    InvalidPayload(String),
}

/// Verifies `body` against a `stile-signature` header (`t=<unix>,v1=<hex>[,v1=...]`) with
/// the endpoint's secret (`whsec_...`), accepting timestamps within `tolerance` of now.
pub fn verify(body: &[u8], signature_header: &str, secret: &str, tolerance: Duration) -> Result<Event, VerifyError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    verify_at(body, signature_header, secret, tolerance, now)
}

/// [`verify`] with an explicit "now", for tests.
pub fn verify_at(
    body: &[u8],
    signature_header: &str,
    secret: &str,
    tolerance: Duration,
    now: i64,
) -> Result<Event, VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature_header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(VerifyError::MissingSignature);
    }
    let matches = signatures.iter().any(|sig| {
        let Ok(expected) = hex::decode(sig) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if !matches {
        return Err(VerifyError::SignatureMismatch);
    }
    let age_secs = (now - timestamp).abs();
    if age_secs as u64 > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance { age_secs });
    }
    serde_json::from_slice(body).map_err(|e| VerifyError::InvalidPayload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signing::stile_signature;

    const BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"t.x","livemode":false,"created":5,"data":{"id":"vks_1"}}"#;

    #[test]
    fn a_signed_body_verifies_and_yields_the_event() {
        let header = stile_signature(&["whsec_a"], 1000, BODY);
        let event = verify_at(BODY, &header, "whsec_a", Duration::from_secs(300), 1100).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.data["id"], "vks_1");
    }

    #[test]
    fn any_of_several_signatures_may_match_during_a_rotation() {
        let header = stile_signature(&["whsec_new", "whsec_old"], 1000, BODY);
        assert!(verify_at(BODY, &header, "whsec_old", Duration::from_secs(300), 1000).is_ok());
        assert!(verify_at(BODY, &header, "whsec_new", Duration::from_secs(300), 1000).is_ok());
    }

    #[test]
    fn tampering_wrong_secrets_old_timestamps_and_bad_headers_are_refused() {
        let header = stile_signature(&["whsec_a"], 1000, BODY);
        let tolerance = Duration::from_secs(300);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(verify_at(&tampered, &header, "whsec_a", tolerance, 1000), Err(VerifyError::SignatureMismatch));
        assert_eq!(verify_at(BODY, &header, "whsec_b", tolerance, 1000), Err(VerifyError::SignatureMismatch));
        assert_eq!(
            verify_at(BODY, &header, "whsec_a", tolerance, 1301),
            Err(VerifyError::OutsideTolerance { age_secs: 301 })
        );
        assert_eq!(verify_at(BODY, "v1=00", "whsec_a", tolerance, 1000), Err(VerifyError::MissingTimestamp));
        assert_eq!(verify_at(BODY, "t=1000", "whsec_a", tolerance, 1000), Err(VerifyError::MissingSignature));
        assert_eq!(verify_at(BODY, "t=1000,v1=zz", "whsec_a", tolerance, 1000), Err(VerifyError::SignatureMismatch));
        assert_eq!(verify_at(BODY, "", "whsec_a", tolerance, 1000), Err(VerifyError::MissingTimestamp));
        let truncated = &header[..header.len() - 2];
        assert_eq!(verify_at(BODY, truncated, "whsec_a", tolerance, 1000), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn a_verified_body_that_is_not_an_event_is_an_error() {
        let header = stile_signature(&["whsec_a"], 1000, b"[]");
        assert!(matches!(
            verify_at(b"[]", &header, "whsec_a", Duration::from_secs(300), 1000),
            Err(VerifyError::InvalidPayload(_))
        ));
    }
}
