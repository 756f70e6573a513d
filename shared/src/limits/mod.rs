//! Limits (SPEC §3, "Step 0"): every bound fazt enforces, built once at start
//! from the hardware probe and the operator's overrides, then shared read-only.
//!
//! The table below is the single declaration: it produces the [`Limits`]
//! struct, the [`SCHEMA`] of leaves (label, description, unit, range,
//! read-only, default rule) and the accessors. Add a field here and the JSON,
//! the schema endpoint, `fazt limits` and `docs/limits.md` follow.

mod declare;
mod probe;

use std::fmt;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::units::{Unit, GIB, KIB, MIB};
use declare::{declare_limits, limit_default, limit_range};
pub use probe::{
    parse_cgroup1_cpu_quota, parse_cgroup1_memory_limit, parse_cgroup2_cpu_max,
    parse_cgroup2_memory_max, parse_meminfo, MemInfo, Probe, FALLBACK_RAM,
};

/// Scale factor of SPEC §3: linear up to 4 cores, half as steep beyond, since
/// one SQLite writer and shared memory bandwidth stop scaling linearly.
pub fn scale_factor(cores: u64) -> u64 {
    if cores <= 4 {
        cores.max(1)
    } else {
        4 + (cores - 4) / 2
    }
}

declare_limits! {
    /// What the probe found; read-only.
    hardware: Hardware {
        total_ram {
            label: "Total RAM",
            desc: "Memory fazt may use: the cgroup limit when one is set, else physical RAM.",
            unit: Bytes, range: none, read_only: true,
            default: probe("probed", |p| p.total_ram),
        },
        available_ram {
            label: "Available RAM",
            desc: "Memory free at start: cgroup limit minus usage, else MemAvailable.",
            unit: Bytes, range: none, read_only: true,
            default: probe("probed", |p| p.available_ram),
        },
        cpu_cores {
            label: "CPU cores",
            desc: "Cores fazt may use: the cgroup CPU quota when set, else available parallelism.",
            unit: Cores, range: none, read_only: true,
            default: probe("probed", |p| p.cpu_cores),
        },
    }

    /// App files, uploads, the write queue and the network log.
    storage: Storage {
        max_vfs {
            label: "Max stored files",
            desc: "Total size of all apps' files kept in SQLite.",
            unit: Bytes, range: (10 * MIB, GIB), read_only: false,
            default: probe("min(RAM/4, 1 GiB)", |p| (p.total_ram / 4).min(GIB)),
        },
        max_upload {
            label: "Max upload",
            desc: "Largest deploy upload (zip body) the admin API accepts.",
            unit: Bytes, range: (MIB, 100 * MIB), read_only: false,
            default: probe("clamp(RAM/10, 10 MiB, 100 MiB)", |p| (p.total_ram / 10).clamp(10 * MIB, 100 * MIB)),
        },
        write_queue {
            label: "Write queue",
            desc: "Database writes that may wait for the single writer before new ones are refused as retryable.",
            unit: Count, range: (100, 10_000), read_only: false,
            default: fixed(1000),
        },
        max_file_size {
            label: "Max file size",
            desc: "Largest single file of an app.",
            unit: Bytes, range: (MIB, GIB), read_only: false,
            default: fixed(100 * MIB),
        },
        max_site_size {
            label: "Max site size",
            desc: "Total size of one app's files.",
            unit: Bytes, range: (10 * MIB, 5 * GIB), read_only: false,
            default: fixed(500 * MIB),
        },
        max_log_rows {
            label: "Max network log rows",
            desc: "Rows kept in net_log; the oldest are pruned first.",
            unit: Count, range: (10_000, 5_000_000), read_only: false,
            default: fixed(500_000),
        },
        kv_max_bytes {
            label: "kv size per app",
            desc: "Bytes of keys and values one app may keep in fazt.app.kv (KV_QUOTA beyond).",
            unit: Bytes, range: (MIB, 4 * GIB), read_only: false,
            default: fixed(64 * MIB),
        },
        kv_max_keys {
            label: "kv keys per app",
            desc: "Keys one app may keep in fazt.app.kv (KV_QUOTA beyond).",
            unit: Count, range: (100, 10_000_000), read_only: false,
            default: fixed(100_000),
        },
        kv_max_value {
            label: "kv value size",
            desc: "Largest value (as JSON) fazt.app.kv.set accepts.",
            unit: Bytes, range: (KIB, 8 * MIB), read_only: false,
            default: fixed(MIB),
        },
    }

    /// JS execution: time, memory, worker processes and lanes.
    runtime: Runtime {
        exec_timeout_ms {
            label: "JS time per request",
            desc: "JS running time one request may use; time blocked in fetch or kv does not count.",
            unit: Millis, range: (100, 10_000), read_only: false,
            default: fixed(5000),
        },
        max_memory {
            label: "JS memory per lane",
            desc: "Heap limit of one JS lane; going over it ends the request with JS_MEMORY.",
            unit: Bytes, range: (MIB, 256 * MIB), read_only: false,
            default: fixed(50 * MIB),
        },
        workers {
            label: "Worker processes",
            desc: "Worker processes to run; 0 means one per core, as far as RAM allows.",
            unit: Count, range: (0, 256), read_only: false,
            default: fixed(0),
        },
        lanes {
            label: "Lanes per worker",
            desc: "JS threads in each worker, so requests waiting on the network do not block others.",
            unit: Count, range: (1, 256), read_only: false,
            default: fixed(8),
        },
        app_share {
            label: "Lanes one app may hold",
            desc: "Share of a worker's lanes one app may hold while requests of other apps wait; waiting requests of other apps are served first when a lane frees.",
            unit: Percent, range: (10, 100), read_only: false,
            default: fixed(50),
        },
        log_rate {
            label: "App log rate",
            desc: "Bytes of console output per second one app may write to the log; lines beyond are dropped and counted.",
            unit: Bytes, range: (KIB, 10 * MIB), read_only: false,
            default: fixed(64 * KIB),
        },
    }

    /// Request capacity: estimates from the scale factor, and the hard bounds.
    capacity: Capacity {
        users {
            label: "Concurrent users (estimate)",
            desc: "Users this machine should serve comfortably at once.",
            unit: Users, range: none, read_only: true,
            default: probe("50·sf", |p| 50 * scale_factor(p.cpu_cores)),
        },
        users_max {
            label: "Peak users (estimate)",
            desc: "Users at which latency starts to suffer.",
            unit: Users, range: none, read_only: true,
            default: probe("100·sf", |p| 100 * scale_factor(p.cpu_cores)),
        },
        reads {
            label: "Reads per second (estimate)",
            desc: "Read requests per second this machine should sustain.",
            unit: PerSecond, range: none, read_only: true,
            default: probe("200·sf", |p| 200 * scale_factor(p.cpu_cores)),
        },
        writes {
            label: "Writes per second (estimate)",
            desc: "Write requests per second; bound by the single SQLite writer.",
            unit: PerSecond, range: none, read_only: true,
            default: probe("100 + 25·(sf−1)", |p| 100 + 25 * (scale_factor(p.cpu_cores) - 1)),
        },
        mixed {
            label: "Mixed requests per second (estimate)",
            desc: "Requests per second of a typical read/write mix.",
            unit: PerSecond, range: none, read_only: true,
            default: probe("150·sf", |p| 150 * scale_factor(p.cpu_cores)),
        },
        max_requests {
            label: "Max requests in flight",
            desc: "JS requests running or queued for a lane; beyond it new ones get a retryable 503.",
            unit: Count, range: (50, 5000), read_only: false,
            default: fixed(500),
        },
        timeout_ms {
            label: "Request timeout",
            desc: "Wall-clock bound on one whole request, whatever it is doing.",
            unit: Millis, range: (1000, 30_000), read_only: false,
            default: fixed(10_000),
        },
        max_body {
            label: "Max request body",
            desc: "Largest request body an app's /api gets; a larger Content-Length is refused with 413 before the body is read.",
            unit: Bytes, range: (KIB, 8 * MIB), read_only: false,
            default: fixed(8 * MIB),
        },
        body_buffer {
            label: "Request bodies in memory",
            desc: "Bytes of request bodies being read at once, all clients together; further bodies wait (unread) for room.",
            unit: Bytes, range: (8 * MIB, GIB), read_only: false,
            default: fixed(64 * MIB),
        },
        max_connections {
            label: "Max open connections",
            desc: "Client connections open at once; further ones wait in the listen queue until one closes.",
            unit: Count, range: (16, 100_000), read_only: false,
            default: fixed(1024),
        },
        header_timeout_ms {
            label: "Request head timeout",
            desc: "Time a client has to send a whole request head once its first byte arrived.",
            unit: Millis, range: (1000, 60_000), read_only: false,
            default: fixed(10_000),
        },
        body_timeout_ms {
            label: "Request body stall timeout",
            desc: "Longest pause while a request body is being sent; a client that sends nothing for this long is cut off.",
            unit: Millis, range: (1000, 60_000), read_only: false,
            default: fixed(10_000),
        },
        idle_timeout_ms {
            label: "Keep-alive idle timeout",
            desc: "How long a kept-alive connection may wait for its next request.",
            unit: Millis, range: (1000, 300_000), read_only: false,
            default: fixed(10_000),
        },
        write_timeout_ms {
            label: "Response write stall timeout",
            desc: "Longest pause while a response is being sent; a client that reads nothing for this long is cut off.",
            unit: Millis, range: (1000, 60_000), read_only: false,
            default: fixed(10_000),
        },
    }

    /// Egress (`fazt.net.fetch`): budgets, sizes, rates, the log and the cache.
    net: Net {
        max_calls {
            label: "Fetch calls per request",
            desc: "fazt.net.fetch calls one request may make (NET_LIMIT beyond).",
            unit: Count, range: (1, 20), read_only: false,
            default: fixed(5),
        },
        call_timeout_ms {
            label: "Fetch call timeout",
            desc: "Default timeout of one fetch call when its domain entry sets none.",
            unit: Millis, range: (1000, 10_000), read_only: false,
            default: fixed(4000),
        },
        budget_ms {
            label: "Fetch time budget",
            desc: "Total network time one request may spend in fetch (NET_BUDGET beyond).",
            unit: Millis, range: (1000, 10_000), read_only: false,
            default: fixed(4000),
        },
        app_concurrency {
            label: "Concurrent fetches per app",
            desc: "Fetches one app may have in flight at once (NET_LIMIT beyond).",
            unit: Count, range: (1, 1000), read_only: false,
            default: fixed(5),
        },
        concurrency {
            label: "Concurrent fetches in total",
            desc: "Fetches all apps together may have in flight at once.",
            unit: Count, range: (5, 5000), read_only: false,
            default: probe("clamp(10·sf, 20, 100)", |p| (10 * scale_factor(p.cpu_cores)).clamp(20, 100)),
        },
        max_req_body {
            label: "Max fetch request body",
            desc: "Largest request body JS may send (NET_SIZE beyond).",
            unit: Bytes, range: (KIB, 10 * MIB), read_only: false,
            default: fixed(MIB),
        },
        max_response {
            label: "Max fetch response body",
            desc: "Largest response body egress reads (NET_SIZE beyond).",
            unit: Bytes, range: (KIB, 10 * MIB), read_only: false,
            default: fixed(MIB),
        },
        max_redirects {
            label: "Max redirects",
            desc: "Redirects egress follows for one call, each hop checked again.",
            unit: Count, range: (0, 10), read_only: false,
            default: fixed(3),
        },
        rate_limit {
            label: "Default rate limit",
            desc: "Requests per minute per app and domain when the entry sets none; 0 = off.",
            unit: PerMinute, range: (0, 1000), read_only: false,
            default: fixed(0),
        },
        rate_burst {
            label: "Default rate burst",
            desc: "Burst of the default rate limit; 0 with a rate means a burst of 1.",
            unit: Count, range: (0, 100), read_only: false,
            default: fixed(0),
        },
        log_buffer {
            label: "Network log buffer",
            desc: "Log rows waiting for the flusher before success rows are dropped (and counted).",
            unit: Count, range: (100, 10_000), read_only: false,
            default: fixed(1000),
        },
        log_flush_ms {
            label: "Network log flush interval",
            desc: "How often waiting log rows are written to SQLite.",
            unit: Millis, range: (500, 10_000), read_only: false,
            default: fixed(1000),
        },
        cache_max_items {
            label: "Response cache items",
            desc: "Entries in the egress response cache; the cache is on only when this and the byte bound are above 0.",
            unit: Count, range: (0, 10_000), read_only: false,
            default: fixed(0),
        },
        cache_max_bytes {
            label: "Response cache size",
            desc: "Bytes held by the egress response cache.",
            unit: Bytes, range: (0, 100 * MIB), read_only: false,
            default: fixed(0),
        },
    }
}

