//! HTTPS: the certificate chain and private key the gateway serves with, read from PEM
//! files, and what changes for a connection served over TLS.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use opencti_core::{Error, ErrorKind, Result};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate and key for [`Gateway::serve_tls`](crate::Gateway::serve_tls): TLS 1.2
/// and 1.3 (rustls with the `ring` provider), HTTP/1.1 offered by ALPN.
///
/// The certificate file holds the server's certificate first, then any intermediate
/// certificates (`-----BEGIN CERTIFICATE-----`); the key file holds its private key,
/// PKCS#8 (`-----BEGIN PRIVATE KEY-----`), RSA (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`), not encrypted. A file that cannot be read, holds no certificate
/// or no key, or a key that is not the certificate's, is a [`ErrorKind::Config`] error
/// that names the file.
///
/// ```no_run
/// use opencti_gateway::Tls;
/// let tls = Tls::from_pem_files("/etc/opencti/cert.pem", "/etc/opencti/key.pem")?;
/// # Ok::<(), opencti_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds the private key: show nothing of it.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the PEM certificate chain at `certificate` and the PEM private key at `key`,
    /// and checks that the key is the certificate's.
    pub fn from_pem_files(certificate: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Tls> {
        let (certificate, key) = (certificate.as_ref(), key.as_ref());
        let chain = certificates(certificate)?;
        let private_key = private_key(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS: no protocol version to offer: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => config_error(format!(
                    "the TLS key file {} does not hold the private key of the certificate in {}",
                    key.display(),
                    certificate.display()
                )),
                other => config_error(format!(
                    "the TLS certificate {} and key {} cannot be used: {other}",
                    certificate.display(),
                    key.display()
                )),
            })?;
        // The gateway speaks HTTP/1.1 alone: its WebSocket is upgraded from it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// Marks a request that came over TLS: the gateway's own origin is then `https://` alone,
/// and the response asks the browser to keep to HTTPS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServedOverTls;

/// How long browsers should keep to HTTPS for this host once they have seen it: a year.
pub(crate) const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        config_error(format!(
            "cannot read the TLS {what} file {}: {e}",
            path.display()
        ))
        .with_source(e)
    })
}

/// Why a PEM file could not be read, in words (the library's own message shows the
/// marker it expected as a list of bytes).
fn pem_problem(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no -----END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed".to_string(),
        other => other.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read("certificate", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            config_error(format!(
                "the TLS certificate file {} is not valid PEM: {}",
                path.display(),
                pem_problem(&e)
            ))
        })?;
    if chain.is_empty() {
        return Err(config_error(format!(
            "the TLS certificate file {} holds no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => config_error(format!(
            "the TLS key file {} holds no private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY; an encrypted key must be decrypted first)",
            path.display()
        )),
        other => config_error(format!(
            "the TLS key file {} is not valid PEM: {}",
            path.display(),
            pem_problem(&other)
        )),
    })
}
