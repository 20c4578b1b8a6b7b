//! `/v1/webhook_endpoints` over HTTP.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::TestServer;

const PATH: &str = "/v1/webhook_endpoints";

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn create_returns_the_endpoint_and_its_secret_once() {
    let server = TestServer::start();
    let resp = server.post(
        PATH,
        json!({
            "url": "https://example.com/api/webhooks",
            "enabled_events": ["verification_session.verified", "verification_session.failed"],
            "description": "Production webhook",
            "metadata": {"team": "identity"},
        }),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let created = &resp.body;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("we_") && id.len() == 29, "{id}");
    assert_eq!(created["object"], "webhook_endpoint");
    assert_eq!(created["url"], "https://example.com/api/webhooks");
    assert_eq!(created["enabled_events"], json!(["verification_session.verified", "verification_session.failed"]));
    assert_eq!(created["description"], "Production webhook");
    assert_eq!(created["metadata"], json!({"team": "identity"}));
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["livemode"], false);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((created["created"].as_i64().unwrap() - now).abs() < 60);

    let secret = created["secret"].as_str().unwrap();
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32);

    let fetched = server.get(&format!("{PATH}/{id}"));
    assert_eq!(fetched.status, 200);
    assert!(fetched.body.get("secret").is_none(), "the secret is shown only at creation");
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(fetched.body, without_secret);
    let listed = server.get(PATH);
    assert!(listed.body["data"][0].get("secret").is_none());
}

#[test]
fn development_mode_accepts_http_to_loopback_only() {
    let server = TestServer::start();
    for url in ["http://localhost:3000/webhooks", "http://127.0.0.1:9000/x", "http://[::1]:8080/"] {
        let resp = server.post(PATH, json!({"url": url, "enabled_events": ["*"]}));
        assert_eq!(resp.status, 200, "{url}: {}", resp.text);
    }
    let resp = server.post(PATH, json!({"url": "http://example.com/hook", "enabled_events": ["*"]}));
    let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(error["param"], "url");
    assert!(error["message"].as_str().unwrap().contains("https://"));
}

#[test]
fn production_mode_refuses_http_and_private_targets_unless_allow_listed() {
    let server = TestServer::start_with(|c| {
        c.server.mode = stile::config::RunMode::Production;
        c.delivery.allowed_private_targets = vec!["10.20.0.0/16".into()];
    });
    for url in [
        "http://localhost:3000/webhooks",
        "https://localhost/webhooks",
        "https://127.0.0.1/",
        "https://10.0.0.5/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[fd12::1]/",
    ] {
        let resp = server.post(PATH, json!({"url": url, "enabled_events": ["*"]}));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "url", "{url}");
    }
    for url in ["https://10.20.3.4/hook", "https://93.184.216.34/hook"] {
        let resp = server.post(PATH, json!({"url": url, "enabled_events": ["*"]}));
        assert_eq!(resp.status, 200, "{url}: {}", resp.text);
    }
    // Updating to a private target is refused too.
    let id = server.get(PATH).body["data"][0]["id"].as_str().unwrap().to_string();
    let resp = server.post(&format!("{PATH}/{id}"), json!({"url": "https://127.0.0.1/x"}));
    resp.assert_error(400, "invalid_request_error", "parameter_invalid");
}

