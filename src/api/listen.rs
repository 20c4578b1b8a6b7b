//! `GET /v1/listen`: the WebSocket `stile listen` holds. The key's listener endpoint in
//! the request's application is found (or made), registered with the engine's
//! [`Listeners`], and its deliveries travel down this connection; each result comes back
//! up and is recorded as the attempt's outcome.
//!
//! WebSocket rather than Server-Sent Events plus POSTs: one connection carries both
//! directions, so a result cannot arrive on a different server process or connection
//! than the delivery it answers, and ordinary reverse proxies pass it with the two
//! `Upgrade` headers (see the nginx snippet in docs/operations.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use serde::Deserialize;

use super::auth::presented_key;
use super::endpoint_fields::{Subscribable, validate_event_types};
use super::extract::QueryParams;
use super::{AppState, Caller, Routes};
use crate::delivery::listen_wire::{self as wire, ClientMessage, ServerMessage};
use crate::delivery::listeners::Connection;
use crate::error::{ApiError, ErrorCode};
use crate::event_types::WILDCARD;
use crate::secrets::hash_api_key;
use crate::store::model::{EndpointStatus, ListenRequest};
use crate::target_policy::TargetPolicy;

/// How often the server pings a listen connection; one silent for three pings is dropped.
const PING_EVERY: Duration = Duration::from_secs(20);

/// The largest message a CLI may send (a result carries at most 2 KiB of body).
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Mounts the route.
pub fn configure(cfg: &mut Routes) {
    cfg.service(listen);
}

/// The query of `GET /v1/listen`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListenQuery {
    /// Where the CLI forwards deliveries, shown as the endpoint's URL: checked as an
    /// endpoint URL of development mode (`https://`, or `http://` to a loopback host),
    /// and used only by the CLI, never connected to by the server.
    forward_to: Option<String>,
    /// Event types to receive, comma-separated (default: all).
    events: Option<String>,
}

/// Checks `forward_to` as an endpoint URL of development mode (https to any host that
/// may receive webhooks at all, http to loopback). The server never connects to it:
/// deliveries and pings go down the connection, and the CLI connects to its own target.
fn validate_forward_to(targets: &TargetPolicy, raw: Option<String>) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::missing("forward_to"))?;
    match targets.for_development().check_url(&raw) {
        Ok(_) => Ok(raw),
        Err(message) => Err(ApiError::invalid("forward_to", message.replace("`url`", "`forward_to`"))),
    }
}

/// Listen for deliveries (a WebSocket).
///
/// What `stile listen` connects to. Upgrades to a WebSocket over which the key's listener
/// endpoint in this application receives its deliveries; see docs/listen.md.
#[utoipa::path(tag = "Webhook endpoints", params(ListenQuery),
    responses((status = 101, description = "Switched to the WebSocket protocol.")))]
#[get("/listen")]
async fn listen(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListenQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let forward_to = validate_forward_to(&state.targets, query.forward_to)?;
    let events: Vec<String> = match query.events.as_deref() {
        None | Some("") => vec![WILDCARD.to_string()],
        Some(list) => list.split(',').map(|e| e.trim().to_string()).collect(),
    };
    let events = validate_event_types(&Subscribable::new(&state.event_types, caller.mode), "events", events)?;
    let key = presented_key(req.headers().get(header::AUTHORIZATION))?;
    let (response, session, messages) = actix_ws::handle(&req, payload).map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            "GET /v1/listen is a WebSocket: connect with `stile listen --forward-to <url>`.",
        )
    })?;
    let owner = caller.owner;
    let key_hash = hash_api_key(&key);
    let request = ListenRequest { forward_to, events, now: state.engine.clock().now() };
    let (endpoint, created, secret) = state.endpoints().listener(owner, key_hash, request).await?;

    let listeners = Arc::clone(state.engine.listeners());
    let connection = listeners.connect(endpoint.id);
    state.engine.listener_connected(endpoint.id).await?;
    tracing::info!(endpoint = %endpoint.id, app = %owner.app, created, "stile listen connected");
    let ready = wire::Ready {
        endpoint_id: endpoint.id.to_string(),
        secret,
        created,
        status: if endpoint.status == EndpointStatus::Enabled { "enabled" } else { "disabled" }.into(),
        timeout_ms: state.config.delivery.timeout.as_millis() as u64,
    };
    // From here the connection carries a session's frames for as long as it lasts, not
    // requests that must arrive within the request timeout (marked only once nothing can
    // fail before the 101 goes out).
    if let Some(connection) = super::connection::Connection::of(&req) {
        connection.mark_upgraded();
    }
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut connection = connection;
        let ended = serve_connection(session, messages, &mut connection, ready).await;
        listeners.disconnect(&connection);
        tracing::info!(endpoint = %connection.endpoint, reason = ended, "stile listen disconnected");
        let last_seen = state.engine.clock().now();
        let id = connection.endpoint;
        let replaced = listeners.is_connected(id);
        state.endpoints().listener_left(owner, id, last_seen, replaced).await;
    });
    Ok(response)
}

/// Runs one connection until it ends; answers why, for the log.
async fn serve_connection(
    mut session: actix_ws::Session,
    messages: actix_ws::MessageStream,
    connection: &mut Connection,
    ready: wire::Ready,
) -> &'static str {
    let mut messages = messages.max_frame_size(MAX_CLIENT_FRAME).aggregate_continuations();
    if send(&mut session, &ServerMessage::Ready(ready)).await.is_err() {
        return "closed before it was ready";
    }
    let mut waiting: HashMap<String, tokio::sync::oneshot::Sender<wire::DeliveryResult>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let (close, why) = loop {
        tokio::select! {
            forward = connection.inbox.recv() => match forward {
                Some(forward) => {
                    let id = forward.delivery.delivery_id.clone();
                    waiting.insert(id, forward.reply);
                    if send(&mut session, &ServerMessage::Delivery(forward.delivery)).await.is_err() {
                        break (None, "the CLI went away");
                    }
                }
                None => break (Some(CloseCode::Restart), "replaced by a newer connection, or the server is stopping"),
            },
            message = messages.next() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Result(result)) => {
                            if let Some(reply) = waiting.remove(&result.delivery_id) {
                                let _ = reply.send(result);
                            }
                        }
                        Err(_) => break (Some(CloseCode::Invalid), "sent a message that is not a result"),
                    },
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break (None, "the CLI went away");
                        }
                    }
                    Some(Ok(AggregatedMessage::Close(_))) | None => break (None, "the CLI closed the connection"),
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break (Some(CloseCode::Protocol), "a protocol error"),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > PING_EVERY * 3 {
                    break (Some(CloseCode::Away), "no answer to three pings");
                }
                if session.ping(b"").await.is_err() {
                    break (None, "the CLI went away");
                }
            }
        }
    };
    if let Some(code) = close {
        let _ = session.close(Some(CloseReason { code, description: Some(why.to_string()) })).await;
    }
    why
}

/// Sends one message as a JSON text frame.
async fn send(session: &mut actix_ws::Session, message: &ServerMessage) -> Result<(), actix_ws::Closed> {
    session.text(serde_json::to_string(message).expect("listen messages serialise")).await
}
