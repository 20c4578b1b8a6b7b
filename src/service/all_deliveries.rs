//! The application's deliveries across its endpoints, newest first, filtered by status,
//! event type and endpoint: what the dashboard's Deliveries page lists. No index holds an
//! application's attempts in one order, and none is added to the path every attempt
//! takes: a page is merged from each endpoint's own list (its attempts by id, and by
//! status where a status is asked for), reading from each only as far as the page needs;
//! a filter by a rare type reads that type's events' attempts instead.

use std::collections::{HashSet, VecDeque};

use super::ServiceError;
use super::deliveries::Deliveries;
use super::endpoints::all_of;
use crate::event_types::kayle_alias_of;
use crate::ids::{DeliveryId, EndpointId};
use crate::store::Store;
use crate::store::model::pagination::finish_page;
use crate::store::model::{AttemptRecord, AttemptStatus, Cursor, Owner, Page, PageRequest};

/// What a list of the application's deliveries keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    /// Only attempts with this status.
    pub status: Option<AttemptStatus>,
    /// Only attempts of events of this type (a built-in type matches the attempts
    /// delivered under its Kayle name too).
    pub event_type: Option<String>,
    /// Only this endpoint's attempts.
    pub endpoint: Option<EndpointId>,
}

impl DeliveryFilter {
    /// Whether `attempt` is one the filter keeps (the status and endpoint are chosen by
    /// what is read; the type is checked here).
    fn keeps(&self, attempt: &AttemptRecord) -> bool {
        self.event_type
            .as_deref()
            .is_none_or(|wanted| attempt.event_type == wanted || kayle_alias_of(&attempt.event_type) == Some(wanted))
    }
}

/// When a list filtered by type stops merging and reads the type's own attempts instead.
#[derive(Debug, Clone, Copy)]
struct TypeWay {
    /// How many attempts the merge reads before it asks whether the type is rare: a
    /// common or recent type fills its page well before.
    merge_budget: usize,
    /// The most events a rare type has. Reading their attempts costs about what the merge
    /// costs reading as many; a type with more is merged on to the end of its page (slow
    /// only when all its events are older than a great many others').
    rare_events: usize,
}

/// The way lists take: the merge for its first 500 attempts, then the type's own
/// attempts if it has at most 10,000 events.
const TYPE_WAY: TypeWay = TypeWay { merge_budget: 500, rare_events: 10_000 };

/// The page of `attempts` (all of a type's) that `request` asks for: those to `endpoints`
/// that `filter` keeps, in the order the merge would give.
fn page_from(
    attempts: Vec<AttemptRecord>,
    endpoints: &[EndpointId],
    request: PageRequest<DeliveryId>,
    filter: &DeliveryFilter,
) -> Page<AttemptRecord> {
    let endpoints: HashSet<EndpointId> = endpoints.iter().copied().collect();
    let mut kept: Vec<AttemptRecord> = attempts
        .into_iter()
        .filter(|a| {
            endpoints.contains(&a.endpoint_id)
                && filter.status.is_none_or(|status| status == a.status)
                && filter.keeps(a)
                && match request.cursor {
                    Cursor::Start => true,
                    Cursor::After(id) => a.id.as_u128() < id.as_u128(),
                    Cursor::Before(id) => a.id.as_u128() > id.as_u128(),
                }
        })
        .collect();
    // In the direction of travel: newest first, or oldest first for `ending_before`.
    if matches!(request.cursor, Cursor::Before(_)) {
        kept.sort_unstable_by_key(|a| a.id.as_u128());
    } else {
        kept.sort_unstable_by_key(|a| std::cmp::Reverse(a.id.as_u128()));
    }
    kept.truncate(request.limit + 1);
    finish_page(kept, request)
}

/// One endpoint's attempts as the merge reads them: a buffer in the direction of travel
/// and where its next read starts.
struct Stream {
    endpoint: EndpointId,
    buffer: VecDeque<AttemptRecord>,
    cursor: Cursor<DeliveryId>,
    done: bool,
    /// How many attempts its next read asks for: doubled after each read, up to
    /// [`LONGEST_READ`], so a type filter that keeps few of them costs few reads.
    read: usize,
}

