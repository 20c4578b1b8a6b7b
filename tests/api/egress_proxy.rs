//! The egress proxy (`[delivery] proxy`) with a real forward proxy (tinyproxy): what goes
//! through it, the address it is asked for, what its failures are recorded as, and that
//! the address rules hold whatever path a request takes. One process here (redb, or
//! Postgres with `STILE_TEST_BACKEND=postgres`).

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::Receiver;
use crate::common::tinyproxy::Tinyproxy;
use crate::common::tls::{TestCa, TlsFront};
use crate::common::token_server::TokenServer;
use crate::common::{TestServer, eventually};

#[test]
fn an_https_delivery_with_an_oauth2_token_and_a_header_goes_through_the_proxy_to_the_address_stile_checked() {
    let secret = "through-the-proxy";
    let tokens = TokenServer::start("stile", secret, Duration::from_secs(60));
    let ca = TestCa::new("stile test CA");
    let front = TlsFront::start_with(tokens.base.trim_start_matches("http://"), ca.server_config(&["receiver.test"]));
    let front_port: u16 = front.base.rsplit(':').next().unwrap().parse().unwrap();
    let Some(proxy) = Tinyproxy::start(&[front_port], None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server = TestServer::start_with(|c| {
        c.delivery.proxy = proxy.url.clone();
        c.delivery.ca_file = ca_file.clone();
        // A name: the proxy must be asked for the address stile resolved and checked.
        c.delivery.resolve = vec!["receiver.test=127.0.0.1".into()];
    });
    let base = format!("https://receiver.test:{front_port}");
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": format!("{base}/hook"), "enabled_events": ["*"], "headers": {"X-Team": "payments"},
               "authentication": {"type": "oauth2_client_credentials", "token_url": format!("{base}/token"),
                                  "client_id": "stile", "client_secret": secret}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let signing_secret = created.body["secret"].as_str().unwrap().to_string();

    server.publish("verification_session.verified", json!({"id": "vks_proxied"}));
    let arrived = eventually(Duration::from_secs(15), || !tokens.taken().is_empty());
    assert!(arrived, "nothing arrived through the proxy: {:?}", tokens.hooks());
    let delivery = &tokens.taken()[0];
    assert!(delivery.stile_signature_valid(&signing_secret).0, "the receiver's own check of the signature");
    assert_eq!(delivery.header("x-team"), "payments");
    assert_eq!(delivery.header("authorization"), "Bearer tok-1");
    let asked = proxy.connects();
    let checked = format!("127.0.0.1:{front_port}");
    // The token request and the delivery (one tunnel, kept alive, may carry both).
    assert!(!asked.is_empty() && asked.iter().all(|target| *target == checked), "the proxy was asked for {asked:?}");
}

#[test]
fn a_failing_proxy_is_recorded_as_the_proxys_failure_and_spares_the_endpoints_health() {
    let receiver = Receiver::start();
    let receiver_port: u16 = receiver.base.rsplit(':').next().unwrap().parse().unwrap();
    // Asks for credentials stile does not have.
    let Some(guarded) = Tinyproxy::start(&[receiver_port], Some(("stile", "pa55"))) else { return };
    let server = TestServer::start_with(|c| {
        c.delivery.proxy = guarded.url.clone();
        c.delivery.retry_schedule = vec![Duration::from_millis(200); 6];
        c.delivery.disable_after = Duration::from_millis(500);
    });
    let id = server.create_endpoint(&receiver.url("/hook"))["id"].as_str().unwrap().to_string();
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(15));
    let attempts = server.deliveries(&id);
    assert_eq!(attempts.len(), 7, "every retry made: {attempts:?}");
    for attempt in &attempts {
        let error = attempt["error"].as_str().unwrap();
        assert!(error.starts_with("proxy: CONNECT 127.0.0.1:") && error.contains("407"), "{error}");
        assert_eq!(attempt["response_status"], json!(null), "{attempt}");
    }
    // Seven failures over more than `disable_after`: an endpoint's own would disable it.
    let endpoint = server.get(&format!("/v1/webhook_endpoints/{id}")).body;
    assert_eq!(
        (endpoint["status"].clone(), endpoint["health"].clone()),
        (json!("enabled"), json!("healthy")),
        "{endpoint}"
    );
    assert_eq!(receiver.count("/hook"), 0);

    // With the credentials in its URL, the same proxy lets it through.
    let with_credentials = guarded.url.replace("http://", "http://stile:pa55@");
    let server = server.restart_with(|c| c.delivery.proxy = with_credentials.clone());
    server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    receiver.wait_for("/hook", 1, Duration::from_secs(10));

    // The proxy cannot reach the target (nothing listens there): its 5xx is the target's
    // failure, as "connection refused" would be without a proxy, and counts.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let Some(open) = Tinyproxy::start(&[down], None) else { return };
    let server = server.restart_with(|c| c.delivery.proxy = open.url.clone());
    let gone = server.create_endpoint_for(&format!("http://127.0.0.1:{down}/hook"), &["verification_session.created"])
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Only to it: the first endpoint no longer takes this type.
    let narrowed = server
        .post(&format!("/v1/webhook_endpoints/{id}"), json!({"enabled_events": ["verification_session.verified"]}));
    assert_eq!(narrowed.status, 200, "{}", narrowed.text);
    server.publish("verification_session.created", json!({"id": "vks_2"}));
    // Failing for longer than `disable_after`, it is disabled as it would be directly.
    let disabled = eventually(Duration::from_secs(15), || {
        server.get(&format!("/v1/webhook_endpoints/{gone}")).body["status"] == "disabled"
    });
    let attempts = server.deliveries(&gone);
    assert!(disabled, "a target the proxy could not reach never counted: {attempts:?}");
    let error = attempts.iter().find_map(|a| a["error"].as_str()).expect("a failed attempt");
    assert!(error.starts_with(&format!("proxy: CONNECT 127.0.0.1:{down} answered 5")), "{error}");

    // A proxy that is not there: refused, said so; `no_proxy` goes around it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = server.restart_with(|c| c.delivery.proxy = format!("http://127.0.0.1:{closed}"));
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(ping.body["error"], format!("proxy: connection to 127.0.0.1:{closed} refused"), "{}", ping.text);
    let server = server.restart_with(|c| c.delivery.no_proxy = vec!["127.0.0.0/8".into()]);
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(ping.body["status"], "succeeded", "{}", ping.text);
    assert_eq!(receiver.count("/hook"), 2);
}

