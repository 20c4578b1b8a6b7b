//! Application operations: find one by name (remembered), create, update and delete.
//! The rules that are not about one API's shapes live here: how a new application is
//! made, that a uid names one application of a mode, that the default application stays,
//! and what else must forget an application whose names change or which is deleted (the
//! names remembered, the keys restricted to it).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ApiKeys, AppNames, ServiceError};
use crate::delivery::Engine;
use crate::ids::AppId;
use crate::mode::Mode;
use crate::store::Store;
use crate::store::model::{AppDeletion, AppRecord, Branding, Owner, Page, PageRequest};

/// A checked create request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewApp {
    /// The name.
    pub name: String,
    /// The uid, if any.
    pub uid: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// How the app portal looks.
    pub branding: Branding,
}

/// A checked update request: what is named replaces what was there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new (or removed) uid.
    pub uid: Option<Option<String>>,
    /// New metadata.
    pub metadata: Option<BTreeMap<String, String>>,
    /// New branding.
    pub branding: Option<Branding>,
}

impl AppChanges {
    /// Applies the changes to a stored application.
    fn apply(self, record: &mut AppRecord) {
        if let Some(name) = self.name {
            record.name = name;
        }
        if let Some(uid) = self.uid {
            record.uid = uid;
        }
        if let Some(metadata) = self.metadata {
            record.metadata = metadata;
        }
        if let Some(branding) = self.branding {
            record.branding = branding;
        }
    }
}

/// The application operations, over the engine, the store and what this process keeps
/// in memory about applications.
pub struct Apps<'a> {
    /// What deletions go through, and time.
    pub engine: &'a Engine,
    /// Where applications are kept.
    pub store: &'a Arc<Store>,
    /// The accepted API keys: a deleted application's restricted keys leave them.
    pub keys: &'a ApiKeys,
    /// The names remembered: forgotten when an application's names change or it goes.
    pub names: &'a AppNames,
}

impl Apps<'_> {
    /// The application `name` (an id or uid) names in `mode`, remembered once found (so
    /// naming it again reads nothing).
    pub async fn resolve(&self, mode: Mode, name: &str) -> Result<Option<Owner>, ServiceError> {
        if let Some(owner) = self.names.get(mode, name) {
            return Ok(Some(owner));
        }
        let wanted = name.to_string();
        let found = self.store.find_app(mode, wanted).await?;
        Ok(found.map(|app| {
            self.names.insert(mode, name.to_string(), app.owner());
            app.owner()
        }))
    }

    /// The application `name` (an id or uid) names in `mode`, as stored.
    pub async fn find(&self, mode: Mode, name: &str) -> Result<Option<AppRecord>, ServiceError> {
        Ok(self.store.find_app(mode, name.to_string()).await?)
    }

    /// A page of `mode`'s applications, newest first.
    pub async fn list(&self, mode: Mode, request: PageRequest<AppId>) -> Result<Page<AppRecord>, ServiceError> {
        Ok(self.store.list_apps(mode, request).await?)
    }

    /// Stores a new application of `mode` (never a default one) from a checked request;
    /// refuses a uid another application of the mode has.
    pub async fn create(&self, mode: Mode, input: NewApp) -> Result<AppRecord, ServiceError> {
        let record = AppRecord {
            id: AppId::new(),
            mode,
            name: input.name,
            uid: input.uid,
            metadata: input.metadata,
            default: false,
            created: self.engine.clock().now(),
            branding: input.branding,
        };
        let stored = record.clone();
        match self.store.create_app(stored).await? {
            Ok(()) => Ok(record),
            Err(taken) => Err(ServiceError::UidTaken { uid: record.uid.unwrap_or_default(), by: taken.by }),
        }
    }

    /// Applies checked changes to application `id` of `mode`; refuses a uid another
    /// application of the mode has. Names remembered are forgotten, as a uid may have
    /// changed hands. `None`: no such application.
    pub async fn update(&self, mode: Mode, id: AppId, changes: AppChanges) -> Result<Option<AppRecord>, ServiceError> {
        let wanted_uid = changes.uid.clone().flatten();
        let updated = self.store.update_app(mode, id, |record| changes.apply(record)).await?;
        match updated {
            Ok(Some(record)) => {
                self.names.clear();
                Ok(Some(record))
            }
            Ok(None) => Ok(None),
            Err(taken) => Err(ServiceError::UidTaken { uid: wanted_uid.unwrap_or_default(), by: taken.by }),
        }
    }

    /// Deletes application `id` of `mode` and everything it owns (see
    /// [`Engine::delete_app`]); its restricted keys stop working at once and the names
    /// remembered are forgotten. The mode's default application is refused. Returns the
    /// application as it was; `None`: no such application.
    pub async fn delete(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, ServiceError> {
        match self.engine.delete_app(mode, id).await? {
            AppDeletion::Deleted { app, endpoints, deliveries_ended, keys_revoked, .. } => {
                self.keys.forget_app(app.id);
                self.names.clear();
                tracing::info!(app = %app.id, endpoints, deliveries_ended, keys_revoked, "application deleted");
                Ok(Some(*app))
            }
            AppDeletion::IsDefault => Err(ServiceError::DefaultApp { app: id, mode }),
            AppDeletion::NotFound => Ok(None),
        }
    }
}
