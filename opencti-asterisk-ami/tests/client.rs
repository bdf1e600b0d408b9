//! The protocol client and the connector against the scripted AMI server and raw
//! hostile servers on 127.0.0.1: login, correlation, timeouts, lists, reconnect,
//! garbage, oversized and truncated messages, keepalive, secrets. Every test is bounded
//! in time.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use opencti_asterisk_ami::{
    escape_variable_value, Action, AmiClient, AmiConfig, AmiConnector, AuthMethod, Banner,
    ClientEvents, Message, Secret,
};
use opencti_core::{
    AgentId, CallData, Command, DesktopInterface, DeviceId, Dialable, ErrorKind, Event, Session,
};
use support::{Control, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Recorder {
    connects: AtomicUsize,
    events: Mutex<Vec<String>>,
    drops: Mutex<Vec<String>>,
}

impl ClientEvents for Recorder {
    fn connected(&self, _: &Banner) {
        self.connects.fetch_add(1, Ordering::SeqCst);
    }
    fn event(&self, event: Message) -> bool {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.event().unwrap_or_default().to_string());
        }
        true
    }
    fn disconnected(&self, reason: &str) {
        if let Ok(mut d) = self.drops.lock() {
            d.push(reason.to_string());
        }
    }
}

impl Recorder {
    fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
    fn drops(&self) -> Vec<String> {
        self.drops.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

fn config(address: String) -> AmiConfig {
    let mut c = AmiConfig::new(address, "opencti", Secret::new("opencti-secret"));
    c.timeouts.action = Duration::from_secs(2);
    c.timeouts.connect = Duration::from_secs(2);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn bounded<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test took longer than {LIMIT:?}"),
    }
}

/// A raw server: each connection is handed to `serve`.
async fn raw_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// Reads one action (up to the blank line) from a raw connection.
async fn read_action(stream: &mut TcpStream) -> Option<Message> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        bytes.push(byte[0]);
    }
    Message::parse(std::str::from_utf8(&bytes).ok()?).ok()
}

