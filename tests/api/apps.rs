//! Applications: `/v1/apps`, the `Stile-App` header, and isolation between applications
//! through every route that reads or changes an application's objects.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{LIVE_KEY, Resp, TestServer};

const WAIT: Duration = Duration::from_secs(15);
const VERIFIED: &str = "verification_session.verified";

/// A request as `app` (an id or uid) with the test key.
fn as_app(server: &TestServer, app: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = server.req(method, path).header("Stile-App", app);
    match body {
        Some(body) => req.json(&body).send(),
        None => req.send(),
    }
}

#[test]
fn applications_are_created_found_by_id_or_uid_updated_and_listed() {
    let server = TestServer::start();
    let listed = server.get("/v1/apps");
    assert_eq!(listed.status, 200, "{}", listed.text);
    let defaults: Vec<&Value> = listed.body["data"].as_array().unwrap().iter().collect();
    assert_eq!(defaults.len(), 1, "test mode has its default application");
    assert_eq!(defaults[0]["default"], true);
    assert_eq!(defaults[0]["livemode"], false);

    let created = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme", "metadata": {"plan": "pro"}}));
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("app_"));
    assert_eq!(created.body["object"], "application");
    assert_eq!(created.body["default"], false);
    assert_eq!(server.get(&format!("/v1/apps/{id}")).body["uid"], "acme");
    assert_eq!(server.get("/v1/apps/acme").body["id"], id.as_str(), "the uid names it too");

    // Named once through the header (the server remembers what a name resolved to)...
    assert_eq!(as_app(&server, "acme", "GET", "/v1/webhook_endpoints", None).status, 200);
    let updated = server.post("/v1/apps/acme", json!({"name": "Acme Corp", "uid": "acme-corp", "metadata": null}));
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["name"], "Acme Corp");
    assert_eq!(updated.body["metadata"], json!({}));
    server.get("/v1/apps/acme").assert_error(404, "invalid_request_error", "resource_missing");
    // ...and the old uid names nothing once it is changed.
    let stale = as_app(&server, "acme", "GET", "/v1/webhook_endpoints", None);
    assert_eq!(stale.assert_error(404, "invalid_request_error", "resource_missing")["param"], "Stile-App");
    assert_eq!(as_app(&server, "acme-corp", "GET", "/v1/webhook_endpoints", None).status, 200);
    assert_eq!(server.get("/v1/apps/acme-corp").body["id"], id.as_str());

    // A uid names one application per mode; the other mode may use it.
    let taken = server.post("/v1/apps", json!({"name": "Other", "uid": "acme-corp"}));
    assert_eq!(taken.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "uid");
    assert!(taken.body["error"]["message"].as_str().unwrap().contains(&id), "{}", taken.text);
    let live = server.req("POST", "/v1/apps").key(LIVE_KEY).json(&json!({"name": "Acme", "uid": "acme-corp"})).send();
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.body["livemode"], true);
    server.req("GET", &format!("/v1/apps/{id}")).key(LIVE_KEY).send().assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );

    for (body, param) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(121)}), "name"),
        (json!({"name": "A", "uid": "has space"}), "uid"),
        (json!({"name": "A", "uid": "app_01JD8Y6QK4N2V7X3ZB5C9R1T0M"}), "uid"),
        (json!({"name": "A", "metadata": {"": "v"}}), "metadata[]"),
    ] {
        let resp = server.post("/v1/apps", body.clone());
        assert_eq!(resp.status, 400, "{body}: {}", resp.text);
        assert_eq!(resp.body["error"]["param"], param, "{body}");
    }
    let unknown = server.post("/v1/apps", json!({"name": "A", "colour": "red"}));
    assert_eq!(unknown.status, 400, "{}", unknown.text);

    let listed = server.get("/v1/apps?limit=1");
    assert_eq!(listed.body["data"][0]["id"], id.as_str(), "newest first");
    assert_eq!(listed.body["has_more"], true);
}

