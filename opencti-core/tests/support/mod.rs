//! Test support shared by the integration tests: a `mockall` mock of the connector
//! trait, scripted so that it behaves like a small switch.

#![allow(dead_code, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opencti_core::{
    AgentId, AgentState, CallId, Capabilities, Connector, DeviceId, Event, EventSink, Line,
    Request, Result, SwitchState,
};

mockall::mock! {
    pub Switch {}

    impl std::fmt::Debug for Switch {
        fn fmt<'a>(&self, f: &mut std::fmt::Formatter<'a>) -> std::fmt::Result;
    }

    #[async_trait]
    impl Connector for Switch {
        fn capabilities(&self) -> Capabilities;
        async fn start(&self, line: &Line, sink: EventSink) -> Result<()>;
        async fn submit(&self, request: Request) -> Result<()>;
        async fn snapshot(&self) -> Result<SwitchState>;
        async fn stop(&self) -> Result<()>;
    }
}

/// The sink the session handed to the mock, for the test to emit through.
#[derive(Clone, Default)]
pub struct SinkSlot(pub Arc<Mutex<Option<EventSink>>>);

impl SinkSlot {
    pub fn emit(&self, event: Event) {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .expect("started")
            .emit(event);
    }

    pub fn sink(&self) -> EventSink {
        self.0.lock().unwrap().clone().expect("started")
    }
}

/// What the switch reports when asked for its state.
#[derive(Clone)]
pub struct SwitchView(pub Arc<Mutex<SwitchState>>);

impl Default for SwitchView {
    fn default() -> Self {
        SwitchView(Arc::new(Mutex::new(SwitchState {
            agent: AgentState::LoggedOut,
            calls: Vec::new(),
            withheld: Vec::new(),
        })))
    }
}

impl SwitchView {
    pub fn set(&self, state: SwitchState) {
        *self.0.lock().unwrap() = state;
    }
}

/// A mock that starts by emitting `link_up`, answers `snapshot` from `view`, and answers
/// each request with `script`.
pub fn scripted_switch(
    capabilities: Capabilities,
    slot: &SinkSlot,
    view: &SwitchView,
    script: impl Fn(&Request, &EventSink) -> Result<()> + Send + Sync + 'static,
) -> MockSwitch {
    let mut mock = MockSwitch::new();
    mock.expect_capabilities().return_const(capabilities);
    mock.expect_fmt().returning(|f| f.write_str("MockSwitch"));
    let slot_for_start = slot.clone();
    mock.expect_start().returning(move |_line, sink| {
        sink.emit(Event::LinkUp);
        *slot_for_start.0.lock().unwrap() = Some(sink);
        Ok(())
    });
    let view = view.clone();
    mock.expect_snapshot()
        .returning(move || Ok(view.0.lock().unwrap().clone()));
    let slot_for_submit = slot.clone();
    mock.expect_submit().returning(move |request| {
        let sink = slot_for_submit.sink();
        script(&request, &sink)
    });
    mock.expect_stop().returning(|| Ok(()));
    mock
}

pub fn agent() -> AgentId {
    AgentId::new("alice").unwrap()
}

pub fn device() -> DeviceId {
    DeviceId::new("1001").unwrap()
}

pub fn call(id: &str) -> CallId {
    CallId::new(id).unwrap()
}

pub fn offered(id: &str, queue: Option<&str>) -> Event {
    Event::CallOffered {
        call: call(id),
        from: Some(opencti_core::Address::new("+441632960001").unwrap()),
        to: None,
        queue: queue.map(|q| opencti_core::QueueId::new(q).unwrap()),
        data: Default::default(),
    }
}

/// A `Write` whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuffer {
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}
