#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod builder;
mod config;
mod connector;
mod control;
mod link;
mod switch;

pub mod conformance;
pub mod planner;
pub mod scenario;

pub use builder::CentreBuilder;
pub use config::{AgentConfig, CentreConfig, FarEnd, QueueConfig};
pub use connector::SimConnector;
pub use control::{CallerBuilder, Control};
pub use link::SimLink;
pub use switch::{QueueCounts, SimSwitch, SwitchStats};
