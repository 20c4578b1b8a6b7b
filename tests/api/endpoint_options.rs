//! Endpoint options seen from a real receiver: an endpoint's own headers on every
//! delivery and test ping, the headers it may not set, and what an update and a restart
//! keep. One process here (redb, or Postgres with `STILE_TEST_BACKEND=postgres`).

use std::time::Duration;

use serde_json::json;

use crate::common::browser::in_browser;
use crate::common::receiver::Receiver;
use crate::common::tls::{TestCa, TlsFront};
use crate::common::token_server::TokenServer;
use crate::common::{TEST_KEY, TestServer};

#[test]
fn an_endpoints_own_headers_reach_the_receiver_on_deliveries_and_pings_and_outlive_a_restart() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/hook"), "enabled_events": ["*"],
               "headers": {"X-Team": "payments", "x-api-version": "2026-12-01"}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["headers"], json!({"X-Team": "payments", "x-api-version": "2026-12-01"}));
    let id = created.body["id"].as_str().unwrap().to_string();
    let secret = created.body["secret"].as_str().unwrap().to_string();

    server.publish("verification_session.created", json!({"id": "vks_1"}));
    let received = receiver.wait_for("/hook", 1, Duration::from_secs(10));
    assert_eq!(received[0].header("x-team"), "payments");
    assert_eq!(received[0].header("x-api-version"), "2026-12-01");
    assert!(received[0].stile_signature_valid(&secret).0, "stile's own headers still sign the body");
    assert_eq!(received[0].header("content-type"), "application/json");

    // A test ping carries them too, and the attempt shows what was sent.
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(ping.status, 200, "{}", ping.text);
    let received = receiver.wait_for("/hook", 2, Duration::from_secs(10));
    assert_eq!(received[1].header("x-team"), "payments");
    let detail = server.get(&format!("/v1/webhook_endpoints/{id}/deliveries/{}", ping.body["id"].as_str().unwrap()));
    assert_eq!(detail.body["request"]["headers"]["X-Team"], "payments", "{}", detail.body);

    // Kept by a restart; an update replaces them whole, and `{}` removes them.
    let server = server.restart();
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["headers"]["X-Team"], "payments");
    let updated = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": {"X-Region": "eu"}}));
    assert_eq!(updated.body["headers"], json!({"X-Region": "eu"}), "{}", updated.text);
    server.publish("verification_session.created", json!({"id": "vks_2"}));
    let received = receiver.wait_for("/hook", 3, Duration::from_secs(10));
    assert_eq!((received[2].header("x-region"), received[2].header("x-team")), ("eu", ""));
    let cleared = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": null}));
    assert_eq!(cleared.body["headers"], json!({}), "{}", cleared.text);
}

#[test]
fn headers_stile_sets_or_http_forbids_get_a_400_naming_the_header() {
    let server = TestServer::start();
    let create = |headers: serde_json::Value| {
        server.post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "headers": headers}),
        )
    };
    for name in [
        "Content-Type",
        "user-agent",
        "Stile-Signature",
        "webhook-id",
        "Webhook-Signature",
        "webhook-anything",
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "Proxy-Authorization",
        "traceparent",
        "Tracestate",
    ] {
        let resp = create(json!({ name: "x" }));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "headers", "{error}");
        assert!(error["message"].as_str().unwrap().contains(name), "{name}: {error}");
    }
    let too_many: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    for (headers, says) in [
        (json!({"x bad": "v"}), "x bad"),
        (json!({"x-line": "a\r\nx-injected: 1"}), "x-line"),
        (json!({"x-long": "v".repeat(4097)}), "x-long"),
        (json!({"X-Dup": "a", "x-dup": "b"}), "named twice"),
        (serde_json::Value::Object(too_many), "at most 20"),
    ] {
        let resp = create(headers.clone());
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert!(error["message"].as_str().unwrap().contains(says), "{headers}: {error}");
    }
    let resp = create(json!({"x-number": 5}));
    assert_eq!(resp.status, 400, "a value that is not a string: {}", resp.text);
    // Nothing was stored by any of them.
    assert_eq!(server.get("/v1/webhook_endpoints").body["data"], json!([]));
    // An update is checked the same way.
    let id = create(json!({"x-ok": "1"})).body["id"].as_str().unwrap().to_string();
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": {"webhook-id": "x"}}));
    resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["headers"], json!({"x-ok": "1"}));
}

