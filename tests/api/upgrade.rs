//! A data file written by the previous release keeps working: the current server starts
//! on a copy of `tests/fixtures/data-c8cc439.redb` (see the README beside it), moves it
//! to the current layout (applications: everything into each mode's default one), reads
//! every kind of record, and delivers what was waiting in it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestServer;
use crate::common::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(15);
const ENDPOINT_A: &str = "we_01M8MVDKCF2Y7R0B4Z81W0S40K";
const ENDPOINT_B: &str = "we_01M8MVDKD3MW3QHS6N2WMTDD1F";
const SECRET_B: &str = "whsec_nQ1/v5IktcrdEC0obng87FlWh2ksYe4QASWgUXv83gI=";
const SESSION: &str = "vks_01M8MVDKMQ43K2T32A44K8WQ6C";
const SESSION_EXPIRES_AT: u64 = 1_796_082_576;
const EVENT: &str = "evt_01M8MVDKYTY6Z0XZWBVRZZ4XH2";

#[test]
fn a_data_file_of_the_previous_release_is_read_and_its_waiting_deliveries_go() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-c8cc439.redb");
    // Past the open session's expiry, whenever the test runs.
    let clock = stile::clock::Clock::manual((SESSION_EXPIRES_AT + 60) * 1000);
    let server = TestServer::start_on_copy_of(&fixture, clock);
    // Objects belong to a mode, not to the key that made them: any test key sees them.
    let get = |path: &str| {
        let resp = server.get(path);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        resp.body
    };

    let endpoints = get("/v1/webhook_endpoints");
    let ids: Vec<&str> = endpoints["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ENDPOINT_B, ENDPOINT_A]);
    assert_eq!(endpoints["data"][0]["status"], "disabled");
    assert_eq!(endpoints["data"][1]["description"], "fixture A");
    assert_eq!(endpoints["data"][1]["metadata"], json!({"made_by": "0.1.0"}));

    let event = get(&format!("/v1/events/{EVENT}"));
    assert_eq!(event["data"], json!({"id": "vks_fixture", "note": "from the previous release"}));
    assert_eq!(event["pending_webhooks"], 2, "A's retry and B's parked resend");
    let events = get("/v1/events?limit=100");
    assert!(events["data"].as_array().unwrap().len() >= 3, "{events}");

    // A's attempts, their statistics and its recent failures came along.
    let a_attempts = get(&format!("/v1/webhook_endpoints/{ENDPOINT_A}/deliveries?limit=100"));
    let a_attempts = a_attempts["data"].as_array().unwrap();
    assert!(a_attempts.len() >= 3, "{a_attempts:?}");
    assert!(a_attempts.iter().all(|a| a["event_id"].as_str().unwrap().starts_with("evt_")));
    // An attempt made by the previous release (stored as JSON) shows what it sent.
    let made = a_attempts.iter().find(|a| a["status"] != "pending").expect("a made attempt");
    let detail = get(&format!("/v1/webhook_endpoints/{ENDPOINT_A}/deliveries/{}", made["id"].as_str().unwrap()));
    assert_eq!(detail["request"]["headers"]["webhook-id"], made["event_id"], "{detail}");
    assert!(detail["request"]["headers"]["webhook-signature"].as_str().unwrap().starts_with("v1,"), "{detail}");
    let since = SESSION_EXPIRES_AT - 2 * 86_400;
    let stats = get(&format!("/v1/delivery_stats?since={since}&until={}&bucket=3600", SESSION_EXPIRES_AT + 60));
    assert!(stats["totals"]["failed"].as_u64().unwrap() >= 3, "{stats}");
    assert!(!stats["recent_failures"].as_array().unwrap().is_empty(), "{stats}");

    // The session was stored with the old record shape; it is read, and, being past its
    // expiry by the server's clock, it expires with its event.
    assert!(
        crate::common::eventually(WAIT, || get(&format!("/v1/verification_sessions/{SESSION}"))["status"] == "expired")
    );
    let session = get(&format!("/v1/verification_sessions/{SESSION}"));
    assert_eq!(session["object"], "verification_session");
    assert_eq!(session["client_reference_id"], "fixture_user");

    // B's resend waited, parked, while it was disabled: pointed at a receiver and enabled,
    // it goes, signed with the secret B was given by the previous release.
    let receiver = Receiver::start();
    let update = server
        .post(&format!("/v1/webhook_endpoints/{ENDPOINT_B}"), json!({"url": receiver.url("/b"), "status": "enabled"}));
    assert_eq!(update.status, 200, "{}", update.text);
    let got = receiver.wait_for("/b", 1, WAIT);
    assert_eq!(got[0].header("webhook-id"), EVENT);
    assert_eq!(got[0].json()["data"]["note"], "from the previous release");
    assert!(got[0].stile_signature_valid(SECRET_B).0 && got[0].standard_signature_valid(SECRET_B).0);
    // Recorded a moment after the receiver had it: B's delivery ends, A's retry waits.
    assert!(crate::common::eventually(WAIT, || get(&format!("/v1/events/{EVENT}"))["pending_webhooks"] == 1));
    let attempts = get(&format!("/v1/webhook_endpoints/{ENDPOINT_B}/deliveries"));
    assert_eq!(attempts["data"][0]["status"], "succeeded", "{attempts}");

    // Old payloads were written in clear and are read as they are; new ones are sealed.
    let marker = format!("marker-{}", ulid::Ulid::new());
    let fresh = server.publish("verification_session.created", json!({"id": "vks_new", "note": marker}));
    assert_eq!(get(&format!("/v1/events/{}", fresh["id"].as_str().unwrap()))["data"]["note"], marker.as_str());
    let file = std::fs::read(server.data_dir().join("stile.redb")).unwrap();
    let holds = |text: &str| file.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(!holds(&marker), "a payload written now is encrypted");
    assert!(holds("from the previous release"), "the old payload was left as it was");

    // The moved file opens again as it is now.
    let server = server.restart();
    assert_eq!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().len(), 2);
    assert_eq!(server.get(&format!("/v1/events/{EVENT}")).body["pending_webhooks"], 1);
}

