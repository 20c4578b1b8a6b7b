//! The application's deliveries across its endpoints, newest first, filtered by status,
//! event type and endpoint: what the dashboard's Deliveries page lists. No index holds an
//! application's attempts in one order, and none is added to the path every attempt
//! takes: a page is merged from each endpoint's own list (its attempts by id, and by
//! status where a status is asked for), reading from each only as far as the page needs.

use std::collections::VecDeque;

use super::ServiceError;
use super::deliveries::Deliveries;
use super::endpoints::all_of;
use crate::event_types::kayle_alias_of;
use crate::ids::{DeliveryId, EndpointId};
use crate::store::model::pagination::finish_page;
use crate::store::model::{AttemptRecord, AttemptStatus, Cursor, EventFilter, Owner, Page, PageRequest};

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

/// One endpoint's attempts as the merge reads them: a buffer in the direction of travel
/// and where its next read starts.
struct Stream {
    endpoint: EndpointId,
    buffer: VecDeque<AttemptRecord>,
    cursor: Cursor<DeliveryId>,
    done: bool,
}

impl Deliveries<'_> {
    /// A page of `owner`'s attempts to all its endpoints (or to `filter.endpoint`),
    /// newest first, those `filter` keeps. A cursor must name an attempt of `owner`'s
    /// (`UnknownCursor`); an endpoint filter must name an endpoint of `owner`'s
    /// (`Invalid`, on `endpoint`). A page reads at most the page's length plus one from
    /// each endpoint, and again from an endpoint whose attempts the page takes; a type
    /// filter reads on until the page is full or the attempts run out (a type the
    /// application never had an event of is answered at once, from the events' index).
    pub async fn across_endpoints(
        &self,
        owner: Owner,
        request: PageRequest<DeliveryId>,
        filter: DeliveryFilter,
    ) -> Result<Page<AttemptRecord>, ServiceError> {
        if let Cursor::After(id) | Cursor::Before(id) = request.cursor
            && self.store.app_attempt(owner, id).await?.is_none()
        {
            return Err(ServiceError::UnknownCursor);
        }
        // A type no event of the application has had has no attempts: answered from the
        // events' type index, not by reading every attempt to find none.
        if let Some(wanted) = filter.event_type.as_deref() {
            let event_type = Some(kayle_alias_of(wanted).unwrap_or(wanted).to_string());
            let any = PageRequest { limit: 1, cursor: Cursor::Start };
            let events =
                self.store.list_events(owner, any, EventFilter { event_type, ..EventFilter::default() }).await?;
            if events.items.is_empty() {
                return Ok(Page { items: Vec::new(), has_more: false });
            }
        }
        let endpoints: Vec<EndpointId> = match filter.endpoint {
            Some(id) => match self.store.endpoint(owner, id).await? {
                Some(endpoint) => vec![endpoint.id],
                None => return Err(ServiceError::invalid("endpoint", "No such webhook endpoint in this mode.")),
            },
            None => all_of(self.store, owner).await?.into_iter().map(|e| e.id).collect(),
        };
        let upwards = matches!(request.cursor, Cursor::Before(_));
        let want = request.limit + 1;
        let mut streams: Vec<Stream> = endpoints
            .into_iter()
            .map(|endpoint| Stream { endpoint, buffer: VecDeque::new(), cursor: request.cursor, done: false })
            .collect();
        let mut gathered = Vec::with_capacity(want);
        while gathered.len() < want {
            for stream in streams.iter_mut().filter(|s| s.buffer.is_empty() && !s.done) {
                let read = PageRequest { limit: want, cursor: stream.cursor };
                let page = self.store.endpoint_attempts_page(owner, stream.endpoint, read, filter.status).await?;
                stream.done = !page.has_more;
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
}
