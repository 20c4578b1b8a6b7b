//! A delivery attempt's record: what it holds, and how it is stored (a version byte,
//! then postcard, under a third of the JSON of earlier layouts, which is still read).
//!
//! Most of an attempt's bytes were the request headers it was sent with, as text. The
//! headers stile writes for a delivery (see `delivery::signing::delivery_headers`) are
//! stored as their varying parts only: the user agent, the timestamp and the raw 32-byte
//! signatures; the rest is rebuilt when read, and so is the `traceparent` that follows
//! them since layout 6 (its ids as 25 bytes). A header list of any other shape is stored
//! as it is. Encoding checks that the compact form rebuilds the exact list, so what is
//! read is always what was sent. A sealed response excerpt is stored as its sealed bytes,
//! not their base64 text.

use std::borrow::Cow;

use base64::Engine as _;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::model::{AttemptRecord, AttemptStatus, SentRequest, StoreError};
use crate::store::sealing::TEXT_PREFIX;
use crate::trace::{TRACEPARENT, TRACESTATE};

use super::names::{Names, Numbering};

/// The attempts table, as errors name it.
pub(super) const TABLE: &str = "attempts";

/// The first byte of an attempt record of layouts 3 and 4 ([`AttemptWire`] with texts).
/// JSON records start with `{`.
const ATTEMPT_V1: u8 = 1;

/// The first byte of an attempt record since layout 5 ([`AttemptWire`] with the event
/// type and user agent as numbers of `crate::store::redb::names`).
const ATTEMPT_V2: u8 = 2;

/// The first byte of an attempt record whose request an endpoint's transformation made
/// (since release 25): an [`ATTEMPT_V2`] record, then its [`SentWire`].
const ATTEMPT_V3: u8 = 3;

/// The least a pending [`ATTEMPT_V2`] record takes: it is padded with zeros to this many
/// bytes, which decoding never reads. A pending record (~80 bytes) is overwritten with its
/// outcome (~170 bytes for a signed, traced delivery with a short response), which grows
/// it in the leaves that appends filled: when the traced headers added 26 bytes to the
/// outcome, W1's attempts table went from 26 to 153 bytes of half-full leaves per record
/// (its table pages from 561 to 746 bytes per event). Measured at 20,000 events (W1),
/// bytes of half-full leaves per record: 34 padded to 90, 53 to 100, 94 to 120, 153
/// unpadded; a receiver's longer answers make the outcome larger and the leaves emptier
/// again (only a table of pending attempts of their own would end it).
const PENDING_RECORD_BYTES: usize = 90;

/// The method, URL and body a transformation made (`SentRequest`), after an
/// [`ATTEMPT_V3`] record.
#[derive(Serialize, Deserialize)]
struct SentWire<'a> {
    version: u32,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    body: Excerpt<'a>,
}

/// An attempt record after its version byte: all but its id, which is its key. `N` is
/// how a name (event type, user agent) is held: its text ([`ATTEMPT_V1`]) or its number
/// in the name dictionary ([`ATTEMPT_V2`]).
#[derive(Serialize, Deserialize)]
struct AttemptWire<'a, N> {
    app: [u8; 16],
    mode: Mode,
    endpoint: [u8; 16],
    event: [u8; 16],
    event_type: N,
    attempt: u32,
    status: AttemptStatus,
    response_status: Option<u16>,
    #[serde(borrow)]
    response_body: Option<Excerpt<'a>>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    duration_ms: Option<u64>,
    created: i64,
    next_retry_at: Option<i64>,
    due_ms: u64,
    #[serde(borrow)]
    headers: SentHeaders<'a, N>,
}

/// A response excerpt: as text, or sealed (the bytes the sealed text's base64 carries).
#[derive(Serialize, Deserialize)]
enum Excerpt<'a> {
    Plain(#[serde(borrow)] Cow<'a, str>),
    Sealed(Vec<u8>),
}

