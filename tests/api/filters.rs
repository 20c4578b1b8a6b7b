//! Content filters: an endpoint receives only the events its filter takes, judged on the
//! event object as it would receive it; a bad filter is a 400 naming where it is wrong;
//! what a filter refuses creates no attempt and is counted. On the backend the suite
//! runs on, across a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::{TestServer, metric};

const WAIT: Duration = Duration::from_secs(20);

/// The amounts of the events `path` received, smallest first: deliveries in flight together
/// may arrive in either order (no order is promised), so the test compares what arrived.
fn amounts(receiver: &Receiver, path: &str) -> Vec<i64> {
    let mut amounts: Vec<i64> =
        receiver.received(path).iter().map(|r| r.json()["data"]["amount"].as_i64().unwrap_or(-1)).collect();
    amounts.sort_unstable();
    amounts
}

fn filtered_total(server: &TestServer) -> u64 {
    metric(&server.base, "stile_deliveries_filtered_total")
}

#[test]
fn an_endpoint_receives_only_what_its_filter_takes_and_the_rest_is_counted() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let filter = json!({"data": {"amount": {"$gte": 1000}, "currency": {"$in": ["eur", "gbp"]}}});
    let created = server
        .post("/v1/webhook_endpoints", json!({"url": receiver.url("/big"), "enabled_events": ["*"], "filter": filter}));
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["filter"], filter, "shown as written");
    let big = created.body["id"].as_str().unwrap().to_string();
    server.create_endpoint(&receiver.url("/all"));

    let publish = |server: &TestServer, amount: i64, currency: &str| {
        let published = server.post(
            "/v1/events",
            json!({"type": "verification_session.verified", "data": {"amount": amount, "currency": currency}}),
        );
        assert_eq!(published.status, 200, "{}", published.text);
        published.body["pending_webhooks"].as_u64()
    };
    assert_eq!(publish(&server, 500, "eur"), Some(1), "the filter took it out: one delivery");
    assert_eq!(publish(&server, 1500, "eur"), Some(2));
    assert_eq!(publish(&server, 2000, "usd"), Some(1));
    assert_eq!(publish(&server, 2500, "gbp"), Some(2));
    receiver.wait_for("/all", 4, WAIT);
    receiver.wait_for("/big", 2, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(amounts(&receiver, "/big"), [1500, 2500]);
    assert_eq!(filtered_total(&server), 2);
    // No attempt was made for what the filter refused; the endpoint's statistics count it.
    assert_eq!(server.deliveries(&big).len(), 2);
    let stats = server.get("/v1/delivery_stats").body;
    let of_big = stats["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint_id"] == big.as_str()).cloned();
    let of_big = of_big.unwrap_or_else(|| panic!("{stats}"));
    assert_eq!((&of_big["filtered"], &of_big["succeeded"]), (&json!(2), &json!(2)), "{of_big}");
    assert_eq!(stats["totals"]["filtered"], 2, "{stats}");

    // Kept across a restart, and replaced or removed by an update.
    let server = server.restart();
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{big}")).body["filter"], filter);
    publish(&server, 700, "eur");
    receiver.wait_for("/all", 5, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/big"), 2, "still filtered after the restart");
    let updated =
        server.post(&format!("/v1/webhook_endpoints/{big}"), json!({"filter": {"data.amount": {"$lt": 1000}}}));
    assert_eq!(updated.status, 200, "{}", updated.text);
    publish(&server, 800, "usd");
    receiver.wait_for("/big", 3, WAIT);
    let removed = server.post(&format!("/v1/webhook_endpoints/{big}"), json!({"filter": null}));
    assert_eq!((removed.status, &removed.body["filter"]), (200, &Value::Null), "{}", removed.text);
    publish(&server, 5000, "jpy");
    receiver.wait_for("/big", 4, WAIT);
    assert_eq!(amounts(&receiver, "/big"), [800, 1500, 2500, 5000]);
}

