//! Accepted events are never lost: kill -9 and SIGTERM under load, with a real receiver.
//!
//! `STILE_TEST_LOAD_EVENTS` scales the load (default 2,500 events per test; CI runs the
//! default, a longer soak can use more).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, TEST_KEY, eventually};

const PATHS: [&str; 3] = ["/a", "/b", "/flaky"];

fn load_events() -> u64 {
    std::env::var("STILE_TEST_LOAD_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_500)
}

fn start(dir: &Path) -> ServerProcess {
    let env = [
        ("STILE_AUTH_KEYS", TEST_KEY),
        ("STILE_DELIVERY_RETRY_SCHEDULE", "100ms,200ms,400ms,800ms"),
        ("STILE_DELIVERY_TIMEOUT", "5s"),
    ];
    ServerProcess::start(dir, &["--listen", "127.0.0.1:0", "--data-dir", "data"], &env).expect("server starts")
}

/// What the publishers learnt: sequence numbers acknowledged with a 200, and those whose
/// request failed without an answer (the server may or may not have stored them).
#[derive(Default)]
struct Ledger {
    acked: Mutex<HashSet<u64>>,
    unknown: Mutex<HashSet<u64>>,
}

/// Publishes events with sequence numbers from `next` until `stop` or `total`, to
/// whatever server `base` currently names.
fn publishers(
    count: usize,
    base: Arc<Mutex<String>>,
    next: Arc<AtomicU64>,
    total: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Ledger>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let (base, next, stop, ledger) = (Arc::clone(&base), Arc::clone(&next), Arc::clone(&stop), Arc::clone(&ledger));
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .proxy(None)
                    .build()
                    .into();
                while !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        break;
                    }
                    let current = base.lock().unwrap().clone();
                    let url = format!("{current}/v1/events");
                    let body = json!({"type": "verification_session.verified", "data": {"id": format!("vks_{seq}"), "seq": seq}});
                    match agent.post(&url).header("authorization", format!("Bearer {TEST_KEY}")).send_json(body) {
                        Ok(resp) if resp.status() == 200 => {
                            ledger.acked.lock().unwrap().insert(seq);
                        }
                        Ok(resp) if resp.status().is_server_error() => {
                            // 503 while shutting down: not accepted, maybe not stored.
                            ledger.unknown.lock().unwrap().insert(seq);
                        }
                        Ok(resp) => panic!("publish {seq} answered {}", resp.status()),
                        Err(_) => {
                            ledger.unknown.lock().unwrap().insert(seq);
                            // The server is down: wait for the next one (bounded).
                            let back = eventually(Duration::from_secs(20), || {
                                stop.load(Ordering::Relaxed) || *base.lock().unwrap() != current
                            });
                            assert!(back, "no server came back");
                        }
                    }
                }
            })
        })
        .collect()
}

/// Checks every acked event reached every endpoint, nothing unpublished arrived, and
/// counts duplicates. Returns the number of duplicate deliveries.
fn check_deliveries(receiver: &Receiver, ledger: &Ledger, deadline: Duration) -> usize {
    let acked = ledger.acked.lock().unwrap().clone();
    let unknown = ledger.unknown.lock().unwrap().clone();
    let seq_of = |r: &crate::common::receiver::Received| r.json()["data"]["seq"].as_u64().unwrap();
    let complete = eventually(deadline, || {
        PATHS.iter().all(|path| {
            let got: HashSet<u64> = receiver.received(path).iter().map(seq_of).collect();
            acked.is_subset(&got)
        })
    });
    let mut duplicates = 0;
    for path in PATHS {
        let received = receiver.received(path);
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for r in &received {
            *counts.entry(seq_of(r)).or_default() += 1;
        }
        let missing: Vec<&u64> = acked.iter().filter(|s| !counts.contains_key(s)).take(10).collect();
        assert!(complete && missing.is_empty(), "{path}: acked events never delivered, e.g. {missing:?}");
        for seq in counts.keys() {
            assert!(acked.contains(seq) || unknown.contains(seq), "{path}: event {seq} was never published");
        }
        // The flaky endpoint gets every event twice by design (its first try fails).
        let expected_per_event = if path == "/flaky" { 2 } else { 1 };
        duplicates += counts.values().map(|n| n.saturating_sub(expected_per_event)).sum::<usize>();
    }
    duplicates
}

