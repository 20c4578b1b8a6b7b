//! The dashboard: the files of `static/`, embedded into the binary and served at `/`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// The embedded `static/` folder. Every build carries the bytes (`debug-embed`), so the
/// tests exercise exactly what ships; `build.rs` rebuilds when a file is added.
#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// The Content-Security-Policy of every dashboard response: same-origin everything, no
/// inline scripts, never in a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy of the app portal's pages: the dashboard's, except that
/// images may come from any `https:` origin (an application's logo) and the origins of
/// `[portal] frame_ancestors` may show it in a frame. Put in the app data at start-up.
#[derive(Debug, Clone)]
pub struct PortalPolicy(String);

impl PortalPolicy {
    /// The policy for these frame ancestors (none: the dashboard's).
    pub fn new(frame_ancestors: &[String]) -> Self {
        let policy = CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", "img-src 'self' data: https:");
        if frame_ancestors.is_empty() {
            return PortalPolicy(policy);
        }
        let ancestors = format!("frame-ancestors {}", frame_ancestors.join(" "));
        PortalPolicy(policy.replace("frame-ancestors 'none'", &ancestors))
    }
}

/// The response for a GET or HEAD of an embedded file; `None` when the request names no
/// file (the caller answers it as an unknown route).
pub fn asset_response(req: &HttpRequest) -> Option<HttpResponse> {
    let path = req.path().trim_start_matches('/');
    // A directory's page is its index.html (`/` the dashboard, `/portal/` the app portal).
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let asset = match Assets::get(&path) {
        Some(asset)
            if req.method() == actix_web::http::Method::GET || req.method() == actix_web::http::Method::HEAD =>
        {
            asset
        }
        _ => return None,
    };
    let portal = req.app_data::<actix_web::web::Data<PortalPolicy>>().filter(|_| path.starts_with("portal/"));
    let policy = portal.map_or(CONTENT_SECURITY_POLICY, |p| p.0.as_str()).to_string();
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..16]));
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if not_modified {
        return Some(response.finish());
    }
    Some(response.content_type(asset.metadata.mimetype()).body(asset.data.into_owned()))
}
