//! Which deliveries a replay's query matches: written once over the store's lists (the
//! application's events by type and time, newest first) and `Store::delivery_states`,
//! for a dry run's count and for each step of a replay.

use std::collections::HashSet;

use super::ServiceError;
use crate::ids::{EndpointId, EventId};
use crate::store::Store;
use crate::store::model::{
    Cursor, DeliveryState, EndpointFilter, EventFilter, ListError, Owner, Page, PageRequest, ReplayQuery, ReplayStep,
    StoredEvent,
};

/// How many events each read of the application's events asks for.
const READ_PAGE: usize = 100;

/// The most reads of the events list one step makes ([`READ_PAGE`] events each): a
/// step that found less than it wanted by then is taken as it is, so no pass reads a
/// whole long history at once.
const STEP_READS: usize = 20;

/// How many matched deliveries a dry run shows.
pub const SAMPLE: usize = 10;

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

/// Matching over a store, at a time (`now_ms`: what skipped deliveries are still
/// replayable).
pub(crate) struct Matcher<'a> {
    /// Where the events and attempts are.
    pub store: &'a Store,
    /// Now (Unix ms).
    pub now_ms: u64,
}

impl Matcher<'_> {
    /// The application's endpoints that `filter` keeps, every page of them.
    pub(crate) async fn endpoint_ids(
        &self,
        owner: Owner,
        filter: EndpointFilter,
    ) -> Result<Vec<EndpointId>, ServiceError> {
        let mut found = Vec::new();
        let mut cursor = Cursor::Start;
        loop {
            let page = self.store.list_endpoints(owner, PageRequest { limit: 100, cursor }, filter.clone()).await?;
            found.extend(page.items.iter().map(|e| e.id));
            match page.items.last() {
                Some(last) if page.has_more => cursor = Cursor::After(last.id),
                _ => return Ok(found),
            }
        }
    }

    /// How many deliveries `query` matches now, and the first [`SAMPLE`] of them.
    pub(crate) async fn count(&self, owner: Owner, query: &ReplayQuery) -> Result<(u64, Vec<Matched>), ServiceError> {
        let targets = self.targets(owner, query).await?;
        let (mut matched, mut sample) = (0, Vec::new());
        let mut from = None;
        loop {
            let page = self.matches(owner, query, &targets, from, usize::MAX).await?;
            matched += page.found.len() as u64;
            let room = SAMPLE - sample.len();
            sample.extend(page.found.into_iter().take(room));
            if page.end {
                return Ok((matched, sample));
            }
            from = page.to;
        }
    }

    /// The endpoints a replay may send to: those it names, else every endpoint the
    /// application has now (a deleted endpoint's skipped deliveries are not matched).
    async fn targets(&self, owner: Owner, query: &ReplayQuery) -> Result<HashSet<EndpointId>, ServiceError> {
        if !query.endpoints.is_empty() {
            return Ok(query.endpoints.iter().copied().collect());
        }
        Ok(self.endpoint_ids(owner, EndpointFilter::default()).await?.into_iter().collect())
    }

    /// The next step of a replay standing at `from`: at least `want` deliveries unless
    /// the query has no more, or [`STEP_READS`] reads of the events list found fewer
    /// (whole events: a step never splits one event's deliveries). A step with no
    /// deliveries still moves the replay on, so a query that matches little over a long
    /// history goes through it a bounded read at a time.
    pub(crate) async fn next_step(
        &self,
        owner: Owner,
        query: &ReplayQuery,
        from: Option<EventId>,
        want: usize,
    ) -> Result<ReplayStep, ServiceError> {
        let targets = self.targets(owner, query).await?;
        let mut deliveries = Vec::new();
        let mut to = from;
        for _ in 0..STEP_READS {
            let page = self.matches(owner, query, &targets, to, want - deliveries.len().min(want)).await?;
            deliveries.extend(page.found.iter().map(|m| (m.event, m.endpoint)));
            to = page.to.or(to);
            if page.end || deliveries.len() >= want {
                return Ok(ReplayStep { from, deliveries, to, end: page.end });
            }
        }
        Ok(ReplayStep { from, deliveries, to, end: false })
    }

    /// The deliveries `query` matches among the events after `from` (older; newest first
    /// from the start), to the endpoints in `targets`, from one read of the events list,
    /// stopping after the event at which `want` is reached. `to` is the last event gone
    /// through.
    async fn matches(
        &self,
        owner: Owner,
        query: &ReplayQuery,
        targets: &HashSet<EndpointId>,
        from: Option<EventId>,
        want: usize,
    ) -> Result<Matches, ServiceError> {
        let mut filter = EventFilter {
            event_type: match query.event_types.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
            created_after: query.created_after,
            created_before: Some(query.created_before),
            ..EventFilter::default()
        };
        let page = match self.read_after(owner, from, filter.clone()).await? {
            Some(page) => page,
            None => {
                // The event it stood at was pruned (older ones may be kept: held for a
                // failure or a skip): the same events, bounded by its time instead.
                let from = from.expect("only a cursor names a missing event");
                let second = (from.unix_ms() / 1000) as i64 + 1;
                filter.created_before = Some(second.min(query.created_before));
                self.read_older_than(owner, from, filter).await?
            }
        };
        let read = page.items.len();
        let events: Vec<&StoredEvent> = page.items.iter().filter(|e| takes_event(query, e)).collect();
        let ids = events.iter().map(|e| e.meta.id).collect();
        let mut states = self.store.delivery_states(owner, ids, self.now_ms).await?;
        // Per event, its endpoints in a fixed order.
        states.sort_by_key(|(event, endpoint, _)| (std::cmp::Reverse(*event), *endpoint));
        let mut found = Vec::new();
        let mut to = from;
        for (at, event) in page.items.iter().enumerate() {
            let id = event.meta.id;
            let of_event = states.iter().filter(|(e, ..)| *e == id);
            for (_, endpoint, state) in of_event {
                if targets.contains(endpoint) && query.status.takes(*state) {
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

    /// A page of the events `filter` takes after `from` (older), newest first; `None` when
    /// `from` names no event of the application any more.
    async fn read_after(
        &self,
        owner: Owner,
        from: Option<EventId>,
        filter: EventFilter,
    ) -> Result<Option<Page<StoredEvent>>, ServiceError> {
        let cursor = from.map_or(Cursor::Start, Cursor::After);
        match self.store.list_events(owner, PageRequest { limit: READ_PAGE, cursor }, filter).await {
            Ok(page) => Ok(Some(page)),
            Err(ListError::UnknownCursor) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// A page of the events `filter` takes that are older than `bound`, an event that is
    /// gone: `filter` bounds them by its second, and the newer ones of that second are
    /// read past (a page at a time, by cursors of events that exist).
    async fn read_older_than(
        &self,
        owner: Owner,
        bound: EventId,
        filter: EventFilter,
    ) -> Result<Page<StoredEvent>, ServiceError> {
        let mut cursor = Cursor::Start;
        loop {
            let request = PageRequest { limit: READ_PAGE, cursor };
            let mut page = self.store.list_events(owner, request, filter.clone()).await?;
            let last = page.items.last().map(|e| e.meta.id);
            page.items.retain(|e| e.meta.id < bound);
            match last {
                Some(last) if page.items.is_empty() && page.has_more => cursor = Cursor::After(last),
                _ => return Ok(page),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::conformance::{each_backend, failed_invoices, hook};
    use crate::store::model::{AttemptStatus, ReplayStatusFilter};

    #[tokio::test]
    async fn a_replay_standing_at_a_pruned_event_goes_on_to_the_older_ones() {
        each_backend(async |store| {
            let owner = store.test_owner(Mode::Test).await;
            let endpoint = hook(&store, owner, "*").await;
            let now = 1_700_000_000_000;
            let events = failed_invoices(&store, owner, 3, now).await;
            let query = ReplayQuery {
                endpoints: vec![],
                event_types: vec![],
                created_after: None,
                created_before: (now / 1000) as i64 + 10,
                status: ReplayStatusFilter::Failed,
                filter: None,
            };
            let matcher = Matcher { store: &store, now_ms: now + 20 };
            let (matched, sample) = matcher.count(owner, &query).await.unwrap();
            assert_eq!(matched, 3);
            assert_eq!(sample[0].state, DeliveryState::Attempted(AttemptStatus::Failed));
            // A step of one stops after the newest event.
            let first = matcher.next_step(owner, &query, None, 1).await.unwrap();
            assert_eq!(
                (first.deliveries, first.to, first.end),
                (vec![(events[2].meta.id, endpoint.id)], Some(events[2].meta.id), false)
            );
            // It stood at an event that is gone (a position no event has, between the two
            // older ones and the newest): the next step reads on by time, past none.
            let gone = EventId::at(now + 1);
            assert!(store.event(owner, gone).await.unwrap().is_none());
            let next = matcher.next_step(owner, &query, Some(gone), 10).await.unwrap();
            let expected = vec![(events[1].meta.id, endpoint.id), (events[0].meta.id, endpoint.id)];
            assert_eq!((next.deliveries, next.end), (expected, true));
            // Another application's endpoints are none of its targets.
            let elsewhere = store.test_owner(Mode::Live).await;
            assert_eq!(matcher.count(elsewhere, &query).await.unwrap().0, 0);
        })
        .await;
    }
}
