//! `/v1/webhook_endpoints`: create, retrieve, update, delete and list endpoints.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};

use super::endpoint_fields::{
    AuthenticationIn, ClientCertificateBody, Subscribable, label_filter, parse_id, validate_authentication,
    validate_client_certificate, validate_event_types, validate_flow_change, validate_flow_limits, validate_headers,
    validate_labels, validate_name, validate_retention_hours, validate_url,
};
use super::extract::{JsonBody, QueryParams, nullable};
use super::list::{ListResponse, PageParams};
use super::metadata::validate_metadata;
use super::transformations::{TransformationIn, saved_by};
use super::{AppState, Caller, Routes};
use crate::content_filter::ContentFilter;
use crate::error::ApiError;
use crate::ids::EndpointId;
use crate::service::endpoints::{EndpointChanges, NewEndpoint};
use crate::store::model::{
    ClientCertificate, ClientCertificateShown, EndpointRecord, EndpointStatus, Owner, ReceiverAuth, ReceiverAuthShown,
    Transformation, TransformationShown,
};
use crate::target_policy::TargetPolicy;

/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

/// `limit` when a list request gives none.
const DEFAULT_LIST_LIMIT: usize = 10;

/// The list's path, echoed in list responses.
const LIST_URL: &str = "/v1/webhook_endpoints";

/// Mounts the endpoint routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_endpoints)
        .service(create_endpoint)
        .service(retrieve_endpoint)
        .service(update_endpoint)
        .service(delete_endpoint);
}

/// The OpenAPI tag of the endpoint routes.
pub const TAG: &str = "Webhook endpoints";

/// The body of `POST /v1/webhook_endpoints`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/webhooks", "enabled_events": ["*"],
    "description": "Orders service", "metadata": {"team": "orders"}}))]
pub struct EndpointIn {
    /// Required: where to deliver (`https://`; `http://` also for loopback hosts in
    /// development mode).
    #[schema(required = true, value_type = String, format = "uri")]
    pub url: Option<String>,
    /// Required: event types, or `["*"]` for all.
    #[schema(required = true, value_type = Vec<String>, min_items = 1)]
    pub enabled_events: Option<Vec<String>>,
    /// A display name, 1–120 characters.
    #[schema(min_length = 1, max_length = 120)]
    pub name: Option<String>,
    /// Tag-style purpose labels: at most 8, each 1–64 of `A-Z a-z 0-9 . _ : / -`.
    #[schema(max_items = 8)]
    pub labels: Option<Vec<String>>,
    /// A label, at most 5000 characters.
    pub description: Option<String>,
    /// String pairs (at most 50 keys of 40 characters, values of 500).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Hours the payload of a delivery that failed for good stays available to resend,
    /// 0–720 (default: `retention.undelivered_payload_hours`).
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 720)]
    pub undelivered_payload_retention_hours: Option<serde_json::Number>,
    /// The most deliveries a second it receives, 1–100000 (at most one more in a
    /// one-second window, see the docs); absent or `null`: no limit.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub rate_limit: Option<serde_json::Number>,
    /// The most requests in flight to it at once, 1–1024; absent or `null`: the server's
    /// `delivery.per_endpoint_concurrency`.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1024)]
    pub max_in_flight: Option<serde_json::Number>,
    /// Headers of its own sent with every delivery and test ping: at most 20, values of
    /// printable ASCII up to 4096 bytes; not those stile sets (`content-type`,
    /// `user-agent`, `stile-signature`, `webhook-*`, `host`, `content-length`, and the
    /// connection's own). For credentials use `authentication`.
    #[schema(example = json!({"x-team": "payments"}))]
    pub headers: Option<BTreeMap<String, String>>,
    /// How stile authenticates to the receiver: `{"type": "basic", "username",
    /// "password"}`, `{"type": "bearer", "token"}` or `{"type":
    /// "oauth2_client_credentials", "token_url", "client_id", "client_secret", "scope",
    /// "audience"}`. The secrets are write-only: answers show the rest.
    pub authentication: Option<AuthenticationIn>,
    /// The client certificate its receiver asks for (mutual TLS): `{"certificate": PEM
    /// chain, "key": PEM private key}`. The key is write-only: answers show the
    /// certificate's SHA-256.
    pub client_certificate: Option<ClientCertificateBody>,
    /// Which of the events it subscribes to it receives, by what they hold: a JSON filter
    /// matched against the event object as delivered (Convoy's and Outpost's body filter
    /// syntax; see docs/filters.md). Omitted or null: every event of its types.
    #[schema(value_type = Option<Object>, example = json!({"data": {"amount": {"$gte": 1000}}}))]
    pub filter: Option<serde_json::Value>,
    /// JavaScript its requests go through before they are signed: `{"code": "function
    /// handler(webhook) {...}", "enabled": true}` (see docs/transformations.md).
    pub transformation: Option<TransformationIn>,
}

