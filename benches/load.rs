//! Load benchmark: `cargo bench --bench load [-- --quick]`.
//!
//! Starts the release `stile` binary on loopback with a temp data dir, runs its own
//! receiver, creates endpoints through the API, publishes through `POST /v1/events` over
//! keep-alive connections, and reports publishes/s, deliveries/s, end-to-end latency
//! (receiver arrival minus the moment the publish was sent), missing and duplicate
//! deliveries, and the server's CPU time, peak RSS and bytes written to disk per
//! delivery. One JSON line per workload, then a
//! table. "W1 shaped" is W1 with a three-line transformation and a two-clause content
//! filter on its endpoint (every event passes both). Exits non-zero if any delivery is missing. All traffic stays on 127.0.0.1 and
//! every loop is bounded in count and time. `--whbench PATH` (whbench, built as
//! `../shared/tools/whbench/README.md` says) adds the machine's ceiling: W1 and W2 through
//! whbench against its no-durability `mock-stile` and against stile, round by round, each
//! as a share of the ceiling of its round (`load/ceiling.rs`; `--only ceiling` for those
//! alone); with `--file-events N` too, the data file's size once N events published by
//! whbench to one endpoint are delivered. `STILE_BENCH_BIN=path` runs another build of
//! the server (an A/B against an earlier commit, interleaved in the same hour);
//! `STILE_BENCH_PID_FILE=path` writes the server's pid there once a workload's setup is
//! done, so a profiler can attach for the workload alone (`perf record -p`).
//! `--only W6 [--history N]` builds a history of N events (default 1,000,000) and times
//! each list filter over it, the Deliveries page's too (not part of the default run: it
//! takes minutes; with `--postgres 1`, on Postgres);
//! `STILE_BENCH_KEEP=dir` keeps its data directory there for `stile inspect`.
//! `--only W7`: 10,000 endpoints in one application, 1,000 subscribed to what is
//! published (also not in the default run); `--only W7 --filter`: the 1,000 with a
//! two-clause content filter each, which every event passes (the filters' cost alone). `--only W8 [--duration S]`: 1,000 events/s
//! for S seconds (default 600) with a retention of 2 minutes: the data file's size over
//! time and publish latency while pruning runs (not in the default run).
//! `--only W9 [--events N]`: N events (default 10 M) written into a data file through the
//! store, then the time from starting the server on it to its first list, and its peak
//! RSS (not in the default run).
//! `--only W10`: B publishes 200 events/s for 15 s to a fast endpoint, alone and while
//! A's backlog of 50,000 drains to a 200 ms endpoint with `max_in_flight` 8: B's p99
//! with A ÷ without (not in the default run).
//! `--only W11`: 6,000 events to one endpoint with a `rate_limit` of 100 (with
//! `--postgres 3`, through three processes): the busiest second at the receiver and the
//! time taken (also not in the default run).
//! `--postgres N`: W1-W4 on the Postgres backend, a throwaway cluster whose commits wait for
//! the disk (fsync on), with N stile processes per workload and the publishers spread
//! over them; it adds Postgres' own CPU per delivery (the postmaster and its backends)
//! and the commits and rows it wrote per delivery (`pg_stat_database`). With
//! `--pg-statements` too, it loads `pg_stat_statements` and prints, after each workload,
//! the statements that took the database's time (calls, microseconds and rows per
//! delivery).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[path = "load/ceiling.rs"]
mod ceiling;

const KEY: &str = "vk_test_benchmark_key_0000000000000";
/// Filler in each published event of W1-W4, so the body delivered is about 200 bytes
/// (the size the storage targets are stated for); the run reports the exact size.
const PADDING: &str = "ppppppppppppppppppp";
/// No workload may run longer than this.
const WORKLOAD_DEADLINE: Duration = Duration::from_secs(120);

/// Arrivals at the receiver: (endpoint path, sequence number) → arrival times.
#[derive(Default)]
struct Arrivals {
    times: Mutex<HashMap<(String, u64), Vec<Instant>>>,
    count: AtomicUsize,
    /// While set, requests are held (the endpoint is "down" but accepts connections).
    stalled: AtomicBool,
    /// The largest body received, to state the payload size with the figures.
    body_bytes: AtomicUsize,
}

struct ReceiverHandle {
    base: String,
    arrivals: Arc<Arrivals>,
}

fn start_receiver() -> ReceiverHandle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(Arrivals::default());
    let shared = web::Data::from(Arc::clone(&arrivals));
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(receive)))
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
        })
    });
    ReceiverHandle { base, arrivals }
}

async fn receive(req: HttpRequest, body: web::Bytes, arrivals: web::Data<Arrivals>) -> HttpResponse {
    let held = Instant::now();
    // W10's slow endpoint answers in 200 ms.
    if req.path().starts_with("/slow") {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    while arrivals.stalled.load(Ordering::Relaxed) && held.elapsed() < WORKLOAD_DEADLINE {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let now = Instant::now();
    let seq = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["seq"].as_u64())
        .unwrap_or(u64::MAX);
    arrivals.times.lock().unwrap().entry((req.path().to_string(), seq)).or_default().push(now);
    arrivals.count.fetch_add(1, Ordering::Relaxed);
    arrivals.body_bytes.fetch_max(body.len(), Ordering::Relaxed);
    HttpResponse::Ok().finish()
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    start_server_in(tempfile::tempdir().unwrap(), &[])
}

/// The server `child` once it says where it listens (its start-up summary ends with the
/// API key lines).
fn serving(mut child: Child, dir: tempfile::TempDir) -> Server {
    let stdout = child.stdout.take().unwrap();
    let mut base = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(url) = line.trim().strip_prefix("listening  ") {
            base = Some(url.trim().to_string());
        }
        if line.trim_start().starts_with("API key") {
            break;
        }
    }
    Server { child, base: base.expect("a listen line"), _dir: dir }
}

/// Starts the binary on the data in `dir` with extra environment; returns once it serves.
fn start_server_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
    // `STILE_BENCH_BIN` runs another build (an A/B against an earlier commit's binary).
    let binary = std::env::var_os("STILE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_stile").into());
    let mut command = Command::new(binary);
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STILE_AUTH_KEYS", KEY)
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    serving(command.spawn().expect("the stile binary starts"), dir)
}

impl Server {
    /// Kills the server with SIGKILL and hands back its data directory.
    fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._dir, dir)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().into()
}

/// POSTs one event and checks the answer is 200. The answer is read to its end: ureq
/// puts a connection back in its pool only then, so an unread answer would mean a new
/// connection for every publish.
fn publish(agent: &ureq::Agent, target: &str, body: serde_json::Value) {
    publish_in(agent, target, body, None);
}

/// Publishes `body` into `app` (the bench's own application, `--app`, when `None`).
fn publish_in(agent: &ureq::Agent, target: &str, body: serde_json::Value, app: Option<&str>) {
    let req = agent.post(target).header("authorization", format!("Bearer {KEY}"));
    let req = match app {
        Some(app) => req.header("stile-app", app),
        None => as_app(req),
    };
    let mut resp = req.send_json(body).expect("publish answered");
    assert_eq!(resp.status(), 200, "publish failed");
    resp.body_mut().read_to_vec().expect("publish answer read");
}

fn create_endpoint(server: &Server, url: &str) {
    create_endpoint_in(server, url, APP.get().map(|s| s.as_str()), false);
}

