//! Endpoint actions beyond CRUD: `rotate_secret`, `test` and `recover`.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::deliveries::Delivery;
use super::endpoint_fields::parse_id;
use super::endpoints::TAG;
use super::endpoints::{Endpoint, EndpointCreated};
use super::extract::{JsonBody, unix_time};
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::EndpointId;
use crate::service::endpoints::PingPayload;

/// The longest grace period an old secret may keep signing after a rotation.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// Mounts the action routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(rotate_secret).service(reveal_secret).service(test_endpoint).service(recover_endpoint);
}

/// The body of `rotate_secret`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in": "24h"}))]
pub struct RotateIn {
    /// How long the old secret keeps signing too (`"24h"`, at most 7 days); it stops at
    /// once when absent.
    #[schema(value_type = String, examples("24h"))]
    pub expires_in: Option<String>,
}

/// Parses `expires_in`.
fn grace(expires_in: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(text) = expires_in else { return Ok(None) };
    let duration = humantime::parse_duration(text).map_err(|e| {
        ApiError::invalid("expires_in", format!("`expires_in` must be a duration like \"24h\" or \"30m\" ({e})."))
    })?;
    if duration > MAX_ROTATION_GRACE {
        return Err(ApiError::invalid("expires_in", "`expires_in` may be at most 7 days."));
    }
    Ok((!duration.is_zero()).then_some(duration))
}

/// Rotate an endpoint's signing secret.
///
/// The new secret is in this answer only. Without `expires_in` the old secret stops
/// signing at once; with it, deliveries carry signatures of both until it expires.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body(content = RotateIn, content_type = "application/json"),
    responses((status = 200, description = "The endpoint and its new signing secret.", body = EndpointCreated)))]
#[post("/webhook_endpoints/{id}/rotate_secret")]
async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<RotateIn>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let grace = grace(body.0.expires_in.as_deref())?;
    let rotated = state.endpoints().rotate(caller.owner, id, grace).await?;
    let (record, secret) = rotated.ok_or_else(|| ApiError::not_found("webhook endpoint", &path))?;
    Ok(HttpResponse::Ok().json(EndpointCreated { endpoint: Endpoint::from(record), secret }))
}

/// An endpoint's current signing secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecret {
    /// Always `"webhook_endpoint_secret"`.
    pub object: &'static str,
    /// The secret that signs its deliveries now (`whsec_...`).
    pub secret: String,
}

/// Reveal an endpoint's signing secret.
///
/// The secret that signs its deliveries now, for the endpoint's owner to configure their
/// receiver again (the app portal's *Reveal secret*). Answers are never cached.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The current signing secret.", body = EndpointSecret)))]
#[get("/webhook_endpoints/{id}/secret")]
async fn reveal_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = super::endpoints::require_endpoint(&state, caller.owner, &path).await?;
    let secret = state.endpoints().current_secret(&record)?;
    Ok(HttpResponse::Ok().json(EndpointSecret { object: "webhook_endpoint_secret", secret }))
}

/// The body of `POST /v1/webhook_endpoints/:id/test` (optional).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_type": "verification_session.verified"}))]
pub struct TestIn {
    /// Send this type's example (from the event type catalogue) instead of a
    /// `webhook_endpoint.test` ping.
    pub event_type: Option<String>,
}

/// Send a test event to an endpoint.
///
/// Sends one signed `webhook_endpoint.test` event (or, with `event_type`, that type's
/// example data) to this endpoint only, now, and answers with the attempt. No retries
/// follow; the event is recorded but goes nowhere else.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body(content = TestIn, content_type = "application/json"),
    responses((status = 200, description = "The attempt, finished.", body = Delivery)))]
#[post("/webhook_endpoints/{id}/test")]
async fn test_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<TestIn>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let payload = match body.0.event_type {
        Some(name) => {
            Some(PingPayload::Example(name.clone(), super::tried_event::catalogue_example(&state, caller.mode, name)?))
        }
        None => None,
    };
    let attempt = state
        .endpoints()
        .ping(caller.owner, id, payload.unwrap_or(PingPayload::Test))
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint", &path))?;
    Ok(HttpResponse::Ok().json(Delivery::from(attempt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_parse_and_are_bounded() {
        assert_eq!(grace(None).unwrap(), None);
        assert_eq!(grace(Some("24h")).unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(grace(Some("0s")).unwrap(), None);
        assert!(grace(Some("8days")).is_err());
        assert!(grace(Some("soon")).is_err());
        assert!(grace(Some("24")).is_err(), "a number without a unit is ambiguous");
    }
}

/// The body of `recover`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": 1767225600, "dry_run": true}))]
pub struct RecoverIn {
    /// Required: resend what failed for good among attempts made since this Unix time.
    #[schema(required = true, value_type = i64, minimum = 0, maximum = 253402300799_i64)]
    pub since: Option<i64>,
    /// Only count what would be resent.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of `recover`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoverOut {
    /// Always `"webhook_endpoint_recovery"`.
    pub object: &'static str,
    /// The endpoint.
    pub endpoint_id: String,
    /// As asked.
    pub since: i64,
    /// As asked.
    pub dry_run: bool,
    /// Events resent (or, on a dry run, that would be).
    pub events: usize,
    /// More failed events are left than one call resends: call again.
    pub has_more: bool,
    /// Events that failed for good longer ago than the endpoint keeps undelivered payloads
    /// (`undelivered_payload_retention_hours`): not resent.
    pub expired: usize,
}

/// Resend what failed for good to an endpoint.
///
/// Resends every event whose delivery to this endpoint failed for good since `since`, as
/// a new delivery (attempt 1, same event id and body), at most 10,000 per call
/// (`has_more` says to call again). With `dry_run` it only answers the count.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body = RecoverIn,
    responses((status = 200, description = "How many events were (or would be) resent.", body = RecoverOut)))]
#[post("/webhook_endpoints/{id}/recover")]
async fn recover_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<RecoverIn>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let RecoverIn { since, dry_run } = body.0;
    let since = unix_time("since", since.ok_or_else(|| ApiError::missing("since"))?)?;
    let recovery = state
        .endpoints()
        .recover(caller.owner, id, since, dry_run)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint", &path))?;
    let out = RecoverOut {
        object: "webhook_endpoint_recovery",
        endpoint_id: path.to_string(),
        since,
        dry_run,
        events: recovery.events,
        has_more: recovery.has_more,
        expired: recovery.expired,
    };
    Ok(HttpResponse::Ok().json(out))
}
