//! Endpoint operations every dialect shares: create, update, rotate a secret, reveal
//! it, send a test ping. The rules that are not about one API's shapes live here: the
//! DNS check of a URL, `disabled_at`, how a secret is made and sealed, what a ping
//! records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::ServiceError;
use crate::content_filter::ContentFilter;
use crate::delivery::{Engine, Outgoing};
use crate::event_types::ENDPOINT_TEST;
use crate::ids::{DeliveryId, EndpointId};
use crate::metrics::Metrics;
use crate::operational::{self, EndpointChange};
use crate::secrets::new_endpoint_secret;
use crate::store::Store;
use crate::store::model::endpoints::{listener_description, listener_name, subscribed};
use crate::store::model::{
    AttemptRecord, AttemptStatus, ClientCertificate, ClientCertificateIn, Cursor, EndpointFilter, EndpointRecord,
    EndpointStatus, FlowLimits, FlowState, ListError, ListenRequest, Owner, Page, PageRequest, ReceiverAuth,
    ReceiverAuthIn, Recovery, SigningSecret, Transformation, TransformationSave,
};
use crate::target_policy::TargetPolicy;
use crate::trace::EventTrace;

/// How many endpoints each read of [`Endpoints::all`] takes: the largest page a list
/// answers, so no read is larger than one a list request makes anyway.
const ALL_PAGE_SIZE: usize = 100;

/// Every endpoint of `owner` in `store`, newest first, read a page at a time. An endpoint
/// deleted while it is read ends the walk where it was: what was read is all.
pub(super) async fn all_of(store: &Store, owner: Owner) -> Result<Vec<EndpointRecord>, ServiceError> {
    let mut all = Vec::new();
    let mut cursor = Cursor::Start;
    loop {
        let request = PageRequest { limit: ALL_PAGE_SIZE, cursor };
        let page = match store.list_endpoints(owner, request, EndpointFilter::default()).await {
            Ok(page) => page,
            // The last endpoint of the page was deleted meanwhile.
            Err(ListError::UnknownCursor) => return Ok(all),
            Err(ListError::Store(err)) => return Err(err.into()),
        };
        let last = page.items.last().map(|e| e.id);
        all.extend(page.items);
        match last {
            Some(last) if page.has_more => cursor = Cursor::After(last),
            _ => return Ok(all),
        }
    }
}

/// A checked create request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewEndpoint {
    /// The URL, as given.
    pub url: String,
    /// Deduplicated event types.
    pub enabled_events: Vec<String>,
    /// The display name, if any.
    pub name: Option<String>,
    /// Deduplicated labels.
    pub labels: Vec<String>,
    /// The label, if any.
    pub description: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its undelivered-payload retention in hours (`None`: the configured default).
    pub undelivered_retention_hours: Option<u32>,
    /// Its flow limits.
    pub flow: FlowLimits,
    /// Headers of its own sent with every request.
    pub headers: BTreeMap<String, String>,
    /// How stile authenticates to its receiver, in clear (sealed as it is stored).
    pub authentication: Option<ReceiverAuthIn>,
    /// The client certificate its receiver asks for, the key in clear (sealed as it is
    /// stored).
    pub client_certificate: Option<ClientCertificateIn>,
    /// Which of its events it receives, by what they hold; `None`: all.
    pub filter: Option<ContentFilter>,
    /// The JavaScript its requests go through (checked to compile by the service).
    pub transformation: Option<TransformationSave>,
    /// Whether it starts disabled.
    pub disabled: bool,
    /// `enabled_events` are every Kayle type, asked for as `[]` through the Kayle API.
    pub all_kayle_types: bool,
}

