//! Media: one RTP stream per call (RFC 3550) with G.711 and RFC 4733 telephone-event,
//! fed by a small audio trait so a real far end hears (and is heard in) a proper call.
//!
//! [`AudioFactory`] opens a [`CallAudio`] per call: it fills each 20 ms frame to send
//! and takes each frame received. [`Silence`] (the default) sends silence,
//! [`WavPlayer`] plays a WAV file in a loop, [`WavRecorder`] records what the far end
//! says to a WAV file per call, around any other source.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opencti_core::{CallId, Error, ErrorKind, Result};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::sdp::{Codec, MediaDirection};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// Opens the audio of each call.
pub trait AudioFactory: Send + Sync + fmt::Debug {
    /// The audio for `call`, opened when its media starts.
    fn open(&self, call: &CallId) -> Box<dyn CallAudio>;
}

/// The audio of one call: 8 kHz, 16-bit linear samples, 20 ms frames.
pub trait CallAudio: Send {
    /// Fills the next frame to send (`frame` holds [`FRAME_SAMPLES`] samples).
    fn next_frame(&mut self, frame: &mut [i16]);
    /// Takes a frame the far end sent.
    fn received(&mut self, frame: &[i16]);
    /// The call's media ended: flush what must be kept.
    fn finish(&mut self);
}

/// Sends silence and drops what it hears (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence;

impl AudioFactory for Silence {
    fn open(&self, _: &CallId) -> Box<dyn CallAudio> {
        Box::new(SilentAudio)
    }
}

struct SilentAudio;

impl CallAudio for SilentAudio {
    fn next_frame(&mut self, frame: &mut [i16]) {
        frame.fill(0);
    }
    fn received(&mut self, _: &[i16]) {}
    fn finish(&mut self) {}
}

/// Plays a WAV file (8 kHz, mono, 16-bit PCM) in a loop on every call.
#[derive(Clone)]
pub struct WavPlayer {
    samples: Arc<[i16]>,
    path: PathBuf,
}

impl fmt::Debug for WavPlayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavPlayer")
            .field("path", &self.path)
            .field("samples", &self.samples.len())
            .finish()
    }
}

impl WavPlayer {
    /// Loads the file now; the error says what is wrong with it.
    pub fn open(path: impl AsRef<Path>) -> Result<WavPlayer> {
        let path = path.as_ref();
        let config = |m: String| Error::new(ErrorKind::Config, m);
        let reader = hound::WavReader::open(path)
            .map_err(|e| config(format!("cannot read WAV file {}: {e}", path.display())))?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.sample_rate != 8000
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(config(format!(
                "WAV file {} is {} channel(s), {} Hz, {} bit: it must be mono, 8000 Hz, 16-bit PCM",
                path.display(),
                spec.channels,
                spec.sample_rate,
                spec.bits_per_sample
            )));
        }
        let samples = reader
            .into_samples::<i16>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| config(format!("WAV file {} is damaged: {e}", path.display())))?;
        if samples.is_empty() {
            return Err(config(format!(
                "WAV file {} has no samples",
                path.display()
            )));
        }
        Ok(WavPlayer {
            samples: samples.into(),
            path: path.to_owned(),
        })
    }
}

impl AudioFactory for WavPlayer {
    fn open(&self, _: &CallId) -> Box<dyn CallAudio> {
        Box::new(PlayingAudio {
            samples: self.samples.clone(),
            at: 0,
        })
    }
}

struct PlayingAudio {
    samples: Arc<[i16]>,
    at: usize,
}

impl CallAudio for PlayingAudio {
    fn next_frame(&mut self, frame: &mut [i16]) {
        for s in frame.iter_mut() {
            *s = self.samples.get(self.at).copied().unwrap_or(0);
            self.at = (self.at + 1) % self.samples.len().max(1);
        }
    }
    fn received(&mut self, _: &[i16]) {}
    fn finish(&mut self) {}
}

/// Records what the far end says on each call to `<dir>/<call id>.wav` (8 kHz mono
/// 16-bit), and sends what `source` gives.
#[derive(Debug, Clone)]
pub struct WavRecorder {
    dir: PathBuf,
    source: Arc<dyn AudioFactory>,
}

impl WavRecorder {
    /// Records into `dir` (which must exist), sending what `source` gives.
    pub fn new(dir: impl Into<PathBuf>, source: Arc<dyn AudioFactory>) -> WavRecorder {
        WavRecorder {
            dir: dir.into(),
            source,
        }
    }

    /// Where the recording of `call` goes.
    pub fn path_for(&self, call: &CallId) -> PathBuf {
        let name: String = call
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.wav"))
    }
}

