//! Stored webhook endpoints.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::apps::Owner;
use super::pagination::{ListError, Page, PageRequest, index_page, list_page};
use super::sealing::{OpenError, Sealer, TEXT_PREFIX, open_either, open_text_with};
use super::{RedbStore, StoreError, decode_found, encode, tables};
use crate::event_types::{WILDCARD, kayle_alias_of, kayle_name};
use crate::ids::{AppId, EndpointId};
use crate::mode::Mode;

pub(super) const TABLE: &str = "webhook_endpoints";

/// Whether an endpoint receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Receives new events and retries.
    Enabled,
    /// Paused: gets no new events; its retries wait until it is enabled again.
    Disabled,
}

/// A signing secret of an endpoint. During a rotation grace period an endpoint has two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// `whsec_` + base64 of 32 random bytes, sealed.
    pub secret: SealedSecret,
    /// When this secret stops signing (Unix seconds); `None` for the current secret.
    pub expires_at: Option<i64>,
}

impl SigningSecret {
    /// A secret of endpoint `id` of `app`, sealed with `sealer`.
    pub fn new(sealer: &Sealer, (app, id): (AppId, EndpointId), plain: &str, expires_at: Option<i64>) -> Self {
        SigningSecret { secret: SealedSecret::seal(sealer, app, id, plain), expires_at }
    }
}

/// A credential of an endpoint (its signing secrets) as it is stored and held in memory:
/// sealed with the payload key, bound to its endpoint (the endpoint's row is the
/// associated data, so a sealed secret cannot be moved to another endpoint). It is opened
/// only to sign a delivery or to show it to the endpoint's owner, so neither a copy of the
/// data file, a backup, a database dump nor a record in a log reveals it. A secret stored
/// in clear by an earlier release reads as it is, until the store seals it at start.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_sealed() { "SealedSecret(sealed)" } else { "SealedSecret(clear)" })
    }
}

impl SealedSecret {
    /// `plain` sealed for endpoint `id` of `app`.
    pub fn seal(sealer: &Sealer, app: AppId, id: EndpointId, plain: &str) -> Self {
        SealedSecret(sealer.seal_text(&secret_row(app, id), plain))
    }

    /// The secret in clear.
    pub fn open(&self, sealer: &Sealer, app: AppId, id: EndpointId) -> Result<String, OpenError> {
        sealer.open_text(&secret_row(app, id), self.0.clone())
    }

    /// Sealed again under `new`, opened with whichever of `new` and `old` sealed it (or as
    /// it is, if in clear): a payload key rotation.
    pub(crate) fn resealed(&self, old: &Sealer, new: &Sealer, app: AppId, id: EndpointId) -> Result<Self, OpenError> {
        let row = secret_row(app, id);
        let plain =
            open_text_with(&row, self.0.clone(), |row, sealed| Ok(open_either(new, old, row, sealed)?.into_owned()))?;
        Ok(SealedSecret(new.seal_text(&row, &plain)))
    }

    /// Whether it is sealed (false only for one an earlier release stored in clear).
    pub fn is_sealed(&self) -> bool {
        self.0.starts_with(TEXT_PREFIX)
    }
}

/// The row a secret is sealed to: what it is, and its endpoint.
fn secret_row(app: AppId, id: EndpointId) -> Vec<u8> {
    let mut row = b"endpoint secret\0".to_vec();
    row.extend_from_slice(&app.as_u128().to_be_bytes());
    row.extend_from_slice(&id.as_u128().to_be_bytes());
    row
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// Its id.
    pub id: EndpointId,
    /// The application it belongs to.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types it receives, or `["*"]`.
    pub enabled_events: Vec<String>,
    /// A display name (1–120 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tag-style purpose labels (at most 8), filterable in lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A label for people.
    pub description: Option<String>,
    /// Up to 50 string pairs for the user's own use.
    pub metadata: BTreeMap<String, String>,
    /// Enabled or paused.
    pub status: EndpointStatus,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Signing secrets, current first.
    pub secrets: Vec<SigningSecret>,
    /// Why stile disabled it by itself (it answered 410 Gone, or every attempt failed for
    /// `delivery.disable_after`); `None` when enabled, or disabled through the API.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// When it was last disabled (Unix seconds), by the API or by stile; `None` while
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<i64>,
    /// How long, in hours, the payload of a delivery to it that failed for good is kept
    /// for recovery and resends, past the general retention; `None`: the configured
    /// default (`retention.undelivered_payload_hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelivered_retention_hours: Option<u32>,
    /// When it was last changed through an API (Unix seconds); `None`: never since it was
    /// created (or since before stile recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
    /// For the endpoint of a `stile listen` session: whose it is and when it was last
    /// used. Its deliveries go down the listen connection instead of out over HTTP, and
    /// wait (parked) while no CLI is connected. `None` for every other endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerInfo>,
    /// Not stored with the record: the current run of failed attempts, filled in from
    /// the health table when the endpoint is read for the API. `None`: healthy.
    #[serde(skip)]
    pub failing: Option<Failing>,
}