/// A checked update request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointChanges {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub enabled_events: Option<Vec<String>>,
    /// A new (or removed) name.
    pub name: Option<Option<String>>,
    /// New labels.
    pub labels: Option<Vec<String>>,
    /// A new undelivered-payload retention in hours.
    pub undelivered_retention_hours: Option<u32>,
    /// A new (or removed) label.
    pub description: Option<Option<String>>,
    /// New metadata.
    pub metadata: Option<BTreeMap<String, String>>,
    /// A new status.
    pub status: Option<EndpointStatus>,
    /// A new (or removed: `Some(None)`) rate limit.
    pub rate_limit: Option<Option<u32>>,
    /// A new (or removed, back to the server's default) in-flight cap.
    pub max_in_flight: Option<Option<u32>>,
    /// New headers of its own, replacing the old (empty: none).
    pub headers: Option<BTreeMap<String, String>>,
    /// A new (or removed: `Some(None)`) authentication, in clear: the service seals it
    /// (`apply` leaves it alone).
    pub authentication: Option<Option<ReceiverAuthIn>>,
    /// A new (or removed) client certificate, its key in clear: the service seals it
    /// (`apply` leaves it alone).
    pub client_certificate: Option<Option<ClientCertificateIn>>,
    /// A new (or removed: `Some(None)`) content filter.
    pub filter: Option<Option<ContentFilter>>,
    /// A new version (or none at all: `Some(None)`) of its transformation (checked to
    /// compile by the service).
    pub transformation: Option<Option<TransformationSave>>,
    /// With `enabled_events`, through the Kayle API: whether they are every Kayle type
    /// asked for as `[]`. `None` (the other APIs): kept while the types stay the same.
    pub all_kayle_types: Option<bool>,
}

impl EndpointChanges {
    /// Applies the changes to a stored endpoint.
    pub fn apply(self, record: &mut EndpointRecord) {
        if let Some(url) = self.url {
            record.url = url;
        }
        if let Some(events) = self.enabled_events {
            // The same types in another order (the dashboard sends them sorted) are no change.
            let same = |a: &[String], b: &[String]| {
                a.iter().collect::<std::collections::BTreeSet<_>>()
                    == b.iter().collect::<std::collections::BTreeSet<_>>()
            };
            match self.all_kayle_types {
                Some(all) => record.all_kayle_types = all,
                None if !same(&events, &record.enabled_events) => record.all_kayle_types = false,
                None => {}
            }
            record.enabled_events = events;
        }
        if let Some(name) = self.name {
            record.name = name;
        }
        if let Some(labels) = self.labels {
            record.labels = labels;
        }
        if let Some(hours) = self.undelivered_retention_hours {
            record.undelivered_retention_hours = Some(hours);
        }
        if let Some(description) = self.description {
            record.description = description;
        }
        if let Some(rate_limit) = self.rate_limit {
            record.rate_limit = rate_limit;
        }
        if let Some(max_in_flight) = self.max_in_flight {
            record.max_in_flight = max_in_flight;
        }
        if let Some(metadata) = self.metadata {
            record.metadata = metadata;
        }
        if let Some(headers) = self.headers {
            record.headers = headers;
        }
        if let Some(filter) = self.filter {
            record.filter = filter;
        }
        if let Some(transformation) = self.transformation {
            record.transformation =
                transformation.map(|save| Transformation::saved(record.transformation.take(), save));
        }
        if let Some(status) = self.status {
            // A status set through the API replaces whatever stile decided by itself.
            record.disabled_reason = None;
            record.status = status;
        }
    }
}

/// What a test ping sends.
pub enum PingPayload {
    /// A `webhook_endpoint.test` event carrying the endpoint ([`endpoint_object`]).
    Test,
    /// An event of this type with this (example) data.
    Example(String, serde_json::Value),
}

/// The endpoint as a `webhook_endpoint.test` event carries it, whichever API sent the
/// ping: the object `GET /v1/webhook_endpoints/:id` answers with (the Stile API's view
/// mirrors it field for field, which a test there holds).
pub fn endpoint_object(endpoint: &EndpointRecord) -> serde_json::Value {
    serde_json::json!({
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "kind": if endpoint.listener.is_some() { "listener" } else { "webhook" },
        "enabled_events": endpoint.enabled_events,
        "name": endpoint.name,
        "labels": endpoint.labels,
        "description": endpoint.description,
        "metadata": endpoint.metadata,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "health": if endpoint.failing.is_some() { "degraded" } else { "healthy" },
        "failing_since": endpoint.failing.map(|f| f.since),
        "undelivered_payload_retention_hours": endpoint.undelivered_retention_hours,
        "rate_limit": endpoint.rate_limit,
        "max_in_flight": endpoint.max_in_flight,
        "headers": endpoint.headers,
        "authentication": endpoint.authentication.as_ref().map(ReceiverAuth::shown),
        "client_certificate": endpoint.client_certificate.as_ref().map(ClientCertificate::shown),
        "filter": endpoint.filter.as_ref().map(ContentFilter::source),
        "transformation": endpoint.transformation.as_ref().map(Transformation::shown),
        "livemode": endpoint.mode.is_live(),
        "created": endpoint.created,
    })
}

