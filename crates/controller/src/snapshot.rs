//! What the controller reads out of a Service, once, as plain data; and what it wants the
//! Service to show.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::service::{Annotation, LoadBalancerRequest, ServiceError};
use ferrolb_ipam::ServiceKey;
use k8s_openapi::api::core::v1::Service;

/// One version of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSnapshot {
    pub key: ServiceKey,
    /// RFC 3339, so that older Services sort first when addresses are restored or retried.
    pub created: String,
    pub load_balancer: bool,
    pub class: Option<String>,
    pub request: Result<LoadBalancerRequest, ServiceError>,
    /// `status.loadBalancer.ingress[].ip`, in order; entries that are no address are skipped.
    pub status_ips: Vec<IpAddr>,
    /// `metallb.io/ip-allocated-from-pool`.
    pub pool_annotation: Option<String>,
    /// The legacy `metallb.universe.tf/ip-allocated-from-pool`, which the controller removes.
    pub legacy_pool_annotation: bool,
}

/// What the controller wants a Service's load-balancer fields to be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// IPv4 first, as MetalLB writes them.
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
}

impl Desired {
    /// No address and no pool annotation.
    pub fn cleared() -> Self {
        Self::default()
    }
}

impl ServiceSnapshot {
    pub fn from_service(service: &Service) -> Self {
        let metadata = &service.metadata;
        let spec = service.spec.as_ref();
        let annotations = metadata.annotations.as_ref();
        let annotation = |key: &str| annotations.and_then(|all| all.get(key)).cloned();
        let status_ips = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
            .collect();
        Self {
            key: ServiceKey::new(
                metadata.namespace.clone().unwrap_or_default(),
                metadata.name.clone().unwrap_or_default(),
            ),
            created: metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            class: spec.and_then(|s| s.load_balancer_class.clone()),
            request: LoadBalancerRequest::from_service(service),
            status_ips,
            pool_annotation: annotation(Annotation::IpAllocatedFromPool.key()),
            legacy_pool_annotation: annotation(Annotation::IpAllocatedFromPool.legacy_key())
                .is_some(),
        }
    }

    /// Whether the Service already shows `desired` (address order aside).
    pub fn shows(&self, desired: &Desired) -> bool {
        let shown: BTreeSet<IpAddr> = self.status_ips.iter().copied().collect();
        let wanted: BTreeSet<IpAddr> = desired.ips.iter().copied().collect();
        shown == wanted
            && shown.len() == self.status_ips.len()
            && self.pool_annotation == desired.pool
            && !self.legacy_pool_annotation
    }

    /// Whether a load balancer left addresses or a pool annotation on the Service.
    pub fn has_load_balancer_state(&self) -> bool {
        !self.status_ips.is_empty() || self.pool_annotation.is_some() || self.legacy_pool_annotation
    }
}
