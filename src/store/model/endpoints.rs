//! Endpoints: where events go, what they subscribe to, and how their secrets are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event_types::{WILDCARD, kayle_alias_of, kayle_name};
use crate::ids::{AppId, EndpointId};
use crate::mode::Mode;
use crate::store::sealing::{OpenError, Sealer, TEXT_PREFIX, reseal_text};

use super::apps::Owner;
use super::receiver_auth::{ClientCertificate, ReceiverAuth};
/// Whether an endpoint receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Receives new events and retries.
    Enabled,
    /// Paused: gets no new events; its retries wait until it is enabled again.
    Disabled,
}

/// A signing secret of an endpoint. During a rotation grace period an endpoint has two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// `whsec_` + base64 of 32 random bytes, sealed.
    pub secret: SealedSecret,
    /// When this secret stops signing (Unix seconds); `None` for the current secret.
    pub expires_at: Option<i64>,
}

impl SigningSecret {
    /// A secret of endpoint `id` of `app`, sealed with `sealer`.
    pub fn new(sealer: &Sealer, (app, id): (AppId, EndpointId), plain: &str, expires_at: Option<i64>) -> Self {
        SigningSecret { secret: SealedSecret::seal(sealer, app, id, plain), expires_at }
    }
}

/// A credential of an endpoint (its signing secrets) as it is stored and held in memory:
/// sealed with the payload key, bound to its endpoint (the endpoint's row is the
/// associated data, so a sealed secret cannot be moved to another endpoint). It is opened
/// only to sign a delivery or to show it to the endpoint's owner, so neither a copy of the
/// data file, a backup, a database dump nor a record in a log reveals it. A secret stored
/// in clear by an earlier release reads as it is, until the store seals it at start.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_sealed() { "SealedSecret(sealed)" } else { "SealedSecret(clear)" })
    }
}

impl SealedSecret {
    /// `plain` sealed for endpoint `id` of `app`.
    pub fn seal(sealer: &Sealer, app: AppId, id: EndpointId, plain: &str) -> Self {
        SealedSecret(sealer.seal_text(&secret_row(app, id), plain))
    }

    /// The secret in clear.
    pub fn open(&self, sealer: &Sealer, app: AppId, id: EndpointId) -> Result<String, OpenError> {
        sealer.open_text(&secret_row(app, id), self.0.clone())
    }

    /// Sealed again under `new`, opened with whichever of `new` and `old` sealed it (or as
    /// it is, if in clear): a payload key rotation.
    pub(crate) fn resealed(&self, old: &Sealer, new: &Sealer, app: AppId, id: EndpointId) -> Result<Self, OpenError> {
        Ok(SealedSecret(reseal_text(old, new, &secret_row(app, id), self.0.clone())?))
    }

    /// The text it is stored as: sealed, it names what it opens to (a cache's key).
    pub fn as_sealed_text(&self) -> &str {
        &self.0
    }

    /// Whether it is sealed (false only for one an earlier release stored in clear).
    pub fn is_sealed(&self) -> bool {
        self.0.starts_with(TEXT_PREFIX)
    }
}