/// The body of `POST /v1/webhook_endpoints/:id`: every field optional; what is named
/// replaces what was there (`metadata` and `enabled_events` whole), `null` clears
/// `description` and `metadata`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "Orders service (staging)", "status": "disabled"}))]
pub struct EndpointUpdate {
    /// A new URL.
    #[schema(value_type = String, format = "uri")]
    pub url: Option<String>,
    /// A new list of event types.
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub enabled_events: Option<Vec<String>>,
    /// A new name; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 120)]
    pub name: Option<Option<String>>,
    /// New labels, replacing the old; `[]` removes all.
    #[schema(max_items = 8)]
    pub labels: Option<Vec<String>>,
    /// A new label; `null` or `""` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New metadata, replacing the old; `null` removes all.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    /// `enabled` or `disabled`.
    #[schema(value_type = EndpointStatus)]
    pub status: Option<EndpointStatus>,
    /// A new undelivered-payload retention, 0–720 hours.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 720)]
    pub undelivered_payload_retention_hours: Option<serde_json::Number>,
    /// A new rate limit (deliveries a second, 1–100000); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub rate_limit: Option<Option<serde_json::Number>>,
    /// A new in-flight cap (1–1024); `null` returns to the server's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1024)]
    pub max_in_flight: Option<Option<serde_json::Number>>,
    /// New headers of its own, replacing the old; `null` or `{}` removes them all.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub headers: Option<Option<BTreeMap<String, String>>>,
    /// A new authentication, whole (with its secrets); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<AuthenticationIn>)]
    pub authentication: Option<Option<AuthenticationIn>>,
    /// A new client certificate, with its key; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<ClientCertificateBody>)]
    pub client_certificate: Option<Option<ClientCertificateBody>>,
    /// A new content filter, replacing the old; `null` removes it (every event of its
    /// types again).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<serde_json::Value>>,
    /// A new version of its transformation (`code` and `enabled`, whole); `null` removes
    /// it with its versions (to stop it but keep them, send `enabled: false`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<TransformationIn>)]
    pub transformation: Option<Option<TransformationIn>>,
}

impl EndpointIn {
    /// Checks every rule of a create request except DNS (see [`TargetPolicy::check_resolved`])
    /// and what needs the sandbox; `by` makes it (as a transformation's version records it).
    pub fn validate(self, policy: &TargetPolicy, types: &Subscribable<'_>, by: &str) -> Result<NewEndpoint, ApiError> {
        let url = self.url.ok_or_else(|| ApiError::missing("url"))?;
        let enabled_events = self.enabled_events.ok_or_else(|| ApiError::missing("enabled_events"))?;
        Ok(NewEndpoint {
            url: validate_url(policy, url)?,
            enabled_events: validate_event_types(types, "enabled_events", enabled_events)?,
            name: self.name.map(validate_name).transpose()?,
            labels: validate_labels(self.labels.unwrap_or_default())?,
            description: validate_description(self.description)?,
            metadata: {
                let metadata = self.metadata.unwrap_or_default();
                validate_metadata(&metadata)?;
                metadata
            },
            undelivered_retention_hours: self
                .undelivered_payload_retention_hours
                .map(validate_retention_hours)
                .transpose()?,
            flow: validate_flow_limits(self.rate_limit, self.max_in_flight)?,
            headers: validate_headers(self.headers.unwrap_or_default())?,
            authentication: self.authentication.map(|a| validate_authentication(policy, a)).transpose()?,
            client_certificate: self.client_certificate.map(validate_client_certificate).transpose()?,
            filter: self.filter.map(validate_filter).transpose()?,
            transformation: self.transformation.map(|t| t.validate(by.to_string())).transpose()?,
            disabled: false,
            all_kayle_types: false,
        })
    }
}

