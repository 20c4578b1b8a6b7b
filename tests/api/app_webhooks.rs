//! The app-scoped webhooks API of seed 004 (`/apps/:appId/webhooks`): the seed's requests
//! as written, the answers it documents, signed deliveries that the reference libraries
//! accept, and the same endpoints seen through the Stile API.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Resp, TestServer};

const WAIT: Duration = Duration::from_secs(15);
const VERIFIED: &str = "verification_session.verified";

/// The field names of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value.as_object().unwrap_or_else(|| panic!("an object: {value}")).keys().map(String::as_str).collect()
}

/// Asserts a successful answer of this dialect and returns its `data`.
fn data(resp: &Resp) -> &Value {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(keys(&resp.body), BTreeSet::from(["success", "data"]), "{}", resp.text);
    assert_eq!(resp.body["success"], true);
    &resp.body["data"]
}

/// Asserts an error of this dialect (`{success: false, error: {code, message}}`) with
/// this status and code.
fn assert_dialect_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"), "{}", resp.text);
    assert_eq!(resp.body["success"], false, "{}", resp.text);
    assert_eq!(keys(&resp.body["error"]), BTreeSet::from(["code", "message"]), "{}", resp.text);
    assert_eq!(resp.body["error"]["code"], code, "{}", resp.text);
    assert!(resp.body["error"]["message"].as_str().is_some_and(|m| m.len() > 10), "{}", resp.text);
}

/// Whether `text` is an ISO 8601 UTC time as the dialect writes it.
fn is_iso8601(text: &Value) -> bool {
    text.as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T')
}

