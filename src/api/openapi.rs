//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route.
//!
//! The document is collected from the handlers as [`super::configure`] mounts them
//! ([`super::Routes`] records each handler's `#[utoipa::path]` operation), so a route
//! cannot be served without being documented. What every route of a kind shares (the API
//! key of `/v1`, the errors of the extractors and middleware) is added here, next to the
//! rules that produce it.

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, get};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_actix_web::AppExt;

use crate::error::ErrorEnvelope;

/// The security scheme of the `/v1` API: an API key as a bearer token.
const API_KEY: &str = "api_key";

/// The document, built once, with the route patterns it names.
pub struct ApiDocument {
    /// The document as JSON.
    json: Bytes,
    /// Every documented path, as a pattern requests are matched against, with its methods
    /// as an `Allow` header lists them (`GET, POST`).
    paths: Vec<(ResourceDef, String)>,
}

impl ApiDocument {
    /// The document as served.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The methods the route with this path takes (`GET, POST`), if some route has it.
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.paths.iter().find(|(def, _)| def.is_match(path)).map(|(_, methods)| methods.as_str())
    }
}

/// The document of this server's routes, built on first use.
pub fn document() -> &'static ApiDocument {
    static DOCUMENT: OnceLock<ApiDocument> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api = build();
        let paths = (api.paths.paths.iter_mut())
            .map(|(path, item)| {
                let methods: Vec<String> = operations(item).map(|(method, _)| method.to_uppercase()).collect();
                (ResourceDef::new(path.as_str()), methods.join(", "))
            })
            .collect();
        let json = api.to_json().expect("the OpenAPI document serialises");
        ApiDocument { json: Bytes::from(json), paths }
    })
}

/// The OpenAPI document of this API.
///
/// Anyone can fetch it without a key: it describes the API and holds no data.
#[utoipa::path(tag = "Operations", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object)))]
#[get("/v1/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document().json.clone())
}

/// Mounts every route on a throwaway app to collect the operations, then completes them.
fn build() -> OpenApi {
    let (_, mut api) = App::new().into_utoipa_app().configure(super::configure).split_for_parts();
    api.info = utoipa::openapi::InfoBuilder::new()
        .title("stile")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The Stile webhook API, served by a local stile: endpoints, events, deliveries and \
             verification sessions. Authenticate with an API key as a bearer token \
             (`Authorization: Bearer vk_test_...`); errors are `{\"error\": {...}}` objects. \
             The app-scoped webhooks API is served too, at \
             `/apps/{appId}/webhooks`, in its own envelope (`{\"success\", \"data\"}`, errors \
             `{\"success\": false, \"error\": {\"code\", \"message\"}}`), and the Kayle endpoints \
             API at `/v1/webhooks/endpoints` (`{\"data\", \"error\"}`).",
        ))
        .license(Some(utoipa::openapi::License::new(env!("CARGO_PKG_LICENSE"))))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    let mut schemas = vec![
        (ErrorEnvelope::name().into_owned(), ErrorEnvelope::schema()),
        (super::app_webhooks::ErrorOut::name().into_owned(), super::app_webhooks::ErrorOut::schema()),
        (super::kayle::ErrorOut::name().into_owned(), super::kayle::ErrorOut::schema()),
    ];
    ErrorEnvelope::schemas(&mut schemas);
    super::app_webhooks::ErrorOut::schemas(&mut schemas);
    super::kayle::ErrorOut::schemas(&mut schemas);
    components.schemas.extend(schemas);
    let bearer = |description: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(description.to_string());
        SecurityScheme::Http(http)
    };
    components.add_security_scheme(
        API_KEY,
        bearer("An API key (`vk_test_...` or `vk_live_...`); its mode is the data it sees. HTTP Basic with the key as user name works too."),
    );
    components.add_security_scheme("metrics_token", bearer("`server.metrics_token`, if it is set."));
    components.add_security_scheme("admin_token", bearer("The token in `admin.token` in the server's data directory."));
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            complete(path, method, operation);
        }
    }
    api
}

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// Adds what the operation shares with every route of its kind: the API key under `/v1`,
/// and the errors the extractors and middleware answer with.
fn complete(path: &str, method: &str, op: &mut Operation) {
    // The app-scoped dialect names its application in the path and has its own envelope.
    let dialect = path.starts_with("/apps/");
    let authenticated = (path.starts_with("/v1/") || dialect) && op.security.is_none();
    if authenticated {
        op.security = Some(vec![SecurityRequirement::new(API_KEY, Vec::<String>::new())]);
        if !dialect {
            op.parameters.get_or_insert_with(Vec::new).push(app_header().into());
        }
    }
    let has_body = op.request_body.is_some();
    let has_query = op.parameters.iter().flatten().any(
        |p| matches!(p, utoipa::openapi::RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query),
    );
    let post = method == "post";
    let mut errors: Vec<(&str, &str)> = Vec::new();
    // Every authenticated route takes `Stile-App`, whose value may be refused.
    if has_body || has_query || authenticated {
        errors.push(("400", "The request is invalid: a parameter is missing, unknown or has a value that is not allowed (`param` names it), the body is not a JSON object, the `Idempotency-Key` is unusable, or the object's state does not allow this."));
    }
    let needs_credentials = op.security.iter().flatten().any(|s| *s != SecurityRequirement::default());
    if needs_credentials {
        errors.push(("401", "No API key (or token) was sent, or the one sent is not valid."));
    }
    match (path.contains('{'), authenticated) {
        _ if dialect => errors.push((
            "404",
            "No application of the key's mode has the id or uid `appId` names, or it has no endpoint `webhookId` names.",
        )),
        (true, true) => errors.push((
            "404",
            "No object with this id exists in the application, or no application of the key's mode has the id or uid `Stile-App` names.",
        )),
        (true, false) => errors.push(("404", "No object with this id exists.")),
        (false, true) => errors.push(("404", "No application of the key's mode has the id or uid `Stile-App` names.")),
        (false, false) => {}
    }
    if post && authenticated && !dialect && !path.starts_with("/v1/webhooks/") {
        errors.push(("409", "A request with the same `Idempotency-Key` is still being processed."));
    }
    if post && (path.ends_with("/test") || path.ends_with("/test-ping")) {
        errors.push((
            "429",
            "The endpoint was sent its allowance of test events this second, or every one of its in-flight slots stayed taken; `Retry-After` says when to try again.",
        ));
    }
    if has_body {
        errors.push(("413", "The body is larger than 256 KiB."));
        errors.push(("415", "The body is not `application/json`."));
    }
    if path != "/v1/openapi.json" {
        errors.push((
            "5XX",
            "The server failed (`internal_error`, logged in full) or cannot store data now (`service_unavailable`).",
        ));
    }
    let schema = if dialect {
        super::app_webhooks::ErrorOut::name()
    } else if path.starts_with("/v1/webhooks/") {
        super::kayle::ErrorOut::name()
    } else {
        ErrorEnvelope::name()
    };
    for (status, description) in errors {
        let content = Content::new(Some(Ref::from_schema_name(schema.clone())));
        let response = ResponseBuilder::new().description(description).content("application/json", content).build();
        op.responses.responses.entry(status.to_string()).or_insert(response.into());
    }
}

