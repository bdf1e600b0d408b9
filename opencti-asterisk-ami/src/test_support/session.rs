//! One AMI connection to the scripted Asterisk: the banner, login and each action.

use super::world::{bridge_block, snapshot};
use super::*;

pub(super) fn response(id: &str, status: &str, message: &str, extra: &str) -> String {
    format!("Response: {status}\r\nActionID: {id}\r\nMessage: {message}\r\n{extra}\r\n")
}

pub(super) async fn serve<S>(stream: S, world: Arc<Mutex<World>>, script: Arc<Script>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        if write
            .write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await
            .is_err()
        {
            return;
        }
        while let Some(out) = rx.recv().await {
            match out {
                Out::Bytes(b) => {
                    if write.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Out::Close => {
                    let _ = write.shutdown().await;
                    return;
                }
            }
        }
    });
    let mut decoder = PushDecoder::with_config(DecoderConfig::new().with_banner(false));
    let mut buf = vec![0u8; 8192];
    let mut logged_in = false;
    let mut challenge: Option<String> = None;
    let conn_id = {
        let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
        w.next_conn += 1;
        w.next_conn
    };
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        let mut actions = Vec::new();
        for frame in decoder.frames() {
            if let Ok(Frame::Message(m)) = frame {
                actions.push(m);
            }
        }
        for action in actions {
            let close = handle(
                &action,
                &world,
                &script,
                &tx,
                &mut logged_in,
                &mut challenge,
                conn_id,
            );
            if close {
                let _ = tx.send(Out::Close);
                {
                    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                    w.conns.retain(|(id, _)| *id != conn_id);
                }
                let _ = writer.await;
                return;
            }
        }
    }
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.conns.retain(|(id, _)| *id != conn_id);
}

