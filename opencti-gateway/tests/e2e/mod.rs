//! What the end-to-end tests share: the Node drivers in `e2e/` (Playwright in Debian's
//! Chromium, or a stub CRM desktop in Node), skipped with a printed reason where a peer
//! is missing except under `CI=true`, where that is a failure; and the driver's
//! milestones, one line each on its standard output.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

/// The drivers' folder (`npm ci` there installs what they import); found from any crate
/// of the workspace that includes these helpers.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../opencti-gateway/e2e")
}

/// Why a driver cannot run here, if it cannot: `node`, the npm `packages` it imports,
/// and with `browser` Chromium too.
fn missing(browser: bool, packages: &[&str]) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if browser && !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on the PATH".into());
    }
    packages
        .iter()
        .find(|p| !e2e_dir().join("node_modules").join(p).exists())
        .map(|p| format!("{p} is not installed (npm ci in opencti-gateway/e2e)"))
}

/// Whether `what` can run: `false` (skipped, the reason printed) on a machine without
/// its peers; a failure under `CI=true`.
pub fn can_run(what: &str, browser: bool, packages: &[&str]) -> bool {
    let Some(why) = missing(browser, packages) else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} must run in CI, but {why}"
    );
    println!("skipping {what}: {why}");
    false
}

/// The flags a Node driver needs for the global `WebSocket` the browser client uses:
/// `--experimental-websocket` on a Node that does not have it by default.
pub fn websocket_flags() -> Vec<&'static str> {
    let global = Command::new("node")
        .args([
            "-e",
            "process.exit(typeof WebSocket === 'function' ? 0 : 1)",
        ])
        .status()
        .is_ok_and(|status| status.success());
    if global {
        Vec::new()
    } else {
        vec!["--experimental-websocket"]
    }
}

/// Where screenshots go: `OPENCTI_SCREENSHOTS`, or a temporary folder named `name`.
pub fn screenshots(name: &str) -> PathBuf {
    let dir = std::env::var("OPENCTI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running driver and the milestones it prints.
pub struct Driver {
    child: Child,
    milestones: UnboundedReceiver<String>,
}

impl Driver {
    /// Runs `node [node_flags] e2e/<script> args...`.
    pub fn start(node_flags: &[&str], script: &str, args: &[&str]) -> Driver {
        let mut child = Command::new("node")
            .args(node_flags)
            .arg(e2e_dir().join(script))
            .args(args)
            .current_dir(e2e_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, milestones) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Driver { child, milestones }
    }

    /// The next milestone (within 90 s), or `None` once the driver has exited.
    pub async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(90), self.milestones.recv())
            .await
            .expect("the driver reported within 90 s")
    }

    /// Waits for the driver to exit; whether it succeeded.
    pub fn succeeded(mut self) -> bool {
        self.child.wait().unwrap().success()
    }
}
