//! `/v1/event_types`: the catalogue of event types. Everyone may read it (the dashboard's
//! endpoint form and the portal offer it instead of free text); unrestricted keys may
//! create, change and archive the types of their mode. Built-in types and those of
//! `stile.toml` are read-only here.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::endpoints::MAX_DESCRIPTION_CHARS;
use super::extract::{JsonBody, QueryParams, bool_param, nullable};
use super::list::ListResponse;
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::event_types::{EventTypeInfo, Source, check_custom_type};
use crate::service::NewEventType;

/// The OpenAPI tag of these routes.
const TAG: &str = "Event types";

/// Mounts the routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_event_types)
        .service(create_event_type)
        .service(retrieve_event_type)
        .service(update_event_type)
        .service(patch_event_type)
        .service(archive_event_type);
}

/// An event type as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventType {
    /// Always `"event_type"`.
    #[schema(value_type = String, example = "event_type")]
    pub object: &'static str,
    /// The name endpoints subscribe to, e.g. `verification_session.verified`.
    pub name: String,
    /// What it means (empty for a type named only in `[events] custom_types`).
    pub description: String,
    /// The JSON Schema (draft 2020-12) its `data` must satisfy, or null.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example of its `data`, or null.
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// Where it comes from: `built_in` (stile's own), `config` (`stile.toml`) or `api`
    /// (created with `POST /v1/event_types`; only these can be changed through the API).
    pub source: Source,
    /// Whether stile emits it itself (`source` is `built_in`).
    pub built_in: bool,
    /// For the Kayle endpoints API's names, the built-in type this is another name for: it
    /// cannot be published, and endpoints subscribed to it receive that type's events
    /// under this name. Null for every other type.
    pub alias_of: Option<&'static str>,
    /// Archived: endpoints subscribed to it keep it and its events are still delivered,
    /// but no endpoint can subscribe to it anew. Lists leave it out unless
    /// `include_archived=true`.
    pub archived: bool,
    /// When it was created through the API (Unix seconds); null for the others.
    pub created: Option<i64>,
    /// When it was last changed through the API (Unix seconds), or null.
    pub updated: Option<i64>,
}

impl From<EventTypeInfo> for EventType {
    fn from(t: EventTypeInfo) -> Self {
        Self {
            object: "event_type",
            name: t.name,
            description: t.description,
            schema: t.schema,
            example: t.example,
            built_in: t.source == Source::BuiltIn,
            source: t.source,
            alias_of: t.alias_of,
            archived: t.archived,
            created: t.created,
            updated: t.updated,
        }
    }
}

/// The body of `POST /v1/event_types`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "invoice.paid", "description": "An invoice was paid.",
    "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "example": {"id": "in_123"}}))]
pub struct EventTypeIn {
    /// Required: dot-separated lower-case words (`invoice.paid`), at most 100
    /// characters, not a built-in name, unique in the mode.
    #[schema(required = true, value_type = String)]
    pub name: Option<String>,
    /// What it means, for the people choosing what to subscribe to (at most 5,000
    /// characters).
    pub description: Option<String>,
    /// A JSON Schema (draft 2020-12, an object) that every event's `data` of this type
    /// must satisfy.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example of `data` (an object, satisfying `schema`), sent by *Send example*.
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
}

/// The body of `POST` or `PATCH /v1/event_types/:name`: what it names replaces what was
/// there; `null` removes the schema or the example.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "An invoice was paid in full."}))]
pub struct EventTypeUpdate {
    /// A new description.
    pub description: Option<String>,
    /// A new schema; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<serde_json::Value>>,
    /// A new example; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub example: Option<Option<serde_json::Value>>,
    /// `true` archives the type, `false` restores it.
    pub archived: Option<bool>,
}

/// The query of `GET /v1/event_types`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `true` lists archived types too (default `false`).
    #[param(value_type = Option<bool>)]
    include_archived: Option<String>,
}

/// Checks a description: at most 5,000 characters.
fn validate_description(description: String) -> Result<String, ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "description",
            format!("`description` must be at most {MAX_DESCRIPTION_CHARS} characters."),
        ));
    }
    Ok(description)
}

/// Checks that a schema or an example is a JSON object.
fn require_object(param: &str, value: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(param, format!("`{param}` must be a JSON object.")));
    }
    Ok(value)
}

/// List event types.
///
/// Every type of the caller's mode (built in, from `stile.toml`, created through the
/// API), sorted by name; archived ones only with `include_archived=true`. Not paginated.
#[utoipa::path(tag = TAG, params(ListQuery),
    responses((status = 200, description = "Every event type.", body = ListResponse<EventType>)))]
