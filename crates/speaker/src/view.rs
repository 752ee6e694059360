//! From Kubernetes objects to the election's plain inputs: which Services the speaker serves,
//! their addresses with the pool each came from, their endpoints, and the Nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_announce::{Endpoint, Node, Service, ServiceIp, ServiceKey, TrafficPolicy};
use ferrolb_api::service::ingress_ips;
use ferrolb_ipam::Pools;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Whether the speaker serves this Service: `type: LoadBalancer` and of the speaker's class
/// (`None`: Services without a class, as MetalLB without `--lb-class`).
pub fn is_served(service: &core::Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .filter(|c| !c.is_empty())
            == lb_class
}

/// The key of the Service an EndpointSlice belongs to, if it names one.
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let namespace = slice.metadata.namespace.as_deref()?;
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(ServiceKey::new(namespace, name.as_str()))
}

/// The endpoints of one EndpointSlice, as the election reads them.
pub fn slice_endpoints(slice: &EndpointSlice) -> Vec<Endpoint> {
    slice
        .endpoints
        .iter()
        .flatten()
        .map(|endpoint| {
            let conditions = endpoint.conditions.as_ref();
            Endpoint {
                node: endpoint.node_name.clone(),
                ready: conditions.and_then(|c| c.ready),
                serving: conditions.and_then(|c| c.serving),
            }
        })
        .collect()
}

/// A Service address that no served pool holds: nobody announces it (MetalLB's speaker finds
/// the pool by address in the same way, and ignores such an address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unpooled {
    pub service: ServiceKey,
    pub ip: IpAddr,
}

/// The election's view of a served Service. Addresses come from `status.loadBalancer.ingress`
/// (what the controller assigned); each is matched to the served pool whose ranges hold it.
/// Addresses in no pool are returned apart, for the log.
pub fn service_view(
    service: &core::Service,
    endpoints: impl IntoIterator<Item = Endpoint>,
    pools: &Pools,
) -> (Service, Vec<Unpooled>) {
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut view = Service::new(namespace, name);
    view.labels = service.metadata.labels.clone().unwrap_or_default();
    view.traffic_policy = match service
        .spec
        .as_ref()
        .and_then(|spec| spec.external_traffic_policy.as_deref())
    {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    view.endpoints = endpoints.into_iter().collect();
    let mut unpooled = Vec::new();
    let ips: BTreeSet<IpAddr> = ingress_ips(service).into_iter().collect();
    for ip in ips {
        match pools
            .iter()
            .find(|pool| pool.ranges.iter().any(|range| range.contains(ip)))
        {
            Some(pool) => view.ips.push(ServiceIp::new(ip, pool.name.clone())),
            None => unpooled.push(Unpooled {
                service: view.key.clone(),
                ip,
            }),
        }
    }
    (view, unpooled)
}

/// The election's view of a Node: labels, `Ready`, `NetworkUnavailable`.
pub fn node_view(node: &core::Node) -> Node {
    let mut view = Node::new(node.metadata.name.clone().unwrap_or_default());
    view.labels = node.metadata.labels.clone().unwrap_or_default();
    let conditions = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref());
    let is_true = |kind: &str| {
        conditions.is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
        })
    };
    view.ready = is_true("Ready");
    view.network_unavailable = is_true("NetworkUnavailable");
    view
}

/// A Node's InternalIP addresses, in the order the Node lists them.
pub fn internal_ips(node: &core::Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|status| status.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|address| address.type_ == "InternalIP")
        .filter_map(|address| address.address.parse().ok())
        .collect()
}

/// Keeps of a Service only what the speaker reads, so that a thousand Services cost little.
pub fn slim_service(service: &mut core::Service) {
    let meta = &mut service.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    if let Some(spec) = service.spec.take() {
        service.spec = Some(core::ServiceSpec {
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            external_traffic_policy: spec.external_traffic_policy,
            ..core::ServiceSpec::default()
        });
    }
    if let Some(status) = service.status.as_mut() {
        status.conditions = None;
    }
}

/// Keeps of an EndpointSlice its Service label and each endpoint's node and conditions.
pub fn slim_slice(slice: &mut EndpointSlice) {
    let meta = &mut slice.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    slice.ports = None;
    for endpoint in slice.endpoints.iter_mut().flatten() {
        endpoint.addresses = Vec::new();
        endpoint.target_ref = None;
        endpoint.hints = None;
        endpoint.hostname = None;
        endpoint.deprecated_topology = None;
        endpoint.zone = None;
    }
}

/// Keeps of a Node its labels, conditions (type and status) and addresses.
pub fn slim_node(node: &mut core::Node) {
    let meta = &mut node.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    node.spec = None;
    if let Some(status) = node.status.take() {
        node.status = Some(core::NodeStatus {
            addresses: status.addresses,
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .map(|c| core::NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..core::NodeCondition::default()
                    })
                    .collect()
            }),
            ..core::NodeStatus::default()
        });
    }
}

/// Endpoints of every served Service, gathered from its EndpointSlices (by slice key, so a
/// slice that changes or goes replaces what it gave).
#[derive(Debug, Default)]
pub struct EndpointIndex {
    by_service: BTreeMap<ServiceKey, BTreeMap<String, Vec<Endpoint>>>,
}

impl EndpointIndex {
    /// Records a slice (replacing what it said before); returns the Service it belongs to.
    pub fn upsert(&mut self, slice: &EndpointSlice) -> Option<ServiceKey> {
        let service = slice_service(slice)?;
        let key = slice.metadata.name.clone().unwrap_or_default();
        self.by_service
            .entry(service.clone())
            .or_default()
            .insert(key, slice_endpoints(slice));
        Some(service)
    }

