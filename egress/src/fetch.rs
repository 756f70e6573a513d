//! One `fazt.net.fetch` call, in the order of SPEC §6. Each step either
//! passes or ends the call with a [`Reason`]; the first refusal wins.
//!
//! - 0: the execution ticket: the call is for the app and request the
//!   supervisor signed, before its deadline (SPEC §7).
//! - 1–5: [`decide`]: the URL, the allowlist, the scheme, the body size,
//!   the request's budget (calls, network time, time left) — counted
//!   under one lock so concurrent calls cannot overspend.
//! - 6: the secret JS named ([`crate::secret`]); the cache is Phase 3.
//! - 7: the rate limit ([`crate::rate`]), then the concurrency slots,
//!   per app and in total.
//! - 8: resolution: every address public ([`crate::resolve`]).
//! - 9: request method and headers sanitised ([`crate::headers`]).
//! - 10: the secret injected, the exchange, sizes capped while reading
//!   ([`crate::client`]).
//! - 11: redirects followed here, each hop through steps 1–3, 7's rate
//!   and 8 again; no https→http; 301/302 turn POST into GET and 303
//!   anything but HEAD, without a body; the secret, Authorization and
//!   Cookie stay with their origin.
//! - 12: the secret scrubbed from the answer; one log line (the net log
//!   and cache store are Phase 3).
//!
//! Steps 8–11 run under the call's timeout from step 5.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fazt_ipc::msg::{FromEgress, NetCall, NetOutcome, NetRequest, NetResponse};
use fazt_shared::limits::Net;
use fazt_shared::net::NetLogRow;
use fazt_shared::ticket::{unix_now_ms, TicketError, TicketKey};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use hyper::Method;

use crate::budget::{Budgets, Slots};
use crate::cache::{BaseKey, Cache};
use crate::client::{Client, Outgoing};
use crate::decide::{self, decide, Call, Plan};
use crate::headers;
use crate::live::LiveConfig;
use crate::rate::RateLimits;
use crate::refusal::{Reason, Refusal};
use crate::resolve::Resolver;
use crate::secret::{self, Chosen};
use crate::server::Counters;
use crate::target::{Scheme, Target};

/// The most of a path a log line or row keeps (JS chose it).
const MAX_LOGGED_PATH: usize = 512;
/// The most of a method a log line or row keeps.
const MAX_LOGGED_METHOD: usize = 16;

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Messages to the supervisor; log rows go this way.
pub type LogSink = tokio::sync::mpsc::UnboundedSender<Arc<FromEgress>>;

/// A call's answer, and whether the cache gave it.
struct Answered {
    response: NetResponse,
    cache_hit: bool,
}

/// Everything a call needs, shared by all calls.
pub struct Fetcher {
    /// `Limits.net`.
    pub limits: Net,
    /// The allowlist and secrets, kept fresh.
    pub config: Arc<LiveConfig>,
    /// DNS and test pins.
    pub resolver: Resolver,
    /// The HTTP client.
    pub client: Client,
    /// What each request spent.
    pub budgets: Budgets,
    /// Concurrency slots.
    pub slots: Slots,
    /// Rate buckets.
    pub rates: RateLimits,
    /// Checks execution tickets.
    pub tickets: TicketKey,
    /// Responses kept for entries with a cache TTL.
    pub cache: Cache,
    /// Where log rows go (the supervisor's flusher); closed at shutdown
    /// so the writer to the supervisor can finish.
    pub log: std::sync::Mutex<Option<LogSink>>,
    /// Counters for the heartbeat.
    pub counters: Arc<Counters>,
}

