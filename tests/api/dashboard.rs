//! The dashboard, end to end in headless Chromium: the real server, a real receiver that
//! checks signatures, and a browser clicking through the pages.

use std::time::Duration;

use serde_json::json;

use crate::common::browser::{Page, in_browser};
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TEST_KEY, TestServer, eventually};

async fn signed_in(page: &Page, server: &TestServer, hash: &str) {
    page.open(&format!("{}/", server.base)).await;
    page.sign_in(TEST_KEY).await;
    page.wait_text("#mode-badge", "TEST").await;
    page.open(&format!("{}/{hash}", server.base)).await;
}

#[test]
fn sign_in_rejects_a_wrong_key_shows_the_mode_and_signs_out() {
    let server = TestServer::start();
    in_browser("sign_in", move |page| async move {
        page.open(&format!("{}/", server.base)).await;
        page.find("#api-key").await;
        assert_signed_out_chrome_is_hidden(&page).await;
        // The help names the command in code, not in literal backticks.
        let help = page.text(".signin").await;
        assert!(help.contains("stile keys create --mode test") && !help.contains('`'), "{help}");
        // Not a key at all, then a well-formed key the server does not know.
        page.sign_in("hello").await;
        page.wait_text(".signin .error", "keys start with vk_test_ or vk_live_").await;
        page.sign_in("vk_test_not_a_real_key_000000").await;
        page.wait_text(".signin .error", "Invalid API key provided").await;
        assert_eq!(page.script("return sessionStorage.getItem('stile.api_key')").await, json!(null));

        page.sign_in(TEST_KEY).await;
        page.wait_text("#mode-badge", "TEST").await;
        page.wait_text("main h1", "Overview").await;
        // A first-time user is told what to do next.
        page.wait_text(".empty", "stile trigger verification_session.verified").await;
        assert_eq!(page.script("return sessionStorage.getItem('stile.api_key')").await, json!(TEST_KEY));
        assert_eq!(page.script("return localStorage.length").await, json!(0), "the key is never kept in localStorage");

        page.click_button("Sign out").await;
        page.find("#api-key").await;
        assert_eq!(page.script("return sessionStorage.getItem('stile.api_key')").await, json!(null));
        assert_signed_out_chrome_is_hidden(&page).await;
    });
}

/// Signed out, nothing but the sign-in form shows: not the navigation, the application
/// menu or "Sign out" (checked as the browser draws them, not by their `hidden` flags).
async fn assert_signed_out_chrome_is_hidden(page: &Page) {
    for css in ["#nav", "#account", "#sign-out", "#app-switcher"] {
        let shown = page.find(css).await.is_displayed().await.unwrap();
        assert!(!shown, "{css} is drawn on the sign-in page");
    }
}

#[test]
fn endpoints_are_created_tested_inspected_filtered_and_resent_in_the_dashboard() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    in_browser("endpoints", move |page| async move {
        signed_in(&page, &server, "#/endpoints").await;
        page.wait_text(".empty", "No endpoints yet").await;

        // An invalid URL gets the API's own message.
        page.click_button("New endpoint").await;
        page.type_into("input[name=url]", "ftp://example.com/hook").await;
        page.click_button("Create endpoint").await;
        page.wait_text("form .error", "url").await;

        // Created: the secret is shown once, and it is the secret deliveries are signed with.
        page.type_into("input[name=url]", &receiver.url("/hooks")).await;
        page.type_into("input[name=description]", "Local receiver").await;
        page.click_button("Create endpoint").await;
        let secret = page.text("[data-test=secret]").await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        let endpoints = server.get("/v1/webhook_endpoints").body;
        let endpoint_id = endpoints["data"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(endpoints["data"][0]["description"], "Local receiver");
        page.wait_count("table a.url", 1).await;

        // Its page: send a test and see the result and the delivery row.
        page.find(".secret-once a").await.click().await.unwrap();
        page.wait_text("main h1", &receiver.url("/hooks")).await;
        assert!(page.all("[data-test=secret]").await.is_empty(), "the secret is not shown again");
        page.wait_text(".empty", "No deliveries yet").await;
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let pings = receiver.wait_for("/hooks", 1, Duration::from_secs(10));
        assert!(pings[0].stile_signature_valid(&secret).0, "the ping is signed with the secret shown");
        page.wait_count("[data-test=delivery-row]", 1).await;

        // Live: a published event shows up without a reload.
        let event = server.publish("verification_session.verified", json!({"id": "vks_live"}));
        page.wait_count("[data-test=delivery-row]", 2).await;
        page.wait_text("[data-test=delivery-row]", "verification_session.verified").await;
        receiver.wait_for("/hooks", 2, Duration::from_secs(10));

        // Filter by status.
        page.find("#delivery-status").await.select_by_value("failed").await.unwrap();
        page.wait_text(".empty", "No failed deliveries").await;
        page.find("#delivery-status").await.select_by_value("succeeded").await.unwrap();
        page.wait_count("[data-test=delivery-row]", 2).await;

        // Detail: the request sent (signature header, body) and the response.
        let first_row_link = page.find("[data-test=delivery-row] a").await;
        first_row_link.click().await.unwrap();
        page.wait_text("main h1", "attempt 1").await;
        let detail = page.text("main").await;
        assert!(detail.contains("stile-signature"), "{detail}");
        assert!(detail.contains("webhook-signature"), "{detail}");
        assert!(detail.contains("HTTP 200"), "{detail}");

        // Resend the published event from its delivery.
        page.open(&format!("{}/#/events/{}", server.base, event["id"].as_str().unwrap())).await;
        page.wait_count("main table tbody tr", 1).await;
        page.click_button("Resend").await;
        let rounds = eventually(Duration::from_secs(10), || server.deliveries(&endpoint_id).len() >= 3);
        assert!(rounds, "the resend made a new delivery");
        page.wait_count("main table tbody tr", 2).await;
        receiver.wait_for("/hooks", 3, Duration::from_secs(10));

        // Disable, then delete with confirmation.
        page.open(&format!("{}/#/endpoints/{endpoint_id}", server.base)).await;
        page.click_button("Disable").await;
        page.wait_text(".view-head .pill", "disabled").await;
        assert_eq!(server.get(&format!("/v1/webhook_endpoints/{endpoint_id}")).body["status"], "disabled");
        page.click_button("Delete").await;
        page.find("dialog[open] [data-test=confirm]").await.click().await.unwrap();
        page.wait_text(".empty", "No endpoints yet").await;
        assert_eq!(server.get(&format!("/v1/webhook_endpoints/{endpoint_id}")).status, 404);
    });
}

