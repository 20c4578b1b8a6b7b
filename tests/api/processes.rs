//! Many stile processes on one Postgres database, and the database going away: real
//! binaries (or a real server) on a throwaway cluster, a real receiver that checks every
//! signature. Skipped, loudly, where PostgreSQL is not installed; failed under `CI=true`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;
use stile::store::postgres::throwaway::ThrowawayPostgres;

use crate::common::process::{ServerProcess, stile_bin};
use crate::common::receiver::Receiver;
use crate::common::{Req, TEST_KEY, TestServer, eventually};

/// The shared cluster, or `None` after a loud line where PostgreSQL is not installed.
fn cluster() -> Option<&'static ThrowawayPostgres> {
    ThrowawayPostgres::shared_for_test()
}

/// Workers per process: at most this many attempts of a killed process were in flight
/// or finished without their result recorded, so at most this many are made twice.
const WORKERS: usize = 16;

/// A `stile serve` on the database at `url`, its data directory `dir/<name>`, the payload
/// key shared in `dir`.
fn start(dir: &Path, name: &str, url: &str) -> ServerProcess {
    let key_file = dir.join("payload.key");
    let workers = WORKERS.to_string();
    let env = [
        ("STILE_AUTH_KEYS", TEST_KEY),
        ("STILE_STORE_BACKEND", "postgres"),
        ("STILE_STORE_POSTGRES_URL", url),
        ("STILE_STORE_PAYLOAD_KEY_FILE", key_file.to_str().unwrap()),
        ("STILE_STORE_POSTGRES_CLAIM_LEASE", "3s"),
        ("STILE_DELIVERY_WORKERS", workers.as_str()),
        ("STILE_DELIVERY_TIMEOUT", "5s"),
        ("STILE_DELIVERY_RETRY_SCHEDULE", "1s,1s,1s"),
    ];
    ServerProcess::start(dir, &["--listen", "127.0.0.1:0", "--data-dir", name], &env).expect("server starts")
}

/// Publishes one event through `base`; its id if it was accepted (200), the status if
/// refused, `None` if the server could not be reached. One client for every publish
/// (making one per request cost more than the publish).
fn publish(base: &str, n: usize) -> Option<Result<String, u16>> {
    static AGENT: std::sync::LazyLock<ureq::Agent> = std::sync::LazyLock::new(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .build()
            .into()
    });
    let body = json!({"type": "verification_session.verified", "data": {"id": format!("vks_{n}")}});
    let mut resp = AGENT
        .post(format!("{base}/v1/events"))
        .header("authorization", format!("Bearer {TEST_KEY}"))
        .send_json(&body)
        .ok()?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
    Some(match status {
        200 => Ok(body["id"].as_str().expect("an event id").to_string()),
        status => Err(status),
    })
}

