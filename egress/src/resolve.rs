//! Step 8 of SPEC §6: the host's addresses, every one of them public, or
//! the call is refused. The connection later goes to one of exactly these
//! addresses (no second lookup a rebinding DNS server could answer
//! differently). `/etc/hosts` is never read; a test pin (host and port
//! both) is the only exemption.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fazt_ipc::msg::Pin;
use fazt_shared::net::Domain;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::addr;
use crate::refusal::Reason;

/// How long one DNS question may take (the call's timeout bounds it too).
const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a call may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Checked public addresses, to try in turn.
    Public(Vec<SocketAddr>),
    /// A test pin: this address only, exempt from the address rules.
    Pinned(SocketAddr),
}

impl Resolved {
    /// The addresses to try, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        match self {
            Resolved::Public(a) => a.clone(),
            Resolved::Pinned(a) => vec![*a],
        }
    }
}

/// A failure to build the resolver.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct ResolverError(String);

/// The resolver egress uses, with the test pins.
pub struct Resolver {
    dns: TokioResolver,
    pins: Vec<Pin>,
}

impl Resolver {
    /// A resolver asking `nameserver` (else the system's servers), never
    /// `/etc/hosts`.
    pub fn new(nameserver: Option<SocketAddr>, pins: Vec<Pin>) -> Result<Resolver, ResolverError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match nameserver {
            Some(ns) => {
                let mut server = NameServerConfig::udp_and_tcp(ns.ip());
                for c in &mut server.connections {
                    c.port = ns.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider).map_err(|e| ResolverError(e.to_string()))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.use_hosts_file = ResolveHosts::Never;
        // Both families: every answer is checked, not only the first kind.
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = DNS_TIMEOUT;
        opts.attempts = 1;
        let dns = builder.build().map_err(|e| ResolverError(e.to_string()))?;
        Ok(Resolver { dns, pins })
    }

    /// The addresses `host:port` may connect to.
    pub async fn resolve(&self, host: &Domain, port: u16) -> Result<Resolved, Reason> {
        if let Some(pin) = self
            .pins
            .iter()
            .find(|p| p.host == host.as_str() && p.port == port)
        {
            return Ok(Resolved::Pinned(pin.addr));
        }
        // The trailing dot makes the name absolute: no search domains.
        let answer = self
            .dns
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|_| Reason::Unresolvable(host.to_string()))?;
        let ips: Vec<IpAddr> = answer.iter().collect();
        check_all(host, &ips)?;
        Ok(Resolved::Public(
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        ))
    }
}

/// Every address must be public; none at all is a failure too.
pub fn check_all(host: &Domain, ips: &[IpAddr]) -> Result<(), Reason> {
    if ips.is_empty() {
        return Err(Reason::Unresolvable(host.to_string()));
    }
    for ip in ips {
        if let Err(blocked) = addr::check(*ip) {
            return Err(Reason::Address {
                host: host.clone(),
                ip: *ip,
                range: blocked,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_private_answer_among_public_ones_refuses_the_call() {
        let host = Domain::parse("api.example.com").expect("domain");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(check_all(&host, &[ip("93.184.216.34")]), Ok(()));
        let mixed = [ip("93.184.216.34"), ip("10.0.0.1")];
        assert!(matches!(
            check_all(&host, &mixed),
            Err(Reason::Address { ip: a, .. }) if a == ip("10.0.0.1")
        ));
        let v6 = [ip("2606:4700::1"), ip("::ffff:127.0.0.1")];
        assert!(matches!(check_all(&host, &v6), Err(Reason::Address { .. })));
        assert_eq!(
            check_all(&host, &[]),
            Err(Reason::Unresolvable("api.example.com".into()))
        );
    }
}
