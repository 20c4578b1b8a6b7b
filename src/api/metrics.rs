//! `GET /metrics`: Prometheus text, outside the API keys; optionally behind
//! `server.metrics_token`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::EndpointState;

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
pub fn bearer_token_is(req: &HttpRequest, token: &str) -> bool {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// Prometheus metrics.
///
/// Events published, attempts by outcome, attempt latency, queue depth and the oldest
/// due attempt, retries scheduled, endpoints by state and store size, in Prometheus'
/// text format. Needs `Authorization: Bearer <server.metrics_token>` if that is set.
#[utoipa::path(tag = "Operations", security((), ("metrics_token" = [])),
    responses((status = 200, description = "The metrics.", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = &state.config.server.metrics_token;
    if !token.is_empty() && !bearer_token_is(&req, token) {
        return Err(ApiError::new(
            ErrorCode::ApiKeyInvalid,
            "/metrics needs `Authorization: Bearer <server.metrics_token>`.",
        ));
    }
    let now_ms = state.engine.clock().now_ms();
    let snapshot = state.store.metrics_snapshot(now_ms).await?;
    let m = &state.metrics;
    m.queue_depth.set(snapshot.queue_depth as i64);
    m.oldest_due_seconds.set(snapshot.oldest_due_ms as f64 / 1000.0);
    for (state, count) in [
        ("healthy", snapshot.healthy_endpoints),
        ("degraded", snapshot.degraded_endpoints),
        ("disabled", snapshot.disabled_endpoints),
    ] {
        m.endpoints.get_or_create(&EndpointState { state }).set(count as i64);
    }
    m.store_bytes.set(snapshot.store_bytes as i64);
    m.claim_lag_seconds.set(snapshot.claim_lag_ms as f64 / 1000.0);
    if let Some(total) = state.store.conflicts_rerun() {
        // One scrape at a time brings the counter up to the store's count.
        static CATCHING_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = CATCHING_UP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.conflicts_rerun.inc_by(total.saturating_sub(m.conflicts_rerun.get()));
    }
    if let Some((in_use, idle, waiting)) = state.store.pool_status() {
        for (state, n) in [("in_use", in_use), ("idle", idle), ("waiting", waiting)] {
            m.pool.get_or_create(&crate::metrics::PoolState { state }).set(n as i64);
        }
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(m.render()))
}
