//! Stored events: publishing with fan-out in one transaction, reading, listing, resending.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::backend::Backend;
use crate::store::backend::Events;
use crate::store::model::EndpointStatus;
use crate::store::model::events::LEGACY_EVENT_MS;
use crate::store::model::pagination::{finish_page, scan_bounds};
use crate::store::model::skipped_until;
use crate::store::model::{
    AttemptRecord, AttemptStatus, Cursor, EndpointRecord, EventFilter, EventMeta, ListError, NewEvent, Owner, Page,
    PageRequest, Published, Resent, Scheduled, StoreError, StoredEvent,
};
use crate::store::rules::publish::{PublishTx, publish, publish_heard};
use crate::store::rules::resend::{ResendTx, resend};
use crate::store::rules::settle;
use crate::store::sealing::Sealer;
use crate::trace::EventTrace;

use super::attempts::{DeliveryTables, delivered_everywhere};
use super::names::{Names, Numbering};
use super::pagination::{index_page, list_page_within};
use super::{RedbStore, Tx, attempts, endpoints, tables};

const TABLE: &str = "events";

/// The first byte of an event's metadata stored in binary in layouts 3 and 4
/// ([`MetaWire`] with the type as text). Earlier records are JSON, which starts with `{`;
/// all are read.
const META_V1: u8 = 1;

/// The first byte of an event's metadata since layout 5 ([`MetaWire`] with the type's
/// number in the name dictionary, `crate::store::redb::names`).
const META_V2: u8 = 2;

/// The first byte of an event's metadata with its trace, since layout 6: [`META_V2`]'s
/// form followed by `EventTrace::to_bytes`.
const META_V3: u8 = 3;

/// What an event's stored metadata holds after its version byte: what its key
/// `(app, id)` does not already say. `N`: the type as text ([`META_V1`]) or as its number
/// ([`META_V2`]).
#[derive(Serialize, Deserialize)]
struct MetaWire<'a, N> {
    event_type: N,
    mode: Mode,
    created: i64,
    data_id: Option<std::borrow::Cow<'a, str>>,
}

/// An event's metadata as stored: the version byte, then postcard, its type numbered by
/// `names`.
pub(super) fn encode_meta(meta: &EventMeta, names: &mut impl Numbering) -> Result<Vec<u8>, StoreError> {
    let compact = MetaWire {
        event_type: names.id(&meta.event_type)?,
        mode: meta.mode,
        created: meta.created,
        data_id: meta.data_id.as_deref().map(Into::into),
    };
    let mut out = vec![if meta.trace.is_some() { META_V3 } else { META_V2 }];
    postcard::to_io(&compact, &mut out)
        .map_err(|e| StoreError::Encode { table: TABLE, source: serde::ser::Error::custom(e) })?;
    if let Some(trace) = &meta.trace {
        out.extend_from_slice(&trace.to_bytes());
    }
    Ok(out)
}

/// An event's metadata from its key and stored bytes, binary (names looked up in
/// `names`) or (written before layout 3) JSON. A trace that does not read is left out: it
/// never costs the event.
pub(super) fn decode_meta(key: (u128, u128), bytes: &[u8], names: &Names) -> Result<EventMeta, StoreError> {
    /// The wire form, and the bytes after it.
    fn parse<'a, N: Deserialize<'a>>(rest: &'a [u8]) -> Result<(MetaWire<'a, N>, &'a [u8]), StoreError> {
        postcard::take_from_bytes(rest)
            .map_err(|e| StoreError::Corrupt { table: TABLE, source: serde::de::Error::custom(e) })
    }
    let (event_type, wire, trace) = match bytes.split_first() {
        Some((&version @ (META_V2 | META_V3), rest)) => {
            let (wire, after) = parse::<u32>(rest)?;
            let trace = if version == META_V3 { EventTrace::from_bytes(after) } else { None };
            let event_type = names.name(TABLE, wire.event_type)?.to_string();
            let wire = MetaWire { event_type: (), mode: wire.mode, created: wire.created, data_id: wire.data_id };
            (event_type, wire, trace)
        }
        Some((&META_V1, rest)) => {
            let (wire, _) = parse::<String>(rest)?;
            (
                wire.event_type,
                MetaWire { event_type: (), mode: wire.mode, created: wire.created, data_id: wire.data_id },
                None,
            )
        }
        _ => return super::decode(TABLE, bytes),
    };
    Ok(EventMeta {
        id: EventId(key.1),
        app: AppId(key.0),
        mode: wire.mode,
        event_type,
        created: wire.created,
        data_id: wire.data_id.map(std::borrow::Cow::into_owned),
        trace,
    })
}

