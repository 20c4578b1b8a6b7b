//! Deleting an application. In one transaction the application stops existing: it leaves
//! the application tables (so nothing names it any more), its endpoints are deleted and
//! their pending deliveries end, and its restricted API keys are revoked. Its history
//! (events, attempts, sessions, statistics, idempotency records) can be far too large for
//! one transaction, so it is marked in [`tables::DELETED_APPS`] and purged afterwards in
//! bounded batches ([`RedbStore::purge_deleted_apps`]), which survive a restart.

use redb::{ReadableTable, WriteTransaction};

use crate::ids::{AppId, EndpointId};
use crate::mode::Mode;
use crate::store::backend::AppDeletions;
use crate::store::model::{AppDeletion, AppPurge, AppRecord, StoreError};
use crate::store::rules;
use crate::store::rules::cancel::end_pending;

use super::apps::TABLE as APPS_TABLE;
use super::attempts::DeliveryTables;
use super::events::{EventIndexes, decode_meta};
use super::names::Names;
use super::{RedbStore, decode, decode_found, tables};

/// Why a deleted application's pending deliveries ended.
const ENDED_BY: &str = "application deleted";

/// One batch of [`RedbStore::purge_deleted_apps`] inside `tx`.
fn purge_in(
    tx: &WriteTransaction,
    names: &Names,
    limit: usize,
    settled_before_ms: u64,
) -> Result<AppPurge, StoreError> {
    let deleted: Vec<(u128, u64)> = tx
        .open_table(tables::DELETED_APPS)?
        .iter()?
        .map(|row| row.map(|(k, v)| (k.value(), v.value())))
        .collect::<Result<_, _>>()?;
    let mut purge = AppPurge::default();
    for (app, deleted_ms) in deleted {
        let budget = limit - purge.removed;
        let removed = purge_app(tx, names, app, budget)?;
        purge.removed += removed;
        if removed == 0 && deleted_ms < settled_before_ms {
            tx.open_table(tables::DELETED_APPS)?.remove(app)?;
            purge.finished += 1;
        }
        if purge.removed >= limit {
            purge.more = true;
            break;
        }
    }
    Ok(purge)
}

/// Whether `app` was deleted (its history may still be being purged).
pub(super) fn is_deleted(tx: &WriteTransaction, app: u128) -> Result<bool, StoreError> {
    Ok(tx.open_table(tables::DELETED_APPS)?.get(app)?.is_some())
}

