//! Statistics on Postgres: the metrics endpoint's counts and the per-application delivery statistics.

use crate::ids::EndpointId;
use crate::store::backend::Stats;
use crate::store::model::upkeep::{MAX_PENDING_COUNTED, Outcomes};
use crate::store::model::{DeliveryStats, MetricsSnapshot, Owner, StoreError};

use super::attempts::{ATTEMPT_COLUMNS, attempt_of};
use super::cached::Cached;
use super::{DB_NOW_MS, PgStore, id_of, uuid};

impl Stats for PgStore {
    async fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT count(*), min(due_ms),
                 min(due_ms) FILTER (WHERE locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS})
             FROM queue WHERE NOT parked"
        );
        let queue = client.q_one(&sql, &[]).await?;
        let oldest: Option<i64> = queue.get(1);
        let unclaimed: Option<i64> = queue.get(2);
        let endpoints = client
            .q_one(
                "SELECT count(*) FILTER (WHERE e.record->>'status' = 'disabled'),
                        count(*) FILTER (WHERE e.record->>'status' <> 'disabled' AND h.endpoint IS NOT NULL),
                        count(*) FILTER (WHERE e.record->>'status' <> 'disabled' AND h.endpoint IS NULL)
                 FROM endpoints e LEFT JOIN endpoint_health h ON h.endpoint = e.id",
                &[],
            )
            .await?;
        let size = client.q_one("SELECT pg_database_size(current_database())", &[]).await?;
        Ok(MetricsSnapshot {
            queue_depth: queue.get::<_, i64>(0) as u64,
            oldest_due_ms: oldest.map_or(0, |due| now_ms.saturating_sub(due as u64)),
            disabled_endpoints: endpoints.get::<_, i64>(0) as u64,
            degraded_endpoints: endpoints.get::<_, i64>(1) as u64,
            healthy_endpoints: endpoints.get::<_, i64>(2) as u64,
            store_bytes: size.get::<_, i64>(0) as u64,
            claim_lag_ms: unclaimed.map_or(0, |due| now_ms.saturating_sub(due as u64)),
        })
    }

    async fn delivery_stats(
        &self,
        owner: Owner,
        since: i64,
        until: i64,
        bucket_seconds: i64,
        failures: usize,
    ) -> Result<DeliveryStats, StoreError> {
        let app = uuid(owner.app.as_u128());
        let client = self.client().await?;
        let mut out = DeliveryStats::default();
        let rows = client
            .q(
                "SELECT minute, endpoint, outcome, count FROM delivery_stats
                 WHERE app = $1 AND minute >= $2 AND minute <= $3",
                &[&app, &(since.max(0) / 60), &(until.max(0) / 60)],
            )
            .await?;
        for row in &rows {
            let at = row.get::<_, i64>(0) * 60;
            let bucket = at.div_euclid(bucket_seconds) * bucket_seconds;
            let n = row.get::<_, i64>(3) as u64;
            let add = |o: &mut Outcomes| match row.get::<_, i16>(2) {
                0 => o.succeeded += n,
                2 => o.filtered += n,
                _ => o.failed += n,
            };
            add(out.buckets.entry(bucket).or_default());
            add(out.endpoints.entry(EndpointId(id_of(row.get(1)))).or_default());
        }
        let rows = client
            .q(
                "SELECT e.id, (SELECT count(*) FROM (SELECT 1 FROM queue q WHERE q.endpoint = e.id LIMIT $2) c)
                 FROM endpoints e WHERE e.app = $1",
                &[&app, &(MAX_PENDING_COUNTED as i64)],
            )
            .await?;
        for row in &rows {
            out.pending.insert(EndpointId(id_of(row.get(0))), row.get::<_, i64>(1) as u64);
        }
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE app = $1 AND status IN (2, 3) ORDER BY id DESC LIMIT $2"
        );
        for row in &client.q(&sql, &[&app, &(failures as i64)]).await? {
            out.recent_failures.push(attempt_of(row)?.opened(&self.sealer)?);
        }
        Ok(out)
    }
}
