//! `/v1/verification_sessions` and their test-mode helpers: Stile's own source of events,
//! so a local stile can stand in for Stile while developing against it.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::extract::{JsonBody, QueryParams};
use super::list::{ListResponse, PageQuery};
use super::metadata::validate_metadata;
use super::{AppState, Caller, Routes};
use crate::error::{ApiError, ErrorCode};
use crate::ids::VerificationSessionId;
use crate::lifecycle::Move;
use crate::service::sessions::{NewSession, may_simulate};
use crate::store::model::{Owner, SessionRecord, SessionStatus, SessionType};

/// `limit` when a list request gives none.
const DEFAULT_LIST_LIMIT: usize = 10;

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/verification_sessions";

/// The longest `client_reference_id` accepted, in characters.
const MAX_REFERENCE_CHARS: usize = 255;

/// Mounts the session routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_sessions)
        .service(create_session)
        .service(retrieve_session)
        .service(cancel_session)
        .service(test_helper);
}

/// The OpenAPI tag of the session routes.
const TAG: &str = "Verification sessions";

/// The body of `POST /v1/verification_sessions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "identity", "client_reference_id": "user_42"}))]
pub struct SessionIn {
    /// `identity` or `document`.
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String, pattern = "^(identity|document)$")]
    pub session_type: Option<String>,
    /// The caller's own reference.
    pub client_reference_id: Option<String>,
    /// String pairs.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A verification session as the API answers it (and as its events carry it: see
/// `crate::lifecycle::session_object`, which a test holds to this view).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationSession {
    /// `vks_...`
    pub id: VerificationSessionId,
    /// Always `"verification_session"`.
    #[schema(value_type = String, example = "verification_session")]
    pub object: &'static str,
    /// Where it stands.
    pub status: SessionStatus,
    /// `identity` or `document`.
    #[serde(rename = "type")]
    pub session_type: SessionType,
    /// The caller's own reference, if given.
    pub client_reference_id: Option<String>,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// When it expires by itself if not finished (Unix seconds).
    pub expires_at: i64,
    /// When it was verified (Unix seconds).
    pub completed_at: Option<i64>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// String pairs.
    pub metadata: BTreeMap<String, String>,
}

impl From<SessionRecord> for VerificationSession {
    fn from(r: SessionRecord) -> Self {
        Self {
            id: r.id,
            object: "verification_session",
            status: r.status,
            session_type: r.session_type,
            client_reference_id: r.client_reference_id,
            livemode: r.livemode,
            expires_at: r.expires_at,
            completed_at: r.completed_at,
            created: r.created,
            metadata: r.metadata,
        }
    }
}

fn parse_id(raw: &str) -> Result<VerificationSessionId, ApiError> {
    super::path_id(raw, "verification session")
}

/// Create a verification session.
///
/// The session starts in `requires_input`; `verification_session.created` is emitted.
#[utoipa::path(tag = TAG, request_body = SessionIn,
    responses((status = 200, description = "The new session.", body = VerificationSession)))]
#[post("/verification_sessions")]
async fn create_session(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SessionIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let session_type = input.session_type.ok_or_else(|| ApiError::missing("type"))?;
    let session_type = SessionType::from_name(&session_type)
        .ok_or_else(|| ApiError::invalid("type", "`type` must be `identity` or `document`."))?;
    if input.client_reference_id.as_ref().is_some_and(|r| r.chars().count() > MAX_REFERENCE_CHARS) {
        return Err(ApiError::invalid(
            "client_reference_id",
            format!("`client_reference_id` must be at most {MAX_REFERENCE_CHARS} characters."),
        ));
    }
    let metadata = input.metadata.unwrap_or_default();
    validate_metadata(&metadata)?;
    let input = NewSession { session_type, client_reference_id: input.client_reference_id, metadata };
    let created = state.sessions().create(caller.owner, input).await?;
    Ok(HttpResponse::Ok().json(VerificationSession::from(created)))
}

/// Retrieve a verification session.
#[utoipa::path(tag = TAG, params(("id" = VerificationSessionId, Path, description = "The session's id.")),
    responses((status = 200, description = "The session.", body = VerificationSession)))]
#[get("/verification_sessions/{id}")]
async fn retrieve_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let found = state.sessions().get(caller.owner, id).await?;
    let found = found.ok_or_else(|| ApiError::not_found("verification session", &path))?;
    Ok(HttpResponse::Ok().json(VerificationSession::from(found)))
}

/// List verification sessions, newest first.
#[utoipa::path(tag = TAG, params(PageQuery),
    responses((status = 200, description = "A page of sessions.", body = ListResponse<VerificationSession>)))]
#[get("/verification_sessions")]
async fn list_sessions(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.sessions();
    let page = query
        .0
        .params()
        .fetch::<VerificationSessionId, _, _>(DEFAULT_LIST_LIMIT, |request| sessions.list(caller.owner, request))
        .await?;
    let data: Vec<VerificationSession> = page.items.into_iter().map(VerificationSession::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(LIST_URL, data, page.has_more)))
}

/// Moves the session `raw` names (see [`crate::service::Sessions::apply`]) and answers
/// it, or the 404 that says there is none.
async fn move_session(
    state: &web::Data<AppState>,
    owner: Owner,
    raw: &str,
    step: Move,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(raw)?;
    let moved = state.sessions().apply(owner, id, step).await?;
    let session = moved.ok_or_else(|| ApiError::not_found("verification session", raw))?;
    Ok(HttpResponse::Ok().json(VerificationSession::from(session)))
}

/// Cancel a verification session.
///
/// Emits `verification_session.cancelled`.
#[utoipa::path(tag = TAG, params(("id" = VerificationSessionId, Path, description = "The session's id.")),
    responses((status = 200, description = "The cancelled session.", body = VerificationSession)))]
#[post("/verification_sessions/{id}/cancel")]
async fn cancel_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    move_session(&state, caller.owner, &path, Move::Cancel).await
}

/// Move a test-mode verification session, as a real verification would.
///
/// Test mode only. Each move emits the event of the session's new status.
#[utoipa::path(tag = TAG, params(
        ("id" = VerificationSessionId, Path, description = "The session's id."),
        ("action" = String, Path, description = "The move to make.",
            example = "verify", pattern = "^(process|require_input|verify|fail|expire)$")),
    responses((status = 200, description = "The session after the move.", body = VerificationSession)))]
#[post("/test_helpers/verification_sessions/{id}/{action}")]
async fn test_helper(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, action) = path.into_inner();
    let step = Move::from_action(&action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::RouteNotFound,
            format!("Unknown test helper `{action}`: use process, require_input, verify, fail or expire."),
        )
    })?;
    // Before the id: a live key learns first that no helper is for it.
    may_simulate(caller.mode)?;
    move_session(&state, caller.owner, &raw, step).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_view_and_the_event_object_of_a_session_are_the_same_json() {
        let mut metadata = BTreeMap::new();
        metadata.insert("k".to_string(), "v".to_string());
        let record = SessionRecord {
            id: VerificationSessionId::new(),
            app: crate::ids::AppId::new(),
            status: SessionStatus::Processing,
            session_type: SessionType::Document,
            client_reference_id: Some("ref".into()),
            livemode: true,
            expires_at: 10,
            completed_at: Some(5),
            created: 1,
            metadata,
        };
        let event_object = crate::lifecycle::session_object(&record);
        let view = serde_json::to_value(VerificationSession::from(record)).unwrap();
        assert_eq!(view, event_object);
    }
}