/// The row a secret is sealed to: what it is, and its endpoint.
fn secret_row(app: AppId, id: EndpointId) -> Vec<u8> {
    let mut row = b"endpoint secret\0".to_vec();
    row.extend_from_slice(&app.as_u128().to_be_bytes());
    row.extend_from_slice(&id.as_u128().to_be_bytes());
    row
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// Its id.
    pub id: EndpointId,
    /// The application it belongs to.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types it receives, or `["*"]`.
    pub enabled_events: Vec<String>,
    /// A display name (1–120 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tag-style purpose labels (at most 8), filterable in lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A label for people.
    pub description: Option<String>,
    /// Up to 50 string pairs for the user's own use.
    pub metadata: BTreeMap<String, String>,
    /// Enabled or paused.
    pub status: EndpointStatus,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Signing secrets, current first.
    pub secrets: Vec<SigningSecret>,
    /// Why stile disabled it by itself (it answered 410 Gone, or every attempt failed for
    /// `delivery.disable_after`); `None` when enabled, or disabled through the API.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// When it was last disabled (Unix seconds), by the API or by stile; `None` while
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<i64>,
    /// How long, in hours, the payload of a delivery to it that failed for good is kept
    /// for recovery and resends, past the general retention; `None`: the configured
    /// default (`retention.undelivered_payload_hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelivered_retention_hours: Option<u32>,
    /// When it was last changed through an API (Unix seconds); `None`: never since it was
    /// created (or since before stile recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
    /// For the endpoint of a `stile listen` session: whose it is and when it was last
    /// used. Its deliveries go down the listen connection instead of out over HTTP, and
    /// wait (parked) while no CLI is connected. `None` for every other endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerInfo>,
    /// Subscribed through the Kayle endpoints API with an empty `subscribed_event_types`,
    /// which means every Kayle type: `enabled_events` holds the four Kayle names (what the
    /// Stile API shows), and the Kayle API answers `[]` again, as its client sent it.
    /// Cleared when the types change through another API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_kayle_types: bool,
    /// The most deliveries a second it receives (`rate_limit`); `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// The most requests it has in flight at once (`max_in_flight`); `None`: the server's
    /// `delivery.per_endpoint_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Headers of its own sent with every request to it (name → value, checked by the
    /// API: none that stile sets), after stile's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How stile authenticates to its receiver, its secrets sealed; `None`: not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ReceiverAuth>,
    /// The client certificate its receiver asks for (mutual TLS), its key sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
    /// Which of the events it subscribes to it receives, by what they hold; `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::content_filter::ContentFilter>,
    /// The JavaScript its requests go through before they are signed, with its earlier
    /// versions; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<super::Transformation>,
    /// Not stored with the record: the current run of failed attempts, filled in from
    /// the health table when the endpoint is read for the API. `None`: healthy.
    #[serde(skip)]
    pub failing: Option<Failing>,
}

/// An endpoint's flow limits, as its owner set them: how fast and how many at once the
/// engine sends to it (`crate::delivery::flow` enforces them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowLimits {
    /// Deliveries a second; `None`: no limit.
    pub rate_limit: Option<u32>,
    /// Requests at once; `None`: the server's `delivery.per_endpoint_concurrency`.
    pub max_in_flight: Option<u32>,
}

impl FlowLimits {
    /// The most `rate_limit` may be: above it a limit would not be kept to the request
    /// (the scheduler's clock counts milliseconds).
    pub const MAX_RATE: u32 = 100_000;
    /// The most `max_in_flight` may be (as for `delivery.per_endpoint_concurrency`).
    pub const MAX_IN_FLIGHT: u32 = 1024;
}

/// Why an endpoint's due deliveries wait, as the metrics' `reason` label and the API name
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// A refusal (429, or 503 with `Retry-After`) paused the endpoint.
    Paused,
    /// Its `rate_limit` (or the reduced rate it recovers at after a pause).
    RateLimit,
    /// Its `max_in_flight` requests are open.
    MaxInFlight,
}

impl HoldKind {
    /// Every reason, in the order above.
    pub const ALL: [HoldKind; 3] = [HoldKind::Paused, HoldKind::RateLimit, HoldKind::MaxInFlight];

    /// Its name: `paused`, `rate_limit`, `max_in_flight`.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Paused => "paused",
            HoldKind::RateLimit => "rate_limit",
            HoldKind::MaxInFlight => "max_in_flight",
        }
    }

    /// The reason named `name` ([`HoldKind::as_str`]).
    pub fn parse(name: &str) -> Option<HoldKind> {
        HoldKind::ALL.into_iter().find(|reason| reason.as_str() == name)
    }
}

/// An endpoint's flow at a moment, as the process that sends to it sees it: what holds
/// its due deliveries back, if anything. The API's `GET /v1/webhook_endpoints/:id/flow`
/// and the dashboard show it; on a shared store the sender writes it with each renewal of
/// its sendership, so every process can answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowState {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// What holds its first waiting delivery; `None` when nothing waits, or only for a
    /// free worker.
    pub held: Option<HoldKind>,
    /// Paused after a refusal until then (Unix ms).
    pub paused_until_ms: Option<u64>,
    /// Due deliveries waiting for it in the sender's memory.
    pub waiting: u32,
    /// Requests open to it now.
    pub in_flight: u32,
    /// While it recovers after a pause, the rate allowed now (requests a second).
    pub recovering_rate: Option<f64>,
    /// When this was seen (Unix ms).
    pub as_of_ms: u64,
}

