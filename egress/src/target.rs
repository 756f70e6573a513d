//! Step 1 of SPEC §6: a URL from JS (or a redirect's `Location`) parsed
//! with the WHATWG parser — the one browsers use, so no spelling means
//! one thing here and another to the connection — and checked: http or
//! https, no userinfo, a domain name (never an IP literal), no bad port.

use fazt_shared::net::Domain;
use url::Url;

use crate::refusal::Reason;

/// http or https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain http: only for entries allowed with `--http`.
    Http,
    /// https.
    Https,
}

/// A checked URL: what egress connects to and sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// The host, in the allowlist's form.
    pub host: Domain,
    /// The port (the scheme's default when none is given).
    pub port: u16,
    /// The URL as it will be sent (normalised by the parser).
    pub url: Url,
}

/// Ports the fetch standard refuses (https://fetch.spec.whatwg.org/#port-blocking),
/// and 0, which no server listens on.
const BAD_PORTS: &[u16] = &[
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
    465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
    993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
];

impl Target {
    /// Parses and checks a URL from JS.
    pub fn parse(input: &str) -> Result<Target, Reason> {
        let url = Url::parse(input).map_err(|_| Reason::BadUrl)?;
        Target::check(url)
    }

    /// Resolves a redirect's `Location` against the URL it came from, then
    /// checks it like any URL.
    pub fn redirect(&self, location: &str) -> Result<Target, Reason> {
        let url = self.url.join(location).map_err(|_| Reason::BadUrl)?;
        Target::check(url)
    }

