//! `stile backup`: downloads a consistent copy of a running server's store from
//! `GET /admin/backup` into a file, safely: it is written beside the target, synced, and
//! renamed into place only once complete and readable as a stile data file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Downloads the backup from the server at `base` into `file`; returns the size of the
/// file written, in bytes.
pub fn download(base: &str, token: &str, file: &Path) -> anyhow::Result<u64> {
    if file.exists() {
        bail!("{} already exists; choose a new file name", file.display());
    }
    let partial = PathBuf::from(format!("{}.partial", file.display()));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().into();
    let url = format!("{}/admin/backup", base.trim_end_matches('/'));
    let mut response = agent
        .get(&url)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .with_context(|| format!("cannot reach stile at {url}; is the server running?"))?;
    if response.status() != 200 {
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        // The API's error object says why (a server on Postgres says to use pg_dump).
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let why = parsed["error"]["message"].as_str().unwrap_or(&text);
        bail!("stile at {base} did not make a backup ({status}): {why}");
    }
    let written = (|| -> anyhow::Result<u64> {
        let mut out = crate::store::file_modes::create_owner_only(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        std::io::copy(&mut response.body_mut().as_reader(), &mut out).context("the download broke off")?;
        out.flush()?;
        out.sync_all()?;
        check_readable(&partial)?;
        std::fs::rename(&partial, file).with_context(|| format!("cannot rename into {}", file.display()))?;
        Ok(std::fs::metadata(file)?.len())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Checks the download is a whole data file, so a truncated or garbled download is never
/// kept as a backup.
fn check_readable(path: &Path) -> anyhow::Result<()> {
    crate::store::redb::check_data_file(path).context("the downloaded file is not a usable backup")
}
