//! `stile listen`: deliveries from a (remote) stile to a developer's machine over one
//! WebSocket the CLI opens, so no tunnel is needed. [`client`] is the CLI's side; what
//! travels on the connection is `delivery::listen_wire` (the engine's side of it, which the
//! CLI reuses with the engine's HTTP sender). The server's side is `api::listen` (the
//! connection) and `delivery::listeners` (the engine's hand-off to it).

pub mod client;
