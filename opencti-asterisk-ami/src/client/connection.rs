//! The connection task (on the connection's own thread): the reader, the deliverer that
//! hands its reads on in order, the keepalive, and the reconnects.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BufMut;
use opencti_core::ErrorKind;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use super::login::establish;
use super::{
    fail_all, AmiClient, Conn, ListResponse, Shared, Waiting, READS_IN_FLIGHT, READ_CHUNK,
};
use crate::action::Action;
use crate::codec::{DecodedRead, Spare};
use crate::message::{Message, MessageKind};
use opencti_core::Error;

/// The connection task: serve, then reconnect with backoff, until stopped (the
/// connection's thread then drops it, wherever it waits).
pub(super) async fn run(shared: Arc<Shared>, mut next: Option<Conn>) {
    let mut attempt: u32 = 0;
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let conn = match next.take() {
            Some(conn) => conn,
            None => match establish(&shared.config, &shared.transport).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "AMI: reconnect failed");
                    let delay = shared.config.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        attempt = 0;
        let reason = serve(&shared, conn).await;
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(%reason, "AMI: connection dropped; reconnecting");
        {
            let _app = shared.app.enter();
            shared.handler.disconnected(&reason);
        }
        tokio::time::sleep(shared.config.backoff.delay(0)).await;
    }
}

/// Serves one logged-in connection until it drops; returns why.
async fn serve(shared: &Arc<Shared>, conn: Conn) -> String {
    let Conn {
        mut read,
        write,
        mut codec,
        buf,
        banner,
    } = conn;
    // From here on, each read's bytes become its messages' text (see
    // `AmiCodec::find_read`).
    let mut buf = buf.to_vec();
    let kill = Arc::new(Notify::new());
    let generation = {
        let mut link = shared.link();
        link.generation += 1;
        link.writer = Some(Arc::new(tokio::sync::Mutex::new(write)));
        link.kill = kill.clone();
        link.generation
    };
    {
        // The handler runs in the application's runtime, wherever it is called from.
        let _app = shared.app.enter();
        shared.handler.connected(&banner);
    }
    shared.up.send_replace(generation);
    let keepalive = tokio::spawn(keepalive(shared.clone(), generation, kill.clone()));
    // The reader decodes; a thread of its own hands the decoded reads to the handler and
    // the waiting actions, in order, so that decoding the next read and translating
    // this one run on two cores.
    let (reads, decoded_reads) = tokio::sync::mpsc::channel(READS_IN_FLIGHT);
    // The buffers of reads whose messages are all gone come back for the next reads, so
    // that a busy link neither allocates nor faults in fresh memory for each read.
    let (recycle, recycled) = std::sync::mpsc::sync_channel(READS_IN_FLIGHT);
    // A named thread (not `spawn_blocking`'s pool), so that profiles and `top -H` show
    // it; it runs inside the application's runtime, as the handler may spawn tasks. Its
    // verdict comes back on `delivered`, which a panic drops unsent.
    let (verdict, delivered) = tokio::sync::oneshot::channel();
    let runtime = shared.app.clone();
    let spawned = std::thread::Builder::new()
        .name("ami-deliverer".to_owned())
        .spawn({
            let shared = shared.clone();
            let kill = kill.clone();
            move || {
                let _runtime = runtime.enter();
                let _ = verdict.send(deliver_reads(&shared, decoded_reads, &recycle, &kill));
            }
        });
    let reason = 'conn: loop {
        if let Err(e) = &spawned {
            break format!("could not start the thread that delivers events: {e}");
        }
        // Whatever is already buffered (it came with the login response) goes first.
        let spare = recycled.try_recv().unwrap_or_default();
        let (found, decoded) = codec.find_read(&mut buf, spare);
        if !found.is_empty() && reads.send(found).await.is_err() {
            // The deliverer has stopped: behind (said below) or its handler panicked.
            break 'conn "the event handler stopped (it panicked); reconnecting to rebuild"
                .to_owned();
        }
        if let Err(e) = decoded {
            break 'conn format!(
                "Asterisk sent something that is not AMI ({e}); reconnecting to resynchronise"
            );
        }
        // Reads of at most READ_CHUNK, into a buffer with room for them and the start
        // of a message left over, so that a reused buffer is not grown again.
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve_exact(READ_CHUNK + READ_CHUNK / 4);
        }
        let mut room = (&mut buf).limit(READ_CHUNK);
        tokio::select! {
            read = read.read_buf(&mut room) => match read {
                Ok(0) => {
                    let tail = match codec.decode_eof(&mut bytes::BytesMut::from(&buf[..])) {
                        Err(e) => format!(" ({e})"),
                        Ok(_) => String::new(),
                    };
                    break format!("Asterisk closed the connection{tail}");
                }
                Ok(_) => {
                    shared.reads.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => break format!("reading from Asterisk failed: {e}"),
            },
            _ = kill.notified() => break "the link stopped answering (keepalive or write failure)".to_owned(),
        }
    };
    // What was read reaches the handler before it hears of the disconnection.
    drop(reads);
    let reason = match delivered.await {
        _ if spawned.is_err() => reason,
        Ok(true) => reason,
        Ok(false) => "the event consumer could not keep up; reconnecting to rebuild".to_owned(),
        Err(_) => "the event handler panicked; reconnecting to rebuild".to_owned(),
    };
    keepalive.abort();
    let mut link = shared.link();
    if link.generation == generation {
        link.writer = None;
    }
    fail_all(
        &mut link,
        &format!("the connection to Asterisk dropped: {reason}"),
    );
    reason
}

