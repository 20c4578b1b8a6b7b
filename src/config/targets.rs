//! The delivery keys that name hosts and networks: `delivery.resolve` and
//! `delivery.allowed_private_targets`, parsed.

use std::net::IpAddr;

/// Parses one `delivery.resolve` entry: `host=address`.
pub fn parse_resolve(entry: &str) -> Option<(String, IpAddr)> {
    let (host, address) = entry.split_once('=')?;
    let host = host.trim().to_ascii_lowercase();
    let address = address.trim().trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    matches!(AllowedTarget::parse(&host), Some(AllowedTarget::Host(_))).then_some((host, address))
}

/// One entry of `delivery.allowed_private_targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedTarget {
    /// Every address in this network.
    Network(ipnet::IpNet),
    /// This host name, compared case-insensitively.
    Host(String),
}

impl AllowedTarget {
    /// Parses a CIDR network, a bare IP address, or a host name.
    pub fn parse(text: &str) -> Option<AllowedTarget> {
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Some(AllowedTarget::Network(net));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(AllowedTarget::Network(ipnet::IpNet::from(ip)));
        }
        let host_like = !text.is_empty()
            && text.len() <= 253
            && text
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        host_like.then(|| AllowedTarget::Host(text.to_ascii_lowercase()))
    }
}
