//! What the other webhook APIs stile speaks (the Kayle endpoints API, the app-scoped
//! webhooks API) share: their own error envelope around every error, and ISO 8601 times.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use serde::Serialize;

use crate::error::ApiError;

/// Runs the request and answers any error (from a handler, the key check, a bad body, an
/// unknown path or method) in a dialect's own envelope, built by `render` from the
/// `ApiError` the response carries, with the status and headers (`Allow`, ...) it had.
pub async fn reshape_errors<E: Serialize>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    render: impl FnOnce(ApiError) -> E,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?.map_into_boxed_body();
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let error = response.response().extensions().get::<ApiError>().cloned();
    let error = error.unwrap_or_else(|| super::error_for_status(status));
    let (request, old) = response.into_parts();
    let mut answer = HttpResponse::build(status).json(render(error));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, answer))
}

/// A time as ISO 8601 (UTC, whole seconds).
pub fn iso8601(unix_secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs.max(0) as u64)).to_string()
}
