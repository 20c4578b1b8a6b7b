//! The Kayle endpoints API: `/v1/webhooks/endpoints`, a thin dialect over the
//! same endpoints and engine as the Stile API.
//!
//! Kayle's documentation covers create; retrieve, list, update (`PATCH`) and delete follow its
//! conventions: answers are `{"data": ..., "error": null}`, errors `{"data": null,
//! "error": {"code", "message"}}` with the Stile API's status and code; fields are
//! snake_case, times ISO 8601, ids the Stile ids. Kayle's organization is the application
//! the request acts on (the default one, `Stile-App`, or an app-restricted key's own), and
//! Kayle's event types are its names for four built-in types
//! ([`crate::event_types::KAYLE_NAMES`]).

use std::collections::BTreeMap;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::dialect::iso8601;
use super::endpoint_fields::{
    each_unique, label_filter, parse_id, validate_flow_change, validate_flow_limits, validate_labels, validate_name,
    validate_retention_hours, validate_url,
};
use super::extract::{JsonBody, QueryParams, nullable};
use super::list::{cursor_list_error, cursor_request};
use super::{AppState, Caller, Routes};
use crate::error::{ApiError, ErrorCode};
use crate::event_types::{KAYLE_NAMES, kayle_alias_of};
use crate::ids::{AppId, EndpointId};
use crate::service::endpoints::{EndpointChanges, NewEndpoint};
use crate::store::model::{EndpointRecord, EndpointStatus};

/// The OpenAPI tag of this dialect's routes.
const TAG: &str = "Kayle endpoints API";

/// `limit` of a list page when the request gives none.
const DEFAULT_LIST_LIMIT: usize = 20;

/// The retention an endpoint created here gets when the request names none, in hours.
const DEFAULT_RETENTION_HOURS: u32 = 72;

/// Mounts the dialect under `/v1/webhooks` (before the `/v1` scope takes the path), with
/// the API key check and its own error envelope around every answer.
pub fn configure(cfg: &mut Routes) {
    cfg.service(
        utoipa_actix_web::scope("/v1/webhooks")
            .wrap(from_fn(super::auth::require_api_key))
            .wrap(from_fn(envelope))
            .service(create_endpoint)
            .service(list_endpoints)
            .service(retrieve_endpoint)
            .service(update_endpoint)
            .service(delete_endpoint)
            .default_service(web::to(super::route_not_found)),
    );
}

/// Middleware: answers every error of this dialect as `{"data": null, "error": {"code",
/// "message"}}`, with the status and headers it had.
async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    super::dialect::reshape_errors(req, next, error_out).await
}

/// An error as this dialect answers it.
pub fn error_out(error: ApiError) -> ErrorOut {
    ErrorOut { data: None, error: ErrorDetail { code: error.code.code().to_string(), message: error.message } }
}

/// An error answer of this dialect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleErrorAnswer)]
pub struct ErrorOut {
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Every answer of this dialect: `data` on success, `error` on failure, the other null.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Answer<T> {
    /// The answer, or null on failure.
    pub data: Option<T>,
    /// What went wrong, or null on success.
    pub error: Option<ErrorDetail>,
}

/// An error of this dialect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleError)]
pub struct ErrorDetail {
    /// The reason, stable for programs: the Stile API's error code (`parameter_invalid`,
    /// `resource_missing`, `api_key_invalid`, ...).
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// `200 {"data": data, "error": null}`.
fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Answer { data: Some(data), error: None })
}

/// The body of `POST /v1/webhooks/endpoints`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KayleEndpointIn, example = json!({"url": "https://example.com/webhooks/kayle", "name": "Production",
    "labels": ["billing"], "enabled": true, "subscribed_event_types": [], "undelivered_payload_retention_hours": 72}))]
