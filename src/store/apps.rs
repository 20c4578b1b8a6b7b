//! Applications: the tenants that own endpoints, events, deliveries, sessions,
//! statistics and idempotency records. Every object table is keyed by its application
//! first, so one application's objects form one contiguous range that no key of another
//! can reach. Each mode has a default application, made with the data file.

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode_found, encode, tables};
use crate::ids::AppId;
use crate::mode::Mode;

pub(super) const TABLE: &str = "apps";

/// Whose an object is: its application, and the application's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The application.
    pub app: AppId,
    /// Its mode (test or live).
    pub mode: Mode,
}

/// An application as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Its id.
    pub id: AppId,
    /// Its mode.
    pub mode: Mode,
    /// A name for people.
    pub name: String,
    /// The platform's own id for it, unique per mode.
    pub uid: Option<String>,
    /// String pairs for the platform's own use.
    pub metadata: BTreeMap<String, String>,
    /// Whether it is its mode's default application (the one requests act on unless they
    /// name another).
    pub default: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
}

impl AppRecord {
    /// Whose its objects are.
    pub fn owner(&self) -> Owner {
        Owner { app: self.id, mode: self.mode }
    }
}

/// The default applications of both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultApps {
    /// Test mode's.
    pub test: AppId,
    /// Live mode's.
    pub live: AppId,
}

impl DefaultApps {
    /// The default application of `mode`, as an owner.
    pub fn of(&self, mode: Mode) -> Owner {
        let app = match mode {
            Mode::Test => self.test,
            Mode::Live => self.live,
        };
        Owner { app, mode }
    }
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
                let record = AppRecord {
                    id: AppId::new(),
                    mode,
                    name: format!("Default ({mode})"),
                    uid: None,
                    metadata: BTreeMap::new(),
                    default: true,
                    created: now,
                };
                apps.insert((mode.as_u8(), record.id.as_u128()), encode(TABLE, &record)?.as_slice())?;
                defaults.insert(mode.as_u8(), record.id.as_u128())?;
                record.id
            }
        };
        ids[usize::from(mode.as_u8())] = id;
    }
    Ok(DefaultApps { test: ids[0], live: ids[1] })
}

impl Store {
    /// The default applications of both modes.
    pub fn default_apps(&self) -> Result<DefaultApps, StoreError> {
        self.read(|tx| {
            let defaults = tx.open_table(tables::DEFAULT_APPS)?;
            let get = |mode: Mode| -> Result<AppId, StoreError> {
                let found = defaults.get(mode.as_u8())?.map(|v| AppId(v.value()));
                found.ok_or(StoreError::BadKey { table: "default_apps" })
            };
            Ok(DefaultApps { test: get(Mode::Test)?, live: get(Mode::Live)? })
        })
    }

    /// The application with this id in this mode.
    pub fn app(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, StoreError> {
        self.read(|tx| decode_found(TABLE, tx.open_table(tables::APPS)?.get((mode.as_u8(), id.as_u128()))?))
    }
}

#[cfg(test)]
impl Store {
    /// The default application of `mode`, for tests of the pieces below the API.
    pub(crate) fn test_owner(&self, mode: Mode) -> Owner {
        self.default_apps().expect("default apps").of(mode)
    }
}

#[cfg(test)]
impl Store {
    /// Stores another application of `mode` (the API for making them is still to come).
    pub(crate) fn insert_app_for_test(&self, mode: Mode, name: &str) -> Owner {
        let record = AppRecord {
            id: AppId::new(),
            mode,
            name: name.to_string(),
            uid: None,
            metadata: BTreeMap::new(),
            default: false,
            created: 0,
        };
        self.write(|tx| {
            tx.open_table(tables::APPS)?
                .insert((mode.as_u8(), record.id.as_u128()), encode(TABLE, &record)?.as_slice())?;
            Ok(())
        })
        .unwrap();
        record.owner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::endpoints::EndpointRecord;
    use crate::store::pagination::{Cursor, PageRequest};

    #[test]
    fn every_data_file_has_one_default_application_per_mode_that_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let defaults = store.default_apps().unwrap();
        assert_ne!(defaults.test, defaults.live);
        let test = store.app(Mode::Test, defaults.test).unwrap().unwrap();
        assert!(test.default && test.mode == Mode::Test && test.name == "Default (test)");
        assert!(store.app(Mode::Live, defaults.test).unwrap().is_none(), "an app is found only in its mode");
        drop(store);
        assert_eq!(Store::open(dir.path()).unwrap().default_apps().unwrap(), defaults, "made once");
    }

    #[test]
    fn one_applications_endpoints_events_and_deliveries_are_out_of_anothers_reach() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.test_owner(Mode::Test);
        let second = store.insert_app_for_test(Mode::Test, "second");
        let endpoint = EndpointRecord::for_test(first, "http://127.0.0.1:9/", "*");
        store.insert_endpoint(&endpoint).unwrap();
        let page = PageRequest { limit: 10, cursor: Cursor::Start };

        assert!(store.endpoint(second, endpoint.id).unwrap().is_none());
        assert!(store.list_endpoints(second, page).unwrap().items.is_empty());
        assert_eq!(store.list_endpoints(first, page).unwrap().items.len(), 1);

        // An event of the second application reaches none of the first's endpoints, even
        // one subscribed to everything; the first's own event does.
        let other = crate::payload::new_event(second, "a.b", &serde_json::json!({}), 0).unwrap();
        let own = crate::payload::new_event(first, "a.b", &serde_json::json!({}), 0).unwrap();
        let (published, _) = store.publish_events(&[other.clone(), own.clone()], 0).unwrap();
        assert_eq!(published.iter().map(|p| p.deliveries).collect::<Vec<_>>(), [0, 1]);
        assert!(store.event(first, other.meta.id).unwrap().is_none());
        assert!(store.event(second, own.meta.id).unwrap().is_none());
        assert!(
            store
                .list_attempts(second, endpoint.id, PageRequest { limit: 10, cursor: Cursor::Start }, None)
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(
            store
                .list_attempts(first, endpoint.id, PageRequest { limit: 10, cursor: Cursor::Start }, None)
                .unwrap()
                .items
                .len(),
            1
        );
    }
}
