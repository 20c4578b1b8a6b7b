//! Every table in the data file, in one place, with what its keys and values are.
//!
//! Object tables are keyed by `(application, id)`: the application's 128-bit id first,
//! so each application's objects form one contiguous range and a key of one application
//! can never reach another's (an application belongs to one mode, so neither can a key of
//! the other mode), then the object's 128-bit ULID, so a reverse range scan lists newest
//! first. Values are the records serialised as JSON, which keeps the file readable with
//! generic tools and lets fields be added without a migration. Tables whose key changed
//! with schema version 2 (applications) have new names; `super::migrate` moved the old
//! ones over.

use redb::TableDefinition;

/// Schema bookkeeping: `"schema_version"` → the version of the layout below.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Index backfills still under way: name → the last `(app, id)` key done. A layout
/// change that adds an index records one here in the same transaction as the new schema
/// version; `super::migrate` works through it in batches at start (resuming after a crash)
/// and removes it when done.
pub const BACKFILLS: TableDefinition<&str, (u128, u128)> = TableDefinition::new("backfills");

/// API keys: SHA-256 of the full key → [`super::api_keys::ApiKeyRecord`] as JSON.
/// The key itself is never stored.
pub const API_KEYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("api_keys");

/// Applications: `(mode, app id)` → [`super::apps::AppRecord`] as JSON. The mode is widened
/// to 128 bits so lists of applications page like every other object list.
pub const APPS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("apps");

/// Application uids: `(mode, uid)` → app id; a uid names one application per mode.
pub const APP_UIDS: TableDefinition<(u8, &str), u128> = TableDefinition::new("app_uids");

/// Each mode's default application: mode → app id.
pub const DEFAULT_APPS: TableDefinition<u8, u128> = TableDefinition::new("default_apps");

/// Deleted applications whose history is still being purged: app id → when it was
/// deleted (Unix ms). See `super::app_deletion`.
pub const DELETED_APPS: TableDefinition<u128, u64> = TableDefinition::new("deleted_apps");

/// Webhook endpoints: `(app, endpoint id)` → [`super::endpoints::EndpointRecord`] as JSON.
pub const ENDPOINTS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("webhook_endpoints_by_app");

/// Endpoints by label, for `?label=`: `(app, label, endpoint id)` → `()`.
pub const ENDPOINT_LABELS: TableDefinition<(u128, &str, u128), ()> = TableDefinition::new("endpoint_labels");

/// Endpoints by what they subscribe to, so publishing reads only the endpoints an event
/// goes to: `(app, name in enabled_events, endpoint id)` → `()`, for every name an
/// endpoint lists (`*`, an event type, or a Kayle name), whatever its status.
pub const ENDPOINT_SUBSCRIPTIONS: TableDefinition<(u128, &str, u128), ()> =
    TableDefinition::new("endpoint_subscriptions");

/// Endpoints whose latest attempt failed: endpoint id → (Unix ms of the first failure of
/// the current run of failures, failed attempts in the run). Absent means healthy; the
/// first success removes the entry.
pub const ENDPOINT_HEALTH: TableDefinition<u128, (u64, u32)> = TableDefinition::new("endpoint_health");

/// Listener endpoints (`stile listen`): `(app, SHA-256 of the API key)` → endpoint id.
/// One per key and application; the endpoint's record says when it was last used.
pub const LISTENERS: TableDefinition<(u128, &[u8; 32]), u128> = TableDefinition::new("listeners");

/// Idempotency records: `(app, Idempotency-Key)` → [`super::idempotency::IdempotencyRecord`]
/// as JSON, the stored response of the first request made with that key.
pub const IDEMPOTENCY: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("idempotency_by_app");

/// Idempotency records by age, for retention: `(created, Unix seconds; app; key)` → `()`.
/// A record replaced under the same key leaves its old entry, which pruning recognises
/// by the record's own `created` no longer matching.
pub const IDEMPOTENCY_BY_AGE: TableDefinition<(u64, u128, &str), ()> =
    TableDefinition::new("idempotency_by_age_and_app");

/// Events: `(app, event id)` → [`super::events::EventMeta`], compact (a version byte then
/// postcard, see `super::events::encode_meta`; JSON before layout 3): what lists and
/// filters need without reading the payload.
pub const EVENTS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("events_by_app");

