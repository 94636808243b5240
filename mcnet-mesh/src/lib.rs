//! # mcnet-mesh
//!
//! Home of mcnet's service-mesh layer: workload identity and certificate
//! rotation, the mTLS transport, the cross-cluster gateway and Linkerd
//! multicluster resources.
//!
//! Status: not implemented yet; this crate is an empty placeholder in the
//! workspace layout.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
