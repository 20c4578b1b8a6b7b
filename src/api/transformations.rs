//! Endpoints' transformations in the Stile API: the `transformation` field's input and
//! view, an endpoint's versions (`GET /v1/webhook_endpoints/:id/transformation/versions`),
//! and `POST /v1/transformations/test`, a transformation tried on an event before it is
//! saved (the dashboard's and the portal's *Try it*; nothing is stored or sent).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::endpoint_fields::require_endpoint;
use super::extract::JsonBody;
use super::list::ListResponse;
use super::tried_event::tried_event;
use super::{AppState, Caller, Routes};
use crate::error::ApiError;
use crate::store::model::{TransformationSave, TransformationVersion};
use crate::transform::{MAX_CODE_BYTES, Method, Transformed, Webhook};

/// Mounts the routes.
pub fn configure(cfg: &mut Routes) {
    cfg.service(list_versions).service(test_transformation);
}

/// The OpenAPI tag of the routes.
const TAG: &str = "Webhook endpoints";

/// An endpoint's `transformation` as a request gives it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "function handler(webhook) {\n  webhook.payload = { text: `${webhook.eventType}: ${webhook.payload.data.id}` };\n  return webhook;\n}", "enabled": true}))]
pub struct TransformationIn {
    /// JavaScript that declares `function handler(webhook)`: it receives `{method, url,
    /// headers, payload, eventType}` and returns it changed, or with `cancel: true`. At
    /// most 16 KiB. See docs/transformations.md.
    pub code: Option<String>,
    /// Whether deliveries go through it (default `true`).
    pub enabled: Option<bool>,
}

impl TransformationIn {
    /// The checks that need no sandbox (the service compiles it): present, not empty, not
    /// too long. Who saves it is `by`; when, the service says.
    pub(crate) fn validate(self, by: String) -> Result<TransformationSave, ApiError> {
        let code = checked_code("transformation.code", self.code)?;
        Ok(TransformationSave { code, enabled: self.enabled.unwrap_or(true), by, at: 0 })
    }
}

/// JavaScript given as `param`, checked as far as it can be without the sandbox: present,
/// not empty, not too long.
fn checked_code(param: &'static str, code: Option<String>) -> Result<String, ApiError> {
    let code = code.ok_or_else(|| ApiError::missing(param))?;
    if code.trim().is_empty() {
        return Err(ApiError::invalid(param, format!("`{param}` must not be empty.")));
    }
    if code.len() > MAX_CODE_BYTES {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be at most {MAX_CODE_BYTES} bytes, not {}.", code.len()),
        ));
    }
    Ok(code)
}

/// Who makes a request, as a transformation's version records it: the API key's shown
/// prefix (as `stile keys list` shows it), or the portal session.
pub(crate) fn saved_by(req: &HttpRequest, caller: &Caller) -> String {
    if let Some(portal) = caller.portal {
        return format!("portal session {}", portal.session);
    }
    let key = super::auth::presented_key(req.headers().get(actix_web::http::header::AUTHORIZATION));
    key.map_or_else(|_| "an API key".into(), |key| crate::secrets::api_key_shown_prefix(&key))
}

/// One saved version of an endpoint's transformation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransformationVersionShown {
    /// Always `"transformation_version"`.
    pub object: &'static str,
    /// Its number.
    pub version: u32,
    /// Whether it is the one in force.
    pub current: bool,
    /// The JavaScript.
    pub code: String,
    /// Whether deliveries went (or go) through it.
    pub enabled: bool,
    /// When it was saved (Unix seconds).
    pub saved_at: i64,
    /// Who saved it.
    pub saved_by: String,
}

impl TransformationVersionShown {
    fn of(version: &TransformationVersion, current: bool) -> Self {
        TransformationVersionShown {
            object: "transformation_version",
            version: version.version,
            current,
            code: version.code.clone(),
            enabled: version.enabled,
            saved_at: version.saved_at,
            saved_by: version.saved_by.clone(),
        }
    }
}

