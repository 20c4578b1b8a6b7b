//! Flow control seen from a real receiver: an endpoint's `rate_limit` in every one-second
//! window, its `max_in_flight` in the requests open at once, and a 429 with `Retry-After`
//! pausing the endpoint without a failed attempt. One process here (redb, or Postgres
//! with `STILE_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::browser::in_browser;
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, TEST_KEY, TestServer, eventually};

/// How many more than `rate_limit` requests a one-second window at the receiver may hold:
/// requests delayed on their way (stile starts at most `rate_limit`).
pub const ARRIVAL_SLACK: usize = 2;

/// Creates an endpoint with these extra fields; returns its id.
fn endpoint_with(server: &TestServer, url: &str, fields: Value) -> String {
    let mut body = json!({"url": url, "enabled_events": ["*"]});
    body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    let resp = server.post("/v1/webhook_endpoints", body);
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["id"].as_str().unwrap().to_string()
}

/// Publishes `n` events through one batch of requests.
fn publish_many(server: &TestServer, n: usize) {
    for i in 0..n {
        server.publish("verification_session.created", json!({"id": format!("vks_{i}")}));
    }
}

/// The most arrivals in any window [t, t + 1 s).
fn busiest_second(arrivals: &[Instant]) -> usize {
    arrivals
        .iter()
        .map(|t| arrivals.iter().filter(|a| **a >= *t && **a < *t + Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_rate_limit_holds_in_every_one_second_window_at_the_receiver() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    endpoint_with(&server, &receiver.url("/limited"), json!({"rate_limit": 20}));
    let unlimited = endpoint_with(&server, &receiver.url("/free"), json!({}));
    publish_many(&server, 60);
    let published = Instant::now();
    let held = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("stile_deliveries_held{reason=\"rate_limit\"} "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let shown = eventually(Duration::from_secs(2), || {
        held(&Req::new("GET", format!("{}/metrics", server.base)).send().text) > 0
    });
    assert!(shown, "the metrics show no delivery held by the rate");

    let received = receiver.wait_for("/limited", 60, Duration::from_secs(30));
    let arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
    let busiest = busiest_second(&arrivals);
    // stile starts at most 20 in any second (docs/flow-control.md); a request held up on
    // its way (a loaded machine) arrives closer to the next, one more per such delay.
    assert!(busiest <= 20 + ARRIVAL_SLACK, "{busiest} requests in one second against a rate_limit of 20");
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(span >= Duration::from_millis(2_800), "60 requests at 20/s took only {span:?}");
    assert!(span <= Duration::from_secs(6), "60 requests at 20/s took {span:?}");
    // The endpoint beside it is not held back: its deliveries keep up with the publishes
    // (held at 20/s, the last would come about 3 s after them, however fast they went).
    receiver.wait_for("/free", 60, Duration::from_secs(5));
    let free: Vec<Instant> = receiver.received("/free").iter().map(|r| r.at).collect();
    let lag = free.last().unwrap().saturating_duration_since(published);
    assert!(lag < Duration::from_secs(1), "the unlimited endpoint waited for the limited one: {lag:?} behind");
    server.wait_queue_empty(Duration::from_secs(10));
    assert!(server.deliveries(&unlimited).iter().all(|d| d["status"] == "succeeded"));
}

#[test]
fn max_in_flight_caps_the_requests_open_at_the_receiver() {
    const HOLD: Duration = Duration::from_millis(150);
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Delay(HOLD));
    let server = TestServer::start_with(|c| c.delivery.per_endpoint_concurrency = 8);
    let id = endpoint_with(&server, &receiver.url("/slow"), json!({"max_in_flight": 2}));
    publish_many(&server, 12);

    let received = receiver.wait_for("/slow", 12, Duration::from_secs(30));
    // A request is open from its arrival until the receiver answers, HOLD later.
    let open_at = |t: Instant| received.iter().filter(|r| r.at <= t && t < r.at + HOLD).count();
    let most = received.iter().map(|r| open_at(r.at)).max().unwrap();
    assert_eq!(most, 2, "requests open at once, against max_in_flight 2");

    // Lifted to 6 (the server allows 8): more at once.
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"max_in_flight": 6}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["max_in_flight"], 6);
    let start = received.len();
    publish_many(&server, 12);
    let received = receiver.wait_for("/slow", start + 12, Duration::from_secs(30));
    let later = &received[start..];
    let open_at = |t: Instant| later.iter().filter(|r| r.at <= t && t < r.at + HOLD).count();
    let most = later.iter().map(|r| open_at(r.at)).max().unwrap();
    assert!((3..=6).contains(&most), "{most} open at once against max_in_flight 6");
}

