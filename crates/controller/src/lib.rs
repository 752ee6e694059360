//! The ferrolb controller: gives `type: LoadBalancer` Services their external addresses.
//!
//! [`core`] decides (pure: snapshots of Services, namespaces and the metallb.io configuration
//! in, wanted Service fields and Events out); [`run`] is the shell around it: watches, leader
//! election on a Lease, status and Event writers, pool counters, metrics and health endpoints.

pub mod core;
pub mod metrics;
pub mod request;
pub mod run;
pub mod snapshot;
mod writer;

#[cfg(test)]
mod proptests;

pub use run::{Options, run};
