//! Benchmarks of the core: events through the state machines, the session's fan-out to
//! many subscribers, and the command-to-confirmation round trip.
//!
//! Run: `cargo bench -p opencti-core --bench engine`

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use divan::counter::ItemsCount;
use divan::Bencher;
use futures::{FutureExt, StreamExt};
use opencti_core::machine::Desk;
use opencti_core::{
    AgentId, AgentState, CallData, CallId, Capabilities, Cause, Command, Connector,
    DesktopInterface, DesktopInterfaceExt, DeviceId, DtmfDigits, Event, EventSink, Line, QueueId,
    Request, Result, Session, SwitchState,
};

fn main() {
    divan::main();
}

const CALLS: usize = 10_000;

/// A realistic ACD call as the agent's device sees it, for `CALLS` calls: offered,
/// answered, held, retrieved, DTMF, ended, wrap-up completed. 7 events a call.
fn call_events() -> Vec<Event> {
    let queue = QueueId::new("support").unwrap();
    let mut events = Vec::with_capacity(CALLS * 7);
    for i in 0..CALLS {
        let call = CallId::new(format!("1795238{:06}.{}", i, i % 97)).unwrap();
        events.push(Event::CallOffered {
            call: call.clone(),
            from: Some(opencti_core::Address::new("+441632960001").unwrap()),
            to: Some(opencti_core::Address::new("0800123456").unwrap()),
            queue: Some(queue.clone()),
            data: CallData::new(),
        });
        events.push(Event::CallConnected { call: call.clone() });
        events.push(Event::CallHeld { call: call.clone() });
        events.push(Event::CallRetrieved { call: call.clone() });
        events.push(Event::DtmfSent {
            call: call.clone(),
            digits: DtmfDigits::new("1").unwrap(),
        });
        events.push(Event::CallEnded {
            call,
            cause: Cause::Normal,
        });
        events.push(Event::AgentStateChanged {
            state: AgentState::Ready,
        });
    }
    events
}

fn ready_desk() -> Desk {
    let mut desk = Desk::new(
        AgentId::new("alice").unwrap(),
        DeviceId::new("1001").unwrap(),
        Capabilities::all(),
    );
    let _ = desk.apply(&mut Event::LinkUp).unwrap();
    let _ = desk
        .apply(&mut Event::AgentStateChanged {
            state: AgentState::Ready,
        })
        .unwrap();
    desk
}

/// Events through the pure state machines (agent and call), derived agent states included.
#[divan::bench]
fn state_machines(bencher: Bencher<'_, '_>) {
    let events = call_events();
    bencher
        .counter(ItemsCount::new(events.len()))
        .with_inputs(|| (ready_desk(), events.clone()))
        .bench_local_values(|(mut desk, mut events)| {
            for event in events.iter_mut() {
                let _ = divan::black_box(desk.apply(event));
            }
            desk
        });
}

/// A connector that confirms everything at once, for measuring the session alone.
#[derive(Debug, Default)]
struct InstantSwitch {
    sink: Mutex<Option<EventSink>>,
}

impl InstantSwitch {
    fn sink(&self) -> EventSink {
        self.sink.lock().unwrap().clone().unwrap()
    }
}

#[async_trait]
impl Connector for InstantSwitch {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
    async fn start(&self, _line: &Line, sink: EventSink) -> Result<()> {
        sink.emit(Event::LinkUp);
        *self.sink.lock().unwrap() = Some(sink);
        Ok(())
    }
    async fn submit(&self, request: Request) -> Result<()> {
        let sink = self.sink();
        match request.command {
            Command::Login {} => sink.emit(Event::AgentStateChanged {
                state: AgentState::Ready,
            }),
            Command::Hold { call } => sink.emit(Event::CallHeld { call }),
            Command::Retrieve { call } => sink.emit(Event::CallRetrieved { call }),
            _ => {}
        }
        Ok(())
    }
    async fn snapshot(&self) -> Result<SwitchState> {
        Ok(SwitchState {
            agent: AgentState::LoggedOut,
            calls: Vec::new(),
            withheld: Vec::new(),
        })
    }
    async fn stop(&self) -> Result<()> {
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn started(capacity: usize) -> (Session, Arc<InstantSwitch>) {
    let switch = Arc::new(InstantSwitch::default());
    let session = Session::builder(
        switch.clone(),
        AgentId::new("alice").unwrap(),
        DeviceId::new("1001").unwrap(),
    )
    .event_capacity(capacity)
    .start()
    .await
    .unwrap();
    session.login().await.unwrap();
    (session, switch)
}

/// Events through the whole session (state machines, stamping, fan-out), each read by
/// every one of `subscribers` subscribers. The counter is events; multiply by the
/// subscriber count for deliveries.
#[divan::bench(args = [1, 100, 10_000], sample_count = 10, sample_size = 1)]
fn session_fan_out(bencher: Bencher<'_, '_>, subscribers: usize) {
    const BATCH: usize = 700; // 100 calls of 7 events, within the subscribers' buffers
    let rt = runtime();
    let (session, switch) = rt.block_on(started(1024));
    let sink = switch.sink();
    let mut streams: Vec<_> = (0..subscribers).map(|_| session.subscribe()).collect();
    let all = call_events();
    let mut offset = 0;
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let _guard = rt.enter();
        for event in &all[offset..offset + BATCH] {
            sink.emit(event.clone());
        }
        offset = (offset + BATCH) % all.len();
        for stream in streams.iter_mut() {
            for _ in 0..BATCH {
                let event = stream.next().now_or_never().flatten();
                divan::black_box(event.expect("no lag within the batch").ok());
            }
        }
    });
    assert_eq!(session.stats().rejected, 0);
}

/// One command from `execute` to its resolved confirmation (hold, then retrieve), on a
/// connector that confirms at once: the session's own overhead.
#[divan::bench]
fn command_round_trip(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    let (session, switch) = rt.block_on(started(1024));
    let call = CallId::new("c1").unwrap();
    switch.sink().emit(Event::CallOffered {
        call: call.clone(),
        from: None,
        to: None,
        queue: None,
        data: CallData::new(),
    });
    switch
        .sink()
        .emit(Event::CallConnected { call: call.clone() });
    bencher.counter(ItemsCount::new(2usize)).bench_local(|| {
        rt.block_on(async {
            session.hold(call.clone()).await.unwrap();
            session.retrieve(call.clone()).await.unwrap();
        })
    });
    divan::black_box(session.snapshot());
}
