//! The one error type at the HTTP boundary, built from one table of codes.
//!
//! Every failure a client can see is an [`ApiError`] rendered as the Stripe-style envelope
//! `{"error":{"type","code","message","param"}}`. The layers below the API (store,
//! delivery engine, life cycle, retention) return their own errors and never name this
//! one; the conversions from them are all here. Internal failures are logged in full
//! where they are converted and answered with a generic message.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Declares [`ErrorCode`] with its HTTP status, error type and code string in one table,
/// so a code cannot exist without all three.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => ($status:ident, $kind:literal, $code:literal),)*) => {
        /// Every kind of error the API answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order (the OpenAPI document lists them).
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The HTTP status this error is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            /// The `error.type` field: the broad class a client switches on.
            pub fn kind(self) -> &'static str {
                match self { $(ErrorCode::$variant => $kind,)* }
            }

            /// The `error.code` field: the precise reason.
            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }
        }
    };
}

error_codes! {
    /// A required parameter is absent.
    ParameterMissing => (BAD_REQUEST, "invalid_request_error", "parameter_missing"),
    /// A parameter has a value that is not allowed.
    ParameterInvalid => (BAD_REQUEST, "invalid_request_error", "parameter_invalid"),
    /// A parameter the route does not take.
    ParameterUnknown => (BAD_REQUEST, "invalid_request_error", "parameter_unknown"),
    /// The request is malformed in a way no single parameter explains.
    BadRequest => (BAD_REQUEST, "invalid_request_error", "bad_request"),
    /// The body is not JSON, or not a JSON object.
    InvalidJson => (BAD_REQUEST, "invalid_request_error", "invalid_json"),
    /// The object is in a state that does not allow this action.
    InvalidState => (BAD_REQUEST, "invalid_request_error", "invalid_state"),
    /// The payload of a delivery that failed for good is past its endpoint's
    /// undelivered-payload window, so it cannot be sent there again.
    PayloadExpired => (BAD_REQUEST, "invalid_request_error", "payload_expired"),
    /// A test-mode helper was called with a live key.
    TestModeOnly => (BAD_REQUEST, "invalid_request_error", "test_mode_only"),
    /// No object with this id exists in the key's mode.
    ResourceMissing => (NOT_FOUND, "invalid_request_error", "resource_missing"),
    /// No route has this path.
    RouteNotFound => (NOT_FOUND, "invalid_request_error", "route_not_found"),
    /// The path exists but not with this method.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed"),
    /// The body is larger than the server accepts.
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large"),
    /// The body came with a `Content-Type` that is not JSON.
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", "unsupported_media_type"),
    /// The request did not arrive whole within `server.request_timeout`.
    RequestTimeout => (REQUEST_TIMEOUT, "invalid_request_error", "request_timeout"),
    /// The request line (method, path and query) is longer than the server reads.
    UriTooLong => (URI_TOO_LONG, "invalid_request_error", "uri_too_long"),
    /// The request's headers are larger, or more, than the server reads.
    HeadersTooLarge => (REQUEST_HEADER_FIELDS_TOO_LARGE, "invalid_request_error", "headers_too_large"),
    /// No API key was sent.
    ApiKeyMissing => (UNAUTHORIZED, "authentication_error", "api_key_missing"),
    /// The API key sent is not one this server knows.
    ApiKeyInvalid => (UNAUTHORIZED, "authentication_error", "api_key_invalid"),
    /// The portal session's link has expired (or was revoked after the page loaded).
    PortalSessionExpired => (UNAUTHORIZED, "authentication_error", "portal_session_expired"),
    /// The API key may not do this (an app-restricted key managing applications).
    PermissionDenied => (FORBIDDEN, "permission_error", "insufficient_permissions"),
    /// The `Idempotency-Key` header is empty, too long or not printable ASCII.
    IdempotencyKeyInvalid => (BAD_REQUEST, "invalid_request_error", "idempotency_key_invalid"),
    /// The `Idempotency-Key` was used before with a different request.
    IdempotencyKeyReused => (BAD_REQUEST, "idempotency_error", "idempotency_key_reused"),
    /// A request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse => (CONFLICT, "idempotency_error", "idempotency_key_in_use"),
    /// Too many requests of this kind for now; `Retry-After` says when to try again.
    RateLimited => (TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited"),
    /// Something failed inside the server; the details are in its log.
    Internal => (INTERNAL_SERVER_ERROR, "api_error", "internal_error"),
    /// The server cannot take the request now (for example, its disk is full).
    Unavailable => (SERVICE_UNAVAILABLE, "api_error", "service_unavailable"),
}

/// An error as the API answers it: a code from the table, a sentence for the person
/// reading it, and the parameter it is about, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong, which fixes the status and type.
    pub code: ErrorCode,
    /// A human sentence that says what to do next.
    pub message: String,
    /// The request parameter at fault, in Stripe's `a[b]` notation.
    pub param: Option<String>,
    /// Seconds after which the request may be tried again, sent as `Retry-After`.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with no parameter.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), param: None, retry_after_secs: None }
    }

    /// An error about one parameter.
    pub fn param(code: ErrorCode, param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), param: Some(param.into()), retry_after_secs: None }
    }

    /// A 429 that says when to try again (rounded up to whole seconds, at least one).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self { retry_after_secs: Some(secs.max(1)), ..Self::new(ErrorCode::RateLimited, message) }
    }

    /// A 400 for a required parameter that is absent.
    pub fn missing(param: &str) -> Self {
        Self::param(ErrorCode::ParameterMissing, param, format!("Missing required param: {param}."))
    }

    /// A 400 about one parameter's value.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::param(ErrorCode::ParameterInvalid, param, message)
    }

    /// A 404 for an object that does not exist (or belongs to the other mode).
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::param(ErrorCode::ResourceMissing, "id", format!("No such {kind}: '{id}'."))
    }

    /// A 500: logs the cause in full here, answers with a generic message.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(ErrorCode::Internal, "An internal error occurred; it has been logged. Please try again.")
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorEnvelope<'_> {
        ErrorEnvelope {
            error: ErrorBody {
                kind: self.code.kind(),
                code: self.code.code(),
                message: &self.message,
                param: self.param.as_deref(),
            },
        }
    }
}