#[test]
fn every_validation_rule_is_a_400_naming_its_param() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".into()]);
    let ok = |extra: Value| {
        let mut body = json!({"url": "https://example.com/h", "enabled_events": ["*"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"enabled_events": ["*"]}), "parameter_missing", "url"),
        (json!({"url": "https://example.com"}), "parameter_missing", "enabled_events"),
        (ok(json!({"url": format!("https://example.com/{}", "a".repeat(2048))})), "parameter_invalid", "url"),
        (ok(json!({"url": "not a url"})), "parameter_invalid", "url"),
        (ok(json!({"url": "ftp://example.com/"})), "parameter_invalid", "url"),
        (ok(json!({"url": 42})), "parameter_invalid", "url"),
        (ok(json!({"enabled_events": []})), "parameter_invalid", "enabled_events"),
        (ok(json!({"enabled_events": "*"})), "parameter_invalid", "enabled_events"),
        (ok(json!({"enabled_events": ["invoice.paid", "invoice.unpaid"]})), "parameter_invalid", "enabled_events[1]"),
        (ok(json!({"metadata": many})), "parameter_invalid", "metadata"),
        (ok(json!({"metadata": {"k".repeat(41): "v"}})), "parameter_invalid", &format!("metadata[{}]", "k".repeat(41))),
        (ok(json!({"metadata": {"plan": "v".repeat(501)}})), "parameter_invalid", "metadata[plan]"),
        (ok(json!({"metadata": {"plan": 5}})), "parameter_invalid", "metadata[plan]"),
        (ok(json!({"metadata": ["a"]})), "parameter_invalid", "metadata"),
        (ok(json!({"name": ""})), "parameter_invalid", "name"),
        (ok(json!({"name": "n".repeat(121)})), "parameter_invalid", "name"),
        (ok(json!({"name": 7})), "parameter_invalid", "name"),
        (ok(json!({"labels": (0..9).map(|i| format!("l{i}")).collect::<Vec<_>>()})), "parameter_invalid", "labels"),
        (ok(json!({"labels": ["ok", "not ok"]})), "parameter_invalid", "labels[1]"),
        (ok(json!({"labels": ["x".repeat(65)]})), "parameter_invalid", "labels[0]"),
        (ok(json!({"labels": "billing"})), "parameter_invalid", "labels"),
        (
            ok(json!({"undelivered_payload_retention_hours": 721})),
            "parameter_invalid",
            "undelivered_payload_retention_hours",
        ),
        (
            ok(json!({"undelivered_payload_retention_hours": 2.5})),
            "parameter_invalid",
            "undelivered_payload_retention_hours",
        ),
        (ok(json!({"status": "disabled"})), "parameter_unknown", "status"),
        (ok(json!({"secret": "whsec_mine"})), "parameter_unknown", "secret"),
    ];
    for (body, code, param) in cases {
        let resp = server.post(PATH, body.clone());
        let error = resp.assert_error(400, "invalid_request_error", code);
        assert_eq!(error["param"], param, "{body}");
    }
    // Nothing was half-written along the way.
    assert_eq!(ids(&server.get(PATH).body).len(), 0);
    // The limits themselves are allowed.
    let at_limits: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("{i:0>40}"), json!("v".repeat(500)))).collect();
    let resp = server.post(PATH, ok(json!({"metadata": at_limits, "enabled_events": ["invoice.paid"]})));
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[test]
fn update_replaces_what_it_names_and_keeps_the_rest() {
    let server = TestServer::start();
    let created = server.post(
        PATH,
        json!({
            "url": "https://example.com/a",
            "enabled_events": ["verification_session.verified", "verification_session.failed"],
            "description": "first",
            "metadata": {"a": "1", "b": "2"},
        }),
    );
    let path = format!("{PATH}/{}", created.body["id"].as_str().unwrap());

    let updated = server.post(&path, json!({"enabled_events": ["*"], "metadata": {"c": "3"}}));
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["enabled_events"], json!(["*"]));
    assert_eq!(updated.body["metadata"], json!({"c": "3"}), "metadata is replaced, not merged");
    assert_eq!(updated.body["url"], "https://example.com/a");
    assert_eq!(updated.body["description"], "first");
    assert_eq!(updated.body["created"], created.body["created"]);

    let paused = server.post(&path, json!({"status": "disabled", "url": "https://example.com/b", "description": null}));
    assert_eq!(paused.body["status"], "disabled");
    assert_eq!(paused.body["url"], "https://example.com/b");
    assert_eq!(paused.body["description"], Value::Null);
    assert_eq!(server.get(&path).body, paused.body, "the update is stored");

    let resumed = server.post(&path, json!({"status": "enabled"}));
    assert_eq!(resumed.body["status"], "enabled");

    let bad = server.post(&path, json!({"status": "paused"}));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "status");
    let bad = server.post(&path, json!({"enabled_events": []}));
    bad.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(server.get(&path).body, resumed.body, "refused updates change nothing");
}

