#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod codec;
mod error;
mod frame;
mod message;

pub use action::{Action, AmiKey, AmiValue, MAX_ACTION_HEADERS, MAX_LINE_BYTES};
pub use codec::{
    AmiCodec, DecoderConfig, Frames, PushDecoder, DEFAULT_MAX_HEADERS, DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES_LIMIT,
};
pub use error::{Error, ErrorKind, Result};
pub use frame::{Banner, Frame};
pub use message::{GetAll, Headers, Message, MessageKind};
