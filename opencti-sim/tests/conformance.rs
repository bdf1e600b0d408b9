//! The simulator passes the whole conformance kit, through `Arc<dyn Connector>` and a
//! `Box<dyn Connector>`.

use opencti_sim::conformance::{Kit, Outcome, SimBackend};

#[tokio::test(start_paused = true)]
async fn the_simulator_passes_every_case() {
    let report = Kit::new().run(&SimBackend { boxed: false }).await;
    report.assert_passed();
    assert_eq!(report.passed(), Kit::case_names().len(), "{:#?}", report);
}

#[tokio::test(start_paused = true)]
async fn the_simulator_passes_every_case_when_boxed() {
    let report = Kit::new().run(&SimBackend { boxed: true }).await;
    report.assert_passed();
    assert!(report.cases.iter().all(|c| c.outcome == Outcome::Passed));
}

mod broken {
    use std::sync::Arc;

    use async_trait::async_trait;
    use opencti_core::{
        Capabilities, Command, CommandKind, Connector, EventSink, Line, Request, Result,
        SwitchState,
    };
    use opencti_sim::conformance::{Backend, Fixture, Kit, Outcome, SimBackend};

    /// Accepts hangup but never carries it out, and claims it cannot hold.
    #[derive(Debug)]
    struct ForgetsHangup(Arc<dyn Connector>);

    #[async_trait]
    impl Connector for ForgetsHangup {
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities().without(CommandKind::Hold)
        }
        async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
            self.0.start(line, sink).await
        }
        async fn submit(&self, request: Request) -> Result<()> {
            match request.command {
                Command::Hangup { .. } => Ok(()),
                _ => self.0.submit(request).await,
            }
        }
        async fn snapshot(&self) -> Result<SwitchState> {
            self.0.snapshot().await
        }
        async fn stop(&self) -> Result<()> {
            self.0.stop().await
        }
    }

    struct Broken;

    #[async_trait]
    impl Backend for Broken {
        async fn fixture(&self) -> Result<Fixture> {
            let mut fixture = SimBackend::default().fixture().await?;
            fixture.connector = Arc::new(ForgetsHangup(fixture.connector));
            Ok(fixture)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connector_that_does_not_hang_up_fails_and_missing_capabilities_are_skipped() {
        let report = Kit::new()
            .wait(std::time::Duration::from_secs(5))
            .run(&Broken)
            .await;
        let outcome = |name: &str| {
            report
                .cases
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.outcome.clone())
                .unwrap()
        };
        match outcome("make_call") {
            Outcome::Failed { reason } => {
                assert!(reason.contains("hangup failed: timeout"), "{}", reason)
            }
            other => panic!("{:?}", other),
        }
        assert!(matches!(
            outcome("hold_and_retrieve"),
            Outcome::Skipped { .. }
        ));
        assert_eq!(outcome("agent_states"), Outcome::Passed);
        // Hold is not a capability: the typed-refusal case checks it is refused as such.
        assert_eq!(outcome("refusals_are_typed"), Outcome::Passed);
    }
}

#[tokio::test(start_paused = true)]
async fn the_simulator_passes_the_link_cases_on_one_shared_link() {
    let report = Kit::new()
        .wait(std::time::Duration::from_secs(10))
        .run_links(&opencti_sim::conformance::SimLinkBackend)
        .await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.passed(), 3, "{report}");
    assert!(report
        .to_string()
        .ends_with("3 of 3 cases passed (0 skipped, 0 failed)"));
}

/// A link that forgets the calls when it reads the switch's state: the case where the
/// link drops while both agents are busy fails, and says why.
#[tokio::test(start_paused = true)]
async fn a_link_that_forgets_calls_after_a_reconnect_fails_the_link_cases() {
    use std::sync::Arc;

    use async_trait::async_trait;
    use opencti_core::{
        Capabilities, EventSink, Line, LinkStatus, Request, Result, SharedLink, SwitchLink,
        SwitchState,
    };
    use opencti_sim::conformance::{LinkBackend, LinkFixture, LinkStimulus};

    #[derive(Debug)]
    struct Forgetful(opencti_sim::SimLink);

    #[async_trait]
    impl SwitchLink for Forgetful {
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        async fn start(&self, status: LinkStatus) -> Result<()> {
            self.0.start(status).await
        }
        async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()> {
            self.0.open_line(line, sink).await
        }
        async fn close_line(&self, line: &Line) -> Result<()> {
            self.0.close_line(line).await
        }
        async fn submit(&self, line: &Line, request: Request) -> Result<()> {
            self.0.submit(line, request).await
        }
        async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>> {
            let mut states = self.0.snapshot(lines).await?;
            for state in &mut states {
                state.calls.clear();
            }
            Ok(states)
        }
        async fn stop(&self) -> Result<()> {
            self.0.stop().await
        }
    }

    struct Backend;

    #[async_trait]
    impl LinkBackend for Backend {
        async fn link_fixture(&self) -> Result<LinkFixture> {
            // The simulator's own fixture, with the link swapped for a forgetful one.
            let good = opencti_sim::conformance::SimLinkBackend
                .link_fixture()
                .await?;
            let switch = opencti_sim::SimSwitch::builder()
                .queue("q")
                .agent("link-a", "7001", &["q"])
                .agent("link-b", "7002", &["q"])
                .extension(
                    "7100",
                    opencti_sim::FarEnd::Answer {
                        after: std::time::Duration::from_secs(1),
                    },
                )
                .build()?;
            let forgetful = Arc::new(Forgetful(opencti_sim::SimLink::new(switch)));
            let link = SharedLink::start(forgetful.clone()).await?;
            struct Cut(Arc<Forgetful>, Arc<dyn LinkStimulus>);
            #[async_trait]
            impl LinkStimulus for Cut {
                fn number_of(&self, device: &opencti_core::DeviceId) -> opencti_core::Dialable {
                    self.1.number_of(device)
                }
                fn answering_number(&self) -> opencti_core::Dialable {
                    self.1.answering_number()
                }
                async fn drop_link(&self) -> Result<()> {
                    if let Some(status) = self.0 .0.status() {
                        status.down("cut");
                    }
                    Ok(())
                }
                async fn restore_link(&self) -> Result<()> {
                    if let Some(status) = self.0 .0.status() {
                        status.up();
                    }
                    Ok(())
                }
            }
            Ok(LinkFixture {
                link,
                lines: good.lines[..2].to_vec(),
                stimulus: Arc::new(Cut(forgetful, good.stimulus)),
            })
        }
    }

    let report = Kit::new()
        .wait(std::time::Duration::from_secs(10))
        .run_links(&Backend)
        .await;
    println!("{report}");
    let failed: Vec<_> = report.failures().map(|c| c.name).collect();
    assert_eq!(failed, ["link_drops_while_both_are_busy"], "{report}");
    assert!(
        report
            .to_string()
            .contains("after the link came back the panel should show"),
        "{report}"
    );
}
