//! The CLI's side of `stile listen`: holds the WebSocket to the server, forwards each
//! delivery to the local URL with its exact body and signed headers, and sends the local
//! answer back. Reconnects by itself, with backoff, whenever the connection is lost. Its
//! own connection goes through the proxy its environment names (`HTTPS_PROXY`, ...).
//!
//! Status lines (ready, the secret, reconnects) go to stderr; one line per delivery (or
//! one JSON object with `--print-json`) to stdout, so the output can be piped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::config::{AllowedTarget, Config};
use crate::delivery::http::{HttpSender, SendOutcome};
use crate::delivery::listen_wire::{self as wire, ClientMessage, ServerMessage};
use crate::delivery::proxy::EgressProxy;

/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What `stile listen` was asked to do.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where deliveries go on this machine.
    pub forward_to: String,
    /// The stile server (`http://...` or `https://...`).
    pub server: String,
    /// An API key of the application's mode.
    pub api_key: String,
    /// Event types to receive; empty: all.
    pub events: Vec<String>,
    /// The application (id or uid); `None`: the key's default.
    pub app: Option<String>,
    /// Accept any TLS certificate from the server (self-signed staging certificates).
    pub skip_verify: bool,
    /// One JSON object per delivery on stdout instead of the human lines.
    pub print_json: bool,
}

/// Why a connection ended.
enum Ended {
    /// Ctrl-C: stop.
    Interrupted,
    /// Lost (network, server restart): reconnect. Says whether it had become ready, and
    /// why it ended.
    Lost { was_ready: bool, why: String },
}

/// Runs `stile listen` until Ctrl-C. Fails at once on what reconnecting cannot fix (a bad
/// key or request: a 4xx when connecting).
pub fn run(options: ListenOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(listen(options))
}

async fn listen(options: ListenOptions) -> anyhow::Result<()> {
    let request = connect_request(&options)?;
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    loop {
        match connect_once(&options, request.clone(), connected_before).await? {
            Ended::Interrupted => return Ok(()),
            Ended::Lost { was_ready, why } => {
                if was_ready {
                    connected_before = true;
                    backoff = FIRST_BACKOFF;
                }
                let wait = jittered(backoff);
                eprintln!(
                    "{}  Connection to stile lost ({why}); reconnecting in {:.1} s",
                    now_text(),
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The WebSocket request: `ws(s)://<server>/v1/listen?forward_to=...&events=...` with the
/// key and application as headers.
fn connect_request(options: &ListenOptions) -> anyhow::Result<tungstenite::handshake::client::Request> {
    let mut url = url::Url::parse(options.server.trim_end_matches('/'))
        .map_err(|e| anyhow::anyhow!("--url {} is not a URL: {e}", options.server))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => anyhow::bail!("--url must be http:// or https://, not {other}://"),
    };
    url.set_scheme(scheme).map_err(|()| anyhow::anyhow!("--url {} cannot carry a WebSocket", options.server))?;
    url.set_path(wire::PATH);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("forward_to", &options.forward_to);
        if !options.events.is_empty() {
            query.append_pair("events", &options.events.join(","));
        }
    }
    let mut request = url.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {}", options.api_key).parse()?);
    headers.insert("user-agent", concat!("stile-listen/", env!("CARGO_PKG_VERSION")).parse()?);
    if let Some(app) = &options.app {
        headers
            .insert("stile-app", app.parse().map_err(|_| anyhow::anyhow!("--app {app} is not a valid header value"))?);
    }
    Ok(request)
}

/// The longest the CLI waits for its proxy to connect it to the server.
const PROXY_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy the CLI's own connection to the server goes through, from the environment as
/// curl reads it: `HTTPS_PROXY` (or `https_proxy`) for an https server, `HTTP_PROXY` (or
/// `http_proxy`) for http, unless `NO_PROXY` names the server (a host, a domain with or
/// without its leading dot, an address, a network, or `*`). With it, the server's
/// `host:port` to `CONNECT` to. Deliveries forwarded to the local app never go through it.
fn proxy_from_env(uri: &tungstenite::http::Uri) -> anyhow::Result<Option<(EgressProxy, String)>> {
    let secure = uri.scheme_str() == Some("wss");
    let names: &[&str] = if secure { &["https_proxy", "HTTPS_PROXY"] } else { &["http_proxy", "HTTP_PROXY"] };
    let Some((name, url)) = names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()).map(|v| (n, v)))
    else {
        return Ok(None);
    };
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let no_proxy = ["no_proxy", "NO_PROXY"].iter().find_map(|n| std::env::var(n).ok()).unwrap_or_default();
    let mut bypass = Vec::new();
    for entry in no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            return Ok(None);
        }
        let entry = entry.trim_start_matches('.');
        // `host:port` entries name the host.
        let entry = match entry.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
            _ => entry,
        };
        bypass.extend(AllowedTarget::parse(entry));
    }
    // `host:port` alone means an HTTP proxy, as curl reads it.
    let url = if url.contains("://") { url } else { format!("http://{url}") };
    let proxy = EgressProxy::new(&url, bypass).map_err(|why| {
        // Named without its credentials.
        let shown = url::Url::parse(&url).map_or_else(
            |_| "(not a URL)".to_string(),
            |mut u| {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.to_string()
            },
        );
        anyhow::anyhow!("{name}={shown} cannot be used: {why}")
    })?;
    let ip = host.parse().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if proxy.bypassed(&host, ip) {
        return Ok(None);
    }
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok(Some((proxy, authority)))
}

