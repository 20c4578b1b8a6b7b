//! Events on Postgres: publishing them (stored sealed, their first attempts queued), an
//! event with its payload, the filtered lists, and a test ping's event.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::backend::{Backend, Events};
use crate::store::model::EndpointStatus;
use crate::store::model::skipped_until;
use crate::store::model::{
    AttemptRecord, AttemptStatus, EndpointRecord, EventFilter, EventMeta, ListError, NewEvent, Owner, Page,
    PageRequest, Published, Resent, Scheduled, StoreError, StoredEvent,
};
use crate::store::rules::publish::{PublishTx, publish, publish_heard};
use crate::store::rules::resend::{ResendTx, resend};
use crate::store::sealing::Sealer;
use crate::trace::EventTrace;

use super::attempts::{LATEST_PER_ENDPOINT, Writes, latest_per_endpoint};
use super::cached::{Cached, Pipeline};
use super::endpoints::{Lock, get_in, matching_in};
use super::pagination::{ListQuery, list};
use super::{PgStore, Tx, id_of, uuid};

/// The columns an event is read from, in the order [`event_of`] reads them.
pub(super) const EVENT_COLUMNS: &str =
    "e.app, e.id, e.mode, e.event_type, e.created, e.data_id, e.body, e.pending, e.trace";

/// The payload of the event `meta` describes, from its sealed column.
pub(super) fn body_of(sealer: &Sealer, meta: &EventMeta, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let id = meta.id.as_u128();
    Ok(meta.envelope().payload(&sealer.open(&id.to_be_bytes(), sealed)?))
}

/// An event read with [`EVENT_COLUMNS`].
pub(super) fn event_of(sealer: &Sealer, row: &Row) -> Result<StoredEvent, StoreError> {
    let meta = meta_of(row, 0)?;
    let body = body_of(sealer, &meta, row.get(6))?;
    Ok(StoredEvent { meta, body, pending_webhooks: row.get::<_, i32>(7).max(0) as u32 })
}

/// Stores events (sealed) and schedules their first attempts ([`rules::publish`]);
/// returns what each did and the attempts queued.
pub(super) async fn publish_in(
    client: &impl GenericClient,
    store: &PgStore,
    events: &[NewEvent],
    now_ms: u64,
    writes: &mut Writes,
) -> Result<(Vec<Published>, Scheduled), StoreError> {
    let default_hours = store.undelivered_hours();
    publish(&mut Publishing { client, sealer: &store.sealer, default_hours, writes }, events, now_ms).await
}

/// Stores those of `events` some endpoint subscribes to (sealed), and schedules their
/// first attempts ([`rules::publish::publish_heard`]).
pub(super) async fn publish_heard_in(
    client: &impl GenericClient,
    store: &PgStore,
    events: &[NewEvent],
    now_ms: u64,
    writes: &mut Writes,
) -> Result<Scheduled, StoreError> {
    let default_hours = store.undelivered_hours();
    publish_heard(&mut Publishing { client, sealer: &store.sealer, default_hours, writes }, events, now_ms).await
}

/// Publishing inside one transaction: the attempts go to its write buffer, the events
/// are inserted at once.
struct Publishing<'a, C> {
    client: &'a C,
    sealer: &'a Sealer,
    /// The undelivered-payload window of endpoints that set none.
    default_hours: u32,
    writes: &'a mut Writes,
}

impl<C: GenericClient> PublishTx for Publishing<'_, C> {
    async fn subscribed<'a>(
        &mut self,
        app: AppId,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
        matching_in(self.client, app, event_type, Lock::Read).await
    }

    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event: EventId,
        delivered_as: &str,
        now_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<AttemptRecord, StoreError> {
        Ok(self.writes.schedule(endpoint, event, delivered_as, 1, now_ms, scheduled))
    }

    fn bear(&mut self, attempt: DeliveryId) -> bool {
        self.writes.bear(attempt)
    }

    fn tally_filtered(&mut self, endpoint: &EndpointRecord, now_ms: u64) -> Result<(), StoreError> {
        self.writes.tally_filtered(endpoint, now_ms);
        Ok(())
    }

    fn skip(&mut self, endpoint: &EndpointRecord, event: EventId, now_ms: u64) -> Result<(), StoreError> {
        self.writes.skip(endpoint, event, skipped_until(endpoint, self.default_hours, now_ms));
        Ok(())
    }

    /// Each event is written once, with its count of pending deliveries (an update after
    /// the insert would write every event twice, with all its index entries), first of the
    /// transaction's writes.
    async fn store_events(&mut self, events: &[NewEvent], pending: &[u32]) -> Result<(), StoreError> {
        let pending: Vec<i32> = pending.iter().map(|&n| n as i32).collect();
        push_events(self.writes.first(), self.sealer, events, &pending);
        Ok(())
    }
}

