//! Applications on Postgres: rows of `apps`, the uid a unique column per mode, each
//! mode's default in `default_apps`.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;

use crate::ids::AppId;
use crate::mode::Mode;
use crate::store::backend::Apps;

use super::cached::Cached;
use super::pagination::{ListQuery, list};
use super::{PgStore, id_of, uuid};
use crate::store::model::Owner;
use crate::store::model::Page;
use crate::store::model::PageRequest;
use crate::store::model::UidTaken;
use crate::store::model::{AppRecord, DefaultApps, ListError, StoreError};

/// The name of the unique index on `(mode, uid)`.
const UID_INDEX: &str = "apps_uid";

/// Makes each mode's default application if it has none yet (under the migration lock, so
/// processes starting together make one each, not one per process).
pub(super) async fn ensure_defaults(client: &mut deadpool_postgres::Object, now: i64) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    for mode in [Mode::Test, Mode::Live] {
        let mode_key = i16::from(mode.as_u8());
        if tx.q_opt("SELECT app FROM default_apps WHERE mode = $1", &[&mode_key]).await?.is_some() {
            continue;
        }
        let record = AppRecord::default_of(mode, now);
        let id = uuid(record.id.as_u128());
        tx.exec(
            "INSERT INTO apps (id, mode, uid, record) VALUES ($1, $2, NULL, $3)",
            &[&id, &mode_key, &Json(&record)],
        )
        .await?;
        tx.exec("INSERT INTO default_apps (mode, app) VALUES ($1, $2)", &[&mode_key, &id]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a failed statement broke the uid's uniqueness.
fn is_uid_taken(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| db.constraint() == Some(UID_INDEX))
}

impl PgStore {
    /// The id of the application of `mode` with this uid.
    async fn app_with_uid(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        mode: Mode,
        uid: &str,
    ) -> Result<Option<AppId>, StoreError> {
        let row =
            client.q_opt("SELECT id FROM apps WHERE mode = $1 AND uid = $2", &[&i16::from(mode.as_u8()), &uid]).await?;
        Ok(row.map(|row| AppId(id_of(row.get(0)))))
    }
}

/// The application `owner` names.
pub(super) async fn get_in(client: &impl GenericClient, owner: Owner) -> Result<Option<AppRecord>, StoreError> {
    let (id, mode) = (uuid(owner.app.as_u128()), i16::from(owner.mode.as_u8()));
    let row = client.q_opt("SELECT record FROM apps WHERE id = $1 AND mode = $2", &[&id, &mode]).await?;
    Ok(row.map(|row| row.get::<_, Json<AppRecord>>(0).0))
}

impl Apps for PgStore {
    async fn default_apps(&self) -> Result<DefaultApps, StoreError> {
        let client = self.client().await?;
        let rows = client.q("SELECT mode, app FROM default_apps", &[]).await?;
        let find = |mode: Mode| {
            rows.iter()
                .find(|row| row.get::<_, i16>(0) == i16::from(mode.as_u8()))
                .map(|row| AppId(id_of(row.get(1))))
                .ok_or(StoreError::BadKey { table: "default_apps" })
        };
        Ok(DefaultApps { test: find(Mode::Test)?, live: find(Mode::Live)? })
    }

    async fn create_app(&self, record: AppRecord) -> Result<Result<(), UidTaken>, StoreError> {
        let client = self.client().await?;
        let inserted = client
            .exec(
                "INSERT INTO apps (id, mode, uid, record) VALUES ($1, $2, $3, $4)",
                &[&uuid(record.id.as_u128()), &i16::from(record.mode.as_u8()), &record.uid, &Json(&record)],
            )
            .await;
        match inserted {
            Ok(_) => Ok(Ok(())),
            Err(err) if is_uid_taken(&err) => {
                let uid = record.uid.as_deref().unwrap_or_default();
                Ok(Err(UidTaken { by: self.app_with_uid(&client, record.mode, uid).await?.unwrap_or(AppId(0)) }))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn find_app(&self, mode: Mode, name: String) -> Result<Option<AppRecord>, StoreError> {
        match name.parse::<AppId>() {
            Ok(id) => self.app(mode, id).await,
            Err(_) => {
                async {
                    let client = self.client().await?;
                    let row = client
                        .q_opt(
                            "SELECT record FROM apps WHERE mode = $1 AND uid = $2",
                            &[&i16::from(mode.as_u8()), &name],
                        )
                        .await?;
                    Ok(row.map(|row| row.get::<_, Json<AppRecord>>(0).0))
                }
                .await
            }
        }
    }

    async fn update_app(
        &self,
        mode: Mode,
        id: AppId,
        change: impl FnOnce(&mut AppRecord) + Send + 'static,
    ) -> Result<Result<Option<AppRecord>, UidTaken>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .q_opt(
                "SELECT record FROM apps WHERE id = $1 AND mode = $2 FOR UPDATE",
                &[&uuid(id.as_u128()), &i16::from(mode.as_u8())],
            )
            .await?;
        let Some(row) = row else { return Ok(Ok(None)) };
        let mut record = row.get::<_, Json<AppRecord>>(0).0;
        change(&mut record);
        let updated = tx
            .exec(
                "UPDATE apps SET uid = $2, record = $3 WHERE id = $1",
                &[&uuid(id.as_u128()), &record.uid, &Json(&record)],
            )
            .await;
        match updated {
            Ok(_) => {
                tx.commit().await?;
                Ok(Ok(Some(record)))
            }
            Err(err) if is_uid_taken(&err) => {
                drop(tx);
                let uid = record.uid.as_deref().unwrap_or_default();
                Ok(Err(UidTaken { by: self.app_with_uid(&client, mode, uid).await?.unwrap_or(AppId(0)) }))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn list_apps(&self, mode: Mode, request: PageRequest<AppId>) -> Result<Page<AppRecord>, ListError> {
        let mode_key = i16::from(mode.as_u8());
        let client = self.client().await?;
        let query = ListQuery {
            select: "SELECT record FROM apps WHERE mode = $1",
            params: vec![&mode_key],
            id: "id",
            exists: Some("SELECT 1 FROM apps WHERE mode = $1 AND id = $2"),
            scope: &mode_key,
        };
        list(&client, query, request, |row| Ok(row.get::<_, Json<AppRecord>>(0).0)).await
    }

    async fn app(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, StoreError> {
        get_in(&self.client().await?, Owner { app: id, mode }).await
    }

    #[cfg(test)]
    async fn test_owner(&self, mode: Mode) -> Owner {
        self.default_apps().await.expect("default apps").of(mode)
    }
}
