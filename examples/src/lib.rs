//! Shared bits for the examples.
