//! The command line: `stile [serve]`, `stile keys ...`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Overrides, RunMode};
use crate::mode::Mode;

/// stile: a self-hosted webhook server.
#[derive(Debug, Parser)]
#[command(name = "stile", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Create a test verification session on a running server and drive it until
    /// EVENT_TYPE is emitted, like `stripe trigger`.
    Trigger {
        /// The event type to end with (the session emits each one on its way)
        #[arg(value_name = "EVENT_TYPE", value_parser = clap::builder::PossibleValuesParser::new(crate::event_types::BUILT_IN))]
        event_type: String,
        /// The server [default: http://<server.listen> from the config]
        #[arg(long)]
        url: Option<String>,
        /// A test API key
        #[arg(long, env = "STILE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Config file [default: ./stile.toml if it exists]
        #[arg(long, env = "STILE_CONFIG", hide_env_values = true, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Receive a stile server's deliveries on this machine without a tunnel, like `stripe
    /// listen`: each is POSTed to --forward-to with its exact body and signed headers, and
    /// the local answer is recorded as the attempt's outcome.
    Listen(ListenArgs),
    /// Write a consistent copy of the store of a running server to FILE. Restore it by
    /// putting it in place of stile.redb while the server is stopped.
    Backup {
        /// Where to write the copy (must not exist yet)
        file: PathBuf,
        /// The server [default: http://<server.listen> from the config]
        #[arg(long)]
        url: Option<String>,
        /// The admin token [default: read from admin.token in the data directory]
        #[arg(long, env = "STILE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print what the data file holds, table by table: rows and bytes (while the server
    /// is stopped).
    Inspect {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rewrite the data file without its free space (while the server is stopped).
    Compact {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Encrypt every stored payload with a new payload key (while the server is stopped).
    /// The old key is kept beside the new one for backups taken before.
    RotatePayloadKey {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage API keys in the data file (while the server is stopped).
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        action: KeysCommand,
    },
}

/// Flags of `stile listen`.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Where to POST each delivery, e.g. http://localhost:3000/webhooks
    #[arg(long, value_name = "URL")]
    pub forward_to: String,
    /// The stile server [default: http://<server.listen> from the config]
    #[arg(long)]
    pub url: Option<String>,
    /// An API key of the application's mode
    #[arg(long, env = "STILE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Event types to receive, comma-separated [default: all]
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    pub events: Vec<String>,
    /// The application (id or uid) [default: the key's]
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Accept the server's TLS certificate without checking it (self-signed staging
    /// certificates)
    #[arg(long)]
    pub skip_verify: bool,
    /// Print one JSON object per delivery on stdout instead of a line
    #[arg(long)]
    pub print_json: bool,
    /// Config file [default: ./stile.toml if it exists]
    #[arg(long, env = "STILE_CONFIG", hide_env_values = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Flags of `stile serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Config file [default: ./stile.toml if it exists]
    #[arg(long, env = "STILE_CONFIG", hide_env_values = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8787
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory of the data file
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// development (loopback http:// accepted) or production (https:// only, private
    /// networks refused) [default: from the config]
    #[arg(long, value_enum, hide_possible_values = true)]
    pub mode: Option<RunMode>,
}

impl ServeArgs {
    /// The config overrides these flags make.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_path: self.config.clone(),
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            mode: self.mode,
        }
    }
}

/// `stile keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (only the key) on stdout.
    Create {
        /// test (a vk_test_ key) or live (a vk_live_ key)
        #[arg(long, value_enum, hide_possible_values = true)]
        mode: Mode,
        /// Restrict the key to one application of the mode (its id or uid): it acts on
        /// that application only and cannot list or manage applications.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys: prefix, mode, application, creation time (never the key).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke the key whose prefix starts with PREFIX.
    Revoke {
        /// The prefix shown by `stile keys list`.
        prefix: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the data file (and config) of a `keys`, `compact` or `backup` command is.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Config file [default: ./stile.toml if it exists]
    #[arg(long, env = "STILE_CONFIG", hide_env_values = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory of the data file
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The config overrides these flags make.
    pub fn overrides(&self) -> Overrides {
        Overrides { config_path: self.config.clone(), data_dir: self.data_dir.clone(), ..Overrides::default() }
    }
}
