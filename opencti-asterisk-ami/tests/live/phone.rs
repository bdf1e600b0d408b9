//! Real SIP desk phones for the live tests: headless baresip registered to the test
//! Asterisk as a PJSIP endpoint (`peers/asterisk/baresip`), driven over its TCP control
//! port (netstring-framed JSON) as a person would use its keys.

#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use super::pbx::{cli, kit, skip, WAIT};

/// Whether the phone answers calls by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `answermode=auto`: every call is answered at once.
    Auto,
    /// Rings for this long, then answers by itself (a desk phone's auto-answer delay;
    /// the phone's driver presses `accept`).
    AfterRing(Duration),
    /// `answermode=manual`: the phone rings until told to answer.
    Manual,
}

/// A running baresip registered as one PJSIP endpoint.
pub struct Phone {
    /// The endpoint (`1001`).
    pub ext: String,
    child: Child,
    dir: PathBuf,
    keys: mpsc::UnboundedSender<(String, Option<String>)>,
    events: broadcast::Receiver<serde_json::Value>,
    driver: tokio::task::JoinHandle<()>,
}

fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on 127.0.0.1");
}

fn render(template: &Path, out: &Path, vars: &[(&str, String)]) {
    let mut text =
        std::fs::read_to_string(template).unwrap_or_else(|e| panic!("{}: {e}", template.display()));
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    std::fs::write(out, text).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

fn write_silence(path: &Path, secs: u32) {
    let data = vec![0u8; 8000 * 2 * secs as usize];
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{e}"));
}

/// The contact Asterisk has for endpoint `ext`'s AoR, as `pjsip show contacts` lists it.
fn contact_of(ext: &str) -> Option<String> {
    let prefix = format!("{ext}/sip:");
    cli("pjsip show contacts")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Contact:"))
        .map(str::trim)
        .find(|contact| contact.starts_with(&prefix))
        .map(|contact| {
            contact
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// Whether baresip is installed; `false` (skipped) or a failure under `CI=true`.
pub fn baresip_installed() -> bool {
    if Path::new("/usr/bin/baresip").exists() {
        return true;
    }
    skip("baresip is not installed (apt-get install baresip)");
    false
}

impl Phone {
    /// Starts baresip as endpoint `ext` and waits until Asterisk has its registration.
    pub async fn start(ext: &str, answer: Answer) -> Phone {
        let dir = std::env::temp_dir().join(format!(
            "opencti-ami-phone-{ext}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let wav = dir.join("silence8k.wav");
        write_silence(&wav, 30);
        // A fresh registration replaces the AoR's contact (max_contacts=1): wait for it
        // to differ from what a phone of an earlier test left.
        let before = contact_of(ext);
        let mut attempt = 0;
        let (child, ctrl) = loop {
            let rtp = 20_000 + fastrand::u16(..10_000) * 2;
            let (sip, ctrl, cons) = (free_port(), free_port(), free_port());
            let vars = [
                ("@EXT@", ext.to_owned()),
                (
                    "@ANSWERMODE@",
                    match answer {
                        Answer::Auto => "auto".to_owned(),
                        Answer::AfterRing(_) | Answer::Manual => "manual".to_owned(),
                    },
                ),
                ("@SIP_PORT@", sip.to_string()),
                ("@CTRL_PORT@", ctrl.to_string()),
                ("@CONS_PORT@", cons.to_string()),
                ("@RTP_FROM@", rtp.to_string()),
                ("@RTP_TO@", (rtp + 19).to_string()),
                ("@WAV@", wav.display().to_string()),
            ];
            render(&kit().join("baresip/config"), &dir.join("config"), &vars);
            render(
                &kit().join("baresip/accounts"),
                &dir.join("accounts"),
                &vars,
            );
            let log =
                std::fs::File::create(dir.join("baresip.log")).unwrap_or_else(|e| panic!("{e}"));
            let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
            let mut child = Command::new("baresip")
                .arg("-f")
                .arg(&dir)
                .args(["-n", "127.0.0.1", "-t", "600"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap_or_else(|e| panic!("baresip: {e}"));
            let deadline = tokio::time::Instant::now() + WAIT;
            let connected = loop {
                match tokio::net::TcpStream::connect(("127.0.0.1", ctrl)).await {
                    Ok(stream) => break Some(stream),
                    // Gone at start (a port picked free was taken meanwhile): start again
                    // with other ports.
                    Err(_) if matches!(child.try_wait(), Ok(Some(_))) => break None,
                    Err(e) => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "baresip {ext} ctrl_tcp: {e}\n{}",
                            std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            match connected {
                Some(stream) => break (child, stream),
                None if attempt < 2 => attempt += 1,
                None => panic!(
                    "baresip {ext} exited at start three times:\n{}",
                    std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
                ),
            }
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let (keys, key_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = broadcast::channel(256);
        let answer_after = match answer {
            Answer::AfterRing(delay) => Some(delay),
            _ => None,
        };
        let driver = tokio::spawn(drive(ctrl, key_rx, event_tx, answer_after));
        let phone = Phone {
            ext: ext.to_owned(),
            child,
            dir,
            keys,
            events,
            driver,
        };
        loop {
            let now = contact_of(ext);
            if now.is_some() && now != before {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "baresip {ext} did not register to Asterisk within {WAIT:?}:\n{}",
                phone.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        phone
    }

    /// The phone's device id on the desk.
    pub fn device(&self) -> String {
        format!("PJSIP/{}", self.ext)
    }

    /// baresip's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Presses a key: a ctrl_tcp command (`accept`, `hold`, `resume`, `hangup`,
    /// `transfer`, `dial`) with its parameter.
    pub async fn press(&mut self, command: &str, params: Option<&str>) {
        let _ = self
            .keys
            .send((command.to_owned(), params.map(str::to_owned)));
    }

    /// Waits for a ctrl_tcp event of `kind` (`CALL_INCOMING`, `CALL_ESTABLISHED`, ...).
    pub async fn expect(&mut self, kind: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) if event.get("type").and_then(|t| t.as_str()) == Some(kind) => {
                    return event
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    panic!("baresip {} closed its control port", self.ext)
                }
                Err(_) => panic!(
                    "baresip {} sent no {kind} within {WAIT:?}:\n{}",
                    self.ext,
                    self.log()
                ),
            }
        }
    }
}

/// The phone's driver: presses the keys it is sent, publishes what baresip reports, and
/// answers a ringing call after `answer_after` when the phone auto-answers with a delay.
async fn drive(
    mut ctrl: tokio::net::TcpStream,
    mut keys: mpsc::UnboundedReceiver<(String, Option<String>)>,
    events: broadcast::Sender<serde_json::Value>,
    answer_after: Option<Duration>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut answer_at: Option<tokio::time::Instant> = None;
    loop {
        let answer_due = async {
            match answer_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let key = tokio::select! {
            read = ctrl.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(message) = take_message(&mut buf) {
                        let incoming = message.get("type").and_then(|t| t.as_str()) == Some("CALL_INCOMING");
                        if let (true, Some(delay)) = (incoming, answer_after) {
                            answer_at = Some(tokio::time::Instant::now() + delay);
                        }
                        let _ = events.send(message);
                    }
                    continue;
                }
            },
            key = keys.recv() => match key {
                Some(key) => key,
                None => return,
            },
            _ = answer_due => {
                answer_at = None;
                ("accept".to_owned(), None)
            }
        };
        let (command, params) = key;
        let mut msg = serde_json::json!({ "command": command, "token": command });
        if let Some(p) = params {
            msg["params"] = serde_json::Value::String(p);
        }
        let body = msg.to_string();
        if ctrl
            .write_all(format!("{}:{},", body.len(), body).as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// One netstring-framed JSON message from the front of `buf`, if it is all there.
fn take_message(buf: &mut Vec<u8>) -> Option<serde_json::Value> {
    let colon = buf.iter().position(|b| *b == b':')?;
    let n: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    if buf.len() < colon + n + 2 {
        return None;
    }
    let body = buf[colon + 1..colon + 1 + n].to_vec();
    buf.drain(..colon + n + 2);
    serde_json::from_slice(&body).ok()
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.driver.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("KEEP_PHONE_RUNS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
