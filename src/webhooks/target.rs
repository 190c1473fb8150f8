//! Where webhooks may be sent. An admin key chooses the URL, and the server POSTs to it
//! from inside the network it runs in: without this check the feature reaches cloud
//! metadata (`169.254.169.254`), databases on loopback and the server's own admin
//! endpoints, and the delivery log tells an open port from a closed one.
//!
//! By default only public unicast addresses are targets. The check runs at
//! registration (a URL naming or resolving to anything else is refused) and again on
//! every attempt, on the addresses actually connected to: the worker's client resolves
//! names through [`CheckedResolver`], which drops refused addresses before the
//! connector sees them, so a name that changes its answer between the check and the
//! connection (DNS rebinding) cannot slip through. IP-literal hosts never reach a
//! resolver (the connector parses them itself), so the worker checks them with
//! [`literal_host`] first.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use super::NewSubscription;
use crate::config::{ConfigError, Vars};
use crate::domain::event::FieldError;

pub const ALLOW_PRIVATE_VAR: &str = "WEBHOOK_ALLOW_PRIVATE_TARGETS";
pub const ALLOWED_VAR: &str = "WEBHOOK_ALLOWED_TARGETS";

/// What the delivery log says of a refused attempt. Deliberately the same whatever the
/// address, port or reason: the log must not become a map of the network.
pub const REFUSED: &str = "target refused: resolves to a non-public address";

/// How long registration waits for a name to resolve. A name that does not answer in
/// time is accepted like one that does not resolve: the delivery-time check decides.
const REGISTRATION_LOOKUP: Duration = Duration::from_secs(2);

/// Which addresses deliveries may go to (`WEBHOOK_ALLOW_PRIVATE_TARGETS`,
/// `WEBHOOK_ALLOWED_TARGETS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Every address is a target: for deployments whose receivers are internal and
    /// whose admins are trusted with the network.
    pub allow_private: bool,
    /// Non-public ranges allowed anyway, e.g. the one subnet of an internal receiver.
    pub allowed: Vec<Cidr>,
}

impl TargetPolicy {
    pub fn from_vars(vars: &Vars) -> Result<TargetPolicy, ConfigError> {
        let allowed = match vars.get(ALLOWED_VAR) {
            None => Vec::new(),
            Some(v) => parse_allowed(v).map_err(|p| {
                ConfigError::new(
                    ALLOWED_VAR,
                    format!("{p}: expected addresses or CIDR ranges separated by commas"),
                )
            })?,
        };
        Ok(TargetPolicy {
            allow_private: vars.flag(ALLOW_PRIVATE_VAR, false)?,
            allowed,
        })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_private || is_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }
}

/// An address range, `10.1.2.0/24` or `fd00:1::/48`; a bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net, self.prefix),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8, which is how addresses
        // are compared (see `canonical`).
        Ok(match net {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    net: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Cidr { net, prefix },
            },
            _ => Cidr { net, prefix },
        })
    }
}

/// Parses `WEBHOOK_ALLOWED_TARGETS`: addresses or CIDR ranges separated by commas.
/// Host names are not taken: what is checked is the address connected to.
pub fn parse_allowed(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cidr::from_str)
        .collect()
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address: a
/// dual-stack socket connecting to it reaches the IPv4 host.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// IPv4 ranges that are not public unicast (the IANA special-purpose registry, RFC 6890
/// and successors), in address order.
const V4_NOT_PUBLIC: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8), // "this network"; 0.0.0.0 reaches loopback
    (Ipv4Addr::new(10, 0, 0, 0), 8), // private
    (Ipv4Addr::new(100, 64, 0, 0), 10), // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local: cloud metadata services
    (Ipv4Addr::new(172, 16, 0, 0), 12), // private
    (Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24), // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24), // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, and 255.255.255.255 broadcast
];

/// Ranges inside global unicast (2000::/3) that are not public. Everything outside
/// 2000::/3 is refused anyway: unspecified, loopback, IPv4-compatible `::a.b.c.d`,
/// unique-local fc00::/7, link-local fe80::/10, site-local, multicast ff00::/8, the
/// discard prefix, local-use NAT64 64:ff9b:1::/48.
const V6_NOT_PUBLIC: &[(Ipv6Addr, u8)] = &[
    // IETF protocol assignments: Teredo 2001::/32 (which hides an IPv4 address),
    // benchmarking 2001:2::/48, ORCHID.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation (RFC 9637)
];

/// Whether `ip` is a public unicast address, one the server may send webhooks to by
/// default. IPv6 forms that carry an IPv4 address to connect to (IPv4-mapped, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => {
                in_v6(v6, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
                    && !V6_NOT_PUBLIC.iter().any(|(net, p)| in_v6(v6, *net, *p))
            }
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !V4_NOT_PUBLIC.iter().any(|(net, p)| in_v4(ip, *net, *p))
}

/// The IPv4 address an IPv6 address leads to, for the forms that embed one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7])); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2])); // 6to4
    }
    None
}

