//! What the tests of `opencti serve` share: the running command, stopped when dropped,
//! and the link it prints; password hashes; signing an agent in and working its desk
//! over the WebSocket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A child process, killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `opencti serve FILE` with `args` (such as `--log debug`), its standard error
/// into `stderr` when given; returns it and the base URL it prints
/// (`http://127.0.0.1:PORT/`).
pub fn serve(file: &Path, args: &[&str], stderr: Option<&Path>) -> (Killed, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opencti"));
    command
        .arg("serve")
        .arg(file)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    if let Some(path) = stderr {
        let log = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        command.stderr(Stdio::from(log));
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("opencti serve: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let served = Killed(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_else(|e| panic!("{e}"));
        if let Some(url) = line
            .strip_prefix("Sign in at ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|url| url.strip_suffix("sign-in."))
        {
            return (served, url.to_string());
        }
    }
    panic!("opencti serve printed no link to sign in at");
}

/// The Argon2id hash `opencti hash-password` prints for `password`.
pub fn hash(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `POST path` with a JSON `body` over plain HTTP: the status and the body.
pub fn post(address: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    status_and_body(&response)
}

/// `GET path` over plain HTTP: the status and the body.
pub fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    status_and_body(&response)
}

/// The status code and the body of a whole HTTP/1.1 response.
pub fn status_and_body(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// A desk's WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Signs `agent` in and opens its desk; returns the WebSocket after the snapshot.
pub async fn desk(address: &str, agent: &str, password: &str) -> Socket {
    let (status, body) = post(
        address,
        "/api/sign-in",
        &format!(r#"{{"agent":"{agent}","password":"{password}"}}"#),
    );
    assert_eq!(status, 200, "{agent}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["token"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    next_text(&mut ws).await;
    ws
}

/// The next text message (within 15 s).
pub async fn next_text(ws: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

/// Sends `command` and waits for its reply.
pub async fn command(ws: &mut Socket, id: &str, command: serde_json::Value) -> String {
    let request = serde_json::json!({"id": id, "command": command}).to_string();
    ws.send(Message::Text(request.into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no reply to {id}");
        let text = next_text(ws).await;
        if text.contains(&format!("\"id\":\"{id}\"")) {
            return text;
        }
    }
}
