//! The catalogue of event types: Stile's built-in ones plus those declared in config.

use std::collections::BTreeMap;

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

/// An event type declared in `[[events.types]]`: its name, what it means, and optionally a
/// JSON Schema (draft 2020-12) its `data` must satisfy and an example of it. The schema
/// and the example are JSON, inline or in a file.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventTypeDecl {
    /// The type's name (`invoice.paid`).
    pub name: String,
    /// What it means, for people choosing what to subscribe to.
    pub description: String,
    /// A JSON Schema for `data`, as JSON text.
    pub schema: Option<String>,
    /// A file holding the JSON Schema.
    pub schema_file: Option<std::path::PathBuf>,
    /// An example of `data`, as JSON text.
    pub example: Option<String>,
    /// A file holding the example.
    pub example_file: Option<std::path::PathBuf>,
}

/// One type of the catalogue, as the API shows it.
#[derive(Debug, Clone)]
pub struct EventTypeInfo {
    /// The type's name.
    pub name: String,
    /// What it means.
    pub description: String,
    /// The JSON Schema its `data` must satisfy, if it has one.
    pub schema: Option<serde_json::Value>,
    /// An example of its `data`.
    pub example: Option<serde_json::Value>,
    /// Whether stile emits it (or names it, for Kayle's names).
    pub built_in: bool,
    /// For Kayle's names, the built-in type it stands for.
    pub alias_of: Option<&'static str>,
}

/// A type with its schema compiled.
#[derive(Debug, Clone)]
struct Entry {
    info: EventTypeInfo,
    validator: Option<std::sync::Arc<jsonschema::Validator>>,
}

/// The event types this server accepts, fixed at start-up: the catalogue.
#[derive(Debug, Clone)]
pub struct EventTypes {
    known: BTreeMap<String, Entry>,
}

/// What the built-in types mean.
const BUILT_IN_DESCRIPTIONS: [(&str, &str); 7] = [
    ("verification_session.created", "A verification session was created."),
    ("verification_session.processing", "A verification session's documents are being checked."),
    ("verification_session.requires_input", "A verification session needs more input from the person being verified."),
    ("verification_session.verified", "A verification session succeeded: the person is verified."),
    ("verification_session.failed", "A verification session failed for good."),
    ("verification_session.cancelled", "A verification session was cancelled."),
    ("verification_session.expired", "A verification session expired before it ended."),
];

/// The schema of the built-in types' `data` (the verification session object). It
/// describes rather than demands: nothing is required and other properties are allowed,
/// since `POST /v1/events` may publish built-in types with data of the caller's own.
fn session_schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "The session's id (vks_...)."},
            "object": {"const": "verification_session"},
            "type": {"type": "string", "enum": ["document", "identity"]},
            "status": {"type": "string", "enum": ["requires_input", "processing", "verified", "failed", "cancelled", "expired"]},
            "client_reference_id": {"type": ["string", "null"]},
            "livemode": {"type": "boolean"},
            "created": {"type": "integer"},
            "expires_at": {"type": "integer"},
            "completed_at": {"type": ["integer", "null"]}
        }
    })
}

/// An example of a built-in type's `data`.
fn session_example(status: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "vks_01JD8Y6QK4N2V7X3ZB5C9R1T0M", "object": "verification_session", "type": "document",
        "status": status, "client_reference_id": "user_123", "livemode": false,
        "created": 1796000000, "expires_at": 1796086400, "completed_at": null
    })
}

impl EventTypes {
    /// The built-in types, their Kayle names, and the configured custom types.
    pub fn new(custom: &[String]) -> Self {
        Self::with_declared(custom, &[]).expect("names alone always make a catalogue")
    }