/// The most attempts the merge asks one endpoint for at a time.
const LONGEST_READ: usize = 1_000;

impl Deliveries<'_> {
    /// A page of `owner`'s attempts to all its endpoints (or to `filter.endpoint`),
    /// newest first, those `filter` keeps. A cursor must name an attempt of `owner`'s
    /// (`UnknownCursor`); an endpoint filter must name an endpoint of `owner`'s
    /// (`Invalid`, on `endpoint`). A page reads the page's length plus one from each
    /// endpoint, and again, twice as many each time, from an endpoint whose attempts
    /// the page takes or the type filter leaves out. A type filter that leaves out the
    /// first 500 attempts read turns to the type's own attempts, through the events'
    /// type index, if it has at most 10,000 events ([`TYPE_WAY`]); a commoner type is
    /// merged on until the page is full.
    pub async fn across_endpoints(
        &self,
        owner: Owner,
        request: PageRequest<DeliveryId>,
        filter: DeliveryFilter,
    ) -> Result<Page<AttemptRecord>, ServiceError> {
        across_endpoints(self.store, owner, request, filter, TYPE_WAY).await
    }
}

/// [`Deliveries::across_endpoints`], with a type filter taking `way` (tests choose it, to
/// compare the ways).
async fn across_endpoints(
    store: &Store,
    owner: Owner,
    request: PageRequest<DeliveryId>,
    filter: DeliveryFilter,
    way: TypeWay,
) -> Result<Page<AttemptRecord>, ServiceError> {
    if let Cursor::After(id) | Cursor::Before(id) = request.cursor
        && store.app_attempt(owner, id).await?.is_none()
    {
        return Err(ServiceError::UnknownCursor);
    }
    let endpoints: Vec<EndpointId> = match filter.endpoint {
        Some(id) => match store.endpoint(owner, id).await? {
            Some(endpoint) => vec![endpoint.id],
            None => return Err(ServiceError::invalid("endpoint", "No such webhook endpoint in this mode.")),
        },
        None => all_of(store, owner).await?.into_iter().map(|e| e.id).collect(),
    };
    let upwards = matches!(request.cursor, Cursor::Before(_));
    let want = request.limit + 1;
    let mut streams: Vec<Stream> = endpoints
        .into_iter()
        .map(|endpoint| Stream { endpoint, buffer: VecDeque::new(), cursor: request.cursor, done: false, read: want })
        .collect();
    // A type with few events (none included) is answered from their attempts once the
    // merge has read its budget: it might otherwise read every attempt of the other types.
    let mut rare_check = filter.event_type.as_deref().map(|wanted| kayle_alias_of(wanted).unwrap_or(wanted));
    // A type the application never had an event of has no attempts: one look at the index.
    if let Some(event_type) = rare_check
        && store.attempts_of_type(owner, event_type.to_string(), 0).await?.is_some()
    {
        return Ok(Page { items: Vec::new(), has_more: false });
    }
    let mut attempts_read = 0;
    let mut gathered = Vec::with_capacity(want);
    while gathered.len() < want {
        if let Some(event_type) = rare_check.take_if(|_| attempts_read >= way.merge_budget)
            && let Some(attempts) = store.attempts_of_type(owner, event_type.to_string(), way.rare_events).await?
        {
            let endpoints: Vec<EndpointId> = streams.iter().map(|s| s.endpoint).collect();
            return Ok(page_from(attempts, &endpoints, request, &filter));
        }
        for stream in streams.iter_mut().filter(|s| s.buffer.is_empty() && !s.done) {
            let read = PageRequest { limit: stream.read, cursor: stream.cursor };
            stream.read = (stream.read * 2).min(LONGEST_READ).max(want);
            let page = store.endpoint_attempts_page(owner, stream.endpoint, read, filter.status).await?;
            stream.done = !page.has_more;
            attempts_read += page.items.len();
            let mut items = page.items;
            // Pages are newest first; the merge reads in the direction of travel.
            if upwards {
                items.reverse();
            }
            if let Some(last) = items.last() {
                stream.cursor = if upwards { Cursor::Before(last.id) } else { Cursor::After(last.id) };
            }
            stream.buffer.extend(items);
        }
        let next = streams.iter_mut().filter(|s| !s.buffer.is_empty()).min_by_key(|s| {
            let id = s.buffer[0].id.as_u128();
            if upwards { id } else { u128::MAX - id }
        });
        let Some(attempt) = next.and_then(|stream| stream.buffer.pop_front()) else { break };
        if filter.keeps(&attempt) {
            gathered.push(attempt);
        }
    }
    Ok(finish_page(gathered, request))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::mode::Mode;
    use crate::store::conformance::{TWO_RETRIES, assert_walks, each_backend, hook, invoices, result};
    use crate::store::model::events::test_event;

    #[tokio::test]
    async fn a_type_filter_pages_the_same_through_its_events_as_through_the_merge() {
        each_backend(async |store| {
            let owner = store.test_owner(Mode::Test).await;
            hook(&store, owner, "*").await;
            let paid = hook(&store, owner, "invoice.paid").await;
            let now = 1_700_000_000_000;
            let mut events = invoices(owner, 4, now);
            events.extend((0..3).map(|i| test_event(owner, "order.made", json!({}), now + 10 + i)));
            store.publish_and_record(Arc::from(events), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
            // Every first attempt to `paid` fails: retrying attempts, and their retries
            // pending, beside the successes.
            let mut results = Vec::new();
            for entry in store.due_entries(None, now + 100, 100, Vec::new()).await.unwrap() {
                results.push(result(&store, entry.key, entry.endpoint != paid.id, now + 100).await);
            }
            store.publish_and_record(Arc::from(&[][..]), Arc::from(results), now + 100, TWO_RETRIES).await.unwrap();

            let page = async |request, filter: &DeliveryFilter, way| {
                across_endpoints(&store, owner, request, filter.clone(), way).await.unwrap()
            };
            let merge_only = TypeWay { merge_budget: usize::MAX, rare_events: 0 };
            let id = |a: &AttemptRecord| a.id;
            let start = PageRequest { limit: 100, cursor: Cursor::Start };
            let everything = page(start, &DeliveryFilter::default(), merge_only).await;
            assert!(!everything.has_more);
            let everything = everything.items;
            assert_eq!(everything.len(), 4 * 2 + 4 + 3, "4 invoices to 2 endpoints and their 4 retries, 3 orders");
            let oldest = everything.last().unwrap().id;
            let kinds = [
                (Some("invoice.paid"), None, None),
                (Some("order.made"), None, None),
                (Some("invoice.paid"), Some(AttemptStatus::Retrying), None),
                (Some("invoice.paid"), Some(AttemptStatus::Pending), Some(paid.id)),
                (Some("invoice.paid"), None, Some(paid.id)),
                (Some("nothing.of.this.type"), None, None),
            ];
            for (event_type, status, endpoint) in kinds {
                let filter = DeliveryFilter { event_type: event_type.map(str::to_string), status, endpoint };
                let expected: Vec<DeliveryId> = everything
                    .iter()
                    .filter(|a| {
                        event_type.is_none_or(|t| a.event_type == t)
                            && status.is_none_or(|s| a.status == s)
                            && endpoint.is_none_or(|e| a.endpoint_id == e)
                    })
                    .map(id)
                    .collect();
                assert_eq!(expected.is_empty(), event_type == Some("nothing.of.this.type"), "{filter:?}");
                let merged = async |r| page(r, &filter, merge_only).await;
                assert_walks(&format!("{filter:?} merged"), &expected, oldest, merged, id).await;
                // Through the type's own attempts, from the start or after the merge's
                // first read.
                for merge_budget in [0, 1] {
                    let way = TypeWay { merge_budget, rare_events: usize::MAX };
                    let through_events = async |r| page(r, &filter, way).await;
                    let what = format!("{filter:?} through its events after {merge_budget} read");
                    assert_walks(&what, &expected, oldest, through_events, id).await;
                }
            }
        })
        .await;
    }
}
