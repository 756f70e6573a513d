//! Step 6's response cache (SPEC §8): in egress memory, so it survives
//! worker crashes; opt-in per allowlist entry (`cache_ttl`) and on only
//! when `net.cache_max_items` and `net.cache_max_bytes` are both above 0;
//! least recently used entries go first when either bound is reached.
//!
//! A key is the app (an app never gets another app's entry), the
//! normalised URL (GET only), the secret used with its version (a rotated
//! secret never serves an old entry) and the request headers the
//! response's `Vary` names. Stored: a 200 without `Set-Cookie`, not
//! `no-store`, `no-cache` or `private`, not `Vary: *`, at most a quarter
//! of the byte bound; `max-age` caps the entry's TTL. What is stored is
//! what JS got (secret already scrubbed); each hit is a copy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fazt_ipc::msg::{CacheStats, NetResponse};
use fazt_shared::limits::Net;
use lru::LruCache;

/// URLs longer than this are not cached: a key must stay small beside the
/// response it finds.
pub const MAX_CACHED_URL: usize = 8 * 1024;

/// Who and what a response is for, before `Vary`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseKey {
    /// The app.
    pub app_id: i64,
    /// The URL without its fragment, as the WHATWG parser wrote it.
    pub url: String,
    /// The secret used: its scope's app id, name and version.
    pub secret: Option<(Option<i64>, String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    base: BaseKey,
    /// The request's value of each header `Vary` names, in its order.
    vary: Vec<Option<String>>,
}

struct Entry {
    response: NetResponse,
    expires: Instant,
    size: u64,
}

#[derive(Default)]
struct Counts {
    hits: u64,
    misses: u64,
}

/// What the cache knows of a base key.
struct Varies {
    /// The header names its last stored response varies on.
    names: Vec<String>,
    /// Its entries held now (one per set of Vary values).
    entries: usize,
}

struct Inner {
    entries: LruCache<Key, Entry>,
    bytes: u64,
    vary: HashMap<BaseKey, Varies>,
    counts: HashMap<i64, Counts>,
}

impl Key {
    fn size(&self) -> u64 {
        let vary: usize = self.vary.iter().flatten().map(String::len).sum();
        let secret = self.base.secret.as_ref().map_or(0, |(_, n, _)| n.len());
        (self.base.url.len() + vary + secret) as u64
    }
}

impl Inner {
    /// Removes an entry, and its base's Vary names once no entry of that
    /// base is left; whether there was one.
    fn forget(&mut self, key: &Key) -> bool {
        let Some(gone) = self.entries.pop(key) else {
            return false;
        };
        self.bytes -= gone.size;
        if let Some(v) = self.vary.get_mut(&key.base) {
            v.entries = v.entries.saturating_sub(1);
            if v.entries == 0 {
                self.vary.remove(&key.base);
            }
        }
        true
    }
}

/// The cache.
pub struct Cache {
    inner: Mutex<Inner>,
    max_items: usize,
    max_bytes: u64,
}

