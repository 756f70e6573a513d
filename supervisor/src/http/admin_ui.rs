//! The admin web UI's files (issue 20): plain HTML, CSS and one ES module,
//! compiled into the binary, served on the admin host only (`admin.<domain>`,
//! `http://admin.localhost:8080/` on the machine): an origin no app shares,
//! so no app's script can reach the page, its storage or a service worker
//! over it. The page holds the admin token in `sessionStorage` and calls
//! the admin API with it as a bearer header; it never puts the token in a
//! URL. Every answer carries a strict Content-Security-Policy (no inline
//! script or style, nothing from elsewhere), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `Cross-Origin-Opener-Policy:
//! same-origin`.

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::reply::{self, Body};
use fazt_shared::ErrorCode;

/// The files, by name; `""` is the page.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("admin_ui/index.html"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("admin_ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("admin_ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("admin_ui/style.css"),
    ),
];

/// The policy every answer carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Answers a request for `file`.
pub fn serve(file: &str) -> Response<Body> {
    let mut resp = match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, bytes)) => {
            let mut r = Response::new(Body::full(Bytes::from_static(bytes)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(mime));
            r
        }
        None => reply::app_error(ErrorCode::NotFound, "not found"),
    };
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
