//! `opencti panel` starts, prints a link per agent, and serves the panel and its client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        path, address
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_panel_command_serves_the_page_with_a_link_per_agent() {
    let crm =
        std::env::temp_dir().join(format!("opencti-panel-test-{}.sqlite", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(["panel", "--listen", "127.0.0.1:0", "--crm"])
        .arg(&crm)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut links = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(link) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            links.push(link.to_string());
        }
        if line.starts_with("Open the first link") {
            break;
        }
    }
    assert_eq!(
        links.len(),
        2,
        "the demo centre has two agents: {:?}",
        links
    );
    let address = links[0]
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(links[0].contains("/#token="));
    let page = get(&address, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{}", page);
    assert!(page.contains("Call Control Panel"));
    let client = get(&address, "/opencti-client.js");
    assert!(client.contains("export class OpenCtiClient"));
    let schema = get(&address, "/schema.json");
    assert!(schema.contains("client_to_server"));
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_file(&crm);
}

/// `--log info` writes sign-ins, session starts and refusals to standard error, and
/// never a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_logs_sign_ins_and_refusals_without_tokens() {
    use futures::{SinkExt, StreamExt};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let crm = std::env::temp_dir().join(format!(
        "opencti-panel-log-test-{}.sqlite",
        std::process::id()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args([
            "panel",
            "--log",
            "trace",
            "--listen",
            "127.0.0.1:0",
            "--crm",
        ])
        .arg(&crm)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
    let mut link = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(found) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            link.get_or_insert(found.to_string());
        }
        if line.starts_with("Open the first link") {
            break;
        }
    }
    let link = link.expect("a link");
    let (address, token) = link
        .trim_start_matches("http://")
        .split_once("/#token=")
        .unwrap();
    let url = format!("ws://{}/ws", address);
    let wait_for = |what: &'static str| {
        let log = log.clone();
        async move {
            for _ in 0..100 {
                if log.lock().unwrap_or_else(|e| e.into_inner()).contains(what) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{:?} was not logged", what);
        }
    };

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    wait_for("session started").await;
    wait_for("desktop connected").await;

    let (mut wrong, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let guess = "0".repeat(64);
    let hello = serde_json::json!({"auth": {"token": guess}}).to_string();
    wrong.send(Message::Text(hello.into())).await.unwrap();
    wait_for("authentication refused").await;

    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    wait_for("origin not allowed").await;

    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_file(&crm);
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(log.contains(" WARN "), "{}", log);
    assert!(!log.contains(token), "the token was logged:\n{}", log);
    assert!(
        !log.contains(&guess),
        "a presented token was logged:\n{}",
        log
    );
}
