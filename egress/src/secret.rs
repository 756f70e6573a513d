//! Secrets in a call (SPEC §7): step 6 picks the secret JS named — the
//! app's own, else a global one — and refuses with NET_AUTH when there is
//! none or it is for another domain; step 10 injects it on every hop that
//! stays on the call's first origin; before the answer goes back to the
//! worker, every occurrence of the value (and of its query-encoded form)
//! in the response's headers and body is replaced by `***`.

use std::borrow::Cow;

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use fazt_shared::net::secret::Unusable;
use fazt_shared::net::{Injection, SecretValue, Secrets};

use crate::refusal::Reason;
use crate::target::{Scheme, Target};
use fazt_shared::net::Domain;

/// What a scrubbed value is replaced with.
pub const REDACTED: &[u8] = b"***";

/// Characters a query value keeps as they are (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The secret a call uses, and the origin it may go to.
pub struct Chosen {
    injection: Injection,
    value: SecretValue,
    origin: (Scheme, Domain, u16),
    identity: (Option<i64>, String, i64),
}

/// Step 6: the secret `name` for app `app_id`'s call to `target`.
pub fn choose(
    secrets: &Secrets,
    app_id: i64,
    name: &str,
    target: &Target,
) -> Result<Chosen, Reason> {
    match secrets.usable(app_id, name, &target.host) {
        Ok(s) => Ok(Chosen {
            injection: s.injection.clone(),
            value: s.value.clone(),
            origin: (target.scheme, target.host.clone(), target.port),
            identity: (s.scope.app_id(), s.name.to_string(), s.version),
        }),
        Err(Unusable::Unknown) => Err(Reason::UnknownSecret(printable(name))),
        Err(Unusable::OtherDomain) => Err(Reason::SecretElsewhere(printable(name))),
    }
}

impl Chosen {
    /// Which secret, in which version: part of a cache key, so a rotated
    /// secret never serves an entry made with the old one.
    pub fn identity(&self) -> (Option<i64>, String, i64) {
        self.identity.clone()
    }

    /// Step 10 for one hop: the target to send to (with the secret in its
    /// query) and the headers (with it in a header). A hop to another
    /// origin gets neither.
    pub fn inject(
        &self,
        target: &Target,
        headers: &mut Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Target, Reason> {
        let (scheme, host, port) = target.origin();
        if (scheme, host, port) != (self.origin.0, &self.origin.1, self.origin.2) {
            return Ok(target.clone());
        }
        let set =
            |headers: &mut Vec<(HeaderName, HeaderValue)>, name: HeaderName, value: String| {
                let mut value = HeaderValue::from_str(&value)
                    .map_err(|_| Reason::BadHeader(name.to_string()))?;
                value.set_sensitive(true);
                // The secret wins over anything JS put under the same name.
                headers.retain(|(n, _)| *n != name);
                headers.push((name, value));
                Ok::<(), Reason>(())
            };
        match &self.injection {
            Injection::Bearer => {
                set(
                    headers,
                    AUTHORIZATION,
                    format!("Bearer {}", self.value.expose()),
                )?;
                Ok(target.clone())
            }
            Injection::Header(key) => {
                let name = HeaderName::from_bytes(key.as_bytes())
                    .map_err(|_| Reason::BadHeader(key.clone()))?;
                set(headers, name, self.value.expose().to_string())?;
                Ok(target.clone())
            }
            Injection::Query(key) => {
                let mut with = target.clone();
                let pair = format!("{key}={}", encoded(self.value.expose()));
                // The query JS gave is kept as it is; the pair goes after it.
                let query = match target.url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{pair}"),
                    _ => pair,
                };
                with.url.set_query(Some(&query));
                Ok(with)
            }
        }
    }

    /// The byte strings that must not reach JS: the value, the form it
    /// took in the query, and the forms an upstream echoing it in JSON
    /// would write (`\"`, `\\`, and `\/` as PHP writes `/`).
    pub fn needles(&self) -> Vec<Vec<u8>> {
        let raw = self.value.expose();
        let json = raw.replace('\\', "\\\\").replace('"', "\\\"");
        let mut forms = vec![raw.to_string(), json.clone(), json.replace('/', "\\/")];
        if let Injection::Query(_) = self.injection {
            forms.push(encoded(raw));
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        for form in forms {
            if !out.iter().any(|o| o == form.as_bytes()) {
                out.push(form.into_bytes());
            }
        }
        out
    }
}

fn encoded(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// `bytes` with every occurrence of each needle replaced by [`REDACTED`].
pub fn scrub<'a>(bytes: &'a [u8], needles: &[Vec<u8>]) -> Cow<'a, [u8]> {
    let mut out = Cow::Borrowed(bytes);
    for needle in needles.iter().filter(|n| !n.is_empty()) {
        let finder = memchr::memmem::Finder::new(needle);
        if finder.find(&out).is_none() {
            continue;
        }
        let mut replaced = Vec::with_capacity(out.len());
        let mut rest: &[u8] = &out;
        while let Some(at) = finder.find(rest) {
            replaced.extend_from_slice(&rest[..at]);
            replaced.extend_from_slice(REDACTED);
            rest = &rest[at + needle.len()..];
        }
        replaced.extend_from_slice(rest);
        out = Cow::Owned(replaced);
    }
    out
}

