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
mod connector;
mod registration;
mod rsip;
mod stack;

pub use config::{
    password_from_file, DtmfMode, MediaConfig, NotReadyPolicy, Secret, SipConfig, Timeouts,
    Transport,
};
pub use connector::{escape_uri_header, SipConnector};
pub use media::{AudioFactory, CallAudio, Silence, WavPlayer, WavRecorder};
pub use monitor::{DeviceEvent, DeviceEvents};
pub use translate::{address_from_uri, cause_from_status};
