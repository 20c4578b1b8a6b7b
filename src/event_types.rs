//! The catalogue of event types: Stile's built-in ones plus those declared in config.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::mode::Mode;

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

/// The Kayle endpoints API's names for four built-in types, as (Kayle name, built-in type).
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

/// Where a type of the catalogue comes from, which decides who may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Stile emits it (or names it, for Kayle's names): fixed.
    BuiltIn,
    /// Declared in `stile.toml` (`[events] custom_types` or `[[events.types]]`): changed
    /// there.
    Config,
    /// Created through `POST /v1/event_types`, in one mode: changed through the API.
    Api,
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
    /// Where it comes from.
    pub source: Source,
    /// For Kayle's names, the built-in type it stands for.
    pub alias_of: Option<&'static str>,
    /// Archived: kept for the history of events and the endpoints subscribed to it, but
    /// no endpoint may subscribe to it anew. Only types created through the API can be.
    pub archived: bool,
    /// When it was created through the API (Unix seconds); `None` for the others.
    pub created: Option<i64>,
    /// When it was last changed through the API (Unix seconds).
    pub updated: Option<i64>,
}

/// An event type created through the API, as stored: it belongs to one mode, like the
/// keys that manage it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventTypeRecord {
    /// The type's name (`invoice.paid`), unique in its mode.
    pub name: String,
    /// The mode whose keys manage it and whose events it types.
    pub mode: Mode,
    /// What it means.
    pub description: String,
    /// A JSON Schema (draft 2020-12) for `data`.
    pub schema: Option<serde_json::Value>,
    /// An example of `data`, which satisfies the schema.
    pub example: Option<serde_json::Value>,
    /// Whether it is archived (see [`EventTypeInfo::archived`]).
    pub archived: bool,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// When it was last changed (Unix seconds).
    pub updated: Option<i64>,
}

/// A type with its schema compiled.
#[derive(Debug, Clone)]
pub struct Entry {
    info: EventTypeInfo,
    validator: Option<std::sync::Arc<jsonschema::Validator>>,
}

