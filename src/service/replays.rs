//! Replays: a query over an application's deliveries whose matches are sent again in the
//! background. Matching (`replay_matching.rs`) is written once over the store's lists
//! (the application's events by type and time, newest first), so a replay reads only its
//! own application's events; each step is queued by the store's replay rule, which moves
//! the replay's position in the same commit. The background task ([`Replays::pass`])
//! steps every running replay at its pace and counts the outcomes of what each sent.

use std::collections::HashSet;
use std::sync::Arc;

use super::ServiceError;
use super::replay_matching::Matcher;
pub use super::replay_matching::{Matched, SAMPLE};
use crate::content_filter::ContentFilter;
use crate::delivery::Engine;
use crate::ids::{EndpointId, ReplayId};
use crate::store::Store;
use crate::store::model::{
    EndpointFilter, EndpointStatus, Owner, Page, PageRequest, ReplayQuery, ReplayRecord, ReplayState,
    ReplayStatusFilter,
};

/// How many deliveries a replay queues a second when none of its endpoints sets a rate
/// limit (with one, the lowest limit among them).
pub const DEFAULT_PACE: u32 = 1_000;

/// How often the background task steps every running replay: each step queues a
/// second's worth at its pace, unless [`AHEAD_SECONDS`]' worth already waits.
pub const PASS: std::time::Duration = std::time::Duration::from_secs(1);

/// How many seconds' worth of a replay's deliveries may wait for their first attempt: a
/// receiver slower than the pace holds the replay back instead of filling the queue, and
/// a cancel stops it within about that long.
const AHEAD_SECONDS: u64 = 2;

/// A replay asked for, as the API checked it.
#[derive(Debug, Clone)]
pub struct NewReplay {
    /// Only deliveries to these endpoints of the application.
    pub endpoints: Vec<EndpointId>,
    /// Only deliveries to the application's endpoints carrying one of these labels.
    pub labels: Vec<String>,
    /// Only events of these types.
    pub event_types: Vec<String>,
    /// Only events created after this time (Unix seconds, exclusive).
    pub created_after: Option<i64>,
    /// Only events created before this time (Unix seconds, exclusive).
    pub created_before: Option<i64>,
    /// Which deliveries.
    pub status: ReplayStatusFilter,
    /// Only events this content filter takes.
    pub filter: Option<ContentFilter>,
    /// Only count, and show a sample: send nothing.
    pub dry_run: bool,
}

/// What asking for a replay did.
#[derive(Debug)]
pub enum Asked {
    /// A dry run: how many deliveries the query matches, and the first few (newest first).
    DryRun {
        /// How many.
        matched: u64,
        /// The first [`SAMPLE`].
        sample: Vec<Matched>,
    },
    /// The replay was made; it starts at once.
    Started(Box<ReplayRecord>),
}

/// The replay operations, over the engine (which queues each step) and the store.
pub struct Replays<'a> {
    /// Where each step is queued, and time.
    pub engine: &'a Engine,
    /// Where replays, events and attempts are kept.
    pub store: &'a Arc<Store>,
    /// Wakes the background task (a replay was made).
    pub wake: &'a tokio::sync::Notify,
}

