#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
pub mod dialog_info;
pub mod media;
pub mod monitor;
pub mod sdp;
pub mod sipfrag;
mod translate;

mod calls;
mod commands;
mod connector;
mod dialogs;
mod line;
mod link;
mod registration;
mod rsip;
mod stack;

pub use commands::escape_uri_header;
pub use config::{
    password_from_file, DtmfMode, MediaConfig, NotReadyPolicy, Secret, SipAccount, SipConfig,
    Timeouts, Transport,
};
pub use connector::SipConnector;
pub use link::SipLink;
pub use media::{AudioFactory, CallAudio, Silence, WavPlayer, WavRecorder};
pub use monitor::{DeviceEvent, DeviceEvents};
pub use translate::{address_from_uri, cause_from_status};
