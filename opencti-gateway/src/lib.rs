#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod auth;
mod limits;
mod router;
mod sessions;
mod socket;

pub use auth::{Authenticator, Grant, Token, TokenTable};
pub use limits::Limits;
pub use router::Gateway;
pub use sessions::{SessionFactory, SimSessions};