/// The request headers of an attempt; `N` as in [`AttemptWire`]. Variants are only ever
/// added at the end: postcard stores a variant by its place.
#[derive(Serialize, Deserialize)]
enum SentHeaders<'a, N> {
    /// Exactly the six headers of a signed delivery, in order: `content-type:
    /// application/json`, `user-agent`, `stile-signature: t=<timestamp>,v1=<hex>...`,
    /// `webhook-id: <the attempt's event id>`, `webhook-timestamp: <timestamp>`,
    /// `webhook-signature: v1,<base64> ...`.
    Signed(Signed<N>),
    /// Any other list, as it is (none at all while pending).
    Listed(#[serde(borrow)] Vec<(Cow<'a, str>, Cow<'a, str>)>),
    /// Since layout 6: the six of [`SentHeaders::Signed`], then `traceparent` and, when
    /// the event has one, `tracestate`.
    Traced(Signed<N>, #[serde(borrow)] TraceHeaders<'a>),
}

/// The varying parts of the six headers of a signed delivery.
#[derive(Serialize, Deserialize)]
struct Signed<N> {
    user_agent: N,
    timestamp: i64,
    stile: Vec<[u8; 32]>,
    standard: Vec<[u8; 32]>,
}

/// An attempt's `traceparent` (`00-<trace>-<span>-<flags>`) and `tracestate`.
#[derive(Serialize, Deserialize)]
struct TraceHeaders<'a> {
    trace: [u8; 16],
    span: [u8; 8],
    flags: u8,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
}

impl<'a> SentHeaders<'a, &'a str> {
    /// The compact form of `headers`, sent for an attempt of `event_id`.
    fn of(event_id: EventId, headers: &'a [(String, String)]) -> SentHeaders<'a, &'a str> {
        // A pending attempt has none: no id to format, nothing to parse.
        let compact = (!headers.is_empty()).then(|| Self::compact(event_id, headers)).flatten();
        compact.unwrap_or_else(|| {
            SentHeaders::Listed(headers.iter().map(|(n, v)| (n.as_str().into(), v.as_str().into())).collect())
        })
    }

    /// The `Signed` or `Traced` form, if `headers` are exactly what it rebuilds.
    fn compact(event_id: EventId, headers: &'a [(String, String)]) -> Option<SentHeaders<'a, &'a str>> {
        let (signed, rest) = headers.split_at_checked(6)?;
        let signed = Signed::of(event_id, signed)?;
        let compact = match rest {
            [] => SentHeaders::Signed(signed),
            [(name, traceparent), state @ ..] if name == TRACEPARENT && state.len() <= 1 => {
                let state = match state {
                    [(name, value)] if name == TRACESTATE => Some(value.as_str().into()),
                    [] => None,
                    _ => return None,
                };
                SentHeaders::Traced(signed, TraceHeaders::of(traceparent, state)?)
            }
            _ => return None,
        };
        compact.stands_for(event_id, headers).then_some(compact)
    }
}