    /// Forgets a slice; returns the Service it belonged to.
    pub fn remove(&mut self, slice: &EndpointSlice) -> Option<ServiceKey> {
        let service = slice_service(slice)?;
        let key = slice.metadata.name.clone().unwrap_or_default();
        if let Some(slices) = self.by_service.get_mut(&service) {
            slices.remove(&key);
            if slices.is_empty() {
                self.by_service.remove(&service);
            }
        }
        Some(service)
    }

    /// Every endpoint of the Service's slices.
    pub fn endpoints(&self, service: &ServiceKey) -> impl Iterator<Item = Endpoint> + '_ {
        self.by_service
            .get(service)
            .into_iter()
            .flat_map(|slices| slices.values().flatten().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_ipam::{IpRange, Pool};
    use serde_json::json;

    fn service(value: serde_json::Value) -> core::Service {
        serde_json::from_value(value).expect("a valid Service")
    }

    fn pools() -> Pools {
        let range: IpRange = "198.51.100.200-198.51.100.209".parse().expect("a range");
        let v6: IpRange = "2001:db8:100::200/124".parse().expect("a CIDR");
        Pools::new(vec![Pool::new("lan", vec![range, v6])]).expect("pools")
    }

    #[test]
    fn serves_load_balancers_of_its_class_only() {
        let lb = |class: Option<&str>| {
            service(json!({"metadata": {"name": "a", "namespace": "n"},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": class}}))
        };
        assert!(is_served(&lb(None), None));
        assert!(!is_served(&lb(Some("other")), None));
        assert!(is_served(&lb(Some("mine")), Some("mine")));
        assert!(!is_served(&lb(None), Some("mine")));
        let cluster_ip = service(json!({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}}));
        assert!(!is_served(&cluster_ip, None));
        assert!(!is_served(
            &service(json!({"metadata": {"name": "a"}})),
            None
        ));
    }

    #[test]
    fn addresses_get_the_pool_that_holds_them_and_others_are_set_apart() {
        let svc = service(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "198.51.100.201"}, {"ip": "2001:db8:100::20f"},
                {"ip": "203.0.113.9"}, {"hostname": "lb.example"}, {"ip": "not an ip"}
            ]}}
        }));
        let (view, unpooled) = service_view(&svc, [Endpoint::ready_on("node-1")], &pools());
        assert_eq!(view.key, ServiceKey::new("shop", "web"));
        assert_eq!(view.traffic_policy, TrafficPolicy::Local);
        assert_eq!(view.labels.get("app").map(String::as_str), Some("web"));
        let ips: Vec<String> = view
            .ips
            .iter()
            .map(|ip| format!("{}@{}", ip.ip, ip.pool))
            .collect();
        assert_eq!(ips, ["198.51.100.201@lan", "2001:db8:100::20f@lan"]);
        assert_eq!(
            unpooled,
            [Unpooled {
                service: ServiceKey::new("shop", "web"),
                ip: "203.0.113.9".parse().expect("ip")
            }]
        );
        assert_eq!(view.endpoints, [Endpoint::ready_on("node-1")]);
    }

    #[test]
    fn nodes_read_ready_and_network_conditions() {
        let node: core::Node = serde_json::from_value(json!({
            "metadata": {"name": "node-1", "labels": {"zone": "a"}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "NetworkUnavailable", "status": "True"}
                ],
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "198.51.100.11"},
                    {"type": "InternalIP", "address": "2001:db8:100::11"}
                ]
            }
        }))
        .expect("a Node");
        let view = node_view(&node);
        assert_eq!(view.name, "node-1");
        assert!(!view.ready);
        assert!(view.network_unavailable);
        assert_eq!(view.labels.get("zone").map(String::as_str), Some("a"));
        let ips: Vec<String> = internal_ips(&node)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["198.51.100.11", "2001:db8:100::11"]);
        let bare: core::Node =
            serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("a Node");
        assert!(!node_view(&bare).ready);
        assert!(internal_ips(&bare).is_empty());
    }

    #[test]
    fn endpoint_index_replaces_and_forgets_slices() {
        let slice = |name: &str, nodes: &[&str], ready: bool| -> EndpointSlice {
            let endpoints: Vec<_> = nodes
                .iter()
                .map(|node| {
                    json!({"addresses": ["203.0.113.130"], "nodeName": node,
                    "conditions": {"ready": ready}})
                })
                .collect();
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop",
                    "labels": {SERVICE_NAME_LABEL: "web"}},
                "addressType": "IPv4",
                "endpoints": endpoints,
            }))
            .expect("a slice")
        };
        let key = ServiceKey::new("shop", "web");
        let mut index = EndpointIndex::default();
        assert_eq!(
            index.upsert(&slice("a", &["node-1"], true)),
            Some(key.clone())
        );
        index.upsert(&slice("b", &["node-2"], true));
        index.upsert(&slice("a", &["node-3"], false));
        let nodes: Vec<_> = index
            .endpoints(&key)
            .map(|e| (e.node.unwrap_or_default(), e.ready))
            .collect();
        assert_eq!(
            nodes,
            [
                ("node-3".to_owned(), Some(false)),
                ("node-2".to_owned(), Some(true))
            ]
        );
        index.remove(&slice("a", &[], true));
        index.remove(&slice("b", &[], true));
        assert_eq!(index.endpoints(&key).count(), 0);
        let orphan: EndpointSlice = serde_json::from_value(
            json!({"metadata": {"name": "x", "namespace": "shop"}, "addressType": "IPv4", "endpoints": []}),
        )
        .expect("a slice");
        assert_eq!(index.upsert(&orphan), None);
    }
}
