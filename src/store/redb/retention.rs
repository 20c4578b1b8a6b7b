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

use super::{RedbStore, decode, tables};
use crate::store::model::{
    AttemptRecord, AttemptStatus, Cutoffs, IdempotencyRecord, PruneCursor, Pruned, SessionRecord, StoreError,
};

use redb::{ReadableTable, Table, WriteTransaction};

use super::events::{EventIndexes, decode_meta};
use super::names::Names;
use crate::ids::first_id_at;
use crate::store::backend::Retention;

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
    // Every application's id, whatever its mode.
    let apps: Vec<u128> =
        tx.open_table(tables::APPS)?.iter()?.map(|row| row.map(|(k, _)| k.value().1)).collect::<Result<_, _>>()?;
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
    fn prune(&self, cutoffs: Cutoffs, cursor: &mut PruneCursor, limit: usize) -> Result<Pruned, StoreError> {
        let mut next = cursor.clone();
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
        *cursor = next;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::backend::Apps;
    use crate::store::backend::Endpoints;
    use crate::store::backend::Events;
    use crate::store::backend::Idempotency;
    use crate::store::backend::Scheduling;
    use crate::store::backend::Sessions;
    use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

    use super::*;
    use crate::clock::unix_now_ms;
    use crate::mode::Mode;
    use crate::store::model::SessionStatus;
    use std::time::Duration;

    use crate::delivery::policy::Policy;
    use crate::store::model::AttemptResult;
    use crate::store::model::EndpointRecord;
    use crate::store::model::NewEvent;

    fn count<K: redb::Key + 'static, V: redb::Value + 'static>(store: &RedbStore, table: TableDefinition<K, V>) -> u64 {
        store.read(|tx| Ok(tx.open_table(table)?.len()?)).unwrap()
    }

    #[test]
    fn a_pass_in_small_batches_removes_every_trace_of_finished_history_and_keeps_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let endpoint = EndpointRecord::for_test(store.test_owner(Mode::Test), "http://127.0.0.1:9/", "*");
        store.insert_endpoint(&endpoint).unwrap();
        let now = unix_now_ms();
        let events: Vec<NewEvent> = (0..7)
            .map(|n| {
                crate::payload::new_event(
                    store.test_owner(Mode::Test),
                    "a.b",
                    &serde_json::json!({ "n": n }),
                    crate::clock::unix_now_ms(),
                )
                .unwrap()
            })
            .collect();
        let (_, scheduled) = store.publish_events(&events, now).unwrap();
        let keys = scheduled.keys();
        // Six attempts finish (three succeed, three fail for good); one stays pending.
        let results: Vec<AttemptResult> = keys[..6]
            .iter()
            .enumerate()
            .map(|(n, key)| AttemptResult::for_test(*key, endpoint.id, n % 2 == 0, now - 120_000))
            .collect();
        // No window for undelivered payloads: the failed events go with the rest.
        let policy = Policy { schedule: vec![], disable_after: Duration::from_secs(3600), undelivered_hours: 0 };
        store.publish_and_record(&[], &results, now, &policy).unwrap();
        let record = IdempotencyRecord { fingerprint: "f".into(), status: 200, body: "{}".into(), created: 10 };
        store.put_idempotency_record(store.test_owner(Mode::Test), "old-key", &record).unwrap();
        assert_eq!(count(&store, tables::FAILED_ATTEMPTS), 3);
        assert_eq!(count(&store, tables::ENDPOINT_FAILURES), 3);
        assert_eq!(count(&store, tables::DELIVERY_STATS), 2);
        let counted: Vec<u64> = store
            .read(|tx| {
                let stats = tx.open_table(tables::DELIVERY_STATS)?;
                Ok(stats.iter()?.map(|e| e.unwrap().1.value()).collect())
            })
            .unwrap();
        assert_eq!(counted, [3, 3], "one batch's outcomes summed per minute, endpoint and outcome");

        let cutoffs = Cutoffs { history_ms: unix_now_ms() + 1, idempotency_secs: 11, now_ms: unix_now_ms() };
        let mut cursor = PruneCursor::default();
        let mut passes = 0;
        let mut total = Pruned::default();
        loop {
            let pruned = store.prune(cutoffs, &mut cursor, 2).unwrap();
            total += pruned;
            passes += 1;
            if !pruned.more {
                break;
            }
            assert!(passes < 20, "a pass ends");
        }
        assert!(passes >= 3, "batches of 2 take several transactions, took {passes}");
        assert_eq!(total.removed(), 6 + 6 + 2 + 1, "6 attempts, 6 events, 2 stats rows, 1 idempotency record");
        assert_eq!((total.attempts, total.events, total.stats, total.idempotency), (6, 6, 2, 1));
        assert_eq!(count(&store, tables::ATTEMPTS), 1, "the pending attempt stays");
        assert_eq!(count(&store, tables::ENDPOINT_ATTEMPTS), 1);
        assert_eq!(count(&store, tables::EVENT_ATTEMPTS), 1);
        assert_eq!(count(&store, tables::FAILED_ATTEMPTS), 0);
        assert_eq!(count(&store, tables::ENDPOINT_FAILURES), 0);
        assert_eq!(count(&store, tables::EVENTS), 1, "the event with a pending delivery stays");
        assert_eq!(count(&store, tables::EVENTS_BY_TYPE), 1, "and only its index entry");
        assert_eq!(count(&store, tables::EVENT_BODIES), 1);
        assert_eq!(count(&store, tables::DELIVERY_STATS), 0);
        assert_eq!(count(&store, tables::IDEMPOTENCY), 0);
        assert_eq!(count(&store, tables::IDEMPOTENCY_BY_AGE), 0);
        assert_eq!(count(&store, tables::QUEUE), 1);

        // A second pass finds nothing and commits nothing.
        let pruned = store.prune(cutoffs, &mut PruneCursor::default(), 2).unwrap();
        assert_eq!(pruned.removed(), 0);
    }

    #[test]
    fn an_attempt_made_after_the_cutoff_goes_with_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let owner = store.test_owner(Mode::Test);
        let endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        store.insert_endpoint(&endpoint).unwrap();
        // An event of ten minutes ago whose (only) attempt was made just now.
        let now = unix_now_ms();
        let event = crate::payload::new_event(owner, "a.b", &serde_json::json!({}), now - 600_000).unwrap();
        let (_, scheduled) = store.publish_events(&[event], now).unwrap();
        let result = AttemptResult::for_test(scheduled.keys()[0], endpoint.id, true, now);
        let policy = Policy { schedule: vec![], disable_after: Duration::from_secs(3600), undelivered_hours: 0 };
        store.publish_and_record(&[], &[result], now, &policy).unwrap();

        let cutoffs = Cutoffs { history_ms: now - 300_000, idempotency_secs: 0, now_ms: now };
        let pruned = store.prune(cutoffs, &mut PruneCursor::default(), 100).unwrap();
        assert_eq!((pruned.events, pruned.attempts), (1, 1));
        assert_eq!(count(&store, tables::ATTEMPTS), 0, "an attempt outlived its event");
        assert_eq!(count(&store, tables::ENDPOINT_ATTEMPTS), 0);
        assert_eq!(count(&store, tables::EVENT_ATTEMPTS), 0);
    }

    #[test]
    fn an_undelivered_payload_outlives_retention_for_its_endpoints_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let owner = store.test_owner(Mode::Test);
        let mut endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        endpoint.undelivered_retention_hours = Some(2);
        store.insert_endpoint(&endpoint).unwrap();
        let now = unix_now_ms();
        let events: Vec<NewEvent> = (0..2)
            .map(|n| {
                crate::payload::new_event(owner, "a.b", &serde_json::json!({ "n": n }), crate::clock::unix_now_ms())
                    .unwrap()
            })
            .collect();
        let (_, scheduled) = store.publish_events(&events, now).unwrap();
        // One succeeds, one fails for good (no retries in this schedule).
        let results: Vec<AttemptResult> = scheduled
            .keys()
            .iter()
            .enumerate()
            .map(|(n, key)| AttemptResult::for_test(*key, endpoint.id, n == 0, now))
            .collect();
        let policy = Policy { schedule: vec![], disable_after: Duration::from_secs(3600), undelivered_hours: 72 };
        store.publish_and_record(&[], &results, now, &policy).unwrap();
        assert_eq!(count(&store, tables::UNDELIVERED_HOLDS), 1, "only the failed delivery holds its payload");

        // Past the general retention, within the endpoint's 2 hours: only the held one stays.
        let hour = 3_600_000;
        let at = |now_ms: u64| Cutoffs { history_ms: now_ms, idempotency_secs: 0, now_ms };
        let pruned = store.prune(at(now + hour), &mut PruneCursor::default(), 10).unwrap();
        assert_eq!(pruned.events, 1);
        assert_eq!(count(&store, tables::EVENT_BODIES), 1);
        let held = store.event(owner, events[1].meta.id).unwrap();
        assert!(held.is_some_and(|e| e.body == events[1].body), "the undelivered payload is still readable");
        // Once the window has passed it goes, hold and all.
        let pruned = store.prune(at(now + 2 * hour), &mut PruneCursor::default(), 10).unwrap();
        assert_eq!(pruned.events, 1);
        assert_eq!(count(&store, tables::EVENT_BODIES), 0);
        assert_eq!(count(&store, tables::UNDELIVERED_HOLDS), 0);
    }

    #[test]
    fn ended_verification_sessions_are_pruned_and_open_ones_kept_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let now = unix_now_ms();
        let expires_ms = now + 3_600_000;
        let mut sessions = Vec::new();
        for (n, status) in SessionStatus::ALL.into_iter().enumerate() {
            let live = n % 2 == 1;
            let session = SessionRecord {
                id: crate::ids::VerificationSessionId::new(),
                app: store.test_owner(if live { Mode::Live } else { Mode::Test }).app,
                status,
                session_type: crate::store::model::sessions::SessionType::Identity,
                client_reference_id: None,
                livemode: live,
                expires_at: (expires_ms / 1000) as i64,
                completed_at: None,
                created: (now / 1000) as i64,
                metadata: Default::default(),
            };
            let event = crate::lifecycle::created(&session, (now / 1000) as i64).unwrap();
            store.create_session(&session, &event, expires_ms, now).unwrap();
            sessions.push(session);
        }
        let prune_all = || {
            let cutoffs = Cutoffs { history_ms: unix_now_ms() + 1, idempotency_secs: 0, now_ms: unix_now_ms() };
            let mut cursor = PruneCursor::default();
            let mut removed = 0;
            for _ in 0..20 {
                let pruned = store.prune(cutoffs, &mut cursor, 1).unwrap();
                removed += pruned.sessions;
                if !pruned.more {
                    return removed;
                }
            }
            panic!("a pass ends");
        };

        assert_eq!(prune_all(), 4, "the four ended sessions go");
        for session in &sessions {
            let found = store.session(session.owner(), session.id).unwrap();
            assert_eq!(found.is_some(), session.is_open(), "{}", session.status);
        }
        assert_eq!(count(&store, tables::SESSION_EXPIRY), 6, "expiry entries are the expirer's to drop");

        // When due, the expirer expires the open sessions and drops the pruned ones' entries;
        // once expired, the next pass prunes those too.
        let expire = |s: &mut SessionRecord| crate::lifecycle::Move::Expire.apply(s, (expires_ms / 1000) as i64);
        let (expired, _) = store.expire_due_sessions(expires_ms, 100, expire).unwrap();
        assert_eq!(expired, 2);
        assert_eq!(count(&store, tables::SESSION_EXPIRY), 0);
        assert_eq!(prune_all(), 2);
        assert_eq!(count(&store, tables::VERIFICATION_SESSIONS), 0);
    }

    #[test]
    fn a_key_stored_again_after_expiry_keeps_its_new_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let old = IdempotencyRecord { fingerprint: "a".into(), status: 200, body: "{}".into(), created: 10 };
        let new = IdempotencyRecord { created: 5_000, ..old.clone() };
        store.put_idempotency_record(store.test_owner(Mode::Live), "k", &old).unwrap();
        store.put_idempotency_record(store.test_owner(Mode::Live), "k", &new).unwrap();
        let pruned = store
            .prune(Cutoffs { history_ms: 0, idempotency_secs: 100, now_ms: 0 }, &mut PruneCursor::default(), 10)
            .unwrap();
        assert_eq!(pruned.idempotency, 0);
        assert_eq!(store.idempotency_record(store.test_owner(Mode::Live), "k").unwrap(), Some(new));
        assert_eq!(pruned.stale_entries, 1);
        assert_eq!(count(&store, tables::IDEMPOTENCY_BY_AGE), 1, "only the stale index entry went");
    }
}