impl EndpointUpdate {
    /// Checks every rule of an update request except DNS and what needs the sandbox; `by`
    /// makes it.
    pub fn validate(
        self,
        policy: &TargetPolicy,
        types: &Subscribable<'_>,
        by: &str,
    ) -> Result<EndpointChanges, ApiError> {
        Ok(EndpointChanges {
            url: self.url.map(|u| validate_url(policy, u)).transpose()?,
            enabled_events: self
                .enabled_events
                .map(|e| validate_event_types(types, "enabled_events", e))
                .transpose()?,
            name: self.name.map(|n| n.map(validate_name).transpose()).transpose()?,
            labels: self.labels.map(validate_labels).transpose()?,
            undelivered_retention_hours: self
                .undelivered_payload_retention_hours
                .map(validate_retention_hours)
                .transpose()?,
            description: self.description.map(validate_description).transpose()?,
            metadata: match self.metadata {
                None => None,
                Some(metadata) => {
                    let metadata = metadata.unwrap_or_default();
                    validate_metadata(&metadata)?;
                    Some(metadata)
                }
            },
            status: self.status,
            rate_limit: validate_flow_change("rate_limit", self.rate_limit)?,
            max_in_flight: validate_flow_change("max_in_flight", self.max_in_flight)?,
            headers: self.headers.map(|h| validate_headers(h.unwrap_or_default())).transpose()?,
            authentication: self
                .authentication
                .map(|a| a.map(|a| validate_authentication(policy, a)).transpose())
                .transpose()?,
            client_certificate: self
                .client_certificate
                .map(|c| c.map(validate_client_certificate).transpose())
                .transpose()?,
            filter: self.filter.map(|f| f.map(validate_filter).transpose()).transpose()?,
            transformation: self
                .transformation
                .map(|t| t.map(|t| t.validate(by.to_string())).transpose())
                .transpose()?,
            all_kayle_types: None,
        })
    }
}

/// A content filter, checked and compiled: a bad one is a 400 naming the path of what is
/// wrong in it (`filter.data.amount.$gtx`).
fn validate_filter(filter: serde_json::Value) -> Result<ContentFilter, ApiError> {
    ContentFilter::new(filter, "filter").map_err(|e| ApiError::invalid(e.path, format!("`filter`: {}", e.message)))
}

