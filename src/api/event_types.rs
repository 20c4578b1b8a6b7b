//! `GET /v1/event_types`: the event types this server accepts, so clients (the
//! dashboard's endpoint form among them) can offer them instead of free text.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use super::list::ListResponse;
use super::{AppState, Caller, Routes};

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
    /// What it means (empty for a type named only in `[events] custom_types`).
    pub description: &'a str,
    /// The JSON Schema (draft 2020-12) its `data` must satisfy, or null.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<&'a serde_json::Value>,
    /// An example of its `data`, or null.
    #[schema(value_type = Option<Object>)]
    pub example: Option<&'a serde_json::Value>,
    /// Whether stile emits it itself (false: declared in `[events]`).
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
        .infos()
        .map(|t| EventType {
            object: "event_type",
            name: &t.name,
            description: &t.description,
            schema: t.schema.as_ref(),
            example: t.example.as_ref(),
            built_in: t.built_in,
            alias_of: t.alias_of,
        })
        .collect();
    HttpResponse::Ok().json(ListResponse::new("/v1/event_types", data, false))
}