#[test]
fn three_processes_deliver_everything_accepted_when_one_is_killed_mid_stream() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.new_database().expect("a database");
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let first = start(dir.path(), "a", &url);
    let servers = vec![first, start(dir.path(), "b", &url), start(dir.path(), "c", &url)];
    let endpoint = Req::new("POST", format!("{}/v1/webhook_endpoints", servers[0].base))
        .key(TEST_KEY)
        .json(&json!({"url": receiver.url("/hook"), "enabled_events": ["*"]}))
        .send();
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    let secret = endpoint.body["secret"].as_str().expect("the signing secret").to_string();

    // Publishers spread over the processes that are up; the middle one is killed half way
    // through and started again.
    const EVENTS: usize = 20_000;
    let bases: Arc<RwLock<Vec<String>>> = Arc::new(RwLock::new(servers.iter().map(|s| s.base.clone()).collect()));
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(EVENTS)));
    let refused = Arc::new(Mutex::new(Vec::new()));
    // Publishes the killed process never answered: each may or may not be stored.
    let unanswered = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..6)
        .map(|t| {
            let (bases, next, accepted, refused) = (bases.clone(), next.clone(), accepted.clone(), refused.clone());
            let unanswered = unanswered.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(240);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= EVENTS || Instant::now() > deadline {
                        break;
                    }
                    let base = {
                        let bases = bases.read().unwrap();
                        bases[(n + t) % bases.len()].clone()
                    };
                    match publish(&base, n) {
                        Some(Ok(id)) => accepted.lock().unwrap().push(id),
                        Some(Err(status)) => refused.lock().unwrap().push(status),
                        None => {
                            // The killed process: accepted or not, the client cannot know.
                            unanswered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut servers = servers;
    assert!(eventually(Duration::from_secs(120), || next.load(Ordering::Relaxed) >= EVENTS / 2), "publishing stalled");
    let killed = servers.remove(1);
    let killed_base = killed.base.clone();
    bases.write().unwrap().retain(|b| *b != killed_base);
    killed.kill_hard();
    let restarted = start(dir.path(), "b", &url);
    bases.write().unwrap().push(restarted.base.clone());
    servers.push(restarted);
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let published_in = started.elapsed();
    let accepted = accepted.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "publishes refused: {refused:?}");
    assert!(accepted.len() > EVENTS * 9 / 10, "{} of {EVENTS} accepted", accepted.len());

    // Every accepted event arrives, signed; duplicates only for what was in flight.
    let all_arrived = eventually(Duration::from_secs(120), || {
        if receiver.count("/hook") < accepted.len() {
            return false; // not all there yet: no need to copy what came
        }
        let received = receiver.received("/hook");
        let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
        accepted.iter().all(|id| ids.contains(id.as_str()))
    });
    let received = receiver.received("/hook");
    let mut copies: HashMap<String, usize> = HashMap::new();
    for request in &received {
        assert!(request.stile_signature_valid(&secret).0, "a bad signature on {}", request.header("webhook-id"));
        *copies.entry(request.header("webhook-id").to_string()).or_default() += 1;
    }
    let missing = accepted.iter().filter(|id| !copies.contains_key(*id)).count();
    assert!(all_arrived, "{missing} of {} accepted events never arrived", accepted.len());
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "three processes: {} accepted in {published_in:?}, all delivered after {:?}; {} received, {duplicates} made twice (at most {} were in flight or unrecorded)",
        accepted.len(),
        started.elapsed(),
        received.len(),
        2 * WORKERS
    );
    // The killed process had at most `delivery.workers` requests in flight and as many
    // results answered but not yet committed.
    assert!(duplicates <= 2 * WORKERS, "{duplicates} duplicates; at most {} attempts were in flight", 2 * WORKERS);
    let unanswered = unanswered.load(Ordering::Relaxed);
    assert!(
        copies.len() <= accepted.len() + unanswered,
        "{} events delivered, {} accepted, {unanswered} publishes unanswered",
        copies.len(),
        accepted.len()
    );
}

/// Each publish's time and outcome: the event id, or the refusal's status.
type Outcomes = Arc<Mutex<Vec<(Instant, Result<String, u16>)>>>;

#[test]
fn a_database_outage_refuses_publishes_with_503_and_delivery_resumes_by_itself() {
    if cluster().is_none() {
        return;
    }
    // A cluster of its own: this test stops it, as a crash would (`-m immediate`), so its
    // commits must wait for the disk like a real database's (the tests' shared cluster
    // acknowledges commits before writing them, and a crash loses the last ones).
    let own = ThrowawayPostgres::start_durable().expect("a cluster");
    let url = own.new_database().expect("a database");
    let receiver = Receiver::start();
    let server = TestServer::start_with(|c| {
        c.store.backend = stile::config::Backend::Postgres;
        c.store.postgres_url = stile::config::DatabaseUrl(url.clone());
        c.store.postgres_statement_timeout = Duration::from_secs(5);
    });
    server.create_endpoint(&receiver.url("/hook"));

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let publisher = {
        let (stop, outcomes, base) = (stop.clone(), outcomes.clone(), server.base.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let outcome = publish(&base, n).expect("the server answers while its database is down");
                outcomes.lock().unwrap().push((Instant::now(), outcome));
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let accepted = |outcomes: &Outcomes| outcomes.lock().unwrap().iter().filter(|o| o.1.is_ok()).count();
    assert!(eventually(Duration::from_secs(10), || accepted(&outcomes) >= 20), "publishing before the outage");
    own.stop().expect("postgres stops");
    let stopped_at = Instant::now();
    // The outage lasts 10 s: publishes meanwhile are refused, and say why.
    assert!(eventually(Duration::from_secs(15), || {
        outcomes.lock().unwrap().iter().any(|(at, o)| *at > stopped_at && o.is_err())
    }));
    let health = Req::new("GET", format!("{}/healthz", server.base)).send();
    assert_eq!(health.status, 503, "{}", health.text);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(stopped_at.elapsed()));
    own.restart().expect("postgres starts again");
    let restarted_at = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || {
            outcomes.lock().unwrap().iter().filter(|(at, o)| *at > restarted_at && o.is_ok()).count() >= 20
        }),
        "publishes succeed again without restarting stile"
    );
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();

    let outcomes = outcomes.lock().unwrap().clone();
    let refused: Vec<u16> = outcomes.iter().filter_map(|(_, o)| o.clone().err()).collect();
    assert!(!refused.is_empty(), "no publish was refused during the outage");
    assert!(refused.iter().all(|s| *s == 503), "refusals other than 503: {refused:?}");
    let ids: Vec<String> = outcomes.iter().filter_map(|(_, o)| o.clone().ok()).collect();
    let all_arrived = eventually(Duration::from_secs(60), || {
        if receiver.count("/hook") < ids.len() {
            return false;
        }
        let received = receiver.received("/hook");
        let got: std::collections::HashSet<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
        ids.iter().all(|id| got.contains(id.as_str()))
    });
    assert!(all_arrived, "an event accepted with a 200 was lost");
    assert_eq!(Req::new("GET", format!("{}/healthz", server.base)).send().status, 200);
    eprintln!("outage: {} accepted, {} refused with 503", ids.len(), refused.len());
}