#[test]
fn the_overview_charts_outcomes_and_lists_failures_at_desktop_and_phone_widths() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(503));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    server.create_endpoint(&receiver.url("/ok"));
    server.create_endpoint(&receiver.url("/down"));
    let event = server.publish("verification_session.verified", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(10));
    in_browser("overview", move |page| async move {
        signed_in(&page, &server, "#/overview").await;
        page.wait_text(".chart-figure figcaption", "2 attempts: 1 succeeded, 1 failed (50% success)").await;
        assert_eq!(page.all("svg.chart rect.bar-ok").await.len(), 1);
        assert_eq!(page.all("svg.chart rect.bar-failed").await.len(), 1);
        // One bucket with attempts: its success rate is a dot, with no line to nowhere.
        assert_eq!(page.all("svg.chart circle.rate-dot").await.len(), 1);
        assert!(page.all("svg.chart polyline.rate-line").await.is_empty());
        page.wait_text("main table", "HTTP 503").await;
        page.docs_screenshot("dashboard").await;

        // Phone width: nothing wider than the screen.
        page.client.set_window_size(390, 844).await.unwrap();
        for hash in ["#/overview", "#/endpoints", "#/deliveries", "#/events", "#/sessions"] {
            page.open(&format!("{}/{hash}", server.base)).await;
            page.find("main .view-head").await;
            let overflow = page.script("return document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().unwrap() <= 0, "{hash} overflows a phone screen by {overflow}px");
        }
    });
}

#[test]
fn a_verification_session_is_driven_through_its_states_and_its_events_arrive() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    server.create_endpoint(&receiver.url("/hooks"));
    in_browser("sessions", move |page| async move {
        signed_in(&page, &server, "#/sessions").await;
        page.wait_text(".empty", "No sessions yet").await;
        page.type_into("input[name=client_reference_id]", "user_42").await;
        page.click_button("Create session").await;
        page.wait_count("[data-test=session-row]", 1).await;
        page.wait_count("[data-test=session-event]", 1).await;

        page.find("[data-test=session-row] button[data-action=process]").await.click().await.unwrap();
        page.wait_text("[data-test=session-row] .pill", "processing").await;
        page.find("[data-test=session-row] button[data-action=verify]").await.click().await.unwrap();
        page.wait_text("[data-test=session-row] .pill", "verified").await;
        page.wait_count("[data-test=session-event]", 3).await;
        let events = page.text("main section").await;
        for t in ["verification_session.created", "verification_session.processing", "verification_session.verified"] {
            assert!(events.contains(t), "{t} missing from {events}");
        }
        assert!(
            page.all("[data-test=session-row] button[data-action]").await.is_empty(),
            "a verified session has no moves left"
        );
        let sessions = server.get("/v1/verification_sessions").body;
        assert_eq!(sessions["data"][0]["status"], "verified");
        assert_eq!(sessions["data"][0]["client_reference_id"], "user_42");
        // The receiver got all three, signed.
        receiver.wait_for("/hooks", 3, Duration::from_secs(10));

        // The events page filters by session.
        let session_id = sessions["data"][0]["id"].as_str().unwrap().to_string();
        page.open(&format!("{}/#/events", server.base)).await;
        page.type_into("#filter-session", &session_id).await;
        page.click_button("Filter").await;
        page.wait_count("[data-test=event-row]", 3).await;
        page.type_into("#filter-session", "vks_nobody").await;
        page.click_button("Filter").await;
        page.wait_text(".empty", "No events match").await;
        // And searches by content.
        page.type_into("#filter-session", "").await;
        page.type_into("#filter-content", r#"{"type": "verification_session.verified"}"#).await;
        page.click_button("Filter").await;
        page.wait_count("[data-test=event-row]", 1).await;
    });
}

