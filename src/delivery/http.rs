//! The outbound HTTP client: one ureq agent with keep-alive pooling, the configured
//! timeout, no redirects, and in production mode an address check on every connection.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::Config;
use crate::target_policy::TargetPolicy;

/// The most response body kept with an attempt, in bytes.
pub const RESPONSE_EXCERPT_BYTES: usize = 2048;

/// The most response body read (and thrown away) past the excerpt, so the connection can
/// be reused; a longer body drops the connection instead of being read to its end.
const RESPONSE_DRAIN_BYTES: u64 = 64 * 1024;

/// What one HTTP request to an endpoint came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The status answered, if an answer came.
    pub status: Option<u16>,
    /// The start of the answer's body.
    pub body_excerpt: Option<String>,
    /// A human description of what went wrong, if anything did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// How long the endpoint asked to be left alone: its `Retry-After` on a 429 or 503,
    /// at most [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
}

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3),
/// measured from `now`. A date in the past is no delay; nonsense is ignored.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

impl SendOutcome {
    /// Whether the endpoint accepted the delivery (a 2xx in time).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends deliveries. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct HttpSender {
    agent: ureq::Agent,
    timeout: Duration,
}

/// Resolves host names like the default resolver (after `delivery.resolve`'s fixed
/// addresses), then drops every address the target policy refuses, so the connection is checked on what is actually dialled (DNS
/// rebinding cannot slip past a check made at endpoint creation).
#[derive(Debug)]
struct CheckedResolver {
    inner: DefaultResolver,
    policy: TargetPolicy,
    /// Recent answers for host names. ureq asks the resolver on every request, even one
    /// that reuses a pooled connection, and its default resolver spawns a thread for each
    /// lookup; caching for a short while keeps that off the hot path. Every cached
    /// address is still checked against the policy on each use.
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

/// The most response header accepted (status line and headers).
const MAX_RESPONSE_HEADER_BYTES: usize = 16 * 1024;

/// The size of each pooled connection's input and output buffers. ureq's defaults (128 KiB
/// each) would cost a quarter of a MiB per pooled connection; a webhook request head is a
/// few hundred bytes (URLs are at most 2,048 characters) and bodies are streamed through
/// the buffer in pieces. The input buffer is a little larger than the header limit, so an
/// oversized header is reported as such rather than as a connection that made no progress.
const CONNECTION_BUFFER_BYTES: usize = MAX_RESPONSE_HEADER_BYTES + 4 * 1024;

/// How long a resolved host name is reused.
const RESOLVE_CACHE_TTL: Duration = Duration::from_secs(30);

/// The most host names cached; the cache is cleared when it is full.
const RESOLVE_CACHE_MAX: usize = 4096;

impl CheckedResolver {
    /// Resolves without DNS where it can: IP literals and `delivery.resolve` entries are
    /// answered directly, recent answers come from the cache.
    fn lookup(
        &self,
        uri: &ureq::http::Uri,
        host: &str,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let fixed = host.parse::<IpAddr>().ok().or_else(|| self.policy.fixed_address(host));
        if let Some(ip) = fixed {
            let mut one = self.empty();
            one.push(SocketAddr::new(ip, port));
            return Ok(one);
        }
        let key = format!("{host}:{port}");
        if let Some((at, addrs)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < RESOLVE_CACHE_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= RESOLVE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        let resolved = match host {
            Some(host) => self.lookup(uri, host, config, timeout)?,
            None => self.inner.resolve(uri, config, timeout)?,
        };
        let mut allowed = self.empty();
        for addr in resolved.iter() {
            if self.policy.address_allowed(host, addr.ip()) {
                allowed.push(*addr);
            }
        }
        if allowed.is_empty() {
            return Err(ureq::Error::Other(Box::new(Refused)));
        }
        Ok(allowed)
    }
}

/// The error of a connection the target policy refused.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused: the host resolves to a private, loopback, link-local or metadata address")
    }
}

impl std::error::Error for Refused {}

