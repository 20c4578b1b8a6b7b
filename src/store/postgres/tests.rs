//! Tests of what only the Postgres backend has, against a throwaway cluster (skipped,
//! loudly, where PostgreSQL is not installed; failed under `CI=true`): several processes
//! on one database (claims, leases, leadership, listener holds, deadlocks), its schema
//! migrations, its payload key and TLS. What both backends do is `store/conformance/`'s.

use std::sync::Arc;
use std::time::Duration;

use crate::ids::DeliveryId;
use crate::mode::Mode;
use crate::store::backend::{Apps, Attempts, Backend, Endpoints, Events, Jobs, Listeners, Queue, Scheduling};
use crate::store::conformance::{TWO_RETRIES, fresh_database, invoices};
use crate::store::model::{AttemptResult, Cursor, EndpointRecord, FlowState, HoldKind, PageRequest};

use super::throwaway::ThrowawayPostgres;
use super::{PgOptions, PgStore};

#[tokio::test]
async fn processes_starting_together_migrate_once_and_share_one_default_app_per_mode() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let (a, b, c) = tokio::join!(PgStore::connect(&options), PgStore::connect(&options), PgStore::connect(&options));
    let stores: Vec<PgStore> = [a, b, c].into_iter().map(|store| store.expect("connects")).collect();
    let defaults = stores[0].default_apps().await.unwrap();
    for store in &stores[1..] {
        assert_eq!(store.default_apps().await.unwrap(), defaults, "one default app per mode, not one per process");
    }
    assert_ne!(defaults.test, defaults.live);
    let page = stores[1].list_apps(Mode::Test, PageRequest { limit: 10, cursor: Cursor::Start }).await.unwrap();
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    // The schema's version is recorded once.
    drop(stores);
    let again = PgStore::connect(&options).await.expect("reconnects to a migrated database");
    assert_eq!(again.default_apps().await.unwrap(), defaults);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_stile_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let store = PgStore::connect(&options).await.unwrap();
    async {
        let client = store.client().await?;
        client.execute("INSERT INTO stile_schema_migrations (version, name) VALUES (99, 'future')", &[]).await?;
        Ok::<_, crate::store::StoreError>(())
    }
    .await
    .unwrap();
    drop(store);
    let Err(err) = PgStore::connect(&options).await else { panic!("a newer schema was accepted") };
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn a_second_payload_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    drop(PgStore::connect(&options).await.unwrap());
    let other = tempfile::tempdir().unwrap();
    let elsewhere = PgOptions { key_file: other.path().join("payload.key"), ..options.clone() };
    let Err(err) = PgStore::connect(&elsewhere).await else { panic!("a process without the database's key started") };
    assert!(err.to_string().contains("payload"), "{err}");
}

#[tokio::test]
async fn one_process_leads_and_another_takes_over_when_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let first = PgStore::connect(&options).await.unwrap();
    let second = PgStore::connect(&options).await.unwrap();
    assert!(first.lead().await.unwrap());
    assert!(first.lead().await.unwrap(), "it keeps the lead");
    assert!(!second.lead().await.unwrap(), "one leader at a time");
    drop(first); // its connection ends, as a dead process's would
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !second.lead().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "the lead never moved");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn queuing_in_one_process_wakes_the_others_and_released_claims_are_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let publisher = PgStore::connect(&options).await.unwrap();
    let other = PgStore::connect(&options).await.unwrap();
    let (woken, wakes) = std::sync::mpsc::channel();
    let woken = std::sync::Mutex::new(woken);
    other.on_queue_change(Box::new(move || {
        let _ = woken.lock().unwrap().send(());
    }));
    let owner = publisher.test_owner(Mode::Test).await;
    publisher.insert_endpoint(EndpointRecord::for_test(owner, "https://example.com/hook", "*").clone()).await.unwrap();
    // The listener connects in the background: publish until it hears one.
    let now = 1_700_000_000_000;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        let _ = publisher.publish_events(invoices(owner, 1, now + n).to_vec(), now).await.unwrap();
        n += 1;
        if wakes.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no wake-up reached the other process");
    }
    // Claimed entries are offered to nobody until released (or their lease runs out).
    let claimed = other.due_entries(None, now, 100, Vec::new()).await.unwrap();
    assert_eq!(claimed.len() as u64, n);
    assert!(publisher.due_entries(None, now, 100, Vec::new()).await.unwrap().is_empty());
    assert_eq!(publisher.next_due_after(None, Vec::new()).await.unwrap(), None, "nothing unclaimed is due");
    let ids: Vec<DeliveryId> = claimed.iter().map(|e| e.key.attempt()).collect();
    other.renew_claims(ids.clone(), vec![], vec![]).await.unwrap();
    assert!(publisher.due_entries(None, now, 100, Vec::new()).await.unwrap().is_empty(), "renewed, still held");
    other.release_claims(ids[..1].to_vec()).await.unwrap();
    assert_eq!(
        publisher.due_entries(None, now, 100, Vec::new()).await.unwrap().len(),
        1,
        "a released entry is claimed again"
    );
}

