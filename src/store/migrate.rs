//! Moving a data file written by an earlier layout to the current one, at start, in one
//! transaction (a crash part-way leaves the file as it was).
//!
//! Version 1 (before applications) keyed objects by mode; version 2 keys them by
//! application. The move puts every object of a mode into that mode's default
//! application: each re-keyed table is copied to its new table and the old one deleted,
//! and each record gains its `app`.

use redb::{ReadableTable, WriteTransaction};

use super::apps::DefaultApps;
use super::{StoreError, tables};
use crate::mode::Mode;

/// The tables of layout version 1 that version 2 replaces.
mod v1 {
    use redb::TableDefinition;

    pub const ENDPOINTS: TableDefinition<(u8, u128), &[u8]> = TableDefinition::new("webhook_endpoints");
    pub const EVENTS: TableDefinition<(u8, u128), &[u8]> = TableDefinition::new("events");
    pub const VERIFICATION_SESSIONS: TableDefinition<(u8, u128), &[u8]> = TableDefinition::new("verification_sessions");
    pub const IDEMPOTENCY: TableDefinition<(u8, &str), &[u8]> = TableDefinition::new("idempotency");
    pub const IDEMPOTENCY_BY_AGE: TableDefinition<(u64, u8, &str), ()> = TableDefinition::new("idempotency_by_age");
    pub const ENDPOINT_ATTEMPTS: TableDefinition<(u8, u128, u128), ()> = TableDefinition::new("endpoint_attempts");
    pub const DELIVERY_STATS: TableDefinition<(u8, u64, u128, u8), u64> = TableDefinition::new("delivery_stats");
    pub const FAILED_ATTEMPTS: TableDefinition<(u8, u128), ()> = TableDefinition::new("failed_attempts");
    pub const QUEUE: TableDefinition<(u64, u128), (u8, u128)> = TableDefinition::new("queue");
    pub const SESSION_EXPIRY: TableDefinition<(u64, u128), u8> = TableDefinition::new("session_expiry");
}

/// Moves a version 1 file to version 2 inside `tx`; `defaults` are the default
/// applications (already made in `tx`).
pub(super) fn v1_to_v2(tx: &WriteTransaction, defaults: DefaultApps) -> Result<(), StoreError> {
    let app = |mode: u8| -> Result<u128, StoreError> {
        let mode = Mode::from_u8(mode).ok_or(StoreError::BadKey { table: "a version 1 table" })?;
        Ok(defaults.of(mode).app.as_u128())
    };
    let with_app = |table: &'static str, bytes: &[u8], app: u128| -> Result<Vec<u8>, StoreError> {
        let mut record: serde_json::Value = super::decode(table, bytes)?;
        if let Some(fields) = record.as_object_mut() {
            fields.insert("app".into(), serde_json::Value::String(crate::ids::AppId(app).to_string()));
        }
        super::encode(table, &record)
    };

    for (old, new, name) in [
        (v1::ENDPOINTS, tables::ENDPOINTS, "webhook_endpoints"),
        (v1::EVENTS, tables::EVENTS, "events"),
        (v1::VERIFICATION_SESSIONS, tables::VERIFICATION_SESSIONS, "verification_sessions"),
    ] {
        let rows: Vec<((u8, u128), Vec<u8>)> = {
            let from = tx.open_table(old)?;
            from.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec()))).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(new)?;
        for ((mode, id), bytes) in rows {
            let app = app(mode)?;
            to.insert((app, id), with_app(name, &bytes, app)?.as_slice())?;
        }
    }
    {
        // Attempts keep their key; their records gain `app` from their `mode`.
        let mut attempts = tx.open_table(tables::ATTEMPTS)?;
        let rows: Vec<(u128, Vec<u8>)> =
            attempts.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec()))).collect::<Result<_, _>>()?;
        for (id, bytes) in rows {
            let record: serde_json::Value = super::decode("attempts", &bytes)?;
            let mode = match record.get("mode").and_then(|m| m.as_str()) {
                Some("live") => Mode::Live,
                _ => Mode::Test,
            };
            attempts.insert(id, with_app("attempts", &bytes, app(mode.as_u8())?)?.as_slice())?;
        }
    }
    {
        let rows: Vec<((u8, String), Vec<u8>)> = {
            let from = tx.open_table(v1::IDEMPOTENCY)?;
            from.iter()?
                .map(|row| {
                    row.map(|(k, v)| {
                        let (mode, key) = k.value();
                        ((mode, key.to_string()), v.value().to_vec())
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::IDEMPOTENCY)?;
        for ((mode, key), bytes) in rows {
            to.insert((app(mode)?, key.as_str()), bytes.as_slice())?;
        }
        let rows: Vec<(u64, u8, String)> = {
            let from = tx.open_table(v1::IDEMPOTENCY_BY_AGE)?;
            from.iter()?
                .map(|row| {
                    row.map(|(k, _)| {
                        let (created, mode, key) = k.value();
                        (created, mode, key.to_string())
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::IDEMPOTENCY_BY_AGE)?;
        for (created, mode, key) in rows {
            to.insert((created, app(mode)?, key.as_str()), ())?;
        }
    }
    {
        let rows: Vec<(u8, u128, u128)> = {
            let from = tx.open_table(v1::ENDPOINT_ATTEMPTS)?;
            from.iter()?.map(|row| row.map(|(k, _)| k.value())).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
        for (mode, endpoint, attempt) in rows {
            to.insert((app(mode)?, endpoint, attempt), ())?;
        }
    }
    {
        let rows: Vec<(u8, u128)> = {
            let from = tx.open_table(v1::FAILED_ATTEMPTS)?;
            from.iter()?.map(|row| row.map(|(k, _)| k.value())).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::FAILED_ATTEMPTS)?;
        for (mode, attempt) in rows {
            to.insert((app(mode)?, attempt), ())?;
        }
    }
    {
        let rows: Vec<((u8, u64, u128, u8), u64)> = {
            let from = tx.open_table(v1::DELIVERY_STATS)?;
            from.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value()))).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::DELIVERY_STATS)?;
        for ((mode, minute, endpoint, outcome), count) in rows {
            to.insert((app(mode)?, minute, endpoint, outcome), count)?;
        }
    }
    {
        let rows: Vec<((u64, u128), (u8, u128))> = {
            let from = tx.open_table(v1::QUEUE)?;
            from.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value()))).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::QUEUE)?;
        for (key, (mode, endpoint)) in rows {
            to.insert(key, (app(mode)?, endpoint))?;
        }
    }
    {
        let rows: Vec<((u64, u128), u8)> = {
            let from = tx.open_table(v1::SESSION_EXPIRY)?;
            from.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value()))).collect::<Result<_, _>>()?
        };
        let mut to = tx.open_table(tables::SESSION_EXPIRY)?;
        for (key, mode) in rows {
            to.insert(key, app(mode)?)?;
        }
    }
    tx.delete_table(v1::ENDPOINTS)?;
    tx.delete_table(v1::EVENTS)?;
    tx.delete_table(v1::VERIFICATION_SESSIONS)?;
    tx.delete_table(v1::IDEMPOTENCY)?;
    tx.delete_table(v1::IDEMPOTENCY_BY_AGE)?;
    tx.delete_table(v1::ENDPOINT_ATTEMPTS)?;
    tx.delete_table(v1::DELIVERY_STATS)?;
    tx.delete_table(v1::FAILED_ATTEMPTS)?;
    tx.delete_table(v1::QUEUE)?;
    tx.delete_table(v1::SESSION_EXPIRY)?;
    Ok(())
}
