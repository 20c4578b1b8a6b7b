//! TLS client configurations that stile makes itself (rustls with ring, as everywhere in
//! stile): the ones that check less than a browser would, each for a stated reason, the
//! one that trusts a given set of roots, and the deliveries' own (the public roots and
//! `delivery.ca_file`, with an endpoint's client certificate for mutual TLS).
//! `stile listen --skip-verify` and the connections to Postgres (libpq's `sslmode`s) use
//! the first ones.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How much of the server's certificate a connection checks, and against which roots.
#[derive(Debug, Clone)]
pub enum Verify {
    /// Nothing but the handshake's signatures: encrypted, not authenticated (`stile listen
    /// --skip-verify`, libpq's `sslmode=require`).
    Nothing,
    /// That one of these roots signed it, whatever name it is for (libpq's `verify-ca`).
    Chain(RootCertStore),
    /// That one of these roots signed it for the name connected to (libpq's
    /// `verify-full`, and what a browser does).
    ChainAndName(RootCertStore),
}

/// A client configuration that checks what `verify` says.
pub fn client_config(verify: Verify) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions()?;
    let web = |roots: RootCertStore, provider: Arc<CryptoProvider>| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| rustls::Error::General(err.to_string()))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(AcceptAnyCertificate(provider)),
        Verify::Chain(roots) => Arc::new(AnyName(web(roots, provider)?)),
        Verify::ChainAndName(roots) => web(roots, provider)?,
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// The public web's roots (Mozilla's, as bundled by webpki-roots).
pub fn public_roots() -> RootCertStore {
    RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// The certificates of a PEM file, as trusted roots; `what` names the setting in errors.
pub fn read_roots(path: &Path, what: &str) -> Result<RootCertStore, String> {
    let unusable = |problem: String| format!("{what} {}: {problem}", path.display());
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|err| unusable(err.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|err| unusable(err.to_string()))?;
        roots.add(certificate).map_err(|err| unusable(format!("a certificate is not usable: {err}")))?;
    }
    if roots.is_empty() {
        return Err(unusable("holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// The configuration deliveries are made with: a server's certificate must be signed by
/// one of `roots` (the public roots, and `delivery.ca_file`'s) for the name connected to;
/// with `identity`, the client certificate presented to a receiver that asks for one.
pub fn delivery_config(roots: &RootCertStore, identity: Option<ClientIdentity>) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone());
    // HTTP/1 only: no ALPN, as hyper-rustls wants it for HTTP/1.
    Ok(match identity {
        Some(identity) => builder.with_client_auth_cert(identity.chain, identity.key)?,
        None => builder.with_no_client_auth(),
    })
}

/// A client certificate chain with its private key, checked to belong together: what an
/// endpoint that requires mutual TLS is sent.
#[derive(Debug)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Reads a PEM certificate chain (the client's own certificate first) and a PEM
    /// private key (PKCS#8, PKCS#1 or SEC1), and checks that the key is the certificate's.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<ClientIdentity, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|err| format!("the certificate is not PEM: {err}"))?;
        if chain.is_empty() {
            return Err("the certificate holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|err| format!("the key is not a PEM private key: {err}"))?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(|err| format!("the key does not go with the certificate: {err}"))?;
        Ok(ClientIdentity { chain, key })
    }

    /// The SHA-256 of the client's own certificate, in hex: how answers name it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.chain[0].as_ref()))
    }
}

/// Checks the handshake's signatures, not who signed the certificate (see
/// [`Verify::Nothing`]).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain check of a web verifier without its name check (see [`Verify::Chain`]).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            outcome => outcome,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
