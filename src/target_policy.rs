//! Which URLs may be webhook targets: the scheme rules of development and production
//! mode, and the address ranges production refuses (SSRF protection).
//!
//! The same address check serves endpoint creation and, later, the delivery connection
//! itself (after DNS resolution), so a host that resolves to a private address is refused
//! whenever it does.

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

    /// Checks a URL as given by a user, without DNS: length, syntax, scheme, and in
    /// production mode literal private addresses and `localhost`. Returns the parsed URL
    /// or a sentence saying what is wrong.
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
        if self.mode == RunMode::Production {
            let refused = match &host {
                Host::Ipv4(ip) => !self.address_allowed(None, IpAddr::V4(*ip)),
                Host::Ipv6(ip) => !self.address_allowed(None, IpAddr::V6(*ip)),
                Host::Domain(name) => is_localhost_name(name) && !self.host_allowed(name),
            };
            if refused {
                return Err(private_target_message(&host.to_string()));
            }
        }
        Ok(url)
    }

    /// In production mode, resolves the URL's host name and refuses it if any address it
    /// resolves to is private. Blocking (DNS): call it off the async runtime. A name that
    /// does not resolve now is accepted; the connect-time check still guards delivery.
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
                return Err(private_target_message(&format!("{name} ({ip})")));
            }
        }
        Ok(())
    }

    /// The address `delivery.resolve` gives this host name, if any.
    pub fn fixed_address(&self, host: &str) -> Option<IpAddr> {
        self.resolve.get(&host.trim_end_matches('.').to_ascii_lowercase()).copied()
    }

    /// Whether a connection to `ip` (reached through host name `host`, if any) is allowed.
    pub fn address_allowed(&self, host: Option<&str>, ip: IpAddr) -> bool {
        if self.mode == RunMode::Development || !is_forbidden(ip) {
            return true;
        }
        let ip = ip.to_canonical();
        host.is_some_and(|h| self.host_allowed(h))
            || self.allowed.iter().any(|a| matches!(a, AllowedTarget::Network(net) if net.contains(&ip)))
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| matches!(a, AllowedTarget::Host(h) if h.eq_ignore_ascii_case(host)))
    }
}

fn private_target_message(what: &str) -> String {
    format!(
        "`url` points to a private, loopback, link-local or metadata address ({what}), which production mode refuses. Add it to `delivery.allowed_private_targets` if this is intended."
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

/// Whether an address is one no public webhook target can have: loopback, private,
/// link-local (cloud metadata), carrier-grade NAT, multicast, reserved, and the IPv6
/// forms that embed such addresses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
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

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (segments[0] & 0xffc0) == 0xfec0 // deprecated site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
        || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_forbidden_v4(embedded_v4(segments[6], segments[7])))
        || (segments[0] == 0x2002 && is_forbidden_v4(embedded_v4(segments[1], segments[2])))
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
}
