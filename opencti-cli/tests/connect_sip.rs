//! `opencti connect sip` end to end: the `opencti` binary registers to a real kamailio on
//! 127.0.0.1 and serves the line over JSON lines; a wrong password fails clearly without
//! printing it. Needs kamailio: skipped with a printed reason where it is missing, except
//! under `CI=true`.

#[path = "../../opencti-sip/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{require, Kamailio, RunDir};

fn opencti(kamailio: &Kamailio, password_file: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(["connect", "sip", "--registrar"])
        .arg(kamailio.addr().to_string())
        .args([
            "--domain",
            &format!("127.0.0.1:{}", kamailio.port),
            "--user",
            "1001",
        ])
        .arg("--password-file")
        .arg(password_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the opencti binary runs")
}

#[test]
fn the_line_registers_and_serves_its_desktop_over_json_lines() {
    if !require(&["kamailio"]) {
        return;
    }
    let run = RunDir::new("cli");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let password = run.0.join("password");
    std::fs::write(&password, "secret\n").expect("write");
    let mut child = opencti(&kamailio, &password);
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let until = |wanted: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = lines.recv_timeout(left).expect("a message within 15 s");
            if wanted(&v) {
                return v;
            }
        }
    };
    let first = until(&|v| v.get("snapshot").is_some());
    assert_eq!(first["snapshot"]["link"], "up", "registered: {first}");
    assert_eq!(first["snapshot"]["device"], "1001");
    writeln!(
        stdin,
        "{}",
        json!({"id": "in", "command": {"type": "login"}})
    )
    .expect("write");
    let reply = until(&|v| v["reply"]["id"] == "in");
    assert!(reply["reply"]["confirmed"].is_object(), "{reply}");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success());
}

#[test]
fn a_wrong_password_fails_clearly_and_is_never_printed() {
    if !require(&["kamailio"]) {
        return;
    }
    let run = RunDir::new("cli-bad");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let password = run.0.join("password");
    std::fs::write(&password, "not-the-password\n").expect("write");
    let mut child = opencti(&kamailio, &password);
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "opencti did not give up within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    assert!(!child.wait().expect("status").success());
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(!stderr.contains("not-the-password") && !stdout.contains("not-the-password"));
}
