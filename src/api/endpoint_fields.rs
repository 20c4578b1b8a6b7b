//! The checks of an endpoint's fields that every dialect shares (the Stile API, the Kayle
//! API, the app-scoped API and `stile listen`): URLs (all but DNS, which the service
//! checks), the event types an endpoint may subscribe to, names, labels, the
//! undelivered-payload window, the flow limits, and ids in either form. Request shapes only: each turns
//! a field into checked input or the `ApiError` naming it; none owns a dialect's shape.

use std::collections::BTreeMap;

use actix_web::web;
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::event_types::{EventTypes, WILDCARD};
use crate::ids::EndpointId;
use crate::mode::Mode;
use crate::store::model::receiver_auth::ClientCredentials;
use crate::store::model::{ClientCertificateIn, EndpointFilter, FlowLimits, Owner, ReceiverAuthIn};
use crate::target_policy::TargetPolicy;

/// The longest endpoint name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// The most labels an endpoint carries.
pub const MAX_LABELS: usize = 8;

/// The longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// The longest undelivered-payload retention an endpoint may ask for, in hours (30 days).
pub const MAX_UNDELIVERED_RETENTION_HOURS: u32 = 720;

/// Checks an endpoint URL against the target policy (all but DNS).
pub(crate) fn validate_url(policy: &TargetPolicy, url: String) -> Result<String, ApiError> {
    policy.check_url(&url).map_err(|message| ApiError::invalid("url", message))?;
    Ok(url)
}

/// What an endpoint may subscribe to: the catalogue of its mode, less archived types,
/// except those the endpoint already has (an update may keep them).
pub struct Subscribable<'a> {
    types: &'a EventTypes,
    mode: Mode,
    kept: Vec<String>,
    /// For an operational endpoint: the operational types, not the catalogue's.
    operational: bool,
}

impl<'a> Subscribable<'a> {
    /// For a new endpoint of `mode`.
    pub(crate) fn new(types: &'a EventTypes, mode: Mode) -> Self {
        Self { types, mode, kept: Vec::new(), operational: false }
    }

    /// For an operational endpoint of `mode`, new or changed: the operational event types
    /// (`crate::operational::TYPES`).
    pub(crate) fn operational(types: &'a EventTypes, mode: Mode) -> Self {
        Self { operational: true, ..Self::new(types, mode) }
    }

    /// For an update of endpoint `id` of `owner` that lists `events`: if it lists an
    /// archived type, the endpoint's current subscriptions are read so it may keep them.
    pub(crate) async fn for_update(
        state: &'a web::Data<AppState>,
        owner: Owner,
        id: EndpointId,
        events: Option<&Vec<String>>,
    ) -> Result<Self, ApiError> {
        let types: &'a EventTypes = &state.event_types;
        let mut rules = Self::new(types, owner.mode);
        if events.is_some_and(|events| events.iter().any(|e| types.is_archived(owner.mode, e))) {
            let found = state.endpoints().get(owner, id).await?;
            rules.kept = found.map(|record| record.enabled_events).unwrap_or_default();
        }
        Ok(rules)
    }

    /// Why `name` may not be subscribed to, if it may not.
    fn problem(&self, name: &str) -> Option<String> {
        if name == WILDCARD {
            return None;
        }
        if self.operational {
            let known: Vec<&str> = crate::operational::TYPES.iter().map(|(name, _)| *name).collect();
            return (!crate::operational::is_type(name)).then(|| {
                format!("Unknown operational event type `{name}`. Known types: {}, or \"*\" for all.", known.join(", "))
            });
        }
        if !self.types.is_known(self.mode, name) {
            return Some(format!(
                "Unknown event type `{name}`. Known types: {}, or \"*\" for all.",
                self.types.subscribable(self.mode).join(", ")
            ));
        }
        if self.types.is_archived(self.mode, name) && !self.kept.iter().any(|kept| kept == name) {
            return Some(format!(
                "The event type `{name}` is archived: endpoints subscribed to it keep it, but none can subscribe to it anew."
            ));
        }
        None
    }
}

