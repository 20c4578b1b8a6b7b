//! The app-scoped webhooks API: `/apps/:appId/webhooks`, a thin dialect over
//! the same endpoints, deliveries and engine as the Stile API.
//!
//! What differs is only the shape: answers are wrapped `{"success": true, "data": ...}`
//! (a delete answers 204), errors `{"success": false, "error": {"code", "message"}}`;
//! field names are camelCase; endpoint and delivery ids are UUIDs (the same 128 bits as
//! their `we_` and `wd_` forms, so one endpoint is one object through both dialects);
//! times are ISO 8601; updates are `PUT`; rotating a secret ends the old one at once.
//! `:appId` is an application id or uid of the key's mode (an app-restricted key's own
//! application only).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};

use super::auth::app_for;
use super::dialect::iso8601;
use super::endpoint_fields::{Subscribable, parse_id, validate_event_types, validate_url};
use super::extract::{JsonBody, QueryParams};
use super::list::{cursor_list_error, cursor_request};
use super::{AppState, Caller, Routes};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::service::endpoints::{EndpointChanges, NewEndpoint, PingPayload};
use crate::store::model::{AttemptRecord, AttemptStatus, EndpointRecord, EndpointStatus, Owner};

/// The OpenAPI tag of this dialect's routes.
const TAG: &str = "App webhooks API";

/// `limit` of a delivery page when the request gives none.
const DEFAULT_DELIVERY_LIMIT: usize = 20;

/// Mounts the dialect under `/apps`, with its own error envelope around API key checks,
/// bad input and unknown paths alike.
pub fn configure(cfg: &mut Routes) {
    cfg.service(
        utoipa_actix_web::scope("/apps")
            .wrap(from_fn(super::auth::require_api_key_for_path_apps))
            .wrap(from_fn(envelope))
            .service(list_webhooks)
            .service(create_webhook)
            .service(update_webhook)
            .service(delete_webhook)
            .service(rotate_secret)
            .service(test_ping)
            .service(list_deliveries)
            .default_service(web::to(super::route_not_found)),
    );
}

/// Middleware: answers every error of this dialect in its envelope, `{"success": false,
/// "error": {"code", "message"}}`, with the status and headers (`Allow`, ...) it had.
async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    super::dialect::reshape_errors(req, next, error_out).await
}

/// An error as this dialect answers it.
pub fn error_out(error: ApiError) -> ErrorOut {
    ErrorOut {
        success: false,
        error: ErrorDetail { code: error.code.code().to_ascii_uppercase(), message: error.message },
    }
}

/// A successful answer: `{"success": true, "data": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Success<T> {
    /// Always true.
    pub success: bool,
    /// The answer.
    pub data: T,
}

/// `200 {"success": true, "data": data}`.
fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Success { success: true, data })
}

/// An error answer of this dialect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AppWebhooksError)]
pub struct ErrorOut {
    /// Always false.
    pub success: bool,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The reason, stable for programs: the Stile API's error code in capitals
    /// (`RESOURCE_MISSING`, `PARAMETER_INVALID`, `API_KEY_INVALID`, ...).
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// An id as this dialect shows it: a UUID of the same 128 bits.
fn uuid_of(id: impl Into<u128>) -> String {
    uuid::Uuid::from_u128(id.into()).hyphenated().to_string()
}

/// The body of `POST /apps/:appId/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AppWebhookIn, example = json!({"url": "https://example.com/webhooks", "events": ["verification_session.verified"]}))]
pub struct WebhookIn {
    /// Required: the HTTPS URL that receives events.
    #[schema(required = true, value_type = String, format = "uri")]
    pub url: Option<String>,
    /// Required: event types to subscribe to (at least one; `*` for all).
    #[schema(required = true, value_type = Vec<String>, min_items = 1)]
    pub events: Option<Vec<String>>,
}

/// The body of `PUT /apps/:appId/webhooks/:webhookId`: what it names changes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AppWebhookUpdate, example = json!({"active": false}))]
pub struct WebhookUpdate {
    /// A new URL.
    #[schema(value_type = String, format = "uri")]
    pub url: Option<String>,
    /// A new list of event types.
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub events: Option<Vec<String>>,
    /// Enable (`true`) or disable (`false`) the endpoint.
    pub active: Option<bool>,
}

/// An endpoint as create answers it: with its signing secret, the only time it is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCreated {
    /// The endpoint's UUID.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Whether it is enabled.
    pub active: bool,
    /// Creation time, ISO 8601.
    pub created_at: String,
    /// The signing secret (`whsec_...`).
    pub secret: String,
}

