//! The allowlist (SPEC §6 step 2–4): which domains an app may fetch, over
//! which schemes, with which per-domain settings. Empty means nothing is
//! allowed. An app's own entry wins over a global one; within one scope an
//! exact entry wins over a wildcard, and a narrower wildcard over a wider.

use serde::Serialize;

use super::domain::{Domain, DomainPattern};
use crate::limits::{LimitError, LimitKey};
use crate::AppName;

/// Longest per-domain cache TTL, in seconds (one day); `net` has no leaf
/// to borrow a range from.
pub const MAX_CACHE_TTL_S: u64 = 86_400;

/// Whose an entry is; in JSON the app's name, or null for global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every app's.
    Global,
    /// One app's.
    App {
        /// Its id.
        id: i64,
        /// Its name.
        name: AppName,
    },
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::Global => s.serialize_none(),
            Scope::App { name, .. } => s.serialize_some(name.as_str()),
        }
    }
}

impl Scope {
    /// The scope of a stored row: no app id is global; an app id comes with
    /// the app's name (`None` when the name no longer parses, and the row
    /// is skipped).
    pub fn from_row(app_id: Option<i64>, app_name: Option<&str>) -> Option<Scope> {
        match (app_id, app_name.map(AppName::parse)) {
            (None, _) => Some(Scope::Global),
            (Some(id), Some(Ok(name))) => Some(Scope::App { id, name }),
            (Some(_), _) => None,
        }
    }

    /// The app id, for a per-app scope.
    pub fn app_id(&self) -> Option<i64> {
        match self {
            Scope::Global => None,
            Scope::App { id, .. } => Some(*id),
        }
    }
}

/// Per-domain settings of an entry; `None` inherits from `Limits.net`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DomainSettings {
    /// Requests per minute (`net.rate_limit`).
    pub rate: Option<u64>,
    /// Burst (`net.rate_burst`).
    pub burst: Option<u64>,
    /// Per-call timeout in ms (`net.call_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Largest response in bytes (`net.max_response`).
    pub max_response: Option<u64>,
    /// How long responses may be cached, in seconds (0 = not cached).
    pub cache_ttl_s: Option<u64>,
}

/// Which setting a value is for, and the `Limits.net` leaf whose range it
/// must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `--rate`.
    Rate,
    /// `--burst`.
    Burst,
    /// `--timeout`.
    Timeout,
    /// `--max-response`.
    MaxResponse,
    /// `--cache-ttl`.
    CacheTtl,
}

impl Setting {
    fn leaf(self) -> Option<&'static str> {
        match self {
            Setting::Rate => Some("net.rate_limit"),
            Setting::Burst => Some("net.rate_burst"),
            Setting::Timeout => Some("net.call_timeout_ms"),
            Setting::MaxResponse => Some("net.max_response"),
            Setting::CacheTtl => None,
        }
    }

    /// Parses an operator's value: `0` inherits, anything else must lie in
    /// the range of the matching `Limits.net` leaf (units as there).
    pub fn parse(self, raw: &str) -> Result<Option<u64>, LimitError> {
        let Some(path) = self.leaf() else {
            let value: u64 = raw.trim().parse().map_err(|_| LimitError::WrongType {
                path: "cache_ttl".into(),
                expected: "a whole number of seconds",
                got: raw.to_string(),
            })?;
            if value > MAX_CACHE_TTL_S {
                return Err(LimitError::OutOfRange {
                    path: "cache_ttl".into(),
                    min: "0".into(),
                    max: format!("{MAX_CACHE_TTL_S} s"),
                    got: format!("{value} s"),
                });
            }
            return Ok((value > 0).then_some(value));
        };
        let leaf = LimitKey::parse(path)?.leaf();
        let value = leaf.unit.parse(raw).map_err(|e| LimitError::WrongType {
            path: leaf.path(),
            expected: e.expected,
            got: raw.to_string(),
        })?;
        if value == 0 {
            return Ok(None);
        }
        leaf.check_range(value).map(Some)
    }
}

/// One allowlist entry. In JSON: `{"app", "domain", "http", "rate",
/// "burst", "timeout_ms", "max_response", "cache_ttl_s", "updated_at"}`,
/// null where a setting inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowEntry {
    /// Global or one app's.
    #[serde(rename = "app")]
    pub scope: Scope,
    /// The domain or `*.` wildcard.
    #[serde(rename = "domain")]
    pub pattern: DomainPattern,
    /// Plain http allowed too (`--http`).
    #[serde(rename = "http")]
    pub allow_http: bool,
    /// Per-domain settings.
    #[serde(flatten)]
    pub settings: DomainSettings,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