/// The metadata of event `(app, id)` in `events`, if it is there.
pub(super) fn meta_in(
    events: &impl ReadableTable<(u128, u128), &'static [u8]>,
    app: u128,
    id: u128,
    names: &Names,
) -> Result<Option<EventMeta>, StoreError> {
    events.get((app, id))?.map(|bytes| decode_meta((app, id), bytes.value(), names)).transpose()
}

/// Stores events and schedules their deliveries inside `tx` ([`rules::publish`]);
/// returns what each did and the first attempts queued.
pub(super) fn publish_in(
    tx: &WriteTransaction,
    store: &RedbStore,
    events: &[NewEvent],
    now_ms: u64,
) -> Result<(Vec<Published>, Scheduled), StoreError> {
    settle(publish(&mut Publishing::new(tx, store), events, now_ms))
}

/// Stores those of `events` some endpoint subscribes to, and schedules their deliveries,
/// inside `tx` ([`rules::publish::publish_heard`]).
pub(super) fn publish_heard_in(
    tx: &WriteTransaction,
    store: &RedbStore,
    events: &[NewEvent],
    now_ms: u64,
) -> Result<Scheduled, StoreError> {
    settle(publish_heard(&mut Publishing::new(tx, store), events, now_ms))
}

/// Publishing inside one write transaction; the tables it writes are opened at its first
/// write, once the subscriptions are read.
struct Publishing<'t, 'n> {
    tx: &'t WriteTransaction,
    sealer: &'n Sealer,
    names: &'n Names,
    /// The undelivered-payload window of endpoints that set none.
    default_hours: u32,
    /// Whether first attempts are born (`Backend::bear_births`).
    bears: bool,
    writes: Option<EventWrites<'t, 'n>>,
}

/// The tables a publish writes.
struct EventWrites<'t, 'n> {
    metas: Table<'t, (u128, u128), &'static [u8]>,
    bodies: Table<'t, u128, &'static [u8]>,
    indexes: EventIndexes<'t>,
    deliveries: DeliveryTables<'t, 'n>,
}

impl<'t, 'n> Publishing<'t, 'n> {
    fn new(tx: &'t WriteTransaction, store: &'n RedbStore) -> Self {
        let (default_hours, bears) = (store.undelivered_hours(), store.bears_births());
        Publishing { tx, sealer: &store.sealer, names: &store.names, default_hours, bears, writes: None }
    }

    fn writes(&mut self) -> Result<&mut EventWrites<'t, 'n>, StoreError> {
        if self.writes.is_none() {
            self.writes = Some(EventWrites {
                metas: self.tx.open_table(tables::EVENTS)?,
                bodies: self.tx.open_table(tables::EVENT_BODIES)?,
                indexes: EventIndexes::open(self.tx)?,
                deliveries: DeliveryTables::open(self.tx, self.names)?,
            });
        }
        Ok(self.writes.as_mut().expect("opened above"))
    }
}

impl PublishTx for Publishing<'_, '_> {
    async fn subscribed<'a>(
        &mut self,
        app: AppId,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
        endpoints::matching_in(self.tx, app, event_type)
    }

    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event: EventId,
        delivered_as: &str,
        now_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<AttemptRecord, StoreError> {
        self.writes()?.deliveries.schedule(endpoint, event, delivered_as, 1, now_ms, scheduled)
    }

    /// One process has the queue: nothing to claim.
    fn bear(&mut self, _attempt: DeliveryId) -> bool {
        self.bears
    }

    fn tally_filtered(&mut self, endpoint: &EndpointRecord, now_ms: u64) -> Result<(), StoreError> {
        self.writes()?.deliveries.tally_filtered(endpoint, now_ms);
        Ok(())
    }

    fn skip(&mut self, endpoint: &EndpointRecord, event: EventId, now_ms: u64) -> Result<(), StoreError> {
        let until = skipped_until(endpoint, self.default_hours, now_ms);
        let key = (endpoint.app.as_u128(), event.as_u128(), endpoint.id.as_u128());
        self.tx.open_table(tables::SKIPPED_DELIVERIES)?.insert(key, until)?;
        self.writes()?.deliveries.hold_payload(event, until)
    }

    async fn store_events(&mut self, events: &[NewEvent], pending: &[u32]) -> Result<(), StoreError> {
        let sealer = self.sealer;
        let w = self.writes()?;
        for (event, &n) in events.iter().zip(pending) {
            put_event(&mut w.metas, &mut w.bodies, sealer, &mut w.deliveries.names, event)?;
            w.indexes.insert(&event.meta)?;
            w.deliveries.add_pending(event.meta.id, n)?;
        }
        // What content filters refused, counted while scheduling.
        w.deliveries.write_tallies()
    }
}

