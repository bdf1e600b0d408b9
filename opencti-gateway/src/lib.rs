#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod auth;
mod crm;
mod limits;
mod router;
mod sessions;
mod socket;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use auth::{Authenticator, Grant, Token, TokenTable};
pub use crm::{CallLogEntry, Contact, Crm, NoCrm, ScreenPop};
pub use limits::Limits;
pub use router::Gateway;
pub use sessions::{SessionFactory, SimSessions};
#[cfg(feature = "sqlite")]
pub use sqlite::{CallLogRow, SqliteCrm};
