//! `/v1/verification_sessions` and their test-mode helpers: Stile's own source of events,
//! so a local stile can stand in for Stile while developing against it.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;

use super::extract::{JsonBody, QueryParams};
use super::list::{ListResponse, PageQuery};
use super::metadata::validate_metadata;
use super::{AppState, Caller, Routes, blocking};
use crate::clock::{unix_now, unix_now_ms};
use crate::error::{ApiError, ErrorCode};
use crate::ids::VerificationSessionId;
use crate::lifecycle::Move;
use crate::mode::Mode;
use crate::store::StoreError;
use crate::store::sessions::{SessionChanged, SessionRecord};

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

fn parse_id(raw: &str) -> Result<VerificationSessionId, ApiError> {
    super::path_id(raw, "verification session")
}

/// Create a verification session.
///
/// The session starts in `requires_input`; `verification_session.created` is emitted.
#[utoipa::path(tag = TAG, request_body = SessionIn,
    responses((status = 200, description = "The new session.", body = SessionRecord)))]
#[post("/verification_sessions")]
async fn create_session(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SessionIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let session_type = input.session_type.ok_or_else(|| ApiError::missing("type"))?;
    if session_type != "identity" && session_type != "document" {
        return Err(ApiError::invalid("type", "`type` must be `identity` or `document`."));
    }
    if input.client_reference_id.as_ref().is_some_and(|r| r.chars().count() > MAX_REFERENCE_CHARS) {
        return Err(ApiError::invalid(
            "client_reference_id",
            format!("`client_reference_id` must be at most {MAX_REFERENCE_CHARS} characters."),
        ));
    }
    let metadata = input.metadata.unwrap_or_default();
    validate_metadata(&metadata)?;
    let now_ms = unix_now_ms();
    let now = (now_ms / 1000) as i64;
    let lifetime = state.config.scaled(state.config.verification_sessions.expires_after);
    let expires_ms = now_ms + lifetime.as_millis() as u64;
    let session = SessionRecord {
        id: VerificationSessionId::new(),
        object: "verification_session".into(),
        status: "requires_input".into(),
        session_type,
        client_reference_id: input.client_reference_id,
        livemode: caller.mode.is_live(),
        expires_at: (expires_ms / 1000) as i64,
        completed_at: None,
        created: now,
        metadata,
    };
    let changed = blocking(&state, move |store| store.create_session(&session, expires_ms, now_ms)).await?;
    state.engine.session_scheduled();
    Ok(respond(&state, changed))
}

/// Tells the engine about the event's deliveries and answers with the session.
fn respond(state: &web::Data<AppState>, changed: SessionChanged) -> HttpResponse {
    state.metrics.events.inc();
    state.engine.notify(changed.scheduled);
    HttpResponse::Ok().json(changed.session)
}

/// Retrieve a verification session.
#[utoipa::path(tag = TAG, params(("id" = VerificationSessionId, Path, description = "The session's id.")),
    responses((status = 200, description = "The session.", body = SessionRecord)))]
#[get("/verification_sessions/{id}")]
async fn retrieve_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let found = blocking(&state, move |store| store.session(caller.mode, id)).await?;
    Ok(HttpResponse::Ok().json(found.ok_or_else(|| ApiError::not_found("verification session", &path))?))
}

/// List verification sessions, newest first.
#[utoipa::path(tag = TAG, params(PageQuery),
    responses((status = 200, description = "A page of sessions.", body = ListResponse<SessionRecord>)))]
#[get("/verification_sessions")]
async fn list_sessions(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query
        .0
        .params()
        .fetch::<VerificationSessionId, _>(&state, DEFAULT_LIST_LIMIT, move |store, request| {
            store.list_sessions(caller.mode, request)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ListResponse::new(LIST_URL, page.items, page.has_more)))
}

/// Applies a move to a session and emits its event, in one transaction.
async fn move_session(
    state: &web::Data<AppState>,
    mode: Mode,
    raw: &str,
    step: Move,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(raw)?;
    let changed = blocking(state, move |store| {
        store.change_session(mode, id, unix_now_ms(), |session| {
            step.apply(session, unix_now()).map_err(MoveError::Refused)
        })
    })
    .await?;
    let changed = changed.ok_or_else(|| ApiError::not_found("verification session", raw))?;
    Ok(respond(state, changed))
}

/// Either a refusal by the state machine or a store failure, out of `change_session`.
enum MoveError {
    Refused(ApiError),
    Store(StoreError),
}

impl From<StoreError> for MoveError {
    fn from(err: StoreError) -> Self {
        MoveError::Store(err)
    }
}

impl crate::store::ReopenHint for MoveError {
    fn needs_reopen(&self) -> bool {
        matches!(self, MoveError::Store(err) if err.needs_reopen())
    }
}

impl From<MoveError> for ApiError {
    fn from(err: MoveError) -> Self {
        match err {
            MoveError::Refused(err) => err,
            MoveError::Store(err) => err.into(),
        }
    }
}

/// Cancel a verification session.
///
/// Emits `verification_session.cancelled`.
#[utoipa::path(tag = TAG, params(("id" = VerificationSessionId, Path, description = "The session's id.")),
    responses((status = 200, description = "The cancelled session.", body = SessionRecord)))]
#[post("/verification_sessions/{id}/cancel")]
async fn cancel_session(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    move_session(&state, caller.mode, &path, Move::Cancel).await
}

/// Move a test-mode verification session, as a real verification would.
///
/// Test mode only. Each move emits the event of the session's new status.
#[utoipa::path(tag = TAG, params(
        ("id" = VerificationSessionId, Path, description = "The session's id."),
        ("action" = String, Path, description = "The move to make.",
            example = "verify", pattern = "^(process|require_input|verify|fail|expire)$")),
    responses((status = 200, description = "The session after the move.", body = SessionRecord)))]
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
    if caller.mode == Mode::Live {
        return Err(ApiError::new(
            ErrorCode::TestModeOnly,
            "Test helpers only work with a test key (vk_test_...); live sessions move only through real verification.",
        ));
    }
    move_session(&state, caller.mode, &raw, step).await
}
