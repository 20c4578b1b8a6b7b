//! `stile listen`: a real server process, the CLI as another process, and a local receiver
//! that checks both signature schemes with the secret the CLI printed.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::process::{OutputProcess, ServerProcess, Stream};
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, Resp, TEST_KEY, TestServer, eventually};

const WAIT: Duration = Duration::from_secs(20);
const VERIFIED: &str = "verification_session.verified";

/// A server process with the test key and retries a fraction of a second apart.
fn server(dir: &std::path::Path, listen: &str) -> ServerProcess {
    let env = [("STILE_AUTH_KEYS", TEST_KEY), ("STILE_DELIVERY_RETRY_SCHEDULE", "200ms,400ms,800ms,1s,1s,1s,1s,1s")];
    ServerProcess::start(dir, &["--listen", listen, "--data-dir", "data"], &env).unwrap()
}

fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = Req::new(method, format!("{base}{path}")).key(TEST_KEY);
    match body {
        Some(body) => req.json(&body).send(),
        None => req.send(),
    }
}

fn publish(base: &str, id: &str) -> String {
    let resp = call(base, "POST", "/v1/events", Some(json!({"type": VERIFIED, "data": {"id": id}})));
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["id"].as_str().unwrap().to_string()
}

/// `stile listen` forwarding to `receiver`'s `/hook`; returns it with the secret it printed.
pub(crate) fn listen(base: &str, receiver: &Receiver, extra: &[&str]) -> (OutputProcess, String) {
    let forward_to = receiver.url("/hook");
    let mut args = vec!["listen", "--forward-to", &forward_to, "--url", base, "--api-key", TEST_KEY];
    args.extend_from_slice(extra);
    let mut cli = OutputProcess::start(&args);
    cli.wait_line(Stream::Err, "Ready! Forwarding to", WAIT);
    let line = cli.wait_line(Stream::Err, "Your webhook signing secret is", WAIT);
    let secret = line.split_whitespace().find(|w| w.starts_with("whsec_")).unwrap().to_string();
    (cli, secret)
}

/// The webhook-ids the receiver got on `/hook`.
fn received_ids(receiver: &Receiver) -> BTreeSet<String> {
    receiver.received("/hook").iter().map(|r| r.header("webhook-id").to_string()).collect()
}

#[test]
fn deliveries_reach_the_local_app_signed_and_its_answers_are_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "127.0.0.1:0");
    let receiver = Receiver::start();
    let (mut cli, secret) = listen(&server.base, &receiver, &[]);

    // The listener endpoint is a real endpoint of the application.
    let endpoints = call(&server.base, "GET", "/v1/webhook_endpoints", None).body["data"].clone();
    assert_eq!(endpoints.as_array().unwrap().len(), 1, "{endpoints}");
    let endpoint = &endpoints[0];
    assert_eq!(
        (endpoint["kind"].as_str(), endpoint["url"].as_str()),
        (Some("listener"), Some(receiver.url("/hook").as_str()))
    );
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();

    let event_id = publish(&server.base, "vks_1");
    let got = receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].stile_signature_valid(&secret), (true, 1), "{:?}", got[0].headers);
    assert_eq!(got[0].standard_signature_valid(&secret), (true, 1), "{:?}", got[0].headers);
    assert_eq!(got[0].header("webhook-id"), event_id);
    let body = got[0].json();
    assert_eq!((body["id"].as_str(), body["type"].as_str()), (Some(event_id.as_str()), Some(VERIFIED)));
    assert_eq!(body["data"], json!({"id": "vks_1"}));
    cli.wait_line(Stream::Out, &format!("--> {VERIFIED} [{event_id}]"), WAIT);
    let answered = cli.wait_line(Stream::Out, &format!("<-- [200] POST {} [{event_id}]", receiver.url("/hook")), WAIT);
    assert!(answered.ends_with(" ms"), "{answered}");

    // The attempt records the local answer.
    let deliveries_path = format!("/v1/webhook_endpoints/{endpoint_id}/deliveries");
    assert!(
        eventually(WAIT, || call(&server.base, "GET", &deliveries_path, None).body["data"][0]["status"] == "succeeded")
    );
    let attempt = call(&server.base, "GET", &deliveries_path, None).body["data"][0].clone();
    assert_eq!(attempt["response_status"], 200);
    assert!(attempt["response_body"].as_str().unwrap().contains("received"), "{attempt}");

    // A 500 from the local app is a failed attempt, retried on the schedule.
    receiver.set("/hook", Behaviour::Status(500));
    let failing = publish(&server.base, "vks_2");
    cli.wait_line(Stream::Out, &format!("<-- [500] POST {} [{failing}]", receiver.url("/hook")), WAIT);
    receiver.set("/hook", Behaviour::Ok);
    cli.wait_line(Stream::Out, &format!("<-- [200] POST {} [{failing}]", receiver.url("/hook")), WAIT);
    let settled = eventually(WAIT, || {
        let attempts =
            call(&server.base, "GET", &format!("/v1/events/{failing}/deliveries"), None).body["data"].clone();
        attempts.as_array().is_some_and(|a| a.iter().any(|d| d["status"] == "succeeded"))
    });
    assert!(settled);
    let attempts = call(&server.base, "GET", &format!("/v1/events/{failing}/deliveries"), None).body["data"].clone();
    let first = attempts.as_array().unwrap().iter().find(|d| d["attempt"] == 1).unwrap().clone();
    assert_eq!(
        (first["status"].as_str(), first["response_status"].as_u64()),
        (Some("failed"), Some(500)),
        "{attempts}"
    );

    // The same key gets the same endpoint and secret on its next run.
    cli.kill_hard();
    let (_cli, again) = listen(&server.base, &receiver, &["--print-json"]);
    assert_eq!(again, secret);
    let endpoints = call(&server.base, "GET", "/v1/webhook_endpoints", None).body["data"].clone();
    assert_eq!(endpoints.as_array().unwrap().len(), 1);
}