fn validate_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(ApiError::invalid(
            "description",
            format!("`description` must be at most {MAX_DESCRIPTION_CHARS} characters."),
        )),
        Some(d) if d.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A webhook endpoint as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// `we_...`
    pub id: EndpointId,
    /// Always `"webhook_endpoint"`.
    pub object: &'static str,
    /// Where deliveries go (for a listener endpoint, where `stile listen` forwards them).
    pub url: String,
    /// `webhook` (deliveries are POSTed to `url`), or `listener`: the endpoint of a `stile
    /// listen` session, whose deliveries go down its connection and wait while none is
    /// open.
    #[schema(schema_with = kind_schema)]
    pub kind: &'static str,
    /// Subscribed event types.
    pub enabled_events: Vec<String>,
    /// The display name, or null.
    pub name: Option<String>,
    /// Tag-style purpose labels.
    pub labels: Vec<String>,
    /// The label, or null.
    pub description: Option<String>,
    /// String pairs.
    pub metadata: BTreeMap<String, String>,
    /// `enabled` or `disabled`.
    pub status: EndpointStatus,
    /// Why stile disabled it by itself (`410 Gone`, or failing for `delivery.disable_after`),
    /// or null.
    pub disabled_reason: Option<String>,
    /// `healthy`, or `degraded` while its most recent attempts are failing.
    #[schema(schema_with = health_schema)]
    pub health: &'static str,
    /// When the current run of failed attempts began (Unix seconds), or null if healthy.
    pub failing_since: Option<i64>,
    /// Hours the payload of a delivery that failed for good stays available to resend;
    /// null: the server's default (`retention.undelivered_payload_hours`).
    pub undelivered_payload_retention_hours: Option<u32>,
    /// The most deliveries a second it receives, or null for no limit.
    pub rate_limit: Option<u32>,
    /// The most requests in flight to it at once; null: the server's
    /// `delivery.per_endpoint_concurrency`.
    pub max_in_flight: Option<u32>,
    /// Headers of its own sent with every delivery and test ping.
    pub headers: BTreeMap<String, String>,
    /// How stile authenticates to the receiver (its type and username; never a secret),
    /// or null.
    pub authentication: Option<ReceiverAuthShown>,
    /// The client certificate presented to its receiver (its fingerprint; never the key),
    /// or null.
    pub client_certificate: Option<ClientCertificateShown>,
    /// Its content filter as written, or null (every event of its types).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// The version in force of its transformation, or null (its requests go as made).
    pub transformation: Option<TransformationShown>,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// Creation time (Unix seconds).
    pub created: i64,
}

impl From<EndpointRecord> for Endpoint {
    fn from(r: EndpointRecord) -> Self {
        Self {
            id: r.id,
            object: "webhook_endpoint",
            url: r.url,
            kind: if r.listener.is_some() { "listener" } else { "webhook" },
            enabled_events: r.enabled_events,
            name: r.name,
            labels: r.labels,
            description: r.description,
            metadata: r.metadata,
            status: r.status,
            disabled_reason: r.disabled_reason,
            health: if r.failing.is_some() { "degraded" } else { "healthy" },
            failing_since: r.failing.map(|f| f.since),
            undelivered_payload_retention_hours: r.undelivered_retention_hours,
            rate_limit: r.rate_limit,
            max_in_flight: r.max_in_flight,
            headers: r.headers,
            authentication: r.authentication.as_ref().map(ReceiverAuth::shown),
            client_certificate: r.client_certificate.as_ref().map(ClientCertificate::shown),
            filter: r.filter.map(|f| f.source().clone()),
            transformation: r.transformation.as_ref().map(Transformation::shown),
            livemode: r.mode.is_live(),
            created: r.created,
        }
    }
}

/// `kind` in the OpenAPI document.
fn kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["webhook", "listener"]))
        .build()
}

/// `health` in the OpenAPI document.
fn health_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["healthy", "degraded"]))
        .build()
}

/// The create response: the endpoint plus its signing secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The signing secret (`whsec_...`).
    pub secret: String,
}

/// The delete response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointDeleted {
    /// The deleted endpoint's id.
    pub id: EndpointId,
    /// Always `"webhook_endpoint"`.
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}

/// Create an endpoint.
///
/// The answer carries the endpoint's signing secret; no other answer shows it.
#[utoipa::path(tag = TAG, request_body = EndpointIn,
    responses((status = 200, description = "The new endpoint and its signing secret.", body = EndpointCreated)))]
#[post("/webhook_endpoints")]
async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<EndpointIn>,
) -> Result<HttpResponse, ApiError> {
    let by = saved_by(&req, &caller);
    let input = body.0.validate(&state.targets, &Subscribable::new(&state.event_types, caller.mode), &by)?;
    let (record, secret) = state.endpoints().create(caller.owner, input).await?;
    Ok(HttpResponse::Ok().json(EndpointCreated { endpoint: record.into(), secret }))
}

/// Retrieve an endpoint.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint.", body = Endpoint)))]
#[get("/webhook_endpoints/{id}")]
async fn retrieve_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Endpoint::from(require_endpoint(&state, caller.owner, &path).await?)))
}

pub(crate) use super::endpoint_fields::require_endpoint;

