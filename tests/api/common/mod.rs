//! Test harness: a real stile server on an ephemeral loopback port with its data in a
//! temp dir, a blocking HTTP client, and helpers to wait on conditions.

#![allow(dead_code)]

pub mod browser;
pub mod collector;
pub mod faulty;
pub mod process;
pub mod raw;
pub mod receiver;
pub mod tinyproxy;
pub mod tls;
pub mod token_server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use stile::config::Config;

/// A test-mode key every [`TestServer`] accepts (configured, not stored).
pub const TEST_KEY: &str = "vk_test_integration_0123456789abcdef";
/// A live-mode key every [`TestServer`] accepts.
pub const LIVE_KEY: &str = "vk_live_integration_0123456789abcdef";

/// Polls `condition` until it holds or `deadline` passes; returns whether it held.
pub fn eventually(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The sum of the `/metrics` samples of the server at `base` whose line starts with
/// `prefix` (a metric's name, or a name and its labels); 0 when there are none.
pub fn metric(base: &str, prefix: &str) -> u64 {
    let metrics = Req::new("GET", format!("{base}/metrics")).send();
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    metrics
        .text
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The queue depth `/metrics` reports for the server at `base`.
pub fn queue_depth(base: &str) -> u64 {
    let metrics = Req::new("GET", format!("{base}/metrics")).send();
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    let line = metrics.text.lines().find_map(|l| l.strip_prefix("stile_queue_depth ")).expect("a queue depth");
    line.trim().parse().expect("a number")
}

/// Waits until the server at `base` has an empty delivery queue (see
/// [`TestServer::wait_queue_empty`]).
pub fn wait_queue_empty(base: &str, deadline: Duration) {
    assert!(eventually(deadline, || queue_depth(base) == 0), "the queue is still not empty after {deadline:?}");
}

/// With `STILE_TEST_BACKEND=postgres`, a new database on this process's throwaway
/// Postgres cluster for the next test server; `None` (redb) otherwise.
pub fn test_database() -> Option<String> {
    match std::env::var("STILE_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(shared_cluster().new_database().expect("a new database")),
        Ok("redb") | Err(_) => None,
        Ok(other) => panic!("STILE_TEST_BACKEND must be redb or postgres, not {other}"),
    }
}

fn shared_cluster() -> &'static stile::store::postgres::throwaway::ThrowawayPostgres {
    stile::store::postgres::throwaway::ThrowawayPostgres::shared()
        .unwrap_or_else(|err| panic!("STILE_TEST_BACKEND=postgres needs PostgreSQL: {err}"))
}

/// A test server's data, kept while any server started on it (or a [`TestServer::stop`]
/// handle) lives: its temp dir, and on Postgres its database, dropped with it so that a
/// suite of hundreds of servers does not fill the disk with finished databases.
pub struct TestData {
    dir: tempfile::TempDir,
    database: Option<String>,
}

impl Drop for TestData {
    fn drop(&mut self) {
        if let Some(name) = &self.database
            && let Err(err) = shared_cluster().drop_database(name)
        {
            eprintln!("could not drop the test database {name}: {err}");
        }
    }
}

/// A stile server running in this process on its own actix system thread.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The config it runs with.
    pub config: Config,
    /// The clock it runs on (kept across restarts).
    pub clock: stile::clock::Clock,
    dir: Arc<TestData>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A development-mode server with the two test keys.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// A server whose config `adjust` may change first.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_clock(stile::clock::Clock::system(), adjust)
    }

    /// A server on a redb data file whatever `STILE_TEST_BACKEND` says, for tests of the
    /// file itself (its size, compaction, damage, a full disk).
    pub fn start_redb(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(|config| {
            config.store.backend = stile::config::Backend::Redb;
            adjust(config);
        })
    }

    /// A server started on a copy of the data file `file` (one written by an earlier
    /// release, say), reading time from `clock`.
    pub fn start_on_copy_of(file: &Path, clock: stile::clock::Clock) -> Self {
        Self::start_with_clock(clock, |config| {
            config.store.backend = stile::config::Backend::Redb;
            std::fs::create_dir_all(&config.server.data_dir).expect("data dir");
            std::fs::copy(file, config.server.data_dir.join(stile::store::DATA_FILE_NAME)).expect("copy the data file");
        })
    }

    /// A server started on a copy of the data directory `dir` (the data file and its
    /// payload key, written by an earlier release, say), reading time from `clock`.
    pub fn start_on_copy_of_dir(dir: &Path, clock: stile::clock::Clock) -> Self {
        Self::start_with_clock(clock, |config| {
            config.store.backend = stile::config::Backend::Redb;
            std::fs::create_dir_all(&config.server.data_dir).expect("data dir");
            for entry in std::fs::read_dir(dir).expect("the fixture directory") {
                let from = entry.expect("a fixture file").path();
                let to = config.server.data_dir.join(from.file_name().unwrap());
                std::fs::copy(&from, &to).expect("copy a fixture file");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("owner-only");
                }
            }
        })
    }

    /// A server whose engine and API read time from `clock` (a manual clock the test
    /// advances), with its config changed by `adjust` first.
    pub fn start_with_clock(clock: stile::clock::Clock, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        config.auth.keys = vec![TEST_KEY.to_string(), LIVE_KEY.to_string()];
        // Retries in milliseconds, so a whole retry life fits in a test.
        config.delivery.retry_schedule = [20, 40, 60].map(Duration::from_millis).to_vec();
        config.delivery.timeout = Duration::from_secs(5);
        config.delivery.workers = 8;
        let database = test_database();
        if let Some(url) = &database {
            config.store.backend = stile::config::Backend::Postgres;
            config.store.postgres_url = stile::config::DatabaseUrl(url.clone());
        }
        adjust(&mut config);
        // Dropped with the data, whether the server used it or `adjust` chose another store.
        let database = database.and_then(|url| url.rsplit('/').next().map(str::to_string));
        Self::launch(config, Arc::new(TestData { dir, database }), clock)
    }

    fn launch(config: Config, dir: Arc<TestData>, clock: stile::clock::Clock) -> Self {
        let prepared = block_on(stile::prepare_with_clock(config.clone(), clock.clone())).expect("server prepares");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new()
                .block_on(stile::serve(prepared.state, listener, async {
                    let _ = stopped.await;
                }))
                .expect("server runs");
        });
        Self { base, config, clock, dir, stop: Some(stop), thread: Some(thread) }
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub fn restart(self) -> Self {
        self.restart_with(|_| {})
    }

    /// Like [`TestServer::restart`], with the config changed by `adjust` first.
    pub fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        self.shutdown();
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::launch(config, Arc::clone(&self.dir), self.clock.clone())
    }

    /// Stops the server, makes a test-mode key restricted to the application `app` (id or
    /// uid) in its data file (as `stile keys create --app` does), and starts it again.
    pub fn restart_with_key_for(mut self, app: &str) -> (Self, String) {
        self.shutdown();
        let key = block_on(async {
            let store = stile::open_store(&self.config).await.expect("open the store");
            let found = store
                .find_app(stile::mode::Mode::Test, app.into())
                .await
                .expect("read")
                .expect("the application exists");
            stile::create_api_key_for(&store, stile::mode::Mode::Test, Some(found.id), 0).await.expect("store the key")
        });
        (Self::launch(self.config.clone(), Arc::clone(&self.dir), self.clock.clone()), key)
    }

    /// Stops the server gracefully, keeping its data: the temp dir lives as long as the
    /// returned handle.
    pub fn stop(mut self) -> Arc<TestData> {
        self.shutdown();
        Arc::clone(&self.dir)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.server.data_dir.clone()
    }

    /// The temp dir that holds the data directory.
    pub fn root(&self) -> &Path {
        self.dir.dir.path()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread ends cleanly");
        }
    }

    /// A request to this server with the test key.
    pub fn req(&self, method: &str, path: &str) -> Req {
        Req::new(method, format!("{}{path}", self.base)).key(TEST_KEY)
    }

    /// `GET path` with the test key.
    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path).send()
    }

    /// `POST path` with a JSON body and the test key.
    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.req("POST", path).json(&body).send()
    }

    /// `DELETE path` with the test key.
    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path).send()
    }

    /// Creates an endpoint in test mode and returns the create response body.
    pub fn create_endpoint(&self, url: &str) -> Value {
        self.create_endpoint_for(url, &["*"])
    }

    /// Creates an endpoint subscribed to `events`; returns the create response body.
    pub fn create_endpoint_for(&self, url: &str, events: &[&str]) -> Value {
        let resp = self.post("/v1/webhook_endpoints", serde_json::json!({"url": url, "enabled_events": events}));
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body
    }

    /// Publishes an event; returns the response body.
    pub fn publish(&self, event_type: &str, data: Value) -> Value {
        let resp = self.post("/v1/events", serde_json::json!({"type": event_type, "data": data}));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    }

    /// The attempts of an endpoint, newest first (up to 100).
    pub fn deliveries(&self, endpoint_id: &str) -> Vec<Value> {
        let resp = self.get(&format!("/v1/webhook_endpoints/{endpoint_id}/deliveries?limit=100"));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body["data"].as_array().unwrap().clone()
    }

    /// Waits until the event's `pending_webhooks` is 0.
    pub fn wait_settled(&self, event_id: &str, deadline: Duration) {
        let settled =
            eventually(deadline, || self.get(&format!("/v1/events/{event_id}")).body["pending_webhooks"] == 0);
        assert!(settled, "event {event_id} still has pending webhooks after {deadline:?}");
    }

    /// Waits until the durable queue is empty: every attempt made is recorded and none is
    /// scheduled (attempts parked for a disabled endpoint are off the queue). From then on
    /// nothing can be sent until something new is queued, so a test can assert that
    /// nothing more arrived without sleeping.
    pub fn wait_queue_empty(&self, deadline: Duration) {
        wait_queue_empty(&self.base, deadline);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A request being built.
pub struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    /// A request with no headers or body.
    pub fn new(method: &str, url: String) -> Self {
        Self { method: method.into(), url, headers: Vec::new(), body: Vec::new() }
    }

    /// Sets the bearer key (replacing any).
    pub fn key(self, key: &str) -> Self {
        self.without("authorization").header("authorization", &format!("Bearer {key}"))
    }

    /// Removes the API key.
    pub fn no_key(self) -> Self {
        self.without("authorization")
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.raw(serde_json::to_vec(body).unwrap(), "application/json")
    }

    /// A body sent with no `Content-Type` header at all.
    pub fn untyped(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.without("content-type")
    }

    /// A body with its content type.
    pub fn raw(mut self, body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    /// Sends it and reads the whole answer.
    pub fn send(self) -> Resp {
        self.try_send().expect("the server answers")
    }

    /// Sends it and reads the whole answer; `None` if the server could not be reached
    /// (a process killed on purpose, say).
    pub fn try_send(self) -> Option<Resp> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .build()
            .into();
        let mut request = ureq::http::Request::builder().method(self.method.as_str()).uri(&self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request.body(self.body).expect("a valid request");
        let mut response = agent.run(request).ok()?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.body_mut().with_config().limit(64 << 20).read_to_string().ok()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Some(Resp { status, headers, text, body })
    }
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Asserts this is an API error with the given status, type and code, and returns
    /// its `error` object.
    pub fn assert_error(&self, status: u16, kind: &str, code: &str) -> &Value {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.text);
        let error = &self.body["error"];
        assert_eq!(error["type"], kind, "{}", self.text);
        assert_eq!(error["code"], code, "{}", self.text);
        assert!(error["message"].as_str().is_some_and(|m| m.len() > 10), "a real message: {}", self.text);
        error
    }
}

/// Runs `work` (the server's start, a command's store work) to its end on a runtime of
/// its own, as `stile serve` and `stile keys` do before they serve.
pub fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
}
