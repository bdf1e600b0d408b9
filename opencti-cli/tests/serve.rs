//! `opencti serve FILE`: a whole contact centre from a deployment file. On the embedded
//! simulator: agents sign in with their id and password, get a token, and their desk
//! over the WebSocket; a wrong password is refused; a bad file is refused naming the
//! file and the line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hash(password: &str) -> String {
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

fn deployment(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("centre.toml");
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n\n[phone_system]\nkind = \"simulator\"\n\n\
         [[agent]]\nid = \"alice\"\nname = \"Alice\"\ndevice = \"1001\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n\n\
         [[agent]]\nid = \"bob\"\nname = \"Bob\"\ndevice = \"1002\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n",
        hash("alice-pw"),
        hash("bob-pw")
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `opencti serve` and returns its address.
fn serve(file: &std::path::Path) -> (Served, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("serve")
        .arg(file)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Sign in at http://") {
            let address = rest.split('/').next().unwrap().to_string();
            return (served, address);
        }
    }
    panic!("opencti serve printed no address");
}

fn post(address: &str, path: &str, body: &str) -> (u16, String) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_with_a_password_and_get_their_desk() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let (_served, address) = serve(&file);

    let (status, _) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"alice","password":"bob-pw"}"#,
    );
    assert_eq!(status, 401, "someone else's password");
    let (status, body) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"bob","password":"bob-pw"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["token"].as_str().unwrap().to_string();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .unwrap();
    let text = first.into_text().unwrap().to_string();
    assert!(
        text.contains("\"bob\"") && text.contains("1002"),
        "bob's desk: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_deployment_file_is_refused_with_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("centre.toml");
    std::fs::write(
        &file,
        "[listen]\naddress = \"127.0.0.1:0\"\n\n[phone_system]\nkind = \"pbx\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("serve")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("centre.toml:5:"), "{error}");
    assert!(error.contains("pbx"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