pub struct EndpointIn {
    /// Required: where to deliver, at most 2048 characters (`https://`; `http://` only for
    /// loopback hosts in development mode).
    #[schema(required = true, value_type = String, format = "uri", max_length = 2048)]
    pub url: Option<String>,
    /// A display name, 1–120 characters.
    #[schema(min_length = 1, max_length = 120)]
    pub name: Option<String>,
    /// Purpose labels: at most 8, each 1–64 of `A-Z a-z 0-9 . _ : / -`.
    #[schema(max_items = 8)]
    pub labels: Option<Vec<String>>,
    /// Whether it receives events from the start (default true).
    pub enabled: Option<bool>,
    /// Kayle event types to receive; empty or absent: all four.
    #[schema(value_type = Vec<EventTypeName>)]
    pub subscribed_event_types: Option<Vec<String>>,
    /// Hours a payload whose delivery failed for good stays available, 0–720 (default 72).
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 720)]
    pub undelivered_payload_retention_hours: Option<serde_json::Number>,
    /// stile's: the most deliveries a second, 1–100000; absent or null: no limit.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub rate_limit: Option<serde_json::Number>,
    /// stile's: the most requests in flight at once, 1–1024; absent or null: the server's
    /// default.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1024)]
    pub max_in_flight: Option<serde_json::Number>,
}

/// The body of `PATCH /v1/webhooks/endpoints/:id`: what it names changes; `name: null`
/// removes the name; `subscribed_event_types: []` subscribes to all four Kayle types.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KayleEndpointUpdate, example = json!({"enabled": false}))]
pub struct EndpointUpdate {
    /// A new URL.
    #[schema(value_type = String, format = "uri", max_length = 2048)]
    pub url: Option<String>,
    /// A new name; null removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 120)]
    pub name: Option<Option<String>>,
    /// New labels, replacing the old.
    #[schema(max_items = 8)]
    pub labels: Option<Vec<String>>,
    /// Enable or disable it (a disabled endpoint's deliveries wait).
    pub enabled: Option<bool>,
    /// New Kayle event types; empty: all four.
    #[schema(value_type = Vec<EventTypeName>)]
    pub subscribed_event_types: Option<Vec<String>>,
    /// A new retention, 0–720 hours.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 720)]
    pub undelivered_payload_retention_hours: Option<serde_json::Number>,
    /// stile's: a new rate limit (deliveries a second, 1–100000); null removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub rate_limit: Option<Option<serde_json::Number>>,
    /// stile's: a new in-flight cap (1–1024); null returns to the server's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1024)]
    pub max_in_flight: Option<Option<serde_json::Number>>,
}

/// Kayle's event types, in the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = KayleEventType)]
#[allow(dead_code)] // only its schema is used
pub enum EventTypeName {
    /// A verification session was verified (`verification_session.verified`).
    #[schema(rename = "verification.session.succeeded")]
    Succeeded,
    /// It failed (`verification_session.failed`).
    #[schema(rename = "verification.session.failed")]
    Failed,
    /// It expired (`verification_session.expired`).
    #[schema(rename = "verification.session.expired")]
    Expired,
    /// It was cancelled (`verification_session.cancelled`).
    #[schema(rename = "verification.session.cancelled")]
    Cancelled,
}

