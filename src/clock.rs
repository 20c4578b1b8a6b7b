//! Wall-clock time as the API shows it: Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds, the unit of every timestamp in the API.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The current time in Unix milliseconds, the unit of the delivery queue.
pub fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
