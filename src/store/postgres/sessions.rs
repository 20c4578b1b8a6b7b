//! Verification sessions on Postgres.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;

use crate::ids::VerificationSessionId;
use crate::store::backend::Sessions;
use crate::store::model::events::filtered_of;
use crate::store::model::{
    ListError, NewEvent, Owner, Page, PageRequest, Scheduled, SessionChange, SessionChanged, SessionRecord, StoreError,
};
use crate::store::rules::expire::{DueSession, SessionExpiryTx, expire_due};

use super::attempts::Writes;
use super::cached::Cached;
use super::events::publish_in;
use super::pagination::{ListQuery, list};
use super::{PgStore, Tx, uuid};

impl Sessions for PgStore {
    async fn session(&self, owner: Owner, id: VerificationSessionId) -> Result<Option<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .q_opt(
                "SELECT record FROM sessions WHERE app = $1 AND id = $2",
                &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, Json<SessionRecord>>(0).0))
    }

    async fn next_session_expiry(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let due: Option<i64> =
            client.q_one("SELECT min(expires_ms) FROM sessions WHERE expires_ms IS NOT NULL", &[]).await?.get(0);
        Ok(due.map(|d| d as u64))
    }

    async fn list_sessions(
        &self,
        owner: Owner,
        request: PageRequest<VerificationSessionId>,
    ) -> Result<Page<SessionRecord>, ListError> {
        let app = uuid(owner.app.as_u128());
        let client = self.client().await?;
        let query = ListQuery {
            select: "SELECT record FROM sessions WHERE app = $1",
            params: vec![&app],
            id: "id",
            exists: Some("SELECT 1 FROM sessions WHERE app = $1 AND id = $2"),
            scope: &app,
        };
        list(&client, query, request, |row| Ok(row.get::<_, Json<SessionRecord>>(0).0)).await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        event: NewEvent,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<SessionChanged, StoreError> {
        transaction!(self, |tx| {
            tx.exec(
                "INSERT INTO sessions (app, id, record, expires_ms) VALUES ($1, $2, $3, $4)",
                &[&uuid(session.app.as_u128()), &uuid(session.id.as_u128()), &Json(&session), &(expires_ms as i64)],
            )
            .await?;
            let mut writes = Writes::new(&self.token);
            let (published, scheduled) =
                publish_in(tx, self, std::slice::from_ref(&event), now_ms, &mut writes).await?;
            writes.flush(tx).await?;
            Ok(SessionChanged { session: session.clone(), scheduled, filtered: filtered_of(&published) })
        })
        .await
    }

    async fn change_session<R: Send + 'static>(
        &self,
        owner: Owner,
        id: VerificationSessionId,
        now_ms: u64,
        change: impl FnOnce(&mut SessionRecord) -> Result<NewEvent, R> + Send + 'static,
    ) -> Result<SessionChange<R>, StoreError> {
        transaction_once!(self, |tx| {
            let key = [uuid(owner.app.as_u128()), uuid(id.as_u128())];
            let row = tx
                .q_opt("SELECT record FROM sessions WHERE app = $1 AND id = $2 FOR UPDATE", &[&key[0], &key[1]])
                .await?;
            let Some(row) = row else { return Ok(SessionChange::Missing) };
            let mut session = row.get::<_, Json<SessionRecord>>(0).0;
            let event = match change(&mut session) {
                Ok(event) => event,
                Err(refusal) => return Ok(SessionChange::Refused(refusal)),
            };
            tx.exec("UPDATE sessions SET record = $3 WHERE app = $1 AND id = $2", &[&key[0], &key[1], &Json(&session)])
                .await?;
            let mut writes = Writes::new(&self.token);
            let (published, scheduled) =
                publish_in(tx, self, std::slice::from_ref(&event), now_ms, &mut writes).await?;
            writes.flush(tx).await?;
            Ok(SessionChange::Changed(SessionChanged { session, scheduled, filtered: filtered_of(&published) }))
        })
        .await
    }

    async fn expire_due_sessions<R: Send + 'static>(
        &self,
        now_ms: u64,
        limit: usize,
        expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R> + Send + Sync + 'static,
    ) -> Result<(usize, Scheduled), StoreError> {
        transaction!(self, |tx| expire_due(&mut Tx { client: tx, store: self }, now_ms, limit, &expire).await).await
    }
}

impl<C: GenericClient> SessionExpiryTx for Tx<'_, C> {
    /// Other processes skip the sessions this one holds.
    async fn take_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSession>, StoreError> {
        let rows = self
            .client
            .q(
                "UPDATE sessions s SET expires_ms = NULL
                 FROM (SELECT app, id FROM sessions WHERE expires_ms IS NOT NULL AND expires_ms <= $1
                       ORDER BY expires_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED) due
                 WHERE s.app = due.app AND s.id = due.id
                 RETURNING s.record, EXISTS (SELECT 1 FROM deleted_apps d WHERE d.app = s.app)",
                &[&(now_ms as i64), &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| DueSession { session: row.get::<_, Json<SessionRecord>>(0).0, app_deleted: row.get(1) })
            .collect())
    }

    async fn save_session(&mut self, session: &SessionRecord) -> Result<(), StoreError> {
        let (app, id) = (uuid(session.app.as_u128()), uuid(session.id.as_u128()));
        self.client
            .exec("UPDATE sessions SET record = $3 WHERE app = $1 AND id = $2", &[&app, &id, &Json(session)])
            .await?;
        Ok(())
    }

    async fn publish(&mut self, events: &[NewEvent], now_ms: u64) -> Result<Scheduled, StoreError> {
        let mut writes = Writes::new(&self.store.token);
        let (_, scheduled) = publish_in(self.client, self.store, events, now_ms, &mut writes).await?;
        writes.flush(self.client).await?;
        Ok(scheduled)
    }
}