/// List a transformation's versions.
///
/// The version in force and the 20 before it, newest first (empty for an endpoint that
/// has none). To go back to one, save its `code` again: that makes a new version.
#[utoipa::path(tag = TAG, params(("id" = crate::ids::EndpointId, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The versions, newest first.", body = ListResponse<TransformationVersionShown>)))]
#[get("/webhook_endpoints/{id}/transformation/versions")]
async fn list_versions(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = require_endpoint(&state, caller.owner, &path).await?;
    let versions: Vec<_> = endpoint
        .transformation
        .iter()
        .flat_map(|t| {
            std::iter::once(TransformationVersionShown::of(&t.current, true))
                .chain(t.earlier.iter().map(|v| TransformationVersionShown::of(v, false)))
        })
        .collect();
    let url = format!("/v1/webhook_endpoints/{}/transformation/versions", endpoint.id);
    Ok(HttpResponse::Ok().json(ListResponse::new(url, versions, false)))
}

/// The body of `POST /v1/transformations/test`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "function handler(webhook) { webhook.payload = {amount: webhook.payload.data.amount}; return webhook; }", "event_type": "invoice.paid", "url": "https://example.com/hooks"}))]
pub struct TransformationTestIn {
    /// The code, as an endpoint's `transformation.code` takes it.
    pub code: Option<String>,
    /// The event object to try it on, as an endpoint receives one (`type`, `data`, ...).
    #[schema(value_type = Option<Object>)]
    pub event: Option<serde_json::Value>,
    /// Or: try it on this type's example from the event type catalogue.
    pub event_type: Option<String>,
    /// The endpoint's URL the handler receives (default `https://example.com/webhook`).
    pub url: Option<String>,
    /// The endpoint's own headers the handler receives (default none).
    pub headers: Option<BTreeMap<String, String>>,
}

/// What a transformation made of an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransformationTest {
    /// Always `"transformation_test"`.
    pub object: &'static str,
    /// Why no request would be sent (the code does not compile, the handler threw, ran
    /// out of time or memory, returned no request, or one a delivery refuses: then the
    /// request is shown too); null when it would be sent.
    pub error: Option<String>,
    /// Whether it cancelled the delivery.
    pub cancel: bool,
    /// The method the request would go with.
    pub method: Option<String>,
    /// Where it would go.
    pub url: Option<String>,
    /// The endpoint's own headers it would carry (stile's signature headers come too).
    pub headers: Option<BTreeMap<String, String>>,
    /// The body it would carry, as JSON.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// The event object it was tried on.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// Try a transformation.
///
/// Runs the code, in the same sandbox and within the same limits as deliveries, on the
/// event given or the example of the event type given, and answers the request it would
/// make (or why none). Nothing is stored or sent.
#[utoipa::path(tag = TAG, request_body = TransformationTestIn,
    responses((status = 200, description = "What the transformation made of the event.", body = TransformationTest)))]
#[post("/transformations/test")]
async fn test_transformation(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<TransformationTestIn>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let code = checked_code("code", input.code)?;
    let event = tried_event(&state, caller, input.event, input.event_type)?;
    let headers = match input.headers {
        Some(headers) => super::endpoint_fields::validate_headers(headers)?,
        None => BTreeMap::new(),
    };
    let webhook = Webhook {
        method: Method::Post,
        url: input.url.unwrap_or_else(|| "https://example.com/webhook".into()),
        headers,
        payload: serde_json::to_vec(&event).map_err(|e| ApiError::internal(&e))?.into(),
        event_type: event["type"].as_str().unwrap_or_default().to_string(),
    };
    let mut answer = TransformationTest {
        object: "transformation_test",
        error: None,
        cancel: false,
        method: None,
        url: None,
        headers: None,
        payload: None,
        event,
    };
    match state.engine.transformer().try_run(&code, webhook).await {
        Ok(Transformed::Cancel) => answer.cancel = true,
        Ok(Transformed::Send(made)) => {
            // What a delivery would refuse, the try says (no endpoint: no credentials rule).
            if let Err(why) = crate::delivery::check_transformed(&state.targets, &made, None) {
                answer.error = Some(format!("the handler {why}; a delivery would send nothing"));
            }
            answer.payload = serde_json::from_slice(&made.payload).ok();
            answer.method = Some(made.method.as_str().into());
            answer.url = Some(made.url);
            answer.headers = Some(made.headers);
        }
        Err(err) => answer.error = Some(err.to_string()),
    }
    Ok(HttpResponse::Ok().json(answer))
}
