//! API keys and modes.

use serde_json::json;

use crate::common::{LIVE_KEY, TEST_KEY, TestServer};

#[test]
fn a_missing_key_is_401_before_anything_else_is_looked_at() {
    let server = TestServer::start();
    // Even with a malformed body, on an unknown route, or with a bad method.
    for (method, path) in [
        ("GET", "/v1/webhook_endpoints"),
        ("POST", "/v1/webhook_endpoints"),
        ("GET", "/v1/no_such_route"),
        ("PUT", "/v1/webhook_endpoints"),
    ] {
        let resp = server.req(method, path).no_key().raw("{not json", "application/json").send();
        resp.assert_error(401, "authentication_error", "api_key_missing");
    }
}

#[test]
fn an_unknown_key_is_401_and_the_message_does_not_echo_it() {
    let server = TestServer::start();
    let wrong = "vk_test_thisKeyDoesNotExist_9876";
    let resp = server.req("GET", "/v1/webhook_endpoints").key(wrong).send();
    let error = resp.assert_error(401, "authentication_error", "api_key_invalid");
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains("thisKeyDoesNotExist"), "{message}");
    assert!(message.contains("9876"), "shows the last characters to help: {message}");

    let resp = server.req("GET", "/v1/webhook_endpoints").no_key().header("authorization", "Token abc").send();
    resp.assert_error(401, "authentication_error", "api_key_invalid");
}

#[test]
fn basic_auth_with_the_key_as_user_name_works_like_curl_u() {
    use base64::Engine;
    let server = TestServer::start();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{TEST_KEY}:"));
    let resp =
        server.req("GET", "/v1/webhook_endpoints").no_key().header("authorization", &format!("Basic {basic}")).send();
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[test]
fn a_key_never_sees_the_other_modes_objects() {
    let server = TestServer::start();
    let test_endpoint = server.create_endpoint("https://example.com/test");
    assert_eq!(test_endpoint["livemode"], false);
    let id = test_endpoint["id"].as_str().unwrap();

    let live = |method: &str, path: &str| server.req(method, path).key(LIVE_KEY);
    let live_endpoint = live("POST", "/v1/webhook_endpoints")
        .json(&json!({"url": "https://example.com/live", "enabled_events": ["*"]}))
        .send();
    assert_eq!(live_endpoint.status, 200);
    assert_eq!(live_endpoint.body["livemode"], true);

    let path = format!("/v1/webhook_endpoints/{id}");
    live("GET", &path).send().assert_error(404, "invalid_request_error", "resource_missing");
    live("POST", &path).json(&json!({"description": "hijack"})).send().assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    live("DELETE", &path).send().assert_error(404, "invalid_request_error", "resource_missing");

    let live_list = live("GET", "/v1/webhook_endpoints").send();
    let ids: Vec<&str> = live_list.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [live_endpoint.body["id"].as_str().unwrap()]);
    // A cursor from the other mode is unknown here.
    live("GET", &format!("/v1/webhook_endpoints?starting_after={id}")).send().assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );

    // The test key still sees its own endpoint, untouched.
    let own = server.get(&path);
    assert_eq!(own.status, 200);
    assert_eq!(own.body["description"], serde_json::Value::Null);
}