/// The deliverer's loop: each read's messages made (their text checked as UTF-8 here,
/// beside the reader's decoding of the next read) and put through [`deliver`], in
/// order, until the reader stops sending (`true`) or the handler cannot keep up
/// (`false`). A read's buffers go back to the reader once its messages are gone.
fn deliver_reads(
    shared: &Shared,
    mut decoded_reads: tokio::sync::mpsc::Receiver<DecodedRead>,
    recycle: &std::sync::mpsc::SyncSender<Spare>,
    kill: &Notify,
) -> bool {
    let _wake = WakeReader(kill);
    let mut messages = Vec::new();
    let mut events = Vec::new();
    while let Some(read) = decoded_reads.blocking_recv() {
        if shared.stopped.load(Ordering::SeqCst) {
            // Nothing reaches the handler once the client is stopped.
            return true;
        }
        let layouts = read.into_messages(&mut messages);
        let batch = messages.last().map(|m| m.batch().clone());
        if !deliver(shared, &mut messages, &mut events) {
            return false;
        }
        // Unless some message is still kept somewhere, or the buffers grew for a
        // message far larger than a read.
        let batch = batch
            .and_then(|batch| Arc::try_unwrap(batch).ok())
            .filter(|batch| batch.text.capacity() <= SPARE_BYTES)
            .unwrap_or_default();
        if layouts.capacity() <= SPARE_LAYOUTS {
            // Dropped if the reader has enough spares already.
            let _ = recycle.try_send(Spare { batch, layouts });
        }
    }
    true
}

/// Largest read buffer kept for reuse: a few reads' worth.
const SPARE_BYTES: usize = 4 * READ_CHUNK;

/// Largest list of a read's layouts kept for reuse.
const SPARE_LAYOUTS: usize = 8 * 1024;

/// Wakes the reader whenever the deliverer ends, even in a (handler's) panic, so that a
/// connection whose deliverer stopped early drops and is rebuilt instead of reading for
/// nobody. (When the reader ended it first, the wake is for a connection already over.)
struct WakeReader<'a>(&'a Notify);

impl Drop for WakeReader<'_> {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Routes a read's messages in order: runs of events that answer no action go to the
/// handler together, anything else through [`dispatch`]. Returns `false` when the
/// handler could not keep up (the rest is dropped with the connection).
fn deliver(shared: &Shared, messages: &mut Vec<Message>, events: &mut Vec<Message>) -> bool {
    let mut ok = true;
    for msg in messages.drain(..) {
        if msg.kind() == MessageKind::Event && msg.action_id().is_none() {
            events.push(msg);
            continue;
        }
        // The events before a response reach the handler before its waiter wakes.
        ok = events.is_empty() || shared.handler.events(events);
        events.clear();
        if !ok || !dispatch(shared, msg) {
            ok = false;
            break;
        }
    }
    messages.clear();
    if ok && !events.is_empty() {
        ok = shared.handler.events(events);
    }
    events.clear();
    ok
}

