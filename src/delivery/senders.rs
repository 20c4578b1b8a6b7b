//! Where a request to an endpoint goes: over HTTP to its URL, or, for a listener
//! endpoint, down the `stile listen` connection that holds it. Queued attempts and test
//! pings both go through [`Senders::send`], so no path ever connects to a listener
//! endpoint's URL: that URL is the CLI's local target (`forward_to`), which the CLI
//! connects to on its own machine and the server never does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::{HttpSender, SendOutcome};
use super::listen_wire as wire;
use super::listeners::Listeners;
use super::oauth2::{TokenCache, TokenError};
use super::opened_secrets::OpenedSecrets;
use crate::store::model::{EndpointRecord, ReceiverAuth, SentRequest};
use crate::store::sealing::Sealer;
use crate::trace::{AttemptTrace, TRACEPARENT, TRACESTATE};
use crate::transform::{Method, Program, Transformed, Transformer, Webhook};

/// One request to make: an attempt of an event (or a test ping) to one endpoint.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The attempt's id (`dlv_...`), which a listen connection's result names.
    pub delivery_id: String,
    /// The event's id (`evt_...`), signed into the headers.
    pub event_id: String,
    /// The event's type as delivered.
    pub event_type: String,
    /// Which attempt of the event to this endpoint it is (1 for the first).
    pub attempt: u32,
    /// The body, byte for byte.
    pub body: bytes::Bytes,
    /// When it is signed (Unix seconds).
    pub now: i64,
    /// The attempt's span of its event's trace, which the request's `traceparent` carries
    /// (`None`: the event has none, and the request carries none).
    pub trace: Option<AttemptTrace>,
}

/// What a request came to, and the headers it was sent with.
type Sent = (SendOutcome, Vec<(String, String)>);

/// The two ways out: the HTTP client and the listen connections.
pub(super) struct Senders {
    /// For every endpoint but listener endpoints.
    pub(super) http: HttpSender,
    /// For listener endpoints.
    pub(super) listeners: Arc<Listeners>,
    /// How long to wait for a listen connection's result.
    pub(super) listener_wait: Duration,
    /// Opens the endpoints' signing secrets and authentication credentials.
    pub(super) sealer: Sealer,
    /// The signing secrets opened so far.
    pub(super) secrets: OpenedSecrets,
    /// The OAuth2 tokens of endpoints with a client-credentials grant.
    pub(super) tokens: TokenCache,
    /// Runs endpoints' transformations.
    pub(super) transformer: Arc<Transformer>,
}

/// Where a request goes and with what, as the endpoint's transformation (if any) left it.
struct Target<'a> {
    /// `POST`, unless a transformation said `PUT`.
    method: Method,
    /// The endpoint's URL, or the one its transformation gave.
    url: Cow<'a, str>,
    /// The endpoint's own headers, or the ones its transformation gave.
    headers: Cow<'a, BTreeMap<String, String>>,
    /// What the attempt records of a transformed request.
    sent: Option<SentRequest>,
}

impl Senders {
    /// Signs `out` with `endpoint`'s live secrets and sends it, with the endpoint's own
    /// headers after stile's and its `Authorization`, where the endpoint's requests go;
    /// returns the outcome and the headers sent, the credential in `Authorization`
    /// redacted (what the attempt stores and shows).
    pub(super) async fn send(&self, endpoint: &EndpointRecord, mut out: Outgoing) -> Sent {
        let target = match self.transform(endpoint, &mut out).await {
            Ok(target) => target,
            Err(outcome) => return (outcome, Vec::new()),
        };
        self.send_to(endpoint, out, &target).await
    }

