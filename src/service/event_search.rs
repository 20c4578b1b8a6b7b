//! Searching events by content (`GET /v1/events?filter=`): the events lists' pages read in
//! turn and kept where a content filter takes them, within a budget of events read and of
//! time per request, so a search for something rare answers in bounded time with a cursor
//! to go on from. Written over `Store::list_events`, so it is one code path on both
//! backends: payloads are sealed at rest, so no index of the database can match their
//! content, and every search reads the events its other filters (type, time, session,
//! delivery outcome) let through.

use std::time::{Duration, Instant};

use super::ServiceError;
use super::events::Events;
use crate::content_filter::ContentFilter;
use crate::ids::EventId;
use crate::store::model::{Cursor, EventFilter, Owner, PageRequest, StoredEvent};

/// The longest one search request reads (then it answers what it found so far).
pub const TIME_BUDGET: Duration = Duration::from_millis(250);

/// How many events each read of the list asks for.
const READ_PAGE: usize = 100;

/// A page of a search.
#[derive(Debug)]
pub struct Found {
    /// The events the filter took, newest first (at most the page's limit).
    pub items: Vec<StoredEvent>,
    /// Whether the search may find more past `next`.
    pub has_more: bool,
    /// Where the next page starts, in the same direction (`starting_after` or
    /// `ending_before`): the last event returned, or, when the budget ran out first, the
    /// last event read. `None` when there is no more.
    pub next: Option<EventId>,
    /// How many events were read.
    pub read: usize,
}

impl Events<'_> {
    /// Events of `owner` that `filter` and `content` both take, in `request`'s page and
    /// direction, reading at most `budget` events for at most [`TIME_BUDGET`].
    pub async fn search(
        &self,
        owner: Owner,
        request: PageRequest<EventId>,
        (filter, content): (EventFilter, &ContentFilter),
        budget: usize,
    ) -> Result<Found, ServiceError> {
        let started = Instant::now();
        let newer = matches!(request.cursor, Cursor::Before(_));
        let mut cursor = request.cursor;
        let (mut items, mut read) = (Vec::new(), 0);
        loop {
            let page = self.list(owner, PageRequest { limit: READ_PAGE, cursor }, filter.clone()).await?;
            read += page.items.len();
            // In the direction of travel: older for `starting_after` (and the first page),
            // newer for `ending_before`, whose pages come newest first too.
            let mut events = page.items;
            if newer {
                events.reverse();
            }
            let last_read = events.last().map(|e| e.meta.id);
            let count = events.len();
            for (at, event) in events.into_iter().enumerate() {
                let taken = serde_json::from_slice::<serde_json::Value>(&event.body).is_ok_and(|o| content.matches(&o));
                if !taken {
                    continue;
                }
                items.push(event);
                if items.len() == request.limit {
                    // More only if something lies past the last one taken.
                    let has_more = at + 1 < count || page.has_more;
                    let next = items.last().map(|e| e.meta.id).filter(|_| has_more);
                    return Ok(Found { items: newest_first(items, newer), has_more, next, read });
                }
            }
            let Some(last_read) = last_read.filter(|_| page.has_more) else {
                return Ok(Found { items: newest_first(items, newer), has_more: false, next: None, read });
            };
            if read >= budget || started.elapsed() >= TIME_BUDGET {
                return Ok(Found { items: newest_first(items, newer), has_more: true, next: Some(last_read), read });
            }
            cursor = if newer { Cursor::Before(last_read) } else { Cursor::After(last_read) };
        }
    }
}

/// `items`, found in the direction of travel (toward newer if `newer`), newest first.
fn newest_first(mut items: Vec<StoredEvent>, newer: bool) -> Vec<StoredEvent> {
    if newer {
        items.reverse();
    }
    items
}