#[tokio::test]
async fn a_claim_that_is_not_renewed_runs_out_and_another_process_takes_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let options = PgOptions { claim_lease: Duration::from_secs(1), ..options };
    let dead = PgStore::connect(&options).await.unwrap();
    let alive = PgStore::connect(&options).await.unwrap();
    let owner = dead.test_owner(Mode::Test).await;
    dead.insert_endpoint(EndpointRecord::for_test(owner, "https://example.com/hook", "*").clone()).await.unwrap();
    let now = 1_700_000_000_000;
    let _ = dead.publish_events(invoices(owner, 1, now).to_vec(), now).await.unwrap();
    assert_eq!(dead.due_entries(None, now, 10, Vec::new()).await.unwrap().len(), 1);
    drop(dead);
    assert!(alive.due_entries(None, now, 10, Vec::new()).await.unwrap().is_empty(), "still held");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if alive.due_entries(None, now, 10, Vec::new()).await.unwrap().len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the lease never ran out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn one_process_sends_to_an_endpoint_and_the_others_hand_it_their_entries_until_its_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let options = PgOptions { claim_lease: Duration::from_secs(1), ..options };
    let sender = PgStore::connect(&options).await.unwrap();
    let other = PgStore::connect(&options).await.unwrap();
    let owner = sender.test_owner(Mode::Test).await;
    let record = EndpointRecord::for_test(owner, "https://example.com/hook", "*");
    sender.insert_endpoint(record.clone()).await.unwrap();
    let endpoint = record.id;
    let now = 1_700_000_000_000;
    let _ = sender.publish_events(invoices(owner, 2, now).to_vec(), now).await.unwrap();

    assert_eq!(sender.send_for(vec![(endpoint, vec![])]).await.unwrap(), [(endpoint, None)]);
    assert_eq!(sender.send_for(vec![(endpoint, vec![])]).await.unwrap(), [(endpoint, None)], "kept by its sender");
    // The other process claimed the entries, but another sends to their endpoint: handed.
    let claimed = other.due_entries(None, now, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let ids: Vec<DeliveryId> = claimed.iter().map(|e| e.key.attempt()).collect();
    assert!(other.send_for(vec![(endpoint, ids.clone())]).await.unwrap().is_empty());
    assert!(other.due_entries(None, now, 10, Vec::new()).await.unwrap().is_empty(), "reserved for the sender");
    let mut handed: Vec<DeliveryId> =
        sender.due_entries(None, now, 10, Vec::new()).await.unwrap().iter().map(|e| e.key.attempt()).collect();
    handed.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(handed, ids, "the sender claims what it was handed");

    // Renewed, it stays the sender, and what it records of the endpoint's flow (a pause,
    // two deliveries waiting) every other process reads; its own board is its own.
    let paused_until = now + 60_000;
    let flow = FlowState {
        endpoint,
        held: Some(HoldKind::Paused),
        paused_until_ms: Some(paused_until),
        waiting: 2,
        in_flight: 0,
        recovering_rate: Some(1.0),
        as_of_ms: now,
    };
    sender.renew_claims(vec![], vec![], vec![flow]).await.unwrap();
    assert_eq!(other.flow_state(endpoint).await.unwrap(), Some(flow));
    assert_eq!(sender.flow_state(endpoint).await.unwrap(), None, "the sender shows its own from memory");
    assert!(other.send_for(vec![(endpoint, vec![])]).await.unwrap().is_empty());
    // Left to run out (as a dead process's), it moves, and the pause goes with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let taken = other.send_for(vec![(endpoint, vec![])]).await.unwrap();
        if !taken.is_empty() {
            break taken;
        }
        assert!(std::time::Instant::now() < deadline, "the sender's lease never ran out");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(taken, [(endpoint, Some(paused_until))], "the new sender keeps the pause");
    let lapsed = FlowState { held: None, waiting: 0, recovering_rate: None, ..flow };
    assert_eq!(sender.flow_state(endpoint).await.unwrap(), Some(lapsed), "only the pause is left of a lapsed sender's");
    assert!(sender.send_for(vec![(endpoint, vec![])]).await.unwrap().is_empty(), "one sender at a time");
}

