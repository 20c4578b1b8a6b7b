//! Small records on Postgres: event types created through the API, stored responses of
//! idempotent requests (sealed, as on redb), and app portal sessions.

use tokio_postgres::types::Json;

use super::cached::Cached;
use super::{PgStore, uuid};
use crate::event_types::EventTypeRecord;
use crate::ids::PortalSessionId;
use crate::store::model::sessions::{IN_PROGRESS_STALE_SECS, WINDOW_SECS};
use crate::store::model::{IdempotencyBegin, IdempotencyRecord, Owner, PortalSessionRecord, StoreError};

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

    /// Begins a request with this key at `now`. Processes share the database, so the key
    /// is held in it: a marker is written under the key unless an answer within the
    /// window or a live marker of another request is there, in one statement, so of two
    /// processes racing for a key exactly one runs.
    pub fn begin_idempotent(
        &self,
        owner: Owner,
        key: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let marker = IdempotencyRecord::in_progress(fingerprint, now);
        let found = self.run(async {
            let client = self.client().await?;
            let app = uuid(owner.app.as_u128());
            let claimed = client
                .q_opt(
                    "INSERT INTO idempotency (app, key, created, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (app, key) DO UPDATE SET created = excluded.created, record = excluded.record
                     WHERE CASE WHEN (idempotency.record->>'status')::int = 0
                                THEN idempotency.created <= $3 - $5
                                ELSE idempotency.created <= $3 - $6 END
                     RETURNING 1",
                    &[&app, &key, &now, &Json(&marker), &IN_PROGRESS_STALE_SECS, &WINDOW_SECS],
                )
                .await?;
            if claimed.is_some() {
                return Ok(None);
            }
            let row = client.q_opt("SELECT record FROM idempotency WHERE app = $1 AND key = $2", &[&app, &key]).await?;
            // Gone since the insert lost (its request stored no answer): still in use a
            // moment ago, so the caller hears that and retries.
            Ok(Some(row.map(|row| row.get::<_, Json<IdempotencyRecord>>(0).0).unwrap_or(marker)))
        })?;
        let Some(found) = found else { return Ok(IdempotencyBegin::Run) };
        if found.is_in_progress() {
            return Ok(IdempotencyBegin::InProgress);
        }
        Ok(IdempotencyRecord::begin(Some(found.opened(&self.sealer, owner, key)?), now))
    }

    /// Lets go of a key whose request stored no answer: removes its marker (the one it
    /// wrote at `since` for `fingerprint`: a marker another request took over after this
    /// one's went stale is left alone), so the client may retry the (corrected) request
    /// with the same key at once.
    pub fn abandon_idempotent(&self, owner: Owner, key: &str, fingerprint: &str, since: i64) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .exec(
                    "DELETE FROM idempotency WHERE app = $1 AND key = $2 AND (record->>'status')::int = 0
                       AND created = $3 AND record->>'fingerprint' = $4",
                    &[&uuid(owner.app.as_u128()), &key, &since, &fingerprint],
                )
                .await?;
            Ok(())
        })
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