/// The `{"error": {...}}` wrapper every error response has.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope<'a> {
    /// The error itself.
    pub error: ErrorBody<'a>,
}

/// The fields of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// `invalid_request_error`, `authentication_error`, `idempotency_error`, ...
    #[serde(rename = "type")]
    #[schema(schema_with = error_type_schema)]
    pub kind: &'static str,
    /// The precise reason, stable for programs to match on.
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    /// A sentence for people.
    pub message: &'a str,
    /// The parameter at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'a str>,
}

/// `error.type` in the OpenAPI document: a string, one of the table's types.
fn error_type_schema() -> utoipa::openapi::Object {
    let mut kinds: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    string_enum(kinds, "The broad class of the error, for programs to switch on.")
}

/// `error.code` in the OpenAPI document: a string, one of the table's codes.
fn error_code_schema() -> utoipa::openapi::Object {
    string_enum(
        ErrorCode::ALL.iter().map(|c| c.code()).collect(),
        "The precise reason, stable for programs to match on.",
    )
}

fn string_enum(values: Vec<&str>, description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code.code(), self.code.status(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// The Stile envelope, with the error itself kept in the response's extensions so a
    /// dialect's middleware can answer it in its own envelope instead.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        let mut response = response.json(self.body());
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        store_error(&err)
    }
}

