//! Integration tests: real servers over real HTTP, one test binary.

mod common;

mod auth;
mod binary;
mod endpoints;
mod errors;
mod idempotency;
