//! Which addresses egress may connect to (SPEC §6 step 8): public unicast
//! only. Each blocked range is one row with the document that reserves it
//! (the IANA special-purpose registries, RFC 6890 and its updates). An
//! address that is not in a row is public. The IPv6 transition forms that
//! embed an IPv4 address are refused whatever they embed; the embedded
//! address is kept for the log line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public: the range it is in and what that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The range, as written in its RFC (`10.0.0.0/8`).
    pub range: &'static str,
    /// What the range is for, and where it is reserved.
    pub what: &'static str,
    /// The IPv4 address a transition form embeds, for the log.
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.range, self.what)?;
        if let Some(v4) = self.embedded {
            write!(f, ", embedding {v4}")?;
        }
        Ok(())
    }
}

/// One IPv4 range: network, prefix length, text, purpose.
type V4Row = (u32, u8, &'static str, &'static str);

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Blocked IPv4 ranges (RFC 6890 and the IANA IPv4 special-purpose registry).
const V4_BLOCKED: &[V4Row] = &[
    (v4(0, 0, 0, 0), 8, "0.0.0.0/8", "\"this network\", RFC 791"),
    (v4(10, 0, 0, 0), 8, "10.0.0.0/8", "private use, RFC 1918"),
    (
        v4(100, 64, 0, 0),
        10,
        "100.64.0.0/10",
        "shared address space (CGN), RFC 6598",
    ),
    (v4(127, 0, 0, 0), 8, "127.0.0.0/8", "loopback, RFC 1122"),
    (
        v4(169, 254, 0, 0),
        16,
        "169.254.0.0/16",
        "link local and cloud metadata, RFC 3927",
    ),
    (
        v4(172, 16, 0, 0),
        12,
        "172.16.0.0/12",
        "private use, RFC 1918",
    ),
    (
        v4(192, 0, 0, 0),
        24,
        "192.0.0.0/24",
        "IETF protocol assignments, RFC 6890",
    ),
    (
        v4(192, 0, 2, 0),
        24,
        "192.0.2.0/24",
        "documentation (TEST-NET-1), RFC 5737",
    ),
    (
        v4(192, 88, 99, 0),
        24,
        "192.88.99.0/24",
        "6to4 relay anycast, RFC 7526",
    ),
    (
        v4(192, 168, 0, 0),
        16,
        "192.168.0.0/16",
        "private use, RFC 1918",
    ),
    (
        v4(198, 18, 0, 0),
        15,
        "198.18.0.0/15",
        "benchmarking, RFC 2544",
    ),
    (
        v4(198, 51, 100, 0),
        24,
        "198.51.100.0/24",
        "documentation (TEST-NET-2), RFC 5737",
    ),
    (
        v4(203, 0, 113, 0),
        24,
        "203.0.113.0/24",
        "documentation (TEST-NET-3), RFC 5737",
    ),
    (v4(224, 0, 0, 0), 4, "224.0.0.0/4", "multicast, RFC 5771"),
    (
        v4(240, 0, 0, 0),
        4,
        "240.0.0.0/4",
        "reserved and limited broadcast, RFC 1112, RFC 919",
    ),
];

fn in_v4(ip: u32, net: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == net & mask
}

fn in_v6(ip: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    ip & mask == net & mask
}

/// Whether an IPv4 address is public; why not, when it is not.
pub fn check_v4(ip: Ipv4Addr) -> Result<(), Blocked> {
    let bits = u32::from(ip);
    match V4_BLOCKED
        .iter()
        .find(|(net, len, ..)| in_v4(bits, *net, *len))
    {
        Some((_, _, range, what)) => Err(Blocked {
            range,
            what,
            embedded: None,
        }),
        None => Ok(()),
    }
}

/// One IPv6 range: network, prefix length, text, purpose, and how to find
/// an embedded IPv4 address.
type V6Row = (u128, u8, &'static str, &'static str, Embeds);

/// Where a transition form keeps its IPv4 address.
#[derive(Debug, Clone, Copy)]
enum Embeds {
    Nothing,
    /// In the last 32 bits (mapped, compat, NAT64).
    Last32,
    /// In bits 16–47 (6to4, RFC 3056).
    SixToFour,
    /// The client's, inverted, in the last 32 bits (Teredo, RFC 4380).
    Teredo,
}

const fn v6(segments: [u16; 8]) -> u128 {
    let mut out = 0u128;
    let mut i = 0;
    while i < 8 {
        out = (out << 16) | segments[i] as u128;
        i += 1;
    }
    out
}

/// Parts of 2001::/23 that the IANA registry marks globally reachable.
const V6_GLOBAL_IN_2001_23: &[(u128, u8)] = &[
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 1]), 128), // PCP anycast, RFC 7723
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 2]), 128), // TURN anycast, RFC 8155
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 3]), 128), // DNS-SD SRP anycast, RFC 9665
    (v6([0x2001, 3, 0, 0, 0, 0, 0, 0]), 32),  // AMT, RFC 7450
    (v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0]), 48), // AS112-v6, RFC 7535
    (v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0]), 28), // ORCHIDv2, RFC 7343
    (v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0]), 28), // DRIP DETs, RFC 9374
];