#[tokio::test]
async fn a_process_that_stops_lets_go_of_its_sendership_claims_and_reservations_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    // A lease far longer than the test: only letting go frees anything.
    let options = PgOptions { claim_lease: Duration::from_secs(600), ..options };
    let stopping = PgStore::connect(&options).await.unwrap();
    let other = PgStore::connect(&options).await.unwrap();
    let owner = stopping.test_owner(Mode::Test).await;
    let record = EndpointRecord::for_test(owner, "https://example.com/hook", "*");
    stopping.insert_endpoint(record.clone()).await.unwrap();
    let now = 1_700_000_000_000;
    let _ = stopping.publish_events(invoices(owner, 3, now).to_vec(), now).await.unwrap();
    // It sends to the endpoint, holds one entry claimed, and has the others set aside.
    assert_eq!(stopping.send_for(vec![(record.id, vec![])]).await.unwrap(), [(record.id, None)]);
    let claimed = stopping.due_entries(None, now, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let ids: Vec<DeliveryId> = claimed.iter().map(|e| e.key.attempt()).collect();
    stopping.release_claims(ids[1..].to_vec()).await.unwrap();
    assert!(other.send_for(vec![(record.id, vec![])]).await.unwrap().is_empty(), "held");
    assert!(other.due_entries(None, now, 10, Vec::new()).await.unwrap().is_empty(), "claimed or set aside");

    stopping.let_go(vec![ids[0]]).await.unwrap();
    assert_eq!(other.send_for(vec![(record.id, vec![])]).await.unwrap(), [(record.id, None)], "taken at once");
    let mut taken: Vec<DeliveryId> =
        other.due_entries(None, now, 10, Vec::new()).await.unwrap().iter().map(|e| e.key.attempt()).collect();
    taken.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(taken, ids, "the claimed entry and the set-aside ones are the next sender's");
}

