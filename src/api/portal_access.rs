//! Which requests a portal token may make: the app portal's routes only, and only reads
//! for a read-only session. Asked by the key middleware (`auth.rs`) for every dialect, so
//! a portal token is refused the same way wherever it is presented.

use crate::error::{ApiError, ErrorCode};

/// The routes a portal token may use (`METHOD`, path with `*` for one segment): the
/// application's endpoints and their actions and deliveries, its events (read, resend),
/// the event types, its statistics, trying a content filter or a transformation (nothing
/// stored), an endpoint's transformation versions, and the
/// application itself (read). Never applications
/// in general, publishing, verification sessions, keys, portal sessions, backups or
/// metrics.
const PORTAL_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/portal_session"),
    ("GET", "/v1/apps/*"),
    ("GET", "/v1/webhook_endpoints"),
    ("POST", "/v1/webhook_endpoints"),
    ("GET", "/v1/webhook_endpoints/*"),
    ("POST", "/v1/webhook_endpoints/*"),
    ("DELETE", "/v1/webhook_endpoints/*"),
    ("GET", "/v1/webhook_endpoints/*/secret"),
    ("GET", "/v1/webhook_endpoints/*/flow"),
    ("POST", "/v1/webhook_endpoints/*/rotate_secret"),
    ("POST", "/v1/webhook_endpoints/*/test"),
    ("POST", "/v1/webhook_endpoints/*/recover"),
    ("GET", "/v1/webhook_endpoints/*/deliveries"),
    ("GET", "/v1/webhook_endpoints/*/deliveries/*"),
    ("POST", "/v1/webhook_endpoints/*/deliveries/*/retry"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/*"),
    ("GET", "/v1/events/*/deliveries"),
    ("POST", "/v1/events/*/resend"),
    ("GET", "/v1/event_types"),
    ("GET", "/v1/event_types/*"),
    ("GET", "/v1/delivery_stats"),
    ("POST", "/v1/filters/test"),
    ("GET", "/v1/webhook_endpoints/*/transformation/versions"),
    ("POST", "/v1/transformations/test"),
    ("GET", "/v1/replays"),
    ("POST", "/v1/replays"),
    ("GET", "/v1/replays/*"),
    ("POST", "/v1/replays/*/cancel"),
];

/// Whether a portal token may make this request; the error says why not.
pub fn portal_allows(method: &str, path: &str, read_only: bool) -> Result<(), ApiError> {
    let matches = |pattern: &str| {
        let (mut want, mut got) = (pattern.split('/'), path.trim_end_matches('/').split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some("*"), Some(segment)) if !segment.is_empty() => {}
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    };
    if !PORTAL_ROUTES.iter().any(|(m, pattern)| *m == method && matches(pattern)) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("A portal token works only for the app portal's routes, not {method} {path}. Use an API key."),
        ));
    }
    if read_only && method != "GET" {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "This portal link is read-only: it can show endpoints and deliveries but not change them.",
        ));
    }
    if read_only && path.ends_with("/secret") {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "This portal link is read-only: it cannot reveal signing secrets.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_tokens_reach_the_portal_routes_only_and_read_only_ones_only_read() {
        assert!(portal_allows("GET", "/v1/webhook_endpoints", false).is_ok());
        assert!(portal_allows("GET", "/v1/deliveries", true).is_ok(), "the application's deliveries, read only too");
        assert!(portal_allows("POST", "/v1/filters/test", false).is_ok(), "a filter tried before it is saved");
        assert!(portal_allows("POST", "/v1/transformations/test", false).is_ok(), "a transformation tried");
        assert!(portal_allows("POST", "/v1/transformations/test", true).is_err(), "a read-only link tries nothing");
        let versions = "/v1/webhook_endpoints/we_1/transformation/versions";
        assert!(portal_allows("GET", versions, true).is_ok(), "a transformation's versions, read only too");
        assert!(portal_allows("POST", "/v1/webhook_endpoints/we_1/deliveries/wd_1/retry", false).is_ok());
        assert!(portal_allows("GET", "/v1/apps/app_1", false).is_ok());
        assert!(portal_allows("GET", "/v1/webhook_endpoints/we_1/flow", true).is_ok(), "what holds it back, read only");
        for (method, path) in [
            ("GET", "/v1/apps"),
            ("POST", "/v1/apps/app_1"),
            ("POST", "/v1/apps/app_1/portal_sessions"),
            ("POST", "/v1/events"),
            ("GET", "/v1/verification_sessions"),
            ("GET", "/v1/webhook_endpoints/we_1/deliveries/wd_1/retry/x"),
            ("GET", "/apps/acme/webhooks"),
            ("GET", "/v1/webhooks/endpoints"),
            ("GET", "/v1/apps//"),
        ] {
            assert!(portal_allows(method, path, false).is_err(), "{method} {path}");
        }
        assert!(portal_allows("GET", "/v1/webhook_endpoints", true).is_ok());
        assert!(portal_allows("GET", "/v1/webhook_endpoints/we_1/secret", false).is_ok());
        assert!(
            portal_allows("GET", "/v1/webhook_endpoints/we_1/secret", true).is_err(),
            "a secret is more than a look"
        );
        let err = portal_allows("POST", "/v1/webhook_endpoints", true).unwrap_err();
        assert!(err.message.contains("read-only"));
    }
}
