//! Events and attempts on Postgres as the API and the workers read them: an event with
//! its payload, lists with their filters, an endpoint's or an event's attempts, what a
//! worker needs for an attempt; and the two writes that add history outside the queue
//! (a resend, a test ping).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::cached::Cached;
use super::deliveries::{ATTEMPT_COLUMNS, Writes, attempt_of, insert_events, status_code, status_of};
use super::endpoints::{Lock, get_in, matching_in};
use super::pages::{ListQuery, list};
use super::{PgStore, id_of, uuid};
use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::model::attempts::{response_row, undelivered_expired};
use crate::store::model::endpoints::delivered_as;
use crate::store::model::{
    AttemptRecord, AttemptStatus, EndpointRecord, EventFilter, EventMeta, Job, ListError, NewEvent, Owner, Page,
    PageRequest, Resent, Scheduled, StoreError, StoredEvent,
};
use crate::store::sealing::Sealer;

/// The columns an event is read from, in the order [`event_of`] reads them.
const EVENT_COLUMNS: &str = "e.app, e.id, e.mode, e.event_type, e.created, e.data_id, e.body, e.pending";

/// The latest attempt of event `e` to each endpoint it went to, as SQL (`status`).
const LATEST_PER_ENDPOINT: &str = "(SELECT DISTINCT ON (a.endpoint) a.status FROM attempts a
     WHERE a.event = e.id AND a.app = e.app ORDER BY a.endpoint, a.id DESC)";

/// An event's metadata from the first six of [`EVENT_COLUMNS`], starting at `at`.
fn meta_of(row: &Row, at: usize) -> Result<EventMeta, StoreError> {
    let mode = Mode::from_u8(row.get::<_, i16>(at + 2) as u8).ok_or(StoreError::BadKey { table: "events" })?;
    Ok(EventMeta {
        app: AppId(id_of(row.get(at))),
        id: EventId(id_of(row.get(at + 1))),
        mode,
        event_type: row.get(at + 3),
        created: row.get(at + 4),
        data_id: row.get(at + 5),
    })
}

/// The payload of the event `meta` describes, from its sealed column.
fn body_of(sealer: &Sealer, meta: &EventMeta, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let id = meta.id.as_u128();
    Ok(meta.envelope().payload(&sealer.open(&id.to_be_bytes(), sealed)?))
}

/// An event read with [`EVENT_COLUMNS`].
fn event_of(sealer: &Sealer, row: &Row) -> Result<StoredEvent, StoreError> {
    let meta = meta_of(row, 0)?;
    let body = body_of(sealer, &meta, row.get(6))?;
    Ok(StoredEvent { meta, body, pending_webhooks: row.get::<_, i32>(7).max(0) as u32 })
}

impl PgStore {
    /// An attempt as read, with its response excerpt opened.
    pub(super) fn opened(&self, mut record: AttemptRecord) -> Result<AttemptRecord, StoreError> {
        if let Some(body) = record.response_body.take() {
            record.response_body = Some(self.sealer.open_text(&response_row(record.id), body)?);
        }
        Ok(record)
    }

