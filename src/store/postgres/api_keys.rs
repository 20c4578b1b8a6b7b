//! API keys on Postgres, stored by hash as on redb.

use tokio_postgres::types::Json;

use crate::store::backend::ApiKeys;
use crate::store::model::{ApiKeyRecord, Revoked, StoreError};

use super::PgStore;
use super::cached::Cached;

/// `text` with LIKE's wildcards escaped (by `\`).
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl ApiKeys for PgStore {
    async fn insert_api_key(&self, hash: [u8; 32], record: ApiKeyRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO api_keys (hash, record) VALUES ($1, $2)
                 ON CONFLICT (hash) DO UPDATE SET record = excluded.record",
                &[&hash.as_slice(), &Json(record)],
            )
            .await?;
        Ok(())
    }

    async fn api_keys(&self) -> Result<Vec<([u8; 32], ApiKeyRecord)>, StoreError> {
        let mut keys = async {
            let client = self.client().await?;
            let rows = client.q("SELECT hash, record FROM api_keys", &[]).await?;
            rows.iter()
                .map(|row| {
                    let hash: &[u8] = row.get(0);
                    let hash: [u8; 32] = hash.try_into().map_err(|_| StoreError::BadKey { table: "api_keys" })?;
                    Ok((hash, row.get::<_, Json<ApiKeyRecord>>(1).0))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        }
        .await?;
        keys.sort_by(|a, b| a.1.created.cmp(&b.1.created).then_with(|| a.1.prefix.cmp(&b.1.prefix)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, prefix: String) -> Result<Revoked, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let pattern = format!("{}%", like_escape(&prefix));
        let rows = tx
            .q("SELECT hash, record FROM api_keys WHERE record->>'prefix' LIKE $1 ESCAPE '\\' FOR UPDATE", &[&pattern])
            .await?;
        let mut matches: Vec<(Vec<u8>, ApiKeyRecord)> =
            rows.iter().map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Json<ApiKeyRecord>>(1).0)).collect();
        let revoked = match matches.len() {
            0 => Revoked::NoMatch,
            1 => {
                let (hash, record) = matches.remove(0);
                tx.exec("DELETE FROM api_keys WHERE hash = $1", &[&hash]).await?;
                Revoked::One(record)
            }
            _ => Revoked::Ambiguous(matches.into_iter().map(|(_, r)| r).collect()),
        };
        tx.commit().await?;
        Ok(revoked)
    }
}
