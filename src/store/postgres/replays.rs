//! Replays on Postgres: their records (`watching` as a column, for the replay task), and
//! which deliveries each sent while it is watched, so its outcomes can be counted.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;

use crate::ids::{EndpointId, EventId, ReplayId};
use crate::store::backend::Replays;
use crate::store::model::{
    DeliveryState, ListError, Owner, Page, PageRequest, ReplayRecord, ReplayStep, ReplayStepped, StoreError,
};
use crate::store::rules::replay::{ReplayTx, settle, step};

use super::attempts::status_of;
use super::cached::Cached;
use super::pagination::{ListQuery, list};
use super::{PgStore, Tx, id_of, uuid};
use crate::store::model::AttemptStatus;

/// Reads a replay of `owner`, locked until the commit.
async fn get_for_update(
    client: &impl GenericClient,
    owner: Owner,
    id: ReplayId,
) -> Result<Option<ReplayRecord>, StoreError> {
    let sql = "SELECT record FROM replays WHERE app = $1 AND id = $2 FOR UPDATE";
    let row = client.q_opt(sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
    Ok(row.map(|row| row.get::<_, Json<ReplayRecord>>(0).0))
}

/// Saves a replay; once it is not watched, the record of the deliveries it sent goes.
async fn save(client: &impl GenericClient, record: &ReplayRecord) -> Result<(), StoreError> {
    client
        .exec(
            "INSERT INTO replays (app, id, watching, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app, id) DO UPDATE SET watching = $3, record = $4",
            &[&uuid(record.app.as_u128()), &uuid(record.id.as_u128()), &record.watching, &Json(record)],
        )
        .await?;
    if !record.watching {
        client.exec("DELETE FROM replay_deliveries WHERE replay = $1", &[&uuid(record.id.as_u128())]).await?;
    }
    Ok(())
}

impl Replays for PgStore {
    async fn insert_replay(&self, record: ReplayRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        save(&client, &record).await
    }

    async fn replay(&self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError> {
        let client = self.client().await?;
        let sql = "SELECT record FROM replays WHERE app = $1 AND id = $2";
        let row = client.q_opt(sql, &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())]).await?;
        Ok(row.map(|row| row.get::<_, Json<ReplayRecord>>(0).0))
    }

    async fn list_replays(
        &self,
        owner: Owner,
        request: PageRequest<ReplayId>,
    ) -> Result<Page<ReplayRecord>, ListError> {
        let app = uuid(owner.app.as_u128());
        let client = self.client().await?;
        let query = ListQuery {
            select: "SELECT record FROM replays WHERE app = $1",
            params: vec![&app],
            id: "id",
            exists: Some("SELECT 1 FROM replays WHERE app = $1 AND id = $2"),
            scope: &app,
        };
        list(&client, query, request, |row| Ok(row.get::<_, Json<ReplayRecord>>(0).0)).await
    }

    async fn change_replay(
        &self,
        owner: Owner,
        id: ReplayId,
        change: impl FnOnce(&mut ReplayRecord) + Send + 'static,
    ) -> Result<Option<ReplayRecord>, StoreError> {
        transaction_once!(self, |tx| {
            let Some(mut record) = get_for_update(tx, owner, id).await? else { return Ok(None) };
            change(&mut record);
            save(tx, &record).await?;
            Ok(Some(record))
        })
        .await
    }

    async fn watched_replays(&self) -> Result<Vec<ReplayRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client.q("SELECT record FROM replays WHERE watching", &[]).await?;
        Ok(rows.iter().map(|row| row.get::<_, Json<ReplayRecord>>(0).0).collect())
    }

    async fn settle_replay(
        &self,
        owner: Owner,
        id: ReplayId,
        now: i64,
    ) -> Result<Option<(ReplayRecord, u64)>, StoreError> {
        transaction!(self, |tx| settle(&mut Tx { client: tx, store: self }, owner, id, now).await).await
    }

    async fn delivery_states(
        &self,
        owner: Owner,
        events: Vec<EventId>,
        now_ms: u64,
    ) -> Result<Vec<(EventId, EndpointId, DeliveryState)>, StoreError> {
        let client = self.client().await?;
        let app = uuid(owner.app.as_u128());
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| uuid(e.as_u128())).collect();
        let attempted = client
            .q(
                "SELECT DISTINCT ON (event, endpoint) event, endpoint, status FROM attempts
                 WHERE event = ANY($1) AND app = $2 ORDER BY event, endpoint, id DESC",
                &[&ids, &app],
            )
            .await?;
        let mut states = Vec::with_capacity(attempted.len());
        for row in attempted {
            let state = DeliveryState::Attempted(status_of(row.get(2))?);
            states.push((EventId(id_of(row.get(0))), EndpointId(id_of(row.get(1))), state));
        }
        let skipped = client
            .q(
                "SELECT s.event, s.endpoint FROM skipped_deliveries s
                 WHERE s.app = $2 AND s.event = ANY($1) AND s.until_ms > $3
                   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.event = s.event AND a.endpoint = s.endpoint)",
                &[&ids, &app, &(now_ms as i64)],
            )
            .await?;
        for row in skipped {
            states.push((EventId(id_of(row.get(0))), EndpointId(id_of(row.get(1))), DeliveryState::Skipped));
        }
        Ok(states)
    }

    async fn replay_step(
        &self,
        owner: Owner,
        id: ReplayId,
        replay: ReplayStep,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<ReplayStepped, StoreError> {
        transaction!(self, |tx| {
            step(&mut Tx { client: tx, store: self }, owner, id, replay.clone(), now_ms, default_hours).await
        })
        .await
    }
}