#[test]
fn the_seeds_requests_get_the_documented_answers_and_signed_deliveries() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let app = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"}));
    let app_id = app.body["id"].as_str().unwrap().to_string();

    // Create: id, url, events, active, createdAt, secret.
    let created = server
        .req("POST", &format!("/apps/{app_id}/webhooks"))
        .json(&json!({"url": receiver.url("/hook"), "events": [VERIFIED]}))
        .send();
    let endpoint = data(&created).clone();
    assert_eq!(keys(&endpoint), BTreeSet::from(["id", "url", "events", "active", "createdAt", "secret"]));
    let uuid = endpoint["id"].as_str().unwrap().to_string();
    assert!(is_strict_uuid(&uuid), "a valid RFC 9562 UUID: {uuid}");
    assert_eq!(endpoint["events"], json!([VERIFIED]));
    assert_eq!(endpoint["active"], true);
    assert!(is_iso8601(&endpoint["createdAt"]), "{}", endpoint["createdAt"]);
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));

    // The same endpoint through the Stile API: its we_ id is the same 128 bits.
    let we_id = format!("we_{}", ulid::Ulid(uuid::Uuid::parse_str(&uuid).unwrap().as_u128()));
    let through_stile = server.req("GET", &format!("/v1/webhook_endpoints/{uuid}")).header("Stile-App", "acme").send();
    assert_eq!(through_stile.status, 200, "{}", through_stile.text);
    assert_eq!(through_stile.body["id"], we_id.as_str());
    assert_eq!(
        server.req("GET", &format!("/v1/webhook_endpoints/{we_id}")).header("Stile-App", "acme").send().status,
        200
    );
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{we_id}")).status, 404, "not the default application's");

    // List (by uid this time): no secret, with updatedAt.
    let listed = server.req("GET", "/apps/acme/webhooks").send();
    let items = data(&listed).as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(keys(&items[0]), BTreeSet::from(["id", "url", "events", "active", "createdAt", "updatedAt"]));
    assert_eq!(items[0]["id"], uuid.as_str());

    // Update: id, url, events, active, updatedAt; active false is the Stile API's disabled.
    let paused = server.req("PUT", &format!("/apps/acme/webhooks/{uuid}")).json(&json!({"active": false})).send();
    let paused = data(&paused);
    assert_eq!(keys(paused), BTreeSet::from(["id", "url", "events", "active", "updatedAt"]));
    assert_eq!(paused["active"], false);
    assert!(is_iso8601(&paused["updatedAt"]));
    let stile_view = server.req("GET", &format!("/v1/webhook_endpoints/{we_id}")).header("Stile-App", "acme").send();
    assert_eq!(stile_view.body["status"], "disabled");
    let resumed = server
        .req("PUT", &format!("/apps/acme/webhooks/{uuid}"))
        .json(&json!({"active": true, "events": ["*"], "url": receiver.url("/hook2")}))
        .send();
    assert_eq!(data(&resumed)["events"], json!(["*"]));
    assert_eq!(data(&resumed)["url"], receiver.url("/hook2").as_str());

    // A published event arrives signed; the reference libraries accept it.
    let event = server
        .req("POST", "/v1/events")
        .header("Stile-App", "acme")
        .json(&json!({"type": VERIFIED, "data": {"id": "vks_1"}}))
        .send();
    assert_eq!(event.status, 200, "{}", event.text);
    let got = receiver.wait_for("/hook2", 1, WAIT);
    assert!(got[0].stile_signature_valid(&secret).0);
    assert!(got[0].standard_signature_valid(&secret).0);
    got[0].verify_with_libraries(&secret).unwrap();

    // Rotate: only the new secret; the old one stops signing at once.
    let rotated = server.req("POST", &format!("/apps/acme/webhooks/{uuid}/rotate-secret")).send();
    let rotated = data(&rotated);
    assert_eq!(keys(rotated), BTreeSet::from(["secret"]));
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    server.req("POST", "/v1/events").header("Stile-App", "acme").json(&json!({"type": VERIFIED, "data": {}})).send();
    let got = receiver.wait_for("/hook2", 2, WAIT);
    assert_eq!(got[1].stile_signature_valid(&new_secret), (true, 1), "one signature, by the new secret");
    assert!(!got[1].standard_signature_valid(&secret).0, "the old secret no longer signs");
    got[1].verify_with_libraries(&new_secret).unwrap();
    if got[1].verify_with_libraries(&secret).is_ok_and(|checked| checked) {
        panic!("the libraries accepted the old secret");
    }

    // Test ping: the endpoint's answer, now.
    let ping = server.req("POST", &format!("/apps/acme/webhooks/{uuid}/test-ping")).send();
    let ping = data(&ping).clone();
    assert_eq!(
        keys(&ping),
        BTreeSet::from(["delivered", "statusCode", "durationMs", "error", "responseBody", "eventId", "deliveryId"]),
        "no second `success` inside `data`: {ping}"
    );
    assert_eq!(ping["delivered"], true, "{ping}");
    assert_eq!(ping["statusCode"], 200);
    assert!(ping["durationMs"].is_u64());
    assert_eq!(ping["error"], Value::Null);
    let pinged = receiver.wait_for("/hook2", 3, WAIT);
    assert_eq!(pinged[2].json()["type"], "webhook_endpoint.test");
    receiver.set("/hook2", Behaviour::Status(503));
    let failed_ping = server.req("POST", &format!("/apps/acme/webhooks/{uuid}/test-ping")).send();
    assert_eq!(data(&failed_ping)["delivered"], false);
    assert_eq!(data(&failed_ping)["statusCode"], 503);

    // Deliveries: newest first, a page at a time by cursor, filtered by status.
    server.wait_queue_empty(WAIT);
    let all = server.req("GET", &format!("/apps/acme/webhooks/{uuid}/deliveries")).send();
    let all = data(&all).clone();
    assert_eq!(keys(&all), BTreeSet::from(["deliveries", "nextCursor", "hasMore"]));
    let deliveries = all["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 4, "two events and two pings: {all}");
    assert_eq!(deliveries[0]["id"], ping_delivery_id(&failed_ping));
    assert_eq!(deliveries[0]["status"], "failed");
    assert!(is_iso8601(&deliveries[0]["createdAt"]));
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/apps/acme/webhooks/{uuid}/deliveries?limit=1&cursor={c}"),
            None => format!("/apps/acme/webhooks/{uuid}/deliveries?limit=1"),
        };
        let page = server.req("GET", &path).send();
        let page = data(&page).clone();
        walked.push(page["deliveries"][0]["id"].clone());
        match page["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(page["hasMore"], true);
                cursor = Some(next.to_string());
            }
            None => break,
        }
    }
    let ids: Vec<Value> = deliveries.iter().map(|d| d["id"].clone()).collect();
    for id in &ids {
        assert!(is_strict_uuid(id.as_str().unwrap()), "a valid RFC 9562 UUID: {id}");
    }
    assert_eq!(walked, ids, "the cursor walks the same list");
    let succeeded = server.req("GET", &format!("/apps/acme/webhooks/{uuid}/deliveries?status=succeeded")).send();
    assert_eq!(data(&succeeded)["deliveries"].as_array().unwrap().len(), 3);
    let bad_cursor = server.req("GET", &format!("/apps/acme/webhooks/{uuid}/deliveries?cursor=nope")).send();
    assert_dialect_error(&bad_cursor, 400, "PARAMETER_INVALID");
    // A well-formed cursor that names no delivery of this endpoint (its own id, say).
    let foreign = server.req("GET", &format!("/apps/acme/webhooks/{uuid}/deliveries?cursor={uuid}")).send();
    assert_dialect_error(&foreign, 400, "PARAMETER_INVALID");
    let bad_status = server.req("GET", &format!("/apps/acme/webhooks/{uuid}/deliveries?status=lost")).send();
    assert_dialect_error(&bad_status, 400, "PARAMETER_INVALID");

    // Delete: 204 and no body; then it is gone through both dialects.
    let deleted = server.req("DELETE", &format!("/apps/acme/webhooks/{uuid}")).send();
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    assert_eq!(data(&server.req("GET", "/apps/acme/webhooks").send()), &json!([]));
    let again = server.req("DELETE", &format!("/apps/acme/webhooks/{uuid}")).send();
    assert_dialect_error(&again, 404, "RESOURCE_MISSING");
    let stile_gone = server.req("GET", &format!("/v1/webhook_endpoints/{we_id}")).header("Stile-App", "acme").send();
    assert_eq!(stile_gone.status, 404);
}