/// Events by type, for `?type=`: `(app, hash of the type, event id)` → `()`, the hash
/// being [`index_hash`] (layout 5; the type itself before): 40 bytes a row
/// whatever the name's length. A list reads each event's metadata anyway, and keeps only
/// those of the type asked for.
pub const EVENTS_BY_TYPE: TableDefinition<(u128, u64, u128), ()> = TableDefinition::new("events_by_type_hash");

/// Events by `data.id`, for `?session_id=`: `(app, hash of the data id, event id)` → `()`,
/// like [`EVENTS_BY_TYPE`]; events whose data has no string `id` are not in it.
pub const EVENTS_BY_DATA_ID: TableDefinition<(u128, u64, u128), ()> = TableDefinition::new("events_by_data_id_hash");

/// Event payloads: event id → the exact bytes POSTed to endpoints, stored once so every
/// attempt sends the same body byte for byte; sealed, and since layout 3 only the event's
/// `data` when the rest is the standard envelope (rebuilt from the event's metadata, see
/// `super::event_body`).
pub const EVENT_BODIES: TableDefinition<u128, &[u8]> = TableDefinition::new("event_bodies");

/// Undelivered payloads: event id → until when (Unix ms) a delivery of the event that
/// failed for good may still be resent to its endpoint (the latest such window of the
/// event's endpoints). Retention keeps the event and its payload until then, even past
/// `retention.events`.
pub const UNDELIVERED_HOLDS: TableDefinition<u128, u64> = TableDefinition::new("undelivered_holds");

/// Portal sessions: SHA-256 of the token → [`super::portal_sessions::PortalSessionRecord`]
/// as JSON. The token itself is never stored.
pub const PORTAL_SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("portal_sessions");

/// Portal sessions by application: (app, session id) → the token's SHA-256, to revoke one
/// by id and all of a deleted application's.
pub const PORTAL_SESSIONS_BY_APP: TableDefinition<(u128, u128), &[u8; 32]> =
    TableDefinition::new("portal_sessions_by_app");

/// Event types created through the API: `(mode, name)` →
/// [`crate::event_types::EventTypeRecord`] as JSON. Archived types stay.
pub const EVENT_TYPES: TableDefinition<(u8, &str), &[u8]> = TableDefinition::new("event_types");

/// Events whose latest attempt to some endpoint failed for good (or was ended by the
/// endpoint's deletion): `(app, event id)` → `()`. With [`EVENT_PENDING`] this answers
/// `?delivery_success=`: an event is delivered when it went somewhere, has nothing
/// pending and is not here. A later success there takes the event out again if no other
/// endpoint's latest attempt failed.
pub const EVENT_FAILURES: TableDefinition<(u128, u128), ()> = TableDefinition::new("event_failures");

/// `pending_webhooks`: event id → deliveries of the event not yet final. Absent means 0.
pub const EVENT_PENDING: TableDefinition<u128, u32> = TableDefinition::new("event_pending");

/// Delivery attempts: attempt id → [`super::attempts::AttemptRecord`], compact (a version
/// byte then postcard, see `super::attempt_codec`; JSON before layout 3, still read). The
/// `pending` attempt of a delivery exists from the moment it is scheduled.
pub const ATTEMPTS: TableDefinition<u128, &[u8]> = TableDefinition::new("attempts");

/// Attempts by endpoint, for listing: `(app, endpoint id, attempt id)` → `()`.
pub const ENDPOINT_ATTEMPTS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("endpoint_attempts_by_app");