/// One connection, from connecting to its end.
async fn connect_once(
    options: &ListenOptions,
    request: tungstenite::handshake::client::Request,
    connected_before: bool,
) -> anyhow::Result<Ended> {
    // `--skip-verify`: for staging servers with self-signed certificates; encrypted, but
    // not authenticated.
    let connector = options.skip_verify.then(|| {
        let config = crate::tls::client_config(crate::tls::Verify::Nothing)
            .expect("ring supports the default protocol versions");
        tokio_tungstenite::Connector::Rustls(Arc::new(config))
    });
    let proxy = proxy_from_env(request.uri())?;
    let connecting = async move {
        match proxy {
            None => tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await,
            Some((proxy, authority)) => match proxy.tunnel(&authority, PROXY_TIMEOUT).await {
                Ok(stream) => tokio_tungstenite::client_async_tls_with_config(request, stream, None, connector).await,
                Err(failed) => Err(tungstenite::Error::Io(std::io::Error::other(failed.to_string()))),
            },
        }
    };
    let socket = tokio::select! {
        connected = connecting => connected,
        _ = tokio::signal::ctrl_c() => return Ok(Ended::Interrupted),
    };
    let (socket, _) = match socket {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) if response.status().is_client_error() => {
            let status = response.status();
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            anyhow::bail!("stile refused to listen ({status}): {message}");
        }
        Err(err) => return Ok(Ended::Lost { was_ready: false, why: describe(&err) }),
    };
    let (mut up, mut down) = socket.split();
    let (results, mut to_send) = mpsc::unbounded_channel::<wire::DeliveryResult>();
    let mut local: Option<Arc<Local>> = None;
    loop {
        tokio::select! {
            message = down.next() => match message {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(ServerMessage::Ready(ready)) => {
                        announce(options, &ready, connected_before);
                        local = Some(Arc::new(Local::new(options, Duration::from_millis(ready.timeout_ms))));
                    }
                    Ok(ServerMessage::Delivery(delivery)) => {
                        let Some(local) = local.clone() else { continue };
                        let results = results.clone();
                        tokio::spawn(async move {
                            let result = local.forward(delivery).await;
                            let _ = results.send(result);
                        });
                    }
                    Err(err) => eprintln!("{}  Ignored a message stile sent that this CLI does not understand ({err}); is it a newer stile?", now_text()),
                },
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map_or_else(|| "closed by the server".to_string(), |f| format!("closed by the server: {}", f.reason));
                    return Ok(Ended::Lost { was_ready: local.is_some(), why });
                }
                // Pings are answered by tungstenite as the stream is read.
                Some(Ok(_)) => {}
                Some(Err(err)) => return Ok(Ended::Lost { was_ready: local.is_some(), why: describe(&err) }),
                None => return Ok(Ended::Lost { was_ready: local.is_some(), why: "the connection ended".into() }),
            },
            Some(result) = to_send.recv() => {
                let text = serde_json::to_string(&ClientMessage::Result(result)).expect("results serialise");
                if let Err(err) = up.send(Message::text(text)).await {
                    return Ok(Ended::Lost { was_ready: local.is_some(), why: describe(&err) });
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = up.send(Message::Close(None)).await;
                return Ok(Ended::Interrupted);
            }
        }
    }
}

/// Prints what a new connection means: ready, and the secret to configure locally.
fn announce(options: &ListenOptions, ready: &wire::Ready, connected_before: bool) {
    if connected_before {
        eprintln!("{}  Reconnected. Forwarding to {}", now_text(), options.forward_to);
    } else {
        eprintln!("Ready! Forwarding to {}", options.forward_to);
        eprintln!("Your webhook signing secret is {} (^C to quit)", ready.secret);
    }
    if ready.status != "enabled" {
        eprintln!(
            "Note: the listener endpoint {} is {}; its deliveries wait until it is enabled again.",
            ready.endpoint_id, ready.status
        );
    }
}

