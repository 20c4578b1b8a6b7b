//! The HTTP API: routes, the state they share, and the middleware that makes every answer
//! a JSON object (errors included).
//!
//! Handlers extract and validate input, call the service (`crate::service`) for what holds
//! a rule and the store off the async runtime for a plain read, and return output types;
//! they never hold a transaction themselves.

pub mod admin;
pub mod app_webhooks;
pub mod apps;
pub mod auth;
pub mod connection;
pub mod deliveries;
pub mod dialect;
pub mod endpoint_actions;
pub mod endpoint_fields;
pub mod endpoint_flow;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod filters;
pub mod idempotency;
pub mod kayle;
pub mod list;
pub mod listen;
pub mod metadata;
pub mod metrics;
pub mod openapi;
pub mod operational_endpoints;
pub mod portal_access;
pub mod portal_sessions;
pub mod replays;
pub mod stats;
pub mod transformations;
mod tried_event;
pub mod verification_sessions;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};
use serde::Serialize;

pub use auth::Caller;

use crate::config::Config;
use crate::delivery::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::event_types::EventTypes;
use crate::metrics::Metrics;
use crate::service::{ApiKeys, AppNames};
use crate::store::Store;
use crate::target_policy::TargetPolicy;

/// What route modules mount their handlers on: actix's service config, collecting each
/// handler's OpenAPI operation as it is mounted, so the document cannot miss a route.
pub type Routes<'a> = utoipa_actix_web::service_config::ServiceConfig<'a>;

/// Everything the handlers share, built once at start-up.
pub struct AppState {
    /// The configuration the server started with.
    pub config: Config,
    /// The data file.
    pub store: Arc<Store>,
    /// Accepted API keys.
    pub keys: Arc<ApiKeys>,
    /// Event types that may be published and subscribed to (shared with the blocking
    /// tasks that change it).
    pub event_types: Arc<EventTypes>,
    /// Which webhook URLs are allowed.
    pub targets: TargetPolicy,
    /// Idempotency keys whose first request is in progress.
    pub idempotency: idempotency::InFlight,
    /// The delivery engine.
    pub engine: Engine,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// What `/admin` routes require as a bearer token (see [`crate::admin`]).
    pub admin_token: String,
    /// Each mode's default application, which requests act on.
    pub default_apps: crate::store::model::apps::DefaultApps,
    /// The applications `Stile-App` values named, remembered.
    pub app_names: AppNames,
    /// Wakes the replay task: a replay was made.
    pub replay_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// The state of a server with this config, event type catalogue, store and keys.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        event_types: EventTypes,
        store: Arc<Store>,
        keys: ApiKeys,
        engine: Engine,
        metrics: Arc<Metrics>,
        admin_token: String,
        default_apps: crate::store::model::apps::DefaultApps,
    ) -> Self {
        let shared = store.is_shared();
        Self {
            event_types: Arc::new(event_types),
            targets: TargetPolicy::new(&config),
            config,
            store,
            keys: Arc::new(keys),
            idempotency: idempotency::InFlight::default(),
            engine,
            metrics,
            admin_token,
            default_apps,
            app_names: AppNames::new(shared),
            replay_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The application operations, over this server's engine, store, keys and names.
    pub fn apps(&self) -> crate::service::Apps<'_> {
        crate::service::Apps { engine: &self.engine, store: &self.store, keys: &self.keys, names: &self.app_names }
    }

    /// The event type catalogue operations, over this server's engine, store and catalogue.
    pub fn catalogue(&self) -> crate::service::Catalogue<'_> {
        crate::service::Catalogue { engine: &self.engine, store: &self.store, event_types: &self.event_types }
    }

    /// The delivery operations, over this server's engine and store.
    pub fn deliveries(&self) -> crate::service::Deliveries<'_> {
        crate::service::Deliveries { engine: &self.engine, store: &self.store }
    }

    /// The event operations, over this server's engine, store and event type catalogue.
    pub fn events(&self) -> crate::service::Events<'_> {
        crate::service::Events { engine: &self.engine, store: &self.store, event_types: &self.event_types }
    }

    /// The portal session operations, over this server's engine, store and config.
    pub fn portal_sessions(&self) -> crate::service::PortalSessions<'_> {
        crate::service::PortalSessions { engine: &self.engine, store: &self.store, config: &self.config }
    }

    /// The verification session operations, over this server's engine, store and config.
    pub fn sessions(&self) -> crate::service::Sessions<'_> {
        crate::service::Sessions { engine: &self.engine, store: &self.store, config: &self.config }
    }

    /// The replay operations, over this server's engine and store.
    pub fn replays(&self) -> crate::service::Replays<'_> {
        crate::service::Replays { engine: &self.engine, store: &self.store, wake: &self.replay_wake }
    }

    /// The endpoint operations every dialect shares, over this server's engine and store.
    pub fn endpoints(&self) -> crate::service::Endpoints<'_> {
        crate::service::Endpoints {
            engine: &self.engine,
            store: &self.store,
            targets: &self.targets,
            metrics: &self.metrics,
        }
    }
}