#[test]
fn a_postgres_server_names_its_database_never_its_password_and_sends_file_tools_elsewhere() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.new_database().expect("a database");
    // The throwaway cluster trusts every connection, so any password is accepted.
    let with_password = url.replacen("postgres@", "postgres:s3cret-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "data", &with_password);
    let database = url.rsplit('@').next().unwrap();
    assert!(
        server.summary.iter().any(|l| l.trim() == format!("database   postgres {database}")),
        "{:?}",
        server.summary
    );
    let metrics = Req::new("GET", format!("{}/metrics", server.base)).send();
    for line in [
        "stile_store_pool_connections{state=\"in_use\"}",
        "stile_queue_claim_lag_seconds 0",
        "stile_store_conflicts_rerun_total 0",
    ] {
        assert!(metrics.text.lines().any(|l| l.starts_with(line)), "{line} in\n{}", metrics.text);
    }
    let backup = stile_bin()
        .current_dir(dir.path())
        .args(["backup", "copy.redb", "--data-dir", "data", "--url", &server.base])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&backup.stderr);
    assert!(!backup.status.success());
    assert!(said.contains("pg_dump"), "{said}");
    assert!(!said.contains("{\""), "the server's message, not its JSON: {said}");
    let printed = format!("{}\n{}", server.summary.join("\n"), server.stderr_so_far().join("\n"));
    assert_eq!(server.terminate(), Some(0));
    let compact = stile_bin()
        .current_dir(dir.path())
        .args(["compact", "--data-dir", "data"])
        .env("STILE_STORE_BACKEND", "postgres")
        .env("STILE_STORE_POSTGRES_URL", &with_password)
        .env("STILE_STORE_PAYLOAD_KEY_FILE", dir.path().join("payload.key"))
        .output()
        .unwrap();
    let compact_said = String::from_utf8_lossy(&compact.stderr);
    assert!(!compact.status.success());
    assert!(compact_said.contains("VACUUM"), "{compact_said}");
    let inspect = stile_bin()
        .current_dir(dir.path())
        .args(["inspect", "--data-dir", "data"])
        .env("STILE_STORE_BACKEND", "postgres")
        .env("STILE_STORE_POSTGRES_URL", &with_password)
        .output()
        .unwrap();
    let inspect_said = String::from_utf8_lossy(&inspect.stderr);
    assert!(!inspect.status.success());
    assert!(inspect_said.contains("Postgres"), "{inspect_said}");
    let everything = format!("{printed}\n{said}\n{compact_said}");
    assert!(!everything.contains("s3cret-pw"), "the password was printed:\n{everything}");
}

/// Two servers on one new database of the shared cluster, sharing the payload key as
/// every process must; `None` after a loud line where PostgreSQL is not installed.
pub(crate) fn two_servers() -> Option<(TestServer, TestServer)> {
    let url = cluster()?.new_database().expect("a database");
    let on_database = |c: &mut stile::config::Config| {
        c.store.backend = stile::config::Backend::Postgres;
        c.store.postgres_url = stile::config::DatabaseUrl(url.clone());
    };
    let a = TestServer::start_with(on_database);
    let key = a.data_dir().join("payload.key");
    let b = TestServer::start_with(|c| {
        on_database(c);
        c.store.payload_key_file = key.clone();
    });
    Some((a, b))
}