/// The local side: where deliveries are POSTed, and how the outcome is shown.
struct Local {
    sender: HttpSender,
    forward_to: String,
    print_json: bool,
}

impl Local {
    fn new(options: &ListenOptions, server_wait: Duration) -> Self {
        let mut config = Config::default();
        // The local app gets a little less than the server waits, so its answer arrives
        // in time; the target policy of development mode lets every address through.
        config.delivery.timeout = server_wait.saturating_sub(Duration::from_secs(1)).max(Duration::from_secs(1));
        config.delivery.workers = 16;
        Self {
            sender: HttpSender::new(&config),
            forward_to: options.forward_to.clone(),
            print_json: options.print_json,
        }
    }

    /// POSTs one delivery, byte for byte with its signed headers, and reports the answer.
    async fn forward(&self, delivery: wire::Delivery) -> wire::DeliveryResult {
        if !self.print_json {
            println!("{}  --> {} [{}]", now_text(), delivery.event_type, delivery.event_id);
        }
        let body = bytes::Bytes::from(delivery.body.clone().into_bytes());
        let outcome = self.sender.send(hyper::Method::POST, &self.forward_to, &delivery.headers, body).await;
        self.report(&delivery, &outcome);
        wire::DeliveryResult {
            delivery_id: delivery.delivery_id,
            status: outcome.status,
            body: outcome.body_excerpt,
            error: outcome.error,
            duration_ms: outcome.duration_ms,
        }
    }

    fn report(&self, delivery: &wire::Delivery, outcome: &SendOutcome) {
        if self.print_json {
            let event: serde_json::Value =
                serde_json::from_str(&delivery.body).unwrap_or_else(|_| delivery.body.clone().into());
            let line = serde_json::json!({
                "delivery_id": delivery.delivery_id, "event_id": delivery.event_id,
                "event_type": delivery.event_type, "attempt": delivery.attempt, "event": event,
                "response": {"status": outcome.status, "duration_ms": outcome.duration_ms, "error": outcome.error},
            });
            println!("{line}");
            return;
        }
        let status = outcome.status.map_or_else(|| "ERR".to_string(), |s| s.to_string());
        let error = match (&outcome.error, outcome.status) {
            (Some(error), None) => format!(" ({error})"),
            _ => String::new(),
        };
        println!(
            "{}  <-- [{status}] POST {} [{}] {} ms{error}",
            now_text(),
            self.forward_to,
            delivery.event_id,
            outcome.duration_ms
        );
    }
}

/// Now, as `2026-12-01 10:12:03` (UTC).
fn now_text() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace('T', " ").trim_end_matches('Z').to_string()
}

/// `wait` give or take a fifth, so many CLIs cut off together do not reconnect together.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    crate::secrets::random_bytes(&mut byte);
    let factor = 0.8 + 0.4 * f64::from(byte[0]) / 255.0;
    wait.mul_f64(factor)
}

/// A connection error in a few words.
fn describe(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Io(io) => format!("cannot reach stile: {io}"),
        tungstenite::Error::Http(response) => format!("stile answered {}", response.status()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(server: &str) -> ListenOptions {
        ListenOptions {
            forward_to: "http://localhost:3000/webhooks?x=1".into(),
            server: server.into(),
            api_key: "vk_test_abc".into(),
            events: vec!["a.b".into(), "c.d".into()],
            app: Some("acme".into()),
            skip_verify: false,
            print_json: false,
        }
    }

    #[test]
    fn the_request_names_the_websocket_path_the_forward_url_and_the_key() {
        let request = connect_request(&options("https://stile.example.com/")).unwrap();
        let uri = request.uri().to_string();
        assert!(uri.starts_with("wss://stile.example.com/v1/listen?forward_to=http%3A%2F%2Flocalhost%3A3000"), "{uri}");
        assert!(uri.ends_with("&events=a.b%2Cc.d"), "{uri}");
        assert_eq!(request.headers()["authorization"], "Bearer vk_test_abc");
        assert_eq!(request.headers()["stile-app"], "acme");
        let plain = connect_request(&options("http://127.0.0.1:8787")).unwrap();
        assert!(plain.uri().to_string().starts_with("ws://127.0.0.1:8787/v1/listen?"));
        assert!(connect_request(&options("ftp://x")).is_err());
    }

    #[test]
    fn backoff_is_jittered_within_a_fifth() {
        for _ in 0..50 {
            let wait = jittered(Duration::from_secs(10));
            assert!(wait >= Duration::from_secs(8) && wait <= Duration::from_secs(12), "{wait:?}");
        }
        let stamp = now_text();
        assert_eq!(stamp.len(), "2026-12-01 10:12:03".len(), "{stamp}");
    }
}