    /// Runs `endpoint`'s transformation, if it has one in force, on `out`: where the
    /// request goes and with what, its body replaced in `out`; or why nothing is sent (it
    /// cancelled the request, or failed).
    async fn transform<'a>(&self, endpoint: &'a EndpointRecord, out: &mut Outgoing) -> Result<Target<'a>, SendOutcome> {
        let plain = Target {
            method: Method::Post,
            url: Cow::Borrowed(&endpoint.url),
            headers: Cow::Borrowed(&endpoint.headers),
            sent: None,
        };
        let Some((code, version)) =
            endpoint.transformation.as_ref().and_then(|t| Some((t.in_force()?, t.current.version)))
        else {
            return Ok(plain);
        };
        let started = Instant::now();
        // The endpoint's own headers as they are sent: without a name stile reserved since
        // one was saved.
        let own = endpoint.headers.iter().filter(|(name, _)| !super::signing::is_reserved_header(name));
        let webhook = Webhook {
            method: Method::Post,
            url: endpoint.url.clone(),
            headers: own.map(|(name, value)| (name.clone(), value.clone())).collect(),
            payload: out.body.clone(),
            event_type: out.event_type.clone(),
        };
        let refused = |why: String| {
            let mut outcome = SendOutcome::failed(
                format!("not sent: the endpoint's transformation (version {version}) {why}"),
                started.elapsed().as_millis() as u64,
            );
            outcome.unreached = true;
            outcome
        };
        let mut made = match self.transformer.run(Program::new(endpoint.id.as_u128(), code), webhook).await {
            Ok(Transformed::Send(made)) => made,
            Ok(Transformed::Cancel) => {
                let mut outcome = SendOutcome::failed(
                    format!("cancelled by the endpoint's transformation (version {version}): nothing was sent"),
                    started.elapsed().as_millis() as u64,
                );
                outcome.cancelled = true;
                return Err(outcome);
            }
            Err(err) => return Err(refused(format!("failed: {err}"))),
        };
        // A `stile listen` endpoint's request goes down the CLI's connection, to the CLI's
        // own target, as a POST: a URL or method the handler gave is not used.
        if endpoint.is_listener() {
            (made.url, made.method) = (endpoint.url.clone(), Method::Post);
        } else {
            let credentials = endpoint.authentication.is_some() || endpoint.client_certificate.is_some();
            let origin = credentials.then_some(endpoint.url.as_str());
            check_transformed(self.http.policy(), &made, origin).map_err(refused)?;
        }
        out.body = made.payload.clone();
        let sent = SentRequest {
            version,
            method: made.method.as_str().into(),
            url: made.url.clone(),
            body: String::from_utf8_lossy(&made.payload).into_owned(),
        };
        Ok(Target {
            method: made.method,
            url: Cow::Owned(made.url),
            headers: Cow::Owned(made.headers),
            sent: Some(sent),
        })
    }

    /// Signs `out` and sends it to `target`, as [`Senders::send`] says.
    async fn send_to(&self, endpoint: &EndpointRecord, out: Outgoing, target: &Target<'_>) -> Sent {
        let secrets = match self.secrets.live(&self.sealer, endpoint, out.now) {
            Ok(secrets) => secrets,
            // Never sent unsigned: the attempt fails, and says why.
            Err(err) => {
                tracing::error!(endpoint = %endpoint.id, error = %err, "an endpoint's signing secret does not open with the payload key");
                return (not_sent("its signing secret"), Vec::new());
            }
        };
        let mut headers = super::signed_headers(&secrets, &out.event_id, &out.body, out.now);
        if let Some(trace) = &out.trace {
            headers.push((TRACEPARENT.into(), trace.traceparent()));
            headers.extend(trace.tracestate().map(|state| (TRACESTATE.into(), state.to_string())));
        }
        // Stile's headers win over an endpoint's own of the same name, which an endpoint
        // saved before stile reserved the name may hold.
        let own = target.headers.iter().filter(|(name, _)| !super::signing::is_reserved_header(name));
        headers.extend(own.map(|(name, value)| (name.clone(), value.clone())));
        let Some(auth) = &endpoint.authentication else {
            return self.send_signed(endpoint, target, out, headers).await;
        };
        let (outcome, mut headers) = match auth.authorization(&self.sealer, endpoint.app, endpoint.id) {
            Ok(Some(value)) => {
                headers.push(("authorization".into(), value));
                self.send_signed(endpoint, target, out, headers).await
            }
            Ok(None) => self.send_with_token(endpoint, target, auth, out, headers).await,
            // Never sent without the credential the receiver expects.
            Err(err) => {
                tracing::error!(endpoint = %endpoint.id, error = %err, "an endpoint's authentication does not open with the payload key");
                return (not_sent("its authentication credential"), Vec::new());
            }
        };
        for sent in headers.iter_mut().filter(|(name, _)| name == "authorization") {
            sent.1 = auth.redacted().to_string();
        }
        (outcome, headers)
    }

    /// Sends with the endpoint's OAuth2 token (fetched if none is kept). A 401 drops the
    /// token and the request is made once more with a new one. No token: nothing is sent,
    /// and the outcome says the token endpoint failed (never as the receiver's answer).
    async fn send_with_token(
        &self,
        endpoint: &EndpointRecord,
        target: &Target<'_>,
        auth: &ReceiverAuth,
        out: Outgoing,
        headers: Vec<(String, String)>,
    ) -> Sent {
        let client = match auth.client(&self.sealer, endpoint.app, endpoint.id) {
            Ok(Some(client)) => client,
            Ok(None) | Err(_) => {
                tracing::error!(endpoint = %endpoint.id, "an endpoint's OAuth2 client secret does not open with the payload key");
                return (not_sent("OAuth2 client secret"), Vec::new());
            }
        };
        // The token a 401 refused, and what the request with it came to.
        let mut refused: Option<(u64, Sent)> = None;
        loop {
            let started = std::time::Instant::now();
            let version = endpoint.updated.unwrap_or(endpoint.created);
            let token = match self.tokens.token(endpoint.id, (&client, version), &self.http).await {
                Ok(token) => token,
                Err(TokenError(why)) => {
                    return (SendOutcome::failed(why, started.elapsed().as_millis() as u64), headers);
                }
            };
            let retrying = refused.is_some();
            // The refused token was kept (the receiver refuses new ones too): the 401 stands.
            if let Some((generation, answered)) = refused.take()
                && generation == token.generation
            {
                return answered;
            }
            let mut with_token = headers.clone();
            with_token.push(("authorization".into(), format!("Bearer {}", token.value)));
            let answered = self.send_signed(endpoint, target, out.clone(), with_token).await;
            if retrying || answered.0.status != Some(401) {
                return answered;
            }
            self.tokens.rejected(endpoint.id, &token).await;
            refused = Some((token.generation, answered));
        }
    }

    /// Sends a request with its headers made, down a listen connection or over HTTP.
    async fn send_signed(
        &self,
        endpoint: &EndpointRecord,
        target: &Target<'_>,
        out: Outgoing,
        headers: Vec<(String, String)>,
    ) -> Sent {
        let method = match target.method {
            Method::Post => hyper::Method::POST,
            Method::Put => hyper::Method::PUT,
        };
        if endpoint.is_listener() {
            let delivery = wire::Delivery {
                delivery_id: out.delivery_id,
                event_id: out.event_id,
                event_type: out.event_type,
                attempt: out.attempt,
                headers: headers.clone(),
                body: String::from_utf8(out.body.into())
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            };
            let outcome = self.listeners.forward(endpoint.id, delivery, self.listener_wait).await;
            return (made_as(outcome, target), headers);
        }
        let Some(certificate) = &endpoint.client_certificate else {
            return (made_as(self.http.send(method, &target.url, &headers, out.body).await, target), headers);
        };
        // Its own pool, presenting its certificate: made once, then kept.
        let http = self.http.with_identity(certificate.cache_key(endpoint.id), || {
            let key = certificate
                .key_pem(&self.sealer, endpoint.app, endpoint.id)
                .map_err(|_| "its client certificate's key could not be decrypted with the payload key".to_string())?;
            crate::tls::ClientIdentity::from_pem(&certificate.certificate, &key)
        });
        match http {
            Ok(http) => (made_as(http.send(method, &target.url, &headers, out.body).await, target), headers),
            Err(why) => {
                tracing::error!(endpoint = %endpoint.id, error = %why, "an endpoint's client certificate cannot be used");
                let error = format!("not sent: the endpoint's client certificate cannot be used: {why}");
                (SendOutcome::failed(error, 0), Vec::new())
            }
        }
    }
}

