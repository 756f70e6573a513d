//! Command-line interface: every subcommand and flag, with the help text an
//! operator reads.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// fazt: static sites and small server-side JavaScript apps, in one binary.
///
/// Apps live in SQLite in the data dir; JS runs in a pool of worker processes.
/// Start with `fazt supervise`; the admin token is written to
/// `<data-dir>/admin.token` at first start.
#[derive(Debug, Parser)]
#[command(name = "fazt", version, propagate_version = true)]
pub struct Cli {
    /// Data directory: fazt.db, admin.token, control.sock.
    #[arg(
        long,
        global = true,
        env = "FAZT_DATA",
        default_value = "fazt-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run fazt: open the data dir, serve apps and the admin API until SIGTERM.
    Supervise(SuperviseArgs),
    /// Show and override limits (applied at the next start).
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Deploy, list and remove apps.
    #[command(subcommand)]
    App(AppCommand),
    /// The domains apps may fetch with fazt.net.fetch (the allowlist). An
    /// empty allowlist allows nothing. Changes reach a running fazt within
    /// a second.
    #[command(subcommand)]
    Net(NetCommand),
    /// Secrets egress sends for apps (a bearer token, a header, a query
    /// parameter) to one domain; JS names them and never sees them.
    /// Changes reach a running fazt within a second.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Look at the worker processes of the running supervisor.
    #[command(subcommand)]
    Workers(WorkersCommand),
    /// Run fazt as a systemd service.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Copy the database to FILE while fazt runs: a consistent snapshot
    /// (SQLite `VACUUM INTO`) of apps, files, kv, limits and the admin
    /// token's hash. Restore by stopping fazt and putting the copy in place
    /// of <data-dir>/fazt.db.
    Backup {
        /// Where the copy goes; it must not exist yet unless --force.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Run one worker process (started by `fazt supervise`; not for direct use).
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Run the egress process (started by `fazt supervise`; not for direct use).
    #[command(hide = true)]
    Egress(EgressArgs),
}

/// `fazt net …`.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Allow a domain: `api.example.com` exactly, or `*.example.com` for its
    /// subdomains (not example.com itself; never over a public suffix like
    /// *.com or *.co.uk). https only unless --http. Allowing an existing
    /// entry again replaces its settings with this command's (a flag not
    /// given inherits). Per-domain values: 0 inherits the `net` limit of
    /// the same name; others must lie in that limit's range.
    Allow {
        /// The domain or `*.` wildcard; no scheme, port or path.
        domain: String,
        /// Only for this app (default: every app). The app's own entry
        /// wins over a global one.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Allow plain http too.
        #[arg(long)]
        http: bool,
        /// Requests per minute per app (net.rate_limit).
        #[arg(long, value_name = "PER_MINUTE")]
        rate: Option<String>,
        /// Burst above the rate (net.rate_burst).
        #[arg(long, value_name = "N")]
        burst: Option<String>,
        /// Timeout of one call in ms (net.call_timeout_ms).
        #[arg(long, value_name = "MS")]
        timeout: Option<String>,
        /// Largest response, like 2MiB (net.max_response).
        #[arg(long, value_name = "BYTES")]
        max_response: Option<String>,
        /// Cache responses this many seconds, up to 86400 (0: no cache).
        #[arg(long, value_name = "SECONDS")]
        cache_ttl: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List allowlist entries: global ones first, then each app's.
    List {
        /// Only this app's entries.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The network log: every fetch, newest first (paths without their
    /// query strings).
    Logs {
        /// Only this app's calls.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Only calls to this domain.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only failed calls.
        #[arg(long)]
        errors: bool,
        /// At most this many rows.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u64,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Per domain: calls, errors by code, p50/p99 duration, bytes, cache
    /// hits, and log rows the flusher could not keep.
    Stats {
        /// Only this app's calls.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The response cache of the running fazt: items, bytes, hit ratio;
    /// `fazt net cache clear` empties it (for --app, or all).
    Cache {
        /// `clear` to empty it.
        #[arg(value_parser = ["clear"])]
        action: Option<String>,
        /// Only this app's entries.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry (the global one, or --app's).
    Remove {
        /// The domain or `*.` wildcard, as allowed.
        domain: String,
        /// The app whose entry it is (default: the global entry).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `fazt secret …`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret, replacing one of the same name (for --app, or the
    /// global one). JS uses it with fazt.net.fetch(url, {auth: "NAME"});
    /// egress sends it only to --domain and removes it from what comes
    /// back. Give VALUE as `-` to read it from standard input (it then
    /// stays out of the shell's history).
    Set {
        /// Letters, digits and _, not starting with a digit.
        name: String,
        /// The value, or `-` for standard input (one trailing newline is
        /// dropped).
        value: String,
        /// How it is sent: bearer (Authorization: Bearer VALUE), header
        /// (KEY: VALUE) or query (KEY=VALUE added to the URL's query).
        #[arg(long = "as", value_name = "KIND", default_value = "bearer")]
        kind: String,
        /// The header name or query key (for header and query).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// The only domain it is sent to: `api.example.com`, or
        /// `*.example.com` for its subdomains.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only for this app (default: every app). An app's own secret
        /// wins over a global one of the same name.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List secrets, values masked (first 3 and last 3 characters; 12 or
    /// fewer not shown at all).
    List {
        /// Only this app's secrets.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret (the global one, or --app's).
    Remove {
        /// Its name.
        name: String,
        /// The app whose secret it is (default: the global one).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `fazt service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write a systemd unit that runs this fazt executable with this data
    /// dir (Type=notify, watchdog, restart, hardening), and print the
    /// systemctl commands that start it. Writes
    /// /etc/systemd/system/fazt.service, or with --user
    /// ~/.config/systemd/user/fazt.service.
    Install {
        /// A user unit instead of a system one.
        #[arg(long)]
        user: bool,
        /// Print the unit instead of writing it.
        #[arg(long)]
        print: bool,
        /// Replace an existing unit file.
        #[arg(long)]
        force: bool,
    },
}

/// `fazt app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Deploy a folder: static files, plus `api/main.js` for server code. A
    /// running supervisor serves the new version from its next request.
    Deploy {
        /// The app's folder. Hidden files (`.git`, `.env`) are skipped.
        dir: PathBuf,
        /// App name (default: the folder's name); a-z, 0-9 and '-', up to 63 characters.
        #[arg(long)]
        name: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List deployed apps.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove an app with its files and kv data.
    Remove {
        /// App name.
        name: String,
    },
}

/// `fazt workers …`.
#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// One row per worker: pid, state, uptime, restarts, last exit, CPU, memory, lanes, latency.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Replace every worker process with a fresh one, one at a time, losing
    /// no request: each new worker is ready before the one it replaces stops
    /// taking requests. The same as sending the supervisor SIGHUP.
    Reload {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `fazt worker` (hidden).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Slot number.
    #[arg(long)]
    pub slot: u32,
    /// The supervisor's worker socket.
    #[arg(long)]
    pub socket: PathBuf,
}

/// `fazt egress` (hidden).
#[derive(Debug, Args)]
pub struct EgressArgs {
    /// The supervisor's children's socket.
    #[arg(long)]
    pub socket: PathBuf,
}

/// `fazt supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// Address of the HTTP front door (apps and admin API). Port 0 picks a free port.
    #[arg(long, env = "FAZT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Domain apps are served under: `<app>.<domain>`, admin at `admin.<domain>`.
    #[arg(long, env = "FAZT_DOMAIN", default_value = "localhost")]
    pub domain: String,
}

/// `fazt limits …`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Every limit with its value, where it came from (default/probe/override) and its range.
    Show {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Override one limit, e.g. `fazt limits set runtime.max_memory 64MiB`.
    Set {
        /// `group.field`, as listed by `fazt limits show`.
        path: String,
        /// New value; sizes take units (`64MiB`), durations too (`5s`, `500ms`).
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Remove an override; the default applies again at the next start.
    Reset {
        /// `group.field`.
        path: String,
    },
}
