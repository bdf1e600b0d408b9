//! What several gateways of one site share through NATS JetStream (feature `nats`).

mod tokens;

pub use tokens::{NatsTokenLimits, NatsTokens};
