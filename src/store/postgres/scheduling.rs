//! The writes on Postgres that put attempts on the queue or take them off: the writer's
//! combined commit, parking, enabling and deleting endpoints, retrying now.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::GenericClient;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::backend::Scheduling;
use crate::store::model::{
    AttemptRecord, AttemptResult, AttemptStatus, EndpointRecord, EndpointUpdated, NewEvent, Owner, QueueKey,
    RecordPolicy, RetryNow, Scheduled, StoreError, Written,
};
use crate::store::rules::cancel::{CancelTx, end_pending};
use crate::store::rules::park::{ParkTx, park};
use crate::store::rules::resume::{EndpointChangeTx, update_and_resume};
use crate::store::rules::retry::{RetryNowTx, retry_now};
use crate::store::rules::unpark::{UnparkTx, unpark};

use super::attempts::{Writes, lock_attempts, record_in, status_code};
use super::cached::Cached;
use super::cluster::QUEUE_CHANNEL;
use super::endpoints::{Lock, get_in, refile, update_in};
use super::events::{publish_heard_in, publish_in};
use super::listeners::listener_holder;
use super::{PgStore, Tx, id_of, uuid};

/// Puts the parked attempts of enabled endpoints (all but listeners, or just `only`)
/// back on the queue at `now_ms` (see [`rules::unpark`](crate::store::rules::unpark)).
async fn unpark_in(
    client: &impl GenericClient,
    store: &PgStore,
    only: Option<EndpointId>,
    now_ms: u64,
) -> Result<Scheduled, StoreError> {
    unpark(&mut Tx { client, store }, only, now_ms).await
}

impl<C: GenericClient> UnparkTx for Tx<'_, C> {
    async fn parked(&mut self, only: Option<EndpointId>) -> Result<Vec<(AppId, EndpointId, DeliveryId)>, StoreError> {
        let rows = match only {
            Some(id) => {
                self.client
                    .q(
                        "SELECT attempt, app, endpoint FROM queue WHERE parked AND endpoint = $1 ORDER BY attempt",
                        &[&uuid(id.as_u128())],
                    )
                    .await?
            }
            None => {
                self.client.q("SELECT attempt, app, endpoint FROM queue WHERE parked ORDER BY attempt", &[]).await?
            }
        };
        Ok(rows
            .iter()
            .map(|row| (AppId(id_of(row.get(1))), EndpointId(id_of(row.get(2))), DeliveryId(id_of(row.get(0)))))
            .collect())
    }

    /// Takes a key-share lock on its row, which a deletion waits for.
    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        get_in(self.client, app, id, Lock::KeyShare).await
    }

    async fn requeue(&mut self, ids: &[DeliveryId], now_ms: u64) -> Result<Scheduled, StoreError> {
        let mut writes = Writes::new(&self.store.token);
        let mut scheduled = Scheduled::default();
        for (_, mut record) in lock_attempts(self.client, ids).await? {
            writes.enqueue(&record, now_ms, false);
            record.due_ms = now_ms;
            scheduled.push(QueueKey::new(now_ms, record.id));
            writes.save(record);
        }
        writes.flush(self.client).await?;
        Ok(scheduled)
    }
}

/// An endpoint's deliveries being ended, as [`rules::cancel`](crate::store::rules::cancel)
/// uses them: the attempts read (locked) in the transaction, the rows gathered in `writes`.
pub(super) struct Ending<'a, C> {
    pub(super) client: &'a C,
    pub(super) writes: &'a mut Writes,
}

impl<C: GenericClient> CancelTx for Ending<'_, C> {
    async fn take_pending(&mut self, endpoint: EndpointId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = self.client.q("SELECT attempt FROM queue WHERE endpoint = $1", &[&uuid(endpoint.as_u128())]).await?;
        let ids: Vec<DeliveryId> = rows.iter().map(|row| DeliveryId(id_of(row.get(0)))).collect();
        let attempts = lock_attempts(self.client, &ids).await?;
        for id in &ids {
            self.writes.unqueue(*id);
        }
        Ok(attempts.into_values().filter(|record| record.status == AttemptStatus::Pending).collect())
    }

    fn store_ended(&mut self, record: AttemptRecord) -> Result<(), StoreError> {
        self.writes.add_pending(record.app, record.event_id, -1);
        self.writes.note_outcome(&record);
        self.writes.save(record);
        Ok(())
    }
}