/// The answer for a store failure: a 503 when the disk refuses writes, else a 500.
fn store_error(err: &crate::store::StoreError) -> ApiError {
    if let crate::store::StoreError::Unsupported(what) = err {
        return ApiError::new(ErrorCode::InvalidState, *what);
    }
    if err.is_storage_unavailable() {
        tracing::error!(error = %err, "the store refused a write");
        return ApiError::new(
            ErrorCode::Unavailable,
            "The server cannot store data right now (its disk is full or read-only, or its database cannot be reached). Nothing was written; try again later.",
        );
    }
    ApiError::internal(err)
}

impl From<crate::delivery::EngineError> for ApiError {
    fn from(err: crate::delivery::EngineError) -> Self {
        match err {
            crate::delivery::EngineError::ShuttingDown => {
                ApiError::new(ErrorCode::Unavailable, "The server is shutting down; retry the request in a moment.")
            }
            crate::delivery::EngineError::ListenerNotConnected => ApiError::new(
                ErrorCode::InvalidState,
                "No `stile listen` is connected for this endpoint (to this server process): start `stile listen`, then send the test again. The server never sends to `forward_to` itself.",
            ),
            crate::delivery::EngineError::EndpointBusy { retry_after } => ApiError::rate_limited(
                "This endpoint already has as many requests in flight as it may take at once; try the test again shortly.",
                retry_after,
            ),
            crate::delivery::EngineError::EndpointPaused { retry_after } => ApiError::rate_limited(
                format!(
                    "This endpoint asked stile to slow down (it answered 429, or 503 with Retry-After) and is paused for {} s more; try the test again then.",
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            ),
            crate::delivery::EngineError::PingRateExceeded { retry_after } => ApiError::rate_limited(
                format!(
                    "An endpoint may be sent at most {} test events per second; try again shortly.",
                    crate::delivery::PINGS_PER_SECOND
                ),
                retry_after,
            ),
            crate::delivery::EngineError::Store(err) => store_error(&err),
        }
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(err: crate::service::ServiceError) -> Self {
        match err {
            crate::service::ServiceError::Invalid { param, message } => ApiError::invalid(param, message),
            crate::service::ServiceError::UidTaken { uid, by } => {
                ApiError::invalid("uid", format!("The uid `{uid}` is already used by {by} in this mode."))
            }
            crate::service::ServiceError::DefaultApp { app, mode } => ApiError::new(
                ErrorCode::InvalidState,
                format!(
                    "{app} is the default application of {mode} mode, which requests without a Stile-App header act on; it cannot be deleted."
                ),
            ),
            crate::service::ServiceError::PayloadExpired { param, hours } => ApiError::param(
                ErrorCode::PayloadExpired,
                param,
                format!(
                    "This event's delivery to the endpoint failed for good more than {hours} hours ago, its undelivered-payload retention (`undelivered_payload_retention_hours`): the payload is no longer kept for it."
                ),
            ),
            crate::service::ServiceError::NotScheduled(status) => ApiError::new(
                ErrorCode::InvalidState,
                format!("This delivery attempt is `{}` and no retry of it is scheduled.", status.as_str()),
            ),
            crate::service::ServiceError::EndpointDisabled => ApiError::new(
                ErrorCode::InvalidState,
                "The endpoint is disabled; its retries wait until it is enabled again.",
            ),
            crate::service::ServiceError::UnknownCursor => {
                ApiError::invalid("cursor", "`cursor` names no object in this list.")
            }
            crate::service::ServiceError::ReadOnlyType { name, from } => {
                let why = match from {
                    crate::event_types::Source::BuiltIn => "is built in",
                    _ => "is declared in stile.toml: change it there",
                };
                ApiError::new(
                    ErrorCode::InvalidState,
                    format!("The event type `{name}` {why}; the API cannot change it."),
                )
            }
            crate::service::ServiceError::Refused(err) => err.into(),
            crate::service::ServiceError::TestModeOnly => ApiError::new(
                ErrorCode::TestModeOnly,
                "Test helpers only work with a test key (vk_test_...); live sessions move only through real verification.",
            ),
            crate::service::ServiceError::Engine(err) => err.into(),
            crate::service::ServiceError::Store(err) => err.into(),
            crate::service::ServiceError::Encode(err) => ApiError::internal(&err),
        }
    }
}

impl From<crate::lifecycle::MoveError> for ApiError {
    fn from(err: crate::lifecycle::MoveError) -> Self {
        match err {
            crate::lifecycle::MoveError::NotAllowed { .. } => ApiError::new(ErrorCode::InvalidState, err.to_string()),
            crate::lifecycle::MoveError::Encode(err) => ApiError::internal(&err),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    /// A value the server made could not be encoded: its fault, never the caller's.
    fn from(err: serde_json::Error) -> Self {
        ApiError::internal(&err)
    }
}

impl From<crate::store::redb::BackupError> for ApiError {
    fn from(err: crate::store::redb::BackupError) -> Self {
        match err {
            crate::store::redb::BackupError::Store(err) => err.into(),
            err if err.is_disk_full() => {
                tracing::error!(error = %err, "no room for the backup copy");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "The server has no disk space for the backup copy (it needs about the size of the data file).",
                )
            }
            err => ApiError::internal(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn rendered(err: &ApiError) -> (StatusCode, serde_json::Value) {
        let res = err.error_response();
        let status = res.status();
        let bytes = res.into_body().try_into_bytes().expect("a sized body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[test]
    fn parameter_error_renders_the_envelope_with_param() {
        let (status, body) = rendered(&ApiError::invalid("url", "`url` must use https://."));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "parameter_invalid");
        assert_eq!(body["error"]["param"], "url");
        assert_eq!(body["error"]["message"], "`url` must use https://.");
    }

    #[test]
    fn internal_error_hides_the_cause_behind_a_generic_message() {
        let cause = std::io::Error::other("disk controller on fire at /var/secret");
        let (status, body) = rendered(&ApiError::internal(&cause));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["type"], "api_error");
        assert!(!body["error"]["message"].as_str().unwrap().contains("secret"));
        assert!(body["error"].get("param").is_none());
    }

    #[test]
    fn every_code_of_the_table_is_distinct_and_has_an_error_status() {
        let mut codes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code:?}");
            assert!(!code.code().is_empty() && !code.kind().is_empty(), "{code:?}");
            assert!(codes.insert(code.code()), "the code `{}` is used twice", code.code());
            assert!(names.insert(format!("{code:?}")), "{code:?} is listed twice");
        }
        // `ALL` is generated from the same table as the enum, so this also counts every
        // variant: a new code cannot be left out.
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn domain_errors_map_to_their_answers() {
        let refused = crate::lifecycle::MoveError::NotAllowed {
            from: crate::store::model::sessions::SessionStatus::Verified,
            to: crate::store::model::sessions::SessionStatus::Cancelled,
            allowed: crate::store::model::sessions::SessionStatus::OPEN,
        };
        let err = ApiError::from(refused);
        assert_eq!(err.code, ErrorCode::InvalidState);
        assert!(err.message.contains("`verified`") && err.message.contains("`requires_input` or `processing`"));
        assert_eq!(ApiError::from(crate::delivery::EngineError::ShuttingDown).code, ErrorCode::Unavailable);
        let full = crate::store::StoreError::Unavailable("disk full".into());
        assert_eq!(ApiError::from(crate::delivery::EngineError::from(full)).code, ErrorCode::Unavailable);

        // The refusals of a retry, word for word as the Stile API has always answered them.
        let done =
            ApiError::from(crate::service::ServiceError::NotScheduled(crate::store::model::AttemptStatus::Succeeded));
        assert_eq!(done.code, ErrorCode::InvalidState);
        assert_eq!(done.message, "This delivery attempt is `succeeded` and no retry of it is scheduled.");
        let disabled = ApiError::from(crate::service::ServiceError::EndpointDisabled);
        assert_eq!(disabled.code, ErrorCode::InvalidState);
        assert_eq!(disabled.message, "The endpoint is disabled; its retries wait until it is enabled again.");
    }
}