#[test]
fn nothing_crosses_between_applications() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let acme = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    // The same event types, endpoints on the same receiver: one in each application.
    let mine = server.create_endpoint(&receiver.url("/default"));
    let theirs = as_app(
        &server,
        "acme",
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({
            "url": receiver.url("/acme"), "enabled_events": ["*"]
        })),
    );
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    let theirs_id = theirs.body["id"].as_str().unwrap().to_string();
    let mine_id = mine["id"].as_str().unwrap().to_string();

    // Lists and retrieves see only their own application's endpoints.
    let ids = |resp: &Resp| -> Vec<String> {
        resp.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&server.get("/v1/webhook_endpoints")), [mine_id.as_str()]);
    assert_eq!(ids(&as_app(&server, &acme, "GET", "/v1/webhook_endpoints", None)), [theirs_id.as_str()]);
    server.get(&format!("/v1/webhook_endpoints/{theirs_id}")).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    as_app(&server, "acme", "GET", &format!("/v1/webhook_endpoints/{mine_id}"), None).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );

    // An event published to one application goes only to its endpoints.
    let event = as_app(&server, "acme", "POST", "/v1/events", Some(json!({"type": VERIFIED, "data": {"id": "vks_a"}})));
    assert_eq!(event.status, 200, "{}", event.text);
    assert_eq!(event.body["pending_webhooks"], 1);
    let event_id = event.body["id"].as_str().unwrap().to_string();
    let got = receiver.wait_for("/acme", 1, WAIT);
    assert_eq!(got[0].header("webhook-id"), event_id);
    let own = server.publish(VERIFIED, json!({"id": "vks_d"}));
    receiver.wait_for("/default", 1, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/acme").len(), 1, "the default application's event did not reach Acme");
    assert_eq!(receiver.received("/default").len(), 1, "Acme's event did not reach the default application");

    // Events, their deliveries, resend, recover, test pings and statistics stay home.
    server.get(&format!("/v1/events/{event_id}")).assert_error(404, "invalid_request_error", "resource_missing");
    assert_eq!(ids(&server.get("/v1/events")), [own["id"].as_str().unwrap().to_string()]);
    assert_eq!(ids(&as_app(&server, "acme", "GET", "/v1/events", None)), [event_id.as_str()]);
    server.post(&format!("/v1/events/{event_id}/resend"), json!({})).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    let across =
        as_app(&server, "acme", "POST", &format!("/v1/events/{event_id}/resend"), Some(json!({"endpoint": mine_id})));
    assert_eq!(across.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "endpoint");
    for path in [format!("/v1/webhook_endpoints/{theirs_id}/deliveries"), format!("/v1/events/{event_id}/deliveries")] {
        server.get(&path).assert_error(404, "invalid_request_error", "resource_missing");
    }
    for (path, body) in [
        (format!("/v1/webhook_endpoints/{theirs_id}/test"), json!({})),
        (format!("/v1/webhook_endpoints/{theirs_id}/test"), json!({"event_type": VERIFIED})),
        (format!("/v1/webhook_endpoints/{theirs_id}/recover"), json!({"since": 0})),
    ] {
        let resp = server.post(&path, body);
        assert_eq!(resp.status, 404, "{path}: {}", resp.text);
    }
    let stats = server.get("/v1/delivery_stats");
    assert_eq!(stats.body["totals"]["succeeded"], 1, "{}", stats.text);
    assert_eq!(stats.body["endpoints"].as_array().unwrap().len(), 1);
    let theirs_stats = as_app(&server, "acme", "GET", "/v1/delivery_stats", None);
    assert_eq!(theirs_stats.body["endpoints"][0]["endpoint_id"], theirs_id.as_str());

    // Idempotency keys are per application: the same key and body run once in each.
    let publish_with_key = |app: Option<&str>| {
        let mut req = server.req("POST", "/v1/events").header("Idempotency-Key", "same-key");
        if let Some(app) = app {
            req = req.header("Stile-App", app);
        }
        req.json(&json!({"type": VERIFIED, "data": {"id": "vks_k"}})).send()
    };
    let first = publish_with_key(None);
    let other = publish_with_key(Some("acme"));
    assert_ne!(first.body["id"], other.body["id"], "not replayed across applications");
    assert_eq!(publish_with_key(Some("acme")).body["id"], other.body["id"], "replayed within one");
}