/// An endpoint as this dialect shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleEndpoint)]
pub struct Endpoint {
    /// Its id (`we_...`, the same as in the Stile API).
    pub id: EndpointId,
    /// The application it belongs to.
    pub organization_id: AppId,
    /// Its display name, or null.
    pub name: Option<String>,
    /// Its purpose labels.
    pub labels: Vec<String>,
    /// Where events go.
    pub url: String,
    /// Whether it receives events.
    pub enabled: bool,
    /// The event types it receives (as it was subscribed: Kayle names, or Stile types for
    /// an endpoint made through the Stile API).
    pub subscribed_event_types: Vec<String>,
    /// Creation time, ISO 8601.
    pub created_at: String,
    /// Last change, ISO 8601 (the creation time if never changed).
    pub updated_at: String,
    /// When it was disabled, ISO 8601; null while enabled.
    pub disabled_at: Option<String>,
    /// Hours a payload whose delivery failed for good stays available.
    pub undelivered_payload_retention_hours: u32,
    /// stile's: the most deliveries a second; shown only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// stile's: the most requests in flight at once; shown only when set (otherwise the
    /// server's default applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

impl Endpoint {
    /// The endpoint as shown, with `default_hours` where it sets no retention of its own.
    fn new(r: EndpointRecord, default_hours: u32) -> Self {
        let enabled = r.status == EndpointStatus::Enabled;
        Self {
            id: r.id,
            organization_id: r.app,
            name: r.name,
            labels: r.labels,
            url: r.url,
            enabled,
            // `[]` when the client asked for every Kayle type with `[]`.
            subscribed_event_types: if r.all_kayle_types { Vec::new() } else { r.enabled_events },
            created_at: iso8601(r.created),
            updated_at: iso8601(r.updated.unwrap_or(r.created)),
            // An endpoint disabled before stile kept the time shows its creation time.
            disabled_at: (!enabled).then(|| iso8601(r.disabled_at.unwrap_or(r.created))),
            undelivered_payload_retention_hours: r.undelivered_retention_hours.unwrap_or(default_hours),
            rate_limit: r.rate_limit,
            max_in_flight: r.max_in_flight,
        }
    }
}

/// `data` of create: the endpoint and its signing secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleEndpointCreated)]
pub struct Created {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its signing secret (`whsec_...`).
    pub signing_secret: String,
}

/// `data` of retrieve and update.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleEndpointOne)]
pub struct One {
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// `data` of list: a page of endpoints, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleEndpointPage)]
pub struct Page {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<EndpointId>,
}

/// `data` of delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KayleEndpointDeleted)]
pub struct Deleted {
    /// The deleted endpoint's id.
    pub id: EndpointId,
    /// Always true.
    pub deleted: bool,
}

/// The query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many endpoints, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<EndpointId>)]
    cursor: Option<String>,
    /// Only endpoints carrying this label.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,64}$")]
    label: Option<String>,
}

/// Checks `subscribed_event_types`: Kayle names only; empty means all four (and is
/// answered as sent: the `bool`).
fn validate_kayle_types(types: Vec<String>) -> Result<(Vec<String>, bool), ApiError> {
    if types.is_empty() {
        return Ok((KAYLE_NAMES.iter().map(|(kayle, _)| kayle.to_string()).collect(), true));
    }
    let types = each_unique("subscribed_event_types", types, |name| {
        if kayle_alias_of(name).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = KAYLE_NAMES.iter().map(|(kayle, _)| *kayle).collect();
        Err(format!("Unknown event type `{name}`. Known types: {}; [] for all of them.", known.join(", ")))
    })?;
    Ok((types, false))
}

/// The 404 for an endpoint.
fn not_found(raw: &str) -> ApiError {
    ApiError::param(ErrorCode::ResourceMissing, "id", format!("No such webhook endpoint: '{raw}'."))
}

/// Parses `:id` (a `we_` id or its UUID), or 404.
fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    parse_id(raw).map_err(|_| not_found(raw))
}

/// Create a webhook endpoint.
///
/// The answer carries the signing secret; no other answer shows it.
#[utoipa::path(tag = TAG, request_body = EndpointIn,
    responses((status = 200, description = "The new endpoint and its signing secret.", body = Answer<Created>)))]
#[post("/endpoints")]
async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<EndpointIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let url = input.url.ok_or_else(|| ApiError::missing("url"))?;
    let (enabled_events, all_kayle_types) = validate_kayle_types(input.subscribed_event_types.unwrap_or_default())?;
    let input = NewEndpoint {
        url: validate_url(&state.targets, url)?,
        enabled_events,
        all_kayle_types,
        name: input.name.map(validate_name).transpose()?,
        labels: validate_labels(input.labels.unwrap_or_default())?,
        undelivered_retention_hours: Some(
            input
                .undelivered_payload_retention_hours
                .map(validate_retention_hours)
                .transpose()?
                .unwrap_or(DEFAULT_RETENTION_HOURS),
        ),
        flow: validate_flow_limits(input.rate_limit, input.max_in_flight)?,
        disabled: input.enabled == Some(false),
        description: None,
        metadata: BTreeMap::new(),
        headers: BTreeMap::new(),
        authentication: None,
        client_certificate: None,
        filter: None,
        transformation: None,
    };
    let (record, secret) = state.endpoints().create(caller.owner, input).await?;
    let default_hours = state.config.retention.undelivered_payload_hours;
    Ok(ok(Created { endpoint: Endpoint::new(record, default_hours), signing_secret: secret }))
}

