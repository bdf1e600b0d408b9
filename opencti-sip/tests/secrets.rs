//! The password never shows: not in `Debug` of the config or connector, not in errors,
//! and not in any log line (of this crate or of the SIP stack) at any level, across a
//! successful registration, a call, and a refused one.

mod support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use opencti_core::{AgentId, DesktopInterfaceExt, DeviceId, Dialable, Session};
use opencti_sip::{Secret, SipConnector};
use support::{require, Kamailio, RunDir};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Captures every event and span field, at every level, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        span.record(&mut Fields(&mut text));
        text.push('\n');
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn the_password_never_appears_in_debug_errors_or_logs() {
    if !require(&["kamailio"]) {
        return;
    }
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let run = RunDir::new("secrets");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    // Every user's password at this kamailio is "secret": the one with the right
    // password registers and calls; the wrong one is refused.
    let mut texts = Vec::new();
    runtime.block_on(async {
        let config = support::config(&kamailio, "1001");
        texts.push(format!("{config:?}"));
        let (session, _events, connector) = support::session(config).await;
        texts.push(format!("{connector:?}"));
        let made = session
            .make_call(Dialable::new("1999").unwrap_or_else(|e| panic!("{e}")))
            .await;
        texts.push(format!("{made:?}"));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        session.stop().await.unwrap_or_else(|e| panic!("{e}"));

        let mut config = support::config(&kamailio, "1002");
        config.password = Secret::new("wrong-pw-zebra");
        let connector = Arc::new(SipConnector::new(config).unwrap_or_else(|e| panic!("{e}")));
        let err = Session::builder(
            connector.clone(),
            AgentId::new("a").unwrap_or_else(|e| panic!("{e}")),
            DeviceId::new("1002").unwrap_or_else(|e| panic!("{e}")),
        )
        .start()
        .await
        .expect_err("wrong password");
        texts.push(format!("{err} {err:?} {connector:?}"));
    });
    let logs = capture.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        logs.len() > 100,
        "the capture saw no logs; it would prove nothing:\n{logs}"
    );
    for text in texts.iter().chain(std::iter::once(&logs)) {
        assert!(
            !text.contains("wrong-pw-zebra"),
            "the wrong password leaked:\n{text}"
        );
        // "secret" is the right password: it must not show either (the word itself
        // does not otherwise occur in these texts).
        assert!(!text.contains("secret"), "the password leaked:\n{text}");
    }
}
