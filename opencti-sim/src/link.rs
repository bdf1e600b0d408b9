//! The simulator as one link serving many lines: the same `SwitchLink` a real
//! multi-line connector implements, for contact-centre code built on a `SharedLink`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use opencti_core::{
    Capabilities, Connector, DeviceId, Error, ErrorKind, EventSink, Line, LinkStatus, Request,
    Result, SwitchLink, SwitchState,
};

use crate::{SimConnector, SimSwitch};

/// Every agent of a [`SimSwitch`] over one link. Its [`status`](SimLink::status) handle
/// drops the link and brings it back, for every line at once.
#[derive(Debug)]
pub struct SimLink {
    switch: SimSwitch,
    status: Mutex<Option<LinkStatus>>,
    lines: Mutex<HashMap<DeviceId, SimConnector>>,
}

impl SimLink {
    /// A link to `switch`.
    pub fn new(switch: SimSwitch) -> Self {
        SimLink {
            switch,
            status: Mutex::new(None),
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// Where the link reports going down and coming up (once started): call
    /// [`LinkStatus::down`] and [`LinkStatus::up`] to simulate a link failure.
    pub fn status(&self) -> Option<LinkStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lines(&self) -> MutexGuard<'_, HashMap<DeviceId, SimConnector>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn line(&self, line: &Line) -> Result<SimConnector> {
        self.lines().get(&line.device).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("line {} is not open on this link", line.device),
            )
        })
    }
}

#[async_trait]
impl SwitchLink for SimLink {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn start(&self, status: LinkStatus) -> Result<()> {
        status.up();
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        Ok(())
    }

    async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()> {
        let connector = self.switch.connector(line.device.clone());
        connector.attach(line, sink)?;
        self.lines().insert(line.device.clone(), connector);
        Ok(())
    }

    async fn close_line(&self, line: &Line) -> Result<()> {
        let closed = self.lines().remove(&line.device);
        match closed {
            Some(connector) => connector.stop().await,
            None => Ok(()),
        }
    }

    async fn submit(&self, line: &Line, request: Request) -> Result<()> {
        self.line(line)?.submit(request).await
    }

    async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>> {
        let mut states = Vec::with_capacity(lines.len());
        for line in lines {
            states.push(self.line(line)?.snapshot().await?);
        }
        Ok(states)
    }

    async fn stop(&self) -> Result<()> {
        let open: Vec<SimConnector> = self.lines().drain().map(|(_, c)| c).collect();
        for connector in open {
            connector.stop().await?;
        }
        Ok(())
    }
}
