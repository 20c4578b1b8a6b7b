//! The outbound HTTP client: hyper on the engine's runtime (every attempt a task), keep-alive pooling, the configured timeout, no redirects, and an
//! address check on every connection (link-local and metadata addresses in every mode,
//! private ones in production mode; the rules are `TargetPolicy::address_allowed`'s).
//!
//! It replaced 64 blocking ureq threads: in a spike against the same loopback receiver,
//! 64 blocking threads spent 26–28 µs of CPU per request, one async thread 10.5 µs.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::metrics::counter::Counter;

use super::proxy::{EgressProxy, ProxyFailed};
use super::reused::{Counted, lost_to_a_closing_connection, note_answer};
use crate::config::Config;
use crate::target_policy::TargetPolicy;

/// The most response body kept with an attempt, in bytes.
pub const RESPONSE_EXCERPT_BYTES: usize = 2048;

/// The most response body read (and thrown away) past the excerpt, so the connection can
/// be reused; a longer body drops the connection instead of being read to its end.
const RESPONSE_DRAIN_BYTES: usize = 64 * 1024;

/// The most response header accepted (status line and headers): hyper's read buffer.
const MAX_RESPONSE_HEADER_BYTES: usize = 16 * 1024;

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
    /// The request failed before the endpoint: at the egress proxy (see
    /// [`super::proxy::ProxyFailed`]), or in the endpoint's transformation.
    pub unreached: bool,
    /// The endpoint's transformation cancelled the request: nothing was sent.
    pub cancelled: bool,
    /// The request as the endpoint's transformation made it; `None`: not transformed.
    pub sent: Option<crate::store::model::SentRequest>,
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
    /// A request that got no answer, for `error`, after `duration_ms`.
    pub fn failed(error: String, duration_ms: u64) -> Self {
        SendOutcome {
            status: None,
            body_excerpt: None,
            error: Some(error),
            duration_ms,
            retry_after: None,
            unreached: false,
            cancelled: false,
            sent: None,
        }
    }

    /// Whether the endpoint accepted the delivery (a 2xx in time).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Why the delivery failed, if it did: the error, or the status that is not a 2xx.
    pub fn failure(&self) -> Option<String> {
        match (&self.error, self.status) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(status)) if !(200..300).contains(&status) => Some(format!("HTTP {status}")),
            (None, Some(_)) => None,
            (None, None) => Some("no answer".into()),
        }
    }
}

/// How long a resolved host name is reused.
const RESOLVE_CACHE_TTL: Duration = Duration::from_secs(30);

/// The most host names cached; the cache is cleared when it is full.
const RESOLVE_CACHE_MAX: usize = 4096;

/// Resolves host names (after `delivery.resolve`'s fixed addresses), then drops every
/// address the target policy refuses, so the connection is checked on what is actually
/// dialled (DNS rebinding cannot slip past a check made at endpoint creation).
#[derive(Clone)]
struct CheckedResolver {
    state: Arc<ResolverState>,
}

struct ResolverState {
    policy: TargetPolicy,
    /// Recent answers for host names, so DNS stays off the hot path. Every cached address
    /// is still checked against the policy on each use.
    cache: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl ResolverState {
    /// The addresses of `host`: `delivery.resolve` entries directly, recent answers from
    /// the cache, others from the system resolver.
    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailed> {
        if let Some(ip) = self.policy.fixed_address(host) {
            return Ok(vec![ip]);
        }
        if let Some((at, ips)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(host)
            && at.elapsed() < RESOLVE_CACHE_TTL
        {
            return Ok(ips.clone());
        }
        let ips: Vec<IpAddr> =
            tokio::net::lookup_host((host, 0)).await.map_err(|_| DnsFailed)?.map(|addr| addr.ip()).collect();
        if ips.is_empty() {
            return Err(DnsFailed);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= RESOLVE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(host.to_string(), (Instant::now(), ips.clone()));
        Ok(ips)
    }
}

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let host = name.as_str().trim_start_matches('[').trim_end_matches(']');
            let ips = state.lookup(host).await?;
            let allowed: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| state.policy.address_allowed(Some(host), *ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused) as Self::Error);
            }
            Ok(allowed.into_iter())
        })
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

impl StdError for Refused {}

/// A host name that did not resolve.
#[derive(Debug)]
struct DnsFailed;

impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dns: host not found")
    }
}

impl StdError for DnsFailed {}

/// A pooled client over the checked resolver (and the egress proxy, if any).
type PooledClient = Client<HttpsConnector<PolicyConnector>, Full<Bytes>>;

