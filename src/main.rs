//! The `stile` binary: parses the command line and hands over to the library.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use stile::cli::{Cli, Command, KeysCommand, ListenArgs, ServeArgs, StoreArgs};
use stile::config::{Config, Loaded};
use stile::store::Store;
use stile::store::model::Revoked;

/// mimalloc instead of glibc's malloc: under load a delivery allocates and frees many
/// small buffers across threads (pages read, request bodies, records), and glibc's
/// `_int_malloc`/`_int_free`/`malloc_consolidate` were ~13% of the server's CPU in W1.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Keys { action }) => keys(action),
        Some(Command::Compact { store }) => compact(&store),
        Some(Command::Inspect { store }) => inspect(&store),
        Some(Command::RotatePayloadKey { store }) => rotate_payload_key(&store),
        Some(Command::Backup { file, url, token, store }) => backup(&file, url, token, &store),
        Some(Command::Trigger { event_type, url, api_key, config }) => trigger(&event_type, url, api_key, config),
        Some(Command::Listen(args)) => listen(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into `head` and the like: the reader has what it wanted.
        Err(err)
            if err.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("stile: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc reserves its arenas committed in full by default (on Linux, which
/// overcommits): ~25 MiB more resident memory under load for nothing measurable here.
/// Committing as pages are used keeps the footprint near glibc's. The option must be set
/// before the first allocation reserves an arena, and the Rust runtime allocates before
/// `main`: so it is set from the ELF initialisers, which run before the runtime starts
/// (and `mi_option_set` holds whatever order mimalloc's own initialiser runs in, since it
/// reads an option from the environment only if nothing set it).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static LIMIT_ALLOCATOR_FOOTPRINT: extern "C" fn() = {
    extern "C" fn limit() {
        /// `mi_option_arena_eager_commit` in mimalloc.h's `mi_option_e` (v2 and v3 alike);
        /// libmimalloc-sys names no constant for it.
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        // SAFETY: sets one of mimalloc's options, before any thread exists.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) }
    }
    limit
};

fn load_config(overrides: &stile::config::Overrides) -> anyhow::Result<Loaded> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(Config::load(overrides, &env)?)
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let Loaded { config, source } = load_config(&args.overrides())?;
    init_tracing(&config.log);
    stile::server::limits::raise_open_file_limit();
    let listen = config.server.listen;
    let system = actix_web::rt::System::new();
    let stile::Prepared { state, first_key } = system.block_on(stile::prepare(config))?;
    let listener = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let stop = system.block_on(async { StopSignals::listen() });

    let mut out = std::io::stdout().lock();
    writeln!(out, "stile {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "  config     {source}")?;
    writeln!(out, "  {}", state.store.describe())?;
    writeln!(out, "  listening  http://{bound}")?;
    writeln!(out, "  dashboard  http://{bound}/")?;
    writeln!(out, "  mode       {}", state.config.server.mode.as_str())?;
    let budget = stile::server::limits::ConnectionBudget::measure(&state.config, stile::server::worker_count());
    writeln!(
        out,
        "  limits     {}; a request must arrive whole within {}",
        budget.describe(),
        humantime::format_duration(state.config.server.request_timeout)
    )?;
    let scale = state.config.delivery.time_scale;
    if scale != 1.0 {
        writeln!(
            out,
            "  DEMO CLOCK delivery.time_scale = {scale}: retry delays and session lifetimes run {:.0}x faster",
            1.0 / scale
        )?;
    }
    match first_key {
        Some(key) => {
            writeln!(out, "  API key    {key}")?;
            writeln!(out, "             (a new test key: it is shown only this once, so save it now)")?;
        }
        None => {
            writeln!(out, "  API keys   {} accepted (`stile keys create --mode test` makes another)", state.keys.len())?
        }
    }
    out.flush()?;
    drop(out);

    system.block_on(stile::server::serve_within(state, listener, stop.recv(), budget))?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, listened for from before the start-up summary is printed: a stop
/// sent as soon as the server says it is up (a service manager's, a test's) shuts it down
/// cleanly instead of meeting the default action, which kills the process.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the handlers. Must run inside the runtime the server will run on.
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for {name}; it will not stop the server cleanly");
                    None
                }
            };
            Self {
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
                terminate: install(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Completes when either signal arrives.
    async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(self.interrupt) => {}
                _ = next(self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

/// Logs to stderr with the configured filter (`RUST_LOG` wins when set) and format, in
/// colour only where [`log_colours`] says.
fn init_tracing(log: &stile::config::LogConfig) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{},actix_server=warn", log.filter)));
    let ansi = log_colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match log.format {
        stile::config::LogFormat::Text => builder.init(),
        stile::config::LogFormat::Json => builder.json().init(),
    }
}

/// Whether log lines carry ANSI colours: only when stderr is a terminal (a file, a pipe or
/// journald gets plain text), and never when `NO_COLOR` is set to anything but the empty
/// string (no-color.org).
fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

fn trigger(
    event_type: &str,
    url: Option<String>,
    api_key: Option<String>,
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url,
        None => {
            let overrides = stile::config::Overrides { config_path: config, ..Default::default() };
            load_config(&overrides)?.config.local_base()
        }
    };
    let key = api_key.ok_or_else(|| {
        anyhow::anyhow!("no API key: pass --api-key or set STILE_API_KEY (the test key printed at first start)")
    })?;
    stile::trigger::run(event_type, &base, &key)
}

fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let server = match args.url {
        Some(url) => url,
        None => {
            let overrides = stile::config::Overrides { config_path: args.config, ..Default::default() };
            load_config(&overrides)?.config.local_base()
        }
    };
    let api_key = args.api_key.ok_or_else(|| {
        anyhow::anyhow!("no API key: pass --api-key or set STILE_API_KEY (the test key printed at first start)")
    })?;
    stile::listen::client::run(stile::listen::client::ListenOptions {
        forward_to: args.forward_to,
        server,
        api_key,
        events: args.events,
        app: args.app,
        skip_verify: args.skip_verify,
        print_json: args.print_json,
    })
}

