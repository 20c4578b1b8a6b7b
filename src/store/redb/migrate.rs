//! Moving a data file written by an earlier layout to the current one, at start.
//!
//! Version 1 (before applications) keyed objects by mode; version 2 keys them by
//! application. The move puts every object of a mode into that mode's default
//! application: each re-keyed table is copied to its new table and the old one deleted,
//! and each record gains its `app`, in one transaction (a crash part-way leaves the file
//! as it was).
//!
//! Version 3 adds indexes: events by type and by `data.id`, events that failed for good
//! somewhere, failed attempts by endpoint, endpoints by label; and stores events'
//! metadata compact (the events' pass rewrites the JSON of earlier layouts). They are
//! filled from what is stored in batches ([`RedbStore::run_backfills`]), each its own transaction that records
//! how far it got, so a large file is not one huge transaction and a crash resumes where
//! it stopped.
//!
//! Version 4 adds the index of what endpoints subscribe to, filled the same way.
//!
//! Version 5 files events by the 64-bit hash of their type and of their `data.id`
//! instead of the text (new tables, filled the same way; the old ones are deleted when
//! the fill ends).

use redb::{ReadableTable, WriteTransaction};

use crate::mode::Mode;
use crate::store::model::{DefaultApps, StoreError};

use super::events::{EventIndexes, decode_meta, encode_meta};
use super::names::{Interner, Names};
use super::{RedbStore, decode, tables};

/// The backfill of the event indexes, in [`tables::BACKFILLS`].
const EVENT_INDEXES: &str = "event_indexes";

/// The backfill of [`tables::ENDPOINT_FAILURES`] from [`tables::FAILED_ATTEMPTS`].
const ENDPOINT_FAILURES: &str = "endpoint_failures";

/// The backfill of [`tables::ENDPOINT_LABELS`] from the endpoints.
const ENDPOINT_LABELS: &str = "endpoint_labels";

/// The backfill of [`tables::ENDPOINT_SUBSCRIPTIONS`] from the endpoints.
const ENDPOINT_SUBSCRIPTIONS: &str = "endpoint_subscriptions";

/// The backfill of the event indexes keyed by hash (layout 5) from the events, for a file
/// whose events were indexed by text (layouts 3 and 4).
const HASHED_EVENT_INDEXES: &str = "hashed_event_indexes";

/// What one batch of a backfill does: index up to `batch` rows after a key, and say how
/// many and where it stopped.
type Batch = fn(&WriteTransaction, &Names, (u128, u128), usize) -> Result<(usize, Option<(u128, u128)>), StoreError>;

/// Every backfill, in the order they run, with the layout that added it.
const BACKFILLS: [(&str, u64, Batch); 5] = [
    (EVENT_INDEXES, 3, backfill_batch_of),
    (ENDPOINT_FAILURES, 3, endpoint_failures_batch),
    (ENDPOINT_LABELS, 3, |tx, _, after, batch| endpoint_index_batch(tx, ENDPOINT_LABELS, after, batch)),
    (ENDPOINT_SUBSCRIPTIONS, 4, |tx, _, after, batch| endpoint_index_batch(tx, ENDPOINT_SUBSCRIPTIONS, after, batch)),
    (HASHED_EVENT_INDEXES, 5, hashed_event_indexes_batch),
];

/// Events indexed per transaction of a backfill.
const BACKFILL_BATCH: usize = 20_000;

/// Records that the indexes added after layout `found` must be filled from what is
/// already stored, inside the transaction that moves the file to the current layout.
pub(super) fn start_backfills(tx: &WriteTransaction, found: u64) -> Result<(), StoreError> {
    let mut backfills = tx.open_table(tables::BACKFILLS)?;
    for (name, _, _) in BACKFILLS.iter().filter(|(_, layout, _)| *layout > found) {
        // A file without event indexes gets the hashed ones from the first fill.
        if *name == HASHED_EVENT_INDEXES && found < 3 {
            continue;
        }
        backfills.insert(*name, (0, 0))?;
    }
    Ok(())
}

