//! Flow control: how fast, and how many at once, the scheduler sends to each endpoint.
//!
//! Three holds, each per endpoint, each checked before a request starts (queued attempts
//! and test pings alike):
//! - **In flight**: at most `max_in_flight` requests at once (the endpoint's own, or
//!   `delivery.per_endpoint_concurrency`).
//! - **Rate**: `rate_limit` requests a second, spaced evenly (the generic cell rate
//!   algorithm: each start moves the endpoint's next start one interval on). A late
//!   start keeps the spacing, so the scheduler waking late (a millisecond or two, more
//!   on a loaded machine) does not slow the rate: what fell due meanwhile goes at once,
//!   catching up at most [`MAX_CATCH_UP_US`] of it. It keeps it when the endpoint had a
//!   delivery waiting for its time, or when it is late by less than
//!   [`LATE_KEEPS_SPACING_US`]; otherwise (the endpoint had nothing to send) the spacing
//!   starts again from the start itself, so time not used is never saved up into a
//!   burst. No start comes before its time up to 1,000 a second (above that, up to
//!   [`RATE_TOLERANCE_US`] before, as the clock counts milliseconds). So any window of
//!   one second (`[t, t + 1 s)`) holds at most `rate_limit + 1 + rate_limit / 100`
//!   starts: the one more, and 10 ms of the rate at most, are a late start's catching up.
//! - **Pause**: a refusal (an answer of 429, or 503 with `Retry-After`: the scheduler's
//!   `refused`) pauses the endpoint for its `Retry-After`, capped by `delivery.max_pause`,
//!   or without one for an adaptive back-off (1 s, doubling with each refusal in a row, to
//!   the same cap). After a pause the endpoint recovers: its rate starts at half of what
//!   it was sent in the second before the refusal and doubles every second without
//!   another, until it reaches its own limit (or, with none, twice the rate that was
//!   refused), where the recovery ends.
//!
//! An endpoint whose limits are not known yet (none of its jobs read since this process
//! started) gets one request at a time until a job brings its record. Pure: time is
//! passed in, and nothing here waits or reads the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ids::EndpointId;
use crate::store::model::{FlowLimits, FlowState, HoldKind};

/// How early a start may come before its even spacing, in µs, for rates above 1,000 a
/// second (see the module's doc): within the same millisecond.
pub const RATE_TOLERANCE_US: u64 = 999;

/// How late a start of an endpoint that had nothing waiting may come and keep the even
/// spacing, in µs: the scheduler's wake-ups come a millisecond or two after the time
/// they were set for.
pub const LATE_KEEPS_SPACING_US: u64 = 5_000;

/// The most of the rate's time a late start catches up, in µs: with the early tolerance,
/// 10 ms, a hundredth of a second (the `rate_limit / 100` of the allowance).
pub const MAX_CATCH_UP_US: u64 = 9_000;

/// The first adaptive pause, for a 429 without `Retry-After`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The most endpoints whose state is kept while idle; past it the idle ones are forgotten
/// (their limits are read again with their next job).
const MAX_IDLE_KEPT: usize = 10_000;

/// Why a request to an endpoint may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// `max_in_flight` requests are in flight: one must end first.
    InFlight,
    /// The rate allows the next start at this time (Unix ms).
    Rate(u64),
    /// A refusal (429, or 503 with `Retry-After`) paused it until this time (Unix ms).
    Paused(u64),
}

impl Held {
    /// When the hold ends by itself (Unix ms); `None` when a request must end first.
    pub fn until_ms(self) -> Option<u64> {
        match self {
            Held::InFlight => None,
            Held::Rate(at) | Held::Paused(at) => Some(at),
        }
    }

    /// The reason, as the metrics and the API name it.
    pub fn kind(self) -> HoldKind {
        match self {
            Held::InFlight => HoldKind::MaxInFlight,
            Held::Rate(_) => HoldKind::RateLimit,
            Held::Paused(_) => HoldKind::Paused,
        }
    }
}

/// The rate an endpoint climbs back to after a pause.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    /// Requests a second when the pause ended.
    start: f64,
    /// When the pause ended (Unix ms).
    from_ms: u64,
    /// Where the recovery ends, in requests a second.
    ceiling: f64,
}