impl AllowEntry {
    /// How strongly this entry claims `host` for `app_id`, if it does:
    /// own scope over global, exact over wildcard, narrower over wider.
    fn claim(&self, app_id: i64, host: &Domain) -> Option<(bool, bool, usize)> {
        let own = match self.scope.app_id() {
            Some(id) if id == app_id => true,
            Some(_) => return None,
            None => false,
        };
        if !self.pattern.matches(host) {
            return None;
        }
        let (exact, width) = match &self.pattern {
            DomainPattern::Exact(d) => (true, d.as_str().len()),
            DomainPattern::Wildcard(d) => (false, d.as_str().len()),
        };
        Some((own, exact, width))
    }
}

/// All entries, as loaded from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

impl Allowlist {
    /// An allowlist of these entries.
    pub fn new(entries: Vec<AllowEntry>) -> Allowlist {
        Allowlist { entries }
    }

    /// The entry that decides whether app `app_id` may fetch `host`.
    pub fn lookup(&self, app_id: i64, host: &Domain) -> Option<&AllowEntry> {
        self.entries
            .iter()
            .filter_map(|e| e.claim(app_id, host).map(|c| (c, e)))
            .max_by_key(|(c, _)| *c)
            .map(|(_, e)| e)
    }

    /// Every entry.
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scope: Scope, pattern: &str, http: bool) -> AllowEntry {
        AllowEntry {
            scope,
            pattern: DomainPattern::parse(pattern).expect("pattern"),
            allow_http: http,
            settings: DomainSettings::default(),
            updated_at: 0,
        }
    }

    fn app(id: i64) -> Scope {
        Scope::App {
            id,
            name: AppName::parse(&format!("app{id}")).expect("name"),
        }
    }

    #[test]
    fn the_closest_entry_decides() {
        let list = Allowlist::new(vec![
            entry(Scope::Global, "*.example.com", false),
            entry(Scope::Global, "api.example.com", true),
            entry(app(1), "*.example.com", true),
            entry(Scope::Global, "*.deep.example.com", true),
            entry(app(2), "other.net", false),
        ]);
        let d = |s| Domain::parse(s).expect("domain");
        let http = |app_id, host| list.lookup(app_id, &d(host)).map(|e| e.allow_http);
        // Global exact over global wildcard.
        assert_eq!(http(3, "api.example.com"), Some(true));
        assert_eq!(http(3, "www.example.com"), Some(false));
        // Narrower wildcard over wider.
        assert_eq!(http(3, "x.deep.example.com"), Some(true));
        // The app's own wildcard over a global exact.
        assert_eq!(http(1, "api.example.com"), Some(true));
        assert_eq!(
            list.lookup(1, &d("api.example.com"))
                .map(|e| e.scope.clone()),
            Some(app(1))
        );
        // Another app's entry is not this one's; nothing matches: refused.
        assert_eq!(http(3, "other.net"), None);
        assert_eq!(http(2, "other.net"), Some(false));
        assert_eq!(
            http(3, "example.com"),
            None,
            "a wildcard is subdomains only"
        );
        assert_eq!(Allowlist::default().lookup(1, &d("example.com")), None);
    }

    #[test]
    fn settings_keep_the_ranges_of_their_limits_and_zero_inherits() {
        assert_eq!(Setting::Rate.parse("0"), Ok(None));
        assert_eq!(Setting::Rate.parse("60"), Ok(Some(60)));
        assert!(Setting::Rate.parse("1001").is_err());
        assert!(Setting::Rate.parse("-1").is_err());
        assert_eq!(Setting::Timeout.parse("0"), Ok(None));
        assert!(Setting::Timeout.parse("500").is_err(), "under 1000 ms");
        assert_eq!(Setting::Timeout.parse("2000"), Ok(Some(2000)));
        assert_eq!(Setting::MaxResponse.parse("2MiB"), Ok(Some(2 << 20)));
        assert!(Setting::MaxResponse.parse("11MiB").is_err());
        assert_eq!(Setting::Burst.parse("100"), Ok(Some(100)));
        assert!(Setting::Burst.parse("101").is_err());
        assert_eq!(Setting::CacheTtl.parse("0"), Ok(None));
        assert_eq!(Setting::CacheTtl.parse("300"), Ok(Some(300)));
        assert!(Setting::CacheTtl.parse("86401").is_err());
        assert!(Setting::CacheTtl.parse("x").is_err());
    }
}