/// The index tables of events (by type, by `data.id`), opened once per transaction.
pub(super) struct EventIndexes<'txn> {
    by_type: Table<'txn, (u128, u64, u128), ()>,
    by_data_id: Table<'txn, (u128, u64, u128), ()>,
}

impl<'txn> EventIndexes<'txn> {
    /// Opens the index tables in `tx`.
    pub(super) fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            by_type: tx.open_table(tables::EVENTS_BY_TYPE)?,
            by_data_id: tx.open_table(tables::EVENTS_BY_DATA_ID)?,
        })
    }

    /// Lists an event under its type and its `data.id`.
    pub(super) fn insert(&mut self, meta: &EventMeta) -> Result<(), StoreError> {
        let (app, id) = (meta.app.as_u128(), meta.id.as_u128());
        self.by_type.insert((app, tables::index_hash(&meta.event_type), id), ())?;
        if let Some(data_id) = &meta.data_id {
            self.by_data_id.insert((app, tables::index_hash(data_id), id), ())?;
        }
        Ok(())
    }

    /// Takes an event out of the indexes (it is being deleted).
    pub(super) fn remove(&mut self, meta: &EventMeta) -> Result<(), StoreError> {
        let (app, id) = (meta.app.as_u128(), meta.id.as_u128());
        self.by_type.remove((app, tables::index_hash(&meta.event_type), id))?;
        if let Some(data_id) = &meta.data_id {
            self.by_data_id.remove((app, tables::index_hash(data_id), id))?;
        }
        Ok(())
    }
}

/// Writes an event's metadata and payload (sealed) into the open tables.
fn put_event(
    metas: &mut Table<(u128, u128), &[u8]>,
    bodies: &mut Table<u128, &[u8]>,
    sealer: &Sealer,
    names: &mut impl Numbering,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let meta = &event.meta;
    metas.insert((meta.app.as_u128(), meta.id.as_u128()), encode_meta(meta, names)?.as_slice())?;
    bodies.insert(meta.id.as_u128(), event.stored_body(sealer).as_ref())?;
    Ok(())
}

/// The payload of the event `meta` describes, as stored in `bodies`, opened; empty if it
/// is gone.
pub(super) fn body_in(
    bodies: &impl ReadableTable<u128, &'static [u8]>,
    sealer: &Sealer,
    meta: &EventMeta,
) -> Result<Vec<u8>, StoreError> {
    let id = meta.id.as_u128();
    let Some(stored) = bodies.get(id)? else { return Ok(Vec::new()) };
    Ok(meta.envelope().payload(&sealer.open(&id.to_be_bytes(), stored.value())?))
}

