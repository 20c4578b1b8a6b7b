//! Endpoint health on Postgres: each endpoint's current run of failed attempts.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

use crate::ids::EndpointId;
use crate::store::model::{FailureRun, StoreError};

use super::cached::Cached;
use super::{id_of, uuid};

/// The health rows of the endpoints in one batch of results, read (locked) once and
/// written once.
pub(super) struct HealthRuns {
    /// Endpoint → (its run as read, its run after the results seen so far).
    seen: BTreeMap<EndpointId, (Option<FailureRun>, Option<FailureRun>)>,
}

impl HealthRuns {
    pub(super) async fn load(
        client: &impl GenericClient,
        endpoints: impl Iterator<Item = EndpointId>,
    ) -> Result<HealthRuns, StoreError> {
        let mut seen: BTreeMap<EndpointId, (Option<FailureRun>, Option<FailureRun>)> =
            endpoints.map(|e| (e, (None, None))).collect();
        let ids: Vec<uuid::Uuid> = seen.keys().map(|e| uuid(e.as_u128())).collect();
        let rows = client
            .q(
                "SELECT endpoint, since_ms, failures FROM endpoint_health WHERE endpoint = ANY($1)
                 ORDER BY endpoint FOR UPDATE",
                &[&ids],
            )
            .await?;
        for row in rows {
            let run = FailureRun { since_ms: row.get::<_, i64>(1) as u64, failures: row.get::<_, i32>(2) as u32 };
            seen.insert(EndpointId(id_of(row.get(0))), (Some(run), Some(run)));
        }
        Ok(HealthRuns { seen })
    }

    pub(super) fn current(&self, endpoint: EndpointId) -> Option<FailureRun> {
        self.seen.get(&endpoint).and_then(|s| s.1)
    }

    pub(super) fn set(&mut self, endpoint: EndpointId, run: Option<FailureRun>) {
        if let Some(slot) = self.seen.get_mut(&endpoint) {
            slot.1 = run;
        }
    }

    /// Writes what changed.
    pub(super) async fn save(self, client: &impl GenericClient) -> Result<(), StoreError> {
        for (endpoint, (stored, now)) in self.seen {
            let id = uuid(endpoint.as_u128());
            match now {
                _ if now == stored => {}
                Some(run) => {
                    client
                        .exec(
                            "INSERT INTO endpoint_health (endpoint, since_ms, failures) VALUES ($1, $2, $3)
                             ON CONFLICT (endpoint) DO UPDATE SET since_ms = excluded.since_ms, failures = excluded.failures",
                            &[&id, &(run.since_ms as i64), &(run.failures as i32)],
                        )
                        .await?;
                }
                None => {
                    client.exec("DELETE FROM endpoint_health WHERE endpoint = $1", &[&id]).await?;
                }
            }
        }
        Ok(())
    }
}