fn inspect(args: &StoreArgs) -> anyhow::Result<()> {
    let Loaded { config, .. } = load_config(&args.overrides())?;
    if config.store.backend == stile::config::Backend::Postgres {
        anyhow::bail!(
            "`stile inspect` reads a redb data file; this config keeps the data in Postgres: ask the database (psql: \\dt+, pg_total_relation_size)"
        );
    }
    let path = config.server.data_dir.join(stile::store::DATA_FILE_NAME);
    let usage = stile::store::redb::inspect_file(&path).map_err(|err| held_by_server("inspect", err))?;
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {} bytes", path.display(), thousands(file))?;
    writeln!(
        out,
        "{:<34} {:>13} {:>15} {:>13} {:>13} {:>6}",
        "table", "rows", "stored bytes", "metadata", "fragmented", "height"
    )?;
    let (mut rows, mut bytes) = (0, 0);
    for table in &usage {
        writeln!(
            out,
            "{:<34} {:>13} {:>15} {:>13} {:>13} {:>6}",
            table.name,
            thousands(table.rows),
            thousands(table.stored_bytes),
            thousands(table.metadata_bytes),
            thousands(table.fragmented_bytes),
            table.tree_height
        )?;
        rows += table.rows;
        bytes += table.total_bytes();
    }
    writeln!(out, "{:<34} {:>13} {:>15}", "all tables (bytes of their pages)", thousands(rows), thousands(bytes))?;
    writeln!(
        out,
        "free or unaccounted in the file: {} bytes (`stile compact` returns free space)",
        thousands(file.saturating_sub(bytes))
    )?;
    Ok(())
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Opens the store for `stile <command>`, which works while the server is stopped.
async fn open_store(command: &str, args: &StoreArgs) -> anyhow::Result<Store> {
    let Loaded { config, .. } = load_config(&args.overrides())?;
    stile::open_store(&config).await.map_err(|err| held_by_server(command, err))
}

/// An error opening the data file for `stile <command>`, which works on the file while
/// the server is stopped: if a running server holds it, says so and what to do.
fn held_by_server(command: &str, err: stile::store::OpenError) -> anyhow::Error {
    match err {
        stile::store::OpenError::InUse(path) => anyhow::anyhow!(
            "{} is held by a running stile server; `stile {command}` works on the data file while the server is stopped: stop the server first (to copy the data while it runs, use `stile backup`)",
            path.display()
        ),
        other => other.into(),
    }
}

/// Runs a command's store work to its end: the one place a command (not the server)
/// waits on the store.
fn run_to_end<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime the command's store work runs on")?
        .block_on(work)
}