/// Checks a list of event types to subscribe to, given as the parameter `param`: at least
/// one, each subscribable or `*`; duplicates are dropped.
pub(crate) fn validate_event_types(
    rules: &Subscribable<'_>,
    param: &str,
    events: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must name at least one event type, or be [\"*\"] for all of them."),
        ));
    }
    each_unique(param, events, |event| rules.problem(event).map_or(Ok(()), Err))
}

/// Checks each item of a list given as `param` with `check` (which says what is wrong with
/// a bad one, reported as `param[index]`) and drops duplicates, keeping the order.
pub(crate) fn each_unique(
    param: &str,
    items: Vec<String>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, ApiError> {
    let mut unique: Vec<String> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        check(&item).map_err(|message| ApiError::invalid(format!("{param}[{index}]"), message))?;
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    Ok(unique)
}

/// Checks an endpoint's display name: 1–120 characters, not only blanks.
pub(crate) fn validate_name(name: String) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(ApiError::invalid(
            "name",
            format!("`name` must be 1 to {MAX_NAME_CHARS} characters, not only spaces (got {chars})."),
        ));
    }
    Ok(name)
}

/// Checks an endpoint's labels: at most 8, each 1–64 characters of letters, digits and
/// `. _ : / -` (so `team:payments` or `env/prod` work); duplicates are dropped.
pub(crate) fn validate_labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid(
            "labels",
            format!("An endpoint carries at most {MAX_LABELS} labels (got {}).", labels.len()),
        ));
    }
    each_unique("labels", labels, |label| {
        is_label(label).then_some(()).ok_or_else(|| {
            format!(
                "`{label}` is not a valid label: use 1 to {MAX_LABEL_CHARS} letters, digits or `. _ : / -`, like `billing` or `team:payments`."
            )
        })
    })
}

/// Whether `label` follows the label rules (also used to check the `label` list filter).
pub(crate) fn is_label(label: &str) -> bool {
    (1..=MAX_LABEL_CHARS).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// Checks `undelivered_payload_retention_hours`: a whole number from 0 to 720.
pub(crate) fn validate_retention_hours(hours: serde_json::Number) -> Result<u32, ApiError> {
    const PARAM: &str = "undelivered_payload_retention_hours";
    hours.as_u64().and_then(|h| u32::try_from(h).ok()).filter(|h| *h <= MAX_UNDELIVERED_RETENTION_HOURS).ok_or_else(|| {
        ApiError::invalid(
            PARAM,
            format!("`{PARAM}` must be a whole number of hours from 0 to {MAX_UNDELIVERED_RETENTION_HOURS}, not {hours}."),
        )
    })
}

/// Checks `rate_limit` (deliveries a second, 1 to [`FlowLimits::MAX_RATE`]) or
/// `max_in_flight` (1 to [`FlowLimits::MAX_IN_FLIGHT`]): a whole number in range.
pub(crate) fn validate_flow_limit(param: &'static str, value: serde_json::Number) -> Result<u32, ApiError> {
    let max = if param == "rate_limit" { FlowLimits::MAX_RATE } else { FlowLimits::MAX_IN_FLIGHT };
    value.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| (1..=max).contains(n)).ok_or_else(|| {
        ApiError::invalid(param, format!("`{param}` must be a whole number from 1 to {max}, not {value}."))
    })
}

/// Checks the flow limits of a create request (absent or `null`: none set).
pub(crate) fn validate_flow_limits(
    rate_limit: Option<serde_json::Number>,
    max_in_flight: Option<serde_json::Number>,
) -> Result<FlowLimits, ApiError> {
    Ok(FlowLimits {
        rate_limit: rate_limit.map(|n| validate_flow_limit("rate_limit", n)).transpose()?,
        max_in_flight: max_in_flight.map(|n| validate_flow_limit("max_in_flight", n)).transpose()?,
    })
}

/// Checks a flow limit of an update request: absent is no change, `null` removes it.
pub(crate) fn validate_flow_change(
    param: &'static str,
    value: Option<Option<serde_json::Number>>,
) -> Result<Option<Option<u32>>, ApiError> {
    value.map(|v| v.map(|n| validate_flow_limit(param, n)).transpose()).transpose()
}

