//! Which URLs may be webhook targets: the scheme rules of development and production
//! mode, the address ranges production refuses, and the link-local and cloud metadata
//! addresses every mode refuses (SSRF protection).
//!
//! The same address check serves endpoint creation and, later, the delivery connection
//! itself (after DNS resolution), so a host that resolves to a private address is refused
//! whenever it does. An IPv6 address that embeds an IPv4 one (mapped, compatible, 6to4,
//! Teredo, NAT64) reaches that IPv4 address, so it is judged by it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use url::{Host, Url};

use std::collections::HashMap;

use crate::config::{AllowedTarget, Config, RunMode, parse_resolve};

/// The longest webhook URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// Decides whether a URL may receive webhooks from this server.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    mode: RunMode,
    allowed: Vec<AllowedTarget>,
    /// `delivery.resolve`: host names with fixed addresses.
    resolve: HashMap<String, IpAddr>,
}

impl TargetPolicy {
    /// The policy of the configured run mode and allow-list.
    pub fn new(config: &Config) -> Self {
        let allowed = config.delivery.allowed_private_targets.iter().filter_map(|t| AllowedTarget::parse(t)).collect();
        let resolve = config.delivery.resolve.iter().filter_map(|e| parse_resolve(e)).collect();
        Self { mode: config.server.mode, allowed, resolve }
    }

    /// This policy with development mode's scheme rules: what a `stile listen` target
    /// (`forward_to`, the CLI's local app, usually `http://localhost:...`) is checked
    /// against, whatever mode the server runs in. The server never connects to it.
    pub fn for_development(&self) -> TargetPolicy {
        TargetPolicy { mode: RunMode::Development, ..self.clone() }
    }

    /// Checks a URL as given by a user, without DNS: length, syntax, scheme, literal
    /// link-local and metadata addresses, and in production mode literal private addresses
    /// and `localhost`. Returns the parsed URL or a sentence saying what is wrong.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(format!("`url` must be at most {MAX_URL_CHARS} characters."));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("`url` may not contain spaces or control characters.".into());
        }
        let url = Url::parse(raw).map_err(|err| format!("`url` is not a valid absolute URL ({err})."))?;
        let host = url.host().ok_or_else(|| "`url` must have a host.".to_string())?;
        match (url.scheme(), self.mode) {
            ("https", _) => {}
            ("http", RunMode::Development) if is_loopback_host(&host) => {}
            ("http", RunMode::Development) => {
                return Err("`url` must use https:// (http:// is only accepted for loopback hosts like localhost or 127.0.0.1 in development mode).".into());
            }
            ("http", RunMode::Production) => {
                return Err("`url` must use https:// (this server runs in production mode).".into());
            }
            (other, _) => return Err(format!("`url` must use https://, not {other}://.")),
        }
        let literal = match host {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(name) => {
                if self.mode == RunMode::Production && is_localhost_name(name) && !self.host_allowed(name) {
                    return Err(private_target_message(name));
                }
                return Ok(url);
            }
        };
        if !self.address_allowed(None, literal) {
            return Err(refused_message(&host.to_string(), literal));
        }
        Ok(url)
    }

    /// In production mode, resolves the URL's host name and refuses it if any address it
    /// resolves to is refused. Blocking (DNS): call it off the async runtime. A name that
    /// does not resolve now is accepted; the connect-time check still guards delivery.
    /// Development mode resolves nothing here (a staging box may create endpoints on names
    /// its DNS does not know yet): there the connect-time check alone refuses names that
    /// resolve to link-local or metadata addresses.
    pub fn check_resolved(&self, url: &Url) -> Result<(), String> {
        if self.mode != RunMode::Production {
            return Ok(());
        }
        let Some(Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        if self.host_allowed(name) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match self.fixed_address(name) {
            Some(ip) => vec![ip],
            None => match (name, port).to_socket_addrs() {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(_) => return Ok(()),
            },
        };
        for ip in addrs {
            if !self.address_allowed(Some(name), ip) {
                return Err(refused_message(&format!("{name} ({ip})"), ip));
            }
        }
        Ok(())
    }

    /// The address `delivery.resolve` gives this host name, if any.
    pub fn fixed_address(&self, host: &str) -> Option<IpAddr> {
        self.resolve.get(&host.trim_end_matches('.').to_ascii_lowercase()).copied()
    }

    /// Whether a connection to `ip` (reached through host name `host`, if any) is allowed:
    /// never to a link-local or metadata address; in development mode to anything else;
    /// in production mode to a forbidden address only if the allow-list names its host or
    /// its network.
    pub fn address_allowed(&self, host: Option<&str>, ip: IpAddr) -> bool {
        if is_link_local_or_metadata(ip) {
            return false;
        }
        if self.mode == RunMode::Development || !is_forbidden(ip) {
            return true;
        }
        host.is_some_and(|h| self.host_allowed(h)) || self.network_allowed(ip)
    }

    /// Whether the allow-list's networks take in the forbidden address `ip`. An IPv6 form
    /// of IPv4 addresses is also taken in when each address it embeds is public or taken in
    /// itself, so `10.0.0.0/8` allows `::ffff:10.1.2.3` and `64:ff9b::a01:203` alike; one
    /// forbidden for its own sake (unique local, the local-use NAT64 prefix) needs its own
    /// IPv6 network listed.
    fn network_allowed(&self, ip: IpAddr) -> bool {
        let listed =
            |ip: IpAddr| self.allowed.iter().any(|a| matches!(a, AllowedTarget::Network(net) if net.contains(&ip)));
        match ip {
            _ if listed(ip) => true,
            IpAddr::V4(_) => false,
            IpAddr::V6(v6) => {
                !is_forbidden_v6_itself(v6)
                    && embedded_ipv4(v6).all(|v4| !is_forbidden_v4(v4) || listed(IpAddr::V4(v4)))
            }
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| matches!(a, AllowedTarget::Host(h) if h.eq_ignore_ascii_case(host)))
    }
}

