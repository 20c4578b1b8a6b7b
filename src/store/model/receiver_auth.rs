//! How stile authenticates to an endpoint's receiver (its `authentication`): HTTP Basic,
//! a bearer token, or an OAuth2 client-credentials grant (a token stile fetches, see
//! `crate::delivery::oauth2`). The secret parts are sealed with the payload key as soon as the API
//! hands them over, bound to their endpoint and to the field they are, and opened only to
//! make a request: neither the data file, a backup, a database dump, an API answer nor a
//! stored attempt holds them in clear.

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, EndpointId};
use crate::store::sealing::{OpenError, Sealer, TEXT_PREFIX, reseal_text};

/// An endpoint's authentication as the API takes it, in clear: sealed
/// ([`ReceiverAuthIn::seal`]) before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverAuthIn {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user id (no `:`).
        username: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// A token from `token_url` by the client-credentials grant (RFC 6749 §4.4).
    Oauth2ClientCredentials(ClientCredentials),
}

/// An OAuth2 client's credentials and what it asks for: everything a token request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// Where tokens are asked for.
    pub token_url: String,
    /// The client's id.
    pub client_id: String,
    /// The client's secret.
    pub client_secret: String,
    /// The scope asked for, if any.
    pub scope: Option<String>,
    /// The audience asked for, if any (Auth0 and others).
    pub audience: Option<String>,
}

impl ReceiverAuthIn {
    /// Sealed for endpoint `id` of `app`.
    pub fn seal(self, sealer: &Sealer, app: AppId, id: EndpointId) -> ReceiverAuth {
        match self {
            ReceiverAuthIn::Basic { username, password } => ReceiverAuth::Basic {
                username,
                password: SealedCredential::seal(sealer, Field::Password, (app, id), &password),
            },
            ReceiverAuthIn::Bearer { token } => {
                ReceiverAuth::Bearer { token: SealedCredential::seal(sealer, Field::Token, (app, id), &token) }
            }
            ReceiverAuthIn::Oauth2ClientCredentials(c) => ReceiverAuth::Oauth2ClientCredentials {
                token_url: c.token_url,
                client_id: c.client_id,
                client_secret: SealedCredential::seal(sealer, Field::ClientSecret, (app, id), &c.client_secret),
                scope: c.scope,
                audience: c.audience,
            },
        }
    }

    /// The token URL it names, if any (checked like an endpoint's URL).
    pub fn token_url(&self) -> Option<&str> {
        match self {
            ReceiverAuthIn::Oauth2ClientCredentials(c) => Some(&c.token_url),
            _ => None,
        }
    }
}

/// An endpoint's authentication as stored: its secret parts sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiverAuth {
    /// HTTP Basic.
    Basic {
        /// The user id, in clear (the API shows it).
        username: String,
        /// The password, sealed.
        password: SealedCredential,
    },
    /// A bearer token.
    Bearer {
        /// The token, sealed.
        token: SealedCredential,
    },
    /// A token fetched by the OAuth2 client-credentials grant.
    Oauth2ClientCredentials {
        /// Where tokens are asked for.
        token_url: String,
        /// The client's id.
        client_id: String,
        /// The client's secret, sealed.
        client_secret: SealedCredential,
        /// The scope asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The audience asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
}