impl Entry {
    /// Compiles an API-managed type: its schema must compile and its example satisfy it.
    /// The error names the field at fault (`schema` or `example`) and what is wrong.
    pub fn compile(record: &EventTypeRecord) -> Result<Self, (&'static str, String)> {
        let validator = record.schema.as_ref().map(|schema| compile(&record.name, schema)).transpose();
        let validator = validator.map_err(|problem| ("schema", problem))?;
        if let (Some(validator), Some(example)) = (&validator, &record.example)
            && let Some(problem) = first_error(validator, example)
        {
            return Err(("example", format!("the example does not satisfy the schema: {problem}")));
        }
        let info = EventTypeInfo {
            name: record.name.clone(),
            description: record.description.clone(),
            schema: record.schema.clone(),
            example: record.example.clone(),
            source: Source::Api,
            alias_of: None,
            archived: record.archived,
            created: Some(record.created),
            updated: record.updated,
        };
        Ok(Self { info, validator })
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

/// The event types this server accepts: the catalogue. The built-in types and those of
/// `stile.toml` are fixed at start-up and shared by both modes; each mode adds the types
/// created through its API, loaded from the data file at start and kept up to date by
/// [`EventTypes::install`] after each change is committed.
#[derive(Debug)]
pub struct EventTypes {
    fixed: BTreeMap<String, Entry>,
    /// The API-managed types of test mode and of live mode, archived ones included.
    managed: RwLock<[BTreeMap<String, Entry>; 2]>,
    /// Held while an API change is read, checked, committed and installed, so changes
    /// apply one at a time and the catalogue matches the data file.
    writes: tokio::sync::Mutex<()>,
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

/// A fixed type's entry.
fn fixed_entry(
    name: &str,
    description: String,
    schema_and_example: (Option<serde_json::Value>, Option<serde_json::Value>),
    source: Source,
    alias_of: Option<&'static str>,
    validator: Option<std::sync::Arc<jsonschema::Validator>>,
) -> Entry {
    let (schema, example) = schema_and_example;
    let info = EventTypeInfo {
        name: name.to_string(),
        description,
        schema,
        example,
        source,
        alias_of,
        archived: false,
        created: None,
        updated: None,
    };
    Entry { info, validator }
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
        let mut fixed = BTreeMap::new();
        let compiled_session = compile("verification_session.*", &session_schema())?;
        for (name, description) in BUILT_IN_DESCRIPTIONS {
            let status = name.rsplit('.').next().unwrap_or_default().replace("created", "requires_input");
            let content = (Some(session_schema()), Some(session_example(&status)));
            let validator = Some(compiled_session.clone());
            fixed.insert(
                name.to_string(),
                fixed_entry(name, description.into(), content, Source::BuiltIn, None, validator),
            );
        }
        for (kayle, built_in) in KAYLE_NAMES {
            let description =
                format!("Kayle's name for `{built_in}`: subscribe to it to receive that type under this name.");
            let entry = fixed_entry(kayle, description, (None, None), Source::BuiltIn, Some(built_in), None);
            fixed.insert(kayle.to_string(), entry);
        }
        for name in custom {
            fixed.insert(name.clone(), fixed_entry(name, String::new(), (None, None), Source::Config, None, None));
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
            let entry =
                fixed_entry(&decl.name, decl.description.clone(), (schema, example), Source::Config, None, validator);
            fixed.insert(decl.name.clone(), entry);
        }
        Ok(Self { fixed, managed: RwLock::default(), writes: tokio::sync::Mutex::default() })
    }

    /// Adds the API-managed types stored in the data file, at start. A stored type that a
    /// built-in or configured type of the same name shadows, or whose schema no longer
    /// compiles, is skipped; the answer says which and why, for the log.
    pub fn load(&self, records: Vec<EventTypeRecord>) -> Vec<String> {
        let mut skipped = Vec::new();
        for record in records {
            if self.fixed.contains_key(&record.name) {
                skipped.push(format!(
                    "event type `{}` created through the API ({} mode) is also declared in stile.toml or built in; that declaration is used",
                    record.name, record.mode
                ));
                continue;
            }
            match Entry::compile(&record) {
                Ok(entry) => self.install(record.mode, entry),
                Err((_, problem)) => skipped.push(format!(
                    "event type `{}` ({} mode) is left out of the catalogue: {problem}",
                    record.name, record.mode
                )),
            }
        }
        skipped
    }

    /// Puts an API-managed type into the catalogue, replacing the one of that name. Call
    /// it after the change is committed, holding [`EventTypes::lock_writes`].
    pub fn install(&self, mode: Mode, entry: Entry) {
        let mut managed = self.managed.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        managed[usize::from(mode.as_u8())].insert(entry.info.name.clone(), entry);
    }

    /// Serialises API changes to the catalogue (see [`EventTypes::install`]).
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// The entry of `name` in `mode`, cloned out of the lock.
    fn entry(&self, mode: Mode, name: &str) -> Option<Entry> {
        if let Some(entry) = self.fixed.get(name) {
            return Some(entry.clone());
        }
        let managed = self.managed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        managed[usize::from(mode.as_u8())].get(name).cloned()
    }

    /// Whether `name` is built in or declared in `stile.toml` (so the API cannot change it).
    pub fn is_fixed(&self, name: &str) -> bool {
        self.fixed.contains_key(name)
    }

    /// Whether the catalogue of `mode` has this type, archived or not.
    pub fn is_known(&self, mode: Mode, name: &str) -> bool {
        self.entry_flags(mode, name).is_some()
    }

    /// Whether the type is archived (known, but not to be subscribed to anew).
    pub fn is_archived(&self, mode: Mode, name: &str) -> bool {
        self.entry_flags(mode, name) == Some(true)
    }

    /// `Some(archived)` when the type is known, without cloning its entry.
    fn entry_flags(&self, mode: Mode, name: &str) -> Option<bool> {
        if self.fixed.contains_key(name) {
            return Some(false);
        }
        let managed = self.managed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        managed[usize::from(mode.as_u8())].get(name).map(|entry| entry.info.archived)
    }

    /// Whether events of this type may be published: a known type (archived ones too, so
    /// the endpoints still subscribed to one keep receiving it) that is not a Kayle name.
    pub fn is_publishable(&self, mode: Mode, name: &str) -> bool {
        self.is_known(mode, name) && kayle_alias_of(name).is_none()
    }

    /// The names endpoints may subscribe to in `mode` (not archived), sorted, for error
    /// messages.
    pub fn subscribable(&self, mode: Mode) -> Vec<String> {
        self.infos(mode, false).into_iter().map(|info| info.name).collect()
    }

    /// The type `name`, if the catalogue of `mode` has it.
    pub fn info(&self, mode: Mode, name: &str) -> Option<EventTypeInfo> {
        self.entry(mode, name).map(|entry| entry.info)
    }

    /// The catalogue of `mode`, sorted by name; archived types only if asked for.
    pub fn infos(&self, mode: Mode, include_archived: bool) -> Vec<EventTypeInfo> {
        let managed = self.managed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: BTreeMap<&str, &EventTypeInfo> = BTreeMap::new();
        for entry in managed[usize::from(mode.as_u8())].values().chain(self.fixed.values()) {
            if include_archived || !entry.info.archived {
                all.insert(&entry.info.name, &entry.info);
            }
        }
        all.into_values().cloned().collect()
    }

    /// Checks `data` against the type's schema, if it has one; the error names the JSON
    /// pointer of the first value that fails and the rule it breaks.
    pub fn check_data(&self, mode: Mode, name: &str, data: &serde_json::Value) -> Result<(), String> {
        let check = |validator: &jsonschema::Validator| match first_error(validator, data) {
            Some(problem) => Err(format!("`data` does not match the schema of `{name}`: {problem}")),
            None => Ok(()),
        };
        // A fixed type (every built-in one) is checked without a lock or a clone.
        if let Some(entry) = self.fixed.get(name) {
            return entry.validator.as_deref().map_or(Ok(()), check);
        }
        let validator = {
            let managed = self.managed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            managed[usize::from(mode.as_u8())].get(name).and_then(|entry| entry.validator.clone())
        };
        validator.as_deref().map_or(Ok(()), check)
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
        assert!(types.is_known(Mode::Test, "verification_session.verified"));
        assert!(types.is_known(Mode::Test, "invoice.paid"));
        assert!(!types.is_known(Mode::Test, "invoice.unpaid"));
        assert!(!types.is_known(Mode::Test, WILDCARD));
        assert!(
            types.is_known(Mode::Test, "verification.session.succeeded")
                && !types.is_publishable(Mode::Test, "verification.session.succeeded")
        );
        assert!(
            types.is_publishable(Mode::Test, "verification_session.verified")
                && types.is_publishable(Mode::Test, "invoice.paid")
        );
        assert_eq!(types.infos(Mode::Test, true).len(), BUILT_IN.len() + KAYLE_NAMES.len() + 1);
        assert_eq!(types.subscribable(Mode::Live).len(), BUILT_IN.len() + KAYLE_NAMES.len() + 1);
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
        let check = |data: serde_json::Value| types.check_data(Mode::Test, "invoice.paid", &data);
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
        assert!(types.check_data(Mode::Test, "invoice.other", &serde_json::json!({"x": 1})).is_ok());
        assert!(types.check_data(Mode::Test, "verification_session.verified", &serde_json::json!({"seq": 1})).is_ok());
        assert!(
            types.check_data(Mode::Test, "verification_session.verified", &serde_json::json!({"status": 5})).is_err()
        );
        let info = types.info(Mode::Live, "invoice.paid").unwrap();
        assert_eq!(info.example, Some(serde_json::json!({"id": "in_1", "amount": 5})));
        assert_eq!(info.description, "An invoice was paid.");
        assert!(
            types
                .infos(Mode::Test, true)
                .iter()
                .all(|t| (t.source == Source::BuiltIn) == (BUILT_IN.contains(&t.name.as_str()) || t.alias_of.is_some()))
        );
        // Every built-in example satisfies the built-in schema.
        for t in types.infos(Mode::Test, false).iter().filter(|t| t.example.is_some() && t.source == Source::BuiltIn) {
            assert!(types.check_data(Mode::Test, &t.name, t.example.as_ref().unwrap()).is_ok(), "{}", t.name);
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

    fn record(name: &str, mode: Mode, schema: Option<&str>, example: Option<serde_json::Value>) -> EventTypeRecord {
        EventTypeRecord {
            name: name.into(),
            mode,
            description: format!("{name} happened."),
            schema: schema.map(|s| serde_json::from_str(s).unwrap()),
            example,
            archived: false,
            created: 1,
            updated: None,
        }
    }

    #[test]
    fn api_types_belong_to_one_mode_and_archived_ones_stay_known() {
        let types = EventTypes::new(&["invoice.paid".into()]);
        let paid = record("order.paid", Mode::Test, Some(INVOICE_SCHEMA), None);
        types.install(Mode::Test, Entry::compile(&paid).unwrap());
        assert!(types.is_known(Mode::Test, "order.paid") && types.is_publishable(Mode::Test, "order.paid"));
        assert!(!types.is_known(Mode::Live, "order.paid"), "another mode's type");
        assert!(types.check_data(Mode::Test, "order.paid", &serde_json::json!({"id": "in_1"})).is_err());
        assert!(types.check_data(Mode::Live, "order.paid", &serde_json::json!({"id": "in_1"})).is_ok());
        assert!(types.subscribable(Mode::Test).contains(&"order.paid".to_string()));
        assert_eq!(types.info(Mode::Test, "order.paid").unwrap().source, Source::Api);
        assert!(!types.is_fixed("order.paid") && types.is_fixed("invoice.paid"));

        let archived = EventTypeRecord { archived: true, ..paid };
        types.install(Mode::Test, Entry::compile(&archived).unwrap());
        assert!(types.is_known(Mode::Test, "order.paid") && types.is_archived(Mode::Test, "order.paid"));
        assert!(types.is_publishable(Mode::Test, "order.paid"), "subscribers keep receiving it");
        assert!(!types.subscribable(Mode::Test).contains(&"order.paid".to_string()));
        assert!(types.infos(Mode::Test, false).iter().all(|t| t.name != "order.paid"));
        assert!(types.infos(Mode::Test, true).iter().any(|t| t.name == "order.paid" && t.archived));
        assert!(!types.is_archived(Mode::Test, "invoice.paid") && !types.is_archived(Mode::Test, "nothing.here"));
    }

    #[test]
    fn api_types_are_compiled_and_loaded_unless_shadowed() {
        let bad_schema = record("order.paid", Mode::Test, Some(r#"{"type": 5}"#), None);
        assert_eq!(Entry::compile(&bad_schema).unwrap_err().0, "schema");
        let bad_example = record("order.paid", Mode::Test, Some(INVOICE_SCHEMA), Some(serde_json::json!({"id": 1})));
        assert_eq!(Entry::compile(&bad_example).unwrap_err().0, "example");

        let types = EventTypes::new(&["invoice.paid".into()]);
        let skipped = types.load(vec![
            record("invoice.paid", Mode::Test, None, None),
            record("order.paid", Mode::Live, None, None),
            bad_schema,
        ]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(types.info(Mode::Test, "invoice.paid").unwrap().source, Source::Config);
        assert!(types.is_known(Mode::Live, "order.paid") && !types.is_known(Mode::Test, "order.paid"));
    }
}
