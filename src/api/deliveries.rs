//! `/v1/webhook_endpoints/:id/deliveries`: an endpoint's delivery attempts; and
//! `/v1/deliveries`: the application's, across its endpoints.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::endpoint_fields::parse_id;
use super::extract::QueryParams;
use super::list::{ListResponse, PageParams, list_error};
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::service::{DeliveryFilter, DeliveryWithBody};
use crate::store::model::{AttemptRecord, AttemptStatus};

/// The longest `event_type` filter `GET /v1/deliveries` takes (as its OpenAPI says).
const MAX_EVENT_TYPE_CHARS: usize = 200;

/// `limit` when a list request gives none.
const DEFAULT_LIST_LIMIT: usize = 20;

/// Mounts the delivery routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_deliveries).service(list_all_deliveries).service(retrieve_delivery).service(retry_delivery);
}

/// The OpenAPI tag of the delivery routes.
const TAG: &str = "Deliveries";

/// A delivery attempt as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `wd_...`
    pub id: DeliveryId,
    /// Always `"webhook_delivery"`.
    pub object: &'static str,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The event.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    /// `pending` (scheduled or in flight), `succeeded`, `retrying` (failed; its retry,
    /// due at `next_retry_at`, is not made yet) or `failed` (failed; nothing waits on it).
    pub status: AttemptStatus,
    /// The HTTP status answered, or null.
    pub response_status: Option<u16>,
    /// The start of the response body (at most 2 KiB), or null.
    pub response_body: Option<String>,
    /// What went wrong, or null.
    pub error: Option<String>,
    /// How long it took, or null while pending.
    pub duration_ms: Option<u64>,
    /// When it was made (or is scheduled for, while pending).
    pub created: i64,
    /// When its retry was due (set once it failed with a retry to follow; kept after the
    /// retry is made).
    pub next_retry_at: Option<i64>,
    /// Whether it belongs to live mode.
    pub livemode: bool,
}

impl From<AttemptRecord> for Delivery {
    fn from(r: AttemptRecord) -> Self {
        Self {
            id: r.id,
            object: "webhook_delivery",
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: r.event_type,
            attempt: r.attempt,
            status: r.status,
            response_status: r.response_status,
            response_body: r.response_body,
            error: r.error,
            duration_ms: r.duration_ms,
            created: r.created,
            next_retry_at: r.next_retry_at,
            livemode: r.mode.is_live(),
        }
    }
}

/// One attempt with the request that was sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    /// The attempt.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The request sent, or null while pending.
    pub request: Option<SentRequest>,
}

/// The request of an attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SentRequest {
    /// `POST`, or `PUT` if the endpoint's transformation said so.
    pub method: &'static str,
    /// Where it went, if the endpoint's transformation changed it; null: the endpoint's
    /// URL.
    pub url: Option<String>,
    /// The headers, by name.
    pub headers: BTreeMap<String, String>,
    /// The body, byte for byte as sent (as the endpoint's transformation made it, if it
    /// has one).
    pub body: String,
    /// The version of the endpoint's transformation that made the request; null: none
    /// did.
    pub transformation_version: Option<u32>,
}

/// The query of the delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many attempts to return, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An attempt id: the page starts after it (the next, older page).
    #[param(value_type = Option<DeliveryId>)]
    starting_after: Option<String>,
    /// An attempt id: the page ends before it (the previous, newer page).
    #[param(value_type = Option<DeliveryId>)]
    ending_before: Option<String>,
    /// Only attempts with this status.
    status: Option<AttemptStatus>,
}

/// List an endpoint's delivery attempts, newest first.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id."), ListQuery),
    responses((status = 200, description = "A page of attempts.", body = ListResponse<Delivery>)))]
#[get("/webhook_endpoints/{id}/deliveries")]
async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    endpoint_page(&state, caller.owner, &path, query.0, ("webhook endpoint", "/v1/webhook_endpoints")).await
}

/// A page of the attempts of `owner`'s endpoint `raw` (a 404 calling it `kind.0` if there
/// is none), listed at `<kind.1>/<id>/deliveries`.
pub(crate) async fn endpoint_page(
    state: &web::Data<AppState>,
    owner: crate::store::model::Owner,
    raw: &str,
    query: ListQuery,
    kind: (&str, &str),
) -> Result<HttpResponse, ApiError> {
    let id: EndpointId = parse_id(raw)?;
    let deliveries = state.deliveries();
    let endpoint = deliveries.of_endpoint(owner, id).await?.ok_or_else(|| ApiError::not_found(kind.0, raw))?;
    let params = PageParams::new(&query.limit, &query.starting_after, &query.ending_before);
    let request = params.to_request::<DeliveryId>(DEFAULT_LIST_LIMIT)?;
    let page = endpoint.page(request, query.status).await.map_err(|err| list_error(err, &params))?;
    let url = format!("{}/{id}/deliveries", kind.1);
    let data: Vec<Delivery> = page.items.into_iter().map(Delivery::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(url, data, page.has_more)))
}

