//! Writes that put attempts on the queue or take them off, beyond publishing: the
//! writer's combined commit, enabling and deleting endpoints, running a retry now, and
//! parking. Each answers with what it queued ([`Scheduled`]); the delivery engine, the
//! only caller, wakes its scheduler with it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::backend::Scheduling;
use crate::store::model::{
    AttemptRecord, AttemptResult, EndpointRecord, EndpointUpdated, NewEvent, Owner, QueueKey, RecordPolicy, RetryNow,
    Scheduled, StoreError, Written,
};
use crate::store::rules;
use crate::store::rules::cancel::end_pending;
use crate::store::rules::park::{ParkTx, park};
use crate::store::rules::resume::{EndpointChangeTx, update_and_resume};
use crate::store::rules::retry::{RetryNowTx, retry_now};
use crate::store::rules::unpark::{UnparkTx, unpark};

use super::attempts::{DeliveryTables, record_in};
use super::events::{publish_heard_in, publish_in};
use super::names::Names;
use super::{RedbStore, Tx, endpoints, health, tables};

/// Puts the parked attempts of enabled endpoints (all but listeners, or just `only`) back
/// on the queue at `now_ms` (see [`rules::unpark`]).
fn unpark_in(
    tx: &redb::WriteTransaction,
    names: &Names,
    only: Option<EndpointId>,
    now_ms: u64,
) -> Result<Scheduled, StoreError> {
    rules::settle(unpark(&mut Parking::open(tx, names)?, only, now_ms))
}

impl Scheduling for RedbStore {
    async fn update_endpoint_and_resume(
        &self,
        owner: Owner,
        id: EndpointId,
        now_ms: u64,
        resume: bool,
        change: impl FnOnce(&mut EndpointRecord) + Send + 'static,
    ) -> Result<Option<EndpointUpdated>, StoreError> {
        self.write(|tx| {
            rules::settle(update_and_resume(&mut Tx { tx, store: self }, owner, id, now_ms, resume, change))
        })
    }

    async fn delete_endpoint(&self, owner: Owner, id: EndpointId, now: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            let Some(removed) = table.remove((owner.app.as_u128(), id.as_u128()))? else {
                return Ok(false);
            };
            let removed: EndpointRecord = super::decode(endpoints::TABLE, removed.value())?;
            endpoints::reindex_in(tx, Some(&removed), None)?;
            if let Some(listener) = &removed.listener {
                super::listeners::forget_in(tx, owner.app, &listener.key_hash)?;
            }
            let mut deliveries = DeliveryTables::open(tx, &self.names)?;
            rules::settle(end_pending(&mut deliveries, id, "endpoint deleted", now))?;
            Ok(true)
        })
    }

    async fn publish_and_record(
        &self,
        events: Arc<[NewEvent]>,
        results: Arc<[AttemptResult]>,
        now_ms: u64,
        policy: impl RecordPolicy + Send + Sync + 'static,
    ) -> Result<Written, StoreError> {
        self.write(|tx| {
            let (published, first_attempts) = publish_in(tx, self, &events, now_ms)?;
            let mut recorded = record_in(tx, &self.sealer, &self.names, &results, now_ms, &policy)?;
            // What the platform is told of is committed with what it tells of.
            let told = publish_heard_in(tx, self, &recorded.told, now_ms)?;
            recorded.scheduled.extend(told);
            Ok(Written { published, first_attempts, recorded })
        })
    }

    async fn retry_now(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
        now_ms: u64,
    ) -> Result<RetryNow, StoreError> {
        self.write(|tx| {
            rules::settle(retry_now(&mut DeliveryTables::open(tx, &self.names)?, owner, endpoint, id, now_ms))
        })
    }

    /// Takes queue entries the scheduler will not send off the queue: pending attempts of
    /// an endpoint that is not `deliverable` (disabled, or a listener endpoint no CLI is
    /// connected for) wait, parked, until it is enabled or connected; entries whose
    /// attempt is no longer pending just go. Entries whose endpoint became deliverable
    /// meanwhile stay queued and are returned, to be looked at again.
    async fn park(
        &self,
        keys: Vec<QueueKey>,
        deliverable: impl Fn(&EndpointRecord) -> bool + Send + Sync + 'static,
    ) -> Result<Scheduled, StoreError> {
        self.write(|tx| rules::settle(park(Parking::open(tx, &self.names)?, &keys, deliverable)))
    }

    /// Puts the parked attempts of every enabled endpoint back on the queue, due at
    /// `now_ms` (at start-up). Listener endpoints' attempts stay parked: no CLI is
    /// connected yet.
    async fn unpark(&self, now_ms: u64) -> Result<Scheduled, StoreError> {
        self.write(|tx| unpark_in(tx, &self.names, None, now_ms))
    }

    async fn unpark_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError> {
        self.write(|tx| unpark_in(tx, &self.names, Some(id), now_ms))
    }
}