/// Settings of the writer's transactions. Its statements are the same dozen, hundreds of
/// times a second, each finding rows by key: planned once per connection (a generic
/// plan), not at every execution (planning was two thirds of the database's time per
/// delivery at 200 events/s). A plan is made once, possibly while the tables are still
/// empty, when a sequential scan looks as cheap as an index and would then be kept as the
/// tables grow: so only index scans are considered (every statement has one that fits).
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

impl Scheduling for PgStore {
    async fn update_endpoint_and_resume(
        &self,
        owner: Owner,
        id: EndpointId,
        now_ms: u64,
        resume: bool,
        change: impl FnOnce(&mut EndpointRecord) + Send + 'static,
    ) -> Result<Option<EndpointUpdated>, StoreError> {
        transaction_once!(self, |tx| {
            update_and_resume(&mut Tx { client: tx, store: self }, owner, id, now_ms, resume, change).await
        })
        .await
    }

    async fn delete_endpoint(&self, owner: Owner, id: EndpointId, now: i64) -> Result<bool, StoreError> {
        transaction!(self, |tx| {
            let Some(removed) = get_in(tx, owner.app, id, Lock::Delete).await? else { return Ok(false) };
            let (app, endpoint) = (uuid(owner.app.as_u128()), uuid(id.as_u128()));
            tx.exec("DELETE FROM endpoints WHERE app = $1 AND id = $2", &[&app, &endpoint]).await?;
            refile(tx, owner.app, id, None).await?;
            if let Some(listener) = &removed.listener
                && let Ok(hash) = hex::decode(&listener.key_hash)
            {
                tx.exec("DELETE FROM listeners WHERE app = $1 AND key_hash = $2", &[&app, &hash]).await?;
            }
            let mut writes = Writes::new(&self.token);
            end_pending(&mut Ending { client: tx, writes: &mut writes }, id, "endpoint deleted", now).await?;
            writes.flush(tx).await?;
            Ok(true)
        })
        .await
    }

    async fn publish_and_record(
        &self,
        events: Arc<[NewEvent]>,
        results: Arc<[AttemptResult]>,
        now_ms: u64,
        policy: impl RecordPolicy + Send + Sync + 'static,
    ) -> Result<Written, StoreError> {
        transaction!(self, |tx| {
            let mut writes = match self.bears_births.load(std::sync::atomic::Ordering::Relaxed) {
                true => Writes::bearing(&self.token, self.claim_lease),
                false => Writes::new(&self.token),
            };
            // The settings go in the round trip of the first statement, which they precede.
            let (set, publishing) = futures_util::join!(
                tx.batch_execute(GENERIC_PLANS),
                publish_in(tx, self, &events, now_ms, &mut writes)
            );
            set?;
            let (published, first_attempts) = publishing?;
            let mut recorded = record_in(tx, &self.sealer, &results, now_ms, &policy, &mut writes).await?;
            // What the platform is told of is committed with what it tells of.
            let told = publish_heard_in(tx, self, &recorded.told, now_ms, &mut writes).await?;
            recorded.scheduled.extend(told);
            writes.flush(tx).await?;
            Ok(Written { published, first_attempts, recorded })
        })
        .await
    }

    async fn retry_now(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
        now_ms: u64,
    ) -> Result<RetryNow, StoreError> {
        transaction!(self, |tx| retry_now(&mut Tx { client: tx, store: self }, owner, endpoint, id, now_ms).await).await
    }

    /// Takes entries whose endpoint is not `deliverable` off the queue (parked); entries
    /// whose attempt is no longer pending just go; the rest stay and are returned. An
    /// entry for a listener endpoint whose CLI another live process holds is handed to
    /// that process instead (reserved for it, which it is woken to claim).
    async fn park(
        &self,
        keys: Vec<QueueKey>,
        deliverable: impl Fn(&EndpointRecord) -> bool + Send + Sync + 'static,
    ) -> Result<Scheduled, StoreError> {
        transaction!(self, |tx| {
            let parking =
                Parking { client: tx, store: self, writes: Writes::new(&self.token), kept: vec![], handed: vec![] };
            park(parking, &keys, &deliverable).await
        })
        .await
    }

    async fn unpark(&self, now_ms: u64) -> Result<Scheduled, StoreError> {
        transaction!(self, |tx| unpark_in(tx, self, None, now_ms).await).await
    }

    async fn unpark_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError> {
        transaction!(self, |tx| unpark_in(tx, self, Some(id), now_ms).await).await
    }
}