/// Inserts events with their sealed payloads and their counts of pending deliveries
/// (`pending`, one per event), in one statement.
pub(super) async fn insert_events(
    client: &impl GenericClient,
    sealer: &Sealer,
    events: &[NewEvent],
    pending: &[i32],
) -> Result<(), StoreError> {
    let mut pipeline = Pipeline::default();
    push_events(&mut pipeline, sealer, events, pending);
    Ok(pipeline.run(client).await?)
}

/// The statement of [`insert_events`], added to `pipeline`.
pub(super) fn push_events(pipeline: &mut Pipeline, sealer: &Sealer, events: &[NewEvent], pending: &[i32]) {
    let mut apps = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut modes = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut created = Vec::with_capacity(events.len());
    let mut data_ids = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    let mut traces = Vec::with_capacity(events.len());
    for event in events {
        let meta = &event.meta;
        let id = meta.id.as_u128();
        apps.push(uuid(meta.app.as_u128()));
        ids.push(uuid(id));
        modes.push(i16::from(meta.mode.as_u8()));
        types.push(meta.event_type.clone());
        created.push(meta.created);
        data_ids.push(meta.data_id.clone());
        bodies.push(event.stored_body(sealer).into_owned());
        traces.push(meta.trace.as_ref().map(EventTrace::to_bytes));
    }
    pipeline.push(
        "INSERT INTO events (app, id, mode, event_type, created, data_id, body, pending, trace)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::smallint[], $4::text[], $5::bigint[], $6::text[],
             $7::bytea[], $8::integer[], $9::bytea[])",
        vec![
            Box::new(apps),
            Box::new(ids),
            Box::new(modes),
            Box::new(types),
            Box::new(created),
            Box::new(data_ids),
            Box::new(bodies),
            Box::new(pending.to_vec()),
            Box::new(traces),
        ],
    );
}

/// An event's metadata from [`EVENT_COLUMNS`] starting at `at` (all but the body and the
/// count). A trace that does not read is left out: it never costs the event.
pub(super) fn meta_of(row: &Row, at: usize) -> Result<EventMeta, StoreError> {
    let mode = Mode::from_u8(row.get::<_, i16>(at + 2) as u8).ok_or(StoreError::BadKey { table: "events" })?;
    Ok(EventMeta {
        app: AppId(id_of(row.get(at))),
        id: EventId(id_of(row.get(at + 1))),
        mode,
        event_type: row.get(at + 3),
        created: row.get(at + 4),
        data_id: row.get(at + 5),
        trace: row.get::<_, Option<&[u8]>>(at + 8).and_then(EventTrace::from_bytes),
    })
}

