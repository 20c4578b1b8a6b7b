//! `/admin` routes, outside the API keys (they cover both modes): `GET /admin/backup`.
//! They need `Authorization: Bearer <admin token>` (see [`crate::admin`]).

use std::io::Read;

use actix_web::body::SizedStream;
use actix_web::{HttpRequest, HttpResponse, get, web};

use super::metrics::bearer_token_is;
use super::{AppState, Routes, blocking};
use crate::error::{ApiError, ErrorCode};
use crate::store::redb::BackupError;

/// Bytes per chunk of the streamed backup.
const CHUNK: usize = 256 * 1024;

/// Mounts the admin routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(backup);
}

fn check_token(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if bearer_token_is(req, &state.admin_token) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::ApiKeyInvalid,
        "/admin routes need `Authorization: Bearer <token>`, the token in admin.token in the server's data directory.",
    ))
}

/// Download a consistent copy of the whole store, as a redb file.
///
/// Taken while the server runs; `stile backup <file>` calls this. The copy is written next
/// to the data file, unlinked at once (its open handle keeps it until the download ends,
/// so nothing is left behind whatever happens), then streamed.
#[utoipa::path(tag = "Operations", security(("admin_token" = [])),
    responses((status = 200, description = "The copy, a redb file.", body = Vec<u8>,
        content_type = "application/octet-stream")))]
#[get("/admin/backup")]
async fn backup(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    check_token(&state, &req)?;
    let dir = state.config.server.data_dir.clone();
    let path = dir.join(format!("backup-{}.redb.partial", ulid::Ulid::new()));
    let (file, size, rows) = blocking(&state, move |store| {
        let opened = store.backup_to(&path).and_then(|summary| {
            let file = std::fs::File::open(&path).map_err(BackupError::target)?;
            let size = file.metadata().map_err(BackupError::target)?.len();
            Ok((file, size, summary.rows))
        });
        // Unlinked whatever happened: the open handle keeps a good copy for the download.
        let _ = std::fs::remove_file(&path);
        opened
    })
    .await?;
    tracing::info!(bytes = size, rows, "backup taken");
    let (chunks, body) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    std::thread::Builder::new()
        .name("stile-backup".into())
        .spawn(move || {
            let mut file = file;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let chunk = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(web::Bytes::from(buf))
                    }
                    Err(err) => Err(err),
                };
                let failed = chunk.is_err();
                if chunks.blocking_send(chunk).is_err() || failed {
                    break; // the client went away, or the file could not be read
                }
            }
        })
        .map_err(|e| ApiError::internal(&e))?;
    let stream = futures_util::stream::unfold(body, |mut body| async move { body.recv().await.map(|c| (c, body)) });
    let name = format!("stile-backup-{}.redb", state.engine.clock().now());
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("stile-backup-rows", rows.to_string()))
        .body(SizedStream::new(size, stream)))
}