    fn check(url: Url) -> Result<Target, Reason> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(Reason::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Reason::Userinfo);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => Domain::parse(d).map_err(|e| match e {
                fazt_shared::net::DomainError::IpLiteral(_) => Reason::IpLiteral,
                _ => Reason::BadHost,
            })?,
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => return Err(Reason::IpLiteral),
            None => return Err(Reason::BadHost),
        };
        let port = url.port_or_known_default().ok_or(Reason::BadUrl)?;
        if BAD_PORTS.binary_search(&port).is_ok() {
            return Err(Reason::BadPort(port));
        }
        Ok(Target {
            scheme,
            host,
            port,
            url,
        })
    }

    /// The origin (scheme, host, port), to tell whether a redirect leaves it.
    pub fn origin(&self) -> (Scheme, &Domain, u16) {
        (self.scheme, &self.host, self.port)
    }

    /// The path without the query, for logs (the query may hold secrets).
    pub fn path(&self) -> &str {
        self.url.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_port_list_is_sorted_for_its_search() {
        assert!(BAD_PORTS.windows(2).all(|w| w[0] < w[1]));
    }

    /// URL spellings from the outside: each is refused with its reason, or
    /// accepted as the host and port a client would connect to.
    #[test]
    fn spellings_parse_to_one_host_or_are_refused() {
        use Reason as R;
        let refused: &[(&str, Reason)] = &[
            ("http://127.0.0.1/", R::IpLiteral),
            ("http://2130706433/", R::IpLiteral),
            ("http://0x7f000001/", R::IpLiteral),
            ("http://0x7f.0.0.1/", R::IpLiteral),
            ("http://0177.0.0.1/", R::IpLiteral),
            ("http://017700000001/", R::IpLiteral),
            ("http://127.1/", R::IpLiteral),
            ("http://127.0.1/", R::IpLiteral),
            ("http://169.254.169.254/latest/meta-data/", R::IpLiteral),
            ("http://0/", R::IpLiteral),
            ("http://[::1]/", R::IpLiteral),
            ("http://[::ffff:127.0.0.1]/", R::IpLiteral),
            ("http://[::ffff:7f00:1]/", R::IpLiteral),
            ("http://[0:0:0:0:0:ffff:127.0.0.1]/", R::IpLiteral),
            ("http://[::127.0.0.1]/", R::IpLiteral),
            ("http://[64:ff9b::127.0.0.1]/", R::IpLiteral),
            ("http://[fe80::1%25eth0]/", R::BadUrl),
            ("http://①②⑦.0.0.1/", R::IpLiteral),
            ("http://127.0.0.1./", R::IpLiteral),
            ("https://user:pass@api.example.com/", R::Userinfo),
            ("https://user@api.example.com/", R::Userinfo),
            ("https://:pass@api.example.com/", R::Userinfo),
            ("ftp://api.example.com/", R::Scheme("ftp".into())),
            ("file:///etc/passwd", R::Scheme("file".into())),
            ("gopher://api.example.com:70/", R::Scheme("gopher".into())),
            ("javascript:alert(1)", R::Scheme("javascript".into())),
            ("data:text/plain,hi", R::Scheme("data".into())),
            ("ws://api.example.com/", R::Scheme("ws".into())),
            ("https://api.example.com:22/", R::BadPort(22)),
            ("https://api.example.com:25/", R::BadPort(25)),
            ("http://api.example.com:0/", R::BadPort(0)),
            ("https://api.example.com:6667/", R::BadPort(6667)),
            ("https://api.example.com:65536/", R::BadUrl),
            ("https://localhost/", R::BadHost),
            ("https://intranet/", R::BadHost),
            ("api.example.com/path", R::BadUrl),
            ("//api.example.com/", R::BadUrl),
            ("", R::BadUrl),
            ("https://", R::BadUrl),
            ("https://exa mple.com/", R::BadUrl),
        ];
        for (url, want) in refused {
            assert_eq!(
                Target::parse(url).map(|t| t.host.to_string()),
                Err(want.clone()),
                "{url}"
            );
        }
        let accepted: &[(&str, &str, u16)] = &[
            ("https://api.example.com/v1?x=1", "api.example.com", 443),
            ("https://API.EXAMPLE.COM./", "api.example.com", 443),
            ("http://api.example.com:8080/", "api.example.com", 8080),
            ("https://bücher.example/", "xn--bcher-kva.example", 443),
            ("https://api.example.com:443/", "api.example.com", 443),
            // A backslash is a path separator to the WHATWG parser: the
            // host is what comes before it, for the check and the connect.
            (
                "https://api.example.com\\@evil.example/",
                "api.example.com",
                443,
            ),
            (
                "https://evil.example\\@api.example.com/",
                "evil.example",
                443,
            ),
            (
                "https://api.example.com#@evil.example/",
                "api.example.com",
                443,
            ),
            (
                "https://api.example.com?@evil.example/",
                "api.example.com",
                443,
            ),
            ("HTTPS://api.example.com/", "api.example.com", 443),
            ("  https://api.example.com/  ", "api.example.com", 443),
            ("https://api.example.com\t/", "api.example.com", 443),
        ];
        for (url, host, port) in accepted {
            let t = Target::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!((t.host.as_str(), t.port), (*host, *port), "{url}");
        }
    }

    #[test]
    fn redirects_are_resolved_then_checked_like_any_url() {
        let t = Target::parse("https://api.example.com/a/b?q=1").expect("target");
        let r = t.redirect("../c").expect("relative");
        assert_eq!(r.url.as_str(), "https://api.example.com/c");
        let r = t
            .redirect("//other.example.org/x")
            .expect("protocol-relative");
        assert_eq!(
            (r.host.as_str(), r.scheme),
            ("other.example.org", Scheme::Https)
        );
        assert_eq!(
            t.redirect("http://169.254.169.254/"),
            Err(Reason::IpLiteral)
        );
        assert_eq!(t.redirect("//[::1]/"), Err(Reason::IpLiteral));
        assert_eq!(
            t.redirect("file:///etc/passwd"),
            Err(Reason::Scheme("file".into()))
        );
        let r = t.redirect("http://api.example.com/").expect("parsed");
        assert_eq!(
            r.scheme,
            Scheme::Http,
            "a downgrade is the caller's to refuse"
        );
    }
}
