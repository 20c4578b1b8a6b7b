//! `GET /v1/event_types`: the event types this server accepts, so clients (the
//! dashboard's endpoint form among them) can offer them instead of free text.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use super::list::ListResponse;
use super::{AppState, Caller, Routes};
use crate::event_types::BUILT_IN;

/// Mounts the route.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_event_types);
}

/// An event type as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventType<'a> {
    /// Always `"event_type"`.
    pub object: &'static str,
    /// The name endpoints subscribe to, e.g. `verification_session.verified`.
    pub name: &'a str,
    /// Whether stile emits it itself (false: declared in `[events] custom_types`).
    pub built_in: bool,
}

/// List the event types this server accepts.
///
/// Every known type, sorted by name; never paginated (the list is fixed at start-up and
/// short).
#[utoipa::path(tag = "Events",
    responses((status = 200, description = "Every event type.", body = ListResponse<EventType>)))]
#[get("/event_types")]
async fn list_event_types(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let data: Vec<EventType<'_>> = state
        .event_types
        .all()
        .map(|name| EventType { object: "event_type", name, built_in: BUILT_IN.contains(&name) })
        .collect();
    HttpResponse::Ok().json(ListResponse::new("/v1/event_types", data, false))
}