#[test]
fn names_and_labels_are_shown_changed_and_filtered_on() {
    let server = TestServer::start();
    let billing = server.post(
        PATH,
        json!({"url": "https://example.com/a", "enabled_events": ["*"], "name": "Billing hooks",
               "labels": ["billing", "team:payments", "billing"]}),
    );
    assert_eq!(billing.status, 200, "{}", billing.text);
    assert_eq!(billing.body["name"], "Billing hooks");
    assert_eq!(billing.body["labels"], json!(["billing", "team:payments"]), "duplicates are dropped");
    let plain = server.post(PATH, json!({"url": "https://example.com/b", "enabled_events": ["*"]}));
    assert_eq!(plain.body["name"], Value::Null);
    assert_eq!(plain.body["undelivered_payload_retention_hours"], Value::Null, "the server's default");
    assert_eq!(plain.body["labels"], json!([]));
    let (billing_id, plain_id) = (billing.body["id"].as_str().unwrap(), plain.body["id"].as_str().unwrap());

    let labelled = |label: &str| ids(&server.get(&format!("{PATH}?label={label}")).body);
    assert_eq!(labelled("billing"), [billing_id]);
    assert_eq!(labelled("team:payments"), [billing_id]);
    assert!(labelled("shipping").is_empty());
    let bad = server.get(&format!("{PATH}?label=not%20a%20label"));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "label");

    // Labels are replaced whole; a null name removes it.
    let moved = server.post(&format!("{PATH}/{plain_id}"), json!({"labels": ["billing"], "name": "Ledger"}));
    assert_eq!(moved.body["labels"], json!(["billing"]));
    assert_eq!(moved.body["name"], "Ledger");
    let mut both = labelled("billing");
    both.sort();
    let mut want = vec![billing_id.to_string(), plain_id.to_string()];
    want.sort();
    assert_eq!(both, want);
    let cleared = server.post(&format!("{PATH}/{billing_id}"), json!({"labels": [], "name": null}));
    assert_eq!(cleared.body["labels"], json!([]));
    assert_eq!(cleared.body["name"], Value::Null);
    assert_eq!(labelled("billing"), [plain_id]);
}

#[test]
fn delete_removes_the_endpoint() {
    let server = TestServer::start();
    let id = server.create_endpoint("https://example.com/gone")["id"].as_str().unwrap().to_string();
    let path = format!("{PATH}/{id}");
    let resp = server.delete(&path);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, json!({"id": id, "object": "webhook_endpoint", "deleted": true}));
    server.get(&path).assert_error(404, "invalid_request_error", "resource_missing");
    server.delete(&path).assert_error(404, "invalid_request_error", "resource_missing");
    assert!(ids(&server.get(PATH).body).is_empty());
}

#[test]
fn malformed_or_foreign_ids_are_404_without_touching_the_store() {
    let server = TestServer::start();
    let event_like = "evt_01JA0000000000000000000000";
    for id in ["nope", "we_", "we_short", event_like, "we_01ja0000000000000000000000"] {
        let error =
            server.get(&format!("{PATH}/{id}")).assert_error(404, "invalid_request_error", "resource_missing").clone();
        assert!(error["message"].as_str().unwrap().contains(id));
    }
    let unknown = "we_01JA0000000000000000000000";
    server.get(&format!("{PATH}/{unknown}")).assert_error(404, "invalid_request_error", "resource_missing");
}

