//! Endpoints on Postgres: rows of `endpoints`, filed by label and by what they subscribe
//! to in two index tables kept in step by every write (as on redb), their health joined
//! in from `endpoint_health` when read for the API.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::event_types::{WILDCARD, kayle_name};
use crate::ids::{AppId, EndpointId};
use crate::store::backend::Endpoints;
use crate::store::model::endpoints::{Failing, subscribed};
use crate::store::model::{
    EndpointFilter, EndpointRecord, EndpointStatus, ListError, Owner, Page, PageRequest, StoreError,
};

use super::cached::Cached;
use super::pagination::{ListQuery, list};
use super::{PgStore, uuid};

/// The columns an endpoint is read from, with its health: use with [`endpoint_of`].
const WITH_HEALTH: &str = "SELECT e.record, h.since_ms, h.failures FROM endpoints e
     LEFT JOIN endpoint_health h ON h.endpoint = e.id";

/// An endpoint read with [`WITH_HEALTH`].
fn endpoint_of(row: &Row) -> Result<EndpointRecord, StoreError> {
    let mut record = row.get::<_, Json<EndpointRecord>>(0).0;
    let since: Option<i64> = row.get(1);
    let failures: Option<i32> = row.get(2);
    record.failing = since
        .zip(failures)
        .map(|(since_ms, attempts)| Failing { since: since_ms / 1000, attempts: attempts.max(0) as u32 });
    Ok(record)
}

/// How a transaction holds the endpoint rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    /// Not at all: what it read may change or go before it commits.
    Read,
    /// The row cannot be deleted before the transaction ends: for writes that schedule
    /// attempts to the endpoint (a deletion waits for them, then cancels what they
    /// queued; or they wait for it, and find the endpoint gone).
    KeyShare,
    /// The transaction changes the row but not its key (`FOR NO KEY UPDATE`): writes
    /// holding it [`Lock::KeyShare`] go on meanwhile.
    Change,
    /// The transaction deletes the row: it waits for the writes holding it.
    Delete,
}

impl Lock {
    fn clause(self) -> &'static str {
        match self {
            Lock::Read => "",
            Lock::KeyShare => " FOR KEY SHARE",
            Lock::Change => " FOR NO KEY UPDATE",
            Lock::Delete => " FOR UPDATE",
        }
    }
}

/// The endpoint with this id in this application, held as `lock` says; without its
/// health.
pub(super) async fn get_in(
    client: &impl GenericClient,
    app: AppId,
    id: EndpointId,
    lock: Lock,
) -> Result<Option<EndpointRecord>, StoreError> {
    let sql = format!("SELECT record FROM endpoints WHERE app = $1 AND id = $2{}", lock.clause());
    let row = client.q_opt(&sql, &[&uuid(app.as_u128()), &uuid(id.as_u128())]).await?;
    Ok(row.map(|row| row.get::<_, Json<EndpointRecord>>(0).0))
}

/// Stores `record` (new or changed) and files it under its labels and subscriptions,
/// moving it from those of `old` (what was stored, if anything).
pub(super) async fn put_in(
    client: &impl GenericClient,
    old: Option<&EndpointRecord>,
    record: &EndpointRecord,
) -> Result<(), StoreError> {
    let app = uuid(record.app.as_u128());
    let id = uuid(record.id.as_u128());
    client
        .exec(
            "INSERT INTO endpoints (app, id, record) VALUES ($1, $2, $3)
             ON CONFLICT (app, id) DO UPDATE SET record = excluded.record",
            &[&app, &id, &Json(record)],
        )
        .await?;
    let unchanged = old.is_some_and(|old| old.labels == record.labels && old.enabled_events == record.enabled_events);
    if !unchanged {
        refile(client, record.app, record.id, Some((&record.labels, &record.enabled_events))).await?;
    }
    Ok(())
}

/// Replaces an endpoint's index entries with these labels and subscriptions (`None`: it
/// is gone).
pub(super) async fn refile(
    client: &impl GenericClient,
    app: AppId,
    id: EndpointId,
    names: Option<(&Vec<String>, &Vec<String>)>,
) -> Result<(), StoreError> {
    let (app, id) = (uuid(app.as_u128()), uuid(id.as_u128()));
    client.exec("DELETE FROM endpoint_labels WHERE app = $1 AND endpoint = $2", &[&app, &id]).await?;
    client.exec("DELETE FROM endpoint_subscriptions WHERE app = $1 AND endpoint = $2", &[&app, &id]).await?;
    if let Some((labels, subscriptions)) = names {
        client
            .exec(
                "INSERT INTO endpoint_labels (app, label, endpoint)
                 SELECT $1, l, $2 FROM unnest($3::text[]) AS l ON CONFLICT DO NOTHING",
                &[&app, &id, labels],
            )
            .await?;
        client
            .exec(
                "INSERT INTO endpoint_subscriptions (app, name, endpoint)
                 SELECT $1, n, $2 FROM unnest($3::text[]) AS n ON CONFLICT DO NOTHING",
                &[&app, &id, subscriptions],
            )
            .await?;
    }
    Ok(())
}

/// Changes an endpoint inside the transaction; returns it as stored, with its health.
pub(super) async fn update_in(
    client: &impl GenericClient,
    app: AppId,
    id: EndpointId,
    change: impl FnOnce(&mut EndpointRecord),
) -> Result<Option<EndpointRecord>, StoreError> {
    let Some(mut record) = get_in(client, app, id, Lock::Change).await? else { return Ok(None) };
    let before = record.clone();
    change(&mut record);
    put_in(client, Some(&before), &record).await?;
    let sql = format!("{WITH_HEALTH} WHERE e.app = $1 AND e.id = $2");
    let row = client.q_one(&sql, &[&uuid(app.as_u128()), &uuid(id.as_u128())]).await?;
    endpoint_of(&row).map(Some)
}

