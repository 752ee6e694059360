use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Announces the addresses of the selected pools to BGP peers, with the route attributes to use.
/// Everything empty means: every pool, every Service, every node, every peer.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) lists repeat keys"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    doc = "Announces the addresses of the selected IPAddressPools over BGP.",
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
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "serviceSelectors and aggregationLength are mutually exclusive, can only be used together with default aggregationLength (32) and aggregationLengthV6 (128)",
    "rule": "!has(self.serviceSelectors) || self.serviceSelectors.size() == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))",
}]))]
pub struct BGPAdvertisementSpec {
    /// Prefix length IPv4 addresses are announced with; shorter than 32 aggregates them.
    #[serde(default = "default_aggregation_length")]
    #[schemars(range(min = 1))]
    pub aggregation_length: i32,
    /// Prefix length IPv6 addresses are announced with; shorter than 128 aggregates them.
    #[serde(
        default = "default_aggregation_length_v6",
        rename = "aggregationLengthV6"
    )]
    pub aggregation_length_v6: i32,
    /// LOCAL_PREF attribute of the announced routes (meaningful towards iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"), transform = without_minimum)]
    pub local_pref: Option<u32>,
    /// Communities of the announced routes: `65535:65282`, `large:1:2:3`, or the name of an
    /// alias defined in a Community object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Pools to announce, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools to announce, by their labels. With neither names nor selectors, every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Limits the announcements to Services with these labels (only without aggregation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub service_selectors: Vec<LabelSelector>,
    /// Nodes that announce (as next hops); empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to; empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}
schema::spec_may_be_absent!(BGPAdvertisementSpec);

impl Default for BGPAdvertisementSpec {
    fn default() -> Self {
        Self {
            aggregation_length: default_aggregation_length(),
            aggregation_length_v6: default_aggregation_length_v6(),
            local_pref: None,
            communities: Vec::new(),
            ip_address_pools: Vec::new(),
            ip_address_pool_selectors: Vec::new(),
            service_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
        }
    }
}

fn default_aggregation_length() -> i32 {
    32
}

fn default_aggregation_length_v6() -> i32 {
    128
}

/// MetalLB's schema declares LOCAL_PREF (an unsigned 32-bit attribute) as a plain `int32`, so
/// the `minimum: 0` schemars derives for `u32` is dropped to accept exactly what MetalLB accepts.
fn without_minimum(schema: &mut schemars::Schema) {
    schema.remove("minimum");
}

/// BGPAdvertisement has no status yet; the empty object keeps the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BGPAdvertisementStatus {}
