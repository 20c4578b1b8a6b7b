//! The catalogue of event types: Stile's built-in ones plus those declared in config.

use std::collections::BTreeSet;

/// The event types stile itself emits for verification sessions.
pub const BUILT_IN: [&str; 7] = [
    "verification_session.created",
    "verification_session.processing",
    "verification_session.requires_input",
    "verification_session.verified",
    "verification_session.failed",
    "verification_session.cancelled",
    "verification_session.expired",
];

/// Kayle's names (seed 003) for four built-in types, as (Kayle name, built-in type).
/// They are names to subscribe to, not types of their own: an endpoint subscribed to one
/// receives the built-in type's events with `type` set to the Kayle name, and they cannot
/// be published.
pub const KAYLE_NAMES: [(&str, &str); 4] = [
    ("verification.session.succeeded", "verification_session.verified"),
    ("verification.session.failed", "verification_session.failed"),
    ("verification.session.expired", "verification_session.expired"),
    ("verification.session.cancelled", "verification_session.cancelled"),
];

/// The Kayle name of a built-in type, if it has one.
pub fn kayle_name(event_type: &str) -> Option<&'static str> {
    KAYLE_NAMES.iter().find(|(_, built_in)| *built_in == event_type).map(|(kayle, _)| *kayle)
}

/// The built-in type a Kayle name stands for, if `name` is one.
pub fn kayle_alias_of(name: &str) -> Option<&'static str> {
    KAYLE_NAMES.iter().find(|(kayle, _)| *kayle == name).map(|(_, built_in)| *built_in)
}

/// The type of the ping `POST /v1/webhook_endpoints/:id/test` sends. It goes to one
/// endpoint on request and is never published or subscribed to.
pub const ENDPOINT_TEST: &str = "webhook_endpoint.test";

/// In `enabled_events`, subscribes to every type.
pub const WILDCARD: &str = "*";

/// The longest event type name accepted.
const MAX_TYPE_LEN: usize = 100;

/// Checks the spelling of a custom event type: dot-separated lower-case words, at least
/// two of them (`invoice.paid`), not clashing with a built-in name.
pub fn check_custom_type(name: &str) -> Result<(), String> {
    let well_formed = name.len() <= MAX_TYPE_LEN
        && name.split('.').count() >= 2
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
    if !well_formed {
        return Err(format!(
            "`{name}` is not a valid event type: use dot-separated lower-case words like `invoice.paid` (at most {MAX_TYPE_LEN} characters)"
        ));
    }
    if BUILT_IN.contains(&name)
        || name == ENDPOINT_TEST
        || name.starts_with("verification_session.")
        || name.starts_with("verification.session.")
    {
        return Err(format!("`{name}` is reserved for stile's built-in events"));
    }
    Ok(())
}

/// The event types this server accepts, fixed at start-up.
#[derive(Debug, Clone)]
pub struct EventTypes {
    known: BTreeSet<String>,
}

impl EventTypes {
    /// The built-in types, their Kayle names, and the configured custom types.
    pub fn new(custom: &[String]) -> Self {
        let known = BUILT_IN
            .iter()
            .chain(KAYLE_NAMES.iter().map(|(kayle, _)| kayle))
            .map(|t| t.to_string())
            .chain(custom.iter().cloned())
            .collect();
        Self { known }
    }

    /// Whether endpoints may subscribe to this type.
    pub fn is_known(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    /// Whether events of this type may be published: a known type that is not a Kayle
    /// name.
    pub fn is_publishable(&self, name: &str) -> bool {
        self.is_known(name) && kayle_alias_of(name).is_none()
    }

    /// Every known type, sorted, for error messages and the dashboard.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.known.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_must_be_dotted_lower_case_and_not_reserved() {
        assert!(check_custom_type("invoice.paid").is_ok());
        assert!(check_custom_type("order.line_item.created").is_ok());
        assert!(check_custom_type("invoice").is_err());
        assert!(check_custom_type("Invoice.Paid").is_err());
        assert!(check_custom_type("invoice..paid").is_err());
        assert!(check_custom_type("verification_session.verified").is_err());
        assert!(check_custom_type("verification_session.other").is_err());
        assert!(check_custom_type(ENDPOINT_TEST).is_err());
        assert!(check_custom_type(&format!("a.{}", "b".repeat(MAX_TYPE_LEN))).is_err());
    }

    #[test]
    fn catalogue_knows_built_in_and_custom_types_only() {
        let types = EventTypes::new(&["invoice.paid".to_string()]);
        assert!(types.is_known("verification_session.verified"));
        assert!(types.is_known("invoice.paid"));
        assert!(!types.is_known("invoice.unpaid"));
        assert!(!types.is_known(WILDCARD));
        assert!(
            types.is_known("verification.session.succeeded") && !types.is_publishable("verification.session.succeeded")
        );
        assert!(types.is_publishable("verification_session.verified") && types.is_publishable("invoice.paid"));
        assert_eq!(types.all().count(), BUILT_IN.len() + KAYLE_NAMES.len() + 1);
    }

    #[test]
    fn every_kayle_name_stands_for_a_built_in_type_and_back() {
        for (kayle, built_in) in KAYLE_NAMES {
            assert!(BUILT_IN.contains(&built_in));
            assert_eq!(kayle_name(built_in), Some(kayle));
            assert_eq!(kayle_alias_of(kayle), Some(built_in));
            assert!(check_custom_type(kayle).is_err(), "reserved");
        }
        assert_eq!(kayle_name("verification_session.created"), None);
        assert_eq!(kayle_alias_of("verification_session.verified"), None);
    }
}
