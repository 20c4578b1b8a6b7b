//! The README's quick start, run as written: its fenced `sh` blocks, in order, against a
//! fresh server, with the example receiver verifying what arrives.
//!
//! What the test changes, and why: the first block (`cargo run --release`) is run as the
//! binary this test suite built (the same program; building a release inside the tests
//! would take minutes), with no arguments, in a fresh folder holding the repository's own
//! `stile.toml`; the ports the README names (8787, 3000) are replaced by free ones, so
//! the test runs beside anything else; the placeholders `vk_test_...` and `whsec_...` are
//! the key the server printed and the secret the endpoint's answer holds, as a reader
//! would paste them. Every other character of the blocks runs as it stands, through
//! `sh`, in a folder where `./target/release/stile` and `examples/` are where the README
//! expects them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::process::{OutputProcess, ServerProcess, Stream, stile_command};

/// How long a step may take (the receiver starting, a delivery arriving).
const WITHIN: Duration = Duration::from_secs(30);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced `sh` blocks of the README's "## Quick start" section, in order.
fn quick_start_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let start = readme.find("\n## Quick start\n").expect("the README has a Quick start section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("\n```").expect("a closed block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 4..];
    }
    blocks
}

/// A block's lines, with `\`-continued lines joined: `export NAME=VALUE` lines apart
/// (the value up to a comment), and the commands.
fn split(block: &str) -> (Vec<(String, String)>, Vec<String>) {
    let joined = block.replace("\\\n", " ");
    let mut exports = Vec::new();
    let mut commands = Vec::new();
    for line in joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.strip_prefix("export ") {
            Some(assignment) => {
                let assignment = assignment.split(" #").next().unwrap().trim();
                let (name, value) = assignment.split_once('=').expect("NAME=VALUE");
                exports.push((name.to_string(), value.to_string()));
            }
            None => commands.push(line.to_string()),
        }
    }
    (exports, commands)
}

/// A free loopback port (bound, then let go, for a server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sets the variables a block exports to `value`, as a reader pastes it over the
/// placeholder.
fn paste(exports: Vec<(String, String)>, env: &mut Vec<(String, String)>, value: &str) {
    for (name, placeholder) in exports {
        assert!(placeholder.ends_with("..."), "{name} is a placeholder to paste: {placeholder}");
        env.push((name, value.to_string()));
    }
}

/// `command` through `sh` in `dir`, with `env` and none of the test run's own `STILE_*`
/// variables (a reader's shell has none).
fn shell(dir: &Path, command: &str, env: &[(String, String)]) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(command).current_dir(dir);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("STILE_")) {
        sh.env_remove(name);
    }
    for (name, value) in env {
        sh.env(name, value);
    }
    sh
}

#[test]
fn the_readme_quick_start_delivers_verified_events_as_written() {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "CI must install Node.js (.ci/run)");
        eprintln!("SKIPPED: Node.js is not installed, so the README's quick start is not run");
        return;
    }
    let blocks = quick_start_blocks();
    assert_eq!(blocks.len(), 4, "server, endpoint, receiver, trigger: {blocks:#?}");
    assert_eq!(blocks[0].trim(), "cargo run --release", "the first block starts the server");
    let (server_port, receiver_port) = (free_port(), free_port());
    let ports = |text: &str| {
        text.replace("127.0.0.1:8787", &format!("127.0.0.1:{server_port}"))
            .replace("127.0.0.1:3000", &format!("127.0.0.1:{receiver_port}"))
    };

    // A reader's checkout: the repository's stile.toml (its port replaced), the binary
    // where `cargo run --release` leaves it, and the examples.
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(repository().join("stile.toml")).unwrap();
    assert!(config.contains("listen = \"127.0.0.1:8787\""), "the README's port is the config's");
    std::fs::write(dir.path().join("stile.toml"), ports(&config)).unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_stile"), dir.path().join("target/release/stile")).unwrap();
    std::os::unix::fs::symlink(repository().join("examples"), dir.path().join("examples")).unwrap();

    // Block 1: the server, with no arguments, as `cargo run --release` runs it.
    let mut serve = stile_command(Path::new(env!("CARGO_BIN_EXE_stile")));
    serve.current_dir(dir.path());
    let server = ServerProcess::start_command(serve).expect("the server starts");
    assert!(server.base.ends_with(&format!(":{server_port}")), "{}", server.base);
    assert!(dir.path().join("data/stile.redb").exists(), "data in ./data");
    let key = server.first_key().expect("the first start prints a test key");
    let mut env: Vec<(String, String)> = vec![("PORT".into(), receiver_port.to_string())];

    // Block 2: the key, and an endpoint; its answer holds the secret.
    let (exports, commands) = split(&ports(&blocks[1]));
    paste(exports, &mut env, &key);
    assert_eq!(commands.len(), 1, "{commands:?}");
    let out = shell(dir.path(), &commands[0], &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let endpoint: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the endpoint, as JSON");
    let secret = endpoint["secret"].as_str().unwrap_or_else(|| panic!("a secret in {endpoint}"));
    assert_eq!(endpoint["url"], format!("http://127.0.0.1:{receiver_port}/webhooks"));

    // Block 3: the secret, and the receiver in the background (run here as a child the
    // test follows, so it is stopped at the end).
    let (exports, commands) = split(&blocks[2]);
    paste(exports, &mut env, secret);
    assert_eq!(commands.len(), 1, "{commands:?}");
    let background = commands[0].strip_suffix('&').expect("started in the background").trim();
    let mut receiver = OutputProcess::spawn(shell(dir.path(), &format!("exec {background}"), &env));
    let listening = receiver.wait_line(Stream::Out, "listening on ", WITHIN);
    assert!(listening.contains(&format!("127.0.0.1:{receiver_port}/webhooks")), "{listening}");

    // Block 4: the trigger; each event arrives, verified.
    let (exports, commands) = split(&blocks[3]);
    assert!(exports.is_empty() && commands.len() == 1, "{blocks:#?}");
    let out = shell(dir.path(), &commands[0], &env).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    for event_type in ["created", "processing", "verified"] {
        let line = receiver.wait_line(Stream::Out, &format!(" verification_session.{event_type}"), WITHIN);
        let event = line.split_whitespace().nth(1).unwrap();
        assert!(line.starts_with("verified evt_"), "{line}");
        assert!(printed.contains(event), "trigger printed the event it emitted: {event} in {printed}");
    }
    assert_eq!(server.terminate(), Some(0));
}