impl<C: GenericClient> EndpointChangeTx for Tx<'_, C> {
    async fn update_endpoint(
        &mut self,
        app: AppId,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<EndpointRecord>, StoreError> {
        update_in(self.client, app, id, change).await
    }

    async fn reset_health(&mut self, id: EndpointId) -> Result<(), StoreError> {
        self.client.exec("DELETE FROM endpoint_health WHERE endpoint = $1", &[&uuid(id.as_u128())]).await?;
        Ok(())
    }

    async fn unpark(&mut self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError> {
        unpark_in(self.client, self.store, Some(id), now_ms).await
    }
}

impl<C: GenericClient> RetryNowTx for Tx<'_, C> {
    /// Locks the attempt's row.
    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        Ok(lock_attempts(self.client, &[id]).await?.remove(&id))
    }

    async fn queued_retry_of(&mut self, failed: &AttemptRecord) -> Result<Option<AttemptRecord>, StoreError> {
        let row = self
            .client
            .q_opt(
                "SELECT a.id FROM attempts a JOIN queue q ON q.attempt = a.id
                 WHERE a.event = $1 AND a.endpoint = $2 AND a.attempt = $3 AND a.status = $4",
                &[
                    &uuid(failed.event_id.as_u128()),
                    &uuid(failed.endpoint_id.as_u128()),
                    &((failed.attempt + 1) as i32),
                    &status_code(AttemptStatus::Pending),
                ],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        self.attempt(DeliveryId(id_of(row.get(0)))).await
    }

    async fn is_parked(&mut self, attempt: &AttemptRecord) -> Result<bool, StoreError> {
        let row =
            self.client.q_opt("SELECT parked FROM queue WHERE attempt = $1", &[&uuid(attempt.id.as_u128())]).await?;
        Ok(row.is_some_and(|row| row.get(0)))
    }

    async fn requeue(&mut self, _before: QueueKey, attempt: &AttemptRecord) -> Result<QueueKey, StoreError> {
        let mut writes = Writes::new(&self.store.token);
        writes.enqueue(attempt, attempt.due_ms, false);
        writes.save(attempt.clone());
        writes.flush(self.client).await?;
        Ok(attempt.queue_key())
    }
}

/// Parking on Postgres: the writes, the claims to give back and the entries to hand to
/// other processes, gathered and made at the end.
struct Parking<'a, C> {
    client: &'a C,
    store: &'a PgStore,
    writes: Writes,
    /// Entries left queued, to be looked at again: this process's claims on them go.
    kept: Vec<uuid::Uuid>,
    /// Entries reserved for the process holding their listener endpoint's connection.
    handed: Vec<(uuid::Uuid, String)>,
}

impl<C: GenericClient> ParkTx for Parking<'_, C> {
    /// Locks their rows.
    async fn attempts(&mut self, ids: &[DeliveryId]) -> Result<HashMap<DeliveryId, AttemptRecord>, StoreError> {
        lock_attempts(self.client, ids).await
    }

    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        get_in(self.client, app, id, Lock::Read).await
    }

    async fn other_holder(&mut self, id: EndpointId) -> Result<Option<String>, StoreError> {
        listener_holder(self.client, id, &self.store.token).await
    }

    fn unqueue(&mut self, key: QueueKey) -> Result<(), StoreError> {
        self.writes.unqueue(key.attempt());
        Ok(())
    }

    fn keep(&mut self, key: QueueKey) {
        self.kept.push(uuid(key.attempt().as_u128()));
    }

    fn hand_to(&mut self, key: QueueKey, holder: String) {
        self.handed.push((uuid(key.attempt().as_u128()), holder));
    }

    fn park(&mut self, attempt: &AttemptRecord, _key: QueueKey) -> Result<(), StoreError> {
        self.writes.enqueue(attempt, attempt.due_ms, true);
        Ok(())
    }

    /// Writes the parked entries, gives back the claims on those kept, and reserves the
    /// handed ones for their holders (waking them).
    async fn finish(self) -> Result<(), StoreError> {
        let Parking { client, store, writes, kept, handed } = self;
        writes.flush(client).await?;
        client.exec("UPDATE queue SET locked_until_ms = NULL WHERE attempt = ANY($1)", &[&kept]).await?;
        if !handed.is_empty() {
            let (attempts, holders): (Vec<uuid::Uuid>, Vec<String>) = handed.into_iter().unzip();
            client
                .exec(
                    "UPDATE queue q SET reserved_for = h.holder, locked_until_ms = NULL
                     FROM unnest($1::uuid[], $2::text[]) AS h(attempt, holder) WHERE q.attempt = h.attempt",
                    &[&attempts, &holders],
                )
                .await?;
            client.exec("SELECT pg_notify($1, $2)", &[&QUEUE_CHANNEL, &store.token]).await?;
        }
        Ok(())
    }
}
