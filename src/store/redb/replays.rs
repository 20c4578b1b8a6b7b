//! Replays in the data file: their records, the set of those still watched, and which
//! deliveries each sent (while it is watched), so its outcomes can be counted.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use crate::ids::{AppId, EndpointId, EventId, ReplayId};
use crate::store::backend::Replays;
use crate::store::model::{
    AttemptStatus, DeliveryState, ListError, Owner, Page, PageRequest, ReplayRecord, ReplayStep, ReplayStepped,
    StoreError,
};
use crate::store::rules;
use crate::store::rules::replay::{ReplayTx, settle, step};

use super::attempt_record::{attempt_in, outcome_in};
use super::pagination::list_page;
use super::{RedbStore, Tx, attempts, decode, decode_found, encode, tables};

const TABLE: &str = "replays";

/// Reads a replay of `app` inside `tx`.
fn get_in(tx: &WriteTransaction, app: AppId, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError> {
    decode_found(TABLE, tx.open_table(tables::REPLAYS)?.get((app.as_u128(), id.as_u128()))?)
}

/// Saves a replay inside `tx`: in the watched set while it is watched; once it is not,
/// the record of the deliveries it sent goes.
fn save_in(tx: &WriteTransaction, record: &ReplayRecord) -> Result<(), StoreError> {
    let key = (record.app.as_u128(), record.id.as_u128());
    tx.open_table(tables::REPLAYS)?.insert(key, encode(TABLE, record)?.as_slice())?;
    let mut watched = tx.open_table(tables::WATCHED_REPLAYS)?;
    if record.watching {
        watched.insert(key, ())?;
    } else if watched.remove(key)?.is_some() {
        remove_deliveries_in(tx, record.id)?;
    }
    Ok(())
}

/// Removes the record of which deliveries replay `id` sent, inside `tx`.
fn remove_deliveries_in(tx: &WriteTransaction, id: ReplayId) -> Result<(), StoreError> {
    let id = id.as_u128();
    tx.open_table(tables::REPLAY_DELIVERIES)?.retain_in((id, 0, 0)..=(id, u128::MAX, u128::MAX), |_, _| false)?;
    Ok(())
}

/// Removes every replay of an application (it is being deleted), inside `tx`; how many.
pub(super) fn remove_all_in(tx: &WriteTransaction, app: AppId) -> Result<usize, StoreError> {
    let app = app.as_u128();
    let ids: Vec<u128> = {
        let replays = tx.open_table(tables::REPLAYS)?;
        replays
            .range((app, 0)..=(app, u128::MAX))?
            .map(|row| row.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?
    };
    for id in &ids {
        remove_deliveries_in(tx, ReplayId(*id))?;
        tx.open_table(tables::WATCHED_REPLAYS)?.remove((app, *id))?;
        tx.open_table(tables::REPLAYS)?.remove((app, *id))?;
    }
    Ok(ids.len())
}

impl Replays for RedbStore {
    async fn insert_replay(&self, record: ReplayRecord) -> Result<(), StoreError> {
        self.write(|tx| save_in(tx, &record))
    }

    async fn replay(&self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError> {
        self.read(|tx| decode_found(TABLE, tx.open_table(tables::REPLAYS)?.get((owner.app.as_u128(), id.as_u128()))?))
    }

    async fn list_replays(
        &self,
        owner: Owner,
        request: PageRequest<ReplayId>,
    ) -> Result<Page<ReplayRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let table = tx.open_table(tables::REPLAYS).map_err(StoreError::from)?;
            list_page(&table, TABLE, owner.app.as_u128(), request, |_| true)
        })
    }

    async fn change_replay(
        &self,
        owner: Owner,
        id: ReplayId,
        change: impl FnOnce(&mut ReplayRecord) + Send + 'static,
    ) -> Result<Option<ReplayRecord>, StoreError> {
        self.write(|tx| {
            let Some(mut record) = get_in(tx, owner.app, id)? else { return Ok(None) };
            change(&mut record);
            save_in(tx, &record)?;
            Ok(Some(record))
        })
    }

    async fn watched_replays(&self) -> Result<Vec<ReplayRecord>, StoreError> {
        self.read(|tx| {
            let (watched, replays) = (tx.open_table(tables::WATCHED_REPLAYS)?, tx.open_table(tables::REPLAYS)?);
            let mut found = Vec::new();
            for row in watched.iter()? {
                let key = row?.0.value();
                if let Some(bytes) = replays.get(key)? {
                    found.push(decode(TABLE, bytes.value())?);
                }
            }
            Ok(found)
        })
    }

    async fn settle_replay(
        &self,
        owner: Owner,
        id: ReplayId,
        now: i64,
    ) -> Result<Option<(ReplayRecord, u64)>, StoreError> {
        self.write(|tx| rules::settle(settle(&mut Tx { tx, store: self }, owner, id, now)))
    }

    async fn delivery_states(
        &self,
        owner: Owner,
        events: Vec<EventId>,
        now_ms: u64,
    ) -> Result<Vec<(EventId, EndpointId, DeliveryState)>, StoreError> {
        self.read(|tx| {
            let (by_event, all) = (tx.open_table(tables::EVENT_ATTEMPTS)?, tx.open_table(tables::ATTEMPTS)?);
            let skipped = tx.open_table(tables::SKIPPED_DELIVERIES)?;
            let app = owner.app.as_u128();
            let mut states = Vec::new();
            for event in events {
                let latest = attempts::latest_per_endpoint(&by_event, &all, event)?;
                let e = event.as_u128();
                for row in skipped.range((app, e, 0)..=(app, e, u128::MAX))? {
                    let (key, until) = row?;
                    let endpoint = EndpointId(key.value().2);
                    if until.value() > now_ms && !latest.contains_key(&endpoint) {
                        states.push((event, endpoint, DeliveryState::Skipped));
                    }
                }
                states.extend(
                    latest
                        .into_iter()
                        .map(|(endpoint, (status, _))| (event, endpoint, DeliveryState::Attempted(status))),
                );
            }
            Ok(states)
        })
    }

    async fn replay_step(
        &self,
        owner: Owner,
        id: ReplayId,
        replay: ReplayStep,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<ReplayStepped, StoreError> {
        self.write(|tx| rules::settle(step(&mut Tx { tx, store: self }, owner, id, replay, now_ms, default_hours)))
    }
}

impl ReplayTx for Tx<'_> {
    async fn replay_for_update(&mut self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError> {
        get_in(self.tx, owner.app, id)
    }

    async fn save_replay(&mut self, record: &ReplayRecord) -> Result<(), StoreError> {
        save_in(self.tx, record)
    }

    async fn note_replayed(
        &mut self,
        replay: ReplayId,
        event: EventId,
        endpoint: EndpointId,
    ) -> Result<(), StoreError> {
        let key = (replay.as_u128(), event.as_u128(), endpoint.as_u128());
        self.tx.open_table(tables::REPLAY_DELIVERIES)?.insert(key, ())?;
        Ok(())
    }

    async fn replayed(
        &mut self,
        replay: ReplayId,
    ) -> Result<Vec<(EventId, EndpointId, Option<(AttemptStatus, u32)>)>, StoreError> {
        let (by_event, all) = (self.tx.open_table(tables::EVENT_ATTEMPTS)?, self.tx.open_table(tables::ATTEMPTS)?);
        let id = replay.as_u128();
        let mut found = Vec::new();
        for row in self.tx.open_table(tables::REPLAY_DELIVERIES)?.range((id, 0, 0)..=(id, u128::MAX, u128::MAX))? {
            let (_, event, endpoint) = row?.0.value();
            // Attempt ids grow with time: the last of the endpoint's is its latest.
            let mut latest = None;
            for entry in by_event.range((event, 0)..=(event, u128::MAX))? {
                let attempt = entry?.0.value().1;
                if outcome_in(&all, attempt)?.is_some_and(|(to, ..)| to.as_u128() == endpoint) {
                    latest = Some(attempt);
                }
            }
            let latest = match latest {
                Some(attempt) => attempt_in(&all, attempt, &self.store.names)?.map(|r| (r.status, r.attempt)),
                None => None,
            };
            found.push((EventId(event), EndpointId(endpoint), latest));
        }
        Ok(found)
    }

    async fn forget_replayed(&mut self, replay: ReplayId, done: &[(EventId, EndpointId)]) -> Result<(), StoreError> {
        let mut deliveries = self.tx.open_table(tables::REPLAY_DELIVERIES)?;
        for (event, endpoint) in done {
            deliveries.remove((replay.as_u128(), event.as_u128(), endpoint.as_u128()))?;
        }
        Ok(())
    }
}
