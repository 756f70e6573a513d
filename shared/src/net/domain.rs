//! Host names as egress compares them (SPEC §6 step 1–2): parsed once, by
//! the CLI from an operator's input and by egress from a URL's host, into
//! the same form — IDNA (punycode), lower-case, without a trailing dot,
//! never an IP literal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest domain name (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a domain or pattern was refused. The messages are for operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing given.
    #[error("the domain is empty")]
    Empty,
    /// `https://…` given instead of a name.
    #[error("{0:?} is a URL; give the domain alone, like api.example.com")]
    Url(String),
    /// A port, path, query or userinfo came with the name.
    #[error("{input:?}: give the domain alone, without {what}")]
    NotAlone {
        /// The input.
        input: String,
        /// What came with it (`a port`).
        what: &'static str,
    },
    /// An IP address in any spelling.
    #[error("{0:?} is an IP address; only domain names can be allowed")]
    IpLiteral(String),
    /// Not a valid host name.
    #[error("{input:?} is not a valid domain: {why}")]
    Invalid {
        /// The input.
        input: String,
        /// Which rule it breaks.
        why: String,
    },
    /// `*` alone.
    #[error("a bare `*` would allow every domain; give *.example.com for subdomains")]
    BareWildcard,
    /// `*` anywhere but as the whole first label.
    #[error("{0:?}: a wildcard is `*.` followed by a domain, like *.example.com")]
    BadWildcard(String),
    /// `*.com`, `*.co.uk`, `*.github.io`.
    #[error("{0:?} would allow every site under the public suffix {1}; allow the sites you mean")]
    PublicSuffixWildcard(String, String),
}

