//! What the bench tools share: the loopback-only target check (tests and
//! benchmarks never send traffic off this machine) and `--flag value`
//! parsing.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

/// Parses `authority` as IP:PORT and refuses anything not on loopback.
pub fn loopback_target(authority: &str, tool: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = authority.parse().context("the target must be IP:PORT")?;
    if !addr.ip().is_loopback() {
        bail!("{tool} only sends traffic to loopback addresses");
    }
    Ok(addr)
}

/// The `--flag value` pairs left in `args`; a flag without a value is an error.
pub fn flag_pairs(mut args: impl Iterator<Item = String>) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_pass() {
        assert!(loopback_target("127.0.0.1:80", "t").is_ok());
        assert!(loopback_target("[::1]:80", "t").is_ok());
        assert!(loopback_target("10.0.0.1:80", "t").is_err());
        assert!(loopback_target("localhost:80", "t").is_err());
    }

    #[test]
    fn a_flag_needs_its_value() {
        let args = ["--a", "1", "--b"].map(String::from).into_iter();
        assert!(flag_pairs(args).is_err());
        let args = ["--a", "1"].map(String::from).into_iter();
        assert_eq!(
            flag_pairs(args).expect("pairs"),
            [("--a".into(), "1".into())]
        );
    }
}
