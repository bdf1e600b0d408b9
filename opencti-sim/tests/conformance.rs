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
    use std::time::Duration;

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
        let report = Kit::new().wait(Duration::from_secs(5)).run(&Broken).await;
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
