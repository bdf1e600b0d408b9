//! SDP (RFC 4566) for one audio stream: the offer/answer (RFC 3264) subset a desk phone
//! needs: G.711 (PCMU, PCMA), telephone-event (RFC 4733), and the direction attributes
//! that carry hold.
//!
//! Parsing is ours (no maintained crate parses SDP without pulling a WebRTC stack), so
//! it is bounded, never panics, and is property tested and fuzzed.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// The largest SDP body accepted.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Static payload type of PCMU (G.711 µ-law).
pub const PT_PCMU: u8 = 0;
/// Static payload type of PCMA (G.711 A-law).
pub const PT_PCMA: u8 = 8;
/// The payload type this side offers for telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;

/// The media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaDirection {
    /// Both ways (the default when the attribute is absent).
    #[default]
    SendRecv,
    /// This side sends only: it holds the other.
    SendOnly,
    /// This side receives only.
    RecvOnly,
    /// No media either way.
    Inactive,
}

impl MediaDirection {
    /// The attribute's name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }

    /// The direction an answer takes to an offer with this direction, given whether
    /// the answerer itself holds the call.
    pub fn answer(self, holding: bool) -> MediaDirection {
        match (self, holding) {
            (MediaDirection::SendRecv, false) => MediaDirection::SendRecv,
            (MediaDirection::SendRecv, true) => MediaDirection::SendOnly,
            (MediaDirection::SendOnly, false) => MediaDirection::RecvOnly,
            (MediaDirection::SendOnly, true) | (MediaDirection::Inactive, _) => {
                MediaDirection::Inactive
            }
            (MediaDirection::RecvOnly, _) => MediaDirection::SendOnly,
        }
    }

    /// Whether this side may send.
    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    /// Whether this side may receive.
    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }
}

/// G.711 codec chosen for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// µ-law.
    Pcmu,
    /// A-law.
    Pcma,
}

impl Codec {
    /// The static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => PT_PCMU,
            Codec::Pcma => PT_PCMA,
        }
    }
}

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpError(String);

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SDP: {}", self.0)
    }
}

impl std::error::Error for SdpError {}

/// What the far end's SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where to send RTP (`c=` of the audio stream, else of the session).
    pub address: IpAddr,
    /// The audio port; 0 means the stream was refused.
    pub port: u16,
    /// The payload types offered, in order of preference.
    pub payloads: Vec<u8>,
    /// The payload type the far end uses for telephone-event, if any.
    pub telephone_event: Option<u8>,
    /// The far end's direction.
    pub direction: MediaDirection,
}

impl RemoteMedia {
    /// The first G.711 codec the far end offers.
    pub fn codec(&self) -> Option<Codec> {
        self.payloads.iter().find_map(|pt| match *pt {
            PT_PCMU => Some(Codec::Pcmu),
            PT_PCMA => Some(Codec::Pcma),
            _ => None,
        })
    }

    /// Whether the far end holds the call: it only sends, sends nothing, or announces
    /// the RFC 2543 null address.
    pub fn is_hold(&self) -> bool {
        matches!(
            self.direction,
            MediaDirection::SendOnly | MediaDirection::Inactive
        ) || self.address.is_unspecified()
    }
}

