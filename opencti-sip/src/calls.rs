//! The calls on the agent's line: one [`SipCall`] per dialog, with its media, its SDP
//! state and the commands waiting for their confirming events.

use std::collections::HashMap;
use std::net::SocketAddr;

use opencti_core::{
    Address, Call, CallData, CallId, CallRole, CallState, CommandId, Direction, DisplayName, Party,
    PartyId,
};

use crate::media::{MediaTarget, RtpStream};
use crate::sdp::{Codec, LocalMedia, MediaDirection, RemoteMedia, PT_TELEPHONE_EVENT};
use crate::stack::DialogKey;

/// Where a call stands, seen from this UA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Outbound INVITE sent, no provisional yet.
    Dialling,
    /// Outbound, the far end alerts.
    Ringback,
    /// Inbound, ringing here.
    Offered,
    /// Inbound, 200 OK sent, waiting for the ACK.
    Answering,
    /// Talking (or held).
    Connected,
}

/// A blind or attended transfer waiting for its final sipfrag.
#[derive(Debug, Clone)]
pub(crate) struct PendingTransfer {
    pub(crate) command: CommandId,
    pub(crate) to: Option<Address>,
    /// For an attended transfer: the consultation call that ends with it.
    pub(crate) consult: Option<CallId>,
}

/// One call on the line.
pub(crate) struct SipCall {
    pub(crate) id: CallId,
    pub(crate) key: DialogKey,
    pub(crate) direction: Direction,
    pub(crate) progress: Progress,
    pub(crate) from: Option<Address>,
    pub(crate) from_name: Option<DisplayName>,
    pub(crate) to: Option<Address>,
    pub(crate) consult_of: Option<CallId>,
    pub(crate) data: CallData,
    /// This side holds the call.
    pub(crate) holding: bool,
    /// The far end holds the call.
    pub(crate) far_end_holds: bool,
    pub(crate) local: LocalMedia,
    pub(crate) remote: Option<RemoteMedia>,
    pub(crate) rtp: Option<RtpStream>,
    /// The command that confirms when the call is answered (answer).
    pub(crate) answer: Option<CommandId>,
    /// The command that confirms when the call ends (hangup, reject).
    pub(crate) ending: Option<CommandId>,
    pub(crate) transfer: Option<PendingTransfer>,
    /// The command that made the call, for a failure before the first event.
    pub(crate) made_by: Option<CommandId>,
}

impl SipCall {
    /// A new call with a fresh local media description.
    pub(crate) fn new(
        id: CallId,
        key: DialogKey,
        direction: Direction,
        progress: Progress,
        rtp_ip: std::net::IpAddr,
    ) -> SipCall {
        SipCall {
            id,
            key,
            direction,
            progress,
            from: None,
            from_name: None,
            to: None,
            consult_of: None,
            data: CallData::new(),
            holding: false,
            far_end_holds: false,
            local: LocalMedia {
                session_id: u64::from(fastrand::u32(..)),
                version: 1,
                address: rtp_ip,
                port: 0,
                codecs: vec![Codec::Pcmu, Codec::Pcma],
                telephone_event: Some(PT_TELEPHONE_EVENT),
                direction: MediaDirection::SendRecv,
            },
            remote: None,
            rtp: None,
            answer: None,
            ending: None,
            transfer: None,
            made_by: None,
        }
    }

    /// The canonical state of the call.
    pub(crate) fn state(&self) -> CallState {
        match self.progress {
            Progress::Dialling => CallState::Initiated,
            Progress::Ringback => CallState::Ringback,
            Progress::Offered | Progress::Answering => CallState::Offered,
            Progress::Connected if self.holding => CallState::Held,
            Progress::Connected => CallState::Connected,
        }
    }

    /// Whether the call has been answered.
    pub(crate) fn is_connected(&self) -> bool {
        self.progress == Progress::Connected
    }