/// One page of the events of `app` not delivered everywhere (something pending, or the
/// latest attempt to some endpoint failed for good), newest first, kept if `keep`
/// accepts: the application's pending events and its failures, merged in the direction of
/// travel, instead of every event.
#[allow(clippy::too_many_arguments)]
fn undelivered_page(
    events: &impl ReadableTable<(u128, u128), &'static [u8]>,
    pending: &impl ReadableTable<u128, u32>,
    failures: &impl ReadableTable<(u128, u128), ()>,
    names: &Names,
    app: u128,
    within: std::ops::RangeInclusive<u128>,
    request: PageRequest<EventId>,
    keep: impl Fn(&EventMeta) -> bool,
) -> Result<Page<EventMeta>, ListError> {
    let request = PageRequest { limit: request.limit, cursor: request.cursor.position() };
    if let Cursor::After(id) | Cursor::Before(id) = request.cursor
        && events.get((app, id)).map_err(StoreError::from)?.is_none()
    {
        return Err(ListError::UnknownCursor);
    }
    let mut items = Vec::new();
    let Some((from, to, upwards)) = scan_bounds(request.cursor, &within) else {
        return Ok(finish_page(items, request));
    };
    type Ids<'a> = Box<dyn DoubleEndedIterator<Item = Result<(u128, u32), redb::StorageError>> + 'a>;
    let pending_ids: Ids<'_> =
        Box::new(pending.range(from..=to).map_err(StoreError::from)?.map(|r| r.map(|(k, v)| (k.value(), v.value()))));
    let failed_ids: Ids<'_> = Box::new(
        failures.range((app, from)..=(app, to)).map_err(StoreError::from)?.map(|r| r.map(|(k, _)| (k.value().1, 1))),
    );
    fn travel<'a>(
        ids: Box<dyn DoubleEndedIterator<Item = Result<(u128, u32), redb::StorageError>> + 'a>,
        upwards: bool,
    ) -> Box<dyn Iterator<Item = Result<(u128, u32), redb::StorageError>> + 'a> {
        if upwards { Box::new(ids) } else { Box::new(ids.rev()) }
    }
    // Pending entries are of every application: only this one's, still pending, count.
    let mut a = travel(pending_ids, upwards)
        .filter(|r| r.as_ref().map_or(true, |(id, n)| *n > 0 && events.get((app, *id)).is_ok_and(|v| v.is_some())))
        .peekable();
    let mut b = travel(failed_ids, upwards).peekable();
    let wanted = request.limit + 1;
    loop {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => a.next(),
            (_, Some(Err(_))) => b.next(),
            (Some(Ok((x, _))), Some(Ok((y, _)))) if x == y => {
                b.next();
                a.next()
            }
            (Some(Ok((x, _))), Some(Ok((y, _)))) => {
                if (x < y) == upwards {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
        };
        let Some(next) = next else { break };
        let (id, _) = next.map_err(StoreError::from)?;
        if let Some(meta) = meta_in(events, app, id, names)?
            && keep(&meta)
        {
            items.push(meta);
            if items.len() == wanted {
                break;
            }
        }
    }
    Ok(finish_page(items, request))
}

#[cfg(test)]
impl RedbStore {
    /// Marks the events with ids made up to `ms` as a backfill of an older file does
    /// (their ids may not say when they were made), for tests.
    pub(crate) fn mark_legacy_events_for_test(&self, ms: u64) {
        self.write(|tx| Ok(tx.open_table(tables::META)?.insert(LEGACY_EVENT_MS, ms).map(|_| ())?)).unwrap();
    }
}

impl Events for RedbStore {
    async fn event(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.read(|tx| {
            let meta = meta_in(&tx.open_table(tables::EVENTS)?, owner.app.as_u128(), id.as_u128(), &self.names)?;
            let Some(meta) = meta else { return Ok(None) };
            let body = body_in(&tx.open_table(tables::EVENT_BODIES)?, &self.sealer, &meta)?;
            let pending_webhooks = tx.open_table(tables::EVENT_PENDING)?.get(id.as_u128())?.map_or(0, |v| v.value());
            Ok(Some(StoredEvent { meta, body, pending_webhooks }))
        })
    }

