//! Stored verification sessions. Every change of a session is written in the same
//! transaction as the event it emits, with that event's deliveries. The life-cycle rules
//! (which moves are allowed, which event each emits) are `crate::lifecycle`'s.

use redb::{ReadableDatabase, ReadableTable};

use crate::ids::VerificationSessionId;
use crate::store::backend::Sessions;
use crate::store::model::events::filtered_of;
use crate::store::model::{
    ListError, NewEvent, Owner, Page, PageRequest, Scheduled, SessionChange, SessionChanged, SessionRecord, StoreError,
};
use crate::store::rules;
use crate::store::rules::expire::{DueSession, SessionExpiryTx, expire_due};

use super::events::publish_in;
use super::pagination::list_page;
use super::{RedbStore, Tx, decode_found, encode, tables};

const TABLE: &str = "verification_sessions";

impl Sessions for RedbStore {
    async fn session(&self, owner: Owner, id: VerificationSessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|tx| {
            let table = tx.open_table(tables::VERIFICATION_SESSIONS)?;
            decode_found(TABLE, table.get((owner.app.as_u128(), id.as_u128()))?)
        })
    }

    async fn next_session_expiry(&self) -> Result<Option<u64>, StoreError> {
        self.read(|tx| Ok(tx.open_table(tables::SESSION_EXPIRY)?.first()?.map(|(k, _)| k.value().0)))
    }

    async fn list_sessions(
        &self,
        owner: Owner,
        request: PageRequest<VerificationSessionId>,
    ) -> Result<Page<SessionRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let table = tx.open_table(tables::VERIFICATION_SESSIONS).map_err(StoreError::from)?;
            list_page(&table, TABLE, owner.app.as_u128(), request, |_| true)
        })
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        event: NewEvent,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<SessionChanged, StoreError> {
        let bytes = encode(TABLE, &session)?;
        self.write(|tx| {
            let key = (session.app.as_u128(), session.id.as_u128());
            tx.open_table(tables::VERIFICATION_SESSIONS)?.insert(key, bytes.as_slice())?;
            tx.open_table(tables::SESSION_EXPIRY)?.insert((expires_ms, session.id.as_u128()), session.app.as_u128())?;
            let (published, scheduled) = publish_in(tx, self, std::slice::from_ref(&event), now_ms)?;
            Ok(SessionChanged { session: session.clone(), scheduled, filtered: filtered_of(&published) })
        })
    }

    async fn change_session<R: Send + 'static>(
        &self,
        owner: Owner,
        id: VerificationSessionId,
        now_ms: u64,
        change: impl FnOnce(&mut SessionRecord) -> Result<NewEvent, R> + Send + 'static,
    ) -> Result<SessionChange<R>, StoreError> {
        self.write(|tx| {
            let key = (owner.app.as_u128(), id.as_u128());
            let mut sessions = tx.open_table(tables::VERIFICATION_SESSIONS)?;
            let found: Option<SessionRecord> = decode_found(TABLE, sessions.get(key)?)?;
            let Some(mut session) = found else { return Ok(SessionChange::Missing) };
            let event = match change(&mut session) {
                Ok(event) => event,
                Err(refusal) => return Ok(SessionChange::Refused(refusal)),
            };
            sessions.insert(key, encode(TABLE, &session)?.as_slice())?;
            drop(sessions);
            let (published, scheduled) = publish_in(tx, self, std::slice::from_ref(&event), now_ms)?;
            Ok(SessionChange::Changed(SessionChanged { session, scheduled, filtered: filtered_of(&published) }))
        })
    }

    async fn expire_due_sessions<R: Send + 'static>(
        &self,
        now_ms: u64,
        limit: usize,
        expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R> + Send + Sync + 'static,
    ) -> Result<(usize, Scheduled), StoreError> {
        self.write(|tx| rules::settle(expire_due(&mut Tx { tx, store: self }, now_ms, limit, expire)))
    }
}

impl SessionExpiryTx for Tx<'_> {
    async fn take_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSession>, StoreError> {
        let mut expiry = self.tx.open_table(tables::SESSION_EXPIRY)?;
        let keys: Vec<((u64, u128), u128)> = expiry
            .range((0, 0)..=(now_ms, u128::MAX))?
            .take(limit)
            .map(|e| e.map(|(k, v)| (k.value(), v.value())))
            .collect::<Result<_, _>>()?;
        let sessions = self.tx.open_table(tables::VERIFICATION_SESSIONS)?;
        let mut due = Vec::with_capacity(keys.len());
        for (key, app) in keys {
            expiry.remove(key)?;
            let found: Option<SessionRecord> = decode_found(TABLE, sessions.get((app, key.1))?)?;
            if let Some(session) = found {
                due.push(DueSession { session, app_deleted: super::app_deletion::is_deleted(self.tx, app)? });
            }
        }
        Ok(due)
    }

    async fn save_session(&mut self, session: &SessionRecord) -> Result<(), StoreError> {
        let key = (session.app.as_u128(), session.id.as_u128());
        self.tx.open_table(tables::VERIFICATION_SESSIONS)?.insert(key, encode(TABLE, session)?.as_slice())?;
        Ok(())
    }

    async fn publish(&mut self, events: &[NewEvent], now_ms: u64) -> Result<Scheduled, StoreError> {
        Ok(publish_in(self.tx, self.store, events, now_ms)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::SessionStatus;

    #[test]
    fn a_session_stored_by_the_previous_release_still_reads() {
        // The previous release stored the API object itself, `object` and all, with the
        // status as a string.
        let stored = br#"{"id":"vks_01JD8Y6QK4N2V7X3ZB5C9R1T0M","app":"app_01JD8Y6QK4N2V7X3ZB5C9R1T0M","object":"verification_session","status":"requires_input","type":"identity","client_reference_id":null,"livemode":false,"expires_at":7,"completed_at":null,"created":1,"metadata":{"a":"b"}}"#;
        let record: SessionRecord = super::super::decode(TABLE, stored).unwrap();
        assert_eq!(record.status, SessionStatus::RequiresInput);
        assert!(record.is_open());
        assert_eq!(record.metadata["a"], "b");
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written["status"], "requires_input", "statuses are stored as before");
    }
}
