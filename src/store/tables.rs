//! Every table in the data file, in one place, with what its keys and values are.
//!
//! Object tables are keyed by `(mode, id)`: the mode byte (see [`crate::mode::Mode::as_u8`])
//! first, so each mode's objects form one contiguous range and a key of one mode can never
//! reach the other's, then the id's 128-bit ULID, so a reverse range scan lists newest
//! first. Values are the records serialised as JSON, which keeps the file readable with
//! generic tools and lets fields be added without a migration.

use redb::TableDefinition;

/// Schema bookkeeping: `"schema_version"` → the version of the layout below.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// API keys: SHA-256 of the full key → [`super::api_keys::ApiKeyRecord`] as JSON.
/// The key itself is never stored.
pub const API_KEYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("api_keys");

/// Webhook endpoints: `(mode, endpoint id)` → [`super::endpoints::EndpointRecord`] as JSON.
pub const ENDPOINTS: TableDefinition<(u8, u128), &[u8]> = TableDefinition::new("webhook_endpoints");

/// Idempotency records: `(mode, Idempotency-Key)` → [`super::idempotency::IdempotencyRecord`]
/// as JSON, the stored response of the first request made with that key.
pub const IDEMPOTENCY: TableDefinition<(u8, &str), &[u8]> = TableDefinition::new("idempotency");
