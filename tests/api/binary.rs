//! The `stile` binary: start-up, the first key, config precedence, the keys CLI, the data
//! file lock, and shutdown.

use std::time::{Duration, Instant};

use crate::common::process::{ServerProcess, stile_bin, stile_command};
use crate::common::{Req, TEST_KEY};

#[test]
fn first_start_prints_one_test_key_which_works_and_is_stored_only_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
    let server = ServerProcess::start(dir.path(), &args, &[]).unwrap();
    let text = server.summary.join("\n");
    for expected in ["stile ", "config", "data file", "dashboard  http://127.0.0.1:", "mode       development"] {
        assert!(text.contains(expected), "summary lacks {expected:?}:\n{text}");
    }
    let key = server.first_key().expect("a first key");
    assert!(key.starts_with("vk_test_") && key.len() >= 8 + 24, "{key}");
    let ok = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(&key).send();
    assert_eq!(ok.status, 200);
    assert_eq!(server.terminate(), Some(0));

    let file = std::fs::read(data.join("stile.redb")).unwrap();
    let raw = key.as_bytes();
    assert!(!file.windows(raw.len()).any(|w| w == raw), "the raw key must not be in the data file");

    // The second start neither prints a key nor forgets the first.
    let server = ServerProcess::start(dir.path(), &args, &[]).unwrap();
    assert_eq!(server.first_key(), None, "{:?}", server.summary);
    let ok = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(&key).send();
    assert_eq!(ok.status, 200);
}

#[test]
fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let _first = ServerProcess::start(dir.path(), &args, &[]).unwrap();
    let started = Instant::now();
    let output = stile_bin().current_dir(dir.path()).args(args).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "refuses at once");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another stile process"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn flag_beats_env_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stile.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"file-data\"\n[auth]\nkeys = [\"vk_test_from_the_file_123\"]\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("STILE_SERVER_LISTEN", "127.0.0.1:2"), ("STILE_SERVER_DATA_DIR", "env-data")],
    )
    .unwrap();
    let text = server.summary.join("\n");
    assert!(text.contains("stile.toml") && text.contains("STILE_SERVER_DATA_DIR"), "{text}");
    assert!(text.contains("env-data/stile.redb"), "{text}");
    assert!(!server.base.ends_with(":1") && !server.base.ends_with(":2"), "{}", server.base);
    assert!(dir.path().join("env-data/stile.redb").exists());
    assert!(!dir.path().join("file-data").exists());
    // The file's key is accepted; no first key was made because one is configured.
    assert_eq!(server.first_key(), None);
    assert!(!text.contains("DEMO CLOCK"), "the real clock is not announced: {text}");
    let resp = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key("vk_test_from_the_file_123").send();
    assert_eq!(resp.status, 200);
}

