//! `/v1/operational_webhook_endpoints`: the platform's own endpoints, which receive
//! stile's operational events about its customers' endpoints (`crate::operational`).
//! The same fields and answers as webhook endpoints, subscribed to the operational types;
//! an unrestricted key only (never an app-restricted key or a portal token).

use actix_web::{HttpResponse, delete, get, patch, post, web};

use super::deliveries::{Delivery, ListQuery as DeliveriesQuery};
use super::endpoint_fields::{Subscribable, parse_id};
use super::endpoints::{
    Endpoint, EndpointCreated, EndpointDeleted, EndpointIn, EndpointUpdate, ListQuery as EndpointsQuery,
};
use super::events::DEFAULT_LIST_LIMIT;
use super::extract::{JsonBody, QueryParams};
use super::list::{ListResponse, PageParams};
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::{EndpointId, EventId};
use crate::operational;
use crate::store::model::{EventFilter, Owner};

/// Mounts the operational endpoint routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list)
        .service(create)
        .service(retrieve)
        .service(update)
        .service(patch_update)
        .service(remove)
        .service(deliveries)
        .service(event_types)
        .service(events);
}

/// The OpenAPI tag of these routes.
const TAG: &str = "Operational webhook endpoints";

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/operational_webhook_endpoints";

/// What "not found" calls these endpoints.
const NOUN: &str = "operational webhook endpoint";

/// The operational application of the caller's mode, for an unrestricted key.
fn owner_of(caller: &Caller) -> Result<Owner, ApiError> {
    caller.require_unrestricted("manage operational webhook endpoints")?;
    Ok(operational::owner(caller.mode))
}

/// The answer to a content filter on an operational endpoint: they hear every event of
/// their types (what was told is listed whole in `/v1/operational_events`).
fn no_filter() -> ApiError {
    ApiError::invalid(
        "filter",
        "Operational endpoints take no `filter`: they receive every operational event of their types.",
    )
}

/// Create an operational endpoint.
///
/// It receives the operational events it subscribes to (or `["*"]`: all). The answer
/// carries its signing secret; no other answer shows it.
#[utoipa::path(tag = TAG, request_body = EndpointIn,
    responses((status = 200, description = "The new endpoint and its signing secret.", body = EndpointCreated)))]
#[post("/operational_webhook_endpoints")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<EndpointIn>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    let input = body.0.validate(&state.targets, &Subscribable::operational(&state.event_types, caller.mode), "")?;
    if input.filter.is_some() {
        return Err(no_filter());
    }
    let (record, secret) = state.endpoints().create(owner, input).await?;
    Ok(HttpResponse::Ok().json(EndpointCreated { endpoint: record.into(), secret }))
}

/// Retrieve an operational endpoint.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint.", body = Endpoint)))]
#[get("/operational_webhook_endpoints/{id}")]
async fn retrieve(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    let found = state.endpoints().get(owner, parse_id(&path)?).await?;
    let record = found.ok_or_else(|| ApiError::not_found(NOUN, &path))?;
    Ok(HttpResponse::Ok().json(Endpoint::from(record)))
}

/// Update an operational endpoint.
///
/// Replaces the fields named in the body, as for a webhook endpoint.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body = EndpointUpdate,
    responses((status = 200, description = "The updated endpoint.", body = Endpoint)))]
#[post("/operational_webhook_endpoints/{id}")]
async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EndpointUpdate>,
) -> Result<HttpResponse, ApiError> {
    apply_update(state, caller, path, body).await
}

/// Update an operational endpoint (the same as `POST`).
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body = EndpointUpdate,
    responses((status = 200, description = "The updated endpoint.", body = Endpoint)))]
#[patch("/operational_webhook_endpoints/{id}")]
async fn patch_update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EndpointUpdate>,
) -> Result<HttpResponse, ApiError> {
    apply_update(state, caller, path, body).await
}

/// An update, by either method.
async fn apply_update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EndpointUpdate>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    let id = parse_id(&path)?;
    let changes = body.0.validate(&state.targets, &Subscribable::operational(&state.event_types, caller.mode), "")?;
    if matches!(changes.filter, Some(Some(_))) {
        return Err(no_filter());
    }
    let updated = state.endpoints().update(owner, id, changes).await?;
    let record = updated.ok_or_else(|| ApiError::not_found(NOUN, &path))?;
    Ok(HttpResponse::Ok().json(Endpoint::from(record)))
}