impl<C: GenericClient> ReplayTx for Tx<'_, C> {
    async fn replay_for_update(&mut self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError> {
        get_for_update(self.client, owner, id).await
    }

    async fn save_replay(&mut self, record: &ReplayRecord) -> Result<(), StoreError> {
        save(self.client, record).await
    }

    async fn note_replayed(
        &mut self,
        replay: ReplayId,
        event: EventId,
        endpoint: EndpointId,
    ) -> Result<(), StoreError> {
        self.client
            .exec(
                "INSERT INTO replay_deliveries (replay, event, endpoint) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&uuid(replay.as_u128()), &uuid(event.as_u128()), &uuid(endpoint.as_u128())],
            )
            .await?;
        Ok(())
    }

    async fn replayed(
        &mut self,
        replay: ReplayId,
    ) -> Result<Vec<(EventId, EndpointId, Option<(AttemptStatus, u32)>)>, StoreError> {
        // Each delivery's latest attempt, through the attempts' index by event.
        let rows = self
            .client
            .q(
                "SELECT d.event, d.endpoint, l.status, l.attempt FROM replay_deliveries d
                 LEFT JOIN LATERAL (SELECT a.status, a.attempt FROM attempts a
                                    WHERE a.event = d.event AND a.endpoint = d.endpoint
                                    ORDER BY a.id DESC LIMIT 1) l ON true
                 WHERE d.replay = $1",
                &[&uuid(replay.as_u128())],
            )
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let status = row.get::<_, Option<i16>>(2).map(status_of).transpose()?;
            let latest = status.map(|status| (status, row.get::<_, Option<i32>>(3).unwrap_or(1) as u32));
            found.push((EventId(id_of(row.get(0))), EndpointId(id_of(row.get(1))), latest));
        }
        Ok(found)
    }

    async fn forget_replayed(&mut self, replay: ReplayId, done: &[(EventId, EndpointId)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let events: Vec<uuid::Uuid> = done.iter().map(|(e, _)| uuid(e.as_u128())).collect();
        let endpoints: Vec<uuid::Uuid> = done.iter().map(|(_, e)| uuid(e.as_u128())).collect();
        self.client
            .exec(
                "DELETE FROM replay_deliveries d USING unnest($2::uuid[], $3::uuid[]) AS f(event, endpoint)
                 WHERE d.replay = $1 AND d.event = f.event AND d.endpoint = f.endpoint",
                &[&uuid(replay.as_u128()), &events, &endpoints],
            )
            .await?;
        Ok(())
    }
}