impl AudioFactory for WavRecorder {
    fn open(&self, call: &CallId) -> Box<dyn CallAudio> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let path = self.path_for(call);
        let writer = match hound::WavWriter::create(&path, spec) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "SIP media: cannot record");
                None
            }
        };
        Box::new(RecordingAudio {
            inner: self.source.open(call),
            writer,
        })
    }
}

struct RecordingAudio {
    inner: Box<dyn CallAudio>,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl CallAudio for RecordingAudio {
    fn next_frame(&mut self, frame: &mut [i16]) {
        self.inner.next_frame(frame);
    }
    fn received(&mut self, frame: &[i16]) {
        self.inner.received(frame);
        if let Some(w) = &mut self.writer {
            for s in frame {
                if w.write_sample(*s).is_err() {
                    self.writer = None;
                    return;
                }
            }
        }
    }
    fn finish(&mut self) {
        self.inner.finish();
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finalize() {
                tracing::warn!(error = %e, "SIP media: recording not finalised");
            }
        }
    }
}

/// G.711 µ-law encoding of one sample.
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// G.711 µ-law decoding of one byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law encoding of one sample.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let sign = if s >= 0 {
        0xD5
    } else {
        s = -s - 1;
        0x55
    };
    let s = s.min(0x0FFF);
    let mut exponent = 0;
    while exponent < 7 && (s >> (exponent + 5)) > 0 {
        exponent += 1;
    }
    let mantissa = if exponent == 0 {
        (s >> 1) & 0x0F
    } else {
        (s >> exponent) & 0x0F
    };
    ((exponent << 4) as u8 | mantissa as u8) ^ sign
}

/// G.711 A-law decoding of one byte.
pub fn alaw_decode(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if b & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// The RFC 4733 event code of a DTMF digit.
pub fn dtmf_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (digit as u8 - b'A')),
        _ => None,
    }
}

/// Where the far end wants RTP and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MediaTarget {
    pub(crate) address: SocketAddr,
    pub(crate) codec: Codec,
    pub(crate) telephone_event: Option<u8>,
    pub(crate) direction: MediaDirection,
}

impl MediaTarget {
    /// Whether RTP from the far end is expected: both directions flow (no hold either
    /// way, not sendonly, recvonly or inactive) to a real address.
    fn expects_rtp(&self) -> bool {
        self.direction == MediaDirection::SendRecv
            && self.address.port() != 0
            && !self.address.ip().is_unspecified()
    }
}

enum MediaCommand {
    Target(MediaTarget),
    Dtmf(Vec<u8>, oneshot::Sender<bool>),
    Watch(Duration, oneshot::Sender<()>),
}

/// One call's RTP stream: a socket and the task that sends and receives on it. Dropping
/// it stops the task.
pub(crate) struct RtpStream {
    port: u16,
    commands: mpsc::UnboundedSender<MediaCommand>,
    stop: Option<oneshot::Sender<()>>,
}