/// The most headers of its own an endpoint may send.
pub const MAX_HEADERS: usize = crate::delivery::signing::MAX_OWN_HEADERS;

/// Checks an endpoint's own `headers` (name → value): at most [`MAX_HEADERS`], each as
/// [`crate::delivery::signing::header_problem`] allows, none named twice in another case.
/// Names are kept as given (HTTP/1 sends them lower-cased).
pub(crate) fn validate_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    const PARAM: &str = "headers";
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            PARAM,
            format!("`headers` may hold at most {MAX_HEADERS} headers, not {}.", headers.len()),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in &headers {
        if let Some(problem) = crate::delivery::signing::header_problem(name, value) {
            let problem = match crate::delivery::signing::is_reserved_header(name) {
                true => format!(
                    "The header `{name}` is set by stile (or by the connection) and cannot be set in `headers`."
                ),
                false => problem,
            };
            return Err(ApiError::invalid(PARAM, problem));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(ApiError::invalid(
                PARAM,
                format!("The header `{name}` is named twice in `headers` (names ignore case)."),
            ));
        }
    }
    Ok(headers)
}

/// An endpoint's `authentication` as a request gives it: how stile authenticates to the
/// receiver. Its secrets are write-only.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthenticationIn {
    /// HTTP Basic: `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user id: 1–256 characters, no `:`.
        username: String,
        /// The password: 1–1024 characters (write-only).
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token: 1–4096 printable characters without spaces (write-only).
        token: String,
    },
    /// `Authorization: Bearer <token>`, the token fetched from `token_url` by the OAuth2
    /// client-credentials grant (RFC 6749 §4.4) and kept until shortly before it expires.
    Oauth2ClientCredentials {
        /// Where tokens are asked for: a URL the endpoint's own rules allow.
        token_url: String,
        /// The client's id: 1–256 characters.
        client_id: String,
        /// The client's secret: 1–1024 characters (write-only).
        client_secret: String,
        /// The scope to ask for, at most 1024 characters.
        scope: Option<String>,
        /// The audience to ask for, at most 1024 characters.
        audience: Option<String>,
    },
}

/// Checks an `authentication`: the user id, password or token within their limits, none
/// with control characters (a header value cannot carry them).
pub(crate) fn validate_authentication(
    policy: &TargetPolicy,
    auth: AuthenticationIn,
) -> Result<ReceiverAuthIn, ApiError> {
    const PARAM: &str = "authentication";
    let controls = |text: &str| text.chars().any(char::is_control);
    let within = |text: &str, max: usize| (1..=max).contains(&text.chars().count());
    let optional = |name: &str, text: Option<String>| match text {
        Some(t) if !within(&t, 1024) || controls(&t) => Err(ApiError::invalid(
            PARAM,
            format!("`authentication.{name}` must be 1 to 1024 characters, without control characters."),
        )),
        other => Ok(other),
    };
    match auth {
        AuthenticationIn::Basic { username, password } => {
            if !within(&username, 256) || username.contains(':') || controls(&username) {
                return Err(ApiError::invalid(
                    PARAM,
                    "`authentication.username` must be 1 to 256 characters, without `:` or control characters.",
                ));
            }
            if !within(&password, 1024) || controls(&password) {
                return Err(ApiError::invalid(
                    PARAM,
                    "`authentication.password` must be 1 to 1024 characters, without control characters.",
                ));
            }
            Ok(ReceiverAuthIn::Basic { username, password })
        }
        AuthenticationIn::Bearer { token } => {
            if token.len() > 4096 || token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApiError::invalid(
                    PARAM,
                    "`authentication.token` must be 1 to 4096 printable ASCII characters, without spaces.",
                ));
            }
            Ok(ReceiverAuthIn::Bearer { token })
        }
        AuthenticationIn::Oauth2ClientCredentials { token_url, client_id, client_secret, scope, audience } => {
            policy
                .check_url(&token_url)
                .map_err(|message| ApiError::invalid(PARAM, format!("`authentication.token_url`: {message}")))?;
            if !within(&client_id, 256) || controls(&client_id) {
                return Err(ApiError::invalid(
                    PARAM,
                    "`authentication.client_id` must be 1 to 256 characters, without control characters.",
                ));
            }
            if !within(&client_secret, 1024) || controls(&client_secret) {
                return Err(ApiError::invalid(
                    PARAM,
                    "`authentication.client_secret` must be 1 to 1024 characters, without control characters.",
                ));
            }
            Ok(ReceiverAuthIn::Oauth2ClientCredentials(ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope: optional("scope", scope)?,
                audience: optional("audience", audience)?,
            }))
        }
    }
}

