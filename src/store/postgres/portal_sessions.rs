//! Portal sessions on Postgres: the customer portal's sign-in tokens, by their hash.

use tokio_postgres::types::Json;

use crate::ids::PortalSessionId;
use crate::store::backend::PortalSessions;
use crate::store::model::{Owner, PortalSessionRecord, StoreError};

use super::cached::Cached;
use super::{PgStore, uuid};

impl PortalSessions for PgStore {
    async fn insert_portal_session(&self, hash: [u8; 32], record: PortalSessionRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO portal_sessions (hash, app, id, expires_at, record) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &hash.as_slice(),
                    &uuid(record.app.as_u128()),
                    &uuid(record.id.as_u128()),
                    &record.expires_at,
                    &Json(&record),
                ],
            )
            .await?;
        Ok(())
    }

    async fn portal_session(&self, hash: [u8; 32]) -> Result<Option<PortalSessionRecord>, StoreError> {
        let client = self.client().await?;
        let row = client.q_opt("SELECT record FROM portal_sessions WHERE hash = $1", &[&hash.as_slice()]).await?;
        Ok(row.map(|row| row.get::<_, Json<PortalSessionRecord>>(0).0))
    }

    async fn revoke_portal_session(&self, owner: Owner, id: PortalSessionId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .exec(
                "DELETE FROM portal_sessions WHERE app = $1 AND id = $2",
                &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())],
            )
            .await?;
        Ok(n > 0)
    }
}