#[test]
fn a_bad_config_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stile.toml"), "[delivery]\ntimeout = \"thirty\"\n").unwrap();
    let output = stile_bin().current_dir(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("delivery.timeout") && stderr.contains("stile.toml"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");

    let output = stile_bin().current_dir(dir.path()).args(["--config", "/nonexistent.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));

    let clean = tempfile::tempdir().unwrap();
    let output =
        stile_bin().current_dir(clean.path()).env("STILE_DELIVERY_RETRY_SCHEDULE", "5m,often").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("delivery.retry_schedule") && stderr.contains("STILE_DELIVERY_RETRY_SCHEDULE"), "{stderr}");

    let output = stile_bin().args(["--listen", "nowhere"]).current_dir(clean.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen") && stderr.contains("--listen"), "{stderr}");
}

#[test]
fn keys_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let create = |mode: &str| {
        let out = stile_bin().args(["keys", "create", "--mode", mode, "--data-dir", data]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let test_out = create("test");
    let live_out = create("live");
    let lines: Vec<&str> = test_out.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {test_out:?}");
    let test_key = lines[0].to_string();
    let live_key = live_out.trim().to_string();
    assert!(test_key.starts_with("vk_test_") && test_key.len() >= 32);
    assert!(live_key.starts_with("vk_live_"));

    let list = stile_bin().args(["keys", "list", "--data-dir", data]).output().unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(listing.contains(&test_key[..16]) && listing.contains(&live_key[..16]), "{listing}");
    assert!(!listing.contains(&test_key) && !listing.contains(&live_key), "never the whole key: {listing}");
    assert!(listing.contains("test") && listing.contains("live"));
    // Columns line up: each row's mode and application start where their headings do.
    let heading = listing.lines().next().unwrap();
    for column in ["MODE", "APPLICATION", "CREATED"] {
        let at = heading.find(column).unwrap_or_else(|| panic!("{listing}"));
        for row in listing.lines().skip(1) {
            assert!(row[..at].ends_with("  ") && !row[at..].starts_with(' '), "{column} misaligned:\n{listing}");
        }
    }

    // The keys work, each in its own mode.
    let server = ServerProcess::start(dir.path(), &["--listen", "127.0.0.1:0", "--data-dir", data], &[]).unwrap();
    assert_eq!(server.first_key(), None, "keys exist, so no first key");
    let created = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
        .key(&live_key)
        .json(&serde_json::json!({"url": "https://example.com", "enabled_events": ["*"]}))
        .send();
    assert_eq!(created.body["livemode"], true);
    let shop = Req::new("POST", format!("{}/v1/apps", server.base))
        .key(&live_key)
        .json(&serde_json::json!({"name": "Shop", "uid": "shop"}))
        .send();
    let shop_id = shop.body["id"].as_str().unwrap().to_string();
    // While the server runs, the CLI cannot open the data file and says why.
    let busy = stile_bin().args(["keys", "list", "--data-dir", data]).output().unwrap();
    assert!(!busy.status.success());
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("held by a running stile server") && said.contains("stop the server first"), "{said}");
    assert!(!said.contains("--data-dir"), "no advice meant for a second server: {said}");
    assert_eq!(server.terminate(), Some(0));

    // A key restricted to one application, named by its uid; an unknown one is refused.
    let out =
        stile_bin().args(["keys", "create", "--mode", "live", "--app", "shop", "--data-dir", data]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shop_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out =
        stile_bin().args(["keys", "create", "--mode", "test", "--app", "shop", "--data-dir", data]).output().unwrap();
    assert!(!out.status.success(), "shop is a live-mode application");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no application `shop` in test mode"));
    let listing =
        String::from_utf8(stile_bin().args(["keys", "list", "--data-dir", data]).output().unwrap().stdout).unwrap();
    let shop_line = listing.lines().find(|l| l.starts_with(&shop_key[..16])).unwrap_or_else(|| panic!("{listing}"));
    assert!(shop_line.contains(&shop_id), "the key's application is listed: {listing}");
    assert!(listing.lines().filter(|l| l.contains("(all)")).count() >= 2, "{listing}");

    let ambiguous = stile_bin().args(["keys", "revoke", "vk_", "--data-dir", data]).output().unwrap();
    assert!(!ambiguous.status.success(), "a prefix matching two keys revokes nothing");
    let revoke = stile_bin().args(["keys", "revoke", &test_key[..16], "--data-dir", data]).output().unwrap();
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    let listing =
        String::from_utf8(stile_bin().args(["keys", "list", "--data-dir", data]).output().unwrap().stdout).unwrap();
    assert!(!listing.contains(&test_key[..16]) && listing.contains(&live_key[..16]), "{listing}");

    let server = ServerProcess::start(dir.path(), &["--listen", "127.0.0.1:0", "--data-dir", data], &[]).unwrap();
    let revoked = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(&test_key).send();
    revoked.assert_error(401, "authentication_error", "api_key_invalid");
    // The restricted key acts on its application: what it creates is the shop's alone.
    let made = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
        .key(&shop_key)
        .json(&serde_json::json!({"url": "https://example.com/shop", "enabled_events": ["*"]}))
        .send();
    assert_eq!(made.status, 200, "{}", made.text);
    let in_shop = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(&shop_key).send();
    assert_eq!(in_shop.body["data"].as_array().unwrap().len(), 1);
    let in_default = Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key(&live_key).send();
    assert_eq!(in_default.body["data"].as_array().unwrap().len(), 1, "only the endpoint made before");
    Req::new("GET", format!("{}/v1/apps", server.base)).key(&shop_key).send().assert_error(
        403,
        "permission_error",
        "insufficient_permissions",
    );
}

#[test]
fn sigterm_stops_the_server_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
    let env = [("STILE_AUTH_KEYS", TEST_KEY)];
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let created = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
        .key(TEST_KEY)
        .json(&serde_json::json!({"url": "http://localhost:3000/webhooks", "enabled_events": ["*"]}))
        .send();
    assert_eq!(created.status, 200);
    assert_eq!(server.terminate(), Some(0));
    let server = ServerProcess::start(dir.path(), &args, &env).unwrap();
    let id = created.body["id"].as_str().unwrap();
    let fetched = Req::new("GET", format!("{}/v1/webhook_endpoints/{id}", server.base)).key(TEST_KEY).send();
    assert_eq!(fetched.status, 200);
}

#[test]
fn sigterm_as_soon_as_the_summary_is_out_still_stops_cleanly() {
    // The handlers are installed before the summary is printed; before that fix, a stop
    // sent at once met the default action and killed the process (no exit code).
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
        let server = ServerProcess::start(dir.path(), &args, &[("STILE_AUTH_KEYS", TEST_KEY)]).unwrap();
        assert_eq!(server.terminate(), Some(0));
    }
}

/// The soft and hard open-file limits of a running process, from `/proc`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut numbers = line["Max open files".len()..].split_whitespace();
    (numbers.next().unwrap().to_string(), numbers.next().unwrap().to_string())
}

#[test]
fn the_server_raises_its_open_file_soft_limit_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = stile_bin();
    command.current_dir(dir.path()).args(["--listen", "127.0.0.1:0", "--data-dir", "data"]);
    command.env("STILE_AUTH_KEYS", TEST_KEY);
    // The child starts as a service manager would start it: a soft limit well under the
    // hard one (half of it, at most 256).
    // SAFETY: getrlimit and setrlimit are async-signal-safe and touch only the struct.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = (limit.rlim_max / 2).min(256);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = ServerProcess::start_command(command).unwrap();
    let (soft, hard) = open_file_limits(server.child.id());
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn trigger_drives_a_test_session_until_the_event_is_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = crate::common::receiver::Receiver::start();
    let env = [("STILE_AUTH_KEYS", TEST_KEY)];
    let server = ServerProcess::start(dir.path(), &["--listen", "127.0.0.1:0", "--data-dir", "data"], &env).unwrap();
    let created = Req::new("POST", format!("{}/v1/webhook_endpoints", server.base))
        .key(TEST_KEY)
        .json(&serde_json::json!({"url": receiver.url("/webhooks"), "enabled_events": ["*"]}))
        .send();
    assert_eq!(created.status, 200);

    let output = stile_bin()
        .current_dir(dir.path())
        .args(["trigger", "verification_session.verified", "--url", &server.base])
        .env("STILE_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    for line in ["verification_session.created", "verification_session.processing", "verification_session.verified"] {
        assert!(stdout.lines().any(|l| l.contains(line) && l.contains("evt_")), "{line} in {stdout}");
    }
    let columns: Vec<usize> = stdout.lines().filter_map(|l| l.find("evt_")).collect();
    assert!(columns.len() == 3 && columns.iter().all(|c| *c == columns[0]), "the ids line up: {stdout}");
    let got = receiver.wait_for("/webhooks", 3, Duration::from_secs(10));
    let mut types: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
    types.sort();
    assert_eq!(
        types,
        ["verification_session.created", "verification_session.processing", "verification_session.verified"]
    );

    let unknown =
        stile_bin().args(["trigger", "invoice.paid", "--url", &server.base, "--api-key", TEST_KEY]).output().unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("verification_session.expired"), "lists the valid types: {stderr}");
    let live = stile_bin()
        .args(["trigger", "verification_session.created", "--url", &server.base, "--api-key", "vk_live_x"])
        .output()
        .unwrap();
    assert!(!live.status.success());
    let help = String::from_utf8(stile_bin().args(["trigger", "--help"]).output().unwrap().stdout).unwrap();
    for event_type in stile::event_types::BUILT_IN {
        assert!(help.contains(event_type), "the help lists {event_type}: {help}");
    }
    // A server that is not there: the error names the URL tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = stile_bin()
        .args(["trigger", "verification_session.created", "--url", &nowhere, "--api-key", TEST_KEY])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let said = String::from_utf8_lossy(&unreachable.stderr);
    assert!(said.contains(&format!("{nowhere}/v1/verification_sessions")), "{said}");
}