/// Makes each connection a request needs: directly (hyper's connector over the checked
/// resolver), or, with an egress proxy, through a tunnel to an address checked here
/// first (see [`super::proxy`]).
#[derive(Clone)]
struct PolicyConnector {
    direct: HttpConnector<CheckedResolver>,
    proxy: Option<Arc<EgressProxy>>,
    resolver: Arc<ResolverState>,
    timeout: Duration,
}

impl tower_service::Service<hyper::Uri> for PolicyConnector {
    type Response = Counted<TokioIo<tokio::net::TcpStream>>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        let Some(proxy) = self.proxy.clone() else {
            return Box::pin(async move { Ok(Counted::new(direct.call(uri).await?)) });
        };
        let (resolver, timeout) = (Arc::clone(&self.resolver), self.timeout);
        Box::pin(async move {
            let host =
                uri.host().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            // Resolved and checked here, so the proxy is asked for an address, never a
            // name it would resolve itself.
            let (ips, named) = match host.parse::<IpAddr>() {
                Ok(ip) => (vec![ip], None),
                Err(_) => (resolver.lookup(&host).await?, Some(host.as_str())),
            };
            let Some(ip) = ips.into_iter().find(|ip| resolver.policy.address_allowed(named, *ip)) else {
                return Err(Box::new(Refused) as Self::Error);
            };
            if proxy.bypassed(&host, ip) {
                return Ok(Counted::new(direct.call(uri).await?));
            }
            let stream = proxy.tunnel(&SocketAddr::new(ip, port).to_string(), timeout).await?;
            Ok(Counted::new(TokioIo::new(stream)))
        })
    }
}

/// The most clients with a client certificate kept at once (one per endpoint and
/// certificate); past it one is dropped (and made again when needed) for each new one.
const MAX_IDENTITY_CLIENTS: usize = 256;

/// Sends deliveries. Cheap to clone; clones share the connection pool. Its requests run
/// on the tokio runtime they are awaited on, which must have I/O and timers enabled.
#[derive(Clone)]
pub struct HttpSender {
    client: PooledClient,
    resolver: Arc<ResolverState>,
    /// The egress proxy every connection goes through (but `no_proxy`'s), if any.
    proxy: Option<Arc<EgressProxy>>,
    timeout: Duration,
    /// The roots a receiver's certificate must chain to: the public ones and
    /// `delivery.ca_file`'s.
    roots: Arc<rustls::RootCertStore>,
    /// Idle connections kept per host.
    idle_per_host: usize,
    /// Clients that present a client certificate, by endpoint and certificate: a pool of
    /// their own each, so no connection authenticated as one endpoint is used for another.
    identities: Arc<Mutex<HashMap<u64, PooledClient>>>,
    /// Counts the requests sent again after a receiver closed a kept-alive connection
    /// under them (see `reused`).
    resent: Counter,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// What an endpoint answered, up to the excerpt.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    excerpt: Vec<u8>,
    /// Why reading the excerpt failed, if it did.
    read_error: Option<String>,
}

impl HttpSender {
    /// A sender with the configured timeout, target policy and trusted roots (the
    /// public ones, and `delivery.ca_file`'s: checked when the configuration is loaded; a
    /// file unreadable since is logged and left out).
    pub fn new(config: &Config) -> Self {
        let timeout = config.delivery.timeout;
        let resolver = Arc::new(ResolverState { policy: TargetPolicy::new(config), cache: Mutex::new(HashMap::new()) });
        let mut roots = crate::tls::public_roots();
        if !config.delivery.ca_file.as_os_str().is_empty() {
            match crate::tls::read_roots(&config.delivery.ca_file, "delivery.ca_file") {
                Ok(extra) => roots.roots.extend(extra.roots),
                Err(err) => {
                    tracing::error!(error = %err, "the extra roots of deliveries cannot be read; only the public roots are trusted")
                }
            }
        }
        let tls = crate::tls::delivery_config(&roots, None).expect("ring supports the safe default protocol versions");
        // Pooled per host and port, which many endpoints may share: keep as many idle
        // connections as attempts can be in flight, or a burst ends in reconnects.
        let idle_per_host = config.delivery.workers;
        let proxy = match EgressProxy::from_config(&config.delivery) {
            Ok(proxy) => proxy.map(Arc::new),
            // Checked when the configuration was loaded; never gone around if it fails.
            Err(err) => {
                tracing::error!(error = %err, "delivery.proxy cannot be used; deliveries fail until it is fixed");
                Some(Arc::new(EgressProxy::unusable(err)))
            }
        };
        let client = pooled_client(&resolver, &proxy, timeout, idle_per_host, tls);
        Self {
            client,
            resolver,
            proxy,
            timeout,
            roots: Arc::new(roots),
            idle_per_host,
            identities: Arc::new(Mutex::new(HashMap::new())),
            resent: Counter::default(),
        }
    }