/// What makes an endpoint a listener endpoint (see [`EndpointRecord::listener`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// SHA-256 (hex) of the API key that listens on it: one listener endpoint per key and
    /// application, found again by the next `stile listen` with the same key.
    pub key_hash: String,
    /// When a CLI last connected or disconnected (Unix seconds); an endpoint unused for
    /// `[listen] idle_expiry` is removed.
    pub last_seen: i64,
}

impl EndpointRecord {
    /// Whether deliveries to it go down a listen connection.
    pub fn is_listener(&self) -> bool {
        self.listener.is_some()
    }

    /// Its app and id, which its secrets are sealed to.
    pub fn secret_owner(&self) -> (AppId, EndpointId) {
        (self.app, self.id)
    }

    /// The secrets that sign at `now`, in clear: the current one and any old one still in
    /// its rotation grace period.
    pub fn live_secrets(&self, sealer: &Sealer, now: i64) -> Result<Vec<String>, OpenError> {
        let live = self.secrets.iter().filter(|s| s.expires_at.is_none_or(|t| t > now));
        live.map(|s| s.secret.open(sealer, self.app, self.id)).collect()
    }

    /// The current secret in clear, to show its owner (empty if it has none).
    pub fn current_secret(&self, sealer: &Sealer) -> Result<String, OpenError> {
        let current = self.secrets.iter().find(|s| s.expires_at.is_none());
        Ok(current.map(|s| s.secret.open(sealer, self.app, self.id)).transpose()?.unwrap_or_default())
    }

    /// Seals the secrets an earlier release stored in clear; says whether any was.
    pub(super) fn seal_clear_secrets(&mut self, sealer: &Sealer) -> Result<bool, OpenError> {
        let mut sealed_any = false;
        for secret in self.secrets.iter_mut().filter(|s| !s.secret.is_sealed()) {
            let plain = secret.secret.open(sealer, self.app, self.id)?;
            secret.secret = SealedSecret::seal(sealer, self.app, self.id, &plain);
            sealed_any = true;
        }
        Ok(sealed_any)
    }
}

/// An endpoint's current run of failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// When the first failure of the run was (Unix seconds).
    pub since: i64,
    /// Failed attempts in the run.
    pub attempts: u32,
}

#[cfg(test)]
impl EndpointRecord {
    /// An enabled endpoint with no secret, for unit tests.
    pub(crate) fn for_test(owner: Owner, url: &str, event_type: &str) -> Self {
        EndpointRecord {
            id: EndpointId::new(),
            app: owner.app,
            mode: owner.mode,
            url: url.to_string(),
            enabled_events: vec![event_type.to_string()],
            name: None,
            labels: vec![],
            description: None,
            metadata: BTreeMap::new(),
            status: EndpointStatus::Enabled,
            created: 0,
            secrets: vec![],
            disabled_reason: None,
            disabled_at: None,
            undelivered_retention_hours: None,
            updated: None,
            listener: None,
            failing: None,
        }
    }
}

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

/// Which endpoints a list shows.
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    /// Only those carrying this label.
    pub label: Option<String>,
}

impl EndpointFilter {
    /// Whether `record` passes.
    fn keeps(&self, record: &EndpointRecord) -> bool {
        self.label.as_ref().is_none_or(|label| record.labels.contains(label))
    }
}

/// The name under which an endpoint receives events of `event_type`, if it is subscribed
/// to them: the type itself (named, or through `*`), else its Kayle name if the endpoint
/// lists that.
pub fn subscribed<'a>(endpoint: &EndpointRecord, event_type: &'a str) -> Option<&'a str> {
    if endpoint.enabled_events.iter().any(|e| e == WILDCARD || e == event_type) {
        return Some(event_type);
    }
    kayle_name(event_type).filter(|kayle| endpoint.enabled_events.iter().any(|e| e == kayle))
}

/// The name under which an event of `event_type` goes to `endpoint` when it is sent there
/// whether subscribed or not (a resend to a named endpoint): as [`subscribed`] says, else
/// the Kayle name if the endpoint subscribes by Kayle names only, else the type itself.
pub fn delivered_as<'a>(endpoint: &EndpointRecord, event_type: &'a str) -> &'a str {
    if let Some(name) = subscribed(endpoint, event_type) {
        return name;
    }
    let kayle_only = endpoint.enabled_events.iter().all(|e| kayle_alias_of(e).is_some());
    match kayle_name(event_type) {
        Some(kayle) if kayle_only => kayle,
        _ => event_type,
    }
}

