//! Portal sessions: links for one application's customer, whose token works only on the
//! portal's routes, only for that application, and only until it expires or is revoked.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Req, Resp, TestServer};

/// A request with a portal token instead of an API key.
fn with_token(server: &TestServer, token: &str, method: &str, path: &str) -> Req {
    Req::new(method, format!("{}{path}", server.base)).key(token)
}

fn ids(resp: &Resp) -> Vec<String> {
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_portal_token_reaches_its_applications_portal_routes_and_nothing_else() {
    let clock = stile::clock::Clock::manual(stile::clock::unix_now_ms());
    let server = TestServer::start_with_clock(clock.clone(), |c| {
        c.server.metrics_token = "metrics-secret".into();
        c.server.public_url = "https://hooks.example.com/".into();
    });
    let a = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    let b =
        server.post("/v1/apps", json!({"name": "Globex", "uid": "globex"})).body["id"].as_str().unwrap().to_string();
    let endpoint_in = |app: &str, url: &str| {
        let resp = server
            .req("POST", "/v1/webhook_endpoints")
            .header("Stile-App", app)
            .json(&json!({"url": url, "enabled_events": ["*"]}))
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body["id"].as_str().unwrap().to_string()
    };
    let a_endpoint = endpoint_in("acme", "https://acme.example/hooks");
    let b_endpoint = endpoint_in("globex", "https://globex.example/hooks");

    let created = server.post("/v1/apps/acme/portal_sessions", json!({}));
    assert_eq!(created.status, 200, "{}", created.text);
    let session = created.body.clone();
    assert_eq!(session["object"], "portal_session");
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("stile_portal_") && token.len() > 60);
    assert_eq!(session["url"], format!("https://hooks.example.com/portal/#token={token}"));
    assert_eq!(session["read_only"], false);
    let lifetime = session["expires_at"].as_i64().unwrap() - (clock.now_ms() / 1000) as i64;
    assert_eq!(lifetime, 3600, "an hour by default");

    // Its own application's data, and only that.
    let get = |path: &str| with_token(&server, &token, "GET", path).send();
    assert_eq!(ids(&get("/v1/webhook_endpoints")), std::slice::from_ref(&a_endpoint));
    assert_eq!(get(&format!("/v1/webhook_endpoints/{b_endpoint}")).status, 404);
    assert_eq!(get(&format!("/v1/apps/{a}")).body["name"], "Acme");
    assert_eq!(get(&format!("/v1/apps/{b}")).status, 404);
    let other = with_token(&server, &token, "GET", "/v1/webhook_endpoints").header("Stile-App", "globex").send();
    other.assert_error(404, "invalid_request_error", "resource_missing");
    let made = with_token(&server, &token, "POST", "/v1/webhook_endpoints")
        .json(&json!({"url": "https://acme.example/second", "enabled_events": ["*"]}))
        .send();
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!(ids(&server.req("GET", "/v1/webhook_endpoints").header("Stile-App", "acme").send()).len(), 2);
    assert!(ids(&server.get("/v1/webhook_endpoints")).is_empty(), "nothing landed in the default application");

    // Never the API-only routes.
    for (method, path) in [
        ("GET", "/v1/apps".to_string()),
        ("POST", "/v1/apps/acme".to_string()),
        ("POST", "/v1/apps/acme/portal_sessions".to_string()),
        ("POST", "/v1/events".to_string()),
        ("POST", "/v1/event_types".to_string()),
        ("DELETE", "/v1/event_types/verification_session.verified".to_string()),
        ("GET", "/v1/verification_sessions".to_string()),
    ] {
        let resp = with_token(&server, &token, method, &path).json(&json!({})).send();
        let error = resp.assert_error(403, "permission_error", "insufficient_permissions");
        assert!(error["message"].as_str().unwrap().contains("portal"), "{method} {path}: {error}");
    }
    // The other dialects refuse it too, in their own envelopes.
    let dialect = get("/apps/acme/webhooks");
    assert_eq!((dialect.status, dialect.body["success"].clone()), (403, json!(false)), "{}", dialect.text);
    let kayle = get("/v1/webhooks/endpoints");
    assert_eq!(
        (kayle.status, kayle.body["error"]["code"].clone()),
        (403, json!("insufficient_permissions")),
        "{}",
        kayle.text
    );
    assert_eq!(get("/metrics").status, 401);
    assert_eq!(get("/admin/backup").status, 401);

    // Read-only: looks, changes nothing.
    let read_only = server.post("/v1/apps/acme/portal_sessions", json!({"read_only": true, "expires_in": "2h"}));
    let read_only_token = read_only.body["token"].as_str().unwrap().to_string();
    assert_eq!(ids(&with_token(&server, &read_only_token, "GET", "/v1/webhook_endpoints").send()).len(), 2);
    for (method, path) in
        [("POST", "/v1/webhook_endpoints".to_string()), ("DELETE", format!("/v1/webhook_endpoints/{a_endpoint}"))]
    {
        let resp = with_token(&server, &read_only_token, method, &path)
            .json(&json!({"url": "https://acme.example/x", "enabled_events": ["*"]}))
            .send();
        let error = resp.assert_error(403, "permission_error", "insufficient_permissions");
        assert!(error["message"].as_str().unwrap().contains("read-only"), "{error}");
    }
    assert_eq!(
        server.req("GET", &format!("/v1/webhook_endpoints/{a_endpoint}")).header("Stile-App", "acme").send().status,
        200
    );

    let secret =
        with_token(&server, &read_only_token, "GET", &format!("/v1/webhook_endpoints/{a_endpoint}/secret")).send();
    let error = secret.assert_error(403, "permission_error", "insufficient_permissions");
    assert!(error["message"].as_str().unwrap().contains("secrets"), "{error}");
    let secret = with_token(&server, &token, "GET", &format!("/v1/webhook_endpoints/{a_endpoint}/secret")).send();
    assert!(secret.body["secret"].as_str().unwrap().starts_with("whsec_"), "{}", secret.text);

    // Revoked: stops at once.
    let session_id = session["id"].as_str().unwrap();
    let revoked = server.delete(&format!("/v1/apps/acme/portal_sessions/{session_id}"));
    assert_eq!(revoked.body, json!({"id": session_id, "object": "portal_session", "deleted": true}));
    get("/v1/webhook_endpoints").assert_error(401, "authentication_error", "api_key_invalid");
    server.delete(&format!("/v1/apps/acme/portal_sessions/{session_id}")).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );

    // Expired: says so.
    clock.advance(Duration::from_secs(2 * 3600));
    let expired = with_token(&server, &read_only_token, "GET", "/v1/webhook_endpoints").send();
    let error = expired.assert_error(401, "authentication_error", "portal_session_expired");
    assert!(error["message"].as_str().unwrap().contains("expired"), "{error}");

    // Deleting the application ends its sessions.
    let globex = server.post("/v1/apps/globex/portal_sessions", json!({"expires_in": "7days"}));
    let globex_token = globex.body["token"].as_str().unwrap().to_string();
    assert_eq!(ids(&with_token(&server, &globex_token, "GET", "/v1/webhook_endpoints").send()), [b_endpoint]);
    assert_eq!(server.delete("/v1/apps/globex").status, 200);
    with_token(&server, &globex_token, "GET", "/v1/webhook_endpoints").send().assert_error(
        401,
        "authentication_error",
        "api_key_invalid",
    );
}

