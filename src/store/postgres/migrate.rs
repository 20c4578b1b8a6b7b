//! The schema's versions, applied in order at start. Each migration runs in its own
//! transaction with the row recording it, and all of them under one advisory lock, so
//! processes starting together take turns: the first migrates, the others find the
//! schema current.

use deadpool_postgres::Pool;

use crate::store::model::StoreError;

/// The migrations, in order: (version, name, SQL). A released migration never changes;
/// a change to the schema is a new one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "listener holders", include_str!("migrations/0002_listener_holders.sql")),
    (3, "sealed secrets", include_str!("migrations/0003_sealed_secrets.sql")),
    (4, "endpoint senders", include_str!("migrations/0004_endpoint_senders.sql")),
    (5, "reserved entries", include_str!("migrations/0005_reserved_entries.sql")),
    (6, "sender flow", include_str!("migrations/0006_sender_flow.sql")),
    (7, "event trace", include_str!("migrations/0007_event_trace.sql")),
    (8, "attempt sent", include_str!("migrations/0008_attempt_sent.sql")),
    (9, "replays", include_str!("migrations/0009_replays.sql")),
];

/// The advisory lock key held while migrating ("stile" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x7374_696c_6501;

/// The newest schema version this build knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the database's schema up to date (refusing a database migrated by a newer
/// stile) and makes each mode's default application if it has none, both under the lock.
pub(super) async fn migrate(pool: &Pool, now: i64) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    // A session-level lock on this connection: released by the unlock below, or by the
    // database if this process dies.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = match apply(&mut client).await {
        Ok(()) => super::apps::ensure_defaults(&mut client, now).await,
        Err(err) => Err(err),
    };
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result?;
    unlock?;
    Ok(())
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS stile_schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let found: Option<i32> = client.query_one("SELECT max(version) FROM stile_schema_migrations", &[]).await?.get(0);
    let found = found.unwrap_or(0);
    if found > latest() {
        return Err(StoreError::NewerSchema { found: found as u64, known: latest() as u64 });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO stile_schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        tx.commit().await?;
        tracing::info!(version, name, "postgres schema migrated");
    }
    Ok(())
}
