//! The `ferrolb-api` crate owns ferrolb's view of the Kubernetes API: the MetalLB-compatible
//! custom resource types of group `metallb.io` (every kind in v1beta1, BGPPeer also in its
//! v1beta2 storage version, and the conversion between the two), the CRDs generated from
//! those types, and the parsing of what a LoadBalancer Service asks for (its spec and
//! MetalLB's annotations). It does no I/O.

pub mod configuration_state;
mod conversion;
mod crd;
mod schema;
pub mod service;
pub mod v1beta1;
pub mod v1beta2;

pub use crd::{
    CONVERSION_PATH, CONVERSION_REVIEW_VERSIONS, WEBHOOK_SERVICE_NAME, WEBHOOK_SERVICE_NAMESPACE,
    WEBHOOK_SERVICE_PORT, crds, crds_yaml,
};