impl Fetcher {
    /// Stops sending log rows (every call is answered by now): the last
    /// sender to the supervisor's writer goes, and it can finish.
    pub fn close_log(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Answers one call.
    pub async fn fetch(&self, call: &NetCall) -> NetOutcome {
        let started = Instant::now();
        let result = self.run(call, started).await;
        self.counters.answered.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_millis() as u64;
        // 12. One line per call; the path without its query (it may hold
        // secrets), the method only as parsed (JS wrote it), the refused
        // address only here, never to JS.
        let (domain, path) = match Target::parse(&call.request.url) {
            Ok(t) => (t.host.to_string(), clip(t.path(), MAX_LOGGED_PATH)),
            Err(_) => ("-".to_string(), "-".to_string()),
        };
        let method = Method::from_bytes(call.request.method.as_bytes())
            .map_or_else(|_| "-".to_string(), |m| clip(m.as_str(), MAX_LOGGED_METHOD));
        let mut row = NetLogRow {
            app_id: call.app_id,
            domain: domain.clone(),
            method: method.clone(),
            path: path.clone(),
            status: None,
            error_code: None,
            cache_hit: false,
            duration_ms: ms,
            request_bytes: call.request.body.len() as u64,
            response_bytes: 0,
            created_at: fazt_shared::store::now_ms(),
        };
        // A call without a valid ticket is not the app's: it is logged as a
        // warning, not in the app's network log.
        let mut app_made_it = true;
        let outcome = match result {
            Ok(Answered {
                response,
                cache_hit,
            }) => {
                tracing::info!(app = %call.app, request = %call.request_id, %domain, %method, %path, status = response.status, cache_hit, ms, "fetch");
                row.status = Some(response.status);
                row.cache_hit = cache_hit;
                row.response_bytes = response.body.len() as u64;
                NetOutcome::Response(response)
            }
            Err(reason) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let refusal = Refusal::from(reason);
                match &refusal.reason {
                    Reason::Address { host, ip, range } => {
                        tracing::warn!(app = %call.app, request = %call.request_id, %domain, %path, resolved = %host, address = %ip, %range, "fetch refused: non-public address")
                    }
                    Reason::Ticket(why @ (TicketError::Missing | TicketError::Forged)) => {
                        app_made_it = false;
                        tracing::warn!(app_id = call.app_id, request = %call.request_id, %domain, %why, "fetch refused: execution ticket")
                    }
                    other => {
                        tracing::info!(app = %call.app, request = %call.request_id, %domain, %method, %path, code = %refusal.code, reason = other.name(), ms, "fetch failed")
                    }
                }
                row.error_code = Some(refusal.code);
                NetOutcome::Failed {
                    code: refusal.code,
                    message: refusal.to_string(),
                }
            }
        };
        if app_made_it && !cfg!(feature = "bench-no-net-log") {
            if let Some(log) = &*self.log.lock().unwrap_or_else(|p| p.into_inner()) {
                let _ = log.send(Arc::new(FromEgress::Log(row)));
            }
        }
        outcome
    }

