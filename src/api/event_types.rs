//! `GET /v1/event_types`: the event types this server accepts, so clients (the
//! dashboard's endpoint form among them) can offer them instead of free text.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::list::ListResponse;
use super::{AppState, Caller, resource};
use crate::event_types::BUILT_IN;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/event_types").route(web::get().to(list_event_types)));
}

/// An event type as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventType<'a> {
    /// Always `"event_type"`.
    pub object: &'static str,
    /// The name endpoints subscribe to, e.g. `verification_session.verified`.
    pub name: &'a str,
    /// Whether stile emits it itself (false: declared in `[events] custom_types`).
    pub built_in: bool,
}

/// `GET /v1/event_types`: every known type, sorted by name; never paginated (the list is
/// fixed at start-up and short).
async fn list_event_types(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let data: Vec<EventType<'_>> = state
        .event_types
        .all()
        .map(|name| EventType { object: "event_type", name, built_in: BUILT_IN.contains(&name) })
        .collect();
    HttpResponse::Ok().json(ListResponse::new("/v1/event_types", data, false))
}
