//! Payloads at rest: event payloads, the response excerpts of attempts and stored
//! idempotent responses are sealed with XChaCha20-Poly1305 under a key kept outside the
//! data file, so a copy of `stile.redb` (or a backup) alone does not reveal them.
//!
//! A sealed value is `SEALED_V1 || 24-byte random nonce || ciphertext+tag`, with the
//! row's key as associated data so a ciphertext cannot be moved to another row. Values
//! written before sealing existed are plaintext (JSON, which never starts with the
//! marker byte) and are read as they are. Text fields carry the same bytes in base64
//! after [`TEXT_PREFIX`].
//!
//! The key is 32 random bytes in a file (by default `<data_dir>/payload.key`, created
//! 0600 at first start). The data file records the key's id (a hash of it), so a missing
//! or different key stops start-up instead of writing data the right key cannot read.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use stile_cipher::{Cipher, NONCE_LEN};

/// The first byte of a value sealed by this version.
const SEALED_V1: u8 = 0x01;

/// What a sealed text field starts with.
pub const TEXT_PREFIX: &str = "stile-sealed:1:";

/// The name of the key file in the data directory unless configured elsewhere.
pub const KEY_FILE_NAME: &str = "payload.key";

/// Why the payload key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or created.
    #[error("the payload key file {0} could not be read or created: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The file does not hold a key.
    #[error("the payload key file {0} must hold exactly 32 bytes (or 64 hex digits); it holds {1} bytes")]
    Malformed(PathBuf, usize),
    /// Others may read the file.
    #[error("the payload key file {0} is readable by other users (mode {1:o}); run `chmod 600 {0}`")]
    Exposed(PathBuf, u32),
    /// The data file's payloads were sealed with a key, and the file is gone.
    #[error(
        "the data file's payloads are encrypted with key {id}, but the payload key file {path} does not exist: restore it (or point `[store] payload_key_file` at it); without it the payloads cannot be read"
    )]
    Missing {
        /// Where the key was looked for.
        path: PathBuf,
        /// The id the data file records.
        id: String,
    },
    /// `stile rotate-payload-key` was interrupted.
    #[error(
        "a payload key rotation was interrupted (the new key is in {0}): run `stile rotate-payload-key` again to finish it before starting the server"
    )]
    RotationUnfinished(PathBuf),
    /// The key is not the one the data file's payloads were sealed with.
    #[error(
        "the payload key in {path} (key {found}) is not the one this data file's payloads are encrypted with (key {expected}): use the right key file"
    )]
    Wrong {
        /// Where the key was read.
        path: PathBuf,
        /// The id of the key read.
        found: String,
        /// The id the data file records.
        expected: String,
    },
}

/// A value that is sealed but does not open (damaged, or another key's).
#[derive(Debug, thiserror::Error)]
#[error("a stored payload could not be decrypted (damaged, or sealed with another key)")]
pub struct OpenError;

/// Seals and opens stored values with the payload key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Cipher,
    id: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for this key.
    pub fn new(key: &[u8; 32]) -> Sealer {
        let cipher = Cipher::new(key);
        let digest = Sha256::new().chain_update(b"stile payload key\0").chain_update(key).finalize();
        let id = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        Sealer { cipher, id }
    }

    /// The key's id, as the data file records it (a hash, not the key).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The key's id as people read it (16 hex digits).
    pub fn key_id(&self) -> String {
        format!("{:016x}", self.id)
    }

    /// `plain` sealed for the row `row`.
    pub fn seal(&self, row: &[u8], plain: &[u8]) -> Vec<u8> {
        // From the thread's CSPRNG (ChaCha12, seeded and reseeded from the OS): a system
        // call per nonce cost the writer a quarter of its sealing.
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let sealed = self.cipher.seal(&nonce, row, plain);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a stored value of row `row`: opened if sealed, as it is if it was
    /// stored before sealing (plaintext).
    pub fn open<'a>(&self, row: &[u8], stored: &'a [u8]) -> Result<Cow<'a, [u8]>, OpenError> {
        match stored.first() {
            Some(&SEALED_V1) if stored.len() > 1 + NONCE_LEN => {
                let nonce: [u8; NONCE_LEN] = stored[1..1 + NONCE_LEN].try_into().expect("24 bytes");
                let plain = self.cipher.open(&nonce, row, &stored[1 + NONCE_LEN..]).ok_or(OpenError)?;
                Ok(Cow::Owned(plain))
            }
            Some(&SEALED_V1) => Err(OpenError),
            _ => Ok(Cow::Borrowed(stored)),
        }
    }

    /// `text` sealed for row `row`, as text.
    pub fn seal_text(&self, row: &[u8], text: &str) -> String {
        let sealed = self.seal(row, text.as_bytes());
        format!("{TEXT_PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed))
    }

    /// The plaintext of a stored text field: opened if sealed, as it is otherwise.
    pub fn open_text(&self, row: &[u8], stored: String) -> Result<String, OpenError> {
        open_text_with(row, stored, |row, sealed| self.open(row, sealed).map(Cow::into_owned))
    }
}