impl Events for PgStore {
    async fn event(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.app = $1 AND e.id = $2");
        let row = client.q_opt(&sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
        row.map(|row| event_of(&self.sealer, &row)).transpose()
    }

    async fn list_events(
        &self,
        owner: Owner,
        request: PageRequest<EventId>,
        filter: EventFilter,
    ) -> Result<Page<StoredEvent>, ListError> {
        let app = uuid(owner.app.as_u128());
        // Ids carry their creation time: the time bounds are id bounds too, which keep the
        // scan of (app, id) within them.
        let within = filter.id_bounds(None);
        let (low, high) = (uuid(*within.start()), uuid(*within.end()));
        let mut select = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.app = $1 AND e.id >= $2 AND e.id <= $3");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&app, &low, &high];
        if let Some(event_type) = &filter.event_type {
            params.push(event_type);
            select += &format!(" AND e.event_type = ${}", params.len());
        }
        if let Some(data_id) = &filter.data_id {
            params.push(data_id);
            select += &format!(" AND e.data_id = ${}", params.len());
        }
        if let Some(after) = &filter.created_after {
            params.push(after);
            select += &format!(" AND e.created > ${}", params.len());
        }
        if let Some(before) = &filter.created_before {
            params.push(before);
            select += &format!(" AND e.created < ${}", params.len());
        }
        match filter.delivery_success {
            None => {}
            Some(true) => {
                select += &format!(
                    " AND EXISTS (SELECT 1 FROM attempts a WHERE a.event = e.id AND a.app = e.app)
                      AND NOT EXISTS (SELECT 1 FROM {LATEST_PER_ENDPOINT} l WHERE l.status <> 1)"
                )
            }
            // The undelivered have their own (partial) index: something pending, or failed.
            Some(false) => {
                select += &format!(
                    " AND (e.pending > 0 OR e.failed)
                      AND EXISTS (SELECT 1 FROM {LATEST_PER_ENDPOINT} l WHERE l.status <> 1)"
                )
            }
        }
        let client = self.client().await?;
        let query = ListQuery {
            select: &select,
            params,
            id: "e.id",
            exists: Some("SELECT 1 FROM events WHERE app = $1 AND id = $2"),
            scope: &app,
        };
        list(&client, query, request, |row| event_of(&self.sealer, row)).await
    }

    async fn record_test_ping(&self, event: NewEvent, record: AttemptRecord) -> Result<(), StoreError> {
        transaction!(self, |tx| {
            insert_events(tx, &self.sealer, std::slice::from_ref(&event), &[0]).await?;
            let record = record.clone().sealed(&self.sealer);
            let mut writes = Writes::new(&self.token);
            writes.tally(&record);
            writes.note_outcome(&record);
            writes.save(record);
            writes.flush(tx).await?;
            Ok(())
        })
        .await
    }

    async fn publish_events(
        &self,
        events: Vec<NewEvent>,
        now_ms: u64,
    ) -> Result<(Vec<Published>, Scheduled), StoreError> {
        transaction!(self, |tx| {
            let mut writes = Writes::new(&self.token);
            let done = publish_in(tx, self, &events, now_ms, &mut writes).await?;
            writes.flush(tx).await?;
            Ok(done)
        })
        .await
    }

    /// Schedules a new round of delivery of an event: to `endpoint` if named, else to
    /// every enabled endpoint subscribed to its type; an endpoint whose undelivered
    /// payload window has passed gets nothing (named: [`Resent::PayloadExpired`]).
    async fn resend_event(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Resent, StoreError> {
        transaction!(self, |tx| {
            resend(&mut Tx { client: tx, store: self }, owner, id, endpoint, now_ms, default_hours).await
        })
        .await
    }
}

impl<C: GenericClient> ResendTx for Tx<'_, C> {
    async fn event_meta(&mut self, owner: Owner, id: EventId) -> Result<Option<EventMeta>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.app = $1 AND e.id = $2");
        let row = self.client.q_opt(&sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
        row.map(|row| meta_of(&row, 0)).transpose()
    }

    async fn latest_per_endpoint(
        &mut self,
        owner: Owner,
        id: EventId,
    ) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError> {
        latest_per_endpoint(self.client, owner.app, id).await
    }

    /// Takes a key-share lock on its row, which a deletion waits for.
    async fn endpoint(&mut self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        get_in(self.client, owner.app, id, Lock::KeyShare).await
    }

    async fn subscribed<'a>(
        &mut self,
        owner: Owner,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
        let mut found = matching_in(self.client, owner.app, event_type, Lock::KeyShare).await?;
        found.retain(|(endpoint, _)| endpoint.status == EndpointStatus::Enabled);
        Ok(found)
    }

    async fn event_body(&mut self, meta: &EventMeta) -> Result<Vec<u8>, StoreError> {
        let sql = "SELECT body FROM events WHERE app = $1 AND id = $2";
        let row = self.client.q_opt(sql, &[&uuid(meta.app.as_u128()), &uuid(meta.id.as_u128())]).await?;
        row.map_or(Ok(Vec::new()), |row| body_of(&self.store.sealer, meta, row.get(0)))
    }

    /// Locks the event's row: retention removing it meanwhile leaves nothing to resend.
    async fn hold_event(&mut self, owner: Owner, id: EventId) -> Result<bool, StoreError> {
        let lock = "SELECT 1 FROM events WHERE app = $1 AND id = $2 FOR NO KEY UPDATE";
        Ok(self.client.q_opt(lock, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?.is_some())
    }

    async fn queue_deliveries(
        &mut self,
        owner: Owner,
        event: EventId,
        targets: &[(EndpointRecord, &str)],
        now_ms: u64,
    ) -> Result<Scheduled, StoreError> {
        let mut writes = Writes::new(&self.store.token);
        let mut scheduled = Scheduled::default();
        for (endpoint, delivered_as) in targets {
            writes.schedule(endpoint, event, delivered_as, 1, now_ms, &mut scheduled);
        }
        writes.add_pending(owner.app, event, targets.len() as i32);
        writes.flush(self.client).await?;
        Ok(scheduled)
    }
}
