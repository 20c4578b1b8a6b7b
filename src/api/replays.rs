//! Replays in the Stile API: `POST /v1/replays` (or a dry run: the count and a sample),
//! `GET /v1/replays`, `GET /v1/replays/:id` and `POST /v1/replays/:id/cancel`. A key
//! restricted to one application, and a portal token, reach only that application's
//! replays and deliveries: every replay is stored and read under its application.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::endpoint_fields::is_label;
use super::extract::{JsonBody, QueryParams, unix_time};
use super::list::{ListResponse, PageQuery};
use super::{AppState, Caller, Routes};
use crate::content_filter::ContentFilter;
use crate::error::ApiError;
use crate::ids::{EndpointId, EventId, ReplayId};
use crate::service::replays::{Asked, Matched, NewReplay};
use crate::store::model::{AttemptStatus, DeliveryState, ReplayRecord, ReplayState, ReplayStatusFilter};

/// Mounts the routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(create_replay).service(list_replays).service(get_replay).service(cancel_replay);
}

/// The OpenAPI tag of the routes.
const TAG: &str = "Replays";

/// The most endpoints, labels or event types one replay may name.
const MAX_NAMED: usize = 100;

/// The longest event type name a replay may name.
const MAX_TYPE_LEN: usize = 256;

/// The replay a request asks for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"endpoints": ["we_01JD8Y6QK4N2V7X3ZB5C9R1T0M"], "status": "failed", "created_after": 1767225600, "dry_run": true}))]
pub struct ReplayIn {
    /// Only deliveries to these endpoints (ids). With neither `endpoints` nor `labels`:
    /// to any endpoint of the application.
    #[serde(default)]
    pub endpoints: Vec<EndpointId>,
    /// Only deliveries to endpoints carrying one of these labels (resolved when the
    /// replay is made).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only events of these types; empty: any type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only events created after this Unix time (seconds).
    pub created_after: Option<i64>,
    /// Only events created before this Unix time (seconds); at most now.
    pub created_before: Option<i64>,
    /// Which deliveries: `failed` (failed for good; the default), `never_attempted`
    /// (skipped while the endpoint was disabled) or `all` (every finished or skipped one).
    pub status: Option<ReplayStatusFilter>,
    /// Only events whose content this filter takes (a content filter, as an endpoint's
    /// `filter`; see docs/filters.md).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Only count the matching deliveries and show the first ten: send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl ReplayIn {
    /// The checks that need nothing the server holds.
    fn validate(self) -> Result<NewReplay, ApiError> {
        for (param, n) in [("endpoints", self.endpoints.len()), ("labels", self.labels.len())] {
            if n > MAX_NAMED {
                return Err(ApiError::invalid(param, format!("`{param}` may name at most {MAX_NAMED}, not {n}.")));
            }
        }
        if self.event_types.len() > MAX_NAMED {
            return Err(ApiError::invalid("event_types", format!("`event_types` may name at most {MAX_NAMED}.")));
        }
        if let Some(bad) = self.event_types.iter().find(|t| t.is_empty() || t.len() > MAX_TYPE_LEN) {
            let message = format!("`{bad}` is not an event type: 1 to {MAX_TYPE_LEN} characters.");
            return Err(ApiError::invalid("event_types", message));
        }
        if let Some(bad) = self.labels.iter().find(|l| !is_label(l)) {
            return Err(ApiError::invalid("labels", format!("`{bad}` is not a label an endpoint can carry.")));
        }
        let created_after = self.created_after.map(|t| unix_time("created_after", t)).transpose()?;
        let created_before = self.created_before.map(|t| unix_time("created_before", t)).transpose()?;
        if let (Some(after), Some(before)) = (created_after, created_before)
            && after >= before
        {
            return Err(ApiError::invalid("created_before", "`created_before` must be later than `created_after`."));
        }
        let filter = self
            .filter
            .map(|source| ContentFilter::new(source, "filter"))
            .transpose()
            .map_err(|e| ApiError::invalid(e.path, format!("`filter`: {}", e.message)))?;
        Ok(NewReplay {
            endpoints: self.endpoints,
            labels: self.labels,
            event_types: self.event_types,
            created_after,
            created_before,
            status: self.status.unwrap_or(ReplayStatusFilter::Failed),
            filter,
            dry_run: self.dry_run,
        })
    }
}

/// What a replay sends again, as it was made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayQueryOut {
    /// The endpoints (labels resolved); empty: any endpoint of the application.
    pub endpoints: Vec<EndpointId>,
    /// The event types; empty: any.
    pub event_types: Vec<String>,
    /// Events created after this Unix time.
    pub created_after: Option<i64>,
    /// Events created before this Unix time.
    pub created_before: i64,
    /// Which deliveries.
    pub status: ReplayStatusFilter,
    /// The content filter, as given.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
}

/// A replay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replay {
    /// Always `replay`.
    pub object: &'static str,
    /// Its id.
    pub id: ReplayId,
    /// `running` (sending, or waiting for the outcomes of what it sent), `completed` or
    /// `cancelled`.
    pub status: ReplayState,
    /// The deliveries the query matched when the replay was made.
    pub matched: u64,
    /// The deliveries queued again so far.
    pub sent: u64,
    /// Matched deliveries not sent: the event or the endpoint was gone by then, or the
    /// payload was past its undelivered window.
    pub skipped: u64,
    /// Of those sent, how many were delivered.
    pub succeeded: u64,
    /// Of those sent, how many failed for good.
    pub failed: u64,
    /// What it sends again.
    pub query: ReplayQueryOut,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When it was cancelled or completed (Unix seconds).
    pub finished_at: Option<i64>,
}