#[tokio::test]
async fn a_backlog_set_aside_for_its_endpoints_sender_is_out_of_every_claims_way_until_that_sender_lapses() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let options = PgOptions { claim_lease: Duration::from_secs(2), ..options };
    let sender = PgStore::connect(&options).await.unwrap();
    let other = PgStore::connect(&options).await.unwrap();
    let owner = sender.test_owner(Mode::Test).await;
    let busy = EndpointRecord::for_test(owner, "https://example.com/busy", "invoice.paid");
    let quiet = EndpointRecord::for_test(owner, "https://example.com/quiet", "order.paid");
    sender.insert_endpoint(busy.clone()).await.unwrap();
    sender.insert_endpoint(quiet.clone()).await.unwrap();
    let now = 1_700_000_000_000;
    // The busy endpoint's backlog is due first; the quiet one's entry after it.
    let _ = sender.publish_events(invoices(owner, 5, now).to_vec(), now).await.unwrap();
    let later = crate::store::model::events::test_event(owner, "order.paid", serde_json::json!({}), now + 10);
    let _ = sender.publish_events(vec![later], now + 10).await.unwrap();
    assert_eq!(sender.send_for(vec![(busy.id, vec![])]).await.unwrap(), [(busy.id, None)]);

    // The other process claims all six and will not make them now: the busy endpoint's
    // go to its sender, the quiet one's back to everyone.
    let claimed = other.due_entries(None, now + 10, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 6);
    other.release_claims(claimed.iter().map(|e| e.key.attempt()).collect()).await.unwrap();
    assert_eq!(other.next_due_after(None, Vec::new()).await.unwrap(), Some(now + 10), "past the backlog");
    let claimed = other.due_entries(None, now + 10, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.endpoint).collect::<Vec<_>>(), [quiet.id], "the backlog is the sender's");

    // The sender leaves it where it is while it holds enough of the endpoint's entries;
    // a shared entry of its endpoint that it claims is reserved for it as it is.
    let _ = sender.publish_events(invoices(owner, 1, now + 10).to_vec(), now + 10).await.unwrap();
    let fresh = sender.due_entries(None, now + 10, 10, vec![busy.id]).await.unwrap();
    assert_eq!(fresh.iter().map(|e| e.endpoint).collect::<Vec<_>>(), [busy.id], "only the new, shared one");
    let shared: i64 = async {
        let client = sender.client().await?;
        let row = client.query_one("SELECT count(*) FROM queue WHERE reserved_for IS NULL", &[]).await?;
        Ok::<_, crate::store::StoreError>(row.get(0))
    }
    .await
    .unwrap();
    assert_eq!(shared, 1, "only the quiet endpoint's entry is left to everyone");
    sender.release_claims(fresh.iter().map(|e| e.key.attempt()).collect()).await.unwrap();
    assert!(sender.due_entries(None, now + 10, 10, vec![busy.id]).await.unwrap().is_empty());
    assert_eq!(sender.next_due_after(None, vec![busy.id]).await.unwrap(), None);
    assert_eq!(sender.next_due_after(None, Vec::new()).await.unwrap(), Some(now));
    let backlog = sender.due_entries(None, now + 10, 10, Vec::new()).await.unwrap();
    assert_eq!(backlog.len(), 6, "taken when it has room");
    assert!(backlog.iter().all(|e| e.endpoint == busy.id));
    sender.release_claims(backlog.iter().map(|e| e.key.attempt()).collect()).await.unwrap();

    // The sender stops renewing (it died): once its sendership runs out, the other
    // process's renewal gives the backlog back to everyone, and it is claimed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        other.renew_claims(vec![], vec![], vec![]).await.unwrap();
        let claimed = other.due_entries(None, now + 10, 10, Vec::new()).await.unwrap();
        if claimed.iter().any(|e| e.endpoint == busy.id) {
            break claimed;
        }
        assert!(std::time::Instant::now() < deadline, "the backlog stayed with a dead sender");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(claimed.iter().filter(|e| e.endpoint == busy.id).count(), 6);
}

#[tokio::test]
async fn a_cluster_left_by_a_dead_process_is_removed_by_the_next_start() {
    let dead = {
        let mut child = std::process::Command::new("true").spawn().expect("true runs");
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let left = std::env::temp_dir().join(format!("stile-pg-{dead}-0"));
    std::fs::create_dir_all(left.join("data")).unwrap();
    let Ok(cluster) = ThrowawayPostgres::start() else {
        let _ = std::fs::remove_dir_all(&left);
        let _ = ThrowawayPostgres::shared_for_test(); // skips loudly, or fails under CI
        return;
    };
    assert!(!left.exists(), "the dead process's cluster directory is still there");
    let mine = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(!mine.exists(), "a dropped cluster removes its directory");
}

#[tokio::test]
async fn connections_use_tls_and_check_the_certificate_as_sslmode_asks() {
    if ThrowawayPostgres::shared_for_test().is_none() {
        return;
    }
    let cluster = ThrowawayPostgres::start().expect("a cluster of its own");
    // A private CA, and the server's certificate from it, for 127.0.0.1 only.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    cluster.require_tls(&server.pem(), &server_key.serialize_pem()).expect("TLS on");
    cluster.sql("CREATE DATABASE tls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = ca_params.clone();
    other_params.distinguished_name.push(rcgen::DnType::CommonName, "another CA");
    let other_ca = other_params.self_signed(&other_key).unwrap();
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca.pem()).unwrap();

    let connect = async |host: &str, query: String| {
        PgStore::connect(&PgOptions {
            url: format!("postgres://postgres@{host}:{}/tls?{query}", cluster.port()),
            pool_size: 2,
            statement_timeout: Duration::from_secs(10),
            key_file: dir.path().join("payload.key"),
            claim_lease: Duration::from_secs(60),
        })
        .await
    };
    let refused = async |host: &str, query: String| match connect(host, query.clone()).await {
        Ok(_) => panic!("{host}?{query} connected"),
        Err(err) => err.to_string(),
    };
    let encrypted = async |store: &PgStore| -> bool {
        async {
            let client = store.client().await?;
            let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await?;
            Ok::<_, crate::store::StoreError>(row.get(0))
        }
        .await
        .unwrap()
    };

    let full = format!("sslmode=verify-full&sslrootcert={}", ca_file.display());
    let store = connect("127.0.0.1", full).await.expect("verify-full with the CA that signed it");
    assert!(encrypted(&store).await);
    assert!(store.lead().await.unwrap(), "the leader's own connection is made with TLS too");
    drop(store);
    // Without `sslrootcert`, `prefer` and `require` encrypt without checking (as libpq).
    assert!(encrypted(&connect("127.0.0.1", String::new()).await.expect("prefer")).await);
    assert!(encrypted(&connect("localhost", "sslmode=require".into()).await.expect("require")).await);
    // The server refuses what is not encrypted (so the connections above were).
    let err = refused("127.0.0.1", "sslmode=disable".into()).await;
    assert!(err.contains("no encryption"), "{err}");
    // A root that did not sign it, or the public roots: refused.
    let err = refused("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={}", other_file.display())).await;
    assert!(err.contains("invalid peer certificate") && err.contains("UnknownIssuer"), "{err}");
    let err = refused("127.0.0.1", "sslmode=verify-full".into()).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
    // A root file given with `require` makes it check the chain (as libpq).
    let err = refused("127.0.0.1", format!("sslmode=require&sslrootcert={}", other_file.display())).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Connected to by another name: verify-full refuses it, verify-ca does not check it.
    let err = refused("localhost", format!("sslmode=verify-full&sslrootcert={}", ca_file.display())).await;
    assert!(err.contains("certificate not valid for name \"localhost\""), "{err}");
    assert!(
        err.contains(&format!("database localhost:{}/tls:", cluster.port())),
        "named without its TLS settings: {err}"
    );
    let store = connect("localhost", format!("sslmode=verify-ca&sslrootcert={}", ca_file.display()))
        .await
        .expect("verify-ca does not check the name");
    assert!(encrypted(&store).await);
}

