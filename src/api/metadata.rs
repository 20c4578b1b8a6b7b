//! `metadata`: the user's own string pairs on an object, with Stripe's limits.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// The most pairs one object may carry.
pub const MAX_PAIRS: usize = 50;
/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 40;
/// The longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 500;

/// Checks metadata against the limits; the error names the offending key.
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_PAIRS {
        return Err(ApiError::invalid(
            "metadata",
            format!("`metadata` may have at most {MAX_PAIRS} keys; it has {}.", metadata.len()),
        ));
    }
    for (key, value) in metadata {
        let param = format!("metadata[{key}]");
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(ApiError::invalid(
                param,
                format!("Metadata keys must be 1 to {MAX_KEY_CHARS} characters long."),
            ));
        }
        if key.contains(['[', ']']) {
            return Err(ApiError::invalid(param, "Metadata keys may not contain square brackets."));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(ApiError::invalid(
                param,
                format!("Metadata values must be at most {MAX_VALUE_CHARS} characters long."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize, key_len: usize, value_len: usize) -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("{i:0>width$}", width = key_len), "v".repeat(value_len))).collect()
    }

    #[test]
    fn limits_are_inclusive_and_errors_name_the_key() {
        assert!(validate_metadata(&pairs(MAX_PAIRS, MAX_KEY_CHARS, MAX_VALUE_CHARS)).is_ok());
        assert_eq!(validate_metadata(&pairs(MAX_PAIRS + 1, 2, 1)).unwrap_err().param.as_deref(), Some("metadata"));
        let long_key = validate_metadata(&pairs(1, MAX_KEY_CHARS + 1, 1)).unwrap_err();
        assert!(long_key.param.unwrap().starts_with("metadata["));
        assert!(validate_metadata(&pairs(1, 3, MAX_VALUE_CHARS + 1)).is_err());
        assert!(validate_metadata(&BTreeMap::from([(String::new(), "v".into())])).is_err());
        assert!(validate_metadata(&BTreeMap::from([("a[b]".into(), "v".into())])).is_err());
        // Characters, not bytes: 40 two-byte characters are fine.
        assert!(validate_metadata(&BTreeMap::from([("é".repeat(40), "ü".repeat(500))])).is_ok());
    }
}