#[test]
fn a_filter_sees_the_type_an_endpoint_receives() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    // Subscribed by its Kayle name, the endpoint receives `verification.session.succeeded`.
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({
            "url": receiver.url("/kayle"),
            "enabled_events": ["verification.session.succeeded"],
            "filter": {"type": "verification.session.succeeded", "livemode": false},
        }),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    // The same subscription filtering on the built-in name: it never sees that name.
    let other = server.post(
        "/v1/webhook_endpoints",
        json!({
            "url": receiver.url("/built-in"),
            "enabled_events": ["verification.session.succeeded"],
            "filter": {"type": "verification_session.verified"},
        }),
    );
    assert_eq!(other.status, 200, "{}", other.text);
    server.publish("verification_session.verified", json!({"id": "vks_1"}));
    let received = receiver.wait_for("/kayle", 1, WAIT);
    assert_eq!(received[0].json()["type"], "verification.session.succeeded");
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/built-in"), 0);
    assert_eq!(filtered_total(&server), 1);
    // Tried on the Kayle name's example, the filter sees that name too.
    let tried = server.post(
        "/v1/filters/test",
        json!({"filter": {"type": "verification.session.succeeded"}, "event_type": "verification.session.succeeded"}),
    );
    assert_eq!((tried.status, &tried.body["matches"]), (200, &json!(true)), "{}", tried.text);
    // Operational endpoints take none: they hear every operational event of their types.
    let operational = server.post(
        "/v1/operational_webhook_endpoints",
        json!({"url": receiver.url("/ops"), "enabled_events": ["*"], "filter": {"type": "endpoint.created"}}),
    );
    assert_eq!(operational.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "filter");
}

#[test]
fn what_a_filter_refuses_of_a_sessions_events_is_counted_too() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/moves"), "enabled_events": ["*"], "filter": {"type": {"$nin": ["verification_session.created", "verification_session.processing"]}}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let session = server.post("/v1/verification_sessions", json!({"type": "document"}));
    assert_eq!(session.status, 200, "{}", session.text);
    let id = session.body["id"].as_str().unwrap();
    assert_eq!(filtered_total(&server), 1, "the created event, refused");
    // A move whose event the filter refuses is counted; one it takes is not.
    let moved = server.post(&format!("/v1/test_helpers/verification_sessions/{id}/process"), json!({}));
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(filtered_total(&server), 2, "the processing event, refused");
    let moved = server.post(&format!("/v1/test_helpers/verification_sessions/{id}/verify"), json!({}));
    assert_eq!(moved.status, 200, "{}", moved.text);
    let got = receiver.wait_for("/moves", 1, WAIT);
    assert_eq!(got[0].json()["type"], "verification_session.verified");
    assert_eq!(filtered_total(&server), 2, "the move's event went through");
}

#[test]
fn a_bad_filter_is_a_400_naming_where_it_is_wrong_and_changes_nothing() {
    let server = TestServer::start();
    let create = |filter: Value| {
        server.post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/x", "enabled_events": ["*"], "filter": filter}),
        )
    };
    for (filter, param, says) in [
        (json!({"data": {"amount": {"$gtx": 5}}}), "filter.data.amount.$gtx", "unknown operator `$gtx`"),
        (json!({"data.id": {"$exists": true}}), "filter.data.id.$exists", "did you mean `$exist`"),
        (json!({"data.note": {"$regex": "(open"}}), "filter.data.note.$regex", "does not compile"),
        (json!({"$or": {"type": "a"}}), "filter.$or", "array of filters"),
        (json!(["type"]), "filter", "a JSON object"),
    ] {
        let resp = create(filter.clone());
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], param, "{filter}: {}", resp.text);
        assert!(error["message"].as_str().unwrap().contains(says), "{filter}: {}", resp.text);
    }
    assert!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty(), "nothing created");
    let id = server.create_endpoint("http://127.0.0.1:9/x")["id"].as_str().unwrap().to_string();
    let bad =
        server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"filter": {"a": {"$in": 5}}, "name": "kept?"}));
    bad.assert_error(400, "invalid_request_error", "parameter_invalid");
    let endpoint = server.get(&format!("/v1/webhook_endpoints/{id}")).body;
    assert_eq!((&endpoint["filter"], &endpoint["name"]), (&Value::Null, &Value::Null), "no partial write");
}