/// Mounts every API route: `/healthz`, `/metrics`, `/admin`, the OpenAPI document, and the
/// authenticated `/v1` API. (`crate::routes` mounts this and the dashboard.)
pub fn configure(cfg: &mut Routes) {
    cfg.service(healthz)
        .service(metrics::metrics)
        .configure(admin::configure)
        // Before the `/v1` scope, which would otherwise take the path (and ask for a key).
        .service(openapi::openapi_json)
        .configure(app_webhooks::configure)
        .configure(kayle::configure)
        .service(
            utoipa_actix_web::scope("/v1")
                // Middleware wrapped last runs first: the key is checked before anything else.
                .wrap(from_fn(idempotency::idempotent_posts))
                .wrap(from_fn(auth::require_api_key))
                // The event routes first: the scope tries its routes in order, and every
                // path with a `{param}` before the one that matches costs a regular
                // expression run (and its captures' allocation) per request; `POST
                // /v1/events` is the hot one. No other route here starts with `/events`.
                .configure(events::configure)
                .configure(apps::configure)
                .configure(portal_sessions::configure)
                .configure(endpoints::configure)
                .configure(operational_endpoints::configure)
                .configure(endpoint_actions::configure)
                .configure(endpoint_flow::configure)
                .configure(filters::configure)
                .configure(transformations::configure)
                .configure(deliveries::configure)
                .configure(replays::configure)
                .configure(verification_sessions::configure)
                .configure(event_types::configure)
                .configure(listen::configure)
                .configure(stats::configure)
                .default_service(web::to(route_not_found)),
        );
}

/// Wraps the whole app, so that every answer leaves the same way: logged, with security
/// headers, and, if it is an error that is not JSON yet (from actix itself, say), turned
/// into the API's error object.
pub async fn boundary(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    // Inner layers answer with responses, errors included; an `Err` here is actix's own
    // and is rendered by actix (it cannot be caught without cloning the request).
    let mut response = next.call(req).await?.map_into_boxed_body();
    add_security_headers(&mut response, path.starts_with("/v1"));
    let status = response.status();
    tracing::debug!(%method, %path, status = status.as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response);
    }
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), "a non-JSON server error reached the boundary");
    }
    let error = error_for_status(status);
    let (request, _) = response.into_parts();
    let mut response = ServiceResponse::new(request, error.error_response());
    add_security_headers(&mut response, path.starts_with("/v1"));
    Ok(response)
}

/// The API error for an error status that some layer answered without one (actix itself,
/// say): a 404 is `route_not_found`, a 413 `payload_too_large`, and so on.
pub fn error_for_status(status: actix_web::http::StatusCode) -> ApiError {
    let code = match status.as_u16() {
        404 => ErrorCode::RouteNotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::RequestTimeout,
        413 => ErrorCode::PayloadTooLarge,
        414 => ErrorCode::UriTooLong,
        415 => ErrorCode::UnsupportedMediaType,
        431 => ErrorCode::HeadersTooLarge,
        503 => ErrorCode::Unavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    };
    let message = match code {
        ErrorCode::Internal => "An internal error occurred; it has been logged. Please try again.".to_string(),
        _ => format!("The request could not be handled ({status})."),
    };
    ApiError::new(code, message)
}

/// The JSON body of `error` as the API serving `path` answers errors: an app-scoped or a
/// Kayle API path gets its dialect's envelope, any other path (or none: a request line
/// that could not be read) the Stile API's. For the answers the connection layer
/// (`crate::server::guard`) makes itself, to requests no route saw.
pub fn error_body_for_path(path: Option<&str>, error: ApiError) -> Vec<u8> {
    // The scopes' own matching: the prefix itself, or the prefix and a `/`.
    let under = |prefix: &str| {
        path.and_then(|p| p.strip_prefix(prefix)).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let body = if under("/apps") {
        serde_json::to_vec(&app_webhooks::error_out(error))
    } else if under("/v1/webhooks") {
        serde_json::to_vec(&kayle::error_out(error))
    } else {
        serde_json::to_vec(&error.body())
    };
    body.expect("an error envelope (strings in structs) always serialises")
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer; API
/// answers (which hold secrets such as a new endpoint's signing secret) are never cached.
fn add_security_headers(response: &mut ServiceResponse<BoxBody>, api: bool) {
    security_headers(response.headers_mut(), api);
}

/// Sets the headers of [`add_security_headers`] on a response's `headers`; `api`: whether
/// it answers an API path (which is never cached).
pub fn security_headers(headers: &mut header::HeaderMap, api: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    // No framing, unless the page's own policy names who may frame it (the app portal).
    let framing_allowed = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|csp| csp.contains("frame-ancestors") && !csp.contains("frame-ancestors 'none'"));
    if !framing_allowed {
        headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    }
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    if api {
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    }
}

/// Runs blocking work with the store (a backup's copy of the data file) on the blocking
/// pool, so it never stalls an actix worker. Store calls themselves are awaited.
pub async fn blocking<T, E>(
    state: &web::Data<AppState>,
    call: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let store = Arc::clone(&state.store);
    match web::block(move || call(&store)).await {
        Ok(result) => result.map_err(Into::into),
        Err(err) => Err(ApiError::internal(&err)),
    }
}

/// Parses an id from a path. A malformed id, or one of another kind, names no object, so
/// it is a 404 like an unknown one, decided before the store is touched.
pub fn path_id<Id: std::str::FromStr>(raw: &str, kind: &str) -> Result<Id, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(kind, raw))
}

/// The answer for a request no route takes: a 405 if the path is a route's with another
/// method (the document knows every route), else a 404.
pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    let Some(allowed) = openapi::document().allowed_methods(req.path()) else {
        let message = format!("Unrecognized request URL ({} {}).", req.method(), req.path());
        return ApiError::new(ErrorCode::RouteNotFound, message).error_response();
    };
    let message = format!("{} is not allowed on {}; it takes {allowed}.", req.method(), req.path());
    let mut response = ApiError::new(ErrorCode::MethodNotAllowed, message).error_response();
    if let Ok(value) = header::HeaderValue::from_str(allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The answer of `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `"ok"`.
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

/// Whether the server is up.
///
/// Answers once the data file answers a read; no key needed.
#[utoipa::path(tag = "Operations", security(()),
    responses((status = 200, description = "The server is up.", body = Health)))]
#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.check().await?;
    Ok(HttpResponse::Ok().json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") }))
}