    /// The call as the canonical model shows it.
    pub(crate) fn to_call(&self) -> Call {
        let mut call = Call::new(self.id.clone(), self.state(), self.direction);
        call.from = self.from.clone();
        call.to = self.to.clone();
        call.consult_of = self.consult_of.clone();
        call.role = if self.consult_of.is_some() {
            CallRole::Consult
        } else {
            CallRole::Primary
        };
        call.data = self.data.clone();
        if let Some(party) = self.party() {
            call.parties.push(party);
        }
        call
    }

    /// The far end as a party.
    pub(crate) fn party(&self) -> Option<Party> {
        let address = match self.direction {
            Direction::Inbound => self.from.clone(),
            Direction::Outbound => self.to.clone(),
        }?;
        let mut party = Party::new(PartyId::new(address.as_str()).ok()?).with_address(address);
        if let Some(name) = &self.from_name {
            if self.direction == Direction::Inbound {
                party = party.with_name(name.clone());
            }
        }
        Some(party)
    }

    /// Takes the far end's SDP: records it and points the RTP stream at it.
    pub(crate) fn apply_remote(&mut self, remote: RemoteMedia) {
        self.far_end_holds = remote.is_hold();
        self.remote = Some(remote);
        self.retarget();
    }

    /// Points the RTP stream at the far end, in the current direction.
    pub(crate) fn retarget(&self) {
        let (Some(rtp), Some(remote)) = (&self.rtp, &self.remote) else {
            return;
        };
        let Some(codec) = remote.codec() else {
            return;
        };
        let direction = if self.holding || self.far_end_holds {
            match (self.holding, remote.direction) {
                (true, MediaDirection::RecvOnly | MediaDirection::SendRecv) => {
                    MediaDirection::SendOnly
                }
                (false, MediaDirection::SendOnly) => MediaDirection::RecvOnly,
                _ => MediaDirection::Inactive,
            }
        } else {
            self.local.direction
        };
        rtp.set_target(MediaTarget {
            address: SocketAddr::new(remote.address, remote.port),
            codec,
            telephone_event: remote.telephone_event,
            direction,
        });
    }

    /// This side's SDP for an offer (or an answer to `offer`), bumping the version.
    pub(crate) fn local_sdp(&mut self, offer: Option<&RemoteMedia>) -> Vec<u8> {
        self.local.version += 1;
        self.local.port = self.rtp.as_ref().map(|r| r.port()).unwrap_or_default();
        self.local.direction = match offer {
            Some(offer) => offer.direction.answer(self.holding),
            None if self.holding => MediaDirection::SendOnly,
            None => MediaDirection::SendRecv,
        };
        if let Some(offer) = offer {
            // Answer with the codec chosen from the offer first, and telephone-event
            // only if offered, with the offerer's payload type.
            if let Some(codec) = offer.codec() {
                self.local.codecs = vec![codec];
            }
            self.local.telephone_event = offer.telephone_event;
        }
        self.local.to_sdp().into_bytes()
    }
}

/// The calls, by dialog and by call id.
#[derive(Default)]
pub(crate) struct CallTable {
    calls: Vec<SipCall>,
    by_key: HashMap<DialogKey, usize>,
}

impl CallTable {
    pub(crate) fn insert(&mut self, call: SipCall) {
        self.calls.push(call);
        self.reindex();
    }

    fn reindex(&mut self) {
        self.by_key = self
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.clone(), i))
            .collect();
    }

    pub(crate) fn by_key(&mut self, key: &DialogKey) -> Option<&mut SipCall> {
        let i = *self.by_key.get(key)?;
        self.calls.get_mut(i)
    }

    pub(crate) fn by_id(&mut self, id: &CallId) -> Option<&mut SipCall> {
        self.calls.iter_mut().find(|c| &c.id == id)
    }

    pub(crate) fn remove(&mut self, key: &DialogKey) -> Option<SipCall> {
        let i = *self.by_key.get(key)?;
        let call = self.calls.remove(i);
        self.reindex();
        Some(call)
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &SipCall> {
        self.calls.iter()
    }

    pub(crate) fn drain(&mut self) -> Vec<SipCall> {
        self.by_key.clear();
        std::mem::take(&mut self.calls)
    }
}
