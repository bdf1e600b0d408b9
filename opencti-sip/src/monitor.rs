//! Monitoring other extensions (busy lamp field): NOTIFYs of the dialog event package
//! (RFC 4235) become canonical call events for those devices.

use std::collections::HashMap;
use std::sync::Mutex;

use opencti_core::{Address, CallData, CallId, Cause, DeviceId, Error, ErrorKind, Event};
use tokio::sync::broadcast;

use crate::dialog_info::{self, DialogPhase};
use crate::translate::address_from_uri;

/// A canonical event at a monitored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// The monitored device (the extension as given to `monitor`).
    pub device: DeviceId,
    /// What happened there.
    pub event: Event,
}

/// The events of monitored devices, in order. A receiver that falls behind gets a
/// `lagged` error and should ask again for what it needs.
#[derive(Debug)]
pub struct DeviceEvents(broadcast::Receiver<DeviceEvent>);

impl DeviceEvents {
    /// The next event; `None` once the connector is gone.
    pub async fn next(&mut self) -> Option<Result<DeviceEvent, Error>> {
        match self.0.recv().await {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::RecvError::Closed) => None,
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(Error::new(
                ErrorKind::Lagged,
                format!("{n} monitoring events were skipped: the receiver fell behind"),
            ))),
        }
    }
}

struct Watched {
    device: DeviceId,
    /// Dialog id → the last phase reported.
    dialogs: HashMap<String, DialogPhase>,
}

/// Turns NOTIFY bodies into [`DeviceEvent`]s.
pub(crate) struct Monitor {
    watched: Mutex<HashMap<String, Watched>>,
    events: broadcast::Sender<DeviceEvent>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            watched: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
        }
    }
}

fn call_id(device: &DeviceId, dialog: &str) -> Option<CallId> {
    let clean: String = dialog
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect();
    CallId::new(format!("{device}~{clean}")).ok()
}

impl Monitor {
    pub(crate) fn subscribe(&self) -> DeviceEvents {
        DeviceEvents(self.events.subscribe())
    }

    pub(crate) fn watch(&self, resource: &str, extension: &str) {
        let Ok(device) = DeviceId::new(extension) else {
            return;
        };
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                resource.to_owned(),
                Watched {
                    device,
                    dialogs: HashMap::new(),
                },
            );
    }

    /// Takes one NOTIFY body for `resource`.
    pub(crate) fn notify(&self, resource: &str, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let doc = match dialog_info::parse(body) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!(%resource, error = %e, "SIP monitoring: NOTIFY body ignored");
                return;
            }
        };
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = watched.get_mut(resource) else {
            return;
        };
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for d in &doc.dialogs {
            seen.push(d.id.clone());
            let Some(call) = call_id(&w.device, &d.id) else {
                continue;
            };
            let before = w.dialogs.get(&d.id).copied();
            if before == Some(d.phase) {
                continue;
            }
            let remote = d.remote.as_deref().and_then(address_from_uri);
            if before.is_none() && d.phase != DialogPhase::Terminated {
                out.push(if d.initiator == Some(true) {
                    Event::CallInitiated {
                        call: call.clone(),
                        to: remote.clone(),
                        consult_of: None,
                        data: CallData::new(),
                    }
                } else {
                    Event::CallOffered {
                        call: call.clone(),
                        from: remote.clone(),
                        to: None::<Address>,
                        queue: None,
                        data: CallData::new(),
                    }
                });
            }
            match d.phase {
                DialogPhase::Early if d.initiator == Some(true) => {
                    out.push(Event::CallRingback { call })
                }
                DialogPhase::Confirmed => out.push(Event::CallConnected { call }),
                DialogPhase::Terminated if before.is_some() => out.push(Event::CallEnded {
                    call,
                    cause: Cause::Normal,
                }),
                _ => {}
            }
            if d.phase == DialogPhase::Terminated {
                w.dialogs.remove(&d.id);
            } else {
                w.dialogs.insert(d.id.clone(), d.phase);
            }
        }
        if doc.full {
            // A full state lists every dialog: the ones it leaves out are over.
            let gone: Vec<String> = w
                .dialogs
                .keys()
                .filter(|k| !seen.contains(k))
                .cloned()
                .collect();
            for id in gone {
                w.dialogs.remove(&id);
                if let Some(call) = call_id(&w.device, &id) {
                    out.push(Event::CallEnded {
                        call,
                        cause: Cause::Normal,
                    });
                }
            }
        }
        let device = w.device.clone();
        drop(watched);
        for event in out {
            let _ = self.events.send(DeviceEvent {
                device: device.clone(),
                event,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifies_become_call_events() {
        let m = Monitor::default();
        let mut rx = m.events.subscribe();
        m.watch("sip:1002@h", "1002");
        m.notify("sip:1002@h", br#"<dialog-info state="full"><dialog id="d1" direction="recipient"><state>early</state><remote><identity>sip:1001@h</identity></remote></dialog></dialog-info>"#);
        m.notify("sip:1002@h", br#"<dialog-info state="full"><dialog id="d1" direction="recipient"><state>confirmed</state></dialog></dialog-info>"#);
        m.notify("sip:1002@h", br#"<dialog-info state="full"></dialog-info>"#);
        let names: Vec<&str> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.event.name())
            .collect();
        assert_eq!(names, ["call_offered", "call_connected", "call_ended"]);
        // Garbage and unknown resources are ignored.
        m.notify("sip:1002@h", b"<<<");
        m.notify("sip:9@h", br#"<dialog-info/>"#);
        assert!(rx.try_recv().is_err());
    }
}
