//! Applications (tenants) and API keys: who owns what the store keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, EndpointId};
use crate::mode::Mode;
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
    /// How the app portal looks for its customers.
    #[serde(default, skip_serializing_if = "Branding::is_empty")]
    pub branding: Branding,
}

/// How the app portal looks for one application's customers; what is unset falls back
/// to `[portal]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// The name shown in the portal's header (default: the application's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An `https://` image shown beside the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// The portal's accent colour, `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<String>,
}

impl Branding {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Branding::default()
    }

    /// What is wrong with it, if anything, as (field, message): a display name must be 1
    /// to 120 characters, a logo an `https://` URL of at most 2048, a colour `#rrggbb`.
    pub fn problem(&self) -> Option<(&str, String)> {
        if let Some(name) = &self.display_name {
            let chars = name.chars().count();
            if chars == 0 || chars > 120 || name.trim().is_empty() {
                return Some(("display_name", "`display_name` must be 1 to 120 characters.".into()));
            }
        }
        if let Some(logo) = &self.logo_url {
            let ok =
                logo.len() <= 2048 && url::Url::parse(logo).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
            if !ok {
                let message = "`logo_url` must be the https URL of an image, at most 2048 characters.";
                return Some(("logo_url", message.into()));
            }
        }
        if let Some(color) = &self.accent_color {
            let hex = color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Some(("accent_color", format!("`accent_color` must be a colour like #1f4b99, not `{color}`.")));
            }
        }
        None
    }

    /// This branding, with what it leaves unset taken from `defaults`.
    pub fn or(self, defaults: &Branding) -> Branding {
        Branding {
            display_name: self.display_name.or_else(|| defaults.display_name.clone()),
            logo_url: self.logo_url.or_else(|| defaults.logo_url.clone()),
            accent_color: self.accent_color.or_else(|| defaults.accent_color.clone()),
        }
    }
}

impl AppRecord {
    /// A new default application of `mode`, made at `now` (Unix seconds).
    pub fn default_of(mode: Mode, now: i64) -> Self {
        AppRecord {
            id: AppId::new(),
            mode,
            name: format!("Default ({mode})"),
            uid: None,
            metadata: BTreeMap::new(),
            default: true,
            created: now,
            branding: Branding::default(),
        }
    }

    /// Whose its objects are.
    pub fn owner(&self) -> Owner {
        Owner { app: self.id, mode: self.mode }
    }
}

/// The application of `mode` that holds the operational webhook endpoints
/// (`crate::operational`): a fixed id laid out as a version 7 UUID of time zero, which no
/// application stile makes can have. It has no record, so no key, list or portal names it;
/// what the store keeps per application (retention) takes it in too.
pub fn operational_app(mode: Mode) -> AppId {
    AppId((0x7 << 76) | (0b10 << 62) | (1 + u128::from(mode.as_u8())))
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

/// Why an application was not stored: its uid names another application of its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidTaken {
    /// The application that has the uid.
    pub by: AppId,
}

/// What [`QueueWrites::delete_app`](crate::store::QueueWrites::delete_app) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppDeletion {
    /// The application is gone; its history is being purged.
    Deleted {
        /// The application as it was.
        app: Box<AppRecord>,
        /// Its endpoints, deleted.
        endpoints: usize,
        /// Pending deliveries that ended (as failed, "application deleted").
        deliveries_ended: usize,
        /// Restricted API keys revoked.
        keys_revoked: usize,
        /// Its listener endpoints (`stile listen`), whose connections are to end.
        listeners: Vec<EndpointId>,
    },
    /// The mode's default application, which cannot be deleted; nothing changed.
    IsDefault,
    /// No such application in that mode.
    NotFound,
}

/// What one [`Store::purge_deleted_apps`](crate::store::Store::purge_deleted_apps) batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppPurge {
    /// Rows removed.
    pub removed: usize,
    /// Deleted applications left with nothing to purge and forgotten.
    pub finished: usize,
    /// Whether the batch was full: call again.
    pub more: bool,
}

/// What is known about a stored key, besides its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The mode prefix and first characters, e.g. `vk_test_AbC123xY`.
    pub prefix: String,
    /// The mode the key works in.
    pub mode: Mode,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// The one application the key may act on, if it is app-restricted (what an operator
    /// hands to one customer's integration); `None`: every application of its mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
}

/// What [`Store::revoke_api_key`](crate::store::Store::revoke_api_key) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This key was revoked.
    One(ApiKeyRecord),
    /// No key has that prefix; nothing changed.
    NoMatch,
    /// These keys all have that prefix; nothing changed.
    Ambiguous(Vec<ApiKeyRecord>),
}