/// Everything the server keeps where someone with a copy could read it: on redb the data
/// file and a backup taken through `/admin/backup`; on Postgres a `pg_dump` of its
/// database.
fn everything_stored(server: &TestServer) -> Vec<u8> {
    if server.config.store.backend == stile::config::Backend::Postgres {
        let cluster = stile::store::postgres::throwaway::ThrowawayPostgres::shared().expect("the cluster");
        let url = &server.config.store.postgres_url.0;
        let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
        return cluster.dump(database).expect("pg_dump").into_bytes();
    }
    let mut bytes = std::fs::read(server.data_dir().join("stile.redb")).unwrap();
    let token = std::fs::read_to_string(server.data_dir().join("admin.token")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().proxy(None).build().into();
    let mut backup = agent
        .get(format!("{}/admin/backup", server.base))
        .header("authorization", &format!("Bearer {}", token.trim()))
        .call()
        .expect("a backup");
    let backup = backup.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    assert!(backup.len() > 4096, "a whole backup: {} bytes", backup.len());
    bytes.extend_from_slice(&backup);
    bytes
}

#[test]
fn basic_and_bearer_credentials_reach_the_receiver_and_are_never_shown_stored_or_recorded() {
    use base64::Engine;
    let receiver = Receiver::start();
    let server = TestServer::start();
    let password = format!("pw-{}", stile::ids::EventId::new());
    let token = format!("tok-{}", stile::ids::EventId::new());
    let basic = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/basic"), "enabled_events": ["*"],
               "authentication": {"type": "basic", "username": "ops", "password": password}}),
    );
    assert_eq!(basic.status, 200, "{}", basic.text);
    assert_eq!(basic.body["authentication"], json!({"type": "basic", "username": "ops"}));
    let bearer = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/bearer"), "enabled_events": ["*"],
               "authentication": {"type": "bearer", "token": token}}),
    );
    assert_eq!(bearer.body["authentication"], json!({"type": "bearer"}), "{}", bearer.text);
    let (basic_id, bearer_id) = (basic.body["id"].as_str().unwrap(), bearer.body["id"].as_str().unwrap());

    server.publish("verification_session.created", json!({"id": "vks_1"}));
    let got = receiver.wait_for("/basic", 1, Duration::from_secs(10));
    let encoded = got[0].header("authorization").strip_prefix("Basic ").expect("Basic").to_string();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), format!("ops:{password}"));
    let got = receiver.wait_for("/bearer", 1, Duration::from_secs(10));
    assert_eq!(got[0].header("authorization"), format!("Bearer {token}"));
    let ping = server.post(&format!("/v1/webhook_endpoints/{bearer_id}/test"), json!({}));
    assert_eq!(ping.status, 200, "{}", ping.text);
    assert_eq!(
        receiver.wait_for("/bearer", 2, Duration::from_secs(10))[1].header("authorization"),
        format!("Bearer {token}")
    );

    // The attempts show the scheme, not the credential; no answer shows it.
    server.wait_queue_empty(Duration::from_secs(10));
    for (id, shown) in [(basic_id, "Basic [redacted]"), (bearer_id, "Bearer [redacted]")] {
        for attempt in server.deliveries(id) {
            let detail =
                server.get(&format!("/v1/webhook_endpoints/{id}/deliveries/{}", attempt["id"].as_str().unwrap()));
            assert_eq!(detail.body["request"]["headers"]["authorization"], shown, "{}", detail.body);
        }
    }
    for path in [
        "/v1/webhook_endpoints".to_string(),
        format!("/v1/webhook_endpoints/{basic_id}"),
        format!("/v1/webhook_endpoints/{bearer_id}"),
    ] {
        let text = server.get(&path).text;
        assert!(!text.contains(&password) && !text.contains(&token), "{path} shows a credential: {text}");
    }
    let stored = everything_stored(&server);
    let url = receiver.url("/basic");
    assert!(stored.windows(url.len()).any(|w| w == url.as_bytes()), "the search sees the endpoints' records");
    for secret in [&password, &token] {
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is stored in clear");
    }

    // Removed by `null`: nothing is sent then. `authorization` is not a header of its own.
    let resp = server.post(&format!("/v1/webhook_endpoints/{bearer_id}"), json!({"authentication": null}));
    assert_eq!(resp.body["authentication"], json!(null), "{}", resp.text);
    server.post(&format!("/v1/webhook_endpoints/{bearer_id}/test"), json!({}));
    assert_eq!(receiver.wait_for("/bearer", 3, Duration::from_secs(10))[2].header("authorization"), "");
    let resp =
        server.post(&format!("/v1/webhook_endpoints/{bearer_id}"), json!({"headers": {"Authorization": "Bearer x"}}));
    let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert!(error["message"].as_str().unwrap().contains("Authorization"), "{error}");

    // Moved to another host, the credentials do not follow unless sent again.
    let elsewhere = "http://localhost:9/basic";
    let resp = server.post(&format!("/v1/webhook_endpoints/{basic_id}"), json!({"url": elsewhere}));
    let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(error["param"], "authentication", "{error}");
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{basic_id}")).body["url"], receiver.url("/basic"), "kept");
    let resp = server.post(&format!("/v1/webhook_endpoints/{basic_id}"), json!({"url": receiver.url("/basic-moved")}));
    assert_eq!(resp.status, 200, "the same host: {}", resp.text);
    let resp = server.post(
        &format!("/v1/webhook_endpoints/{basic_id}"),
        json!({"url": elsewhere, "authentication": {"type": "basic", "username": "ops", "password": "another"}}),
    );
    assert_eq!(resp.status, 200, "sent again with it: {}", resp.text);
}