#[tokio::test]
async fn failures_recorded_while_their_endpoints_are_deleted_neither_deadlock_nor_stay_queued() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let recorder = PgStore::connect(&options).await.unwrap();
    let deleter = PgStore::connect(&options).await.unwrap();
    let owner = recorder.test_owner(Mode::Test).await;
    let endpoints: Vec<EndpointRecord> =
        (0..24).map(|n| EndpointRecord::for_test(owner, &format!("https://example.com/{n}"), "invoice.paid")).collect();
    for endpoint in &endpoints {
        recorder.insert_endpoint(endpoint.clone()).await.unwrap();
    }
    let now = 1_700_000_000_000;
    let events = invoices(owner, 8, now);
    recorder.publish_and_record(Arc::from(events.clone()), Arc::from([]), now, TWO_RETRIES).await.unwrap();
    let claimed = recorder.due_entries(None, now, 1000, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 24 * 8);
    let jobs = recorder.jobs(claimed.iter().map(|e| e.key.attempt()).collect::<Vec<_>>().to_vec()).await.unwrap();
    // Batches of failures that span every endpoint, recorded while the endpoints go one
    // by one.
    let results: Vec<AttemptResult> = claimed
        .iter()
        .zip(&jobs)
        .map(|(entry, job)| {
            let endpoint = job.as_ref().and_then(|j| j.endpoint.as_ref()).expect("an endpoint").id;
            AttemptResult::for_test(entry.key, endpoint, false, now + 10)
        })
        .collect();
    tokio::join!(
        async {
            for batch in results.chunks(24) {
                recorder.publish_and_record(Arc::from([]), Arc::from(batch), now + 10, TWO_RETRIES).await.unwrap();
            }
        },
        async {
            for endpoint in &endpoints {
                assert!(deleter.delete_endpoint(owner, endpoint.id, 5).await.unwrap());
            }
        }
    );
    assert_eq!(recorder.queue_depth().await.unwrap(), 0, "a retry survived its endpoint's deletion");
    assert_eq!(
        (recorder.conflicts_rerun(), deleter.conflicts_rerun()),
        (Some(0), Some(0)),
        "recording and deleting take the endpoint before its attempts: no deadlock to break"
    );
}

