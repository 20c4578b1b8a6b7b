//! A TLS front for a plain test server: a self-signed certificate for 127.0.0.1 (or one a
//! test CA signed, asking for client certificates another CA signed: mutual TLS), bytes
//! passed through to the server, as a reverse proxy terminating TLS would.

use std::sync::Arc;
use std::thread::JoinHandle;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running TLS front.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Terminates TLS on a free loopback port and passes each connection to `upstream`
    /// (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        Self::start_with(upstream, config)
    }

    /// Terminates TLS as `config` says, passing each connection whose handshake succeeds
    /// to `upstream`.
    pub fn start_with(upstream: &str, config: rustls::ServerConfig) -> Self {
        Self::spawn(upstream, config, true)
    }

    /// As [`TlsFront::start_with`], but when `upstream` closes a connection the front
    /// drops it without TLS's goodbye (`close_notify`): a bare TCP close under TLS, as
    /// many servers end a connection.
    pub fn start_closing_bare(upstream: &str, config: rustls::ServerConfig) -> Self {
        Self::spawn(upstream, config, false)
    }

    fn spawn(upstream: &str, config: rustls::ServerConfig, goodbye: bool) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_string();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                            tokio::spawn(async move {
                                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else { return };
                                if goodbye {
                                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                                    return;
                                }
                                // `copy` flushes at the end but never shuts down: whichever
                                // way ends first, both are dropped with no close_notify.
                                let (mut tls_in, mut tls_out) = tokio::io::split(tls);
                                let (mut plain_in, mut plain_out) = plain.split();
                                tokio::select! {
                                    _ = tokio::io::copy(&mut tls_in, &mut plain_out) => {}
                                    _ = tokio::io::copy(&mut plain_in, &mut tls_out) => {}
                                }
                            });
                        }
                        _ = &mut stopped => break,
                    }
                }
            });
        });
        Self { base, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A test certificate authority, for mutual TLS: it signs a server certificate for
/// 127.0.0.1 and client certificates, each with a fresh key.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// Its certificate in PEM: what a client trusts it by.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate (PEM) for `names` signed by this CA, with its key (PEM, PKCS#8).
    pub fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server configuration with a certificate this CA signed for `names`, asking no
    /// client certificate.
    pub fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = self.issue(names, false);
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }

    /// A server configuration for 127.0.0.1 with a certificate this CA signed, that asks
    /// every client for a certificate `clients` signed.
    pub fn server_requiring_clients_of(&self, clients: &TestCa) -> rustls::ServerConfig {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = self.issue(&["127.0.0.1"], false);
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(clients.cert.der().clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .unwrap();
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap()
    }
}
