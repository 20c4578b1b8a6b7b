//! The delivery keys that name hosts and networks: `delivery.resolve`,
//! `delivery.allowed_private_targets`, `delivery.proxy` and `delivery.no_proxy`, parsed.

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

/// `delivery.proxy`, parsed: where the forward proxy listens, and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    /// Its host name or address.
    pub host: String,
    /// Its port (80 if the URL names none).
    pub port: u16,
    /// The user and password in the URL, decoded, if any.
    pub credentials: Option<(String, String)>,
}

/// Parses `delivery.proxy`: `http://[user:password@]host[:port]`, nothing more.
pub fn parse_proxy(text: &str) -> Result<ProxyAddress, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "the scheme must be http:// (a forward proxy spoken to in plain HTTP), not {}://",
            url.scheme()
        ));
    }
    let host = url.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must be only http://[user:password@]host:port".into());
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials =
        (!url.username().is_empty()).then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
    Ok(ProxyAddress { host, port: url.port().unwrap_or(80), credentials })
}