#[test]
fn lists_page_newest_first_with_cursors_both_ways() {
    let server = TestServer::start();
    let made: Vec<String> = (0..7)
        .map(|i| server.create_endpoint(&format!("https://example.com/{i}"))["id"].as_str().unwrap().to_string())
        .collect();
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    let all = server.get(PATH);
    assert_eq!(all.body["object"], "list");
    assert_eq!(all.body["url"], PATH);
    assert_eq!(ids(&all.body), newest_first, "default limit 10 covers all 7");
    assert_eq!(all.body["has_more"], false);

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("{PATH}?limit=3&starting_after={c}"),
            None => format!("{PATH}?limit=3"),
        };
        let page = server.get(&query);
        assert_eq!(page.status, 200, "{}", page.text);
        let page_ids = ids(&page.body);
        walked.extend(page_ids.clone());
        if page.body["has_more"] == false {
            break;
        }
        cursor = page_ids.last().cloned();
    }
    assert_eq!(walked, newest_first);

    let before = server.get(&format!("{PATH}?limit=2&ending_before={}", made[2]));
    assert_eq!(ids(&before.body), [made[4].clone(), made[3].clone()]);
    assert_eq!(before.body["has_more"], true);
    let before = server.get(&format!("{PATH}?limit=5&ending_before={}", made[4]));
    assert_eq!(ids(&before.body), [made[6].clone(), made[5].clone()]);
    assert_eq!(before.body["has_more"], false);
}

#[test]
fn bad_list_parameters_are_400_naming_the_parameter() {
    let server = TestServer::start();
    let id = server.create_endpoint("https://example.com/x")["id"].as_str().unwrap().to_string();
    let unknown = "we_01JA0000000000000000000000";
    let cases = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        (&format!("starting_after={unknown}") as &str, "starting_after"),
        ("starting_after=evt_01JA0000000000000000000000", "starting_after"),
        (&format!("ending_before={unknown}"), "ending_before"),
        (&format!("starting_after={id}&ending_before={id}"), "ending_before"),
    ];
    for (query, param) in cases {
        let resp = server.get(&format!("{PATH}?{query}"));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], param, "{query}");
    }
    let resp = server.get(&format!("{PATH}?colour=red"));
    assert_eq!(resp.assert_error(400, "invalid_request_error", "parameter_unknown")["param"], "colour");
    assert_eq!(server.get(&format!("{PATH}?limit=100")).status, 200);
    assert_eq!(server.get(&format!("{PATH}?limit=1")).status, 200);
}

#[test]
fn endpoints_survive_a_restart() {
    let server = TestServer::start();
    let created = server.create_endpoint("https://example.com/durable");
    let id = created["id"].as_str().unwrap().to_string();
    let before = server.get(&format!("{PATH}/{id}")).body;
    let server = server.restart();
    let after = server.get(&format!("{PATH}/{id}"));
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body, before);
    assert_eq!(ids(&server.get(PATH).body), [id]);
}

#[test]
fn the_current_signing_secret_can_be_revealed_again() {
    let server = TestServer::start();
    let created = server.post(PATH, json!({"url": "https://example.com/a", "enabled_events": ["*"]}));
    let id = created.body["id"].as_str().unwrap();
    let revealed = server.get(&format!("{PATH}/{id}/secret"));
    assert_eq!(revealed.status, 200, "{}", revealed.text);
    assert_eq!(revealed.body, json!({"object": "webhook_endpoint_secret", "secret": created.body["secret"]}));
    assert_eq!(revealed.header("cache-control"), Some("no-store"));
    // After a rotation with a grace period, the new one (the old one still signs, but is
    // on its way out).
    let rotated = server.post(&format!("{PATH}/{id}/rotate_secret"), json!({"expires_in": "1h"}));
    assert_eq!(server.get(&format!("{PATH}/{id}/secret")).body["secret"], rotated.body["secret"]);
    server.get(&format!("{PATH}/we_01JD8Y6QK4N2V7X3ZB5C9R1T0M/secret")).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
}