/// The data directory of the release before the event indexes (commit 038ad59, layout 2):
/// 60 events in the default application over three seconds (three types, five sessions),
/// 5 in the application `acme`; see `tests/fixtures/README.md`.
#[test]
fn the_events_of_layout_2_are_indexed_at_start_and_every_filter_finds_them() {
    events_of_an_earlier_layout_are_indexed_and_every_filter_finds_them("data-038ad59");
}

/// The same history written by the release before layout 5 (commit 2eb4293, layout 4:
/// events indexed by text, records with names as text).
#[test]
fn the_events_of_layout_4_are_refiled_at_start_and_every_filter_finds_them() {
    events_of_an_earlier_layout_are_indexed_and_every_filter_finds_them("data-2eb4293");
}

/// Starts the current server on a copy of the fixture directory `name` (made by
/// `tests/fixtures/make-data-038ad59.sh` with an earlier release) and checks every event
/// filter against a scan, the endpoint's deliveries, and publishing after.
fn events_of_an_earlier_layout_are_indexed_and_every_filter_finds_them(name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let server = TestServer::start_on_copy_of_dir(&fixture, stile::clock::Clock::system());
    let list = |query: &str| -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page_query = match &after {
                Some(id) => format!("{query}&limit=7&starting_after={id}"),
                None => format!("{query}&limit=7"),
            };
            let resp = server.get(&format!("/v1/events?{page_query}"));
            assert_eq!(resp.status, 200, "{query}: {}", resp.text);
            let data = resp.body["data"].as_array().unwrap().clone();
            after = data.last().map(|e| e["id"].as_str().unwrap().to_string());
            all.extend(data);
            if resp.body["has_more"] != true {
                return all;
            }
        }
    };
    let everything = list("");
    assert_eq!(everything.len(), 60, "the default application's events");
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let brute =
        |keep: &dyn Fn(&Value) -> bool| ids(&everything.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>());

    let verified = list("type=verification_session.verified");
    assert_eq!(verified.len(), 20);
    assert_eq!(ids(&verified), brute(&|e| e["type"] == "verification_session.verified"));
    let session = list("session_id=vks_fixture_3");
    assert_eq!(session.len(), 12);
    assert_eq!(ids(&session), brute(&|e| e["data"]["id"] == "vks_fixture_3"));
    let both = list("session_id=vks_fixture_3&type=verification_session.failed");
    assert_eq!(
        ids(&both),
        brute(&|e| e["data"]["id"] == "vks_fixture_3" && e["type"] == "verification_session.failed")
    );
    assert!(!both.is_empty());
    let times: Vec<i64> = everything.iter().map(|e| e["created"].as_i64().unwrap()).collect();
    let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    assert!(last > first, "the fixture's events span seconds");
    for (after, before) in [(first, last), (first - 1, last + 1), (first, first + 2), (last - 1, last + 5)] {
        let bounded = list(&format!("created_after={after}&created_before={before}"));
        let created = |e: &Value| e["created"].as_i64().unwrap();
        assert_eq!(ids(&bounded), brute(&|e| created(e) > after && created(e) < before), "({after}, {before})");
    }
    // Every event went to endpoint A, a closed port: all are waiting for a retry.
    assert_eq!(ids(&list("delivery_success=false")), ids(&everything));
    assert!(list("delivery_success=true").is_empty());
    assert!(list("session_id=vks_acme").is_empty(), "another application's");
    let acme = server.req("GET", "/v1/events?session_id=vks_acme").header("Stile-App", "acme").send();
    assert_eq!(acme.body["data"].as_array().unwrap().len(), 5, "{}", acme.text);

    // The endpoint's deliveries, written by the earlier release, read back whole.
    let endpoints = server.get("/v1/webhook_endpoints");
    let endpoint = endpoints.body["data"][0]["id"].as_str().unwrap().to_string();
    let deliveries = server.get(&format!("/v1/webhook_endpoints/{endpoint}/deliveries?limit=100"));
    assert_eq!(deliveries.status, 200, "{}", deliveries.text);
    let deliveries = deliveries.body["data"].as_array().unwrap().clone();
    assert!(deliveries.len() >= 60, "one attempt per event at least: {}", deliveries.len());
    let event_ids = ids(&everything);
    for delivery in &deliveries {
        assert!(event_ids.contains(&delivery["event_id"].as_str().unwrap().to_string()), "{delivery}");
        assert!(delivery["event_type"].as_str().unwrap().starts_with("verification_session."), "{delivery}");
    }

    // New events are indexed as they are published, next to the migrated ones.
    server.publish("verification_session.verified", json!({"id": "vks_fixture_3"}));
    assert_eq!(list("session_id=vks_fixture_3").len(), 13);
    assert_eq!(list("type=verification_session.verified").len(), 21);
}

