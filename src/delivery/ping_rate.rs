//! How often an endpoint may be sent a test ping: at most [`PINGS_PER_SECOND`] in any
//! one-second window, whoever asks (every key, portal token and dialect together), so
//! the test button cannot be turned into a flood of a customer's receiver. Counted in
//! this process, on the monotonic clock (a test's manual clock does not move it).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::EndpointId;

/// The most test pings one endpoint is sent in any one second.
pub const PINGS_PER_SECOND: usize = 5;

/// The window the limit counts in.
const WINDOW: Duration = Duration::from_secs(1);

/// Above this many endpoints remembered, those with no ping in the window are forgotten.
const PRUNE_ABOVE_ENDPOINTS: usize = 1_024;

/// The recent pings of each endpoint.
#[derive(Debug, Default)]
pub(super) struct PingRate {
    recent: Mutex<HashMap<EndpointId, VecDeque<Instant>>>,
}

impl PingRate {
    /// Counts a ping to `endpoint` at `now` if the window has room; else says how long
    /// until it has.
    pub(super) fn admit(&self, endpoint: EndpointId, now: Instant) -> Result<(), Duration> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > PRUNE_ABOVE_ENDPOINTS {
            recent.retain(|_, times| times.back().is_some_and(|last| now.duration_since(*last) < WINDOW));
        }
        let times = recent.entry(endpoint).or_default();
        while times.front().is_some_and(|first| now.duration_since(*first) >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= PINGS_PER_SECOND {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_gets_at_most_the_limit_in_any_second_and_others_are_not_counted() {
        let rate = PingRate::default();
        let (a, b) = (EndpointId::new(), EndpointId::new());
        let start = Instant::now();
        for i in 0..PINGS_PER_SECOND {
            assert!(rate.admit(a, start + Duration::from_millis(i as u64 * 100)).is_ok());
        }
        let wait = rate.admit(a, start + Duration::from_millis(600)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(400), "until the first ping leaves the window");
        assert!(rate.admit(b, start + Duration::from_millis(600)).is_ok(), "another endpoint has its own window");
        assert!(rate.admit(a, start + Duration::from_millis(1_000)).is_ok(), "the first ping left the window");
        assert!(rate.admit(a, start + Duration::from_millis(1_050)).is_err(), "the second has not");
    }
}
