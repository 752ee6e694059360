//! ferrolb's load-balancer IP allocator (IPAM), with MetalLB's semantics.
//!
//! This crate owns the decision of which external addresses a `type: LoadBalancer` Service
//! gets: address ranges and their parsing, IPv4/IPv6/dual-stack policies, the order pools are
//! tried in (requested addresses, requested pool, `serviceAllocation` priorities, then every
//! `autoAssign` pool), `avoidBuggyIPs`, IP sharing (`allow-shared-ip`), restoring assignments
//! after a restart, re-checking them when the pools change, and the per-pool counters behind
//! the allocator metrics.
//!
//! It is pure: plain data in, plain data out, no Kubernetes client, no I/O. The `config` crate
//! builds [`Pools`] from the `IPAddressPool` resources, the controller builds a
//! [`ServiceRequest`] per Service and writes back what [`Allocator::assign`] answers.
//!
//! Cost does not depend on pool size: a `/64` costs what a `/24` does. Memory grows with the
//! number of addresses held, and the first free address of a range is found from the runs of
//! used addresses, never by walking the range.

mod allocator;
mod error;
mod holdings;
mod index;
mod pool;
mod range;
mod service;

pub use allocator::{Allocator, Assigned, Assignment, Change, FamilyStats, Invalidated, PoolStats};
pub use error::{
    AssignError, Dropped, Failure, Lack, NoAddress, Refusal, SharedAddress, Unsuitable,
};
pub use pool::{NotAllowed, Pool, Pools, PoolsError, ServiceAllocation};
pub use range::{IpFamily, IpRange, RangeError, UnknownFamily, is_buggy};
pub use service::{
    Addresses, AddressesError, BackendKey, FamilyPolicy, FamilyPolicyError, Port, Protocol,
    ServiceKey, ServiceRequest, SharingConflict,
};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
