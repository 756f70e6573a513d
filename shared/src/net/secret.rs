//! Secrets (SPEC §7): values an app may have egress send for it and never
//! see. Parsed once here — name, how it is injected, its domain, its
//! value — for the CLI, the admin API and egress alike. A [`SecretValue`]
//! prints masked whatever formats it (Debug, Display, JSON), so a value
//! reaches the wire only through [`SecretValue::expose`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::allowlist::Scope;
use super::domain::{Domain, DomainError, DomainPattern};

/// Longest secret name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest header or query key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Values of this many characters or fewer are masked whole.
pub const MASK_WHOLE_UP_TO: usize = 12;

/// Request headers egress sets itself or drops (SPEC §6 step 9): JS may not
/// send them, and a secret may not be injected as one.
pub const EGRESS_OWNED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
    "accept-encoding",
];

/// Whether egress owns the request header `lower` (already lower-case).
pub fn egress_owns_header(lower: &str) -> bool {
    EGRESS_OWNED_HEADERS.contains(&lower) || lower.starts_with("proxy-")
}

/// Why a secret was refused. The messages are for operators and never
/// contain the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not a usable name.
    #[error("{0:?} is not a valid secret name: use letters, digits and _ (at most 64, not starting with a digit)")]
    BadName(String),
    /// `--as` other than bearer, header, query.
    #[error("{0:?} is not a way to send a secret: use bearer, header or query")]
    BadKind(String),
    /// `--key` missing for header or query.
    #[error("--key is required with --as {0}")]
    KeyRequired(&'static str),
    /// `--key` given for bearer.
    #[error("--key is not used with --as bearer (the header is Authorization)")]
    KeyWithBearer,
    /// A key that is not a header name or query key, or one egress owns.
    #[error("{key:?} is not a valid {what}")]
    BadKey {
        /// The key.
        key: String,
        /// `header name` or `query key`.
        what: &'static str,
    },
    /// `--domain` missing.
    #[error("--domain is required: the secret is sent only to that domain")]
    DomainRequired,
    /// A bad domain or pattern.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Empty value.
    #[error("the secret value is empty")]
    EmptyValue,
    /// Over [`MAX_VALUE_LEN`].
    #[error("the secret value is over {MAX_VALUE_LEN} bytes")]
    ValueTooLong,
    /// A character the way of sending cannot carry.
    #[error("the secret value has {0}; it cannot be sent as given")]
    BadValue(&'static str),
}

/// A secret's name, as JS gives it in `{auth: "NAME"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Letters, digits and `_`, not starting with a digit, 1 to 64 long.
    pub fn parse(input: &str) -> Result<SecretName, SecretError> {
        let ok = !input.is_empty()
            && input.len() <= MAX_NAME_LEN
            && !input.starts_with(|c: char| c.is_ascii_digit())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(SecretName(input.to_string()))
        } else {
            Err(SecretError::BadName(input.chars().take(80).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SecretName {
    type Error = SecretError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SecretName::parse(&s)
    }
}

impl From<SecretName> for String {
    fn from(n: SecretName) -> String {
        n.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How egress sends a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Injection {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `<header>: <value>`; the header name lower-case.
    Header(String),
    /// `<key>=<value>` appended to the query.
    Query(String),
}

impl Injection {
    /// From `--as` and `--key`.
    pub fn parse(kind: Option<&str>, key: Option<&str>) -> Result<Injection, SecretError> {
        match (kind.unwrap_or("bearer"), key) {
            ("bearer", None) => Ok(Injection::Bearer),
            ("bearer", Some(_)) => Err(SecretError::KeyWithBearer),
            ("header", None) => Err(SecretError::KeyRequired("header")),
            ("query", None) => Err(SecretError::KeyRequired("query")),
            ("header", Some(k)) => {
                let lower = k.to_ascii_lowercase();
                let token = !lower.is_empty()
                    && lower.len() <= MAX_KEY_LEN
                    && lower.bytes().all(is_token_byte);
                if !token || egress_owns_header(&lower) || lower == "cookie" {
                    return Err(SecretError::BadKey {
                        key: k.chars().take(80).collect(),
                        what: "header name (a token that egress does not set itself)",
                    });
                }
                Ok(Injection::Header(lower))
            }
            ("query", Some(k)) => {
                let ok = !k.is_empty()
                    && k.len() <= MAX_KEY_LEN
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                if !ok {
                    return Err(SecretError::BadKey {
                        key: k.chars().take(80).collect(),
                        what: "query key (letters, digits, - . _ ~)",
                    });
                }
                Ok(Injection::Query(k.to_string()))
            }
            (other, _) => Err(SecretError::BadKind(other.chars().take(20).collect())),
        }
    }

    /// `bearer`, `header` or `query`.
    pub fn kind(&self) -> &'static str {
        match self {
            Injection::Bearer => "bearer",
            Injection::Header(_) => "header",
            Injection::Query(_) => "query",
        }
    }

    /// The header name or query key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Injection::Bearer => None,
            Injection::Header(k) | Injection::Query(k) => Some(k),
        }
    }
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A secret's value; formatting it shows [`mask`] of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Checks a value for how it will be sent: 1 to 4096 bytes, no control
    /// characters; in a header also printable ASCII without spaces at the
    /// ends (HTTP would trim them, and the value JS may not see would be
    /// another string).
    pub fn parse(value: &str, injection: &Injection) -> Result<SecretValue, SecretError> {
        if value.is_empty() {
            return Err(SecretError::EmptyValue);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(SecretError::ValueTooLong);
        }
        if value.chars().any(char::is_control) {
            return Err(SecretError::BadValue(
                "a control character (newline, tab, …)",
            ));
        }
        if !matches!(injection, Injection::Query(_)) {
            if !value.is_ascii() {
                return Err(SecretError::BadValue(
                    "a non-ASCII character, which a header cannot carry",
                ));
            }
            if value.starts_with(' ') || value.ends_with(' ') {
                return Err(SecretError::BadValue(
                    "spaces at an end, which a header would drop",
                ));
            }
        }
        Ok(SecretValue(value.to_string()))
    }

    /// The value itself: only for sending it, and for scrubbing it from
    /// what comes back.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({})", self.masked())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// SPEC §7's mask: the first 3 and last 3 characters around `***`; 12
/// characters or fewer are `***` whole.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= MASK_WHOLE_UP_TO {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}***{tail}")
}

/// One secret. In JSON: `{"app", "name", "as", "key", "domain", "value"
/// (masked), "updated_at"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    /// Global or one app's.
    #[serde(rename = "app")]
    pub scope: Scope,
    /// The name JS uses.
    pub name: SecretName,
    /// How it is sent.
    #[serde(rename = "as", serialize_with = "kind_only")]
    pub injection: Injection,
    /// The domain it may be sent to.
    pub domain: DomainPattern,
    /// The value (masked in JSON).
    pub value: SecretValue,
    /// Bumped by every change.
    #[serde(skip)]
    pub version: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

fn kind_only<S: serde::Serializer>(i: &Injection, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("kind", i.kind())?;
    m.serialize_entry("key", &i.key())?;
    m.end()
}

/// A secret as an operator gives it, checked whole before anything is
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// The name JS uses.
    pub name: SecretName,
    /// How it is sent.
    pub injection: Injection,
    /// The domain it may be sent to.
    pub domain: DomainPattern,
    /// The value.
    pub value: SecretValue,
}

impl NewSecret {
    /// From the CLI's or the admin API's fields: `kind` defaults to
    /// bearer; `domain` is required.
    pub fn parse(
        name: &str,
        value: &str,
        kind: Option<&str>,
        key: Option<&str>,
        domain: Option<&str>,
    ) -> Result<NewSecret, SecretError> {
        let name = SecretName::parse(name)?;
        let injection = Injection::parse(kind, key)?;
        let domain = DomainPattern::parse(domain.ok_or(SecretError::DomainRequired)?)?;
        let value = SecretValue::parse(value, &injection)?;
        Ok(NewSecret {
            name,
            injection,
            domain,
            value,
        })
    }
}

/// Every secret, as egress holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    all: Vec<Secret>,
}

