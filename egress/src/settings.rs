//! The two settings that let tests run without the internet (SPEC §6):
//! `FAZT_NET_NAMESERVER=ip:port`, the DNS server egress asks, and
//! `FAZT_NET_TEST_RESOLVE=host:port=127.0.0.1:port,…`, curl-`--resolve`
//! pins whose connections — that host and port, to that address — are
//! exempt from the address rules. Read by the supervisor at start (a bad
//! value stops it with a clear error) and sent to egress.

use std::net::SocketAddr;

use fazt_ipc::msg::Pin;
use fazt_shared::net::Domain;

/// The variable naming the DNS server.
pub const NAMESERVER_VAR: &str = "FAZT_NET_NAMESERVER";
/// The variable holding test pins.
pub const TEST_RESOLVE_VAR: &str = "FAZT_NET_TEST_RESOLVE";

/// A malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// Not `ip:port`.
    #[error("{NAMESERVER_VAR}={0:?}: expected ip:port, like 127.0.0.1:5353")]
    Nameserver(String),
    /// A pin that is not `host:port=ip:port`.
    #[error("{TEST_RESOLVE_VAR}: {0:?} is not host:port=ip:port")]
    Pin(String),
    /// A pin whose host is not a domain.
    #[error("{TEST_RESOLVE_VAR}: {0}")]
    PinHost(String),
}

/// `FAZT_NET_NAMESERVER`, when set.
pub fn nameserver(value: Option<&str>) -> Result<Option<SocketAddr>, SettingError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| SettingError::Nameserver(v.to_string())),
    }
}

/// `FAZT_NET_TEST_RESOLVE`, when set.
pub fn pins(value: Option<&str>) -> Result<Vec<Pin>, SettingError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pin| {
            let bad = || SettingError::Pin(pin.to_string());
            let (from, to) = pin.split_once('=').ok_or_else(bad)?;
            let (host, port) = from.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let addr: SocketAddr = to.parse().map_err(|_| bad())?;
            let host = Domain::parse(host).map_err(|e| SettingError::PinHost(e.to_string()))?;
            Ok(Pin {
                host: host.to_string(),
                port,
                addr,
            })
        })
        .collect()
}

/// The pins as one line, for logs and `fazt workers status`.
pub fn describe(pins: &[Pin]) -> String {
    pins.iter()
        .map(|p| format!("{}:{}→{}", p.host, p.port, p.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_nameserver_parse_or_say_what_is_wrong() {
        assert_eq!(nameserver(None), Ok(None));
        assert_eq!(nameserver(Some(" ")), Ok(None));
        assert_eq!(
            nameserver(Some("127.0.0.1:5353")),
            Ok(Some("127.0.0.1:5353".parse().expect("addr")))
        );
        assert!(nameserver(Some("127.0.0.1")).is_err());
        let got = pins(Some(
            "API.Example.com:443=127.0.0.1:8443, up.test:80=[::1]:8080",
        ))
        .expect("pins");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].host, "api.example.com");
        assert_eq!(got[0].port, 443);
        assert_eq!(got[1].addr, "[::1]:8080".parse().expect("addr"));
        assert_eq!(describe(&got[..1]), "api.example.com:443→127.0.0.1:8443");
        for bad in [
            "api.example.com=127.0.0.1:1",
            "api.example.com:x=127.0.0.1:1",
            "api.example.com:443=127.0.0.1",
            "api.example.com:443",
            "10.0.0.1:443=127.0.0.1:1",
        ] {
            assert!(pins(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(pins(None), Ok(Vec::new()));
    }
}
