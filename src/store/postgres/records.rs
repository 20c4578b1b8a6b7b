//! Small records on Postgres: event types created through the API, stored responses of
//! idempotent requests (sealed, as on redb), and app portal sessions.

use tokio_postgres::types::Json;

use super::cached::Cached;
use super::{PgStore, uuid};
use crate::event_types::EventTypeRecord;
use crate::ids::PortalSessionId;
use crate::store::StoreError;
use crate::store::apps::Owner;
use crate::store::idempotency::IdempotencyRecord;
use crate::store::portal_sessions::PortalSessionRecord;

impl PgStore {
    /// Every stored event type, of both modes, archived ones included.
    pub fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let rows = client.q("SELECT record FROM event_types ORDER BY mode, name", &[]).await?;
            Ok(rows.iter().map(|row| row.get::<_, Json<EventTypeRecord>>(0).0).collect())
        })
    }

    /// Stores a new type. `false`: its mode already has a type of that name.
    pub fn create_event_type(&self, record: &EventTypeRecord) -> Result<bool, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let inserted = client
                .exec(
                    "INSERT INTO event_types (mode, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&i16::from(record.mode.as_u8()), &record.name, &Json(record)],
                )
                .await?;
            Ok(inserted == 1)
        })
    }

    /// Replaces a stored type (an update, or archiving it).
    pub fn replace_event_type(&self, record: &EventTypeRecord) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .exec(
                    "INSERT INTO event_types (mode, name, record) VALUES ($1, $2, $3)
                     ON CONFLICT (mode, name) DO UPDATE SET record = excluded.record",
                    &[&i16::from(record.mode.as_u8()), &record.name, &Json(record)],
                )
                .await?;
            Ok(())
        })
    }

    /// The record stored under this idempotency key in this application, if any.
    pub fn idempotency_record(&self, owner: Owner, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found = self.run(async {
            let client = self.client().await?;
            let row = client
                .q_opt(
                    "SELECT record FROM idempotency WHERE app = $1 AND key = $2",
                    &[&uuid(owner.app.as_u128()), &key],
                )
                .await?;
            Ok(row.map(|row| row.get::<_, Json<IdempotencyRecord>>(0).0))
        })?;
        found.map(|record| record.opened(&self.sealer, owner, key)).transpose()
    }

    /// Stores (or replaces an expired) record under this key.
    pub fn put_idempotency_record(
        &self,
        owner: Owner,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let sealed = record.sealed(&self.sealer, owner, key);
        self.run(async {
            let client = self.client().await?;
            client
                .exec(
                    "INSERT INTO idempotency (app, key, created, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (app, key) DO UPDATE SET created = excluded.created, record = excluded.record",
                    &[&uuid(owner.app.as_u128()), &key, &record.created, &Json(&sealed)],
                )
                .await?;
            Ok(())
        })
    }

    /// Stores a new portal session under the hash of its token.
    pub fn insert_portal_session(&self, hash: &[u8; 32], record: &PortalSessionRecord) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .exec(
                    "INSERT INTO portal_sessions (hash, app, id, expires_at, record) VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &hash.as_slice(),
                        &uuid(record.app.as_u128()),
                        &uuid(record.id.as_u128()),
                        &record.expires_at,
                        &Json(record),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    /// The portal session whose token has this hash (expired or not).
    pub fn portal_session(&self, hash: &[u8; 32]) -> Result<Option<PortalSessionRecord>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client.q_opt("SELECT record FROM portal_sessions WHERE hash = $1", &[&hash.as_slice()]).await?;
            Ok(row.map(|row| row.get::<_, Json<PortalSessionRecord>>(0).0))
        })
    }

    /// Ends a portal session of `owner`'s application now. `false`: no such session there.
    pub fn revoke_portal_session(&self, owner: Owner, id: PortalSessionId) -> Result<bool, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let n = client
                .exec(
                    "DELETE FROM portal_sessions WHERE app = $1 AND id = $2",
                    &[&uuid(owner.app.as_u128()), &uuid(id.as_u128())],
                )
                .await?;
            Ok(n > 0)
        })
    }
}
