//! Retention: removing history older than `[retention] events`, a bounded batch per
//! transaction so pruning never holds the writer for long.
//!
//! Ids are ULIDs, so "older than the cutoff" is a range scan from the start of each table.
//! What is still in use is kept whatever its age: an event with deliveries not yet final
//! (an endpoint disabled for months keeps its parked retries), a pending attempt, and a
//! verification session that has not ended. A
//! [`PruneCursor`] remembers where the last batch stopped so those are not read again in
//! the same pass. Freed pages are reused by redb for new writes, so under steady load the
//! data file stops growing once the oldest history is being pruned as fast as it is made.

use redb::{ReadableTable, Table, WriteTransaction};

use crate::ids::first_id_at;
use crate::mode::Mode;
use crate::store::backend::Retention;
use crate::store::model::apps::operational_app;
use crate::store::model::{
    AttemptRecord, AttemptStatus, Cutoffs, IdempotencyRecord, PruneCursor, Pruned, SessionRecord, StoreError,
};

use super::events::{EventIndexes, decode_meta};
use super::names::Names;
use super::{RedbStore, decode, tables};

impl RedbStore {
    /// Makes every commit so far durable (one empty durable commit): ends a pruning pass,
    /// whose batches are committed without an fsync.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(()))
    }

    /// Rewrites the data file without its free space. Needs the only handle on the file,
    /// so it is for `stile compact` with the server stopped. `true` if the file shrank.
    pub fn compact(self) -> Result<bool, StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        let Some(db) = guard.as_mut() else {
            return Err(StoreError::Unavailable("the data file is not open".into()));
        };
        let mut compacted = false;
        // Each call moves what it can; a few rounds reach the fixed point.
        while db.compact().map_err(StoreError::from)? {
            compacted = true;
        }
        Ok(compacted)
    }
}

/// One batch of [`RedbStore::prune`] inside `tx`.
fn prune_in(
    tx: &WriteTransaction,
    names: &Names,
    cutoffs: Cutoffs,
    next: &mut PruneCursor,
    limit: usize,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let (attempts, more) = prune_attempts(tx, names, cutoffs.history_ms, &mut next.attempts, limit)?;
    pruned.attempts = attempts;
    pruned.more |= more;
    // Every application's id, whatever its mode, and the operational ones (no record).
    let mut apps: Vec<u128> =
        tx.open_table(tables::APPS)?.iter()?.map(|row| row.map(|(k, _)| k.value().1)).collect::<Result<_, _>>()?;
    apps.extend([Mode::Test, Mode::Live].map(|mode| operational_app(mode).as_u128()));
    for app in apps {
        let slot = next.events.entry(app).or_default();
        let (events, more) = prune_events(tx, names, app, cutoffs, slot, limit)?;
        pruned.events += events.len();
        pruned.attempts += prune_attempts_of(tx, names, &events)?;
        pruned.more |= more;
        let slot = next.sessions.entry(app).or_default();
        let (sessions, more) = prune_sessions(tx, app, cutoffs.history_ms, slot, limit)?;
        pruned.sessions += sessions;
        pruned.more |= more;
        let (stats, more) = prune_stats(tx, app, cutoffs.history_ms / 60_000, limit)?;
        pruned.stats += stats;
        pruned.more |= more;
    }
    let (sessions, more) = super::portal_sessions::prune_expired_in(tx, (cutoffs.now_ms / 1000) as i64, limit)?;
    pruned.portal_sessions = sessions;
    pruned.more |= more;
    let (idempotency, entries, more) = prune_idempotency(tx, cutoffs.idempotency_secs, limit)?;
    pruned.idempotency = idempotency;
    pruned.stale_entries = entries - idempotency;
    pruned.more |= more;
    Ok(pruned)
}

/// Attempts made before the cutoff that are no longer pending, with every index entry
/// that points at them.
fn prune_attempts(
    tx: &WriteTransaction,
    names: &Names,
    cutoff_ms: u64,
    from: &mut u128,
    limit: usize,
) -> Result<(usize, bool), StoreError> {
    let attempts = tx.open_table(tables::ATTEMPTS)?;
    let end = first_id_at(cutoff_ms);
    if *from >= end {
        return Ok((0, false));
    }
    let mut old = Vec::new();
    for entry in attempts.range(*from..end)?.take(limit) {
        let (key, value) = entry?;
        let record = super::attempt_record::decode_attempt(key.value(), value.value(), names)?;
        old.push((key.value(), record));
    }
    let more = old.len() == limit;
    if let Some((last, _)) = old.last() {
        *from = last + 1;
    }
    drop(attempts);
    let finished: Vec<(u128, AttemptRecord)> =
        old.into_iter().filter(|(_, record)| record.status != AttemptStatus::Pending).collect();
    Ok((remove_attempts(tx, &finished)?, more))
}