    async fn run(&self, call: &NetCall, now: Instant) -> Result<Answered, Reason> {
        // 0. The ticket says which app and request this is, and until when.
        let now_unix = unix_now_ms();
        self.tickets
            .verify(
                call.ticket.as_ref(),
                call.app_id,
                &call.request_id,
                now_unix,
            )
            .map_err(Reason::Ticket)?;
        // The signed deadline is the request's; the worker's own count of
        // time left is not trusted for anything.
        let signed_left = call
            .ticket
            .as_ref()
            .map_or(0, |t| t.deadline_unix_ms.saturating_sub(now_unix));
        let deadline = now
            .checked_add(Duration::from_millis(signed_left))
            .unwrap_or(now);
        let req = &call.request;
        let config = self.config.get();
        let this = Call {
            app_id: call.app_id,
            url: &req.url,
            body_len: req.body.len() as u64,
            js_timeout: req.timeout_ms.map(Duration::from_millis),
        };
        // 1–5.
        let plan = self
            .budgets
            .begin(call.app_id, &call.request_id, deadline, |spent| {
                decide(
                    &self.limits,
                    &config.allowlist,
                    &this,
                    spent,
                    Instant::now(),
                )
            })?;
        // 6. The secret, then the cache: a hit uses no rate token and no
        // concurrency slot.
        let chosen = match &req.auth {
            Some(name) => Some(secret::choose(
                &config.secrets,
                call.app_id,
                name,
                &plan.target,
            )?),
            None => None,
        };
        let cache_ttl = plan
            .entry
            .settings
            .cache_ttl_s
            .filter(|_| {
                // A response to credentials JS sent itself is that user's
                // (RFC 9111 §3.5): never shared, not even within the app.
                let own_credentials = req.headers.iter().any(|(n, _)| {
                    n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("cookie")
                });
                self.cache.on() && req.method.eq_ignore_ascii_case("GET") && !own_credentials
            })
            .map(Duration::from_secs);
        let cache_key = cache_ttl.map(|_| {
            let mut url = plan.target.url.clone();
            url.set_fragment(None);
            BaseKey {
                app_id: call.app_id,
                url: url.to_string(),
                secret: chosen.as_ref().map(Chosen::identity),
            }
        });
        if let Some(key) = &cache_key {
            if let Some(response) = self.cache.lookup(key, &req.headers, Instant::now()) {
                return Ok(Answered {
                    response,
                    cache_hit: true,
                });
            }
        }
        // 7. Rate, then concurrency (held until the call ends).
        self.rates
            .take(call.app_id, &plan.entry, &self.limits, Instant::now())?;
        let _held = self.slots.take(call.app_id)?;
        let started = Instant::now();
        let timeout = plan.timeout;
        let exchanged = tokio::time::timeout(
            timeout,
            self.exchange(call.app_id, plan, req, chosen.as_ref()),
        )
        .await
        .unwrap_or(Err(Reason::Timeout));
        self.budgets
            .used(call.app_id, &call.request_id, started.elapsed());
        let mut resp = exchanged?;
        // 12. Nothing of the secret goes back; what JS gets may be kept.
        if let Some(chosen) = &chosen {
            scrub_response(&mut resp, &chosen.needles());
        }
        if let (Some(key), Some(ttl)) = (cache_key, cache_ttl) {
            self.cache
                .store(key, &req.headers, &resp, ttl, Instant::now());
        }
        Ok(Answered {
            response: resp,
            cache_hit: false,
        })
    }

    /// 8–11.
    async fn exchange(
        &self,
        app_id: i64,
        plan: Plan,
        req: &NetRequest,
        chosen: Option<&Chosen>,
    ) -> Result<NetResponse, Reason> {
        let Plan {
            mut target,
            mut max_response,
            ..
        } = plan;
        let max_redirects = self.limits.max_redirects;
        let mut hops = 0u64;
        // Step 9 runs once, after the first resolution; later hops rewrite
        // what it produced.
        let mut prepared: Option<Prepared> = None;
        loop {
            let resolved = self.resolver.resolve(&target.host, target.port).await?; // 8
            let (method, headers, body) = match prepared.take() {
                Some(p) => p,
                None => (
                    method(&req.method)?,
                    headers::sanitise(&req.headers)?,
                    Bytes::from(req.body.clone()),
                ), // 9
            };
            let mut sent_headers = headers.clone();
            let sent_target = match chosen {
                Some(c) => c.inject(&target, &mut sent_headers)?, // 10
                None => target.clone(),
            };
            let answer = self
                .client
                .send(
                    &resolved.addrs(),
                    Outgoing {
                        target: &sent_target,
                        method: method.clone(),
                        headers: &sent_headers,
                        body: body.clone(),
                        max_response,
                    },
                )
                .await?; // 10
            let location = answer.header("location").map(str::to_string);
            let (true, Some(location)) = (is_redirect(answer.status), location) else {
                return Ok(NetResponse {
                    status: answer.status,
                    headers: answer.headers,
                    body: answer.body,
                });
            };
            // 11.
            hops += 1;
            if hops > max_redirects {
                return Err(Reason::TooManyRedirects { max: max_redirects });
            }
            let next = target.redirect(&location)?; // 1
            if target.scheme == Scheme::Https && next.scheme == Scheme::Http {
                return Err(Reason::Downgrade);
            }
            let config = self.config.get();
            let entry = decide::allowed(&config.allowlist, app_id, &next)?; // 2
            decide::scheme_allowed(entry, &next)?; // 3
            self.rates
                .take(app_id, entry, &self.limits, Instant::now())?; // 7
            max_response = entry
                .settings
                .max_response
                .unwrap_or(self.limits.max_response);
            let (mut method, mut headers, mut body) = (method, headers, body);
            if switches_to_get(answer.status, &method) {
                method = Method::GET;
                body = Bytes::new();
                headers.retain(|(n, _)| !n.as_str().starts_with("content-"));
            }
            if next.origin() != target.origin() {
                headers.retain(|(n, _)| *n != AUTHORIZATION && *n != COOKIE);
            }
            prepared = Some((method, headers, body));
            target = next;
        }
    }
}

