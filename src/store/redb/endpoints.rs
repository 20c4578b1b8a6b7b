//! Stored webhook endpoints.

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::event_types::{WILDCARD, kayle_name};
use crate::ids::{AppId, EndpointId};
use crate::store::backend::Endpoints;
use crate::store::model::endpoints::{Failing, subscribed};
use crate::store::model::{
    EndpointFilter, EndpointRecord, EndpointStatus, ListError, Owner, Page, PageRequest, StoreError,
};

use super::pagination::{index_page, list_page};
use super::{RedbStore, decode_found, encode, tables};

pub(super) const TABLE: &str = "webhook_endpoints";

/// Fills in `failing` from the health table.
fn with_health(
    health: &impl ReadableTable<u128, (u64, u32)>,
    mut record: EndpointRecord,
) -> Result<EndpointRecord, StoreError> {
    record.failing = health
        .get(record.id.as_u128())?
        .map(|v| v.value())
        .map(|(since_ms, attempts)| Failing { since: (since_ms / 1000) as i64, attempts });
    Ok(record)
}

/// The endpoint with this id in this application, read from an open table.
pub(super) fn get_in(
    table: &impl ReadableTable<(u128, u128), &'static [u8]>,
    app: AppId,
    id: EndpointId,
) -> Result<Option<EndpointRecord>, StoreError> {
    decode_found(TABLE, table.get((app.as_u128(), id.as_u128()))?)
}

/// Files an endpoint under its labels ([`tables::ENDPOINT_LABELS`]) and what it
/// subscribes to ([`tables::ENDPOINT_SUBSCRIPTIONS`]): the entries of `old` (what was
/// stored, if anything) that `new` (what is stored now, if anything) lacks go, the new
/// ones come. Every write that adds, changes or removes an endpoint calls it.
pub(super) fn reindex_in(
    tx: &WriteTransaction,
    old: Option<&EndpointRecord>,
    new: Option<&EndpointRecord>,
) -> Result<(), StoreError> {
    refile(&mut tx.open_table(tables::ENDPOINT_LABELS)?, old, new, |r| &r.labels)?;
    refile(&mut tx.open_table(tables::ENDPOINT_SUBSCRIPTIONS)?, old, new, |r| &r.enabled_events)
}