    /// Like [`EventTypes::new`], with the types of `[[events.types]]`: each schema is
    /// compiled now (and each example checked against it), so a schema that cannot be
    /// used stops start-up with a message naming its type.
    pub fn with_declared(custom: &[String], declared: &[EventTypeDecl]) -> Result<Self, String> {
        let mut known = BTreeMap::new();
        let compiled_session = compile("verification_session.*", &session_schema())?;
        for (name, description) in BUILT_IN_DESCRIPTIONS {
            let status = name.rsplit('.').next().unwrap_or_default().replace("created", "requires_input");
            let info = EventTypeInfo {
                name: name.to_string(),
                description: description.to_string(),
                schema: Some(session_schema()),
                example: Some(session_example(&status)),
                built_in: true,
                alias_of: None,
            };
            known.insert(name.to_string(), Entry { info, validator: Some(compiled_session.clone()) });
        }
        for (kayle, built_in) in KAYLE_NAMES {
            let description = format!(
                "Kayle's name (seed 003) for `{built_in}`: subscribe to it to receive that type under this name."
            );
            let info = EventTypeInfo {
                name: kayle.to_string(),
                description,
                schema: None,
                example: None,
                built_in: true,
                alias_of: Some(built_in),
            };
            known.insert(kayle.to_string(), Entry { info, validator: None });
        }
        for name in custom {
            let info = EventTypeInfo {
                name: name.clone(),
                description: String::new(),
                schema: None,
                example: None,
                built_in: false,
                alias_of: None,
            };
            known.insert(name.clone(), Entry { info, validator: None });
        }
        for decl in declared {
            check_custom_type(&decl.name)?;
            let schema = json_of(&decl.name, "schema", decl.schema.as_deref(), decl.schema_file.as_deref())?;
            let example = json_of(&decl.name, "example", decl.example.as_deref(), decl.example_file.as_deref())?;
            let validator = schema.as_ref().map(|schema| compile(&decl.name, schema)).transpose()?;
            if let (Some(validator), Some(example)) = (&validator, &example)
                && let Some(problem) = first_error(validator, example)
            {
                return Err(format!(
                    "the example of event type `{}` does not satisfy its schema: {problem}",
                    decl.name
                ));
            }
            let info = EventTypeInfo {
                name: decl.name.clone(),
                description: decl.description.clone(),
                schema,
                example,
                built_in: false,
                alias_of: None,
            };
            known.insert(decl.name.clone(), Entry { info, validator });
        }
        Ok(Self { known })
    }

    /// Whether endpoints may subscribe to this type.
    pub fn is_known(&self, name: &str) -> bool {
        self.known.contains_key(name)
    }

    /// Whether events of this type may be published: a known type that is not a Kayle
    /// name.
    pub fn is_publishable(&self, name: &str) -> bool {
        self.is_known(name) && kayle_alias_of(name).is_none()
    }

    /// Every known type, sorted, for error messages and the dashboard.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.known.keys().map(String::as_str)
    }

    /// The type `name`, if the catalogue has it.
    pub fn info(&self, name: &str) -> Option<&EventTypeInfo> {
        self.known.get(name).map(|entry| &entry.info)
    }

    /// The catalogue, sorted by name.
    pub fn infos(&self) -> impl Iterator<Item = &EventTypeInfo> {
        self.known.values().map(|entry| &entry.info)
    }

    /// Checks `data` against the type's schema, if it has one; the error names the JSON
    /// pointer of the first value that fails and the rule it breaks.
    pub fn check_data(&self, name: &str, data: &serde_json::Value) -> Result<(), String> {
        let Some(validator) = self.known.get(name).and_then(|entry| entry.validator.as_ref()) else { return Ok(()) };
        match first_error(validator, data) {
            Some(problem) => Err(format!("`data` does not match the schema of `{name}`: {problem}")),
            None => Ok(()),
        }
    }
}

/// Compiles a schema, or says why it cannot be used.
fn compile(name: &str, schema: &serde_json::Value) -> Result<std::sync::Arc<jsonschema::Validator>, String> {
    jsonschema::draft202012::new(schema)
        .map(std::sync::Arc::new)
        .map_err(|err| format!("the schema of event type `{name}` is not a usable JSON Schema: {err}"))
}

/// The first way `value` fails `validator`: where (a JSON pointer, `/` for the whole) and
/// what.
fn first_error(validator: &jsonschema::Validator, value: &serde_json::Value) -> Option<String> {
    validator.iter_errors(value).next().map(|err| {
        let at = err.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        format!("at `{at}`: {err}")
    })
}

