//! The machine's ceiling, and stile against it: `--whbench PATH` runs W1 and W2 through
//! whbench (`../shared/tools/whbench`, built as its README says), whose `mock-stile` is
//! a no-durability server for the same two calls (nothing stored, nothing signed) and
//! whose `burst` is the load. Each round runs the ceiling, then stile on a fresh data
//! directory, under the same burst; a ratio is stile's deliveries per second over the
//! ceiling's of the same round, and the medians of the rounds are reported with their
//! ranges. `--file-events N` also measures the data file once N events published by
//! whbench to one endpoint are all delivered (the file a user sees, not its pages).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{KEY, Server, median, process_usage, settled_file_bytes, start_server};

/// A burst: its name, events, endpoints per event.
const BURSTS: [(&str, u64, u64); 2] = [("W1", 20_000, 1), ("W2", 2_000, 10)];

/// whbench's publisher tasks (its README's figure, the benchmark's own W1/W2 too).
const CONCURRENCY: &str = "32";

/// The most a whbench run may take before it is given up.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// One whbench burst's figures.
struct Burst {
    deliveries_per_s: f64,
    /// The server's CPU per delivery over the run (ms).
    server_cpu_ms: f64,
}

/// Runs `whbench burst` against `url` for `events` × `endpoints`; `pid` is the server's,
/// whose CPU whbench watches. Panics if a delivery is missing or the run fails.
fn burst(
    whbench: &str,
    url: &str,
    pid: u32,
    events: u64,
    endpoints: u64,
    extra: &[&str],
) -> (Burst, serde_json::Value) {
    let output = Command::new(whbench)
        .args(["burst", "--target", "stile", "--url", url, "--key", KEY, "-c", CONCURRENCY])
        .args(["-n", &events.to_string(), "-e", &endpoints.to_string()])
        .args(["--watch", &format!("server={pid}")])
        .args(extra)
        .stderr(Stdio::null())
        .output()
        .expect("whbench runs");
    let last = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_string();
    let report: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    assert!(output.status.success(), "whbench burst failed ({}): {last}", output.status);
    let delivered = report["delivered"].as_f64().unwrap_or(f64::NAN);
    let cpu_s = report["watched"][0]["cpu_s"].as_f64().unwrap_or(f64::NAN);
    let figures = Burst {
        deliveries_per_s: report["deliveries_per_s"].as_f64().unwrap_or(f64::NAN),
        server_cpu_ms: cpu_s * 1000.0 / delivered,
    };
    (figures, report)
}

/// whbench's in-memory server on a free port, killed when dropped.
struct Mock(std::process::Child, String);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock(whbench: &str) -> Mock {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(whbench)
        .args(["mock-stile", "--port", &port.to_string(), "--key", KEY, "--max-seconds", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("whbench mock-stile starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "whbench mock-stile did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Mock(child, url)
}

/// Runs the bursts `rounds` times against the ceiling and stile, printing one JSON line
/// per run and then the table.
pub(super) fn run(whbench: &str, rounds: usize) {
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, events, endpoints) in BURSTS {
        let (mut ceiling, mut stile, mut ratios, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            assert!(started.elapsed() < RUN_DEADLINE, "the ceiling runs took too long");
            let mock = start_mock(whbench);
            let (top, report) = burst(whbench, &mock.1, mock.0.id(), events, endpoints, &[]);
            drop(mock);
            println!(
                "{}",
                serde_json::json!({"workload": name, "round": round, "server": "whbench mock-stile", "report": report})
            );
            let server = start_server();
            let (ours, report) = burst(whbench, &server.base, server.child.id(), events, endpoints, &[]);
            println!("{}", serde_json::json!({"workload": name, "round": round, "server": "stile", "report": report}));
            ratios.push(ours.deliveries_per_s / top.deliveries_per_s);
            ceiling.push(top.deliveries_per_s);
            stile.push(ours.deliveries_per_s);
            cpu.push(ours.server_cpu_ms);
        }
        rows.push((name, stile, ceiling, ratios, cpu));
    }
    println!();
    println!(
        "whbench bursts ({rounds} rounds; each: the ceiling, then stile on a fresh data directory), {}",
        machine()
    );
    println!(
        "{:<4} {:>22} {:>22} {:>19} {:>13}",
        "", "stile deliveries/s", "ceiling deliveries/s", "stile / ceiling", "stile cpu ms/dl"
    );
    for (name, mut stile, mut ceiling, mut ratios, mut cpu) in rows {
        let span = |v: &mut Vec<f64>, digits: usize| {
            let m = median(v);
            format!("{m:.digits$} ({:.digits$}-{:.digits$})", v[0], v[v.len() - 1])
        };
        println!(
            "{name:<4} {:>22} {:>22} {:>19} {:>13.3}",
            span(&mut stile, 0),
            span(&mut ceiling, 0),
            span(&mut ratios, 2),
            median(&mut cpu)
        );
    }
}

/// Publishes `events` events to one endpoint of a fresh stile through whbench and
/// reports the data file's size once every delivery is recorded.
pub(super) fn file_size(whbench: &str, events: u64) {
    let server: Server = start_server();
    let (figures, report) = burst(whbench, &server.base, server.child.id(), events, 1, &["--no-cleanup"]);
    let bytes = settled_file_bytes(&server);
    let (_, peak_rss_mib) = process_usage(server.child.id());
    println!("{}", serde_json::json!({"workload": "file", "events": events, "file_bytes": bytes, "report": report}));
    println!(
        "file: {events} events through whbench at {:.0}/s: data file {bytes} bytes, {:.0} B per event (peak RSS {peak_rss_mib:.1} MiB), {}",
        figures.deliveries_per_s,
        bytes as f64 / events as f64,
        machine()
    );
}

/// This machine and the date, for every table: cores, CPU model, day (UTC).
pub(super) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let today = httpdate::fmt_http_date(std::time::SystemTime::now());
    format!("{cores} cores, {}, {today}", model.unwrap_or("unknown CPU"))
}