/// Inclusive bounds of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}

/// How a leaf's default is found.
#[derive(Debug, Clone, Copy)]
pub enum DefaultRule {
    /// The same on every machine.
    Fixed(u64),
    /// Computed from the probe; `formula` documents how.
    Probe {
        /// The rule in words, for docs (`min(RAM/4, 1 GiB)`).
        formula: &'static str,
        /// The rule in code.
        compute: fn(&Probe) -> u64,
    },
}

/// Metadata of one limit.
#[derive(Debug)]
pub struct Leaf {
    /// Group name (`net`).
    pub group: &'static str,
    /// Field name (`max_calls`).
    pub field: &'static str,
    /// Short human label.
    pub label: &'static str,
    /// One-sentence description.
    pub desc: &'static str,
    /// Unit of the value.
    pub unit: Unit,
    /// Allowed values, where the operator may set them.
    pub range: Option<Range>,
    /// Probed or estimated; cannot be overridden.
    pub read_only: bool,
    /// Default rule.
    pub default: DefaultRule,
}

impl Leaf {
    /// `group.field`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.group, self.field)
    }

    /// The default on a machine with this probe, kept inside the range so a
    /// tiny machine never gets a default it could not have set itself.
    pub fn default_for(&self, probe: &Probe) -> u64 {
        let value = match self.default {
            DefaultRule::Fixed(v) => v,
            DefaultRule::Probe { compute, .. } => compute(probe),
        };
        match self.range {
            Some(r) => value.clamp(r.min, r.max),
            None => value,
        }
    }

    /// Where the default comes from.
    pub fn default_source(&self) -> Source {
        match self.default {
            DefaultRule::Fixed(_) => Source::Default,
            DefaultRule::Probe { .. } => Source::Probe,
        }
    }

    /// Parses and checks an operator-supplied value for this leaf.
    pub fn validate(&self, raw: &str) -> Result<u64, LimitError> {
        if self.read_only {
            return Err(LimitError::ReadOnly { path: self.path() });
        }
        let value = self.unit.parse(raw).map_err(|e| LimitError::WrongType {
            path: self.path(),
            expected: e.expected,
            got: raw.to_string(),
        })?;
        self.check_range(value)
    }

    /// Checks a stored value against the range (ranges may change between versions).
    pub fn check_range(&self, value: u64) -> Result<u64, LimitError> {
        if self.read_only {
            return Err(LimitError::ReadOnly { path: self.path() });
        }
        match self.range {
            Some(r) if value < r.min || value > r.max => Err(LimitError::OutOfRange {
                path: self.path(),
                min: self.unit.format(r.min),
                max: self.unit.format(r.max),
                got: self.unit.format(value),
            }),
            _ => Ok(value),
        }
    }
}