/// The data directory of the release before endpoint secrets were sealed (commit 33db355):
/// two endpoints at a closed port, B's secret rotated with a day's grace, a `stile listen`
/// endpoint, one event; see `tests/fixtures/README.md`.
mod clear_secrets {
    pub const DIR: &str = "data-33db355";
    pub const MADE_AT: u64 = 1_796_517_376;
    pub const ENDPOINT_A: &str = "we_01M94CFBJVFYQ1AJ50XCS3P65Z";
    pub const SECRET_A: &str = "whsec_UFofn/KsV+ozCRoM56fVCQw+Z3aCR6TcLSecddzR7G0=";
    pub const ENDPOINT_B: &str = "we_01M94CFBK6E2T37CM1HM1985CH";
    pub const SECRET_B_OLD: &str = "whsec_BN4ZXnLRUm/IDvdjUPOO8+qV7yQNFA5/z48syRC+/gU=";
    pub const SECRET_B_NEW: &str = "whsec_Fg7XIGscn4FJp6xPs0Sh3/rYxCkuxazY1fW9Qzeq94w=";
    /// When B's old secret stops signing (the rotation's 24 hours).
    pub const GRACE_ENDS: u64 = 1_796_517_375 + 86_400;
    pub const SECRET_LISTENER: &str = "whsec_0ccZLryod4wEb/MjG8mZqU6aNhX/H0rHO2gDBqCDLkM=";
}