impl<'a> Signed<&'a str> {
    /// The varying parts of the six headers of a signed delivery, if `headers` are those.
    fn of(event_id: EventId, headers: &'a [(String, String)]) -> Option<Signed<&'a str>> {
        let [(ct, json), (ua, user_agent), (ss, stile), (wi, id), (wt, timestamp), (ws, standard)] = headers else {
            return None;
        };
        // Read leniently and allocating nothing but the tags: what this gives is kept only
        // if it spells the headers back exactly (`SentHeaders::stands_for`).
        let names = [ct, ua, ss, wi, wt, ws].map(String::as_str);
        if names != SIGNED_NAMES || json != "application/json" || id.parse::<EventId>().ok()? != event_id {
            return None;
        }
        let stile = stile
            .strip_prefix("t=")?
            .strip_prefix(timestamp.as_str())?
            .split(",v1=")
            .skip(1)
            .map(|tag| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(tag, &mut out).ok().map(|()| out)
            })
            .collect::<Option<Vec<_>>>()?;
        let standard = standard
            .split(' ')
            .map(|sig| {
                // Room for base64's estimate of 44 characters (33 bytes); a tag is 32.
                let mut out = [0u8; 33];
                let len =
                    base64::engine::general_purpose::STANDARD.decode_slice(sig.strip_prefix("v1,")?, &mut out).ok()?;
                <[u8; 32]>::try_from(&out[..len]).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        let timestamp: i64 = timestamp.parse().ok()?;
        Some(Signed { user_agent: user_agent.as_str(), timestamp, stile, standard })
    }
}

impl<'a> TraceHeaders<'a> {
    /// The parts of a version-00 `traceparent`, and the `tracestate` sent with it.
    fn of(traceparent: &str, state: Option<Cow<'a, str>>) -> Option<TraceHeaders<'a>> {
        let rest = traceparent.strip_prefix("00-")?;
        let (mut trace, mut span, mut flags) = ([0u8; 16], [0u8; 8], [0u8; 1]);
        hex::decode_to_slice(rest.get(..32)?, &mut trace).ok()?;
        hex::decode_to_slice(rest.get(33..49)?, &mut span).ok()?;
        hex::decode_to_slice(rest.get(50..)?, &mut flags).ok()?;
        Some(TraceHeaders { trace, span, flags: flags[0], state })
    }

    /// Hands `each` the name and value of each header this stands for, in order, while
    /// it returns true; whether it took them all.
    fn each_header(&self, each: &mut impl FnMut(&str, &str) -> bool) -> bool {
        let mut traceparent = String::with_capacity(55);
        traceparent.push_str("00-");
        push_hex(&mut traceparent, &self.trace);
        traceparent.push('-');
        push_hex(&mut traceparent, &self.span);
        traceparent.push('-');
        push_hex(&mut traceparent, &[self.flags]);
        each(TRACEPARENT, &traceparent) && self.state.as_ref().is_none_or(|state| each(TRACESTATE, state))
    }
}

impl<'a, N> SentHeaders<'a, N> {
    /// The same headers with the user agent held another way.
    fn map_name<M>(self, f: impl FnOnce(N) -> Result<M, StoreError>) -> Result<SentHeaders<'a, M>, StoreError> {
        Ok(match self {
            SentHeaders::Signed(signed) => SentHeaders::Signed(signed.map_name(f)?),
            SentHeaders::Traced(signed, trace) => SentHeaders::Traced(signed.map_name(f)?, trace),
            SentHeaders::Listed(list) => SentHeaders::Listed(list),
        })
    }
}

impl<N> Signed<N> {
    /// The same parts with the user agent held another way.
    fn map_name<M>(self, f: impl FnOnce(N) -> Result<M, StoreError>) -> Result<Signed<M>, StoreError> {
        let Signed { user_agent, timestamp, stile, standard } = self;
        Ok(Signed { user_agent: f(user_agent)?, timestamp, stile, standard })
    }
}

impl<N: AsRef<str>> SentHeaders<'_, N> {
    /// Hands `each` the name and value of each header this stands for, sent for an
    /// attempt of `event_id`, in order, while it returns true; whether it took them all.
    /// The one place the headers are spelt out: reading a record builds them from it,
    /// and writing one checks against it that the compact form gives back what was sent.
    fn each_header(&self, event_id: EventId, each: &mut impl FnMut(&str, &str) -> bool) -> bool {
        match self {
            SentHeaders::Listed(list) => list.iter().all(|(name, value)| each(name, value)),
            SentHeaders::Signed(signed) => signed.each_header(event_id, each),
            SentHeaders::Traced(signed, trace) => signed.each_header(event_id, each) && trace.each_header(each),
        }
    }

    /// The header list this stands for, sent for an attempt of `event_id`.
    fn rebuild(&self, event_id: EventId) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(8);
        self.each_header(event_id, &mut |name, value| {
            headers.push((name.to_string(), value.to_string()));
            true
        });
        headers
    }

    /// Whether this stands for exactly `headers` (what [`SentHeaders::rebuild`] gives),
    /// checked without building them: each attempt's record is checked as it is written.
    fn stands_for(&self, event_id: EventId, headers: &[(String, String)]) -> bool {
        let mut sent = headers.iter();
        let mut same = |name: &str, value: &str| sent.next().is_some_and(|(n, v)| n == name && v == value);
        self.each_header(event_id, &mut same) && sent.next().is_none()
    }
}

impl<N: AsRef<str>> Signed<N> {
    /// Hands `each` the name and value of each of the six headers these parts are of,
    /// sent for an attempt of `event_id`, in order, while it returns true; whether it
    /// took them all.
    fn each_header(&self, event_id: EventId, each: &mut impl FnMut(&str, &str) -> bool) -> bool {
        use std::fmt::Write as _;
        let Signed { user_agent, timestamp, stile, standard } = self;
        let [content_type, agent, stile_name, id, time, standard_name] = SIGNED_NAMES;
        if !(each(content_type, "application/json") && each(agent, user_agent.as_ref())) {
            return false;
        }
        let mut value = String::with_capacity(16 + 68 * stile.len().max(standard.len()));
        let _ = write!(value, "t={timestamp}");
        for tag in stile {
            value.push_str(",v1=");
            push_hex(&mut value, tag);
        }
        if !each(stile_name, &value) {
            return false;
        }
        value.clear();
        let _ = write!(value, "{event_id}");
        if !each(id, &value) {
            return false;
        }
        value.clear();
        let _ = write!(value, "{timestamp}");
        if !each(time, &value) {
            return false;
        }
        value.clear();
        for (n, tag) in standard.iter().enumerate() {
            if n > 0 {
                value.push(' ');
            }
            value.push_str("v1,");
            base64::engine::general_purpose::STANDARD.encode_string(tag, &mut value);
        }
        each(standard_name, &value)
    }
}