#[test]
fn nothing_is_lost_while_the_cli_is_away_and_it_comes_back_in_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "127.0.0.1:0");
    let receiver = Receiver::start();
    let (mut cli, _) = listen(&server.base, &receiver, &[]);
    let mut published: Vec<String> = (0..3).map(|i| publish(&server.base, &format!("vks_a{i}"))).collect();
    receiver.wait_for("/hook", 3, WAIT);

    // Killed with deliveries in flight (the local app is slow), and more published after.
    receiver.set("/hook", Behaviour::Delay(Duration::from_millis(1500)));
    published.extend((0..2).map(|i| publish(&server.base, &format!("vks_b{i}"))));
    assert!(eventually(WAIT, || receiver.received("/hook").len() >= 4), "one reached the slow app");
    cli.kill_hard();
    published.extend((0..3).map(|i| publish(&server.base, &format!("vks_c{i}"))));
    // With no CLI, the deliveries wait: the newest one's attempt is parked, not made.
    let waiting =
        call(&server.base, "GET", &format!("/v1/events/{}/deliveries", published[7]), None).body["data"].clone();
    assert_eq!(waiting[0]["status"], "pending", "{waiting}");

    receiver.set("/hook", Behaviour::Ok);
    let (mut cli, _) = listen(&server.base, &receiver, &["--print-json"]);
    let all: BTreeSet<String> = published.iter().cloned().collect();
    assert!(
        eventually(WAIT, || received_ids(&receiver).is_superset(&all)),
        "missing: {:?}",
        all.difference(&received_ids(&receiver))
    );
    let line = cli.wait_line(Stream::Out, &published[7], WAIT);
    let json: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (json["event"]["id"].as_str(), json["response"]["status"].as_u64()),
        (Some(published[7].as_str()), Some(200))
    );
    for id in &published {
        assert!(eventually(
            WAIT,
            || call(&server.base, "GET", &format!("/v1/events/{id}"), None).body["pending_webhooks"] == 0
        ));
    }
}