impl ReceiverAuth {
    /// Its type as the API names it: `basic`, `bearer`, `oauth2_client_credentials`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverAuth::Basic { .. } => "basic",
            ReceiverAuth::Bearer { .. } => "bearer",
            ReceiverAuth::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
        }
    }

    /// Its `Authorization` header value, opened for one request to endpoint `id` of
    /// `app`; `None` for an OAuth2 grant, whose token is fetched ([`Self::client`]).
    pub fn authorization(&self, sealer: &Sealer, app: AppId, id: EndpointId) -> Result<Option<String>, OpenError> {
        use base64::Engine;
        Ok(Some(match self {
            ReceiverAuth::Basic { username, password } => {
                let password = password.open(sealer, Field::Password, (app, id))?;
                let pair = format!("{username}:{password}");
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
            ReceiverAuth::Bearer { token } => format!("Bearer {}", token.open(sealer, Field::Token, (app, id))?),
            ReceiverAuth::Oauth2ClientCredentials { .. } => return Ok(None),
        }))
    }

    /// An OAuth2 grant's credentials, opened for a token request; `None` for the other
    /// types.
    pub fn client(&self, sealer: &Sealer, app: AppId, id: EndpointId) -> Result<Option<ClientCredentials>, OpenError> {
        let ReceiverAuth::Oauth2ClientCredentials { token_url, client_id, client_secret, scope, audience } = self
        else {
            return Ok(None);
        };
        Ok(Some(ClientCredentials {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.open(sealer, Field::ClientSecret, (app, id))?,
            scope: scope.clone(),
            audience: audience.clone(),
        }))
    }

    /// What answers show of it: its type and its fields that are not secret.
    pub fn shown(&self) -> ReceiverAuthShown {
        let mut shown = ReceiverAuthShown {
            kind: self.kind(),
            username: None,
            token_url: None,
            client_id: None,
            scope: None,
            audience: None,
        };
        match self {
            ReceiverAuth::Basic { username, .. } => shown.username = Some(username.clone()),
            ReceiverAuth::Bearer { .. } => {}
            ReceiverAuth::Oauth2ClientCredentials { token_url, client_id, scope, audience, .. } => {
                shown.token_url = Some(token_url.clone());
                shown.client_id = Some(client_id.clone());
                shown.scope = scope.clone();
                shown.audience = audience.clone();
            }
        }
        shown
    }

    /// What a stored attempt shows of its `Authorization` header: the scheme only.
    pub fn redacted(&self) -> &'static str {
        match self {
            ReceiverAuth::Basic { .. } => "Basic [redacted]",
            ReceiverAuth::Bearer { .. } | ReceiverAuth::Oauth2ClientCredentials { .. } => "Bearer [redacted]",
        }
    }

    /// Sealed again under `new`, opened with whichever of `new` and `old` sealed it: a
    /// payload key rotation.
    pub(crate) fn resealed(&self, old: &Sealer, new: &Sealer, app: AppId, id: EndpointId) -> Result<Self, OpenError> {
        Ok(match self {
            ReceiverAuth::Basic { username, password } => ReceiverAuth::Basic {
                username: username.clone(),
                password: password.resealed(old, new, Field::Password, (app, id))?,
            },
            ReceiverAuth::Bearer { token } => {
                ReceiverAuth::Bearer { token: token.resealed(old, new, Field::Token, (app, id))? }
            }
            ReceiverAuth::Oauth2ClientCredentials { token_url, client_id, client_secret, scope, audience } => {
                ReceiverAuth::Oauth2ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.resealed(old, new, Field::ClientSecret, (app, id))?,
                    scope: scope.clone(),
                    audience: audience.clone(),
                }
            }
        })
    }
}

/// A client certificate as the API takes it, checked (the key is the certificate's), the
/// key in clear until [`ClientCertificateIn::seal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificateIn {
    /// The PEM certificate chain.
    pub certificate: String,
    /// The PEM private key.
    pub key: String,
    /// The SHA-256 of the client's own certificate (hex).
    pub fingerprint: String,
}

impl ClientCertificateIn {
    /// Sealed for endpoint `id` of `app`.
    pub fn seal(self, sealer: &Sealer, app: AppId, id: EndpointId) -> ClientCertificate {
        ClientCertificate::seal(sealer, (app, id), self.certificate, &self.key, self.fingerprint)
    }
}

/// The client certificate an endpoint's receiver asks for (mutual TLS): the PEM chain in
/// clear (it is public), the key sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCertificate {
    /// The PEM certificate chain, the client's own certificate first.
    pub certificate: String,
    /// The PEM private key, sealed.
    pub key: SealedCredential,
    /// The SHA-256 of the client's own certificate (hex), as answers show it.
    pub fingerprint: String,
}

impl ClientCertificate {
    /// `certificate` and `key_pem` (already checked to belong together, with this
    /// `fingerprint`) for endpoint `id` of `app`, the key sealed.
    pub fn seal(
        sealer: &Sealer,
        (app, id): (AppId, EndpointId),
        certificate: String,
        key_pem: &str,
        fingerprint: String,
    ) -> Self {
        let key = SealedCredential::seal(sealer, Field::ClientKey, (app, id), key_pem);
        ClientCertificate { certificate, key, fingerprint }
    }

    /// The private key in PEM, opened for a connection of endpoint `id` of `app`.
    pub fn key_pem(&self, sealer: &Sealer, app: AppId, id: EndpointId) -> Result<String, OpenError> {
        self.key.open(sealer, Field::ClientKey, (app, id))
    }

    /// A name for this endpoint's certificate (a key goes with one certificate): to keep
    /// a connection pool per endpoint and certificate.
    pub fn cache_key(&self, id: EndpointId) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (id.as_u128(), &self.certificate, &self.fingerprint).hash(&mut hasher);
        hasher.finish()
    }

    /// Sealed again under `new`: a payload key rotation.
    pub(crate) fn resealed(&self, old: &Sealer, new: &Sealer, app: AppId, id: EndpointId) -> Result<Self, OpenError> {
        Ok(ClientCertificate {
            certificate: self.certificate.clone(),
            key: self.key.resealed(old, new, Field::ClientKey, (app, id))?,
            fingerprint: self.fingerprint.clone(),
        })
    }

    /// What answers show: the fingerprint and how many certificates the chain has.
    pub fn shown(&self) -> ClientCertificateShown {
        let certificates = self.certificate.matches("-----BEGIN CERTIFICATE-----").count();
        ClientCertificateShown { fingerprint_sha256: self.fingerprint.clone(), certificates }
    }
}

