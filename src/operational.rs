//! Operational webhooks: what stile tells the platform about its customers' endpoints
//! (created, updated, deleted, disabled, enabled; a delivery failed for good, a run of
//! failures, a recovery), delivered to the platform's own operational endpoints.
//!
//! Operational endpoints are endpoints of an application of their own, one per mode,
//! which no key, list or portal ever names: [`owner`] gives it, a fixed id with no time in
//! it, so it can never be a real application's. Stile's engine delivers to them as to any
//! endpoint (signed, retried, recorded, within the flow limits). Nothing is ever sent
//! about an operational endpoint itself ([`is_operational`]).

use serde_json::{Value, json};

use crate::ids::AppId;
use crate::mode::Mode;
use crate::store::model::{AppRecord, EndpointRecord, EndpointStatus, Owner, Told};

/// The operational event types, with what each means.
pub const TYPES: [(&str, &str); 8] = [
    ("endpoint.created", "A webhook endpoint was created."),
    ("endpoint.updated", "A webhook endpoint's settings were changed."),
    ("endpoint.deleted", "A webhook endpoint was deleted."),
    ("endpoint.disabled", "A webhook endpoint was disabled: through the API, or by stile after failing deliveries."),
    ("endpoint.enabled", "A disabled webhook endpoint was enabled again."),
    ("message.attempt.exhausted", "A delivery failed for good: its last retry failed."),
    ("message.attempt.failing", "An endpoint's run of failed attempts reached the failing threshold."),
    ("message.attempt.recovered", "An endpoint that was failing answered a delivery with success."),
];

/// Whether `name` is an operational event type.
pub fn is_type(name: &str) -> bool {
    TYPES.iter().any(|(known, _)| *known == name)
}

/// The application of `mode` that holds the operational endpoints and their events
/// (`store::model::apps::operational_app`: a fixed id no application made by stile can
/// have).
pub fn owner(mode: Mode) -> Owner {
    Owner { app: crate::store::model::apps::operational_app(mode), mode }
}

/// Whether `app` is an operational application (nothing is sent about its endpoints).
pub fn is_operational(app: AppId) -> bool {
    [Mode::Test, Mode::Live].into_iter().any(|mode| owner(mode).app == app)
}

/// What happened to an endpoint, as an operational event says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointChange {
    /// It was created.
    Created,
    /// Its settings changed.
    Updated,
    /// It was deleted.
    Deleted,
    /// It was disabled.
    Disabled,
    /// It was enabled again.
    Enabled,
}

impl EndpointChange {
    /// The event type that reports it.
    pub fn event_type(self) -> &'static str {
        match self {
            EndpointChange::Created => "endpoint.created",
            EndpointChange::Updated => "endpoint.updated",
            EndpointChange::Deleted => "endpoint.deleted",
            EndpointChange::Disabled => "endpoint.disabled",
            EndpointChange::Enabled => "endpoint.enabled",
        }
    }

    /// The changes an update made to `before`, giving `after`: enabled or disabled when
    /// its status changed, and updated when anything else did.
    pub fn of_update(before: &EndpointRecord, after: &EndpointRecord) -> Vec<EndpointChange> {
        let mut changes = Vec::new();
        match (before.status, after.status) {
            (EndpointStatus::Enabled, EndpointStatus::Disabled) => changes.push(EndpointChange::Disabled),
            (EndpointStatus::Disabled, EndpointStatus::Enabled) => changes.push(EndpointChange::Enabled),
            _ => {}
        }
        let mut rest = before.clone();
        rest.status = after.status;
        rest.disabled_at = after.disabled_at;
        rest.disabled_reason = after.disabled_reason.clone();
        rest.updated = after.updated;
        // Read back with its health; the record changed was read without.
        rest.failing = after.failing;
        if rest != *after {
            changes.push(EndpointChange::Updated);
        }
        changes
    }
}

/// The data of an operational event about `endpoint` of `app`: the endpoint's id as
/// `data.id` (what the event is about, which the events' index finds it by), the
/// application (id and uid), the endpoint (id, URL, status, name) and why.
pub fn endpoint_data(app: &AppRecord, endpoint: &EndpointRecord, reason: &str) -> Value {
    json!({
        "id": endpoint.id.to_string(),
        "application": {"id": app.id.to_string(), "uid": app.uid},
        "endpoint": {
            "id": endpoint.id.to_string(),
            "url": endpoint.url,
            "name": endpoint.name,
            "status": endpoint.status,
            "disabled_reason": endpoint.disabled_reason,
        },
        "reason": reason,
    })
}

