//! An endpoint's transformation as stored: the JavaScript its requests go through
//! (`crate::transform` runs it), the version in force, and the versions before it.

use serde::{Deserialize, Serialize};

/// How many versions before the one in force are kept.
pub const KEPT_VERSIONS: usize = 20;

/// One saved version of a transformation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformationVersion {
    /// 1 for the first saved, then one more with each change.
    pub version: u32,
    /// The JavaScript, which declares `handler(webhook)`.
    pub code: String,
    /// Whether deliveries go through it.
    pub enabled: bool,
    /// When it was saved (Unix seconds).
    pub saved_at: i64,
    /// Who saved it: the API key (its shown prefix) or the portal session.
    pub saved_by: String,
}

/// An endpoint's transformation: the version in force, and up to [`KEPT_VERSIONS`]
/// before it, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transformation {
    /// The version in force.
    #[serde(flatten)]
    pub current: TransformationVersion,
    /// The versions before it, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<TransformationVersion>,
}

/// An endpoint's transformation as answers show it: the version in force (the earlier
/// ones are listed on their own). Every API and the `webhook_endpoint.test` event show
/// this one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TransformationShown {
    /// The JavaScript.
    pub code: String,
    /// Whether deliveries go through it.
    pub enabled: bool,
    /// Its version: 1 for the first saved, one more with each change.
    pub version: u32,
    /// When this version was saved (Unix seconds).
    pub updated_at: i64,
    /// Who saved it: an API key's prefix, or a portal session.
    pub updated_by: String,
}

impl Transformation {
    /// The version in force, as answers show it.
    pub fn shown(&self) -> TransformationShown {
        let current = &self.current;
        TransformationShown {
            code: current.code.clone(),
            enabled: current.enabled,
            version: current.version,
            updated_at: current.saved_at,
            updated_by: current.saved_by.clone(),
        }
    }
}

/// A transformation as a write asks for it: its code and whether it runs, who asks and
/// when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformationSave {
    /// The JavaScript (checked to compile before it gets here).
    pub code: String,
    /// Whether deliveries go through it.
    pub enabled: bool,
    /// Who saves it.
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
}

impl Transformation {
    /// `previous` (if any) after `save`: a new version, the one it replaces kept as the
    /// newest earlier one; or `previous` as it is when `save` changes neither the code nor
    /// whether it runs.
    pub fn saved(previous: Option<Transformation>, save: TransformationSave) -> Transformation {
        let version = |number| TransformationVersion {
            version: number,
            code: save.code.clone(),
            enabled: save.enabled,
            saved_at: save.at,
            saved_by: save.by.clone(),
        };
        let Some(mut previous) = previous else { return Transformation { current: version(1), earlier: Vec::new() } };
        if previous.current.code == save.code && previous.current.enabled == save.enabled {
            return previous;
        }
        let next = version(previous.current.version + 1);
        let current = std::mem::replace(&mut previous.current, next);
        previous.earlier.insert(0, current);
        previous.earlier.truncate(KEPT_VERSIONS);
        previous
    }

    /// The code deliveries go through, if it is enabled.
    pub fn in_force(&self) -> Option<&str> {
        self.current.enabled.then_some(self.current.code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(code: &str, enabled: bool, at: i64) -> TransformationSave {
        TransformationSave { code: code.into(), enabled, by: "vk_test_abc".into(), at }
    }

    #[test]
    fn each_change_is_a_version_and_the_earlier_ones_are_kept_newest_first_up_to_the_limit() {
        let first = Transformation::saved(None, save("a", true, 10));
        assert_eq!((first.current.version, first.earlier.len()), (1, 0));
        let same = Transformation::saved(Some(first.clone()), save("a", true, 11));
        assert_eq!(same, first, "saving what is there is no new version");
        let off = Transformation::saved(Some(first), save("a", false, 12));
        assert_eq!((off.current.version, off.current.enabled, off.in_force()), (2, false, None));
        assert_eq!(off.earlier[0].version, 1);
        let mut t = off;
        for n in 0..30 {
            t = Transformation::saved(Some(t), save(&format!("code {n}"), true, 20 + n));
        }
        assert_eq!(t.current.version, 32);
        assert_eq!(t.in_force(), Some("code 29"));
        assert_eq!(t.earlier.len(), KEPT_VERSIONS);
        assert_eq!(t.earlier.iter().map(|v| v.version).collect::<Vec<_>>(), (12..32).rev().collect::<Vec<_>>());
    }

    #[test]
    fn the_stored_form_is_flat_and_reads_back() {
        let t = Transformation::saved(Some(Transformation::saved(None, save("a", true, 1))), save("b", true, 2));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["code"], "b");
        assert_eq!(json["earlier"][0]["code"], "a");
        assert_eq!(serde_json::from_value::<Transformation>(json).unwrap(), t);
    }
}
