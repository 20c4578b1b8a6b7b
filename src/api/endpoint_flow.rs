//! `GET /v1/webhook_endpoints/:id/flow`: what holds an endpoint's deliveries back now (a
//! pause after a 429 or 503, its rate limit, its in-flight cap), as the process sending
//! to it sees it. What the dashboard's and the portal's endpoint views show as throttled.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use super::endpoints::TAG;
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::EndpointId;
use crate::store::model::FlowState;

/// Mounts the route.
pub fn configure(cfg: &mut Routes) {
    cfg.service(endpoint_flow);
}

/// An endpoint's flow now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "object": "webhook_endpoint_flow", "endpoint_id": "we_2Rb8W0DPcPLNgBk8vJ5hGf6ZkQo",
    "throttled": true, "reason": "paused", "paused_until": 1_767_225_600, "waiting": 42,
    "in_flight": 0, "rate_limit": 100, "max_in_flight": 8, "recovering_rate": null,
    "as_of": 1_767_225_590
}))]
pub struct EndpointFlow {
    /// Always `webhook_endpoint_flow`.
    #[schema(value_type = String, examples("webhook_endpoint_flow"))]
    object: &'static str,
    /// The endpoint.
    #[schema(value_type = String)]
    endpoint_id: EndpointId,
    /// Whether due deliveries wait for the endpoint's flow (`reason` says which hold).
    /// Held deliveries are not failed attempts: nothing is recorded for them, and they
    /// move neither the retry schedule nor the endpoint's health.
    throttled: bool,
    /// What holds them: `paused` (the receiver answered 429, or 503 with `Retry-After`),
    /// `rate_limit` (its `rate_limit`, or the reduced rate it recovers at after a pause)
    /// or `max_in_flight` (that many requests are open); `null` when nothing does.
    #[schema(value_type = Option<String>, examples("paused", "rate_limit", "max_in_flight"))]
    reason: Option<&'static str>,
    /// The end of a pause still on (Unix seconds), or `null`.
    paused_until: Option<i64>,
    /// Due deliveries waiting for the endpoint now.
    waiting: u32,
    /// Requests to it open now.
    in_flight: u32,
    /// Its `rate_limit` (requests a second), or `null` for none.
    rate_limit: Option<u32>,
    /// The most requests open at once: its own `max_in_flight` or the server's default.
    max_in_flight: u32,
    /// While it recovers after a pause, the rate it is sent at now (requests a second,
    /// doubling every second), or `null`.
    recovering_rate: Option<f64>,
    /// When this was seen (Unix seconds). On Postgres a process other than the one
    /// sending to the endpoint answers with what that process recorded at its last
    /// renewal, up to a third of `store.postgres_claim_lease` earlier.
    as_of: i64,
}

/// Show what holds an endpoint's deliveries back.
///
/// A delivery held by the endpoint's flow (a pause after the receiver answered 429, or
/// 503 with `Retry-After`; its `rate_limit`; its `max_in_flight`) waits without an attempt
/// being recorded. This says whether any is held now, why, and how many.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint's flow now.", body = EndpointFlow)))]
#[get("/webhook_endpoints/{id}/flow")]
async fn endpoint_flow(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = super::endpoints::require_endpoint(&state, caller.owner, &path).await?;
    let now_ms = state.engine.clock().now_ms();
    let flow = state.endpoints().flow(&record).await?.unwrap_or(FlowState {
        endpoint: record.id,
        held: None,
        paused_until_ms: None,
        waiting: 0,
        in_flight: 0,
        recovering_rate: None,
        as_of_ms: now_ms,
    });
    let limits = record.flow_limits();
    Ok(HttpResponse::Ok().json(EndpointFlow {
        object: "webhook_endpoint_flow",
        endpoint_id: record.id,
        throttled: flow.held.is_some(),
        reason: flow.held.map(|held| held.as_str()),
        paused_until: flow.paused_until_ms.map(|ms| ms.div_ceil(1000) as i64),
        waiting: flow.waiting,
        in_flight: flow.in_flight,
        rate_limit: limits.rate_limit,
        max_in_flight: limits.max_in_flight.unwrap_or(state.config.delivery.per_endpoint_concurrency as u32),
        recovering_rate: flow.recovering_rate.map(|rate| (rate * 10.0).round() / 10.0),
        as_of: (flow.as_of_ms / 1000) as i64,
    }))
}
