//! The admin token (SPEC §9): created at first start, stored only as a
//! SHA-256 hash, written once to `<data>/admin.token` with mode 0600.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};
use base64::Engine;
use fazt_shared::store::settings::{self, ADMIN_TOKEN_HASH};
use fazt_shared::{DataDir, Store};
use sha2::{Digest, Sha256};

/// Hash of the admin token; the token itself is never kept in memory.
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    fn from_hex(hex: &str) -> Option<TokenHash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(TokenHash(out))
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `presented` is the token, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let other = TokenHash::of(presented);
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Loads the token hash, creating the token at first start.
pub fn ensure(store: &Store, data: &DataDir) -> Result<TokenHash> {
    let conn = store.conn()?;
    if let Some(hex) = settings::get(&conn, ADMIN_TOKEN_HASH)? {
        if let Some(hash) = TokenHash::from_hex(&hex) {
            if !data.admin_token_path().exists() {
                tracing::warn!(
                    path = %data.admin_token_path().display(),
                    "admin token file is missing; the admin API keeps accepting the original token"
                );
            }
            return Ok(hash);
        }
        tracing::warn!("stored admin token hash is malformed; creating a new token");
    }

    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let token = format!(
        "fazt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let path = data.admin_token_path();
    // The file is written before the hash is stored: a crash in between
    // leaves no hash, so the next start simply makes a new token.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()?;
    let hash = TokenHash::of(&token);
    settings::set(&conn, ADMIN_TOKEN_HASH, &hash.to_hex())?;
    if std::io::stdout().is_terminal() {
        println!(
            "admin token (shown once; also in {}): {token}",
            path.display()
        );
    }
    tracing::info!(path = %path.display(), "admin token created");
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_and_verified_by_hash() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = DataDir::new(tmp.path().join("d"));
        let store = Store::open(&data, 2).expect("store");
        let first = ensure(&store, &data).expect("create");
        let token = std::fs::read_to_string(data.admin_token_path()).expect("token file");
        let token = token.trim();
        assert!(token.starts_with("fazt_") && token.len() > 40);
        assert!(first.verify(token));
        assert!(!first.verify("fazt_wrong"));
        assert!(!first.verify(""));
        let second = ensure(&store, &data).expect("load");
        assert!(second.verify(token), "token survives a restart");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.admin_token_path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only the hash is stored.
        let stored = settings::get(&store.conn().expect("conn"), ADMIN_TOKEN_HASH)
            .expect("get")
            .expect("set");
        assert!(!stored.contains(token));
        assert_eq!(
            TokenHash::from_hex(&stored).map(|h| h.to_hex()),
            Some(stored)
        );
    }
}
