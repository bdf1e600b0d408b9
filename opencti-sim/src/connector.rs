//! The simulator's connector: the same trait a real connector implements.

use async_trait::async_trait;
use opencti_core::{
    Capabilities, Connector, DeviceId, Error, ErrorKind, EventSink, Line as SessionLine, Request,
    Result, SwitchState,
};

use crate::switch::{Line, SimSwitch};

/// Connects one agent's session to a [`SimSwitch`]. Application code cannot tell it from a
/// real connector: it supports every command, queues state changes until after the call,
/// and reports after-call work when a queue imposes it.
#[derive(Debug, Clone)]
pub struct SimConnector {
    switch: SimSwitch,
    device: DeviceId,
}

impl SimConnector {
    pub(crate) fn new(switch: SimSwitch, device: DeviceId) -> Self {
        SimConnector { switch, device }
    }

    /// The device this connector serves.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Puts the agent's session on the simulated switch, emitting into `sink`.
    pub(crate) fn attach(&self, line: &SessionLine, sink: EventSink) -> Result<()> {
        if line.device != self.device {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "this connector serves device {}, not {}",
                    self.device, line.device
                ),
            ));
        }
        let device = self.device.clone();
        self.switch.with(|world| {
            match world.agent_by_id(&line.agent) {
                Some(a) if world.agent_of(&device) == Some(a) => {}
                _ => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "agent {} does not work at device {} in this simulated centre",
                            line.agent, device
                        ),
                    ))
                }
            }
            world.lines.insert(device, Line::new(sink));
            Ok(())
        })
    }
}

#[async_trait]
impl Connector for SimConnector {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn start(&self, line: &SessionLine, sink: EventSink) -> Result<()> {
        self.attach(line, sink.clone())?;
        sink.emit(opencti_core::Event::LinkUp);
        Ok(())
    }

    async fn submit(&self, request: Request) -> Result<()> {
        let device = self.device.clone();
        let delay = self.switch.with(|world| {
            let line = world.lines.get_mut(&device).ok_or_else(|| {
                Error::new(ErrorKind::LinkDown, "the connector has not been started")
            })?;
            if !line.up {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    "the simulated link is down",
                ));
            }
            if let Some(error) = line.faults.reject_next.take() {
                return Err(error);
            }
            Ok(line.faults.delay_next.take())
        })?;
        match delay {
            None => self
                .switch
                .with(|world| world.command(&device, &request.command)),
            Some(delay) => {
                // Accepted now, carried out later: a refusal then arrives as command_failed.
                let switch = self.switch.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    switch.with(|world| {
                        if let Err(error) = world.command(&device, &request.command) {
                            if let Some(line) = world.lines.get(&device) {
                                line.sink.command_failed(request.id, error);
                            }
                        }
                    });
                });
                Ok(())
            }
        }
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        let device = self.device.clone();
        self.switch.with(|world| {
            if world.lines.get(&device).is_some_and(|l| !l.up) {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    "the simulated link is down",
                ));
            }
            Ok(world.switch_state(&device))
        })
    }

    async fn stop(&self) -> Result<()> {
        let device = self.device.clone();
        self.switch.with(|world| world.lines.remove(&device));
        Ok(())
    }
}
