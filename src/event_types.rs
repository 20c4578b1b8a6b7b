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
    if BUILT_IN.contains(&name) || name == ENDPOINT_TEST || name.starts_with("verification_session.") {
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
    /// The built-in types plus the configured custom ones.
    pub fn new(custom: &[String]) -> Self {
        let known = BUILT_IN.iter().map(|t| t.to_string()).chain(custom.iter().cloned()).collect();
        Self { known }
    }

    /// Whether events of this type may be published and subscribed to.
    pub fn is_known(&self, name: &str) -> bool {
        self.known.contains(name)
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
        assert_eq!(types.all().count(), BUILT_IN.len() + 1);
    }
}
