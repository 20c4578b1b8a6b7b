//! API key authentication: a middleware in front of every `/v1` route, so a missing or
//! bad key is a 401 whatever else is wrong with the request.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine;
use futures_util::future::{Ready, ready};

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::ids::AppId;
use crate::mode::Mode;
use crate::secrets::{PORTAL_TOKEN_PREFIX, hash_api_key};
use crate::store::model::Owner;

/// The authenticated caller, put into the request by [`require_api_key`]. Handlers take
/// it as an argument to learn the mode and the application they act in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The mode of the key used.
    pub mode: Mode,
    /// The application the request acts on: the one `Stile-App` names, else the key's
    /// own (restricted keys) or the mode's default.
    pub owner: Owner,
    /// Whether the key is restricted to `owner.app`: such a key cannot see or manage
    /// other applications.
    pub restricted: bool,
    /// The portal session, when the credential is a portal token (then `restricted`).
    pub portal: Option<PortalAccess>,
}

/// What a portal token grants, for the routes that answer it differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalAccess {
    /// The session.
    pub session: crate::ids::PortalSessionId,
    /// Whether it may only look.
    pub read_only: bool,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
}

impl Caller {
    /// Whether this caller may act on `app` (of its mode): any application, or, for a
    /// restricted key, its own only. To a restricted key every other application is
    /// missing, never forbidden, so its existence does not leak.
    pub fn may_act_on(&self, app: AppId) -> bool {
        !self.restricted || app == self.owner.app
    }

    /// Refuses a request only an unrestricted key may make (listing, creating, changing
    /// or deleting applications): 403.
    pub fn require_unrestricted(&self, action: &str) -> Result<(), ApiError> {
        if self.restricted {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "This API key is restricted to one application and cannot {action}. Use an unrestricted key of the same mode."
                ),
            ));
        }
        Ok(())
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req.extensions().get::<Caller>().copied();
        ready(caller.ok_or_else(|| {
            // A route that takes a Caller but is mounted outside the authenticated scope.
            ApiError::internal(&std::io::Error::other("route is missing the API key middleware"))
        }))
    }
}

/// The request header that names the application a request acts on (as Stripe's
/// `Stripe-Account` names a connected account): an application id or uid.
pub const APP_HEADER: &str = "Stile-App";

/// Middleware: resolves the request's API key (or answers 401) and the application it acts
/// on: the one `Stile-App` names (400 if the value cannot name one, 404 if none of the key's
/// mode has that id or uid), else the key's own (restricted keys) or the mode's default.
/// Errors are responses, so they leave through the boundary middleware like any other
/// answer.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    authenticate(req, next, true).await
}

/// Like [`require_api_key`] for routes that name their application in the path (the
/// app-scoped dialect): `Stile-App` is not read.
pub async fn require_api_key_for_path_apps(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    authenticate(req, next, false).await
}

/// The key check of both middlewares; `app_header`: whether `Stile-App` is honoured.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    app_header: bool,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let caller = match (presented_key(req.headers().get(header::AUTHORIZATION)), &state) {
        (Err(err), _) => Err(err),
        (Ok(presented), Some(state)) if presented.starts_with(PORTAL_TOKEN_PREFIX) => {
            portal_caller(state, &presented, req.method().as_str(), req.path()).await
        }
        (Ok(presented), state) => {
            let found = state.as_ref().and_then(|s| {
                s.keys.grant_of(&presented).map(|grant| match grant.app {
                    Some(app) => Caller {
                        mode: grant.mode,
                        owner: Owner { app, mode: grant.mode },
                        restricted: true,
                        portal: None,
                    },
                    None => Caller {
                        mode: grant.mode,
                        owner: s.default_apps.of(grant.mode),
                        restricted: false,
                        portal: None,
                    },
                })
            });
            found.ok_or_else(|| {
                ApiError::new(ErrorCode::ApiKeyInvalid, format!("Invalid API key provided: {}.", redact(&presented)))
            })
        }
    };
    let named = req.headers().get(APP_HEADER).filter(|_| app_header);
    let caller = match (caller, state, named) {
        (Ok(caller), Some(state), Some(value)) => named_app(&state, caller, value).await,
        (caller, _, _) => caller,
    };
    match caller {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(err) => Ok(req.error_response(err).map_into_right_body()),
    }
}

/// The caller a portal token makes: restricted to its session's application, on the
/// portal's routes only (and reading only, for a read-only session). An unknown token is
/// an invalid key; an expired one says so, so the portal can tell its user.
async fn portal_caller(state: &web::Data<AppState>, token: &str, method: &str, path: &str) -> Result<Caller, ApiError> {
    let hash = hash_api_key(token);
    let found = state.portal_sessions().find(hash).await?;
    let Some(session) = found else {
        return Err(ApiError::new(
            ErrorCode::ApiKeyInvalid,
            format!("Invalid portal token provided: {}.", redact(token)),
        ));
    };
    if session.expires_at <= state.engine.clock().now() {
        return Err(ApiError::new(ErrorCode::PortalSessionExpired, "This portal link has expired. Ask for a new one."));
    }
    super::portal_access::portal_allows(method, path, session.read_only)?;
    let portal = PortalAccess { session: session.id, read_only: session.read_only, expires_at: session.expires_at };
    Ok(Caller { mode: session.mode, owner: session.owner(), restricted: true, portal: Some(portal) })
}

