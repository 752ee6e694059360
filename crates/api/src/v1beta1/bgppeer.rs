use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;
/// The same status in both versions: the sessions do not depend on how the spec is spelled.
pub use crate::v1beta2::{BGPPeerNodeStatus, BGPPeerStatus};

/// A BGP neighbour, in the deprecated v1beta1 shape: served (and converted to and from the
/// v1beta2 storage version) so that existing manifests keep applying.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) lists repeat keys"
)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    storage = false,
    deprecated = "v1beta1 is deprecated, please use v1beta2",
    doc = "A BGP neighbour of the speakers (deprecated version; use v1beta2).",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
pub struct BGPPeerSpec {
    /// Local AS number.
    #[serde(rename = "myASN")]
    #[schemars(range(max = 4294967295_u32), extend("format" = "int64"))]
    pub my_asn: u32,
    /// AS number the peer must present.
    #[serde(rename = "peerASN")]
    #[schemars(range(max = 4294967295_u32), extend("format" = "int64"))]
    pub peer_asn: u32,
    /// Address to connect to.
    pub peer_address: String,
    /// Local address to connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// TCP port to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16384), transform = schema::without_format)]
    pub peer_port: Option<u16>,
    /// Requested hold time, a Go duration such as `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Requested keepalive time, a Go duration such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// BGP identifier to send instead of the node's.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "routerID")]
    pub router_id: Option<String>,
    /// Nodes that peer; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<NodeSelector>,
    /// TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of the BFDProfile for a BFD session alongside the BGP session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Whether the peer may be more than one hop away.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "ebgpMultiHop"
    )]
    pub ebgp_multi_hop: Option<bool>,
}
schema::spec_may_be_absent!(BGPPeerSpec);

/// v1beta1's own node selector: a label selector whose expressions must list values.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<MatchExpression>,
}

/// One requirement of a v1beta1 [`NodeSelector`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MatchExpression {
    pub key: String,
    pub operator: String,
    #[schemars(length(min = 1))]
    pub values: Vec<String>,
}
