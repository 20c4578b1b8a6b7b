//! Aggregates for the dashboard: attempt outcomes per time bucket and per endpoint,
//! pending deliveries per endpoint, and the most recent failures.

use redb::{ReadableTable, ReadableTableMetadata};

use crate::ids::EndpointId;
use crate::store::backend::Stats;
use crate::store::model::upkeep::{MAX_PENDING_COUNTED, Outcomes};
use crate::store::model::{DeliveryStats, EndpointRecord, EndpointStatus, MetricsSnapshot, Owner, StoreError};

use super::tables::{self, OUTCOME_FILTERED, OUTCOME_SUCCEEDED};
use super::{RedbStore, endpoints};

impl Outcomes {
    fn add(&mut self, outcome: u8, n: u64) {
        match outcome {
            OUTCOME_SUCCEEDED => self.succeeded += n,
            OUTCOME_FILTERED => self.filtered += n,
            _ => self.failed += n,
        }
    }
}

impl Stats for RedbStore {
    async fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let oldest = queue.first()?.map(|(k, _)| k.value().0);
            let mut snapshot = MetricsSnapshot {
                queue_depth: queue.len()?,
                oldest_due_ms: oldest.map_or(0, |due| now_ms.saturating_sub(due)),
                store_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
                claim_lag_ms: oldest.map_or(0, |due| now_ms.saturating_sub(due)),
                ..MetricsSnapshot::default()
            };
            let health = tx.open_table(tables::ENDPOINT_HEALTH)?;
            for entry in tx.open_table(tables::ENDPOINTS)?.iter()? {
                let (key, value) = entry?;
                let endpoint: EndpointRecord = super::decode(endpoints::TABLE, value.value())?;
                match endpoint.status {
                    EndpointStatus::Disabled => snapshot.disabled_endpoints += 1,
                    EndpointStatus::Enabled if health.get(key.value().1)?.is_some() => snapshot.degraded_endpoints += 1,
                    EndpointStatus::Enabled => snapshot.healthy_endpoints += 1,
                }
            }
            Ok(snapshot)
        })
    }

    /// Attempt outcomes of an application from `since` to `until` (Unix seconds, minute
    /// resolution) in buckets of `bucket_seconds` (a multiple of 60), pending counts of
    /// the application's endpoints, and its `failures` newest failed attempts. Buckets start at
    /// multiples of `bucket_seconds`.
    async fn delivery_stats(
        &self,
        owner: Owner,
        since: i64,
        until: i64,
        bucket_seconds: i64,
        failures: usize,
    ) -> Result<DeliveryStats, StoreError> {
        self.read(|tx| {
            let m = owner.app.as_u128();
            let mut out = DeliveryStats::default();
            let first_minute = (since.max(0) / 60) as u64;
            let last_minute = (until.max(0) / 60) as u64;
            let stats = tx.open_table(tables::DELIVERY_STATS)?;
            for entry in stats.range((m, first_minute, 0, 0)..=(m, last_minute, u128::MAX, u8::MAX))? {
                let (key, count) = entry?;
                let (_, minute, endpoint, outcome) = key.value();
                let at = minute as i64 * 60;
                let bucket = at.div_euclid(bucket_seconds) * bucket_seconds;
                let n = count.value();
                out.buckets.entry(bucket).or_default().add(outcome, n);
                out.endpoints.entry(EndpointId(endpoint)).or_default().add(outcome, n);
            }

            let endpoints = tx.open_table(tables::ENDPOINTS)?;
            let pending = tx.open_table(tables::ENDPOINT_PENDING)?;
            for entry in endpoints.range((m, 0)..=(m, u128::MAX))? {
                let (key, _) = entry?;
                let endpoint = key.value().1;
                let mut count = 0;
                for item in pending.range((endpoint, 0)..=(endpoint, u128::MAX))? {
                    item?;
                    count += 1;
                    if count >= MAX_PENDING_COUNTED {
                        break;
                    }
                }
                out.pending.insert(EndpointId(endpoint), count);
            }

            let failed = tx.open_table(tables::FAILED_ATTEMPTS)?;
            let attempts = tx.open_table(tables::ATTEMPTS)?;
            for entry in failed.range((m, 0)..=(m, u128::MAX))?.rev() {
                if out.recent_failures.len() >= failures {
                    break;
                }
                let (key, _) = entry?;
                if let Some(record) = super::attempt_record::attempt_in(&attempts, key.value().1, &self.names)? {
                    out.recent_failures.push(record.opened(&self.sealer)?);
                }
            }
            Ok(out)
        })
    }
}