impl RedbStore {
    /// Finishes the index backfills a layout change started: batch after batch, logging
    /// progress, until none is left. Called at open, before anything reads the indexes.
    pub(super) fn run_backfills(&self) -> Result<(), StoreError> {
        for (name, layout, batch) in BACKFILLS {
            let cursor = self.read(|tx| Ok(tx.open_table(tables::BACKFILLS)?.get(name)?.map(|v| v.value())))?;
            let Some(mut done) = cursor else { continue };
            tracing::info!(backfill = name, layout, "filling an index added by a layout change; this runs once");
            let mut rows = 0u64;
            loop {
                let (count, next) = self.write(|tx| batch(tx, &self.names, done, BACKFILL_BATCH))?;
                rows += count as u64;
                match next {
                    Some(next) => {
                        done = next;
                        tracing::info!(backfill = name, rows, "filling an index");
                    }
                    None => break,
                }
            }
            tracing::info!(backfill = name, rows, "index filled");
        }
        Ok(())
    }
}

/// Indexes up to `batch` failed attempts (of [`tables::FAILED_ATTEMPTS`]) after `after`
/// by endpoint, as [`backfill_batch_of`] does for events.
fn endpoint_failures_batch(
    tx: &WriteTransaction,
    names: &Names,
    after: (u128, u128),
    batch: usize,
) -> Result<(usize, Option<(u128, u128)>), StoreError> {
    let failed = tx.open_table(tables::FAILED_ATTEMPTS)?;
    let attempts = tx.open_table(tables::ATTEMPTS)?;
    let mut by_endpoint = tx.open_table(tables::ENDPOINT_FAILURES)?;
    let mut count = 0;
    let mut last = None;
    let start = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
    for row in failed.range::<(u128, u128)>(start)?.take(batch) {
        let (key, _) = row?;
        let (app, id) = key.value();
        if let Some(record) = super::attempt_record::attempt_in(&attempts, id, names)? {
            by_endpoint.insert((app, record.endpoint_id.as_u128(), id), ())?;
        }
        last = Some((app, id));
        count += 1;
    }
    finish_batch(tx, ENDPOINT_FAILURES, count, batch, last)
}

/// One batch of the endpoint index backfill `name`: up to `batch` endpoints after `after`
/// filed under their labels and what they subscribe to (both indexes in one pass; an
/// entry already there is a no-op).
fn endpoint_index_batch(
    tx: &WriteTransaction,
    name: &str,
    after: (u128, u128),
    batch: usize,
) -> Result<(usize, Option<(u128, u128)>), StoreError> {
    let mut records = Vec::new();
    {
        let endpoints = tx.open_table(tables::ENDPOINTS)?;
        let start = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        for row in endpoints.range::<(u128, u128)>(start)?.take(batch) {
            let (key, value) = row?;
            records.push((
                key.value(),
                decode::<crate::store::model::EndpointRecord>("webhook_endpoints", value.value())?,
            ));
        }
    }
    for (_, record) in &records {
        super::endpoints::reindex_in(tx, None, Some(record))?;
    }
    let last = records.last().map(|(key, _)| *key);
    finish_batch(tx, name, records.len(), batch, last)
}

/// Records how far a backfill got after a batch: the last key done, or, when the batch
/// was not full, that it is finished.
fn finish_batch(
    tx: &WriteTransaction,
    name: &str,
    count: usize,
    batch: usize,
    last: Option<(u128, u128)>,
) -> Result<(usize, Option<(u128, u128)>), StoreError> {
    let mut backfills = tx.open_table(tables::BACKFILLS)?;
    let next = if count == batch { last } else { None };
    match next {
        Some(key) => backfills.insert(name, key)?,
        None => backfills.remove(name)?,
    };
    Ok((count, next))
}