/// A host name: IDNA (punycode) form, lower-case, no trailing dot, at
/// least two labels of letters, digits, `-` and `_`; never an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Parses an operator's or a URL's host name into its compared form.
    pub fn parse(input: &str) -> Result<Domain, DomainError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        if trimmed.contains("://") {
            return Err(DomainError::Url(input.to_string()));
        }
        let not_alone = |what| DomainError::NotAlone {
            input: input.to_string(),
            what,
        };
        if trimmed.contains('@') {
            return Err(not_alone("a user name"));
        }
        if trimmed.contains(['/', '\\']) {
            return Err(not_alone("a path"));
        }
        if trimmed.contains(['?', '#']) {
            return Err(not_alone("a query"));
        }
        if trimmed.starts_with('[') || trimmed.parse::<std::net::IpAddr>().is_ok() {
            return Err(DomainError::IpLiteral(input.to_string()));
        }
        if trimmed.contains(':') {
            return Err(not_alone("a port"));
        }
        Domain::from_host(trimmed).map_err(|e| match e {
            HostError::Ip => DomainError::IpLiteral(input.to_string()),
            HostError::Invalid(why) => DomainError::Invalid {
                input: input.to_string(),
                why,
            },
        })
    }

    /// The WHATWG host parser's view of `host` (the one a URL gets), then
    /// the rules every allowed name keeps.
    fn from_host(host: &str) -> Result<Domain, HostError> {
        let parsed = url::Host::parse(host).map_err(|e| HostError::Invalid(e.to_string()))?;
        let ascii = match parsed {
            url::Host::Domain(d) => d,
            // 0x7f.1, 2130706433, 127.1 and the like: the parser reads
            // them as IPv4, and so would any client.
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => return Err(HostError::Ip),
        };
        Domain::from_ascii(&ascii)
    }

    /// Checks a host already in ASCII, lower-case form (`url::Url::host_str`).
    fn from_ascii(ascii: &str) -> Result<Domain, HostError> {
        let bad = |why: &str| Err(HostError::Invalid(why.to_string()));
        let name = ascii.strip_suffix('.').unwrap_or(ascii);
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > MAX_DOMAIN_LEN {
            return bad("it is longer than 253 characters");
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return bad("it needs at least two labels, like example.com");
        }
        for label in &labels {
            if label.is_empty() {
                return bad("it has an empty label");
            }
            if label.len() > MAX_LABEL_LEN {
                return bad("a label is longer than 63 characters");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return bad("use only letters, digits, '-' and '_' in labels");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad("a label may not start or end with '-'");
            }
        }
        // The last label of a name is never all digits (RFC 3696 §2); the
        // WHATWG parser already reads such hosts as IPv4.
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(HostError::Ip);
        }
        Ok(Domain(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is a proper subdomain of `parent`.
    pub fn is_under(&self, parent: &Domain) -> bool {
        self.0.len() > parent.0.len()
            && self.0.ends_with(parent.0.as_str())
            && self.0.as_bytes()[self.0.len() - parent.0.len() - 1] == b'.'
    }
}

/// How a host failed, before it is put in the caller's words.
enum HostError {
    Ip,
    Invalid(String),
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Domain {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Domain, DomainError> {
        Domain::parse(&s)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

/// An allowlist entry's domain: one name, or `*.` and a name for its
/// subdomains only (never the name itself, never over a public suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DomainPattern {
    /// Exactly this name.
    Exact(Domain),
    /// Any name under this one.
    Wildcard(Domain),
}

impl DomainPattern {
    /// Parses `api.example.com` or `*.example.com`.
    pub fn parse(input: &str) -> Result<DomainPattern, DomainError> {
        let trimmed = input.trim();
        if trimmed == "*" || trimmed == "*." {
            return Err(DomainError::BareWildcard);
        }
        let Some(rest) = trimmed.strip_prefix("*.") else {
            if trimmed.contains('*') {
                return Err(DomainError::BadWildcard(input.to_string()));
            }
            return Domain::parse(trimmed).map(DomainPattern::Exact);
        };
        if rest.contains('*') {
            return Err(DomainError::BadWildcard(input.to_string()));
        }
        let base = match Domain::parse(rest) {
            Ok(base) => base,
            // `*.com`: one label is a top-level domain, a public suffix.
            Err(DomainError::Invalid { .. }) if !rest.trim_end_matches('.').contains('.') => {
                return Err(DomainError::PublicSuffixWildcard(
                    input.to_string(),
                    rest.trim_end_matches('.').to_ascii_lowercase(),
                ))
            }
            Err(e) => return Err(e),
        };
        if is_public_suffix(&base) {
            return Err(DomainError::PublicSuffixWildcard(
                input.to_string(),
                base.to_string(),
            ));
        }
        Ok(DomainPattern::Wildcard(base))
    }

    /// Whether `host` is allowed by this pattern.
    pub fn matches(&self, host: &Domain) -> bool {
        match self {
            DomainPattern::Exact(d) => d == host,
            DomainPattern::Wildcard(base) => host.is_under(base),
        }
    }

    /// Whether this is a `*.` pattern.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, DomainPattern::Wildcard(_))
    }
}

/// Whether `d` is on the public suffix list, ICANN or private section
/// (`com`, `co.uk`, `github.io`): a wildcard over it spans strangers' sites.
fn is_public_suffix(d: &Domain) -> bool {
    psl::suffix(d.as_str().as_bytes()).is_some_and(|s| s.is_known() && s == d.as_str().as_bytes())
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) => write!(f, "{d}"),
            DomainPattern::Wildcard(d) => write!(f, "*.{d}"),
        }
    }
}

impl TryFrom<String> for DomainPattern {
    type Error = DomainError;
    fn try_from(s: String) -> Result<DomainPattern, DomainError> {
        DomainPattern::parse(&s)
    }
}

