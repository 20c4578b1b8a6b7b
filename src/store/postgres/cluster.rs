//! What the stile processes on one database do for each other: wake each other when they
//! queue attempts (`LISTEN`/`NOTIFY`), and take turns at the duties one process does for
//! all (retention, purging deleted applications) under an advisory lock that the
//! database releases when the process holding it dies.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ids::{DeliveryId, EndpointId};
use crate::store::backend::Backend;
use crate::store::model::{FlowState, HoldKind, StoreError};
use crate::store::sealing::Sealer;

use super::cached::Cached;
use super::{DB_NOW_MS, PgStore, uuid};

/// The channel queue wake-ups are sent on.
pub(super) const QUEUE_CHANNEL: &str = "stile_queue";

/// A new name for a store in wake-ups, so it can skip its own.
pub(super) fn new_token() -> String {
    let mut bytes = [0u8; 8];
    crate::secrets::random_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The advisory lock of the duties one process does for all ("stile" then 2).
const DUTIES_LOCK: i64 = 0x7374_696c_6502;

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Listens for wake-ups on one connection until it fails.
async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    token: &str,
    wake: &(dyn Fn() + Send + Sync),
) -> Result<(), StoreError> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if tx.send(note.payload().to_string()).is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "the listening connection failed");
                    break;
                }
                None => break,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {QUEUE_CHANNEL}")).await?;
    while let Some(sender) = rx.recv().await {
        if sender != token {
            wake();
        }
    }
    driver.abort();
    Ok(())
}

/// Gives the entries reserved for a process whose sendership or listener hold of their
/// endpoint ran out (it died, or stopped sending there) back to every process, waking
/// them. A reservation has no lease of its own: it lasts while its holder's does.
pub(super) async fn release_lapsed_reservations(client: &impl GenericClient) -> Result<(), StoreError> {
    // The lapsed holds that still have entries, found from the two small tables (the
    // queue is only probed, through `queue_reserved`), then released by the same probe.
    let sql = format!(
        "SELECT l.holder, l.endpoint
         FROM (SELECT endpoint, sender AS holder FROM endpoint_senders WHERE until_ms < {DB_NOW_MS}
               UNION
               SELECT endpoint, holder FROM listeners WHERE holder IS NOT NULL AND held_until_ms < {DB_NOW_MS}) l
         WHERE EXISTS (SELECT 1 FROM queue q WHERE q.reserved_for = l.holder AND q.endpoint = l.endpoint AND NOT q.parked)
             AND NOT EXISTS (SELECT 1 FROM endpoint_senders s WHERE s.endpoint = l.endpoint
                             AND s.sender = l.holder AND s.until_ms >= {DB_NOW_MS})
             AND NOT EXISTS (SELECT 1 FROM listeners h WHERE h.endpoint = l.endpoint
                             AND h.holder = l.holder AND h.held_until_ms >= {DB_NOW_MS})"
    );
    let rows = client.q(&sql, &[]).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let (holders, endpoints): (Vec<String>, Vec<uuid::Uuid>) =
        rows.iter().map(|row| (row.get::<_, String>(0), row.get::<_, uuid::Uuid>(1))).unzip();
    client
        .exec(
            "UPDATE queue q SET reserved_for = NULL FROM unnest($1::text[], $2::uuid[]) AS l(holder, endpoint)
             WHERE q.reserved_for = l.holder AND q.endpoint = l.endpoint AND NOT q.parked",
            &[&holders, &endpoints],
        )
        .await?;
    client.exec("SELECT pg_notify($1, '')", &[&QUEUE_CHANNEL]).await?;
    Ok(())
}

/// Endpoints' flows as the columns of `endpoint_senders`, one array each, for `unnest`.
struct FlowColumns {
    endpoints: Vec<uuid::Uuid>,
    paused_until_ms: Vec<Option<i64>>,
    held: Vec<Option<&'static str>>,
    waiting: Vec<i32>,
    in_flight: Vec<i32>,
    recovering_rate: Vec<Option<f64>>,
    as_of_ms: Vec<i64>,
}

