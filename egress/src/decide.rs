//! The decision order of SPEC §6, steps 1–5, before anything touches the
//! network: each step is one small check that returns a [`Reason`], and
//! [`decide`] runs them in the order the spec gives, stopping at the first
//! refusal. No logging here: the caller logs the outcome once.
//!
//! Steps 6–12 (secrets, cache, rate, concurrency, resolution, headers,
//! sending, redirects) need the network or shared state and follow in the
//! server, in the same order.

use std::time::{Duration, Instant};

use fazt_shared::limits::Net;
use fazt_shared::net::{AllowEntry, Allowlist};

use crate::refusal::Reason;
use crate::target::{Scheme, Target};

/// The least time a call needs of the request's remaining time (step 5).
pub const MIN_CALL_TIME: Duration = Duration::from_secs(1);
/// Time kept back from the request's deadline for JS to use the answer.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// One call as JS made it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The app making it.
    pub app_id: i64,
    /// The URL as JS gave it.
    pub url: &'a str,
    /// Request body length.
    pub body_len: u64,
    /// JS's `timeout` option.
    pub js_timeout: Option<Duration>,
}

/// What the request has spent so far (step 5), kept by egress per request.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    /// Calls made, this one not counted.
    pub calls: u64,
    /// Network time used.
    pub network: Duration,
    /// When the whole request must be over.
    pub deadline: Instant,
}

/// A call that passed steps 1–5: where it goes, under which entry, and
/// the bounds it runs with.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The checked URL.
    pub target: Target,
    /// The entry that allowed it.
    pub entry: AllowEntry,
    /// How long the call may take (step 5).
    pub timeout: Duration,
    /// Largest response body.
    pub max_response: u64,
}

/// Steps 1–5, in order.
pub fn decide(
    limits: &Net,
    allowlist: &Allowlist,
    call: &Call<'_>,
    spent: &Spent,
    now: Instant,
) -> Result<Plan, Reason> {
    let target = Target::parse(call.url)?; // 1
    let entry = allowed(allowlist, call.app_id, &target)?; // 2
    scheme_allowed(entry, &target)?; // 3
    body_fits(limits, call.body_len)?; // 4
    let timeout = within_budget(limits, entry, call, spent, now)?; // 5
    Ok(Plan {
        max_response: entry.settings.max_response.unwrap_or(limits.max_response),
        entry: entry.clone(),
        target,
        timeout,
    })
}

/// Step 2: an allowlist entry must match the host.
pub fn allowed<'a>(
    allowlist: &'a Allowlist,
    app_id: i64,
    target: &Target,
) -> Result<&'a AllowEntry, Reason> {
    allowlist
        .lookup(app_id, &target.host)
        .ok_or_else(|| Reason::NotAllowed(target.host.to_string()))
}

/// Step 3: https, unless the entry allows http.
pub fn scheme_allowed(entry: &AllowEntry, target: &Target) -> Result<(), Reason> {
    match target.scheme {
        Scheme::Http if !entry.allow_http => Err(Reason::HttpNotAllowed(target.host.to_string())),
        _ => Ok(()),
    }
}

/// Step 4: the request body within `net.max_req_body`.
pub fn body_fits(limits: &Net, body_len: u64) -> Result<(), Reason> {
    if body_len > limits.max_req_body {
        return Err(Reason::BodyTooLarge {
            max: limits.max_req_body,
        });
    }
    Ok(())
}