/// Why a named secret cannot be used for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Neither the app nor the global scope has it.
    Unknown,
    /// It exists, for another domain.
    OtherDomain,
}

impl Secrets {
    /// These secrets.
    pub fn new(all: Vec<Secret>) -> Secrets {
        Secrets { all }
    }

    /// The secret `name` app `app_id` may send to `host`: its own wins
    /// over a global one (SPEC §7), and the one that wins must be for
    /// `host`'s domain — a global one is never used in place of the app's
    /// own one for another domain.
    pub fn usable(&self, app_id: i64, name: &str, host: &Domain) -> Result<&Secret, Unusable> {
        let own = self
            .all
            .iter()
            .find(|s| s.scope.app_id() == Some(app_id) && s.name.as_str() == name);
        let chosen = own.or_else(|| {
            self.all
                .iter()
                .find(|s| s.scope == Scope::Global && s.name.as_str() == name)
        });
        match chosen {
            None => Err(Unusable::Unknown),
            Some(s) if s.domain.matches(host) => Ok(s),
            Some(_) => Err(Unusable::OtherDomain),
        }
    }

    /// Every secret.
    pub fn all(&self) -> &[Secret] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_short_values_whole_and_show_three_at_each_end_of_long_ones() {
        assert_eq!(mask("a"), "***");
        assert_eq!(mask("abcdef"), "***");
        assert_eq!(mask("abcdefg"), "***");
        assert_eq!(mask("abcdefghijkl"), "***", "12 characters");
        assert_eq!(mask("abcdefghijklm"), "abc***klm", "13 characters");
        let forty = "sk_live_0123456789abcdefghijklmnopqrstuv";
        assert_eq!(forty.len(), 40);
        assert_eq!(mask(forty), "sk_***tuv");
        assert_eq!(mask("ääääääääääääöü"), "äää***äöü", "characters, not bytes");
    }