/// A parsed limit path; only obtainable for leaves that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitKey(usize);

impl LimitKey {
    /// Parses `group.field`, with a hint listing what exists when it is wrong.
    pub fn parse(path: &str) -> Result<LimitKey, LimitError> {
        if let Some(i) = SCHEMA.iter().position(|l| l.path() == path) {
            return Ok(LimitKey(i));
        }
        let group = path.split('.').next().unwrap_or_default();
        let siblings: Vec<&str> = SCHEMA
            .iter()
            .filter(|l| l.group == group)
            .map(|l| l.field)
            .collect();
        let hint = if siblings.is_empty() {
            let mut groups: Vec<&str> = SCHEMA.iter().map(|l| l.group).collect();
            groups.dedup();
            format!("groups are {}", groups.join(", "))
        } else {
            format!("{group} has {}", siblings.join(", "))
        };
        Err(LimitError::Unknown {
            path: path.to_string(),
            hint,
        })
    }

    /// The leaf's metadata.
    pub fn leaf(self) -> &'static Leaf {
        &SCHEMA[self.0]
    }

    /// Every key, in schema order.
    pub fn all() -> impl Iterator<Item = LimitKey> {
        (0..SCHEMA.len()).map(LimitKey)
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leaf = self.leaf();
        write!(f, "{}.{}", leaf.group, leaf.field)
    }
}

