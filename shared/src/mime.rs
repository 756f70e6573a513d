//! Content types of static files, decided once at deploy time and stored
//! with each file.

use crate::app::FilePath;

/// Type of a file whose extension is unknown: browsers will not sniff it
/// into something executable.
pub const FALLBACK: &str = "application/octet-stream";

/// Extension → content type; text types carry `charset=utf-8`.
const TABLE: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
];

/// The content type of a path, from its extension.
pub fn for_path(path: &FilePath) -> &'static str {
    path.extension()
        .and_then(|ext| TABLE.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t))
        .unwrap_or(FALLBACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        let t = |p: &str| for_path(&FilePath::parse(p).expect("path"));
        assert_eq!(t("index.html"), "text/html; charset=utf-8");
        assert_eq!(t("a/APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(t("logo.svg"), "image/svg+xml");
        assert_eq!(t("data.bin"), FALLBACK);
        assert_eq!(t("Makefile"), FALLBACK);
    }
}
