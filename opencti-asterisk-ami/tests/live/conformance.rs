//! `opencti-sim`'s conformance kit on the real Asterisk, with both kinds of device a
//! contact centre uses: Local-channel agents (the `agents` context answers a second
//! after ringing) and PJSIP desk phones (baresip answering by itself). Every case the
//! capabilities allow must pass, with the session's `rejected` at zero; the kit itself
//! checks that the rest are refused as `unsupported`.

use std::sync::Arc;

use async_trait::async_trait;
use opencti_asterisk_ami::{AmiConfig, AmiConnector, AnswerMode};
use opencti_core::{AgentId, CallId, DeviceId, Dialable, Error, ErrorKind, Result};
use opencti_sim::conformance::{Backend, Fixture, Kit, Outcome, Stimulus};

use super::pbx::{config, local_agent_config, Pbx, WAIT};
use super::phone::{baresip_installed, Answer, Phone};

/// The far end, played through the control connection.
struct LiveStimulus {
    pbx: Arc<Pbx>,
}

#[async_trait]
impl Stimulus for LiveStimulus {
    async fn call_device(&self, device: &DeviceId) -> Result<()> {
        let (context, exten) = match device.as_str().split_once('/') {
            Some(("Local", rest)) => ("from-customers", rest.split('@').next().unwrap_or(rest)),
            Some(("PJSIP", exten)) => ("pjsip-customers", exten),
            _ => {
                return Err(Error::new(
                    ErrorKind::BadInput,
                    format!("no way to call {device} on the test PBX"),
                ))
            }
        };
        self.pbx
            .customer_calls(context, exten, "+441632960199")
            .await;
        Ok(())
    }

    async fn far_end_hangs_up(&self, device: &DeviceId, call: &CallId) -> Result<()> {
        match self
            .pbx
            .far_end_hangs_up(device.as_str(), call.as_str())
            .await
        {
            0 => Err(Error::new(
                ErrorKind::NotFound,
                format!("no far end of call {call} on the PBX"),
            )),
            _ => Ok(()),
        }
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("2000").unwrap_or_else(|_| unreachable!())
    }

    fn second_number(&self) -> Dialable {
        // 2001-2004 are SIP customer phones for a PJSIP agent; 2005 is a Local customer
        // from every agent context.
        Dialable::new("2005").unwrap_or_else(|_| unreachable!())
    }
}

struct LiveBackend {
    pbx: Arc<Pbx>,
    agent: &'static str,
    device: String,
    config: AmiConfig,
}

#[async_trait]
impl Backend for LiveBackend {
    async fn fixture(&self) -> Result<Fixture> {
        // Every case starts from a PBX with no call and the agent in no queue.
        self.pbx.clear().await;
        Ok(Fixture {
            connector: Arc::new(AmiConnector::new(self.config.clone())?),
            agent: AgentId::new(self.agent)?,
            device: DeviceId::new(&self.device)?,
            stimulus: Arc::new(LiveStimulus {
                pbx: self.pbx.clone(),
            }),
        })
    }
}

/// Runs the kit and checks that exactly the `skipped` cases were skipped.
async fn run(backend: LiveBackend, skipped: &[&str]) {
    let report = Kit::new().wait(WAIT).run(&backend).await;
    println!("{report}");
    report.assert_passed();
    for case in &report.cases {
        let expected_skip = skipped.contains(&case.name);
        assert_eq!(
            matches!(case.outcome, Outcome::Skipped { .. }),
            expected_skip,
            "{} should {}be skipped:\n{}",
            case.name,
            if expected_skip { "" } else { "not " },
            report
        );
    }
    backend.pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_with_a_local_channel_agent() {
    let Some(pbx) = Pbx::take().await else { return };
    run(
        LiveBackend {
            pbx: Arc::new(pbx),
            agent: "agent-1003",
            device: "Local/1003@agents".into(),
            config: local_agent_config(&["sales"]),
        },
        // Asterisk has no "swap" action, and no after-call state of its own.
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_with_a_pjsip_desk_phone() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let phone = Phone::start("1001", Answer::AfterRing(std::time::Duration::from_secs(1))).await;
    let mut config = config();
    config.queues = vec!["sales".into()];
    config.outbound_context = "pjsip-agents".into();
    config.conference_context = Some("opencti-conference".into());
    config.answer = AnswerMode::PhoneAnswersItself;
    run(
        LiveBackend {
            pbx: Arc::new(pbx),
            agent: "agent-1001",
            device: phone.device(),
            config,
        },
        &[],
    )
    .await;
    drop(phone);
}
