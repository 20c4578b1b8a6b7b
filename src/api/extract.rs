//! Request extractors that answer every bad input with the API's error envelope:
//! [`JsonBody`] for bodies and [`QueryParams`] for query strings.
//!
//! Deserialisation goes through `serde_path_to_error`, so an error names the parameter at
//! fault in Stripe's notation (`metadata[plan]`, `enabled_events[2]`).

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::{LocalBoxFuture, Ready, ready};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest request body accepted, in bytes (256 KiB, the limit of `POST /v1/events`).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON object body deserialised into `T`. An empty body counts as `{}`, so routes whose
/// parameters are all optional can be called with no body at all.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("").to_owned());
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let bytes = read_body(&req, &mut payload).await?;
            parse_json(&bytes, content_type.as_deref()).map(JsonBody)
        })
    }
}

/// The `Content-Length` the client declared, if any.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the whole body of `req` from `payload`, refusing it as soon as it is known to
/// exceed [`MAX_BODY_BYTES`]. A body the connection layer stopped reading (it came too
/// slowly, or its chunked encoding is broken) is answered as the connection says why.
pub async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<Bytes, ApiError> {
    let declared_length = declared_length(req);
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than the {} KiB this server accepts.", MAX_BODY_BYTES / 1024),
        )
    };
    if declared_length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared_length.unwrap_or(0).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| match super::connection::Connection::of(req).and_then(|c| c.cut()) {
            Some(cut) => cut.error(),
            None => ApiError::new(ErrorCode::BadRequest, format!("The request body could not be read: {err}.")),
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a request body as a JSON object into `T`.
///
/// The rule for `Content-Type` (docs/stile-api.md, Conventions): a body that is not empty must
/// come with no `Content-Type` at all, or with a JSON one ([`is_json_media_type`]); any
/// other type is a 415, so a form or text body is refused rather than read as JSON. No
/// type at all is accepted because the body is parsed as JSON anyway, and SDKs and
/// scripts that send JSON without saying so are common (Stripe-like APIs accept them).
/// An empty body is `{}` whatever its type.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], content_type: Option<&str>) -> Result<T, ApiError> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        if let Some(content_type) = content_type.filter(|t| !is_json_media_type(t)) {
            // curl's `-d` sends this type unless told otherwise: say how to fix it.
            let hint = if content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
                " (curl's -d sends that type: add -H 'Content-Type: application/json')"
            } else {
                ""
            };
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Request bodies must be JSON, sent with `Content-Type: application/json` (or another JSON type, or none), not `{content_type}`{hint}."
                ),
            ));
        }
        serde_json::from_slice::<serde_json::Value>(bytes).map_err(|err| {
            ApiError::new(ErrorCode::InvalidJson, format!("The request body is not valid JSON: {err}."))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::InvalidJson, "The request body must be a JSON object."));
    }
    serde_path_to_error::deserialize(value).map_err(|err| parameter_error(&err))
}

/// Whether a `Content-Type` value names JSON: `application/json`, or an `application/`
/// type with the `+json` structured suffix of RFC 6839 (`application/merge-patch+json`,
/// `application/vnd.acme+json`), in any case and with any parameters (`; charset=utf-8`).
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else { return false };
    subtype == "json" || subtype.strip_suffix("+json").is_some_and(|name| !name.is_empty())
}

/// Query string parameters deserialised into `T` (which should deny unknown fields).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = form_urlencoded::parse(req.query_string().as_bytes());
        let de = serde_urlencoded::Deserializer::new(parsed);
        ready(serde_path_to_error::deserialize(de).map(QueryParams).map_err(|err| parameter_error(&err)))
    }
}

/// The latest Unix time (seconds) a parameter may name: the end of year 9999. Bounding
/// times keeps every sum and difference of two of them far from overflow.
pub const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// What a Unix time parameter must be, as its error says.
const UNIX_TIME: &str = "a Unix timestamp in seconds (0 to 253402300799)";

/// The 400 for a number parameter out of its range or not a number.
fn must_be(param: &str, what: &str, got: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(param, format!("`{param}` must be {what}, got `{got}`."))
}

/// Parses an optional whole-number query parameter in `range`; `what` says what it must be
/// in the error (`a number of seconds`).
pub fn int_param(
    param: &str,
    value: Option<&str>,
    what: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| match v.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(must_be(param, what, v)),
        })
        .transpose()
}

/// Parses an optional Unix time (seconds, from 0 to [`MAX_UNIX_SECONDS`]) query parameter.
pub fn unix_time_param(param: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    int_param(param, value, UNIX_TIME, 0..=MAX_UNIX_SECONDS)
}

/// Parses an optional `true`/`false` query parameter.
pub fn bool_param(param: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(must_be(param, "`true` or `false`", other)),
    }
}