impl RtpStream {
    /// Binds a socket on `ip` (any port); the stream sends once it has a target.
    pub(crate) async fn open(ip: IpAddr, audio: Box<dyn CallAudio>) -> Result<RtpStream> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await.map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("cannot bind an RTP socket on {ip}: {e}"),
            )
        })?;
        let port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
        let (commands, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run(socket, audio, rx, stopped));
        Ok(RtpStream {
            port,
            commands,
            stop: Some(stop),
        })
    }

    /// The local RTP port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Sets where (and whether) to send.
    pub(crate) fn set_target(&self, target: MediaTarget) {
        let _ = self.commands.send(MediaCommand::Target(target));
    }

    /// Watches for media inactivity: the returned receiver resolves once no RTP arrived
    /// for `timeout` while RTP was expected (see [`MediaTarget::expects_rtp`]); the
    /// clock restarts whenever the target changes (a hold or retrieve, a new address).
    /// It errs when the stream stops first.
    pub(crate) fn watch(&self, timeout: Duration) -> oneshot::Receiver<()> {
        let (tell, told) = oneshot::channel();
        let _ = self.commands.send(MediaCommand::Watch(timeout, tell));
        told
    }

    /// Sends RFC 4733 events for `digits`; resolves to whether they were all sent.
    pub(crate) async fn send_dtmf(&self, digits: &str) -> bool {
        let events: Vec<u8> = digits.chars().filter_map(dtmf_event).collect();
        let (done, wait) = oneshot::channel();
        if self
            .commands
            .send(MediaCommand::Dtmf(events, done))
            .is_err()
        {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}

impl Drop for RtpStream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Packets of one RFC 4733 event: 5 × 20 ms, then 3 end packets.
const EVENT_PACKETS: u16 = 5;

struct Dtmf {
    queue: std::collections::VecDeque<u8>,
    current: Option<(u8, u32, u16)>,
    gap: u8,
    done: oneshot::Sender<bool>,
}

async fn run(
    socket: UdpSocket,
    mut audio: Box<dyn CallAudio>,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut target: Option<MediaTarget> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ssrc = fastrand::u32(..);
    let mut seq: u16 = fastrand::u16(..);
    let mut ts: u32 = fastrand::u32(..);
    let mut marker = true;
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut packet = Vec::with_capacity(12 + FRAME_SAMPLES);
    let mut buf = vec![0u8; 2048];
    let mut dtmf: Option<Dtmf> = None;
    let mut watch: Option<(Duration, oneshot::Sender<()>)> = None;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            command = commands.recv() => match command {
                None => break,
                Some(MediaCommand::Target(t)) => {
                    if target != Some(t) {
                        last_heard = tokio::time::Instant::now();
                    }
                    target = Some(t);
                }
                Some(MediaCommand::Watch(timeout, tell)) => {
                    last_heard = tokio::time::Instant::now();
                    watch = Some((timeout, tell));
                }
                Some(MediaCommand::Dtmf(events, done)) => {
                    let usable = target.is_some_and(|t| t.direction.sends() && t.telephone_event.is_some());
                    if !usable || events.is_empty() {
                        let _ = done.send(false);
                    } else if let Some(d) = &mut dtmf {
                        d.queue.extend(events);
                        let _ = done.send(true);
                    } else {
                        dtmf = Some(Dtmf { queue: events.into(), current: None, gap: 0, done });
                    }
                }
            },
            received = socket.recv_from(&mut buf) => {
                let Ok((n, _)) = received else { continue };
                if rtp_payload(&buf[..n]).is_some() {
                    last_heard = tokio::time::Instant::now();
                }
                if let (Some(t), Some(payload)) = (target, rtp_payload(&buf[..n])) {
                    if payload.0 == t.codec.payload_type() && t.direction.receives() {
                        let samples: Vec<i16> = payload.1.iter().map(|b| match t.codec {
                            Codec::Pcmu => ulaw_decode(*b),
                            Codec::Pcma => alaw_decode(*b),
                        }).collect();
                        audio.received(&samples);
                    }
                }
            },
            now = ticker.tick() => {
                let Some(t) = target else { continue };
                if !t.expects_rtp() {
                    last_heard = now;
                } else if watch.as_ref().is_some_and(|(timeout, _)| now.duration_since(last_heard) >= *timeout) {
                    if let Some((timeout, tell)) = watch.take() {
                        tracing::debug!(?timeout, "SIP media: no RTP received within the inactivity timeout");
                        let _ = tell.send(());
                    }
                }
                if !t.direction.sends() || t.address.port() == 0 {
                    continue;
                }
                if let (Some(d), Some(pt)) = (&mut dtmf, t.telephone_event) {
                    if d.gap > 0 {
                        d.gap -= 1;
                    } else {
                        if d.current.is_none() {
                            d.current = d.queue.pop_front().map(|e| (e, ts, 0));
                        }
                        if let Some((event, start, sent)) = d.current.as_mut() {
                            *sent += 1;
                            let end = *sent >= EVENT_PACKETS;
                            let duration = u16::try_from(u32::from(*sent) * FRAME_SAMPLES as u32).unwrap_or(u16::MAX);
                            let payload = [*event, if end { 0x80 | 10 } else { 10 }, (duration >> 8) as u8, duration as u8];
                            let first = *sent == 1;
                            let repeats = if end { 3 } else { 1 };
                            for _ in 0..repeats {
                                rtp_packet(&mut packet, pt, first, seq, *start, ssrc, &payload);
                                let _ = socket.send_to(&packet, t.address).await;
                                seq = seq.wrapping_add(1);
                            }
                            ts = ts.wrapping_add(FRAME_SAMPLES as u32);
                            if end {
                                d.current = None;
                                d.gap = 2;
                                if d.queue.is_empty() {
                                    if let Some(d) = dtmf.take() {
                                        let _ = d.done.send(true);
                                    }
                                }
                            }
                            continue;
                        }
                    }
                }
                audio.next_frame(&mut frame);
                let encoded: Vec<u8> = frame.iter().map(|s| match t.codec {
                    Codec::Pcmu => ulaw_encode(*s),
                    Codec::Pcma => alaw_encode(*s),
                }).collect();
                rtp_packet(&mut packet, t.codec.payload_type(), marker, seq, ts, ssrc, &encoded);
                marker = false;
                let _ = socket.send_to(&packet, t.address).await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(FRAME_SAMPLES as u32);
            }
        }
    }
    if let Some(d) = dtmf.take() {
        let _ = d.done.send(false);
    }
    audio.finish();
}