/// Appends `bytes` to `out` in lowercase hex, without a `String` of its own.
fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut hex = [0u8; 64];
    for chunk in bytes.chunks(hex.len() / 2) {
        let hex = &mut hex[..chunk.len() * 2];
        hex::encode_to_slice(chunk, hex).expect("twice the bytes' length");
        out.push_str(std::str::from_utf8(hex).expect("hex digits are ASCII"));
    }
}

/// The header names of [`SentHeaders::Signed`], in order.
const SIGNED_NAMES: [&str; 6] =
    ["content-type", "user-agent", "stile-signature", "webhook-id", "webhook-timestamp", "webhook-signature"];

impl<'a> Excerpt<'a> {
    fn of(text: &'a str) -> Excerpt<'a> {
        text.strip_prefix(TEXT_PREFIX)
            .and_then(|encoded| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded).ok())
            .map_or(Excerpt::Plain(text.into()), Excerpt::Sealed)
    }

    fn into_text(self) -> String {
        match self {
            Excerpt::Plain(text) => text.into_owned(),
            Excerpt::Sealed(bytes) => {
                format!("{TEXT_PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
            }
        }
    }
}

/// Whether `headers`, sent for event `event_id`, are stored as their varying parts only:
/// lets the signing module's tests keep what it sends and this form in step.
#[cfg(test)]
pub fn headers_stored_compact(event_id: EventId, headers: &[(String, String)]) -> bool {
    SentHeaders::compact(event_id, headers).is_some()
}

/// An attempt record as stored, its names numbered by `names`.
pub(super) fn encode_attempt(record: &AttemptRecord, names: &mut impl Numbering) -> Result<Vec<u8>, StoreError> {
    let compact = AttemptWire::of(record).map_names(|name| names.id(name))?;
    let mut out = Vec::with_capacity(128);
    let encode = |e| StoreError::Encode { table: TABLE, source: serde::ser::Error::custom(e) };
    let Some(sent) = &record.sent else {
        out.push(ATTEMPT_V2);
        postcard::to_io(&compact, &mut out).map_err(encode)?;
        if record.status == AttemptStatus::Pending && out.len() < PENDING_RECORD_BYTES {
            // Zeros after the record, which postcard does not read.
            out.resize(PENDING_RECORD_BYTES, 0);
        }
        return Ok(out);
    };
    out.push(ATTEMPT_V3);
    let mut out = postcard::to_io(&compact, out).map_err(encode)?;
    let sent = SentWire {
        version: sent.version,
        method: sent.method.as_str().into(),
        url: sent.url.as_str().into(),
        body: Excerpt::of(&sent.body),
    };
    postcard::to_io(&sent, &mut out).map_err(encode)?;
    Ok(out)
}

impl<'a> AttemptWire<'a, &'a str> {
    /// The fields of `record`, its names as text.
    fn of(record: &'a AttemptRecord) -> Self {
        AttemptWire {
            app: record.app.as_u128().to_be_bytes(),
            mode: record.mode,
            endpoint: record.endpoint_id.as_u128().to_be_bytes(),
            event: record.event_id.as_u128().to_be_bytes(),
            event_type: record.event_type.as_str(),
            attempt: record.attempt,
            status: record.status,
            response_status: record.response_status,
            response_body: record.response_body.as_deref().map(Excerpt::of),
            error: record.error.as_deref().map(Into::into),
            duration_ms: record.duration_ms,
            created: record.created,
            next_retry_at: record.next_retry_at,
            due_ms: record.due_ms,
            headers: SentHeaders::of(record.event_id, &record.request_headers),
        }
    }
}

