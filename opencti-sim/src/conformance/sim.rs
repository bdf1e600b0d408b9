//! The simulator as a conformance backend: its control handle is the stimulus.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, Connector, DeviceId, Dialable, Result, SharedLink};

use super::{Backend, Fixture, LinkBackend, LinkFixture, LinkStimulus, Stimulus};
use crate::{Control, FarEnd, SimSwitch};

/// Runs the kit against a fresh simulated centre per case: one agent (`conformance` at
/// device `7001`) and two extensions that answer after a second (`7100`, `7200`).
///
/// `boxed` hands the connector over as a `Box<dyn Connector>` turned into an `Arc`, to
/// prove the kit works through both.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimBackend {
    /// Build the connector as `Box<dyn Connector>` first.
    pub boxed: bool,
}

struct SimStimulus {
    control: Control,
}

#[async_trait]
impl Stimulus for SimStimulus {
    async fn call_device(&self, device: &DeviceId) -> Result<()> {
        self.control
            .customer_calls(device.as_str(), "+441632960999")
            .call()
    }

    async fn far_end_hangs_up(&self, device: &DeviceId, call: &CallId) -> Result<()> {
        self.control.far_end_hangs_up(device, call)
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("7100").unwrap_or_else(|_| unreachable!("a constant number is valid"))
    }

    fn second_number(&self) -> Dialable {
        Dialable::new("7200").unwrap_or_else(|_| unreachable!("a constant number is valid"))
    }
}

#[async_trait]
impl Backend for SimBackend {
    async fn fixture(&self) -> Result<Fixture> {
        let answers = FarEnd::Answer {
            after: Duration::from_secs(1),
        };
        let switch = SimSwitch::builder()
            .queue("conformance")
            .agent("conformance", "7001", &["conformance"])
            .extension("7100", answers)
            .extension("7200", answers)
            .build()?;
        let device = DeviceId::new("7001")?;
        let connector: Arc<dyn Connector> = if self.boxed {
            let boxed: Box<dyn Connector> = Box::new(switch.connector(device.clone()));
            Arc::from(boxed)
        } else {
            Arc::new(switch.connector(device.clone()))
        };
        Ok(Fixture {
            connector,
            agent: AgentId::new("conformance")?,
            device,
            stimulus: Arc::new(SimStimulus {
                control: switch.control(),
            }),
        })
    }
}

/// Runs the kit's link cases against a fresh simulated centre per case: three agents
/// (`link-a` at `7001`, `link-b` at `7002`, `link-c` at `7003`, a bystander) on one
/// [`SimLink`](crate::SimLink), and an extension that answers after a second (`7100`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimLinkBackend;

struct SimLinkStimulus {
    link: Arc<crate::SimLink>,
}

#[async_trait]
impl LinkStimulus for SimLinkStimulus {
    fn number_of(&self, device: &DeviceId) -> Dialable {
        // A device is dialled by its id in the simulated centre.
        Dialable::new(device.as_str())
            .unwrap_or_else(|_| unreachable!("the backend's device ids are dialable"))
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("7100").unwrap_or_else(|_| unreachable!("a constant number is valid"))
    }

    async fn drop_link(&self) -> Result<()> {
        if let Some(status) = self.link.status() {
            status.down("the simulated link was cut");
        }
        Ok(())
    }

    async fn restore_link(&self) -> Result<()> {
        if let Some(status) = self.link.status() {
            status.up();
        }
        Ok(())
    }
}

#[async_trait]
impl LinkBackend for SimLinkBackend {
    async fn link_fixture(&self) -> Result<LinkFixture> {
        let answers = FarEnd::Answer {
            after: Duration::from_secs(1),
        };
        let switch = SimSwitch::builder()
            .queue("conformance")
            .agent("link-a", "7001", &["conformance"])
            .agent("link-b", "7002", &["conformance"])
            .agent("link-c", "7003", &["conformance"])
            .extension("7100", answers)
            .build()?;
        let link = Arc::new(crate::SimLink::new(switch));
        let shared = SharedLink::start(link.clone()).await?;
        Ok(LinkFixture {
            link: shared,
            lines: vec![
                (AgentId::new("link-a")?, DeviceId::new("7001")?),
                (AgentId::new("link-b")?, DeviceId::new("7002")?),
                (AgentId::new("link-c")?, DeviceId::new("7003")?),
            ],
            stimulus: Arc::new(SimLinkStimulus { link }),
        })
    }
}
