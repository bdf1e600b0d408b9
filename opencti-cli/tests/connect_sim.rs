//! `opencti connect sim` speaks the desktop protocol on stdin/stdout: a desktop logs in,
//! answers the scripted call, hangs up, and sees typed errors for bad requests.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Desktop {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<Value>,
}

impl Desktop {
    fn start(args: &[&str]) -> Desktop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the opencti binary runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {} ({})", line, e));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Desktop {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, request: Value) {
        writeln!(self.stdin, "{}", request).unwrap();
    }

    fn send_raw(&mut self, line: &str) {
        writeln!(self.stdin, "{}", line).unwrap();
    }

    /// The next message that satisfies `wanted`, within 15 s.
    fn until(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {} within 15 s", what));
            if wanted(&message) {
                return message;
            }
        }
    }

    fn reply(&self, id: &str) -> Value {
        self.until(&format!("reply {}", id), |m| m["reply"]["id"] == id)["reply"].clone()
    }
}

#[test]
fn a_desktop_handles_a_call_over_json_lines() {
    let mut desk = Desktop::start(&["connect", "sim", "scenarios/screen-pop.toml"]);
    let first = desk.until("snapshot", |_| true);
    assert_eq!(first["snapshot"]["agent"], "alice");
    assert_eq!(first["snapshot"]["link"], "up");

    desk.send(json!({"id": "login", "command": {"type": "login"}}));
    desk.send(
        json!({"id": "ready", "command": {"type": "set_agent_state", "state": {"state": "ready"}}}),
    );
    let ready = desk.reply("ready");
    assert!(ready["confirmed"]["seq"].as_u64().is_some(), "{}", ready);

    // The scenario's first call arrives after two seconds, with its IVR data.
    let offered =
        desk.until("call_offered", |m| m["event"]["type"] == "call_offered")["event"].clone();
    assert_eq!(offered["data"]["account"], "A-1001");
    let call = offered["call"].as_str().unwrap().to_string();

    desk.send(json!({"id": "hold-too-early", "command": {"type": "hold", "call": call}}));
    let refused = desk.reply("hold-too-early");
    assert_eq!(refused["error"]["kind"], "invalid_state");
    assert_eq!(
        refused["error"]["allowed"],
        json!(["answer", "reject", "set_call_data"])
    );

    desk.send(json!({"id": "answer", "command": {"type": "answer", "call": call}}));
    let answered = desk.reply("answer");
    let seq = answered["confirmed"]["seq"].as_u64().unwrap();
    desk.send(json!({"id": "snap", "query": {"type": "snapshot"}}));
    let snap = desk.reply("snap");
    assert!(snap["snapshot"]["seq"].as_u64().unwrap() >= seq);
    assert_eq!(snap["snapshot"]["agent_state"]["state"], "busy");
    assert_eq!(snap["snapshot"]["calls"][0]["state"], "connected");

    desk.send_raw("{\"id\":\"junk\",\"command\":{\"type\":\"explode\"}}");
    let junk = desk.reply("junk");
    assert_eq!(junk["error"]["kind"], "bad_input");
    assert!(junk["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown variant `explode`"));
    desk.send_raw(&"x".repeat(70_000));
    let huge = desk.until("error for a huge line", |m| {
        m["reply"]["error"]["kind"] == "bad_input"
    });
    assert!(huge["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most"));

    desk.send(json!({"id": "bye", "command": {"type": "hangup", "call": call}}));
    assert!(desk.reply("bye")["confirmed"].is_object());

    drop(desk.stdin);
    let status = desk.child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn a_bad_scenario_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("opencti-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[queue]]\nid = \"q\"\n[[agent]]\nid = \"a\"\ndevice = \"1\"\nskills = [\"nope\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(["connect", "sim"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:6: unknown queue `nope`, expected one of the queues defined: q"),
        "{}",
        stderr
    );
}
