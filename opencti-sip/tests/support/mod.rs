//! Real SIP peers on 127.0.0.1 for the tests: kamailio (registrar, proxy, digest auth,
//! dialog events), baresip (a far-end phone driven over its TCP control port) and sipp.
//! Configs come from `opencti-sip/peers/`, rendered into a fresh run directory with
//! free ports. Every process is started by the test, bounded in time, and stopped (by
//! its own pid) when the handle drops.
//!
//! A missing peer skips the test with a printed reason on a developer machine, and
//! fails it when `CI=true`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use opencti_core::{AgentId, DesktopInterface, DeviceId, EventEnvelope, EventStream, Session};
use opencti_sip::{Secret, SipConfig, SipConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether a tool is installed; with `CI=true` a missing one fails the test.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(t).exists())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "SIP peer(s) {missing:?} not installed (apt-get install sip-tester kamailio kamailio-presence-modules kamailio-tls-modules baresip)"
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {reason}"
    );
    eprintln!("SKIPPED: {reason}");
    false
}

/// Whether kamailio's TLS module is installed (package kamailio-tls-modules); with
/// `CI=true` a missing one fails the test.
pub fn require_kamailio_tls() -> bool {
    if !require(&["kamailio", "kamcmd"]) {
        return false;
    }
    if Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists() {
        return true;
    }
    let reason = "kamailio's tls module not installed (apt-get install kamailio-tls-modules)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {reason}"
    );
    eprintln!("SKIPPED: {reason}");
    false
}

static RUN: AtomicU32 = AtomicU32::new(0);

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
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

fn peers_dir() -> PathBuf {
    // Anchored to the SIP crate, so that other crates' tests can include this module.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../opencti-sip/peers")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        }
    }
}

