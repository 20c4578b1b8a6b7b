//! TLS to the database, as libpq does it, from the URL's `sslmode` and `sslrootcert`, so
//! a URL copied from a managed database's console means what it means to `psql`:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `allow`, `prefer` (the default) | if the server offers it | only with `sslrootcert` |
//! | `require` | yes | only with `sslrootcert` |
//! | `verify-ca` | yes | signed by a trusted root |
//! | `verify-full` | yes | signed by a trusted root, for the host connected to |
//!
//! The trusted roots are the PEM certificates in the `sslrootcert` file, or the public
//! web's (`sslrootcert=system`, and the default). tokio-postgres reads neither
//! `verify-*` nor `sslrootcert`; they are taken out of the URL here and become the
//! connector's checks. Only the URL form (`postgres://...?sslmode=...`) carries them.

use std::path::PathBuf;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::{self, Verify};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A `postgres_url` split into what tokio-postgres reads and what the connector checks.
#[derive(Debug)]
pub(super) struct TlsUrl {
    /// The URL for tokio-postgres: `sslmode` one it knows, no `sslrootcert`.
    pub client_url: String,
    mode: SslMode,
    root_cert: Option<String>,
}

impl TlsUrl {
    /// Takes `sslmode` and `sslrootcert` out of `url`'s query.
    pub fn parse(url: &str) -> Result<TlsUrl, String> {
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let (base, query) = match url.split_once('?') {
            Some((base, query)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => (base, query),
            _ => return Ok(TlsUrl { client_url: url.to_string(), mode, root_cert }),
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = form_urlencoded::parse(pair.as_bytes()).next().unwrap_or_default();
            match &*key {
                "sslmode" => {
                    mode = match &*value {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(value.into_owned()),
                _ => kept.push(pair),
            }
        }
        kept.push(match mode {
            SslMode::Disable => "sslmode=disable",
            SslMode::Prefer => "sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "sslmode=require",
        });
        Ok(TlsUrl { client_url: format!("{base}?{}", kept.join("&")), mode, root_cert })
    }

    /// The connector that makes the checks `sslmode` and `sslrootcert` ask for (reading the
    /// root certificates now).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let roots = || match self.root_cert.as_deref() {
            None | Some("system") => Ok(tls::public_roots()),
            Some(path) => tls::read_roots(&PathBuf::from(path), "sslrootcert"),
        };
        let verify = match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Verify::ChainAndName(roots()?),
            (SslMode::VerifyCa, _) | (_, Some(_)) => Verify::Chain(roots()?),
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, None) => Verify::Nothing,
        };
        let config = tls::client_config(verify).map_err(|err| format!("cannot set up TLS: {err}"))?;
        Ok(MakeRustlsConnect::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libpq_settings_leave_the_url_and_others_stay() {
        let url = TlsUrl::parse(
            "postgres://u:p@db.example:5432/stile?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url.client_url, "postgres://u:p@db.example:5432/stile?application_name=x&sslmode=require");
        assert_eq!(url.mode, SslMode::VerifyFull);
        assert_eq!(url.root_cert.as_deref(), Some("/etc/ca.pem"));
        url.client_url.parse::<tokio_postgres::Config>().unwrap();

        let plain = TlsUrl::parse("postgres://u@localhost/stile").unwrap();
        assert_eq!(plain.client_url, "postgres://u@localhost/stile");
        assert_eq!(plain.mode, SslMode::Prefer);
        let disabled = TlsUrl::parse("postgresql://localhost/stile?sslmode=disable").unwrap();
        assert_eq!(disabled.client_url, "postgresql://localhost/stile?sslmode=disable");
        assert_eq!(TlsUrl::parse("postgres://h/d?sslmode=allow").unwrap().mode, SslMode::Prefer);

        let err = TlsUrl::parse("postgres://h/d?sslmode=verify").unwrap_err();
        assert!(err.contains("\"verify\" is not one of"), "{err}");
        // The key=value form passes through as it is (tokio-postgres reads it).
        let keyword = TlsUrl::parse("host=localhost dbname=stile sslmode=require").unwrap();
        assert_eq!(keyword.client_url, "host=localhost dbname=stile sslmode=require");
    }

    #[test]
    fn a_root_file_that_is_missing_or_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let url =
            TlsUrl::parse(&format!("postgres://h/d?sslmode=verify-ca&sslrootcert={}", missing.display())).unwrap();
        let err = url.connector().err().unwrap();
        assert!(err.starts_with(&format!("sslrootcert {}:", missing.display())), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = TlsUrl::parse(&format!("postgres://h/d?sslrootcert={}", empty.display())).unwrap();
        let err = url.connector().err().unwrap();
        assert!(err.ends_with("holds no PEM certificate"), "{err}");
    }
}
