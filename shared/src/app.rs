//! The app model (SPEC §5): validated app names and file paths, parsed once
//! at the edge and passed around as types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names an app may not take: they are hosts or paths fazt itself uses.
pub const RESERVED_NAMES: &[&str] = &[
    "admin",
    "api",
    "app",
    "apps",
    "fazt",
    "localhost",
    "static",
    "status",
    "www",
];

/// Longest app name: one DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// A valid app name: `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, 1–63 characters, not
/// reserved. It is always usable as a DNS label (`<app>.<domain>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The name does not match the rules.
    #[error("invalid app name {name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A file path inside an app is unsafe or malformed.
    #[error("invalid file path {path:?}: {why}")]
    BadPath {
        /// The path given.
        path: String,
        /// Which rule it breaks.
        why: &'static str,
    },
}

impl AppName {
    /// Validates a name.
    pub fn parse(name: &str) -> Result<AppName, AppError> {
        let bad = |why| AppError::BadName {
            name: name.to_string(),
            why,
        };
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("it is longer than 63 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("use only a-z, 0-9 and '-'"));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(bad("it may not start or end with '-'"));
        }
        if RESERVED_NAMES.contains(&name) {
            return Err(bad("the name is reserved"));
        }
        Ok(AppName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppName {
    type Error = AppError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AppName::parse(&s)
    }
}

impl From<AppName> for String {
    fn from(n: AppName) -> String {
        n.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest file path inside an app.
pub const MAX_PATH_LEN: usize = 1024;

/// A safe relative path of a file inside an app: `/`-separated, no empty,
/// `.` or `..` segments, no leading `/`, no backslash, NUL or control
/// characters. Whatever a zip or a directory walk hands in, only these reach
/// the database, so no path can escape the app (zip slip).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

impl FilePath {
    /// Validates a path.
    pub fn parse(path: &str) -> Result<FilePath, AppError> {
        let bad = |why| AppError::BadPath {
            path: path.to_string(),
            why,
        };
        if path.is_empty() {
            return Err(bad("it is empty"));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(bad("it is longer than 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        if path.contains('\\') {
            return Err(bad("backslashes are not allowed"));
        }
        if path.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        // A Windows drive prefix (`C:`) in the first segment.
        if path.as_bytes().get(1) == Some(&b':') {
            return Err(bad("drive letters are not allowed"));
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(bad("empty segments are not allowed")),
                "." | ".." => return Err(bad("'.' and '..' segments are not allowed")),
                _ => {}
            }
        }
        Ok(FilePath(path.to_string()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a segment is hidden (`.env`, `.git/…`): such files are not
    /// deployed and never served. `.well-known` is public by convention
    /// (RFC 8615).
    pub fn is_hidden(&self) -> bool {
        self.0.split('/').any(is_hidden_name)
    }

    /// Whether the file is the app's server code (under `api/`).
    pub fn is_server_code(&self) -> bool {
        self.0.split('/').next() == Some(SERVER_DIR)
    }

    /// The file extension, lower-case, without the dot.
    pub fn extension(&self) -> Option<String> {
        let name = self.0.rsplit('/').next()?;
        let (stem, ext) = name.rsplit_once('.')?;
        (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
    }
}

/// The folder of an app's server code; never served as files.
pub const SERVER_DIR: &str = "api";
/// The one hidden folder that is deployed and served (RFC 8615).
pub const WELL_KNOWN: &str = ".well-known";

/// Whether one file or folder name is hidden: starts with `.`, except
/// `.well-known`. The one rule for deploys (folders and zips) and serving.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('.') && name != WELL_KNOWN
}

/// A file path that may be served as a static file: neither server code
/// nor hidden. The static store takes only this type, so no spelling of a
/// request path can make it return `api/main.js` or `.env`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicPath(FilePath);

impl PublicPath {
    /// `path` if it may be served, else `None`.
    pub fn new(path: FilePath) -> Option<PublicPath> {
        (!path.is_hidden() && !path.is_server_code()).then_some(PublicPath(path))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "hello", "my-app", "a1", "0", &"a".repeat(63)] {
            assert!(AppName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Hello",
            "a_b",
            "a.b",
            "a b",
            "api",
            "admin",
            "www",
            "_app",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
        let err = AppName::parse("api").unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn paths() {
        for good in [
            "index.html",
            "api/main.js",
            "a/b/c.txt",
            ".well-known/x",
            "a..b",
        ] {
            assert!(FilePath::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "..",
            "a\\b",
            "..\\..\\x",
            "C:/x",
            "c:x",
            "a\0b",
            "a\nb",
        ] {
            assert!(FilePath::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            FilePath::parse("a/B.HTML").ok().and_then(|p| p.extension()),
            Some("html".into())
        );
        assert_eq!(
            FilePath::parse(".hidden").ok().and_then(|p| p.extension()),
            None
        );
    }

    #[test]
    fn public_paths_exclude_server_code_and_hidden_files() {
        let public = |p: &str| PublicPath::new(FilePath::parse(p).expect(p)).is_some();
        for yes in [
            "index.html",
            ".well-known/security.txt",
            "a/.well-known/x",
            "apix/main.js",
            "API/main.js",
            "docs/api/x.js",
            "a..b",
        ] {
            assert!(public(yes), "{yes}");
        }
        for no in [
            "api/main.js",
            "api/lib/x.js",
            "api",
            ".env",
            ".git/config",
            "a/.env",
            ".well-known/.secret",
            ".well-knownx/y",
        ] {
            assert!(!public(no), "{no}");
        }
    }
}
