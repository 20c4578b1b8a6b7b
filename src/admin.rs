//! The admin token: what `stile backup` (and anyone holding it) presents to the server's
//! `/admin` routes. It lives in the data directory, readable only by the server's user,
//! so whoever may read the data file may take a backup, and nobody else.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token's file name inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The token file of a data directory.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_TOKEN_FILE)
}

/// Reads the data directory's admin token, creating it (mode 0600) at the first start.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    let path = token_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let token = crate::secrets::new_admin_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// Reads an existing admin token (for `stile backup`).
pub fn read_token(data_dir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(token_path(data_dir))?.trim().to_string())
}