/// The query of the application's delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AllQuery {
    /// How many attempts to return, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An attempt id: the page starts after it (the next, older page).
    #[param(value_type = Option<DeliveryId>)]
    starting_after: Option<String>,
    /// An attempt id: the page ends before it (the previous, newer page).
    #[param(value_type = Option<DeliveryId>)]
    ending_before: Option<String>,
    /// Only attempts with this status.
    status: Option<AttemptStatus>,
    /// Only attempts of events of this type (a built-in type matches the attempts sent
    /// under its Kayle name too).
    #[param(max_length = 200)]
    event_type: Option<String>,
    /// Only this endpoint's attempts (`we_...`).
    #[param(value_type = Option<EndpointId>)]
    endpoint: Option<String>,
}

/// List the application's delivery attempts, newest first.
///
/// Every attempt to every endpoint of the application (the dashboard's Deliveries
/// page), filtered by status, event type and endpoint.
#[utoipa::path(tag = TAG, params(AllQuery),
    responses((status = 200, description = "A page of attempts.", body = ListResponse<Delivery>)))]
#[get("/deliveries")]
async fn list_all_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<AllQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    if let Some(event_type) = query.event_type.as_deref().filter(|t| t.chars().count() > MAX_EVENT_TYPE_CHARS) {
        return Err(ApiError::invalid(
            "event_type",
            format!("`event_type` is at most {MAX_EVENT_TYPE_CHARS} characters; `{:.40}…` is longer.", event_type),
        ));
    }
    let endpoint = match query.endpoint.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<EndpointId>().map_err(|_| {
            ApiError::invalid(
                "endpoint",
                format!("`endpoint` must be a webhook endpoint id (`we_...`); `{raw}` is not."),
            )
        })?),
    };
    let filter = DeliveryFilter { status: query.status, event_type: query.event_type, endpoint };
    let params = PageParams::new(&query.limit, &query.starting_after, &query.ending_before);
    let request = params.to_request::<DeliveryId>(DEFAULT_LIST_LIMIT)?;
    let page = state
        .deliveries()
        .across_endpoints(caller.owner, request, filter)
        .await
        .map_err(|err| list_error(err, &params))?;
    let data: Vec<Delivery> = page.items.into_iter().map(Delivery::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new("/v1/deliveries", data, page.has_more)))
}

/// Retrieve one delivery attempt, with the request that was sent.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id."), ("delivery" = DeliveryId, Path, description = "The attempt's id.")),
    responses((status = 200, description = "The attempt and its request.", body = DeliveryDetail)))]
#[get("/webhook_endpoints/{id}/deliveries/{delivery}")]
async fn retrieve_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_endpoint, raw_delivery) = path.into_inner();
    let endpoint = parse_id(&raw_endpoint)?;
    let delivery: DeliveryId = super::path_id(&raw_delivery, "delivery")?;
    let found = state.deliveries().get(caller.owner, endpoint, delivery).await?;
    let DeliveryWithBody { attempt, body } = found.ok_or_else(|| ApiError::not_found("delivery", &raw_delivery))?;
    let request = (!attempt.request_headers.is_empty()).then(|| {
        let headers = attempt.request_headers.iter().cloned().collect();
        match &attempt.sent {
            Some(sent) => SentRequest {
                method: if sent.method == "PUT" { "PUT" } else { "POST" },
                url: Some(sent.url.clone()),
                headers,
                body: sent.body.clone(),
                transformation_version: Some(sent.version),
            },
            None => SentRequest {
                method: "POST",
                url: None,
                headers,
                body: String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned(),
                transformation_version: None,
            },
        }
    });
    Ok(HttpResponse::Ok().json(DeliveryDetail { delivery: attempt.into(), request }))
}

/// Run a scheduled retry now.
///
/// `delivery` is the pending attempt, or the `retrying` attempt whose retry it is.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id."), ("delivery" = DeliveryId, Path, description = "The attempt's id.")),
    responses((status = 200, description = "The attempt that now goes at once.", body = Delivery)))]
#[post("/webhook_endpoints/{id}/deliveries/{delivery}/retry")]
async fn retry_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_endpoint, raw_delivery) = path.into_inner();
    let endpoint = parse_id(&raw_endpoint)?;
    let delivery: DeliveryId = super::path_id(&raw_delivery, "delivery")?;
    let moved = state.deliveries().retry_now(caller.owner, endpoint, delivery).await?;
    let record = moved.ok_or_else(|| ApiError::not_found("delivery", &raw_delivery))?;
    Ok(HttpResponse::Ok().json(Delivery::from(record)))
}