/// A compact record after its version byte.
fn parse<'a, N: Deserialize<'a>>(rest: &'a [u8]) -> Result<AttemptWire<'a, N>, StoreError> {
    postcard::from_bytes(rest).map_err(|e| StoreError::Corrupt { table: TABLE, source: serde::de::Error::custom(e) })
}

/// The attempt record stored under `id`: compact (names looked up in `names`), or JSON
/// (written before layout 3).
pub(super) fn decode_attempt(id: u128, bytes: &[u8], names: &Names) -> Result<AttemptRecord, StoreError> {
    match bytes.split_first() {
        Some((&ATTEMPT_V3, rest)) => {
            let corrupt = |e| StoreError::Corrupt { table: TABLE, source: serde::de::Error::custom(e) };
            let (wire, rest) = postcard::take_from_bytes::<AttemptWire<u32>>(rest).map_err(corrupt)?;
            let sent: SentWire = postcard::from_bytes(rest).map_err(corrupt)?;
            let mut record = wire.map_names(|n| names.name(TABLE, n))?.into_record(id);
            record.sent = Some(SentRequest {
                version: sent.version,
                method: sent.method.into_owned(),
                url: sent.url.into_owned(),
                body: sent.body.into_text(),
            });
            Ok(record)
        }
        Some((&ATTEMPT_V2, rest)) => Ok(parse::<u32>(rest)?.map_names(|n| names.name(TABLE, n))?.into_record(id)),
        Some((&ATTEMPT_V1, rest)) => Ok(parse::<String>(rest)?.into_record(id)),
        _ => super::decode(TABLE, bytes),
    }
}

impl<'a, N> AttemptWire<'a, N> {
    /// The same record with its names (event type, user agent) held another way.
    fn map_names<M>(self, mut f: impl FnMut(N) -> Result<M, StoreError>) -> Result<AttemptWire<'a, M>, StoreError> {
        Ok(AttemptWire {
            app: self.app,
            mode: self.mode,
            endpoint: self.endpoint,
            event: self.event,
            event_type: f(self.event_type)?,
            attempt: self.attempt,
            status: self.status,
            response_status: self.response_status,
            response_body: self.response_body,
            error: self.error,
            duration_ms: self.duration_ms,
            created: self.created,
            next_retry_at: self.next_retry_at,
            due_ms: self.due_ms,
            headers: self.headers.map_name(&mut f)?,
        })
    }
}

impl<N: AsRef<str>> AttemptWire<'_, N> {
    /// The record these fields are of, stored under `id`.
    fn into_record(self, id: u128) -> AttemptRecord {
        let event_id = EventId(u128::from_be_bytes(self.event));
        AttemptRecord {
            id: DeliveryId(id),
            app: AppId(u128::from_be_bytes(self.app)),
            mode: self.mode,
            endpoint_id: EndpointId(u128::from_be_bytes(self.endpoint)),
            event_id,
            event_type: self.event_type.as_ref().to_string(),
            attempt: self.attempt,
            status: self.status,
            response_status: self.response_status,
            response_body: self.response_body.map(Excerpt::into_text),
            error: self.error.map(Cow::into_owned),
            duration_ms: self.duration_ms,
            created: self.created,
            next_retry_at: self.next_retry_at,
            due_ms: self.due_ms,
            request_headers: self.headers.rebuild(event_id),
            sent: None,
        }
    }
}

