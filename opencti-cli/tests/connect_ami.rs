//! `opencti connect ami` end to end: the `opencti` binary against the scripted AMI
//! server (from `opencti-asterisk-ami`'s `test-support` feature) on 127.0.0.1. A desktop
//! logs in over JSON lines, sees the confirmation, a snapshot and a call; a wrong secret
//! or a bad option ends the process with a clear error and never prints the secret.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opencti_asterisk_ami::test_support::{Control, Script};
use serde_json::{json, Value};

const SECRET: &str = "opencti-secret";

/// The scripted server, on a runtime of its own (the test itself blocks on pipes).
struct Asterisk {
    control: Control,
    runtime: tokio::runtime::Runtime,
}

impl Asterisk {
    /// A customer rings the agent's device (the script's timers run on its runtime).
    fn call_device(&self, from: &str) -> String {
        let _inside = self.runtime.enter();
        self.control.call_device(from)
    }
}

fn asterisk() -> Asterisk {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let control = runtime.block_on(Control::start(Script::default()));
    Asterisk { control, runtime }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("opencti-cli-ami-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Desktop {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<Value>,
    stderr: std::thread::JoinHandle<String>,
}

impl Desktop {
    fn start(args: &[&str]) -> Desktop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the opencti binary runs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {line} ({e})"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Desktop {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn send(&mut self, request: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{request}").expect("write a request");
    }

    /// The next message that satisfies `wanted`, within 15 s.
    fn until(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within 15 s"));
            if wanted(&message) {
                return message;
            }
        }
    }

    fn reply(&self, id: &str) -> Value {
        self.until(&format!("reply {id}"), |m| m["reply"]["id"] == id)["reply"].clone()
    }

    /// Closes stdin and waits (at most 15 s) for the exit; returns success and stderr.
    fn finish(mut self) -> (bool, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("opencti did not exit within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.join().unwrap_or_default();
        (status.success(), stderr)
    }
}