#[test]
fn malformed_authentication_gets_a_400_and_stores_nothing() {
    let server = TestServer::start();
    for auth in [
        json!({"type": "basic", "username": "ops"}),
        json!({"type": "basic", "username": "a:b", "password": "p"}),
        json!({"type": "basic", "username": "", "password": "p"}),
        json!({"type": "basic", "username": "ops", "password": "p\r\nx: y"}),
        json!({"type": "bearer", "token": "has space"}),
        json!({"type": "bearer", "token": ""}),
        json!({"type": "bearer", "token": "t", "extra": 1}),
        json!({"type": "digest", "username": "u", "password": "p"}),
        json!({"username": "u", "password": "p"}),
        json!("Bearer t"),
    ] {
        let resp = server.post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "authentication": auth}),
        );
        assert_eq!(resp.status, 400, "{auth}: {}", resp.text);
        assert_eq!(resp.body["error"]["type"], "invalid_request_error", "{auth}: {}", resp.text);
    }
    assert_eq!(server.get("/v1/webhook_endpoints").body["data"], json!([]));
}

#[test]
fn the_dashboard_sets_headers_and_a_bearer_token_keeps_it_on_edit_and_never_shows_it() {
    let receiver = Receiver::start();
    let tokens = TokenServer::start("dash", "dash-secret", Duration::from_secs(60));
    let server = TestServer::start();
    in_browser("endpoint_options", move |page| async move {
        let choose = |kind: &'static str| {
            format!(
                "const s = document.querySelector('select[name=auth_type]'); s.value = '{kind}'; s.dispatchEvent(new Event('change'));"
            )
        };
        page.open(&format!("{}/", server.base)).await;
        page.sign_in(TEST_KEY).await;
        page.open(&format!("{}/#/endpoints", server.base)).await;
        page.click_button("New endpoint").await;
        page.type_into("input[name=url]", &receiver.url("/dash")).await;
        page.type_into("textarea[name=headers]", "X-Team: payments\nX-Region: eu").await;
        page.find("select[name=auth_type]").await;
        page.script(&choose("bearer")).await;
        page.type_into("input[name=auth_token]", "tok-from-the-dashboard").await;
        page.click_button("Create endpoint").await;
        page.wait_text("[data-test=secret]", "whsec_").await;
        let endpoint = &server.get("/v1/webhook_endpoints").body["data"][0];
        let id = endpoint["id"].as_str().unwrap().to_string();
        assert_eq!(endpoint["headers"], json!({"X-Team": "payments", "X-Region": "eu"}));
        assert_eq!(endpoint["authentication"], json!({"type": "bearer"}));

        page.open(&format!("{}/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=authentication]", "Bearer token").await;
        page.wait_text("[data-test=headers]", "payments").await;
        assert!(!page.text("main").await.contains("tok-from-the-dashboard"), "the token is shown");
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let got = receiver.wait_for("/dash", 1, Duration::from_secs(10));
        assert_eq!(
            (got[0].header("authorization"), got[0].header("x-team")),
            ("Bearer tok-from-the-dashboard", "payments")
        );

        // An edit that leaves the authentication keeps it; choosing None removes it.
        page.click_button("Edit").await;
        page.type_into("input[name=description]", "kept").await;
        page.click_button("Save").await;
        page.wait_text(".facts", "kept").await;
        assert_eq!(
            server.get(&format!("/v1/webhook_endpoints/{id}")).body["authentication"],
            json!({"type": "bearer"})
        );
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let got = receiver.wait_for("/dash", 2, Duration::from_secs(10));
        assert_eq!(got[1].header("authorization"), "Bearer tok-from-the-dashboard", "kept by the edit");
        page.click_button("Edit").await;
        page.find("select[name=auth_type]").await;
        page.script(&choose("none")).await;
        page.click_button("Save").await;
        page.wait_text("[data-test=authentication]", "—").await;
        assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["authentication"], json!(null));

        // An OAuth2 grant, set in the form: the test ping carries the token fetched.
        page.click_button("Edit").await;
        page.find("select[name=auth_type]").await;
        page.script(&choose("oauth2_client_credentials")).await;
        page.type_into("input[name=auth_token_url]", &format!("{}/token", tokens.base)).await;
        page.type_into("input[name=auth_client_id]", "dash").await;
        page.type_into("input[name=auth_client_secret]", "dash-secret").await;
        page.click_button("Save").await;
        page.wait_text("[data-test=authentication]", "OAuth2 client credentials: dash").await;
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let got = receiver.wait_for("/dash", 3, Duration::from_secs(10));
        assert_eq!(got[2].header("authorization"), "Bearer tok-1");
        assert_eq!(tokens.fetches(), 1);
    });
}