/// The endpoint operations, over the engine and the store of one server.
pub struct Endpoints<'a> {
    /// Where pings go and what updates and time go through.
    pub engine: &'a Engine,
    /// Where endpoints are kept.
    pub store: &'a Arc<Store>,
    /// Which URLs may receive webhooks.
    pub targets: &'a TargetPolicy,
    /// Counts what pings publish and attempt.
    pub metrics: &'a Metrics,
}

impl Endpoints<'_> {
    /// Stores a new endpoint of `owner` from a checked request (after the DNS check);
    /// returns it with its signing secret, in clear this once.
    pub async fn create(&self, owner: Owner, input: NewEndpoint) -> Result<(EndpointRecord, String), ServiceError> {
        self.check_resolved(&input.url, "url").await?;
        if let Some(save) = &input.transformation {
            self.check_transformation(owner, save).await?;
        }
        let now = self.engine.clock().now();
        let mut input = input;
        if let Some(save) = &mut input.transformation {
            save.at = now;
        }
        if let Some(token_url) = input.authentication.as_ref().and_then(ReceiverAuthIn::token_url) {
            self.check_resolved(token_url, "authentication").await?;
        }
        let secret = new_endpoint_secret();
        let now = self.engine.clock().now();
        let id = EndpointId::new();
        let sealed = SigningSecret::new(self.store.sealer(), (owner.app, id), &secret, None);
        let record = EndpointRecord {
            name: input.name,
            labels: input.labels,
            description: input.description,
            metadata: input.metadata,
            status: if input.disabled { EndpointStatus::Disabled } else { EndpointStatus::Enabled },
            disabled_at: input.disabled.then_some(now),
            undelivered_retention_hours: input.undelivered_retention_hours,
            all_kayle_types: input.all_kayle_types,
            rate_limit: input.flow.rate_limit,
            max_in_flight: input.flow.max_in_flight,
            headers: input.headers,
            filter: input.filter,
            transformation: input.transformation.map(|save| Transformation::saved(None, save)),
            authentication: input.authentication.map(|auth| auth.seal(self.store.sealer(), owner.app, id)),
            client_certificate: input.client_certificate.map(|c| c.seal(self.store.sealer(), owner.app, id)),
            ..new_record(owner, id, input.url, input.enabled_events, now, sealed)
        };
        self.store.insert_endpoint(record.clone()).await?;
        self.tell(owner, &record, EndpointChange::Created, "created").await;
        Ok((record, secret))
    }

    /// Tells the platform's operational endpoints what happened to `endpoint` of `owner`,
    /// once it is committed. Never about an operational endpoint, nor a `stile listen` one
    /// (a developer's session, made and dropped as the CLI comes and goes). A failure is
    /// logged, never the caller's: what happened to the endpoint stands.
    async fn tell(&self, owner: Owner, endpoint: &EndpointRecord, change: EndpointChange, reason: &str) {
        if operational::is_operational(owner.app) || endpoint.is_listener() {
            return;
        }
        let told = async {
            // Nothing is stored when no operational endpoint would hear it.
            let listeners = all_of(self.store, operational::owner(owner.mode)).await?;
            let heard = listeners
                .iter()
                .any(|e| e.status == EndpointStatus::Enabled && subscribed(e, change.event_type()).is_some());
            let app = if heard { self.store.app(owner.mode, owner.app).await? } else { None };
            let Some(app) = app else { return Ok(()) };
            let data = operational::endpoint_data(&app, endpoint, reason);
            let now_ms = self.engine.clock().now_ms();
            let event = crate::payload::new_event(operational::owner(owner.mode), change.event_type(), &data, now_ms)?;
            self.engine.publish(event).await?;
            Ok::<_, ServiceError>(())
        };
        if let Err(err) = told.await {
            tracing::warn!(endpoint = %endpoint.id, event_type = change.event_type(), error = %err, "an operational event was not published");
        }
    }

    /// Applies checked changes to an endpoint of `owner` (after the DNS check of a new
    /// URL): enabling it releases the retries that waited and resets its health; the time
    /// it was disabled is kept while it stays disabled. `None`: no such endpoint.
    pub async fn update(
        &self,
        owner: Owner,
        id: EndpointId,
        mut changes: EndpointChanges,
    ) -> Result<Option<EndpointRecord>, ServiceError> {
        if let Some(url) = &changes.url {
            self.check_resolved(url, "url").await?;
            // Credentials meant for one receiver are never sent to another.
            if changes.authentication.is_none()
                && let Some(current) = self.store.endpoint(owner, id).await?
                && current.authentication.is_some()
                && crate::target_policy::origin(&current.url) != crate::target_policy::origin(url)
            {
                return Err(ServiceError::Invalid {
                    param: "authentication",
                    message: "The new `url` is on another host: send `authentication` again with it (or `null` to remove it), so credentials meant for one receiver are never sent to another.".into(),
                });
            }
        }
        if let Some(token_url) = changes.authentication.as_ref().and_then(|a| a.as_ref()?.token_url()) {
            self.check_resolved(token_url, "authentication").await?;
        }
        if let Some(Some(save)) = &changes.transformation {
            self.check_transformation(owner, save).await?;
        }
        let enables = changes.status == Some(EndpointStatus::Enabled);
        let now = self.engine.clock().now();
        if let Some(Some(save)) = &mut changes.transformation {
            save.at = now;
        }
        // The endpoint as it was, for what the update changed (set inside the write).
        let before: Arc<std::sync::Mutex<Option<EndpointRecord>>> = Arc::default();
        let seen = Arc::clone(&before);
        // Sealed here, to the endpoint it is for: never held in clear past this point.
        let sealer = self.store.sealer();
        let authentication = changes.authentication.take().map(|a| a.map(|a| a.seal(sealer, owner.app, id)));
        let certificate = changes.client_certificate.take().map(|c| c.map(|c| c.seal(sealer, owner.app, id)));
        let updated = self
            .engine
            .update_endpoint(owner, id, enables, move |record| {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
                let was = record.status;
                changes.apply(record);
                if let Some(authentication) = authentication {
                    record.authentication = authentication;
                }
                if let Some(certificate) = certificate {
                    record.client_certificate = certificate;
                }
                record.updated = Some(now);
                match record.status {
                    EndpointStatus::Enabled => record.disabled_at = None,
                    EndpointStatus::Disabled if was == EndpointStatus::Enabled => record.disabled_at = Some(now),
                    EndpointStatus::Disabled => {}
                }
            })
            .await?;
        let before = before.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(before), Some(after)) = (before, &updated) {
            for change in EndpointChange::of_update(&before, after) {
                let reason = match change {
                    EndpointChange::Disabled => "disabled through the API",
                    EndpointChange::Enabled => "enabled through the API",
                    _ => "updated through the API",
                };
                self.tell(owner, after, change, reason).await;
            }
        }
        Ok(updated)
    }

    /// Gives an endpoint of `owner` a new signing secret; the old one keeps signing for
    /// `grace` if given, else stops at once. Returns the endpoint and the new secret in
    /// clear; `None`: no such endpoint.
    pub async fn rotate(
        &self,
        owner: Owner,
        id: EndpointId,
        grace: Option<Duration>,
    ) -> Result<Option<(EndpointRecord, String)>, ServiceError> {
        let secret = new_endpoint_secret();
        let new_secret = secret.clone();
        let now = self.engine.clock().now();
        let sealer = self.store.sealer().clone();
        // Through the engine, which tells the scheduler to drop what it kept of the
        // endpoint (see `delivery::born_jobs` for what that bounds).
        let updated = self
            .engine
            .update_endpoint(owner, id, false, move |record| {
                let previous = record.secrets.iter().find(|s| s.expires_at.is_none()).cloned();
                record.secrets = vec![SigningSecret::new(&sealer, record.secret_owner(), &new_secret, None)];
                if let (Some(grace), Some(previous)) = (grace, previous) {
                    let expires_at = now + grace.as_secs().max(1) as i64;
                    record.secrets.push(SigningSecret { secret: previous.secret, expires_at: Some(expires_at) });
                }
                record.updated = Some(now);
            })
            .await?;
        if let Some(record) = &updated {
            self.tell(owner, record, EndpointChange::Updated, "signing secret rotated").await;
        }
        Ok(updated.map(|record| (record, secret)))
    }

    /// Refuses a transformation that does not compile or declares no `handler` (run
    /// within the transformations' limits), and one on an operational endpoint, whose
    /// events are stile's own.
    async fn check_transformation(&self, owner: Owner, save: &TransformationSave) -> Result<(), ServiceError> {
        let invalid = |message: String| ServiceError::Invalid { param: "transformation", message };
        if operational::is_operational(owner.app) {
            return Err(invalid(
                "Operational endpoints take no transformation: they receive stile's own events as they are.".into(),
            ));
        }
        self.engine
            .transformer()
            .check(&save.code)
            .await
            .map_err(|err| invalid(format!("The transformation's `code` cannot be used: {err}.")))
    }

    /// Endpoint `id` of `owner`; `None`: no such endpoint.
    pub async fn get(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, ServiceError> {
        Ok(self.store.endpoint(owner, id).await?)
    }

    /// A page of `owner`'s endpoints, newest first, those `filter` keeps.
    pub async fn list(
        &self,
        owner: Owner,
        request: PageRequest<EndpointId>,
        filter: EndpointFilter,
    ) -> Result<Page<EndpointRecord>, ServiceError> {
        Ok(self.store.list_endpoints(owner, request, filter).await?)
    }

    /// Deletes an endpoint of `owner`; its pending deliveries end (and a `stile listen`
    /// connection to it closes). `false`: no such endpoint.
    pub async fn delete(&self, owner: Owner, id: EndpointId) -> Result<bool, ServiceError> {
        let Some(endpoint) = self.store.endpoint(owner, id).await? else { return Ok(false) };
        let deleted = self.engine.delete_endpoint(owner, id).await?;
        if deleted {
            self.tell(owner, &endpoint, EndpointChange::Deleted, "deleted through the API").await;
        }
        Ok(deleted)
    }

    /// Every endpoint of `owner`, newest first (see [`all_of`]).
    pub async fn all(&self, owner: Owner) -> Result<Vec<EndpointRecord>, ServiceError> {
        all_of(self.store, owner).await
    }

    /// What holds `endpoint`'s deliveries back now (a pause, its rate, its in-flight
    /// cap), as the process sending to it sees it; `None`: nothing waits and nothing is
    /// in flight or paused.
    pub async fn flow(&self, endpoint: &EndpointRecord) -> Result<Option<FlowState>, ServiceError> {
        Ok(self.engine.flow_state(endpoint.id).await?)
    }

    /// The secret that signs `endpoint`'s deliveries now, in clear, for its owner.
    pub fn current_secret(&self, endpoint: &EndpointRecord) -> Result<String, ServiceError> {
        Ok(endpoint.current_secret(self.store.sealer()).map_err(crate::store::StoreError::from)?)
    }

    /// Sends one signed event to an endpoint of `owner` now: a `webhook_endpoint.test`
    /// ping describing the endpoint, or an example. Records the event with its one attempt
    /// and returns the attempt (no retries follow). `None`: no such endpoint.
    pub async fn ping(
        &self,
        owner: Owner,
        id: EndpointId,
        payload: PingPayload,
    ) -> Result<Option<AttemptRecord>, ServiceError> {
        let found = self.store.endpoint(owner, id).await?;
        let Some(endpoint) = found else { return Ok(None) };
        let (event_type, data) = match payload {
            PingPayload::Example(name, data) => (name, data),
            PingPayload::Test => (ENDPOINT_TEST.to_string(), endpoint_object(&endpoint)),
        };
        let now_ms = self.engine.clock().now_ms();
        let now = (now_ms / 1000) as i64;
        let event = crate::payload::new_event(owner, &event_type, &data, now_ms)?;
        let meta = event.meta.clone();
        let attempt_id = DeliveryId::new();
        let out = Outgoing {
            delivery_id: attempt_id.to_string(),
            event_id: meta.id.to_string(),
            event_type: meta.event_type.clone(),
            attempt: 1,
            body: event.body.clone().into(),
            now,
            trace: meta.trace.as_ref().map(EventTrace::attempt),
        };
        let (outcome, headers) = self.engine.ping(endpoint.clone(), out).await?;
        let attempt = AttemptRecord {
            id: attempt_id,
            app: owner.app,
            mode: owner.mode,
            endpoint_id: endpoint.id,
            event_id: meta.id,
            event_type: meta.event_type,
            attempt: 1,
            status: if outcome.succeeded() { AttemptStatus::Succeeded } else { AttemptStatus::Failed },
            response_status: outcome.status,
            response_body: outcome.body_excerpt.clone(),
            error: outcome.error.clone(),
            duration_ms: Some(outcome.duration_ms),
            created: now,
            next_retry_at: None,
            due_ms: 0,
            request_headers: headers,
            sent: outcome.sent.clone(),
        };
        // The event and its attempt are stored together once the ping is over, so a crash
        // mid-ping leaves neither.
        let stored = attempt.clone();
        self.store.record_test_ping(event, stored).await?;
        self.metrics.events.inc();
        let outcome = if outcome.succeeded() { "succeeded" } else { "failed" };
        self.metrics.attempts.get_or_create(&crate::metrics::Outcome { outcome }).inc();
        Ok(Some(attempt))
    }

    /// The listener endpoint of the API key with hash `key_hash` in `owner`'s
    /// application, made now if it has none (enabled, signed with a new secret, named by
    /// the key's hash), brought up to date with `request` otherwise. Returns it, whether
    /// it was made now, and its current secret in clear (for the CLI to print).
    pub async fn listener(
        &self,
        owner: Owner,
        key_hash: [u8; 32],
        request: ListenRequest,
    ) -> Result<(EndpointRecord, bool, String), ServiceError> {
        let now = request.now;
        let id = EndpointId::new();
        let secret = SigningSecret::new(self.store.sealer(), (owner.app, id), &new_endpoint_secret(), None);
        let (forward_to, events) = (request.forward_to.clone(), request.events.clone());
        let (endpoint, made) = self
            .store
            .listener_endpoint(owner, key_hash, request, move || EndpointRecord {
                name: Some(listener_name(&key_hash)),
                description: Some(listener_description(&key_hash)),
                ..new_record(owner, id, forward_to, events, now, secret)
            })
            .await?;
        let secret = self.current_secret(&endpoint)?;
        Ok((endpoint, made, secret))
    }

    /// Records that a `stile listen` connection to listener endpoint `id` of `owner` ended
    /// at `now` (Unix seconds): when the endpoint was last used and, unless a newer
    /// connection of this process `replaced` it, that this process no longer holds it. A
    /// failure is logged, not returned: the endpoint then merely expires a little early,
    /// or other processes hand this one its attempts until the hold runs out, and this one
    /// parks them.
    pub async fn listener_left(&self, owner: Owner, id: EndpointId, now: i64, replaced: bool) {
        if let Err(err) = self.store.touch_listener(owner, id, now).await {
            tracing::warn!(endpoint = %id, error = %err, "cannot record when a listener endpoint was last used");
        }
        if !replaced && let Err(err) = self.store.release_listener(id).await {
            tracing::warn!(endpoint = %id, error = %err, "cannot record that a listener endpoint's CLI left");
        }
    }

    /// Resends to endpoint `id` of `owner` every event whose delivery to it failed for
    /// good among attempts made since `since` (Unix seconds); `dry_run` only counts.
    /// `None`: no such endpoint.
    pub async fn recover(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
    ) -> Result<Option<Recovery>, ServiceError> {
        Ok(self.engine.recover_endpoint(owner, id, since, dry_run).await?)
    }

    /// In production mode, refuses a URL whose host resolves to an address no webhook may
    /// go to (DNS: on the blocking pool).
    async fn check_resolved(&self, url: &str, param: &'static str) -> Result<(), ServiceError> {
        let Ok(parsed) = url::Url::parse(url) else { return Ok(()) };
        let policy = self.targets.clone();
        let checked = tokio::task::spawn_blocking(move || policy.check_resolved(&parsed)).await;
        let checked = checked.map_err(|_| crate::delivery::EngineError::ShuttingDown)?;
        checked.map_err(|message| ServiceError::Invalid { param, message })
    }
}

/// A new, enabled endpoint of `owner` with what every endpoint has; nothing else set.
fn new_record(
    owner: Owner,
    id: EndpointId,
    url: String,
    enabled_events: Vec<String>,
    created: i64,
    secret: SigningSecret,
) -> EndpointRecord {
    EndpointRecord {
        id,
        app: owner.app,
        mode: owner.mode,
        url,
        enabled_events,
        name: None,
        labels: vec![],
        description: None,
        metadata: BTreeMap::new(),
        status: EndpointStatus::Enabled,
        created,
        secrets: vec![secret],
        disabled_reason: None,
        disabled_at: None,
        undelivered_retention_hours: None,
        updated: None,
        listener: None,
        all_kayle_types: false,
        rate_limit: None,
        max_in_flight: None,
        headers: BTreeMap::new(),
        authentication: None,
        client_certificate: None,
        filter: None,
        transformation: None,
        failing: None,
    }
}
