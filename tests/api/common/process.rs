//! The real `stile` binary as a child process, for what only a process shows: start-up
//! output, exit codes, signals, file locks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The built binary.
pub fn stile_bin() -> Command {
    stile_command(Path::new(env!("CARGO_BIN_EXE_stile")))
}

/// A `stile` binary at `program` (a copy, say), without the developer's environment.
pub fn stile_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    // Keep the developer's environment out of the test.
    for (name, _) in std::env::vars() {
        if name.starts_with("STILE_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// A running `stile serve`.
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// `http://127.0.0.1:PORT`, read from the start-up summary.
    pub base: String,
    /// Every stdout line printed up to and including the summary's last line.
    pub summary: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `stile` with `args` in `cwd` and waits for its summary (10 s at most).
    pub fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<ServerProcess, String> {
        let mut command = stile_bin();
        command.current_dir(cwd).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        Self::start_command(command)
    }

    /// The API key the start-up summary printed (a first start makes one), if any.
    pub fn first_key(&self) -> Option<String> {
        self.summary.iter().find_map(|l| l.trim().strip_prefix("API key ").map(|k| k.trim().to_string()))
    }

    /// Starts a prepared `stile` command and waits for its summary (10 s at most).
    pub fn start_command(mut command: Command) -> Result<ServerProcess, String> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn_copied(&mut command)?;
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, err_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut summary = Vec::new();
        let mut base = None;
        while Instant::now() < deadline {
            match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("listening  ") {
                        base = Some(url.trim().to_string());
                    }
                    let trimmed = line.trim_start().to_string();
                    summary.push(line);
                    if trimmed.starts_with("API keys") {
                        break;
                    }
                    if trimmed.starts_with("API key ") {
                        // The first-key summary has one more explanatory line.
                        if let Ok(extra) = lines.recv_timeout(Duration::from_secs(2)) {
                            summary.push(extra);
                        }
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let errors: Vec<String> = err_lines.try_iter().collect();
                        return Err(format!("exited with {status}: {}", errors.join("\n")));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let base = base.ok_or_else(|| format!("no listen line in {summary:?}"))?;
        Ok(ServerProcess { child, base, summary, stderr: err_lines })
    }

    /// Sends SIGTERM and waits (10 s at most) for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Kills the server with SIGKILL, as a crash or an OOM killer would.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("the child is reaped");
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `stile listen` (or any command whose output a test follows: another `stile`
/// command, an example receiver): its stdout and stderr lines, as they come.
pub struct OutputProcess {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<(Stream, String)>,
    /// Every line read so far, in order.
    seen: Vec<(Stream, String)>,
}

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl OutputProcess {
    /// Starts `stile` with `args`, following its output.
    pub fn start(args: &[&str]) -> OutputProcess {
        let mut command = stile_bin();
        command.args(args);
        Self::spawn(command)
    }

    /// Starts `command`, following its output.
    pub fn spawn(mut command: Command) -> OutputProcess {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|err| panic!("{command:?} starts: {err}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send((Stream::Out, line));
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send((Stream::Err, line));
            }
        });
        OutputProcess { child, lines, seen: Vec::new() }
    }

    /// Waits (up to `deadline`) for a line of `stream` containing `needle` that was not
    /// returned before; returns it. Panics with everything seen if none comes.
    pub fn wait_line(&mut self, stream: Stream, needle: &str, deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            if let Some(index) = self.seen.iter().position(|(s, line)| *s == stream && line.contains(needle)) {
                return self.seen.remove(index).1;
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => self.seen.push(line),
                Err(_) if Instant::now() >= until => {
                    let _ = self.child.try_wait();
                    panic!("no {stream:?} line with {needle:?} within {deadline:?}; seen: {:#?}", self.seen)
                }
                Err(_) => {}
            }
        }
    }

    /// Kills it with SIGKILL.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OutputProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Spawns `command`. A binary a test has just copied can be refused for a moment with
/// "Text file busy" (ETXTBSY): a process another test thread is forking at that instant
/// holds the copy's write handle until it execs. That clears within milliseconds, so it is
/// tried again, at most 50 times, 20 ms apart; any other error is returned at once.
fn spawn_copied(command: &mut Command) -> Result<std::process::Child, String> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.map_err(|e| e.to_string()),
        }
    }
}