#[test]
fn a_scaled_clock_is_announced_loudly_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("STILE_AUTH_KEYS", TEST_KEY), ("STILE_DELIVERY_TIME_SCALE", "0.001")];
    let server = ServerProcess::start(dir.path(), &["--listen", "127.0.0.1:0", "--data-dir", "data"], &env).unwrap();
    let text = server.summary.join("\n");
    assert!(text.contains("DEMO CLOCK") && text.contains("1000x faster"), "{text}");
}

#[test]
fn a_binary_copied_to_an_empty_folder_serves_the_whole_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("stile");
    std::fs::copy(env!("CARGO_BIN_EXE_stile"), &binary).unwrap();
    let mut command = stile_command(&binary);
    command.current_dir(dir.path()).args(["--listen", "127.0.0.1:0", "--data-dir", "data"]);
    let server = ServerProcess::start_command(command).unwrap();
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut files = vec![];
    for entry in std::fs::read_dir(&static_dir).unwrap().chain(std::fs::read_dir(static_dir.join("views")).unwrap()) {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push(path.strip_prefix(&static_dir).unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let resp = Req::new("GET", format!("{}/{file}", server.base)).send();
        assert_eq!(resp.status, 200, "{file}");
        assert_eq!(
            resp.text.as_bytes(),
            std::fs::read(static_dir.join(file)).unwrap(),
            "{file} is served byte for byte"
        );
        let expected = match file.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "html" => "text/html",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert!(
            resp.header("content-type").unwrap().starts_with(expected),
            "{file}: {:?}",
            resp.header("content-type")
        );
        assert!(resp.header("etag").is_some(), "{file}");
        assert!(!resp.header("content-security-policy").unwrap().contains("unsafe-inline"));
    }
    // The API and the dashboard never shadow each other.
    let key = server.first_key().expect("a first key");
    let api = Req::new("GET", format!("{}/v1/app.js", server.base)).key(&key).send();
    assert_eq!(api.status, 404);
    assert_eq!(api.body["error"]["type"], "invalid_request_error");
    let missing = Req::new("GET", format!("{}/no-such-page.js", server.base)).send();
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").unwrap().starts_with("application/json"));
}

