//! The one place that mounts every route: the API's, then the dashboard as the fallback
//! for every path no route takes (which answers the API's 404 or 405 when it has no file
//! either). Neither the API nor the dashboard mounts the other.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::{self, Routes};
use crate::dashboard;

/// Mounts the API and the dashboard.
pub fn configure(cfg: &mut Routes) {
    cfg.configure(api::configure).default_service(web::to(fallback));
}

/// A dashboard file if the path names one, else the API's 404 or 405.
async fn fallback(req: HttpRequest) -> HttpResponse {
    match dashboard::asset_response(&req) {
        Some(response) => response,
        None => api::route_not_found(req).await,
    }
}