/// An endpoint as the list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookListed {
    /// The endpoint's UUID.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Whether it is enabled.
    pub active: bool,
    /// Creation time, ISO 8601.
    pub created_at: String,
    /// Last change, ISO 8601 (the creation time if never changed).
    pub updated_at: String,
}

/// An endpoint as an update answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookUpdated {
    /// The endpoint's UUID.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Whether it is enabled.
    pub active: bool,
    /// Last change, ISO 8601.
    pub updated_at: String,
}

impl From<EndpointRecord> for WebhookListed {
    fn from(r: EndpointRecord) -> Self {
        Self {
            id: uuid_of(r.id),
            active: r.status == EndpointStatus::Enabled,
            created_at: iso8601(r.created),
            updated_at: iso8601(r.updated.unwrap_or(r.created)),
            url: r.url,
            events: r.enabled_events,
        }
    }
}

/// The answer of rotate-secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretRotated {
    /// The new signing secret; the old one no longer signs.
    pub secret: String,
}

/// The answer of test-ping: how the endpoint answered a signed test event. (Whether it
/// was delivered is `delivered`, not a second `success` under the envelope's.)
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingResult {
    /// Whether the endpoint answered 2xx.
    pub delivered: bool,
    /// The HTTP status it answered, or null if there was no answer.
    pub status_code: Option<u16>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// What went wrong (a connection error, a timeout, a non-2xx answer), or null.
    pub error: Option<String>,
    /// The start of the response body (at most 2 KiB), or null.
    pub response_body: Option<String>,
    /// The test event's id (`evt_...`, as in the payload sent).
    pub event_id: EventId,
    /// The attempt's UUID, as it appears in the delivery history.
    pub delivery_id: String,
}

/// One delivery attempt in an endpoint's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOut {
    /// The attempt's UUID.
    pub id: String,
    /// The event's id (`evt_...`, as in the payload sent).
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// `pending` (scheduled or in flight), `succeeded`, `retrying` (failed; its retry is
    /// not made yet) or `failed` (failed; nothing waits on it).
    pub status: AttemptStatus,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    /// The HTTP status answered, or null.
    pub status_code: Option<u16>,
    /// How long it took in milliseconds, or null while pending.
    pub duration_ms: Option<u64>,
    /// What went wrong, or null.
    pub error: Option<String>,
    /// When it was made (or is due, while pending), ISO 8601.
    pub created_at: String,
    /// When its retry was due (set once it failed with a retry to follow), ISO 8601.
    pub next_retry_at: Option<String>,
}

impl From<AttemptRecord> for DeliveryOut {
    fn from(r: AttemptRecord) -> Self {
        Self {
            id: uuid_of(r.id),
            event_id: r.event_id,
            status: r.status,
            attempt: r.attempt,
            status_code: r.response_status,
            duration_ms: r.duration_ms,
            created_at: iso8601(r.created),
            next_retry_at: r.next_retry_at.map(iso8601),
            event_type: r.event_type,
            error: r.error,
        }
    }
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// The attempts.
    pub deliveries: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// The query of the delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only attempts with this status.
    status: Option<AttemptStatus>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    cursor: Option<String>,
    /// How many attempts, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// The application `:appId` names for this caller, or 404: one of the key's mode, and
/// only the key's own if it is app-restricted.
async fn app_of(state: &web::Data<AppState>, caller: Caller, raw: &str) -> Result<Owner, ApiError> {
    let found = app_for(state, caller, raw).await?;
    found.ok_or_else(|| ApiError::param(ErrorCode::ResourceMissing, "appId", format!("No such app: '{raw}'.")))
}

/// The path of one endpoint's routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The application's id or uid.
    #[serde(rename = "appId")]
    #[param(rename = "appId")]
    app_id: String,
    /// The endpoint's UUID.
    #[serde(rename = "webhookId")]
    #[param(rename = "webhookId", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    webhook_id: String,
}