/// What answers show of an endpoint's client certificate: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientCertificateShown {
    /// The SHA-256 of the client's own certificate, in hex.
    pub fingerprint_sha256: String,
    /// How many certificates the chain holds (the client's own and intermediates).
    pub certificates: usize,
}

/// What answers show of an endpoint's authentication: its type and non-secret fields;
/// never a password or token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReceiverAuthShown {
    /// `basic`, `bearer` or `oauth2_client_credentials`.
    #[serde(rename = "type")]
    #[schema(value_type = String, examples("basic", "bearer", "oauth2_client_credentials"))]
    pub kind: &'static str,
    /// The Basic user id (`basic` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Where tokens are asked for (`oauth2_client_credentials` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The OAuth2 client's id (`oauth2_client_credentials` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scope asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The audience asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Which secret a [`SealedCredential`] is: part of what it is sealed to, so one cannot be
/// moved into another's place.
#[derive(Debug, Clone, Copy)]
enum Field {
    Password,
    Token,
    ClientSecret,
    ClientKey,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Password => "basic password",
            Field::Token => "bearer token",
            Field::ClientSecret => "oauth2 client secret",
            Field::ClientKey => "client certificate key",
        }
    }
}

/// A secret of an endpoint's authentication, sealed with the payload key to its endpoint
/// and its field. Never stored or held in clear.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedCredential(String);

impl std::fmt::Debug for SealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedCredential")
    }
}

impl SealedCredential {
    fn seal(sealer: &Sealer, field: Field, (app, id): (AppId, EndpointId), plain: &str) -> Self {
        SealedCredential(sealer.seal_text(&row(field, app, id), plain))
    }

    fn open(&self, sealer: &Sealer, field: Field, (app, id): (AppId, EndpointId)) -> Result<String, OpenError> {
        // Always sealed: a value in clear here is damage, not an earlier release's.
        if !self.0.starts_with(TEXT_PREFIX) {
            return Err(OpenError);
        }
        sealer.open_text(&row(field, app, id), self.0.clone())
    }

    fn resealed(
        &self,
        old: &Sealer,
        new: &Sealer,
        field: Field,
        owner: (AppId, EndpointId),
    ) -> Result<Self, OpenError> {
        let (app, id) = owner;
        Ok(SealedCredential(reseal_text(old, new, &row(field, app, id), self.0.clone())?))
    }
}

/// The row a credential is sealed to: what it is, and its endpoint.
fn row(field: Field, app: AppId, id: EndpointId) -> Vec<u8> {
    let mut row = format!("endpoint credential\0{}\0", field.name()).into_bytes();
    row.extend_from_slice(&app.as_u128().to_be_bytes());
    row.extend_from_slice(&id.as_u128().to_be_bytes());
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_opens_only_for_its_endpoint_and_field_and_never_shows_in_the_record() {
        let sealer = Sealer::new(&[7; 32]);
        let (app, id) = (AppId::new(), EndpointId::new());
        let auth =
            ReceiverAuthIn::Basic { username: "ops".into(), password: "pa55-w0rd".into() }.seal(&sealer, app, id);
        let stored = serde_json::to_string(&auth).unwrap();
        assert!(!stored.contains("pa55-w0rd"), "{stored}");
        assert!(stored.contains("\"type\":\"basic\"") && stored.contains("\"username\":\"ops\""), "{stored}");
        // base64("ops:pa55-w0rd")
        assert_eq!(auth.authorization(&sealer, app, id).unwrap().unwrap(), "Basic b3BzOnBhNTUtdzByZA==");
        assert!(auth.authorization(&sealer, app, EndpointId::new()).is_err(), "another endpoint's");
        // The password sealed as a bearer token does not open as one.
        let ReceiverAuth::Basic { password, .. } = &auth else { unreachable!() };
        let moved = ReceiverAuth::Bearer { token: password.clone() };
        assert!(moved.authorization(&sealer, app, id).is_err(), "moved to another field");

        let rotated = Sealer::new(&[8; 32]);
        let resealed = auth.resealed(&sealer, &rotated, app, id).unwrap();
        assert_eq!(resealed.authorization(&rotated, app, id).unwrap().unwrap(), "Basic b3BzOnBhNTUtdzByZA==");
        let bearer = ReceiverAuthIn::Bearer { token: "tok_123".into() }.seal(&sealer, app, id);
        assert_eq!(bearer.authorization(&sealer, app, id).unwrap().unwrap(), "Bearer tok_123");
        assert_eq!(bearer.redacted(), "Bearer [redacted]");
    }
}
