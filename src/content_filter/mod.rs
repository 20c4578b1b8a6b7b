//! Content filters: which events an endpoint wants, by what they hold. A filter is JSON
//! matched against the event object as the endpoint would receive it (`type`, `data`,
//! `livemode`, ...), in a syntax that takes Convoy's and Outpost's body filters as they
//! are written:
//!
//! - an object means AND of its keys; a key is a path (`"data"`, or dotted:
//!   `"data.amount"`; a digit segment indexes an array, `$` is any element);
//! - a scalar (or `null`) means equal; an array means "an array holding all of these";
//! - operators: `$eq $neq $gt $gte $lt $lte $in $nin $exist $regex $startsWith
//!   $endsWith`, and `$and $or $not` at any level, relative to where they stand.
//!
//! Where a path meets an array of objects, a nested filter holds if one element matches
//! it whole. A missing value fails every test but `$exist: false` (and whatever `$not`
//! turns). Types are strict: `"5"` is not `5`; numbers compare by value (`1` is `1.0`);
//! strings order by their bytes. A filter is checked when written ([`ContentFilter::new`]):
//! an unknown operator or a bad operand is an error naming its path; `$regex` uses the
//! linear-time `regex` crate. A stored filter is compiled again each time its endpoint is
//! read, its regular expressions compiled once per pattern and kept.

mod compile;
mod eval;

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Why a filter was refused: where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    /// The path to the bad part, from the filter's root (`filter.data.amount.$gtx`).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A checked, compiled filter, with the JSON it was written as (what is stored and
/// shown).
#[derive(Debug, Clone)]
pub struct ContentFilter {
    source: Value,
    compiled: Arc<compile::Cond>,
}

impl ContentFilter {
    /// Checks and compiles `source` (`root` names it in errors, e.g. `filter`), as a
    /// request gives it.
    pub fn new(source: Value, root: &str) -> Result<ContentFilter, FilterError> {
        let compiled = Arc::new(compile::compile(&source, root, false)?);
        Ok(ContentFilter { source, compiled })
    }

    /// The filter as it was written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether `event` (the event object as delivered) passes.
    pub fn matches(&self, event: &Value) -> bool {
        eval::holds(&self.compiled, Some(event))
    }
}

impl PartialEq for ContentFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ContentFilter {}

impl Serialize for ContentFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ContentFilter {
    /// Compiles what was stored; it was checked when written, so a failure means a later
    /// release reads it otherwise, and the error says where.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = Value::deserialize(deserializer)?;
        let compiled = compile::compile(&source, "filter", true).map_err(serde::de::Error::custom)?;
        Ok(ContentFilter { source, compiled: Arc::new(compiled) })
    }
}

#[cfg(test)]
mod tests;
