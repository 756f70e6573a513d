//! The request path, decoded and normalised once at the edge (SPEC §5).
//! Routing, the static store and JS all use this one value, so no spelling
//! can be read one way by the router and another by the store: `%61pi`,
//! `//api`, `/x/../api` and `/api` are the same path here.
//!
//! Rules: percent-decode once (`%252e` stays the three characters `%2e`),
//! the result must be UTF-8 without control characters or backslashes;
//! empty and `.` segments are dropped and `..` removes the segment before it
//! (never above the root, as RFC 3986 §5.2.4 does).

use std::fmt;

/// Longest request path accepted (decoded), in bytes.
pub const MAX_PATH: usize = 8 * 1024;

/// Why a request path was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not UTF-8 once decoded.
    #[error("the path is not valid UTF-8")]
    NotUtf8,
    /// A control character (NUL, CR, LF, …) once decoded.
    #[error("the path contains a control character")]
    Control,
    /// A backslash, which some clients and file systems read as a slash.
    #[error("the path contains a backslash")]
    Backslash,
    /// Longer than [`MAX_PATH`].
    #[error("the path is longer than {MAX_PATH} bytes")]
    TooLong,
}

/// A decoded, normalised request path: its segments joined by `/` without
/// a leading one (`api/users`, empty for the root), and whether it names a
/// folder (ends with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    rel: String,
    folder: bool,
}

impl RequestPath {
    /// Decodes and normalises the path part of a request target.
    pub fn parse(raw: &str) -> Result<RequestPath, PathError> {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::NotUtf8)?;
        if decoded.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::Control);
        }
        if decoded.contains('\\') {
            return Err(PathError::Backslash);
        }
        let mut rel = String::with_capacity(decoded.len());
        let mut folder = true;
        for seg in decoded.split('/') {
            folder = matches!(seg, "" | "." | "..");
            match seg {
                "" | "." => {}
                ".." => {
                    let cut = rel.rfind('/').unwrap_or(0);
                    rel.truncate(cut);
                }
                s => {
                    if !rel.is_empty() {
                        rel.push('/');
                    }
                    rel.push_str(s);
                }
            }
        }
        Ok(RequestPath { rel, folder })
    }

    /// Whether the path ends with `/` (or is the root).
    pub fn is_folder(&self) -> bool {
        self.folder || self.rel.is_empty()
    }

    /// Whether this is `/api` or under it: the app's server code answers.
    pub fn is_api(&self) -> bool {
        let api = fazt_shared::app::SERVER_DIR;
        self.rel
            .strip_prefix(api)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// For `/<first>/<name>/rest…`: the name and the rest (the root when
    /// nothing follows the name).
    pub fn split_prefix(&self, first: &str) -> Option<(&str, RequestPath)> {
        let after = self.rel.strip_prefix(first)?.strip_prefix('/')?;
        let (name, rest) = after.split_once('/').unwrap_or((after, ""));
        Some((
            name,
            RequestPath {
                rel: rest.to_string(),
                folder: self.folder || rest.is_empty(),
            },
        ))
    }

    /// The path relative to the root, for file lookups: `a/b`, or `""` for
    /// the root.
    pub fn relative(&self) -> &str {
        &self.rel
    }
}

impl fmt::Display for RequestPath {
    /// `/a/b`, `/a/b/` for a folder, `/` for the root.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/")?;
        f.write_str(&self.rel)?;
        if self.folder && !self.rel.is_empty() {
            f.write_str("/")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        RequestPath::parse(raw).expect(raw).to_string()
    }

    #[test]
    fn spellings_normalise_to_one_path() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("/api", "/api"),
            ("//api", "/api"),
            ("/%61pi", "/api"),
            ("/%61%70%69/main.js", "/api/main.js"),
            ("/api%2fmain.js", "/api/main.js"),
            ("/api%2Fmain.js", "/api/main.js"),
            ("/x/../api", "/api"),
            ("/x/%2e%2e/api", "/api"),
            ("/%2e/api", "/api"),
            ("/./api/./main.js", "/api/main.js"),
            ("/../../api", "/api"),
            ("/a/b/", "/a/b/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a//b", "/a/b"),
            // Decoded once: a double-encoded dot is a plain name.
            ("/%252e/api", "/%2e/api"),
            ("/a%20b", "/a b"),
            ("/caf%C3%A9", "/café"),
        ] {
            assert_eq!(norm(raw), want, "{raw}");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        for (raw, want) in [
            ("/api\\main.js", PathError::Backslash),
            ("/api%5cmain.js", PathError::Backslash),
            ("/api%5Cmain.js", PathError::Backslash),
            ("/a%00", PathError::Control),
            ("/a%0d%0aSet-Cookie:x", PathError::Control),
            ("/%ff", PathError::NotUtf8),
            ("/%c3", PathError::NotUtf8),
        ] {
            assert_eq!(RequestPath::parse(raw), Err(want), "{raw}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH));
        assert_eq!(RequestPath::parse(&long), Err(PathError::TooLong));
    }

    #[test]
    fn api_and_prefixes() {
        let p = RequestPath::parse("/_app/hello/api/x").expect("path");
        let (name, rest) = p.split_prefix("_app").expect("app");
        assert_eq!((name, rest.to_string().as_str()), ("hello", "/api/x"));
        assert!(rest.is_api());
        let p = RequestPath::parse("/_app/hello").expect("path");
        let (_, rest) = p.split_prefix("_app").expect("app");
        assert_eq!(rest.to_string(), "/");
        assert!(rest.is_folder());
        assert!(RequestPath::parse("/_app/")
            .expect("p")
            .split_prefix("_app")
            .is_none());
        assert!(!RequestPath::parse("/apix").expect("p").is_api());
        assert!(!RequestPath::parse("/API").expect("p").is_api());
        assert!(RequestPath::parse("/api/").expect("p").is_api());
    }
}