/// The type and data of the operational event that tells of `told`, about an endpoint of
/// `app`.
pub fn told(told: &Told, app: &AppRecord) -> (&'static str, Value) {
    let (event_type, endpoint, attempt, reason) = match told {
        Told::Disabled { endpoint, attempt } => {
            let reason = endpoint.disabled_reason.clone().unwrap_or_else(|| "its deliveries failed".into());
            ("endpoint.disabled", endpoint, attempt, reason)
        }
        Told::Exhausted { endpoint, attempt } => {
            let reason = format!("attempt {} was the last, and it failed", attempt.attempt);
            ("message.attempt.exhausted", endpoint, attempt, reason)
        }
        Told::Failing { endpoint, attempt, failures } => {
            ("message.attempt.failing", endpoint, attempt, format!("{failures} attempts in a row failed"))
        }
        Told::Recovered { endpoint, attempt, failures } => {
            let reason = format!("an attempt succeeded after {failures} in a row failed");
            ("message.attempt.recovered", endpoint, attempt, reason)
        }
    };
    let mut data = endpoint_data(app, endpoint, &reason);
    data["event"] = json!({"id": attempt.event_id.to_string(), "type": attempt.event_type});
    data["attempt"] = json!({
        "id": attempt.id.to_string(),
        "number": attempt.attempt,
        "status": attempt.status,
        "response_status": attempt.response_status,
        "error": attempt.error,
        "created": attempt.created,
    });
    if let Told::Failing { failures, .. } | Told::Recovered { failures, .. } = told {
        data["failures"] = json!(failures);
    }
    (event_type, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operational_applications_are_fixed_distinct_and_never_a_real_ones() {
        assert_ne!(owner(Mode::Test).app, owner(Mode::Live).app);
        assert!(is_operational(owner(Mode::Live).app));
        assert!(!is_operational(AppId::new()));
        assert!(!is_operational(AppRecord::default_of(Mode::Test, 0).id));
        // A valid version 7 UUID of time zero.
        let uuid = uuid::Uuid::from_u128(owner(Mode::Test).app.as_u128());
        assert_eq!((uuid.get_version_num(), uuid.get_variant()), (7, uuid::Variant::RFC4122));
        assert_eq!(owner(Mode::Live).app.as_u128() >> 80, 0, "time zero");
    }

    #[test]
    fn an_update_that_changes_nothing_but_the_health_shown_reports_nothing() {
        let owner = Owner { app: AppId::new(), mode: Mode::Test };
        let before = EndpointRecord::for_test(owner, "https://example.com/hook", "*");
        let mut after = before.clone();
        after.failing = Some(crate::store::model::endpoints::Failing { since: 5, attempts: 7 });
        after.updated = Some(9);
        assert_eq!(EndpointChange::of_update(&before, &after), []);
    }

    #[test]
    fn an_update_reports_its_status_change_and_any_other_change() {
        let owner = Owner { app: AppId::new(), mode: Mode::Test };
        let before = EndpointRecord::for_test(owner, "https://example.com/hook", "*");
        let mut disabled = before.clone();
        disabled.status = EndpointStatus::Disabled;
        disabled.disabled_at = Some(5);
        disabled.updated = Some(5);
        assert_eq!(EndpointChange::of_update(&before, &disabled), [EndpointChange::Disabled]);
        assert_eq!(EndpointChange::of_update(&disabled, &before), [EndpointChange::Enabled]);
        let mut renamed = disabled.clone();
        renamed.url = "https://example.com/other".into();
        renamed.status = EndpointStatus::Enabled;
        assert_eq!(EndpointChange::of_update(&disabled, &renamed), [EndpointChange::Enabled, EndpointChange::Updated]);
        assert_eq!(EndpointChange::of_update(&before, &before), []);
        assert!(TYPES.iter().all(|(name, _)| is_type(name)) && !is_type("invoice.paid"));
    }
}