/// Deletes every endpoint of `app`, ending their pending deliveries; returns how many
/// endpoints and deliveries.
fn delete_endpoints_of(
    tx: &WriteTransaction,
    names: &Names,
    app: AppId,
    now: i64,
) -> Result<(usize, usize), StoreError> {
    let mut endpoints = tx.open_table(tables::ENDPOINTS)?;
    let ids: Vec<u128> = endpoints
        .range((app.as_u128(), 0)..=(app.as_u128(), u128::MAX))?
        .map(|row| row.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let mut deliveries = DeliveryTables::open(tx, names)?;
    let mut health = tx.open_table(tables::ENDPOINT_HEALTH)?;
    let mut ended = 0;
    for id in &ids {
        if let Some(removed) = endpoints.remove((app.as_u128(), *id))? {
            let removed: crate::store::model::EndpointRecord = decode(super::endpoints::TABLE, removed.value())?;
            super::endpoints::reindex_in(tx, Some(&removed), None)?;
        }
        health.remove(*id)?;
        ended += rules::settle(end_pending(&mut deliveries, EndpointId(*id), ENDED_BY, now))?;
    }
    Ok((ids.len(), ended))
}

/// Removes up to `budget` rows of one deleted application's history; returns how many.
fn purge_app(tx: &WriteTransaction, names: &Names, app: u128, budget: usize) -> Result<usize, StoreError> {
    let mut removed = 0;

    // Attempts, with every index entry that points at them.
    let mut by_endpoint = tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
    let rows: Vec<(u128, u128, u128)> = by_endpoint
        .range((app, 0, 0)..=(app, u128::MAX, u128::MAX))?
        .take(budget)
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    let mut attempts = tx.open_table(tables::ATTEMPTS)?;
    let mut by_event = tx.open_table(tables::EVENT_ATTEMPTS)?;
    let mut failures = tx.open_table(tables::FAILED_ATTEMPTS)?;
    let mut endpoint_failures = tx.open_table(tables::ENDPOINT_FAILURES)?;
    for key in rows {
        by_endpoint.remove(key)?;
        endpoint_failures.remove(key)?;
        if let Some(value) = attempts.remove(key.2)? {
            let record = super::attempt_record::decode_attempt(key.2, value.value(), names)?;
            by_event.remove((record.event_id.as_u128(), key.2))?;
        }
        failures.remove((app, key.2))?;
        removed += 1;
    }

    // Events, with their payloads and counters.
    let mut events = tx.open_table(tables::EVENTS)?;
    let ids: Vec<u128> = events
        .range((app, 0)..=(app, u128::MAX))?
        .take(budget - removed)
        .map(|row| row.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let mut bodies = tx.open_table(tables::EVENT_BODIES)?;
    let mut pending = tx.open_table(tables::EVENT_PENDING)?;
    let mut holds = tx.open_table(tables::UNDELIVERED_HOLDS)?;
    let mut skipped = tx.open_table(tables::SKIPPED_DELIVERIES)?;
    let mut indexes = EventIndexes::open(tx)?;
    for id in ids {
        if let Some(stored) = events.remove((app, id))? {
            indexes.remove(&decode_meta((app, id), stored.value(), names)?)?;
        }
        bodies.remove(id)?;
        pending.remove(id)?;
        holds.remove(id)?;
        skipped.retain_in((app, id, 0)..=(app, id, u128::MAX), |_, _| false)?;
        removed += 1;
    }

    // Verification sessions (their expiry entries are dropped when due: the expirer
    // skips deleted applications), leftover failure index entries, statistics.
    removed += remove_pairs(&mut tx.open_table(tables::VERIFICATION_SESSIONS)?, app, budget - removed)?;
    removed += remove_pairs(&mut failures, app, budget - removed)?;
    removed += remove_pairs(&mut tx.open_table(tables::EVENT_FAILURES)?, app, budget - removed)?;
    let mut stats = tx.open_table(tables::DELIVERY_STATS)?;
    let rows: Vec<(u128, u64, u128, u8)> = stats
        .range((app, 0, 0, 0)..=(app, u64::MAX, u128::MAX, u8::MAX))?
        .take(budget - removed)
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for key in rows {
        stats.remove(key)?;
        removed += 1;
    }

    // Idempotency records (their age-index entries go when retention reaches them: it
    // drops an entry whose record is gone).
    let mut idempotency = tx.open_table(tables::IDEMPOTENCY)?;
    let keys: Vec<String> = idempotency
        .range((app, "")..)?
        .take(budget - removed)
        .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .take_while(|k| k.as_ref().is_ok_and(|(owner, _)| *owner == app))
        .map(|k| k.map(|(_, key)| key))
        .collect::<Result<_, _>>()?;
    for key in keys {
        idempotency.remove((app, key.as_str()))?;
        removed += 1;
    }
    Ok(removed)
}

/// Removes up to `budget` rows of `app` from a table keyed by (app, id); returns how many.
fn remove_pairs<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, (u128, u128), V>,
    app: u128,
    budget: usize,
) -> Result<usize, StoreError> {
    let keys: Vec<(u128, u128)> = table
        .range((app, 0)..=(app, u128::MAX))?
        .take(budget)
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for key in &keys {
        table.remove(*key)?;
    }
    Ok(keys.len())
}

impl AppDeletions for RedbStore {
    /// Removes up to `limit` rows of deleted applications' history, in one transaction. A
    /// deleted application is forgotten once nothing of it is left and it was deleted
    /// before `settled_before_ms` (so an event a request published into it just as it was
    /// deleted is purged too).
    async fn purge_deleted_apps(&self, limit: usize, settled_before_ms: u64) -> Result<AppPurge, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write()?;
            let purge = purge_in(&tx, &self.names, limit, settled_before_ms)?;
            if purge.removed == 0 && purge.finished == 0 {
                // Nothing changed: no commit, so an idle server does not write (or fsync).
                tx.abort()?;
            } else {
                tx.commit()?;
            }
            Ok(purge)
        })
    }

    async fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError> {
        self.write(|tx| {
            let mut apps = tx.open_table(tables::APPS)?;
            let key = (u128::from(mode.as_u8()), id.as_u128());
            let found: Option<AppRecord> = decode_found(APPS_TABLE, apps.get(key)?)?;
            let Some(app) = found else { return Ok(AppDeletion::NotFound) };
            if app.default {
                return Ok(AppDeletion::IsDefault);
            }
            apps.remove(key)?;
            if let Some(uid) = &app.uid {
                tx.open_table(tables::APP_UIDS)?.remove((mode.as_u8(), uid.as_str()))?;
            }
            let (endpoints, deliveries_ended) = delete_endpoints_of(tx, &self.names, id, (now_ms / 1000) as i64)?;
            let keys_revoked = super::api_keys::revoke_app_keys(tx, id)?;
            super::portal_sessions::revoke_all_in(tx, id)?;
            super::replays::remove_all_in(tx, id)?;
            let listeners = super::listeners::forget_all_in(tx, id)?;
            tx.open_table(tables::DELETED_APPS)?.insert(id.as_u128(), now_ms)?;
            Ok(AppDeletion::Deleted { app: Box::new(app), endpoints, deliveries_ended, keys_revoked, listeners })
        })
    }
}