#[test]
fn stile_listen_connected_to_one_process_gets_what_every_process_claims() {
    let Some((a, b)) = two_servers() else { return };
    let receiver = Receiver::start();
    let (mut cli, secret) = crate::listen::listen(&a.base, &receiver, &[]);
    // Published through the other process, whose scheduler is woken first: it claims most
    // of them, and hands them to the process holding the CLI rather than parking them.
    let published: Vec<String> = (0..30)
        .map(|n| b.publish("verification_session.verified", json!({"id": format!("vks_{n}")})))
        .map(|event| event["id"].as_str().unwrap().to_string())
        .collect();
    let wait = Duration::from_secs(20);
    let got = receiver.wait_for("/hook", 30, wait);
    assert!(got.iter().all(|r| r.stile_signature_valid(&secret).0), "every delivery signed with the CLI's secret");
    for id in &published {
        let settled = eventually(wait, || b.get(&format!("/v1/events/{id}")).body["pending_webhooks"] == 0);
        assert!(settled, "{id} is still pending");
    }

    // With no CLI anywhere, attempts wait (parked) wherever they are claimed; a CLI
    // connected to the other process gets them.
    cli.kill_hard();
    let waiting = a.publish("verification_session.verified", json!({"id": "vks_away"}));
    let waiting = waiting["id"].as_str().unwrap().to_string();
    let (_cli, again) = crate::listen::listen(&b.base, &receiver, &[]);
    assert_eq!(again, secret, "the same key, the same listener endpoint");
    let arrived = eventually(wait, || receiver.received("/hook").iter().any(|r| r.header("webhook-id") == waiting));
    assert!(arrived, "the attempt that waited reached the CLI on the other process");
    assert!(eventually(wait, || a.get(&format!("/v1/events/{waiting}")).body["pending_webhooks"] == 0));
}

#[test]
fn event_types_and_keys_made_through_one_process_work_through_another() {
    let Some((a, b)) = two_servers() else { return };
    let created = a.post("/v1/event_types", json!({"name": "order.paid", "description": "An order was paid."}));
    assert_eq!(created.status, 200, "{}", created.text);
    let published = eventually(Duration::from_secs(10), || {
        b.post("/v1/events", json!({"type": "order.paid", "data": {"id": "ord_1"}})).status == 200
    });
    assert!(published, "the other process never learnt of order.paid");
    let listed = b.get("/v1/event_types");
    assert!(listed.text.contains("order.paid"), "{}", listed.text);
    // A key made with `stile keys create` (here: through the store, as it does) while
    // both run is accepted by both, without a restart.
    let key = crate::common::block_on(async {
        let store = stile::open_store(&a.config).await.expect("the database opens");
        stile::create_api_key(&store, stile::mode::Mode::Test, 0).await.expect("a key")
    });
    let accepted = |server: &TestServer| server.req("GET", "/v1/events").key(&key).send().status == 200;
    assert!(eventually(Duration::from_secs(10), || accepted(&a) && accepted(&b)), "a new key was refused");
    // An application deleted through one process is gone through the other at once.
    let acme = a.post("/v1/apps", json!({"name": "Acme", "uid": "acme"}));
    assert_eq!(acme.status, 200, "{}", acme.text);
    let through_b = || b.req("GET", "/v1/events").header("stile-app", "acme").send().status;
    assert_eq!(through_b(), 200);
    assert_eq!(a.delete("/v1/apps/acme").status, 200);
    assert_eq!(through_b(), 404, "the other process still knew the deleted application");
}

