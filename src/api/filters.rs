//! `POST /v1/filters/test`: a content filter tried against an event before it is saved on
//! an endpoint (the dashboard's and the portal's *Try it*). Nothing is stored or sent.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::{AppState, Caller, Routes};
use crate::content_filter::ContentFilter;
use crate::error::ApiError;

/// Mounts the route.
pub fn configure(cfg: &mut Routes) {
    cfg.service(test_filter);
}

/// The OpenAPI tag of the route.
const TAG: &str = "Webhook endpoints";

/// The body of `POST /v1/filters/test`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"data": {"amount": {"$gte": 1000}}}, "event_type": "invoice.paid"}))]
pub struct FilterTestIn {
    /// The filter, as an endpoint's `filter` takes it.
    #[schema(value_type = Object)]
    pub filter: Option<serde_json::Value>,
    /// The event object to try it on, as an endpoint receives one (`type`, `data`, ...).
    #[schema(value_type = Option<Object>)]
    pub event: Option<serde_json::Value>,
    /// Or: try it on this type's example from the event type catalogue.
    pub event_type: Option<String>,
}

/// What a filter made of an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterTest {
    /// Always `"filter_test"`.
    pub object: &'static str,
    /// Whether an endpoint with this filter would receive the event.
    pub matches: bool,
    /// The event object it was tried on.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// Try a content filter.
///
/// Checks the filter as an endpoint's `filter` would be checked (400 naming the path of
/// what is wrong) and says whether it takes the event given, or the example of the event
/// type given, as an endpoint would receive it. Nothing is stored or sent.
#[utoipa::path(tag = TAG, request_body = FilterTestIn,
    responses((status = 200, description = "Whether the filter takes the event.", body = FilterTest)))]
#[post("/filters/test")]
async fn test_filter(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<FilterTestIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let source = input.filter.ok_or_else(|| ApiError::missing("filter"))?;
    let filter = ContentFilter::new(source, "filter")
        .map_err(|e| ApiError::invalid(e.path, format!("`filter`: {}", e.message)))?;
    let event = super::tried_event::tried_event(&state, caller, input.event, input.event_type)?;
    Ok(HttpResponse::Ok().json(FilterTest { object: "filter_test", matches: filter.matches(&event), event }))
}