impl From<ReplayRecord> for Replay {
    fn from(r: ReplayRecord) -> Self {
        Replay {
            object: "replay",
            id: r.id,
            status: r.state,
            matched: r.matched,
            sent: r.sent,
            skipped: r.skipped,
            succeeded: r.succeeded,
            failed: r.failed,
            query: ReplayQueryOut {
                endpoints: r.query.endpoints,
                event_types: r.query.event_types,
                created_after: r.query.created_after,
                created_before: r.query.created_before,
                status: r.query.status,
                filter: r.query.filter.map(|f| f.source().clone()),
            },
            created: r.created,
            finished_at: r.finished_at,
        }
    }
}

/// What `POST /v1/replays` answers: the replay started, or a dry run's estimate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ReplayAnswer {
    /// The replay, started.
    Replay(Replay),
    /// With `dry_run`: what it would send.
    Estimate(ReplayEstimate),
}

/// One delivery a dry run matched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MatchedDelivery {
    /// The event.
    pub event_id: EventId,
    /// Its type.
    pub event_type: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// The endpoint it would go to again.
    pub endpoint_id: EndpointId,
    /// Where its delivery stands: `failed`, `succeeded`, or `skipped` (the endpoint was
    /// disabled when the event was published).
    #[schema(value_type = String, example = "failed")]
    pub delivery_status: &'static str,
}

impl From<Matched> for MatchedDelivery {
    fn from(m: Matched) -> Self {
        let delivery_status = match m.state {
            DeliveryState::Skipped => "skipped",
            DeliveryState::Attempted(AttemptStatus::Succeeded) => "succeeded",
            DeliveryState::Attempted(AttemptStatus::Failed) => "failed",
            DeliveryState::Attempted(AttemptStatus::Retrying) => "retrying",
            DeliveryState::Attempted(AttemptStatus::Pending) => "pending",
        };
        MatchedDelivery {
            event_id: m.event,
            event_type: m.event_type,
            created: m.created,
            endpoint_id: m.endpoint,
            delivery_status,
        }
    }
}

/// What a dry run would send.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayEstimate {
    /// Always `replay_estimate`.
    pub object: &'static str,
    /// Always `true`.
    pub dry_run: bool,
    /// How many deliveries the query matches now.
    pub matched: u64,
    /// The first ten, newest first.
    pub sample: Vec<MatchedDelivery>,
}

/// Replay deliveries.
///
/// Sends again, in the background, the deliveries the query matches (`endpoints` and the
/// endpoints `labels` name together; none: any endpoint): newest event first, at the
/// lowest `rate_limit` of the endpoints it names (else 1,000 a second; each endpoint's
/// own flow limits hold anyway), never more than two seconds' worth waiting. A replay
/// resumes where it was after a restart; it never queues one delivery twice. With
/// `dry_run` it answers how many deliveries match and the first ten, and sends nothing.
/// A disabled endpoint is refused (its deliveries would wait): enable it first.
#[utoipa::path(tag = TAG, request_body = ReplayIn,
    responses((status = 200, description = "The replay, started; or with `dry_run`, the estimate.", body = ReplayAnswer)))]
#[post("/replays")]
async fn create_replay(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<ReplayIn>,
) -> Result<HttpResponse, ApiError> {
    let ask = body.0.validate()?;
    let answer = match state.replays().ask(caller.owner, ask).await? {
        Asked::DryRun { matched, sample } => ReplayAnswer::Estimate(ReplayEstimate {
            object: "replay_estimate",
            dry_run: true,
            matched,
            sample: sample.into_iter().map(MatchedDelivery::from).collect(),
        }),
        Asked::Started(record) => ReplayAnswer::Replay(Replay::from(*record)),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// List replays, newest first.
#[utoipa::path(tag = TAG, params(PageQuery),
    responses((status = 200, description = "A page of replays.", body = ListResponse<Replay>)))]
#[get("/replays")]
async fn list_replays(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let replays = state.replays();
    let page = query.0.params().fetch::<ReplayId, _, _>(10, |request| replays.list(caller.owner, request)).await?;
    let data = page.items.into_iter().map(Replay::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new("/v1/replays", data, page.has_more)))
}

/// Retrieve a replay: where it stands and its counts.
#[utoipa::path(tag = TAG, params(("id" = ReplayId, Path, description = "The replay's id.")),
    responses((status = 200, description = "The replay.", body = Replay)))]
#[get("/replays/{id}")]
async fn get_replay(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id(&path, "replay")?;
    let record = state.replays().get(caller.owner, id).await?.ok_or_else(|| ApiError::not_found("replay", &path))?;
    Ok(HttpResponse::Ok().json(Replay::from(record)))
}

/// Cancel a replay.
///
/// It queues nothing more; the deliveries it already queued (at most two seconds' worth)
/// go on and are still counted. Cancelling a replay that has ended changes nothing.
#[utoipa::path(tag = TAG, params(("id" = ReplayId, Path, description = "The replay's id.")),
    responses((status = 200, description = "The replay.", body = Replay)))]
#[post("/replays/{id}/cancel")]
async fn cancel_replay(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id(&path, "replay")?;
    let record = state.replays().cancel(caller.owner, id).await?.ok_or_else(|| ApiError::not_found("replay", &path))?;
    Ok(HttpResponse::Ok().json(Replay::from(record)))
}
