//! What the stile processes on one database do for each other: wake each other when they
//! queue attempts (`LISTEN`/`NOTIFY`), and take turns at the duties one process does for
//! all (retention, purging deleted applications) under an advisory lock that the
//! database releases when the process holding it dies.

use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgStore;
use crate::store::model::StoreError;

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

impl PgStore {
    /// Calls `wake` whenever another process queues attempts (a hint: the scheduler
    /// polls anyway), and once after each reconnection of the listening connection, as
    /// wake-ups sent meanwhile were lost. Runs until the store is dropped.
    pub fn on_queue_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let token = self.token.clone();
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
        runtime.spawn(async move {
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
    pub fn lead(&self) -> Result<bool, StoreError> {
        self.run(async {
            let mut leader = self.leader.lock().await;
            if leader.as_ref().is_some_and(|client| !client.is_closed()) {
                return Ok(true);
            }
            *leader = None;
            let (client, connection) = self.config.connect(self.tls.clone()).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let held: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&DUTIES_LOCK]).await?.get(0);
            if held {
                *leader = Some(client);
            }
            Ok(held)
        })
    }
}

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
