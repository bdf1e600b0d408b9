//! The scripted AMI server now lives in the crate, behind the `test-support` feature
//! (`src/test_support.rs`), so that other crates' tests can use it too.

#![allow(unused_imports)]

pub use opencti_asterisk_ami::test_support::*;