/// A name as JS gave it, safe to show: printable ASCII, at most 64.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fazt_shared::net::{DomainPattern, Scope, Secret, SecretName};

    fn secrets(injection: Injection, value: &str) -> Secrets {
        Secrets::new(vec![Secret {
            scope: Scope::Global,
            name: SecretName::parse("K").expect("name"),
            value: SecretValue::parse(value, &injection).expect("value"),
            injection,
            domain: DomainPattern::parse("api.example.com").expect("domain"),
            version: 1,
            updated_at: 0,
        }])
    }

    fn target(url: &str) -> Target {
        Target::parse(url).expect("target")
    }

    #[test]
    fn each_kind_is_injected_on_its_origin_only() {
        let t = target("https://api.example.com/v1?b=2&a=%41");
        let s = secrets(Injection::Bearer, "tok-123");
        let chosen = choose(&s, 1, "K", &t).expect("chosen");
        let mut headers = vec![(AUTHORIZATION, HeaderValue::from_static("Bearer js"))];
        let sent = chosen.inject(&t, &mut headers).expect("inject");
        assert_eq!(sent, t);
        assert_eq!(headers.len(), 1, "the secret replaces JS's Authorization");
        assert_eq!(headers[0].1, "Bearer tok-123");

        let s = secrets(Injection::Header("x-api-key".into()), "tok-123");
        let chosen = choose(&s, 1, "K", &t).expect("chosen");
        let mut headers = vec![];
        chosen.inject(&t, &mut headers).expect("inject");
        assert_eq!(headers[0].0, "x-api-key");
        assert_eq!(headers[0].1, "tok-123");

        let s = secrets(Injection::Query("key".into()), "a b&c");
        let chosen = choose(&s, 1, "K", &t).expect("chosen");
        let mut headers = vec![];
        let sent = chosen.inject(&t, &mut headers).expect("inject");
        assert_eq!(sent.url.query(), Some("b=2&a=%41&key=a%20b%26c"));
        assert!(headers.is_empty());
        assert_eq!(
            chosen.needles(),
            vec![b"a b&c".to_vec(), b"a%20b%26c".to_vec()]
        );
        let s = secrets(Injection::Bearer, "ab/c\"d");
        let chosen = choose(&s, 1, "K", &t).expect("chosen");
        assert_eq!(
            chosen.needles(),
            vec![
                br#"ab/c"d"#.to_vec(),
                br#"ab/c\"d"#.to_vec(),
                br#"ab\/c\"d"#.to_vec()
            ],
            "as written, JSON-escaped, and with PHP's escaped slash"
        );

        let elsewhere = target("https://other.example.com/");
        let mut headers = vec![];
        let sent = chosen.inject(&elsewhere, &mut headers).expect("inject");
        assert_eq!(sent, elsewhere, "another origin gets nothing");
        let other_port = target("https://api.example.com:8443/");
        let sent = chosen.inject(&other_port, &mut headers).expect("inject");
        assert_eq!(sent.url.query(), None, "another port is another origin");
    }

    #[test]
    fn unknown_names_and_other_domains_are_net_auth() {
        let s = secrets(Injection::Bearer, "tok-123");
        let t = target("https://evil.example.net/");
        assert_eq!(
            choose(&s, 1, "K", &t).err(),
            Some(Reason::SecretElsewhere("K".into()))
        );
        assert_eq!(
            choose(&s, 1, "NOPE", &target("https://api.example.com/")).err(),
            Some(Reason::UnknownSecret("NOPE".into()))
        );
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let needles = vec![b"s3cr3t".to_vec(), b"s3%20t".to_vec()];
        assert_eq!(
            &*scrub(b"a s3cr3t b s3cr3ts3cr3t c s3%20t", &needles),
            b"a *** b ****** c ***"
        );
        assert!(matches!(scrub(b"clean", &needles), Cow::Borrowed(_)));
        assert_eq!(&*scrub(b"", &needles), b"");
    }
}
