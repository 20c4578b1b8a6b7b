//! The event type catalogue.

use crate::event_types::EventTypeRecord;
use crate::mode::Mode;

use super::each_backend;

#[tokio::test]
async fn types_are_stored_per_mode_and_survive_reopening() {
    each_backend(async |store| {
        let record = |mode| EventTypeRecord {
            name: "order.paid".into(),
            mode,
            description: "An order was paid.".into(),
            schema: Some(serde_json::json!({"type": "object"})),
            example: None,
            archived: false,
            created: 7,
            updated: None,
        };
        assert!(store.create_event_type(record(Mode::Test)).await.unwrap());
        assert!(!store.create_event_type(record(Mode::Test)).await.unwrap(), "a name is taken once per mode");
        assert!(store.create_event_type(record(Mode::Live)).await.unwrap(), "the other mode has its own");
        store.replace_event_type(EventTypeRecord { archived: true, ..record(Mode::Test) }).await.unwrap();
        let mut stored = store.reopen().await.event_types().await.unwrap();
        stored.sort_by_key(|r| r.mode.as_u8());
        assert_eq!(stored, vec![EventTypeRecord { archived: true, ..record(Mode::Test) }, record(Mode::Live)]);
    })
    .await;
}