#[test]
fn endpoints_are_edited_and_rotated_and_deliveries_paginate_and_retry_now() {
    let receiver = Receiver::start();
    receiver.set("/hooks", Behaviour::Status(503));
    // The first retry is an hour away, so only "Retry now" can make it happen in the test.
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(3600)]);
    let created = server.create_endpoint(&receiver.url("/hooks"));
    let endpoint_id = created["id"].as_str().unwrap().to_string();
    let old_secret = created["secret"].as_str().unwrap().to_string();
    let failing = server.publish("verification_session.created", json!({"id": "vks_retry"}));
    let retrying = eventually(Duration::from_secs(10), || {
        server.deliveries(&endpoint_id).iter().any(|d| d["status"] == "retrying")
    });
    assert!(retrying, "the first attempt failed and a retry is scheduled");
    receiver.set("/hooks", Behaviour::Ok);
    for i in 0..24 {
        server.publish("verification_session.processing", json!({"id": format!("vks_{i}")}));
    }
    let all = eventually(Duration::from_secs(20), || {
        server.deliveries(&endpoint_id).iter().filter(|d| d["status"] == "succeeded").count() == 24
    });
    assert!(all, "24 deliveries succeeded");
    in_browser("edit_rotate_paginate", move |page| async move {
        signed_in(&page, &server, &format!("#/endpoints/{endpoint_id}")).await;

        // 26 attempts: pages of 20, older and back.
        page.wait_count("[data-test=delivery-row]", 20).await;
        page.click_button("Older →").await;
        page.wait_text(".pager", "Newer").await;
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while page.all("[data-test=delivery-row]").await.len() != 6 {
            assert!(std::time::Instant::now() < end, "the second page has the 6 oldest attempts");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let oldest = page.text("main table").await;
        assert!(oldest.contains("verification_session.created"), "the oldest attempts: {oldest}");
        page.click_button("← Newer").await;
        page.wait_count("[data-test=delivery-row]", 20).await;

        // Retry now: the retrying attempt's retry goes at once and succeeds.
        page.find("#delivery-status").await.select_by_value("retrying").await.unwrap();
        page.wait_text("[data-test=delivery-row]", "HTTP 503").await;
        page.find("[data-test=delivery-row] a").await.click().await.unwrap();
        page.wait_text("main h1", "attempt 1").await;
        page.click_button("Retry now").await;
        let event_id = failing["id"].as_str().unwrap().to_string();
        server.wait_settled(&event_id, Duration::from_secs(10));
        let attempts = server.deliveries(&endpoint_id);
        let second = attempts.iter().find(|d| d["event_id"] == event_id.as_str() && d["attempt"] == 2).unwrap();
        assert_eq!(second["status"], "succeeded");

        // Edit: description, one event type instead of all, metadata.
        page.open(&format!("{}/#/endpoints/{endpoint_id}", server.base)).await;
        page.click_button("Edit").await;
        // Kayle's names are shown as the names of the built-in types, not as types.
        let verified = page.wait_text("[data-type='verification_session.verified']", "Kayle's name").await;
        assert!(verified.contains("verification.session.succeeded"), "{verified}");
        let offered: Vec<String> = page
            .script("return [...document.querySelectorAll('[data-test=type-choice]')].map((c) => c.dataset.type)")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert!(offered.iter().all(|t| !t.starts_with("verification.session.")), "{offered:?}");
        page.type_into("input[name=description]", "Edited in the dashboard").await;
        page.find("input[name=all_events]").await.click().await.unwrap();
        page.find("input[name=event][value='verification_session.verified']").await.click().await.unwrap();
        page.type_into("textarea[name=metadata]", "team=identity\nowner=ada").await;
        page.type_into("input[name=name]", "Identity hooks").await;
        page.type_into("input[name=labels]", "billing, team:identity").await;
        page.type_into("input[name=rate_limit]", "25").await;
        page.type_into("input[name=max_in_flight]", "3").await;
        page.click_button("Save").await;
        page.wait_text(".facts", "Edited in the dashboard").await;
        page.wait_text(".view-head h1", "Identity hooks").await;
        let endpoint = server.get(&format!("/v1/webhook_endpoints/{endpoint_id}")).body;
        assert_eq!(endpoint["description"], "Edited in the dashboard");
        assert_eq!(endpoint["enabled_events"], json!(["verification_session.verified"]));
        assert_eq!(endpoint["metadata"], json!({"team": "identity", "owner": "ada"}));
        assert_eq!(endpoint["name"], "Identity hooks");
        assert_eq!(endpoint["labels"], json!(["billing", "team:identity"]));
        assert_eq!((endpoint["rate_limit"].clone(), endpoint["max_in_flight"].clone()), (json!(25), json!(3)));
        assert_eq!(page.text("[data-test=flow]").await, "25 a second, 3 at once");
        // A label leads to the endpoints carrying it; another endpoint without it is not listed.
        server.create_endpoint("http://127.0.0.1:9/unlabelled");
        page.find(".facts [data-test=label]").await.click().await.unwrap();
        page.wait_text("[data-test=label-filter]", "billing").await;
        page.wait_exactly("table a.url", 1).await;
        assert!(page.text("main table").await.contains("Identity hooks"));
        page.open(&format!("{}/#/endpoints/{endpoint_id}", server.base)).await;
        page.wait_text(".view-head h1", "Identity hooks").await;

        // Rotate with 24 h of grace: both secrets sign the next delivery.
        page.click_button("Rotate secret").await;
        page.find("select[name=expires_in]").await.select_by_value("24h").await.unwrap();
        page.click_button("Rotate").await;
        let new_secret = page.text("[data-test=secret]").await;
        assert!(new_secret.starts_with("whsec_") && new_secret != old_secret);
        let before = receiver.received("/hooks").len();
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let pings = receiver.wait_for("/hooks", before + 1, Duration::from_secs(10));
        let ping = pings.last().unwrap();
        assert_eq!(ping.stile_signature_valid(&new_secret), (true, 2));
        assert_eq!(ping.stile_signature_valid(&old_secret), (true, 2));
    });
}

#[test]
fn a_failed_deliverys_earlier_attempts_show_as_failed_with_no_retry_to_come() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| {
        c.delivery.retry_schedule = vec![Duration::from_millis(50), Duration::from_millis(50)];
    });
    let id = server.create_endpoint(&receiver.url("/down"))["id"].as_str().unwrap().to_string();
    let event = server.publish("verification_session.created", json!({"id": "vks_down"}));
    server.wait_settled(event["id"].as_str().unwrap(), Duration::from_secs(10));
    in_browser("earlier_attempts_failed", move |page| async move {
        signed_in(&page, &server, &format!("#/endpoints/{id}")).await;
        page.wait_count("[data-test=delivery-row]", 3).await;
        for row in page.all("[data-test=delivery-row]").await {
            let text = row.text().await.unwrap();
            assert!(text.contains("failed") && !text.contains("retrying"), "{text}");
        }
        let next_retries = page
            .script("return [...document.querySelectorAll('[data-test=delivery-row]')].map((r) => r.lastElementChild.textContent)")
            .await;
        assert_eq!(next_retries, json!(["—", "—", "—"]), "no retry is to come");
        // One attempt: its status once, not again as its error.
        page.find("[data-test=delivery-row] a").await.click().await.unwrap();
        page.wait_text("[data-test=response-status]", "HTTP 500").await;
        assert!(page.all("[data-test=response-error]").await.is_empty(), "{}", page.text("main").await);
    });
}

#[test]
fn the_deliveries_page_lists_every_endpoints_attempts_and_filters_them() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(503));
    // Retries an hour away: the failed attempts stay `retrying`, their retries pending.
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(3600)]);
    let up = server.create_endpoint(&receiver.url("/up"))["id"].as_str().unwrap().to_string();
    let down = server.create_endpoint(&receiver.url("/down"))["id"].as_str().unwrap().to_string();
    for n in 0..3 {
        server.publish("verification_session.created", json!({"id": format!("vks_{n}")}));
    }
    let made = eventually(Duration::from_secs(10), || {
        server.deliveries(&up).len() == 3
            && server.deliveries(&down).iter().filter(|d| d["status"] == "retrying").count() == 3
    });
    assert!(made);
    in_browser("all_deliveries", move |page| async move {
        signed_in(&page, &server, "#/overview").await;
        page.find("#nav a[data-section=deliveries]").await.click().await.unwrap();
        page.wait_text("main h1", "Deliveries").await;
        // 3 to the healthy endpoint, 3 failed to the other and their 3 retries, waiting.
        page.wait_exactly("[data-test=delivery-row]", 9).await;
        page.docs_screenshot("deliveries").await;
        assert_eq!(
            page.find("#nav a[data-section=deliveries]").await.attr("aria-current").await.unwrap().as_deref(),
            Some("page")
        );
        page.find("#filter-status").await.select_by_value("retrying").await.unwrap();
        page.click_button("Filter").await;
        page.wait_exactly("[data-test=delivery-row]", 3).await;
        for row in page.all("[data-test=delivery-row]").await {
            let text = row.text().await.unwrap();
            assert!(text.contains("retrying") && text.contains("HTTP 503") && text.contains("/down"), "{text}");
        }
        page.find("#filter-status").await.select_by_value("").await.unwrap();
        page.find("#filter-endpoint").await.select_by_value(&up).await.unwrap();
        page.click_button("Filter").await;
        // The list before had 3 rows too (all to /down): wait for the new one to show.
        page.wait_text("main table", "/up").await;
        page.wait_exactly("[data-test=delivery-row]", 3).await;
        assert!(!page.text("main table").await.contains("/down"));
        // A row leads to the attempt.
        page.find("[data-test=delivery-row] td:nth-child(3) a").await.click().await.unwrap();
        page.wait_text("main h1", "verification_session.created · attempt 1").await;
        page.wait_text("[data-test=response-status]", "HTTP 200").await;
    });
}

