//! The byte stream to Asterisk: a TCP connection, or TLS over it (Asterisk's
//! `tlsenable = yes`, port 5039), split into a read half for the reader task and a write
//! half for actions.
//!
//! TLS is rustls with the `ring` provider: TLS 1.2 and 1.3, the server's certificate
//! checked against the configured CA file (and, if asked, the system's roots) and the
//! server name. There is no way to turn verification off.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opencti_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::config::{AmiConfig, TlsConfig};

/// The read half of a connection.
pub(crate) type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
/// The write half of a connection.
pub(crate) type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;

/// How to reach Asterisk: built once from the config (the CA file is read then), used
/// for every (re)connect.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls {
        connector: tokio_rustls::TlsConnector,
        server_name: ServerName<'static>,
    },
}

impl Transport {
    /// The transport `config` asks for. Errors (kind `config`) name the CA file and what
    /// is wrong with it.
    pub(crate) fn from_config(config: &AmiConfig) -> Result<Transport> {
        let Some(tls) = &config.tls else {
            return Ok(Transport::Tcp);
        };
        let server_name = server_name(tls, &config.address)?;
        let roots = root_store(tls)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("AMI config: TLS cannot be set up: {e}"),
                )
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Transport::Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub(crate) fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => address,
    }
}

/// The name the server's certificate must carry: `server_name`, else the address's host
/// (a DNS name or an IP address, which rustls checks against the IP SANs).
pub(crate) fn server_name(tls: &TlsConfig, address: &str) -> Result<ServerName<'static>> {
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| host_of(address).to_owned());
    ServerName::try_from(name.clone()).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!(
                "AMI config: {name:?} is not a DNS name or IP address to check Asterisk's TLS certificate against (set tls.server_name)"
            ),
        )
    })
}

/// The trusted roots: the CA file's certificates, and the system's if asked for.
fn root_store(tls: &TlsConfig) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &tls.ca_file {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("AMI config: cannot read the TLS CA file {shown}: {e}"),
            )
            .with_source(e)
        })?;
        let mut found = 0usize;
        for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let cert = cert.map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("AMI config: the TLS CA file {shown} is not valid PEM (certificate {}): {e}", i + 1),
                )
            })?;
            roots.add(cert).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "AMI config: certificate {} in the TLS CA file {shown} is not a usable CA certificate: {e}",
                        i + 1
                    ),
                )
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "AMI config: the TLS CA file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                ),
            ));
        }
    }
    if tls.system_roots {
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 && tls.ca_file.is_none() {
            let why = native
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Config,
                format!("AMI config: no usable CA certificate found in the system's store{why}; set tls.ca_file"),
            ));
        }
    }
    if roots.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            "AMI config: TLS needs a CA to check Asterisk's certificate against: set tls.ca_file (or tls.system_roots)",
        ));
    }
    Ok(roots)
}

/// Connects to `address` (`host:port`) within `timeout` (TCP and, for TLS, the
/// handshake).
///
/// A certificate that does not verify (unknown CA, wrong name, expired) is
/// `unauthorized`: retrying would not help and the link must not be trusted. Other
/// failures are `link_down` (or `timeout`) and are retried by the client.
pub(crate) async fn connect(
    address: &str,
    timeout: Duration,
    transport: &Transport,
) -> Result<(ReadHalf, WriteHalf)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(Error::new(
                ErrorKind::LinkDown,
                format!("cannot connect to the Asterisk AMI at {address}: {e}"),
            )
            .with_source(e))
        }
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("connecting to the Asterisk AMI at {address} took longer than {timeout:?}"),
            ))
        }
    };
    // Actions are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::Tcp => {
            let (read, write) = stream.into_split();
            Ok((Box::pin(read), Box::pin(write)))
        }
        Transport::Tls {
            connector,
            server_name,
        } => {
            let handshake = connector.connect(server_name.clone(), stream);
            match tokio::time::timeout_at(deadline, handshake).await {
                Ok(Ok(tls)) => {
                    let (read, write) = tokio::io::split(tls);
                    Ok((Box::pin(read), Box::pin(write)))
                }
                Ok(Err(e)) => Err(handshake_error(address, server_name, e)),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the TLS handshake with the Asterisk AMI at {address} took longer than {timeout:?} (is TLS enabled there? Asterisk's TLS AMI is usually on port 5039)"
                    ),
                )),
            }
        }
    }
}

/// A clear error for a failed handshake: what rustls objected to, and what to check.
fn handshake_error(address: &str, name: &ServerName<'_>, e: std::io::Error) -> Error {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let name = name.to_str();
    match tls {
        Some(
            err @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) => Error::new(
            ErrorKind::Unauthorized,
            format!(
                "the TLS certificate of the Asterisk AMI at {address} was not accepted for {name:?}: {err} (check tls.ca_file and tls.server_name)"
            ),
        ),
        Some(err @ rustls::Error::InvalidMessage(_)) => Error::new(
            ErrorKind::LinkDown,
            format!(
                "the TLS handshake with the Asterisk AMI at {address} failed: {err} (the server does not speak TLS there: is it the plain-text port 5038 instead of the TLS port 5039?)"
            ),
        ),
        Some(err) => Error::new(
            ErrorKind::LinkDown,
            format!("the TLS handshake with the Asterisk AMI at {address} failed: {err}"),
        ),
        None => Error::new(
            ErrorKind::LinkDown,
            format!("the TLS handshake with the Asterisk AMI at {address} failed: {e}"),
        )
        .with_source(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("pbx.example.com:5039"), "pbx.example.com");
        assert_eq!(host_of("127.0.0.1:5039"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5039"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("pbx"), "pbx");
    }

    #[test]
    fn server_names() {
        let tls = TlsConfig::default();
        assert!(server_name(&tls, "pbx.example.com:5039").is_ok());
        assert!(matches!(
            server_name(&tls, "[::1]:5039"),
            Ok(ServerName::IpAddress(_))
        ));
        let bad = TlsConfig {
            server_name: Some("not a name".into()),
            ..TlsConfig::default()
        };
        let err = server_name(&bad, "127.0.0.1:5039").expect_err("spaces");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
}