#[test]
fn the_cli_reconnects_by_itself_when_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = server(dir.path(), "127.0.0.1:0");
    let address = first.base.trim_start_matches("http://").to_string();
    let receiver = Receiver::start();
    let (mut cli, secret) = listen(&first.base, &receiver, &[]);
    publish(&first.base, "vks_before");
    receiver.wait_for("/hook", 1, WAIT);

    assert_eq!(first.terminate(), Some(0), "a listen connection does not hold up a graceful stop");
    cli.wait_line(Stream::Err, "Connection to stile lost", WAIT);
    let second = server(dir.path(), &address);
    cli.wait_line(Stream::Err, "Reconnected. Forwarding to", WAIT);
    let after = publish(&second.base, "vks_after");
    let got = receiver.wait_for("/hook", 2, WAIT);
    let last = got.iter().find(|r| r.header("webhook-id") == after).expect("the event after the restart arrived");
    assert_eq!(last.stile_signature_valid(&secret), (true, 1));
}

#[test]
fn only_api_keys_listen_and_a_listener_endpoint_waits_then_expires_when_unused() {
    let clock = stile::clock::Clock::manual(stile::clock::unix_now_ms());
    let server =
        TestServer::start_with_clock(clock.clone(), |c| c.listen.idle_expiry = Duration::from_secs(7 * 86_400));
    // Not a WebSocket, a bad query, a portal token: refused before anything is made.
    let plain = server.get("/v1/listen?forward_to=http://localhost:3000/hook");
    assert!(
        plain.assert_error(400, "invalid_request_error", "bad_request")["message"]
            .as_str()
            .unwrap()
            .contains("stile listen")
    );
    for (query, param) in [
        ("", "forward_to"),
        ("?forward_to=ftp://x", "forward_to"),
        ("?forward_to=http://a/h", "forward_to"),
        ("?forward_to=http://localhost:3000/h&events=no.such", "events[0]"),
    ] {
        let resp = server.get(&format!("/v1/listen{query}"));
        assert_eq!(resp.status, 400, "{query}: {}", resp.text);
        assert_eq!(resp.body["error"]["param"], param, "{query}");
    }
    server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"}));
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    let portal =
        Req::new("GET", format!("{}/v1/listen?forward_to=http://localhost:1/h", server.base)).key(&token).send();
    portal.assert_error(403, "permission_error", "insufficient_permissions");
    assert!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty());

    // Connected to one application, for some event types only.
    let receiver = Receiver::start();
    let (mut cli, _) = listen(&server.base, &receiver, &["--app", "acme", "--events", "verification_session.failed"]);
    let as_acme = |method: &str, path: &str| server.req(method, path).header("Stile-App", "acme");
    let listed = as_acme("GET", "/v1/webhook_endpoints").send().body["data"].clone();
    assert_eq!(listed[0]["enabled_events"], json!(["verification_session.failed"]));
    let endpoint_id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(
        server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty(),
        "the default application has none"
    );

    // Gone: its deliveries wait, parked, until a CLI connects again.
    cli.kill_hard();
    let failed = as_acme("POST", "/v1/events").json(&json!({"type": "verification_session.failed", "data": {}})).send();
    let event_id = failed.body["id"].as_str().unwrap().to_string();
    assert!(eventually(WAIT, || {
        let attempts =
            as_acme("GET", &format!("/v1/webhook_endpoints/{endpoint_id}/deliveries")).send().body["data"].clone();
        attempts.as_array().is_some_and(|a| a.len() == 1 && a[0]["status"] == "pending")
    }));
    assert!(receiver.received("/hook").is_empty());

    // Unused for longer than idle_expiry: removed, and its waiting delivery ends.
    clock.advance(Duration::from_secs(8 * 86_400));
    assert!(eventually(WAIT, || as_acme("GET", "/v1/webhook_endpoints").send().body["data"]
        .as_array()
        .unwrap()
        .is_empty()));
    let event = as_acme("GET", &format!("/v1/events/{event_id}")).send();
    assert_eq!(event.body["pending_webhooks"], 0, "{}", event.text);
}