/// Indexes up to `batch` events after `after` and records how far it got; `None` when
/// the last one is done (the backfill is then removed).
fn backfill_batch_of(
    tx: &WriteTransaction,
    names: &Names,
    after: (u128, u128),
    batch: usize,
) -> Result<(usize, Option<(u128, u128)>), StoreError> {
    let mut events = tx.open_table(tables::EVENTS)?;
    let mut interner = Interner::open(tx, names)?;
    let mut indexes = EventIndexes::open(tx)?;
    let by_event = tx.open_table(tables::EVENT_ATTEMPTS)?;
    let attempts = tx.open_table(tables::ATTEMPTS)?;
    let mut failures = tx.open_table(tables::EVENT_FAILURES)?;
    let mut count = 0;
    let mut last = None;
    let mut newest_ms = 0;
    let start = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
    let metas: Vec<((u128, u128), crate::store::model::EventMeta)> = events
        .range::<(u128, u128)>(start)?
        .take(batch)
        .map(|row| {
            let (key, value) = row?;
            Ok((key.value(), decode_meta(key.value(), value.value(), names)?))
        })
        .collect::<Result<_, StoreError>>()?;
    for (key, meta) in metas {
        // Rewritten compact (its JSON of the earlier layout is 3 times larger).
        events.insert(key, encode_meta(&meta, &mut interner)?.as_slice())?;
        indexes.insert(&meta)?;
        // Whether its latest attempt to some endpoint failed for good.
        let latest = super::attempts::latest_per_endpoint(&by_event, &attempts, meta.id)?;
        if latest.values().any(|(status, _)| *status == super::attempts::AttemptStatus::Failed) {
            failures.insert(key, ())?;
        }
        newest_ms = newest_ms.max(meta.id.unix_ms());
        last = Some(key);
        count += 1;
    }
    // These events' ids were made from the system clock a moment after `created`: time
    // bounds near them need a little slack (see `events::LEGACY_EVENT_MS`).
    if count > 0 {
        let mut meta = tx.open_table(tables::META)?;
        let known = meta.get(crate::store::model::events::LEGACY_EVENT_MS)?.map_or(0, |v| v.value());
        meta.insert(crate::store::model::events::LEGACY_EVENT_MS, known.max(newest_ms))?;
    }
    finish_batch(tx, EVENT_INDEXES, count, batch, last)
}

/// Files up to `batch` events after `after` in the hashed indexes; when the last is done,
/// deletes the indexes by text of layouts 3 and 4.
fn hashed_event_indexes_batch(
    tx: &WriteTransaction,
    names: &Names,
    after: (u128, u128),
    batch: usize,
) -> Result<(usize, Option<(u128, u128)>), StoreError> {
    let events = tx.open_table(tables::EVENTS)?;
    let mut indexes = EventIndexes::open(tx)?;
    let mut count = 0;
    let mut last = None;
    let start = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
    for row in events.range::<(u128, u128)>(start)?.take(batch) {
        let (key, value) = row?;
        indexes.insert(&decode_meta(key.value(), value.value(), names)?)?;
        last = Some(key.value());
        count += 1;
    }
    drop((events, indexes));
    let next = finish_batch(tx, HASHED_EVENT_INDEXES, count, batch, last)?;
    if next.1.is_none() {
        tx.delete_table(v4::EVENTS_BY_TYPE)?;
        tx.delete_table(v4::EVENTS_BY_DATA_ID)?;
    }
    Ok(next)
}

/// The tables of layouts 3 and 4 that version 5 replaces.
mod v4 {
    use redb::TableDefinition;

    pub const EVENTS_BY_TYPE: TableDefinition<(u128, &str, u128), ()> = TableDefinition::new("events_by_type");
    pub const EVENTS_BY_DATA_ID: TableDefinition<(u128, &str, u128), ()> = TableDefinition::new("events_by_data_id");
}

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

#[cfg(test)]
mod tests {
    use crate::store::backend::Apps;
    use crate::store::backend::Endpoints;
    use crate::store::backend::Events;
    use redb::ReadableTableMetadata;

    use super::*;
    use crate::store::model::Cursor;
    use crate::store::model::EventFilter;
    use crate::store::model::Owner;
    use crate::store::model::PageRequest;

