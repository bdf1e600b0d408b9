//! The AMI connector against a real Asterisk 22 with PJSIP (`peers/asterisk`, built and
//! started by `.ci/run`): every command of the README's mapping table, calls offered by
//! a queue and directly, the far end and the phone acting by themselves, the
//! conformance kit with two kinds of device, link faults, TLS, captures, and queue
//! statistics against Asterisk's own.
//!
//! The tests share one PBX and take turns ([`pbx::Pbx::take`]). Without an Asterisk on
//! 127.0.0.1:5038 they are skipped with a printed reason, or fail under `CI=true`.

#[path = "../common/mod.rs"]
mod common;
mod pbx;
mod phone;

mod capabilities;
mod captures;
mod commands;
mod conformance;
mod faults;
mod link;
mod phones;
mod queues;
mod tls;