    /// This sender counting its requests sent again (see `reused`) in `counter`: the
    /// engine's metric.
    pub fn counting_resends_in(self, counter: Counter) -> Self {
        Self { resent: counter, ..self }
    }

    /// This sender presenting a client certificate: the client kept for `key` (an
    /// endpoint and its certificate), or one made now with `identity`.
    pub fn with_identity(
        &self,
        key: u64,
        identity: impl FnOnce() -> Result<crate::tls::ClientIdentity, String>,
    ) -> Result<HttpSender, String> {
        let mut identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        let client = match identities.get(&key) {
            Some(client) => client.clone(),
            None => {
                let tls = crate::tls::delivery_config(&self.roots, Some(identity()?)).map_err(|e| e.to_string())?;
                let client = pooled_client(&self.resolver, &self.proxy, self.timeout, self.idle_per_host, tls);
                if identities.len() >= MAX_IDENTITY_CLIENTS
                    && let Some(evicted) = identities.keys().next().copied()
                {
                    identities.remove(&evicted);
                }
                identities.insert(key, client.clone());
                client
            }
        };
        Ok(HttpSender { client, ..self.clone() })
    }

    /// The target policy its connections are checked against (what a URL an endpoint's
    /// transformation made is checked by before it is used).
    pub fn policy(&self) -> &TargetPolicy {
        &self.resolver.policy
    }

    /// Sends `body` to `url` with `method` and `headers` and reports what happened.
    /// Never panics and never returns an error: every failure is described in the
    /// outcome.
    pub async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> SendOutcome {
        let started = Instant::now();
        let mut outcome = SendOutcome {
            status: None,
            body_excerpt: None,
            error: None,
            duration_ms: 0,
            retry_after: None,
            unreached: false,
            cancelled: false,
            sent: None,
        };
        let https = url.starts_with("https:");
        match tokio::time::timeout(
            self.timeout,
            self.exchange(method, url, headers, body, https, RESPONSE_EXCERPT_BYTES),
        )
        .await
        {
            Err(_) => outcome.error = Some(timed_out(self.timeout)),
            Ok(Err(error)) => {
                outcome.unreached = caused_by_proxy(error.as_ref());
                outcome.error = Some(describe(error.as_ref(), self.timeout, https));
            }
            Ok(Ok(answer)) => {
                let status = answer.status;
                outcome.status = Some(status);
                outcome.retry_after = answer.retry_after;
                if !answer.excerpt.is_empty() {
                    outcome.body_excerpt = Some(String::from_utf8_lossy(&answer.excerpt).into_owned());
                }
                outcome.error = answer.read_error;
                if (300..400).contains(&status) && outcome.error.is_none() {
                    outcome.error = Some(format!("redirect ({status}) not followed"));
                } else if !(200..300).contains(&status) && outcome.error.is_none() {
                    outcome.error = Some(format!("HTTP {status}"));
                }
            }
        }
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        outcome
    }