/// What makes an endpoint a listener endpoint (see [`EndpointRecord::listener`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// SHA-256 (hex) of the API key that listens on it: one listener endpoint per key and
    /// application, found again by the next `stile listen` with the same key.
    pub key_hash: String,
    /// When a CLI last connected or disconnected (Unix seconds); an endpoint unused for
    /// `[listen] idle_expiry` is removed.
    pub last_seen: i64,
}

impl EndpointRecord {
    /// Its flow limits.
    pub fn flow_limits(&self) -> FlowLimits {
        FlowLimits { rate_limit: self.rate_limit, max_in_flight: self.max_in_flight }
    }

    /// Whether deliveries to it go down a listen connection.
    pub fn is_listener(&self) -> bool {
        self.listener.is_some()
    }

    /// Its app and id, which its secrets are sealed to.
    pub fn secret_owner(&self) -> (AppId, EndpointId) {
        (self.app, self.id)
    }

    /// The secrets that sign at `now`, in clear: the current one and any old one still in
    /// its rotation grace period.
    pub fn live_secrets(&self, sealer: &Sealer, now: i64) -> Result<Vec<String>, OpenError> {
        self.live_sealed_secrets(now).map(|s| s.open(sealer, self.app, self.id)).collect()
    }

    /// The secrets that sign at `now`, sealed.
    pub fn live_sealed_secrets(&self, now: i64) -> impl Iterator<Item = &SealedSecret> {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|t| t > now)).map(|s| &s.secret)
    }

    /// The current secret in clear, to show its owner (empty if it has none).
    pub fn current_secret(&self, sealer: &Sealer) -> Result<String, OpenError> {
        let current = self.secrets.iter().find(|s| s.expires_at.is_none());
        Ok(current.map(|s| s.secret.open(sealer, self.app, self.id)).transpose()?.unwrap_or_default())
    }

    /// Seals the secrets an earlier release stored in clear; says whether any was.
    pub(crate) fn seal_clear_secrets(&mut self, sealer: &Sealer) -> Result<bool, OpenError> {
        let mut sealed_any = false;
        for secret in self.secrets.iter_mut().filter(|s| !s.secret.is_sealed()) {
            let plain = secret.secret.open(sealer, self.app, self.id)?;
            secret.secret = SealedSecret::seal(sealer, self.app, self.id, &plain);
            sealed_any = true;
        }
        Ok(sealed_any)
    }
}

/// An endpoint's current run of failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// When the first failure of the run was (Unix seconds).
    pub since: i64,
    /// Failed attempts in the run.
    pub attempts: u32,
}

#[cfg(test)]
impl EndpointRecord {
    /// An enabled endpoint with no secret, for unit tests.
    pub(crate) fn for_test(owner: Owner, url: &str, event_type: &str) -> Self {
        EndpointRecord {
            id: EndpointId::new(),
            app: owner.app,
            mode: owner.mode,
            url: url.to_string(),
            enabled_events: vec![event_type.to_string()],
            name: None,
            labels: vec![],
            description: None,
            metadata: BTreeMap::new(),
            status: EndpointStatus::Enabled,
            created: 0,
            secrets: vec![],
            disabled_reason: None,
            disabled_at: None,
            undelivered_retention_hours: None,
            updated: None,
            listener: None,
            all_kayle_types: false,
            rate_limit: None,
            max_in_flight: None,
            headers: BTreeMap::new(),
            authentication: None,
            client_certificate: None,
            filter: None,
            transformation: None,
            failing: None,
        }
    }
}

/// Which endpoints a list shows.
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    /// Only those carrying this label.
    pub label: Option<String>,
}

impl EndpointFilter {
    /// Whether `record` passes.
    pub(crate) fn keeps(&self, record: &EndpointRecord) -> bool {
        self.label.as_ref().is_none_or(|label| record.labels.contains(label))
    }
}

