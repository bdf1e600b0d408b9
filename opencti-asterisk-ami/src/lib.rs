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
mod device;
mod line;
mod link;
mod monitor;
mod switchboard;
mod tracker;
mod translate;
mod transport;
mod watch;
mod withheld;

#[cfg(any(test, feature = "test-support"))]
mod replay;
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
pub use device::interface_of;
pub use error::{Error, ErrorKind, Result};
pub use frame::{Banner, Frame};
pub use line::{escape_variable_value, ORIGINATE_PREFIX};
pub use link::AmiLink;
pub use message::{GetAll, Headers, Message, MessageKind};
pub use watch::{AmiWatch, DeviceEvent, WatchConfig, WatchItem, Watcher};
