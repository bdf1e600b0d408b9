//! A shared link serving several lines: one read of the switch's state per (re)connect
//! for every line, link changes told to every session, commands and events kept to
//! their own line. The switch link here is a small hand-written one that confirms what
//! it is asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use opencti_core::{
    AgentId, AgentState, Capabilities, ChosenState, Command, CommandKind, DesktopInterface,
    DesktopInterfaceExt, DeviceId, ErrorKind, Event, EventSink, Line, LinkStatus, Request, Result,
    SharedLink, SwitchLink, SwitchState, Withheld,
};

#[derive(Default, Debug)]
struct FakeSwitch {
    status: Mutex<Option<LinkStatus>>,
    sinks: Mutex<HashMap<DeviceId, EventSink>>,
    /// The agent state the switch reports per device.
    agents: Mutex<HashMap<DeviceId, AgentState>>,
    /// What the switch's configuration does not allow, on every line.
    withheld: Mutex<Vec<Withheld>>,
    reads: AtomicUsize,
    submitted: Mutex<Vec<(DeviceId, Command)>>,
}

impl FakeSwitch {
    fn status(&self) -> LinkStatus {
        self.status.lock().unwrap().clone().expect("started")
    }
    fn sink(&self, device: &str) -> EventSink {
        self.sinks
            .lock()
            .unwrap()
            .get(&DeviceId::new(device).unwrap())
            .cloned()
            .expect("line open")
    }
}

#[async_trait]
impl SwitchLink for FakeSwitch {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .with_wrap_up(false)
            .with_next_state_after_call(false)
    }

    async fn start(&self, status: LinkStatus) -> Result<()> {
        status.up();
        *self.status.lock().unwrap() = Some(status);
        Ok(())
    }

    async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()> {
        self.sinks.lock().unwrap().insert(line.device.clone(), sink);
        Ok(())
    }

    async fn close_line(&self, line: &Line) -> Result<()> {
        self.sinks.lock().unwrap().remove(&line.device);
        Ok(())
    }

    async fn submit(&self, line: &Line, request: Request) -> Result<()> {
        self.submitted
            .lock()
            .unwrap()
            .push((line.device.clone(), request.command.clone()));
        let state = match &request.command {
            Command::Login {} => AgentState::NotReady { reason: None },
            Command::SetAgentState { state, .. } => state.to_agent_state(),
            Command::Logout { .. } => AgentState::LoggedOut,
            _ => return Ok(()),
        };
        self.agents
            .lock()
            .unwrap()
            .insert(line.device.clone(), state.clone());
        let sink = self.sink(line.device.as_str());
        sink.emit_for(request.id, Event::AgentStateChanged { state });
        Ok(())
    }

    async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let agents = self.agents.lock().unwrap();
        let withheld = self.withheld.lock().unwrap();
        Ok(lines
            .iter()
            .map(|l| {
                let mut state = SwitchState::new(
                    agents
                        .get(&l.device)
                        .cloned()
                        .unwrap_or(AgentState::LoggedOut),
                    Vec::new(),
                );
                state.withheld = withheld.clone();
                state
            })
            .collect())
    }

    async fn stop(&self) -> Result<()> {
        Ok(())
    }
}

/// The next event, or a failure after 10 s of (paused) time rather than a hang.
async fn next(stream: &mut opencti_core::EventStream) -> Arc<opencti_core::EventEnvelope> {
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the session is open")
        .expect("no lag")
}

fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

async fn three_desks() -> (Arc<FakeSwitch>, SharedLink, Vec<opencti_core::Session>) {
    let switch = Arc::new(FakeSwitch::default());
    let link = SharedLink::start(switch.clone()).await.unwrap();
    let mut sessions = Vec::new();
    for (a, d) in [("alice", "1001"), ("bob", "1002"), ("carol", "1003")] {
        sessions.push(link.session(agent(a), device(d)).start().await.unwrap());
    }
    (switch, link, sessions)
}