fn backup(file: &std::path::Path, url: Option<String>, token: Option<String>, args: &StoreArgs) -> anyhow::Result<()> {
    let Loaded { config, .. } = load_config(&args.overrides())?;
    let base = url.unwrap_or_else(|| config.local_base());
    let token = match token {
        Some(token) => token,
        None => stile::admin::read_token(&config.server.data_dir).with_context(|| {
            format!(
                "cannot read the admin token from {}; run as the server's user, or pass --token",
                stile::admin::token_path(&config.server.data_dir).display()
            )
        })?,
    };
    let written = stile::backup::download(&base, &token, file)?;
    println!("backup of {base} written to {} ({written} bytes)", file.display());
    Ok(())
}

fn compact(args: &StoreArgs) -> anyhow::Result<()> {
    let store = run_to_end(open_store("compact", args))?;
    let Some(path) = store.data_file().map(std::path::Path::to_path_buf) else {
        return Err(store.compact().expect_err("only a data file compacts").into());
    };
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    store.compact()?;
    let after = size(&path);
    println!(
        "compacted {}: {} -> {} bytes ({:.1} MiB freed)",
        path.display(),
        before,
        after,
        before.saturating_sub(after) as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn rotate_payload_key(args: &StoreArgs) -> anyhow::Result<()> {
    let Loaded { config, .. } = load_config(&args.overrides())?;
    let options = config.store_options();
    let rotated =
        stile::store::redb::rotate_payload_key(&config.server.data_dir, &options).map_err(|err| match err {
            stile::store::model::RotateError::Open(err) => held_by_server("rotate-payload-key", err),
            other => other.into(),
        })?;
    println!(
        "payload key rotated: {} -> {}; re-encrypted {} payloads, {} response excerpts, {} stored responses and the signing secrets of {} endpoints",
        rotated.old_key, rotated.new_key, rotated.payloads, rotated.responses, rotated.idempotency, rotated.endpoints
    );
    println!(
        "the new key is in {}; the old one is kept in {} (backups taken before now need it)",
        options.key_file(&config.server.data_dir).display(),
        rotated.old_key_file.display()
    );
    Ok(())
}

fn keys(action: KeysCommand) -> anyhow::Result<()> {
    run_to_end(keys_with(action))
}

async fn keys_with(action: KeysCommand) -> anyhow::Result<()> {
    match action {
        KeysCommand::Create { mode, app, store } => {
            let store = open_store("keys create", &store).await?;
            let app = match app {
                Some(name) => {
                    let found = store.find_app(mode, name.clone()).await?;
                    Some(found.ok_or_else(|| anyhow::anyhow!("no application `{name}` in {mode} mode"))?.id)
                }
                None => None,
            };
            println!("{}", stile::create_api_key_for(&store, mode, app, stile::clock::unix_now()).await?);
        }
        KeysCommand::List { store } => {
            let store = open_store("keys list", &store).await?;
            let keys = store.api_keys().await?;
            if keys.is_empty() {
                eprintln!("no stored keys (keys in [auth] keys are not listed)");
            }
            let rows: Vec<Vec<String>> = keys
                .into_iter()
                .map(|(_, key)| {
                    let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(key.created.max(0) as u64);
                    let app = key.app.map_or_else(|| "(all)".to_string(), |app| app.to_string());
                    let created = humantime::format_rfc3339_seconds(created).to_string();
                    vec![key.prefix, key.mode.to_string(), app, created]
                })
                .collect();
            let header = ["PREFIX", "MODE", "APPLICATION", "CREATED"];
            stile::table::write_table(&mut std::io::stdout().lock(), &header, &rows)?;
        }
        KeysCommand::Revoke { prefix, store } => {
            let store = open_store("keys revoke", &store).await?;
            match store.revoke_api_key(prefix.clone()).await? {
                Revoked::One(key) => println!("revoked {} ({})", key.prefix, key.mode),
                Revoked::NoMatch => anyhow::bail!("no stored key starts with `{prefix}`"),
                Revoked::Ambiguous(keys) => {
                    let names: Vec<String> = keys.into_iter().map(|k| k.prefix).collect();
                    anyhow::bail!(
                        "`{prefix}` matches {} keys ({}); give more of the prefix",
                        names.len(),
                        names.join(", ")
                    )
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_colours;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(!log_colours(false, None), "a pipe or a file gets plain text");
        assert!(!log_colours(true, Some(OsStr::new("1"))), "NO_COLOR turns colours off");
        assert!(log_colours(true, Some(OsStr::new(""))), "an empty NO_COLOR is as if unset");
    }
}