/// "W1 shaped": the three-line transformation and the two-clause filter on its endpoint,
/// which every event passes (it keeps `data.seq`, which the receiver counts by).
const SHAPED_CODE: &str = "function handler(webhook) {
  webhook.payload.data.shaped = webhook.eventType;
  webhook.headers['x-shaped'] = '1';
  return webhook;
}";

fn create_endpoint_in(server: &Server, url: &str, app: Option<&str>, shaped: bool) {
    let mut body = serde_json::json!({"url": url, "enabled_events": ["*"]});
    if shaped {
        body["transformation"] = serde_json::json!({"code": SHAPED_CODE});
        body["filter"] = serde_json::json!({"type": "verification_session.verified", "data": {"seq": {"$gte": 0}}});
    }
    let mut req =
        agent().post(format!("{}/v1/webhook_endpoints", server.base)).header("authorization", format!("Bearer {KEY}"));
    if let Some(app) = app {
        req = req.header("stile-app", app);
    }
    let resp = req.send_json(body).unwrap();
    assert_eq!(resp.status(), 200);
}

/// With `--postgres N`: the cluster, and how many stile processes share it.
static POSTGRES: std::sync::OnceLock<(stile::store::postgres::throwaway::ThrowawayPostgres, usize)> =
    std::sync::OnceLock::new();

/// The payload key every stile process of a Postgres run shares.
static SHARED_KEY_DIR: std::sync::LazyLock<tempfile::TempDir> =
    std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());

/// The stile processes of a workload: one on a redb file, or with `--postgres N`, N on a
/// new database of the cluster (and its name).
fn start_stile() -> (Vec<Server>, Option<String>) {
    let Some((cluster, processes)) = POSTGRES.get() else { return (vec![start_server()], None) };
    let url = cluster.new_database().expect("a database");
    let name = url.rsplit('/').next().unwrap().to_string();
    let key_file = SHARED_KEY_DIR.path().join(format!("{name}.key"));
    let env = [
        ("STILE_STORE_BACKEND", "postgres"),
        ("STILE_STORE_POSTGRES_URL", url.as_str()),
        ("STILE_STORE_PAYLOAD_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let servers = (0..*processes).map(|_| start_server_in(tempfile::tempdir().unwrap(), &env)).collect();
    (servers, Some(name))
}

/// With `--pg-statements` (and `--postgres N`): where the database's time goes, per
/// statement, printed after each workload.
static PG_STATEMENTS: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// Forgets the statement statistics gathered so far (before a workload).
fn reset_statements() {
    if let (Some(()), Some((cluster, _))) = (PG_STATEMENTS.get(), POSTGRES.get()) {
        cluster.sql("SELECT pg_stat_statements_reset()").expect("reset");
    }
}

/// Prints the statements of database `name` that took the most execution time, per
/// delivery, to stderr.
fn print_statements(name: &str, workload: &str, delivered: usize) {
    let (Some(()), Some((cluster, _))) = (PG_STATEMENTS.get(), POSTGRES.get()) else { return };
    let per = delivered.max(1) as f64;
    let sql = format!(
        "SELECT calls / {per}::float8, total_exec_time * 1000 / {per}, total_plan_time * 1000 / {per},
             rows / {per}::float8, regexp_replace(left(query, 100), '\\s+', ' ', 'g')
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{name}')
         ORDER BY total_exec_time + total_plan_time DESC LIMIT 15"
    );
    let out = cluster.sql(&sql).unwrap_or_else(|e| e);
    eprintln!("{workload}: statements by time (per delivery: calls, us executing, us planning, rows; query)");
    for line in out.lines() {
        let cols: Vec<&str> = line.splitn(5, '|').collect();
        if let [calls, us, plan_us, rows, query] = cols[..] {
            let num = |v: &str| v.trim().parse::<f64>().unwrap_or(f64::NAN);
            eprintln!(
                "  {:>6.2} {:>8.1} {:>8.1} {:>6.2}  {}",
                num(calls),
                num(us),
                num(plan_us),
                num(rows),
                query.trim()
            );
        }
    }
}

/// CPU seconds the Postgres cluster has used: the postmaster, its live backends, and the
/// backends it has reaped.
fn postgres_cpu_s() -> f64 {
    let Some(postmaster) = POSTGRES.get().and_then(|(c, _)| c.postmaster_pid()) else { return 0.0 };
    let fields = |pid: &str| -> Vec<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().unwrap_or("").split_whitespace().map(str::to_string).collect()
    };
    let ticks = |f: &[String], from: usize, to: usize| -> f64 {
        (from..=to).map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)).sum()
    };
    let own = fields(&postmaster.to_string());
    let mut total = ticks(&own, 11, 14); // utime, stime, cutime, cstime
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let f = fields(&name);
        if f.get(1).is_some_and(|ppid| *ppid == postmaster.to_string()) {
            total += ticks(&f, 11, 12);
        }
    }
    total / 100.0
}

/// (commits, rows inserted + updated + deleted) of database `name` so far.
fn postgres_writes(name: &str) -> (f64, f64) {
    let Some((cluster, _)) = POSTGRES.get() else { return (0.0, 0.0) };
    let sql = format!(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = '{name}'"
    );
    let out = cluster.sql(&sql).unwrap_or_default();
    let mut parts = out.split('|').map(|v| v.trim().parse::<f64>().unwrap_or(0.0));
    (parts.next().unwrap_or(0.0), parts.next().unwrap_or(0.0))
}