#[test]
fn every_help_has_one_style_and_names_its_environment_variables_alike() {
    let commands: [&[&str]; 12] = [
        &[],
        &["serve"],
        &["trigger"],
        &["listen"],
        &["backup"],
        &["inspect"],
        &["compact"],
        &["rotate-payload-key"],
        &["keys"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "revoke"],
    ];
    for command in commands {
        let out = stile_bin().args(command).arg("--help").output().unwrap();
        assert!(out.status.success(), "{command:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        // The compact form: one line an option, no "Possible values:" block.
        assert!(!help.contains("Possible values:"), "{command:?}:\n{help}");
        assert!(!help.contains("(see a summary with '-h')"), "{command:?}:\n{help}");
        // `[env: NAME]`, never `[env: NAME=]` or a value.
        for (at, _) in help.match_indices("[env: ") {
            let tag = &help[at..at + help[at..].find(']').unwrap() + 1];
            assert!(!tag.contains('='), "{command:?}: {tag}");
        }
    }
}

#[test]
fn a_misspelt_stile_variable_stops_start_up_naming_the_one_meant() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, meant) in [
        ("STILE_DELIVRY_TIMEOUT", Some("STILE_DELIVERY_TIMEOUT")),
        ("STILE_SERVER_LISTN", Some("STILE_SERVER_LISTEN")),
        ("STILE_FOO_BAR", None),
    ] {
        let mut child = stile_bin()
            .current_dir(dir.path())
            .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
            .env(variable, "3s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A server that ignored the variable would run on: it is stopped, and that fails.
        let exited = crate::common::eventually(Duration::from_secs(10), || child.try_wait().unwrap().is_some());
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(exited && !out.status.success(), "{variable} was ignored");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(&format!("unknown environment variable {variable}")), "{said}");
        match meant {
            Some(meant) => assert!(said.contains(&format!("did you mean {meant}?")), "{said}"),
            None => assert!(!said.contains("did you mean"), "{said}"),
        }
    }
}