    /// An event with its payload and `pending_webhooks`.
    pub fn event(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.app = $1 AND e.id = $2");
            let row = client.q_opt(&sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
            row.map(|row| event_of(&self.sealer, &row)).transpose()
        })
    }

    /// One page of an application's events, newest first, filtered.
    pub fn list_events(
        &self,
        owner: Owner,
        request: PageRequest<EventId>,
        filter: &EventFilter,
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
        self.run(async {
            let client = self.client().await?;
            let query = ListQuery {
                select: &select,
                params,
                id: "e.id",
                exists: "SELECT 1 FROM events WHERE app = $1 AND id = $2",
                scope: &app,
            };
            Ok(list(&client, query, request, |row| event_of(&self.sealer, row)).await)
        })?
    }

    /// One page of an endpoint's attempts, newest first, optionally of one status.
    pub fn list_attempts(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, ListError> {
        let (app, endpoint) = (uuid(owner.app.as_u128()), uuid(endpoint.as_u128()));
        let code = status.map(status_code);
        let mut select = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE app = $1 AND endpoint = $2");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&app, &endpoint];
        if let Some(code) = &code {
            params.push(code);
            select += " AND status = $3";
        }
        self.run(async {
            let client = self.client().await?;
            // A cursor must be an attempt of this endpoint (the page itself is of the
            // application's: `select` says so). One statement text for every endpoint, so
            // the connection's cache of prepared statements stays bounded.
            let exists = "SELECT 1 FROM attempts WHERE endpoint = $1 AND id = $2";
            let query = ListQuery { select: &select, params, id: "id", exists, scope: &endpoint };
            Ok(list(&client, query, request, |row| self.opened(attempt_of(row)?)).await)
        })?
    }

    /// One attempt of an endpoint.
    pub fn attempt(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1 AND app = $2 AND endpoint = $3");
            let row = client
                .q_opt(&sql, &[&uuid(id.as_u128()), &uuid(owner.app.as_u128()), &uuid(endpoint.as_u128())])
                .await?;
            row.map(|row| self.opened(attempt_of(&row)?)).transpose()
        })
    }

    /// The newest attempts of an event, at most `limit`, newest first; and whether there
    /// are more.
    pub fn event_attempts(
        &self,
        owner: Owner,
        event: EventId,
        limit: usize,
    ) -> Result<(Vec<AttemptRecord>, bool), StoreError> {
        self.run(async {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE event = $1 AND app = $2 ORDER BY id DESC LIMIT $3"
            );
            let rows =
                client.q(&sql, &[&uuid(event.as_u128()), &uuid(owner.app.as_u128()), &(limit as i64 + 1)]).await?;
            let more = rows.len() > limit;
            let out = rows.iter().take(limit).map(|row| self.opened(attempt_of(row)?)).collect::<Result<_, _>>()?;
            Ok((out, more))
        })
    }

    /// What workers need for these attempts, read together.
    pub fn jobs(&self, attempt_ids: &[DeliveryId]) -> Result<Vec<Option<Job>>, StoreError> {
        let ids: Vec<uuid::Uuid> = attempt_ids.iter().map(|id| uuid(id.as_u128())).collect();
        self.run(async {
            let client = self.client().await?;
            let columns: String = ATTEMPT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {columns}, en.record, {EVENT_COLUMNS} FROM attempts a
                 LEFT JOIN endpoints en ON en.app = a.app AND en.id = a.endpoint
                 LEFT JOIN events e ON e.app = a.app AND e.id = a.event
                 WHERE a.id = ANY($1)"
            );
            let rows = client.q(&sql, &[&ids]).await?;
            let mut found: HashMap<DeliveryId, Job> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let attempt = attempt_of(row)?;
                let endpoint = row.get::<_, Option<Json<EndpointRecord>>>(16).map(|j| j.0);
                let body = match row.get::<_, Option<uuid::Uuid>>(17) {
                    Some(_) => {
                        let meta = meta_of(row, 17)?;
                        Some(body_of(&self.sealer, &meta, row.get(23))?).filter(|b| !b.is_empty())
                    }
                    None => None,
                };
                found.insert(attempt.id, Job { attempt, endpoint, body });
            }
            Ok(attempt_ids.iter().map(|id| found.remove(id)).collect())
        })
    }

    /// Schedules a new round of delivery of an event: to `endpoint` if named, else to
    /// every enabled endpoint subscribed to its type; an endpoint whose undelivered
    /// payload window has passed gets nothing (named: [`Resent::PayloadExpired`]).
    pub(in crate::store) fn resend_event(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Resent, StoreError> {
        self.run(self.transaction(async |tx| {
            let key = [uuid(owner.app.as_u128()), uuid(id.as_u128())];
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.app = $1 AND e.id = $2");
            let Some(row) = tx.q_opt(&sql, &[&key[0], &key[1]]).await? else { return Ok(Resent::NoEvent) };
            let meta = meta_of(&row, 0)?;
            let latest = latest_per_endpoint(tx, owner.app, id).await?;
            let expired_for = |endpoint: &EndpointRecord| {
                let hours = endpoint.undelivered_retention_hours.unwrap_or(default_hours);
                let expired = latest
                    .get(&endpoint.id)
                    .is_some_and(|(status, made)| undelivered_expired(*status, *made, hours, now_ms));
                expired.then_some(hours)
            };
            let targets = match endpoint {
                Some(endpoint_id) => match get_in(tx, owner.app, endpoint_id, Lock::KeyShare).await? {
                    Some(endpoint) => {
                        if let Some(hours) = expired_for(&endpoint) {
                            return Ok(Resent::PayloadExpired { hours });
                        }
                        let name = delivered_as(&endpoint, &meta.event_type);
                        vec![(endpoint, name)]
                    }
                    None => return Ok(Resent::NoEndpoint),
                },
                None => {
                    let mut all = matching_in(tx, owner.app, &meta.event_type, Lock::KeyShare).await?;
                    all.retain(|(endpoint, _)| expired_for(endpoint).is_none());
                    all
                }
            };
            // The event is locked after its endpoints, as a deletion of an endpoint locks it
            // then the events whose deliveries it ends (the other order could deadlock);
            // removed meanwhile by retention: nothing to resend.
            let lock = "SELECT 1 FROM events WHERE app = $1 AND id = $2 FOR NO KEY UPDATE";
            if tx.q_opt(lock, &[&key[0], &key[1]]).await?.is_none() {
                return Ok(Resent::NoEvent);
            }
            let mut writes = Writes::new(&self.token);
            let mut scheduled = Scheduled::default();
            for (endpoint, delivered_as) in &targets {
                writes.schedule(endpoint, meta.id, delivered_as, 1, now_ms, &mut scheduled);
            }
            writes.add_pending(owner.app, id, targets.len() as i32);
            writes.flush(tx).await?;
            Ok(Resent::Scheduled(scheduled))
        }))
    }

    /// Stores a test ping once it was sent: its event (scheduling nothing) and its
    /// finished attempt, in one transaction.
    pub fn record_test_ping(&self, event: &NewEvent, record: &AttemptRecord) -> Result<(), StoreError> {
        self.run(self.transaction(async |tx| {
            insert_events(tx, &self.sealer, std::slice::from_ref(event), &[0]).await?;
            let mut record = record.clone();
            let row = response_row(record.id);
            record.response_body = record.response_body.map(|body| self.sealer.seal_text(&row, &body));
            let mut writes = Writes::new(&self.token);
            writes.tally(&record);
            writes.note_outcome(&record);
            writes.save(record);
            writes.flush(tx).await?;
            Ok(())
        }))
    }
}

/// The latest attempt of an event to each endpoint it went to: its status and when it
/// was made (Unix seconds).
async fn latest_per_endpoint(
    client: &impl GenericClient,
    app: AppId,
    event: EventId,
) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError> {
    let rows = client
        .q(
            "SELECT DISTINCT ON (endpoint) endpoint, status, created FROM attempts
             WHERE event = $1 AND app = $2 ORDER BY endpoint, id DESC",
            &[&uuid(event.as_u128()), &uuid(app.as_u128())],
        )
        .await?;
    let mut latest = HashMap::with_capacity(rows.len());
    for row in rows {
        latest.insert(EndpointId(id_of(row.get(0))), (status_of(row.get(1))?, row.get(2)));
    }
    Ok(latest)
}