fn rtp_packet(
    out: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push(if marker { 0x80 | pt } else { pt });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The payload type and payload of an RTP packet; `None` for anything that is not one.
pub fn rtp_payload(packet: &[u8]) -> Option<(u8, &[u8])> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(first & 0x0F);
    let mut start = 12 + 4 * csrc;
    if first & 0x10 != 0 {
        let ext = packet.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = packet.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    let payload = packet.get(start..end)?;
    Some((packet.get(1)? & 0x7F, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_quantisation() {
        for s in [
            -32768i32, -10000, -1000, -100, -1, 0, 1, 100, 1000, 10000, 32767,
        ] {
            let s = s as i16;
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            let tolerance = (i32::from(s).abs() / 16).max(16) + 16;
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tolerance * 2,
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tolerance * 2,
                "alaw {s} -> {a}"
            );
        }
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
    }

    #[test]
    fn rtp_payloads() {
        let mut p = Vec::new();
        rtp_packet(&mut p, 0, true, 1, 2, 3, &[9, 9]);
        assert_eq!(rtp_payload(&p), Some((0, &[9u8, 9][..])));
        assert_eq!(rtp_payload(&[0x80]), None);
        assert_eq!(rtp_payload(&[0x40; 20]), None);
        // padding longer than the packet
        let mut bad = p.clone();
        bad[0] |= 0x20;
        *bad.last_mut().unwrap_or(&mut 0) = 200;
        assert_eq!(rtp_payload(&bad), None);
    }

    #[test]
    fn rtp_is_expected_only_in_both_directions_to_a_real_address() {
        let t = |direction, address: &str| MediaTarget {
            address: address.parse().unwrap_or_else(|_| unreachable!()),
            codec: Codec::Pcmu,
            telephone_event: None,
            direction,
        };
        assert!(t(MediaDirection::SendRecv, "127.0.0.1:4000").expects_rtp());
        for d in [
            MediaDirection::SendOnly,
            MediaDirection::RecvOnly,
            MediaDirection::Inactive,
        ] {
            assert!(!t(d, "127.0.0.1:4000").expects_rtp(), "{d:?}");
        }
        assert!(!t(MediaDirection::SendRecv, "127.0.0.1:0").expects_rtp());
        assert!(!t(MediaDirection::SendRecv, "0.0.0.0:4000").expects_rtp());
    }

    /// The inactivity watch fires on silence and not while RTP arrives, over loopback.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_inactivity_watch_fires_on_silence_only() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap_or_else(|_| unreachable!());
        let far = UdpSocket::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let far_addr = far.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stream = RtpStream::open(ip, Box::new(SilentAudio))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream.set_target(MediaTarget {
            address: far_addr,
            codec: Codec::Pcmu,
            telephone_event: None,
            direction: MediaDirection::SendRecv,
        });
        let timeout = Duration::from_secs(1);
        let mut silent = stream.watch(timeout);
        // The far end talks for twice the timeout: no alarm.
        let mut packet = Vec::new();
        let to = SocketAddr::new(ip, stream.port());
        for seq in 0..100u16 {
            rtp_packet(&mut packet, 0, false, seq, 0, 7, &[0xFF; 160]);
            let _ = far.send_to(&packet, to).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(10), &mut silent)
                .await
                .is_err(),
            "the watch fired while RTP arrived"
        );
        // Then it falls silent: the alarm comes after the timeout.
        let begun = std::time::Instant::now();
        let fired = tokio::time::timeout(Duration::from_secs(3), &mut silent).await;
        assert!(matches!(fired, Ok(Ok(()))), "{fired:?}");
        assert!(begun.elapsed() >= timeout - Duration::from_millis(100));
        // A stopped stream ends its watch with an error.
        let other = stream.watch(timeout);
        drop(stream);
        assert!(other.await.is_err());
    }

    #[test]
    fn dtmf_codes() {
        assert_eq!(dtmf_event('5'), Some(5));
        assert_eq!(dtmf_event('#'), Some(11));
        assert_eq!(dtmf_event('D'), Some(15));
        assert_eq!(dtmf_event('x'), None);
    }
}
