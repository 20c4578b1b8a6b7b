//! Applications: the tenants that own endpoints, events, deliveries, sessions,
//! statistics and idempotency records. Every object table is keyed by its application
//! first, so one application's objects form one contiguous range that no key of another
//! can reach. Each mode has a default application, made with the data file.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use crate::ids::AppId;
use crate::mode::Mode;
use crate::store::backend::Apps;
use crate::store::model::{AppRecord, DefaultApps, ListError, Owner, Page, PageRequest, StoreError, UidTaken};

use super::pagination::list_page;
use super::{RedbStore, decode_found, encode, tables};

pub(super) const TABLE: &str = "apps";

/// The key of an application in [`tables::APPS`].
fn key(mode: Mode, id: AppId) -> (u128, u128) {
    (u128::from(mode.as_u8()), id.as_u128())
}

/// Makes each mode's default application if it has none yet, inside `tx`; returns both.
pub(super) fn ensure_defaults(tx: &WriteTransaction, now: i64) -> Result<DefaultApps, StoreError> {
    let mut defaults = tx.open_table(tables::DEFAULT_APPS)?;
    let mut apps = tx.open_table(tables::APPS)?;
    let mut ids = [AppId(0); 2];
    for mode in [Mode::Test, Mode::Live] {
        let found = defaults.get(mode.as_u8())?.map(|v| AppId(v.value()));
        let id = match found {
            Some(id) => id,
            None => {
                let record = AppRecord::default_of(mode, now);
                apps.insert(key(mode, record.id), encode(TABLE, &record)?.as_slice())?;
                defaults.insert(mode.as_u8(), record.id.as_u128())?;
                record.id
            }
        };
        ids[usize::from(mode.as_u8())] = id;
    }
    Ok(DefaultApps { test: ids[0], live: ids[1] })
}

/// The application `owner` names, from `apps`.
pub(super) fn get_in(
    apps: &impl ReadableTable<(u128, u128), &'static [u8]>,
    owner: Owner,
) -> Result<Option<AppRecord>, StoreError> {
    decode_found(TABLE, apps.get(key(owner.mode, owner.app))?)
}

impl Apps for RedbStore {
    async fn default_apps(&self) -> Result<DefaultApps, StoreError> {
        self.read(|tx| {
            let defaults = tx.open_table(tables::DEFAULT_APPS)?;
            let get = |mode: Mode| -> Result<AppId, StoreError> {
                let found = defaults.get(mode.as_u8())?.map(|v| AppId(v.value()));
                found.ok_or(StoreError::BadKey { table: "default_apps" })
            };
            Ok(DefaultApps { test: get(Mode::Test)?, live: get(Mode::Live)? })
        })
    }

    async fn create_app(&self, record: AppRecord) -> Result<Result<(), UidTaken>, StoreError> {
        let bytes = encode(TABLE, &record)?;
        self.write(|tx| {
            if let Some(uid) = &record.uid {
                let mut uids = tx.open_table(tables::APP_UIDS)?;
                if let Some(by) = uids.get((record.mode.as_u8(), uid.as_str()))?.map(|v| AppId(v.value())) {
                    return Ok(Err(UidTaken { by }));
                }
                uids.insert((record.mode.as_u8(), uid.as_str()), record.id.as_u128())?;
            }
            tx.open_table(tables::APPS)?.insert(key(record.mode, record.id), bytes.as_slice())?;
            Ok(Ok(()))
        })
    }

    async fn find_app(&self, mode: Mode, name: String) -> Result<Option<AppRecord>, StoreError> {
        self.read(|tx| {
            let id = match name.parse::<AppId>() {
                Ok(id) => Some(id),
                Err(_) => {
                    tx.open_table(tables::APP_UIDS)?.get((mode.as_u8(), name.as_str()))?.map(|v| AppId(v.value()))
                }
            };
            let Some(id) = id else { return Ok(None) };
            decode_found(TABLE, tx.open_table(tables::APPS)?.get(key(mode, id))?)
        })
    }

    /// Changes an application with `change`, keeping the uid index in step. `Ok(None)`: no
    /// such application; `Err(UidTaken)` inside: the new uid names another (nothing is
    /// written).
    async fn update_app(
        &self,
        mode: Mode,
        id: AppId,
        change: impl FnOnce(&mut AppRecord) + Send + 'static,
    ) -> Result<Result<Option<AppRecord>, UidTaken>, StoreError> {
        self.write(|tx| {
            let mut apps = tx.open_table(tables::APPS)?;
            let found: Option<AppRecord> = decode_found(TABLE, apps.get(key(mode, id))?)?;
            let Some(mut record) = found else { return Ok(Ok(None)) };
            let before = record.uid.clone();
            change(&mut record);
            if record.uid != before {
                let mut uids = tx.open_table(tables::APP_UIDS)?;
                if let Some(uid) = &record.uid
                    && let Some(by) = uids.get((mode.as_u8(), uid.as_str()))?.map(|v| AppId(v.value()))
                    && by != id
                {
                    return Ok(Err(UidTaken { by }));
                }
                if let Some(old) = &before {
                    uids.remove((mode.as_u8(), old.as_str()))?;
                }
                if let Some(uid) = &record.uid {
                    uids.insert((mode.as_u8(), uid.as_str()), id.as_u128())?;
                }
            }
            apps.insert(key(mode, id), encode(TABLE, &record)?.as_slice())?;
            Ok(Ok(Some(record)))
        })
    }

    async fn list_apps(&self, mode: Mode, request: PageRequest<AppId>) -> Result<Page<AppRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let table = tx.open_table(tables::APPS).map_err(StoreError::from)?;
            list_page(&table, TABLE, u128::from(mode.as_u8()), request, |_| true)
        })
    }

    async fn app(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, StoreError> {
        self.read(|tx| get_in(&tx.open_table(tables::APPS)?, Owner { app: id, mode }))
    }

    #[cfg(test)]
    async fn test_owner(&self, mode: Mode) -> crate::store::model::Owner {
        self.default_apps().await.expect("default apps").of(mode)
    }
}
