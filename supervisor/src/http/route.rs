//! Who a request is for (SPEC §5, §9): an app by Host `<app>.<domain>` or path
//! `/_app/<app>/…`, the admin API on Host `admin.<domain>` or a loopback
//! request to `/api/…`, or nobody.

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
    /// Neither.
    NotFound,
}

/// The host of a request without port, lower-case: the Host header, else the
/// URI authority (HTTP/2).
fn host<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let without_port = match raw.strip_prefix('[') {
        // An IPv6 literal, `[::1]:8080`: keep the brackets, drop the port.
        Some(rest) => rest.find(']').map_or(raw, |i| &raw[..i + 2]),
        None => match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        },
    };
    Some(without_port.trim_end_matches('.').to_ascii_lowercase())
}

/// Classifies a request whose path was decoded into `path`.
pub fn classify<B>(req: &Request<B>, path: &RequestPath, peer: SocketAddr, domain: &str) -> Route {
    let is_api = path.is_api();
    if let Some(host) = host(req) {
        if host == format!("admin.{domain}") {
            return if is_api {
                Route::Admin
            } else {
                Route::NotFound
            };
        }
        if let Some(label) = host.strip_suffix(&format!(".{domain}")) {
            if !label.is_empty() && !label.contains('.') {
                return Route::App {
                    name: label.to_string(),
                    path: path.clone(),
                };
            }
        }
    }
    if let Some((name, inner)) = path.split_prefix(APP_PREFIX) {
        return Route::App {
            name: name.to_string(),
            path: inner,
        };
    }
    if is_api && peer.ip().is_loopback() {
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

    fn at(host: &str, path: &str, peer: &str) -> Route {
        let parsed = RequestPath::parse(path).expect("path");
        classify(
            &req(host, path),
            &parsed,
            peer.parse().expect("addr"),
            "localhost",
        )
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
            ("admin.localhost", "/index.html", LOCAL, Route::NotFound),
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