/// Checks a Unix time (seconds) given as a JSON number, with the same bounds and message
/// as [`unix_time_param`].
pub fn unix_time(param: &str, value: i64) -> Result<i64, ApiError> {
    if (0..=MAX_UNIX_SECONDS).contains(&value) { Ok(value) } else { Err(must_be(param, UNIX_TIME, value)) }
}

/// Turns a deserialisation error into a 400 that names the parameter.
fn parameter_error<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> ApiError {
    let message = err.inner().to_string();
    let mut param = String::new();
    for segment in err.path().iter() {
        use serde_path_to_error::Segment;
        let part = match segment {
            Segment::Map { key } => key.clone(),
            Segment::Seq { index } => index.to_string(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        if param.is_empty() {
            param = part;
        } else {
            param.push_str(&format!("[{part}]"));
        }
    }
    let quoted = |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let nest = |name: String| {
        if param.is_empty() { name } else { format!("{param}[{name}]") }
    };
    if let Some(name) = quoted("unknown field `") {
        // The path already ends at the unknown field itself.
        let name = if param == name || param.ends_with(&format!("[{name}]")) { param.clone() } else { nest(name) };
        return ApiError::param(ErrorCode::ParameterUnknown, &name, format!("Received unknown parameter: {name}."));
    }
    if let Some(name) = quoted("missing field `") {
        let name = nest(name);
        return ApiError::missing(&name);
    }
    if param.is_empty() {
        return ApiError::new(ErrorCode::BadRequest, format!("Invalid request: {message}."));
    }
    ApiError::invalid(&param, format!("Invalid value for {param}: {message}."))
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`), or a value:
/// for updates where `null` clears a field and absence leaves it alone.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields exist to be deserialised into
    struct Input {
        url: String,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        metadata: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<String>>,
    }

    fn err(body: &str) -> ApiError {
        parse_json::<Input>(body.as_bytes(), Some("application/json")).unwrap_err()
    }

    #[test]
    fn errors_name_the_parameter_in_stripe_notation() {
        let e = err(r#"{"url":"x","metadata":{"plan":5}}"#);
        assert_eq!((e.code, e.param.as_deref()), (ErrorCode::ParameterInvalid, Some("metadata[plan]")));
        let e = err(r#"{"url":"x","tags":["a",3]}"#);
        assert_eq!(e.param.as_deref(), Some("tags[1]"));
        let e = err(r#"{"url":"x","colour":"red"}"#);
        assert_eq!((e.code, e.param.as_deref()), (ErrorCode::ParameterUnknown, Some("colour")));
        let e = err(r#"{"tags":[]}"#);
        assert_eq!((e.code, e.param.as_deref()), (ErrorCode::ParameterMissing, Some("url")));
    }

    #[test]
    fn malformed_and_non_object_bodies_are_invalid_json() {
        assert_eq!(err("{").code, ErrorCode::InvalidJson);
        assert_eq!(err("[1]").code, ErrorCode::InvalidJson);
        assert_eq!(err("\"x\"").code, ErrorCode::InvalidJson);
        let invalid_utf8 = parse_json::<Input>(b"{\"url\":\"\xff\"}", None).unwrap_err();
        assert_eq!(invalid_utf8.code, ErrorCode::InvalidJson);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(err(&format!("{{\"url\":{deep}}}")).code, ErrorCode::InvalidJson);
    }

    #[test]
    fn json_media_types_are_application_json_and_plus_json_only() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
            "application/vnd.acme.v2+json ; charset=UTF-8",
        ] {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in ["text/plain", "text/json", "text/x+json", "application/+json", "application/jsonx", "", "json"] {
            assert!(!is_json_media_type(other), "{other}");
        }
    }

    #[test]
    fn wrong_content_type_is_415_and_empty_body_is_an_empty_object() {
        let e = parse_json::<Input>(b"url=x", Some("application/x-www-form-urlencoded")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        assert!(e.message.contains("curl"), "{}", e.message);
        let e = parse_json::<Input>(b"{\"url\":\"x\"}", Some("text/plain")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        assert!(parse_json::<Input>(b"{\"url\":\"x\"}", Some("application/merge-patch+json")).is_ok());
        assert!(parse_json::<Input>(b"{\"url\":\"x\"}", Some("application/json; charset=utf-8")).is_ok());
        assert!(parse_json::<Input>(b"{\"url\":\"x\"}", None).is_ok());
        let e = parse_json::<Input>(b"  ", Some("text/plain")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ParameterMissing, "an empty body is {{}}, whatever its type");
    }

    #[test]
    fn nullable_tells_absent_from_null() {
        let absent: Input = parse_json(br#"{"url":"x"}"#, None).unwrap();
        let null: Input = parse_json(br#"{"url":"x","note":null}"#, None).unwrap();
        let set: Input = parse_json(br#"{"url":"x","note":"hi"}"#, None).unwrap();
        assert_eq!(absent.note, None);
        assert_eq!(null.note, Some(None));
        assert_eq!(set.note, Some(Some("hi".into())));
    }
}
