//! `/v1/apps/:id/portal_sessions`: links that sign one application's customer in to the
//! app portal, each with a token that works only on the portal's routes and only for
//! that application ([`super::portal_access`]).

use std::time::Duration;

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::{AppState, Caller, Routes};
use crate::error::{ApiError, ErrorCode};
use crate::ids::PortalSessionId;

/// The OpenAPI tag of these routes.
const TAG: &str = "Applications";

/// How long a session lasts when the request says nothing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest a session may last.
const MAX_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// Mounts the routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(create_portal_session).service(revoke_portal_session).service(current_portal_session);
}

/// The body of `POST /v1/apps/:id/portal_sessions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in": "1h", "read_only": false}))]
pub struct PortalSessionIn {
    /// How long the link works: a duration like `"1h"` or `"3days"` (default 1 h, at
    /// most 7 days).
    #[schema(value_type = String, examples("1h"))]
    pub expires_in: Option<String>,
    /// Whether the portal may only look (default false).
    pub read_only: Option<bool>,
}

/// A portal session, as created.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalSession {
    /// `ps_...`, to revoke it by.
    pub id: PortalSessionId,
    /// Always `"portal_session"`.
    pub object: &'static str,
    /// The link that opens the portal signed in to the application (the token is in the
    /// fragment, so it never reaches a server's or proxy's logs).
    pub url: String,
    /// The token itself (`stile_portal_...`), shown this once; only its hash is stored.
    pub token: String,
    /// When the token stops working (Unix seconds).
    pub expires_at: i64,
    /// Whether the portal may only look.
    pub read_only: bool,
}

/// The revoke response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalSessionRevoked {
    /// The session's id.
    pub id: PortalSessionId,
    /// Always `"portal_session"`.
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}

/// Parses `expires_in`: a duration from 1 second to 7 days.
fn lifetime(expires_in: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = expires_in else { return Ok(DEFAULT_LIFETIME) };
    let duration = humantime::parse_duration(text).map_err(|e| {
        ApiError::invalid("expires_in", format!("`expires_in` must be a duration like \"1h\" or \"3days\" ({e})."))
    })?;
    if duration < Duration::from_secs(1) || duration > MAX_LIFETIME {
        return Err(ApiError::invalid("expires_in", "`expires_in` must be between 1 second and 7 days."));
    }
    Ok(duration)
}

/// Create a portal session.
///
/// A link to the app portal signed in to this one application, for its customer. The
/// token is in this answer only.
#[utoipa::path(tag = TAG, params(("id" = String, Path, description = "The application's id or uid.")),
    request_body = PortalSessionIn,
    responses((status = 200, description = "The session, its link and token.", body = PortalSession)))]
#[post("/apps/{id}/portal_sessions")]
async fn create_portal_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<PortalSessionIn>,
) -> Result<HttpResponse, ApiError> {
    let lifetime = lifetime(body.0.expires_in.as_deref())?;
    let read_only = body.0.read_only.unwrap_or(false);
    let app = super::apps::require_app(&state, caller, &path).await?;
    let (record, token) = state.portal_sessions().create(app.owner(), lifetime, read_only).await?;
    Ok(HttpResponse::Ok().json(PortalSession {
        id: record.id,
        object: "portal_session",
        url: format!("{}/portal/#token={token}", state.config.public_base()),
        token,
        expires_at: record.expires_at,
        read_only,
    }))
}

/// Revoke a portal session.
///
/// Its token stops working at once.
#[utoipa::path(tag = TAG, params(("id" = String, Path, description = "The application's id or uid."),
        ("session_id" = PortalSessionId, Path, description = "The session's id.")),
    responses((status = 200, description = "The session is revoked.", body = PortalSessionRevoked)))]
#[delete("/apps/{id}/portal_sessions/{session_id}")]
async fn revoke_portal_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, session) = path.into_inner();
    let app = super::apps::require_app(&state, caller, &app).await?;
    let id: PortalSessionId = super::path_id(&session, "portal session")?;
    if !state.portal_sessions().revoke(app.owner(), id).await? {
        return Err(ApiError::not_found("portal session", &session));
    }
    Ok(HttpResponse::Ok().json(PortalSessionRevoked { id, object: "portal_session", deleted: true }))
}

/// The session a portal token belongs to, as the portal page reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CurrentPortalSession {
    /// The session's id.
    pub id: PortalSessionId,
    /// Always `"portal_session"`.
    pub object: &'static str,
    /// The application it signs in to.
    pub app: PortalApp,
    /// How the portal looks: the application's branding over `[portal]`'s.
    pub branding: crate::store::model::apps::Branding,
    /// Whether it may only look.
    pub read_only: bool,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
}

/// The application, as the portal shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalApp {
    /// Its id.
    pub id: crate::ids::AppId,
    /// Its name, for the page's title.
    pub name: String,
}

/// The current portal session.
///
/// With a portal token: the session and its application's name (what the portal page
/// shows). An API key gets a 400.
#[utoipa::path(tag = TAG, responses((status = 200, description = "The session.", body = CurrentPortalSession)))]
#[get("/portal_session")]
async fn current_portal_session(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let Some(access) = caller.portal else {
        return Err(ApiError::new(ErrorCode::BadRequest, "This route answers a portal token (stile_portal_...) only."));
    };
    let found = state.portal_sessions().signed_in_to(caller.owner).await?;
    let (app, branding) =
        found.ok_or_else(|| ApiError::new(ErrorCode::PortalSessionExpired, "This portal link has expired."))?;
    Ok(HttpResponse::Ok().json(CurrentPortalSession {
        id: access.session,
        object: "portal_session",
        branding,
        app: PortalApp { id: app.id, name: app.name },
        read_only: access.read_only,
        expires_at: access.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_default_to_an_hour_and_stop_at_a_week() {
        assert_eq!(lifetime(None).unwrap(), DEFAULT_LIFETIME);
        assert_eq!(lifetime(Some("7days")).unwrap(), MAX_LIFETIME);
        for bad in ["8days", "0s", "soon"] {
            assert!(lifetime(Some(bad)).is_err(), "{bad}");
        }
    }
}
