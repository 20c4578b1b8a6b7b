//! The event a *Try it* runs on (a content filter's, a transformation's) or a test ping
//! sends as an example: one given, or an event type's catalogue example.

use actix_web::web;

use super::{AppState, Caller};
use crate::error::ApiError;
use crate::mode::Mode;

/// The event object a try runs on: the one given (`event`), or the catalogue's example of
/// `event_type` as an endpoint subscribed by that name receives it. Exactly one of them.
pub(super) fn tried_event(
    state: &web::Data<AppState>,
    caller: Caller,
    event: Option<serde_json::Value>,
    event_type: Option<String>,
) -> Result<serde_json::Value, ApiError> {
    match (event, event_type) {
        (Some(event), None) if event.is_object() => Ok(event),
        (Some(_), None) => Err(ApiError::invalid("event", "`event` must be a JSON object: an event as delivered.")),
        (None, Some(name)) => {
            // A Kayle name: its built-in type's example, as an endpoint subscribed by that
            // name receives it (under that name).
            let built_in = crate::event_types::kayle_alias_of(&name).unwrap_or(&name).to_string();
            let data = catalogue_example(state, caller.mode, built_in.clone())?;
            let now_ms = state.engine.clock().now_ms();
            let made = crate::payload::new_event(caller.owner, &built_in, &data, now_ms)
                .map_err(|e| ApiError::internal(&e))?;
            let mut event: serde_json::Value =
                serde_json::from_slice(&made.body).map_err(|e| ApiError::internal(&e))?;
            event["type"] = serde_json::Value::String(name);
            Ok(event)
        }
        _ => {
            Err(ApiError::invalid("event", "Give either `event` (an event object) or `event_type` (try its example)."))
        }
    }
}

/// The example data of a type of the catalogue, for *Send example* and a filter's *try
/// it*: 400 (on `event_type`) if the type is not one that may be published, or has no
/// example.
pub(super) fn catalogue_example(state: &AppState, mode: Mode, name: String) -> Result<serde_json::Value, ApiError> {
    let info = state.event_types.info(mode, &name).filter(|_| state.event_types.is_publishable(mode, &name));
    let info = info.ok_or_else(|| {
        ApiError::invalid(
            "event_type",
            format!("`{name}` is not an event type that can be sent (see GET /v1/event_types)."),
        )
    })?;
    info.example.ok_or_else(|| {
        ApiError::invalid(
            "event_type",
            format!("The event type `{name}` has no example to send: give it one in [[events.types]] or with POST /v1/event_types/{name}."),
        )
    })
}
