//! Stored answers of idempotent requests on Postgres (sealed, as on redb), and the marker
//! rows that hold a key while its first request runs.

use tokio_postgres::types::Json;

use crate::store::backend::Idempotency;
use crate::store::model::sessions::{IN_PROGRESS_STALE_SECS, WINDOW_SECS};
use crate::store::model::{IdempotencyBegin, IdempotencyRecord, Owner, StoreError};

use super::cached::Cached;
use super::{PgStore, uuid};

/// How many times a request tries to claim a key whose row vanishes between the claim and
/// the read (its holder let go, or retention pruned its answer) before it is told the key
/// is in use.
const CLAIM_TRIES: usize = 3;

impl Idempotency for PgStore {
    /// Begins a request with this key at `now`. Processes share the database, so the key
    /// is held in it: a marker is written under the key unless an answer within the
    /// window or a live marker of another request is there, in one statement, so of two
    /// processes racing for a key exactly one runs.
    async fn begin_idempotent(
        &self,
        owner: Owner,
        key: String,
        fingerprint: String,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let marker = IdempotencyRecord::in_progress(&fingerprint, now);
        let found = async {
            let client = self.client().await?;
            let app = uuid(owner.app.as_u128());
            // The row the insert lost to can be gone by the time it is read: its request
            // let go of the key, or retention pruned its answer. Either way the key is
            // free now, so the insert is tried again; a key that keeps changing hands
            // that fast is in use.
            for _ in 0..CLAIM_TRIES {
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
                    return Ok::<_, StoreError>(None);
                }
                let row =
                    client.q_opt("SELECT record FROM idempotency WHERE app = $1 AND key = $2", &[&app, &key]).await?;
                if let Some(row) = row {
                    return Ok(Some(row.get::<_, Json<IdempotencyRecord>>(0).0));
                }
            }
            Ok(Some(marker))
        }
        .await?;
        let Some(found) = found else { return Ok(IdempotencyBegin::Run) };
        if found.is_in_progress() {
            return Ok(IdempotencyBegin::InProgress);
        }
        Ok(IdempotencyRecord::begin(Some(found.opened(&self.sealer, owner, &key)?), now))
    }

    /// Lets go of a key whose request stored no answer: removes its marker (the one it
    /// wrote at `since` for `fingerprint`: a marker another request took over after this
    /// one's went stale is left alone), so the client may retry the (corrected) request
    /// with the same key at once.
    async fn abandon_idempotent(
        &self,
        owner: Owner,
        key: String,
        fingerprint: String,
        since: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "DELETE FROM idempotency WHERE app = $1 AND key = $2 AND (record->>'status')::int = 0
                   AND created = $3 AND record->>'fingerprint' = $4",
                &[&uuid(owner.app.as_u128()), &key, &since, &fingerprint],
            )
            .await?;
        Ok(())
    }

    async fn put_idempotency_record(
        &self,
        owner: Owner,
        key: String,
        record: IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let sealed = record.sealed(&self.sealer, owner, &key);
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO idempotency (app, key, created, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (app, key) DO UPDATE SET created = excluded.created, record = excluded.record",
                &[&uuid(owner.app.as_u128()), &key, &record.created, &Json(&sealed)],
            )
            .await?;
        Ok(())
    }
}
