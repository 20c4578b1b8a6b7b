//! A real forward proxy for the egress proxy's tests: Debian's tinyproxy, started on a
//! free loopback port with its own configuration and log. Skipped, loudly, where it is not
//! installed; failed under `CI=true` (`.ci/run` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::eventually;

/// A running tinyproxy.
pub struct Tinyproxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy allowing `CONNECT` to `connect_ports`, asking for `basic_auth`
    /// (user, password) if given; `None` where tinyproxy is not installed.
    pub fn start(connect_ports: &[u16], basic_auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
        if Command::new("tinyproxy").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            assert!(std::env::var("CI").is_err(), "tinyproxy is not installed (CI installs it: .ci/run)");
            eprintln!("SKIPPED: tinyproxy is not installed; the egress proxy's tests need it");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("tinyproxy.log");
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 50\nLogLevel Info\n\
             LogFile \"{}\"\nPidFile \"{}\"\n",
            log.display(),
            dir.path().join("tinyproxy.pid").display()
        );
        for port in connect_ports {
            config.push_str(&format!("ConnectPort {port}\n"));
        }
        if let Some((user, password)) = basic_auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let config_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        let listening =
            eventually(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(listening, "tinyproxy did not listen on {port}");
        Some(Tinyproxy { url: format!("http://127.0.0.1:{port}"), port, log, child, _dir: dir })
    }

    /// The targets of the `CONNECT`s it was asked for, in order (`127.0.0.1:8443`).
    pub fn connects(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split("): CONNECT ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