#[test]
fn skip_verify_accepts_a_self_signed_certificate_and_only_it_does() {
    let server = TestServer::start();
    let front = crate::common::tls::TlsFront::start(server.base.trim_start_matches("http://"));
    let receiver = Receiver::start();
    let forward_to = receiver.url("/hook");
    // Checked as usual, the certificate is refused, and the CLI says why (and keeps trying).
    let mut strict =
        OutputProcess::start(&["listen", "--forward-to", &forward_to, "--url", &front.base, "--api-key", TEST_KEY]);
    let refused = strict.wait_line(Stream::Err, "Connection to stile lost", WAIT);
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    strict.kill_hard();
    assert!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty());

    let (_cli, secret) = listen(&front.base, &receiver, &["--skip-verify"]);
    let event = server.publish(VERIFIED, json!({"id": "vks_tls"}));
    let got = receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].header("webhook-id"), event["id"].as_str().unwrap());
    assert_eq!(got[0].stile_signature_valid(&secret), (true, 1));
}

#[test]
fn a_key_the_server_refuses_stops_the_cli_with_the_servers_message() {
    let server = TestServer::start();
    let mut cli = OutputProcess::start(&[
        "listen",
        "--forward-to",
        "http://127.0.0.1:9/hook",
        "--url",
        &server.base,
        "--api-key",
        "vk_test_not_a_key_of_this_server",
    ]);
    let line = cli.wait_line(Stream::Err, "refused to listen", WAIT);
    assert!(line.contains("401") && line.contains("Invalid API key"), "{line}");
    assert!(eventually(WAIT, || cli.child.try_wait().unwrap().is_some()), "it stops instead of retrying");
    assert!(!cli.child.try_wait().unwrap().unwrap().success());
    assert!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty());
}

#[test]
fn deleting_the_application_ends_its_listen_connections() {
    let server = TestServer::start();
    let app = server.post("/v1/apps", json!({"name": "A laptop's app", "uid": "laptop"}));
    assert_eq!(app.status, 200, "{}", app.text);
    let receiver = Receiver::start();
    let (mut cli, _) = listen(&server.base, &receiver, &["--app", "laptop"]);

    let deleted = server.delete(&format!("/v1/apps/{}", app.body["id"].as_str().unwrap()));
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    // The connection ends at once; reconnecting finds no application, and the CLI stops.
    cli.wait_line(Stream::Err, "Connection to stile lost", WAIT);
    let line = cli.wait_line(Stream::Err, "refused to listen", WAIT);
    assert!(line.contains("404"), "{line}");
    assert!(eventually(WAIT, || cli.child.try_wait().unwrap().is_some()), "it stops instead of retrying");
}

#[test]
fn the_cli_reaches_the_server_through_the_proxy_its_environment_names_and_forwards_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "127.0.0.1:0");
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let Some(proxy) = crate::common::tinyproxy::Tinyproxy::start(&[port], None) else { return };
    let receiver = Receiver::start();
    let forward_to = receiver.url("/hook");
    let mut command = crate::common::process::stile_bin();
    command
        .args(["listen", "--forward-to", &forward_to, "--url", &server.base, "--api-key", TEST_KEY])
        .env("HTTP_PROXY", &proxy.url)
        .env_remove("http_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let mut cli = OutputProcess::spawn(command);
    cli.wait_line(Stream::Err, "Ready! Forwarding to", WAIT);
    assert_eq!(proxy.connects(), [format!("127.0.0.1:{port}")], "the CLI's connection to stile");

    // The local app is reached directly.
    let event_id = publish(&server.base, "vks_proxied");
    let got = receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].header("webhook-id"), event_id);
    assert_eq!(proxy.connects().len(), 1, "a delivery forwarded through the proxy: {:?}", proxy.connects());

    // `NO_PROXY` naming the server: straight there.
    cli.kill_hard();
    let mut command = crate::common::process::stile_bin();
    command
        .args(["listen", "--forward-to", &forward_to, "--url", &server.base, "--api-key", TEST_KEY])
        .env("HTTP_PROXY", &proxy.url)
        .env("NO_PROXY", "localhost,127.0.0.1")
        .env_remove("no_proxy")
        .env_remove("http_proxy");
    let mut cli = OutputProcess::spawn(command);
    cli.wait_line(Stream::Err, "Ready! Forwarding to", WAIT);
    assert_eq!(proxy.connects().len(), 1, "NO_PROXY was not honoured: {:?}", proxy.connects());
}