/// Handles one action; returns whether to close the connection.
pub(super) fn handle(
    a: &Message,
    world: &Arc<Mutex<World>>,
    script: &Arc<Script>,
    tx: &mpsc::UnboundedSender<Out>,
    logged_in: &mut bool,
    challenge: &mut Option<String>,
    conn_id: u64,
) -> bool {
    let name = a.get("Action").unwrap_or_default().to_string();
    let id = a.action_id().unwrap_or_default().to_string();
    let reply = |text: String| {
        let _ = tx.send(Out::Bytes(text.into_bytes().into()));
    };
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.actions.push(match a.get("Channel") {
        Some(c) => format!("{name} {c}"),
        None => name.clone(),
    });
    if !*logged_in {
        match name.as_str() {
            "Challenge" => {
                let nonce = format!("{}", 100_000_000 + conn_id * 7919);
                *challenge = Some(nonce.clone());
                reply(format!(
                    "Response: Success\r\nActionID: {id}\r\nChallenge: {nonce}\r\n\r\n"
                ));
                return false;
            }
            "Login" => {
                let user_ok = a.get("Username") == Some(script.username.as_str());
                let secret_ok = match (a.get("AuthType"), challenge.as_deref()) {
                    (Some(t), Some(nonce)) if t.eq_ignore_ascii_case("md5") => {
                        let mut h = Md5::new();
                        h.update(nonce.as_bytes());
                        h.update(script.secret.as_bytes());
                        let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                        a.get("Key") == Some(key.as_str())
                    }
                    _ => a.get("Secret") == Some(script.secret.as_str()),
                };
                if user_ok && secret_ok && w.accept_login {
                    *logged_in = true;
                    reply(response(&id, "Success", "Authentication accepted", ""));
                    w.conns.push((conn_id, tx.clone()));
                    let _ = tx.send(Out::Bytes(bytes::Bytes::from_static(
                        b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\nLastReload: 5\r\nStatus: Fully Booted\r\n\r\n",
                    )));
                    return false;
                }
                reply(response(&id, "Error", "Authentication failed", ""));
                return true;
            }
            _ => {
                reply(response(&id, "Error", "Permission denied", ""));
                return false;
            }
        }
    }
    let header = |k: &str| a.get(k).unwrap_or_default().to_string();
    match name.as_str() {
        "Ping" => {
            if !w.mute_pings {
                reply(format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1795238010.603606\r\n\r\n"));
            }
        }
        "Logoff" => {
            reply(response(&id, "Goodbye", "Thanks for all the fish.", ""));
            return true;
        }
        "CoreShowChannels" => {
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"));
            let order = w.order.clone();
            for uid in &order {
                if let Some(c) = w.channels.get(uid) {
                    reply(format!(
                        "Event: CoreShowChannel\r\nActionID: {id}\r\n{}Application: {}\r\nApplicationData: \r\nDuration: 00:00:01\r\nBridgeId: {}\r\n\r\n",
                        snapshot("", c),
                        c.app,
                        c.bridge.clone().unwrap_or_default()
                    ));
                }
            }
            reply(format!("Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", order.len()));
        }
        "BridgeList" => {
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Bridge listing will follow\r\n\r\n"));
            let bridges: Vec<(String, usize)> = w
                .bridges
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect();
            for (b, n) in &bridges {
                reply(format!(
                    "Event: BridgeListItem\r\nActionID: {id}\r\n{}\r\n",
                    w.block(b, *n)
                ));
            }
            reply(format!("Event: BridgeListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", bridges.len()));
        }
        "QueueStatus" => {
            // Without `Queue`, every queue (as Asterisk does).
            let queue = header("Queue");
            let queues = if queue.is_empty() {
                script.queues.clone()
            } else {
                vec![queue]
            };
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"));
            for queue in &queues {
                reply(format!("Event: QueueParams\r\nQueue: {queue}\r\nMax: 0\r\nStrategy: rrmemory\r\nCalls: 0\r\nActionID: {id}\r\n\r\n"));
            }
            let members: Vec<Member> = w
                .members
                .iter()
                .filter(|m| queues.contains(&m.queue))
                .cloned()
                .collect();
            for m in &members {
                reply(format!(
                    "Event: QueueMember\r\nQueue: {}\r\nName: {}\r\nLocation: {}\r\nStateInterface: {}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795238005\r\nInCall: 0\r\nStatus: 1\r\nPaused: {}\r\nPausedReason: {}\r\nWrapuptime: 0\r\nActionID: {id}\r\n\r\n",
                    m.queue, m.name, m.interface, m.interface, u8::from(m.paused), m.reason
                ));
            }
            let callers: Vec<_> = w
                .queue_callers
                .iter()
                .filter(|c| queues.contains(&c.queue))
                .cloned()
                .collect();
            for (i, c) in callers.iter().enumerate() {
                reply(format!(
                    "Event: QueueEntry\r\nQueue: {}\r\nPosition: {}\r\nChannel: PJSIP/trunk-{}\r\nUniqueid: {}\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nWait: {}\r\nPriority: 0\r\nActionID: {id}\r\n\r\n",
                    c.queue, i + 1, c.uid, c.uid, c.joined.elapsed().as_secs()
                ));
            }
            reply(format!("Event: QueueStatusComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", members.len() + queues.len() + callers.len()));
        }
        "QueueAdd" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            if !script.queues.contains(&queue) {
                reply(response(
                    &id,
                    "Error",
                    "Unable to add interface to queue: No such queue",
                    "",
                ));
            } else if w
                .members
                .iter()
                .any(|m| m.queue == queue && m.interface == interface)
            {
                reply(response(
                    &id,
                    "Error",
                    "Unable to add interface: Already there",
                    "",
                ));
            } else {
                let m = Member {
                    queue,
                    interface,
                    name: header("MemberName"),
                    paused: a.get("Paused") == Some("true"),
                    reason: String::new(),
                };
                w.members.push(m.clone());
                reply(response(&id, "Success", "Added interface to queue", ""));
                w.member_event("QueueMemberAdded", &m);
            }
        }
        "QueueRemove" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            match w
                .members
                .iter()
                .position(|m| m.queue == queue && m.interface == interface)
            {
                Some(i) => {
                    let m = w.members.remove(i);
                    reply(response(&id, "Success", "Removed interface from queue", ""));
                    w.member_event("QueueMemberRemoved", &m);
                }
                None => reply(response(
                    &id,
                    "Error",
                    "Unable to remove interface: Not there",
                    "",
                )),
            }
        }
        "QueuePause" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            let paused = a.get("Paused") == Some("true");
            let reason = header("Reason");
            match w
                .members
                .iter_mut()
                .find(|m| m.queue == queue && m.interface == interface)
            {
                Some(m) => {
                    m.paused = paused;
                    m.reason = if paused { reason } else { String::new() };
                    let m = m.clone();
                    let text = if paused {
                        "Interface paused successfully"
                    } else {
                        "Interface unpaused successfully"
                    };
                    reply(response(&id, "Success", text, ""));
                    w.member_event("QueueMemberPause", &m);
                }
                None => reply(response(&id, "Error", "Interface not found", "")),
            }
        }
        "Originate" => {
            let channel = header("Channel");
            if !channel.starts_with("PJSIP/") && !channel.starts_with("Local/") {
                reply(response(&id, "Error", "Originate failed", ""));
                return false;
            }
            reply(response(
                &id,
                "Success",
                "Originate successfully queued",
                "",
            ));
            let uid = a.get("ChannelId").map(str::to_string);
            let dev = w.uid();
            let dev = w.new_channel(
                format!("{channel}-{dev}"),
                0,
                None,
                uid,
                "<unknown>",
                "agents",
                "7001",
            );
            w.dial("DialBegin", None, &dev, "");
            w.set_state(&dev, 5);
            drop(w);
            let world = world.clone();
            let script = script.clone();
            let (exten, context) = (header("Exten"), header("Context"));
            tokio::spawn(async move {
                tokio::time::sleep(script.answer_after).await;
                let far = {
                    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                    if !w.channels.contains_key(&dev) {
                        return;
                    }
                    w.set_state(&dev, 6);
                    let c = w.channels.get(&dev).cloned();
                    if let Some(c) = c {
                        w.broadcast(format!(
                            "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {id}\r\nResponse: Success\r\nChannel: {}\r\nContext: {context}\r\nExten: {exten}\r\nReason: 4\r\nUniqueid: {}\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\n\r\n",
                            c.name, c.uid
                        ));
                    }
                    w.dial("DialEnd", None, &dev, "ANSWER");
                    if let Some(c) = w.channels.get_mut(&dev) {
                        c.context = context.clone();
                        c.exten = exten.clone();
                        c.app = "Dial".into();
                    }
                    let linked = w.channels.get(&dev).map(|c| c.linkedid.clone());
                    let far = w.uid();
                    let far = w.new_channel(
                        format!("PJSIP/trunk-{far}"),
                        0,
                        linked,
                        Some(far),
                        &exten,
                        "customers",
                        &exten,
                    );
                    w.dial("DialBegin", Some(&dev), &far, "");
                    w.set_state(&far, 5);
                    far
                };
                if script.never_answers.contains(&exten) {
                    return;
                }
                tokio::time::sleep(script.answer_after).await;
                let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                if !w.channels.contains_key(&dev) || !w.channels.contains_key(&far) {
                    return;
                }
                w.set_state(&far, 6);
                w.dial("DialEnd", Some(&dev), &far, "ANSWER");
                let b = w.bridge_create();
                w.bridge_enter(&b, &far);
                w.bridge_enter(&b, &dev);
            });
        }
        "Hangup" => {
            let Some(uid) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let cause: u16 = header("Cause").parse().unwrap_or(16);
            reply(response(&id, "Success", "Channel Hungup", ""));
            if let Some((home, consult, target, transferee)) = w.atxfers.remove(&uid) {
                // The transferer hangs up: the attended transfer completes (capture 12).
                w.bridge_leave(&uid);
                w.event(
                    "BridgeMerge",
                    format!("ToBridgeUniqueid: {home}\r\nFromBridgeUniqueid: {consult}\r\n"),
                );
                w.chan_event("MusicOnHoldStop", &transferee, "");
                w.bridge_leave(&target);
                w.bridge_enter(&home, &target);
                let t = w.channels.get(&uid).cloned();
                if let Some(t) = t {
                    w.event(
                        "AttendedTransfer",
                        format!(
                            "Result: Success\r\nOrigTransfererChannel: {}\r\nOrigTransfererUniqueid: {}\r\nSecondTransfererChannel: {}\r\nSecondTransfererUniqueid: {}\r\nTransfereeUniqueid: {transferee}\r\nTransferTargetUniqueid: {target}\r\nDestType: Bridge\r\nDestBridgeUniqueid: {home}\r\nIsExternal: No\r\n",
                            t.name, t.uid, t.name, t.uid
                        ),
                    );
                }
                w.hangup(&uid, cause);
                return false;
            }
            w.hangup_call(&uid, cause);
        }
        "Redirect" => {
            let Some(x) = w.find_by_name(&header("Channel")) else {
                reply(response(
                    &id,
                    "Error",
                    "Channel specified does not exist",
                    "",
                ));
                return false;
            };
            if header("Context") == script.conference_context {
                // Into a ConfBridge room (the extension names it): each channel leaves
                // its bridge and joins the room. A transferee leaving its bridge during
                // an attended transfer ends the transfer (Asterisk's "transferee hung
                // up" case): the consultation bridge becomes a plain bridge.
                let extra = a.get("ExtraChannel").and_then(|e| w.find_by_name(e));
                reply(response(
                    &id,
                    "Success",
                    if extra.is_some() {
                        "Dual Redirect successful"
                    } else {
                        "Redirect successful"
                    },
                    "",
                ));
                let room = header("Exten");
                let moved: Vec<String> = std::iter::once(x).chain(extra).collect();
                for uid in &moved {
                    let holding = w.atxfers.iter().any(|(_, (_, _, _, t))| t == uid);
                    w.atxfers.retain(|d, (_, _, target, transferee)| {
                        d != uid && target != uid && transferee != uid
                    });
                    w.bridge_leave(uid);
                    if holding {
                        w.chan_event("MusicOnHoldStop", uid, "");
                    }
                    let ctx = script.conference_context.clone();
                    if let Some(c) = w.channels.get_mut(uid) {
                        c.context = ctx;
                        c.exten = room.clone();
                    }
                }
                for uid in &moved {
                    w.join_room(&room, uid);
                }
                return false;
            }
            match a.get("ExtraChannel").and_then(|e| w.find_by_name(e)) {
                Some(d) => {
                    // Hold: both legs leave the bridge (capture 06).
                    reply(response(&id, "Success", "Dual Redirect successful", ""));
                    let (ctx, ex) = (header("Context"), header("Exten"));
                    if let Some(c) = w.channels.get_mut(&x) {
                        c.context = ctx;
                        c.exten = ex;
                    }
                    let (ctx, ex) = (header("ExtraContext"), header("ExtraExten"));
                    if let Some(c) = w.channels.get_mut(&d) {
                        c.context = ctx;
                        c.exten = ex;
                        c.app = "Wait".into();
                    }
                    w.bridge_leave(&x);
                    w.bridge_leave(&d);
                    w.chan_event("MusicOnHoldStart", &x, "Class: default\r\n");
                }
                None => {
                    reply(response(&id, "Success", "Redirect successful", ""));
                    w.bridge_leave(&x);
                    w.chan_event("MusicOnHoldStop", &x, "");
                    // The redirected party goes on to the new destination and away from
                    // the agent; modelled as leaving the system.
                    w.hangup(&x, 16);
                }
            }
        }
        "Bridge" => {
            let (Some(d), Some(x)) = (
                w.find_by_name(&header("Channel1")),
                w.find_by_name(&header("Channel2")),
            ) else {
                reply(response(&id, "Error", "Channel1 does not exist", ""));
                return false;
            };
            reply(response(&id, "Success", "Channels have been bridged", ""));
            let b = w.bridge_create();
            w.bridge_enter(&b, &d);
            w.chan_event("MusicOnHoldStop", &x, "");
            w.bridge_enter(&b, &x);
        }
        "BlindTransfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some(bridge) = w.channels.get(&d).and_then(|c| c.bridge.clone()) else {
                reply(response(&id, "Error", "Transfer failed", ""));
                return false;
            };
            let x = w
                .bridges
                .get(&bridge)
                .and_then(|m| m.iter().find(|u| **u != d).cloned())
                .unwrap_or_default();
            reply(response(&id, "Success", "Transfer succeeded", ""));
            w.chan_event("Unhold", &d, "");
            let t = w.channels.get(&d).cloned();
            if let Some(t) = t {
                w.event(
                    "BlindTransfer",
                    format!(
                        "Result: Success\r\nTransfererChannel: {}\r\nTransfererUniqueid: {}\r\nTransfereeUniqueid: {x}\r\n{}IsExternal: Yes\r\nContext: {}\r\nExtension: {}\r\n",
                        t.name, t.uid, bridge_block(&bridge, 2), header("Context"), header("Exten")
                    ),
                );
            }
            w.bridge_leave(&x);
            w.hangup(&d, 16);
            w.hangup(&x, 16);
        }
        "Atxfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some(home) = w.channels.get(&d).and_then(|c| c.bridge.clone()) else {
                reply(response(&id, "Error", "Atxfer failed", ""));
                return false;
            };
            let x = w
                .bridges
                .get(&home)
                .and_then(|m| m.iter().find(|u| **u != d).cloned())
                .unwrap_or_default();
            reply(response(&id, "Success", "Atxfer successfully queued", ""));
            let exten = header("Exten");
            for digit in ["*", "2"] {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            w.chan_event("Hold", &d, "");
            w.chan_event("MusicOnHoldStart", &x, "Class: default\r\n");
            for digit in exten.chars() {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            let linked = w.channels.get(&d).map(|c| c.linkedid.clone());
            let t = w.uid();
            let t = w.new_channel(
                format!("Local/{exten}@from-agents-{t};1"),
                0,
                linked,
                Some(t),
                "<unknown>",
                "from-agents",
                &exten,
            );
            let consult = w.bridge_create();
            w.bridge_enter(&consult, &t);
            w.set_state(&t, 5);
            w.bridge_leave(&d);
            w.bridge_enter(&consult, &d);
            w.atxfers.insert(d.clone(), (home, consult, t.clone(), x));
            drop(w);
            let world = world.clone();
            let script = script.clone();
            tokio::spawn(async move {
                tokio::time::sleep(script.answer_after).await;
                let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                if w.channels.contains_key(&t) {
                    w.set_state(&t, 6);
                    w.dial("DialEnd", None, &t, "ANSWER");
                }
            });
        }
        "CancelAtxfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some((home, _consult, t, x)) = w.atxfers.remove(&d) else {
                reply(response(
                    &id,
                    "Error",
                    "No attended transfer in progress",
                    "",
                ));
                return false;
            };
            reply(response(
                &id,
                "Success",
                "CancelAtxfer successfully queued",
                "",
            ));
            for digit in ["*", "1"] {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            w.bridge_leave(&d);
            w.bridge_enter(&home, &d);
            w.chan_event("MusicOnHoldStop", &x, "");
            w.chan_event("Unhold", &d, "");
            w.hangup(&t, 16);
        }
        "PlayDTMF" => {
            if w.find_by_name(&header("Channel")).is_none() {
                reply(response(&id, "Error", "Channel not found", ""));
            } else {
                reply(response(&id, "Success", "DTMF successfully queued", ""));
            }
        }
        "Setvar" => {
            if a.get("Channel")
                .is_some_and(|c| w.find_by_name(c).is_none())
            {
                reply(response(&id, "Error", "Channel not found", ""));
            } else {
                reply(response(&id, "Success", "Variable Set", ""));
            }
        }
        _ => reply(response(&id, "Error", "Invalid/unknown command", "")),
    }
    false
}