/// The attempts of events just pruned (all final: an event goes only when nothing is
/// pending), so no attempt outlives its event (one made after the cutoff would have
/// stayed, listed under its endpoint, until it was old enough itself).
fn prune_attempts_of(tx: &WriteTransaction, names: &Names, events: &[u128]) -> Result<usize, StoreError> {
    let mut found = Vec::new();
    {
        let attempts = tx.open_table(tables::ATTEMPTS)?;
        let by_event = tx.open_table(tables::EVENT_ATTEMPTS)?;
        for event in events {
            for entry in by_event.range((*event, 0)..=(*event, u128::MAX))? {
                let id = entry?.0.value().1;
                if let Some(value) = attempts.get(id)? {
                    found.push((id, super::attempt_record::decode_attempt(id, value.value(), names)?));
                }
            }
        }
    }
    remove_attempts(tx, &found)
}

/// Removes attempts with every index entry that points at them; returns how many.
fn remove_attempts(tx: &WriteTransaction, old: &[(u128, AttemptRecord)]) -> Result<usize, StoreError> {
    let mut attempts = tx.open_table(tables::ATTEMPTS)?;
    let mut by_endpoint = tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
    let mut by_event = tx.open_table(tables::EVENT_ATTEMPTS)?;
    let mut failures = tx.open_table(tables::FAILED_ATTEMPTS)?;
    let mut endpoint_failures = tx.open_table(tables::ENDPOINT_FAILURES)?;
    for (id, record) in old {
        let (app, id) = (record.app.as_u128(), *id);
        attempts.remove(id)?;
        by_endpoint.remove((app, record.endpoint_id.as_u128(), id))?;
        endpoint_failures.remove((app, record.endpoint_id.as_u128(), id))?;
        by_event.remove((record.event_id.as_u128(), id))?;
        failures.remove((app, id))?;
    }
    Ok(old.len())
}

/// The next batch of one application's entries made before the cutoff in a table keyed
/// by (app, ULID), from the cursor on, each with what `read` makes of its value; moves the
/// cursor past them. The flag says the batch was full (more may follow).
fn old_of_app<T>(
    table: &Table<(u128, u128), &[u8]>,
    app: u128,
    cutoff_ms: u64,
    from: &mut u128,
    limit: usize,
    read: impl Fn(&[u8]) -> Result<T, StoreError>,
) -> Result<(Vec<(u128, T)>, bool), StoreError> {
    let end = first_id_at(cutoff_ms);
    if *from >= end {
        return Ok((Vec::new(), false));
    }
    let mut old = Vec::new();
    for entry in table.range((app, *from)..(app, end))?.take(limit) {
        let (key, value) = entry?;
        old.push((key.value().1, read(value.value())?));
    }
    if let Some((last, _)) = old.last() {
        *from = last + 1;
    }
    let more = old.len() == limit;
    Ok((old, more))
}

/// Events of one application made before the cutoff whose deliveries are all final and
/// whose undelivered payload is not held any more; returns their ids.
fn prune_events(
    tx: &WriteTransaction,
    names: &Names,
    app: u128,
    cutoffs: Cutoffs,
    from: &mut u128,
    limit: usize,
) -> Result<(Vec<u128>, bool), StoreError> {
    let mut events = tx.open_table(tables::EVENTS)?;
    let (old, more) = old_of_app(&events, app, cutoffs.history_ms, from, limit, |_| Ok(()))?;
    let mut bodies = tx.open_table(tables::EVENT_BODIES)?;
    let pending = tx.open_table(tables::EVENT_PENDING)?;
    let mut holds = tx.open_table(tables::UNDELIVERED_HOLDS)?;
    let mut indexes = EventIndexes::open(tx)?;
    let mut failures = tx.open_table(tables::EVENT_FAILURES)?;
    let mut skipped = tx.open_table(tables::SKIPPED_DELIVERIES)?;
    let mut removed = Vec::new();
    for (id, ()) in old {
        if pending.get(id)?.is_some_and(|n| n.value() > 0) {
            continue;
        }
        if holds.get(id)?.is_some_and(|until| until.value() > cutoffs.now_ms) {
            continue;
        }
        if let Some(stored) = events.remove((app, id))? {
            indexes.remove(&decode_meta((app, id), stored.value(), names)?)?;
        }
        failures.remove((app, id))?;
        bodies.remove(id)?;
        holds.remove(id)?;
        skipped.retain_in((app, id, 0)..=(app, id, u128::MAX), |_, _| false)?;
        removed.push(id);
    }
    Ok((removed, more))
}

