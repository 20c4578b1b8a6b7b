//! `/v1/events`: publish, retrieve, list with filters, resend.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::deliveries::Delivery;
use super::extract::{JsonBody, QueryParams, bool_param, unix_time_param};
use super::list::{ListResponse, PageParams, list_error};
use super::{AppState, Caller, Routes};
use crate::content_filter::ContentFilter;
use crate::error::ApiError;
use crate::ids::{EndpointId, EventId};
use crate::store::model::{EventFilter, EventMeta, StoredEvent};
use crate::trace::{PublishSpan, TRACEPARENT, TRACESTATE};

/// `limit` when a list request gives none.
pub(super) const DEFAULT_LIST_LIMIT: usize = 10;

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/events";

/// Mounts the event routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_events)
        .service(publish_event)
        .service(retrieve_event)
        .service(resend_event)
        .service(event_deliveries);
}

/// The OpenAPI tag of the event routes.
const TAG: &str = "Events";

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "verification_session.verified", "data": {"id": "vks_01JD8Y6QK4N2V7X3ZB5C9R1T0M"}}))]
pub struct EventIn {
    /// A known event type (`GET /v1/event_types` lists them).
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String)]
    pub event_type: Option<String>,
    /// The event's object; `{}` when omitted.
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Value>,
}

/// The body of `POST /v1/events/:id/resend`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    /// Only to this endpoint (whatever it subscribes to).
    #[schema(value_type = EndpointId)]
    pub endpoint: Option<String>,
}

/// An event as the API shows it: the delivered payload plus `pending_webhooks`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Event<'a> {
    /// `evt_...`
    pub id: EventId,
    /// Always `"event"`.
    pub object: &'static str,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Deliveries not yet final.
    pub pending_webhooks: u32,
    /// The event's object, exactly as delivered.
    #[schema(value_type = Object)]
    pub data: EventData<'a>,
}

/// An event's `data`: as published (a parsed value) or as stored (the delivered bytes).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EventData<'a> {
    /// Just published.
    Value(&'a serde_json::Value),
    /// Read back from the store.
    Raw(&'a RawValue),
}

impl<'a> Event<'a> {
    /// The view of an event with this metadata, data and count.
    fn new(meta: &'a EventMeta, data: EventData<'a>, pending_webhooks: u32) -> Self {
        Self {
            id: meta.id,
            object: "event",
            event_type: &meta.event_type,
            livemode: meta.mode.is_live(),
            created: meta.created,
            pending_webhooks,
            data,
        }
    }
}

/// The payload as stored, borrowed for re-serialisation.
#[derive(Deserialize)]
struct StoredPayload<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Renders a stored event as the API's JSON.
pub(super) fn render(event: &StoredEvent) -> Result<serde_json::Value, ApiError> {
    let payload: StoredPayload<'_> = serde_json::from_slice(&event.body).map_err(|e| ApiError::internal(&e))?;
    let view = Event::new(&event.meta, EventData::Raw(payload.data), event.pending_webhooks);
    serde_json::to_value(&view).map_err(|e| ApiError::internal(&e))
}

fn parse_id(raw: &str) -> Result<EventId, ApiError> {
    super::path_id(raw, "event")
}

/// Publish an event.
///
/// Fans it out to every enabled endpoint of this mode that subscribes to its type.
/// Answered once the event and its deliveries are committed to disk.
#[utoipa::path(tag = TAG, request_body = EventIn,
    responses((status = 200, description = "The stored event.", body = Event)))]
#[post("/events")]
async fn publish_event(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: JsonBody<EventIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let event_type = input.event_type.ok_or_else(|| ApiError::missing("type"))?;
    let data = input.data.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let span = trace_of(&request).sampled_at(state.config.telemetry.sample_ratio);
    let (meta, deliveries) = state.events().publish(caller.owner, &event_type, &data, span).await?;
    Ok(HttpResponse::Ok().json(Event::new(&meta, EventData::Value(&data), deliveries)))
}

/// The trace a publish request is part of: the caller's, from its `traceparent` (and
/// `tracestate`, its fields joined), or a new one. Two `traceparent` fields are invalid
/// (W3C), and so is one that is not text: a new trace, never an error.
fn trace_of(request: &HttpRequest) -> PublishSpan {
    let fields = |name| request.headers().get_all(name).map(|v| v.to_str().ok()).collect::<Vec<_>>();
    let traceparent = match fields(TRACEPARENT).as_slice() {
        [Some(one)] => Some(*one),
        _ => None,
    };
    let tracestate = fields(TRACESTATE).into_iter().collect::<Option<Vec<_>>>().map(|parts| parts.join(","));
    PublishSpan::of_request(traceparent, tracestate.as_deref().filter(|s| !s.is_empty()))
}

/// Retrieve an event.
#[utoipa::path(tag = TAG, params(("id" = EventId, Path, description = "The event's id.")),
    responses((status = 200, description = "The event.", body = Event)))]
#[get("/events/{id}")]
async fn retrieve_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let found = state.events().get(caller.owner, id).await?;
    let event = found.ok_or_else(|| ApiError::not_found("event", &path))?;
    Ok(HttpResponse::Ok().json(render(&event)?))
}