/// An endpoint of `server` posting to `tokens`' guarded hook with a client-credentials
/// grant against its token URL; returns its id.
fn oauth2_endpoint(server: &TestServer, tokens: &TokenServer, secret: &str) -> String {
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": format!("{}/hook", tokens.base), "enabled_events": ["*"],
               "authentication": {"type": "oauth2_client_credentials", "token_url": format!("{}/token", tokens.base),
                                  "client_id": "stile client", "client_secret": secret,
                                  "scope": "webhooks:write", "audience": "https://receiver.example"}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(
        created.body["authentication"],
        json!({"type": "oauth2_client_credentials", "token_url": format!("{}/token", tokens.base),
               "client_id": "stile client", "scope": "webhooks:write", "audience": "https://receiver.example"})
    );
    created.body["id"].as_str().unwrap().to_string()
}

#[test]
fn an_oauth2_token_is_fetched_once_for_a_burst_kept_until_it_expires_and_replaced_after_a_401() {
    let secret = format!("cs-{}", stile::ids::EventId::new());
    let tokens = TokenServer::start("stile client", &secret, Duration::from_secs(3));
    let server = TestServer::start_with(|c| c.delivery.per_endpoint_concurrency = 8);
    let id = oauth2_endpoint(&server, &tokens, &secret);

    // A burst of 20: one fetch, every delivery taken with it.
    for n in 0..20 {
        server.publish("verification_session.created", json!({"id": format!("vks_{n}")}));
    }
    server.wait_queue_empty(Duration::from_secs(20));
    assert_eq!(tokens.fetches(), 1, "one token for the burst");
    let form = &tokens.forms()[0];
    assert_eq!(form.get("scope").map(String::as_str), Some("webhooks:write"));
    assert_eq!(form.get("audience").map(String::as_str), Some("https://receiver.example"));
    let hooks = tokens.hooks();
    assert_eq!(hooks.len(), 20, "{hooks:?}");
    assert!(hooks.iter().all(|(auth, taken)| *taken && auth == "Bearer tok-1"), "{hooks:?}");
    let attempts = server.deliveries(&id);
    assert!(attempts.iter().all(|a| a["status"] == "succeeded"), "{attempts:?}");

    // Revoked: the receiver answers 401 once; the token is fetched again (once) and the
    // delivery made again with it, in the same attempt.
    tokens.revoke_all();
    server.publish("verification_session.created", json!({"id": "vks_after_revoke"}));
    server.wait_queue_empty(Duration::from_secs(10));
    assert_eq!(tokens.fetches(), 2);
    let hooks = tokens.hooks();
    assert_eq!(hooks[20..], [("Bearer tok-1".to_string(), false), ("Bearer tok-2".to_string(), true)]);
    let newest = &server.deliveries(&id)[0];
    assert_eq!((newest["status"].clone(), newest["attempt"].clone()), (json!("succeeded"), json!(1)), "{newest}");

    // Kept until shortly before it expires (3 s, less a tenth), then fetched anew.
    let kept_until = std::time::Instant::now() + Duration::from_millis(2_700);
    server.publish("verification_session.created", json!({"id": "vks_within"}));
    server.wait_queue_empty(Duration::from_secs(10));
    if std::time::Instant::now() < kept_until {
        assert_eq!(tokens.fetches(), 2, "a kept token was fetched again");
    }
    std::thread::sleep(kept_until.saturating_duration_since(std::time::Instant::now()) + Duration::from_millis(100));
    server.publish("verification_session.created", json!({"id": "vks_after_expiry"}));
    server.wait_queue_empty(Duration::from_secs(10));
    assert_eq!(tokens.fetches(), 3, "an expiring token is replaced");
    assert_eq!(tokens.hooks().last().unwrap(), &("Bearer tok-3".to_string(), true));

    // Neither the client secret nor a token is stored or shown anywhere.
    let stored = everything_stored(&server);
    for token in tokens.granted().iter().chain([&secret]) {
        assert!(!stored.windows(token.len()).any(|w| w == token.as_bytes()), "{token} is stored in clear");
    }
    let detail = server.get(&format!("/v1/webhook_endpoints/{id}/deliveries/{}", newest["id"].as_str().unwrap()));
    assert_eq!(detail.body["request"]["headers"]["authorization"], "Bearer [redacted]", "{}", detail.body);
    assert!(!server.get(&format!("/v1/webhook_endpoints/{id}")).text.contains(&secret));

    // A receiver that refuses every token (it wants another audience, say): one fetch
    // for the first refusal, then the refused new token is kept, not fetched again for
    // every attempt.
    tokens.refuse_every_token(true);
    let fetched = tokens.fetches();
    for _ in 0..3 {
        let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
        assert_eq!(ping.body["response_status"], 401, "{}", ping.text);
    }
    assert_eq!(tokens.fetches(), fetched + 1, "the token endpoint hammered by a receiver that refuses its tokens");
}

