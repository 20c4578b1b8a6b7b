//! Verification sessions: each change stored with the event it emits, and expiry. (Which
//! moves are allowed is `crate::lifecycle`'s, above the store: the changes here are the
//! tests' own.)

use crate::ids::VerificationSessionId;
use crate::mode::Mode;
use crate::store::model::events::test_event;
use crate::store::model::{
    Cursor, NewEvent, Owner, PageRequest, SessionChange, SessionRecord, SessionStatus, SessionType,
};

use super::{each_backend, hook, start, walk};

/// A session of `owner`, made at `now_ms`, expiring at `expires_ms`, not stored.
pub(super) fn session(owner: Owner, status: SessionStatus, now_ms: u64, expires_ms: u64) -> SessionRecord {
    SessionRecord {
        id: VerificationSessionId::new(),
        app: owner.app,
        status,
        session_type: SessionType::Identity,
        client_reference_id: None,
        livemode: owner.mode == Mode::Live,
        expires_at: (expires_ms / 1000) as i64,
        completed_at: None,
        created: (now_ms / 1000) as i64,
        metadata: Default::default(),
    }
}

/// The event of `session`'s move to where it is, at `at_ms`.
pub(super) fn moved(session: &SessionRecord, at_ms: u64) -> NewEvent {
    let data = serde_json::json!({"id": session.id.to_string(), "status": session.status.as_str()});
    test_event(session.owner(), &format!("verification_session.{}", session.status), data, at_ms)
}

/// Moves an open session to `status`, with its event at `at_ms`; refuses an ended one.
pub(super) fn move_to(
    status: SessionStatus,
    at_ms: u64,
) -> impl Fn(&mut SessionRecord) -> Result<NewEvent, SessionStatus> + Copy {
    move |session| {
        if !session.is_open() {
            return Err(session.status);
        }
        session.status = status;
        Ok(moved(session, at_ms))
    }
}

#[tokio::test]
async fn a_session_moves_with_its_event_in_one_write_and_a_refused_move_writes_nothing() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "verification_session.verified").await;
        let now = crate::clock::unix_now_ms();
        let created = session(owner, SessionStatus::RequiresInput, now, now + 3_600_000);
        let made = store.create_session(created.clone(), moved(&created, now), now + 3_600_000, now).await.unwrap();
        assert_eq!((made.session, made.scheduled.len()), (created.clone(), 0), "no endpoint takes its event");
        assert_eq!(store.session(owner, created.id).await.unwrap(), Some(created.clone()));
        assert_eq!(
            store.session(store.test_owner(Mode::Live).await, created.id).await.unwrap(),
            None,
            "not across modes"
        );
        assert_eq!(store.next_session_expiry().await.unwrap(), Some(now + 3_600_000));

        let verify = move_to(SessionStatus::Verified, now + 1);
        let SessionChange::Changed(changed) = store.change_session(owner, created.id, now + 1, verify).await.unwrap()
        else {
            panic!("not changed");
        };
        assert_eq!((changed.session.status, changed.scheduled.len()), (SessionStatus::Verified, 1));
        let job = store.jobs([changed.scheduled.keys()[0].attempt()].to_vec()).await.unwrap().pop().flatten().unwrap();
        assert_eq!(
            (job.attempt.endpoint_id, job.attempt.event_type.as_str()),
            (endpoint.id, "verification_session.verified")
        );
        assert_eq!(store.session(owner, created.id).await.unwrap(), Some(changed.session));
        let again = store.change_session(owner, created.id, now + 2, verify).await.unwrap();
        assert!(matches!(again, SessionChange::Refused(SessionStatus::Verified)), "{again:?}");
        let missing = store.change_session(owner, VerificationSessionId::new(), now, verify).await.unwrap();
        assert!(matches!(missing, SessionChange::Missing), "{missing:?}");
        let elsewhere =
            store.change_session(store.test_owner(Mode::Live).await, created.id, now, verify).await.unwrap();
        assert!(matches!(elsewhere, SessionChange::Missing), "{elsewhere:?}");
        let listed = store.list_events(owner, start(10), Default::default()).await;
        let types: Vec<String> = listed.unwrap().items.iter().map(|e| e.meta.event_type.clone()).collect();
        assert_eq!(
            types,
            ["verification_session.verified", "verification_session.requires_input"],
            "refusals emit nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn due_sessions_expire_in_batches_with_their_events_and_ended_ones_are_left_as_they_are() {
    each_backend(async |store| {
        let now = crate::clock::unix_now_ms();
        let hour = 3_600_000;
        hook(&store, store.test_owner(Mode::Test).await, "verification_session.expired").await;
        let mut made = Vec::new();
        for (n, status) in [SessionStatus::RequiresInput, SessionStatus::Processing, SessionStatus::Verified]
            .into_iter()
            .cycle()
            .take(6)
            .enumerate()
        {
            let expires_ms = now + hour * (1 + n as u64 % 2);
            let record = session(store.test_owner(Mode::Test).await, status, now, expires_ms);
            store.create_session(record.clone(), moved(&record, now), expires_ms, now).await.unwrap();
            made.push(record);
        }
        assert_eq!(store.next_session_expiry().await.unwrap(), Some(now + hour));
        let expire = async |due_ms, limit| {
            store.expire_due_sessions(due_ms, limit, move_to(SessionStatus::Expired, due_ms)).await
        };
        assert_eq!(expire(now + hour - 1, 10).await.unwrap().0, 0, "none due yet");
        // Due at the first hour: sessions 0, 2 and 4, of which 2 is verified.
        assert_eq!(expire(now + hour, 1).await.unwrap().0, 1, "a batch of one");
        assert_eq!(expire(now + hour, 10).await.unwrap().0, 1, "the verified one does not expire");
        assert_eq!(store.next_session_expiry().await.unwrap(), Some(now + 2 * hour), "each due expiry went");
        let (expired, scheduled) = expire(now + 2 * hour, 10).await.unwrap();
        assert_eq!((expired, scheduled.len()), (2, 2), "each with its event");
        assert_eq!(store.next_session_expiry().await.unwrap(), None);
        for record in &made {
            let status = store.session(record.owner(), record.id).await.unwrap().unwrap().status;
            let ended = if record.is_open() { SessionStatus::Expired } else { record.status };
            assert_eq!(status, ended, "{}", record.status);
        }
        // Sessions list newest first, both ways.
        let owner = store.test_owner(Mode::Test).await;
        let page =
            async |request: PageRequest<VerificationSessionId>| store.list_sessions(owner, request).await.unwrap();
        let mut ids: Vec<VerificationSessionId> = made.iter().map(|s| s.id).collect();
        ids.reverse();
        super::assert_walks("sessions", &ids, made[0].id, &page, |s| s.id).await;
        assert_eq!(walk(2, Cursor::After(ids[1]), &page, |s| s.id).await, ids[2..]);
    })
    .await;
}