/// The test owner of `store` and a stored endpoint of it subscribed to `invoice.paid`
/// (what [`invoices`] publishes).
async fn invoice_hook(store: &PgStore) -> (crate::store::model::Owner, EndpointRecord) {
    let owner = store.test_owner(Mode::Test).await;
    let endpoint = EndpointRecord::for_test(owner, "https://example.com/hook", "invoice.paid");
    store.insert_endpoint(endpoint.clone()).await.unwrap();
    (owner, endpoint)
}

#[tokio::test]
async fn a_database_of_the_first_schema_is_migrated_at_start_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let store = PgStore::connect(&options).await.unwrap();
    let (owner, endpoint) = invoice_hook(&store).await;
    let published = invoices(owner, 1, 1_700_000_000_000);
    let event = published[0].meta.id;
    store.publish_and_record(Arc::from(published), Arc::from([]), 1_700_000_000_000, TWO_RETRIES).await.unwrap();
    // Back to schema 1 (as the release before wrote it), with its data.
    async {
        let client = store.client().await?;
        client
            .batch_execute(
                "ALTER TABLE listeners DROP COLUMN holder, DROP COLUMN held_until_ms;
                     DROP INDEX listeners_by_endpoint;
                     ALTER TABLE queue DROP COLUMN reserved_for;
                     CREATE INDEX queue_due ON queue (due_ms, attempt) WHERE NOT parked;
                     DROP TABLE endpoint_senders;
                     ALTER TABLE events DROP COLUMN trace;
                     ALTER TABLE attempts DROP COLUMN sent;
                     DROP TABLE replays, replay_deliveries, skipped_deliveries;
                     DELETE FROM stile_schema_migrations WHERE version > 1",
            )
            .await?;
        Ok::<_, crate::store::StoreError>(())
    }
    .await
    .unwrap();
    drop(store);
    let store = PgStore::connect(&options).await.expect("migrated");
    let versions: Vec<i32> = async {
        let client = store.client().await?;
        let rows = client.query("SELECT version FROM stile_schema_migrations ORDER BY version", &[]).await?;
        Ok::<_, crate::store::StoreError>(rows.iter().map(|row| row.get(0)).collect())
    }
    .await
    .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(store.endpoint(owner, endpoint.id).await.unwrap().map(|e| e.id), Some(endpoint.id));
    let kept = store.event(owner, event).await.unwrap().expect("the event is kept");
    assert_eq!(kept.meta.trace, None, "published before traces were kept");
    let claimed = store.due_entries(None, 1_700_000_000_000, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 1, "the queued attempt is claimed through the new columns");
    let jobs = store.jobs(vec![claimed[0].key.attempt()]).await.unwrap();
    let job = jobs[0].as_ref().expect("its job is read through the new columns");
    assert_eq!(job.attempt.sent, None, "made before transformations");
    store.hold_listener(endpoint.id).await.unwrap();
}