fn no_attempt_stuck_pending(server: &ServerProcess, endpoints: &[String]) {
    for endpoint in endpoints {
        let url = format!("{}/v1/webhook_endpoints/{endpoint}/deliveries?status=pending", server.base);
        let settled = eventually(Duration::from_secs(20), || {
            Req::new("GET", url.clone()).key(TEST_KEY).send().body["data"].as_array().is_some_and(|d| d.is_empty())
        });
        assert!(settled, "attempts of {endpoint} stuck pending");
    }
}

fn create_endpoints(server: &ServerProcess, receiver: &Receiver) -> Vec<String> {
    PATHS
        .iter()
        .map(|path| {
            let resp = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
                .key(TEST_KEY)
                .json(&json!({"url": receiver.url(path), "enabled_events": ["*"]}))
                .send();
            assert_eq!(resp.status, 200, "{}", resp.text);
            resp.body["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn kill_9_at_random_moments_under_load_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/flaky", Behaviour::FailFirstPerEvent);
    let mut server = start(dir.path());
    let endpoints = create_endpoints(&server, &receiver);

    let total = load_events();
    let base = Arc::new(Mutex::new(server.base.clone()));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Ledger::default());
    let threads = publishers(16, Arc::clone(&base), Arc::clone(&next), total, Arc::clone(&stop), Arc::clone(&ledger));

    let kills = 3;
    for _ in 0..kills {
        // Kill somewhere in the burst, while publishes, deliveries and retries are in flight.
        let published_before = next.load(Ordering::Relaxed);
        let target = (published_before + total / (kills + 1)).min(total);
        let pause = Duration::from_millis(fastrand::u64(0..150));
        assert!(eventually(Duration::from_secs(60), || next.load(Ordering::Relaxed) >= target));
        std::thread::sleep(pause);
        server.kill_hard();
        server = start(dir.path());
        *base.lock().unwrap() = server.base.clone();
    }
    for t in threads {
        t.join().unwrap();
    }
    let acked = ledger.acked.lock().unwrap().len();
    // Each publisher loses at most the one publish it had in flight at each kill.
    let unknown = ledger.unknown.lock().unwrap().len();
    assert!(unknown <= 16 * kills as usize, "{unknown} publishes without an answer");
    assert_eq!(acked + unknown, total as usize);
    let duplicates = check_deliveries(&receiver, &ledger, Duration::from_secs(60));
    // Only attempts in flight (sent, or finished but not yet recorded) at a kill repeat,
    // and the engine keeps at most twice `delivery.workers` (64) of those.
    assert!(duplicates <= kills as usize * 128, "{duplicates} duplicate deliveries after {kills} kills");
    no_attempt_stuck_pending(&server, &endpoints);
    eprintln!("kill -9 under load: {acked} acked events, {kills} kills, {duplicates} duplicates");
}

#[test]
fn sigterm_mid_burst_exits_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/flaky", Behaviour::FailFirstPerEvent);
    let server = start(dir.path());
    let endpoints = create_endpoints(&server, &receiver);

    let total = load_events();
    let base = Arc::new(Mutex::new(server.base.clone()));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Ledger::default());
    let threads = publishers(16, Arc::clone(&base), Arc::clone(&next), total, Arc::clone(&stop), Arc::clone(&ledger));
    assert!(eventually(Duration::from_secs(60), || next.load(Ordering::Relaxed) >= total / 2));
    let started = Instant::now();
    assert_eq!(server.terminate(), Some(0), "SIGTERM exits 0");
    assert!(started.elapsed() < Duration::from_secs(5), "within the delivery timeout: {:?}", started.elapsed());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let server = start(dir.path());
    let duplicates = check_deliveries(&receiver, &ledger, Duration::from_secs(60));
    assert_eq!(duplicates, 0, "a graceful stop repeats nothing");
    no_attempt_stuck_pending(&server, &endpoints);
}
