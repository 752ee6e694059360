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

/// `namespace/name`, without reading the rest of the Service.
pub fn service_key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// The creation time as RFC 3339 text, which sorts like the time.
pub fn created(service: &Service) -> String {
    service
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

impl ServiceSnapshot {
    pub fn from_service(service: &Service) -> Self {
        let metadata = &service.metadata;
        let spec = service.spec.as_ref();
        let annotations = metadata.annotations.as_ref();
        let annotation = |key: &str| annotations.and_then(|all| all.get(key)).cloned();
        let status_ips = ferrolb_api::service::ingress_ips(service);
        Self {
            key: service_key(service),
            created: created(service),
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

/// Drops what neither [`ServiceSnapshot`] nor a status write reads, so that holding every
/// Service of a large cluster stays cheap. `from_service` gives the same answer before and
/// after (tested).
pub fn slim_service(service: &mut Service) {
    let meta = &mut service.metadata;
    ferrolb_k8s::watch::drop_unread_metadata(meta);
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    if let Some(spec) = service.spec.as_mut() {
        spec.session_affinity = None;
        spec.session_affinity_config = None;
        spec.external_ips = None;
        spec.external_name = None;
        spec.health_check_node_port = None;
        spec.internal_traffic_policy = None;
        spec.publish_not_ready_addresses = None;
        spec.traffic_distribution = None;
        spec.allocate_load_balancer_node_ports = None;
        spec.load_balancer_source_ranges = None;
        for port in spec.ports.iter_mut().flatten() {
            port.name = None;
            port.node_port = None;
            port.target_port = None;
            port.app_protocol = None;
        }
    }
    if let Some(status) = service.status.as_mut() {
        status.conditions = None;
        for ingress in status
            .load_balancer
            .iter_mut()
            .flat_map(|lb| lb.ingress.iter_mut().flatten())
        {
            ingress.ports = None;
            ingress.hostname = None;
            ingress.ip_mode = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slimming_changes_no_decision_input() {
        let full: Service = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web"},
                "annotations": {"metallb.io/allow-shared-ip": "k", "metallb.io/ip-allocated-from-pool": "lan"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}],
                "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
            },
            "spec": {
                "type": "LoadBalancer", "loadBalancerClass": "c", "loadBalancerIP": "198.51.100.200",
                "clusterIP": "198.18.0.1", "clusterIPs": ["198.18.0.1", "2001:db8:c::1"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
                "externalTrafficPolicy": "Local", "selector": {"app": "web"},
                "sessionAffinity": "ClientIP", "healthCheckNodePort": 31000,
                "ports": [{"name": "http", "port": 80, "protocol": "UDP", "targetPort": 8080, "nodePort": 30080}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200", "ipMode": "VIP"}]},
                       "conditions": [{"type": "X", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "R", "message": "m"}]},
        }))
        .expect("a Service");
        let mut slim = full.clone();
        slim_service(&mut slim);
        assert_ne!(slim, full, "something was dropped");
        assert_eq!(
            ServiceSnapshot::from_service(&slim),
            ServiceSnapshot::from_service(&full)
        );
        assert_eq!(slim.metadata.uid, full.metadata.uid);
        assert_eq!(
            slim.metadata.resource_version,
            full.metadata.resource_version
        );
    }
}