#[tokio::test]
async fn a_listeners_attempts_go_to_the_process_holding_its_cli_until_that_hold_runs_out() {
    use crate::store::model::ListenRequest;
    let dir = tempfile::tempdir().unwrap();
    let Some(mut options) = fresh_database(dir.path()) else { return };
    options.claim_lease = Duration::from_millis(600);
    let holder = PgStore::connect(&options).await.unwrap();
    let other = PgStore::connect(&options).await.unwrap();
    let owner = holder.test_owner(Mode::Test).await;
    let request = ListenRequest { forward_to: "http://localhost:3000/hook".into(), events: vec!["*".into()], now: 1 };
    let (endpoint, _) = holder
        .listener_endpoint(owner, [7; 32], request.clone(), move || {
            let mut record = EndpointRecord::for_test(owner, "http://localhost:3000/hook", "*");
            record.listener =
                Some(crate::store::model::endpoints::ListenerInfo { key_hash: hex::encode([7; 32]), last_seen: 1 });
            record
        })
        .await
        .unwrap();
    assert!(endpoint.is_listener());
    holder.hold_listener(endpoint.id).await.unwrap();
    let now = crate::clock::unix_now_ms();
    holder.publish_and_record(Arc::from(invoices(owner, 1, now)), Arc::from([]), now, TWO_RETRIES).await.unwrap();

    // The other process claims it, has no CLI: it hands the entry to the holder.
    let claimed = other.due_entries(None, now, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let keys = [claimed[0].key];
    assert!(other.park(keys.to_vec(), |_| false).await.unwrap().is_empty());
    assert!(
        other.due_entries(None, now, 10, Vec::new()).await.unwrap().is_empty(),
        "reserved for the holder, not for anyone"
    );
    assert_eq!(holder.due_entries(None, now, 10, Vec::new()).await.unwrap().len(), 1, "the holder claims it at once");
    // One the holder claims itself, then sets aside (it has enough of the endpoint's),
    // stays the holder's: not claimed and put back by every pass.
    holder.publish_and_record(Arc::from(invoices(owner, 1, now + 1)), Arc::from([]), now, TWO_RETRIES).await.unwrap();
    let own = holder.due_entries(None, now + 1, 10, Vec::new()).await.unwrap();
    assert_eq!(own.len(), 1);
    holder.release_claims(vec![own[0].key.attempt()]).await.unwrap();
    assert!(other.due_entries(None, now + 1, 10, Vec::new()).await.unwrap().is_empty(), "still the holder's");
    let own = holder.due_entries(None, now + 1, 10, Vec::new()).await.unwrap();
    assert_eq!(own.len(), 1, "the holder takes it again");
    assert!(!holder.idle_listeners(i64::MAX).await.unwrap().iter().any(|(_, id)| *id == endpoint.id), "held: not idle");

    // The holder stops renewing (it died): once its claim and hold run out (in the
    // database's clock), the other process's renewal gives the entries back to everyone,
    // and whoever claims them parks them.
    // (The two claims were made a moment apart, so they run out a moment apart.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.len() < 2 && std::time::Instant::now() < deadline {
        other.renew_claims(vec![], vec![], vec![]).await.unwrap();
        claimed.extend(other.due_entries(None, now + 1, 10, Vec::new()).await.unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(claimed.len(), 2, "the holder's claims ran out");
    assert!(other.park(claimed.iter().map(|e| e.key).collect(), |_| false).await.unwrap().is_empty());
    assert_eq!(holder.queue_depth().await.unwrap(), 0, "parked, waiting for a CLI");
    assert!(holder.idle_listeners(i64::MAX).await.unwrap().iter().any(|(_, id)| *id == endpoint.id), "no longer held");
}

/// Postgres' counts per table of the database at `url` (name, sequential scans, rows
/// inserted), once no other connection to it is left: a backend reports what it counted
/// when it goes idle, at the latest as it exits.
async fn settled_table_counts(url: &str) -> Vec<(String, i64, i64)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if others == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{others} connections stayed on after their store went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = client
        .query("SELECT relname::text, seq_scan, n_tup_ins FROM pg_stat_user_tables ORDER BY relname", &[])
        .await
        .unwrap();
    rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect()
}

#[tokio::test]
async fn the_writers_statements_find_their_rows_by_index_never_by_reading_a_table_through() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    let store = PgStore::connect(&options).await.unwrap();
    let (owner, endpoint) = invoice_hook(&store).await;
    let mut disabled = EndpointRecord::for_test(owner, "https://example.com/off", "invoice.paid");
    disabled.status = crate::store::model::EndpointStatus::Disabled;
    store.insert_endpoint(disabled).await.unwrap();
    drop(store);
    // What a store reads as it starts (once, the endpoints through), counted by starting
    // one: the writer's store below starts the same way.
    let set_up = settled_table_counts(&options.url).await;
    drop(PgStore::connect(&options).await.unwrap());
    let started = settled_table_counts(&options.url).await;
    let store = PgStore::connect(&options).await.unwrap();

    // Rounds of the writer's combined commit: four publishes each (one delivery queued,
    // one skipped), and the results of what the round before queued: successes,
    // failures that retry, failures for good.
    let (rounds, per_round) = (8u64, 4u64);
    let mut now = 1_700_000_000_000;
    let mut due = Vec::new();
    let (mut finished, mut retries) = (0, 0);
    for _ in 0..rounds {
        let results: Vec<AttemptResult> = due
            .iter()
            .enumerate()
            .map(|(i, key)| AttemptResult::for_test(*key, endpoint.id, i % 3 == 0, now))
            .collect();
        let written = store
            .publish_and_record(Arc::from(invoices(owner, per_round, now)), Arc::from(results), now, TWO_RETRIES)
            .await
            .unwrap();
        due = written.first_attempts.keys().to_vec();
        due.extend_from_slice(written.recorded.scheduled.keys());
        (finished, retries) = (finished + written.recorded.finished, retries + written.recorded.scheduled.len());
        now += 2_000;
    }
    assert!(finished > 0 && retries > 0, "finished attempts and retries were both recorded");
    drop(store);

    let after = settled_table_counts(&options.url).await;
    let count = |counts: &[(String, i64, i64)], table: &str| counts.iter().find(|c| c.0 == table).map(|c| (c.1, c.2));
    let scans = |counts: &[(String, i64, i64)], table: &str| count(counts, table).map_or(0, |c| c.0);
    // The writer's store started once too: what remains past the start's own reads.
    let start_reads = |table: &str| scans(&started, table) - scans(&set_up, table);
    let scanned: Vec<(&str, i64)> = after
        .iter()
        .map(|(table, n, _)| (table.as_str(), n - scans(&started, table) - start_reads(table)))
        .filter(|(_, n)| *n != 0)
        .collect();
    assert!(scanned.is_empty(), "tables the writer read through: {scanned:?}");
    // What was counted is the rounds' writing.
    let (_, events) = count(&after, "events").unwrap();
    assert_eq!(events - count(&started, "events").unwrap().1, (rounds * per_round) as i64);
}