#[test]
fn a_429_with_retry_after_pauses_the_endpoint_and_records_no_failed_attempt() {
    let receiver = Receiver::start();
    receiver.set("/busy", Behaviour::RetryAfterOnce(429, "2"));
    let server = TestServer::start();
    let id = endpoint_with(&server, &receiver.url("/busy"), json!({"max_in_flight": 1}));
    publish_many(&server, 3);

    let received = receiver.wait_for("/busy", 4, Duration::from_secs(15));
    let pause = received[1].at - received[0].at;
    assert!(pause >= Duration::from_millis(1_950), "the endpoint was sent to again after {pause:?}");
    server.wait_queue_empty(Duration::from_secs(10));
    assert_eq!(receiver.count("/busy"), 4, "the refused request once more, and the two behind it");
    let attempts = server.deliveries(&id);
    let statuses: Vec<&str> = attempts.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded"; 3], "one attempt per event, none failed: {attempts:?}");
    assert!(attempts.iter().all(|a| a["attempt"] == 1), "{attempts:?}");
    let endpoint = server.get(&format!("/v1/webhook_endpoints/{id}")).body;
    assert_eq!(endpoint["health"], "healthy", "a refusal is not a failure: {endpoint}");
    let metrics = Req::new("GET", format!("{}/metrics", server.base)).send().text;
    assert!(metrics.lines().any(|l| l == "stile_delivery_refusals_total 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "stile_deliveries_held{reason=\"paused\"} 0"), "{metrics}");
}

#[test]
fn a_receiver_that_only_ever_answers_429_still_gets_failed_attempts() {
    let receiver = Receiver::start();
    receiver.set("/always", Behaviour::Status(429));
    let server = TestServer::start_with(|c| c.delivery.max_pause = Duration::from_secs(1));
    let id = endpoint_with(&server, &receiver.url("/always"), json!({}));
    server.publish("verification_session.created", json!({"id": "vks_1"}));
    // Held (1 s, 1 s, ... by the capped back-off) five times, then recorded.
    let failed = eventually(Duration::from_secs(20), || {
        server.deliveries(&id).iter().any(|a| a["response_status"] == 429 && a["status"] != "pending")
    });
    assert!(failed, "no attempt was recorded: {:?}", server.deliveries(&id));
    assert!(receiver.count("/always") >= 6, "{} requests", receiver.count("/always"));
}

#[test]
fn flow_limits_are_checked_shown_and_cleared_in_the_stile_and_kayle_apis() {
    let server = TestServer::start();
    let url = "http://127.0.0.1:9/hook";
    for (field, bad) in [
        ("rate_limit", json!(0)),
        ("rate_limit", json!(100_001)),
        ("max_in_flight", json!(1025)),
        ("max_in_flight", json!(1.5)),
    ] {
        let resp = server.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"], field: bad}));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], field, "{error}");
    }
    let resp = server.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"], "rate_limit": "10"}));
    assert_eq!(resp.status, 400, "{}", resp.text);

    let id = endpoint_with(&server, url, json!({"rate_limit": 100, "max_in_flight": 4}));
    let shown = server.get(&format!("/v1/webhook_endpoints/{id}")).body;
    assert_eq!((shown["rate_limit"].clone(), shown["max_in_flight"].clone()), (json!(100), json!(4)));
    // `null` clears; absent keeps.
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"rate_limit": null}));
    assert_eq!((resp.body["rate_limit"].clone(), resp.body["max_in_flight"].clone()), (json!(null), json!(4)));
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"max_in_flight": 0}));
    assert_eq!(resp.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "max_in_flight");

    // The Kayle endpoints API takes them on PATCH too, and shows them once set.
    let resp = server.req("PATCH", &format!("/v1/webhooks/endpoints/{id}")).json(&json!({"rate_limit": 5})).send();
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["data"]["endpoint"]["rate_limit"], 5, "{}", resp.body);
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["rate_limit"], 5);
    let resp = server.req("PATCH", &format!("/v1/webhooks/endpoints/{id}")).json(&json!({"rate_limit": 0})).send();
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("rate_limit"), "{}", resp.body);
}

