//! `/v1/events`: publish, retrieve, list with filters, resend.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::deliveries::Delivery;
use super::extract::{JsonBody, QueryParams, UNIX_SECONDS, int_param};
use super::list::{ListResponse, PageParams};
use super::{AppState, Caller, blocking, resource};
use crate::clock::{unix_now, unix_now_ms};
use crate::error::ApiError;
use crate::ids::{EndpointId, EventId};
use crate::store::events::{EventFilter, EventMeta, NewEvent, Resent, StoredEvent};

/// `limit` when a list request gives none.
const DEFAULT_LIST_LIMIT: usize = 10;

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/events";

/// Mounts the event routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/events").route(web::get().to(list_events)).route(web::post().to(publish_event)))
        .service(resource("/events/{id}").route(web::get().to(retrieve_event)))
        .service(resource("/events/{id}/resend").route(web::post().to(resend_event)))
        .service(resource("/events/{id}/deliveries").route(web::get().to(event_deliveries)));
}

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// A known event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The event's object; `{}` when omitted.
    pub data: Option<serde_json::Value>,
}

/// The body of `POST /v1/events/:id/resend`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    /// Only to this endpoint (whatever it subscribes to).
    pub endpoint: Option<String>,
}

/// An event as the API shows it: the delivered payload plus `pending_webhooks`.
#[derive(Debug, Serialize)]
pub struct Event<'a, D: Serialize + ?Sized> {
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
    pub data: &'a D,
}

impl<'a, D: Serialize + ?Sized> Event<'a, D> {
    /// The view of an event with this metadata, data and count.
    fn new(meta: &'a EventMeta, data: &'a D, pending_webhooks: u32) -> Self {
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
fn render(event: &StoredEvent) -> Result<serde_json::Value, ApiError> {
    let payload: StoredPayload<'_> = serde_json::from_slice(&event.body).map_err(|e| ApiError::internal(&e))?;
    let view = Event::new(&event.meta, payload.data, event.pending_webhooks);
    serde_json::to_value(&view).map_err(|e| ApiError::internal(&e))
}

fn parse_id(raw: &str) -> Result<EventId, ApiError> {
    super::path_id(raw, "event")
}

/// `POST /v1/events`: publish an event. Answered once the event and its deliveries are
/// committed to disk.
async fn publish_event(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<EventIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let event_type = input.event_type.ok_or_else(|| ApiError::missing("type"))?;
    if !state.event_types.is_known(&event_type) {
        let known: Vec<&str> = state.event_types.all().collect();
        return Err(ApiError::invalid(
            "type",
            format!(
                "Unknown event type `{event_type}`. Known types: {}. Declare custom types in `[events] custom_types`.",
                known.join(", ")
            ),
        ));
    }
    let data = input.data.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if !data.is_object() {
        return Err(ApiError::invalid("data", "`data` must be a JSON object."));
    }
    let event = NewEvent::new(caller.mode, &event_type, &data, unix_now())?;
    let meta = event.meta.clone();
    let published = state.engine.publish(event).await?;
    Ok(HttpResponse::Ok().json(Event::new(&meta, &data, published.deliveries)))
}

/// `GET /v1/events/:id`
async fn retrieve_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let found = blocking(&state, move |store| store.event(caller.mode, id)).await?;
    let event = found.ok_or_else(|| ApiError::not_found("event", &path))?;
    Ok(HttpResponse::Ok().json(render(&event)?))
}

/// The query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    session_id: Option<String>,
    delivery_success: Option<String>,
}

/// `GET /v1/events`: newest first, filtered by type, creation time, session and
/// delivery outcome.
async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let filter = EventFilter {
        event_type: query.event_type.clone(),
        created_after: int_param("created_after", query.created_after.as_deref(), UNIX_SECONDS)?,
        created_before: int_param("created_before", query.created_before.as_deref(), UNIX_SECONDS)?,
        data_id: query.session_id.clone(),
        delivery_success: match query.delivery_success.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::invalid(
                    "delivery_success",
                    format!("`delivery_success` must be `true` or `false`, got `{other}`."),
                ));
            }
        },
    };
    let page = PageParams::new(&query.limit, &query.starting_after, &query.ending_before)
        .fetch::<EventId, _>(&state, DEFAULT_LIST_LIMIT, move |store, request| {
            store.list_events(caller.mode, request, &filter)
        })
        .await?;
    let data = page.items.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(ListResponse::new(LIST_URL, data, page.has_more)))
}

/// The most attempts `GET /v1/events/:id/deliveries` lists.
const MAX_EVENT_DELIVERIES: usize = 100;

/// `GET /v1/events/:id/deliveries`: where the event went and with what result: its
/// attempts to every endpoint, newest first (at most 100; `has_more` says if there are
/// more).
async fn event_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let (found, attempts) = blocking(&state, move |store| {
        let found = store.event(caller.mode, id)?.is_some();
        let attempts =
            if found { store.event_attempts(caller.mode, id, MAX_EVENT_DELIVERIES)? } else { Default::default() };
        Ok::<_, crate::store::StoreError>((found, attempts))
    })
    .await?;
    if !found {
        return Err(ApiError::not_found("event", &path));
    }
    let (records, has_more) = attempts;
    let data: Vec<Delivery> = records.into_iter().map(Delivery::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(format!("/v1/events/{}/deliveries", path.as_str()), data, has_more)))
}

/// `POST /v1/events/:id/resend`: a new round of delivery of the same event (same id,
/// same body), to every subscribed endpoint or to the one named.
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
    let outcome = blocking(&state, move |store| store.resend_event(caller.mode, id, endpoint, unix_now_ms())).await?;
    match outcome {
        Resent::NoEvent => return Err(ApiError::not_found("event", &path)),
        Resent::NoEndpoint => {
            return Err(ApiError::invalid("endpoint", "No such webhook endpoint in this mode."));
        }
        Resent::Scheduled(keys) => state.engine.notify(keys),
    }
    let found = blocking(&state, move |store| store.event(caller.mode, id)).await?;
    let event = found.ok_or_else(|| ApiError::not_found("event", &path))?;
    Ok(HttpResponse::Ok().json(render(&event)?))
}