/// The `Stile-App` request header, as every authenticated operation documents it.
fn app_header() -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let schema = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(64))
        .examples(["acme"]);
    ParameterBuilder::new()
        .name(super::auth::APP_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some("The application the request acts on, by id (`app_...`) or uid; the mode's default application when absent."))
        .schema(Some(schema))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes reach the server only through [`super::super::Routes::service`], which
    /// documents them; actix's own ways of mounting a route would bypass the document.
    #[test]
    fn no_route_is_mounted_around_the_document() {
        let mut stack = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        // Split, so that this test's own source does not match.
        let bypasses = [(".", "route("), ("web::", "resource("), ("web::", "scope("), ("Resource::", "new(")]
            .map(|(a, b)| format!("{a}{b}"));
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                files += 1;
                for (number, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    for bypass in &bypasses {
                        // `utoipa_actix_web::scope(` is the documented scope, not actix's.
                        let found = code
                            .match_indices(bypass.as_str())
                            .any(|(at, _)| !code[..at].ends_with(|c: char| c == '_' || c.is_ascii_alphanumeric()));
                        let place = format!("{}:{}", path.display(), number + 1);
                        assert!(!found, "{place}: `{bypass}` mounts a route the document does not see");
                    }
                }
            }
        }
        assert!(files > 20, "the scan saw the source tree ({files} files)");
    }

    #[test]
    fn the_document_knows_its_paths_as_actix_patterns() {
        let doc = document();
        assert_eq!(doc.allowed_methods("/v1/webhook_endpoints/we_x/deliveries/wd_y/retry"), Some("POST"));
        assert_eq!(doc.allowed_methods("/v1/webhook_endpoints/we_x"), Some("GET, POST, DELETE"));
        assert_eq!(doc.allowed_methods("/healthz"), Some("GET"));
        assert_eq!(doc.allowed_methods("/v1/webhook_endpoints/we_x/nothing"), None);
        let parsed: serde_json::Value = serde_json::from_slice(doc.json()).unwrap();
        assert_eq!(parsed["openapi"], "3.1.0");
    }
}