/// Update an endpoint.
///
/// Replaces the fields named in the body. Enabling a disabled endpoint releases the
/// retries that waited for it and resets its health.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    request_body = EndpointUpdate,
    responses((status = 200, description = "The updated endpoint.", body = Endpoint)))]
#[post("/webhook_endpoints/{id}")]
async fn update_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<EndpointUpdate>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let rules = Subscribable::for_update(&state, caller.owner, id, body.0.enabled_events.as_ref()).await?;
    let changes = body.0.validate(&state.targets, &rules, &saved_by(&req, &caller))?;
    let updated = state.endpoints().update(caller.owner, id, changes).await?;
    let record = updated.ok_or_else(|| ApiError::not_found("webhook endpoint", &path))?;
    Ok(HttpResponse::Ok().json(Endpoint::from(record)))
}

/// Delete an endpoint and its pending retries.
#[utoipa::path(tag = TAG, params(("id" = EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint is deleted.", body = EndpointDeleted)))]
#[delete("/webhook_endpoints/{id}")]
async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let deleted = state.endpoints().delete(caller.owner, id).await?;
    if !deleted {
        return Err(ApiError::not_found("webhook endpoint", &path));
    }
    Ok(HttpResponse::Ok().json(EndpointDeleted { id, object: "webhook_endpoint", deleted: true }))
}

/// The query of `GET /v1/webhook_endpoints`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many endpoints to return, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An endpoint id: the page starts after it (the next, older page).
    #[param(value_type = Option<EndpointId>)]
    starting_after: Option<String>,
    /// An endpoint id: the page ends before it (the previous, newer page).
    #[param(value_type = Option<EndpointId>)]
    ending_before: Option<String>,
    /// Only endpoints carrying this label.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,64}$")]
    label: Option<String>,
}

/// List endpoints, newest first.
#[utoipa::path(tag = TAG, params(ListQuery),
    responses((status = 200, description = "A page of endpoints.", body = ListResponse<Endpoint>)))]
#[get("/webhook_endpoints")]
async fn list_endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    list_page(&state, caller.owner, query.0, LIST_URL).await
}