/// The caller acting on the application a `Stile-App` value names.
async fn named_app(
    state: &web::Data<AppState>,
    caller: Caller,
    value: &header::HeaderValue,
) -> Result<Caller, ApiError> {
    let name = app_header_value(value)?;
    match app_for(state, caller, &name).await? {
        Some(owner) => Ok(Caller { owner, ..caller }),
        None => Err(ApiError::param(
            ErrorCode::ResourceMissing,
            APP_HEADER,
            format!("No such application: '{name}' (named by the {APP_HEADER} header, in {} mode).", caller.mode),
        )),
    }
}

/// The longest application name (id or uid) there is.
const MAX_APP_NAME_CHARS: usize = 64;

/// The application `name` (an id or uid) names that `caller` may act on: one of its
/// mode, and its own only if its key is restricted (names are remembered by
/// [`crate::service::Apps::resolve`]).
/// The one place that decides which application a request may name, for the header and
/// for the app-scoped API's path alike.
pub(super) async fn app_for(
    state: &web::Data<AppState>,
    caller: Caller,
    name: &str,
) -> Result<Option<Owner>, ApiError> {
    if name.len() > MAX_APP_NAME_CHARS {
        return Ok(None);
    }
    let owner = state.apps().resolve(caller.mode, name).await?;
    Ok(owner.filter(|owner| caller.may_act_on(owner.app)))
}

/// Checks a `Stile-App` value: an application id or uid (at most 64 visible characters).
fn app_header_value(value: &header::HeaderValue) -> Result<String, ApiError> {
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_APP_NAME_CHARS && t.bytes().all(|b| b.is_ascii_graphic()));
    text.map(str::to_string).ok_or_else(|| {
        ApiError::invalid(
            APP_HEADER,
            format!("The {APP_HEADER} header must name an application by its id (app_...) or uid (at most 64 visible characters)."),
        )
    })
}

/// The key in an `Authorization` header: `Bearer <key>`, or HTTP Basic with the key as the
/// user name (as `curl -u vk_test_...:` sends it).
pub(crate) fn presented_key(header: Option<&header::HeaderValue>) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::ApiKeyMissing,
            "You did not provide an API key. Send it in the Authorization header: `Authorization: Bearer vk_test_...`.",
        )
    };
    let value = header
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::ApiKeyInvalid, "The Authorization header is not printable ASCII."))?;
    let (scheme, credentials) = value.trim().split_once(' ').ok_or_else(|| {
        ApiError::new(ErrorCode::ApiKeyInvalid, "The Authorization header must be `Bearer <API key>`.")
    })?;
    let credentials = credentials.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ApiError::new(ErrorCode::ApiKeyInvalid, "The Basic credentials are not valid base64."))?;
        decoded.split(':').next().unwrap_or_default().to_string()
    } else {
        return Err(ApiError::new(
            ErrorCode::ApiKeyInvalid,
            "The Authorization header must use the Bearer scheme: `Authorization: Bearer <API key>`.",
        ));
    };
    if key.is_empty() {
        return Err(missing());
    }
    Ok(key)
}

/// A key as it may appear in a message: its mode prefix and last four characters.
fn redact(key: &str) -> String {
    let prefix = Mode::of_key(key).map_or("", |m| m.key_prefix());
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if key.chars().count() <= prefix.len() + 4 { format!("{prefix}****") } else { format!("{prefix}****{tail}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> header::HeaderValue {
        header::HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn bearer_and_basic_credentials_yield_the_key() {
        assert_eq!(presented_key(Some(&header("Bearer vk_test_abc"))).unwrap(), "vk_test_abc");
        assert_eq!(presented_key(Some(&header("bearer  vk_test_abc "))).unwrap(), "vk_test_abc");
        let basic = base64::engine::general_purpose::STANDARD.encode("vk_test_abc:");
        assert_eq!(presented_key(Some(&header(&format!("Basic {basic}")))).unwrap(), "vk_test_abc");
    }

    #[test]
    fn missing_and_malformed_credentials_are_refused() {
        assert_eq!(presented_key(None).unwrap_err().code, ErrorCode::ApiKeyMissing);
        assert_eq!(presented_key(Some(&header("Bearer "))).unwrap_err().code, ErrorCode::ApiKeyInvalid);
        assert_eq!(presented_key(Some(&header("Token abc"))).unwrap_err().code, ErrorCode::ApiKeyInvalid);
        assert_eq!(presented_key(Some(&header("vk_test_abc"))).unwrap_err().code, ErrorCode::ApiKeyInvalid);
    }

    #[test]
    fn redaction_keeps_only_prefix_and_last_four() {
        assert_eq!(redact("vk_test_abcdefgh1234"), "vk_test_****1234");
        assert_eq!(redact("vk_test_ab"), "vk_test_****");
        assert_eq!(redact("nonsense-key"), "****-key");
    }
}
