//! What the tests of `opencti serve` share: the running command, stopped when dropped,
//! and the link it prints.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
