//! One `fazt.net.fetch` call, in the order of SPEC §6. Each step either
//! passes or ends the call with a [`Reason`]; the first refusal wins.
//!
//! 1–5. [`decide`]: the URL, the allowlist, the scheme, the body size, the
//!      request's budget (calls, network time, time left) — counted under
//!      one lock so concurrent calls cannot overspend.
//! 6.   Secrets (Phase 2) and the cache (Phase 3) are not built yet.
//! 7.   The rate limit (Phase 2) is not built yet; then the concurrency
//!      slots, per app and in total.
//! 8.   Resolution: every address public ([`crate::resolve`]).
//! 9.   Request headers sanitised ([`crate::headers`]).
//! 10.  The exchange, sizes capped while reading ([`crate::client`]).
//! 11.  Redirects followed here, each hop through steps 1–3 and 8 again;
//!      no https→http; 301/302/303 turn POST into GET without a body;
//!      Authorization and Cookie stay with their origin.
//! 12.  One log line (the net log and cache store are Phase 3).
//!
//! Steps 8–11 run under the call's timeout from step 5.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fazt_ipc::msg::{NetCall, NetOutcome, NetResponse};
use fazt_shared::limits::Net;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use hyper::Method;

use crate::allowlist::LiveAllowlist;
use crate::budget::{Budgets, Slots};
use crate::client::{Client, Outgoing};
use crate::decide::{self, decide, Call, Plan};
use crate::headers;
use crate::refusal::{Reason, Refusal};
use crate::resolve::Resolver;
use crate::server::Counters;
use crate::target::{Scheme, Target};

/// Everything a call needs, shared by all calls.
pub struct Fetcher {
    /// `Limits.net`.
    pub limits: Net,
    /// The allowlist, kept fresh.
    pub allowlist: Arc<LiveAllowlist>,
    /// DNS and test pins.
    pub resolver: Resolver,
    /// The HTTP client.
    pub client: Client,
    /// What each request spent.
    pub budgets: Budgets,
    /// Concurrency slots.
    pub slots: Slots,
    /// Counters for the heartbeat.
    pub counters: Arc<Counters>,
}

impl Fetcher {
    /// Answers one call.
    pub async fn fetch(&self, call: &NetCall) -> NetOutcome {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(call.time_left_ms);
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let result = self.run(call, deadline).await;
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.counters.answered.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_millis() as u64;
        // 12. One line per call; the path without its query (it may hold
        // secrets), the refused address only here, never to JS.
        let (domain, path) = match Target::parse(&call.request.url) {
            Ok(t) => (t.host.to_string(), t.path().to_string()),
            Err(_) => ("-".to_string(), "-".to_string()),
        };
        match result {
            Ok(resp) => {
                tracing::info!(app = %call.app, request = %call.request_id, %domain, method = %call.request.method, %path, status = resp.status, ms, "fetch");
                NetOutcome::Response(resp)
            }
            Err(reason) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let refusal = Refusal::from(reason);
                match &refusal.reason {
                    Reason::Address(ip, blocked) => {
                        tracing::warn!(app = %call.app, request = %call.request_id, %domain, %path, address = %ip, range = %blocked, "fetch refused: non-public address")
                    }
                    other => {
                        tracing::info!(app = %call.app, request = %call.request_id, %domain, method = %call.request.method, %path, code = %refusal.code, reason = other.name(), ms, "fetch failed")
                    }
                }
                NetOutcome::Failed {
                    code: refusal.code,
                    message: refusal.to_string(),
                }
            }
        }
    }

    async fn run(&self, call: &NetCall, deadline: Instant) -> Result<NetResponse, Reason> {
        let req = &call.request;
        let allowlist = self.allowlist.get();
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
                decide(&self.limits, &allowlist, &this, spent, Instant::now())
            })?;
        let method = method(&req.method)?;
        // 9, before anything touches the network.
        let headers = headers::sanitise(&req.headers)?;
        // 6. (Phase 2, 3.)  7. Concurrency, held until the call ends.
        let _held = self.slots.take(call.app_id)?;
        let started = Instant::now();
        let timeout = plan.timeout;
        let exchanged = tokio::time::timeout(
            timeout,
            self.exchange(
                call.app_id,
                plan,
                method,
                headers,
                Bytes::from(req.body.clone()),
            ),
        )
        .await
        .unwrap_or(Err(Reason::Timeout));
        self.budgets
            .used(call.app_id, &call.request_id, started.elapsed());
        exchanged
    }

    /// 8–11.
    async fn exchange(
        &self,
        app_id: i64,
        plan: Plan,
        mut method: Method,
        mut headers: Vec<(HeaderName, HeaderValue)>,
        mut body: Bytes,
    ) -> Result<NetResponse, Reason> {
        let Plan {
            mut target,
            mut max_response,
            ..
        } = plan;
        let max_redirects = self.limits.max_redirects;
        let mut hops = 0u64;
        loop {
            let resolved = self.resolver.resolve(&target.host, target.port).await?; // 8
            let answer = self
                .client
                .send(
                    &resolved.addrs(),
                    Outgoing {
                        target: &target,
                        method: method.clone(),
                        headers: &headers,
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
            let allowlist = self.allowlist.get();
            let entry = decide::allowed(&allowlist, app_id, &next)?; // 2
            decide::scheme_allowed(entry, &next)?; // 3
            max_response = entry
                .settings
                .max_response
                .unwrap_or(self.limits.max_response);
            if switches_to_get(answer.status, &method) {
                method = Method::GET;
                body = Bytes::new();
                headers.retain(|(n, _)| !n.as_str().starts_with("content-"));
            }
            if next.origin() != target.origin() {
                headers.retain(|(n, _)| *n != AUTHORIZATION && *n != COOKIE);
            }
            target = next;
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

/// 303 turns anything but HEAD into GET; 301 and 302 turn POST into GET
/// (as browsers do); 307 and 308 keep method and body.
fn switches_to_get(status: u16, method: &Method) -> bool {
    match status {
        303 => *method != Method::HEAD && *method != Method::GET,
        301 | 302 => *method == Method::POST,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_redirect_rewrites() {
        assert_eq!(method(""), Ok(Method::GET));
        assert_eq!(method("PATCH"), Ok(Method::PATCH));
        assert!(method("CONNECT").is_err());
        assert!(method("TRACE").is_err());
        assert!(method("GET /x HTTP/1.1\r\nHost: a").is_err());
        assert!(switches_to_get(303, &Method::PUT));
        assert!(!switches_to_get(303, &Method::HEAD));
        assert!(switches_to_get(302, &Method::POST));
        assert!(!switches_to_get(302, &Method::PUT));
        assert!(!switches_to_get(307, &Method::POST));
        assert!(!switches_to_get(308, &Method::POST));
    }
}