/// Reads one unlabelled gauge or counter from a process's `/metrics`.
fn metric(base: &str, name: &str) -> Option<f64> {
    let text = Req::new("GET", format!("{base}/metrics")).send().text;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn an_endpoints_rate_and_in_flight_cap_hold_across_three_processes_and_the_kill_of_its_sender() {
    // Held 60 ms, two at a time allow 33 a second: the rate of 20 binds, with two open at
    // moments. Three processes each keeping the limits by itself would make 60 a second
    // and six open at once.
    const HOLD: Duration = Duration::from_millis(60);
    const EVENTS: usize = 100;
    let Some(cluster) = cluster() else { return };
    let url = cluster.new_database().expect("a database");
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/limited", crate::common::receiver::Behaviour::Delay(HOLD));
    let mut servers = vec![start(dir.path(), "a", &url), start(dir.path(), "b", &url), start(dir.path(), "c", &url)];
    let endpoint = Req::new("POST", format!("{}/v1/webhook_endpoints", servers[0].base))
        .key(TEST_KEY)
        .json(&json!({"url": receiver.url("/limited"), "enabled_events": ["*"], "rate_limit": 20, "max_in_flight": 2}))
        .send();
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    // Published through every process, so each claims some of the attempts.
    let mut accepted = Vec::new();
    for n in 0..EVENTS {
        match publish(&servers[n % 3].base, n) {
            Some(Ok(id)) => accepted.push(id),
            other => panic!("publish {n}: {other:?}"),
        }
    }

    // Part way through, the one process sending to the endpoint is killed: the others
    // take over once its lease (3 s here) runs out, within the same limits.
    receiver.wait_for("/limited", 30, Duration::from_secs(30));
    let sending: Vec<usize> =
        (0..3).filter(|i| metric(&servers[*i].base, "stile_endpoints_sending") == Some(1.0)).collect();
    assert_eq!(sending.len(), 1, "one sender to the endpoint, not {sending:?}");
    servers.remove(sending[0]).kill_hard();

    let all_arrived = eventually(Duration::from_secs(60), || {
        let received = receiver.received("/limited");
        let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
        accepted.iter().all(|id| ids.contains(id.as_str()))
    });
    let received = receiver.received("/limited");
    assert!(all_arrived, "{} requests, not every accepted event", received.len());
    let arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
    let busiest = arrivals
        .iter()
        .map(|t| arrivals.iter().filter(|a| **a >= *t && **a < *t + Duration::from_secs(1)).count())
        .max()
        .unwrap();
    assert!(
        busiest <= 20 + crate::flow_control::ARRIVAL_SLACK,
        "{busiest} requests in one second against a rate_limit of 20 over three processes"
    );
    let open_at = |t: Instant| arrivals.iter().filter(|a| **a <= t && t < **a + HOLD).count();
    let most_open = arrivals.iter().map(|t| open_at(*t)).max().unwrap();
    assert!(most_open <= 2, "{most_open} requests open at once against max_in_flight 2");
    // Made twice: what the killed sender had in flight (at most 2) and what had been
    // answered but not yet committed (the writer commits results within about 20 ms; at
    // 20 a second, one or two).
    let duplicates = received.len() - accepted.len();
    assert!(duplicates <= 4, "{duplicates} made twice; the killed sender had at most 2 in flight");
    let span = *arrivals.last().unwrap() - arrivals[0];
    eprintln!(
        "rate 20/s, 2 in flight, 3 processes, sender killed: {EVENTS} events in {span:?}, busiest second {busiest}, {duplicates} made twice"
    );
}

#[test]
fn a_pause_is_shown_by_every_process_and_outlives_the_kill_of_the_sender_that_set_it() {
    // Asked for 8 s; the sender is killed at once, and the others take over when its lease
    // (3 s) runs out: a pause kept only in the sender's memory would end then.
    const PAUSE: Duration = Duration::from_secs(8);
    let Some(cluster) = cluster() else { return };
    let url = cluster.new_database().expect("a database");
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/busy", crate::common::receiver::Behaviour::RetryAfterOnce(429, "8"));
    let mut servers = vec![start(dir.path(), "a", &url), start(dir.path(), "b", &url), start(dir.path(), "c", &url)];
    let endpoint = Req::new("POST", format!("{}/v1/webhook_endpoints", servers[0].base))
        .key(TEST_KEY)
        .json(&json!({"url": receiver.url("/busy"), "enabled_events": ["*"], "max_in_flight": 1}))
        .send();
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    let id = endpoint.body["id"].as_str().unwrap().to_string();
    for (n, server) in servers.iter().enumerate() {
        assert!(matches!(publish(&server.base, n), Some(Ok(_))), "publish {n}");
    }
    receiver.wait_for("/busy", 1, Duration::from_secs(15));

    // Every process shows the pause and the three deliveries it holds back.
    for server in &servers {
        let get = |path: &str| Req::new("GET", format!("{}{path}", server.base)).key(TEST_KEY).send().body;
        let flow = crate::flow_control::flow_when(get, &id, |f| f["reason"] == "paused" && f["waiting"] == 3);
        assert_eq!(flow["throttled"], true, "{flow}");
        // A test ping through any process waits for the pause too.
        let ping = Req::new("POST", format!("{}/v1/webhook_endpoints/{id}/test", server.base)).key(TEST_KEY).send();
        assert_eq!(ping.status, 429, "a ping to a paused endpoint: {}", ping.text);
    }
    assert_eq!(receiver.count("/busy"), 1, "pinged while paused");
    let sending: Vec<usize> =
        (0..3).filter(|i| metric(&servers[*i].base, "stile_endpoints_sending") == Some(1.0)).collect();
    assert_eq!(sending.len(), 1, "one sender to the endpoint, not {sending:?}");
    servers.remove(sending[0]).kill_hard();

    let received = receiver.wait_for("/busy", 4, Duration::from_secs(30));
    let gap = received[1].at - received[0].at;
    assert!(gap >= PAUSE - Duration::from_millis(50), "sent to again {gap:?} after a 429 asking for {PAUSE:?}");
    eprintln!("paused for {PAUSE:?}, sender killed: the next request came {gap:?} after the 429");
}
