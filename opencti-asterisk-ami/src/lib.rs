#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod codec;
mod error;
mod frame;
mod message;

mod client;
mod config;
mod connector;
mod line;
mod link;
pub mod tracker;
mod translate;
mod transport;
mod watch;
mod withheld;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use action::{Action, AmiKey, AmiValue, MAX_ACTION_HEADERS, MAX_LINE_BYTES};
pub use client::{AmiClient, ClientEvents, ListResponse};
pub use codec::{
    AmiCodec, DecoderConfig, Frames, PushDecoder, DEFAULT_MAX_HEADERS, DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES_LIMIT,
};
pub use config::{
    secret_from_file, AmiConfig, AnswerMode, AuthMethod, Backoff, HoldConfig, Limits, Secret,
    Timeouts, TlsConfig,
};
pub use connector::AmiConnector;
pub use error::{Error, ErrorKind, Result};
pub use frame::{Banner, Frame};
pub use line::{escape_variable_value, ORIGINATE_PREFIX};
pub use link::AmiLink;
pub use message::{GetAll, Headers, Message, MessageKind};
pub use tracker::ChannelTracker;
pub use translate::{
    cause_from_dial_status, cause_from_q850, CallTarget, DeskEvents, DeviceMatcher, EventOut,
    FollowUp, Translator, TranslatorConfig,
};
pub use watch::{interface_of, AmiWatch, DeviceEvent, WatchConfig, WatchItem, Watcher};