#[test]
fn a_stile_app_that_names_no_application_is_a_clear_4xx() {
    let server = TestServer::start();
    let live_app =
        server.req("POST", "/v1/apps").key(LIVE_KEY).json(&json!({"name": "Live", "uid": "live-only"})).send();
    let live_id = live_app.body["id"].as_str().unwrap().to_string();
    for (value, status) in [
        ("", 400),
        ("x".repeat(65).as_str(), 400),
        ("nope", 404),
        (live_id.as_str(), 404),
        ("live-only", 404),
        ("app_01JD8Y6QK4N2V7X3ZB5C9R1T0M", 404),
        ("a\tb", 400),
        ("x".repeat(10 * 1024).as_str(), 400),
    ] {
        let resp = server.req("GET", "/v1/webhook_endpoints").header("Stile-App", value).send();
        assert_eq!(resp.status, status, "{value:?}: {}", resp.text);
        assert_eq!(resp.body["error"]["param"], "Stile-App", "{value:?}");
        if status == 404 {
            assert_eq!(resp.body["error"]["code"], "resource_missing");
        }
    }
    // A bad key is still a 401 first, whatever the header says.
    let resp =
        server.req("GET", "/v1/webhook_endpoints").key("vk_test_wrong_000000000000").header("Stile-App", "nope").send();
    assert_eq!(resp.status, 401);
    // Publishing to an unknown application writes nothing.
    let resp = server.req("POST", "/v1/events").header("Stile-App", "nope").json(&json!({"type": VERIFIED})).send();
    assert_eq!(resp.status, 404);
    assert!(server.get("/v1/events").body["data"].as_array().unwrap().is_empty());
}