impl Replays<'_> {
    /// Makes a replay of `owner`'s deliveries that `ask` matches, or with `dry_run` only
    /// counts them. Every endpoint named must be the application's, and enabled unless it
    /// is only counted.
    pub async fn ask(&self, owner: Owner, ask: NewReplay) -> Result<Asked, ServiceError> {
        let now = self.engine.clock().now();
        let mut endpoints = ask.endpoints;
        for id in &endpoints {
            let Some(endpoint) = self.store.endpoint(owner, *id).await? else {
                return Err(ServiceError::invalid(
                    "endpoints",
                    format!("no webhook endpoint {id} in this application"),
                ));
            };
            // Its deliveries would wait, parked, holding the replay up: counted, not sent.
            if endpoint.status == EndpointStatus::Disabled && !ask.dry_run {
                let message = format!("webhook endpoint {id} is disabled: enable it, then replay to it");
                return Err(ServiceError::invalid("endpoints", message));
            }
        }
        for label in &ask.labels {
            endpoints.extend(self.matcher().endpoint_ids(owner, EndpointFilter { label: Some(label.clone()) }).await?);
        }
        if !ask.labels.is_empty() && endpoints.is_empty() {
            return Err(ServiceError::invalid(
                "labels",
                "no webhook endpoint of this application carries these labels",
            ));
        }
        let mut seen = HashSet::new();
        endpoints.retain(|id| seen.insert(*id));
        let query = ReplayQuery {
            endpoints,
            event_types: ask.event_types,
            created_after: ask.created_after,
            created_before: ask.created_before.map_or(now + 1, |before| before.min(now + 1)),
            status: ask.status,
            filter: ask.filter,
        };
        let (matched, sample) = self.matcher().count(owner, &query).await?;
        if ask.dry_run {
            return Ok(Asked::DryRun { matched, sample });
        }
        let record = ReplayRecord::new(owner, query, matched, now);
        self.store.insert_replay(record.clone()).await?;
        self.wake.notify_one();
        Ok(Asked::Started(Box::new(record)))
    }

    /// A replay of `owner`.
    pub async fn get(&self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, ServiceError> {
        Ok(self.store.replay(owner, id).await?)
    }

    /// A page of `owner`'s replays, newest first.
    pub async fn list(&self, owner: Owner, request: PageRequest<ReplayId>) -> Result<Page<ReplayRecord>, ServiceError> {
        Ok(self.store.list_replays(owner, request).await?)
    }

    /// Cancels a running replay of `owner`: it queues nothing more (what it queued goes
    /// on, and is still counted). A replay that has ended is left as it is. `None`: no
    /// such replay.
    pub async fn cancel(&self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, ServiceError> {
        let now = self.engine.clock().now();
        Ok(self
            .store
            .change_replay(owner, id, move |replay| {
                replay.cancel(now);
            })
            .await?)
    }

    /// One pass of the background task: each watched replay has the outcomes of its
    /// deliveries counted, then, if it is running, queues a second's worth at its pace
    /// unless [`AHEAD_SECONDS`]' worth wait for their first attempt.
    pub async fn pass(&self) -> Result<(), ServiceError> {
        for replay in self.store.watched_replays().await? {
            let owner = Owner { app: replay.app, mode: replay.mode };
            if let Err(err) = self.advance(owner, replay).await {
                tracing::warn!(error = %err, "a replay could not take its step; trying again at the next pass");
            }
        }
        Ok(())
    }

    /// One replay's part of a pass.
    async fn advance(&self, owner: Owner, replay: ReplayRecord) -> Result<(), ServiceError> {
        let now = self.engine.clock().now();
        let Some((replay, queued)) = self.store.settle_replay(owner, replay.id, now).await? else { return Ok(()) };
        if replay.state == ReplayState::Running && !replay.queued_all {
            // A second's worth a pass (passes are a second apart), while less than its
            // seconds ahead wait: the scheduler has the next second's worth as the pass
            // comes, and keeps to the endpoints' rates itself.
            let pace = u64::from(self.pace(owner, &replay.query).await?);
            if queued < pace * AHEAD_SECONDS {
                let want = (pace * AHEAD_SECONDS - queued).min(pace) as usize;
                let step = self.matcher().next_step(owner, &replay.query, replay.position, want).await?;
                self.engine.replay_step(owner, replay.id, step).await?;
            }
        }
        Ok(())
    }

    /// How many deliveries a second the replay queues: the lowest rate limit among its
    /// endpoints, else [`DEFAULT_PACE`].
    async fn pace(&self, owner: Owner, query: &ReplayQuery) -> Result<u32, ServiceError> {
        let mut pace = DEFAULT_PACE;
        for id in &query.endpoints {
            if let Some(limit) = self.store.endpoint(owner, *id).await?.and_then(|e| e.rate_limit) {
                pace = pace.min(limit.max(1));
            }
        }
        Ok(pace)
    }

    /// Matching over this server's store, now.
    fn matcher(&self) -> Matcher<'_> {
        Matcher { store: self.store, now_ms: self.engine.clock().now_ms() }
    }
}