impl Cache {
    /// A cache with `net.cache_max_items` and `net.cache_max_bytes`.
    pub fn new(limits: &Net) -> Cache {
        Cache {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
                vary: HashMap::new(),
                counts: HashMap::new(),
            }),
            max_items: usize::try_from(limits.cache_max_items).unwrap_or(usize::MAX),
            max_bytes: limits.cache_max_bytes,
        }
    }

    /// Whether it is on at all.
    pub fn on(&self) -> bool {
        self.max_items > 0 && self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the live entry for `base` and these request headers.
    pub fn lookup(
        &self,
        base: &BaseKey,
        headers: &[(String, String)],
        now: Instant,
    ) -> Option<NetResponse> {
        let mut inner = self.lock();
        let names = inner
            .vary
            .get(base)
            .map(|v| v.names.clone())
            .unwrap_or_default();
        let key = Key {
            base: base.clone(),
            vary: vary_values(&names, headers),
        };
        let found = match inner.entries.get(&key) {
            Some(e) if e.expires > now => Some(e.response.clone()),
            Some(_) => {
                inner.forget(&key);
                None
            }
            None => None,
        };
        let counts = inner.counts.entry(base.app_id).or_default();
        match found {
            Some(_) => counts.hits += 1,
            None => counts.misses += 1,
        }
        found
    }

    /// Stores `response` for `base` when the rules allow, for at most
    /// `ttl`.
    pub fn store(
        &self,
        base: BaseKey,
        headers: &[(String, String)],
        response: &NetResponse,
        ttl: Duration,
        now: Instant,
    ) {
        if base.url.len() > MAX_CACHED_URL {
            return;
        }
        let Some((ttl, names)) = storable(response, ttl) else {
            return;
        };
        let key = Key {
            base: base.clone(),
            vary: vary_values(&names, headers),
        };
        // The key and its Vary names are held too; they count.
        let size =
            size_of(response) + key.size() + names.iter().map(String::len).sum::<usize>() as u64;
        if size > self.max_bytes / 4 {
            return;
        }
        let mut inner = self.lock();
        let replaced = inner.entries.put(
            key,
            Entry {
                response: response.clone(),
                expires: now + ttl,
                size,
            },
        );
        inner.bytes += size;
        if let Some(old) = &replaced {
            inner.bytes -= old.size;
        }
        let v = inner.vary.entry(base).or_insert(Varies {
            names: Vec::new(),
            entries: 0,
        });
        v.names = names;
        if replaced.is_none() {
            v.entries += 1;
        }
        while inner.entries.len() > self.max_items || inner.bytes > self.max_bytes {
            let Some((oldest, _)) = inner.entries.peek_lru() else {
                break;
            };
            let oldest = oldest.clone();
            inner.forget(&oldest);
        }
    }

    /// The numbers for `app_id` (or all), after emptying that part first
    /// when `clear`.
    pub fn stats(&self, app_id: Option<i64>, clear: bool) -> CacheStats {
        let mut inner = self.lock();
        let mine = |k: &Key| app_id.is_none_or(|a| k.base.app_id == a);
        let mut cleared = 0;
        if clear {
            let keys: Vec<Key> = inner
                .entries
                .iter()
                .filter(|(k, _)| mine(k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                if let Some(gone) = inner.entries.pop(&k) {
                    inner.bytes -= gone.size;
                    cleared += 1;
                }
            }
            inner
                .vary
                .retain(|b, _| app_id.is_some_and(|a| b.app_id != a));
        }
        let (items, bytes) = inner
            .entries
            .iter()
            .filter(|(k, _)| mine(k))
            .fold((0, 0), |(n, b), (_, e)| (n + 1, b + e.size));
        let (hits, misses) = inner
            .counts
            .iter()
            .filter(|(a, _)| app_id.is_none_or(|x| x == **a))
            .fold((0, 0), |(h, m), (_, c)| (h + c.hits, m + c.misses));
        CacheStats {
            items,
            bytes,
            hits,
            misses,
            cleared,
        }
    }
}

/// The TTL to store for, and the header names it varies on; `None` when
/// the response may not be stored.
fn storable(r: &NetResponse, ttl: Duration) -> Option<(Duration, Vec<String>)> {
    if r.status != 200 || r.headers.iter().any(|(n, _)| n == "set-cookie") {
        return None;
    }
    let mut ttl = ttl;
    for directive in header_list(r, "cache-control") {
        let (name, value) = directive
            .split_once('=')
            .map_or((directive.as_str(), None), |(n, v)| (n, Some(v)));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" | "private" => return None,
            "max-age" | "s-maxage" => {
                let secs: u64 = value?.trim().trim_matches('"').parse().ok()?;
                ttl = ttl.min(Duration::from_secs(secs));
            }
            _ => {}
        }
    }
    if ttl.is_zero() {
        return None;
    }
    let names: Vec<String> = header_list(r, "vary")
        .into_iter()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    if names.iter().any(|n| n == "*") {
        return None;
    }
    Some((ttl, names))
}

/// The comma-separated items of every `name` header.
fn header_list(r: &NetResponse, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn vary_values(names: &[String], headers: &[(String, String)]) -> Vec<Option<String>> {
    names
        .iter()
        .map(|n| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        })
        .collect()
}