/// The application (uid) every request of the run acts on, with `--app`; else the default.
static APP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How many applications the server holds, with `--apps N` (the run's own among them).
static APPS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Endpoints each of the other applications has, with `--apps N`.
const ENDPOINTS_PER_OTHER_APP: usize = 10;

/// A request as the run's application, if it has one.
fn as_app<B>(req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match APP.get() {
        Some(app) => req.header("stile-app", app.as_str()),
        None => req,
    }
}

/// Creates the run's application and, with `--apps N`, N - 1 others with
/// [`ENDPOINTS_PER_OTHER_APP`] endpoints each (never sent anything).
fn create_apps(server: &Server, receiver: &ReceiverHandle) {
    let Some(app) = APP.get() else { return };
    let create = |name: &str| {
        let resp = agent()
            .post(format!("{}/v1/apps", server.base))
            .header("authorization", format!("Bearer {KEY}"))
            .send_json(serde_json::json!({"name": name, "uid": name}))
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    for n in 1..APPS.get().copied().unwrap_or(1) {
        let other = format!("other-{n}");
        create(&other);
        for e in 0..ENDPOINTS_PER_OTHER_APP {
            create_endpoint_in(server, &format!("{}/other/{n}/{e}", receiver.base), Some(&other), false);
        }
    }
    create(app);
}

/// `filter` as a query parameter's value.
fn search(filter: &str) -> String {
    form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

/// W6: a long history, then filtered lists over it. `events` events in the default
/// application, each delivered to a receiver; 1 in 1,000 of a rare type, 1 in 1,000 with
/// a rare session id, 1 in 1,000 also going to an endpoint on a closed port that fails for
/// good. Then each filter of the events and of the deliveries, and a page deep in the
/// history, is asked for `REPEAT` times: p50 and p99. With `--postgres 1`, on Postgres.
fn history(events: u64) -> serde_json::Value {
    const REPEAT: usize = 40;
    let receiver = start_receiver();
    let mut env = vec![
        ("STILE_EVENTS_CUSTOM_TYPES", "w6.common,w6.rare,w6.fail".to_string()),
        ("STILE_DELIVERY_RETRY_SCHEDULE", "50ms".to_string()),
    ];
    if let Some((cluster, _)) = POSTGRES.get() {
        let url = cluster.new_database().expect("a database");
        let key_file = SHARED_KEY_DIR.path().join("w6.key");
        env.push(("STILE_STORE_BACKEND", "postgres".to_string()));
        env.push(("STILE_STORE_POSTGRES_URL", url));
        env.push(("STILE_STORE_PAYLOAD_KEY_FILE", key_file.to_str().unwrap().to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let server = start_server_in(tempfile::tempdir().unwrap(), &env);
    let endpoint = |url: String, types: &str| -> String {
        let mut resp = agent()
            .post(format!("{}/v1/webhook_endpoints", server.base))
            .header("authorization", format!("Bearer {KEY}"))
            .send_json(serde_json::json!({"url": url, "enabled_events": [types]}))
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        answer["id"].as_str().unwrap().to_string()
    };
    let closed = endpoint("http://127.0.0.1:9/closed".to_string(), "w6.fail");
    endpoint(format!("{}/w6", receiver.base), "*");
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    // Every 10,000th event's id, for deep pages.
    let marks = Arc::new(Mutex::new(Vec::new()));
    let publishers: Vec<_> = (0..32)
        .map(|_| {
            let (next, marks, target) = (Arc::clone(&next), Arc::clone(&marks), format!("{}/v1/events", server.base));
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if i >= events || started.elapsed() > Duration::from_secs(900) {
                        break;
                    }
                    let event_type = match i % 1000 {
                        0 => "w6.rare",
                        1 => "w6.fail",
                        _ => "w6.common",
                    };
                    let session = if i % 1000 == 2 { "vks_rare".to_string() } else { format!("vks_{i}") };
                    let body = serde_json::json!({"type": event_type, "data": {"id": session, "n": i}});
                    let mut resp = agent
                        .post(&target)
                        .header("authorization", format!("Bearer {KEY}"))
                        .send_json(body)
                        .expect("publish answered");
                    assert_eq!(resp.status(), 200, "publish failed");
                    let text = resp.body_mut().read_to_string().expect("publish answer read");
                    if i.is_multiple_of(10_000) {
                        let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        marks.lock().unwrap().push((i, id));
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let publish_s = started.elapsed().as_secs_f64();
    let get = |path: &str| -> (f64, serde_json::Value) {
        let sent = Instant::now();
        let mut resp = agent()
            .get(format!("{}{path}", server.base))
            .header("authorization", format!("Bearer {KEY}"))
            .call()
            .expect("list answered");
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(resp.status(), 200, "{path}");
        (ms, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    };
    // Every event reaches the receiver, and the failing deliveries end (two attempts,
    // 50 ms apart), before lists are timed.
    let deadline = Instant::now() + Duration::from_secs(900);
    while (receiver.arrivals.count.load(Ordering::Relaxed) as u64) < events {
        assert!(Instant::now() < deadline, "deliveries did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let drained_s = started.elapsed().as_secs_f64();
    while get("/v1/events?type=w6.fail&limit=100").1["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["pending_webhooks"] != 0)
    {
        assert!(Instant::now() < deadline, "failing deliveries did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut marks = marks.lock().unwrap().clone();
    marks.sort();
    let middle = &marks[marks.len() / 2].1;
    let created = get(&format!("/v1/events/{middle}")).1["created"].as_i64().unwrap();
    let queries = [
        ("type (1 in 1,000)", "/v1/events?type=w6.rare&limit=10".to_string()),
        ("session_id (1 in 1,000)", "/v1/events?session_id=vks_rare&limit=10".to_string()),
        ("delivery_success=false (1 in 1,000)", "/v1/events?delivery_success=false&limit=10".to_string()),
        ("created_before (middle)", format!("/v1/events?created_before={created}&limit=10")),
        (
            "created window (1 s)",
            format!("/v1/events?created_after={}&created_before={}&limit=10", created - 1, created + 1),
        ),
        ("page 50 % deep", format!("/v1/events?limit=100&starting_after={middle}")),
        ("type + created_before", format!("/v1/events?type=w6.rare&created_before={created}&limit=10")),
        // Searches by content read at most 5,000 events (or 250 ms) a request.
        ("content search (1 in 1,000)", format!("/v1/events?limit=10&filter={}", search(r#"{"data.id": "vks_rare"}"#))),
        ("content search (no match)", format!("/v1/events?limit=10&filter={}", search(r#"{"data.n": -1}"#))),
        // The Deliveries page: every endpoint's attempts merged, newest first.
        ("deliveries", "/v1/deliveries?limit=20".to_string()),
        ("deliveries status=failed (1 in 1,000)", "/v1/deliveries?status=failed&limit=20".to_string()),
        ("deliveries event_type (1 in 1,000)", "/v1/deliveries?event_type=w6.rare&limit=20".to_string()),
        ("deliveries endpoint (1 in 1,000)", format!("/v1/deliveries?endpoint={closed}&limit=20")),
    ];
    let mut lists = serde_json::Map::new();
    for (name, path) in &queries {
        let mut times: Vec<f64> = (0..REPEAT).map(|_| get(path).0).collect();
        times.sort_by(f64::total_cmp);
        let found = get(path).1["data"].as_array().unwrap().len();
        assert!(found > 0 || name.contains("no match"), "{name} found nothing");
        lists.insert(
            name.to_string(),
            serde_json::json!({"p50_ms": percentile(&times, 0.5), "p99_ms": percentile(&times, 0.99), "found": found}),
        );
    }
    let file_bytes = std::fs::metadata(server._dir.path().join("data/stile.redb")).map(|m| m.len()).unwrap_or(0);
    // `STILE_BENCH_KEEP=dir`: keep the history's data directory there (for `stile inspect`).
    if let Some(keep) = std::env::var_os("STILE_BENCH_KEEP") {
        let dir = server.kill();
        let _ = std::fs::rename(dir.path().join("data"), &keep);
    }
    serde_json::json!({
        "workload": "W6 history",
        "events": events,
        "publish_s": publish_s,
        "publishes_per_s": (events as f64 / publish_s).round(),
        "delivered_in_s": drained_s,
        "file_bytes_per_event": (file_bytes as f64 / events as f64).round(),
        "lists": lists,
    })
}

/// Publishes `events` events (`body(seq)`) from 8 publishers, paced at `rate` per second
/// from `started` if given, until `deadline` after it; returns, for each, when it was sent
/// (seconds after `started`) and how long the publish took (ms).
fn timed_publishes(
    server: &Server,
    events: u64,
    rate: Option<u64>,
    started: Instant,
    deadline: Duration,
    body: fn(u64) -> serde_json::Value,
) -> Vec<(f64, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let timed = Arc::new(Mutex::new(Vec::with_capacity(events as usize)));
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (next, timed, target) = (Arc::clone(&next), Arc::clone(&timed), format!("{}/v1/events", server.base));
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if seq >= events || started.elapsed() > deadline {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let sent = Instant::now();
                    publish(&agent, &target, body(seq));
                    let at = sent.duration_since(started).as_secs_f64();
                    timed.lock().unwrap().push((at, sent.elapsed().as_secs_f64() * 1000.0));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    std::mem::take(&mut *timed.lock().unwrap())
}

/// W7: many endpoints in one application. 10,000 endpoints, 1,000 of them subscribed to
/// the type published (with `filtered`, each with a two-clause content filter every event
/// passes); `events` events published by 8 publishers. Reports the publish latency (each
/// request, client side) and the fan-out's deliveries per second.
fn many_endpoints(events: u64, filtered: bool) -> serde_json::Value {
    const ENDPOINTS: usize = 10_000;
    const HOT: usize = 1_000;
    let receiver = start_receiver();
    let server = start_server_in(tempfile::tempdir().unwrap(), &[("STILE_EVENTS_CUSTOM_TYPES", "w7.hot,w7.cold")]);
    let setup = Instant::now();
    let setup_agent = agent();
    for n in 0..ENDPOINTS {
        let event_type = if n < HOT { "w7.hot" } else { "w7.cold" };
        let mut body = serde_json::json!({"url": format!("{}/w7/{n}", receiver.base), "enabled_events": [event_type]});
        if filtered && n < HOT {
            body["filter"] = serde_json::json!({"type": "w7.hot", "data": {"seq": {"$gte": 0}}});
        }
        let resp = setup_agent
            .post(format!("{}/v1/webhook_endpoints", server.base))
            .header("authorization", format!("Bearer {KEY}"))
            .send_json(body)
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let started = Instant::now();
    let timed = timed_publishes(
        &server,
        events,
        None,
        started,
        WORKLOAD_DEADLINE,
        |seq| serde_json::json!({"type": "w7.hot", "data": {"seq": seq}}),
    );
    let mut latencies: Vec<f64> = timed.iter().map(|(_, ms)| *ms).collect();
    let expected = events as usize * HOT;
    while receiver.arrivals.count.load(Ordering::Relaxed) < expected && started.elapsed() < WORKLOAD_DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered = receiver.arrivals.count.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    serde_json::json!({
        "workload": if filtered { "W7 many endpoints, filtered" } else { "W7 many endpoints" },
        "endpoints": ENDPOINTS,
        "subscribed": HOT,
        "events": events,
        "setup_s": setup_s,
        "publish_ms": {"p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99)},
        "deliveries": delivered,
        "missing": expected.saturating_sub(delivered),
        "deliveries_per_s": (delivered as f64 / secs).round(),
    })
}

/// W8: retention under sustained load. `rate` events/s to one endpoint for `secs` seconds
/// with `[retention] events` of `retention_secs`: the data file's size every 5 s (it should
/// stop growing once pruning keeps pace), and the publish latency before pruning starts
/// and while it runs (pruning passes every tenth of the retention; the worst one-second
/// window's p99 shows whether a pass stalls publishing).
fn retention_under_load(rate: u64, secs: u64, retention_secs: u64) -> serde_json::Value {
    let receiver = start_receiver();
    let retention = format!("{retention_secs}s");
    let server = start_server_in(tempfile::tempdir().unwrap(), &[("STILE_RETENTION_EVENTS", retention.as_str())]);
    create_endpoint(&server, &format!("{}/w8", receiver.base));
    let file = server._dir.path().join("data/stile.redb");
    let events = rate * secs;
    let started = Instant::now();
    let deadline = Duration::from_secs(secs + 60);
    let sizes = std::thread::spawn({
        let file = file.clone();
        move || {
            let mut sizes = Vec::new();
            while started.elapsed() < Duration::from_secs(secs) {
                std::thread::sleep(Duration::from_secs(5));
                let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                sizes.push((started.elapsed().as_secs(), bytes));
            }
            sizes
        }
    });
    let latencies = timed_publishes(&server, events, Some(rate), started, deadline, |seq| {
        serde_json::json!({
            "type": "verification_session.verified",
            "data": {"id": format!("vks_{seq}"), "seq": seq, "note": PADDING},
        })
    });
    let sizes = sizes.join().unwrap();
    let wait_until = Instant::now() + Duration::from_secs(60);
    while receiver.arrivals.count.load(Ordering::Relaxed) < events as usize && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered = receiver.arrivals.count.load(Ordering::Relaxed);
    let p99_of = |keep: &dyn Fn(f64) -> bool| {
        let mut ms: Vec<f64> = latencies.iter().filter(|(at, _)| keep(*at)).map(|(_, ms)| *ms).collect();
        ms.sort_by(f64::total_cmp);
        (percentile(&ms, 0.5), percentile(&ms, 0.99), ms.len())
    };
    let pruning_from = retention_secs as f64;
    let (before_p50, before_p99, _) = p99_of(&|at| at < pruning_from);
    let (during_p50, during_p99, _) = p99_of(&|at| at >= pruning_from);
    // Each second's p99 once pruning runs, worst first: when they come (pruning passes
    // start every tenth of the retention) tells a pass holding the writer from noise.
    let mut seconds: Vec<(u64, f64)> = (retention_secs..secs)
        .map(|s| (s, p99_of(&|at| at >= s as f64 && at < (s + 1) as f64)))
        .filter(|(_, (_, _, n))| *n > 0)
        .map(|(s, (_, p99, _))| (s, p99))
        .collect();
    seconds.sort_by(|a, b| b.1.total_cmp(&a.1));
    let worst_second = seconds.first().map_or(0.0, |w| w.1);
    let worst_seconds: Vec<serde_json::Value> =
        seconds.iter().take(8).map(|(s, p99)| serde_json::json!({"at_s": s, "p99_ms": p99})).collect();
    let size_at = |t: u64| sizes.iter().find(|(at, _)| *at >= t).or(sizes.last()).map_or(0, |(_, b)| *b);
    serde_json::json!({
        "workload": "W8 retention",
        "rate": rate,
        "secs": secs,
        "retention_secs": retention_secs,
        "events": events,
        "delivered": delivered,
        "missing": (events as usize).saturating_sub(delivered),
        "file_mib": sizes.iter().map(|(t, b)| serde_json::json!([t, *b as f64 / 1048576.0])).collect::<Vec<_>>(),
        "file_mib_at_2x_retention": size_at(2 * retention_secs) as f64 / 1048576.0,
        "file_mib_at_end": sizes.last().map_or(0, |(_, b)| *b) as f64 / 1048576.0,
        "publish_ms_before_pruning": {"p50": before_p50, "p99": before_p99},
        "publish_ms_while_pruning": {"p50": during_p50, "p99": during_p99, "worst_second_p99": worst_second},
        "worst_seconds": worst_seconds,
    })
}

/// W10: a noisy neighbour. Application B publishes 200 events/s for `secs` seconds to a
/// fast endpoint, alone and then while application A's backlog of `backlog` events drains
/// to an endpoint that answers in 200 ms with `max_in_flight` 8 (through every process).
/// B's end-to-end p99 with A ÷ without (target at most 2).
fn noisy_neighbour(backlog: u64, secs: u64) -> serde_json::Value {
    let receiver = start_receiver();
    let (servers, _) = start_stile();
    let post = |path: &str, app: Option<&str>, body: serde_json::Value| {
        let mut req =
            agent().post(format!("{}{path}", servers[0].base)).header("authorization", format!("Bearer {KEY}"));
        if let Some(app) = app {
            req = req.header("stile-app", app);
        }
        let resp = req.send_json(body).unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    };
    post("/v1/apps", None, serde_json::json!({"name": "noisy", "uid": "noisy"}));
    let slow = format!("{}/slow/w10", receiver.base);
    post(
        "/v1/webhook_endpoints",
        Some("noisy"),
        serde_json::json!({"url": slow, "enabled_events": ["*"], "max_in_flight": 8}),
    );
    post(
        "/v1/webhook_endpoints",
        None,
        serde_json::json!({"url": format!("{}/w10b", receiver.base), "enabled_events": ["*"]}),
    );
    let targets: Vec<String> = servers.iter().map(|s| format!("{}/v1/events", s.base)).collect();

    // B at 200/s from `first`: each event's end-to-end time, in ms.
    let quiet = |first: u64| -> Vec<f64> {
        let events = 200 * secs;
        let started = Instant::now();
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let publishers: Vec<_> = (0..4)
            .map(|t| {
                let (sent, targets) = (Arc::clone(&sent), targets.clone());
                std::thread::spawn(move || {
                    let agent = agent();
                    for n in (t..events).step_by(4) {
                        let due = started + Duration::from_secs_f64(n as f64 / 200.0);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let seq = first + n;
                        let body = serde_json::json!({"type": "verification_session.verified", "data": {"id": format!("vks_{seq}"), "seq": seq, "note": PADDING}});
                        sent.lock().unwrap().insert(seq, Instant::now());
                        publish(&agent, &targets[n as usize % targets.len()], body);
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let arrived = |seq: &u64| receiver.arrivals.times.lock().unwrap().contains_key(&("/w10b".to_string(), *seq));
        while !sent.lock().unwrap().keys().all(arrived) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let times = receiver.arrivals.times.lock().unwrap();
        let sent = sent.lock().unwrap();
        let mut ms: Vec<f64> = sent
            .iter()
            .filter_map(|(seq, at)| {
                Some(times.get(&("/w10b".to_string(), *seq))?[0].duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let alone = quiet(1_000_000);
    // A's backlog, as fast as the processes take it.
    let next = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (next, targets) = (Arc::clone(&next), targets.clone());
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if n >= backlog {
                        break;
                    }
                    let body = serde_json::json!({"type": "verification_session.verified", "data": {"id": format!("vks_{n}"), "seq": n, "note": PADDING}});
                    publish_in(&agent, &targets[n as usize % targets.len()], body, Some("noisy"));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let noisy_queued = receiver.arrivals.times.lock().unwrap().keys().filter(|(path, _)| path == "/slow/w10").count();
    let with = quiet(2_000_000);
    let p99 = |ms: &[f64]| percentile(ms, 0.99);
    serde_json::json!({
        "workload": "W10 noisy neighbour",
        "processes": servers.len(),
        "backend": if POSTGRES.get().is_some() { "postgres" } else { "redb" },
        "backlog": backlog,
        "noisy_delivered_before_b": noisy_queued,
        "b_events": 200 * secs,
        "b_p50_ms_alone": percentile(&alone, 0.5),
        "b_p99_ms_alone": p99(&alone),
        "b_p50_ms_with_a": percentile(&with, 0.5),
        "b_p99_ms_with_a": p99(&with),
        "ratio_p99": p99(&with) / p99(&alone),
        "missing": (2 * 200 * secs) as usize - alone.len() - with.len(),
    })
}

/// W11: an exact rate. One endpoint with a `rate_limit` of `rate`; `events` events
/// published at once, spread over every stile process (`--postgres 3` for three); what the
/// receiver sees: the most requests in any one-second window `[t, t + 1 s)` (target:
/// `rate`, and at most the one more a request delayed on its way may add) and the time
/// from the first request to the last (target: within 5% of `(events - 1) / rate`).
fn exact_rate(events: u64, rate: u64) -> serde_json::Value {
    let receiver = start_receiver();
    let (servers, _) = start_stile();
    let body =
        serde_json::json!({"url": format!("{}/w11", receiver.base), "enabled_events": ["*"], "rate_limit": rate});
    let resp = agent()
        .post(format!("{}/v1/webhook_endpoints", servers[0].base))
        .header("authorization", format!("Bearer {KEY}"))
        .send_json(body)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let targets: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| format!("{}/v1/events", s.base)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (next, targets) = (Arc::clone(&next), Arc::clone(&targets));
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if seq >= events {
                        break;
                    }
                    let body = serde_json::json!({
                        "type": "verification_session.verified",
                        "data": {"id": format!("vks_{seq}"), "seq": seq, "note": PADDING},
                    });
                    publish(&agent, &targets[seq as usize % targets.len()], body);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(2 * events / rate + 60);
    while receiver.arrivals.count.load(Ordering::Relaxed) < events as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut times: Vec<Instant> = receiver.arrivals.times.lock().unwrap().values().flatten().copied().collect();
    times.sort();
    let mut busiest = 0;
    let mut from = 0;
    for (to, at) in times.iter().enumerate() {
        while *at >= times[from] + Duration::from_secs(1) {
            from += 1;
        }
        busiest = busiest.max(to + 1 - from);
    }
    let seconds = match (times.first(), times.last()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    let expected = (events - 1) as f64 / rate as f64;
    let delivered = receiver.arrivals.times.lock().unwrap().len();
    serde_json::json!({
        "workload": "W11 exact rate",
        "processes": servers.len(),
        "backend": if POSTGRES.get().is_some() { "postgres" } else { "redb" },
        "rate_limit": rate,
        "events": events,
        "delivered": delivered,
        "missing": (events as usize).saturating_sub(delivered),
        "requests": times.len(),
        "busiest_second": busiest,
        "seconds": seconds,
        "expected_seconds": expected,
        "off_by_pct": (seconds - expected) / expected * 100.0,
    })
}

/// W9: start-up with a long history. `events` events (no deliveries) written straight
/// into a data file through the store, in batches, then the server started on it: the
/// time until it serves a list and its memory then.
fn startup_with_history(events: u64) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let filled = Instant::now();
    {
        // Written as the engine's writer would write them (no engine runs here).
        let (_, store) = stile::store::Store::open(&data).expect("the data file opens").into_shared();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let owner = runtime.block_on(store.default_apps()).unwrap().of(stile::mode::Mode::Test);
        let start_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
            - events / 10;
        let mut n = 0;
        while n < events {
            let batch: Vec<_> = (n..(n + 20_000).min(events))
                .map(|i| {
                    let data = serde_json::json!({"id": format!("vks_{i}"), "seq": i, "note": PADDING});
                    stile::payload::new_event(owner, "verification_session.verified", &data, start_ms + i / 10).unwrap()
                })
                .collect();
            n += batch.len() as u64;
            let _ = runtime.block_on(store.publish_events(batch, start_ms + n / 10)).expect("the batch is stored");
        }
    }
    let fill_s = filled.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(data.join("stile.redb")).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let server = start_server_in(dir, &[]);
    let mut resp = agent()
        .get(format!("{}/v1/events?limit=10", server.base))
        .header("authorization", format!("Bearer {KEY}"))
        .call()
        .expect("list answered");
    assert_eq!(resp.status(), 200);
    let listed: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(10));
    let serving_s = started.elapsed().as_secs_f64();
    let (_, peak_rss_mib) = process_usage(server.child.id());
    serde_json::json!({
        "workload": "W9 start-up",
        "events": events,
        "fill_s": fill_s,
        "file_gib": file_bytes as f64 / 1073741824.0,
        "start_to_first_list_s": serving_s,
        "peak_rss_mib": peak_rss_mib,
    })
}

fn current_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// W5: an endpoint that accepts connections but never answers while `events` deliveries
/// queue up (one attempt in flight, the rest waiting); then the server is killed and
/// restarted with the endpoint healthy. Reports RSS with the backlog, start-up time to
/// serving, and the drain rate.
fn backlog(events: u64) -> serde_json::Value {
    let receiver = start_receiver();
    receiver.arrivals.stalled.store(true, Ordering::Relaxed);
    let slow = [("STILE_DELIVERY_PER_ENDPOINT_CONCURRENCY", "1"), ("STILE_DELIVERY_TIMEOUT", "10m")];
    let server = start_server_in(tempfile::tempdir().unwrap(), &slow);
    create_endpoint(&server, &format!("{}/e0", receiver.base));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..32)
        .map(|_| {
            let (next, target) = (Arc::clone(&next), format!("{}/v1/events", server.base));
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if seq >= events || started.elapsed() > Duration::from_secs(600) {
                        break;
                    }
                    let body = serde_json::json!({"type": "verification_session.verified", "data": {"seq": seq}});
                    publish(&agent, &target, body);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let publish_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let rss_with_backlog = current_rss_mib(server.child.id());
    let dir = server.kill();

    receiver.arrivals.stalled.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let before = receiver.arrivals.count.load(Ordering::Relaxed);
    let restarted = Instant::now();
    let server = start_server_in(dir, &[]);
    let startup_secs = restarted.elapsed().as_secs_f64();
    let drain_started = Instant::now();
    while receiver.arrivals.count.load(Ordering::Relaxed) < before + events as usize
        && drain_started.elapsed() < Duration::from_secs(900)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = receiver.arrivals.count.load(Ordering::Relaxed) - before;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let (_, peak_rss) = process_usage(server.child.id());
    serde_json::json!({
        "workload": "W5 backlog",
        "events": events,
        "publishes_per_s": (events as f64 / publish_secs).round(),
        "rss_with_backlog_mib": rss_with_backlog,
        "startup_to_serving_s": startup_secs,
        "drained": drained,
        "drain_per_s": (drained as f64 / drain_secs).round(),
        "peak_rss_while_draining_mib": peak_rss,
        "missing": (events as usize).saturating_sub(drained),
    })
}

/// The server's CPU seconds and peak RSS in MiB, from /proc.
fn process_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, hwm_kib / 1024.0)
}

/// Bytes the server has had written to storage so far (`write_bytes` of /proc/<pid>/io).
fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

struct Workload {
    name: &'static str,
    events: u64,
    endpoints: usize,
    publishers: usize,
    /// Events per second for a paced workload; `None` sends as fast as possible.
    rate: Option<u64>,
    /// Publish straight to the receiver instead of through stile: the reference.
    direct: bool,
    /// Its endpoints have a transformation and a content filter ("W1 shaped").
    shaped: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(workload: &Workload) -> serde_json::Value {
    let (servers, database) = start_stile();
    let servers_len = servers.len();
    let server = &servers[0];
    let receiver = start_receiver();
    let paths: Vec<String> = (0..workload.endpoints).map(|n| format!("/e{n}")).collect();
    if !workload.direct {
        create_apps(server, &receiver);
        for path in &paths {
            create_endpoint_in(
                server,
                &format!("{}{path}", receiver.base),
                APP.get().map(|s| s.as_str()),
                workload.shaped,
            );
        }
    }
    // Publishers are spread over the processes.
    let targets: Vec<String> = if workload.direct {
        vec![format!("{}/e0", receiver.base)]
    } else {
        servers.iter().map(|s| format!("{}/v1/events", s.base)).collect()
    };
    let cpu_of = |servers: &[Server]| servers.iter().map(|s| process_usage(s.child.id()).0).sum::<f64>();
    let cpu_before = cpu_of(&servers);
    let written_before: u64 = servers.iter().map(|s| written_bytes(s.child.id())).sum();
    let pg_cpu_before = postgres_cpu_s();
    let pg_before = database.as_deref().map(postgres_writes).unwrap_or_default();
    reset_statements();
    if let Ok(path) = std::env::var("STILE_BENCH_PID_FILE") {
        std::fs::write(path, server.child.id().to_string()).unwrap();
    }
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let publishers: Vec<_> = (0..workload.publishers)
        .map(|i| {
            let target = targets[i % targets.len()].clone();
            let (next, sent_at, total, rate) =
                (Arc::clone(&next), Arc::clone(&sent_at), workload.events, workload.rate);
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if seq >= total || started.elapsed() > WORKLOAD_DEADLINE {
                        break;
                    }
                    if let Some(rate) = rate {
                        // Paced: event `seq` goes at `seq / rate` seconds into the run.
                        let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let body = serde_json::json!({
                        "type": "verification_session.verified",
                        "data": {"id": format!("vks_{seq}"), "seq": seq, "note": PADDING},
                    });
                    sent_at.lock().unwrap().insert(seq, Instant::now());
                    publish(&agent, &target, body);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let expected = workload.events as usize * workload.endpoints;
    while receiver.arrivals.count.load(Ordering::Relaxed) < expected && started.elapsed() < WORKLOAD_DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    let total_secs = started.elapsed().as_secs_f64();
    let cpu_after = cpu_of(&servers);
    let rss_mib = servers.iter().map(|s| process_usage(s.child.id()).1).fold(0.0, f64::max);
    let written = servers.iter().map(|s| written_bytes(s.child.id())).sum::<u64>().saturating_sub(written_before);
    let pg_cpu = postgres_cpu_s() - pg_cpu_before;
    // The statistics reach pg_stat_database within a second of each transaction.
    let pg_after = match database.as_deref() {
        Some(name) => {
            std::thread::sleep(Duration::from_millis(1500));
            postgres_writes(name)
        }
        None => (0.0, 0.0),
    };

    let sent_at = sent_at.lock().unwrap();
    let arrivals = receiver.arrivals.times.lock().unwrap();
    let mut latencies = Vec::with_capacity(expected);
    let (mut missing, mut duplicates) = (0usize, 0usize);
    let mut last_arrival = started;
    for path in &paths {
        for seq in 0..workload.events {
            match arrivals.get(&(path.clone(), seq)) {
                None => missing += 1,
                Some(times) => {
                    duplicates += times.len() - 1;
                    last_arrival = last_arrival.max(times[0]);
                    if let Some(sent) = sent_at.get(&seq) {
                        latencies.push(times[0].duration_since(*sent).as_secs_f64() * 1000.0);
                    }
                }
            }
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let delivered = expected - missing;
    if let Some(name) = database.as_deref() {
        print_statements(name, workload.name, delivered);
    }
    let delivery_secs = last_arrival.duration_since(started).as_secs_f64().max(1e-9);
    let cpu = if workload.direct { 0.0 } else { cpu_after - cpu_before };
    // The data file once every delivery is recorded (stile on redb only: the others keep
    // nothing, Postgres is measured by what it wrote).
    let file_bytes = if workload.direct || database.is_some() { 0 } else { settled_file_bytes(server) };
    // And the bytes of the pages its tables use (the file less free space), stopped.
    let mut page_bytes = 0;
    if file_bytes > 0 {
        let dir = servers.into_iter().next().unwrap().kill();
        page_bytes = table_page_bytes(&dir.path().join("data"));
        if let Some(keep) = std::env::var_os("STILE_BENCH_KEEP") {
            let _ = std::fs::remove_dir_all(&keep);
            let _ = std::fs::rename(dir.path().join("data"), &keep);
        }
    }
    serde_json::json!({
        "workload": workload.name,
        "events": workload.events,
        "endpoints": workload.endpoints,
        "publishers": workload.publishers,
        "publishes_per_s": (workload.events as f64 / publish_secs).round(),
        "deliveries_per_s": (delivered as f64 / delivery_secs).round(),
        "e2e_ms": {
            "p50": percentile(&latencies, 0.50),
            "p90": percentile(&latencies, 0.90),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().copied().unwrap_or(f64::NAN),
        },
        "missing": missing,
        "duplicates": duplicates,
        "server_cpu_s": cpu,
        "cpu_ms_per_delivery": if delivered > 0 { cpu * 1000.0 / delivered as f64 } else { f64::NAN },
        "server_peak_rss_mib": rss_mib,
        "processes": servers_len,
        "postgres_cpu_ms_per_delivery": if delivered > 0 { pg_cpu * 1000.0 / delivered as f64 } else { f64::NAN },
        "pg_commits_per_delivery": if delivered > 0 { (pg_after.0 - pg_before.0) / delivered as f64 } else { f64::NAN },
        "pg_rows_written_per_delivery": if delivered > 0 { (pg_after.1 - pg_before.1) / delivered as f64 } else { f64::NAN },
        "disk_kib_per_delivery": if delivered > 0 { written as f64 / 1024.0 / delivered as f64 } else { f64::NAN },
        "body_bytes": receiver.arrivals.body_bytes.load(Ordering::Relaxed),
        "file_bytes_per_event": file_bytes as f64 / workload.events as f64,
        "page_bytes_per_event": page_bytes as f64 / workload.events as f64,
        "wall_s": total_secs,
    })
}

/// The size of the server's data file once no delivery is pending (the receiver has
/// each a little before the server commits its outcome).
fn settled_file_bytes(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut resp = as_app(agent().get(format!("{}/v1/delivery_stats", server.base)))
            .header("authorization", format!("Bearer {KEY}"))
            .call()
            .expect("stats answered");
        let stats: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        if stats["pending"].as_u64() == Some(0) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::metadata(server._dir.path().join("data/stile.redb")).map(|m| m.len()).unwrap_or(0)
}

/// The bytes of the pages every table of the data file in `data_dir` uses, as `stile
/// inspect` counts them (the server must be stopped).
fn table_page_bytes(data_dir: &std::path::Path) -> u64 {
    let binary = std::env::var_os("STILE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_stile").into());
    let output =
        Command::new(binary).arg("inspect").arg("--data-dir").arg(data_dir).output().expect("stile inspect runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with("all tables"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or(0)
}

/// CPU used by an idle server over a few seconds, as a percentage of one core.
fn idle_cpu_percent() -> f64 {
    let server = start_server();
    std::thread::sleep(Duration::from_secs(1));
    let (before, _) = process_usage(server.child.id());
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let (after, _) = process_usage(server.child.id());
    (after - before) / window.as_secs_f64() * 100.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let whbench: Option<String> = args.iter().position(|a| a == "--whbench").and_then(|i| args.get(i + 1)).cloned();
    let runs: usize =
        args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(1);
    let only: Option<String> = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    // `--app`: every request through an application of its own, not the default one;
    // `--apps N`: and N - 1 other applications with endpoints of their own beside it.
    let apps: Option<usize> =
        args.iter().position(|a| a == "--apps").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
    if args.iter().any(|a| a == "--app") || apps.is_some() {
        let _ = APP.set("bench".to_string());
        let _ = APPS.set(apps.unwrap_or(1).max(1));
    }
    if let Some(processes) =
        args.iter().position(|a| a == "--postgres").and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<usize>().ok())
    {
        let cluster = stile::store::postgres::throwaway::ThrowawayPostgres::start_durable()
            .expect("the Postgres runs need PostgreSQL installed");
        if args.iter().any(|a| a == "--pg-statements") {
            cluster.configure(&[("shared_preload_libraries", "pg_stat_statements")]).expect("pg_stat_statements loads");
            // Known only once the library is loaded.
            cluster.configure(&[("pg_stat_statements.track_planning", "on")]).expect("planning is tracked");
            cluster.sql("CREATE EXTENSION pg_stat_statements").expect("pg_stat_statements is installed");
            let _ = PG_STATEMENTS.set(());
        }
        let _ = POSTGRES.set((cluster, processes.max(1)));
    }
    let scale = if quick { 10 } else { 1 };
    let paced_secs = if quick { 3 } else { 15 };
    let workloads = [
        Workload {
            name: "W1 burst",
            events: 20_000 / scale,
            endpoints: 1,
            publishers: 32,
            rate: None,
            direct: false,
            shaped: false,
        },
        Workload {
            name: "W1 shaped",
            events: 20_000 / scale,
            endpoints: 1,
            publishers: 32,
            rate: None,
            direct: false,
            shaped: true,
        },
        Workload {
            name: "W2 fan-out",
            events: 2_000 / scale,
            endpoints: 10,
            publishers: 32,
            rate: None,
            direct: false,
            shaped: false,
        },
        Workload {
            name: "W3 200/s",
            events: 200 * paced_secs,
            endpoints: 1,
            publishers: 8,
            rate: Some(200),
            direct: false,
            shaped: false,
        },
        Workload {
            name: "W4 1000/s",
            events: 1_000 * paced_secs,
            endpoints: 1,
            publishers: 8,
            rate: Some(1_000),
            direct: false,
            shaped: false,
        },
        Workload {
            name: "reference",
            events: 20_000 / scale,
            endpoints: 1,
            publishers: 32,
            rate: None,
            direct: true,
            shaped: false,
        },
    ];
    let mut table = Vec::new();
    let mut failed = false;
    for workload in &workloads {
        if only.as_deref().is_some_and(|o| !workload.name.starts_with(o)) {
            continue;
        }
        // On Postgres, stile's workloads only (the reference is the same).
        if POSTGRES.get().is_some() && workload.direct {
            continue;
        }
        let results: Vec<serde_json::Value> = (0..runs).map(|_| run(workload)).collect();
        for r in &results {
            println!("{r}");
            failed |= r["missing"].as_u64() != Some(0);
        }
        let pick = |f: &dyn Fn(&serde_json::Value) -> f64| median(&mut results.iter().map(f).collect::<Vec<_>>());
        table.push((
            workload.name,
            pick(&|r| r["publishes_per_s"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["deliveries_per_s"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["e2e_ms"]["p50"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["e2e_ms"]["p99"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["e2e_ms"]["max"].as_f64().unwrap_or(f64::NAN)),
            results
                .iter()
                .map(|r| r["missing"].as_u64().unwrap_or(0) + r["duplicates"].as_u64().unwrap_or(0))
                .sum::<u64>(),
            pick(&|r| r["cpu_ms_per_delivery"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["server_peak_rss_mib"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["file_bytes_per_event"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["body_bytes"].as_f64().unwrap_or(f64::NAN)),
            pick(&|r| r["page_bytes_per_event"].as_f64().unwrap_or(f64::NAN)),
        ));
    }
    if only.as_deref().is_some_and(|o| o.starts_with("W10")) {
        let (backlog, secs) = if quick { (5_000, 5) } else { (50_000, 15) };
        let result = noisy_neighbour(backlog, secs);
        println!("{result}");
        println!(
            "W10 noisy neighbour: B at 200/s for {secs} s through {} {} process(es): p99 {:.2} ms alone, {:.2} ms while A's {backlog} drain to a 200 ms endpoint (ratio {:.2})",
            result["processes"],
            result["backend"].as_str().unwrap_or("?"),
            result["b_p99_ms_alone"].as_f64().unwrap_or(f64::NAN),
            result["b_p99_ms_with_a"].as_f64().unwrap_or(f64::NAN),
            result["ratio_p99"].as_f64().unwrap_or(f64::NAN),
        );
        failed |= result["missing"].as_u64() != Some(0);
    }
    if only.as_deref().is_some_and(|o| o.starts_with("W11")) {
        let events = if quick { 600 } else { 6_000 };
        let result = exact_rate(events, 100);
        println!("{result}");
        println!(
            "W11 exact rate: {events} events at a rate_limit of 100 through {} {} process(es): busiest second {} requests, first to last {:.2} s (expected {:.2} s, {:+.2}%)",
            result["processes"],
            result["backend"].as_str().unwrap_or("?"),
            result["busiest_second"],
            result["seconds"].as_f64().unwrap_or(f64::NAN),
            result["expected_seconds"].as_f64().unwrap_or(f64::NAN),
            result["off_by_pct"].as_f64().unwrap_or(f64::NAN),
        );
        failed |= result["missing"].as_u64() != Some(0);
    }
    let history_result = if only.as_deref().is_some_and(|o| o.starts_with("W6")) {
        let size =
            args.iter().position(|a| a == "--history").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        let result = history(size.unwrap_or(if quick { 50_000 } else { 1_000_000 }));
        println!("{result}");
        Some(result)
    } else {
        None
    };
    // The cluster lives in a static, which is never dropped: remove it now.
    if let Some((cluster, _)) = POSTGRES.get() {
        cluster.remove();
    }
    if only.as_deref().is_some_and(|o| o.starts_with("W7")) {
        let result = many_endpoints(if quick { 20 } else { 100 }, args.iter().any(|a| a == "--filter"));
        println!("{result}");
        failed |= result["missing"].as_u64() != Some(0);
    }
    if only.as_deref().is_some_and(|o| o.starts_with("W8")) {
        let secs =
            args.iter().position(|a| a == "--duration").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        let (secs, retention) = if quick { (40, 10) } else { (secs.unwrap_or(600), 120) };
        let result = retention_under_load(1_000, secs, retention);
        println!("{result}");
        println!(
            "W8 retention: 1,000 events/s for {secs} s, retention {retention} s: data file {:.1} MiB at 2x retention, {:.1} MiB at the end; publish p99 {:.2} ms before pruning, {:.2} ms while pruning (worst second {:.2} ms)",
            result["file_mib_at_2x_retention"].as_f64().unwrap_or(f64::NAN),
            result["file_mib_at_end"].as_f64().unwrap_or(f64::NAN),
            result["publish_ms_before_pruning"]["p99"].as_f64().unwrap_or(f64::NAN),
            result["publish_ms_while_pruning"]["p99"].as_f64().unwrap_or(f64::NAN),
            result["publish_ms_while_pruning"]["worst_second_p99"].as_f64().unwrap_or(f64::NAN),
        );
        failed |= result["missing"].as_u64() != Some(0);
    }
    if only.as_deref().is_some_and(|o| o.starts_with("W9")) {
        let size = args.iter().position(|a| a == "--events").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        let result = startup_with_history(size.unwrap_or(if quick { 200_000 } else { 10_000_000 }));
        println!("{result}");
        println!(
            "W9 start-up with {} events ({:.2} GiB): first list answered {:.2} s after start, peak RSS {:.1} MiB",
            result["events"],
            result["file_gib"].as_f64().unwrap_or(f64::NAN),
            result["start_to_first_list_s"].as_f64().unwrap_or(f64::NAN),
            result["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(whbench) = &whbench {
        if only.is_none() || only.as_deref() == Some("ceiling") {
            ceiling::run(whbench, runs.max(3));
        }
        let file_events =
            args.iter().position(|a| a == "--file-events").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        if let Some(events) = file_events {
            ceiling::file_size(whbench, events);
        }
    }
    let idle = if only.is_none() { Some(idle_cpu_percent()) } else { None };
    let backlog_result = if only.as_deref().is_none_or(|o| o.starts_with("W5")) {
        let size =
            args.iter().position(|a| a == "--backlog").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
        let result = backlog(size.unwrap_or(if quick { 50_000 } else { 1_000_000 }));
        println!("{result}");
        failed |= result["missing"].as_u64() != Some(0);
        Some(result)
    } else {
        None
    };
    if !table.is_empty() {
        println!();
        println!("medians of {runs} run(s); end-to-end = receiver arrival minus publish sent; {}", ceiling::machine());
        println!(
            "{:<11} {:>10} {:>11} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>9} {:>9}",
            "workload",
            "publish/s",
            "deliver/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "miss+dup",
            "cpu ms/dl",
            "rss MiB",
            "file B/ev",
            "pages B/ev"
        );
    }
    for &(name, publish, deliver, p50, p99, max, bad, cpu, rss, file, _, pages) in &table {
        println!(
            "{name:<11} {publish:>10.0} {deliver:>11.0} {p50:>8.2} {p99:>8.2} {max:>8.1} {bad:>9} {cpu:>10.3} {rss:>8.1} {file:>9.0} {pages:>9.0}"
        );
    }
    if let Some(body) = table.iter().map(|row| row.10).find(|b| *b > 0.0) {
        println!(
            "file B/ev: the data file once every delivery is recorded, per event (it grows in steps); pages B/ev: the pages its tables use (`stile inspect`), per event; delivered body {body:.0} bytes"
        );
    }
    if table.iter().any(|row| row.0 == "W1 burst" || row.0 == "W2 fan-out") && whbench.is_none() {
        println!(
            "no ceiling measured: `--whbench PATH` runs W1 and W2 against whbench's mock-stile, the machine's ceiling"
        );
    }
    if let Some(idle) = idle {
        println!("idle server: {idle:.2}% of one core");
    }
    if let Some(b) = backlog_result {
        println!(
            "W5 backlog of {}: RSS {:.1} MiB queued, start-up to serving {:.2} s, drain {}/s (peak RSS {:.1} MiB)",
            b["events"],
            b["rss_with_backlog_mib"].as_f64().unwrap_or(f64::NAN),
            b["startup_to_serving_s"].as_f64().unwrap_or(f64::NAN),
            b["drain_per_s"],
            b["peak_rss_while_draining_mib"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(h) = history_result {
        println!(
            "W6 history of {} events ({} B of data file per event, published at {}/s):",
            h["events"], h["file_bytes_per_event"], h["publishes_per_s"]
        );
        for (name, list) in h["lists"].as_object().unwrap() {
            println!(
                "  {name:<40} p50 {:>8.2} ms  p99 {:>8.2} ms",
                list["p50_ms"].as_f64().unwrap(),
                list["p99_ms"].as_f64().unwrap()
            );
        }
    }
    if failed {
        eprintln!("FAILED: deliveries are missing");
        std::process::exit(1);
    }
}