#[test]
fn an_app_restricted_key_sees_and_changes_its_own_application_only() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let acme = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    let other =
        server.post("/v1/apps", json!({"name": "Other", "uid": "other"})).body["id"].as_str().unwrap().to_string();
    let default_id =
        server.get("/v1/apps").body["data"].as_array().unwrap().iter().find(|a| a["default"] == true).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let theirs = as_app(
        &server,
        "other",
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/other"), "enabled_events": ["*"]})),
    );
    let theirs_id = theirs.body["id"].as_str().unwrap().to_string();
    let their_event = as_app(&server, "other", "POST", "/v1/events", Some(json!({"type": VERIFIED, "data": {}})));
    let their_event_id = their_event.body["id"].as_str().unwrap().to_string();
    receiver.wait_for("/other", 1, WAIT);
    let (server, key) = server.restart_with_key_for("acme");
    let as_key = |method: &str, path: &str, body: Option<Value>| {
        let req = server.req(method, path).key(&key);
        match body {
            Some(body) => req.json(&body).send(),
            None => req.send(),
        }
    };

    // Without a header it acts on its own application.
    let mine =
        as_key("POST", "/v1/webhook_endpoints", Some(json!({"url": receiver.url("/acme"), "enabled_events": ["*"]})));
    assert_eq!(mine.status, 200, "{}", mine.text);
    let mine_id = mine.body["id"].as_str().unwrap().to_string();
    assert_eq!(as_app(&server, "acme", "GET", &format!("/v1/webhook_endpoints/{mine_id}"), None).status, 200);
    let event = as_key("POST", "/v1/events", Some(json!({"type": VERIFIED, "data": {"id": "vks_r"}})));
    assert_eq!(event.body["pending_webhooks"], 1, "{}", event.text);
    receiver.wait_for("/acme", 1, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/other").len(), 1, "the other application's endpoint got nothing more");

    // Naming its own application is fine; any other is missing.
    let own = server.req("GET", "/v1/webhook_endpoints").key(&key).header("Stile-App", &acme).send();
    assert_eq!(own.body["data"].as_array().unwrap().len(), 1, "{}", own.text);
    for app in [other.as_str(), "other", default_id.as_str()] {
        let resp = server.req("GET", "/v1/webhook_endpoints").key(&key).header("Stile-App", app).send();
        assert_eq!(resp.assert_error(404, "invalid_request_error", "resource_missing")["param"], "Stile-App");
    }

    // Applications: its own may be read; the rest is missing or forbidden.
    assert_eq!(as_key("GET", "/v1/apps/acme", None).body["id"], acme.as_str());
    for path in [format!("/v1/apps/{other}"), format!("/v1/apps/{default_id}"), "/v1/apps/other".to_string()] {
        as_key("GET", &path, None).assert_error(404, "invalid_request_error", "resource_missing");
    }
    for (method, path, body) in [
        ("GET", "/v1/apps".to_string(), None),
        ("POST", "/v1/apps".to_string(), Some(json!({"name": "Mine now"}))),
        ("POST", format!("/v1/apps/{acme}"), Some(json!({"name": "Renamed"}))),
        ("DELETE", format!("/v1/apps/{acme}"), None),
        ("DELETE", format!("/v1/apps/{other}"), None),
    ] {
        let resp = as_key(method, &path, body);
        let error = resp.assert_error(403, "permission_error", "insufficient_permissions");
        assert!(error["message"].as_str().unwrap().contains("restricted"), "{method} {path}: {}", resp.text);
    }
    assert_eq!(server.get("/v1/apps/acme").body["name"], "Acme", "nothing changed");

    // The other application's objects, through every route that reads or acts on one.
    for (method, path, body) in [
        ("GET", format!("/v1/webhook_endpoints/{theirs_id}"), None),
        ("POST", format!("/v1/webhook_endpoints/{theirs_id}"), Some(json!({"description": "mine"}))),
        ("DELETE", format!("/v1/webhook_endpoints/{theirs_id}"), None),
        ("GET", format!("/v1/webhook_endpoints/{theirs_id}/deliveries"), None),
        ("POST", format!("/v1/webhook_endpoints/{theirs_id}/test"), None),
        ("POST", format!("/v1/webhook_endpoints/{theirs_id}/rotate_secret"), Some(json!({}))),
        ("POST", format!("/v1/webhook_endpoints/{theirs_id}/recover"), Some(json!({"since": 0}))),
        ("GET", format!("/v1/events/{their_event_id}"), None),
        ("GET", format!("/v1/events/{their_event_id}/deliveries"), None),
        ("POST", format!("/v1/events/{their_event_id}/resend"), Some(json!({}))),
        ("GET", "/apps/other/webhooks".to_string(), None),
        ("GET", format!("/apps/{other}/webhooks"), None),
        ("GET", format!("/apps/acme/webhooks/{theirs_id}/deliveries"), None),
        ("POST", format!("/apps/acme/webhooks/{theirs_id}/test-ping"), None),
        ("PUT", format!("/apps/acme/webhooks/{theirs_id}"), Some(json!({"active": false}))),
        ("DELETE", format!("/apps/acme/webhooks/{theirs_id}"), None),
    ] {
        let resp = as_key(method, &path, body);
        assert_eq!(resp.status, 404, "{method} {path}: {}", resp.text);
    }
    let lists = [("/v1/webhook_endpoints", mine_id.as_str()), ("/v1/events", event.body["id"].as_str().unwrap())];
    for (path, only) in lists {
        let listed = as_key("GET", path, None);
        let ids: Vec<&str> =
            listed.body["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [only], "{path}");
    }
    let stats = as_key("GET", "/v1/delivery_stats", None);
    assert_eq!(stats.body["totals"]["succeeded"], 1, "{}", stats.text);
    assert_eq!(stats.body["endpoints"][0]["endpoint_id"], mine_id.as_str());
    let dialect = as_key("GET", "/apps/acme/webhooks", None);
    assert_eq!(dialect.body["data"].as_array().unwrap().len(), 1, "{}", dialect.text);
    // The other application is untouched.
    let still = as_app(&server, "other", "GET", &format!("/v1/webhook_endpoints/{theirs_id}"), None);
    assert_eq!(still.body["status"], "enabled");
    assert_eq!(still.body["description"], Value::Null);
}

#[test]
fn deleting_an_application_ends_everything_it_owns_and_nothing_else() {
    let server = TestServer::start_with(|config| {
        config.delivery.retry_schedule = vec![Duration::from_secs(3600)];
    });
    let receiver = Receiver::start();
    receiver.set("/acme", Behaviour::Status(500));
    let acme = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    let endpoint = as_app(
        &server,
        "acme",
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/acme"), "enabled_events": ["*"]})),
    );
    assert_eq!(endpoint.status, 200);
    let mine = server.create_endpoint(&receiver.url("/default"));
    let (server, key) = server.restart_with_key_for("acme");
    let event = as_app(&server, "acme", "POST", "/v1/events", Some(json!({"type": VERIFIED, "data": {}})));
    let event_id = event.body["id"].as_str().unwrap().to_string();
    receiver.wait_for("/acme", 1, WAIT);
    // The first attempt failed; its retry waits an hour.
    assert!(crate::common::eventually(WAIT, || {
        as_app(&server, "acme", "GET", &format!("/v1/events/{event_id}"), None).body["pending_webhooks"] == 1
            && crate::common::queue_depth(&server.base) == 1
    }));

    // The default application cannot be deleted, and says why.
    let default_id =
        server.get("/v1/apps").body["data"].as_array().unwrap().iter().find(|a| a["default"] == true).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let refused = server.delete(&format!("/v1/apps/{default_id}"));
    let error = refused.assert_error(400, "invalid_request_error", "invalid_state");
    assert!(error["message"].as_str().unwrap().contains("default application"), "{}", refused.text);

    let deleted = server.delete("/v1/apps/acme");
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.body, json!({"id": acme, "object": "application", "deleted": true}));
    // Gone by id, uid, header and restricted key; its pending retry ended.
    server.get(&format!("/v1/apps/{acme}")).assert_error(404, "invalid_request_error", "resource_missing");
    server.delete("/v1/apps/acme").assert_error(404, "invalid_request_error", "resource_missing");
    as_app(&server, &acme, "GET", "/v1/events", None).assert_error(404, "invalid_request_error", "resource_missing");
    server.req("GET", "/v1/events").key(&key).send().assert_error(401, "authentication_error", "api_key_invalid");
    assert_eq!(server.get("/apps/acme/webhooks").status, 404);
    assert!(crate::common::eventually(WAIT, || crate::common::queue_depth(&server.base) == 0), "the retry is gone");
    // The uid is free again, and names a new, empty application.
    let again = server.post("/v1/apps", json!({"name": "Acme again", "uid": "acme"}));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_ne!(again.body["id"], acme.as_str());
    assert!(as_app(&server, "acme", "GET", "/v1/events", None).body["data"].as_array().unwrap().is_empty());
    assert!(as_app(&server, "acme", "GET", "/v1/webhook_endpoints", None).body["data"].as_array().unwrap().is_empty());

    // The default application is untouched and still delivers.
    let own = server.publish(VERIFIED, json!({}));
    receiver.wait_for("/default", 1, WAIT);
    assert_eq!(server.get(&format!("/v1/events/{}", own["id"].as_str().unwrap())).status, 200);
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{}", mine["id"].as_str().unwrap())).status, 200);
    // After a restart the key stays revoked (it left the data file with the application).
    let server = server.restart();
    server.req("GET", "/v1/events").key(&key).send().assert_error(401, "authentication_error", "api_key_invalid");
}
