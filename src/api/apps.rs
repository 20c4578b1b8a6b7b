//! `/v1/apps`: applications, the tenants a platform sends webhooks for. Create, retrieve,
//! update, list and delete; an application is named by its id or its uid wherever one is
//! taken. An app-restricted key may retrieve its own application and nothing else here.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};

use super::extract::{JsonBody, QueryParams, nullable};
use super::list::{ListResponse, PageQuery};
use super::metadata::validate_metadata;
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::AppId;
use crate::service::apps::{AppChanges, NewApp};
use crate::store::model::{AppRecord, Branding};

/// The longest name, in characters.
const MAX_NAME_CHARS: usize = 120;

/// The longest uid, in characters.
const MAX_UID_CHARS: usize = 64;

/// `limit` when a list request gives none.
const DEFAULT_LIST_LIMIT: usize = 10;

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/apps";

/// The OpenAPI tag of the application routes.
const TAG: &str = "Applications";

/// Mounts the application routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_apps).service(create_app).service(retrieve_app).service(update_app).service(delete_app);
}

/// The body of `POST /v1/apps`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Inc.", "uid": "acme", "metadata": {"plan": "pro"}}))]
pub struct AppIn {
    /// Required: a name for people, 1 to 120 characters.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 120)]
    pub name: Option<String>,
    /// Your own id for it: 1 to 64 of `A-Z a-z 0-9 _ . -`, unique in the mode, usable
    /// wherever an application id is.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub uid: Option<String>,
    /// String pairs (at most 50 keys of 40 characters, values of 500).
    pub metadata: Option<BTreeMap<String, String>>,
    /// How the app portal looks for its customers.
    pub branding: Option<Branding>,
}

/// The body of `POST /v1/apps/:id`: what it names replaces what was there; `null` clears
/// `uid` and `metadata`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Corp."}))]
pub struct AppUpdate {
    /// A new name.
    #[schema(value_type = String, min_length = 1, max_length = 120)]
    pub name: Option<String>,
    /// A new uid; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub uid: Option<Option<String>>,
    /// New metadata, replacing the old; `null` removes all.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    /// New branding, replacing the old; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Branding>)]
    pub branding: Option<Option<Branding>>,
}

impl AppIn {
    /// Checks every rule of a create request.
    fn validate(self) -> Result<NewApp, ApiError> {
        let name = validate_name(self.name.ok_or_else(|| ApiError::missing("name"))?)?;
        let uid = self.uid.map(validate_uid).transpose()?;
        let metadata = self.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        let branding = validate_branding(self.branding.unwrap_or_default())?;
        Ok(NewApp { name, uid, metadata, branding })
    }
}

impl AppUpdate {
    /// Checks every rule of an update request.
    fn validate(self) -> Result<AppChanges, ApiError> {
        Ok(AppChanges {
            name: self.name.map(validate_name).transpose()?,
            uid: match self.uid {
                Some(Some(uid)) => Some(Some(validate_uid(uid)?)),
                other => other,
            },
            metadata: match self.metadata {
                Some(metadata) => {
                    let metadata = metadata.unwrap_or_default();
                    validate_metadata(&metadata)?;
                    Some(metadata)
                }
                None => None,
            },
            branding: self.branding.map(|b| validate_branding(b.unwrap_or_default())).transpose()?,
        })
    }
}

/// An application as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Application {
    /// `app_...`
    pub id: AppId,
    /// Always `"application"`.
    #[schema(value_type = String, example = "application")]
    pub object: &'static str,
    /// Its name.
    pub name: String,
    /// Your own id for it, or null.
    pub uid: Option<String>,
    /// String pairs.
    pub metadata: BTreeMap<String, String>,
    /// Whether it is the mode's default application (the one requests without `Stile-App`
    /// act on).
    pub default: bool,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// How the app portal looks for its customers (unset fields: `[portal]` defaults).
    pub branding: Branding,
}

impl From<AppRecord> for Application {
    fn from(r: AppRecord) -> Self {
        Self {
            id: r.id,
            object: "application",
            name: r.name,
            uid: r.uid,
            metadata: r.metadata,
            default: r.default,
            livemode: r.mode.is_live(),
            created: r.created,
            branding: r.branding,
        }
    }
}

/// Checks branding (see [`Branding::problem`]).
pub(crate) fn validate_branding(branding: Branding) -> Result<Branding, ApiError> {
    match branding.problem() {
        Some((field, message)) => Err(ApiError::invalid(format!("branding[{field}]"), message)),
        None => Ok(branding),
    }
}

/// Checks a name: 1 to 120 characters.
fn validate_name(name: String) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(ApiError::invalid("name", format!("`name` must be 1 to {MAX_NAME_CHARS} characters.")));
    }
    Ok(name)
}