#[test]
fn a_failing_token_endpoint_is_recorded_as_such_and_nothing_reaches_the_receiver() {
    let tokens = TokenServer::start("stile client", "right", Duration::from_secs(60));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(3600)]);
    let id = oauth2_endpoint(&server, &tokens, "right");
    tokens.fail_with(Some(503));
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(ping.body["status"], "failed", "{}", ping.text);
    assert_eq!(ping.body["response_status"], json!(null), "the token endpoint's answer is not the receiver's");
    let error = ping.body["error"].as_str().unwrap();
    assert!(error.starts_with("token endpoint: HTTP 503"), "{error}");
    assert!(tokens.hooks().is_empty(), "sent without a token");

    // A wrong secret is refused by the token endpoint the same way.
    tokens.fail_with(None);
    let resp = server.post(
        &format!("/v1/webhook_endpoints/{id}"),
        json!({"authentication": {"type": "oauth2_client_credentials", "token_url": format!("{}/token", tokens.base),
                                  "client_id": "stile client", "client_secret": "wrong"}}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert!(ping.body["error"].as_str().unwrap().starts_with("token endpoint: HTTP 401"), "{}", ping.text);
    assert!(tokens.hooks().is_empty());
}

#[test]
fn a_token_url_on_a_private_address_is_refused_in_production() {
    let server = TestServer::start_with(|c| {
        c.server.mode = stile::config::RunMode::Production;
        c.delivery.resolve = vec!["tokens.internal.test=10.0.0.7".into(), "hooks.public.test=93.184.216.34".into()];
    });
    let resp = server.post(
        "/v1/webhook_endpoints",
        json!({"url": "https://hooks.public.test/hook", "enabled_events": ["*"],
               "authentication": {"type": "oauth2_client_credentials", "token_url": "https://tokens.internal.test/token",
                                  "client_id": "c", "client_secret": "s"}}),
    );
    let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(error["param"], "authentication", "{error}");
    let resp = server.post(
        "/v1/webhook_endpoints",
        json!({"url": "https://hooks.public.test/hook", "enabled_events": ["*"],
               "authentication": {"type": "oauth2_client_credentials", "token_url": "http://93.184.216.34/token",
                                  "client_id": "c", "client_secret": "s"}}),
    );
    assert_eq!(resp.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "authentication");
}

#[test]
fn a_client_certificate_opens_a_mutual_tls_receiver_that_refuses_every_other_connection() {
    let receiver = Receiver::start();
    let server_ca = TestCa::new("stile test server CA");
    let client_ca = TestCa::new("stile test client CA");
    let front = TlsFront::start_with(
        receiver.base.trim_start_matches("http://"),
        server_ca.server_requiring_clients_of(&client_ca),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("receivers-ca.pem");
    std::fs::write(&ca_file, server_ca.pem()).unwrap();
    let server = TestServer::start_with(|c| {
        c.delivery.ca_file = ca_file.clone();
        c.delivery.retry_schedule = vec![Duration::from_secs(3600)];
    });
    let (certificate, key) = client_ca.issue(&["stile-client"], true);
    let create = |path: &str, client_certificate: serde_json::Value| {
        server.post(
            "/v1/webhook_endpoints",
            json!({"url": format!("{}{path}", front.base), "enabled_events": ["*"], "client_certificate": client_certificate}),
        )
    };

    // A key that is not the certificate's, or no PEM at all: refused, naming the field.
    let (_, other_key) = client_ca.issue(&["someone-else"], true);
    for (body, says) in [
        (json!({"certificate": certificate, "key": other_key}), "does not go with"),
        (json!({"certificate": "not a certificate", "key": key}), "no PEM certificate"),
        (
            json!({"certificate": certificate, "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "key",
        ),
    ] {
        let resp = create("/mtls", body);
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "client_certificate", "{error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{says}: {error}");
    }

    let created = create("/mtls", json!({"certificate": certificate, "key": key}));
    assert_eq!(created.status, 200, "{}", created.text);
    let shown = &created.body["client_certificate"];
    assert_eq!(shown["certificates"], 1, "{shown}");
    assert_eq!(shown["fingerprint_sha256"].as_str().unwrap().len(), 64, "{shown}");
    let with_certificate = created.body["id"].as_str().unwrap().to_string();
    let ping = server.post(&format!("/v1/webhook_endpoints/{with_certificate}/test"), json!({}));
    assert_eq!(ping.body["status"], "succeeded", "{}", ping.text);
    assert_eq!(receiver.count("/mtls"), 1);

    // Another endpoint on the same host and port, without a certificate, after it: it
    // does not ride the authenticated connection; the receiver refuses it.
    let without = create("/plain", json!(null));
    assert_eq!(without.status, 200, "{}", without.text);
    let ping = server.post(&format!("/v1/webhook_endpoints/{}/test", without.body["id"].as_str().unwrap()), json!({}));
    assert_eq!(ping.body["status"], "failed", "{}", ping.text);
    assert_eq!(ping.body["response_status"], json!(null), "{}", ping.text);
    assert_eq!(receiver.count("/plain"), 0, "reached without a client certificate");
    let plain = without.body["id"].as_str().unwrap().to_string();

    // The key is stored sealed.
    let marker = key.lines().nth(1).unwrap();
    let stored = everything_stored(&server);
    assert!(!stored.windows(marker.len()).any(|w| w == marker.as_bytes()), "the private key is stored in clear");
    assert!(!server.get(&format!("/v1/webhook_endpoints/{with_certificate}")).text.contains(marker));

    // Without `delivery.ca_file` the receiver's certificate is not trusted.
    let untrusting = TestServer::start();
    let created = untrusting.post(
        "/v1/webhook_endpoints",
        json!({"url": format!("{}/mtls", front.base), "enabled_events": ["*"],
               "client_certificate": {"certificate": certificate, "key": key}}),
    );
    let ping =
        untrusting.post(&format!("/v1/webhook_endpoints/{}/test", created.body["id"].as_str().unwrap()), json!({}));
    let error = ping.body["error"].as_str().unwrap_or_default().to_string();
    assert!(error.starts_with("tls:") && error.contains("UnknownIssuer"), "{}", ping.text);
    assert_eq!(receiver.count("/mtls"), 1);

    // The dashboard gives the other endpoint the certificate: its test goes through.
    in_browser("client_certificate", move |page| async move {
        page.open(&format!("{}/", server.base)).await;
        page.sign_in(TEST_KEY).await;
        page.open(&format!("{}/#/endpoints/{plain}", server.base)).await;
        page.wait_text("[data-test=client-certificate]", "—").await;
        page.click_button("Edit").await;
        page.type_into("textarea[name=client_certificate]", &certificate).await;
        page.type_into("textarea[name=client_key]", &key).await;
        page.click_button("Save").await;
        page.wait_text("[data-test=client-certificate]", "SHA-256").await;
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        assert_eq!(receiver.count("/plain"), 1);
    });
}

#[test]
fn the_app_portal_sets_an_endpoints_headers_and_basic_credentials_that_reach_its_receiver() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let endpoint = server
        .req("POST", "/v1/webhook_endpoints")
        .header("Stile-App", "acme")
        .json(&json!({"url": receiver.url("/acme"), "enabled_events": ["*"]}))
        .send();
    let id = endpoint.body["id"].as_str().unwrap().to_string();
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    in_browser("portal_endpoint_options", move |page| async move {
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_count("table a.url", 1).await;
        page.open(&format!("{}/portal/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=authentication]", "—").await;
        page.click_button("Edit").await;
        page.find("select[name=auth_type]").await;
        page.script(
            "const s = document.querySelector('select[name=auth_type]'); s.value = 'basic'; s.dispatchEvent(new Event('change'));",
        )
        .await;
        page.type_into("input[name=auth_username]", "acme-ops").await;
        page.type_into("input[name=auth_password]", "portal-pa55").await;
        page.type_into("textarea[name=headers]", "X-Customer: acme").await;
        page.click_button("Save").await;
        page.wait_text("[data-test=authentication]", "HTTP Basic, as acme-ops").await;
        assert!(!page.text("main").await.contains("portal-pa55"), "the password is shown");
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let got = receiver.wait_for("/acme", 1, Duration::from_secs(10));
        // base64("acme-ops:portal-pa55")
        assert_eq!(got[0].header("authorization"), "Basic YWNtZS1vcHM6cG9ydGFsLXBhNTU=");
        assert_eq!(got[0].header("x-customer"), "acme");
    });
}
