//! Who a request is for (SPEC §5, §9): an app by Host `<app>.<domain>` or path
//! `/_app/<app>/…`, the admin API on Host `admin.<domain>` or a loopback
//! request to `/api/…`, the admin web UI on the rest of `admin.<domain>`
//! (an origin of its own: never one an app's pages share), or nobody.

use std::net::SocketAddr;

use hyper::header::HOST;
use hyper::Request;

use super::path::RequestPath;

/// The destination of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// The admin API.
    Admin,
    /// An app.
    App {
        /// The app name as given (validated when looked up).
        name: String,
        /// Path inside the app.
        path: RequestPath,
    },
    /// The admin web UI: one of its files (`""` for the page).
    AdminUi {
        /// The file, relative to the UI's root.
        file: String,
    },
    /// Neither.
    NotFound,
}

/// Why a request's host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 request without a Host (RFC 9112 §3.2).
    #[error("the request has no Host header")]
    Missing,
    /// More than one Host header (RFC 9112 §3.2).
    #[error("the request has more than one Host header")]
    Repeated,
}

/// The host a request is for, without port, lower-case, without a trailing
/// dot: the authority of an absolute-form target (or HTTP/2's
/// `:authority`) when there is one, as RFC 9112 §3.2.2 says, else the one
/// Host header. `None` for an HTTP/1.0 request that names no host.
pub fn host<B>(req: &Request<B>) -> Result<Option<String>, HostError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Repeated);
    }
    let raw = match (req.uri().authority(), header) {
        (Some(authority), _) => authority.as_str(),
        (None, Some(h)) => h.to_str().unwrap_or(""),
        (None, None) if req.version() == hyper::Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(HostError::Missing),
    };
    // Userinfo is not part of a host (and has no business in a target).
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let without_port = match raw.strip_prefix('[') {
        // An IPv6 literal, `[::1]:8080`: keep the brackets, drop the port.
        Some(rest) => rest.find(']').map_or(raw, |i| &raw[..i + 2]),
        None => match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        },
    };
    Ok(Some(
        without_port.trim_end_matches('.').to_ascii_lowercase(),
    ))
}

/// Classifies a request for `host` whose path was decoded into `path`.
pub fn classify(host: Option<&str>, path: RequestPath, peer: SocketAddr, domain: &str) -> Route {
    let is_api = path.is_api();
    // `<label>.<domain>`, compared without building strings per request.
    let label = host.and_then(|h| h.strip_suffix(domain)?.strip_suffix('.'));
    match label {
        Some("admin") => {
            return if is_api {
                Route::Admin
            } else {
                Route::AdminUi {
                    file: path.relative().to_string(),
                }
            };
        }
        Some(label) if !label.is_empty() && !label.contains('.') => {
            return Route::App {
                name: label.to_string(),
                path,
            };
        }
        _ => {}
    }
    if let Some((name, inner)) = path.split_prefix(APP_PREFIX) {
        return Route::App {
            name: name.to_string(),
            path: inner,
        };
    }
    // An IPv4 peer on a dual-stack socket shows as ::ffff:127.0.0.1.
    if is_api && peer.ip().to_canonical().is_loopback() {
        return Route::Admin;
    }
    Route::NotFound
}

/// First segment of the path form of app routing: `/_app/<name>/…`.
const APP_PREFIX: &str = "_app";

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, path: &str) -> Request<()> {
        Request::builder()
            .uri(path)
            .header(HOST, host)
            .body(())
            .expect("request")
    }

    const LOCAL: &str = "127.0.0.1:5000";
    const REMOTE: &str = "203.0.113.9:5000";

    fn at(host_header: &str, path: &str, peer: &str) -> Route {
        let parsed = RequestPath::parse(path).expect("path");
        let host = host(&req(host_header, path)).expect("host");
        classify(
            host.as_deref(),
            parsed,
            peer.parse().expect("addr"),
            "localhost",
        )
    }

    #[test]
    fn hosts_follow_rfc_9112() {
        let one = |h: &str, target: &str| host(&req(h, target));
        assert_eq!(
            one("Site.Localhost.:8080", "/"),
            Ok(Some("site.localhost".into()))
        );
        // An absolute-form target's authority wins over Host.
        assert_eq!(
            one("other.localhost", "http://site.localhost/x"),
            Ok(Some("site.localhost".into()))
        );
        let two = Request::builder()
            .uri("/")
            .header(HOST, "a.localhost")
            .header(HOST, "b.localhost")
            .body(())
            .expect("request");
        assert_eq!(host(&two), Err(HostError::Repeated));
        let none = Request::builder().uri("/").body(()).expect("request");
        assert_eq!(host(&none), Err(HostError::Missing));
        let old = Request::builder()
            .uri("/")
            .version(hyper::Version::HTTP_10)
            .body(())
            .expect("request");
        assert_eq!(host(&old), Ok(None));
    }

    fn app(name: &str, path: &str) -> Route {
        Route::App {
            name: name.into(),
            path: RequestPath::parse(path).expect("path"),
        }
    }

    #[test]
    fn table() {
        let cases = [
            // admin host
            (
                "admin.localhost",
                "/api/system/health",
                REMOTE,
                Route::Admin,
            ),
            ("admin.localhost:8080", "/api", REMOTE, Route::Admin),
            ("ADMIN.localhost.", "/api/x", REMOTE, Route::Admin),
            (
                "admin.localhost",
                "/index.html",
                REMOTE,
                Route::AdminUi {
                    file: "index.html".into(),
                },
            ),
            // the UI is on the admin host only, never on an app's origin
            ("localhost:8080", "/_admin/", LOCAL, Route::NotFound),
            ("127.0.0.1:8080", "/_admin/app.js", LOCAL, Route::NotFound),
            // an IPv4 client of a dual-stack socket is still loopback
            (
                "localhost:8080",
                "/api/system/limits",
                "[::ffff:127.0.0.1]:5000",
                Route::Admin,
            ),
            // loopback /api on the bare domain or an IP
            ("localhost:8080", "/api/system/limits", LOCAL, Route::Admin),
            ("127.0.0.1:8080", "/api/system/limits", LOCAL, Route::Admin),
            (
                "localhost:8080",
                "/api/system/limits",
                REMOTE,
                Route::NotFound,
            ),
            ("localhost", "/apix", LOCAL, Route::NotFound),
            // app by host
            ("hello.localhost:8080", "/api", REMOTE, app("hello", "/api")),
            (
                "hello.localhost",
                "/a/b.css",
                LOCAL,
                app("hello", "/a/b.css"),
            ),
            ("a.b.localhost", "/", LOCAL, Route::NotFound),
            // app by path
            (
                "localhost",
                "/_app/hello/api/x",
                REMOTE,
                app("hello", "/api/x"),
            ),
            ("localhost", "/_app/hello", REMOTE, app("hello", "/")),
            ("localhost", "/_app/", LOCAL, Route::NotFound),
            // IPv6 literal host with port
            (
                "[::1]:8080",
                "/api/system/health",
                "[::1]:5000",
                Route::Admin,
            ),
        ];
        for (host, path, peer, want) in cases {
            assert_eq!(at(host, path, peer), want, "{host} {path} from {peer}");
        }
    }
}