#[get("/event_types")]
async fn list_event_types(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let include_archived = bool_param("include_archived", query.0.include_archived.as_deref())?.unwrap_or(false);
    let data: Vec<EventType> =
        state.event_types.infos(caller.mode, include_archived).into_iter().map(EventType::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new("/v1/event_types", data, false)))
}

/// Create an event type.
///
/// Adds a type to the catalogue of the key's mode. With a schema, every event published
/// with this type must satisfy it (a 400 names the first value that does not).
#[utoipa::path(tag = TAG, request_body = EventTypeIn,
    responses((status = 200, description = "The new event type.", body = EventType)))]
#[post("/event_types")]
async fn create_event_type(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<EventTypeIn>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("manage event types")?;
    let input = body.0;
    let name = input.name.ok_or_else(|| ApiError::missing("name"))?;
    check_custom_type(&name).map_err(|problem| ApiError::invalid("name", format!("{problem}.")))?;
    let input = NewEventType {
        name,
        description: validate_description(input.description.unwrap_or_default())?,
        schema: input.schema.map(|s| require_object("schema", s)).transpose()?,
        example: input.example.map(|e| require_object("example", e)).transpose()?,
    };
    let info = state.catalogue().create(caller.mode, input).await?;
    Ok(HttpResponse::Ok().json(EventType::from(info)))
}

/// Retrieve an event type.
#[utoipa::path(tag = TAG, params(("name" = String, Path, description = "The type's name.")),
    responses((status = 200, description = "The event type.", body = EventType)))]
#[get("/event_types/{name}")]
async fn retrieve_event_type(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let info = state.event_types.info(caller.mode, &path).ok_or_else(|| ApiError::not_found("event type", &path))?;
    Ok(HttpResponse::Ok().json(EventType::from(info)))
}

/// Checks an update and applies it to the type named in the path.
async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    name: String,
    update: EventTypeUpdate,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("manage event types")?;
    let description = update.description.map(validate_description).transpose()?;
    let schema = update.schema.map(|s| s.map(|s| require_object("schema", s)).transpose()).transpose()?;
    let example = update.example.map(|e| e.map(|e| require_object("example", e)).transpose()).transpose()?;
    let archived = update.archived;
    let info = state
        .catalogue()
        .change(caller.mode, &name, move |record| {
            if let Some(description) = description {
                record.description = description;
            }
            if let Some(schema) = schema {
                record.schema = schema;
            }
            if let Some(example) = example {
                record.example = example;
            }
            if let Some(archived) = archived {
                record.archived = archived;
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("event type", &name))?;
    Ok(HttpResponse::Ok().json(EventType::from(info)))
}

/// Update an event type.
///
/// Replaces what the body names. A new schema applies to events published from now on;
/// the example must satisfy the schema the type ends up with.
#[utoipa::path(tag = TAG, params(("name" = String, Path, description = "The type's name.")),
    request_body = EventTypeUpdate,
    responses((status = 200, description = "The updated event type.", body = EventType)))]
#[post("/event_types/{name}")]
async fn update_event_type(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EventTypeUpdate>,
) -> Result<HttpResponse, ApiError> {
    update(state, caller, path.into_inner(), body.0).await
}

/// Update an event type (the same as `POST /v1/event_types/:name`).
#[utoipa::path(tag = TAG, params(("name" = String, Path, description = "The type's name.")),
    request_body = EventTypeUpdate,
    responses((status = 200, description = "The updated event type.", body = EventType)))]
#[patch("/event_types/{name}")]
async fn patch_event_type(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<EventTypeUpdate>,
) -> Result<HttpResponse, ApiError> {
    update(state, caller, path.into_inner(), body.0).await
}

/// Archive an event type.
///
/// The type is kept, for the history of its events and for the endpoints subscribed to
/// it (which keep receiving it), but no endpoint can subscribe to it anew. `POST
/// /v1/event_types/:name` with `{"archived": false}` restores it.
#[utoipa::path(tag = TAG, params(("name" = String, Path, description = "The type's name.")),
    responses((status = 200, description = "The archived event type.", body = EventType)))]
#[delete("/event_types/{name}")]
async fn archive_event_type(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_unrestricted("manage event types")?;
    let info = state
        .catalogue()
        .change(caller.mode, &path, |record| record.archived = true)
        .await?
        .ok_or_else(|| ApiError::not_found("event type", &path))?;
    Ok(HttpResponse::Ok().json(EventType::from(info)))
}