    fn rows<K: redb::Key + 'static>(store: &RedbStore, table: redb::TableDefinition<K, ()>) -> u64 {
        store.read(|tx| Ok(tx.open_table(table)?.len()?)).unwrap()
    }

    async fn sessions_events(store: &RedbStore, owner: Owner, session: &str) -> usize {
        let filter = EventFilter { data_id: Some(session.into()), ..EventFilter::default() };
        let request = PageRequest::<crate::ids::EventId> { limit: 100, cursor: Cursor::Start };
        store.list_events(owner, request, filter.clone()).await.unwrap().items.len()
    }

    #[tokio::test]
    async fn a_layout_3_file_gets_only_the_indexes_added_since() {
        let dir = tempfile::tempdir().unwrap();
        let owner;
        {
            let store = RedbStore::open(dir.path()).unwrap();
            owner = store.test_owner(Mode::Test).await;
            let mut endpoint =
                crate::store::model::endpoints::EndpointRecord::for_test(owner, "https://a.example/", "a.b");
            endpoint.enabled_events.push("a.c".into());
            endpoint.labels = vec!["eu".into()];
            store.insert_endpoint(endpoint.clone()).await.unwrap();
            store
                .write(|tx| {
                    tx.delete_table(tables::ENDPOINT_SUBSCRIPTIONS)?;
                    tx.open_table(tables::META)?.insert("schema_version", 3)?;
                    Ok(())
                })
                .unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(rows(&store, tables::ENDPOINT_SUBSCRIPTIONS), 2, "a.b and a.c");
        assert_eq!(rows(&store, tables::ENDPOINT_LABELS), 1);
        let found = store.write(|tx| crate::store::redb::endpoints::matching_in(tx, owner.app, "a.c")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(store.read(|tx| Ok(tx.open_table(tables::BACKFILLS)?.len()?)).unwrap(), 0, "done");
        // From layout 3 only the subscription index is to fill; from layout 2, everything.
        let started = |from: u64| {
            store
                .write(|tx| {
                    start_backfills(tx, from)?;
                    let mut backfills = tx.open_table(tables::BACKFILLS)?;
                    let names: Vec<String> = backfills
                        .iter()?
                        .map(|row| row.map(|(k, _)| k.value().to_string()))
                        .collect::<Result<_, _>>()?;
                    backfills.retain(|_, _| false)?;
                    Ok(names)
                })
                .unwrap()
        };
        assert_eq!(started(4), [HASHED_EVENT_INDEXES]);
        assert_eq!(started(3), [ENDPOINT_SUBSCRIPTIONS, HASHED_EVENT_INDEXES]);
        assert_eq!(started(2).len(), BACKFILLS.len() - 1, "all but the hashed indexes, which the first fill makes");
    }

    #[tokio::test]
    async fn a_layout_4_file_has_its_events_filed_by_hash_and_loses_the_indexes_by_text() {
        let dir = tempfile::tempdir().unwrap();
        let (owner, other);
        {
            let store = RedbStore::open(dir.path()).unwrap();
            owner = store.test_owner(Mode::Test).await;
            other = store.test_owner(Mode::Live).await;
            let mut events = Vec::new();
            for n in 0..7 {
                let (who, event_type) = if n % 3 == 0 { (other, "a.c") } else { (owner, "a.b") };
                let data = serde_json::json!({"id": format!("vks_{}", n % 2), "n": n});
                events.push(crate::payload::new_event(who, event_type, &data, crate::clock::unix_now_ms()).unwrap());
            }
            let _ = store.publish_events(events.to_vec(), crate::clock::unix_now_ms()).await.unwrap();
            // As layout 4 left it: the events filed by their texts, no hashed index.
            store
                .write(|tx| {
                    let mut by_type = tx.open_table(v4::EVENTS_BY_TYPE)?;
                    let mut by_data_id = tx.open_table(v4::EVENTS_BY_DATA_ID)?;
                    for event in &events {
                        let (app, id) = (event.meta.app.as_u128(), event.meta.id.as_u128());
                        by_type.insert((app, event.meta.event_type.as_str(), id), ())?;
                        by_data_id.insert((app, event.meta.data_id.as_deref().unwrap(), id), ())?;
                    }
                    drop((by_type, by_data_id));
                    tx.delete_table(tables::EVENTS_BY_TYPE)?;
                    tx.delete_table(tables::EVENTS_BY_DATA_ID)?;
                    tx.open_table(tables::META)?.insert("schema_version", 4)?;
                    Ok(())
                })
                .unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(rows(&store, tables::EVENTS_BY_TYPE), 7);
        assert_eq!(rows(&store, tables::EVENTS_BY_DATA_ID), 7);
        let gone = store
            .read(|tx| {
                let names: Vec<String> = tx.list_tables()?.map(|t| redb::TableHandle::name(&t).to_string()).collect();
                Ok(!names.iter().any(|n| n == "events_by_type" || n == "events_by_data_id"))
            })
            .unwrap();
        assert!(gone, "the indexes by text are deleted");
        assert!(store.read(|tx| Ok(tx.open_table(tables::BACKFILLS)?.iter()?.next().is_none())).unwrap(), "all done");
        // Events 1, 2, 4, 5 are the owner's (a.b); 1 and 5 have vks_1.
        let request = || PageRequest::<crate::ids::EventId> { limit: 100, cursor: Cursor::Start };
        let by_type = async |who: Owner, t: &str| {
            let filter = EventFilter { event_type: Some(t.into()), ..EventFilter::default() };
            store.list_events(who, request(), filter.clone()).await.unwrap().items.len()
        };
        assert_eq!((by_type(owner, "a.b").await, by_type(owner, "a.c").await, by_type(other, "a.c").await), (4, 0, 3));
        assert_eq!(sessions_events(&store, owner, "vks_1").await, 2);
        assert_eq!(sessions_events(&store, other, "vks_1").await, 1, "event 3");
    }

    #[tokio::test]
    async fn the_event_index_backfill_goes_in_batches_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let owner;
        {
            let store = RedbStore::open(dir.path()).unwrap();
            owner = store.test_owner(Mode::Test).await;
            let events: Vec<_> = (0..5)
                .map(|n| {
                    let data = serde_json::json!({"id": "vks_1", "n": n});
                    crate::payload::new_event(owner, "a.b", &data, crate::clock::unix_now_ms()).unwrap()
                })
                .collect();
            let _ = store.publish_events(events.to_vec(), crate::clock::unix_now_ms()).await.unwrap();
            assert_eq!(sessions_events(&store, owner, "vks_1").await, 5);
            let mut labelled =
                crate::store::model::endpoints::EndpointRecord::for_test(owner, "https://a.example/", "*");
            labelled.labels = vec!["billing".into(), "eu".into()];
            store.insert_endpoint(labelled.clone()).await.unwrap();
            // As a file of layout 2: metadata in JSON, no index rows, a backfill to do.
            store
                .write(|tx| {
                    let mut table = tx.open_table(tables::EVENTS)?;
                    for event in &events {
                        let key = (event.meta.app.as_u128(), event.meta.id.as_u128());
                        table.insert(key, serde_json::to_vec(&event.meta).unwrap().as_slice())?;
                    }
                    drop(table);
                    tx.delete_table(tables::EVENTS_BY_TYPE)?;
                    tx.delete_table(tables::EVENTS_BY_DATA_ID)?;
                    tx.delete_table(tables::ENDPOINT_LABELS)?;
                    tx.delete_table(tables::ENDPOINT_SUBSCRIPTIONS)?;
                    tx.open_table(tables::EVENTS_BY_TYPE)?;
                    tx.open_table(tables::EVENTS_BY_DATA_ID)?;
                    tx.open_table(tables::ENDPOINT_LABELS)?;
                    tx.open_table(tables::ENDPOINT_SUBSCRIPTIONS)?;
                    start_backfills(tx, 2)
                })
                .unwrap();
            assert_eq!(sessions_events(&store, owner, "vks_1").await, 0, "nothing indexed");
            // Two batches of two, then a crash: the cursor says how far it got.
            for _ in 0..2 {
                let cursor = store
                    .read(|tx| Ok(tx.open_table(tables::BACKFILLS)?.get(EVENT_INDEXES)?.unwrap().value()))
                    .unwrap();
                let (count, next) = store.write(|tx| backfill_batch_of(tx, &store.names, cursor, 2)).unwrap();
                assert_eq!((count, next.is_some()), (2, true));
            }
            assert_eq!(rows(&store, tables::EVENTS_BY_TYPE), 4);
        }
        // Opening again finishes the last event, and only it, then forgets the backfill.
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(rows(&store, tables::EVENTS_BY_TYPE), 5);
        assert_eq!(rows(&store, tables::EVENTS_BY_DATA_ID), 5);
        assert_eq!(sessions_events(&store, owner, "vks_1").await, 5);
        assert_eq!(rows(&store, tables::ENDPOINT_LABELS), 2, "the endpoint's two labels");
        assert_eq!(rows(&store, tables::ENDPOINT_SUBSCRIPTIONS), 1, "what it subscribes to");
        let compact = store
            .read(|tx| {
                let events = tx.open_table(tables::EVENTS)?;
                let mut all = true;
                for row in events.iter()? {
                    all &= row?.1.value().first() == Some(&2);
                }
                Ok(all)
            })
            .unwrap();
        assert!(compact, "every event's metadata rewritten compact");
        assert!(store.read(|tx| Ok(tx.open_table(tables::BACKFILLS)?.iter()?.next().is_none())).unwrap(), "all done");
    }
}
