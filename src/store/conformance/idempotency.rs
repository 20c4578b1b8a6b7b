//! Idempotency keys: what a request finds under its key decides whether it runs.

use crate::mode::Mode;
use crate::store::model::sessions::{IN_PROGRESS_STALE_SECS, WINDOW_SECS};
use crate::store::model::{IdempotencyBegin, IdempotencyRecord};

use super::each_backend;

#[tokio::test]
async fn what_a_request_finds_under_its_key_decides_whether_it_runs() {
    each_backend(async |store| {
        let (owner, other) = (store.test_owner(Mode::Test).await, store.test_owner(Mode::Live).await);
        let now = 1_000_000;
        let begin = async |key: &str, now| store.begin_idempotent(owner, key.into(), "f".into(), now).await.unwrap();
        assert_eq!(begin("new", now).await, IdempotencyBegin::Run, "nothing stored");
        // Backends differ here by design: on Postgres, processes share the database, so
        // the key is held in it while its request runs; with redb (one process) the API
        // holds it in memory and the store writes nothing.
        let held = if store.is_redb() { IdempotencyBegin::Run } else { IdempotencyBegin::InProgress };
        assert_eq!(begin("new", now + 1).await, held);
        store.abandon_idempotent(owner, "new".into(), "f".into(), now).await.unwrap();
        assert_eq!(begin("new", now + 2).await, IdempotencyBegin::Run, "let go");

        let answer = IdempotencyRecord { fingerprint: "f".into(), status: 201, body: "{\"a\":1}".into(), created: now };
        store.put_idempotency_record(owner, "answered".into(), answer.clone()).await.unwrap();
        assert_eq!(begin("answered", now + 10).await, IdempotencyBegin::Answered(answer.clone()));
        assert_eq!(
            store.begin_idempotent(other, "answered".into(), "f".into(), now).await.unwrap(),
            IdempotencyBegin::Run,
            "per app"
        );
        assert_eq!(begin("answered", now + WINDOW_SECS).await, IdempotencyBegin::Run, "past the window");

        // A request still running elsewhere holds its key until its marker goes stale.
        store.put_idempotency_record(owner, "running".into(), IdempotencyRecord::in_progress("f", now)).await.unwrap();
        assert_eq!(begin("running", now + 10).await, IdempotencyBegin::InProgress);
        assert_eq!(begin("running", now + IN_PROGRESS_STALE_SECS).await, IdempotencyBegin::Run, "its process died");
    })
    .await;
}
