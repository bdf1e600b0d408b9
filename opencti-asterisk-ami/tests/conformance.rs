//! The shared conformance kit from `opencti-sim`, run against the AMI connector through
//! the scripted AMI server (`tests/support`): real TCP on 127.0.0.1, real login, the
//! capture-shaped event sequences. Two configurations: answer by hand (the default, so
//! `answer` is not a capability) and a phone that answers by itself.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_asterisk_ami::{AmiConfig, AmiConnector, AnswerMode, Secret};
use opencti_core::{AgentId, CallId, DeviceId, Dialable, Error, ErrorKind, Result};
use opencti_sim::conformance::{Backend, Fixture, Kit, Outcome, Report, Stimulus};
use support::{Control, Script};

struct AmiStimulus {
    control: Control,
}

#[async_trait]
impl Stimulus for AmiStimulus {
    async fn call_device(&self, _device: &DeviceId) -> Result<()> {
        self.control.call_device("+441632960999");
        Ok(())
    }

    async fn far_end_hangs_up(&self, _device: &DeviceId, call: &CallId) -> Result<()> {
        if self.control.far_end_hangs_up(call.as_str()) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!("no call {call} at the scripted Asterisk"),
            ))
        }
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("2000").unwrap_or_else(|_| unreachable!())
    }

    fn second_number(&self) -> Dialable {
        Dialable::new("2001").unwrap_or_else(|_| unreachable!())
    }
}

struct AmiBackend {
    answer: AnswerMode,
}

#[async_trait]
impl Backend for AmiBackend {
    async fn fixture(&self) -> Result<Fixture> {
        let control = Control::start(Script::default()).await;
        let mut config =
            AmiConfig::new(control.address(), "opencti", Secret::new("opencti-secret"));
        config.queues = vec!["support".into()];
        config.answer = self.answer.clone();
        config.conference_context = Some("opencti-conference".into());
        config.timeouts.action = Duration::from_secs(5);
        let connector = Arc::new(AmiConnector::new(config)?);
        Ok(Fixture {
            connector,
            agent: AgentId::new("agent-7001")?,
            device: DeviceId::new("PJSIP/7001")?,
            stimulus: Arc::new(AmiStimulus { control }),
        })
    }
}

fn outcome<'a>(report: &'a Report, name: &str) -> &'a Outcome {
    &report
        .cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ami_connector_passes_the_kit_when_answering_by_hand() {
    let report = Kit::new()
        .wait(Duration::from_secs(5))
        .run(&AmiBackend {
            answer: AnswerMode::ByHand,
        })
        .await;
    println!("{report}");
    report.assert_passed();
    for skipped in ["inbound_answer_and_hang_up", "far_end_hangs_up"] {
        assert!(
            matches!(outcome(&report, skipped), Outcome::Skipped { .. }),
            "{skipped} should be skipped:\n{}",
            report
        );
    }
    for passed in [
        "agent_states",
        "reject",
        "make_call",
        "hold_and_retrieve",
        "send_dtmf",
        "set_call_data",
        "blind_transfer",
        "consult_and_transfer",
        "consult_and_conference",
        "after_call_state",
        "refusals_are_typed",
    ] {
        assert_eq!(
            outcome(&report, passed),
            &Outcome::Passed,
            "{passed}:\n{}",
            report
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ami_connector_passes_the_kit_with_a_self_answering_phone() {
    let report = Kit::new()
        .wait(Duration::from_secs(5))
        .run(&AmiBackend {
            answer: AnswerMode::PhoneAnswersItself,
        })
        .await;
    println!("{report}");
    report.assert_passed();
    for passed in [
        "inbound_answer_and_hang_up",
        "far_end_hangs_up",
        "consult_and_conference",
        "refusals_are_typed",
    ] {
        assert_eq!(
            outcome(&report, passed),
            &Outcome::Passed,
            "{passed}:\n{}",
            report
        );
    }
}
