//! The agents' browsers: one WebSocket each, checking every event's `seq`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::{agent_name, now_micros};

/// What every browser adds to.
#[derive(Default)]
pub(super) struct Browsers {
    /// (agent, seq, at, latency µs) of every event received stamped after `go_at`.
    pub(super) samples: Mutex<Vec<(u32, u64, u64, u64)>>,
    /// The same of a plain NATS subscriber to every line's events, in this process.
    pub(super) on_nats: Mutex<Vec<(u32, u64, u64, u64)>>,
    /// Each desk's last `seq`.
    pub(super) last_seq: Mutex<HashMap<u32, u64>>,
    pub(super) go_at: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) duplicated: AtomicU64,
    pub(super) snapshots_again: AtomicU64,
    pub(super) offered: AtomicU64,
    pub(super) answered: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) errors: Mutex<Vec<String>>,
}

impl Browsers {
    fn error(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("errors");
        if errors.len() < 8 {
            errors.push(what);
        }
    }
}

/// One agent's browser: authenticates, logs in, gets ready (then lets the next browser
/// connect), answers every offered call, checks the `seq`s.
pub(super) async fn browser(
    i: usize,
    address: String,
    token: String,
    shared: Arc<Browsers>,
    connecting: Arc<Semaphore>,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let permit = connecting.acquire_owned().await.expect("the semaphore");
    let url = format!("ws://{address}/ws");
    let mut ws = match tokio_tungstenite::connect_async_with_config(&url, None, true).await {
        Ok((ws, _)) => ws,
        Err(e) => return shared.error(format!("{} could not connect: {e}", agent_name(i))),
    };
    let text = |v: Value| Message::Text(v.to_string().into());
    let hello = json!({"auth": {"token": token}});
    let login = json!({"id": "r1", "command": {"type": "login"}});
    if ws.send(text(hello)).await.is_err() || ws.send(text(login)).await.is_err() {
        return shared.error(format!("{} could not send", agent_name(i)));
    }
    let mut permit = Some(permit);
    let mut last: Option<u64> = None;
    let mut answers = 0u64;
    while let Some(message) = ws.next().await {
        let message = match message {
            Ok(Message::Text(message)) => message,
            Ok(Message::Close(close)) => {
                return shared.error(format!("{} closed: {close:?}", agent_name(i)))
            }
            Ok(_) => continue,
            Err(e) => return shared.error(format!("{}: {e}", agent_name(i))),
        };
        let received = now_micros();
        let Ok(value) = serde_json::from_str::<Value>(&message) else {
            shared.error(format!("{}: not JSON: {message}", agent_name(i)));
            continue;
        };
        if let Some(event) = value.get("event") {
            let seq = event["seq"].as_u64().unwrap_or(0);
            match last {
                Some(l) if seq <= l => {
                    shared.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                Some(l) if seq > l + 1 => {
                    shared.lost.fetch_add(seq - l - 1, Ordering::Relaxed);
                }
                None => shared.error(format!("{}: an event before the snapshot", agent_name(i))),
                _ => {}
            }
            last = Some(last.map_or(seq, |l| l.max(seq)));
            shared.events.fetch_add(1, Ordering::Relaxed);
            let at = event["at"].as_u64().unwrap_or(0);
            if at >= shared.go_at.load(Ordering::Relaxed) {
                shared.samples.lock().expect("samples").push((
                    i as u32,
                    seq,
                    at,
                    received.saturating_sub(at),
                ));
            }
            if event["type"] == "call_offered" {
                shared.offered.fetch_add(1, Ordering::Relaxed);
                answers += 1;
                let answer = json!({"id": format!("a{answers}"), "command": {"type": "answer", "call": event["call"]}});
                if ws.send(text(answer)).await.is_err() {
                    return shared.error(format!("{} could not answer", agent_name(i)));
                }
            }
            shared
                .last_seq
                .lock()
                .expect("last seqs")
                .insert(i as u32, seq);
        } else if let Some(snapshot) = value.get("snapshot") {
            let seq = snapshot["seq"].as_u64().unwrap_or(0);
            if last.is_some() {
                shared.snapshots_again.fetch_add(1, Ordering::Relaxed);
            }
            last = Some(seq);
            shared
                .last_seq
                .lock()
                .expect("last seqs")
                .insert(i as u32, seq);
        } else if let Some(reply) = value.get("reply") {
            let id = reply["id"].as_str().unwrap_or_default();
            if reply.get("error").is_some() {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                if id == "r1" || id == "r2" || id == "auth" {
                    return shared.error(format!("{}: {id} refused: {reply}", agent_name(i)));
                }
                continue;
            }
            match id {
                "r1" => {
                    let ready_command = json!({"id": "r2", "command": {"type": "set_agent_state", "state": {"state": "ready"}}});
                    if ws.send(text(ready_command)).await.is_err() {
                        return shared.error(format!("{} could not get ready", agent_name(i)));
                    }
                }
                "r2" => {
                    permit.take();
                    let _ = ready.send(());
                }
                _ if id.starts_with('a') => {
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
    shared.error(format!("{}: the connection ended", agent_name(i)));
}