impl FlowColumns {
    fn of(flows: &[FlowState]) -> Self {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let count = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            endpoints: flows.iter().map(|f| uuid(f.endpoint.as_u128())).collect(),
            paused_until_ms: flows.iter().map(|f| f.paused_until_ms.map(ms)).collect(),
            held: flows.iter().map(|f| f.held.map(HoldKind::as_str)).collect(),
            waiting: flows.iter().map(|f| count(f.waiting)).collect(),
            in_flight: flows.iter().map(|f| count(f.in_flight)).collect(),
            recovering_rate: flows.iter().map(|f| f.recovering_rate).collect(),
            as_of_ms: flows.iter().map(|f| ms(f.as_of_ms)).collect(),
        }
    }
}

impl PgStore {
    /// Extends the claims on `held`, the holds on `listening` and the sending to
    /// `sending`, for the claim lease.
    async fn renew_own(
        &self,
        client: &deadpool_postgres::Client,
        held: Vec<DeliveryId>,
        listening: Vec<EndpointId>,
        sending: Vec<FlowState>,
    ) -> Result<(), StoreError> {
        if held.is_empty() && listening.is_empty() && sending.is_empty() {
            return Ok(());
        }
        let lease = self.claim_lease.as_millis() as i64;
        let entries: Vec<uuid::Uuid> = held.iter().map(|id| uuid(id.as_u128())).collect();
        let endpoints: Vec<uuid::Uuid> = listening.iter().map(|id| uuid(id.as_u128())).collect();
        if !sending.is_empty() {
            let flows = FlowColumns::of(&sending);
            let sql = format!(
                "UPDATE endpoint_senders s SET until_ms = {DB_NOW_MS} + $2, paused_until_ms = f.paused_until_ms,
                     held = f.held, waiting = f.waiting, in_flight = f.in_flight,
                     recovering_rate = f.recovering_rate, as_of_ms = f.as_of_ms
                 FROM unnest($3::uuid[], $4::int8[], $5::text[], $6::int4[], $7::int4[], $8::float8[], $9::int8[])
                     AS f(endpoint, paused_until_ms, held, waiting, in_flight, recovering_rate, as_of_ms)
                 WHERE s.endpoint = f.endpoint AND s.sender = $1"
            );
            client
                .exec(
                    &sql,
                    &[
                        &self.token,
                        &lease,
                        &flows.endpoints,
                        &flows.paused_until_ms,
                        &flows.held,
                        &flows.waiting,
                        &flows.in_flight,
                        &flows.recovering_rate,
                        &flows.as_of_ms,
                    ],
                )
                .await?;
        }
        if !entries.is_empty() {
            let sql = format!(
                "UPDATE queue SET locked_until_ms = {DB_NOW_MS} + $2
                 WHERE attempt = ANY($1) AND locked_until_ms IS NOT NULL"
            );
            client.exec(&sql, &[&entries, &lease]).await?;
        }
        if !endpoints.is_empty() {
            let sql = format!(
                "UPDATE listeners SET held_until_ms = {DB_NOW_MS} + $3 WHERE endpoint = ANY($1) AND holder = $2"
            );
            client.exec(&sql, &[&endpoints, &self.token, &lease]).await?;
        }
        Ok(())
    }
}