/// A page of `owner`'s endpoints as `query` asks, listed at `url`.
pub(crate) async fn list_page(
    state: &web::Data<AppState>,
    owner: Owner,
    query: ListQuery,
    url: &'static str,
) -> Result<HttpResponse, ApiError> {
    let filter = label_filter(query.label.clone())?;
    let endpoints = state.endpoints();
    let page = PageParams::new(&query.limit, &query.starting_after, &query.ending_before)
        .fetch::<EndpointId, _, _>(DEFAULT_LIST_LIMIT, |request| endpoints.list(owner, request, filter))
        .await?;
    let data: Vec<Endpoint> = page.items.into_iter().map(Endpoint::from).collect();
    Ok(HttpResponse::Ok().json(ListResponse::new(url, data, page.has_more)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::error::ErrorCode;
    use crate::event_types::EventTypes;
    use crate::mode::Mode;

    fn fixtures() -> (TargetPolicy, EventTypes) {
        (TargetPolicy::new(&Config::default()), EventTypes::new(&["invoice.paid".into()]))
    }

    fn create(json: serde_json::Value) -> Result<NewEndpoint, ApiError> {
        let (policy, types) = fixtures();
        serde_json::from_value::<EndpointIn>(json).unwrap().validate(
            &policy,
            &Subscribable::new(&types, Mode::Test),
            "vk_test_x",
        )
    }

    #[test]
    fn a_valid_create_request_is_normalised() {
        let ok = create(serde_json::json!({
            "url": "https://example.com/hook",
            "enabled_events": ["invoice.paid", "verification_session.verified", "invoice.paid"],
            "description": "",
        }))
        .unwrap();
        assert_eq!(ok.enabled_events, ["invoice.paid", "verification_session.verified"]);
        assert_eq!(ok.description, None);
    }

    #[test]
    fn each_violation_names_its_param() {
        let cases = [
            (serde_json::json!({"enabled_events": ["*"]}), ErrorCode::ParameterMissing, "url"),
            (serde_json::json!({"url": "https://a.example"}), ErrorCode::ParameterMissing, "enabled_events"),
            (
                serde_json::json!({"url": "http://example.com", "enabled_events": ["*"]}),
                ErrorCode::ParameterInvalid,
                "url",
            ),
            (
                serde_json::json!({"url": "https://a.example", "enabled_events": []}),
                ErrorCode::ParameterInvalid,
                "enabled_events",
            ),
            (
                serde_json::json!({"url": "https://a.example", "enabled_events": ["*", "nope.x"]}),
                ErrorCode::ParameterInvalid,
                "enabled_events[1]",
            ),
            (
                serde_json::json!({"url": "https://a.example", "enabled_events": ["*"], "description": "d".repeat(MAX_DESCRIPTION_CHARS + 1)}),
                ErrorCode::ParameterInvalid,
                "description",
            ),
        ];
        for (json, code, param) in cases {
            let err = create(json.clone()).unwrap_err();
            assert_eq!((err.code, err.param.as_deref()), (code, Some(param)), "{json}");
        }
    }

    #[test]
    fn update_replaces_named_fields_and_null_clears() {
        let (policy, types) = fixtures();
        let mut record = EndpointRecord {
            id: EndpointId::new(),
            app: crate::ids::AppId::new(),
            mode: crate::mode::Mode::Test,
            url: "https://a.example".into(),
            enabled_events: vec!["*".into()],
            name: None,
            labels: vec![],
            description: Some("old".into()),
            metadata: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            status: EndpointStatus::Enabled,
            created: 1,
            secrets: vec![],
            disabled_reason: Some("the endpoint answered 410 Gone".into()),
            disabled_at: Some(1),
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
        };
        let update: EndpointUpdate = serde_json::from_value(
            serde_json::json!({"metadata": {"c": "3"}, "description": null, "status": "disabled"}),
        )
        .unwrap();
        update.validate(&policy, &Subscribable::new(&types, Mode::Test), "vk_test_x").unwrap().apply(&mut record);
        assert_eq!(record.metadata, BTreeMap::from([("c".into(), "3".into())]));
        assert_eq!(record.description, None);
        assert_eq!(record.status, EndpointStatus::Disabled);
        assert_eq!(record.url, "https://a.example");
        assert_eq!(record.enabled_events, ["*"]);
    }
    #[test]
    fn the_api_view_and_the_test_event_object_of_an_endpoint_are_the_same_json() {
        let mut record = EndpointRecord {
            id: EndpointId::new(),
            app: crate::ids::AppId::new(),
            mode: Mode::Live,
            url: "https://a.example".into(),
            enabled_events: vec!["*".into()],
            name: Some("Orders".into()),
            labels: vec!["team:orders".into()],
            description: Some("d".into()),
            metadata: BTreeMap::from([("a".into(), "1".into())]),
            status: EndpointStatus::Disabled,
            created: 1,
            secrets: vec![],
            disabled_reason: Some("the endpoint answered 410 Gone".into()),
            disabled_at: Some(2),
            undelivered_retention_hours: Some(5),
            updated: Some(3),
            listener: None,
            all_kayle_types: false,
            rate_limit: None,
            max_in_flight: None,
            headers: BTreeMap::new(),
            authentication: None,
            client_certificate: None,
            filter: None,
            transformation: None,
            failing: Some(crate::store::model::endpoints::Failing { since: 4, attempts: 2 }),
        };
        let same = |record: &EndpointRecord| {
            let view = serde_json::to_value(Endpoint::from(record.clone())).unwrap();
            assert_eq!(view, crate::service::endpoints::endpoint_object(record));
        };
        same(&record);
        record.listener = Some(crate::store::model::endpoints::ListenerInfo { key_hash: "ab".into(), last_seen: 5 });
        (record.failing, record.name, record.undelivered_retention_hours) = (None, None, None);
        same(&record);
        let save = crate::store::model::TransformationSave {
            code: "function handler(w) { return w; }".into(),
            enabled: true,
            by: "vk_live_ab".into(),
            at: 9,
        };
        record.transformation = Some(Transformation::saved(None, save));
        same(&record);
    }
}
