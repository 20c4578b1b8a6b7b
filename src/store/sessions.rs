//! Stored verification sessions. Every change of a session is written in the same
//! transaction as the event it emits, with that event's deliveries.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::deliveries::QueueKey;
use super::events::{NewEvent, insert_event};
use super::pagination::{ListError, Page, PageRequest, list_page};
use super::{ReopenHint, Store, StoreError, decode_found, encode, tables};
use crate::ids::VerificationSessionId;
use crate::mode::Mode;

const TABLE: &str = "verification_sessions";

/// The statuses a session can still move from; the others are final. The life-cycle
/// rules ([`crate::lifecycle::Move`]) and retention share this one list.
pub const OPEN_STATUSES: &[&str] = &["requires_input", "processing"];

/// A verification session as stored; its JSON is also the API object and event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = VerificationSession)]
pub struct SessionRecord {
    /// `vks_...`
    pub id: VerificationSessionId,
    /// Always `"verification_session"`.
    pub object: String,
    /// `requires_input`, `processing`, `verified`, `failed`, `cancelled` or `expired`.
    pub status: String,
    /// `identity` or `document`.
    #[serde(rename = "type")]
    pub session_type: String,
    /// The caller's own reference, if given.
    pub client_reference_id: Option<String>,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// When it expires by itself if not finished (Unix seconds).
    pub expires_at: i64,
    /// When it was verified (Unix seconds).
    pub completed_at: Option<i64>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// String pairs.
    pub metadata: BTreeMap<String, String>,
}

impl SessionRecord {
    /// The mode of the session.
    pub fn mode(&self) -> Mode {
        if self.livemode { Mode::Live } else { Mode::Test }
    }

    /// Whether the session can still move (its status is one of [`OPEN_STATUSES`]): an
    /// open session is kept by retention until it ends, by a move or by expiring.
    pub fn is_open(&self) -> bool {
        OPEN_STATUSES.contains(&self.status.as_str())
    }

    /// The `verification_session.<status>` event announcing the session as it is now.
    pub fn event(&self, event_type: &str, now: i64) -> Result<NewEvent, StoreError> {
        let data = serde_json::to_value(self).map_err(|source| StoreError::Encode { table: TABLE, source })?;
        NewEvent::new(self.mode(), event_type, &data, now)
    }
}

/// What a session change did.
#[derive(Debug, Clone)]
pub struct SessionChanged {
    /// The session after the change.
    pub session: SessionRecord,
    /// Queue keys of the deliveries its event scheduled.
    pub scheduled: Vec<QueueKey>,
}

impl Store {
    /// Stores a new session, its `verification_session.created` event, and its expiry
    /// at `expires_ms`, in one transaction.
    pub fn create_session(
        &self,
        session: &SessionRecord,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<SessionChanged, StoreError> {
        let event = session.event("verification_session.created", (now_ms / 1000) as i64)?;
        let bytes = encode(TABLE, session)?;
        self.write(|tx| {
            let key = (session.mode().as_u8(), session.id.as_u128());
            tx.open_table(tables::VERIFICATION_SESSIONS)?.insert(key, bytes.as_slice())?;
            tx.open_table(tables::SESSION_EXPIRY)?
                .insert((expires_ms, session.id.as_u128()), session.mode().as_u8())?;
            let mut scheduled = Vec::new();
            insert_event(tx, &event, now_ms, &mut scheduled)?;
            Ok(SessionChanged { session: session.clone(), scheduled })
        })
    }

    /// The session with this id in this mode.
    pub fn session(&self, mode: Mode, id: VerificationSessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|tx| {
            let table = tx.open_table(tables::VERIFICATION_SESSIONS)?;
            decode_found(TABLE, table.get((mode.as_u8(), id.as_u128()))?)
        })
    }

    /// Moves a session: `change` edits it and names the event to emit, or refuses (its
    /// error is returned and nothing is written). The session and its event commit
    /// together. `Ok(None)`: no such session.
    pub fn change_session<E: From<StoreError> + ReopenHint>(
        &self,
        mode: Mode,
        id: VerificationSessionId,
        now_ms: u64,
        change: impl FnOnce(&mut SessionRecord) -> Result<&'static str, E>,
    ) -> Result<Option<SessionChanged>, E> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(StoreError::from)?;
            let key = (mode.as_u8(), id.as_u128());
            let found: Option<SessionRecord> = {
                let table = tx.open_table(tables::VERIFICATION_SESSIONS).map_err(StoreError::from)?;
                decode_found(TABLE, table.get(key).map_err(StoreError::from)?)?
            };
            let Some(mut session) = found else { return Ok(None) };
            let event_type = change(&mut session)?;
            let event = session.event(event_type, (now_ms / 1000) as i64)?;
            let bytes = encode(TABLE, &session)?;
            tx.open_table(tables::VERIFICATION_SESSIONS)
                .map_err(StoreError::from)?
                .insert(key, bytes.as_slice())
                .map_err(StoreError::from)?;
            let mut scheduled = Vec::new();
            insert_event(&tx, &event, now_ms, &mut scheduled)?;
            tx.commit().map_err(StoreError::from)?;
            Ok(Some(SessionChanged { session, scheduled }))
        })
    }

    /// When the next session expiry is due (Unix ms), if any.
    pub fn next_session_expiry(&self) -> Result<Option<u64>, StoreError> {
        self.read(|tx| Ok(tx.open_table(tables::SESSION_EXPIRY)?.first()?.map(|(k, _)| k.value().0)))
    }

    /// Expires, in one transaction, up to `limit` sessions due by `now_ms` that `expire`
    /// (the life-cycle rule) lets expire, each with its event; entries of sessions that
    /// ended otherwise are dropped. Returns how many expired and the deliveries scheduled.
    pub fn expire_due_sessions<R>(
        &self,
        now_ms: u64,
        limit: usize,
        expire: impl Fn(&mut SessionRecord) -> Result<&'static str, R>,
    ) -> Result<(usize, Vec<QueueKey>), StoreError> {
        self.write(|tx| {
            let due: Vec<((u64, u128), u8)> = tx
                .open_table(tables::SESSION_EXPIRY)?
                .range((0, 0)..=(now_ms, u128::MAX))?
                .take(limit)
                .map(|e| e.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<_, _>>()?;
            let mut expired = 0;
            let mut scheduled = Vec::new();
            for (key, mode) in due {
                tx.open_table(tables::SESSION_EXPIRY)?.remove(key)?;
                let mut sessions = tx.open_table(tables::VERIFICATION_SESSIONS)?;
                let found: Option<SessionRecord> = decode_found(TABLE, sessions.get((mode, key.1))?)?;
                let Some(mut session) = found else { continue };
                let Ok(event_type) = expire(&mut session) else { continue };
                sessions.insert((mode, key.1), encode(TABLE, &session)?.as_slice())?;
                drop(sessions);
                let event = session.event(event_type, (now_ms / 1000) as i64)?;
                insert_event(tx, &event, now_ms, &mut scheduled)?;
                expired += 1;
            }
            Ok((expired, scheduled))
        })
    }

    /// One page of a mode's sessions, newest first.
    pub fn list_sessions(&self, mode: Mode, request: PageRequest) -> Result<Page<SessionRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let table = tx.open_table(tables::VERIFICATION_SESSIONS).map_err(StoreError::from)?;
            list_page(&table, TABLE, mode.as_u8(), request, |_| true)
        })
    }
}