#[test]
fn a_filter_is_tried_on_a_pasted_event_or_a_types_example_before_it_is_saved() {
    let server = TestServer::start();
    let try_it = |body: Value| server.post("/v1/filters/test", body);
    let pasted = try_it(json!({
        "filter": {"data.amount": {"$gte": 1000}},
        "event": {"type": "invoice.paid", "data": {"amount": 1500}},
    }));
    assert_eq!(pasted.status, 200, "{}", pasted.text);
    assert_eq!((pasted.body["object"].as_str(), pasted.body["matches"].as_bool()), (Some("filter_test"), Some(true)));
    let refused = try_it(json!({"filter": {"data.amount": {"$gte": 1000}}, "event": {"data": {"amount": 5}}}));
    assert_eq!(refused.body["matches"], false, "{}", refused.text);
    // A type's example from the catalogue, as an endpoint would receive it.
    let example = server.get("/v1/event_types/verification_session.verified").body["example"].clone();
    let id = example["id"].as_str().expect("the built-in example has an id").to_string();
    let on_example =
        try_it(json!({"filter": {"data.id": id, "livemode": false}, "event_type": "verification_session.verified"}));
    assert_eq!(on_example.status, 200, "{}", on_example.text);
    assert_eq!(on_example.body["matches"], true, "{}", on_example.text);
    assert_eq!(on_example.body["event"]["type"], "verification_session.verified");
    assert_eq!(on_example.body["event"]["data"], example);
    // Refused as a filter on an endpoint would be, and neither both nor neither.
    let bad = try_it(json!({"filter": {"a": {"$nope": 1}}, "event": {}}));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "filter.a.$nope");
    try_it(json!({"filter": {}})).assert_error(400, "invalid_request_error", "parameter_invalid");
    try_it(json!({"filter": {}, "event": {}, "event_type": "verification_session.verified"})).assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );
    try_it(json!({"filter": {}, "event": [1]})).assert_error(400, "invalid_request_error", "parameter_invalid");
    try_it(json!({"event": {}})).assert_error(400, "invalid_request_error", "parameter_missing");
    try_it(json!({"filter": {}, "event_type": "no.such.type"})).assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );
}

#[test]
fn a_resend_to_every_subscriber_asks_the_filters_again_and_one_to_a_named_endpoint_does_not() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let picky = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/picky"), "enabled_events": ["*"], "filter": {"data.amount": {"$gt": 100}}}),
    );
    assert_eq!(picky.status, 200, "{}", picky.text);
    let picky = picky.body["id"].as_str().unwrap().to_string();
    server.create_endpoint(&receiver.url("/all"));
    let event = server.publish("verification_session.verified", json!({"amount": 5}));
    let event = event["id"].as_str().unwrap().to_string();
    receiver.wait_for("/all", 1, WAIT);

    let again = server.post(&format!("/v1/events/{event}/resend"), json!({}));
    assert_eq!(again.status, 200, "{}", again.text);
    receiver.wait_for("/all", 2, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/picky"), 0, "its filter refuses the event on a resend too");
    let named = server.post(&format!("/v1/events/{event}/resend"), json!({"endpoint": picky}));
    assert_eq!(named.status, 200, "{}", named.text);
    receiver.wait_for("/picky", 1, WAIT);
}

/// Publishes `n` events (`data.n` = 0..n, `data.tier` gold for every tenth) from 16
/// publishers; returns when all are stored.
fn publish_tiers(server: &TestServer, n: u64) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..16 {
            let next = std::sync::Arc::clone(&next);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let tier = if i.is_multiple_of(10) { "gold" } else { "plain" };
                    server.publish("verification_session.verified", json!({"n": i, "tier": tier}));
                }
            });
        }
    });
}