/// An endpoint's `client_certificate` as a request gives it: the client certificate
/// (mutual TLS) presented to its receiver. The key is write-only.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateBody {
    /// The PEM certificate chain, the client's own certificate first.
    pub certificate: String,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate (write-only).
    pub key: String,
}

/// The most bytes of a client certificate's PEM chain, or of its key.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Checks a `client_certificate`: PEM, within [`MAX_PEM_BYTES`], and the key the
/// certificate's.
pub(crate) fn validate_client_certificate(body: ClientCertificateBody) -> Result<ClientCertificateIn, ApiError> {
    const PARAM: &str = "client_certificate";
    if body.certificate.len() > MAX_PEM_BYTES || body.key.len() > MAX_PEM_BYTES {
        return Err(ApiError::invalid(
            PARAM,
            format!("The certificate and the key may be at most {MAX_PEM_BYTES} bytes each."),
        ));
    }
    let identity = crate::tls::ClientIdentity::from_pem(&body.certificate, &body.key)
        .map_err(|why| ApiError::invalid(PARAM, format!("`client_certificate`: {why}.")))?;
    Ok(ClientCertificateIn { certificate: body.certificate, key: body.key, fingerprint: identity.fingerprint() })
}

/// Parses an endpoint id from a path: its `we_` form, or the UUID of the same 128 bits
/// (the app-scoped webhooks API's form), so either dialect takes either.
pub(crate) fn parse_id(raw: &str) -> Result<EndpointId, ApiError> {
    super::path_id(raw, "webhook endpoint").or_else(|err| {
        let uuid = uuid::Uuid::try_parse(raw).map_err(|_| err)?;
        Ok(EndpointId(uuid.as_u128()))
    })
}

/// The list filter a `label` parameter asks for (400 if it could never match).
pub(crate) fn label_filter(label: Option<String>) -> Result<EndpointFilter, ApiError> {
    if let Some(bad) = label.as_deref().filter(|l| !is_label(l)) {
        return Err(ApiError::invalid(
            "label",
            format!("`{bad}` is not a valid label: use 1 to {MAX_LABEL_CHARS} letters, digits or `. _ : / -`."),
        ));
    }
    Ok(EndpointFilter { label })
}

/// The endpoint `raw` names in `owner`'s application, or the 404 that says so.
pub(crate) async fn require_endpoint(
    state: &web::Data<AppState>,
    owner: Owner,
    raw: &str,
) -> Result<crate::store::model::EndpointRecord, ApiError> {
    let id = parse_id(raw)?;
    let found = state.endpoints().get(owner, id).await?;
    found.ok_or_else(|| ApiError::not_found("webhook endpoint", raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_a_whole_number_of_hours_up_to_720() {
        let n = |v: serde_json::Value| serde_json::from_value::<serde_json::Number>(v).unwrap();
        assert_eq!(validate_retention_hours(n(serde_json::json!(0))).unwrap(), 0);
        assert_eq!(validate_retention_hours(n(serde_json::json!(720))).unwrap(), 720);
        for bad in [serde_json::json!(721), serde_json::json!(10000), serde_json::json!(-1), serde_json::json!(1.5)] {
            assert!(validate_retention_hours(n(bad.clone())).is_err(), "{bad}");
        }
    }
}
