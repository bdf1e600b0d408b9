//! What several gateways of one site share through NATS JetStream (feature `nats`).

mod call_logger;
mod tokens;

pub use call_logger::NatsCallLogger;
pub use tokens::{NatsTokenLimits, NatsTokens};