/// The JSON given inline or in a file for `field` of a declared type, parsed.
fn json_of(
    name: &str,
    field: &str,
    inline: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<serde_json::Value>, String> {
    let text = match (inline, file) {
        (Some(_), Some(_)) => return Err(format!("event type `{name}`: give `{field}` or `{field}_file`, not both")),
        (Some(text), None) => text.to_string(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("event type `{name}`: cannot read `{field}_file` {}: {e}", path.display()))?,
        (None, None) => return Ok(None),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| format!("event type `{name}`: `{field}` is not JSON: {e}"))
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

    fn declared(name: &str, schema: &str, example: Option<&str>) -> EventTypeDecl {
        EventTypeDecl {
            name: name.into(),
            description: "An invoice was paid.".into(),
            schema: Some(schema.into()),
            example: example.map(Into::into),
            ..EventTypeDecl::default()
        }
    }

    const INVOICE_SCHEMA: &str = r#"{
        "type": "object",
        "required": ["id", "amount"],
        "properties": {
            "id": {"type": "string", "pattern": "^in_"},
            "amount": {"type": "integer", "minimum": 0},
            "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
        }
    }"#;

    #[test]
    fn declared_schemas_check_data_and_name_the_first_failing_value() {
        let types = EventTypes::with_declared(
            &[],
            &[declared("invoice.paid", INVOICE_SCHEMA, Some(r#"{"id": "in_1", "amount": 5}"#))],
        )
        .unwrap();
        let check = |data: serde_json::Value| types.check_data("invoice.paid", &data);
        assert!(check(serde_json::json!({"id": "in_1", "amount": 0})).is_ok());
        assert!(check(serde_json::json!({"id": "in_1", "amount": 9007199254740993_u64, "extra": [null]})).is_ok());
        let err = check(serde_json::json!({"id": "in_1"})).unwrap_err();
        assert!(err.contains("at `/`") && err.contains("amount"), "{err}");
        let err = check(serde_json::json!({"id": "x_1", "amount": 1})).unwrap_err();
        assert!(err.contains("`/id`"), "{err}");
        let err = check(serde_json::json!({"id": "in_1", "amount": -1})).unwrap_err();
        assert!(err.contains("`/amount`"), "{err}");
        let err = check(serde_json::json!({"id": "in_1", "amount": 1, "lines": [{"sku": "a"}, {}]})).unwrap_err();
        assert!(err.contains("`/lines/1`"), "{err}");
        // Types without a schema take any object; the built-in ones describe more than they demand.
        assert!(types.check_data("invoice.other", &serde_json::json!({"x": 1})).is_ok());
        assert!(types.check_data("verification_session.verified", &serde_json::json!({"seq": 1})).is_ok());
        assert!(types.check_data("verification_session.verified", &serde_json::json!({"status": 5})).is_err());
        let info = types.infos().find(|t| t.name == "invoice.paid").unwrap();
        assert_eq!(info.example, Some(serde_json::json!({"id": "in_1", "amount": 5})));
        assert_eq!(info.description, "An invoice was paid.");
        assert!(types.infos().all(|t| t.built_in == (BUILT_IN.contains(&t.name.as_str()) || t.alias_of.is_some())));
        // Every built-in example satisfies the built-in schema.
        for t in types.infos().filter(|t| t.example.is_some() && t.built_in) {
            assert!(types.check_data(&t.name, t.example.as_ref().unwrap()).is_ok(), "{}", t.name);
        }
    }

    #[test]
    fn a_declaration_that_cannot_be_used_is_refused_naming_its_type() {
        let refused = |decl: EventTypeDecl| EventTypes::with_declared(&[], &[decl]).unwrap_err();
        assert!(refused(declared("invoice.paid", r#"{"type": 5}"#, None)).contains("`invoice.paid`"));
        assert!(refused(declared("invoice.paid", r#"{"type": "object""#, None)).contains("not JSON"));
        assert!(refused(declared("invoice.paid", INVOICE_SCHEMA, Some(r#"{"id": "in_1"}"#))).contains("example"));
        assert!(refused(declared("verification_session.paid", INVOICE_SCHEMA, None)).contains("reserved"));
        let both = EventTypeDecl { schema_file: Some("/nonexistent".into()), ..declared("invoice.paid", "{}", None) };
        assert!(refused(both).contains("not both"));
        let missing = EventTypeDecl {
            schema: None,
            schema_file: Some("/nonexistent/schema.json".into()),
            ..declared("invoice.paid", "{}", None)
        };
        assert!(refused(missing).contains("cannot read"));
    }
}