/// Polls `GET /v1/webhook_endpoints/:id/flow` until `wanted` holds (at most 10 s);
/// returns the last answer.
pub fn flow_when(base_get: impl Fn(&str) -> Value, id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let mut flow = Value::Null;
    let seen = eventually(Duration::from_secs(10), || {
        flow = base_get(&format!("/v1/webhook_endpoints/{id}/flow"));
        wanted(&flow)
    });
    assert!(seen, "the flow never showed what was expected: {flow}");
    flow
}

#[test]
fn a_paused_endpoints_flow_shows_the_pause_and_what_waits_in_the_api_and_the_dashboard() {
    let receiver = Receiver::start();
    receiver.set("/busy", Behaviour::RetryAfterOnce(429, "30"));
    let server = TestServer::start();
    let busy = endpoint_with(&server, &receiver.url("/busy"), json!({"max_in_flight": 1}));
    let calm = endpoint_with(&server, &receiver.url("/calm"), json!({"rate_limit": 50}));
    let asked = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    publish_many(&server, 3);

    let get = |path: &str| server.get(path).body;
    let flow = flow_when(get, &busy, |f| f["reason"] == "paused" && f["waiting"] == 3);
    assert_eq!(flow["object"], "webhook_endpoint_flow");
    assert_eq!((flow["throttled"].clone(), flow["in_flight"].clone()), (json!(true), json!(0)), "{flow}");
    assert_eq!((flow["max_in_flight"].clone(), flow["rate_limit"].clone()), (json!(1), json!(null)), "{flow}");
    let until = flow["paused_until"].as_i64().unwrap();
    assert!((asked + 29..=asked + 32).contains(&until), "paused until {until}, asked at {asked} for 30 s");
    // Held, not failed: the three deliveries are pending, with no attempt recorded.
    let attempts = server.deliveries(&busy);
    assert!(attempts.iter().all(|a| a["status"] == "pending" && a["response_status"].is_null()), "{attempts:?}");
    assert_eq!(receiver.count("/busy"), 1, "sent to while paused");
    // A test ping waits for the pause too: refused at once, saying for how long.
    let ping = server.post(&format!("/v1/webhook_endpoints/{busy}/test"), json!({}));
    let error = ping.assert_error(429, "rate_limit_error", "rate_limited");
    assert!(error["message"].as_str().unwrap().contains("paused"), "{error}");
    let wait: u64 = ping.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((20..=31).contains(&wait), "Retry-After {wait} for a 30 s pause");
    assert_eq!(receiver.count("/busy"), 1, "pinged while paused");

    // The endpoint beside it got its three and holds nothing back.
    receiver.wait_for("/calm", 3, Duration::from_secs(10));
    let flow = flow_when(get, &calm, |f| f["waiting"] == 0 && f["in_flight"] == 0);
    assert_eq!((flow["throttled"].clone(), flow["reason"].clone()), (json!(false), json!(null)), "{flow}");
    assert_eq!((flow["paused_until"].clone(), flow["rate_limit"].clone()), (json!(null), json!(50)), "{flow}");

    in_browser("flow_paused", move |page| async move {
        page.open(&format!("{}/", server.base)).await;
        page.sign_in(TEST_KEY).await;
        page.open(&format!("{}/#/endpoints/{busy}", server.base)).await;
        page.wait_text("[data-test=flow-now]", "Paused, ending in").await;
        page.wait_text("[data-test=flow-now]", "3 deliveries wait").await;
        page.open(&format!("{}/#/endpoints/{calm}", server.base)).await;
        page.wait_text("main h1", "/calm").await;
        page.wait_text("[data-test=flow]", "50 a second").await;
        assert!(page.all("[data-test=flow-now]").await.is_empty(), "the calm endpoint shown as held back");
    });
}

#[test]
fn a_rate_limited_endpoints_flow_counts_the_deliveries_waiting_for_the_rate() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    let id = endpoint_with(&server, &receiver.url("/slow"), json!({"rate_limit": 1}));
    publish_many(&server, 5);
    let get = |path: &str| server.get(path).body;
    let flow = flow_when(get, &id, |f| f["reason"] == "rate_limit");
    assert_eq!(flow["throttled"], true, "{flow}");
    let waiting = flow["waiting"].as_u64().unwrap();
    assert!((1..=4).contains(&waiting), "{waiting} waiting of 5 at 1 a second: {flow}");
    // Once all five went (4 s at 1 a second), nothing waits.
    receiver.wait_for("/slow", 5, Duration::from_secs(15));
    flow_when(get, &id, |f| f["throttled"] == false && f["waiting"] == 0);
}