impl From<DomainPattern> for String {
    fn from(p: DomainPattern) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_in_one_form() {
        for (input, want) in [
            ("api.example.com", "api.example.com"),
            ("API.Example.COM", "api.example.com"),
            ("api.example.com.", "api.example.com"),
            ("  api.example.com ", "api.example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("BÜCHER.example.", "xn--bcher-kva.example"),
            ("_dmarc.example.com", "_dmarc.example.com"),
            ("a-b.example.com", "a-b.example.com"),
            ("1password.com", "1password.com"),
        ] {
            assert_eq!(
                Domain::parse(input).map(|d| d.to_string()),
                Ok(want.to_string()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn what_is_not_a_domain_is_refused_with_its_reason() {
        use DomainError as E;
        let ip = |s: &str| E::IpLiteral(s.to_string());
        for (input, want) in [
            ("127.0.0.1", ip("127.0.0.1")),
            ("2130706433", ip("2130706433")),
            ("0x7f.1", ip("0x7f.1")),
            ("0177.0.0.1", ip("0177.0.0.1")),
            ("127.1", ip("127.1")),
            ("::1", ip("::1")),
            ("[::1]", ip("[::1]")),
            ("[::ffff:127.0.0.1]", ip("[::ffff:127.0.0.1]")),
        ] {
            assert_eq!(Domain::parse(input), Err(want), "{input:?}");
        }
        for input in ["https://api.example.com", "http://x.example/a"] {
            assert!(matches!(Domain::parse(input), Err(E::Url(_))), "{input:?}");
        }
        for input in [
            "api.example.com:443",
            "api.example.com/v1",
            "user@api.example.com",
            "api.example.com?x=1",
            "api.example.com\\x",
        ] {
            assert!(
                matches!(Domain::parse(input), Err(E::NotAlone { .. })),
                "{input:?}"
            );
        }
        for input in [
            "localhost",
            "example.123",
            "a..example.com",
            ".example.com",
            "-a.example.com",
            "a-.example.com",
            "ex ample.com",
            "exa$mple.com",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}.com", "a.".repeat(130)),
        ] {
            assert!(
                matches!(Domain::parse(input), Err(E::Invalid { .. })),
                "{input:?}: {:?}",
                Domain::parse(input)
            );
        }
        assert_eq!(Domain::parse(""), Err(E::Empty));
        assert_eq!(Domain::parse("  "), Err(E::Empty));
    }

    #[test]
    fn wildcards_match_subdomains_only_and_never_span_a_public_suffix() {
        let p = DomainPattern::parse("*.Example.com.").expect("pattern");
        assert_eq!(p.to_string(), "*.example.com");
        let d = |s| Domain::parse(s).expect("domain");
        assert!(p.matches(&d("api.example.com")));
        assert!(p.matches(&d("a.b.example.com")));
        assert!(!p.matches(&d("example.com")), "not the name itself");
        assert!(!p.matches(&d("badexample.com")));
        assert!(!p.matches(&d("example.com.evil.net")));
        let exact = DomainPattern::parse("api.example.com").expect("pattern");
        assert!(exact.matches(&d("api.example.com")));
        assert!(!exact.matches(&d("x.api.example.com")));
        use DomainError as E;
        assert_eq!(DomainPattern::parse("*"), Err(E::BareWildcard));
        for input in ["*.com", "*.co.uk", "*.github.io", "*.uk", "*.COM."] {
            assert!(
                matches!(
                    DomainPattern::parse(input),
                    Err(E::PublicSuffixWildcard(..))
                ),
                "{input:?}: {:?}",
                DomainPattern::parse(input)
            );
        }
        for input in [
            "a*.example.com",
            "*.*.example.com",
            "api.*.example.com",
            "**.example.com",
        ] {
            assert!(
                matches!(DomainPattern::parse(input), Err(E::BadWildcard(_))),
                "{input:?}: {:?}",
                DomainPattern::parse(input)
            );
        }
        assert!(matches!(
            DomainPattern::parse("*.10.0.0.1"),
            Err(E::IpLiteral(_))
        ));
        assert!(DomainPattern::parse("*.example.co.uk").is_ok());
    }
}
