//! Replays (`/v1/replays`): a dry run counts exactly and sends nothing; a replay sends
//! each matched delivery once, at the endpoint's rate, and counts the outcomes; cancel
//! stops it; another application's replays and endpoints are out of reach; events
//! skipped while an endpoint was disabled are replayed after it is enabled.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TestServer, eventually};

const WAIT: Duration = Duration::from_secs(20);

/// The event ids of the requests `receiver` got at `path`, with how many times each came.
fn arrivals(receiver: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in receiver.received(path) {
        *seen.entry(request.json()["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    seen
}

fn replay(server: &TestServer, body: Value) -> Value {
    let resp = server.post("/v1/replays", body);
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body
}

/// Waits until the replay `id` has this status; its final view.
fn wait_status(server: &TestServer, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    let done = eventually(WAIT, || {
        last = server.get(&format!("/v1/replays/{id}")).body;
        last["status"] == status
    });
    assert!(done, "the replay is not {status}: {last}");
    last
}

/// Publishes `n` events of `event_type`, each with `data.n`; their ids, newest last.
fn publish(server: &TestServer, event_type: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let event = server.publish(event_type, json!({"id": format!("vks_{event_type}_{i}"), "n": i}));
            event["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_dry_run_counts_exactly_and_a_replay_sends_each_failed_delivery_once() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    let down = server.create_endpoint(&receiver.url("/down"));
    let down_id = down["id"].as_str().unwrap().to_string();
    let up = server.create_endpoint(&receiver.url("/up"));
    let up_id = up["id"].as_str().unwrap().to_string();
    let verified = publish(&server, "verification_session.verified", 25);
    let canceled = publish(&server, "verification_session.cancelled", 12);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/down"), 37);

    let count = |query: Value| {
        let mut body = query;
        body["dry_run"] = json!(true);
        let answer = replay(&server, body);
        assert_eq!(answer["object"], "replay_estimate", "{answer}");
        answer
    };
    let all_down = count(json!({"endpoints": [down_id]}));
    assert_eq!(all_down["matched"], 37);
    let sample = all_down["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 10);
    assert_eq!(sample[0]["event_id"], canceled[11].as_str(), "newest first");
    assert_eq!(sample[0]["delivery_status"], "failed");
    assert_eq!(sample[0]["endpoint_id"], down_id.as_str());
    assert_eq!(count(json!({"endpoints": [down_id], "event_types": ["verification_session.verified"]}))["matched"], 25);
    assert_eq!(
        count(json!({"event_types": ["verification_session.verified", "verification_session.cancelled"]}))["matched"],
        37,
        "any endpoint: only the failed ones"
    );
    assert_eq!(count(json!({"endpoints": [down_id], "filter": {"data.n": {"$lt": 5}}}))["matched"], 10);
    assert_eq!(count(json!({"endpoints": [up_id]}))["matched"], 0, "nothing failed there");
    assert_eq!(count(json!({"endpoints": [up_id], "status": "all"}))["matched"], 37);
    assert_eq!(count(json!({"status": "all"}))["matched"], 74);
    assert_eq!(count(json!({"endpoints": [down_id], "created_before": 1}))["matched"], 0);
    assert_eq!((receiver.count("/down"), receiver.count("/up")), (37, 37), "a dry run sends nothing");
    assert_eq!(server.get("/v1/replays").body["data"].as_array().unwrap().len(), 0, "nor stores a replay");

    // The receiver works again: the replay of the verified ones sends each once.
    receiver.set("/down", Behaviour::Ok);
    let started = replay(&server, json!({"endpoints": [down_id], "event_types": ["verification_session.verified"]}));
    assert_eq!((started["object"].as_str(), started["status"].as_str()), (Some("replay"), Some("running")));
    assert_eq!(started["matched"], 25);
    let id = started["id"].as_str().unwrap();
    assert!(id.starts_with("rp_"), "{id}");
    let done = wait_status(&server, id, "completed");
    assert_eq!(
        (done["sent"].as_u64(), done["succeeded"].as_u64(), done["failed"].as_u64()),
        (Some(25), Some(25), Some(0))
    );
    assert!(done["finished_at"].as_i64().is_some(), "{done}");
    let seen = arrivals(&receiver, "/down");
    for event in &verified {
        assert_eq!(seen[event], 2, "{event}: the failed attempt and the replay's, nothing more");
    }
    for event in &canceled {
        assert_eq!(seen[event], 1, "{event} was not part of the replay");
    }
    assert_eq!(receiver.count("/up"), 37);
    let listed = server.get("/v1/replays").body;
    assert_eq!(listed["data"][0]["id"], id, "{listed}");
    assert_eq!(listed["data"][0]["query"]["event_types"], json!(["verification_session.verified"]));

    // Replayed and delivered: nothing failed is left to replay of that type.
    let left = count(json!({"endpoints": [down_id], "event_types": ["verification_session.verified"]}));
    assert_eq!(left["matched"], 0);
}

#[test]
fn a_replay_keeps_to_the_endpoints_rate_limit_and_cancel_stops_it() {
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    let endpoint = server.create_endpoint(&receiver.url("/slow"));
    let id = endpoint["id"].as_str().unwrap().to_string();
    publish(&server, "verification_session.verified", 60);
    server.wait_queue_empty(WAIT);
    receiver.set("/slow", Behaviour::Ok);
    let changed = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"rate_limit": 10}));
    assert_eq!(changed.status, 200, "{}", changed.text);

    let before = receiver.count("/slow");
    let started = replay(&server, json!({"endpoints": [id]}));
    let replay_id = started["id"].as_str().unwrap().to_string();
    assert!(eventually(WAIT, || receiver.count("/slow") >= before + 15), "the replay sends");
    let cancelled = server.post(&format!("/v1/replays/{replay_id}/cancel"), json!({}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    let sent = cancelled.body["sent"].as_u64().unwrap();
    assert!(sent < 60, "cancelled half way: {sent} sent");

    // What it had queued goes; nothing after.
    assert!(eventually(WAIT, || receiver.count("/slow") == before + sent as usize), "the queued ones arrive");
    let settled = eventually(WAIT, || server.get(&format!("/v1/replays/{replay_id}")).body["succeeded"] == sent);
    assert!(settled, "the outcomes of what it sent are still counted");
    let view = server.get(&format!("/v1/replays/{replay_id}")).body;
    assert_eq!((view["status"].as_str(), view["sent"].as_u64()), (Some("cancelled"), Some(sent)));
    // A cancel of a replay that has ended changes nothing.
    let again = server.post(&format!("/v1/replays/{replay_id}/cancel"), json!({}));
    assert_eq!(again.body["finished_at"], cancelled.body["finished_at"]);

    // Never more than the limit: any two seconds hold at most 21 starts (flow.rs), and
    // their arrival times here, 2 more for the network's jitter on a loaded machine. (A
    // batch started by limits that no longer held sent 18 in one second.)
    let times: Vec<_> = receiver.received("/slow").iter().skip(before).map(|r| r.at).collect();
    let most = most_within(&times, Duration::from_secs(2));
    assert!(most <= 2 * 10 + 1 + 2, "{most} deliveries within two seconds at a limit of 10");
}

/// The most of `times` (in order) that fall in any window of `window`.
fn most_within(times: &[std::time::Instant], window: Duration) -> usize {
    (0..times.len())
        .map(|i| times[i..].iter().take_while(|t| t.duration_since(times[i]) < window).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_replay_reaches_only_its_own_application_through_a_portal_token_or_a_restricted_key() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    let make_app = |name: &str| {
        let app = server.post("/v1/apps", json!({"name": name}));
        assert_eq!(app.status, 200, "{}", app.text);
        app.body["id"].as_str().unwrap().to_string()
    };
    let (a, b) = (make_app("A"), make_app("B"));
    let in_app = |app: &str, method: &str, path: &str, body: Option<Value>| {
        let mut req = server.req(method, path).header("stile-app", app);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    let b_endpoint =
        in_app(&b, "POST", "/v1/webhook_endpoints", Some(json!({"url": receiver.url("/b"), "enabled_events": ["*"]})));
    let b_endpoint = b_endpoint.body["id"].as_str().unwrap().to_string();
    let b_replay = in_app(&b, "POST", "/v1/replays", Some(json!({"status": "all"})));
    assert_eq!(b_replay.status, 200, "{}", b_replay.text);
    let b_replay = b_replay.body["id"].as_str().unwrap().to_string();

    // A portal session of application A.
    let session = server.post(&format!("/v1/apps/{a}/portal_sessions"), json!({}));
    assert_eq!(session.status, 200, "{}", session.text);
    let token = session.body["token"].as_str().unwrap().to_string();
    let portal = |method: &str, path: &str, body: Option<Value>| {
        let mut req = server.req(method, path).key(&token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    let refused = portal("POST", "/v1/replays", Some(json!({"endpoints": [b_endpoint]})));
    refused.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(refused.body["error"]["param"], "endpoints");
    portal("GET", &format!("/v1/replays/{b_replay}"), None).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    let cancel = portal("POST", &format!("/v1/replays/{b_replay}/cancel"), None);
    cancel.assert_error(404, "invalid_request_error", "resource_missing");
    assert_eq!(portal("GET", "/v1/replays", None).body["data"].as_array().unwrap().len(), 0);
    let own = portal("POST", "/v1/replays", Some(json!({"dry_run": true})));
    assert_eq!((own.status, own.body["matched"].as_u64()), (200, Some(0)), "{}", own.text);
    assert_eq!(in_app(&a, "GET", &format!("/v1/replays/{b_replay}"), None).status, 404);
    assert_eq!(in_app(&b, "GET", &format!("/v1/replays/{b_replay}"), None).status, 200);

    // A key restricted to application A reaches the same, and no more.
    let (server, key) = server.restart_with_key_for(&a);
    let restricted = |method: &str, path: &str, body: Option<Value>| {
        let mut req = server.req(method, path).key(&key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    let refused = restricted("POST", "/v1/replays", Some(json!({"endpoints": [b_endpoint], "dry_run": true})));
    assert_eq!(refused.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "endpoints");
    let other = restricted("GET", &format!("/v1/replays/{b_replay}"), None);
    other.assert_error(404, "invalid_request_error", "resource_missing");
    assert_eq!(restricted("GET", "/v1/replays", None).body["data"].as_array().unwrap().len(), 0);
    let own = restricted("POST", "/v1/replays", Some(json!({"status": "all"})));
    assert_eq!((own.status, own.body["object"].as_str()), (200, Some("replay")), "{}", own.text);
}

#[test]
fn bad_replays_are_refused_with_the_parameter_named() {
    let server = TestServer::start();
    let refused = |body: Value, param: &str| {
        let resp = server.post("/v1/replays", body.clone());
        resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(resp.body["error"]["param"], param, "{body}: {}", resp.text);
    };
    refused(json!({"status": "sometimes"}), "status");
    refused(json!({"endpoints": ["evt_01JD8Y6QK4N2V7X3ZB5C9R1T0M"]}), "endpoints[0]");
    refused(json!({"endpoints": ["we_01JD8Y6QK4N2V7X3ZB5C9R1T0M"]}), "endpoints");
    refused(json!({"labels": ["nobody-has-it"]}), "labels");
    refused(json!({"created_after": 10, "created_before": 5}), "created_before");
    refused(json!({"created_after": -1}), "created_after");
    refused(json!({"filter": {"data.n": {"$between": 1}}}), "filter.data.n.$between");
    let unknown = server.post("/v1/replays", json!({"colour": "red"}));
    assert_eq!(unknown.assert_error(400, "invalid_request_error", "parameter_unknown")["param"], "colour");
    server.get("/v1/replays/rp_nope").assert_error(404, "invalid_request_error", "resource_missing");
    let missing = server.get("/v1/replays/rp_01JD8Y6QK4N2V7X3ZB5C9R1T0M");
    missing.assert_error(404, "invalid_request_error", "resource_missing");
}

#[test]
fn events_missed_while_an_endpoint_was_disabled_are_kept_and_replayed_after_it_is_enabled() {
    let receiver = Receiver::start();
    let server = TestServer::start_with(|c| {
        c.retention.events = Duration::from_secs(1);
        c.delivery.retry_schedule = vec![];
    });
    server.create_endpoint_for(&receiver.url("/up"), &["*"]);
    let off = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/off"), "enabled_events": ["verification_session.verified"],
               "filter": {"data.n": {"$lt": 3}}}),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    let off_id = off.body["id"].as_str().unwrap().to_string();
    let disabled = server.post(&format!("/v1/webhook_endpoints/{off_id}"), json!({"status": "disabled"}));
    assert_eq!(disabled.status, 200, "{}", disabled.text);

    let missed = publish(&server, "verification_session.verified", 4);
    let other = server.publish("verification_session.created", json!({"id": "vks_other"}));
    let other_id = other["id"].as_str().unwrap().to_string();
    assert!(eventually(WAIT, || receiver.count("/up") == 5), "the enabled endpoint gets them all");
    // Past the retention period the event only the enabled endpoint took goes; those the
    // disabled one missed are kept for its undelivered-payload window.
    let pruned = eventually(WAIT, || server.get(&format!("/v1/events/{other_id}")).status == 404);
    assert!(pruned, "an event delivered everywhere is pruned after a second");
    for event in &missed[..3] {
        assert_eq!(server.get(&format!("/v1/events/{event}")).status, 200, "{event} is kept to be replayed");
    }
    let refused = eventually(WAIT, || server.get(&format!("/v1/events/{}", missed[3])).status == 404);
    assert!(refused, "the one its filter refused was not missed, and goes");
    // From here on, history stays (a second's retention would prune the replay's attempts
    // before their outcomes are counted).
    let server = server.restart_with(|c| c.retention.events = Duration::from_secs(86_400));

    // Still disabled: counted, but not replayed (its deliveries would only wait).
    let early = server.post("/v1/replays", json!({"endpoints": [off_id], "status": "never_attempted"}));
    assert_eq!(early.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "endpoints");
    let counted =
        server.post("/v1/replays", json!({"endpoints": [off_id], "status": "never_attempted", "dry_run": true}));
    assert_eq!(counted.body["matched"], 3, "{}", counted.text);
    let enabled = server.post(&format!("/v1/webhook_endpoints/{off_id}"), json!({"status": "enabled"}));
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let count = |status: &str| {
        let answer = replay(&server, json!({"endpoints": [off_id], "status": status, "dry_run": true}));
        answer["matched"].as_u64().unwrap()
    };
    assert_eq!(count("never_attempted"), 3, "the filter refused data.n = 3: not missed");
    assert_eq!(count("failed"), 0);
    assert_eq!(count("all"), 3);
    assert_eq!(receiver.count("/off"), 0, "enabling it sends nothing by itself");

    let started = replay(&server, json!({"endpoints": [off_id], "status": "never_attempted"}));
    let done = wait_status(&server, started["id"].as_str().unwrap(), "completed");
    assert_eq!((done["sent"].as_u64(), done["succeeded"].as_u64()), (Some(3), Some(3)), "{done}");
    let seen = arrivals(&receiver, "/off");
    assert_eq!(seen.len(), 3, "{seen:?}");
    for event in &missed[..3] {
        assert_eq!(seen[event], 1, "{event} replayed once");
    }
    assert_eq!(count("never_attempted"), 0, "attempted now");
}

/// The deliveries of the kill -9 test: enough that the replay is half way for seconds.
const MANY: usize = 10_000;

/// The endpoint's rate limit in the kill -9 test.
const RATE: usize = 500;

/// Workers of the killed server: at most this many attempts were in flight at the kill,
/// and as many answered but not yet recorded; those are made again after the restart (the
/// engine's at-least-once, not the replay's).
const KILL_WORKERS: usize = 16;

/// A `stile serve` of the test's backend (`STILE_TEST_BACKEND`: its redb data directory
/// in `dir`, or the Postgres database at `url`), each first failure final.
fn start_process(dir: &std::path::Path, database: Option<&str>) -> crate::common::process::ServerProcess {
    let workers = KILL_WORKERS.to_string();
    let mut env = vec![
        ("STILE_AUTH_KEYS", crate::common::TEST_KEY),
        ("STILE_DELIVERY_RETRY_SCHEDULE", ""),
        ("STILE_DELIVERY_WORKERS", workers.as_str()),
    ];
    if let Some(url) = database {
        // What the killed process had claimed waits out its lease: 3 s, not a minute.
        env.extend([
            ("STILE_STORE_BACKEND", "postgres"),
            ("STILE_STORE_POSTGRES_URL", url),
            ("STILE_STORE_POSTGRES_CLAIM_LEASE", "3s"),
        ]);
    }
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    crate::common::process::ServerProcess::start(dir, &args, &env).expect("server starts")
}

/// A request to a server process with the test key.
fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = crate::common::Req::new(method, format!("{base}{path}")).key(crate::common::TEST_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send();
    assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text);
    resp.body
}

/// Every attempt of an endpoint, newest first, read page by page.
fn endpoint_attempts(base: &str, endpoint_id: &str) -> Vec<Value> {
    let mut attempts = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/webhook_endpoints/{endpoint_id}/deliveries?limit=100{cursor}");
        let page = call(base, "GET", &path, None);
        let data = page["data"].as_array().unwrap();
        attempts.extend(data.iter().cloned());
        if page["has_more"] != true {
            return attempts;
        }
        cursor = format!("&starting_after={}", data.last().unwrap()["id"].as_str().unwrap());
    }
}

#[test]
fn a_replay_of_10000_failed_deliveries_keeps_the_rate_and_survives_kill_9_sending_each_once() {
    let database = crate::common::test_database();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/r", Behaviour::Status(500));
    let server = start_process(dir.path(), database.as_deref());
    let endpoint = call(
        &server.base,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/r"), "enabled_events": ["*"]})),
    );
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    // Published from 32 threads (their commits are grouped); each delivery fails at once, for good.
    std::thread::scope(|scope| {
        for t in 0..32 {
            let base = &server.base;
            scope.spawn(move || {
                for n in (t..MANY).step_by(32) {
                    let data = json!({"type": "verification_session.verified", "data": {"id": format!("vks_{n}")}});
                    call(base, "POST", "/v1/events", Some(data));
                }
            });
        }
    });
    crate::common::wait_queue_empty(&server.base, Duration::from_secs(120));
    assert_eq!(receiver.count("/r"), MANY);

    receiver.set("/r", Behaviour::Ok);
    let limited = Some(json!({"rate_limit": RATE}));
    call(&server.base, "POST", &format!("/v1/webhook_endpoints/{endpoint_id}"), limited);
    let estimate =
        call(&server.base, "POST", "/v1/replays", Some(json!({"endpoints": [endpoint_id], "dry_run": true})));
    assert_eq!(estimate["matched"], MANY);
    let started = call(&server.base, "POST", "/v1/replays", Some(json!({"endpoints": [endpoint_id]})));
    let replay_id = started["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(60), || receiver.count("/r") >= MANY + MANY * 2 / 5),
        "the replay is under way"
    );
    server.kill_hard();
    let at_kill = receiver.count("/r") - MANY;
    assert!(at_kill < MANY, "killed half way: {at_kill} replayed");

    let server = start_process(dir.path(), database.as_deref());
    let mut view = Value::Null;
    let done = eventually(Duration::from_secs(90), || {
        view = call(&server.base, "GET", &format!("/v1/replays/{replay_id}"), None);
        view["status"] == "completed"
    });
    assert!(done, "the replay resumes and completes after the restart: {view}");
    assert_eq!((view["matched"].as_u64(), view["sent"].as_u64()), (Some(MANY as u64), Some(MANY as u64)), "{view}");
    let attempts = endpoint_attempts(&server.base, &endpoint_id);
    // Newest first: the replay's failures, if any, come before the MANY first failures.
    let unsucceeded: Vec<_> = attempts.iter().filter(|a| a["status"] != "succeeded").collect();
    let replay_failures: Vec<_> = unsucceeded[..unsucceeded.len().saturating_sub(MANY)].to_vec();
    assert_eq!(
        (view["succeeded"].as_u64(), view["failed"].as_u64()),
        (Some(MANY as u64), Some(0)),
        "{view}\nreplayed attempts that did not succeed: {replay_failures:#?}\nserver: {:#?}",
        server.stderr_so_far()
    );

    // Each event reached the receiver again; a second time only if it was in flight at
    // the kill.
    let seen = arrivals(&receiver, "/r");
    assert_eq!(seen.len(), MANY);
    let twice = seen.values().filter(|n| **n > 2).count();
    assert!(seen.values().all(|n| *n >= 2), "every event was replayed");
    assert!(
        twice <= 2 * KILL_WORKERS,
        "{twice} events arrived more than twice: more than were in flight or unrecorded at the kill"
    );
    // And the replay queued one delivery per event: every event has two attempts, the
    // failure and the replay's (an attempt made again after the kill is the same attempt).
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for attempt in &attempts {
        *per_event.entry(attempt["event_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let attempts = per_event;
    assert_eq!(attempts.len(), MANY);
    let odd: Vec<_> = attempts.iter().filter(|(_, n)| **n != 2).collect();
    assert!(odd.is_empty(), "events whose replay was queued other than once: {odd:?}");

    // Never more than the rate limit, across the kill and the restart: any two seconds
    // hold at most 1,011 starts (flow.rs); arrival times here are allowed a tenth more
    // for the network's jitter on a loaded machine (at 2 ms apart, 100 ms of it is 50).
    let times: Vec<_> = receiver.received("/r").iter().skip(MANY).map(|r| r.at).collect();
    let most = most_within(&times, Duration::from_secs(2));
    assert!(most <= 2 * RATE * 11 / 10, "{most} deliveries within two seconds at a limit of {RATE}");
}
