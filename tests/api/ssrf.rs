//! Production mode checks the address a delivery actually connects to, after resolution,
//! so a host that was public when the endpoint was created and resolves to a private
//! address later (DNS rebinding) is refused. Resolution here is `delivery.resolve`, never
//! real DNS. Link-local and cloud metadata addresses are refused in every mode, and an
//! IPv6 address that embeds an IPv4 one is judged by the IPv4 address it embeds.

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

/// The IPv6 spellings of 127.0.0.1 the security report named: IPv4-compatible, written
/// dotted and in hex, and Teredo (client 127.0.0.1, stored inverted in the last 32 bits).
const IPV6_FORMS_OF_LOOPBACK: [&str; 3] = ["::127.0.0.1", "::7f00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe"];

#[test]
fn ipv6_forms_of_a_private_ipv4_address_are_refused_at_creation_in_production() {
    let resolve = IPV6_FORMS_OF_LOOPBACK.iter().enumerate().map(|(i, ip)| format!("form{i}.test={ip}")).collect();
    let server = TestServer::start_with(|c| {
        c.server.mode = RunMode::Production;
        c.delivery.resolve = resolve;
    });
    // Each written as the URL's host, and reached through a name.
    let urls = IPV6_FORMS_OF_LOOPBACK
        .iter()
        .enumerate()
        .flat_map(|(i, ip)| [format!("https://[{ip}]/hook"), format!("https://form{i}.test/hook")]);
    assert_every_create_refused(&server, urls, "127.0.0.1");
}

/// Tries to create an endpoint at each URL: every one must be a 400 about `url` whose
/// message says `says`.
fn assert_every_create_refused(server: &TestServer, urls: impl IntoIterator<Item = String>, says: &str) {
    let answers: Vec<_> = urls
        .into_iter()
        .map(|url| (server.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"]})), url))
        .collect();
    let accepted: Vec<_> =
        answers.iter().filter(|(created, _)| created.status != 400).map(|(c, url)| (url, c.status)).collect();
    assert!(accepted.is_empty(), "not refused: {accepted:?}");
    for (created, url) in &answers {
        let error = created.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "url", "{url}");
        assert!(error["message"].as_str().unwrap().contains(says), "{url}: {error}");
    }
}

#[test]
fn link_local_and_metadata_addresses_are_refused_at_creation_in_development_mode() {
    let server = TestServer::start();
    let urls = ["https://169.254.169.254/latest/meta-data/", "https://[fe80::1]/hook", "https://[fd00:ec2::254]/"];
    assert_every_create_refused(&server, urls.map(String::from), "in any mode");
    // Development mode still takes https to other hosts, private ones included (a
    // documentation address, never sent to: no event is published here).
    let kept = server.create_endpoint("https://192.0.2.1/hook");
    assert_eq!(server.delete(&format!("/v1/webhook_endpoints/{}", kept["id"].as_str().unwrap())).status, 200);
}

// The connect-time check of link-local, metadata and IPv6 forms of private addresses is
// `TargetPolicy::address_allowed`, unit-tested in `target_policy.rs`: an integration test
// of it would dial an outside address if the check ever broke, and tests only ever reach
// 127.0.0.1 (the loopback case above runs the same check end to end).