impl EndpointRecord {
    /// Whose it is.
    pub fn owner(&self) -> Owner {
        Owner { app: self.app, mode: self.mode }
    }
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
) -> Result<(), StoreError> {
    let Some(mut endpoint) = get_in(endpoints, app, id)?.filter(|e| e.status == EndpointStatus::Enabled) else {
        return Ok(());
    };
    endpoint.status = EndpointStatus::Disabled;
    endpoint.disabled_reason = Some(reason.to_string());
    endpoint.disabled_at = Some(at);
    endpoints.insert((app.as_u128(), id.as_u128()), encode(TABLE, &endpoint)?.as_slice())?;
    tracing::warn!(endpoint = %endpoint.id, reason, "endpoint disabled automatically");
    Ok(())
}

/// The enabled endpoints of application `app` subscribed to `event_type`, each with the
/// name it receives the event under.
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
        if endpoint.status != EndpointStatus::Enabled {
            continue;
        }
        if let Some(name) = subscribed(&endpoint, event_type) {
            out.push((endpoint, name));
        }
    }
    Ok(out)
}

impl RedbStore {
    /// Stores a new endpoint.
    pub fn insert_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, record)?;
        self.write(|tx| {
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            table.insert((record.app.as_u128(), record.id.as_u128()), bytes.as_slice())?;
            reindex_in(tx, None, Some(record))?;
            Ok(())
        })
    }

    /// The endpoint with this id in this application, if there is one.
    pub fn endpoint(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
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
    pub fn update_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.write(|tx| update_in(tx, owner.app, id, change))
    }

    /// One page of an application's endpoints, newest first.
    pub fn list_endpoints(
        &self,
        owner: Owner,
        request: PageRequest<EndpointId>,
        filter: &EndpointFilter,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pagination::Cursor;

    fn record(owner: Owner, n: usize) -> EndpointRecord {
        EndpointRecord::for_test(owner, &format!("https://example.com/{n}"), "*")
    }

    #[test]
    fn publishing_finds_through_the_index_exactly_the_endpoints_a_scan_finds() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let owner = store.test_owner(Mode::Test);
        let other = store.insert_app_for_test(Mode::Test, "Other");
        let mut rng = fastrand::Rng::with_seed(11);
        // Types, the wildcard, and the Kayle name of a built-in type.
        let kayle = kayle_name("verification_session.verified").expect("a built-in type has a Kayle name");
        let names = ["a.b", "a.c", "verification_session.verified", kayle, WILDCARD];
        let pick = |rng: &mut fastrand::Rng| -> Vec<String> {
            let mut chosen: Vec<String> = names.iter().filter(|_| rng.u8(0..4) == 0).map(|n| n.to_string()).collect();
            if chosen.is_empty() {
                chosen.push(names[rng.usize(0..names.len())].to_string());
            }
            chosen
        };
        let mut ids = Vec::new();
        for n in 0..80 {
            let mut endpoint = record(if n % 8 == 0 { other } else { owner }, n);
            endpoint.enabled_events = pick(&mut rng);
            if rng.u8(0..5) == 0 {
                endpoint.status = EndpointStatus::Disabled;
            }
            store.insert_endpoint(&endpoint).unwrap();
            ids.push((endpoint.app, endpoint.id));
        }
        // Change what some subscribe to, disable or enable some, delete some.
        let changed: Vec<_> = ids.iter().filter(|_| rng.u8(0..3) == 0).collect();
        for (app, id) in changed {
            let (events, flip) = (pick(&mut rng), rng.bool());
            store
                .update_endpoint(Owner { app: *app, mode: Mode::Test }, *id, |r| {
                    r.enabled_events = events;
                    if flip {
                        r.status = match r.status {
                            EndpointStatus::Enabled => EndpointStatus::Disabled,
                            _ => EndpointStatus::Enabled,
                        };
                    }
                })
                .unwrap();
        }
        for (app, id) in ids.iter().filter(|_| rng.u8(0..6) == 0) {
            store.delete_endpoint(Owner { app: *app, mode: Mode::Test }, *id, 0).unwrap();
        }
        for app in [owner, other] {
            let everyone = store.list_endpoints(
                app,
                PageRequest { limit: 1000, cursor: Cursor::Start },
                &EndpointFilter::default(),
            );
            let mut everyone = everyone.unwrap().items;
            everyone.reverse(); // oldest first, as the index gives them
            for event_type in ["a.b", "a.c", "verification_session.verified", "z.unknown"] {
                let scanned: Vec<(EndpointId, &str)> = everyone
                    .iter()
                    .filter(|e| e.status == EndpointStatus::Enabled)
                    .filter_map(|e| subscribed(e, event_type).map(|name| (e.id, name)))
                    .collect();
                let indexed: Vec<(EndpointId, &str)> = store
                    .write(|tx| matching_in(tx, app.app, event_type))
                    .unwrap()
                    .into_iter()
                    .map(|(e, name)| (e.id, name))
                    .collect();
                assert_eq!(indexed, scanned, "{event_type}");
            }
        }
    }
}
