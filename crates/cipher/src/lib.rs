//! XChaCha20-Poly1305 for stile's payloads at rest.
//!
//! A crate of its own for one reason: the cipher's generic code is compiled where it is
//! instantiated, and unoptimised it is ~150x slower (4.6 ms to seal and open 16 KiB in a
//! debug build, 31 µs optimised). Instantiated here, `[profile.dev.package.stile-cipher]`
//! optimises it in debug builds too, so the test suite runs at real speed while stile
//! itself keeps fast debug builds. The sealed format and key handling live in stile
//! (`store::sealing`); this is only the cipher.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

/// The nonce length: 24 bytes, safe to choose at random for every message.
pub const NONCE_LEN: usize = 24;

/// XChaCha20-Poly1305 under one 256-bit key.
#[derive(Clone)]
pub struct Cipher(XChaCha20Poly1305);

impl Cipher {
    /// The cipher for this key.
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(XChaCha20Poly1305::new_from_slice(key).expect("a 32-byte key"))
    }

    /// `plain` encrypted and authenticated with `aad` (ciphertext then 16-byte tag).
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
        self.0
            .encrypt(&XNonce::from(*nonce), Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 seals any length that fits in memory")
    }

    /// The plaintext of `sealed`, if it is authentic for this key, nonce and `aad`.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(&XNonce::from(*nonce), Payload { msg: sealed, aad }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_only_with_its_key_nonce_and_aad() {
        let cipher = Cipher::new(&[1; 32]);
        let nonce = [2; NONCE_LEN];
        let sealed = cipher.seal(&nonce, b"row", b"hello");
        assert_eq!(sealed.len(), 5 + 16);
        assert_eq!(cipher.open(&nonce, b"row", &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(cipher.open(&nonce, b"other", &sealed), None);
        assert_eq!(cipher.open(&[3; NONCE_LEN], b"row", &sealed), None);
        assert_eq!(Cipher::new(&[9; 32]).open(&nonce, b"row", &sealed), None);
    }
}