    async fn list_events(
        &self,
        owner: Owner,
        request: PageRequest<EventId>,
        filter: EventFilter,
    ) -> Result<Page<StoredEvent>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let events = tx.open_table(tables::EVENTS).map_err(StoreError::from)?;
            let by_event = tx.open_table(tables::EVENT_ATTEMPTS).map_err(StoreError::from)?;
            let attempts = tx.open_table(tables::ATTEMPTS).map_err(StoreError::from)?;
            // The page filter cannot fail, so a read error is kept here and returned after.
            let failure = std::cell::RefCell::new(None);
            let legacy_ms = tx
                .open_table(tables::META)
                .map_err(StoreError::from)?
                .get(LEGACY_EVENT_MS)
                .map_err(StoreError::from)?
                .map(|v| v.value());
            let within = filter.id_bounds(legacy_ms);
            let pending = tx.open_table(tables::EVENT_PENDING).map_err(StoreError::from)?;
            let failures = tx.open_table(tables::EVENT_FAILURES).map_err(StoreError::from)?;
            let app = owner.app.as_u128();
            let keep = |meta: &EventMeta| {
                let Some(wanted) = filter.delivery_success else { return filter.keeps(meta) };
                if !filter.keeps(meta) {
                    return false;
                }
                // Failed for good somewhere: not delivered, known without reading attempts.
                // (Something pending is not enough: a resend's success can be newer than
                // a retry still pending.)
                if wanted && failures.get((app, meta.id.as_u128())).is_ok_and(|f| f.is_some()) {
                    return false;
                }
                match delivered_everywhere(&by_event, &attempts, meta.id) {
                    Ok(outcome) => outcome == Some(wanted),
                    Err(err) => {
                        failure.borrow_mut().get_or_insert(err);
                        false
                    }
                }
            };
            // The most selective index the filter allows: a session's events, else a type's,
            // else every event (within the time bounds either way).
            let index = match (&filter.data_id, &filter.event_type) {
                (Some(data_id), _) => Some((tables::EVENTS_BY_DATA_ID, tables::index_hash(data_id))),
                (None, Some(event_type)) => Some((tables::EVENTS_BY_TYPE, tables::index_hash(event_type))),
                (None, None) => None,
            };
            let page = match index {
                // The undelivered are few (what is pending, what failed): their own indexes.
                _ if filter.delivery_success == Some(false) => {
                    undelivered_page(&events, &pending, &failures, &self.names, app, within, request, keep)?
                }
                None => {
                    let decode = |key, bytes: &[u8]| decode_meta(key, bytes, &self.names);
                    list_page_within(&events, app, within, request, decode, keep)?
                }
                Some((table, key)) => {
                    let index = tx.open_table(table).map_err(StoreError::from)?;
                    let load = |id: u128| meta_in(&events, app, id, &self.names);
                    index_page(&events, &index, app, key, within, request, load, keep)?
                }
            };
            if let Some(err) = failure.into_inner() {
                return Err(err.into());
            }
            let bodies = tx.open_table(tables::EVENT_BODIES).map_err(StoreError::from)?;
            let mut items = Vec::with_capacity(page.items.len());
            for meta in page.items {
                let id = meta.id.as_u128();
                let body = body_in(&bodies, &self.sealer, &meta)?;
                let pending_webhooks = pending.get(id).map_err(StoreError::from)?.map_or(0, |v| v.value());
                items.push(StoredEvent { meta, body, pending_webhooks });
            }
            Ok(Page { items, has_more: page.has_more })
        })
    }

    async fn record_test_ping(&self, event: NewEvent, record: AttemptRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            let (mut metas, mut bodies) = (tx.open_table(tables::EVENTS)?, tx.open_table(tables::EVENT_BODIES)?);
            let mut t = DeliveryTables::open(tx, &self.names)?;
            put_event(&mut metas, &mut bodies, &self.sealer, &mut t.names, &event)?;
            t.add_finished(&record.clone().sealed(&self.sealer))
        })
    }

    /// Stores events and schedules their deliveries, all in one transaction with one
    /// commit, without a word to the scheduler: for tests of the pieces below the engine,
    /// and for the benchmark to fill a data file before a server starts on it (the engine
    /// publishes through its writer).
    async fn publish_events(
        &self,
        events: Vec<NewEvent>,
        now_ms: u64,
    ) -> Result<(Vec<Published>, Scheduled), StoreError> {
        self.write(|tx| publish_in(tx, self, &events, now_ms))
    }

    /// Schedules a new round of delivery of an event: to `endpoint` if named (whatever
    /// it subscribes to), else to every enabled endpoint subscribed to its type. An
    /// endpoint to which the event failed for good longer ago than its undelivered-payload
    /// window (`default_hours` unless it sets its own) gets nothing: named, that is
    /// [`Resent::PayloadExpired`]; otherwise it is left out.
    async fn resend_event(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Resent, StoreError> {
        self.write(|tx| settle(resend(&mut Tx { tx, store: self }, owner, id, endpoint, now_ms, default_hours)))
    }
}