/// The address of a URL whose host is an IP literal (after the URL parser's
/// normalisation: `http://2130706433/`, `http://0x7f.1/`, `http://127.1/` all have the
/// host 127.0.0.1). Such hosts are connected to without any resolver.
pub fn literal_host(url: &Url) -> Option<IpAddr> {
    // The parser gives IPv6 hosts in brackets; a domain never parses as an address
    // (one that looks numeric is an IPv4 address to the parser, or an invalid URL).
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn refusal() -> FieldError {
    FieldError::new(
        "url",
        format!(
            "resolves to a non-public address (loopback, private, link-local, unique-local, \
             multicast or reserved); set {ALLOW_PRIVATE_VAR}=true, or list the address in \
             {ALLOWED_VAR}, to allow internal receivers"
        ),
    )
}

/// The registration check of a subscription's URL (one [`super::validate`] accepted):
/// an IP literal is judged as it is; a name is resolved and refused when any of its
/// addresses is refused. A name that does not resolve now (or not within
/// [`REGISTRATION_LOOKUP`]) is accepted: it may be set up later, and every attempt is
/// checked again on the addresses it connects to.
pub async fn check_registration(url: &str, policy: &TargetPolicy) -> Result<(), FieldError> {
    if policy.allow_private {
        return Ok(());
    }
    let Ok(url) = Url::parse(url) else {
        return Ok(()); // not a URL: validate() names that
    };
    let addrs: Vec<IpAddr> = match (literal_host(&url), url.host_str()) {
        (Some(ip), _) => vec![ip],
        (None, Some(name)) => {
            let port = url.port_or_known_default().unwrap_or(0);
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(REGISTRATION_LOOKUP, lookup).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                Ok(Err(_)) | Err(_) => return Ok(()),
            }
        }
        (None, None) => return Ok(()),
    };
    if addrs.iter().all(|ip| policy.permits(*ip)) {
        Ok(())
    } else {
        Err(refusal())
    }
}

/// [`check_registration`] for each subscription of `WEBHOOKS_PATH`, naming the entry
/// as the file's other errors do (`webhooks[1]: url ...`).
pub async fn check_file(subs: &[NewSubscription], policy: &TargetPolicy) -> Result<(), String> {
    for (i, sub) in subs.iter().enumerate() {
        if let Err(e) = check_registration(&sub.url, policy).await {
            return Err(format!("webhooks[{i}]: {} {}", e.field, e.message));
        }
    }
    Ok(())
}

/// The error [`CheckedResolver`] fails a connection with; the worker finds it in the
/// request's error chain ([`is_refusal`]) and records [`REFUSED`].
#[derive(Debug, thiserror::Error)]
#[error("{REFUSED}")]
pub struct Refused;

