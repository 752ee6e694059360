use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Announces the addresses of the selected pools on the LAN (ARP for IPv4, NDP for IPv6).
/// Everything empty means: every pool, every Service, every node, every interface.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) lists repeat keys"
)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    doc = "Announces the addresses of the selected IPAddressPools over layer 2 (ARP / NDP).",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
pub struct L2AdvertisementSpec {
    /// Pools to announce, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools to announce, by their labels. With neither names nor selectors, every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Limits the announcements to Services with these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub service_selectors: Vec<LabelSelector>,
    /// Nodes that may announce; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub node_selectors: Vec<LabelSelector>,
    /// Weighted preferences among the eligible nodes, for choosing the announcing node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
    /// Host interfaces to announce from; empty means every interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}
schema::spec_may_be_absent!(L2AdvertisementSpec);

/// Nodes matching `preference` score `weight` more in the choice of the announcing node.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct PreferredNodeSelector {
    #[schemars(schema_with = "schema::atomic_label_selector")]
    pub preference: LabelSelector,
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
}

/// L2Advertisement has no status yet; the empty object keeps the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct L2AdvertisementStatus {}
