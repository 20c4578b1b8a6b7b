//! Test pings (`POST /v1/webhook_endpoints/:id/test`) as an attacker would use them: to
//! make the server connect where no endpoint may point, or to flood a receiver.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::process::Stream;
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TEST_KEY, TestServer};
use crate::listen::listen;

const WAIT: Duration = Duration::from_secs(20);

/// Pings `endpoint` of `server` once.
fn ping(server: &TestServer, endpoint: &str) -> crate::common::Resp {
    server.req("POST", &format!("/v1/webhook_endpoints/{endpoint}/test")).key(TEST_KEY).send()
}

/// The listener endpoint `stile listen` made.
fn listener_endpoint(server: &TestServer) -> Value {
    let endpoints = server.get("/v1/webhook_endpoints").body["data"].clone();
    endpoints.as_array().unwrap().iter().find(|e| e["kind"] == "listener").expect("a listener endpoint").clone()
}

#[test]
fn a_ping_to_a_listener_endpoint_goes_down_the_connection_and_never_to_forward_to() {
    let server = TestServer::start();
    // `forward_to` names a receiver the server must never reach: only the CLI may.
    let target = Receiver::start();
    let (mut cli, secret) = listen(&server.base, &target, &[]);
    let endpoint = listener_endpoint(&server);
    let id = endpoint["id"].as_str().unwrap();

    // Its name shows no characters of the key that made it.
    let name = endpoint["name"].as_str().unwrap();
    let key_chars = &TEST_KEY["vk_test_".len()..];
    assert!(!name.contains(&key_chars[..4]) && !name.contains('…'), "{name}");
    assert!(name.starts_with("stile listen (key "), "{name}");
    assert!(!endpoint["description"].as_str().unwrap().contains(&key_chars[..4]), "{endpoint}");

    // Connected: the ping travels down the WebSocket, and the CLI forwards it.
    let resp = ping(&server, id);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["status"], "succeeded", "{}", resp.text);
    cli.wait_line(Stream::Out, "--> webhook_endpoint.test", WAIT);
    let got = target.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].stile_signature_valid(&secret), (true, 1), "{:?}", got[0].headers);

    // Gone: the ping is refused; nothing reaches `forward_to`.
    cli.kill_hard();
    let refused = (0..40).find_map(|_| {
        let resp = ping(&server, id);
        if resp.status == 400 {
            return Some(resp);
        }
        // Until the server has seen the connection close, a ping fails down it.
        std::thread::sleep(Duration::from_millis(250));
        None
    });
    let refused = refused.expect("a ping to a listener endpoint with no CLI is refused");
    refused.assert_error(400, "invalid_request_error", "invalid_state");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("stile listen"), "{}", refused.text);
    assert_eq!(target.count("/hook"), 1, "the server connected to forward_to itself");
}

#[test]
fn forward_to_is_checked_like_a_development_endpoint_url() {
    let server = TestServer::start();
    for bad in ["ftp://127.0.0.1/x", "http://10.0.0.1:9/hook", "https://169.254.169.254/latest", "nonsense"] {
        let query = format!("/v1/listen?forward_to={}", urlencoding(bad));
        let resp = server.req("GET", &query).key(TEST_KEY).send();
        resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(resp.body["error"]["param"], "forward_to", "{bad}: {}", resp.text);
    }
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[test]
fn pings_take_the_endpoints_in_flight_slots_and_are_limited_per_second() {
    let server = TestServer::start_with(|config| config.delivery.per_endpoint_concurrency = 2);
    let receiver = Receiver::start();
    let stall = Duration::from_millis(600);
    receiver.set("/slow", Behaviour::Delay(stall));
    let endpoint = server.create_endpoint(&receiver.url("/slow"));
    let id = endpoint["id"].as_str().unwrap().to_string();

    // 100 at once, as the attack sent them.
    let started = Instant::now();
    let answers: Vec<crate::common::Resp> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..100).map(|_| scope.spawn(|| ping(&server, &id))).collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + limited.len(), 100, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!((stile::delivery::PINGS_PER_SECOND..=stile::delivery::PINGS_PER_SECOND * 2).contains(&ok), "{ok} went out");
    for resp in &limited {
        resp.assert_error(429, "rate_limit_error", "rate_limited");
        let wait: u64 = resp.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&wait), "{wait}");
    }

    // Never more than the endpoint's two at once.
    let arrived: Vec<Instant> = receiver.received("/slow").iter().map(|r| r.at).collect();
    assert_eq!(arrived.len(), ok);
    let most_at_once = arrived
        .iter()
        .map(|at| arrived.iter().filter(|other| *other <= at && at.duration_since(**other) < stall / 2).count())
        .max()
        .unwrap();
    assert!(most_at_once <= 2, "{most_at_once} requests at once to an endpoint allowed 2");
    assert!(started.elapsed() >= stall * ((ok as u32).div_ceil(2)), "the pings waited for each other's slots");

    // Every slot came back: a ping and a delivery go at once.
    receiver.set("/slow", Behaviour::Ok);
    // The rate window is a second: try every 100 ms, for at most 3 s.
    let mut again = ping(&server, &id);
    for _ in 0..30 {
        if again.status != 429 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        again = ping(&server, &id);
    }
    assert_eq!((again.status, again.body["status"].as_str()), (200, Some("succeeded")), "{}", again.text);
    let event = server.publish("verification_session.verified", serde_json::json!({"id": "vks_after_pings"}));
    server.wait_settled(event["id"].as_str().unwrap(), WAIT);
    assert_eq!(receiver.count("/slow"), ok + 2, "the ping and the delivery arrived");
}