    #[test]
    fn a_value_never_formats_as_itself() {
        let v = SecretValue::parse("sk_live_0123456789abcdef", &Injection::Bearer).expect("value");
        for shown in [
            format!("{v}"),
            format!("{v:?}"),
            serde_json::to_string(&v).expect("json"),
        ] {
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        assert_eq!(v.expose(), "sk_live_0123456789abcdef");
    }

    #[test]
    fn names_keys_and_values_are_checked_for_how_they_are_sent() {
        for ok in ["STRIPE_KEY", "_x", "a1"] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "ä", &"x".repeat(65)] {
            assert!(SecretName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Injection::parse(None, None), Ok(Injection::Bearer));
        assert_eq!(
            Injection::parse(Some("header"), Some("X-Api-Key")),
            Ok(Injection::Header("x-api-key".into()))
        );
        assert_eq!(
            Injection::parse(Some("query"), Some("api_key")),
            Ok(Injection::Query("api_key".into()))
        );
        assert_eq!(
            Injection::parse(Some("bearer"), Some("k")),
            Err(SecretError::KeyWithBearer)
        );
        assert!(matches!(
            Injection::parse(Some("header"), None),
            Err(SecretError::KeyRequired("header"))
        ));
        for bad in [
            "Host",
            "content-length",
            "proxy-authorization",
            "cookie",
            "a b",
            "a:b",
            "",
        ] {
            assert!(
                Injection::parse(Some("header"), Some(bad)).is_err(),
                "{bad}"
            );
        }
        for bad in ["a&b", "a=b", "a b", "#", ""] {
            assert!(Injection::parse(Some("query"), Some(bad)).is_err(), "{bad}");
        }
        assert!(matches!(
            Injection::parse(Some("basic"), None),
            Err(SecretError::BadKind(_))
        ));
        let header = Injection::Header("x-k".into());
        let query = Injection::Query("k".into());
        assert!(SecretValue::parse("", &header).is_err());
        assert!(SecretValue::parse("a\r\nX: y", &header).is_err());
        assert!(SecretValue::parse("a\nb", &query).is_err());
        assert!(SecretValue::parse(" a", &header).is_err());
        assert!(SecretValue::parse("ä", &header).is_err());
        assert!(SecretValue::parse("ä &=", &query).is_ok());
        assert!(SecretValue::parse(&"x".repeat(4097), &query).is_err());
    }

    fn secret(app: Option<i64>, name: &str, domain: &str, value: &str) -> Secret {
        Secret {
            scope: match app {
                None => Scope::Global,
                Some(id) => Scope::App {
                    id,
                    name: crate::AppName::parse(&format!("app{id}")).expect("app"),
                },
            },
            name: SecretName::parse(name).expect("name"),
            injection: Injection::Bearer,
            domain: DomainPattern::parse(domain).expect("domain"),
            value: SecretValue::parse(value, &Injection::Bearer).expect("value"),
            version: 1,
            updated_at: 0,
        }
    }

    #[test]
    fn an_apps_own_secret_wins_and_only_for_its_domain() {
        let secrets = Secrets::new(vec![
            secret(None, "K", "*.example.com", "global"),
            secret(Some(1), "K", "api.other.com", "own"),
            secret(Some(2), "ONLY2", "api.example.com", "two"),
        ]);
        let host = |h: &str| Domain::parse(h).expect("host");
        let value = |r: Result<&Secret, Unusable>| r.map(|s| s.value.expose().to_string());
        assert_eq!(
            value(secrets.usable(1, "K", &host("api.other.com"))),
            Ok("own".into())
        );
        assert_eq!(
            value(secrets.usable(1, "K", &host("api.example.com"))),
            Err(Unusable::OtherDomain),
            "the app's own secret decides; the global one does not stand in"
        );
        assert_eq!(
            value(secrets.usable(3, "K", &host("a.example.com"))),
            Ok("global".into())
        );
        assert_eq!(
            value(secrets.usable(3, "K", &host("example.com"))),
            Err(Unusable::OtherDomain)
        );
        assert_eq!(
            value(secrets.usable(1, "ONLY2", &host("api.example.com"))),
            Err(Unusable::Unknown),
            "another app's secret does not exist for this one"
        );
    }
}
