//! Delivery policy: when the next attempt of a failed delivery goes, and when an endpoint
//! has failed for long enough to be disabled. Pure functions of values, tested without a
//! store; the store applies the decisions (`crate::store::model::attempts::RecordPolicy`).

use std::time::{Duration, UNIX_EPOCH};

use crate::operational;
use crate::store::model::{AppRecord, AttemptResult, FailureRun, HealthVerdict, NewEvent, RecordPolicy, Told};

/// The most a retry delay is stretched at random, as a fraction of it, so retries of
/// many deliveries that failed together do not all arrive at the same instant.
const JITTER_RATIO: f64 = 0.1;

/// The retry schedule and the health rule the engine delivers by.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The delay before each retry (already scaled): the first entry after attempt 1.
    pub schedule: Vec<Duration>,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// Hours an undelivered payload stays available to resend, for endpoints that set no
    /// window of their own.
    pub undelivered_hours: u32,
    /// An endpoint whose run of failed attempts reaches this length is failing
    /// (`message.attempt.failing`, and `recovered` at its next success); `None`: never.
    pub failing_after: Option<u32>,
}

impl RecordPolicy for Policy {
    fn retry_delay(&self, number: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let delay = next_retry_delay(&self.schedule, number, random_fraction())?;
        Some(delay.max(retry_after.unwrap_or_default()))
    }

    fn health(&self, run: Option<FailureRun>, result: &AttemptResult) -> HealthVerdict {
        // The egress proxy or the endpoint's transformation failed, or the transformation
        // cancelled the delivery; the endpoint did not: its health stays as it was.
        if result.unreached || result.cancelled {
            return HealthVerdict { run, disable: None };
        }
        health_after(run, result.succeeded, result.response_status, result.attempted_at_ms, self.disable_after)
    }

    fn undelivered_retention(&self, endpoint_hours: Option<u32>) -> Duration {
        Duration::from_secs(u64::from(endpoint_hours.unwrap_or(self.undelivered_hours)) * 3600)
    }

    fn failing_after(&self) -> Option<u32> {
        self.failing_after
    }

    /// An operational event in the operational application of `app`'s mode (an endpoint
    /// of that application has no `app` record, so it is never told of).
    fn tell(&self, told: &Told, app: &AppRecord, now_ms: u64) -> Option<NewEvent> {
        let (event_type, data) = operational::told(told, app);
        crate::payload::new_event(operational::owner(app.mode), event_type, &data, now_ms).ok()
    }
}

/// The delay after attempt `number` (1-based) of a delivery, if another attempt follows:
/// the schedule's entry, stretched by `fraction` (0–1) of [`JITTER_RATIO`].
pub fn next_retry_delay(schedule: &[Duration], number: u32, fraction: f64) -> Option<Duration> {
    let base = *schedule.get((number as usize).checked_sub(1)?)?;
    Some(base.mul_f64(1.0 + fraction.clamp(0.0, 1.0) * JITTER_RATIO))
}

/// A random number in 0..=1 for the jitter.
fn random_fraction() -> f64 {
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX)
}

/// An endpoint's health after one more attempt made at `at_ms` (Unix ms):
/// a success ends its run of failures; a failure extends it, and disables the endpoint if
/// it answered `410 Gone` or has failed for `disable_after` since the run began.
pub fn health_after(
    run: Option<FailureRun>,
    succeeded: bool,
    response_status: Option<u16>,
    at_ms: u64,
    disable_after: Duration,
) -> HealthVerdict {
    if succeeded {
        return HealthVerdict { run: None, disable: None };
    }
    let run = run.unwrap_or(FailureRun { since_ms: at_ms, failures: 0 });
    let run = FailureRun { since_ms: run.since_ms, failures: run.failures.saturating_add(1) };
    let disable = if response_status == Some(410) {
        Some("the endpoint answered 410 Gone".to_string())
    } else {
        let failing_for = Duration::from_millis(at_ms.saturating_sub(run.since_ms));
        (failing_for >= disable_after).then(|| {
            format!(
                "every attempt failed for {} ({} attempts since {})",
                humantime::format_duration(Duration::from_secs(failing_for.as_secs())),
                run.failures,
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(run.since_ms))
            )
        })
    };
    HealthVerdict { run: Some(run), disable }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn retry_delays_follow_the_schedule_with_up_to_ten_percent_jitter() {
        let schedule = [Duration::from_secs(300), Duration::from_secs(1800)];
        assert_eq!(next_retry_delay(&schedule, 1, 0.0), Some(Duration::from_secs(300)));
        assert_eq!(next_retry_delay(&schedule, 1, 1.0), Some(Duration::from_secs(330)));
        assert_eq!(next_retry_delay(&schedule, 2, 0.5), Some(Duration::from_secs(1890)));
        assert_eq!(next_retry_delay(&schedule, 3, 0.0), None, "after the last retry there is none");
        assert_eq!(next_retry_delay(&[], 1, 0.0), None);
        assert_eq!(next_retry_delay(&schedule, 0, 0.0), None, "attempts count from 1");
        let policy =
            Policy { schedule: schedule.to_vec(), disable_after: HOUR, undelivered_hours: 72, failing_after: None };
        for _ in 0..100 {
            let d = policy.retry_delay(1, None).unwrap();
            assert!(d >= Duration::from_secs(300) && d <= Duration::from_secs(330), "{d:?}");
        }
    }

    #[test]
    fn retry_after_stretches_a_retry_but_never_revives_a_finished_delivery() {
        let policy = Policy {
            schedule: vec![Duration::from_secs(5)],
            disable_after: HOUR,
            undelivered_hours: 72,
            failing_after: None,
        };
        assert_eq!(policy.retry_delay(1, Some(Duration::from_secs(600))), Some(Duration::from_secs(600)));
        assert!(policy.retry_delay(1, Some(Duration::from_secs(1))).unwrap() >= Duration::from_secs(5));
        assert_eq!(policy.retry_delay(2, Some(Duration::from_secs(600))), None);
    }

    #[test]
    fn a_run_of_failures_disables_only_after_the_period_or_at_once_on_410() {
        let start = 1_000_000_000;
        let first = health_after(None, false, Some(500), start, HOUR);
        assert_eq!(first.run, Some(FailureRun { since_ms: start, failures: 1 }));
        assert_eq!(first.disable, None);
        let later = health_after(first.run, false, None, start + 3_599_999, HOUR);
        assert_eq!(later.run.unwrap().failures, 2);
        assert_eq!(later.disable, None, "one millisecond short of the period");
        let due = health_after(later.run, false, Some(503), start + 3_600_000, HOUR);
        let reason = due.disable.expect("disabled after an hour of failures");
        assert!(reason.starts_with("every attempt failed for 1h (3 attempts since "), "{reason}");
        let gone = health_after(None, false, Some(410), start, HOUR);
        assert_eq!(gone.disable.as_deref(), Some("the endpoint answered 410 Gone"));
        let healed = health_after(due.run, true, Some(200), start + 4_000_000, HOUR);
        assert_eq!(healed, HealthVerdict { run: None, disable: None });
    }
}
