//! # mcnet-cloud
//!
//! Home of mcnet's connectivity providers: the embedded `sim` cloud and the
//! AWS, Megaport, Azure and GCP implementations of mcnet-core's provider
//! traits, one module and one cargo feature per vendor.
//!
//! Status: not implemented yet. This crate holds no provider today; the
//! planner and providers land with the cross-cloud connectivity work.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
