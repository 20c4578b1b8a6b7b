//! Replays: a query over an application's deliveries whose matches are sent again in the
//! background. Matching is written here once, over the store's lists (the application's
//! events by type and time, newest first) and [`Store::delivery_states`], so a replay
//! reads only its own application's events; each step is queued by the store's replay
//! rule, which moves the replay's position in the same commit. The background task
//! ([`Replays::pass`]) steps every running replay at its pace and counts the outcomes of
//! what each sent.

use std::collections::HashSet;
use std::sync::Arc;

use super::ServiceError;
use crate::content_filter::ContentFilter;
use crate::delivery::Engine;
use crate::ids::{EndpointId, EventId, ReplayId};
use crate::store::Store;
use crate::store::model::{
    Cursor, DeliveryState, EndpointFilter, EventFilter, ListError, Owner, Page, PageRequest, ReplayQuery, ReplayRecord,
    ReplayState, ReplayStatusFilter, ReplayStep, StoredEvent,
};

/// How many events each read of the application's events asks for.
const READ_PAGE: usize = 100;

/// How many matched deliveries a dry run shows.
pub const SAMPLE: usize = 10;

/// How many deliveries a replay queues a second when none of its endpoints sets a rate
/// limit (with one, the lowest limit among them).
pub const DEFAULT_PACE: u32 = 1_000;

/// How often the background task steps every running replay (each step tops what the
/// replay has queued and not yet ended up to [`AHEAD_SECONDS`] at its pace).
pub const PASS: std::time::Duration = std::time::Duration::from_secs(1);

/// How many seconds' worth of a replay's deliveries may wait, queued and not yet ended:
/// a receiver slower than the pace holds the replay back instead of filling the queue,
/// and a cancel stops it within about that long.
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