impl Recovery {
    /// The rate allowed at `now_ms`; `None` once it reached the ceiling.
    fn rate_at(&self, now_ms: u64) -> Option<f64> {
        let seconds = now_ms.saturating_sub(self.from_ms) / 1000;
        let rate = self.start * 2f64.powi(seconds.min(60) as i32);
        (rate < self.ceiling).then_some(rate)
    }
}

/// One endpoint's state.
#[derive(Debug, Default)]
struct EndpointFlow {
    /// Its limits, once a job brought its record.
    limits: Option<FlowLimits>,
    /// Requests in flight.
    in_flight: usize,
    /// The earliest start the rate allows next (Unix µs).
    next_start_us: u64,
    /// A delivery was held for the rate since the last start: a late start then is the
    /// scheduler's lateness, not time the endpoint left unused.
    waiting_for_rate: bool,
    /// Paused until (Unix ms); 0 if never.
    paused_until_ms: u64,
    /// Refusals in a row, for the adaptive back-off.
    refusals: u32,
    /// The climb back after a pause.
    recovery: Option<Recovery>,
    /// Starts in the current second and the one before: (second, count, count before).
    started: (u64, u32, u32),
}

impl EndpointFlow {
    /// Whether nothing about it needs keeping but its limits.
    fn idle(&self, now_ms: u64) -> bool {
        self.in_flight == 0
            && self.paused_until_ms <= now_ms
            && self.recovery.is_none()
            && self.next_start_us <= now_ms * 1000
    }

    /// The rate in force at `now_ms`, if any; forgets a recovery that is over.
    fn rate(&mut self, now_ms: u64) -> Option<f64> {
        if self.recovery.is_some_and(|recovery| now_ms >= recovery.from_ms && recovery.rate_at(now_ms).is_none()) {
            self.recovery = None;
        }
        self.rate_at(now_ms)
    }

    /// The rate in force at `now_ms`, if any.
    fn rate_at(&self, now_ms: u64) -> Option<f64> {
        let own = self.limits.and_then(|l| l.rate_limit).map(f64::from);
        match (own, self.recovering_rate(now_ms)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rate its recovery after a pause allows at `now_ms`, while it lasts.
    fn recovering_rate(&self, now_ms: u64) -> Option<f64> {
        let recovery = self.recovery?;
        if now_ms >= recovery.from_ms { recovery.rate_at(now_ms) } else { Some(recovery.start) }
    }

    /// What holds a start at `now_ms`, with `rate` in force then (its [`Self::rate_at`]),
    /// as [`Flow::start`] would find it, changing nothing.
    fn hold(&self, now_ms: u64, cap: usize, rate: Option<f64>) -> Option<Held> {
        if self.paused_until_ms > now_ms {
            return Some(Held::Paused(self.paused_until_ms));
        }
        if self.in_flight >= cap {
            return Some(Held::InFlight);
        }
        let rate = rate?;
        let interval_us = (1_000_000.0 / rate).ceil() as u64;
        let tolerance_us = if interval_us < 1_000 { RATE_TOLERANCE_US } else { 0 };
        (now_ms * 1000 + tolerance_us < self.next_start_us)
            .then(|| Held::Rate((self.next_start_us - tolerance_us).div_ceil(1000)))
    }

    /// Pauses it until `until_ms` (later than any pause it has), with a recovery from
    /// `start` requests a second up to `ceiling` (or its own rate) after it.
    fn pause(&mut self, until_ms: u64, start: f64, ceiling: f64) {
        let ceiling = self.limits.and_then(|l| l.rate_limit).map_or(ceiling, f64::from);
        self.recovery = Some(Recovery { start, from_ms: until_ms, ceiling: ceiling.max(start * 2.0) });
        self.paused_until_ms = until_ms;
        self.next_start_us = self.next_start_us.max(until_ms * 1000);
    }

    /// Starts counted in the last whole second before `now_ms`, or in this one if more.
    fn recent_rate(&self, now_ms: u64) -> u32 {
        let (second, count, before) = self.started;
        match (now_ms / 1000).saturating_sub(second) {
            0 => count.max(before),
            1 => count,
            _ => 0,
        }
    }
}

/// Each endpoint's flow as this process's scheduler last showed it (the endpoints it sends
/// to with something to show: deliveries waiting, requests in flight, a pause or a
/// recovery), for the API to read. The scheduler replaces it at most every
/// [`BOARD_EVERY_MS`], and at once after a refusal.
#[derive(Debug, Clone, Default)]
pub struct FlowBoard(Arc<Mutex<HashMap<EndpointId, FlowState>>>);

/// How often the scheduler shows its endpoints' flow on the [`FlowBoard`] at most, in ms.
pub const BOARD_EVERY_MS: u64 = 250;

impl FlowBoard {
    /// `endpoint`'s flow as last shown; `None` if it had nothing to show (or another
    /// process sends to it).
    pub fn get(&self, endpoint: EndpointId) -> Option<FlowState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&endpoint).copied()
    }

