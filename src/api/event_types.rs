//! `GET /v1/event_types`: the event types this server accepts, so clients (the
//! dashboard's endpoint form among them) can offer them instead of free text.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use super::list::ListResponse;
use super::{AppState, Caller, Routes};
use crate::event_types::{BUILT_IN, kayle_alias_of};

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
    /// For Kayle's names (seed 003), the built-in type this is another name for: it
    /// cannot be published, and endpoints subscribed to it receive that type's events
    /// under this name. Null for every other type.
    pub alias_of: Option<&'static str>,
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
        .map(|name| {
            let alias_of = kayle_alias_of(name);
            EventType { object: "event_type", name, built_in: BUILT_IN.contains(&name) || alias_of.is_some(), alias_of }
        })
        .collect();
    HttpResponse::Ok().json(ListResponse::new("/v1/event_types", data, false))
}