/// Verification sessions of one application created before the cutoff that have ended.
/// Their expiry entries stay: the expirer drops an entry whose session is gone when due.
fn prune_sessions(
    tx: &WriteTransaction,
    app: u128,
    cutoff_ms: u64,
    from: &mut u128,
    limit: usize,
) -> Result<(usize, bool), StoreError> {
    let mut sessions = tx.open_table(tables::VERIFICATION_SESSIONS)?;
    let (old, more) = old_of_app(&sessions, app, cutoff_ms, from, limit, |value| {
        Ok(decode::<SessionRecord>("verification_sessions", value)?.is_open())
    })?;
    let mut removed = 0;
    for (id, open) in old {
        if !open {
            sessions.remove((app, id))?;
            removed += 1;
        }
    }
    Ok((removed, more))
}

/// Per-minute statistics of one application for minutes before the cutoff.
fn prune_stats(
    tx: &WriteTransaction,
    app: u128,
    cutoff_minute: u64,
    limit: usize,
) -> Result<(usize, bool), StoreError> {
    let mut stats = tx.open_table(tables::DELIVERY_STATS)?;
    let old: Vec<(u128, u64, u128, u8)> = stats
        .range((app, 0, 0, 0)..(app, cutoff_minute, 0, 0))?
        .take(limit)
        .map(|entry| entry.map(|(key, _)| key.value()))
        .collect::<Result<_, _>>()?;
    for key in &old {
        stats.remove(*key)?;
    }
    Ok((old.len(), old.len() == limit))
}

/// Idempotency records stored before the cutoff. An index entry whose key was stored
/// again later (after the old record expired) only loses the entry. Returns the records
/// removed and the index entries removed.
fn prune_idempotency(
    tx: &WriteTransaction,
    cutoff_secs: i64,
    limit: usize,
) -> Result<(usize, usize, bool), StoreError> {
    let mut by_age = tx.open_table(tables::IDEMPOTENCY_BY_AGE)?;
    let cutoff = cutoff_secs.max(0) as u64;
    let old: Vec<(u64, u128, String)> = by_age
        .range((0, 0, "")..(cutoff, 0, ""))?
        .take(limit)
        .map(|entry| {
            entry.map(|(key, _)| {
                let (created, app, key) = key.value();
                (created, app, key.to_string())
            })
        })
        .collect::<Result<_, _>>()?;
    let mut records = tx.open_table(tables::IDEMPOTENCY)?;
    let mut removed = 0;
    for (created, app, key) in &old {
        by_age.remove((*created, *app, key.as_str()))?;
        let stored: Option<IdempotencyRecord> =
            records.get((*app, key.as_str()))?.map(|v| decode("idempotency", v.value())).transpose()?;
        if stored.is_some_and(|r| r.created.max(0) as u64 == *created) {
            records.remove((*app, key.as_str()))?;
            removed += 1;
        }
    }
    Ok((removed, old.len(), old.len() == limit))
}

impl Retention for RedbStore {
    /// Removes up to `limit` old entries from each history table in one transaction.
    ///
    /// The batch is committed without an fsync of its own (a crash forgets it, and the
    /// next pass prunes the same rows again): the next durable commit, a publish's or
    /// [`RedbStore::persist`] at the end of the pass, makes it durable. An fsync per batch
    /// held publishes waiting for the writer up for milliseconds each time.
    async fn prune(
        &self,
        cutoffs: Cutoffs,
        cursor: PruneCursor,
        limit: usize,
    ) -> Result<(Pruned, PruneCursor), StoreError> {
        let mut next = cursor;
        let pruned = self.with_db(|db| {
            let mut tx = db.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            let pruned = prune_in(&tx, &self.names, cutoffs, &mut next, limit)?;
            if pruned.removed() == 0 {
                // Nothing removed: no commit, so an idle server does not write (or fsync).
                tx.abort()?;
            } else {
                tx.commit()?;
            }
            Ok::<_, StoreError>(pruned)
        })?;
        Ok((pruned, next))
    }
}