    /// Shows `states` in place of what was shown.
    pub(super) fn show(&self, states: HashMap<EndpointId, FlowState>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = states;
    }
}

/// Every endpoint's flow state: owned by the scheduler.
#[derive(Debug)]
pub struct Flow {
    /// `max_in_flight` of an endpoint that sets none.
    default_in_flight: usize,
    /// The longest a refusal pauses an endpoint.
    max_pause: Duration,
    endpoints: HashMap<EndpointId, EndpointFlow>,
}

impl Flow {
    /// Flow state with the server's defaults.
    pub fn new(default_in_flight: usize, max_pause: Duration) -> Self {
        Self { default_in_flight, max_pause, endpoints: HashMap::new() }
    }

    /// Whether `endpoint`'s limits are known.
    pub fn knows(&self, endpoint: EndpointId) -> bool {
        self.endpoints.get(&endpoint).is_some_and(|state| state.limits.is_some())
    }

    /// Remembers an endpoint's limits, read from its record with a job; whether they
    /// differ from the limits it knew (`false` if it knew none).
    pub fn learn(&mut self, endpoint: EndpointId, limits: FlowLimits) -> bool {
        let known = self.endpoints.entry(endpoint).or_default().limits.replace(limits);
        known.is_some_and(|known| known != limits)
    }

    /// Starts a request to `endpoint` at `now_ms` if its holds allow, counting it in
    /// flight and against its rate; otherwise says what holds it.
    pub fn start(&mut self, endpoint: EndpointId, now_ms: u64) -> Result<(), Held> {
        let default_in_flight = self.default_in_flight;
        let state = self.endpoints.entry(endpoint).or_default();
        let rate = state.rate(now_ms);
        if let Some(held) = state.hold(now_ms, cap(state.limits, default_in_flight), rate) {
            if let Held::Rate(_) = held {
                state.waiting_for_rate = true;
            }
            return Err(held);
        }
        let now_us = now_ms * 1000;
        if let Some(rate) = rate {
            let interval_us = (1_000_000.0 / rate).ceil() as u64;
            // Late after waiting (or a little late after nothing), a start keeps the
            // spacing, catching up a bounded part of the lateness; otherwise the spacing
            // starts again from it.
            let keep = state.waiting_for_rate || now_us < state.next_start_us + LATE_KEEPS_SPACING_US;
            let from = if keep { state.next_start_us.max(now_us.saturating_sub(MAX_CATCH_UP_US)) } else { now_us };
            state.next_start_us = from + interval_us;
            // Still behind: the next start (at once) is catching up too.
            state.waiting_for_rate = state.next_start_us <= now_us;
        }
        state.in_flight += 1;
        let second = now_ms / 1000;
        state.started = match state.started {
            (s, count, before) if s == second => (s, count + 1, before),
            (s, count, _) if s + 1 == second => (second, 1, count),
            _ => (second, 1, 0),
        };
        Ok(())
    }