/// Where a value in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The fixed default.
    Default,
    /// Probed, or computed from the probe.
    Probe,
    /// Set by the operator (`fazt limits set`).
    Override,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::Probe => "probe",
            Source::Override => "override",
        })
    }
}

/// Why a limit path or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// No such leaf.
    #[error("unknown limit `{path}` ({hint})")]
    Unknown {
        /// What was asked for.
        path: String,
        /// What exists instead.
        hint: String,
    },
    /// The leaf is probed or estimated.
    #[error("{path} is read-only: it is probed or estimated at start")]
    ReadOnly {
        /// The leaf.
        path: String,
    },
    /// The value is outside the leaf's range.
    #[error("{path} must be between {min} and {max} (got {got})")]
    OutOfRange {
        /// The leaf.
        path: String,
        /// Smallest allowed, formatted.
        min: String,
        /// Largest allowed, formatted.
        max: String,
        /// The value given, formatted.
        got: String,
    },
    /// The value is not of the leaf's type.
    #[error("{path} expects {expected} (got {got:?})")]
    WrongType {
        /// The leaf.
        path: String,
        /// What a valid value looks like.
        expected: &'static str,
        /// The value given.
        got: String,
    },
}

/// An override as stored: a path and a value in the base unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `group.field`.
    pub path: String,
    /// Value in the leaf's base unit.
    pub value: u64,
}