fn ns(page: &Value) -> Vec<i64> {
    let mut ns: Vec<i64> = page["data"].as_array().unwrap().iter().map(|e| e["data"]["n"].as_i64().unwrap()).collect();
    ns.sort_unstable();
    ns
}

#[test]
fn events_are_searched_by_content_a_page_at_a_time_both_ways() {
    let server = TestServer::start();
    publish_tiers(&server, 40);
    let search = |query: &str| {
        let resp = server.get(&format!("/v1/events?filter={}&{query}", urlencode(r#"{"data.tier": "gold"}"#)));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    };
    let first = search("limit=3");
    assert_eq!((first["data"].as_array().unwrap().len(), &first["has_more"]), (3, &json!(true)));
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(cursor, first["data"][2]["id"].as_str().unwrap(), "the last one returned");
    let second = search(&format!("limit=3&starting_after={cursor}"));
    assert_eq!((second["has_more"].clone(), second.get("next_cursor")), (json!(false), None));
    let mut all = ns(&first);
    all.extend(ns(&second));
    all.sort_unstable();
    assert_eq!(all, [0, 10, 20, 30], "each gold event once");
    // Back the other way from the oldest one: the two just newer than it.
    let ids = |page: &Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    let newest_first: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    let back = search(&format!("limit=2&ending_before={}", newest_first[3]));
    assert_eq!(ids(&back), newest_first[1..3].to_vec(), "newest first, as every page");
    assert_eq!(back["has_more"], true);
    // With the other filters: type and content together.
    let none = server
        .get(&format!("/v1/events?type=verification_session.failed&filter={}", urlencode(r#"{"data.tier": "gold"}"#)));
    assert_eq!(
        (none.status, none.body["data"].as_array().unwrap().len(), &none.body["has_more"]),
        (200, 0, &json!(false))
    );
    // A bad filter is a 400 naming where it is wrong.
    let bad = server.get(&format!("/v1/events?filter={}", urlencode(r#"{"data": {"$gtx": 1}}"#)));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "filter.data.$gtx");
    let not_json = server.get("/v1/events?filter=%7Bnope");
    assert_eq!(not_json.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "filter");
}

#[test]
fn a_search_for_something_rare_reads_a_bounded_number_of_events_and_says_where_to_go_on() {
    // A small budget (the default reads 5,000), so the test publishes a few hundred.
    let server = TestServer::start_with(|config| config.events.search_read_budget = 100);
    // More events than one search request reads, the one match the oldest.
    publish_tiers(&server, 1);
    let rare = server.get("/v1/events").body["data"][0]["id"].as_str().unwrap().to_string();
    let rest = 450;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..16 {
            let next = std::sync::Arc::clone(&next);
            let server = &server;
            scope.spawn(move || {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < rest {
                    server.publish("verification_session.verified", json!({"tier": "plain"}));
                }
            });
        }
    });
    let filter = urlencode(r#"{"data.tier": "gold"}"#);
    let first = server.get(&format!("/v1/events?filter={filter}&limit=10")).body;
    assert_eq!((first["data"].as_array().unwrap().len(), &first["has_more"]), (0, &json!(true)), "{first}");
    // Each request reads at most 100 events (fewer if 250 ms run out first): following
    // `next_cursor` reaches the match in a few.
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    for _ in 0..20 {
        assert_ne!(cursor, rare);
        let page = server.get(&format!("/v1/events?filter={filter}&limit=10&starting_after={cursor}")).body;
        if let Some(found) = page["data"].as_array().unwrap().first() {
            assert_eq!((&found["id"], &page["has_more"]), (&json!(rare), &json!(false)), "{page}");
            return;
        }
        cursor = page["next_cursor"].as_str().unwrap_or_else(|| panic!("{page}")).to_string();
    }
    panic!("the match was not reached in 20 requests");
}

/// `text` as a query parameter's value.
fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
