//! The simulator as a conformance backend: its control handle is the stimulus.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, Connector, DeviceId, Dialable, Result};

use super::{Backend, Fixture, Stimulus};
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