/// The query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many events to return, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An event id: the page starts after it (the next, older page).
    #[param(value_type = Option<EventId>)]
    starting_after: Option<String>,
    /// An event id: the page ends before it (the previous, newer page).
    #[param(value_type = Option<EventId>)]
    ending_before: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events created after this Unix time (seconds).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 253402300799_i64)]
    created_after: Option<String>,
    /// Only events created before this Unix time (seconds).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 253402300799_i64)]
    created_before: Option<String>,
    /// Only events about this object (`data.id`), e.g. a verification session.
    session_id: Option<String>,
    /// `false`: only events not delivered everywhere yet (some endpoint's latest attempt
    /// did not succeed: pending, retrying or failed for good); `true`: only events
    /// delivered to every endpoint they went to.
    #[param(value_type = Option<bool>)]
    delivery_success: Option<String>,
    /// Only events whose content this filter takes: a content filter as an endpoint's
    /// `filter` (JSON, e.g. `{"data.customer": "cus_1"}`), matched against the event
    /// object. A search: it reads at most 5,000 events or 250 ms per request and answers
    /// `next_cursor` to go on from (see docs/filters.md).
    filter: Option<String>,
}

/// List events, newest first.
///
/// Filtered by type, creation time, session, delivery outcome and content (`filter`, a
/// search that reads a bounded number of events per request).
#[utoipa::path(tag = TAG, params(ListQuery),
    responses((status = 200, description = "A page of events.", body = ListResponse<Event>)))]
#[get("/events")]
async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let filter = EventFilter {
        event_type: query.event_type.clone(),
        created_after: unix_time_param("created_after", query.created_after.as_deref())?,
        created_before: unix_time_param("created_before", query.created_before.as_deref())?,
        data_id: query.session_id.clone(),
        delivery_success: bool_param("delivery_success", query.delivery_success.as_deref())?,
    };
    let events = state.events();
    let params = PageParams::new(&query.limit, &query.starting_after, &query.ending_before);
    if let Some(text) = &query.filter {
        let source: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid("filter", format!("`filter` must be a JSON content filter: {e}.")))?;
        let content = ContentFilter::new(source, "filter")
            .map_err(|e| ApiError::invalid(e.path, format!("`filter`: {}", e.message)))?;
        let request = params.to_request::<EventId>(DEFAULT_LIST_LIMIT)?;
        let budget = state.config.events.search_read_budget;
        let found = events
            .search(caller.owner, request, (filter, &content), budget)
            .await
            .map_err(|e| list_error(e, &params))?;
        let data = found.items.iter().map(render).collect::<Result<Vec<_>, _>>()?;
        let mut answer = ListResponse::new(LIST_URL, data, found.has_more);
        answer.next_cursor = found.next.map(|id| id.to_string());
        return Ok(HttpResponse::Ok().json(answer));
    }
    let page =
        params.fetch::<EventId, _, _>(DEFAULT_LIST_LIMIT, |request| events.list(caller.owner, request, filter)).await?;
    let data = page.items.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(ListResponse::new(LIST_URL, data, page.has_more)))
}

/// The most attempts `GET /v1/events/:id/deliveries` lists.
const MAX_EVENT_DELIVERIES: usize = 100;

/// List where an event went and with what result.
///
/// Its attempts to every endpoint, newest first (at most 100; `has_more` says if there
/// are more).
#[utoipa::path(tag = TAG, params(("id" = EventId, Path, description = "The event's id.")),
    responses((status = 200, description = "The event's attempts.", body = ListResponse<super::deliveries::Delivery>)))]
#[get("/events/{id}/deliveries")]
async fn event_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let found = state.events().deliveries(caller.owner, id, MAX_EVENT_DELIVERIES).await?;
    let (records, has_more) = found.ok_or_else(|| ApiError::not_found("event", &path))?;
    let data: Vec<Delivery> = records.into_iter().map(Delivery::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(format!("/v1/events/{}/deliveries", path.as_str()), data, has_more)))
}

/// Resend an event.
///
/// A new round of delivery of the same event (same id, same body), to every subscribed
/// endpoint or to the one named. An endpoint to which it failed for good longer ago than
/// the endpoint keeps undelivered payloads is refused by name (`payload_expired`) and
/// otherwise left out.
#[utoipa::path(tag = TAG, params(("id" = EventId, Path, description = "The event's id.")), request_body = ResendIn,
    responses((status = 200, description = "The event.", body = Event)))]
#[post("/events/{id}/resend")]
async fn resend_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<ResendIn>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let endpoint = match body.0.endpoint {
        None => None,
        Some(raw) => Some(
            raw.parse::<EndpointId>()
                .map_err(|_| ApiError::invalid("endpoint", format!("No such webhook endpoint: '{raw}'.")))?,
        ),
    };
    let found = state.events().resend(caller.owner, id, endpoint).await?;
    let event = found.ok_or_else(|| ApiError::not_found("event", &path))?;
    Ok(HttpResponse::Ok().json(render(&event)?))
}