impl HttpSender {
    /// A sender with the configured timeout and target policy.
    pub fn new(config: &Config) -> Self {
        let timeout = config.delivery.timeout;
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("stile/", env!("CARGO_PKG_VERSION"), " (+webhooks)"))
            .max_idle_connections(1000)
            .max_idle_connections_per_host(config.delivery.per_endpoint_concurrency.max(4))
            .input_buffer_size(CONNECTION_BUFFER_BYTES)
            .output_buffer_size(CONNECTION_BUFFER_BYTES)
            .max_response_header_size(MAX_RESPONSE_HEADER_BYTES)
            .build();
        let resolver = CheckedResolver {
            inner: DefaultResolver::default(),
            policy: TargetPolicy::new(config),
            cache: Mutex::new(HashMap::new()),
        };
        let agent = ureq::Agent::with_parts(agent_config, DefaultConnector::new(), resolver);
        Self { agent, timeout }
    }

    /// POSTs `body` to `url` with `headers` and reports what happened. Never panics and
    /// never returns an error: every failure is described in the outcome.
    pub fn send(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> SendOutcome {
        let started = Instant::now();
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let result = request.send(body);
        let mut outcome =
            SendOutcome { status: None, body_excerpt: None, error: None, duration_ms: 0, retry_after: None };
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                outcome.status = Some(status);
                if status == 429 || status == 503 {
                    outcome.retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                }
                let mut reader = response.body_mut().as_reader();
                let mut excerpt = Vec::with_capacity(256);
                let read = (&mut reader).take(RESPONSE_EXCERPT_BYTES as u64).read_to_end(&mut excerpt);
                if read.is_ok() {
                    // Read a little more so the connection can go back to the pool; if the
                    // rest is long or broken, ureq drops the connection instead.
                    let _ = std::io::copy(&mut (&mut reader).take(RESPONSE_DRAIN_BYTES), &mut std::io::sink());
                }
                if !excerpt.is_empty() {
                    outcome.body_excerpt = Some(String::from_utf8_lossy(&excerpt).into_owned());
                }
                if let Err(err) = read {
                    outcome.error = Some(describe_io(&err, self.timeout, false));
                }
                if (300..400).contains(&status) && outcome.error.is_none() {
                    outcome.error = Some(format!("redirect ({status}) not followed"));
                } else if !(200..300).contains(&status) && outcome.error.is_none() {
                    outcome.error = Some(format!("HTTP {status}"));
                }
            }
            Err(err) => outcome.error = Some(describe(&err, self.timeout, url.starts_with("https:"))),
        }
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        outcome
    }
}

/// A failed request in words a person understands. `https` says whether the URL was
/// https, where rustls reports handshake and certificate failures as invalid data.
fn describe(err: &ureq::Error, timeout: Duration, https: bool) -> String {
    match err {
        ureq::Error::Timeout(_) => format!("timeout after {}", humantime::format_duration(timeout)),
        ureq::Error::Io(io) => describe_io(io, timeout, https),
        ureq::Error::HostNotFound => "dns: host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Tls(message) => format!("tls: {message}"),
        ureq::Error::Protocol(e) => format!("invalid HTTP response: {e}"),
        ureq::Error::LargeResponseHeader(_, limit) => {
            format!("invalid HTTP response: the response header is larger than {} KiB", limit / 1024)
        }
        ureq::Error::BadUri(e) => format!("invalid URL: {e}"),
        ureq::Error::Other(e) => e.to_string(),
        other => {
            let text = other.to_string();
            if text.to_ascii_lowercase().contains("tls") || text.contains("certificate") {
                format!("tls: {text}")
            } else {
                text
            }
        }
    }
}

fn describe_io(err: &std::io::Error, timeout: Duration, https: bool) -> String {
    use std::io::ErrorKind::*;
    match err.kind() {
        InvalidData if https => format!("tls: {err}"),
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        UnexpectedEof => "connection closed before a complete response".into(),
        TimedOut | WouldBlock => format!("timeout after {}", humantime::format_duration(timeout)),
        _ => format!("network error: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