/// Attempts by event, for "where did this event go": `(event id, attempt id)` → `()`.
pub const EVENT_ATTEMPTS: TableDefinition<(u128, u128), ()> = TableDefinition::new("event_attempts");
/// Attempt outcomes counted per minute, for the dashboard's overview and success rates:
/// `(app, Unix minute, endpoint id, outcome)` → count, where outcome is
/// [`OUTCOME_SUCCEEDED`], [`OUTCOME_FAILED`] or [`OUTCOME_FILTERED`]. Keyed by time after the application so a
/// time window is one range scan whatever the number of endpoints.
pub const DELIVERY_STATS: TableDefinition<(u128, u64, u128, u8), u64> = TableDefinition::new("delivery_stats_by_app");
/// [`DELIVERY_STATS`] outcome: the attempt got a 2xx.
pub const OUTCOME_SUCCEEDED: u8 = 0;
/// [`DELIVERY_STATS`] outcome: the attempt failed (whether or not a retry follows).
pub const OUTCOME_FAILED: u8 = 1;
/// [`DELIVERY_STATS`] outcome: the endpoint's content filter refused the event (no
/// attempt).
pub const OUTCOME_FILTERED: u8 = 2;
/// Failed attempts, newest last: `(app, attempt id)` → `()`, so "recent failures" is a
/// short reverse scan however many attempts succeeded.
pub const FAILED_ATTEMPTS: TableDefinition<(u128, u128), ()> = TableDefinition::new("failed_attempts_by_app");
/// Failed attempts by endpoint (status `retrying` or `failed`), for an endpoint's
/// deliveries filtered by those statuses: `(app, endpoint id, attempt id)` → `()`. An
/// attempt's status is final once made, so an entry never moves; pending attempts are in
/// [`ENDPOINT_PENDING`], and the rest of [`ENDPOINT_ATTEMPTS`] succeeded.
pub const ENDPOINT_FAILURES: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("endpoint_failures");

/// The durable delivery queue, the truth the scheduler works from:
/// `(due time in Unix ms, attempt id)` → `(app, endpoint id)`. An entry stays until its
/// attempt's outcome is committed, so an attempt in flight during a crash runs again.
pub const QUEUE: TableDefinition<(u64, u128), (u128, u128)> = TableDefinition::new("queue_by_app");

/// Pending attempts by endpoint: `(endpoint id, attempt id)` → due time in Unix ms, or
/// [`PARKED`] while the endpoint is disabled. Lets a delete cancel, and an enable resume,
/// an endpoint's deliveries without scanning the queue.
pub const ENDPOINT_PENDING: TableDefinition<(u128, u128), u64> = TableDefinition::new("endpoint_pending");

/// Parked attempts, by endpoint: `(endpoint id, attempt id)` → `()`. The same entries
/// have [`PARKED`] in [`ENDPOINT_PENDING`]; this table lets start-up and enabling find
/// them without scanning every pending attempt.
pub const PARKED_ATTEMPTS: TableDefinition<(u128, u128), ()> = TableDefinition::new("parked_attempts");

/// The due time of a pending attempt taken off the queue because its endpoint is
/// disabled; it goes back on the queue when the endpoint is enabled.
pub const PARKED: u64 = u64::MAX;

/// Verification sessions: `(app, session id)` → [`super::sessions::SessionRecord`] as JSON.
pub const VERIFICATION_SESSIONS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("verification_sessions_by_app");

/// Session expiry times: `(expires_at in Unix ms, session id)` → app. Entries of sessions
/// that ended some other way are dropped when they come due.
pub const SESSION_EXPIRY: TableDefinition<(u64, u128), u128> = TableDefinition::new("session_expiry_by_app");

/// The 64 bits an event index files a type or a `data.id` under: the first 8 bytes of its
/// SHA-256. It is on disk, so it must never change; two texts sharing a hash only cost
/// a list one extra metadata read (each event is checked against the filter).
pub(super) fn index_hash(text: &str) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

/// Replays: `(app, replay id)` → [`crate::store::model::ReplayRecord`] as JSON.
pub const REPLAYS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("replays");

/// Replays still running or whose outcomes may still change, which the replay task
/// looks at: `(app, replay id)` → `()`.
pub const WATCHED_REPLAYS: TableDefinition<(u128, u128), ()> = TableDefinition::new("watched_replays");

/// The deliveries each watched replay queued again: `(replay id, event id, endpoint id)`
/// → `()`, removed when the replay is no longer watched.
pub const REPLAY_DELIVERIES: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("replay_deliveries");

/// Deliveries skipped because their endpoint was disabled when the event was published:
/// `(app, event id, endpoint id)` → until when (Unix ms) they may be replayed (the
/// endpoint's undelivered-payload window); removed with the event.
pub const SKIPPED_DELIVERIES: TableDefinition<(u128, u128, u128), u64> = TableDefinition::new("skipped_deliveries");