#[test]
fn through_the_proxy_a_host_that_turns_private_is_refused_and_the_proxy_never_asked() {
    let receiver = Receiver::start();
    let Some(proxy) = Tinyproxy::start(&[443], None) else { return };
    let server = TestServer::start_with(|c| {
        c.server.mode = stile::config::RunMode::Production;
        c.delivery.proxy = proxy.url.clone();
        c.delivery.resolve = vec!["rebind.test=93.184.216.34".into()];
        c.delivery.retry_schedule = vec![];
    });
    let created =
        server.post("/v1/webhook_endpoints", json!({"url": "https://rebind.test/hook", "enabled_events": ["*"]}));
    assert_eq!(created.status, 200, "public at creation: {}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    // Now it points at loopback, which production mode refuses: stile refuses it before
    // asking the proxy, which would have connected anywhere.
    let server = server.restart_with(|c| c.delivery.resolve = vec!["rebind.test=127.0.0.1".into()]);
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    let error = ping.body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("refused:"), "{}", ping.text);
    assert!(proxy.connects().is_empty(), "the proxy was asked: {:?}", proxy.connects());
    assert_eq!(receiver.count("/hook"), 0);
}

#[test]
fn a_proxy_setting_that_cannot_work_stops_the_start_naming_it() {
    for (proxy, no_proxy, says) in [
        ("https://proxy.example:3128", "", "delivery.proxy"),
        ("http://proxy.example:3128/path", "", "delivery.proxy"),
        ("not a url", "", "delivery.proxy"),
        ("http://proxy.example:3128", "not a host!", "delivery.no_proxy"),
    ] {
        let mut env = std::collections::HashMap::from([("STILE_DELIVERY_PROXY".to_string(), proxy.to_string())]);
        if !no_proxy.is_empty() {
            env.insert("STILE_DELIVERY_NO_PROXY".into(), no_proxy.into());
        }
        let err = stile::config::Config::load(&stile::config::Overrides::default(), &env).unwrap_err().0;
        assert!(err.contains(says), "{proxy}: {err}");
    }
}

#[test]
fn a_proxy_that_never_answers_connect_or_answers_garbage_is_the_proxys_failure_not_the_endpoints() {
    use crate::common::faulty::{Fault, FaultyServer};
    let receiver = Receiver::start();
    for (fault, says) in
        [(Fault::Stall, "no answer to CONNECT within"), (Fault::Garbage, "not an HTTP answer to CONNECT")]
    {
        let proxy = FaultyServer::start(fault);
        let server = TestServer::start_with(|c| {
            c.delivery.proxy = format!("http://{}", proxy.addr);
            c.delivery.timeout = Duration::from_secs(2);
        });
        let id = server.create_endpoint(&receiver.url("/hook"))["id"].as_str().unwrap().to_string();
        let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
        let error = ping.body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("proxy: ") && error.contains(says), "{}", ping.text);
        assert_eq!(receiver.count("/hook"), 0);
    }
}