fn render(template: &Path, out: &Path, vars: &[(&str, String)]) {
    let mut text =
        std::fs::read_to_string(template).unwrap_or_else(|e| panic!("{}: {e}", template.display()));
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    std::fs::write(out, text).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// A run directory removed on drop.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn new(name: &str) -> RunDir {
        let n = RUN.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("opencti-sip-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap_or_else(|e| panic!("{e}"));
        RunDir(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::env::var("KEEP_SIP_RUNS").is_err() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// kamailio on 127.0.0.1:`port`, digest auth on (every password is `secret`).
pub struct Kamailio {
    pub port: u16,
    /// The TLS listener's port (listening only with `WITH_TLS`).
    pub tls_port: u16,
    pub dir: PathBuf,
    defines: Vec<&'static str>,
    pid: Option<u32>,
}

impl Kamailio {
    pub fn start(run: &RunDir, defines: &[&'static str]) -> Kamailio {
        Self::start_on(run, free_port(), defines)
    }

    pub fn start_on(run: &RunDir, port: u16, defines: &[&'static str]) -> Kamailio {
        Self::start_with_tls(run, port, free_port(), defines)
    }

    /// kamailio with `WITH_TLS` on `tls_port` too, with the certificate and key that
    /// must be in `<run>/tls/server.pem` and `server.key`.
    pub fn start_with_tls(
        run: &RunDir,
        port: u16,
        tls_port: u16,
        defines: &[&'static str],
    ) -> Kamailio {
        let dir = run.0.join("kamailio");
        std::fs::create_dir_all(dir.join("run")).unwrap_or_else(|e| panic!("{e}"));
        if !dir.join("dbtext").exists() {
            copy_dir(
                Path::new("/usr/share/kamailio/dbtext/kamailio"),
                &dir.join("dbtext"),
            );
        }
        render(
            &peers_dir().join("kamailio.cfg"),
            &dir.join("kamailio.cfg"),
            &[
                ("@PEERS@", run.0.display().to_string()),
                ("@PORT@", port.to_string()),
                ("@TLS_PORT@", tls_port.to_string()),
            ],
        );
        let mut k = Kamailio {
            port,
            tls_port,
            dir,
            defines: defines.to_vec(),
            pid: None,
        };
        k.launch();
        k
    }

    /// A handle to a kamailio that was never started: only its port is used.
    pub fn not_started(run: &RunDir, port: u16) -> Kamailio {
        Kamailio {
            port,
            tls_port: 0,
            dir: run.0.join("kamailio"),
            defines: Vec::new(),
            pid: None,
        }
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kamailio.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let pid_file = self.dir.join("kamailio.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(self.dir.join("kamailio.cfg"))
            .arg("-P")
            .arg(&pid_file)
            .arg("-Y")
            .arg(self.dir.join("run"))
            .args(["-m", "64", "-M", "8", "-E"]);
        for d in &self.defines {
            cmd.args(["-A", d]);
        }
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let status = cmd
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("kamailio: {e}"));
        assert!(status.success(), "kamailio did not start: {}", self.log());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                self.pid = Some(pid);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio wrote no pid file: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Ready when it answers on its UDP port.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// Stops it (by its pid) and waits until the port is free.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Waits until `user` is registered (at most 10 s).
    pub async fn wait_registered(&self, user: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = format!("AoR: {user}\n");
        while !self.registered().contains(&wanted) {
            assert!(
                Instant::now() < deadline,
                "{user} did not register with kamailio"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The registered AoRs (`kamcmd ul.dump brief`).
    pub fn registered(&self) -> String {
        self.kamcmd(&["ul.dump", "brief"])
    }

    /// The registrations with their contacts and sockets (`kamcmd ul.dump`).
    pub fn registrations(&self) -> String {
        self.kamcmd(&["ul.dump"])
    }

    pub fn kamcmd(&self, args: &[&str]) -> String {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.dir.join("kamailio_ctl").display()))
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A headless baresip registered as `user` to kamailio, auto-answering.
pub struct Baresip {
    pub user: String,
    pub ctrl: u16,
    pub sip: u16,
    child: Child,
    dir: PathBuf,
}

impl Baresip {
    pub fn start(run: &RunDir, kamailio: &Kamailio, user: &str) -> Baresip {
        let dir = run.0.join(format!("baresip{user}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (sip, ctrl, cons) = (free_port(), free_port(), free_port());
        let rtp = 20000 + (fastrand_u16() % 20000) / 2 * 2;
        let wav = dir.join("silence8k.wav");
        write_silence(&wav, 30);
        let vars = [
            ("@USER@", user.to_owned()),
            ("@PORT@", kamailio.port.to_string()),
            ("@SIP_PORT@", sip.to_string()),
            ("@CTRL_PORT@", ctrl.to_string()),
            ("@CONS_PORT@", cons.to_string()),
            ("@RTP_FROM@", rtp.to_string()),
            ("@RTP_TO@", (rtp + 19).to_string()),
            ("@WAV@", wav.display().to_string()),
        ];
        render(
            &peers_dir().join("baresip/config"),
            &dir.join("config"),
            &vars,
        );
        render(
            &peers_dir().join("baresip/accounts"),
            &dir.join("accounts"),
            &vars,
        );
        std::fs::write(dir.join("contacts"), "").unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-n", "127.0.0.1", "-t", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("baresip: {e}"));
        Baresip {
            user: user.to_owned(),
            ctrl,
            sip,
            child,
            dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Kills baresip with SIGKILL: it vanishes without a BYE, its RTP stops.
    pub fn kill(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("killing baresip: {e}"));
        let _ = self.child.wait();
    }

    /// Connects to the control port (retrying while baresip starts).
    pub async fn control(&self) -> BaresipCtl {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::net::TcpStream::connect(("127.0.0.1", self.ctrl)).await {
                Ok(stream) => {
                    return BaresipCtl {
                        stream,
                        buf: Vec::new(),
                        seen: Vec::new(),
                    }
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "baresip ctrl_tcp: {e}\n{}",
                        self.log()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand_u16() -> u16 {
    (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(RUN.fetch_add(7, Ordering::SeqCst) as u16 * 97)
}

/// Writes `secs` seconds of 8 kHz mono 16-bit silence.
pub fn write_silence(path: &Path, secs: u32) {
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

/// baresip's ctrl_tcp: netstring-framed JSON commands, responses and events.
pub struct BaresipCtl {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    pub seen: Vec<serde_json::Value>,
}

impl BaresipCtl {
    pub async fn send(&mut self, command: &str, params: Option<&str>) {
        let mut msg = serde_json::json!({ "command": command, "token": "t" });
        if let Some(p) = params {
            msg["params"] = serde_json::Value::String(p.to_owned());
        }
        let body = msg.to_string();
        let framed = format!("{}:{},", body.len(), body);
        self.stream
            .write_all(framed.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("baresip ctrl write: {e}"));
    }

    async fn read_one(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(colon) = self.buf.iter().position(|b| *b == b':') {
                let n: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
                if self.buf.len() > colon + n + 1 {
                    let body = self.buf[colon + 1..colon + 1 + n].to_vec();
                    self.buf.drain(..colon + n + 2);
                    return serde_json::from_slice(&body).ok();
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for an event whose `type` is `kind`.
    pub async fn wait_event(&mut self, kind: &str, within: Duration) -> serde_json::Value {
        if let Some(i) = self.seen.iter().position(|v| v["type"] == kind) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.read_one())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "baresip sent no {kind} event within {within:?}; saw {:?}",
                        self.seen
                    )
                });
            let Some(v) = next else {
                panic!("baresip closed its control connection while waiting for {kind}");
            };
            if v["type"] == kind {
                return v;
            }
            self.seen.push(v);
        }
    }
}

/// A SIP connector for extension `user` at kamailio, with test-sized timeouts.
pub fn config(kamailio: &Kamailio, user: &str) -> SipConfig {
    let mut c = SipConfig::new(kamailio.addr(), user, Secret::new("secret"));
    c.domain = format!("127.0.0.1:{}", kamailio.port);
    c.register_expires = 60;
    c.timeouts.register = Duration::from_secs(3);
    c.timeouts.keepalive = Some(Duration::from_millis(500));
    c.timeouts.max_backoff = Duration::from_millis(500);
    c
}

/// A session over a connector with `config`.
pub async fn session(config: SipConfig) -> (Session, EventStream, Arc<SipConnector>) {
    let user = config.user.clone();
    let connector = Arc::new(SipConnector::new(config).unwrap_or_else(|e| panic!("{e}")));
    let session = Session::builder(
        connector.clone(),
        AgentId::new("agent").unwrap_or_else(|e| panic!("{e}")),
        DeviceId::new(user).unwrap_or_else(|e| panic!("{e}")),
    )
    .command_timeout(Duration::from_secs(10))
    .start_timeout(Duration::from_secs(10))
    .start()
    .await
    .unwrap_or_else(|e| panic!("session start: {e}"));
    let events = session.subscribe();
    (session, events, connector)
}

/// Waits for the next event named `name` (within 15 s), returning it.
pub async fn expect(events: &mut EventStream, name: &str) -> Arc<EventEnvelope> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(e))) if e.event.name() == name => return e,
            Ok(Some(Ok(e))) => seen.push(e.event.name()),
            Ok(Some(Err(e))) => panic!("event stream error: {e}"),
            Ok(None) => panic!("event stream closed waiting for {name}"),
            Err(_) => panic!("no {name} within 15 s; saw {seen:?}"),
        }
    }
}

/// Runs sipp with `args` (bounded by `limit`), returning (success, stdout+stderr).
pub async fn sipp(args: &[String], dir: &Path, limit: Duration) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("sipp: {e}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Ok(Err(e)) => (false, format!("sipp failed: {e}")),
        Err(_) => (false, format!("sipp ran over {limit:?}")),
    }
}

/// The path of a sipp scenario in `peers/sipp/`.
pub fn scenario(name: &str) -> String {
    peers_dir().join("sipp").join(name).display().to_string()
}