/// List webhook endpoints.
///
/// The application's endpoints, newest first, without secrets, a page at a time.
#[utoipa::path(tag = TAG, params(ListQuery),
    responses((status = 200, description = "A page of endpoints.", body = Answer<Page>)))]
#[get("/endpoints")]
async fn list_endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let filter = label_filter(query.label)?;
    let request =
        cursor_request(query.limit.as_deref(), query.cursor.as_deref(), DEFAULT_LIST_LIMIT, "next_cursor", |c| {
            parse_id(c).ok()
        })?;
    let owner = caller.owner;
    let page = state
        .endpoints()
        .list(owner, request, filter)
        .await
        .map_err(|err| cursor_list_error(err, "no endpoint of this list"))?;
    let next_cursor = page.items.last().filter(|_| page.has_more).map(|last| last.id);
    let default_hours = state.config.retention.undelivered_payload_hours;
    Ok(ok(Page {
        endpoints: page.items.into_iter().map(|r| Endpoint::new(r, default_hours)).collect(),
        has_more: page.has_more,
        next_cursor,
    }))
}

/// Retrieve a webhook endpoint.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint.", body = Answer<One>)))]
#[get("/endpoints/{id}")]
async fn retrieve_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path)?;
    let owner = caller.owner;
    let found = state.endpoints().get(owner, id).await?;
    let record = found.ok_or_else(|| not_found(&path))?;
    Ok(ok(One { endpoint: Endpoint::new(record, state.config.retention.undelivered_payload_hours) }))
}

/// Update a webhook endpoint.
///
/// Changes what the body names. Disabling pauses deliveries (they wait, and go when it
/// is enabled again).
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body = EndpointUpdate,
    responses((status = 200, description = "The updated endpoint.", body = Answer<One>)))]
#[patch("/endpoints/{id}")]
async fn update_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EndpointUpdate>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path)?;
    let input = body.0;
    let types = input.subscribed_event_types.map(validate_kayle_types).transpose()?;
    let changes = EndpointChanges {
        url: input.url.map(|url| validate_url(&state.targets, url)).transpose()?,
        all_kayle_types: types.as_ref().map(|(_, all)| *all),
        enabled_events: types.map(|(events, _)| events),
        name: input.name.map(|n| n.map(validate_name).transpose()).transpose()?,
        labels: input.labels.map(validate_labels).transpose()?,
        undelivered_retention_hours: input
            .undelivered_payload_retention_hours
            .map(validate_retention_hours)
            .transpose()?,
        status: input.enabled.map(|on| if on { EndpointStatus::Enabled } else { EndpointStatus::Disabled }),
        rate_limit: validate_flow_change("rate_limit", input.rate_limit)?,
        max_in_flight: validate_flow_change("max_in_flight", input.max_in_flight)?,
        ..EndpointChanges::default()
    };
    let record = state.endpoints().update(caller.owner, id, changes).await?.ok_or_else(|| not_found(&path))?;
    Ok(ok(One { endpoint: Endpoint::new(record, state.config.retention.undelivered_payload_hours) }))
}

/// Delete a webhook endpoint.
///
/// Permanently deletes it; its pending deliveries end.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "Deleted.", body = Answer<Deleted>)))]
#[delete("/endpoints/{id}")]
async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path)?;
    if !state.endpoints().delete(caller.owner, id).await? {
        return Err(not_found(&path));
    }
    Ok(ok(Deleted { id, deleted: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kayle_types_are_checked_and_empty_means_all() {
        let (all, as_empty) = validate_kayle_types(vec![]).unwrap();
        assert_eq!((all.len(), as_empty), (4, true));
        let one =
            validate_kayle_types(vec!["verification.session.failed".into(), "verification.session.failed".into()]);
        assert_eq!(one.unwrap(), (vec!["verification.session.failed".to_string()], false));
        let err =
            validate_kayle_types(vec!["verification.session.failed".into(), "verification_session.verified".into()])
                .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("subscribed_event_types[1]"));
    }
}