/// Whether `text` is a UUID as a strict validator takes one (zod's `.uuid()`, RFC 9562):
/// lower- or upper-case hex in 8-4-4-4-12 groups, a version from 1 to 8, and the variant
/// bits `10` (8, 9, a or b). Written here from the RFC, not with the `uuid` crate, which
/// parses any 128 bits.
fn is_strict_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            14 => (b'1'..=b'8').contains(b),
            19 => b"89abAB".contains(b),
            _ => b.is_ascii_hexdigit(),
        })
}

/// The delivery id a test-ping answer names.
fn ping_delivery_id(resp: &Resp) -> Value {
    resp.body["data"]["deliveryId"].clone()
}

#[test]
fn every_error_is_in_the_dialects_envelope_with_the_right_status() {
    let server = TestServer::start();
    server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"}));
    let good = json!({"url": "https://example.com/hook", "events": [VERIFIED]});

    assert_dialect_error(&server.req("GET", "/apps/acme/webhooks").no_key().send(), 401, "API_KEY_MISSING");
    assert_dialect_error(&server.req("GET", "/apps/acme/webhooks").key("vk_test_wrong").send(), 401, "API_KEY_INVALID");
    assert_dialect_error(&server.req("GET", "/apps/nope/webhooks").send(), 404, "RESOURCE_MISSING");
    // The path names the application; a Stile-App header is not this API's.
    let header = server.req("GET", "/apps/acme/webhooks").header("Stile-App", "nope").send();
    assert_eq!(header.status, 200, "{}", header.text);
    assert_dialect_error(
        &server.req("GET", &format!("/apps/{}/webhooks", "x".repeat(5000))).send(),
        404,
        "RESOURCE_MISSING",
    );
    for body in [
        json!({"url": "https://example.com/hook"}),
        json!({"events": [VERIFIED]}),
        json!({"url": "https://example.com/hook", "events": []}),
        json!({"url": "https://example.com/hook", "events": ["no.such_type"]}),
        json!({"url": "ftp://example.com/hook", "events": [VERIFIED]}),
        json!({"url": "https://example.com/hook", "events": [VERIFIED], "description": "not in this dialect"}),
        json!({"url": 7, "events": [VERIFIED]}),
    ] {
        let resp = server.req("POST", "/apps/acme/webhooks").json(&body).send();
        assert_eq!(resp.status, 400, "{body}: {}", resp.text);
        assert_eq!(resp.body["success"], false, "{body}: {}", resp.text);
        assert!(resp.body["error"]["code"].as_str().unwrap().starts_with("PARAMETER_"), "{}", resp.text);
    }
    let not_json = server.req("POST", "/apps/acme/webhooks").raw("{nope", "application/json").send();
    assert_dialect_error(&not_json, 400, "INVALID_JSON");
    let missing = "00000000-0000-0000-0000-000000000000";
    let put = server.req("PUT", &format!("/apps/acme/webhooks/{missing}")).json(&json!({"active": true})).send();
    assert_dialect_error(&put, 404, "RESOURCE_MISSING");
    let not_uuid = server.req("POST", "/apps/acme/webhooks/not-a-uuid/test-ping").send();
    assert_dialect_error(&not_uuid, 404, "RESOURCE_MISSING");
    let created = data(&server.req("POST", "/apps/acme/webhooks").json(&good).send()).clone();
    let uuid = created["id"].as_str().unwrap();
    let bad_update = server.req("PUT", &format!("/apps/acme/webhooks/{uuid}")).json(&json!({"active": "yes"})).send();
    assert_eq!(bad_update.status, 400, "{}", bad_update.text);
    assert_eq!(bad_update.body["success"], false);
    let wrong_method = server.req("PATCH", &format!("/apps/acme/webhooks/{uuid}")).json(&json!({})).send();
    assert_dialect_error(&wrong_method, 405, "METHOD_NOT_ALLOWED");
    assert!(wrong_method.header("allow").is_some_and(|a| a.contains("PUT")), "{:?}", wrong_method.headers);
    assert_dialect_error(&server.req("GET", "/apps/acme/nothing-here").send(), 404, "ROUTE_NOT_FOUND");
    // Nothing was written by the refused requests.
    assert_eq!(data(&server.req("GET", "/apps/acme/webhooks").send()).as_array().unwrap().len(), 1);
}