#[tokio::test]
async fn a_commit_that_fails_late_in_its_pipeline_leaves_nothing_of_itself_and_its_connection_works_on() {
    let dir = tempfile::tempdir().unwrap();
    let Some(options) = fresh_database(dir.path()) else { return };
    // One connection: the one the failure happened on is the one used next.
    let store = PgStore::connect(&PgOptions { pool_size: 1, ..options }).await.unwrap();
    let (owner, endpoint) = invoice_hook(&store).await;
    let now = 1_700_000_000_000;
    let first = invoices(owner, 2, now);
    let written = store.publish_and_record(Arc::from(first.clone()), Arc::from([]), now, TWO_RETRIES).await.unwrap();
    let keys = written.first_attempts.keys().to_vec();
    assert_eq!(keys.len(), 2);

    // The statistics are among the last statements of a commit's pipeline, after the
    // attempts, the queue and the events: make them fail.
    let injected = "CREATE FUNCTION stile_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
                        $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
                    CREATE TRIGGER stile_test_refuse BEFORE INSERT ON delivery_stats
                        FOR EACH ROW EXECUTE FUNCTION stile_test_refuse()";
    store.client().await.unwrap().batch_execute(injected).await.unwrap();
    let second = invoices(owner, 2, now + 10);
    let results = vec![
        AttemptResult::for_test(keys[0], endpoint.id, true, now + 10),
        AttemptResult::for_test(keys[1], endpoint.id, false, now + 10),
    ];
    let write =
        || store.publish_and_record(Arc::from(second.clone()), Arc::from(results.clone()), now + 10, TWO_RETRIES);
    let err = write().await.expect_err("the statistics' insert fails");
    assert!(format!("{err:?}").contains("refused by the test"), "{err:?}");

    // Nothing of it: the new events are not there, the results not recorded.
    for event in &second {
        assert!(store.event(owner, event.meta.id).await.unwrap().is_none(), "an event of the failed commit");
    }
    for event in &first {
        let stored = store.event(owner, event.meta.id).await.unwrap().expect("published before");
        assert_eq!(stored.pending_webhooks, 1, "its delivery is still pending");
    }
    assert_eq!(store.queue_depth().await.unwrap(), 2, "the first two attempts are still queued, nothing more");
    let pending =
        store.list_attempts(owner, endpoint.id, PageRequest { limit: 10, cursor: Cursor::Start }, None).await.unwrap();
    assert!(pending.items.iter().all(|a| a.status == crate::store::model::AttemptStatus::Pending), "{pending:?}");

    // Once the statistics take rows again the same commit goes through, once.
    store.client().await.unwrap().batch_execute("DROP TRIGGER stile_test_refuse ON delivery_stats").await.unwrap();
    let written = write().await.unwrap();
    assert_eq!((written.recorded.finished, written.recorded.scheduled.len()), (1, 1), "a success and a retry");
    assert_eq!(store.queue_depth().await.unwrap(), 3, "the two new first attempts and the retry");
    for event in &second {
        assert_eq!(store.event(owner, event.meta.id).await.unwrap().expect("published").pending_webhooks, 1);
    }
    assert_eq!(store.event(owner, first[0].meta.id).await.unwrap().unwrap().pending_webhooks, 0, "delivered");
}
