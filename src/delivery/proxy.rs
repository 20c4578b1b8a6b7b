//! The egress proxy (`[delivery] proxy`): every delivery and token request leaves through
//! one forward proxy, so a security team sees all outbound traffic at one place with known
//! addresses. stile still decides where it may connect: it resolves and checks the target
//! itself (the same rules as without a proxy) and asks the proxy for a tunnel to the
//! address it checked (`CONNECT 203.0.113.7:443`), never to a name the proxy would
//! resolve, so a proxy cannot be used to reach an address the rules refuse. https and
//! http targets alike go through `CONNECT`. Hosts and networks in `no_proxy` are
//! connected to directly.
//!
//! The CONNECT exchange is written here (a request line, a header or two, a status line
//! back) so its failures can be told apart: the proxy refused the connection, asked for
//! credentials (407) or refused the target (4xx), or gave no answer: the proxy's own
//! failure, which does not count against the endpoint; or it could not reach the target
//! (a 5xx), which counts as the target's, as it would without a proxy. Each is a
//! [`ProxyFailed`].

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{AllowedTarget, DeliveryConfig, ProxyAddress, parse_proxy};
use crate::target_policy::is_link_local_or_metadata;

/// The longest answer head to a `CONNECT` read, in bytes.
const MAX_CONNECT_ANSWER_BYTES: usize = 8 * 1024;

/// A request that failed at the proxy: the proxy could not be reached, refused the
/// credentials or the target (4xx), gave no answer or no HTTP one (the proxy's own fault:
/// `proxy_at_fault`), or answered `CONNECT` with a 5xx, saying it could not reach the
/// target (the target's fault, as without a proxy).
#[derive(Debug)]
pub struct ProxyFailed {
    /// What happened, in words.
    pub message: String,
    /// Whether the proxy, not the target, failed.
    pub proxy_at_fault: bool,
}

impl ProxyFailed {
    /// The proxy's own failure.
    fn proxy(message: String) -> Self {
        ProxyFailed { message, proxy_at_fault: true }
    }
}

impl std::fmt::Display for ProxyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proxy: {}", self.message)
    }
}

impl std::error::Error for ProxyFailed {}

/// The configured egress proxy.
#[derive(Debug)]
pub struct EgressProxy {
    /// Why the configured proxy cannot be used, if it cannot: every connection then fails
    /// (never goes around the proxy).
    unusable: Option<String>,
    /// Its host name or address.
    host: String,
    /// Its port.
    port: u16,
    /// `Proxy-Authorization` for its credentials, if the URL has some.
    authorization: Option<String>,
    /// `no_proxy`: hosts and networks connected to directly.
    bypass: Vec<AllowedTarget>,
}

impl EgressProxy {
    /// The proxy `delivery.proxy` names, if any: `http://[user:password@]host:port`.
    pub fn from_config(delivery: &DeliveryConfig) -> Result<Option<EgressProxy>, String> {
        if delivery.proxy.is_empty() {
            return Ok(None);
        }
        let mut bypass = Vec::new();
        for entry in &delivery.no_proxy {
            bypass.push(
                AllowedTarget::parse(entry)
                    .ok_or_else(|| format!("no_proxy: `{entry}` is neither a host name nor a network"))?,
            );
        }
        Self::new(&delivery.proxy, bypass).map(Some)
    }

    /// The proxy at `url` (`http://[user:password@]host:port`), going around `bypass`.
    pub fn new(url: &str, bypass: Vec<AllowedTarget>) -> Result<EgressProxy, String> {
        let ProxyAddress { host, port, credentials } = parse_proxy(url)?;
        let authorization = credentials.map(|(user, password)| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        Ok(EgressProxy { unusable: None, host, port, authorization, bypass })
    }

    /// A proxy that cannot be used, for `why`: every connection through it fails.
    pub fn unusable(why: String) -> EgressProxy {
        EgressProxy { unusable: Some(why), host: String::new(), port: 0, authorization: None, bypass: Vec::new() }
    }

    /// Whether `host` (as the URL names it), at `ip`, is reached directly (`no_proxy`).
    pub fn bypassed(&self, host: &str, ip: IpAddr) -> bool {
        self.bypass.iter().any(|entry| match entry {
            AllowedTarget::Host(name) => {
                let host = host.trim_end_matches('.');
                host.eq_ignore_ascii_case(name)
                    || host.len() > name.len()
                        && host.to_ascii_lowercase().ends_with(&format!(".{}", name.to_ascii_lowercase()))
            }
            AllowedTarget::Network(net) => net.contains(&ip),
        })
    }

    /// A tunnel through the proxy to `target` (`address:port`: for deliveries an address
    /// stile checked), within `timeout` for the connection and the proxy's answer.
    pub async fn tunnel(&self, target: &str, timeout: Duration) -> Result<TcpStream, ProxyFailed> {
        if let Some(why) = &self.unusable {
            return Err(ProxyFailed::proxy(format!("delivery.proxy cannot be used: {why}")));
        }
        let mut stream = tokio::time::timeout(timeout, self.connect()).await.map_err(|_| {
            ProxyFailed::proxy(format!("no connection to {}:{} within {timeout:?}", self.host, self.port))
        })??;
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            read_head(&mut stream).await
        };
        let head = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProxyFailed::proxy(format!("no answer to CONNECT within {timeout:?}")))?
            .map_err(|e| ProxyFailed::proxy(format!("the connection failed during CONNECT ({e})")))?;
        let status_line = head.lines().next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (version, status) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let reason = parts.next().unwrap_or_default().trim();
        match status.parse::<u16>() {
            Ok(200..=299) if version.starts_with("HTTP/1.") => Ok(stream),
            Ok(status) if version.starts_with("HTTP/1.") => {
                let message = format!("CONNECT {target} answered {status} {reason}").trim_end().to_string();
                // A 5xx: the proxy could not reach the target (502 Bad Gateway, 503, 504).
                Err(ProxyFailed { message, proxy_at_fault: status < 500 })
            }
            _ => Err(ProxyFailed::proxy(format!("not an HTTP answer to CONNECT: {status_line:?}"))),
        }
    }

    /// A connection to the proxy: its name resolved by the system, a link-local or
    /// metadata address refused (as everywhere).
    async fn connect(&self) -> Result<TcpStream, ProxyFailed> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| ProxyFailed::proxy(format!("{} does not resolve ({e})", self.host)))?;
        let mut last = None;
        for addr in addrs.filter(|a| !is_link_local_or_metadata(a.ip())) {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(ProxyFailed::proxy(match last {
            Some(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("connection to {}:{} refused", self.host, self.port)
            }
            Some(err) => format!("no connection to {}:{} ({err})", self.host, self.port),
            None => format!("{} has no address stile may connect to", self.host),
        }))
    }
}

/// Reads an HTTP answer's head (to the blank line), byte by byte so nothing of the
/// tunnel after it is taken.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(128);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_ANSWER_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the answer's head is too long"));
        }
        let byte = stream.read_u8().await?;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