/// Why `ip` (written in the URL as `what`) is refused, in words that say whether the
/// allow-list can help.
fn refused_message(what: &str, ip: IpAddr) -> String {
    let never = is_link_local_or_metadata(ip);
    // Name the IPv4 address an IPv6 form is refused for: its spelling hides it.
    let embedded = match ip {
        IpAddr::V6(v6) if never => embedded_ipv4(v6).find(|v4| v4.is_link_local()),
        IpAddr::V6(v6) if !is_forbidden_v6_itself(v6) => embedded_ipv4(v6).find(|v4| is_forbidden_v4(*v4)),
        _ => None,
    };
    let what = match embedded {
        Some(v4) => format!("{what}, an IPv6 form of {v4}"),
        None => what.to_string(),
    };
    if never {
        format!(
            "`url` points to a link-local or cloud metadata address ({what}), which is never a webhook target, in any mode; `delivery.allowed_private_targets` cannot allow it."
        )
    } else {
        private_target_message(&what)
    }
}

fn private_target_message(what: &str) -> String {
    format!(
        "`url` points to a private, loopback or reserved address ({what}), which production mode refuses. Add it to `delivery.allowed_private_targets` if this is intended."
    )
}

fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => is_localhost_name(name),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// AWS's instance metadata service over IPv6 (the IPv4 one is link-local, 169.254.169.254).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Alibaba Cloud's instance metadata service (outside link-local, in carrier-grade NAT).
const ALIBABA_METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// The scheme, host and port of `url` (what a receiver is), if it parses.
pub fn origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let url = url::Url::parse(url).ok()?;
    Some((url.scheme().to_string(), url.host_str()?.to_ascii_lowercase(), url.port_or_known_default()))
}

/// Whether an address is link-local (169.254.0.0/16, fe80::/10: where cloud metadata
/// services answer) or a cloud metadata address, itself or embedded in IPv6. No webhook is
/// ever meant for one, so every mode refuses it and the allow-list cannot allow it: a
/// staging box's credentials are as worth stealing as production's.
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_link_local_or_metadata_v4(v4),
        IpAddr::V6(v6) => {
            v6.is_unicast_link_local() || v6 == AWS_METADATA_V6 || embedded_ipv4(v6).any(is_link_local_or_metadata_v4)
        }
    }
}

fn is_link_local_or_metadata_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == ALIBABA_METADATA_V4
}

/// Whether an address is one no public webhook target can have: loopback, private,
/// link-local (cloud metadata), carrier-grade NAT, multicast, reserved, and the IPv6
/// forms that embed such addresses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6_itself(v6) || embedded_ipv4(v6).any(is_forbidden_v4),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18/15
        || a >= 240 // reserved, 240/4
}

/// Whether an IPv6 address is forbidden for its own sake, leaving aside the IPv4
/// addresses it may embed.
fn is_forbidden_v6_itself(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (segments[0] & 0xffc0) == 0xfec0 // deprecated site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        // Local-use NAT64 (RFC 8215): translated by the operator's own gateway into the
        // operator's own network, so private as a whole, whatever it embeds.
        || segments[..3] == [0x64, 0xff9b, 1]
}

