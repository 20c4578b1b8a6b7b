//! Expiring verification sessions: each session whose time is up is moved by the
//! life-cycle rule the caller gives, and the event that move returns is published, all in
//! one commit. A session whose application is being deleted, or that the rule does not
//! let expire (it ended otherwise), only loses its expiry.

use crate::store::model::{NewEvent, Scheduled, SessionRecord, StoreError};

/// A session whose expiry is due.
pub(crate) struct DueSession {
    /// The session as stored.
    pub session: SessionRecord,
    /// Whether its application is being deleted (its session is being purged).
    pub app_deleted: bool,
}

/// What expiring sessions needs of a backend, inside one write transaction.
pub(crate) trait SessionExpiryTx {
    /// Up to `limit` sessions due by `now_ms`, earliest first, each taken off the expiry
    /// schedule (and held by this transaction where others could take it too).
    async fn take_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSession>, StoreError>;

    /// Stores a session that moved.
    async fn save_session(&mut self, session: &SessionRecord) -> Result<(), StoreError>;

    /// Publishes events and queues their first attempts.
    async fn publish(&mut self, events: &[NewEvent], now_ms: u64) -> Result<Scheduled, StoreError>;
}

/// Expires up to `limit` sessions due by `now_ms` with `expire`; returns how many expired
/// and the deliveries queued.
pub(crate) async fn expire_due<R>(
    tx: &mut impl SessionExpiryTx,
    now_ms: u64,
    limit: usize,
    expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R>,
) -> Result<(usize, Scheduled), StoreError> {
    let mut events = Vec::new();
    for DueSession { mut session, app_deleted } in tx.take_due(now_ms, limit).await? {
        if app_deleted {
            continue;
        }
        if let Ok(event) = expire(&mut session) {
            tx.save_session(&session).await?;
            events.push(event);
        }
    }
    let scheduled = tx.publish(&events, now_ms).await?;
    Ok((events.len(), scheduled))
}