/// One limit as `fazt limits show --json` and the admin API list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitRow {
    /// `group.field`.
    pub path: String,
    /// Label for people.
    pub label: &'static str,
    /// Value in the base unit.
    pub value: u64,
    /// Value as shown (`64 MiB`).
    pub display: String,
    /// Unit name; none for plain counts.
    pub unit: Option<&'static str>,
    /// Where the value came from.
    pub source: Source,
    /// Smallest value allowed, unless read-only.
    pub min: Option<u64>,
    /// Largest value allowed, unless read-only.
    pub max: Option<u64>,
    /// Probed, not settable.
    pub read_only: bool,
}

impl Resolved {
    /// Every limit with its value and source, in schema order.
    pub fn rows(&self) -> Vec<LimitRow> {
        let values = self.limits.values();
        SCHEMA
            .iter()
            .zip(&values)
            .zip(&self.sources)
            .map(|((leaf, value), source)| LimitRow {
                path: leaf.path(),
                label: leaf.label,
                value: *value,
                display: leaf.unit.format(*value),
                unit: leaf.unit.name(),
                source: *source,
                min: leaf.range.map(|r| r.min),
                max: leaf.range.map(|r| r.max),
                read_only: leaf.read_only,
            })
            .collect()
    }
}

/// Limits in effect, with the source of every value.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The values.
    pub limits: Limits,
    /// Source of each leaf, in `SCHEMA` order.
    pub sources: Vec<Source>,
    /// Stored overrides that no longer validate (unknown path, out of range);
    /// they are ignored and reported, never applied.
    pub ignored: Vec<LimitError>,
}

