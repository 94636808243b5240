//! Shared by the integration tests that need it; each uses a part.
#![allow(dead_code)]

pub mod gcp_mock;
pub mod moto;
pub mod rig;
