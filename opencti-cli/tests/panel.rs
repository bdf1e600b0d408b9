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