/// Parses the first audio stream of an SDP body.
///
/// ```
/// use opencti_sip::sdp::{parse, MediaDirection};
/// let sdp = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
///             m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
/// let media = parse(sdp).unwrap();
/// assert_eq!(media.port, 4000);
/// assert_eq!(media.telephone_event, Some(101));
/// assert_eq!(media.direction, MediaDirection::SendOnly);
/// assert!(media.is_hold());
/// ```
pub fn parse(body: &[u8]) -> Result<RemoteMedia, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError(format!(
            "body of {} bytes is over the {MAX_SDP_BYTES}-byte limit",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError("body is not UTF-8 text".into()))?;
    let mut session_addr: Option<IpAddr> = None;
    let mut session_dir = MediaDirection::SendRecv;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut audio_addr: Option<IpAddr> = None;
    let mut audio_dir: Option<MediaDirection> = None;
    let mut telephone_event = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut saw_version = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(SdpError(format!(
                "line {:?} is not type=value",
                short(line)
            )));
        };
        match kind {
            "v" => saw_version = true,
            "m" => {
                in_audio = false;
                if seen_audio {
                    continue;
                }
                let mut parts = value.split(' ');
                let media = parts.next().unwrap_or_default();
                if media != "audio" {
                    continue;
                }
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| SdpError(format!("bad port in m= line {:?}", short(line))))?;
                let _proto = parts.next();
                let mut payloads = Vec::new();
                for pt in parts.filter(|p| !p.is_empty()) {
                    match pt.parse::<u8>() {
                        Ok(pt) if pt < 128 && payloads.len() < 32 => payloads.push(pt),
                        Ok(_) => {}
                        Err(_) => {
                            return Err(SdpError(format!(
                                "bad payload type {:?} in m= line",
                                short(pt)
                            )))
                        }
                    }
                }
                audio = Some((port, payloads));
                in_audio = true;
                seen_audio = true;
            }
            "c" => {
                let addr = parse_connection(value)?;
                if in_audio {
                    audio_addr = Some(addr);
                } else if !seen_audio {
                    session_addr = Some(addr);
                }
            }
            "a" => {
                let dir = match value {
                    "sendrecv" => Some(MediaDirection::SendRecv),
                    "sendonly" => Some(MediaDirection::SendOnly),
                    "recvonly" => Some(MediaDirection::RecvOnly),
                    "inactive" => Some(MediaDirection::Inactive),
                    _ => None,
                };
                if let Some(dir) = dir {
                    if in_audio {
                        audio_dir = Some(dir);
                    } else if !seen_audio {
                        session_dir = dir;
                    }
                } else if in_audio {
                    if let Some(map) = value.strip_prefix("rtpmap:") {
                        let (pt, name) = map.split_once(' ').unwrap_or((map, ""));
                        if name.to_ascii_lowercase().starts_with("telephone-event/") {
                            telephone_event = pt.parse::<u8>().ok().filter(|pt| *pt < 128);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError("no v= line".into()));
    }
    let (port, payloads) = audio.ok_or_else(|| SdpError("no audio stream (m=audio)".into()))?;
    let address = audio_addr
        .or(session_addr)
        .ok_or_else(|| SdpError("no connection address (c=)".into()))?;
    Ok(RemoteMedia {
        address,
        port,
        payloads,
        telephone_event,
        direction: audio_dir.unwrap_or(session_dir),
    })
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split(' ');
    let (net, _kind, addr) = (parts.next(), parts.next(), parts.next());
    if net != Some("IN") {
        return Err(SdpError(format!("c= line {:?} is not IN", short(value))));
    }
    let addr = addr.unwrap_or_default();
    // Multicast TTL suffix (`/127`) is not for us, but tolerate it.
    let addr = addr.split('/').next().unwrap_or_default();
    addr.parse::<IpAddr>()
        .map_err(|_| SdpError(format!("c= address {:?} is not an IP address", short(addr))))
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// This side's audio stream, for an offer or an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The session id (`o=`), fixed for the call.
    pub session_id: u64,
    /// The session version (`o=`), bumped on every change.
    pub version: u64,
    /// The RTP address.
    pub address: IpAddr,
    /// The RTP port.
    pub port: u16,
    /// The codecs, in order of preference.
    pub codecs: Vec<Codec>,
    /// The telephone-event payload type, if offered.
    pub telephone_event: Option<u8>,
    /// The direction.
    pub direction: MediaDirection,
}

impl LocalMedia {
    /// The SDP text.
    ///
    /// ```
    /// use opencti_sip::sdp::{parse, Codec, LocalMedia, MediaDirection};
    /// let local = LocalMedia {
    ///     session_id: 7, version: 1, address: "127.0.0.1".parse().unwrap(), port: 4002,
    ///     codecs: vec![Codec::Pcmu, Codec::Pcma], telephone_event: Some(101),
    ///     direction: MediaDirection::SendOnly,
    /// };
    /// let back = parse(local.to_sdp().as_bytes()).unwrap();
    /// assert_eq!((back.port, back.payloads.as_slice()), (4002, &[0u8, 8, 101][..]));
    /// assert_eq!(back.direction, MediaDirection::SendOnly);
    /// ```
    pub fn to_sdp(&self) -> String {
        let ip = match self.address {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "v=0\r\no=opencti {} {} IN {ip} {}\r\ns=opencti\r\nc=IN {ip} {}\r\nt=0 0\r\nm=audio {} RTP/AVP",
            self.session_id, self.version, self.address, self.address, self.port
        );
        for codec in &self.codecs {
            let _ = write!(out, " {}", codec.payload_type());
        }
        if let Some(pt) = self.telephone_event {
            let _ = write!(out, " {pt}");
        }
        out.push_str("\r\n");
        for codec in &self.codecs {
            let (pt, name) = match codec {
                Codec::Pcmu => (PT_PCMU, "PCMU"),
                Codec::Pcma => (PT_PCMA, "PCMA"),
            };
            let _ = write!(out, "a=rtpmap:{pt} {name}/8000\r\n");
        }
        if let Some(pt) = self.telephone_event {
            let _ = write!(
                out,
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            );
        }
        out.push_str("a=ptime:20\r\n");
        let _ = write!(out, "a={}\r\n", self.direction.as_str());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baresip_offer() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 20180 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
        let m = parse(sdp.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.codec(), Some(Codec::Pcmu));
        assert_eq!(m.port, 20180);
        assert!(!m.is_hold());
    }

    #[test]
    fn session_level_direction_and_null_address_mean_hold() {
        let sdp = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 5 RTP/AVP 8\r\n";
        assert!(parse(sdp.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .is_hold());
        let sdp = "v=0\r\na=inactive\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 8\r\n";
        let m = parse(sdp.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.direction, MediaDirection::Inactive);
        assert_eq!(m.codec(), Some(Codec::Pcma));
    }

    #[test]
    fn refusals_are_clear() {
        for (bad, says) in [
            (&b"v=0\r\nm=audio x RTP/AVP 0\r\n"[..], "bad port"),
            (
                b"v=0\r\nm=video 5 RTP/AVP 0\r\nc=IN IP4 1.1.1.1\r\n",
                "no audio",
            ),
            (b"v=0\r\nm=audio 5 RTP/AVP 0\r\n", "no connection"),
            (b"v=0\r\nc=IN IP4 nope\r\n", "not an IP"),
            (b"\xff\xfe", "UTF-8"),
            (b"garbage", "type=value"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e} should say {says}");
        }
        assert!(parse(&vec![b'a'; MAX_SDP_BYTES + 1]).is_err());
    }

    #[test]
    fn answer_directions() {
        use MediaDirection::*;
        assert_eq!(SendOnly.answer(false), RecvOnly);
        assert_eq!(Inactive.answer(false), Inactive);
        assert_eq!(SendRecv.answer(true), SendOnly);
        assert_eq!(RecvOnly.answer(false), SendOnly);
    }
}