/// Whether a request failed because its target was refused.
pub fn is_refusal(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<Refused>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Resolves names for the delivery client and keeps only the addresses the policy
/// permits, so the connection goes to a checked address (the connector connects to what
/// the resolver returns, nothing else). No address left: [`Refused`].
pub struct CheckedResolver {
    policy: Arc<TargetPolicy>,
}

impl CheckedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> CheckedResolver {
        CheckedResolver { policy }
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on each address.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if found.is_empty() {
                return Err(format!("{name} has no address").into());
            }
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Refused) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_public_unless_allowed() {
        let policy = |pairs: &[(&str, &str)]| {
            TargetPolicy::from_vars(&Vars::new(&crate::config::test_vars(pairs)))
        };
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let c = policy(&[]).unwrap();
        assert_eq!(c, TargetPolicy::default());
        assert!(!c.permits(loopback));
        let c = policy(&[(ALLOW_PRIVATE_VAR, "true")]).unwrap();
        assert!(c.permits(loopback));
        let c = policy(&[(ALLOWED_VAR, "127.0.0.0/8,fd00::/8")]).unwrap();
        assert!(c.permits(loopback));
        assert_eq!(c.allowed.len(), 2);
        for (var, value) in [
            (ALLOW_PRIVATE_VAR, "sometimes"),
            (ALLOWED_VAR, "10.0.0.0/8,intranet.local"),
        ] {
            let e = policy(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s} is an address"))
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let not_public = [
            // IPv4: every special-purpose range, at its edges.
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6.
            "::",
            "::1",
            "::127.0.0.1", // IPv4-compatible (deprecated)
            "::8.8.8.8",   // IPv4-compatible, even of a public address
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",     // NAT64 of 10.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::808:808", // local-use NAT64
            "2002:7f00:1::",      // 6to4 of 127.0.0.1
            "2002:a00:1::1",      // 6to4 of 10.0.0.1
            "2002:c0a8:101::",    // 6to4 of 192.168.1.1
            "100::1",             // discard-only
            "2001::1",            // Teredo
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1", // benchmarking
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1", // site-local (deprecated)
            "ff02::1",
            "ff0e::1",
        ];
        for a in not_public {
            assert!(!is_public(ip(a)), "{a} must not be public");
            assert!(!TargetPolicy::default().permits(ip(a)), "{a} is refused");
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
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81a::200e",
            "2001:200::1", // just past 2001::/23
            "::ffff:8.8.8.8",
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
            "2002:808:808::1",  // 6to4 of 8.8.8.8
        ];
        for a in public {
            assert!(is_public(ip(a)), "{a} must be public");
            assert!(TargetPolicy::default().permits(ip(a)));
        }
    }

    /// The URL parser reads every numeric spelling of an IPv4 host as the address,
    /// so the check sees the address the connector will connect to.
    #[test]
    fn numeric_hosts_are_read_as_the_address_they_spell() {
        let cases = [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0177.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://0x0a.0.0.1/", "10.0.0.1"),
            ("http://3232235777/", "192.168.1.1"),
            (
                "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://[::1]:22/", "::1"),
            ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("http://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1"),
        ];
        let policy = TargetPolicy::default();
        for (url, want) in cases {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(literal_host(&parsed), Some(ip(want)), "{url}");
            assert!(!policy.permits(ip(want)), "{url} is refused");
        }
        // Names stay names, for the resolver to judge; numeric-looking ones that are
        // not addresses are not URLs at all.
        for url in [
            "http://localhost/",
            "http://hooks.example.com/x",
            "http://a.0x7g/",
        ] {
            assert_eq!(literal_host(&Url::parse(url).unwrap()), None, "{url}");
        }
        for url in ["http://1.2.3.4.5/", "http://256.0.0.1/", "http://foo.0x7f/"] {
            assert!(Url::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn the_settings_open_everything_or_the_listed_ranges() {
        let open = TargetPolicy {
            allow_private: true,
            allowed: vec![],
        };
        for a in ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "8.8.8.8"] {
            assert!(open.permits(ip(a)), "{a}");
        }
        let listed = TargetPolicy {
            allow_private: false,
            allowed: parse_allowed(" 10.1.2.0/24, fd00:1::/48,127.0.0.1 ,::ffff:192.168.7.0/120")
                .unwrap(),
        };
        for a in [
            "10.1.2.0",
            "10.1.2.255",
            "::ffff:10.1.2.3",
            "fd00:1::5",
            "fd00:1:0:ffff::1",
            "127.0.0.1",
            "192.168.7.9",
            "8.8.8.8",
        ] {
            assert!(listed.permits(ip(a)), "{a} is listed (or public)");
        }
        for a in [
            "10.1.3.0",
            "fd00:2::1",
            "127.0.0.2",
            "::1",
            "192.168.8.1",
            "169.254.169.254",
        ] {
            assert!(!listed.permits(ip(a)), "{a} is not listed");
        }
        assert_eq!(parse_allowed("").unwrap(), vec![]);
        assert!(parse_allowed("0.0.0.0/0").unwrap()[0].contains(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "localhost",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            let e = parse_allowed(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn registration_refuses_what_it_resolves_to_and_accepts_unknown_names() {
        let policy = TargetPolicy::default();
        for url in [
            "http://127.0.0.1:6379/",
            "http://2130706433/",
            "http://[::1]:22/",
            "http://localhost:8080/hook", // from /etc/hosts: no DNS query
        ] {
            let e = check_registration(url, &policy).await.unwrap_err();
            assert_eq!(e.field, "url");
            assert!(e.message.contains(ALLOW_PRIVATE_VAR), "{}", e.message);
        }
        // `.invalid` never resolves (RFC 6761): checked again at every attempt.
        assert_eq!(
            check_registration("https://hooks.invalid/x", &policy).await,
            Ok(())
        );
        assert_eq!(
            check_registration("https://8.8.8.8/", &policy).await,
            Ok(())
        );
        let open = TargetPolicy {
            allow_private: true,
            allowed: vec![],
        };
        assert_eq!(check_registration("http://127.0.0.1/", &open).await, Ok(()));
        let subs = [
            NewSubscription {
                url: "https://8.8.4.4/a".into(),
                secret: String::new(),
                events: vec![],
                rank: None,
            },
            NewSubscription {
                url: "http://[::ffff:127.0.0.1]/".into(),
                secret: String::new(),
                events: vec![],
                rank: None,
            },
        ];
        let e = check_file(&subs, &policy).await.unwrap_err();
        assert!(e.starts_with("webhooks[1]: url resolves to"), "{e}");
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_permitted_addresses() {
        let refused = CheckedResolver::new(Arc::new(TargetPolicy::default()));
        let e = match refused.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(is_refusal(e.as_ref()), "{e}");
        assert_eq!(e.to_string(), REFUSED);
        let open = CheckedResolver::new(Arc::new(TargetPolicy {
            allow_private: false,
            allowed: parse_allowed("127.0.0.0/8").unwrap(),
        }));
        let addrs: Vec<SocketAddr> = match open.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.ip().is_ipv4()),
            "{addrs:?}"
        );
    }
}
