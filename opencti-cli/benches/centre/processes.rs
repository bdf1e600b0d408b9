//! The harness's processes: nats-server aside, the gateways it starts, and what it reads
//! of each process (CPU, memory, open files).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{agent_name, device_name, queue_name, Settings, SITE};

/// A child process, killed when dropped.
pub(super) struct Killed(pub(super) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of a process so far, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the command name (in parentheses, which may hold spaces): state is field 3,
    // utime 14 and stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub(super) fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub(super) fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(super) fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The soft limit on open files, from `/proc/self/limits`.
pub(super) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The Argon2id hash `opencti hash-password` prints.
pub(super) fn password_hash() -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("opencti hash-password runs");
    writeln!(
        child.stdin.take().expect("its stdin"),
        "not-used-for-sign-in"
    )
    .expect("a password written");
    let output = child
        .wait_with_output()
        .expect("opencti hash-password ends");
    assert!(output.status.success(), "opencti hash-password failed");
    String::from_utf8(output.stdout)
        .expect("a hash in UTF-8")
        .trim()
        .to_string()
}

/// A deployment file with every agent, for `opencti serve --nats`.
pub(super) fn deployment(dir: &Path, settings: &Settings) -> PathBuf {
    let hash = password_hash();
    let mut text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\nmax_connections = {}\n\n[phone_system]\nkind = \"simulator\"\n\n",
        settings.agents + 64
    );
    for i in 0..settings.agents {
        text.push_str(&format!(
            "[[agent]]\nid = \"{}\"\nname = \"Agent {i}\"\ndevice = \"{}\"\nqueues = [\"{}\"]\npassword_hash = \"{hash}\"\n\n",
            agent_name(i),
            device_name(i),
            queue_name(i % settings.queues)
        ));
    }
    let file = dir.join("centre.toml");
    std::fs::write(&file, text).expect("the deployment file");
    file
}

/// Starts `opencti serve FILE --nats URL --site centre`; it and its address.
pub(super) fn gateway(file: &Path, url: &str, dir: &Path, n: usize) -> (Killed, String) {
    let log = std::fs::File::create(dir.join(format!("gateway-{n}.log"))).expect("a log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("serve")
        .arg(file)
        .args(["--nats", url, "--site", SITE, "--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("opencti serve starts");
    let stdout = child.stdout.take().expect("its stdout");
    let running = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("opencti serve's output");
        if let Some(address) = line
            .strip_prefix("Sign in at http://")
            .and_then(|rest| rest.split('/').next())
        {
            let address = address.to_string();
            // Nothing more is expected, but a full pipe must never block it.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return (running, address);
        }
    }
    panic!("opencti serve printed no address; see gateway-{n}.log");
}