/// One delivery a replay matched.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The event.
    pub event: EventId,
    /// Its type.
    pub event_type: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// The endpoint it goes to again.
    pub endpoint: EndpointId,
    /// Where the delivery stood.
    pub state: DeliveryState,
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
    /// counts them. Every endpoint named must be the application's.
    pub async fn ask(&self, owner: Owner, ask: NewReplay) -> Result<Asked, ServiceError> {
        let now = self.engine.clock().now();
        let mut endpoints = ask.endpoints;
        for id in &endpoints {
            if self.store.endpoint(owner, *id).await?.is_none() {
                return Err(ServiceError::invalid(
                    "endpoints",
                    format!("no webhook endpoint {id} in this application"),
                ));
            }
        }
        for label in &ask.labels {
            endpoints.extend(self.labelled(owner, label).await?);
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
        let (matched, sample) = self.count(owner, &query).await?;
        if ask.dry_run {
            return Ok(Asked::DryRun { matched, sample });
        }
        let record = ReplayRecord {
            id: ReplayId::new(),
            app: owner.app,
            mode: owner.mode,
            query,
            state: ReplayState::Running,
            matched,
            sent: 0,
            skipped: 0,
            succeeded: 0,
            failed: 0,
            position: None,
            queued_all: false,
            watching: true,
            created: now,
            finished_at: None,
        };
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
    /// deliveries counted, then takes a step if it is running, topping what it has under
    /// way up to [`AHEAD_SECONDS`] at its pace.
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
        let Some((replay, unsettled)) = self.store.settle_replay(owner, replay.id, now).await? else { return Ok(()) };
        if replay.state == ReplayState::Running && !replay.queued_all {
            // Topped up to its seconds ahead: the scheduler always has the next second's
            // worth, and keeps to the endpoints' rates itself.
            let ahead = u64::from(self.pace(owner, &replay.query).await?) * AHEAD_SECONDS;
            if unsettled < ahead {
                let want = (ahead - unsettled) as usize;
                let step = self.next_step(owner, &replay.query, replay.position, want).await?;
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

    /// The application's endpoints carrying `label`.
    async fn labelled(&self, owner: Owner, label: &str) -> Result<Vec<EndpointId>, ServiceError> {
        let mut found = Vec::new();
        let mut cursor = Cursor::Start;
        loop {
            let filter = EndpointFilter { label: Some(label.to_string()) };
            let page = self.store.list_endpoints(owner, PageRequest { limit: 100, cursor }, filter).await?;
            found.extend(page.items.iter().map(|e| e.id));
            match page.items.last() {
                Some(last) if page.has_more => cursor = Cursor::After(last.id),
                _ => return Ok(found),
            }
        }
    }

    /// How many deliveries `query` matches now, and the first [`SAMPLE`] of them.
    async fn count(&self, owner: Owner, query: &ReplayQuery) -> Result<(u64, Vec<Matched>), ServiceError> {
        let (mut matched, mut sample) = (0, Vec::new());
        let mut from = None;
        loop {
            let page = self.matches(owner, query, from, usize::MAX).await?;
            matched += page.found.len() as u64;
            let room = SAMPLE - sample.len();
            sample.extend(page.found.into_iter().take(room));
            if page.end {
                return Ok((matched, sample));
            }
            from = page.to;
        }
    }

    /// The next step of a replay standing at `from`: at least `want` deliveries unless
    /// the query has no more (whole events: a step never splits one event's deliveries).
    async fn next_step(
        &self,
        owner: Owner,
        query: &ReplayQuery,
        from: Option<EventId>,
        want: usize,
    ) -> Result<ReplayStep, ServiceError> {
        let mut deliveries = Vec::new();
        let mut to = from;
        loop {
            let page = self.matches(owner, query, to, want - deliveries.len().min(want)).await?;
            deliveries.extend(page.found.iter().map(|m| (m.event, m.endpoint)));
            to = page.to.or(to);
            if page.end || deliveries.len() >= want {
                return Ok(ReplayStep { from, deliveries, to, end: page.end });
            }
        }
    }

    /// The deliveries `query` matches among the events after `from` (older; newest first
    /// from the start), from one read of the events list, stopping after the event at
    /// which `want` is reached. `to` is the last event gone through.
    async fn matches(
        &self,
        owner: Owner,
        query: &ReplayQuery,
        from: Option<EventId>,
        want: usize,
    ) -> Result<Matches, ServiceError> {
        let filter = EventFilter {
            event_type: match query.event_types.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
            created_after: query.created_after,
            created_before: Some(query.created_before),
            ..EventFilter::default()
        };
        let cursor = from.map_or(Cursor::Start, Cursor::After);
        let page = match self.store.list_events(owner, PageRequest { limit: READ_PAGE, cursor }, filter).await {
            Ok(page) => page,
            // The event it stood at was pruned: so was every older one.
            Err(ListError::UnknownCursor) => return Ok(Matches { found: Vec::new(), to: from, end: true }),
            Err(err) => return Err(err.into()),
        };
        let read = page.items.len();
        let events: Vec<&StoredEvent> = page.items.iter().filter(|e| takes_event(query, e)).collect();
        let ids = events.iter().map(|e| e.meta.id).collect();
        let mut states = self.store.delivery_states(owner, ids, self.engine.clock().now_ms()).await?;
        // Per event, its endpoints in a fixed order.
        states.sort_by_key(|(event, endpoint, _)| (std::cmp::Reverse(*event), *endpoint));
        let mut found = Vec::new();
        let mut to = from;
        for (at, event) in page.items.iter().enumerate() {
            let id = event.meta.id;
            let of_event = states.iter().filter(|(e, ..)| *e == id);
            for (_, endpoint, state) in of_event {
                let wanted_endpoint = query.endpoints.is_empty() || query.endpoints.contains(endpoint);
                if wanted_endpoint && query.status.takes(*state) {
                    found.push(Matched {
                        event: id,
                        event_type: event.meta.event_type.clone(),
                        created: event.meta.created,
                        endpoint: *endpoint,
                        state: *state,
                    });
                }
            }
            to = Some(id);
            if found.len() >= want {
                return Ok(Matches { found, to, end: at + 1 == read && !page.has_more });
            }
        }
        Ok(Matches { found, to, end: !page.has_more })
    }
}

/// The deliveries one read of the events list matched.
struct Matches {
    /// In order: events newest first, each event's endpoints by id.
    found: Vec<Matched>,
    /// The last event gone through.
    to: Option<EventId>,
    /// Whether no event lies past `to`.
    end: bool,
}

/// Whether the query takes the event itself (its type, its content); the time range is
/// the list's.
fn takes_event(query: &ReplayQuery, event: &StoredEvent) -> bool {
    let typed = query.event_types.is_empty() || query.event_types.contains(&event.meta.event_type);
    typed
        && query.filter.as_ref().is_none_or(|filter| {
            serde_json::from_slice::<serde_json::Value>(&event.body).is_ok_and(|object| filter.matches(&object))
        })
}
