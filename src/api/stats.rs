//! `GET /v1/delivery_stats`: delivery volume and success over time, pending deliveries
//! per endpoint and the newest failures; what the dashboard's overview draws.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};

use super::deliveries::Delivery;
use super::extract::{QueryParams, int_param, unix_time_param};
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::ids::EndpointId;
use crate::store::model::upkeep::Outcomes;

/// The window when `since` is not given.
const DEFAULT_WINDOW_SECONDS: i64 = 24 * 3600;
/// The longest window one request may ask for.
const MAX_WINDOW_SECONDS: i64 = 90 * 24 * 3600;
/// The most buckets one answer may have.
const MAX_BUCKETS: i64 = 1_440;
/// Bucket sizes chosen when `bucket` is not given: the smallest giving at most
/// [`TARGET_BUCKETS`] buckets.
const BUCKET_CHOICES: [i64; 9] = [60, 300, 900, 1_800, 3_600, 10_800, 21_600, 43_200, 86_400];
/// What `bucket` must be, as its error says.
const BUCKET_RULE: &str = "a whole number of minutes in seconds, from 60 to 86400";
/// How many buckets a default bucket size aims for at most.
const TARGET_BUCKETS: i64 = 60;
/// How many recent failures the answer carries.
const RECENT_FAILURES: usize = 10;

/// Mounts the route.
pub fn configure(cfg: &mut Routes) {
    cfg.service(delivery_stats);
}

/// The query of `GET /v1/delivery_stats`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The window's start (Unix seconds); 24 hours before `until` by default. The window
    /// may be at most 90 days.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 253402300799_i64)]
    since: Option<String>,
    /// The window's end (Unix seconds); now by default.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 253402300799_i64)]
    until: Option<String>,
    /// Bucket size in seconds: whole minutes from 60 to 86400; by default the smallest
    /// that gives at most 60 buckets. At most 1440 buckets.
    #[param(value_type = Option<i64>, minimum = 60, maximum = 86400, multiple_of = 60)]
    bucket: Option<String>,
}

/// The window and bucket size a query asks for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first bucket's start (Unix seconds), a multiple of `bucket`.
    pub since: i64,
    /// The end (Unix seconds).
    pub until: i64,
    /// Bucket size in seconds, a multiple of 60.
    pub bucket: i64,
}

impl StatsQuery {
    /// Checks the query against the clock `now`.
    pub fn window(&self, now: i64) -> Result<Window, ApiError> {
        let until = unix_time_param("until", self.until.as_deref())?.unwrap_or(now);
        let since = unix_time_param("since", self.since.as_deref())?.unwrap_or(until - DEFAULT_WINDOW_SECONDS);
        if since >= until {
            return Err(ApiError::invalid("since", "`since` must be before `until`."));
        }
        if until - since > MAX_WINDOW_SECONDS {
            return Err(ApiError::invalid("since", "The window from `since` to `until` may be at most 90 days."));
        }
        let span = until - since;
        let bucket = match int_param("bucket", self.bucket.as_deref(), BUCKET_RULE, 60..=86_400)? {
            Some(b) if b % 60 != 0 => {
                return Err(ApiError::invalid("bucket", format!("`bucket` must be {BUCKET_RULE}.")));
            }
            Some(b) => b,
            None => BUCKET_CHOICES.into_iter().find(|b| span / b <= TARGET_BUCKETS).unwrap_or(BUCKET_CHOICES[8]),
        };
        let since = since.div_euclid(bucket) * bucket;
        if (until - since) / bucket > MAX_BUCKETS {
            return Err(ApiError::invalid(
                "bucket",
                format!("That window would have more than {MAX_BUCKETS} buckets; use a larger `bucket`."),
            ));
        }
        Ok(Window { since, until, bucket })
    }
}

/// Outcome counts as the API shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutcomeCounts {
    /// Attempts answered 2xx.
    pub succeeded: u64,
    /// Attempts that failed, whether or not a retry followed.
    pub failed: u64,
    /// Events a content filter refused: no attempt was made.
    pub filtered: u64,
}

impl From<Outcomes> for OutcomeCounts {
    fn from(o: Outcomes) -> Self {
        Self { succeeded: o.succeeded, failed: o.failed, filtered: o.filtered }
    }
}

