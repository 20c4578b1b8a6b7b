//! Endpoint health on Postgres: each endpoint's current run of failed attempts.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use crate::ids::EndpointId;
use crate::store::model::{FailureRun, StoreError};

use super::cached::Cached;
use super::{id_of, uuid};

/// The stored runs of failures of `endpoints` (the healthy ones have none), their rows
/// locked for the transaction in endpoint order.
pub(super) async fn lock_health(
    client: &impl GenericClient,
    endpoints: impl Iterator<Item = EndpointId>,
) -> Result<HashMap<EndpointId, FailureRun>, StoreError> {
    let mut ids: Vec<uuid::Uuid> = endpoints.map(|e| uuid(e.as_u128())).collect();
    ids.sort();
    ids.dedup();
    let rows = client
        .q(
            "SELECT endpoint, since_ms, failures FROM endpoint_health WHERE endpoint = ANY($1)
             ORDER BY endpoint FOR UPDATE",
            &[&ids],
        )
        .await?;
    let run = |row: &tokio_postgres::Row| FailureRun {
        since_ms: row.get::<_, i64>(1) as u64,
        failures: row.get::<_, i32>(2) as u32,
    };
    Ok(rows.iter().map(|row| (EndpointId(id_of(row.get(0))), run(row))).collect())
}

/// Writes runs of failures that changed (`None`: the endpoint is healthy again).
pub(super) async fn save_health(
    client: &impl GenericClient,
    changed: Vec<(EndpointId, Option<FailureRun>)>,
) -> Result<(), StoreError> {
    for (endpoint, run) in changed {
        let id = uuid(endpoint.as_u128());
        match run {
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