    /// A request to `endpoint` ended (answered or not).
    pub fn finished(&mut self, endpoint: EndpointId) {
        if let Some(state) = self.endpoints.get_mut(&endpoint) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// `endpoint` accepted a request: the adaptive back-off starts over.
    pub fn accepted(&mut self, endpoint: EndpointId) {
        if let Some(state) = self.endpoints.get_mut(&endpoint) {
            state.refusals = 0;
        }
    }

    /// `endpoint` refused a request at `now_ms`, asking for `retry_after` (or nothing):
    /// pauses it and sets its recovery. Returns when the pause ends (Unix ms).
    pub fn refused(&mut self, endpoint: EndpointId, now_ms: u64, retry_after: Option<Duration>) -> u64 {
        let max_pause = self.max_pause;
        let state = self.endpoints.entry(endpoint).or_default();
        state.refusals = state.refusals.saturating_add(1);
        let pause = retry_after
            .unwrap_or_else(|| FIRST_BACKOFF.saturating_mul(1 << (state.refusals - 1).min(16)))
            .min(max_pause);
        let until = now_ms + pause.as_millis() as u64;
        // Several requests in flight when the endpoint began refusing all come back
        // refused: the pause is the longest asked, and the recovery starts from the rate
        // before the first.
        if until > state.paused_until_ms {
            let refused_rate = f64::from(state.recent_rate(now_ms).max(1));
            let start = match state.recovery {
                Some(recovery) if state.paused_until_ms > now_ms => recovery.start,
                _ => (refused_rate / 2.0).max(1.0),
            };
            state.pause(until, start, refused_rate * 2.0);
        }
        state.paused_until_ms
    }

    /// Keeps a pause another process set on `endpoint` (it was the endpoint's sender, and
    /// this one took over): paused until `until_ms`, then recovering from one request a
    /// second, as after a refusal when nothing was being sent.
    pub fn resume_pause(&mut self, endpoint: EndpointId, until_ms: u64, now_ms: u64) {
        let state = self.endpoints.entry(endpoint).or_default();
        if until_ms > now_ms && until_ms > state.paused_until_ms {
            state.pause(until_ms, 1.0, 2.0);
        }
    }

    /// The endpoints with something to show: requests in flight, a pause, or a recovery.
    pub fn active(&self, now_ms: u64) -> impl Iterator<Item = EndpointId> + '_ {
        self.endpoints.iter().filter(move |(_, state)| !state.idle(now_ms)).map(|(endpoint, _)| *endpoint)
    }

    /// `endpoint`'s flow at `now_ms`, with `waiting` due deliveries for it.
    pub fn state(&self, endpoint: EndpointId, now_ms: u64, waiting: usize) -> FlowState {
        let state = self.endpoints.get(&endpoint);
        let held = match state {
            Some(state) => state.hold(now_ms, cap(state.limits, self.default_in_flight), state.rate_at(now_ms)),
            None => None,
        };
        FlowState {
            endpoint,
            // Only a delivery that waits is held.
            held: held.filter(|_| waiting > 0).map(Held::kind),
            paused_until_ms: state.map(|s| s.paused_until_ms).filter(|until| *until > now_ms),
            waiting: u32::try_from(waiting).unwrap_or(u32::MAX),
            in_flight: state.map_or(0, |s| s.in_flight as u32),
            recovering_rate: state.and_then(|s| s.recovering_rate(now_ms)),
            as_of_ms: now_ms,
        }
    }

    /// Forgets idle endpoints once more than [`MAX_IDLE_KEPT`] are known.
    pub fn trim(&mut self, now_ms: u64) {
        if self.endpoints.len() > MAX_IDLE_KEPT {
            self.endpoints.retain(|_, state| !state.idle(now_ms));
        }
    }

    /// How many requests to `endpoint` are in flight.
    pub fn in_flight(&self, endpoint: EndpointId) -> usize {
        self.endpoints.get(&endpoint).map_or(0, |state| state.in_flight)
    }

    /// The in-flight cap of `endpoint` as enforced now.
    #[cfg(test)]
    pub fn in_flight_cap(&self, endpoint: EndpointId) -> usize {
        self.endpoints.get(&endpoint).map_or(1, |state| cap(state.limits, self.default_in_flight))
    }
}