/// One time bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Its start (Unix seconds).
    pub start: i64,
    /// What happened in it.
    #[serde(flatten)]
    pub outcomes: OutcomeCounts,
}

/// One endpoint's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its attempts in the window.
    #[serde(flatten)]
    pub outcomes: OutcomeCounts,
    /// Its deliveries waiting for an attempt or a retry now.
    pub pending: u64,
}

/// The answer of `GET /v1/delivery_stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    /// Always `"delivery_stats"`.
    pub object: &'static str,
    /// Whether these are live mode's figures.
    pub livemode: bool,
    /// The first bucket's start.
    pub since: i64,
    /// The window's end.
    pub until: i64,
    /// The bucket size in seconds.
    pub bucket_seconds: i64,
    /// All attempts in the window.
    pub totals: OutcomeCounts,
    /// Every bucket of the window, oldest first, empty ones included.
    pub buckets: Vec<Bucket>,
    /// Every endpoint of the mode.
    pub endpoints: Vec<EndpointStats>,
    /// Deliveries pending in all (each endpoint counted up to 100,000).
    pub pending: u64,
    /// The newest failed attempts, newest first.
    pub recent_failures: Vec<Delivery>,
}

/// Delivery volume and success over time.
///
/// Outcome counts per time bucket, pending deliveries per endpoint and the newest
/// failures: what the dashboard's overview draws.
#[utoipa::path(tag = "Deliveries", params(StatsQuery),
    responses((status = 200, description = "The figures of the window.", body = StatsOut)))]
#[get("/delivery_stats")]
async fn delivery_stats(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let window = query.0.window(state.engine.clock().now())?;
    let stats =
        state.deliveries().stats(caller.owner, window.since, window.until, window.bucket, RECENT_FAILURES).await?;
    let mut totals = Outcomes::default();
    for o in stats.buckets.values() {
        totals.succeeded += o.succeeded;
        totals.failed += o.failed;
        totals.filtered += o.filtered;
    }
    let buckets = (0..=(window.until - window.since) / window.bucket)
        .map(|i| window.since + i * window.bucket)
        .filter(|start| *start <= window.until)
        .map(|start| Bucket { start, outcomes: stats.buckets.get(&start).copied().unwrap_or_default().into() })
        .collect();
    let endpoints = stats
        .pending
        .iter()
        .map(|(id, pending)| EndpointStats {
            endpoint_id: *id,
            outcomes: stats.endpoints.get(id).copied().unwrap_or_default().into(),
            pending: *pending,
        })
        .collect();
    Ok(HttpResponse::Ok().json(StatsOut {
        object: "delivery_stats",
        livemode: caller.mode.is_live(),
        since: window.since,
        until: window.until,
        bucket_seconds: window.bucket,
        totals: totals.into(),
        buckets,
        endpoints,
        pending: stats.pending.values().sum(),
        recent_failures: stats.recent_failures.into_iter().map(Delivery::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(since: Option<&str>, until: Option<&str>, bucket: Option<&str>) -> StatsQuery {
        StatsQuery { since: since.map(Into::into), until: until.map(Into::into), bucket: bucket.map(Into::into) }
    }

    #[test]
    fn the_default_window_is_the_last_day_in_buckets_aligned_to_their_size() {
        let now = 1_763_845_234;
        let w = query(None, None, None).window(now).unwrap();
        assert_eq!(w.until, now);
        assert_eq!(w.bucket, 1_800, "24 h in at most 60 buckets");
        assert_eq!(w.since % 1_800, 0);
        assert!(w.since <= now - DEFAULT_WINDOW_SECONDS && w.since > now - DEFAULT_WINDOW_SECONDS - 1_800);
    }

    #[test]
    fn bad_windows_and_buckets_are_refused_with_the_parameter_named() {
        for (q, param) in [
            (query(Some("x"), None, None), "since"),
            (query(Some("100"), Some("50"), None), "since"),
            (query(Some("0"), Some("100000000"), None), "since"),
            (query(None, None, Some("90")), "bucket"),
            (query(None, None, Some("30")), "bucket"),
            (query(Some("0"), Some("7776000"), Some("60")), "bucket"),
        ] {
            let err = q.window(1_000_000).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{q:?}");
        }
        assert_eq!(query(Some("0"), Some("3600"), Some("300")).window(0).unwrap().bucket, 300);
    }
}