/// Whether `bytes` hold `text` anywhere.
fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

#[test]
fn secrets_stored_in_clear_are_sealed_at_start_and_every_endpoint_signs_as_before() {
    use clear_secrets::*;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(DIR);
    let before = std::fs::read(fixture.join("stile.redb")).unwrap();
    let secrets = [SECRET_A, SECRET_B_OLD, SECRET_B_NEW, SECRET_LISTENER];
    assert!(secrets.iter().all(|s| holds(&before, s)), "the earlier release kept every secret in clear");

    // An hour after the fixture was made: B's rotation grace has 23 hours to go.
    let clock = stile::clock::Clock::manual((MADE_AT + 3_600) * 1000);
    let server = TestServer::start_on_copy_of_dir(&fixture, clock.clone());
    let file = server.data_dir().join("stile.redb");
    let after = std::fs::read(&file).unwrap();
    assert!(!holds(&after, "whsec_"), "a secret is still in the data file in clear (or in a page it freed)");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // The listener endpoint is no longer called by characters of the key.
    let endpoints = server.get("/v1/webhook_endpoints?limit=10").body["data"].clone();
    let listener = endpoints.as_array().unwrap().iter().find(|e| e["kind"] == "listener").unwrap().clone();
    assert!(listener["name"].as_str().unwrap().starts_with("stile listen (key "), "{listener}");
    assert!(!listener.to_string().contains("vk_test_fixture"), "{listener}");
    // Revealed, the secrets are what they were.
    for (id, secret) in [(ENDPOINT_A, SECRET_A), (ENDPOINT_B, SECRET_B_NEW)] {
        let revealed = server.get(&format!("/v1/webhook_endpoints/{id}/secret"));
        assert_eq!(revealed.body["secret"], secret, "{}", revealed.text);
    }

    // Both endpoints deliver signed with the secrets they had; B with both while its
    // grace lasts.
    let receiver = Receiver::start();
    for (id, path) in [(ENDPOINT_A, "/a"), (ENDPOINT_B, "/b")] {
        let update = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"url": receiver.url(path)}));
        assert_eq!(update.status, 200, "{}", update.text);
    }
    server.publish("verification_session.verified", json!({"id": "vks_after_upgrade"}));
    let a = receiver.wait_for("/a", 1, WAIT);
    assert_eq!(a[0].stile_signature_valid(SECRET_A), (true, 1), "{:?}", a[0].headers);
    assert_eq!(a[0].standard_signature_valid(SECRET_A), (true, 1), "{:?}", a[0].headers);
    // (B's retry of the fixture's event may come too, to its new URL.)
    let b_got = |id: &str| {
        let found =
            crate::common::eventually(WAIT, || receiver.received("/b").iter().any(|r| r.json()["data"]["id"] == id));
        assert!(found, "no delivery of {id} to B");
        receiver.received("/b").into_iter().find(|r| r.json()["data"]["id"] == id).unwrap()
    };
    let b = b_got("vks_after_upgrade");
    for secret in [SECRET_B_NEW, SECRET_B_OLD] {
        assert_eq!(b.stile_signature_valid(secret), (true, 2), "{:?}", b.headers);
        assert_eq!(b.standard_signature_valid(secret), (true, 2), "{:?}", b.headers);
    }

    // The grace ends when it was set to end.
    clock.advance(Duration::from_secs(GRACE_ENDS + 1 - (MADE_AT + 3_600)));
    server.publish("verification_session.verified", json!({"id": "vks_after_grace"}));
    let last = b_got("vks_after_grace");
    assert_eq!(last.stile_signature_valid(SECRET_B_NEW), (true, 1));
    assert_eq!(last.stile_signature_valid(SECRET_B_OLD), (false, 1));

    // A backup holds no secret in clear either, and only the owner may read it.
    let backup = server.data_dir().join("../backup.redb");
    let out = crate::common::process::stile_bin()
        .args(["backup", backup.to_str().unwrap(), "--data-dir", server.data_dir().to_str().unwrap()])
        .args(["--url", &server.base])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = std::fs::read(&backup).unwrap();
    assert!(copy.len() > 10_000 && !holds(&copy, "whsec_"), "{} bytes", copy.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Sealed once: the next start finds nothing to do, and the secrets still sign.
    let server = server.restart();
    let again = std::fs::read(server.data_dir().join("stile.redb")).unwrap();
    assert!(!holds(&again, "whsec_"));
    let revealed = server.get(&format!("/v1/webhook_endpoints/{ENDPOINT_A}/secret"));
    assert_eq!(revealed.body["secret"], SECRET_A);
}