impl WebhookPath {
    /// The application and endpoint id the path names, or 404.
    async fn target(&self, state: &web::Data<AppState>, caller: Caller) -> Result<(Owner, EndpointId), ApiError> {
        let owner = app_of(state, caller, &self.app_id).await?;
        Ok((owner, webhook_id(&self.webhook_id)?))
    }
}

/// Parses `:webhookId`: a UUID (or the endpoint's `we_` id).
fn webhook_id(raw: &str) -> Result<EndpointId, ApiError> {
    parse_id(raw).map_err(|_| not_found(raw))
}

/// The 404 for a webhook endpoint.
fn not_found(raw: &str) -> ApiError {
    ApiError::param(ErrorCode::ResourceMissing, "webhookId", format!("No such webhook endpoint: '{raw}'."))
}

/// Create a webhook endpoint.
///
/// The answer carries the signing secret; no other answer shows it.
#[utoipa::path(tag = TAG, request_body = WebhookIn,
    params(("appId" = String, Path, description = "The application's id or uid.")),
    responses((status = 200, description = "The new endpoint and its signing secret.", body = Success<WebhookCreated>)))]
#[post("/{appId}/webhooks")]
async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<WebhookIn>,
) -> Result<HttpResponse, ApiError> {
    let owner = app_of(&state, caller, &path).await?;
    let input = body.0;
    let url = input.url.ok_or_else(|| ApiError::missing("url"))?;
    let events = input.events.ok_or_else(|| ApiError::missing("events"))?;
    let input = NewEndpoint {
        url: validate_url(&state.targets, url)?,
        enabled_events: validate_event_types(&Subscribable::new(&state.event_types, owner.mode), "events", events)?,
        ..NewEndpoint::default()
    };
    let (record, secret) = state.endpoints().create(owner, input).await?;
    Ok(ok(WebhookCreated {
        id: uuid_of(record.id),
        active: record.status == EndpointStatus::Enabled,
        created_at: iso8601(record.created),
        url: record.url,
        events: record.enabled_events,
        secret,
    }))
}

/// List webhook endpoints.
///
/// Every endpoint of the application, newest first, without secrets.
#[utoipa::path(tag = TAG, params(("appId" = String, Path, description = "The application's id or uid.")),
    responses((status = 200, description = "The application's endpoints.", body = Success<Vec<WebhookListed>>)))]
#[get("/{appId}/webhooks")]
async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = app_of(&state, caller, &path).await?;
    let all = state.endpoints().all(owner).await?;
    Ok(ok(all.into_iter().map(WebhookListed::from).collect::<Vec<_>>()))
}

/// Update a webhook endpoint.
///
/// Changes what the body names; `active: false` pauses deliveries (they wait, and go
/// when it is active again).
#[utoipa::path(tag = TAG, request_body = WebhookUpdate,
    params(WebhookPath),
    responses((status = 200, description = "The updated endpoint.", body = Success<WebhookUpdated>)))]
#[put("/{appId}/webhooks/{webhookId}")]
async fn update_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    body: JsonBody<WebhookUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (owner, id) = path.target(&state, caller).await?;
    let raw_webhook = &path.webhook_id;
    let input = body.0;
    let rules = Subscribable::for_update(&state, owner, id, input.events.as_ref()).await?;
    let changes = EndpointChanges {
        url: input.url.map(|url| validate_url(&state.targets, url)).transpose()?,
        enabled_events: input.events.map(|e| validate_event_types(&rules, "events", e)).transpose()?,
        status: input.active.map(|active| if active { EndpointStatus::Enabled } else { EndpointStatus::Disabled }),
        ..EndpointChanges::default()
    };
    let record = state.endpoints().update(owner, id, changes).await?.ok_or_else(|| not_found(raw_webhook))?;
    Ok(ok(WebhookUpdated {
        id: uuid_of(record.id),
        active: record.status == EndpointStatus::Enabled,
        updated_at: iso8601(record.updated.unwrap_or(record.created)),
        url: record.url,
        events: record.enabled_events,
    }))
}