/// A hop's method, headers and body after step 9.
type Prepared = (Method, Vec<(HeaderName, HeaderValue)>, Bytes);

/// Replaces the secret in every header value and in the body.
fn scrub_response(resp: &mut NetResponse, needles: &[Vec<u8>]) {
    for (_, value) in &mut resp.headers {
        if let std::borrow::Cow::Owned(clean) = secret::scrub(value.as_bytes(), needles) {
            *value = String::from_utf8_lossy(&clean).into_owned();
        }
    }
    if let std::borrow::Cow::Owned(clean) = secret::scrub(&resp.body, needles) {
        resp.body = clean;
        // The upstream's length would tell the value's length apart.
        for (name, value) in &mut resp.headers {
            if name == "content-length" {
                *value = resp.body.len().to_string();
            }
        }
    }
}

/// The method JS asked for, upper-cased by the worker; CONNECT and TRACE
/// are refused (a tunnel, a reflection of the request's headers).
fn method(m: &str) -> Result<Method, Reason> {
    let m = if m.is_empty() { "GET" } else { m };
    match Method::from_bytes(m.as_bytes()) {
        Ok(Method::CONNECT | Method::TRACE) | Err(_) => Err(Reason::BadMethod(
            m.chars()
                .take(32)
                .filter(|c| c.is_ascii_graphic())
                .collect(),
        )),
        Ok(method) => Ok(method),
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// 303 turns anything but HEAD into GET without a body; 301 and 302 turn
/// POST into GET (as browsers do, and the WHATWG fetch standard says); 307
/// and 308 keep method and body.
fn switches_to_get(status: u16, method: &Method) -> bool {
    match status {
        303 => *method != Method::HEAD,
        301 | 302 => *method == Method::POST,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_strings_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("abc", 10), "abc");
        assert_eq!(clip("abcdef", 4), "abcd");
        assert_eq!(clip("ääää", 3), "ä", "never half a character");
        assert_eq!(clip(&"/x".repeat(1000), MAX_LOGGED_PATH).len(), 512);
    }

    #[test]
    fn methods_and_redirect_rewrites() {
        assert_eq!(method(""), Ok(Method::GET));
        assert_eq!(method("PATCH"), Ok(Method::PATCH));
        assert!(method("CONNECT").is_err());
        assert!(method("TRACE").is_err());
        assert!(method("GET /x HTTP/1.1\r\nHost: a").is_err());
        assert!(switches_to_get(303, &Method::PUT));
        assert!(!switches_to_get(303, &Method::HEAD));
        assert!(
            switches_to_get(303, &Method::GET),
            "a GET with a body loses it"
        );
        assert!(switches_to_get(302, &Method::POST));
        assert!(!switches_to_get(302, &Method::PUT));
        assert!(!switches_to_get(307, &Method::POST));
        assert!(!switches_to_get(308, &Method::POST));
    }
}
