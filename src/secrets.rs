//! Generation and hashing of the two kinds of secret: API keys and endpoint signing
//! secrets. All randomness comes from the operating system.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::mode::Mode;

/// Random characters after an API key's `vk_test_` / `vk_live_` prefix (about 190 bits).
const API_KEY_RANDOM_CHARS: usize = 32;

/// Random characters of a key kept as its displayed prefix, enough to tell keys apart in
/// `stile keys list` while revealing too little to matter.
const API_KEY_SHOWN_CHARS: usize = 8;

/// Random bytes in an endpoint signing secret (the HMAC key of Standard Webhooks).
const ENDPOINT_SECRET_BYTES: usize = 32;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills a buffer with random bytes from the OS. Failing to get randomness is not
/// recoverable for a server that must mint secrets, so it aborts the request's thread
/// with a clear message rather than minting a weak secret.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A new admin token: `stile_admin_` + 64 hex characters (32 random bytes).
pub fn new_admin_token() -> String {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    format!("stile_admin_{}", hex::encode(bytes))
}

/// What every portal token starts with, so the key check knows one when it sees it.
pub const PORTAL_TOKEN_PREFIX: &str = "stile_portal_";

/// A new portal token: [`PORTAL_TOKEN_PREFIX`] + 64 hex characters (32 random bytes).
/// Stored only as its SHA-256 ([`hash_api_key`]).
pub fn new_portal_token() -> String {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    format!("{PORTAL_TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// A new API key of the given mode: prefix + 32 base62 characters.
pub fn new_api_key(mode: Mode) -> String {
    let mut key = String::from(mode.key_prefix());
    let mut pool = [0u8; 64];
    while key.len() < mode.key_prefix().len() + API_KEY_RANDOM_CHARS {
        random_bytes(&mut pool);
        // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
        for byte in pool.iter().filter(|b| **b < 248) {
            if key.len() == mode.key_prefix().len() + API_KEY_RANDOM_CHARS {
                break;
            }
            key.push(BASE62[(*byte % 62) as usize] as char);
        }
    }
    key
}

/// The SHA-256 of an API key: the only form in which keys are stored or compared.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The part of a key that may be shown: the mode prefix and the first few characters.
pub fn api_key_shown_prefix(key: &str) -> String {
    let cut = Mode::of_key(key).map_or(0, |m| m.key_prefix().len()) + API_KEY_SHOWN_CHARS;
    key.chars().take(cut).collect()
}

/// A new endpoint signing secret: `whsec_` + base64 of 32 random bytes, the form
/// Standard Webhooks libraries expect.
pub fn new_endpoint_secret() -> String {
    let mut bytes = [0u8; ENDPOINT_SECRET_BYTES];
    random_bytes(&mut bytes);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_mode_prefix_and_enough_random_characters() {
        let a = new_api_key(Mode::Test);
        let b = new_api_key(Mode::Test);
        assert!(a.starts_with("vk_test_"));
        assert_eq!(a.len(), "vk_test_".len() + API_KEY_RANDOM_CHARS);
        assert!(a["vk_test_".len()..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(new_api_key(Mode::Live).starts_with("vk_live_"));
        assert_eq!(api_key_shown_prefix(&a), a[..16]);
    }

    #[test]
    fn endpoint_secrets_decode_to_32_bytes() {
        let secret = new_endpoint_secret();
        let body = secret.strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(secret, new_endpoint_secret());
    }

    #[test]
    fn key_hash_is_sha256() {
        // sha256("abc")
        assert_eq!(
            hex::encode(hash_api_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
