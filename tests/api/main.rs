//! Integration tests: real servers over real HTTP, one test binary.

mod common;

mod app_webhooks;
mod apps;
mod auth;
mod backup;
mod binary;
mod crash;
mod dashboard;
mod delivery;
mod durability;
mod endpoints;
mod errors;
mod event_types;
mod events;
mod faults;
mod hardening;
mod health;
mod idempotency;
mod kayle;
mod listen;
mod logs;
mod malformed_requests;
mod openapi;
mod overview;
mod pings;
mod portal;
mod processes;
mod receivers;
mod recovery;
mod retention;
mod sessions;
mod slow_requests;
mod ssrf;
mod storage;
mod upgrade;