impl EndpointChangeTx for Tx<'_> {
    async fn update_endpoint(
        &mut self,
        app: AppId,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<EndpointRecord>, StoreError> {
        endpoints::update_in(self.tx, app, id, change)
    }

    async fn reset_health(&mut self, id: EndpointId) -> Result<(), StoreError> {
        health::reset(self.tx, id)
    }

    async fn unpark(&mut self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError> {
        unpark_in(self.tx, &self.store.names, Some(id), now_ms)
    }
}

impl RetryNowTx for DeliveryTables<'_, '_> {
    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        self.load(id)
    }

    async fn queued_retry_of(&mut self, failed: &AttemptRecord) -> Result<Option<AttemptRecord>, StoreError> {
        for candidate in self.queue.pending_of(failed.endpoint_id)? {
            if let Some(record) = self.load(candidate)?
                && record.event_id == failed.event_id
                && record.attempt == failed.attempt + 1
            {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    async fn is_parked(&mut self, attempt: &AttemptRecord) -> Result<bool, StoreError> {
        self.queue.is_parked(attempt.endpoint_id, attempt.id)
    }

    async fn requeue(&mut self, before: QueueKey, attempt: &AttemptRecord) -> Result<QueueKey, StoreError> {
        let key = self.queue.reschedule(attempt.app, attempt.endpoint_id, before, attempt.due_ms)?;
        self.save(attempt)?;
        Ok(key)
    }
}

/// Parking and unparking on redb: the delivery tables and the endpoints, written as it
/// goes.
struct Parking<'txn, 'n> {
    endpoints: redb::Table<'txn, (u128, u128), &'static [u8]>,
    t: DeliveryTables<'txn, 'n>,
    /// The parked attempts [`UnparkTx::parked`] read, kept for [`UnparkTx::requeue`]
    /// (read once, not twice).
    parked: HashMap<DeliveryId, AttemptRecord>,
}

impl<'txn, 'n> Parking<'txn, 'n> {
    /// Opens the tables parking and unparking use.
    fn open(tx: &'txn redb::WriteTransaction, names: &'n Names) -> Result<Self, StoreError> {
        Ok(Parking {
            endpoints: tx.open_table(tables::ENDPOINTS)?,
            t: DeliveryTables::open(tx, names)?,
            parked: HashMap::new(),
        })
    }
}

impl ParkTx for Parking<'_, '_> {
    async fn attempts(&mut self, ids: &[DeliveryId]) -> Result<HashMap<DeliveryId, AttemptRecord>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.t.load(*id)? {
                found.insert(*id, record);
            }
        }
        Ok(found)
    }

    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        endpoints::get_in(&self.endpoints, app, id)
    }

    /// One process owns the file: no other holds a connection.
    async fn other_holder(&mut self, _id: EndpointId) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    fn unqueue(&mut self, key: QueueKey) -> Result<(), StoreError> {
        self.t.queue.drop_entry(key)
    }

    fn keep(&mut self, _key: QueueKey) {}

    fn hand_to(&mut self, _key: QueueKey, _holder: String) {
        unreachable!("one process owns the file: no other holds a listener")
    }

    fn park(&mut self, attempt: &AttemptRecord, key: QueueKey) -> Result<(), StoreError> {
        self.t.queue.park(attempt.endpoint_id, attempt.id, Some(key))
    }

    async fn finish(self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl UnparkTx for Parking<'_, '_> {
    async fn parked(&mut self, only: Option<EndpointId>) -> Result<Vec<(AppId, EndpointId, DeliveryId)>, StoreError> {
        let mut found = Vec::new();
        for (endpoint, attempt) in self.t.queue.parked(only)? {
            if let Some(record) = self.t.load(attempt)? {
                found.push((record.app, endpoint, attempt));
                self.parked.insert(attempt, record);
            }
        }
        Ok(found)
    }

    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        endpoints::get_in(&self.endpoints, app, id)
    }

    async fn requeue(&mut self, ids: &[DeliveryId], now_ms: u64) -> Result<Scheduled, StoreError> {
        let mut scheduled = Scheduled::default();
        for id in ids {
            let Some(mut record) = self.parked.remove(id) else { continue };
            record.due_ms = now_ms;
            self.t.save(&record)?;
            scheduled.push(self.t.queue.unpark(record.app, record.endpoint_id, record.id, now_ms)?);
        }
        Ok(scheduled)
    }
}