/// The IPv4 addresses an IPv6 address carries and may reach through a translator or a
/// tunnel: IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`, but `::` and `::1`
/// are themselves) in the last 32 bits; NAT64 `64:ff9b::/96` likewise; 6to4 `2002::/16`
/// in bits 16..48; Teredo `2001::/32` both its server (bits 32..64) and its client (the
/// last 32 bits, inverted). Local-use NAT64 `64:ff9b:1::/48` yields every place RFC 6052
/// may put the address for the prefix lengths it allows (/48, /56, /64, /96): which one a
/// gateway uses is its operator's choice, and a link-local address in any of them is
/// refused.
fn embedded_ipv4(ip: Ipv6Addr) -> impl Iterator<Item = Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let last = v4(s[6], s[7]);
    let found: [Option<Ipv4Addr>; 4] = match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => [Some(last), None, None, None], // mapped
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => [None; 4], // unspecified and loopback, not compatible forms
        [0, 0, 0, 0, 0, 0, _, _] => [Some(last), None, None, None], // compatible
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => [Some(last), None, None, None], // well-known NAT64
        // RFC 6052 §2.2 skips bits 64..72 (octet 8), so the address may straddle them.
        [0x64, 0xff9b, 1, ..] => [
            Some(Ipv4Addr::new(o[6], o[7], o[9], o[10])),
            Some(Ipv4Addr::new(o[7], o[9], o[10], o[11])),
            Some(Ipv4Addr::new(o[9], o[10], o[11], o[12])),
            Some(last),
        ],
        [0x2002, hi, lo, ..] => [Some(v4(hi, lo)), None, None, None], // 6to4
        [0x2001, 0, hi, lo, ..] => [Some(v4(hi, lo)), Some(Ipv4Addr::from(!u32::from(last))), None, None], // Teredo
        _ => [None; 4],
    };
    found.into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: RunMode, allowed: &[&str]) -> TargetPolicy {
        let mut config = Config::default();
        config.server.mode = mode;
        config.delivery.allowed_private_targets = allowed.iter().map(|s| s.to_string()).collect();
        TargetPolicy::new(&config)
    }

    #[test]
    fn development_allows_http_only_for_loopback() {
        let dev = policy(RunMode::Development, &[]);
        for ok in [
            "http://localhost:3000/webhooks",
            "http://127.0.0.1:9/x",
            "http://[::1]:80/",
            "http://app.localhost/",
            "https://example.com/hook",
            "https://10.0.0.1/hook",
        ] {
            assert!(dev.check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "http://10.0.0.1/",
            "ftp://localhost/",
            "localhost:3000",
            "https://",
            "https://example.com/\0",
            "https://example.com/a b",
            " https://example.com/",
        ] {
            assert!(dev.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn production_refuses_http_and_private_literals_unless_allowed() {
        let prod = policy(RunMode::Production, &["10.1.0.0/16", "hooks.localhost"]);
        assert!(prod.check_url("https://example.com/hook").is_ok());
        assert!(prod.check_url("https://10.1.2.3/hook").is_ok());
        assert!(prod.check_url("https://hooks.localhost/hook").is_ok());
        for bad in [
            "http://localhost/",
            "https://localhost/",
            "https://127.0.0.1/",
            "https://10.2.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00::1]/",
        ] {
            assert!(prod.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn production_checks_what_a_name_resolves_to() {
        let prod = policy(RunMode::Production, &[]);
        // `localhost` resolves through the hosts file, not the network.
        let url = Url::parse("https://localhost:8443/").unwrap();
        assert!(prod.check_resolved(&url).is_err());
        assert!(policy(RunMode::Development, &[]).check_resolved(&url).is_ok());
    }

    #[test]
    fn urls_longer_than_the_limit_are_refused() {
        let dev = policy(RunMode::Development, &[]);
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(dev.check_url(&long).unwrap_err().contains("2048"));
    }

    #[test]
    fn forbidden_ranges_cover_private_metadata_and_embedded_forms() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::101:101"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Each IPv6 form embedding IPv4, as (the form with a private address, the same form
    /// with a public one). Teredo is written with a public server and the client inverted:
    /// `80ff:fffe` is 127.0.0.1 and `f7f7:f7f7` is 8.8.8.8.
    const EMBEDDING_FORMS: [(&str, &str); 8] = [
        ("::ffff:127.0.0.1", "::ffff:8.8.8.8"),
        ("::127.0.0.1", "::8.8.8.8"),
        ("::7f00:1", "::808:808"),
        ("2002:a00:1::1", "2002:808:808::1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"),
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "2001:0:808:808:8000:63bf:f7f7:f7f7"),
        ("64:ff9b::7f00:1", "64:ff9b::808:808"),
        ("64:ff9b::c0a8:101", "64:ff9b::8.8.4.4"),
    ];

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_the_address_they_embed() {
        let prod = policy(RunMode::Production, &[]);
        for (private, public) in EMBEDDING_FORMS {
            assert!(prod.check_url(&format!("https://[{private}]/hook")).is_err(), "{private}");
            assert!(prod.check_url(&format!("https://[{public}]/hook")).is_ok(), "{public}");
            assert!(!prod.address_allowed(Some("hooks.example"), private.parse().unwrap()), "{private}");
            assert!(prod.address_allowed(Some("hooks.example"), public.parse().unwrap()), "{public}");
        }
        // `::` and `::1` are not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1, but are
        // refused for what they are; local-use NAT64 is private whatever it embeds.
        for ip in ["::", "::1", "64:ff9b:1::808:808", "64:ff9b:1:ffff::"] {
            let message = prod.check_url(&format!("https://[{ip}]/")).unwrap_err();
            assert!(!message.contains("IPv6 form of"), "refused for what it is: {message}");
        }
    }

    #[test]
    fn the_addresses_of_the_report_are_refused_in_production_naming_what_they_embed() {
        let prod = policy(RunMode::Production, &[]);
        for url in ["https://[::127.0.0.1]/", "https://[::7f00:1]/", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"]
        {
            let message = prod.check_url(url).unwrap_err();
            assert!(
                message.contains("an IPv6 form of 127.0.0.1") && message.contains("allowed_private_targets"),
                "{message}"
            );
        }
        let resolved = TargetPolicy::new(&{
            let mut config = Config::default();
            config.server.mode = RunMode::Production;
            config.delivery.resolve = vec!["teredo.test=2001:0:4136:e378:8000:63bf:80ff:fffe".into()];
            config
        });
        let url = Url::parse("https://teredo.test/hook").unwrap();
        assert!(resolved.check_resolved(&url).unwrap_err().contains("127.0.0.1"));
    }

    #[test]
    fn link_local_and_metadata_addresses_are_refused_in_every_mode_whatever_the_allow_list() {
        let dev = policy(RunMode::Development, &[]);
        let prod = policy(RunMode::Production, &["0.0.0.0/0", "::/0", "metadata.test"]);
        let forms = [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:100.100.100.200",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::",
            "2001:0:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:5601:5601", // Teredo client 169.254.169.254
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",     // local-use NAT64, /96 layout
            "64:ff9b:1:a9fe:a9:fe00::", // local-use NAT64, /48 layout
        ];
        for ip in forms {
            let addr: IpAddr = ip.parse().unwrap();
            let url = match addr {
                IpAddr::V4(_) => format!("https://{ip}/latest/meta-data/"),
                IpAddr::V6(_) => format!("https://[{ip}]/latest/meta-data/"),
            };
            for policy in [&dev, &prod] {
                let message = policy.check_url(&url).unwrap_err();
                assert!(message.contains("in any mode") && message.contains("cannot allow"), "{ip}: {message}");
                // The connect-time check: also for a host name the allow-list names.
                assert!(!policy.address_allowed(Some("metadata.test"), addr), "{ip}");
            }
        }
        // Development mode still takes other private addresses, the rest of fd00::/8 too.
        for ok in ["https://10.0.0.1/", "https://[fd00:ec2::253]/", "https://[::7f00:1]/", "https://[fec0::1]/"] {
            assert!(dev.check_url(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_allow_list_takes_in_ipv6_forms_of_the_ipv4_addresses_it_allows() {
        let prod = policy(RunMode::Production, &["10.0.0.0/8"]);
        for ok in [
            "::ffff:10.1.2.3",
            "::a01:203",
            "2002:a01:203::",
            "64:ff9b::a01:203",
            "2001:0:4136:e378:8000:63bf:f5fe:fdfc", // Teredo client 10.1.2.3, public server
            "2001:0:a01:203:8000:63bf:f5fe:fdfc",   // both in 10/8
        ] {
            assert!(prod.address_allowed(None, ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "::ffff:127.0.0.1",
            "::7f00:1",
            "2001:0:c0a8:1:8000:63bf:f5fe:fdfc", // client allowed, server 192.168.0.1 not
            "64:ff9b:1::a01:203",                // local-use NAT64: only its own network allows it
        ] {
            assert!(!prod.address_allowed(None, bad.parse().unwrap()), "{bad}");
        }
        let nat64 = policy(RunMode::Production, &["64:ff9b:1::/48"]);
        assert!(nat64.address_allowed(None, "64:ff9b:1::a01:203".parse().unwrap()));
    }
}
