//! Connecting: the banner, then the login (plaintext or MD5 challenge).

use std::time::Duration;

use bytes::BytesMut;
use md5::{Digest, Md5};
use opencti_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{link_down, Conn, READ_CHUNK};
use crate::action::{Action, AmiValue};
use crate::codec::{AmiCodec, DecoderConfig};
use crate::config::{AmiConfig, AuthMethod};
use crate::frame::{Banner, Frame};
use crate::message::{Message, MessageKind};
use crate::transport::{self, ReadHalf, Transport};

/// Reads one frame, waiting at most `timeout`.
async fn read_frame(
    read: &mut ReadHalf,
    codec: &mut AmiCodec,
    buf: &mut BytesMut,
    timeout: Duration,
    what: &str,
) -> Result<Frame> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    format!("Asterisk sent something that is not AMI while {what}: {e}"),
                )
                .with_source(e))
            }
        }
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, read.read_buf(buf)).await {
            Ok(Ok(0)) => {
                return Err(link_down(&format!(
                    "Asterisk closed the connection while {what}"
                )))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(link_down(&format!(
                    "reading from Asterisk failed while {what}: {e}"
                )))
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("Asterisk sent nothing for {timeout:?} while {what}"),
                ))
            }
        }
    }
}

/// Reads until the response to `action_id` (events before it are dropped: none come
/// before the login succeeds).
async fn read_response(
    conn: &mut Conn,
    action_id: &str,
    timeout: Duration,
    what: &str,
) -> Result<Message> {
    loop {
        let frame = read_frame(
            &mut conn.read,
            &mut conn.codec,
            &mut conn.buf,
            timeout,
            what,
        )
        .await?;
        if let Frame::Message(msg) = frame {
            if msg.kind() == MessageKind::Response && msg.action_id() == Some(action_id) {
                return Ok(msg);
            }
        }
    }
}

async fn write_action(conn: &mut Conn, action: &Action, timeout: Duration) -> Result<()> {
    let bytes = action.to_bytes()?;
    match tokio::time::timeout(timeout, conn.write.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(link_down(&format!("writing to Asterisk failed: {e}"))),
        Err(_) => Err(link_down("writing to Asterisk stalled")),
    }
}

fn value(text: &str) -> Result<AmiValue> {
    Ok(AmiValue::new(text)?)
}

fn config_action(name: &str) -> Result<Action> {
    Ok(Action::new(name)?)
}

fn header(action: Action, key: &str, text: &str) -> Result<Action> {
    action
        .try_header(key, text)
        .map_err(|e| Error::new(ErrorKind::Config, format!("AMI {key}: {e}")).with_source(e))
}

/// Connects, reads the banner and logs in.
pub(super) async fn establish(config: &AmiConfig, transport: &Transport) -> Result<Conn> {
    let t = config.timeouts.connect;
    let (read, write) = transport::connect(&config.address, t, transport).await?;
    let decoder = DecoderConfig::new().with_max_message_bytes(config.limits.max_message_bytes);
    let mut conn = Conn {
        read,
        write,
        codec: AmiCodec::with_config(decoder),
        buf: BytesMut::with_capacity(READ_CHUNK),
        banner: Banner::parse(b"Asterisk Call Manager/unknown")?,
    };
    let banner = read_frame(
        &mut conn.read,
        &mut conn.codec,
        &mut conn.buf,
        t,
        "waiting for the banner",
    )
    .await
    .map_err(|e| match (e.kind(), &config.tls) {
        // A TLS server waits for the client's hello: nothing comes.
        (ErrorKind::Timeout, None) => Error::new(
            ErrorKind::Timeout,
            format!(
                "{} (is {} a TLS port, such as 5039? then configure TLS)",
                e.message(),
                config.address
            ),
        ),
        _ => e,
    })?;
    match banner {
        Frame::Banner(banner) => conn.banner = banner,
        Frame::Message(_) => {
            return Err(link_down("Asterisk sent a message before its banner"));
        }
    }
    let mut login = config_action("Login")?;
    login.set_action_id(value("login-1")?);
    login = header(login, "Username", &config.username)?;
    match config.auth {
        AuthMethod::Plaintext => {
            let secret = AmiValue::secret(config.secret.expose_secret())
                .map_err(|_| Error::new(ErrorKind::Config, "the AMI secret cannot be sent"))?;
            login = login.header(crate::action::AmiKey::from_static("Secret")?, secret);
        }
        AuthMethod::Md5Challenge => {
            let challenge = config_action("Challenge")?;
            let challenge = header(
                challenge.action_id(value("challenge-1")?),
                "AuthType",
                "MD5",
            )?;
            write_action(&mut conn, &challenge, t).await?;
            let response =
                read_response(&mut conn, "challenge-1", t, "waiting for the MD5 challenge").await?;
            let nonce = match (response.response(), response.get("Challenge")) {
                (Some("Success"), Some(nonce)) => nonce.to_owned(),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "Asterisk refused the MD5 challenge: {} (use AuthMethod::Plaintext over TLS if it lacks MD5 support)",
                            response.text().unwrap_or("no reason given")
                        ),
                    ))
                }
            };
            let mut hasher = Md5::new();
            hasher.update(nonce.as_bytes());
            hasher.update(config.secret.expose_secret().as_bytes());
            let key: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            login = header(login, "AuthType", "MD5")?;
            login = login.header(
                crate::action::AmiKey::from_static("Key")?,
                AmiValue::secret(key)?,
            );
        }
    }
    login = header(login, "Events", &config.event_mask)?;
    write_action(&mut conn, &login, t).await?;
    let response =
        match read_response(&mut conn, "login-1", t, "waiting for the login response").await {
            Ok(response) => response,
            Err(e) if e.kind() == ErrorKind::LinkDown => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                "Asterisk closed the connection instead of answering the login of user {:?} ({})",
                config.username,
                e.message()
            ),
                ))
            }
            Err(e) => return Err(e),
        };
    if response.response() != Some("Success") {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "Asterisk refused the login of AMI user {:?}: {} (check the username and secret in manager.conf, and its permit/deny lines)",
                config.username,
                response.text().unwrap_or("no reason given")
            ),
        ));
    }
    Ok(conn)
}

/// Logs off (waiting at most `timeout` for Asterisk's answer) and closes the connection.
pub(super) async fn log_off(conn: &mut Conn, timeout: Duration) -> Result<()> {
    let mut logoff = config_action("Logoff")?;
    logoff.set_action_id(value("logoff-1")?);
    if write_action(conn, &logoff, timeout).await.is_ok() {
        let _ = read_response(conn, "logoff-1", timeout, "logging off").await;
    }
    let _ = conn.write.shutdown().await;
    Ok(())
}
