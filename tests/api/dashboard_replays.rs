//! The Replays page of the dashboard and the app portal, end to end in headless Chromium:
//! a receiver that failed works again, a replay is counted (a dry run, which sends
//! nothing), started, and followed on its page to the end, and the receiver gets each
//! failed event once more; errors show by the field the API names.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::browser::{Page, in_browser};
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TEST_KEY, TestServer};

const WAIT: Duration = Duration::from_secs(20);

/// Signs in to the dashboard with the test key, then opens `hash`.
async fn signed_in(page: &Page, server: &TestServer, hash: &str) {
    page.open(&format!("{}/", server.base)).await;
    page.sign_in(TEST_KEY).await;
    page.wait_text("#mode-badge", "TEST").await;
    page.open(&format!("{}/{hash}", server.base)).await;
}

/// How many times each event (by id) arrived at `path`.
fn arrivals(receiver: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in receiver.received(path) {
        *seen.entry(request.json()["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    seen
}

/// Whether the button `text` is disabled now.
async fn disabled(page: &Page, text: &str) -> bool {
    page.button(text).await.attr("disabled").await.unwrap().is_some()
}

/// Sets a datetime-local input as a person would (`value` like `2020-01-01T00:00`, empty
/// to clear), with the change event the form listens to.
async fn set_time(page: &Page, name: &str, value: &str) {
    let set = page
        .script(&format!(
            "const input = document.querySelector('input[name={name}]');
             input.value = '{value}';
             input.dispatchEvent(new Event('change', {{ bubbles: true }}));
             return input.value;"
        ))
        .await;
    assert_eq!(set, json!(value), "the browser took the time");
}

/// The event ids the dry run's sample links to.
async fn sampled_events(page: &Page) -> Vec<String> {
    let hrefs = page
        .script(
            "return [...document.querySelectorAll('[data-test=replay-sample] a[href^=\"#/events/\"]')]
               .map((a) => a.getAttribute('href').slice('#/events/'.length));",
        )
        .await;
    serde_json::from_value(hrefs).unwrap()
}

#[test]
fn failed_deliveries_are_counted_replayed_and_followed_to_the_end_in_the_dashboard() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    receiver.set("/other", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    let down_id = server.create_endpoint(&receiver.url("/down"))["id"].as_str().unwrap().to_string();
    let other_id = server.create_endpoint(&receiver.url("/other"))["id"].as_str().unwrap().to_string();
    let mut events: Vec<String> = (0..5)
        .map(|n| {
            let event = server.publish("verification_session.verified", json!({ "id": format!("vks_{n}") }));
            event["id"].as_str().unwrap().to_string()
        })
        .collect();
    server.wait_queue_empty(WAIT);
    assert_eq!((receiver.count("/down"), receiver.count("/other")), (5, 5), "every first attempt failed");
    // The first receiver works again, at one request a second (so the replay runs long
    // enough to be seen running); the other still fails.
    receiver.set("/down", Behaviour::Ok);
    let slowed = server.post(&format!("/v1/webhook_endpoints/{down_id}"), json!({"rate_limit": 1}));
    assert_eq!(slowed.status, 200, "{}", slowed.text);

    in_browser("replays", move |page| async move {
        signed_in(&page, &server, "#/overview").await;
        page.find("#nav a[data-section=replays]").await.click().await.unwrap();
        page.wait_text("main h1", "Replays").await;
        page.wait_text(".empty", "No replays yet").await;
        page.click_button("New replay").await;
        assert!(disabled(&page, "Start replay").await, "nothing to start before a count");

        // No endpoint ticked: the failed deliveries of every endpoint.
        page.click_button("Count").await;
        page.wait_text("[data-test=replay-count]", "10 deliveries match").await;
        assert!(!disabled(&page, "Start replay").await, "a count allows a start");

        // A time range: before 2020 nothing; the API's own message by the time fields when
        // the range is backwards.
        set_time(&page, "created_before", "2020-01-01T00:00").await;
        page.wait_text("[data-test=replay-count]", "count again").await;
        assert!(disabled(&page, "Start replay").await, "a changed query needs a new count");
        page.click_button("Count").await;
        page.wait_text("[data-test=replay-count]", "No delivery matches").await;
        assert!(disabled(&page, "Start replay").await, "nothing to replay");
        set_time(&page, "created_after", "2021-01-01T00:00").await;
        page.click_button("Count").await;
        page.wait_text("[data-error-for=created]", "`created_before` must be later than `created_after`").await;
        set_time(&page, "created_before", "").await;
        set_time(&page, "created_after", "2020-01-01T00:00").await;

        // A content filter the API refuses: its message by the filter field.
        page.type_into("textarea[name=filter]", r#"{"data.id": {"$between": 1}}"#).await;
        page.click_button("Count").await;
        let refused = server.post("/v1/replays", json!({"dry_run": true, "filter": {"data.id": {"$between": 1}}}));
        let message = refused.body["error"]["message"].as_str().unwrap().to_string();
        page.wait_text("[data-error-for=filter]", &message).await;
        page.type_into("textarea[name=filter]", r#"{"data.id": {"$regex": "^vks_"}}"#).await;

        // The endpoint that works again only.
        page.find(&format!("input[name=endpoint][value={down_id}]")).await.click().await.unwrap();
        page.click_button("Count").await;
        page.wait_text("[data-test=replay-count]", "5 deliveries match").await;
        assert_eq!(page.text("[data-error-for=filter]").await, "", "the error went with the count");
        page.wait_exactly("[data-test=replay-sample]", 5).await;
        let mut sampled = sampled_events(&page).await;
        sampled.sort();
        events.sort();
        assert_eq!(sampled, events, "the sample shows the failed events");
        assert_eq!(receiver.count("/down"), 5, "counting sends nothing");
        assert!(server.get("/v1/replays").body["data"].as_array().unwrap().is_empty(), "nor makes a replay");

        // Started: its page shows it running, then follows it to the end without a reload.
        page.click_button("Start replay").await;
        page.wait_text("main h1", "Replay of failed deliveries").await;
        let hash = page.script("return location.hash").await;
        let replay_id = hash.as_str().unwrap().strip_prefix("#/replays/").expect("the replay's page").to_string();
        assert!(replay_id.starts_with("rp_"), "{replay_id}");
        page.wait_text(".view-head .pill", "running").await;
        page.button("Cancel").await;
        page.wait_text(".view-head .pill", "completed").await;
        for (test, want) in [("matched", "5"), ("sent", "5"), ("skipped", "0"), ("succeeded", "5"), ("failed", "0")] {
            assert_eq!(page.text(&format!("[data-test=replay-{test}]")).await, want, "{test}");
        }
        assert_eq!(page.text("[data-test=replay-progress]").await, "5 of 5 sent");
        let progress = page.script("const p = document.querySelector('main progress'); return [p.value, p.max];").await;
        assert_eq!(progress, json!([5, 5]));
        let query = page.text("[data-test=replay-query]").await;
        assert!(query.contains(&receiver.url("/down")) && !query.contains(&receiver.url("/other")), "{query}");
        assert!(query.contains("$regex"), "the filter it was made with: {query}");
        let cancels = page
            .script(
                "return [...document.querySelectorAll('main button')].filter((b) => b.textContent === 'Cancel').length",
            )
            .await;
        assert_eq!(cancels, json!(0), "an ended replay cannot be cancelled");

        // The receiver got each failed event once more, and the other endpoint nothing.
        server.wait_queue_empty(WAIT);
        assert_eq!(receiver.count("/down"), 10);
        let seen = arrivals(&receiver, "/down");
        for event in &events {
            assert_eq!(seen.get(event), Some(&2), "{event}: the failed attempt and the replay's");
        }
        assert_eq!(receiver.count("/other"), 5, "the other endpoint was not part of the replay");
        let view: Value = server.get(&format!("/v1/replays/{replay_id}")).body;
        assert_eq!(view["query"]["endpoints"], json!([down_id]));
        assert_eq!(
            view["query"]["created_after"],
            page.script("return new Date('2020-01-01T00:00').getTime() / 1000").await
        );

        // The list shows it, newest first, with its progress.
        page.find("#nav a[data-section=replays]").await.click().await.unwrap();
        page.wait_count("[data-test=replay-row]", 1).await;
        let row = page.wait_text("[data-test=replay-row]", "completed").await;
        assert!(row.contains(&replay_id) && row.contains("5 of 5 sent"), "{row}");

        // From an endpoint's page: the form opens with that endpoint ticked.
        page.open(&format!("{}/#/endpoints/{other_id}", server.base)).await;
        page.find("a[href^='#/replays?new=1']").await.click().await.unwrap();
        page.find("form[aria-label='New replay']").await;
        let ticked = page
            .script("return [...document.querySelectorAll('input[name=endpoint]:checked')].map((b) => b.value)")
            .await;
        assert_eq!(ticked, json!([other_id]));
        page.click_button("Count").await;
        page.wait_text("[data-test=replay-count]", "5 deliveries match").await;
        let sampled = sampled_events(&page).await;
        assert_eq!(sampled.len(), 5, "{sampled:?}");

        // Nothing is wider than a phone's screen.
        page.client.set_window_size(390, 844).await.unwrap();
        for hash in ["#/replays?new=1".to_string(), format!("#/replays/{replay_id}")] {
            page.open(&format!("{}/{hash}", server.base)).await;
            page.find("main .view-head").await;
            if hash.contains("new") {
                page.find("form[aria-label='New replay']").await;
            }
            let overflow = page.script("return document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().unwrap() <= 0, "{hash} overflows a phone screen by {overflow}px");
        }
    });
}

#[test]
fn the_portal_replays_its_own_applications_failed_deliveries_and_cancels_a_replay() {
    let receiver = Receiver::start();
    receiver.set("/acme", Behaviour::Status(500));
    receiver.set("/default", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    server.post("/v1/apps", json!({"name": "Acme Inc.", "uid": "acme"}));
    let in_acme = |path: &str, body: Value| {
        let resp = server.req("POST", path).header("Stile-App", "acme").json(&body).send();
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    };
    let endpoint = in_acme("/v1/webhook_endpoints", json!({"url": receiver.url("/acme"), "enabled_events": ["*"]}));
    for n in 0..10 {
        in_acme("/v1/events", json!({"type": "verification_session.verified", "data": {"id": format!("vks_{n}")}}));
    }
    // The default application's failure is out of the portal's reach.
    server.create_endpoint(&receiver.url("/default"));
    server.publish("verification_session.verified", json!({"id": "vks_default"}));
    server.wait_queue_empty(WAIT);
    assert_eq!((receiver.count("/acme"), receiver.count("/default")), (10, 1));
    receiver.set("/acme", Behaviour::Ok);
    receiver.set("/default", Behaviour::Ok);
    // One a second: ten take ten seconds, time enough to cancel.
    in_acme(&format!("/v1/webhook_endpoints/{}", endpoint["id"].as_str().unwrap()), json!({"rate_limit": 1}));
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();

    in_browser("portal_replays", move |page| async move {
        page.open(&format!("{}/portal/#token={token}", server.base)).await;
        page.wait_text("#portal-brand", "Acme Inc.").await;
        page.find("#nav a[data-section=replays]").await.click().await.unwrap();
        page.wait_text(".empty", "No replays yet").await;
        page.click_button("New replay").await;
        page.wait_exactly("input[name=endpoint]", 1).await;
        // Named, so the replay keeps to its rate limit (with none named it goes at the
        // default pace and the endpoint's own limit holds the deliveries instead).
        page.find("input[name=endpoint]").await.click().await.unwrap();
        page.click_button("Count").await;
        page.wait_text("[data-test=replay-count]", "10 deliveries match").await;
        page.click_button("Start replay").await;
        page.wait_text(".view-head .pill", "running").await;
        page.click_button("Cancel").await;
        page.wait_text(".view-head .pill", "cancelled").await;
        page.wait_exactly("main .actions button", 0).await;

        // What it had queued still goes, and the page goes on counting it.
        server.wait_queue_empty(WAIT);
        let replays = server.req("GET", "/v1/replays").header("Stile-App", "acme").send().body;
        let sent = replays["data"][0]["sent"].as_u64().unwrap();
        assert!(sent < 10, "cancelled before the end: {sent} sent");
        assert_eq!(receiver.count("/acme") as u64, 10 + sent, "Acme's events only, each at most once more");
        assert_eq!(receiver.count("/default"), 1, "nothing of another application");
        page.wait_text("[data-test=replay-succeeded]", &sent.to_string()).await;
        assert_eq!(page.text("[data-test=replay-sent]").await, sent.to_string());
    });
}