/// Step 5: calls and network time left, at least [`MIN_CALL_TIME`] of the
/// request left; the call's timeout is the least of JS's option, the
/// entry's (else `net.call_timeout_ms`), the budget left and the request's
/// time left less [`ANSWER_MARGIN`].
pub fn within_budget(
    limits: &Net,
    entry: &AllowEntry,
    call: &Call<'_>,
    spent: &Spent,
    now: Instant,
) -> Result<Duration, Reason> {
    if spent.calls >= limits.max_calls {
        return Err(Reason::TooManyCalls {
            max: limits.max_calls,
        });
    }
    let budget = Duration::from_millis(limits.budget_ms);
    let budget_left = budget.saturating_sub(spent.network);
    if budget_left.is_zero() {
        return Err(Reason::BudgetSpent {
            budget_ms: limits.budget_ms,
        });
    }
    let request_left = spent.deadline.saturating_duration_since(now);
    if request_left < MIN_CALL_TIME {
        return Err(Reason::NoTimeLeft);
    }
    let per_call =
        Duration::from_millis(entry.settings.timeout_ms.unwrap_or(limits.call_timeout_ms));
    let mut timeout = per_call
        .min(budget_left)
        .min(request_left.saturating_sub(ANSWER_MARGIN));
    if let Some(js) = call.js_timeout {
        timeout = timeout.min(js);
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::net::{DomainPattern, DomainSettings, Scope};
    use fazt_shared::{Limits, Probe};

    fn net() -> Net {
        Limits::defaults(&Probe::fixed(1 << 30, 2)).net
    }

    fn list(entries: &[(&str, bool, Option<u64>)]) -> Allowlist {
        Allowlist::new(
            entries
                .iter()
                .map(|(p, http, timeout)| AllowEntry {
                    scope: Scope::Global,
                    pattern: DomainPattern::parse(p).expect("pattern"),
                    allow_http: *http,
                    settings: DomainSettings {
                        timeout_ms: *timeout,
                        ..DomainSettings::default()
                    },
                    updated_at: 0,
                })
                .collect(),
        )
    }

    fn call(url: &str) -> Call<'_> {
        Call {
            app_id: 1,
            url,
            body_len: 0,
            js_timeout: None,
        }
    }

    #[test]
    fn each_step_refuses_in_order() {
        let now = Instant::now();
        let fresh = Spent {
            calls: 0,
            network: Duration::ZERO,
            deadline: now + Duration::from_secs(10),
        };
        let limits = net();
        let allow = list(&[
            ("api.example.com", false, None),
            ("plain.example.com", true, None),
        ]);
        let run = |c: &Call<'_>, s: &Spent| decide(&limits, &allow, c, s, now).map(|p| p.timeout);
        // 1 before 2: an IP literal is refused as such, not as "not allowed".
        assert_eq!(
            run(&call("http://10.0.0.1/"), &fresh),
            Err(Reason::IpLiteral)
        );
        // 2: not on the list; a wildcard would be needed for subdomains.
        assert_eq!(
            run(&call("https://x.api.example.com/"), &fresh),
            Err(Reason::NotAllowed("x.api.example.com".into()))
        );
        // 3: http only where allowed.
        assert_eq!(
            run(&call("http://api.example.com/"), &fresh),
            Err(Reason::HttpNotAllowed("api.example.com".into()))
        );
        assert!(run(&call("http://plain.example.com/"), &fresh).is_ok());
        // 4: the body.
        let big = Call {
            body_len: limits.max_req_body + 1,
            ..call("https://api.example.com/")
        };
        assert_eq!(
            run(&big, &fresh),
            Err(Reason::BodyTooLarge {
                max: limits.max_req_body
            })
        );
        // 5: calls, budget, time left.
        let used = Spent {
            calls: limits.max_calls,
            ..fresh
        };
        assert!(matches!(
            run(&call("https://api.example.com/"), &used),
            Err(Reason::TooManyCalls { .. })
        ));
        let spent = Spent {
            network: Duration::from_millis(limits.budget_ms),
            ..fresh
        };
        assert!(matches!(
            run(&call("https://api.example.com/"), &spent),
            Err(Reason::BudgetSpent { .. })
        ));
        let late = Spent {
            deadline: now + Duration::from_millis(999),
            ..fresh
        };
        assert_eq!(
            run(&call("https://api.example.com/"), &late),
            Err(Reason::NoTimeLeft)
        );
    }

    #[test]
    fn the_timeout_is_the_least_of_its_bounds() {
        let now = Instant::now();
        let limits = net(); // call_timeout_ms 4000, budget_ms 4000
        let allow = list(&[
            ("api.example.com", false, None),
            ("slow.example.com", false, Some(9000)),
        ]);
        let at = |url: &str, js: Option<u64>, network_ms: u64, left_ms: u64| {
            let c = Call {
                js_timeout: js.map(Duration::from_millis),
                ..call(url)
            };
            let s = Spent {
                calls: 0,
                network: Duration::from_millis(network_ms),
                deadline: now + Duration::from_millis(left_ms),
            };
            decide(&limits, &allow, &c, &s, now).map(|p| p.timeout.as_millis())
        };
        let api = "https://api.example.com/";
        assert_eq!(at(api, None, 0, 10_000), Ok(4000), "net.call_timeout_ms");
        assert_eq!(at(api, Some(1500), 0, 10_000), Ok(1500), "JS's option");
        assert_eq!(at(api, None, 3000, 10_000), Ok(1000), "the budget left");
        assert_eq!(
            at(api, None, 0, 2000),
            Ok(1500),
            "the request's time less 500 ms"
        );
        assert_eq!(
            at("https://slow.example.com/", None, 0, 30_000),
            Ok(4000),
            "the budget still"
        );
        let more = Net {
            budget_ms: 10_000,
            ..net()
        };
        let c = call("https://slow.example.com/");
        let s = Spent {
            calls: 0,
            network: Duration::ZERO,
            deadline: now + Duration::from_secs(30),
        };
        assert_eq!(
            decide(&more, &allow, &c, &s, now).map(|p| p.timeout.as_millis()),
            Ok(9000),
            "the entry's timeout over net.call_timeout_ms"
        );
    }
}