/// Blocked ranges inside 2000::/3 and the transition forms, checked
/// before the "outside 2000::/3" rule so their log line names them.
const V6_BLOCKED: &[V6Row] = &[
    (
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0]),
        96,
        "::ffff:0:0/96",
        "IPv4-mapped, RFC 4291",
        Embeds::Last32,
    ),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0]),
        96,
        "::/96",
        "IPv4-compatible (deprecated), RFC 4291",
        Embeds::Last32,
    ),
    (
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]),
        96,
        "64:ff9b::/96",
        "NAT64 well-known prefix, RFC 6052",
        Embeds::Last32,
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]),
        48,
        "64:ff9b:1::/48",
        "local-use NAT64, RFC 8215",
        Embeds::Nothing,
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0]),
        16,
        "2002::/16",
        "6to4, RFC 3056",
        Embeds::SixToFour,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0]),
        32,
        "2001::/32",
        "Teredo, RFC 4380",
        Embeds::Teredo,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
        32,
        "2001:db8::/32",
        "documentation, RFC 3849",
        Embeds::Nothing,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0]),
        23,
        "2001::/23",
        "IETF protocol assignments, RFC 2928",
        Embeds::Nothing,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]),
        20,
        "3fff::/20",
        "documentation, RFC 9637",
        Embeds::Nothing,
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0]),
        64,
        "100::/64",
        "discard-only, RFC 6666",
        Embeds::Nothing,
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]),
        7,
        "fc00::/7",
        "unique local, RFC 4193",
        Embeds::Nothing,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "fe80::/10",
        "link local, RFC 4291",
        Embeds::Nothing,
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "fec0::/10",
        "site local (deprecated), RFC 3879",
        Embeds::Nothing,
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0]),
        8,
        "ff00::/8",
        "multicast, RFC 4291",
        Embeds::Nothing,
    ),
];

/// Global unicast (RFC 4291 §2.4); everything outside it is refused.
const V6_GLOBAL_UNICAST: (u128, u8) = (v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3);

fn embedded(bits: u128, how: Embeds) -> Option<Ipv4Addr> {
    let v4 = |b: u128| Ipv4Addr::from((b & 0xffff_ffff) as u32);
    match how {
        Embeds::Nothing => None,
        Embeds::Last32 => Some(v4(bits)),
        Embeds::SixToFour => Some(v4(bits >> 80)),
        Embeds::Teredo => Some(v4(!bits)),
    }
}

/// Whether an IPv6 address is public; why not, when it is not.
pub fn check_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    let bits = u128::from(ip);
    if V6_GLOBAL_IN_2001_23
        .iter()
        .any(|(net, len)| in_v6(bits, *net, *len))
    {
        return Ok(());
    }
    if let Some((_, _, range, what, how)) = V6_BLOCKED
        .iter()
        .find(|(net, len, ..)| in_v6(bits, *net, *len))
    {
        return Err(Blocked {
            range,
            what,
            embedded: embedded(bits, *how),
        });
    }
    let (net, len) = V6_GLOBAL_UNICAST;
    if !in_v6(bits, net, len) {
        return Err(Blocked {
            range: "outside 2000::/3",
            what: "not global unicast, RFC 4291",
            embedded: None,
        });
    }
    Ok(())
}

/// Whether an address is public; why not, when it is not.
pub fn check(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of SPEC §6 step 8, at its edges, and what lies beside it.
    #[test]
    fn every_blocked_range_and_its_neighbours() {
        let blocked = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "2002:0808:0808::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
            "8000::1",
            "1000::1",
        ];
        for a in blocked {
            let ip: IpAddr = a.parse().expect(a);
            assert!(check(ip).is_err(), "{a} must be blocked");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2001:1::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2003::1",
            "3ffe::1",
            "3fff:1000::1",
        ];
        for a in public {
            let ip: IpAddr = a.parse().expect(a);
            assert_eq!(check(ip), Ok(()), "{a} is public");
        }
    }

    #[test]
    fn transition_forms_name_what_they_embed() {
        let embedded = |a: &str| {
            check(a.parse().expect(a))
                .err()
                .and_then(|b| b.embedded)
                .map(|v4| v4.to_string())
        };
        assert_eq!(
            embedded("::ffff:169.254.169.254").as_deref(),
            Some("169.254.169.254")
        );
        assert_eq!(embedded("::10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(embedded("64:ff9b::7f00:1").as_deref(), Some("127.0.0.1"));
        assert_eq!(embedded("2002:a00:1::").as_deref(), Some("10.0.0.1"));
        // Teredo keeps the client's address inverted.
        assert_eq!(
            embedded("2001:0:4136:e378:8000:63bf:3fff:fdd2").as_deref(),
            Some("192.0.2.45")
        );
        let b = check("::ffff:8.8.8.8".parse().expect("ip")).expect_err("mapped");
        assert_eq!(b.range, "::ffff:0:0/96");
        assert!(b.to_string().contains("embedding 8.8.8.8"), "{b}");
    }
}