#[tokio::test(start_paused = true)]
async fn sessions_on_one_link_keep_their_own_commands_and_events() {
    let (switch, link, desks) = three_desks().await;
    assert_eq!(link.lines().len(), 3);
    assert!(link.is_up());
    desks[0].login().await.unwrap();
    desks[1].login().await.unwrap();
    desks[1].ready().await.unwrap();
    assert_eq!(
        desks[0].snapshot().agent_state,
        AgentState::NotReady { reason: None }
    );
    assert_eq!(desks[1].snapshot().agent_state, AgentState::Ready);
    assert_eq!(desks[2].snapshot().agent_state, AgentState::LoggedOut);
    let submitted = switch.submitted.lock().unwrap().clone();
    assert_eq!(
        submitted
            .iter()
            .map(|(d, _)| d.as_str())
            .collect::<Vec<_>>(),
        ["1001", "1002", "1002"]
    );
    // A second session for a device already served is refused.
    let again = link.session(agent("dave"), device("1001")).start().await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::InvalidState);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_is_told_to_every_session_and_read_once_for_all() {
    let (switch, _link, desks) = three_desks().await;
    desks[0].login().await.unwrap();
    let mut streams: Vec<_> = desks.iter().map(|d| d.subscribe()).collect();
    let reads_before = switch.reads.load(Ordering::SeqCst);

    switch.status().down("connection reset");
    for stream in &mut streams {
        let event = next(stream).await;
        assert_eq!(event.event.name(), "link_down");
    }
    // While down, every line's commands are refused as link_down.
    for desk in &desks {
        assert_eq!(desk.ready().await.unwrap_err().kind(), ErrorKind::LinkDown);
    }
    // Meanwhile alice became ready at the switch.
    switch
        .agents
        .lock()
        .unwrap()
        .insert(device("1001"), AgentState::Ready);
    switch.status().up();
    for stream in &mut streams {
        assert_eq!(next(stream).await.event.name(), "link_up");
        while next(stream).await.event.name() != "resynced" {}
    }
    assert_eq!(
        switch.reads.load(Ordering::SeqCst) - reads_before,
        1,
        "one read of the switch serves every line after a reconnect"
    );
    assert_eq!(desks[0].snapshot().agent_state, AgentState::Ready);
    desks[1].login().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_line_that_cannot_be_served_is_down_alone() {
    let (switch, _link, desks) = three_desks().await;
    let mut bob = desks[1].subscribe();
    switch
        .status()
        .line_down(&device("1002"), "the account was refused");
    let event = next(&mut bob).await;
    assert_eq!(event.event.name(), "link_down");
    assert_eq!(
        desks[1].ready().await.unwrap_err().kind(),
        ErrorKind::LinkDown
    );
    // The others carry on.
    desks[0].login().await.unwrap();
    desks[2].login().await.unwrap();
    switch.status().line_up(&device("1002"));
    assert_eq!(next(&mut bob).await.event.name(), "link_up");
    desks[1].login().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_line_whose_state_diverged_reads_again_alone() {
    let (switch, _link, desks) = three_desks().await;
    let reads_before = switch.reads.load(Ordering::SeqCst);
    let resyncs_before = desks[2].stats().resyncs;
    // The switch reports a retrieve for a call carol's desk never saw: her session reads
    // the switch again; the others are left alone. (A resync that changes nothing emits
    // no `resynced`: wait for the counter.)
    switch.sink("1003").emit(Event::CallRetrieved {
        call: opencti_core::CallId::new("c9").unwrap(),
    });
    for _ in 0..1000 {
        if desks[2].stats().resyncs > resyncs_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(desks[2].stats().resyncs, resyncs_before + 1);
    assert_eq!(switch.reads.load(Ordering::SeqCst) - reads_before, 1);
    assert_eq!(desks[2].stats().rejected, 1);
    assert_eq!(desks[0].stats().resyncs, 1, "only the first resync");
}

#[tokio::test(start_paused = true)]
async fn a_changed_configuration_is_read_once_for_every_line_without_a_link_up() {
    let switch = Arc::new(FakeSwitch::default());
    *switch.withheld.lock().unwrap() = vec![Withheld {
        command: CommandKind::MakeCall,
        reason: "no outbound route".into(),
    }];
    let link = SharedLink::start(switch.clone()).await.unwrap();
    let mut desks = Vec::new();
    for (a, d) in [("alice", "1001"), ("bob", "1002"), ("carol", "1003")] {
        desks.push(link.session(agent(a), device(d)).start().await.unwrap());
    }
    let can_dial = |desks: &[opencti_core::Session]| {
        desks
            .iter()
            .filter(|d| d.capabilities().supports(CommandKind::MakeCall))
            .count()
    };
    assert_eq!(can_dial(&desks), 0);
    let mut alice = desks[0].subscribe();
    let reads_before = switch.reads.load(Ordering::SeqCst);
    switch.withheld.lock().unwrap().clear();
    switch.status().resync();
    for _ in 0..1000 {
        if can_dial(&desks) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(can_dial(&desks), 3, "every line was read again");
    assert_eq!(
        switch.reads.load(Ordering::SeqCst) - reads_before,
        1,
        "one read served every line"
    );
    let event = next(&mut alice).await;
    assert_eq!(
        event.event.name(),
        "resynced",
        "no link_up: the link never dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_line_leaves_the_others_running() {
    let (switch, link, desks) = three_desks().await;
    desks[1].stop().await.unwrap();
    assert_eq!(link.lines().len(), 2);
    assert!(!switch.sinks.lock().unwrap().contains_key(&device("1002")));
    desks[0].login().await.unwrap();
    desks[0]
        .execute(Command::SetAgentState {
            state: ChosenState::Ready,
            after_call: false,
        })
        .await
        .unwrap();
    // The device is free again for a new session.
    let again = link
        .session(agent("dave"), device("1002"))
        .start()
        .await
        .unwrap();
    again.login().await.unwrap();
}