/// Delete a webhook endpoint.
///
/// Permanently deletes it; its pending deliveries end. Answers 204 with no body.
#[utoipa::path(tag = TAG,
    params(WebhookPath),
    responses((status = 204, description = "Deleted.")))]
#[delete("/{appId}/webhooks/{webhookId}")]
async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let (owner, id) = path.target(&state, caller).await?;
    let raw_webhook = &path.webhook_id;
    if !state.endpoints().delete(owner, id).await? {
        return Err(not_found(raw_webhook));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate the signing secret.
///
/// The old secret stops signing at once.
#[utoipa::path(tag = TAG,
    params(WebhookPath),
    responses((status = 200, description = "The new secret.", body = Success<SecretRotated>)))]
#[post("/{appId}/webhooks/{webhookId}/rotate-secret")]
async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let (owner, id) = path.target(&state, caller).await?;
    let raw_webhook = &path.webhook_id;
    let rotated = state.endpoints().rotate(owner, id, None).await?;
    let (_, secret) = rotated.ok_or_else(|| not_found(raw_webhook))?;
    Ok(ok(SecretRotated { secret }))
}

/// Send a test ping.
///
/// Sends one signed `webhook_endpoint.test` event to the endpoint now and answers how it
/// went (after the endpoint answered or the delivery timeout). The attempt is kept in the
/// endpoint's delivery history; no retries follow.
#[utoipa::path(tag = TAG,
    params(WebhookPath),
    responses((status = 200, description = "How the endpoint answered.", body = Success<PingResult>)))]
#[post("/{appId}/webhooks/{webhookId}/test-ping")]
async fn test_ping(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    let (owner, id) = path.target(&state, caller).await?;
    let raw_webhook = &path.webhook_id;
    let attempt = state.endpoints().ping(owner, id, PingPayload::Test).await?.ok_or_else(|| not_found(raw_webhook))?;
    Ok(ok(PingResult {
        delivered: attempt.status == AttemptStatus::Succeeded,
        status_code: attempt.response_status,
        duration_ms: attempt.duration_ms,
        error: attempt.error,
        response_body: attempt.response_body,
        event_id: attempt.event_id,
        delivery_id: uuid_of(attempt.id),
    }))
}

/// List deliveries.
///
/// The endpoint's delivery attempts, newest first, a page at a time: pass a page's
/// `nextCursor` as `cursor` for the next.
#[utoipa::path(tag = TAG,
    params(WebhookPath, DeliveryQuery),
    responses((status = 200, description = "A page of attempts.", body = Success<DeliveryPage>)))]
#[get("/{appId}/webhooks/{webhookId}/deliveries")]
async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    query: QueryParams<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (owner, endpoint) = path.target(&state, caller).await?;
    let deliveries = state.deliveries();
    let endpoint = deliveries.of_endpoint(owner, endpoint).await?.ok_or_else(|| not_found(&path.webhook_id))?;
    let query = query.0;
    let request =
        cursor_request(query.limit.as_deref(), query.cursor.as_deref(), DEFAULT_DELIVERY_LIMIT, "nextCursor", |c| {
            uuid::Uuid::try_parse(c).ok().map(|id| DeliveryId(id.as_u128()))
        })?;
    let page = endpoint
        .page(request, query.status)
        .await
        .map_err(|err| cursor_list_error(err, "no delivery of this endpoint"))?;
    let next_cursor = page.items.last().filter(|_| page.has_more).map(|last| uuid_of(last.id));
    Ok(ok(DeliveryPage {
        deliveries: page.items.into_iter().map(DeliveryOut::from).collect(),
        next_cursor,
        has_more: page.has_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_of_the_same_bits_and_times_are_iso_8601() {
        let id = EndpointId::new();
        let uuid = uuid_of(id);
        assert_eq!(uuid.len(), 36);
        assert_eq!(webhook_id(&uuid).unwrap(), id, "the UUID names the endpoint");
        assert_eq!(webhook_id(&id.to_string()).unwrap(), id, "so does its we_ id");
        assert!(webhook_id("not-a-uuid").is_err());
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
