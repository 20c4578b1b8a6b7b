//! `stile listen`: deliveries from a (remote) stile to a developer's machine over one
//! WebSocket the CLI opens, so no tunnel is needed. [`wire`] is what travels on it;
//! [`client`] is the CLI's side. The server's side is `api::listen` (the connection) and
//! `delivery::listeners` (the engine's hand-off to it).

pub mod client;
pub mod wire;