/// Disables an endpoint automatically at `at` (Unix seconds), saying why, and returns it
/// as it is now. Already disabled: left as it is (`None`).
pub(super) async fn disable_in(
    client: &impl GenericClient,
    app: AppId,
    id: EndpointId,
    reason: &str,
    at: i64,
) -> Result<Option<EndpointRecord>, StoreError> {
    let Some(mut endpoint) =
        get_in(client, app, id, Lock::Change).await?.filter(|e| e.status == EndpointStatus::Enabled)
    else {
        return Ok(None);
    };
    let before = endpoint.clone();
    endpoint.status = EndpointStatus::Disabled;
    endpoint.disabled_reason = Some(reason.to_string());
    endpoint.disabled_at = Some(at);
    put_in(client, Some(&before), &endpoint).await?;
    tracing::warn!(endpoint = %endpoint.id, reason, "endpoint disabled automatically");
    Ok(Some(endpoint))
}

/// The endpoints the attempts `ids` go to, held `FOR KEY SHARE`. Writers that lock
/// endpoints and attempts both take the endpoints first (a deletion does: the endpoint,
/// then its attempts), so they never wait on each other in a circle.
pub(super) async fn lock_endpoints_of(
    client: &impl GenericClient,
    ids: &[uuid::Uuid],
) -> Result<HashMap<EndpointId, EndpointRecord>, StoreError> {
    let rows = client
        .q(
            "SELECT e.record FROM endpoints e
             WHERE (e.app, e.id) IN (SELECT app, endpoint FROM attempts WHERE id = ANY($1))
             ORDER BY e.app, e.id FOR KEY SHARE OF e",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let record = row.get::<_, Json<EndpointRecord>>(0).0;
            (record.id, record)
        })
        .collect())
}

/// The endpoints of application `app` subscribed to `event_type` (enabled or disabled), each with the
/// name it receives the event under, held as `lock` says. (Publishing reads them without a
/// lock: an attempt it queues for an endpoint deleted meanwhile is made at once and
/// recorded as failed, the endpoint being gone.)
pub(super) async fn matching_in<'a>(
    client: &impl GenericClient,
    app: AppId,
    event_type: &'a str,
    lock: Lock,
) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
    let names: Vec<&str> = [Some(WILDCARD), Some(event_type), kayle_name(event_type)].into_iter().flatten().collect();
    let sql = format!(
        "SELECT e.record FROM endpoints e WHERE e.app = $1 AND e.id IN
             (SELECT endpoint FROM endpoint_subscriptions WHERE app = $1 AND name = ANY($2))
         ORDER BY e.id{}",
        lock.clause()
    );
    let rows = client.q(&sql, &[&uuid(app.as_u128()), &names]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let endpoint = row.get::<_, Json<EndpointRecord>>(0).0;
        if let Some(name) = subscribed(&endpoint, event_type) {
            out.push((endpoint, name));
        }
    }
    Ok(out)
}

impl PgStore {
    /// Seals the endpoint secrets an earlier release stored in clear (at start, by every
    /// process; the rows are locked, so a secret rotated meanwhile through another process
    /// is not overwritten). Returns how many endpoints had one.
    pub(super) async fn seal_clear_secrets(&self) -> Result<usize, StoreError> {
        let prefix = format!("{}%", crate::store::sealing::TEXT_PREFIX);
        transaction!(self, |tx| {
            let rows = tx
                .q(
                    "SELECT record FROM endpoints WHERE EXISTS (
                         SELECT 1 FROM jsonb_array_elements(record->'secrets') s WHERE s->>'secret' NOT LIKE $1
                     ) FOR NO KEY UPDATE",
                    &[&prefix],
                )
                .await?;
            for row in &rows {
                let mut record = row.get::<_, Json<EndpointRecord>>(0).0;
                if crate::store::model::endpoints::upgrade_at_rest(&mut record, &self.sealer)? {
                    tx.exec(
                        "UPDATE endpoints SET record = $3 WHERE app = $1 AND id = $2",
                        &[&uuid(record.app.as_u128()), &uuid(record.id.as_u128()), &Json(&record)],
                    )
                    .await?;
                }
            }
            Ok(rows.len())
        })
        .await
    }
}

impl Endpoints for PgStore {
    async fn insert_endpoint(&self, record: EndpointRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        put_in(&tx, None, &record).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn endpoint(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("{WITH_HEALTH} WHERE e.app = $1 AND e.id = $2");
        let row = client.q_opt(&sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
        row.as_ref().map(endpoint_of).transpose()
    }

    #[cfg(test)]
    async fn update_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord) + Send + 'static,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = update_in(&tx, owner.app, id, change).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn list_endpoints(
        &self,
        owner: Owner,
        request: PageRequest<EndpointId>,
        filter: EndpointFilter,
    ) -> Result<Page<EndpointRecord>, ListError> {
        let app = uuid(owner.app.as_u128());
        let client = self.client().await?;
        let by_label;
        let select;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&app];
        match &filter.label {
            Some(label) => {
                by_label = label.clone();
                select = format!(
                    "{WITH_HEALTH} WHERE e.app = $1 AND e.id IN
                         (SELECT endpoint FROM endpoint_labels WHERE app = $1 AND label = $2)"
                );
                params.push(&by_label);
            }
            None => select = format!("{WITH_HEALTH} WHERE e.app = $1"),
        }
        let query = ListQuery {
            select: &select,
            params,
            id: "e.id",
            exists: Some("SELECT 1 FROM endpoints WHERE app = $1 AND id = $2"),
            scope: &app,
        };
        list(&client, query, request, endpoint_of).await
    }
}