/// `outcome`, of a request made to `target`, with what a transformation made of it (what
/// the attempt records only when the request was made).
fn made_as(mut outcome: SendOutcome, target: &Target<'_>) -> SendOutcome {
    outcome.sent = target.sent.clone();
    outcome
}

/// Checks a request an endpoint's transformation `made` as the API checks what a user
/// gives it: a URL the target policy lets through (the connection is checked again on the
/// address it reaches), at most [`super::signing::MAX_OWN_HEADERS`] headers of its own,
/// none that stile sets, none twice in another case; and, when the endpoint has
/// credentials, a URL on the endpoint's own origin (`credentials_for`): credentials meant
/// for one receiver never go to another. The error completes "the transformation ...".
pub fn check_transformed(
    policy: &crate::target_policy::TargetPolicy,
    made: &Webhook,
    credentials_for: Option<&str>,
) -> Result<(), String> {
    use super::signing::{MAX_OWN_HEADERS, header_problem};
    use crate::target_policy::origin;
    if let Err(why) = policy.check_url(&made.url) {
        return Err(format!("gave a URL stile does not send to: {why}"));
    }
    if credentials_for.is_some_and(|own| origin(own) != origin(&made.url)) {
        return Err(
            "gave a URL on another host than the endpoint's, whose credentials are meant for its own receiver only"
                .into(),
        );
    }
    if made.headers.len() > MAX_OWN_HEADERS {
        return Err(format!("gave {} headers; at most {MAX_OWN_HEADERS} may be set", made.headers.len()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in &made.headers {
        if let Some(why) = header_problem(name, value) {
            return Err(format!("gave a header stile does not send: {why}"));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!("gave the header `{name}` twice (names ignore case)"));
        }
    }
    Ok(())
}

/// The outcome of an attempt whose endpoint's `what` (its signing secret, its
/// authentication credential) does not open (the payload key is not the one it was
/// sealed with, or the record is damaged): nothing was sent.
fn not_sent(what: &str) -> SendOutcome {
    SendOutcome::failed(format!("not sent: the endpoint's {what} could not be decrypted with the payload key"), 0)
}