/// The plaintext of a stored text field, opening a sealed one with `open`.
pub fn open_text_with(
    row: &[u8],
    stored: String,
    open: impl FnOnce(&[u8], &[u8]) -> Result<Vec<u8>, OpenError>,
) -> Result<String, OpenError> {
    let Some(encoded) = stored.strip_prefix(TEXT_PREFIX) else { return Ok(stored) };
    let sealed = base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded).map_err(|_| OpenError)?;
    String::from_utf8(open(row, &sealed)?).map_err(|_| OpenError)
}

/// Where a key rotation keeps the new key until it is done: `<key file>.new`.
pub fn pending_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// The plaintext of a value during a rotation: sealed with `new` (already rotated), with
/// `old`, or plaintext.
pub fn open_either<'a>(new: &Sealer, old: &Sealer, row: &[u8], stored: &'a [u8]) -> Result<Cow<'a, [u8]>, OpenError> {
    new.open(row, stored).or_else(|_| old.open(row, stored))
}

/// A stored text field sealed again under `new` during a rotation: opened with whichever of
/// `new` and `old` sealed it (as it is, if in clear).
pub fn reseal_text(old: &Sealer, new: &Sealer, row: &[u8], stored: String) -> Result<String, OpenError> {
    let plain = open_text_with(row, stored, |row, sealed| Ok(open_either(new, old, row, sealed)?.into_owned()))?;
    Ok(new.seal_text(row, &plain))
}

/// Reads the key in `path`, or creates one there (0600) when `create` allows it and the
/// file does not exist. Returns the sealer and whether the key was created now.
pub fn load_or_create_key(path: &Path, create: bool) -> Result<(Sealer, bool), KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            check_private(path)?;
            Ok((Sealer::new(&parse_key(path, &bytes)?), false))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).expect("the OS random number generator");
            write_private(path, &key).map_err(|e| KeyError::Io(path.to_path_buf(), e))?;
            Ok((Sealer::new(&key), true))
        }
        Err(err) => Err(KeyError::Io(path.to_path_buf(), err)),
    }
}

/// The key in a key file: 32 raw bytes, or 64 hex digits (with surrounding whitespace,
/// as `systemd-creds` or an editor may leave).
fn parse_key(path: &Path, bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(bytes).map(str::trim).unwrap_or("");
    let mut key = [0u8; 32];
    match hex::decode_to_slice(text, &mut key) {
        Ok(()) => Ok(key),
        Err(_) => Err(KeyError::Malformed(path.to_path_buf(), bytes.len())),
    }
}

/// Refuses a key file that group or others may read.
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| KeyError::Io(path.to_path_buf(), e))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed(path.to_path_buf(), mode & 0o777));
    }
    Ok(())
}

/// Writes a new key file readable by its owner only, durably, without replacing one.
fn write_private(path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        super::file_modes::create_private_dir(dir)?;
    }
    let mut file = super::file_modes::create_owner_only(path)?;
    file.write_all(key)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row_and_plaintext_passes_through() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(b"row-1", b"{\"secret\":\"marker\"}");
        assert_eq!(sealed.len(), 1 + 24 + 19 + 16);
        assert!(!sealed.windows(6).any(|w| w == b"marker"));
        assert_eq!(&*sealer.open(b"row-1", &sealed).unwrap(), b"{\"secret\":\"marker\"}");
        assert!(sealer.open(b"row-2", &sealed).is_err(), "moved to another row");
        assert!(Sealer::new(&[8; 32]).open(b"row-1", &sealed).is_err(), "another key");
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(sealer.open(b"row-1", &damaged).is_err());
        assert_ne!(sealer.seal(b"row-1", b"same"), sealer.seal(b"row-1", b"same"), "a fresh nonce each time");
        // Written before sealing: read as it is.
        assert_eq!(&*sealer.open(b"row-1", b"{\"old\":1}").unwrap(), b"{\"old\":1}");

        let text = sealer.seal_text(b"row-1", "a response body");
        assert!(text.starts_with(TEXT_PREFIX) && !text.contains("response"));
        assert_eq!(sealer.open_text(b"row-1", text).unwrap(), "a response body");
        assert_eq!(sealer.open_text(b"row-1", "plain old text".into()).unwrap(), "plain old text");
    }

    #[test]
    fn key_files_are_created_private_read_back_and_refused_when_exposed_or_malformed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(KEY_FILE_NAME);
        assert!(matches!(load_or_create_key(&path, false), Err(KeyError::Io(..))));
        let (made, created) = load_or_create_key(&path, true).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (read, created) = load_or_create_key(&path, true).unwrap();
        assert!(!created);
        assert_eq!(read.id(), made.id());

        let hex_path = dir.path().join("hex.key");
        std::fs::write(&hex_path, format!("{}\n", hex::encode([7u8; 32]))).unwrap();
        std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_or_create_key(&hex_path, false).unwrap().0.id(), Sealer::new(&[7; 32]).id());

        std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create_key(&hex_path, false), Err(KeyError::Exposed(..))));
        std::fs::write(&hex_path, b"short").unwrap();
        std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_or_create_key(&hex_path, false), Err(KeyError::Malformed(_, 5))));
    }
}