impl Backend for PgStore {
    fn undelivered_hours(&self) -> u32 {
        self.undelivered_hours.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_undelivered_hours(&self, hours: u32) {
        self.undelivered_hours.store(hours, std::sync::atomic::Ordering::Relaxed);
    }

    fn bear_births(&self) {
        self.bears_births.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn bears_births(&self) -> bool {
        self.bears_births.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// How many transactions ran again after the database aborted them for a deadlock or
    /// a serialization failure (each costs a wait: a deadlock is found after the
    /// database's `deadlock_timeout`, 1 s by default).
    fn conflicts_rerun(&self) -> Option<u64> {
        Some(self.conflicts_rerun.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn pool_status(&self) -> Option<(usize, usize, usize)> {
        let status = self.pool.status();
        Some((status.size - status.available, status.available, status.waiting))
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    fn claim_renewal(&self) -> Option<Duration> {
        Some(self.claim_lease / 3)
    }

    /// Renews this process's claims and holds, then gives back to everyone what was
    /// reserved for holders that lapsed (a failure there is logged: it must not stop the
    /// renewals, and the next renewal tries again).
    async fn renew_claims(
        &self,
        held: Vec<DeliveryId>,
        listening: Vec<EndpointId>,
        sending: Vec<FlowState>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.renew_own(&client, held, listening, sending).await?;
        if let Err(err) = release_lapsed_reservations(&client).await {
            tracing::warn!(error = %err, "cannot give back the entries reserved for lapsed holders; trying again later");
        }
        Ok(())
    }

    /// One statement takes every endpoint no live process sends to (or this one does);
    /// the entries of the others are reserved for their senders, as a parking hands a
    /// listener endpoint's attempts to the process with its CLI.
    async fn send_for(
        &self,
        wanted: Vec<(EndpointId, Vec<DeliveryId>)>,
    ) -> Result<Vec<(EndpointId, Option<u64>)>, StoreError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let lease = self.claim_lease.as_millis() as i64;
        // In one order, so two processes taking overlapping sets cannot deadlock.
        let mut endpoints: Vec<uuid::Uuid> = wanted.iter().map(|(id, _)| uuid(id.as_u128())).collect();
        endpoints.sort();
        let mut client = self.client().await?;
        // The takeover and the move of the old sender's entries commit together, so no
        // entry is left reserved for a sender that no longer is one.
        let tx = client.transaction().await?;
        // A renewal by the same sender, or a takeover: what waited or was in flight at
        // the sender taken over from is gone (its pause holds: the new sender keeps it).
        let same = "endpoint_senders.sender = EXCLUDED.sender";
        let sql = format!(
            "WITH old AS (SELECT endpoint, sender, paused_until_ms FROM endpoint_senders
                          WHERE endpoint = ANY($1) AND sender <> $2),
             taken AS (
                 INSERT INTO endpoint_senders (endpoint, sender, until_ms)
                 SELECT e, $2, {DB_NOW_MS} + $3 FROM unnest($1::uuid[]) AS e
                 ON CONFLICT (endpoint) DO UPDATE SET sender = EXCLUDED.sender, until_ms = EXCLUDED.until_ms,
                     held = CASE WHEN {same} THEN endpoint_senders.held END,
                     waiting = CASE WHEN {same} THEN endpoint_senders.waiting ELSE 0 END,
                     in_flight = CASE WHEN {same} THEN endpoint_senders.in_flight ELSE 0 END,
                     recovering_rate = CASE WHEN {same} THEN endpoint_senders.recovering_rate END
                 WHERE {same} OR endpoint_senders.until_ms < {DB_NOW_MS}
                 RETURNING endpoint)
             SELECT taken.endpoint, old.sender, old.paused_until_ms FROM taken LEFT JOIN old USING (endpoint)"
        );
        let rows = tx.q(&sql, &[&endpoints, &self.token, &lease]).await?;
        // Each endpoint taken, with the pause a sender before this process left on it.
        let mine: std::collections::HashMap<uuid::Uuid, Option<u64>> = rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, Option<i64>>(2).and_then(|ms| u64::try_from(ms).ok())))
            .collect();
        // A sendership taken over from a process whose lease ran out brings the entries
        // set aside for that process with it.
        let (from, at): (Vec<String>, Vec<uuid::Uuid>) =
            rows.iter().filter_map(|row| Some((row.get::<_, Option<String>>(1)?, row.get::<_, uuid::Uuid>(0)))).unzip();
        if !from.is_empty() {
            tx.exec(
                "UPDATE queue q SET reserved_for = $3 FROM unnest($1::text[], $2::uuid[]) AS o(sender, endpoint)
                     WHERE q.reserved_for = o.sender AND q.endpoint = o.endpoint AND NOT q.parked",
                &[&from, &at, &self.token],
            )
            .await?;
        }
        tx.commit().await?;
        // The entries this process holds of its endpoints are reserved for it: out of the
        // other processes' claims while they wait for the endpoint's flow.
        let kept: Vec<uuid::Uuid> = wanted
            .iter()
            .filter(|(endpoint, _)| mine.contains_key(&uuid(endpoint.as_u128())))
            .flat_map(|(_, entries)| entries.iter().map(|entry| uuid(entry.as_u128())))
            .collect();
        if !kept.is_empty() {
            client
                .exec(
                    "UPDATE queue SET reserved_for = $2 WHERE attempt = ANY($1) AND reserved_for IS NULL",
                    &[&kept, &self.token],
                )
                .await?;
        }
        let (attempts, others): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = wanted
            .iter()
            .filter(|(endpoint, _)| !mine.contains_key(&uuid(endpoint.as_u128())))
            .flat_map(|(endpoint, entries)| {
                entries.iter().map(move |entry| (uuid(entry.as_u128()), uuid(endpoint.as_u128())))
            })
            .unzip();
        if !attempts.is_empty() {
            client
                .exec(
                    "UPDATE queue q SET reserved_for = s.sender, locked_until_ms = NULL
                     FROM unnest($1::uuid[], $2::uuid[]) AS h(attempt, endpoint)
                     JOIN endpoint_senders s ON s.endpoint = h.endpoint
                     WHERE q.attempt = h.attempt",
                    &[&attempts, &others],
                )
                .await?;
            client.exec("SELECT pg_notify($1, $2)", &[&QUEUE_CHANNEL, &self.token]).await?;
        }
        Ok(wanted.into_iter().filter_map(|(id, _)| Some((id, *mine.get(&uuid(id.as_u128()))?))).collect())
    }

    /// The flow another process, its sender, recorded at its last renewal (this
    /// process's own shows on its scheduler's board); only the pause if that sender
    /// stopped renewing (it died, or has nothing left to send there: what it recorded
    /// waiting or in flight is gone, and the pause holds, as the next sender keeps it).
    async fn flow_state(&self, endpoint: EndpointId) -> Result<Option<FlowState>, StoreError> {
        let client = self.client().await?;
        // A sender renews every third of the lease (its scheduler looks at least every
        // second): a lease with less left than that, and some margin, was not renewed.
        let renewal = self.claim_lease / 3;
        let renewed_within =
            self.claim_lease.saturating_sub(renewal * 3 / 2 + Duration::from_secs(1)).as_millis() as i64;
        let sql = format!(
            "SELECT until_ms >= {DB_NOW_MS} + $3, paused_until_ms, held, waiting, in_flight, recovering_rate, as_of_ms
             FROM endpoint_senders WHERE endpoint = $1 AND sender <> $2 AND as_of_ms IS NOT NULL"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&uuid(endpoint.as_u128()), &self.token, &renewed_within];
        let Some(row) = client.q(&sql, &params).await?.into_iter().next() else {
            return Ok(None);
        };
        let live: bool = row.get(0);
        let unsigned = |v: i32| u32::try_from(v).unwrap_or(0);
        let paused_until_ms = row.get::<_, Option<i64>>(1).and_then(|ms| u64::try_from(ms).ok());
        let mut state = FlowState {
            endpoint,
            held: row.get::<_, Option<String>>(2).as_deref().and_then(HoldKind::parse),
            paused_until_ms,
            waiting: unsigned(row.get(3)),
            in_flight: unsigned(row.get(4)),
            recovering_rate: row.get(5),
            as_of_ms: row.get::<_, i64>(6).try_into().unwrap_or(0),
        };
        if !live {
            state = FlowState { held: None, waiting: 0, in_flight: 0, recovering_rate: None, ..state };
        }
        Ok(Some(state))
    }

    async fn let_go(&self, held: Vec<DeliveryId>) -> Result<(), StoreError> {
        let ids: Vec<uuid::Uuid> = held.iter().map(|id| uuid(id.as_u128())).collect();
        let client = self.client().await?;
        // Lapsed at once: the next process with a delivery for the endpoint takes it over
        // (and keeps its pause).
        client.exec("UPDATE endpoint_senders SET until_ms = 0 WHERE sender = $1", &[&self.token]).await?;
        if !ids.is_empty() {
            client
                .exec(
                    "UPDATE queue SET locked_until_ms = NULL WHERE attempt = ANY($1) AND locked_until_ms IS NOT NULL",
                    &[&ids],
                )
                .await?;
        }
        client
            .exec("UPDATE queue SET reserved_for = NULL WHERE reserved_for = $1 AND NOT parked", &[&self.token])
            .await?;
        client.exec("SELECT pg_notify($1, $2)", &[&QUEUE_CHANNEL, &self.token]).await?;
        Ok(())
    }

    async fn release_claims(&self, entries: Vec<DeliveryId>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = entries.iter().map(|id| uuid(id.as_u128())).collect();
        let client = self.client().await?;
        let sql = format!(
            "UPDATE queue q SET locked_until_ms = NULL, reserved_for = coalesce(q.reserved_for,
                 (SELECT s.sender FROM endpoint_senders s WHERE s.endpoint = q.endpoint AND s.until_ms >= {DB_NOW_MS}),
                 (SELECT l.holder FROM listeners l WHERE l.endpoint = q.endpoint AND l.held_until_ms >= {DB_NOW_MS}))
             WHERE q.attempt = ANY($1) RETURNING q.reserved_for"
        );
        let rows = client.q(&sql, &[&ids]).await?;
        // Others hear of what they may now take: entries reserved for another process, or
        // for none (born ones were never told of).
        if rows.iter().any(|row| row.get::<_, Option<String>>(0).is_none_or(|holder| holder != self.token)) {
            client.exec("SELECT pg_notify($1, $2)", &[&QUEUE_CHANNEL, &self.token]).await?;
        }
        Ok(())
    }

    /// Records that this process holds the CLI connection of listener endpoint `id` (for
    /// the claim lease, renewed by [`PgStore::renew_claims`]): the other processes hand
    /// it the endpoint's attempts rather than park them. Those handed to the process that
    /// held it before come here too.
    async fn hold_listener(&self, id: EndpointId) -> Result<(), StoreError> {
        let lease = self.claim_lease.as_millis() as i64;
        let id = uuid(id.as_u128());
        let client = self.client().await?;
        let sql = format!("UPDATE listeners SET holder = $2, held_until_ms = {DB_NOW_MS} + $3 WHERE endpoint = $1");
        client.exec(&sql, &[&id, &self.token, &lease]).await?;
        client
            .exec(
                "UPDATE queue SET reserved_for = $2
                 WHERE endpoint = $1 AND reserved_for IS NOT NULL AND reserved_for <> $2 AND NOT parked",
                &[&id, &self.token],
            )
            .await?;
        Ok(())
    }

    /// Records that this process no longer holds listener endpoint `id`'s connection; the
    /// entries handed to it go back to everyone (who parks them until a CLI connects).
    async fn release_listener(&self, id: EndpointId) -> Result<(), StoreError> {
        let id = uuid(id.as_u128());
        let client = self.client().await?;
        client
            .exec(
                "UPDATE listeners SET holder = NULL, held_until_ms = NULL WHERE endpoint = $1 AND holder = $2",
                &[&id, &self.token],
            )
            .await?;
        client
            .exec(
                "UPDATE queue SET reserved_for = NULL WHERE endpoint = $1 AND reserved_for = $2 AND NOT parked",
                &[&id, &self.token],
            )
            .await?;
        Ok(())
    }

    /// Calls `wake` whenever another process queues attempts (a hint: the scheduler
    /// polls anyway), and once after each reconnection of the listening connection, as
    /// wake-ups sent meanwhile were lost. Runs until the store is dropped.
    fn on_queue_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let token = self.token.clone();
        self.runtime().spawn(async move {
            let mut first = true;
            loop {
                if !first {
                    wake();
                }
                first = false;
                if let Err(err) = listen(&config, &tls, &token, &*wake).await {
                    tracing::warn!(error = %err, "lost the postgres connection that hears of queued attempts; reconnecting");
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }

    /// Whether this process does the duties one process does for all: it holds (or now
    /// takes) their advisory lock on a connection of its own. Another process takes
    /// them over when this one's connection ends.
    async fn lead(&self) -> Result<bool, StoreError> {
        let mut leader = self.leader.lock().await;
        if leader.as_ref().is_some_and(|client| !client.is_closed()) {
            return Ok(true);
        }
        *leader = None;
        let client = self.own_connection().await?;
        let held: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&DUTIES_LOCK]).await?.get(0);
        if held {
            *leader = Some(client);
        }
        Ok(held)
    }
}
