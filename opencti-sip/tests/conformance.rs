//! The shared conformance kit from `opencti-sim`, run against the SIP connector with
//! real peers as the far end: each case gets a fresh kamailio (digest auth) and two
//! baresip phones, 1002 (the caller, and the answering number) and 1003 (the second
//! number), driven over their control ports.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, DeviceId, Dialable, Result};
use opencti_sim::conformance::{Backend, Fixture, Kit, Outcome, Stimulus};
use opencti_sip::SipConnector;
use support::{Baresip, BaresipCtl, Kamailio, RunDir};
use tokio::sync::Mutex;

struct Peers {
    kamailio: Kamailio,
    caller: Mutex<BaresipCtl>,
    _phones: Vec<Baresip>,
    _run: RunDir,
}

#[async_trait]
impl Stimulus for Peers {
    async fn call_device(&self, device: &DeviceId) -> Result<()> {
        let uri = format!("sip:{device}@127.0.0.1:{}", self.kamailio.port);
        self.caller.lock().await.send("dial", Some(&uri)).await;
        Ok(())
    }

    async fn far_end_hangs_up(&self, _device: &DeviceId, _call: &CallId) -> Result<()> {
        // The caller's phone (1002) is the far end of every call the cases make.
        self.caller.lock().await.send("hangup", None).await;
        Ok(())
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("1002").unwrap_or_else(|_| unreachable!())
    }

    fn second_number(&self) -> Dialable {
        Dialable::new("1003").unwrap_or_else(|_| unreachable!())
    }
}

struct SipBackend;

#[async_trait]
impl Backend for SipBackend {
    async fn fixture(&self) -> Result<Fixture> {
        let run = RunDir::new("conformance");
        let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
        let b1002 = Baresip::start(&run, &kamailio, "1002");
        let b1003 = Baresip::start(&run, &kamailio, "1003");
        let caller = b1002.control().await;
        kamailio.wait_registered("1002").await;
        kamailio.wait_registered("1003").await;
        let connector = Arc::new(SipConnector::new(support::config(&kamailio, "1001"))?);
        Ok(Fixture {
            connector,
            agent: AgentId::new("agent-1001")?,
            device: DeviceId::new("1001")?,
            stimulus: Arc::new(Peers {
                kamailio,
                caller: Mutex::new(caller),
                _phones: vec![b1002, b1003],
                _run: run,
            }),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sip_connector_passes_the_kit_against_kamailio_and_baresip() {
    if !support::require(&["kamailio", "kamcmd", "baresip"]) {
        return;
    }
    let report = Kit::new()
        .wait(Duration::from_secs(15))
        .run(&SipBackend)
        .await;
    println!("{report}");
    report.assert_passed();
    let outcome = |name: &str| {
        report
            .cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.outcome.clone())
            .unwrap_or_else(|| panic!("no case {name}"))
    };
    for passed in [
        "agent_states",
        "inbound_answer_and_hang_up",
        "far_end_hangs_up",
        "reject",
        "make_call",
        "hold_and_retrieve",
        "send_dtmf",
        "set_call_data",
        "blind_transfer",
        "consult_and_transfer",
        "after_call_state",
        "refusals_are_typed",
    ] {
        assert_eq!(outcome(passed), Outcome::Passed, "{passed}:\n{}", report);
    }
    // No conference on a plain SIP line: skipped, and refused as unsupported.
    assert!(
        matches!(outcome("consult_and_conference"), Outcome::Skipped { .. }),
        "{}",
        report
    );
}