#[test]
fn secrets_stored_in_clear_in_postgres_are_sealed_at_start_and_absent_from_a_dump() {
    let Some(cluster) = stile::store::postgres::throwaway::ThrowawayPostgres::shared_for_test() else { return };
    let url = cluster.new_database().expect("a database");
    let database = url.rsplit('/').next().unwrap().to_string();
    let on_database = |c: &mut stile::config::Config| {
        c.store.backend = stile::config::Backend::Postgres;
        c.store.postgres_url = stile::config::DatabaseUrl(url.clone());
    };
    let server = TestServer::start_with(on_database);
    let key_file = server.data_dir().join("payload.key");
    let create = |path: &str| {
        let created = server.post(
            "/v1/webhook_endpoints",
            json!({"url": format!("http://127.0.0.1:9{path}"), "enabled_events": ["*"]}),
        );
        assert_eq!(created.status, 200, "{}", created.text);
        (created.body["id"].as_str().unwrap().to_string(), created.body["secret"].as_str().unwrap().to_string())
    };
    let (a, secret_a) = create("/a");
    let (b, secret_b_old) = create("/b");
    let rotated = server.post(&format!("/v1/webhook_endpoints/{b}/rotate_secret"), json!({"expires_in": "24h"}));
    let secret_b_new = rotated.body["secret"].as_str().unwrap().to_string();
    assert!(!cluster.dump(&database).unwrap().contains("whsec_"), "sealed when written");
    let _kept = server.stop();

    // As the release before this one stored them: in clear, B's old one with its grace.
    let uuid_of = |id: &str| {
        let ulid: ulid::Ulid = id.trim_start_matches("we_").parse().unwrap();
        uuid::Uuid::from_u128(u128::from(ulid)).to_string()
    };
    let set = |id: &str, index: usize, secret: &str| {
        let sql = format!(
            "UPDATE endpoints SET record = jsonb_set(record, '{{secrets,{index},secret}}', to_jsonb('{secret}'::text)) WHERE id = '{}'",
            uuid_of(id)
        );
        cluster.sql_in(&database, &sql).unwrap();
    };
    set(&a, 0, &secret_a);
    set(&b, 0, &secret_b_new);
    set(&b, 1, &secret_b_old);
    let dump = cluster.dump(&database).unwrap();
    assert!(dump.contains(&secret_a) && dump.contains(&secret_b_old), "the test put them in clear");

    let server = TestServer::start_with(|c| {
        on_database(c);
        c.store.payload_key_file = key_file.clone();
    });
    let dump = cluster.dump(&database).unwrap();
    assert!(!dump.contains("whsec_"), "a secret is in the dump in clear");
    let receiver = Receiver::start();
    for (id, path) in [(&a, "/a"), (&b, "/b")] {
        let update = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"url": receiver.url(path)}));
        assert_eq!(update.status, 200, "{}", update.text);
    }
    server.publish("verification_session.verified", json!({"id": "vks_pg"}));
    let got = receiver.wait_for("/a", 1, WAIT);
    assert_eq!(got[0].stile_signature_valid(&secret_a), (true, 1));
    let got = receiver.wait_for("/b", 1, WAIT);
    for secret in [&secret_b_new, &secret_b_old] {
        assert_eq!(got[0].stile_signature_valid(secret), (true, 2), "{:?}", got[0].headers);
        assert_eq!(got[0].standard_signature_valid(secret), (true, 2), "{:?}", got[0].headers);
    }
}