/// Checks a uid: 1 to 64 of `A-Z a-z 0-9 _ . -`, and not shaped like an application id
/// (which would make it ambiguous wherever either is taken).
pub fn validate_uid(uid: String) -> Result<String, ApiError> {
    let well_formed = (1..=MAX_UID_CHARS).contains(&uid.len())
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !well_formed {
        return Err(ApiError::invalid(
            "uid",
            format!("`uid` must be 1 to {MAX_UID_CHARS} of the characters A-Z, a-z, 0-9, `_`, `.` and `-`."),
        ));
    }
    if uid.starts_with(AppId::PREFIX) {
        return Err(ApiError::invalid(
            "uid",
            format!("`uid` must not start with `{}`: that is how ids start.", AppId::PREFIX),
        ));
    }
    Ok(uid)
}

/// Finds the application `raw` names (id or uid) in the caller's mode, or answers 404
/// (as for every application but its own, to a restricted key).
pub(super) async fn require_app(state: &web::Data<AppState>, caller: Caller, raw: &str) -> Result<AppRecord, ApiError> {
    let found = state.apps().find(caller.mode, raw).await?;
    found.filter(|app| caller.may_act_on(app.id)).ok_or_else(|| ApiError::not_found("application", raw))
}

/// Create an application.
#[utoipa::path(tag = TAG, request_body = AppIn,
    responses((status = 200, description = "The new application.", body = Application)))]
#[post("/apps")]
async fn create_app(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<AppIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("create applications")?;
    let input = body.0.validate()?;
    let record = state.apps().create(caller.mode, input).await?;
    Ok(HttpResponse::Ok().json(Application::from(record)))
}

/// Retrieve an application, by id or uid.
#[utoipa::path(tag = TAG, params(("id" = String, Path, description = "The application's id or uid.")),
    responses((status = 200, description = "The application.", body = Application)))]
#[get("/apps/{id}")]
async fn retrieve_app(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Application::from(require_app(&state, caller, &path).await?)))
}

/// Update an application.
///
/// Replaces what the body names.
#[utoipa::path(tag = TAG, params(("id" = String, Path, description = "The application's id or uid.")),
    request_body = AppUpdate,
    responses((status = 200, description = "The updated application.", body = Application)))]
#[post("/apps/{id}")]
async fn update_app(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<AppUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("change applications")?;
    let changes = body.0.validate()?;
    let app = require_app(&state, caller, &path).await?;
    let updated = state.apps().update(caller.mode, app.id, changes).await?;
    let record = updated.ok_or_else(|| ApiError::not_found("application", &path))?;
    Ok(HttpResponse::Ok().json(Application::from(record)))
}

/// List applications, newest first.
#[utoipa::path(tag = TAG, params(PageQuery),
    responses((status = 200, description = "A page of applications.", body = ListResponse<Application>)))]
#[get("/apps")]
async fn list_apps(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("list applications")?;
    let apps = state.apps();
    let page =
        query.0.params().fetch::<AppId, _, _>(DEFAULT_LIST_LIMIT, |request| apps.list(caller.mode, request)).await?;
    let data: Vec<Application> = page.items.into_iter().map(Application::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(LIST_URL, data, page.has_more)))
}

/// What `DELETE /v1/apps/:id` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppDeleted {
    /// The deleted application's id.
    pub id: AppId,
    /// Always `"application"`.
    #[schema(value_type = String, example = "application")]
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}

/// Delete an application.
///
/// Deletes the application and everything it owns: its endpoints at once (their pending
/// deliveries end as failed), its API keys restricted to it, and, in the background, its
/// events, deliveries, verification sessions, statistics and idempotency records. The
/// default application cannot be deleted.
#[utoipa::path(tag = TAG, params(("id" = String, Path, description = "The application's id or uid.")),
    responses((status = 200, description = "The application is deleted.", body = AppDeleted)))]
#[delete("/apps/{id}")]
async fn delete_app(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("delete applications")?;
    let app = require_app(&state, caller, &path).await?;
    let deleted = state.apps().delete(caller.mode, app.id).await?;
    let app = deleted.ok_or_else(|| ApiError::not_found("application", &path))?;
    Ok(HttpResponse::Ok().json(AppDeleted { id: app.id, object: "application", deleted: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uids_are_checked() {
        assert!(validate_name("Acme".into()).is_ok());
        assert!(validate_name(String::new()).is_err());
        assert!(validate_name("   ".into()).is_err());
        assert!(validate_name("x".repeat(121)).is_err());
        assert!(validate_name("é".repeat(120)).is_ok(), "characters, not bytes");
        assert!(validate_uid("acme-1.eu_west".into()).is_ok());
        for bad in ["", "has space", "ümlaut", "a/b", "app_01JD8Y6QK4N2V7X3ZB5C9R1T0M"] {
            let err = validate_uid(bad.into()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("uid"), "{bad}");
        }
        assert!(validate_uid("x".repeat(65)).is_err());
    }
}
