//! The byte stream to Asterisk: a TCP connection, split into a read half for the reader
//! task and a write half for actions.
//!
//! TLS (port 5039) is not implemented yet; [`AmiConfig::validate`] refuses a TLS config
//! so that nothing falls back to clear text without the integrator knowing.
//!
//! [`AmiConfig::validate`]: crate::AmiConfig::validate

use std::pin::Pin;
use std::time::Duration;

use opencti_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a connection.
pub(crate) type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
/// The write half of a connection.
pub(crate) type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;

/// Connects to `address` (`host:port`) within `timeout`.
pub(crate) async fn connect(address: &str, timeout: Duration) -> Result<(ReadHalf, WriteHalf)> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
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
    let (read, write) = stream.into_split();
    Ok((Box::pin(read), Box::pin(write)))
}
