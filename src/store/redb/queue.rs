//! The durable delivery queue: which pending attempt goes when, and which wait parked
//! while their endpoint is disabled. A leaf of the store: it knows tables and ids only.
//!
//! Its keys are opaque outside the store: the scheduler reads a [`QueueKey`]'s due time
//! and attempt, orders keys, and hands them back; only the store writes them. A write
//! that puts attempts on the queue answers with [`Scheduled`], which the delivery engine
//! turns into a wake-up of its scheduler.

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::backend::Queue;
use crate::store::model::{DueEntry, QueueKey, StoreError};

use super::RedbStore;
use super::tables::{self, PARKED};

/// The queue's tables inside one write transaction.
pub(super) struct QueueTables<'txn> {
    queue: Table<'txn, (u64, u128), (u128, u128)>,
    endpoint_pending: Table<'txn, (u128, u128), u64>,
    parked: Table<'txn, (u128, u128), ()>,
}

impl<'txn> QueueTables<'txn> {
    pub(super) fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            queue: tx.open_table(tables::QUEUE)?,
            endpoint_pending: tx.open_table(tables::ENDPOINT_PENDING)?,
            parked: tx.open_table(tables::PARKED_ATTEMPTS)?,
        })
    }

    /// Puts an attempt on the queue at `due_ms`.
    pub(super) fn enqueue(
        &mut self,
        app: AppId,
        endpoint: EndpointId,
        attempt: DeliveryId,
        due_ms: u64,
    ) -> Result<QueueKey, StoreError> {
        let key = QueueKey::new(due_ms, attempt);
        self.queue.insert(key.row(), (app.as_u128(), endpoint.as_u128()))?;
        self.endpoint_pending.insert((endpoint.as_u128(), attempt.as_u128()), due_ms)?;
        Ok(key)
    }

    /// Puts a parked attempt back on the queue at `due_ms`.
    pub(super) fn unpark(
        &mut self,
        app: AppId,
        endpoint: EndpointId,
        attempt: DeliveryId,
        due_ms: u64,
    ) -> Result<QueueKey, StoreError> {
        self.parked.remove((endpoint.as_u128(), attempt.as_u128()))?;
        self.enqueue(app, endpoint, attempt, due_ms)
    }

    /// Moves a queued attempt to another due time.
    pub(super) fn reschedule(
        &mut self,
        app: AppId,
        endpoint: EndpointId,
        from: QueueKey,
        due_ms: u64,
    ) -> Result<QueueKey, StoreError> {
        self.queue.remove(from.row())?;
        self.enqueue(app, endpoint, from.attempt(), due_ms)
    }

    /// Keeps an attempt pending, off the queue, until its endpoint is enabled. `queued`:
    /// its queue entry, if it has one.
    pub(super) fn park(
        &mut self,
        endpoint: EndpointId,
        attempt: DeliveryId,
        queued: Option<QueueKey>,
    ) -> Result<(), StoreError> {
        if let Some(key) = queued {
            self.queue.remove(key.row())?;
        }
        self.endpoint_pending.insert((endpoint.as_u128(), attempt.as_u128()), PARKED)?;
        self.parked.insert((endpoint.as_u128(), attempt.as_u128()), ())?;
        Ok(())
    }

    /// Takes an attempt off the queue for good (its delivery is over or moves on), parked
    /// or not.
    pub(super) fn unqueue(&mut self, endpoint: EndpointId, key: QueueKey) -> Result<(), StoreError> {
        self.queue.remove(key.row())?;
        let pending = (endpoint.as_u128(), key.attempt);
        if self.endpoint_pending.remove(pending)?.map(|v| v.value()) == Some(PARKED) {
            self.parked.remove(pending)?;
        }
        Ok(())
    }

    /// Drops a queue entry whose attempt is gone or no longer pending.
    pub(super) fn drop_entry(&mut self, key: QueueKey) -> Result<(), StoreError> {
        self.queue.remove(key.row())?;
        Ok(())
    }

    /// Whether an attempt waits parked.
    pub(super) fn is_parked(&self, endpoint: EndpointId, attempt: DeliveryId) -> Result<bool, StoreError> {
        Ok(self.endpoint_pending.get((endpoint.as_u128(), attempt.as_u128()))?.map(|v| v.value()) == Some(PARKED))
    }

    /// The pending attempts (queued or parked) of an endpoint, oldest first.
    pub(super) fn pending_of(&self, endpoint: EndpointId) -> Result<Vec<DeliveryId>, StoreError> {
        let e = endpoint.as_u128();
        let rows = self.endpoint_pending.range((e, 0)..=(e, u128::MAX))?;
        rows.map(|row| Ok(DeliveryId(row?.0.value().1))).collect()
    }

    /// The parked attempts, of one endpoint or of all, as (endpoint, attempt).
    pub(super) fn parked(&self, only: Option<EndpointId>) -> Result<Vec<(EndpointId, DeliveryId)>, StoreError> {
        let range = match only {
            Some(id) => (id.as_u128(), 0)..=(id.as_u128(), u128::MAX),
            None => (0, 0)..=(u128::MAX, u128::MAX),
        };
        let rows = self.parked.range(range)?;
        rows.map(|row| {
            let (endpoint, attempt) = row?.0.value();
            Ok((EndpointId(endpoint), DeliveryId(attempt)))
        })
        .collect()
    }
}

impl Queue for RedbStore {
    async fn due_entries(
        &self,
        after: Option<QueueKey>,
        until_ms: u64,
        limit: usize,
        _full: Vec<EndpointId>,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let mut out = Vec::new();
            let start = QueueKey::first_row_after(after);
            if start.0 > until_ms {
                return Ok(out);
            }
            for entry in queue.range(start..=(until_ms, u128::MAX))? {
                let (key, value) = entry?;
                let (app, endpoint) = value.value();
                out.push(DueEntry {
                    key: QueueKey::from_row(key.value()),
                    endpoint: EndpointId(endpoint),
                    app: AppId(app),
                });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    async fn next_due_after(&self, after: Option<QueueKey>, _full: Vec<EndpointId>) -> Result<Option<u64>, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let first = queue.range(QueueKey::first_row_after(after)..)?.next().transpose()?;
            Ok(first.map(|(k, _)| k.value().0))
        })
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        self.read(|tx| Ok(tx.open_table(tables::QUEUE)?.len()?))
    }

    #[cfg(test)]
    async fn drop_queue_entry_for_test(&self, key: QueueKey) -> () {
        self.write(|tx| Ok(tx.open_table(tables::QUEUE)?.remove(key.row()).map(|_| ())?)).unwrap();
    }
}