/// The most requests an endpoint with `limits` may have in flight: one until its limits
/// are known.
fn cap(limits: Option<FlowLimits>, default_in_flight: usize) -> usize {
    match limits {
        Some(limits) => limits.max_in_flight.map_or(default_in_flight, |n| n as usize),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn limited(rate: Option<u32>, in_flight: Option<u32>) -> (Flow, EndpointId) {
        let mut flow = Flow::new(8, Duration::from_secs(60));
        let endpoint = EndpointId::new();
        flow.learn(endpoint, FlowLimits { rate_limit: rate, max_in_flight: in_flight });
        (flow, endpoint)
    }

    /// Starts as many requests as the holds allow (at most [`DRIVE_PER_MS`]) every
    /// millisecond for `ms`, each ending at once; returns their start times.
    fn drive(flow: &mut Flow, endpoint: EndpointId, from_ms: u64, ms: u64) -> Vec<u64> {
        let mut starts = Vec::new();
        for now in from_ms..from_ms + ms {
            for _ in 0..DRIVE_PER_MS {
                if flow.start(endpoint, now).is_err() {
                    break;
                }
                starts.push(now);
                flow.finished(endpoint);
            }
        }
        starts
    }

    /// The most starts [`drive`] makes in one millisecond: what an endpoint with no rate
    /// gets.
    const DRIVE_PER_MS: usize = 50;

    /// The most starts in any window [t, t + 1000 ms).
    fn busiest_second(starts: &[u64]) -> usize {
        starts.iter().map(|t| starts.iter().filter(|s| **s >= *t && **s < t + 1000).count()).max().unwrap_or(0)
    }

    #[test]
    fn a_rate_spaces_starts_evenly_and_never_saves_idle_time_for_a_burst() {
        for rate in [1, 7, 100, 999, 2500] {
            let (mut flow, endpoint) = limited(Some(rate), Some(1024));
            let starts = drive(&mut flow, endpoint, T0, 5_000);
            let allowed = (rate + 1 + rate / 100) as usize;
            assert!(busiest_second(&starts) <= allowed, "rate {rate}: {} > {allowed}", busiest_second(&starts));
            let total = starts.len() as f64;
            assert!(
                (total - 5.0 * f64::from(rate)).abs() <= f64::from(rate) * 0.02 + 1.0,
                "rate {rate}: {total} in 5 s"
            );
            // Idle for ten seconds, then driven again: no burst of what was not used.
            let later = drive(&mut flow, endpoint, T0 + 15_000, 1_000);
            assert!(later.len() <= allowed, "rate {rate}: {} after idling", later.len());
        }
    }

    #[test]
    fn starts_a_few_milliseconds_late_keep_the_rate_within_the_stated_allowance() {
        // Late by up to the catch-up (9 ms), the rate holds; later than that the allowance
        // still holds, and the rate is what the catch-up can make of it.
        for (rate, lateness_ms) in [(10, 4), (100, 4), (400, 4), (100, 10), (1000, 10), (100, 40), (20, 200)] {
            let (mut flow, endpoint) = limited(Some(rate), Some(1024));
            // A scheduler that wakes 0 to `lateness_ms - 1` ms after each start's time.
            let mut starts = Vec::new();
            let mut now = T0;
            while now < T0 + 10_000 {
                match flow.start(endpoint, now) {
                    Ok(()) => {
                        starts.push(now);
                        flow.finished(endpoint);
                    }
                    Err(held) => now = held.until_ms().unwrap() + (starts.len() as u64 * 7) % lateness_ms,
                }
            }
            let busiest = busiest_second(&starts);
            assert!(busiest <= (rate + 1 + rate / 100) as usize, "rate {rate}: {busiest} in one second");
            let total = starts.len() as f64;
            if lateness_ms <= 10 {
                assert!(
                    (total - 10.0 * f64::from(rate)).abs() <= f64::from(rate) * 0.01 + 1.0,
                    "rate {rate}, late up to {lateness_ms} ms: {total} in 10 s"
                );
            }
        }
    }

    #[test]
    fn the_in_flight_cap_holds_until_a_request_ends_and_is_one_until_the_limits_are_known() {
        let mut flow = Flow::new(8, Duration::from_secs(60));
        let endpoint = EndpointId::new();
        assert_eq!(flow.start(endpoint, T0), Ok(()));
        assert_eq!(flow.start(endpoint, T0), Err(Held::InFlight), "one at a time until known");
        flow.learn(endpoint, FlowLimits { rate_limit: None, max_in_flight: Some(3) });
        assert_eq!(flow.start(endpoint, T0), Ok(()));
        assert_eq!(flow.start(endpoint, T0), Ok(()));
        assert_eq!(flow.start(endpoint, T0), Err(Held::InFlight));
        flow.finished(endpoint);
        assert_eq!(flow.start(endpoint, T0), Ok(()));
        flow.learn(endpoint, FlowLimits::default());
        assert_eq!(flow.in_flight_cap(endpoint), 8, "the server's default");
    }

    #[test]
    fn a_refusal_pauses_for_retry_after_then_the_rate_climbs_back() {
        let (mut flow, endpoint) = limited(None, Some(1024));
        // 200 a second for two seconds, then a 429 asking for 2 s.
        for now in (T0..T0 + 2_000).step_by(5) {
            flow.start(endpoint, now).unwrap();
            flow.finished(endpoint);
        }
        let until = flow.refused(endpoint, T0 + 2_000, Some(Duration::from_secs(2)));
        assert_eq!(until, T0 + 4_000);
        assert_eq!(flow.start(endpoint, T0 + 3_999), Err(Held::Paused(T0 + 4_000)));
        // Then half the refused rate, doubling each second until twice it.
        let first = drive(&mut flow, endpoint, T0 + 4_000, 1_000).len();
        assert!((99..=101).contains(&first), "{first} in the first second");
        let second = drive(&mut flow, endpoint, T0 + 5_000, 1_000).len();
        assert!((198..=202).contains(&second), "{second} in the second");
        let free = drive(&mut flow, endpoint, T0 + 6_000, 10).len();
        assert_eq!(free, 10 * DRIVE_PER_MS, "recovered: no rate after reaching twice the refused one");
    }

    #[test]
    fn refusals_without_retry_after_back_off_adaptively_within_the_cap() {
        let (mut flow, endpoint) = limited(Some(10), None);
        let mut now = T0;
        let mut pauses = Vec::new();
        for _ in 0..9 {
            let until = flow.refused(endpoint, now, None);
            pauses.push(until - now);
            now = until;
        }
        assert_eq!(pauses, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
        flow.accepted(endpoint);
        assert_eq!(flow.refused(endpoint, now, None) - now, 1_000, "an accepted request starts it over");
        assert_eq!(
            flow.refused(endpoint, now, Some(Duration::from_secs(3600))) - now,
            60_000,
            "Retry-After is capped by the setting"
        );
    }

    #[test]
    fn the_state_shown_names_the_hold_on_what_waits_and_a_pause_taken_over_holds() {
        let (mut flow, endpoint) = limited(Some(10), Some(2));
        assert_eq!(flow.state(endpoint, T0, 0).held, None, "nothing waits, nothing is held");
        flow.start(endpoint, T0).unwrap();
        let state = flow.state(endpoint, T0, 3);
        assert_eq!((state.held, state.waiting, state.in_flight), (Some(HoldKind::RateLimit), 3, 1));
        flow.start(endpoint, T0 + 100).unwrap();
        assert_eq!(flow.state(endpoint, T0 + 200, 1).held, Some(HoldKind::MaxInFlight));
        flow.finished(endpoint);
        flow.finished(endpoint);
        flow.refused(endpoint, T0 + 300, Some(Duration::from_secs(5)));
        let state = flow.state(endpoint, T0 + 400, 2);
        assert_eq!((state.held, state.paused_until_ms), (Some(HoldKind::Paused), Some(T0 + 5_300)));
        assert!(state.recovering_rate.is_some(), "a recovery follows the pause");

        // A process taking the endpoint over keeps the pause its sender recorded, then
        // climbs back from one request a second.
        let (mut taken, endpoint) = limited(None, None);
        taken.resume_pause(endpoint, T0 + 2_000, T0);
        assert_eq!(taken.start(endpoint, T0 + 1_999), Err(Held::Paused(T0 + 2_000)));
        assert_eq!(drive(&mut taken, endpoint, T0 + 2_000, 1_000).len(), 1, "one a second at first");
        taken.resume_pause(endpoint, T0 + 1_000, T0 + 5_000);
        assert!(taken.start(endpoint, T0 + 5_000).is_ok(), "a pause already over is not kept");
    }

    #[test]
    fn recovery_stops_at_the_endpoints_own_rate() {
        let (mut flow, endpoint) = limited(Some(50), Some(1024));
        drive(&mut flow, endpoint, T0, 1_000);
        let until = flow.refused(endpoint, T0 + 1_000, Some(Duration::from_secs(1)));
        let first = drive(&mut flow, endpoint, until, 1_000).len();
        assert!((24..=26).contains(&first), "half of 50: {first}");
        let next = drive(&mut flow, endpoint, until + 1_000, 3_000);
        assert!(busiest_second(&next) <= 51, "never above its own rate");
        assert!(flow.endpoints[&endpoint].recovery.is_none(), "recovered");
    }
}