fn args<'a>(address: &'a str, secret_file: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "connect",
        "ami",
        "--address",
        address,
        "--username",
        "opencti",
        "--secret-file",
        secret_file.to_str().expect("utf-8 path"),
        "--agent",
        "alice",
        "--device",
        "PJSIP/7001",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_desktop_logs_in_and_takes_a_call_over_json_lines() {
    let asterisk = asterisk();
    let dir = TempDir::new("login");
    let secret = dir.file("secret", &format!("{SECRET}\n"));
    let address = asterisk.control.address();
    let mut desk = Desktop::start(&args(&address, &secret, &["--queue", "support"]));

    let first = desk.until("snapshot", |_| true);
    assert_eq!(first["snapshot"]["agent"], "alice", "{first}");
    assert_eq!(first["snapshot"]["device"], "PJSIP/7001");
    assert_eq!(first["snapshot"]["link"], "up", "{first}");
    assert_eq!(first["snapshot"]["agent_state"]["state"], "logged_out");

    desk.send(json!({"id": "caps", "query": {"type": "capabilities"}}));
    let caps = desk.reply("caps");
    let commands = caps["capabilities"]["commands"].as_array().expect("list");
    assert!(commands.contains(&json!("login")), "{caps}");
    assert!(
        !commands.contains(&json!("answer")),
        "answered by hand: {caps}"
    );

    desk.send(json!({"id": "login", "command": {"type": "login"}}));
    let login = desk.reply("login");
    assert!(login["confirmed"]["seq"].as_u64().is_some(), "{login}");
    desk.send(json!({"id": "snap", "query": {"type": "snapshot"}}));
    let snap = desk.reply("snap");
    assert_eq!(
        snap["snapshot"]["agent_state"]["state"], "not_ready",
        "{snap}"
    );
    desk.send(
        json!({"id": "ready", "command": {"type": "set_agent_state", "state": {"state": "ready"}}}),
    );
    assert!(desk.reply("ready")["confirmed"].is_object());

    // A customer calls; the phone answers by itself in the script.
    asterisk.call_device("+441632960001");
    let offered =
        desk.until("call_offered", |m| m["event"]["type"] == "call_offered")["event"].clone();
    assert_eq!(offered["from"], "+441632960001", "{offered}");
    let call = offered["call"].as_str().expect("call id").to_string();
    desk.until("call_connected", |m| {
        m["event"]["type"] == "call_connected" && m["event"]["call"] == call.as_str()
    });
    desk.send(json!({"id": "bye", "command": {"type": "hangup", "call": call}}));
    assert!(desk.reply("bye")["confirmed"].is_object());

    let (ok, stderr) = desk.finish();
    assert!(ok, "exit status; stderr: {stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let actions = asterisk.control.actions();
    for wanted in ["QueueAdd", "QueuePause", "Logoff"] {
        assert!(
            actions.iter().any(|a| a.starts_with(wanted)),
            "{wanted}: {actions:?}"
        );
    }
}

#[test]
fn a_wrong_secret_fails_clearly_without_printing_it() {
    let asterisk = asterisk();
    let dir = TempDir::new("wrong");
    let secret = dir.file("secret", "wrong-S3cret-from-file\n");
    let address = asterisk.control.address();
    let desk = Desktop::start(&args(&address, &secret, &[]));
    let (ok, stderr) = desk.finish();
    assert!(!ok, "a refused login exits non-zero");
    assert!(stderr.contains("refused the login"), "{stderr}");
    assert!(stderr.contains("\"opencti\""), "names the user: {stderr}");
    assert!(!stderr.contains("wrong-S3cret"), "{stderr}");
    assert!(asterisk.control.actions().iter().any(|a| a == "Login"));
}

#[test]
fn a_secret_on_the_command_line_warns_and_is_never_printed() {
    let asterisk = asterisk();
    let address = asterisk.control.address();
    let desk = Desktop::start(&[
        "connect",
        "ami",
        "--address",
        &address,
        "--username",
        "opencti",
        "--secret",
        "wrong-S3cret-on-argv",
        "--agent",
        "alice",
        "--device",
        "PJSIP/7001",
    ]);
    let (ok, stderr) = desk.finish();
    assert!(!ok);
    assert!(stderr.contains("process list"), "warns: {stderr}");
    assert!(stderr.contains("prefer --secret-file"), "{stderr}");
    assert!(stderr.contains("refused the login"), "{stderr}");
    assert!(!stderr.contains("wrong-S3cret"), "{stderr}");
}

#[test]
fn tls_and_secret_file_problems_are_reported_before_connecting() {
    let asterisk = asterisk();
    let dir = TempDir::new("tls");
    let secret = dir.file("secret", &format!("{SECRET}\n"));
    let address = asterisk.control.address();
    let missing_ca = dir.0.join("missing-ca.pem");
    let missing_ca = missing_ca.to_str().expect("utf-8");
    for (extra, says) in [
        (
            vec!["--tls", "--ca-file", missing_ca],
            "cannot read the TLS CA file",
        ),
        (vec!["--tls"], "--tls needs --ca-file"),
    ] {
        let desk = Desktop::start(&args(&address, &secret, &extra));
        let (ok, stderr) = desk.finish();
        assert!(!ok, "{extra:?}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
    let missing_secret = dir.0.join("no-such-secret");
    let desk = Desktop::start(&args(&address, &missing_secret, &[]));
    let (ok, stderr) = desk.finish();
    assert!(!ok);
    assert!(
        stderr.contains("cannot read the AMI secret file"),
        "{stderr}"
    );
    assert!(
        asterisk.control.actions().is_empty(),
        "{:?}",
        asterisk.control.actions()
    );
}

#[test]
fn watch_prints_every_device_event_as_json_lines() {
    let asterisk = asterisk();
    let dir = TempDir::new("watch");
    let secret = dir.file("secret", &format!("{SECRET}\n"));
    let address = asterisk.control.address();
    let secret_path = secret.to_str().expect("utf-8 path");
    let watcher = Desktop::start(&[
        "watch",
        "ami",
        "--address",
        &address,
        "--username",
        "opencti",
        "--secret-file",
        secret_path,
    ]);
    watcher.until("synced", |m| m.get("synced").is_some());
    asterisk.call_device("+441632960002");
    let offered = watcher.until("a call offered on some device", |m| {
        m["event"]["type"] == "call_offered"
    });
    assert!(offered["device"].as_str().is_some(), "{offered}");
    assert_eq!(offered["event"]["from"], "+441632960002", "{offered}");
    // The watch runs until interrupted, as by Ctrl-C.
    let interrupted = Command::new("kill")
        .args(["-INT", &watcher.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let (ok, stderr) = watcher.finish();
    assert!(ok, "an interrupted watch exits cleanly; stderr: {stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[test]
fn the_panel_serves_an_agent_on_asterisk() {
    use futures::{SinkExt, StreamExt};

    let asterisk = asterisk();
    let dir = TempDir::new("panel");
    let secret = dir.file("secret", &format!("{SECRET}\n"));
    let crm = dir.0.join("crm.sqlite");
    let address = asterisk.control.address();
    let mut command = vec![
        "panel",
        "--listen",
        "127.0.0.1:0",
        "--crm",
        crm.to_str().expect("utf-8"),
    ];
    let ami = args(&address, &secret, &["--queue", "support"]);
    command.push("ami");
    command.extend_from_slice(&ami[2..]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the opencti binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let link = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .expect("a link for the agent");
    let (host, token) = link
        .trim_start_matches("http://")
        .split_once("/#token=")
        .expect("a token in the link");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let snapshot = runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{host}/ws"))
            .await
            .expect("websocket");
        let hello = json!({"auth": {"token": token}}).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::Text(hello.into()))
            .await
            .expect("send");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .expect("a message within 15 s")
                .expect("open")
                .expect("frame");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                if value.get("snapshot").is_some() {
                    return value;
                }
            }
        }
    });
    assert_eq!(snapshot["snapshot"]["agent"], "alice", "{snapshot}");
    assert_eq!(snapshot["snapshot"]["device"], "PJSIP/7001");
    assert_eq!(snapshot["snapshot"]["link"], "up");
    child.kill().expect("kill");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    let _ = child.wait();
    assert!(!stderr.contains(SECRET), "{stderr}");
}
