//! Production mode checks the address a delivery actually connects to, after resolution,
//! so a host that was public when the endpoint was created and resolves to a private
//! address later (DNS rebinding) is refused. Resolution here is `delivery.resolve`, never
//! real DNS.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use stile::config::RunMode;

use crate::common::TestServer;
use crate::common::faulty::{Fault, FaultyServer};

#[test]
fn a_host_that_turns_private_after_creation_is_refused_at_connect_time() {
    let target = FaultyServer::start(Fault::HangUp);
    let port = target.addr.port();
    let server = TestServer::start_with(|c| {
        c.server.mode = RunMode::Production;
        c.delivery.resolve = vec!["rebind.test=93.184.216.34".into()];
        c.delivery.retry_schedule = vec![];
    });
    let url = format!("https://rebind.test:{port}/hook");
    let created = server.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"]}));
    assert_eq!(created.status, 200, "public at creation: {}", created.text);
    let endpoint = created.body["id"].as_str().unwrap().to_string();

    // The name now points at loopback, where something is listening.
    let server = server.restart_with(|c| c.delivery.resolve = vec!["rebind.test=127.0.0.1".into()]);
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(10));
    let attempt = &server.deliveries(&endpoint)[0];
    assert_eq!(attempt["status"], "failed");
    assert!(attempt["error"].as_str().unwrap().starts_with("refused:"), "{attempt}");
    assert_eq!(target.connections.load(Ordering::Relaxed), 0, "no connection was made");

    // Creating an endpoint on the name now is refused too.
    let again = server.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"]}));
    assert_eq!(again.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "url");
}

#[test]
fn an_allow_listed_private_host_is_reached() {
    let target = FaultyServer::start(Fault::HangUp);
    let port = target.addr.port();
    let server = TestServer::start_with(|c| {
        c.server.mode = RunMode::Production;
        c.delivery.resolve = vec!["internal.test=127.0.0.1".into()];
        c.delivery.allowed_private_targets = vec!["internal.test".into()];
        c.delivery.retry_schedule = vec![];
    });
    let endpoint = server.create_endpoint(&format!("https://internal.test:{port}/hook"));
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(10));
    let attempt = &server.deliveries(endpoint["id"].as_str().unwrap())[0];
    assert!(!attempt["error"].as_str().unwrap().starts_with("refused:"), "{attempt}");
    assert_eq!(target.connections.load(Ordering::Relaxed), 1, "the allow-listed host was dialled");
}

#[test]
fn an_ip_literal_no_longer_allowed_is_refused_before_dialling() {
    let target = FaultyServer::start(Fault::HangUp);
    let server = TestServer::start_with(|c| {
        c.server.mode = RunMode::Production;
        c.delivery.allowed_private_targets = vec!["127.0.0.1/32".into()];
        c.delivery.retry_schedule = vec![];
    });
    let endpoint = server.create_endpoint(&target.url("/hook").replace("http://", "https://"));
    // The allow-list entry is gone at the next start: the literal address is refused,
    // though no name is resolved on the way.
    let server = server.restart_with(|c| c.delivery.allowed_private_targets = vec![]);
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(10));
    let attempt = &server.deliveries(endpoint["id"].as_str().unwrap())[0];
    assert!(attempt["error"].as_str().unwrap().starts_with("refused:"), "{attempt}");
    assert_eq!(target.connections.load(Ordering::Relaxed), 0, "no connection was made");
}
