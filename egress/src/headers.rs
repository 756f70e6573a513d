//! Step 9 of SPEC §6: the request headers JS may send. Names and values
//! with CR, LF or NUL are refused (no header can smuggle another); the
//! headers that steer the connection or the framing — Host, Connection and
//! every header it names, Keep-Alive, Proxy-*, Transfer-Encoding, TE,
//! Upgrade, Content-Length, Expect — are egress's to set, and dropped;
//! Accept-Encoding asks for `identity`, so sizes are the sizes read.

use hyper::header::{HeaderName, HeaderValue};

use fazt_shared::net::secret::egress_owns_header;

use crate::refusal::Reason;

/// The headers to send, in JS's order, each checked.
pub fn sanitise(from_js: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, Reason> {
    let mut named_by_connection: Vec<String> = Vec::new();
    for (name, value) in from_js {
        if name.eq_ignore_ascii_case("connection") {
            named_by_connection.extend(
                value
                    .split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .filter(|n| !n.is_empty()),
            );
        }
    }
    let mut out = Vec::with_capacity(from_js.len() + 1);
    for (name, value) in from_js {
        if [name, value]
            .iter()
            .any(|s| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
        {
            return Err(Reason::BadHeader(printable(name)));
        }
        let lower = name.to_ascii_lowercase();
        if egress_owns_header(&lower) || named_by_connection.contains(&lower) {
            continue;
        }
        let header = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| Reason::BadHeader(printable(name)))?;
        let value = HeaderValue::from_str(value).map_err(|_| Reason::BadHeader(printable(name)))?;
        out.push((header, value));
    }
    out.push((
        hyper::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    ));
    Ok(out)
}

/// A header name safe to put in a message (it may hold control bytes).
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(sent: &[(HeaderName, HeaderValue)]) -> Vec<String> {
        sent.iter().map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn framing_and_routing_headers_are_egress_s_own() {
        let sent = sanitise(&h(&[
            ("Host", "169.254.169.254"),
            ("Connection", "close, X-Secret-Route"),
            ("X-Secret-Route", "internal"),
            ("Proxy-Authorization", "Basic x"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Content-Length", "5"),
            ("Accept-Encoding", "gzip"),
            ("Keep-Alive", "timeout=5"),
            ("Expect", "100-continue"),
            ("Authorization", "Bearer t"),
            ("X-Kept", "yes"),
        ]))
        .expect("sanitised");
        assert_eq!(names(&sent), ["authorization", "x-kept", "accept-encoding"]);
        assert_eq!(sent[2].1, "identity");
    }

    #[test]
    fn no_header_smuggles_another() {
        for (name, value) in [
            ("X-A", "1\r\nHost: evil"),
            ("X-A", "1\nX-B: 2"),
            ("X-A", "1\r"),
            ("X-A\r\nHost", "evil"),
            ("X-A", "nul\0"),
            ("Bad Name", "1"),
            ("", "1"),
            ("X-A:", "1"),
        ] {
            assert!(
                matches!(sanitise(&h(&[(name, value)])), Err(Reason::BadHeader(_))),
                "{name:?}: {value:?}"
            );
        }
    }
}