#[test]
fn an_endpoint_disabled_by_stile_shows_why() {
    let receiver = Receiver::start();
    receiver.set("/gone", Behaviour::Status(410));
    let server = TestServer::start();
    let id = server.create_endpoint(&receiver.url("/gone"))["id"].as_str().unwrap().to_string();
    server.publish("verification_session.created", json!({"id": "vks_1"}));
    let disabled = eventually(Duration::from_secs(10), || {
        server.get(&format!("/v1/webhook_endpoints/{id}")).body["status"] == "disabled"
    });
    assert!(disabled);
    in_browser("disabled_reason", move |page| async move {
        signed_in(&page, &server, &format!("#/endpoints/{id}")).await;
        page.wait_text("[data-test=disabled-reason]", "the endpoint answered 410 Gone").await;
        page.wait_text(".view-head", "disabled").await;
    });
}

#[test]
fn operational_endpoints_are_made_in_settings_and_an_endpoint_shows_what_was_told_about_it() {
    let receiver = Receiver::start();
    receiver.set("/gone", Behaviour::Status(410));
    let server = TestServer::start();
    in_browser("operational_webhooks", move |page| async move {
        signed_in(&page, &server, "#/settings").await;
        page.wait_text("[aria-labelledby=ops-title] .empty", "No operational endpoints yet").await;
        page.wait_text("[aria-labelledby=told-title] .empty", "Nothing told yet").await;

        // Made here, hearing only disablings: its secret shown once.
        page.click_button("New operational endpoint").await;
        page.type_into("input[name=url]", &receiver.url("/ops")).await;
        page.type_into("input[name=name]", "Ops desk").await;
        page.find("input[name=all]").await.click().await.unwrap();
        page.find("input[value='endpoint.disabled']").await.click().await.unwrap();
        page.click_button("Create").await;
        let secret = page.text("[data-test=secret]").await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        page.wait_text("[data-test=ops-endpoint]", "Ops desk").await;
        let listed = server.get("/v1/operational_webhook_endpoints").body;
        assert_eq!(listed["data"][0]["enabled_events"], json!(["endpoint.disabled"]), "{listed}");

        // A customer's endpoint that answers 410 is disabled by stile: the operational
        // endpoint hears it, signed with the secret shown, and the endpoint's page says so.
        let id = server.create_endpoint(&receiver.url("/gone"))["id"].as_str().unwrap().to_string();
        server.publish("verification_session.created", json!({"id": "vks_1"}));
        let told = receiver.wait_for("/ops", 1, Duration::from_secs(10));
        assert_eq!(told[0].json()["type"], "endpoint.disabled");
        assert!(told[0].stile_signature_valid(&secret).0);
        page.open(&format!("{}/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=ops-about]", "endpoint.disabled").await;
        page.wait_text("[data-test=ops-about-event]", "410 Gone").await;

        // Settings lists it among what was told, linked to the endpoint.
        page.open(&format!("{}/#/settings", server.base)).await;
        page.wait_text("[data-test=ops-told]", "endpoint.disabled").await;
        let link = page.find("[data-test=ops-told] a").await.attr("href").await.unwrap().unwrap_or_default();
        assert_eq!(link, format!("#/endpoints/{id}"));

        // Disabled from here, then deleted.
        page.click_button("Disable").await;
        page.wait_text("[data-test=ops-endpoint]", "disabled").await;
        page.click_button("Delete").await;
        page.find("[data-test=confirm]").await.click().await.unwrap();
        page.wait_text("[aria-labelledby=ops-title] .empty", "No operational endpoints yet").await;
    });
}

#[test]
fn a_content_filter_is_tried_on_an_example_and_saved_from_the_endpoint_form() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    in_browser("content_filter", move |page| async move {
        signed_in(&page, &server, "#/endpoints").await;
        page.click_button("New endpoint").await;
        page.type_into("input[name=url]", &receiver.url("/gold")).await;
        // Tried on the verified type's example (the form offers it first among those with one).
        page.find("select[name=filter_try_on] option[value='verification_session.verified']")
            .await
            .click()
            .await
            .unwrap();
        page.type_into("textarea[name=filter]", r#"{"data": {"status": "failed"}}"#).await;
        page.click_button("Try it").await;
        page.wait_text("[data-test=filter-result]", "It does not match").await;
        page.type_into("textarea[name=filter]", r#"{"data": {"status": {"$in": ["verified"]}}, "livemode": false}"#)
            .await;
        page.click_button("Try it").await;
        page.wait_text("[data-test=filter-result]", "It matches").await;
        page.type_into("textarea[name=filter]", r#"{"data": {"$gtx": 1}}"#).await;
        page.click_button("Try it").await;
        page.wait_text("[data-test=filter-result]", "unknown operator").await;
        page.type_into("textarea[name=filter]", r#"{"data.status": "verified"}"#).await;
        page.click_button("Create endpoint").await;
        page.find("[data-test=secret]").await;
        let id = server.get("/v1/webhook_endpoints").body["data"][0]["id"].as_str().unwrap().to_string();
        page.open(&format!("{}/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=filter]", "verified").await;

        // Only what it takes arrives.
        server.publish("verification_session.failed", json!({"id": "vks_1", "status": "failed"}));
        server.publish("verification_session.verified", json!({"id": "vks_2", "status": "verified"}));
        let received = receiver.wait_for("/gold", 1, Duration::from_secs(10));
        server.wait_queue_empty(Duration::from_secs(10));
        assert_eq!(receiver.count("/gold"), 1);
        assert_eq!(received[0].json()["data"]["id"], "vks_2");
    });
}

#[test]
fn a_transformation_is_tried_and_saved_from_the_endpoint_form_and_shown_on_its_attempts() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    in_browser("transformation", move |page| async move {
        signed_in(&page, &server, "#/endpoints").await;
        page.click_button("New endpoint").await;
        page.type_into("input[name=url]", &receiver.url("/shaped")).await;
        page.find("select[name=transformation_try_on] option[value='verification_session.verified']")
            .await
            .click()
            .await
            .unwrap();
        page.type_into("textarea[name=transformation]", "function handler(w) { return w").await;
        page.find("[data-test=transformation-try]").await.click().await.unwrap();
        page.wait_text("[data-test=transformation-result]", "SyntaxError").await;
        let code = "function handler(w) { w.payload = {shaped: w.eventType}; w.method = 'PUT'; return w; }";
        page.type_into("textarea[name=transformation]", code).await;
        page.find("[data-test=transformation-try]").await.click().await.unwrap();
        page.wait_text("[data-test=transformation-result]", "\"shaped\": \"verification_session.verified\"").await;
        page.wait_text("[data-test=transformation-result]", "PUT").await;
        page.click_button("Create endpoint").await;
        page.find("[data-test=secret]").await;
        let id = server.get("/v1/webhook_endpoints").body["data"][0]["id"].as_str().unwrap().to_string();
        page.open(&format!("{}/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=transformation]", "Version 1, enabled").await;

        server.publish("verification_session.verified", json!({"id": "vks_1"}));
        let received = receiver.wait_for("/shaped", 1, Duration::from_secs(10));
        assert_eq!(
            (received[0].method.as_str(), received[0].json()),
            ("PUT", json!({"shaped": "verification_session.verified"}))
        );
        server.wait_queue_empty(Duration::from_secs(10));
        let attempt = server.deliveries(&id)[0]["id"].as_str().unwrap().to_string();
        page.open(&format!("{}/#/endpoints/{id}/deliveries/{attempt}", server.base)).await;
        page.wait_text("[data-test=transformed]", "version 1").await;
    });
}

#[test]
fn failed_events_are_filtered_and_recovered_from_the_dashboard() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(20)]);
    server.create_endpoint_for(&receiver.url("/up"), &["verification_session.created"]);
    let down = server.create_endpoint_for(&receiver.url("/down"), &["verification_session.processing"]);
    let (down_id, secret) = (down["id"].as_str().unwrap().to_string(), down["secret"].as_str().unwrap().to_string());
    let delivered =
        server.publish("verification_session.created", json!({"id": "vks_ok"}))["id"].as_str().unwrap().to_string();
    let failed: Vec<String> = (0..2)
        .map(|n| {
            let event = server.publish("verification_session.processing", json!({ "id": format!("vks_{n}") }));
            event["id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in failed.iter().chain([&delivered]) {
        server.wait_settled(id, Duration::from_secs(10));
    }
    assert_eq!(receiver.received("/down").len(), 4, "2 events, 2 attempts each, all failed");

    in_browser("recover", move |page| async move {
        signed_in(&page, &server, "#/events").await;
        page.wait_count("[data-test=event-row]", 3).await;

        // The delivery filter: not delivered everywhere yet, then delivered everywhere.
        page.find("#filter-delivery").await.select_by_value("false").await.unwrap();
        page.click_button("Filter").await;
        page.wait_exactly("[data-test=event-row]", 2).await;
        let listed = page.text("main table").await;
        assert!(failed.iter().all(|id| listed.contains(id.as_str())) && !listed.contains(&delivered), "{listed}");
        page.find("#filter-delivery").await.select_by_value("true").await.unwrap();
        page.click_button("Filter").await;
        page.wait_exactly("[data-test=event-row]", 1).await;
        page.wait_text("main table", &delivered).await;

        // The endpoint works again: recover from its page. A dry run counts first.
        receiver.set("/down", Behaviour::Ok);
        page.open(&format!("{}/#/endpoints/{down_id}", server.base)).await;
        page.click_button("Recover failed").await;
        page.wait_text("[data-test=recover-count]", "2 events failed for good").await;
        assert_eq!(receiver.received("/down").len(), 4, "counting sends nothing");
        page.click_button("Resend failed events").await;
        page.wait_text(".toast", "Resent 2 events").await;
        let arrived = receiver.wait_for("/down", 6, Duration::from_secs(10));
        let mut resent: Vec<String> = arrived[4..].iter().map(|r| r.header("webhook-id").to_string()).collect();
        resent.sort();
        let mut expected = failed.clone();
        expected.sort();
        assert_eq!(resent, expected, "each failed event once more, same id");
        assert!(arrived[4..].iter().all(|r| r.stile_signature_valid(&secret).0), "signed with the endpoint's secret");

        // Once delivered, there is nothing left to recover.
        for id in &failed {
            server.wait_settled(id, Duration::from_secs(10));
        }
        page.click_button("Recover failed").await;
        page.wait_text("[data-test=recover-count]", "No event failed for good").await;
        assert!(page.button("Resend failed events").await.attr("disabled").await.unwrap().is_some());
    });
}

#[test]
fn the_live_refresh_keeps_keyboard_focus_and_the_text_selection_while_rows_arrive() {
    let server = TestServer::start();
    let publish = |server: &TestServer, id: String| {
        server.publish("verification_session.created", json!({ "id": id }));
    };
    for n in 0..3 {
        publish(&server, format!("vks_old_{n}"));
    }
    in_browser("refresh_keeps_place", move |page| async move {
        signed_in(&page, &server, "#/events").await;
        refresh_keeps_place(&page, || (0..5).for_each(|n| publish(&server, format!("vks_new_{n}")))).await;
    });
}

#[test]
fn the_portals_live_refresh_keeps_keyboard_focus_and_the_text_selection_too() {
    let server = TestServer::start();
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let publish = |server: &TestServer, id: String| {
        let resp = server
            .req("POST", "/v1/events")
            .header("Stile-App", "acme")
            .json(&json!({"type": "verification_session.created", "data": {"id": id}}))
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text);
    };
    for n in 0..3 {
        publish(&server, format!("vks_old_{n}"));
    }
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    in_browser("portal_refresh_keeps_place", move |page| async move {
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_text("#portal-brand", "Acme Inc.").await;
        page.open(&format!("{}/portal/#/events", server.base)).await;
        refresh_keeps_place(&page, || (0..5).for_each(|n| publish(&server, format!("vks_new_{n}")))).await;
    });
}

/// With three event rows on screen: focuses a link and selects an id, lets `publish_five`
/// add five events, and checks that the refreshes that draw them keep both in place.
async fn refresh_keeps_place(page: &Page, publish_five: impl FnOnce()) {
    page.wait_exactly("[data-test=event-row]", 3).await;
    // Focus the second row's link, select the third row's event id, and count the
    // requests the page makes from now on (each refresh makes one).
    let selected = page
        .script(
            "const rows = document.querySelectorAll('[data-test=event-row]');
             window.focusedLink = rows[1].querySelector('a');
             window.focusedLink.focus();
             const code = rows[2].querySelector('code');
             const range = document.createRange();
             range.selectNodeContents(code);
             window.getSelection().removeAllRanges();
             window.getSelection().addRange(range);
             window.requests = 0;
             const fetchNow = window.fetch;
             window.fetch = (...args) => { window.requests += 1; return fetchNow(...args); };
             return window.getSelection().toString();",
        )
        .await;
    assert!(selected.as_str().unwrap().starts_with("evt_"), "{selected}");

    // New data arrives while the person reads: five events, one at a time.
    publish_five();
    page.wait_exactly("[data-test=event-row]", 8).await;
    // Two more refreshes after the one that drew the new rows (a refresh every 2 s).
    let refreshed = eventually_async(Duration::from_secs(10), || async {
        page.script("return window.requests").await.as_u64().unwrap_or(0) >= 3
    })
    .await;
    assert!(refreshed, "the page went on refreshing");

    let state = page
        .script(
            "return {
               focusKept: document.activeElement === window.focusedLink && window.focusedLink.isConnected,
               selection: window.getSelection().toString(),
               rows: document.querySelectorAll('[data-test=event-row]').length,
             };",
        )
        .await;
    assert_eq!(state["focusKept"], true, "the focused link is still the focused element: {state}");
    assert_eq!(state["selection"], selected, "the selected text is still selected: {state}");
    assert_eq!(state["rows"], 8);
}

/// Polls an async condition until it holds or `deadline` passes.
async fn eventually_async<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[test]
fn the_application_switcher_shows_one_applications_data_and_never_the_others() {
    let server = TestServer::start();
    let acme = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).body["id"].as_str().unwrap().to_string();
    server.create_endpoint("http://127.0.0.1:9/default-app");
    // An event of the default application, which Acme's pages must not show.
    server.publish("verification_session.created", json!({"id": "vks_default"}));
    let theirs = server
        .req("POST", "/v1/webhook_endpoints")
        .header("Stile-App", "acme")
        .json(&json!({"url": "http://127.0.0.1:9/acme-app", "enabled_events": ["*"]}))
        .send();
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    in_browser("app_switcher", move |page| async move {
        signed_in(&page, &server, "#/endpoints").await;
        page.wait_exactly("table a.url", 1).await;
        assert!(page.text("table").await.contains("default-app"));
        // The default application first, then the others.
        let options =
            page.script("return [...document.querySelectorAll('#app-switcher option')].map(o => o.textContent)").await;
        assert_eq!(options, json!(["Default (test)", "Acme (acme)"]));

        page.script(&format!(
            "const s = document.getElementById('app-switcher'); s.value = '{acme}'; s.dispatchEvent(new Event('change'));"
        ))
        .await;
        page.wait_text("table", "acme-app").await;
        page.wait_exactly("table a.url", 1).await;
        assert!(!page.text("table").await.contains("default-app"), "the default application's endpoint is not shown");
        assert_eq!(page.script("return sessionStorage.getItem('stile.app')").await, json!(acme));

        // Every page follows the choice: Acme's event list is empty, though the default
        // application has an event.
        page.open(&format!("{}/#/events", server.base)).await;
        page.wait_text(".empty", "No events match").await;
        page.open(&format!("{}/#/endpoints", server.base)).await;
        page.wait_text("table", "acme-app").await;
        page.script(
            "const s = document.getElementById('app-switcher'); s.value = ''; s.dispatchEvent(new Event('change'));",
        )
        .await;
        page.wait_text("table", "default-app").await;
        assert!(!page.text("table").await.contains("acme-app"));
        page.open(&format!("{}/#/events", server.base)).await;
        page.wait_exactly("[data-test=event-row]", 1).await;

        // With many applications a search box narrows the list; the chosen one stays.
        assert_eq!(page.script("return document.getElementById('app-switcher-find').hidden").await, json!(true));
        for n in 0..5 {
            server.post("/v1/apps", json!({"name": format!("Tenant {n}")}));
        }
        page.script("window.dispatchEvent(new Event('stile:apps-changed'))").await;
        page.wait_count("#app-switcher option", 7).await;
        page.type_into("#app-switcher-find", "acm").await;
        page.wait_exactly("#app-switcher option", 2).await;
        let options =
            page.script("return [...document.querySelectorAll('#app-switcher option')].map(o => o.textContent)").await;
        assert_eq!(options, json!(["Default (test)", "Acme (acme)"]));
    });
}

#[test]
fn applications_are_created_searched_edited_shown_and_deleted_from_the_dashboard() {
    let server = TestServer::start();
    server.post("/v1/apps", json!({"name": "Globex", "uid": "globex"}));
    in_browser("apps_page", move |page| async move {
        signed_in(&page, &server, "#/apps").await;
        page.wait_exactly("main table tbody tr", 2).await;

        // Create one; a refused uid shows the API's message and creates nothing.
        page.click_button("New application").await;
        page.type_into("input[name=name]", "Acme").await;
        page.type_into("input[name=uid]", "globex").await;
        page.click_button("Create application").await;
        page.wait_text("form .error", "already used").await;
        page.script("document.querySelector('input[name=uid]').value = 'acme'").await;
        page.type_into("textarea[name=metadata]", "plan=pro").await;
        page.click_button("Create application").await;
        page.wait_exactly("main table tbody tr", 3).await;
        let acme = server.get("/v1/apps/acme");
        assert_eq!(acme.body["metadata"], json!({"plan": "pro"}), "{}", acme.text);
        let acme_id = acme.body["id"].as_str().unwrap().to_string();
        // The switcher lists it at once.
        page.wait_count("#app-switcher option", 3).await;

        // Search by uid narrows the list.
        page.type_into("input[name=app_search]", "glob").await;
        page.wait_exactly("main table tbody tr", 1).await;
        assert!(page.text("main table").await.contains("Globex"));

        // Edit, then show its data: every page then acts on it.
        page.open(&format!("{}/#/apps/{acme_id}", server.base)).await;
        page.wait_text("h1", "Acme").await;
        page.click_button("Edit").await;
        page.script("document.querySelector('input[name=name]').value = 'Acme Corp'").await;
        page.click_button("Save").await;
        page.wait_text("h1", "Acme Corp").await;
        assert_eq!(server.get("/v1/apps/acme").body["name"], "Acme Corp");
        page.click_button("Show its data").await;
        page.wait_text(".view-head h1", "Overview").await;
        assert_eq!(page.script("return sessionStorage.getItem('stile.app')").await, json!(acme_id));
        assert_eq!(page.script("return document.getElementById('app-switcher').value").await, json!(acme_id));

        // Delete with confirmation: gone, and the dashboard is back on the default.
        page.open(&format!("{}/#/apps/{acme_id}", server.base)).await;
        page.click_button("Delete").await;
        page.find("dialog[open] [data-test=confirm]").await.click().await.unwrap();
        page.wait_exactly("main table tbody tr", 2).await;
        assert_eq!(server.get(&format!("/v1/apps/{acme_id}")).status, 404);
        assert_eq!(page.script("return sessionStorage.getItem('stile.app')").await, json!(null));
        page.wait_count("#app-switcher option", 2).await;
    });
}

#[test]
fn the_app_portal_opens_from_its_link_and_manages_only_that_applications_endpoints() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    server.create_endpoint("http://127.0.0.1:9/default-app");
    let branding = json!({"logo_url": "https://127.0.0.1:9/logo.png", "accent_color": "#aa3300"});
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme", "branding": branding}));
    let session = server.post("/v1/apps/acme/portal_sessions", json!({})).body;
    let token = session["token"].as_str().unwrap().to_string();
    let session_id = session["id"].as_str().unwrap().to_string();
    in_browser("portal", move |page| async move {
        // The link's path and fragment, on this test server's address.
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_text("#portal-brand", "Acme Inc.").await;
        page.wait_text(".empty", "No endpoints yet").await;
        // The application's branding: its logo, its accent colour.
        assert_eq!(
            page.script("return document.querySelector('#portal-brand img').getAttribute('src')").await,
            json!("https://127.0.0.1:9/logo.png")
        );
        let accent =
            page.script("return getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()").await;
        assert_eq!(accent, json!("#aa3300"));
        // The token left the address bar for this tab's sessionStorage; no API key is used.
        assert_eq!(page.script("return location.hash").await, json!("#/endpoints"));
        assert_eq!(page.script("return sessionStorage.getItem('stile.portal_token')").await, json!(token));
        assert_eq!(page.script("return sessionStorage.getItem('stile.api_key')").await, json!(null));

        // Create an endpoint: the secret is shown once; it lands in Acme, nowhere else.
        page.click_button("New endpoint").await;
        page.type_into("input[name=url]", &receiver.url("/acme")).await;
        page.click_button("Create endpoint").await;
        let secret = page.text("[data-test=secret]").await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        page.wait_count("table a.url", 1).await;
        assert!(!page.text("main").await.contains("default-app"), "the default application's endpoint is not shown");
        let acme = server.req("GET", "/v1/webhook_endpoints").header("Stile-App", "acme").send().body;
        assert_eq!(acme["data"].as_array().unwrap().len(), 1);
        assert_eq!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().len(), 1, "the default's own");

        // Send a test event, see it arrive signed, and see its delivery and response.
        page.find(".secret-once a").await.click().await.unwrap();
        page.click_button("Reveal secret").await;
        assert_eq!(page.text("[data-test=revealed-secret]").await, secret, "the customer can see their secret again");
        page.click_button("Send test").await;
        page.wait_text("[data-test=test-result]", "succeeded").await;
        let pings = receiver.wait_for("/acme", 1, Duration::from_secs(10));
        assert!(pings[0].stile_signature_valid(&secret).0);
        page.wait_count("[data-test=delivery-row]", 1).await;
        page.docs_screenshot("portal").await;
        page.find("[data-test=delivery-row] a").await.click().await.unwrap();
        page.wait_text("main h1", "attempt 1").await;
        assert!(page.text("main").await.contains("HTTP 200"));

        // Revoked: the next call says the link cannot be used, not a blank page.
        assert_eq!(server.delete(&format!("/v1/apps/acme/portal_sessions/{session_id}")).status, 200);
        page.open(&format!("{}/portal/#/endpoints", server.base)).await;
        page.wait_text("[data-test=portal-signed-out]", "Ask Acme Inc. for a new one").await;
        for css in ["#nav", "#account"] {
            assert!(!page.find(css).await.is_displayed().await.unwrap(), "{css} is drawn on the signed-out page");
        }
    });
}