/// Delete an operational endpoint and its pending retries.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint is deleted.", body = EndpointDeleted)))]
#[delete("/operational_webhook_endpoints/{id}")]
async fn remove(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    let id = parse_id(&path)?;
    if !state.endpoints().delete(owner, id).await? {
        return Err(ApiError::not_found(NOUN, &path));
    }
    Ok(HttpResponse::Ok().json(EndpointDeleted { id, object: "webhook_endpoint", deleted: true }))
}

/// List operational endpoints, newest first.
#[utoipa::path(tag = TAG, params(EndpointsQuery),
    responses((status = 200, description = "A page of endpoints.", body = ListResponse<Endpoint>)))]
#[get("/operational_webhook_endpoints")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<EndpointsQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    super::endpoints::list_page(&state, owner, query.0, LIST_URL).await
}

/// List an operational endpoint's delivery attempts, newest first.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id."), DeliveriesQuery),
    responses((status = 200, description = "A page of attempts.", body = ListResponse<Delivery>)))]
#[get("/operational_webhook_endpoints/{id}/deliveries")]
async fn deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    super::deliveries::endpoint_page(&state, owner, &path, query.0, (NOUN, LIST_URL)).await
}

/// The query of `GET /v1/operational_events`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// How many events to return, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An event id: the page starts after it (the next, older page).
    #[param(value_type = Option<EventId>)]
    starting_after: Option<String>,
    /// An event id: the page ends before it (the previous, newer page).
    #[param(value_type = Option<EventId>)]
    ending_before: Option<String>,
    /// Only events about this webhook endpoint (their `data.id`).
    #[param(value_type = Option<EndpointId>)]
    endpoint_id: Option<String>,
    /// Only events of this operational type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
}

/// List operational events, newest first.
///
/// What stile told (or is telling) the operational endpoints: each event with its data,
/// and `pending_webhooks`, the operational endpoints it has not reached yet. Filtered by
/// the webhook endpoint it is about and by type.
#[utoipa::path(tag = TAG, params(EventsQuery),
    responses((status = 200, description = "A page of operational events.", body = ListResponse<super::events::Event>)))]
#[get("/operational_events")]
async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&caller)?;
    let query = query.0;
    if let Some(event_type) = query.event_type.as_deref().filter(|t| !operational::is_type(t)) {
        let known: Vec<&str> = operational::TYPES.iter().map(|(name, _)| *name).collect();
        return Err(ApiError::invalid(
            "type",
            format!("`{event_type}` is not an operational event type. Known types: {}.", known.join(", ")),
        ));
    }
    let endpoint = match query.endpoint_id.as_deref() {
        Some(raw) => Some(raw.parse::<EndpointId>().map_err(|_| {
            ApiError::invalid("endpoint_id", format!("`{raw}` is not a webhook endpoint id (we_...)."))
        })?),
        None => None,
    };
    let endpoint = endpoint.map(|id| id.to_string());
    let filter = EventFilter { event_type: query.event_type.clone(), data_id: endpoint, ..EventFilter::default() };
    let events = state.events();
    let page = PageParams::new(&query.limit, &query.starting_after, &query.ending_before)
        .fetch::<EventId, _, _>(DEFAULT_LIST_LIMIT, |request| events.list(owner, request, filter))
        .await?;
    let data = page.items.iter().map(super::events::render).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(ListResponse::new(EVENTS_URL, data, page.has_more)))
}

/// The operational events list's path, echoed in its answers.
const EVENTS_URL: &str = "/v1/operational_events";

/// An operational event type, as listed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OperationalEventType {
    /// Always `"operational_event_type"`.
    pub object: &'static str,
    /// Its name, e.g. `endpoint.disabled`.
    pub name: &'static str,
    /// What it tells of.
    pub description: &'static str,
}

/// List the operational event types.
///
/// What operational endpoints may subscribe to (or `["*"]`: all of them).
#[utoipa::path(tag = TAG,
    responses((status = 200, description = "Every operational event type.", body = ListResponse<OperationalEventType>)))]
#[get("/operational_event_types")]
async fn event_types(caller: Caller) -> Result<HttpResponse, ApiError> {
    owner_of(&caller)?;
    let data: Vec<OperationalEventType> = operational::TYPES
        .iter()
        .map(|(name, description)| OperationalEventType { object: "operational_event_type", name, description })
        .collect();
    Ok(HttpResponse::Ok().json(ListResponse::new("/v1/operational_event_types", data, false)))
}
