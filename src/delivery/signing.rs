//! Signatures on every delivery, in two schemes at once:
//! - `stile-signature: t=<unix>,v1=<hex>`: HMAC-SHA256 keyed with the whole `whsec_...`
//!   string over `<t>.<body>`, byte-compatible with Stripe's scheme;
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`,
//!   keyed with the base64-decoded part of the secret after `whsec_`, over
//!   `<id>.<t>.<body>`.
//!
//! During a rotation grace period every live secret signs, so each header carries one
//! signature per secret.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header with the Stripe-compatible signature.
pub const STILE_SIGNATURE: &str = "stile-signature";

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `t=<t>,v1=<hex>[,v1=<hex>...]`
pub fn stile_signature(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mut header = format!("t={t}");
    for secret in secrets {
        let tag = hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]);
        header.push_str(",v1=");
        header.push_str(&hex::encode(tag));
    }
    header
}

/// The HMAC key Standard Webhooks derives from a `whsec_` secret.
pub fn standard_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

/// `v1,<base64>[ v1,<base64>...]`
pub fn standard_signature(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let tag = hmac(&standard_key(secret), &[message_id.as_bytes(), b".", t.as_bytes(), b".", body]);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
        })
        .collect();
    signatures.join(" ")
}

/// The headers stile sets on every request, which an endpoint's own `headers` may not
/// set (nor anything starting `webhook-`, the Standard Webhooks prefix, see
/// [`is_reserved_header`]): its signature and content headers, and the hop-by-hop and
/// proxy headers a client or proxy owns, and `authorization` (an endpoint's
/// `authentication` sets it, its secrets sealed).
pub const RESERVED_HEADERS: [&str; 17] = [
    "content-type",
    "user-agent",
    STILE_SIGNATURE,
    "host",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "authorization",
    crate::trace::TRACEPARENT,
    crate::trace::TRACESTATE,
];

/// Whether an endpoint's own headers may not set `name` (any case): stile sets it, or
/// the connection owns it.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-") || RESERVED_HEADERS.contains(&name.as_str())
}

/// The most headers of its own an endpoint may send (set through the API or by its
/// transformation).
pub const MAX_OWN_HEADERS: usize = 20;

/// The longest value of an endpoint's own header, in bytes.
pub const MAX_OWN_HEADER_VALUE_BYTES: usize = 4096;

/// What is wrong with an endpoint's own header `name: value`, in a sentence; `None`: it
/// may be sent. A name as HTTP allows and none that stile sets or the connection owns
/// ([`is_reserved_header`]); a value of printable ASCII, at most
/// [`MAX_OWN_HEADER_VALUE_BYTES`].
pub fn header_problem(name: &str, value: &str) -> Option<String> {
    if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Some(format!(
            "`{name}` is not a valid header name: use letters, digits and `! # $ % & ' * + - . ^ _ ` | ~`."
        ));
    }
    if is_reserved_header(name) {
        return Some(format!("The header `{name}` is set by stile (or by the connection)."));
    }
    if value.len() > MAX_OWN_HEADER_VALUE_BYTES {
        return Some(format!("The value of header `{name}` must be at most {MAX_OWN_HEADER_VALUE_BYTES} bytes."));
    }
    if value.bytes().any(|b| b != b'\t' && !(0x20..0x7f).contains(&b)) {
        return Some(format!(
            "The value of header `{name}` must be printable ASCII (no line breaks or control characters)."
        ));
    }
    None
}

/// Every header stile sets on a delivery request: content type, user agent, and both
/// signature schemes (an endpoint's own `headers` follow them).
pub fn delivery_headers(event_id: &str, secrets: &[&str], timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), concat!("stile/", env!("CARGO_PKG_VERSION"), " (+webhooks)").into()),
        (STILE_SIGNATURE.into(), stile_signature(secrets, timestamp, body)),
        ("webhook-id".into(), event_id.to_string()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), standard_signature(secrets, event_id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stile_signature_matches_an_independent_hmac() {
        // hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest() in Python.
        let header = stile_signature(&["whsec_test"], 1_700_000_000, b"{}");
        assert_eq!(header, "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91");
    }

    #[test]
    fn standard_signature_matches_the_standard_webhooks_example() {
        let signature = standard_signature(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_headers_sent_are_stored_in_their_compact_form() {
        for secrets in [&["whsec_YQ=="][..], &["whsec_YQ==", "whsec_Yg=="]] {
            let event_id = crate::ids::EventId::at(1_764_000_000_000);
            let mut headers = delivery_headers(&event_id.to_string(), secrets, 1_764_000_000, b"{}");
            assert!(crate::store::redb::headers_stored_compact(event_id, &headers));
            // With the trace each attempt carries (as `delivery::senders` adds it).
            let trace = crate::trace::PublishSpan::of_request(None, None).trace;
            headers.push((crate::trace::TRACEPARENT.into(), trace.attempt().traceparent()));
            assert!(crate::store::redb::headers_stored_compact(event_id, &headers));
        }
    }

    #[test]
    fn two_live_secrets_give_two_signatures() {
        let header = stile_signature(&["whsec_a", "whsec_b"], 5, b"x");
        assert_eq!(header.matches(",v1=").count(), 2);
        let standard = standard_signature(&["whsec_YQ==", "whsec_Yg=="], "evt_1", 5, b"x");
        assert_eq!(standard.split(' ').count(), 2);
        assert!(standard.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn standard_key_is_the_decoded_secret() {
        assert_eq!(standard_key("whsec_AAEC"), vec![0, 1, 2]);
    }
}