#[test]
fn sessions_are_made_by_the_applications_keys_with_checked_lifetimes() {
    let server = TestServer::start();
    let acme = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    server.post("/v1/apps", json!({"name": "Globex", "uid": "globex"}));
    for (body, param) in [
        (json!({"expires_in": "8days"}), "expires_in"),
        (json!({"expires_in": "soon"}), "expires_in"),
        (json!({"read_only": "yes"}), "read_only"),
        (json!({"scope": "all"}), "scope"),
    ] {
        let resp = server.post("/v1/apps/acme/portal_sessions", body.clone());
        let error = &resp.body["error"];
        assert_eq!((resp.status, error["param"].clone()), (400, Value::from(param)), "{body}: {}", resp.text);
    }
    assert_eq!(server.post("/v1/apps/nope/portal_sessions", json!({})).status, 404);
    // An application's own restricted key makes sessions for it, and for no other.
    let (server, key) = server.restart_with_key_for(&acme);
    let own = server.req("POST", "/v1/apps/acme/portal_sessions").key(&key).json(&json!({})).send();
    assert_eq!(own.status, 200, "{}", own.text);
    let other = server.req("POST", "/v1/apps/globex/portal_sessions").key(&key).json(&json!({})).send();
    other.assert_error(404, "invalid_request_error", "resource_missing");
}

#[test]
fn applications_carry_portal_branding_over_the_configured_defaults() {
    let server = TestServer::start_with(|c| {
        c.portal.accent_color = "#123456".into();
        c.portal.logo_url = "https://127.0.0.1:9/default-logo.png".into();
    });
    let created = server.post(
        "/v1/apps",
        json!({"name": "Acme", "uid": "acme", "branding": {"display_name": "Acme Webhooks", "accent_color": "#aa3300"}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["branding"], json!({"display_name": "Acme Webhooks", "accent_color": "#aa3300"}));
    for (branding, field) in [
        (json!({"accent_color": "red"}), "branding[accent_color]"),
        (json!({"logo_url": "http://cdn.example/logo.png"}), "branding[logo_url]"),
        (json!({"display_name": ""}), "branding[display_name]"),
        (json!({"font": "serif"}), "branding.font"),
    ] {
        let resp = server.post("/v1/apps/acme", json!({"branding": branding}));
        assert_eq!(resp.status, 400, "{branding}: {}", resp.text);
        let param = resp.body["error"]["param"].as_str().unwrap_or_default().to_string();
        assert!(param.starts_with("branding"), "{branding}: {param} ({field})");
    }
    // What the application leaves unset comes from [portal].
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    let session = Req::new("GET", format!("{}/v1/portal_session", server.base)).key(&token).send();
    assert_eq!(session.status, 200, "{}", session.text);
    assert_eq!(session.body["app"]["name"], "Acme");
    assert_eq!(
        session.body["branding"],
        json!({"display_name": "Acme Webhooks", "accent_color": "#aa3300", "logo_url": "https://127.0.0.1:9/default-logo.png"})
    );
    // null removes the application's own: all defaults then.
    let cleared = server.post("/v1/apps/acme", json!({"branding": null}));
    assert_eq!(cleared.body["branding"], json!({}));
    let session = Req::new("GET", format!("{}/v1/portal_session", server.base)).key(&token).send();
    assert_eq!(session.body["branding"]["accent_color"], "#123456");
    // An API key has no portal session.
    server.get("/v1/portal_session").assert_error(400, "invalid_request_error", "bad_request");
}