impl ResendTx for Tx<'_> {
    async fn event_meta(&mut self, owner: Owner, id: EventId) -> Result<Option<EventMeta>, StoreError> {
        meta_in(&self.tx.open_table(tables::EVENTS)?, owner.app.as_u128(), id.as_u128(), &self.store.names)
    }

    async fn latest_per_endpoint(
        &mut self,
        _owner: Owner,
        id: EventId,
    ) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError> {
        let (by_event, attempts) = (self.tx.open_table(tables::EVENT_ATTEMPTS)?, self.tx.open_table(tables::ATTEMPTS)?);
        attempts::latest_per_endpoint(&by_event, &attempts, id)
    }

    async fn endpoint(&mut self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        endpoints::get_in(&self.tx.open_table(tables::ENDPOINTS)?, owner.app, id)
    }

    async fn subscribed<'a>(
        &mut self,
        owner: Owner,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
        let mut found = endpoints::matching_in(self.tx, owner.app, event_type)?;
        found.retain(|(endpoint, _)| endpoint.status == EndpointStatus::Enabled);
        Ok(found)
    }

    async fn event_body(&mut self, meta: &EventMeta) -> Result<Vec<u8>, StoreError> {
        body_in(&self.tx.open_table(tables::EVENT_BODIES)?, &self.store.sealer, meta)
    }

    /// One writer at a time: nothing can remove the event meanwhile.
    async fn hold_event(&mut self, _owner: Owner, _id: EventId) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn queue_deliveries(
        &mut self,
        _owner: Owner,
        event: EventId,
        targets: &[(EndpointRecord, &str)],
        now_ms: u64,
    ) -> Result<Scheduled, StoreError> {
        let mut t = DeliveryTables::open(self.tx, &self.store.names)?;
        let mut scheduled = Scheduled::default();
        for (endpoint, delivered_as) in targets {
            t.schedule(endpoint, event, delivered_as, 1, now_ms, &mut scheduled)?;
        }
        t.add_pending(event, targets.len() as u32)?;
        Ok(scheduled)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use crate::store::model::events::test_event as event;
    #[test]
    fn the_index_hash_is_what_earlier_files_hold() {
        // It is on disk: a change would make every list by type or session come up empty.
        assert_eq!(tables::index_hash("invoice.paid"), 0xf4ce_1bd9_9346_e946);
        assert_ne!(tables::index_hash("a"), tables::index_hash("b"));
    }

    use super::*;

    #[test]
    fn metadata_is_stored_compact_and_earlier_layouts_still_read() {
        use crate::store::redb::names::InMemory;
        let owner = Owner { app: AppId::new(), mode: Mode::Live };
        let data = serde_json::json!({"id": "vks_1"});
        let traced = event(owner, "verification_session.verified", data, 1_800_000_000_123).meta;
        let meta = EventMeta { trace: None, ..traced.clone() };
        let key = (meta.app.as_u128(), meta.id.as_u128());
        let names = Names::default();
        let compact = encode_meta(&meta, &mut InMemory(&names)).unwrap();
        assert_eq!(compact[0], META_V2, "layout 5's form while there is no trace");
        let json = serde_json::to_vec(&meta).unwrap();
        assert!(compact.len() * 8 < json.len(), "{} vs {} bytes", compact.len(), json.len());
        assert_eq!(decode_meta(key, &compact, &names).unwrap(), meta);
        assert_eq!(decode_meta(key, &json, &names).unwrap(), meta, "a record of layout 2");
        // Layout 6: the trace after the rest, 25 bytes and the tracestate.
        let with_trace = encode_meta(&traced, &mut InMemory(&names)).unwrap();
        assert_eq!((with_trace[0], with_trace.len()), (META_V3, compact.len() + 25));
        assert_eq!(decode_meta(key, &with_trace, &names).unwrap(), traced);
        let mut bad_trace = with_trace.clone();
        bad_trace.truncate(compact.len() + 10);
        assert_eq!(decode_meta(key, &bad_trace, &names).unwrap(), meta, "a trace that does not read is left out");
        // Layouts 3 and 4: the type as text.
        let wire =
            MetaWire { event_type: meta.event_type.as_str(), mode: meta.mode, created: meta.created, data_id: None };
        let mut earlier = vec![META_V1];
        postcard::to_io(&wire, &mut earlier).unwrap();
        assert_eq!(decode_meta(key, &earlier, &Names::default()).unwrap(), EventMeta { data_id: None, ..meta.clone() });
        let without_session = EventMeta { data_id: None, ..meta.clone() };
        let stored = encode_meta(&without_session, &mut InMemory(&names)).unwrap();
        assert_eq!(decode_meta(key, &stored, &names).unwrap(), without_session);
        for damaged in [&[META_V1, 0xff][..], &[META_V2, 0xff], &[META_V2, 0x7f, 0, 0], &[META_V3, 0x7f]] {
            assert!(decode_meta(key, damaged, &names).is_err(), "damage is an error, not a panic: {damaged:?}");
        }
        assert!(decode_meta(key, &compact, &Names::default()).is_err(), "a number the dictionary lacks");
    }
}
