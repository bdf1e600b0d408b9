#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod text;

mod agent;
mod call;
mod capabilities;
mod command;
mod error;
mod event;
mod ids;
mod monitor;
mod secret;
mod snapshot;
mod time;
mod values;

pub mod machine;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod session;

mod connector;
mod desktop;
mod line_access;
mod link;
mod replica;

pub use agent::{AgentState, ChosenState};
pub use call::{Call, CallRole, CallState, Cause, Direction, Party};
pub use capabilities::Capabilities;
pub use command::{Command, CommandKind, CommandSet};
pub use connector::{Connector, Line, Request};
pub use desktop::{DesktopInterface, DesktopInterfaceExt};
pub use error::{Error, ErrorBody, ErrorKind, Result};
pub use event::{Event, EventEnvelope, ResyncChanges};
pub use ids::{AgentId, CallId, CommandId, DeviceId, PartyId, QueueId};
pub use line_access::LineAccess;
pub use link::{one_line, LinkStatus, SharedLink, SwitchLink};
pub use monitor::MonitorMode;
pub use replica::{Offered, Replica};
pub use secret::Secret;
pub use session::{
    Confirmation, EventSink, EventStream, PendingCommand, Rejected, Session, SessionBuilder,
    SessionStats,
};
pub use snapshot::{LinkState, Snapshot, SwitchState, Withheld};
pub use time::Timestamp;
pub use values::{
    Address, CallData, CallDataKey, CallDataValue, Dialable, DisplayName, DtmfDigits, ReasonCode,
};