    /// POSTs `body` to `url` with `headers` (an OAuth2 token request: the same address
    /// checks, TLS and timeout as a delivery) and answers the status and at most `keep`
    /// bytes of the body, or what went wrong in words.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
        keep: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let https = url.starts_with("https:");
        match tokio::time::timeout(self.timeout, self.exchange(hyper::Method::POST, url, headers, body, https, keep))
            .await
        {
            Err(_) => Err(timed_out(self.timeout)),
            Ok(Err(error)) => Err(describe(error.as_ref(), self.timeout, https)),
            Ok(Ok(Answer { read_error: Some(error), .. })) => Err(error),
            Ok(Ok(answer)) => Ok((answer.status, answer.excerpt)),
        }
    }

    /// One request (`method` to `url`) and up to `keep` bytes of its answer's body.
    async fn exchange(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
        https: bool,
        keep: usize,
    ) -> Result<Answer, Box<dyn StdError + Send + Sync>> {
        let uri: hyper::Uri = url.parse()?;
        // The connector dials IP literals without asking the resolver: check them here.
        if let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            && let Ok(ip) = host.parse::<IpAddr>()
            && !self.resolver.policy.address_allowed(Some(host), ip)
        {
            return Err(Box::new(Refused));
        }
        let request = || {
            let mut request = hyper::Request::builder().method(method.clone()).uri(uri.clone());
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            request.body(Full::new(body.clone()))
        };
        let response = match self.client.request(request()?).await {
            Ok(response) => response,
            // Sent into a keep-alive connection the receiver was closing: once more, on
            // another (see `reused`).
            Err(err) if lost_to_a_closing_connection(&err) => {
                self.resent.inc();
                tracing::debug!(url, error = %err, "the receiver closed a kept-alive connection under the request; sent again on another");
                self.client.request(request()?).await?
            }
            Err(err) => return Err(err.into()),
        };
        note_answer(&response);
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
        } else {
            None
        };
        let mut body = response.into_body();
        let mut excerpt = Vec::new();
        let mut read = 0;
        let mut read_error = None;
        // Read the excerpt, then a little more so the connection can go back to the pool;
        // if the rest is long or broken, dropping the body drops the connection instead.
        while read <= keep + RESPONSE_DRAIN_BYTES {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = keep - excerpt.len();
                        excerpt.extend_from_slice(&data[..data.len().min(room)]);
                        read += data.len();
                    }
                }
                Some(Err(err)) => {
                    if excerpt.len() < keep {
                        read_error = Some(describe(&err, self.timeout, https));
                    }
                    break;
                }
            }
        }
        Ok(Answer { status, retry_after, excerpt, read_error })
    }
}

/// A client over the checked resolver and `proxy`, with `tls`.
fn pooled_client(
    resolver: &Arc<ResolverState>,
    proxy: &Option<Arc<EgressProxy>>,
    timeout: Duration,
    idle_per_host: usize,
    tls: rustls::ClientConfig,
) -> PooledClient {
    let mut http = HttpConnector::new_with_resolver(CheckedResolver { state: Arc::clone(resolver) });
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    // The tunnel gets half the request's time, so a proxy that hangs is found out as
    // the proxy's failure before the whole request times out.
    let policy =
        PolicyConnector { direct: http, proxy: proxy.clone(), resolver: Arc::clone(resolver), timeout: timeout / 2 };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(policy);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle_per_host)
        .http1_max_buf_size(MAX_RESPONSE_HEADER_BYTES)
        .build(connector)
}

/// Whether the egress proxy itself failed somewhere in this error's chain (not a 5xx
/// it answered for a target it could not reach).
fn caused_by_proxy(err: &(dyn StdError + 'static)) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(failed) = e.downcast_ref::<ProxyFailed>() {
            return failed.proxy_at_fault;
        }
        cause = e.source();
    }
    false
}

fn timed_out(timeout: Duration) -> String {
    format!("timeout after {}", humantime::format_duration(timeout))
}

/// A failed request in words a person understands: the most telling error in the chain.
/// `https` says whether the URL was https, where rustls reports handshake and
/// certificate failures as invalid data.
fn describe(err: &(dyn StdError + 'static), timeout: Duration, https: bool) -> String {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<Refused>() || e.is::<DnsFailed>() || e.is::<ProxyFailed>() {
            return e.to_string();
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return format!("tls: {tls}");
        }
        if let Some(mut io) = e.downcast_ref::<std::io::Error>() {
            // An I/O error's `source()` skips the error it wraps (rustls's, or another I/O
            // error the TLS layer wrapped): look inside.
            while let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return format!("tls: {tls}");
                }
                match inner.downcast_ref::<std::io::Error>() {
                    Some(wrapped) => io = wrapped,
                    None => break,
                }
            }
            return describe_io(io, timeout, https);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            // hyper tells a head over its buffer apart only in its message ("message head
            // is too large"); its predicate is compiled for servers alone.
            if h.is_parse() && h.to_string().contains("too large") {
                return format!(
                    "invalid HTTP response: the response header is larger than {} KiB",
                    MAX_RESPONSE_HEADER_BYTES / 1024
                );
            }
            if h.is_parse() || h.is_parse_status() {
                return format!("invalid HTTP response: {h}");
            }
            if h.is_timeout() {
                return timed_out(timeout);
            }
            if h.is_incomplete_message() && h.source().is_none() {
                return "connection closed before a complete response".into();
            }
        }
        if let Some(uri) = e.downcast_ref::<hyper::http::uri::InvalidUri>() {
            return format!("invalid URL: {uri}");
        }
        cause = e.source();
    }
    let text = err.to_string();
    if https && (text.to_ascii_lowercase().contains("tls") || text.contains("certificate")) {
        format!("tls: {text}")
    } else {
        text
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
        TimedOut | WouldBlock => timed_out(timeout),
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