impl Limits {
    /// Defaults for a machine with this probe.
    pub fn defaults(probe: &Probe) -> Limits {
        let mut limits = Limits::zeroed();
        for (slot, leaf) in limits.leaves_mut().into_iter().zip(SCHEMA) {
            *slot = leaf.default_for(probe);
        }
        limits
    }

    /// Defaults plus valid overrides; invalid ones are returned in `ignored`.
    pub fn resolve(probe: &Probe, overrides: &[Override]) -> Resolved {
        let mut limits = Limits::defaults(probe);
        let mut sources: Vec<Source> = SCHEMA.iter().map(Leaf::default_source).collect();
        let mut ignored = Vec::new();
        for o in overrides {
            let checked = LimitKey::parse(&o.path)
                .and_then(|k| k.leaf().check_range(o.value).map(|v| (k, v)));
            match checked {
                Ok((key, value)) => {
                    limits.set(key, value);
                    sources[key.0] = Source::Override;
                }
                Err(e) => ignored.push(e),
            }
        }
        Resolved {
            limits,
            sources,
            ignored,
        }
    }

    /// The value of one leaf.
    pub fn get(&self, key: LimitKey) -> u64 {
        self.values()[key.0]
    }

    /// Sets one leaf without validation; callers validate first.
    fn set(&mut self, key: LimitKey, value: u64) {
        if let Some(slot) = self.leaves_mut().into_iter().nth(key.0) {
            *slot = value;
        }
    }
}

/// The schema as nested JSON of the same shape as [`Limits`] (SPEC §3): each
/// leaf `{label, desc, unit?, min?, max?, default, read_only}`.
pub fn schema_json(probe: &Probe) -> Value {
    let mut root = Map::new();
    for leaf in SCHEMA {
        let mut obj = Map::new();
        obj.insert("label".into(), json!(leaf.label));
        obj.insert("desc".into(), json!(leaf.desc));
        if let Some(unit) = leaf.unit.name() {
            obj.insert("unit".into(), json!(unit));
        }
        if let Some(r) = leaf.range {
            obj.insert("min".into(), json!(r.min));
            obj.insert("max".into(), json!(r.max));
        }
        obj.insert("default".into(), json!(leaf.default_for(probe)));
        obj.insert("read_only".into(), json!(leaf.read_only));
        let group = root
            .entry(leaf.group)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(g) = group {
            g.insert(leaf.field.into(), Value::Object(obj));
        }
    }
    Value::Object(root)
}

/// `docs/limits.md`, generated from the schema so the docs cannot drift.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Limits\n\n\
         Generated from the limits declaration in `shared/src/limits/mod.rs`; a test\n\
         fails when this file differs (`FAZT_BLESS=1 cargo test -p fazt-shared` rewrites it).\n\n\
         Set one with `fazt limits set <group.field> <value>` (units such as `64MiB` or `5s`\n\
         are accepted), undo with `fazt limits reset <group.field>`, and see every value and\n\
         where it came from with `fazt limits show`. Overrides apply at the next start.\n\n\
         `sf` is the scale factor: cores up to 4, then `4 + (cores − 4) / 2`.\n",
    );
    let mut group = "";
    for leaf in SCHEMA {
        if leaf.group != group {
            group = leaf.group;
            out.push_str(&format!(
                "\n## {group}\n\n| field | label | default | range | unit | meaning |\n|---|---|---|---|---|---|\n"
            ));
        }
        let default = match leaf.default {
            DefaultRule::Fixed(v) => leaf.unit.format(v),
            DefaultRule::Probe { formula, .. } => formula.to_string(),
        };
        let range = match (leaf.range, leaf.read_only) {
            (_, true) => "read-only".to_string(),
            (Some(r), false) => {
                format!("{} – {}", leaf.unit.format(r.min), leaf.unit.format(r.max))
            }
            (None, false) => "any".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            leaf.field,
            leaf.label,
            default,
            range,
            leaf.unit.name().unwrap_or("—"),
            leaf.desc
        ));
    }
    out
}

#[cfg(test)]
mod tests;