fn size_of(r: &NetResponse) -> u64 {
    let headers: usize = r.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    (r.body.len() + headers) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::{Limits, Probe};

    fn cache(items: u64, bytes: u64) -> Cache {
        let mut net = Limits::defaults(&Probe::fixed(1 << 30, 2)).net;
        net.cache_max_items = items;
        net.cache_max_bytes = bytes;
        Cache::new(&net)
    }

    fn base(app: i64, url: &str) -> BaseKey {
        BaseKey {
            app_id: app,
            url: url.into(),
            secret: None,
        }
    }

    fn resp(body: &str, headers: &[(&str, &str)]) -> NetResponse {
        NetResponse {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_is_the_apps_own_and_lives_its_ttl() {
        let c = cache(10, 1 << 20);
        let t0 = Instant::now();
        c.store(base(1, "https://a/x"), &[], &resp("one", &[]), MIN, t0);
        assert!(c.lookup(&base(1, "https://a/x"), &[], t0).is_some());
        assert!(
            c.lookup(&base(2, "https://a/x"), &[], t0).is_none(),
            "another app"
        );
        assert!(c.lookup(&base(1, "https://a/y"), &[], t0).is_none());
        let mut with_secret = base(1, "https://a/x");
        with_secret.secret = Some((None, "K".into(), 2));
        assert!(
            c.lookup(&with_secret, &[], t0).is_none(),
            "another secret version"
        );
        assert!(
            c.lookup(&base(1, "https://a/x"), &[], t0 + MIN).is_none(),
            "expired"
        );
        let s = c.stats(None, false);
        assert_eq!((s.items, s.hits, s.misses), (0, 1, 4));
    }

    #[test]
    fn what_may_not_be_stored_is_not() {
        let c = cache(10, 1 << 20);
        let t0 = Instant::now();
        for (i, (r, what)) in [
            (resp("x", &[("cache-control", "no-store")]), "no-store"),
            (
                resp("x", &[("cache-control", "max-age=60, private")]),
                "private",
            ),
            (resp("x", &[("cache-control", "no-cache")]), "no-cache"),
            (resp("x", &[("cache-control", "max-age=0")]), "max-age=0"),
            (resp("x", &[("set-cookie", "a=1")]), "Set-Cookie"),
            (resp("x", &[("vary", "Accept, *")]), "Vary: *"),
            (
                NetResponse {
                    status: 404,
                    ..resp("x", &[])
                },
                "not a 200",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let url = format!("https://a/{i}");
            c.store(base(1, &url), &[], &r, MIN, t0);
            assert!(
                c.lookup(&base(1, &url), &[], t0).is_none(),
                "{what} was stored"
            );
        }
        // max-age caps the TTL.
        c.store(
            base(1, "https://a/m"),
            &[],
            &resp("x", &[("cache-control", "max-age=5")]),
            MIN,
            t0,
        );
        assert!(c
            .lookup(&base(1, "https://a/m"), &[], t0 + Duration::from_secs(4))
            .is_some());
        assert!(c
            .lookup(&base(1, "https://a/m"), &[], t0 + Duration::from_secs(5))
            .is_none());
    }

    #[test]
    fn vary_keys_on_the_named_request_headers() {
        let c = cache(10, 1 << 20);
        let t0 = Instant::now();
        let en = vec![("accept-language".to_string(), "en".to_string())];
        let de = vec![("Accept-Language".to_string(), "de".to_string())];
        c.store(
            base(1, "https://a/v"),
            &en,
            &resp("hello", &[("vary", "Accept-Language")]),
            MIN,
            t0,
        );
        assert_eq!(
            c.lookup(&base(1, "https://a/v"), &en, t0).map(|r| r.body),
            Some(b"hello".to_vec())
        );
        assert!(c.lookup(&base(1, "https://a/v"), &de, t0).is_none());
        assert!(c.lookup(&base(1, "https://a/v"), &[], t0).is_none());
    }

    #[test]
    fn items_and_bytes_are_bounded_least_recently_used_first() {
        let c = cache(2, 1 << 20);
        let t0 = Instant::now();
        for u in ["https://a/1", "https://a/2"] {
            c.store(base(1, u), &[], &resp("x", &[]), MIN, t0);
        }
        assert!(
            c.lookup(&base(1, "https://a/1"), &[], t0).is_some(),
            "1 is now recent"
        );
        c.store(base(1, "https://a/3"), &[], &resp("x", &[]), MIN, t0);
        assert!(
            c.lookup(&base(1, "https://a/2"), &[], t0).is_none(),
            "2 was least recent"
        );
        assert!(c.lookup(&base(1, "https://a/1"), &[], t0).is_some());

        // Each entry: 100 body bytes and an 11-byte URL; a quarter is 120.
        let c = cache(100, 480);
        let body = "y".repeat(100);
        for i in 0..4 {
            c.store(
                base(1, &format!("https://a/{i}")),
                &[],
                &resp(&body, &[]),
                MIN,
                t0,
            );
        }
        let s = c.stats(None, false);
        assert_eq!(s.items, 4);
        c.store(
            base(1, "https://a/big"),
            &[],
            &resp(&"z".repeat(120), &[]),
            MIN,
            t0,
        );
        assert!(
            c.lookup(&base(1, "https://a/big"), &[], t0).is_none(),
            "over a quarter of the bytes"
        );
        c.store(base(1, "https://a/4"), &[], &resp(&body, &[]), MIN, t0);
        let s = c.stats(None, false);
        assert_eq!(s.items, 4, "one went to make room");
        assert!(s.bytes <= 480);
        assert!(
            c.lookup(&base(1, "https://a/0"), &[], t0).is_none(),
            "the least recent"
        );
    }

    #[test]
    fn long_urls_are_not_kept_and_expired_entries_leave_nothing_behind() {
        let c = cache(10, 1 << 30);
        let t0 = Instant::now();
        let long = format!("https://a/?pad={}", "x".repeat(MAX_CACHED_URL));
        c.store(base(1, &long), &[], &resp("x", &[]), MIN, t0);
        assert!(c.lookup(&base(1, &long), &[], t0).is_none());
        c.store(
            base(1, "https://a/v"),
            &[],
            &resp("x", &[("vary", "accept")]),
            MIN,
            t0,
        );
        assert!(c.lookup(&base(1, "https://a/v"), &[], t0 + MIN).is_none());
        let inner = c.lock();
        assert!(inner.entries.is_empty() && inner.vary.is_empty() && inner.bytes == 0);
    }

    #[test]
    fn clear_empties_one_app_or_all() {
        let c = cache(10, 1 << 20);
        let t0 = Instant::now();
        c.store(base(1, "https://a/1"), &[], &resp("x", &[]), MIN, t0);
        c.store(base(2, "https://a/1"), &[], &resp("x", &[]), MIN, t0);
        let s = c.stats(Some(1), true);
        assert_eq!((s.cleared, s.items), (1, 0));
        assert_eq!(c.stats(None, false).items, 1, "app 2's is kept");
        assert_eq!(c.stats(None, true).cleared, 1);
        assert_eq!(c.stats(None, false).bytes, 0);
    }
}