/// Routes one message: to the action waiting for it, or to the handler. What a waiter
/// keeps is detached from the read's shared text.
fn dispatch(shared: &Shared, msg: Message) -> bool {
    let kind = msg.kind();
    if let Some(id) = msg.action_id() {
        let mut link = shared.link();
        if let Some(waiting) = link.pending.get_mut(id) {
            match waiting {
                Waiting::Single(_) if kind != MessageKind::Event => {
                    if let Some(Waiting::Single(tx)) = link.pending.remove(id) {
                        let _ = tx.send(Ok(msg.detached()));
                    }
                    return true;
                }
                Waiting::Single(_) => {}
                Waiting::List {
                    response, items, ..
                } => {
                    if kind != MessageKind::Event {
                        let is_list = msg
                            .get("EventList")
                            .is_some_and(|v| v.eq_ignore_ascii_case("start"));
                        if is_list {
                            *response = Some(msg.detached());
                        } else if let Some(Waiting::List { reply, .. }) = link.pending.remove(id) {
                            // An error, or a list that is empty without saying so.
                            let _ = reply.send(Ok(ListResponse {
                                response: msg.detached(),
                                items: Vec::new(),
                                complete: None,
                            }));
                        }
                        return true;
                    }
                    let complete = msg
                        .get("EventList")
                        .is_some_and(|v| v.eq_ignore_ascii_case("Complete"));
                    if !complete {
                        if items.len() >= shared.config.limits.max_list_items {
                            if let Some(Waiting::List { reply, .. }) = link.pending.remove(id) {
                                let _ = reply.send(Err(Error::new(
                                    ErrorKind::Rejected,
                                    format!(
                                        "the list had more than {} items; refused",
                                        shared.config.limits.max_list_items
                                    ),
                                )));
                            }
                            return true;
                        }
                        items.push(msg.detached());
                        return true;
                    }
                    if let Some(Waiting::List {
                        reply,
                        response,
                        items,
                    }) = link.pending.remove(id)
                    {
                        let msg = msg.detached();
                        let response = response.unwrap_or_else(|| msg.clone());
                        let _ = reply.send(Ok(ListResponse {
                            response,
                            items,
                            complete: Some(msg),
                        }));
                    }
                    return true;
                }
            }
        }
    }
    match kind {
        MessageKind::Event => shared.handler.event(msg),
        _ => {
            tracing::debug!(action_id = ?msg.action_id(), "AMI: response for no waiting action");
            true
        }
    }
}

/// Pings every keepalive interval; a ping unanswered while nothing at all arrives drops
/// the connection. (On a busy link the answer may wait behind thousands of events the
/// reader has yet to translate: bytes arriving meanwhile show the link is alive.)
async fn keepalive(shared: Arc<Shared>, generation: u64, kill: Arc<Notify>) {
    let client = AmiClient {
        shared: shared.clone(),
    };
    let interval = shared.config.timeouts.keepalive;
    loop {
        tokio::time::sleep(interval).await;
        if shared.link().generation != generation {
            return;
        }
        let Ok(ping) = Action::new("Ping") else {
            return;
        };
        let reads = shared.reads.load(Ordering::Relaxed);
        match client.send(ping).await {
            Ok(_) => {}
            Err(e)
                if e.kind() == ErrorKind::Timeout
                    && shared.reads.load(Ordering::Relaxed) != reads =>
            {
                tracing::debug!("AMI: keepalive ping answered late; the link is busy, not dead");
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {
                tracing::warn!(error = %e, "AMI: keepalive ping unanswered");
                kill.notify_one();
                return;
            }
            Err(_) => return,
        }
    }
}