/// Moves an endpoint's `(app, name, id)` entries in `index` from the names `names` gives
/// for `old` to those it gives for `new`.
fn refile(
    index: &mut Table<(u128, &'static str, u128), ()>,
    old: Option<&EndpointRecord>,
    new: Option<&EndpointRecord>,
    names: impl Fn(&EndpointRecord) -> &Vec<String>,
) -> Result<(), StoreError> {
    let empty = Vec::new();
    let before = old.map_or(&empty, &names);
    let after = new.map_or(&empty, &names);
    if let Some(old) = old {
        for name in before.iter().filter(|n| !after.contains(n)) {
            index.remove((old.app.as_u128(), name.as_str(), old.id.as_u128()))?;
        }
    }
    if let Some(new) = new {
        for name in after.iter().filter(|n| !before.contains(n)) {
            index.insert((new.app.as_u128(), name.as_str(), new.id.as_u128()), ())?;
        }
    }
    Ok(())
}

/// Changes an endpoint inside `tx`; returns it as stored, with its health.
pub(super) fn update_in(
    tx: &WriteTransaction,
    app: AppId,
    id: EndpointId,
    change: impl FnOnce(&mut EndpointRecord),
) -> Result<Option<EndpointRecord>, StoreError> {
    let mut table = tx.open_table(tables::ENDPOINTS)?;
    let Some(mut record) = get_in(&table, app, id)? else { return Ok(None) };
    let before = record.clone();
    change(&mut record);
    table.insert((app.as_u128(), id.as_u128()), encode(TABLE, &record)?.as_slice())?;
    reindex_in(tx, Some(&before), Some(&record))?;
    let health = tx.open_table(tables::ENDPOINT_HEALTH)?;
    Ok(Some(with_health(&health, record)?))
}

/// Disables an endpoint automatically at `at` (Unix seconds), saying why. Already
/// disabled: left as it is.
pub(super) fn disable_in(
    endpoints: &mut Table<'_, (u128, u128), &'static [u8]>,
    app: AppId,
    id: EndpointId,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let Some(mut endpoint) = get_in(endpoints, app, id)?.filter(|e| e.status == EndpointStatus::Enabled) else {
        return Ok(false);
    };
    endpoint.status = EndpointStatus::Disabled;
    endpoint.disabled_reason = Some(reason.to_string());
    endpoint.disabled_at = Some(at);
    endpoints.insert((app.as_u128(), id.as_u128()), encode(TABLE, &endpoint)?.as_slice())?;
    tracing::warn!(endpoint = %endpoint.id, reason, "endpoint disabled automatically");
    Ok(true)
}

/// The endpoints of application `app` subscribed to `event_type`, enabled or disabled, each
/// with the name it receives the event under.
pub(super) fn matching_in<'a>(
    tx: &WriteTransaction,
    app: AppId,
    event_type: &'a str,
) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError> {
    let endpoints = tx.open_table(tables::ENDPOINTS)?;
    let index = tx.open_table(tables::ENDPOINT_SUBSCRIPTIONS)?;
    let app = app.as_u128();
    // Every name under which an endpoint can subscribe to the type; an endpoint may be
    // under several.
    let mut ids = std::collections::BTreeSet::new();
    for name in [Some(WILDCARD), Some(event_type), kayle_name(event_type)].into_iter().flatten() {
        for entry in index.range((app, name, 0)..=(app, name, u128::MAX))? {
            ids.insert(entry?.0.value().2);
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(endpoint) = get_in(&endpoints, AppId(app), EndpointId(id))? else { continue };
        if let Some(name) = subscribed(&endpoint, event_type) {
            out.push((endpoint, name));
        }
    }
    Ok(out)
}

impl Endpoints for RedbStore {
    async fn insert_endpoint(&self, record: EndpointRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, &record)?;
        self.write(|tx| {
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            table.insert((record.app.as_u128(), record.id.as_u128()), bytes.as_slice())?;
            reindex_in(tx, None, Some(&record))?;
            Ok(())
        })
    }

    async fn endpoint(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        self.read(|tx| {
            let table = tx.open_table(tables::ENDPOINTS)?;
            let health = tx.open_table(tables::ENDPOINT_HEALTH)?;
            let found = get_in(&table, owner.app, id)?;
            found.map(|record| with_health(&health, record)).transpose()
        })
    }

    /// Changes an endpoint with `change` and stores it, in one transaction. `Ok(None)`:
    /// no such endpoint. (Enabling one goes through the delivery engine, which also
    /// releases the retries that waited for it.)
    #[cfg(test)]
    async fn update_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord) + Send + 'static,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.write(|tx| update_in(tx, owner.app, id, change))
    }

    async fn list_endpoints(
        &self,
        owner: Owner,
        request: PageRequest<EndpointId>,
        filter: EndpointFilter,
    ) -> Result<Page<EndpointRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let table = tx.open_table(tables::ENDPOINTS).map_err(StoreError::from)?;
            let health = tx.open_table(tables::ENDPOINT_HEALTH).map_err(StoreError::from)?;
            let app = owner.app.as_u128();
            let page = match &filter.label {
                // The label's own index: O(page) however many endpoints the app has.
                Some(label) => {
                    let index = tx.open_table(tables::ENDPOINT_LABELS).map_err(StoreError::from)?;
                    let load = |id: u128| get_in(&table, owner.app, EndpointId(id));
                    index_page(&table, &index, app, label, 0..=u128::MAX, request, load, |r| filter.keeps(r))?
                }
                None => list_page(&table, TABLE, app, request, |_: &EndpointRecord| true)?,
            };
            let items = page.items.into_iter().map(|r| with_health(&health, r)).collect::<Result<_, _>>()?;
            Ok(Page { items, has_more: page.has_more })
        })
    }
}