/// Where attempt `id` in `attempts` went, where it stands and when it was made, if it is
/// there: for scans over an event's attempts, which need no more than that (the compact
/// form is read without building the record: no owned strings, no headers rebuilt, no
/// names looked up).
pub(super) fn outcome_in(
    attempts: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Option<(EndpointId, AttemptStatus, i64)>, StoreError> {
    let Some(stored) = attempts.get(id)? else { return Ok(None) };
    let outcome =
        |endpoint: [u8; 16], status, created| Some((EndpointId(u128::from_be_bytes(endpoint)), status, created));
    Ok(match stored.value().split_first() {
        // A V3 record starts with the V2 one (the request after it is not read).
        Some((&ATTEMPT_V2 | &ATTEMPT_V3, rest)) => {
            parse::<u32>(rest).map(|w| outcome(w.endpoint, w.status, w.created))?
        }
        Some((&ATTEMPT_V1, rest)) => parse::<&str>(rest).map(|w| outcome(w.endpoint, w.status, w.created))?,
        _ => {
            let record: AttemptRecord = super::decode(TABLE, stored.value())?;
            Some((record.endpoint_id, record.status, record.created))
        }
    })
}

/// The attempt record `id` in `attempts`, if it is there.
pub(super) fn attempt_in(
    attempts: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
    names: &Names,
) -> Result<Option<AttemptRecord>, StoreError> {
    attempts.get(id)?.map(|bytes| decode_attempt(id, bytes.value(), names)).transpose()
}

#[cfg(test)]
mod tests {
    use redb::TableDefinition;

    use super::*;
    use crate::store::redb::names::InMemory;

    /// A record as layouts 3 and 4 stored it: names as text.
    fn encode_v1(record: &AttemptRecord) -> Vec<u8> {
        let compact = AttemptWire::of(record);
        let mut out = vec![ATTEMPT_V1];
        postcard::to_io(&compact, &mut out).unwrap();
        out
    }

    fn record(headers: Vec<(String, String)>, response_body: Option<String>) -> AttemptRecord {
        AttemptRecord {
            id: DeliveryId::new(),
            app: AppId(7 << 80),
            mode: Mode::Live,
            endpoint_id: EndpointId(u128::MAX - 3),
            event_id: EventId::at(1_764_000_000_123),
            event_type: "invoice.paid".into(),
            attempt: 3,
            status: AttemptStatus::Retrying,
            response_status: Some(503),
            response_body,
            error: Some("HTTP 503".into()),
            duration_ms: Some(12),
            created: 1_764_000_000,
            next_retry_at: Some(1_764_000_060),
            due_ms: 1_764_000_000_123,
            request_headers: headers,
            sent: None,
        }
    }

    fn signed_headers(event_id: &str, secrets: usize) -> Vec<(String, String)> {
        let stile: String = (0..secrets).map(|n| format!(",v1={}", hex::encode([n as u8 + 1; 32]))).collect();
        let standard: Vec<String> = (0..secrets)
            .map(|n| format!("v1,{}", base64::engine::general_purpose::STANDARD.encode([n as u8 + 9; 32])))
            .collect();
        [
            ("content-type", "application/json".to_string()),
            ("user-agent", "stile/0.1.0 (+webhooks)".to_string()),
            ("stile-signature", format!("t=1764000000{stile}")),
            ("webhook-id", event_id.to_string()),
            ("webhook-timestamp", "1764000000".to_string()),
            ("webhook-signature", standard.join(" ")),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }

    /// Stores `record` and reads it back, in this layout's form and in the one before.
    fn round_trip(record: &AttemptRecord) -> Vec<u8> {
        let names = Names::default();
        let stored = encode_attempt(record, &mut InMemory(&names)).unwrap();
        assert_eq!(stored[0], ATTEMPT_V2);
        assert_eq!(&decode_attempt(record.id.as_u128(), &stored, &names).unwrap(), record);
        let earlier = encode_v1(record);
        assert_eq!(&decode_attempt(record.id.as_u128(), &earlier, &Names::default()).unwrap(), record);
        if record.status != AttemptStatus::Pending {
            assert!(
                stored.len() + record.event_type.len() <= earlier.len() + 1,
                "{} vs {}",
                stored.len(),
                earlier.len()
            );
        }
        stored
    }

    #[test]
    fn a_transformed_request_is_kept_after_the_record_and_a_scan_reads_past_it() {
        let sealed_body = format!("{TEXT_PREFIX}{}", "B".repeat(80));
        let mut attempt = record(vec![("x-kind".into(), "a".into())], None);
        attempt.sent = Some(SentRequest {
            version: 3,
            method: "PUT".into(),
            url: "https://example.com/v2?x=1".into(),
            body: sealed_body.clone(),
        });
        let names = Names::default();
        let stored = encode_attempt(&attempt, &mut InMemory(&names)).unwrap();
        assert_eq!(stored[0], ATTEMPT_V3);
        assert_eq!(decode_attempt(attempt.id.as_u128(), &stored, &names).unwrap(), attempt);
        // The sealed body is kept as its bytes, not their base64.
        assert!(!stored.windows(40).any(|w| w == [b'B'; 40]), "the base64 text is not stored");
        let table = TableDefinition::<u128, &[u8]>::new("t");
        let db = redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(table).unwrap().insert(attempt.id.as_u128(), stored.as_slice()).unwrap();
        let read = outcome_in(&tx.open_table(table).unwrap(), attempt.id.as_u128()).unwrap();
        assert_eq!(read, Some((attempt.endpoint_id, attempt.status, attempt.created)));
        // Without one, the record is the V2 record it always was.
        attempt.sent = None;
        assert_eq!(encode_attempt(&attempt, &mut InMemory(&names)).unwrap()[0], ATTEMPT_V2);
    }

    #[test]
    fn a_signed_attempt_is_a_third_of_its_json_and_reads_back_exactly() {
        let mut attempt = record(vec![], Some(format!("{TEXT_PREFIX}{}", "A".repeat(56))));
        attempt.request_headers = signed_headers(&attempt.event_id.to_string(), 1);
        let stored = round_trip(&attempt);
        let json = serde_json::to_vec(&attempt).unwrap();
        assert!(stored.len() * 3 < json.len(), "{} vs {} bytes", stored.len(), json.len());
        // Two live secrets (a rotation's grace period): two signatures in each header.
        attempt.request_headers = signed_headers(&attempt.event_id.to_string(), 2);
        round_trip(&attempt);
    }

    #[test]
    fn a_traced_attempt_keeps_its_traceparent_in_25_bytes_and_reads_back_exactly() {
        let mut attempt = record(vec![], None);
        let signed = signed_headers(&attempt.event_id.to_string(), 1);
        attempt.request_headers = signed.clone();
        let plain = round_trip(&attempt).len();
        let trace = crate::trace::PublishSpan::of_request(None, None).trace;
        let traceparent = trace.attempt().traceparent();
        attempt.request_headers.push((TRACEPARENT.into(), traceparent.clone()));
        let traced = round_trip(&attempt);
        assert_eq!(traced.len(), plain + 25 + 1, "trace, span and flags, and no state");
        attempt.request_headers.push((TRACESTATE.into(), "congo=t61rcWkgMzE".into()));
        assert_eq!(round_trip(&attempt).len(), plain + 25 + 1 + 1 + 17, "and the state, with its length");
        // Not the shape it rebuilds: kept as they are, and read back as sent.
        for odd in [
            vec![(TRACEPARENT.to_string(), traceparent.to_uppercase())],
            vec![(TRACEPARENT.to_string(), format!("{traceparent}-x"))],
            vec![(TRACESTATE.to_string(), "a=b".to_string())],
            vec![(TRACEPARENT.to_string(), traceparent.clone()), ("x-extra".to_string(), "1".to_string())],
            vec![(TRACEPARENT.to_string(), traceparent.replacen("00-", "01-", 1))],
        ] {
            let headers = [signed.clone(), odd].concat();
            assert!(!headers_stored_compact(attempt.event_id, &headers), "{headers:?}");
            round_trip(&AttemptRecord { request_headers: headers, ..attempt.clone() });
        }
    }

    #[test]
    fn headers_of_any_other_shape_are_kept_as_they_are() {
        let base = record(vec![], None);
        let event_id = base.event_id.to_string();
        let mut odd_cases = Vec::new();
        // Another event's id, a timestamp that disagrees, a short signature, an extra header.
        let mut other_id = signed_headers(&event_id, 1);
        other_id[3].1 = "msg_else".into();
        odd_cases.push(other_id);
        let mut other_time = signed_headers(&event_id, 1);
        other_time[4].1 = "1764000001".into();
        odd_cases.push(other_time);
        let mut short = signed_headers(&event_id, 1);
        short[5].1 = "v1,AAAA".into();
        odd_cases.push(short);
        let mut padded = signed_headers(&event_id, 1);
        padded[2].1 = padded[2].1.to_uppercase();
        odd_cases.push(padded);
        // Parts that parse but are not spelt as stile spells them: the compact form would
        // give back other text, so only the exact check (`SentHeaders::stands_for`) keeps
        // them as they are. That they parse is asserted, so these cases test that check.
        let mut upper_tag = signed_headers(&event_id, 1);
        let (time, tag) = upper_tag[2].1.split_once(",v1=").expect("one tag");
        upper_tag[2].1 = format!("{time},v1={}", tag.to_uppercase());
        let mut zero_led = signed_headers(&event_id, 1);
        let time = zero_led[4].1.clone();
        zero_led[2].1 = zero_led[2].1.replacen(&format!("t={time}"), &format!("t=0{time}"), 1);
        zero_led[4].1 = format!("0{time}");
        let mut traced_upper = signed_headers(&event_id, 1);
        traced_upper.push((TRACEPARENT.into(), "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01".into()));
        for near_miss in [upper_tag, zero_led, traced_upper] {
            let (signed, trace) = near_miss.split_at(6);
            let parses = Signed::of(base.event_id, signed).is_some()
                && trace.iter().all(|(_, traceparent)| TraceHeaders::of(traceparent, None).is_some());
            assert!(parses, "a near miss that does not parse tests nothing: {near_miss:?}");
            odd_cases.push(near_miss);
        }
        let mut extra = signed_headers(&event_id, 1);
        extra.push(("x-extra".into(), "1".into()));
        odd_cases.push(extra);
        odd_cases.push(vec![("content-type".into(), "text/plain".into())]);
        odd_cases.push(vec![]);
        for headers in odd_cases {
            round_trip(&AttemptRecord { request_headers: headers, ..base.clone() });
        }
    }

    #[test]
    fn excerpts_plain_or_sealed_and_pending_records_read_back() {
        let mut attempt = record(vec![], Some("plain text".into()));
        round_trip(&attempt);
        attempt.response_body = Some(format!("{TEXT_PREFIX}not base64!"));
        round_trip(&attempt);
        attempt.response_body = Some(String::new());
        round_trip(&attempt);
        let pending = AttemptRecord {
            status: AttemptStatus::Pending,
            response_status: None,
            response_body: None,
            error: None,
            duration_ms: None,
            next_retry_at: None,
            ..attempt
        };
        round_trip(&pending);
    }

    #[test]
    fn a_pending_record_is_padded_and_reads_back_exactly() {
        let pending = AttemptRecord { status: AttemptStatus::Pending, ..record(vec![], None) };
        let stored = round_trip(&pending);
        assert_eq!(stored.len(), PENDING_RECORD_BYTES, "padded to the least a pending record takes");
        assert_eq!(stored.last(), Some(&0), "with zeros");
        // Its outcome is not padded.
        let ended = AttemptRecord { status: AttemptStatus::Succeeded, ..pending };
        assert!(round_trip(&ended).len() < PENDING_RECORD_BYTES);
    }

    #[test]
    fn an_outcome_reads_the_same_as_the_record_in_either_form() {
        use redb::ReadableDatabase;
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let compact = record(signed_headers("evt_x", 1), Some("ok".into()));
        let earlier = AttemptRecord { id: DeliveryId::new(), status: AttemptStatus::Succeeded, ..compact.clone() };
        let json = AttemptRecord { status: AttemptStatus::Failed, ..record(vec![], None) };
        let names = Names::default();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(super::super::tables::ATTEMPTS).unwrap();
            let stored = encode_attempt(&compact, &mut InMemory(&names)).unwrap();
            table.insert(compact.id.as_u128(), stored.as_slice()).unwrap();
            table.insert(earlier.id.as_u128(), encode_v1(&earlier).as_slice()).unwrap();
            table.insert(json.id.as_u128(), serde_json::to_vec(&json).unwrap().as_slice()).unwrap();
            table.insert(7, [ATTEMPT_V2, 0xff].as_slice()).unwrap();
        }
        tx.commit().unwrap();
        let table = db.begin_read().unwrap().open_table(super::super::tables::ATTEMPTS).unwrap();
        for r in [&compact, &earlier, &json] {
            let outcome = outcome_in(&table, r.id.as_u128()).unwrap();
            assert_eq!(outcome, Some((r.endpoint_id, r.status, r.created)));
        }
        assert_eq!(outcome_in(&table, 8).unwrap(), None);
        assert!(outcome_in(&table, 7).is_err(), "damage is an error, not a panic");
    }

    #[test]
    fn json_records_of_earlier_layouts_still_read_and_damage_is_an_error() {
        let attempt = record(signed_headers("evt_1", 1), Some("ok".into()));
        let json = serde_json::to_vec(&attempt).unwrap();
        let names = Names::default();
        assert_eq!(decode_attempt(attempt.id.as_u128(), &json, &names).unwrap(), attempt);
        assert!(decode_attempt(1, &[ATTEMPT_V1, 0xff, 0xff], &names).is_err());
        assert!(decode_attempt(1, &[ATTEMPT_V2, 0xff, 0xff], &names).is_err());
        assert!(decode_attempt(1, &[], &names).is_err());
        // A number the dictionary does not hold: an error, not a panic.
        let stored = encode_attempt(&attempt, &mut InMemory(&Names::default())).unwrap();
        assert!(decode_attempt(1, &stored, &names).is_err());
    }
}