/// The name under which an endpoint receives events of `event_type`, if it is subscribed
/// to them: the type itself (named, or through `*`), else its Kayle name if the endpoint
/// lists that.
pub fn subscribed<'a>(endpoint: &EndpointRecord, event_type: &'a str) -> Option<&'a str> {
    if endpoint.enabled_events.iter().any(|e| e == WILDCARD || e == event_type) {
        return Some(event_type);
    }
    kayle_name(event_type).filter(|kayle| endpoint.enabled_events.iter().any(|e| e == kayle))
}

/// The name under which an event of `event_type` goes to `endpoint` when it is sent there
/// whether subscribed or not (a resend to a named endpoint): as [`subscribed`] says, else
/// the Kayle name if the endpoint subscribes by Kayle names only, else the type itself.
pub fn delivered_as<'a>(endpoint: &EndpointRecord, event_type: &'a str) -> &'a str {
    if let Some(name) = subscribed(endpoint, event_type) {
        return name;
    }
    let kayle_only = endpoint.enabled_events.iter().all(|e| kayle_alias_of(e).is_some());
    match kayle_name(event_type) {
        Some(kayle) if kayle_only => kayle,
        _ => event_type,
    }
}

impl EndpointRecord {
    /// Whose it is.
    pub fn owner(&self) -> Owner {
        Owner { app: self.app, mode: self.mode }
    }
}

/// What `stile listen` asked for when it connected.
#[derive(Debug, Clone)]
pub struct ListenRequest {
    /// Where the CLI forwards deliveries (shown as the endpoint's URL).
    pub forward_to: String,
    /// The event types it wants, or `["*"]`.
    pub events: Vec<String>,
    /// When it connected (Unix seconds).
    pub now: i64,
}

/// What a listener endpoint is called: by the first characters of its key's hash, never
/// by characters of the key (a name is shown in the API, the dashboard and the portal).
pub fn listener_name(key_hash: &[u8; 32]) -> String {
    format!("stile listen (key {})", shown_hash(key_hash))
}

/// What a listener endpoint's description says of it.
pub fn listener_description(key_hash: &[u8; 32]) -> String {
    format!("Deliveries for `stile listen` with the API key whose SHA-256 begins {}.", shown_hash(key_hash))
}

fn shown_hash(key_hash: &[u8; 32]) -> String {
    hex::encode(&key_hash[..LISTENER_NAME_HASH_CHARS / 2])
}

/// How many hex characters of the key's SHA-256 name a listener endpoint: enough to tell
/// one developer's from another's, useless to find the key.
const LISTENER_NAME_HASH_CHARS: usize = 8;

/// The name earlier releases gave listener endpoints, which showed characters of the key.
const LEGACY_NAME_START: &str = "stile listen (";

impl ListenRequest {
    /// Brings a listener endpoint up to date with this connection: its URL, event types,
    /// last use, and (for one made by an earlier release, still called by characters of
    /// its key) its name and description. Both backends apply it.
    pub(crate) fn apply_to(&self, record: &mut EndpointRecord, key_hash: &[u8; 32]) {
        record.url = self.forward_to.clone();
        record.enabled_events = self.events.clone();
        record.listener = Some(ListenerInfo { key_hash: hex::encode(key_hash), last_seen: self.now });
        rename_legacy_listener(record);
    }
}

/// Renames a listener endpoint an earlier release called by characters of its key (at
/// start, and when its CLI connects); says whether it did.
pub(crate) fn rename_legacy_listener(record: &mut EndpointRecord) -> bool {
    let legacy = record.name.as_deref().is_some_and(|n| n.starts_with(LEGACY_NAME_START) && n.ends_with("…)"));
    let hash = record.listener.as_ref().and_then(|l| <[u8; 32]>::try_from(hex::decode(&l.key_hash).ok()?).ok());
    let (true, Some(hash)) = (legacy, hash) else { return false };
    record.name = Some(listener_name(&hash));
    record.description = Some(listener_description(&hash));
    true
}

/// Brings a record an earlier release stored up to what this one keeps at rest: its
/// secrets sealed, a listener endpoint not called by characters of its key. Says whether
/// anything changed. Both backends apply it at start.
pub(crate) fn upgrade_at_rest(record: &mut EndpointRecord, sealer: &Sealer) -> Result<bool, OpenError> {
    let sealed = record.seal_clear_secrets(sealer)?;
    Ok(crate::store::model::endpoints::rename_legacy_listener(record) || sealed)
}