/// Banner, then accepts the plaintext login.
async fn accept_login(stream: &mut TcpStream) -> Option<()> {
    stream
        .write_all(b"Asterisk Call Manager/11.0.0\r\n")
        .await
        .ok()?;
    let login = read_action(stream).await?;
    let id = login.action_id()?.to_string();
    stream
        .write_all(
            format!(
                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_md5_challenge_and_plaintext() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        for auth in [AuthMethod::Md5Challenge, AuthMethod::Plaintext] {
            let mut c = config(server.address());
            c.auth = auth;
            let rec = Arc::new(Recorder::default());
            let client = AmiClient::start(c, rec.clone()).await.expect("login");
            wait_until("connected", || rec.connects() == 1).await;
            let pong = client
                .send(Action::new("Ping").expect("ping"))
                .await
                .expect("pong");
            assert_eq!(pong.get("Ping"), Some("Pong"));
            wait_until("FullyBooted", || {
                rec.events
                    .lock()
                    .map(|e| e.contains(&"FullyBooted".to_string()))
                    .unwrap_or(false)
            })
            .await;
            client.stop().await;
        }
        let actions = server.actions();
        assert_eq!(
            actions.iter().filter(|a| *a == "Challenge").count(),
            1,
            "{actions:?}"
        );
        assert!(actions.iter().any(|a| a == "Logoff"), "{actions:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_unauthorized_and_never_shows_the_secret() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        for auth in [AuthMethod::Md5Challenge, AuthMethod::Plaintext] {
            let mut c = config(server.address());
            c.secret = Secret::new("wrong-Secret-42");
            c.auth = auth;
            let debug = format!("{c:?}");
            assert!(!debug.contains("wrong-Secret-42"), "{debug}");
            let err = AmiClient::start(c.clone(), Arc::new(Recorder::default()))
                .await
                .expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
            assert!(err.message().contains("Authentication failed"), "{err}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("wrong-Secret-42"), "{shown}");
            // Through the connector and a session, the same.
            let connector = Arc::new(AmiConnector::new(c).expect("config"));
            assert!(!format!("{connector:?}").contains("wrong-Secret-42"));
            let err = Session::builder(
                connector,
                AgentId::new("a").expect("id"),
                DeviceId::new("PJSIP/7001").expect("id"),
            )
            .start()
            .await
            .expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Unauthorized);
            assert!(!format!("{err:?}").contains("wrong-Secret-42"));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_matched_by_action_id_even_out_of_order() {
    bounded(async {
        // Answers three actions in reverse order.
        let addr = raw_server(|mut s| async move {
            if accept_login(&mut s).await.is_none() {
                return;
            }
            let mut ids = Vec::new();
            for _ in 0..3 {
                match read_action(&mut s).await {
                    Some(a) => ids.push(a.action_id().unwrap_or_default().to_string()),
                    None => return,
                }
            }
            for id in ids.iter().rev() {
                let text =
                    format!("Response: Success\r\nActionID: {id}\r\nPing: Pong-{id}\r\n\r\n");
                let _ = s.write_all(text.as_bytes()).await;
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let mut c = config(addr.to_string());
        c.auth = AuthMethod::Plaintext;
        let client = AmiClient::start(c, Arc::new(Recorder::default()))
            .await
            .expect("login");
        let send = |n: u32| {
            let client = client.clone();
            async move {
                let a = Action::new("Ping")
                    .expect("a")
                    .action_id(opencti_asterisk_ami::AmiValue::new(format!("p{n}")).expect("v"));
                client.send(a).await
            }
        };
        let (a, b, c) = tokio::join!(send(1), send(2), send(3));
        for (n, r) in [(1, a), (2, b), (3, c)] {
            let r = r.expect("answered");
            assert_eq!(r.get("Ping"), Some(format!("Pong-p{n}").as_str()));
        }
        client.stop().await;
    })
    .await;
}

/// Keeps what the handler is told, in the order it is told.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, entry: String) {
        if let Ok(mut log) = self.0.lock() {
            log.push(entry);
        }
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl ClientEvents for Log {
    fn connected(&self, _: &Banner) {
        self.push("connected".into());
    }
    fn event(&self, event: Message) -> bool {
        self.push(event.get("Seq").unwrap_or("?").to_string());
        true
    }
    fn disconnected(&self, _: &str) {
        self.push("disconnected".into());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_handler_in_order_before_the_answer_after_them_and_the_drop() {
    bounded(async {
        // 2,000 events in many reads, the answer to a ping after the first 1,000, then
        // the connection closes.
        let addr = raw_server(|mut s| async move {
            if accept_login(&mut s).await.is_none() {
                return;
            }
            let Some(ping) = read_action(&mut s).await else {
                return;
            };
            let id = ping.action_id().unwrap_or_default().to_string();
            let mut stream = String::new();
            for n in 0..2_000 {
                stream.push_str(&format!(
                    "Event: Test\r\nSeq: {n}\r\nPad: {:0200}\r\n\r\n",
                    n
                ));
                if n == 999 {
                    stream.push_str(&format!(
                        "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\n\r\n"
                    ));
                }
            }
            let _ = s.write_all(stream.as_bytes()).await;
            let _ = s.shutdown().await;
        })
        .await;
        let mut c = config(addr.to_string());
        c.auth = AuthMethod::Plaintext;
        let log = Arc::new(Log::default());
        let client = AmiClient::start(c, log.clone()).await.expect("login");
        let ping = Action::new("Ping").expect("ping");
        client.send(ping).await.expect("the ping answered");
        let at_answer = log.entries();
        let expected: Vec<String> = std::iter::once("connected".to_string())
            .chain((0..1_000).map(|n| n.to_string()))
            .collect();
        assert!(
            at_answer.len() >= expected.len() && at_answer[..expected.len()] == expected[..],
            "the 1,000 events before the answer reach the handler, in order, before the \
             waiter wakes: {:?}",
            &at_answer[..at_answer.len().min(5)]
        );
        wait_until("the drop", || {
            log.entries().iter().any(|e| e == "disconnected")
        })
        .await;
        let all = log.entries();
        let expected: Vec<String> = std::iter::once("connected".to_string())
            .chain((0..2_000).map(|n| n.to_string()))
            .chain(std::iter::once("disconnected".to_string()))
            .collect();
        assert_eq!(all[..expected.len().min(all.len())], expected[..]);
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_runtime_shuts_down_closes_its_connection() {
    bounded(async {
        // The server says when the client's connection closes.
        let (closed, mut was_closed) = tokio::sync::mpsc::unbounded_channel();
        let addr = raw_server(move |mut s| {
            let closed = closed.clone();
            async move {
                if accept_login(&mut s).await.is_none() {
                    return;
                }
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                let _ = closed.send(());
            }
        })
        .await;
        let recorder = Arc::new(Recorder::default());
        // The client lives in a runtime of its own, dropped without `stop`, as an
        // application's runtime shuts down.
        let handler = recorder.clone();
        let started = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut c = config(addr.to_string());
            c.auth = AuthMethod::Plaintext;
            let client = runtime.block_on(AmiClient::start(c, handler));
            let up = client.as_ref().is_ok_and(AmiClient::is_up);
            drop(runtime);
            up
        });
        assert!(started.await.expect("the client's runtime"), "logged in");
        assert_eq!(recorder.connects(), 1);
        assert!(was_closed.recv().await.is_some(), "the connection closed");
        // And it is not made again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(recorder.connects(), 1);
    })
    .await;
}

/// Keeps some of the events it is told (those whose `Seq` is a multiple of `every`),
/// and counts them all.
struct Keeper {
    every: usize,
    kept: Mutex<Vec<Message>>,
    seen: AtomicUsize,
    drops: AtomicUsize,
}

impl ClientEvents for Keeper {
    fn connected(&self, _: &Banner) {}
    fn event(&self, event: Message) -> bool {
        self.seen.fetch_add(1, Ordering::SeqCst);
        let seq: usize = event.get("Seq").and_then(|s| s.parse().ok()).unwrap_or(1);
        if seq.is_multiple_of(self.every) {
            if let Ok(mut kept) = self.kept.lock() {
                kept.push(event);
            }
        }
        true
    }
    fn disconnected(&self, _: &str) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_kept_by_the_handler_keep_their_text_while_later_reads_reuse_buffers() {
    bounded(async {
        // About 12 MB in many reads: the buffers of reads whose events are all gone are
        // reused; those of reads with a kept event must not be.
        const EVENTS: usize = 40_000;
        let addr = raw_server(|mut s| async move {
            if accept_login(&mut s).await.is_none() {
                return;
            }
            let mut stream = String::new();
            for n in 0..EVENTS {
                stream.push_str(&format!(
                    "Event: Test\r\nSeq: {n}\r\nPad: {:0250}\r\n\r\n",
                    n
                ));
            }
            let _ = s.write_all(stream.as_bytes()).await;
            let _ = s.shutdown().await;
        })
        .await;
        let mut c = config(addr.to_string());
        c.auth = AuthMethod::Plaintext;
        let keeper = Arc::new(Keeper {
            every: 3_001,
            kept: Mutex::new(Vec::new()),
            seen: AtomicUsize::new(0),
            drops: AtomicUsize::new(0),
        });
        let client = AmiClient::start(c, keeper.clone()).await.expect("login");
        wait_until("the drop", || keeper.drops.load(Ordering::SeqCst) > 0).await;
        assert_eq!(keeper.seen.load(Ordering::SeqCst), EVENTS);
        let kept = keeper.kept.lock().map(|k| k.clone()).unwrap_or_default();
        assert_eq!(kept.len(), EVENTS.div_ceil(3_001));
        for (i, event) in kept.iter().enumerate() {
            let n = i * 3_001;
            assert_eq!(event.get("Seq"), Some(n.to_string().as_str()));
            assert_eq!(event.get("Pad"), Some(format!("{n:0250}").as_str()));
            assert_eq!(event.len(), 3);
        }
        client.stop().await;
    })
    .await;
}

/// A handler with a bug: it panics on an event named `Boom`.
#[derive(Default)]
struct Panicky(Recorder);

impl ClientEvents for Panicky {
    fn connected(&self, banner: &Banner) {
        self.0.connected(banner);
    }
    fn event(&self, event: Message) -> bool {
        assert_ne!(event.event(), Some("Boom"), "a handler's bug");
        self.0.event(event)
    }
    fn disconnected(&self, reason: &str) {
        self.0.disconnected(reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_drops_the_link_which_comes_back() {
    bounded(async {
        // One event the handler cannot take, then a connection that stays quiet.
        let addr = raw_server(|mut s| async move {
            if accept_login(&mut s).await.is_none() {
                return;
            }
            let _ = s.write_all(b"Event: Boom\r\n\r\n").await;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let mut c = config(addr.to_string());
        c.auth = AuthMethod::Plaintext;
        let handler = Arc::new(Panicky::default());
        let client = AmiClient::start(c, handler.clone()).await.expect("login");
        wait_until("the drop", || !handler.0.drops().is_empty()).await;
        assert!(
            handler.0.drops()[0].contains("panicked"),
            "{:?}",
            handler.0.drops()
        );
        wait_until("a new login", || handler.0.connects() >= 2).await;
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_action_times_out_and_a_mute_link_is_dropped_and_rebuilt() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let mut c = config(server.address());
        c.timeouts.action = Duration::from_millis(200);
        c.timeouts.keepalive = Duration::from_millis(150);
        let rec = Arc::new(Recorder::default());
        let client = AmiClient::start(c, rec.clone()).await.expect("login");
        wait_until("connected", || rec.connects() == 1).await;
        server.mute_pings(true);
        let err = client
            .send(Action::new("Ping").expect("a"))
            .await
            .expect_err("timeout");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.message().contains("did not answer Ping"), "{err}");
        // The keepalive ping gets no answer either: the link is dropped and rebuilt.
        wait_until("keepalive drop", || !rec.drops().is_empty()).await;
        assert!(
            rec.drops()[0].contains("stopped answering"),
            "{:?}",
            rec.drops()
        );
        server.mute_pings(false);
        wait_until("reconnected", || rec.connects() >= 2).await;
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_link_whose_ping_answer_is_late_is_not_dropped() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let mut c = config(server.address());
        c.timeouts.action = Duration::from_millis(200);
        c.timeouts.keepalive = Duration::from_millis(150);
        let rec = Arc::new(Recorder::default());
        let client = AmiClient::start(c, rec.clone()).await.expect("login");
        wait_until("connected", || rec.connects() == 1).await;
        // Pings go unanswered, but events keep arriving (as on a link whose reader is
        // behind a backlog): the link is alive and stays up.
        server.mute_pings(true);
        for n in 0..20 {
            server.send_raw(
                format!("Event: UserEvent\r\nUserEvent: busy\r\nN: {n}\r\n\r\n").as_bytes(),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(rec.drops().is_empty(), "dropped: {:?}", rec.drops());
        // When nothing arrives any more, the unanswered ping drops it.
        wait_until("keepalive drop", || !rec.drops().is_empty()).await;
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_lists_are_collected_until_complete() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let rec = Arc::new(Recorder::default());
        let client = AmiClient::start(config(server.address()), rec.clone())
            .await
            .expect("login");
        server.call_device("2000");
        server.call_device("2001");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let list = client
            .send_list(Action::new("CoreShowChannels").expect("a"))
            .await
            .expect("list");
        assert_eq!(list.items.len(), 4);
        assert!(list
            .items
            .iter()
            .all(|i| i.event() == Some("CoreShowChannel")));
        assert_eq!(
            list.complete
                .and_then(|c| c.get("ListItems").map(str::to_string)),
            Some("4".into())
        );
        // List items never reach the event handler.
        let events = rec.events.lock().map(|e| e.clone()).unwrap_or_default();
        assert!(!events.iter().any(|e| e == "CoreShowChannel"), "{events:?}");
        // An error answer to a list action is an error.
        let err = client
            .send_list(Action::new("NoSuchList").expect("a"))
            .await
            .expect_err("error");
        assert_eq!(err.kind(), ErrorKind::Rejected);
        assert!(err.message().contains("Invalid/unknown command"), "{err}");
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_drop_the_link_which_comes_back() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let mut c = config(server.address());
        c.limits.max_message_bytes = 4096;
        let rec = Arc::new(Recorder::default());
        let client = AmiClient::start(c, rec.clone()).await.expect("login");
        wait_until("connected", || {
            rec.connects() == 1 && server.connections() == 1
        })
        .await;
        server.send_raw(b"\x00\xffthis line has no colon\r\n\r\n");
        wait_until("garbage drop", || rec.drops().len() == 1).await;
        assert!(rec.drops()[0].contains("not AMI"), "{:?}", rec.drops());
        wait_until("reconnect 1", || {
            rec.connects() == 2 && server.connections() == 1
        })
        .await;
        let big = format!("Event: Huge\r\nData: {}\r\n\r\n", "x".repeat(10_000));
        server.send_raw(big.as_bytes());
        wait_until("oversize drop", || rec.drops().len() == 2).await;
        assert!(rec.drops()[1].contains("4096"), "{:?}", rec.drops());
        wait_until("reconnect 2", || rec.connects() == 3).await;
        let pong = client
            .send(Action::new("Ping").expect("a"))
            .await
            .expect("works again");
        assert_eq!(pong.get("Ping"), Some("Pong"));
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_message_then_close_is_a_drop_not_a_panic() {
    bounded(async {
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = attempts.clone();
        let addr = raw_server(move |mut s| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                if accept_login(&mut s).await.is_none() {
                    return;
                }
                let _ = s.write_all(b"Event: Newchannel\r\nChannel: PJSIP/70").await;
                let _ = s.shutdown().await;
            }
        })
        .await;
        let mut c = config(addr.to_string());
        c.auth = AuthMethod::Plaintext;
        let rec = Arc::new(Recorder::default());
        let client = AmiClient::start(c, rec.clone()).await.expect("login");
        wait_until("drop", || !rec.drops().is_empty()).await;
        assert!(
            rec.drops()[0].contains("closed the connection"),
            "{:?}",
            rec.drops()
        );
        assert!(
            rec.drops()[0].contains("ended inside a message"),
            "{:?}",
            rec.drops()
        );
        wait_until("it keeps reconnecting", || {
            attempts.load(Ordering::SeqCst) >= 3
        })
        .await;
        client.stop().await;
        // A banner that is not AMI, and a server that closes at once, fail the start
        // without a panic.
        let addr = raw_server(|mut s| async move {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        })
        .await;
        let err = AmiClient::start(config(addr.to_string()), Arc::new(Recorder::default())).await;
        // Not an auth failure: the client keeps retrying in the background.
        let client = err.expect("returned, retrying");
        assert!(!client.is_up());
        client.stop().await;
    })
    .await;
}

async fn session(server: &Control) -> (Session, AmiConnector) {
    let mut c = config(server.address());
    c.queues = vec!["support".into()];
    let connector = AmiConnector::new(c).expect("config");
    let session = Session::builder(
        Arc::new(connector.clone()),
        AgentId::new("agent-7001").expect("id"),
        DeviceId::new("PJSIP/7001").expect("id"),
    )
    .command_timeout(Duration::from_secs(5))
    .start_timeout(Duration::from_secs(5))
    .start()
    .await
    .expect("session");
    (session, connector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_comes_back_and_the_calls_survive_the_resync() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        server.add_static_member("support", true, "lunch");
        let (session, _connector) = session(&server).await;
        // The static membership is read at start: not ready, for lunch.
        let snap = session.snapshot();
        assert_eq!(snap.agent_state.name(), "not_ready", "{snap:?}");
        let mut events = session.subscribe();
        let call = server.call_device("+441632960999");
        // Auto-answered: connected.
        loop {
            let e = events.next().await.expect("event").expect("no lag");
            if matches!(e.event, Event::CallConnected { .. }) {
                break;
            }
        }
        server.drop_connections();
        let mut saw = Vec::new();
        while !saw.contains(&"resynced") {
            let e = events.next().await.expect("event").expect("no lag");
            if matches!(e.event.name(), "link_down" | "link_up" | "resynced") {
                saw.push(e.event.name());
            }
        }
        assert_eq!(saw, ["link_down", "link_up", "resynced"]);
        let snap = session.snapshot();
        assert_eq!(snap.calls.len(), 1, "the call survived: {snap:?}");
        assert_eq!(snap.calls[0].id.as_str(), call);
        assert_eq!(snap.calls[0].state.name(), "connected");
        // The call ends while the link is down: after the resync it is gone, with no
        // phantom left on the panel.
        server.drop_connections();
        server.far_end_hangs_up(&call);
        wait_until("vanished", || {
            session.snapshot().calls.is_empty()
                && session.snapshot().link.eq(&opencti_core::LinkState::Up)
        })
        .await;
        assert_eq!(session.stats().rejected, 0, "{:?}", session.stats());
        session.stop().await.expect("stop");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_is_an_originate_with_our_channel_id_and_escaped_call_data() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let (session, _connector) = session(&server).await;
        let data = CallData::from_pairs([("ticket", "T-1, urgent")]).expect("data");
        let done = session
            .execute(Command::MakeCall {
                to: Dialable::new("2000").expect("d"),
                data,
            })
            .await
            .expect("initiated");
        let call = done.call().cloned().expect("call");
        assert!(
            call.as_str()
                .starts_with(opencti_asterisk_ami::ORIGINATE_PREFIX),
            "{call}"
        );
        match &done.event.event {
            Event::CallInitiated { to, data, .. } => {
                assert_eq!(to.as_ref().map(|t| t.as_str()), Some("2000"));
                assert_eq!(data.get("ticket").map(|v| v.as_str()), Some("T-1, urgent"));
            }
            other => panic!("{other:?}"),
        }
        let mut events = session.subscribe();
        // `call_connected` and then `party_joined`: wait for both to be applied.
        while session
            .snapshot()
            .call(&call)
            .map(|c| (c.state.name(), c.parties.len()))
            != Some(("connected", 1))
        {
            let _ = events.next().await;
        }
        let snap = session.snapshot();
        let c = snap.call(&call).expect("call");
        assert_eq!(c.direction, opencti_core::Direction::Outbound);
        assert_eq!(c.parties.len(), 1);
        session
            .execute(Command::Hangup { call })
            .await
            .expect("hung up");
        assert!(server
            .actions()
            .iter()
            .any(|a| a.starts_with("Originate PJSIP/7001")));
        session.stop().await.expect("stop");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_then_conference_by_redirects_into_confbridge_then_drop_party() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let mut c = config(server.address());
        c.conference_context = Some("opencti-conference".into());
        let connector = AmiConnector::new(c).expect("config");
        {
            use opencti_core::{CommandKind, Connector};
            let caps = connector.capabilities();
            assert!(caps.supports(CommandKind::CompleteConference));
            assert!(caps.supports(CommandKind::DropParty));
            let off = AmiConnector::new(config(server.address())).expect("config");
            assert!(!off.capabilities().supports(CommandKind::CompleteConference));
            assert!(!off.capabilities().supports(CommandKind::DropParty));
        }
        let session = Session::builder(
            Arc::new(connector.clone()),
            AgentId::new("agent-7001").expect("id"),
            DeviceId::new("PJSIP/7001").expect("id"),
        )
        .command_timeout(Duration::from_secs(5))
        .start_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("session");
        let mut events = session.subscribe();
        let primary = session
            .execute(Command::MakeCall {
                to: Dialable::new("2000").expect("d"),
                data: CallData::new(),
            })
            .await
            .expect("initiated")
            .call()
            .cloned()
            .expect("call");
        while session
            .snapshot()
            .call(&primary)
            .map(|c| (c.state.name(), c.parties.len()))
            != Some(("connected", 1))
        {
            let _ = events.next().await;
        }
        let consult = session
            .execute(Command::Consult {
                call: primary.clone(),
                to: Dialable::new("2001").expect("d"),
            })
            .await
            .expect("consulting")
            .call()
            .cloned()
            .expect("consult call");
        while session.snapshot().call(&consult).map(|c| c.state.name()) != Some("connected") {
            let _ = events.next().await;
        }
        let done = session
            .execute(Command::CompleteConference {
                call: consult.clone(),
            })
            .await
            .expect("conferenced");
        assert_eq!(
            done.event.event,
            Event::CallConferenced {
                call: primary.clone(),
                merged: Some(consult.clone()),
            }
        );
        // The consultation ends `merged`; the conference lists both other parties.
        while session.snapshot().call(&consult).is_some()
            || session.snapshot().call(&primary).map(|c| c.parties.len()) != Some(2)
        {
            let _ = events.next().await;
        }
        let snap = session.snapshot();
        let call = snap.call(&primary).expect("conference");
        assert_eq!(call.role, opencti_core::CallRole::Conference);
        assert_eq!(call.state.name(), "connected");
        // The held customer first, then the agent with the target in one dual Redirect.
        let redirects: Vec<String> = server
            .actions()
            .into_iter()
            .filter(|a| a.starts_with("Redirect"))
            .collect();
        assert_eq!(redirects.len(), 2, "{redirects:?}");
        assert!(
            redirects[0].starts_with("Redirect PJSIP/trunk-"),
            "{redirects:?}"
        );
        assert!(
            redirects[1].starts_with("Redirect Local/2001@"),
            "{redirects:?}"
        );
        // Drop the customer: a Hangup of its channel, confirmed by party_left.
        let customer = call
            .parties
            .iter()
            .find(|p| p.id.as_str() != consult.as_str())
            .map(|p| p.id.clone())
            .expect("customer");
        let dropped = session
            .execute(Command::DropParty {
                call: primary.clone(),
                party: customer.clone(),
            })
            .await
            .expect("dropped");
        assert_eq!(
            dropped.event.event,
            Event::PartyLeft {
                call: primary.clone(),
                party: customer,
            }
        );
        assert_eq!(
            session.snapshot().call(&primary).map(|c| c.parties.len()),
            Some(1)
        );
        session
            .execute(Command::Hangup {
                call: primary.clone(),
            })
            .await
            .expect("hung up");
        assert!(session.snapshot().calls.is_empty());
        assert_eq!(session.stats().rejected, 0, "{:?}", session.stats());
        session.stop().await.expect("stop");
    })
    .await;
}

#[test]
fn variable_values_are_escaped_for_asterisks_argument_parser() {
    assert_eq!(escape_variable_value("plain"), "plain");
    assert_eq!(escape_variable_value("a,b"), "a\\,b");
    assert_eq!(escape_variable_value(r#"x"(y)[z]\"#), r#"x\"\(y\)\[z\]\\"#);
}
