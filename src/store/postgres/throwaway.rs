//! A throwaway PostgreSQL cluster in a temporary directory, for the tests and the
//! benchmark: `initdb` (as the `postgres` user when running as root, which `initdb`
//! refuses), a server on a free loopback port with its socket in the same directory, and
//! everything stopped and removed when the value is dropped (or, for the one a process
//! shares, when the process exits).
//!
//! It needs Debian's `postgresql` package (or any PostgreSQL 14+ whose `initdb` is found:
//! `STILE_POSTGRES_BIN`, then `/usr/lib/postgresql/<version>/bin`, then `PATH`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// A running throwaway cluster.
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Whether commits wait for the disk (the benchmark), or not (tests).
    durable: bool,
    /// `Some("postgres")` when commands must run as that user (this process is root).
    run_as: Option<&'static str>,
}

/// The directory holding PostgreSQL's programs, if it is installed.
pub fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STILE_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

impl ThrowawayPostgres {
    /// Makes and starts a new cluster that does not wait for the disk (for tests).
    /// Takes about a second.
    pub fn start() -> Result<ThrowawayPostgres, String> {
        Self::start_with(false)
    }

    /// Makes and starts a new cluster whose commits wait for the disk, as a production
    /// database's do (for the benchmark).
    pub fn start_durable() -> Result<ThrowawayPostgres, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<ThrowawayPostgres, String> {
        let bin = find_bin().ok_or("PostgreSQL is not installed (no initdb found; apt-get install postgresql)")?;
        // SAFETY: geteuid has no preconditions.
        let run_as = (unsafe { libc::geteuid() } == 0).then_some("postgres");
        sweep_abandoned(&bin, run_as);
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stile-pg-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cluster = ThrowawayPostgres { bin, dir, port: 0, run_as, durable };
        if let Some(user) = run_as {
            let chown = Command::new("chown").arg(format!("{user}:{user}")).arg(&cluster.dir).output();
            check("chown", chown)?;
        }
        let data = cluster.dir.join("data");
        let initdb = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output();
        check("initdb", initdb)?;
        // A port taken between choosing it and the server binding it fails the start: try
        // a few.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.run_server() {
                Ok(()) => return Ok(cluster),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// The cluster every test of this process shares, started on first use and stopped
    /// when the process exits.
    pub fn shared() -> Result<&'static ThrowawayPostgres, String> {
        static SHARED: OnceLock<Result<ThrowawayPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cluster = ThrowawayPostgres::start()?;
                extern "C" fn stop_shared() {
                    if let Some(Ok(cluster)) = SHARED.get() {
                        cluster.remove();
                    }
                }
                // SAFETY: registers a plain function; it runs once, at exit.
                unsafe { libc::atexit(stop_shared) };
                Ok(cluster)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// [`ThrowawayPostgres::shared`] for a test: `None`, after a loud `SKIPPED` line, where
    /// PostgreSQL is not installed; a panic instead under `CI=true`, where it must be.
    pub fn shared_for_test() -> Option<&'static ThrowawayPostgres> {
        match ThrowawayPostgres::shared() {
            Ok(cluster) => Some(cluster),
            Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true needs PostgreSQL: {err}"),
            Err(err) => {
                eprintln!("SKIPPED: a Postgres test, as {err}");
                None
            }
        }
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database and returns its URL.
    pub fn new_database(&self) -> Result<String, String> {
        static NEXT: Mutex<u32> = Mutex::new(0);
        let name = {
            let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            format!("stile_{}", *next)
        };
        self.sql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Drops database `name` (made by [`ThrowawayPostgres::new_database`]), closing any
    /// connection still open to it, so a long suite's finished databases do not fill the
    /// disk.
    pub fn drop_database(&self, name: &str) -> Result<(), String> {
        self.sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).map(drop)
    }

    /// Runs `sql` with `psql` in the `postgres` database.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        self.sql_in("postgres", sql)
    }

    /// Runs `sql` with `psql` in database `name`.
    pub fn sql_in(&self, name: &str, sql: &str) -> Result<String, String> {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", name, "-c", sql])
            .output();
        check("psql", out).map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// What `pg_dump` writes of database `name` (plain SQL), as an operator's backup holds it.
    pub fn dump(&self, name: &str) -> Result<String, String> {
        let out = self
            .command("pg_dump")
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", name])
            .output();
        check("pg_dump", out).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server now (as a crash would: no shutdown checkpoint), keeping its data.
    pub fn stop(&self) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        check("pg_ctl stop", out).map(drop)
    }

    /// Starts the server again after [`ThrowawayPostgres::stop`], on the same port.
    pub fn restart(&self) -> Result<(), String> {
        self.run_server()
    }

    /// Serves TLS with the certificate `cert_pem` (whose key is `key_pem`) and refuses TCP
    /// connections without it, from a restart now (for the tests of TLS to the database).
    pub fn require_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        for (name, contents) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
            if let Some(user) = self.run_as {
                check("chown", Command::new("chown").arg(format!("{user}:{user}")).arg(&path).output())?;
            }
        }
        let hba = data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).map_err(|e| format!("cannot read {}: {e}", hba.display()))?;
        std::fs::write(&hba, format!("hostnossl all all all reject\n{rules}"))
            .map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
        self.configure(&[("ssl", "on")])
    }

    /// Sets server settings (`ALTER SYSTEM`) and restarts the server to apply them.
    pub fn configure(&self, settings: &[(&str, &str)]) -> Result<(), String> {
        for (name, value) in settings {
            self.sql(&format!("ALTER SYSTEM SET {name} = '{value}'"))?;
        }
        self.stop()?;
        self.run_server()
    }

    fn run_server(&self) -> Result<(), String> {
        let speed = if self.durable { "" } else { "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" };
        let options = format!("-k {} -h 127.0.0.1 -p {} -c max_connections=200 {speed}", self.dir.display(), self.port);
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output();
        check("pg_ctl start", out).map(drop).map_err(|err| format!("{err}\n{}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let path = if path.is_file() { path } else { PathBuf::from(program) };
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    /// Stops the server and removes its directory (dropping it does too; a cluster kept
    /// in a static must be removed this way before the process ends).
    pub fn remove(&self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The postmaster's process id, to measure the server's CPU (its own and that of its
    /// backends, which it reaps).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// The directory the cluster lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Stops and removes the clusters of processes that died without removing theirs (a
/// test run killed with SIGKILL): their directories are named after their process id.
fn sweep_abandoned(bin: &Path, run_as: Option<&'static str>) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name.strip_prefix("stile-pg-").and_then(|rest| rest.split('-').next()) else { continue };
        let Ok(pid) = owner.parse::<i32>() else { continue };
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if alive {
            continue;
        }
        let abandoned =
            ThrowawayPostgres { bin: bin.to_path_buf(), dir: entry.path(), port: 0, run_as, durable: false };
        abandoned.remove(); // its Drop would remove it again: harmless
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn check(what: &str, out: std::io::Result<Output>) -> Result<Output, String> {
    let out = out.map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}