/// A loopback listener of its own: another origin than the server's.
fn other_origin() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    (listener, origin)
}

/// Serves `html` for every request to `listener` until the test ends: at most 20
/// requests, for at most 60 s.
fn serve_page(listener: std::net::TcpListener, html: String) {
    use std::io::{Read, Write};
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < 20 && std::time::Instant::now() < end {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = stream.write_all(answer.as_bytes());
            served += 1;
        }
    });
}

/// A page that frames `url` and says (in its title) when the frame has loaded or been
/// refused.
fn framing_page(url: &str) -> String {
    format!(
        "<!doctype html><title>host</title><iframe id=\"f\" src=\"{url}\"></iframe>\
         <script>document.getElementById('f').addEventListener('load', () => {{ document.title = 'loaded'; }});</script>"
    )
}

/// Waits until the page's title is `title`.
async fn wait_title(page: &Page, title: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while page.script("return document.title").await != json!(title) {
        assert!(std::time::Instant::now() < end, "the title did not become {title:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_portal_can_be_framed_by_the_allowed_origin_only_and_the_dashboard_never() {
    // Two host pages on two origins; the server lets the first frame the portal.
    let (allowed, allowed_origin) = other_origin();
    let (refused, refused_origin) = other_origin();
    let server = TestServer::start_with(|c| c.portal.frame_ancestors = vec![allowed_origin.clone()]);
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    let portal_url = format!("{}/portal/#token={token}", server.base);

    // The headers: the portal names the allowed origin and drops X-Frame-Options; the
    // dashboard keeps refusing every frame.
    let portal = crate::common::Req::new("GET", format!("{}/portal/", server.base)).no_key().send();
    let csp = portal.header("content-security-policy").unwrap().to_string();
    assert!(csp.contains(&format!("frame-ancestors {allowed_origin}")), "{csp}");
    assert_eq!(portal.header("x-frame-options"), None);
    let dashboard = crate::common::Req::new("GET", format!("{}/", server.base)).no_key().send();
    assert!(dashboard.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(dashboard.header("x-frame-options"), Some("DENY"));

    serve_page(allowed, framing_page(&portal_url));
    serve_page(refused, framing_page(&portal_url));
    in_browser("portal_framing", move |page| async move {
        page.open(&format!("{allowed_origin}/")).await;
        wait_title(&page, "loaded").await;
        page.client.enter_frame(0).await.unwrap();
        page.wait_text("#portal-brand", "Acme Inc.").await;
        page.client.enter_parent_frame().await.unwrap();

        page.open(&format!("{refused_origin}/")).await;
        wait_title(&page, "loaded").await;
        page.client.enter_frame(0).await.unwrap();
        assert!(page.all("#portal-brand").await.is_empty(), "the browser refused to show the portal here");
        page.client.enter_parent_frame().await.unwrap();
    });
}

#[test]
fn a_read_only_portal_link_shows_everything_and_offers_no_change() {
    let server = TestServer::start();
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let endpoint = server
        .req("POST", "/v1/webhook_endpoints")
        .header("Stile-App", "acme")
        .json(&json!({"url": "http://127.0.0.1:9/acme", "enabled_events": ["*"]}))
        .send();
    let endpoint_id = endpoint.body["id"].as_str().unwrap().to_string();
    let token = server.post("/v1/apps/acme/portal_sessions", json!({"read_only": true})).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    in_browser("portal_read_only", move |page| async move {
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_text("#portal-access", "READ ONLY").await;
        page.wait_count("table a.url", 1).await;
        // Visible buttons other than the pagers'.
        let visible = "return [...document.querySelectorAll('main button')].filter(b => b.offsetParent !== null && !b.closest('.pager')).map(b => b.textContent)";
        assert_eq!(page.script(visible).await, json!([]), "no New endpoint");
        page.open(&format!("{}/portal/#/endpoints/{endpoint_id}", server.base)).await;
        page.wait_text("main h1", "127.0.0.1:9/acme").await;
        page.wait_text("main", "No deliveries yet").await;
        assert_eq!(page.script(visible).await, json!([]), "no test, edit, disable, reveal, rotate, recover or delete");
    });
}

#[test]
fn the_event_type_catalogue_shows_descriptions_examples_and_schemas_in_the_portal() {
    let server = TestServer::start_with(|c| {
        c.events.types = vec![stile::event_types::EventTypeDecl {
            name: "invoice.paid".into(),
            description: "An invoice was paid in full.".into(),
            schema: Some(r#"{"type": "object", "required": ["amount"]}"#.into()),
            example: Some(r#"{"amount": 1200}"#.into()),
            ..Default::default()
        }];
    });
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let receiver = Receiver::start();
    let made = server
        .req("POST", "/v1/webhook_endpoints")
        .header("Stile-App", "acme")
        .json(&json!({"url": receiver.url("/acme"), "enabled_events": ["*"]}))
        .send();
    assert_eq!(made.status, 200, "{}", made.text);
    // Types created through the API show too; an archived one is not offered.
    let order = server.post("/v1/event_types", json!({"name": "order.paid", "description": "An order was paid."}));
    assert_eq!(order.status, 200, "{}", order.text);
    server.post("/v1/event_types", json!({"name": "order.retired", "description": "Retired."}));
    assert_eq!(server.delete("/v1/event_types/order.retired").status, 200);
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    in_browser("portal_event_types", move |page| async move {
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_text("#portal-brand", "Acme Inc.").await;
        page.find("#nav a[data-section=event-types]").await.click().await.unwrap();
        page.wait_text("main h1", "Event types").await;
        page.wait_text("main", "An invoice was paid in full.").await;
        let invoice = page.script(
            "const s = [...document.querySelectorAll('[data-test=event-type]')].find(s => s.textContent.includes('invoice.paid'));
             s.querySelectorAll('details').forEach(d => d.open = true);
             return s.textContent;",
        )
        .await;
        let invoice = invoice.as_str().unwrap();
        assert!(invoice.contains("1200") && invoice.contains("\"required\""), "{invoice}");
        assert!(page.text("main").await.contains("verification_session.verified"));
        assert!(page.text("main").await.contains("Another name for verification_session.verified"));

        // Send example: the invoice example to the application's endpoint, signed.
        page.script(
            "const s = [...document.querySelectorAll('[data-test=event-type]')].find(s => s.textContent.includes('invoice.paid'));
             [...s.querySelectorAll('button')].find(b => b.textContent === 'Send example').click();",
        )
        .await;
        page.wait_text("[data-test=example-result]", "succeeded").await;
        let got = receiver.wait_for("/acme", 1, Duration::from_secs(10));
        assert_eq!(got[0].json()["type"], "invoice.paid");
        assert_eq!(got[0].json()["data"], json!({"amount": 1200}));
        let catalogue = page.text("main").await;
        assert!(catalogue.contains("An order was paid.") && !catalogue.contains("order.retired"), "{catalogue}");

        // The endpoint form offers the catalogue with what each type means.
        page.find("#nav a[data-section=endpoints]").await.click().await.unwrap();
        page.click_button("New endpoint").await;
        page.wait_text("form", "An invoice was paid in full.").await;
        let choices: Vec<String> = page
            .script("return [...document.querySelectorAll('[data-test=type-choice]')].map(l => l.textContent);")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert!(choices.iter().any(|c| c.contains("order.paid") && c.contains("An order was paid.")), "{choices:?}");
        assert!(choices.iter().any(|c| c.contains("verification.session.succeeded") && c.contains("Kayle's name")));
        assert!(choices.iter().all(|c| !c.contains("order.retired")), "{choices:?}");
    });
}

#[test]
fn a_stile_listen_endpoint_is_marked_as_a_listener() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let forward_to = receiver.url("/hook");
    let mut cli = crate::common::process::OutputProcess::start(&[
        "listen",
        "--forward-to",
        &forward_to,
        "--url",
        &server.base,
        "--api-key",
        TEST_KEY,
    ]);
    cli.wait_line(crate::common::process::Stream::Err, "Ready!", Duration::from_secs(20));
    let id = server.get("/v1/webhook_endpoints").body["data"][0]["id"].as_str().unwrap().to_string();
    in_browser("listener_endpoint", move |page| async move {
        signed_in(&page, &server, "#/endpoints").await;
        page.wait_text("main table", "listener").await;
        page.open(&format!("{}/#/endpoints/{id}", server.base)).await;
        page.wait_text("[data-test=listener-note]", "stile listen").await;
        assert!(page.text(".view-head").await.contains("listener"));
        drop(cli);
    });
}
