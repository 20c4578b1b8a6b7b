//! Event type catalogue operations: create a type, change one. The rules that are not
//! about one API's shapes live here: only types the API created can be changed (built-in
//! ones and those of `stile.toml` are read-only), a type's schema must compile and its
//! example satisfy it, a name is taken once per mode, and changes go one at a time so the
//! catalogue in memory stays what the store holds.

use std::sync::Arc;

use super::ServiceError;
use crate::delivery::Engine;
use crate::event_types::{Entry, EventTypeInfo, EventTypeRecord, EventTypes, Source};
use crate::mode::Mode;
use crate::store::Store;

/// A checked create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEventType {
    /// Its name, checked as a custom type's.
    pub name: String,
    /// What it means.
    pub description: String,
    /// The JSON Schema its `data` must satisfy, if any (an object).
    pub schema: Option<serde_json::Value>,
    /// An example of its `data`, if any (an object).
    pub example: Option<serde_json::Value>,
}

/// The catalogue operations, over the engine (for time), the store and the catalogue in
/// memory.
pub struct Catalogue<'a> {
    /// Time.
    pub engine: &'a Engine,
    /// Where API-managed types are kept.
    pub store: &'a Arc<Store>,
    /// The catalogue every publish and subscription is checked against.
    pub event_types: &'a Arc<EventTypes>,
}

impl Catalogue<'_> {
    /// Adds a type to `mode`'s catalogue; refuses a schema that does not compile, an
    /// example it refuses, and a name the mode already has.
    pub async fn create(&self, mode: Mode, input: NewEventType) -> Result<EventTypeInfo, ServiceError> {
        let record = EventTypeRecord {
            name: input.name,
            mode,
            description: input.description,
            schema: input.schema,
            example: input.example,
            archived: false,
            created: self.engine.clock().now(),
            updated: None,
        };
        let entry = compile(&record)?;
        let types = self.event_types;
        let _one_at_a_time = types.lock_writes().await;
        let name = record.name.clone();
        if types.is_known(mode, &name) || !self.store.create_event_type(record).await? {
            return Err(ServiceError::invalid(
                "name",
                format!("The event type `{name}` already exists in {mode} mode."),
            ));
        }
        Ok(installed(types, mode, entry))
    }

    /// Applies `change` to the API-managed type `name` of `mode` and commits it. Refuses a
    /// type the API does not own ([`ServiceError::ReadOnlyType`]) and a change that
    /// leaves a schema that does not compile or an example it refuses. `None`: no such
    /// type.
    pub async fn change(
        &self,
        mode: Mode,
        name: &str,
        change: impl FnOnce(&mut EventTypeRecord),
    ) -> Result<Option<EventTypeInfo>, ServiceError> {
        let now = self.engine.clock().now();
        let types = self.event_types;
        let _one_at_a_time = types.lock_writes().await;
        let Some(info) = types.info(mode, name) else { return Ok(None) };
        if info.source != Source::Api {
            return Err(ServiceError::ReadOnlyType { name: info.name, from: info.source });
        }
        let mut record = EventTypeRecord {
            name: info.name,
            mode,
            description: info.description,
            schema: info.schema,
            example: info.example,
            archived: info.archived,
            created: info.created.unwrap_or(now),
            updated: info.updated,
        };
        change(&mut record);
        record.updated = Some(now);
        let entry = compile(&record)?;
        self.store.replace_event_type(record).await?;
        Ok(Some(installed(types, mode, entry)))
    }
}

/// Compiles a type: a schema that does not compile, or an example that does not satisfy
/// it, is refused naming that field.
fn compile(record: &EventTypeRecord) -> Result<Entry, ServiceError> {
    Entry::compile(record).map_err(|(param, problem)| ServiceError::invalid(param, format!("`{param}`: {problem}")))
}

/// Installs a committed entry and answers what the catalogue now holds of it.
fn installed(types: &EventTypes, mode: Mode, entry: Entry) -> EventTypeInfo {
    let name = entry.name().to_string();
    types.install(mode, entry);
    types.info(mode, &name).expect("just installed")
}
