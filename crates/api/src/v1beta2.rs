//! `metallb.io/v1beta2`: BGPPeer, the storage version of that kind.

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// A BGP neighbour of the speakers. The peer is given by `peerAddress` or, for unnumbered
/// peering, `interface`; its AS by `peerASN` or `dynamicASN`. That exactly one of each is set
/// is checked by the config crate, not by the schema (as in MetalLB).
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) lists repeat keys"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    doc = "A BGP neighbour of the speakers.",
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
    /// AS number the peer must present; exclusive with `dynamicASN`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "peerASN")]
    #[schemars(range(max = 4294967295_u32), extend("format" = "int64"))]
    pub peer_asn: Option<u32>,
    /// Accept whatever AS the peer presents, as long as it is (or is not) our own.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "dynamicASN"
    )]
    pub dynamic_asn: Option<DynamicAsn>,
    /// AS number announced to this peer instead of `myASN` (BGP `local-as`).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "localASN")]
    #[schemars(range(min = 1, max = 4294967295_u32), extend("format" = "int64"))]
    pub local_asn: Option<u32>,
    /// Address to connect to; exclusive with `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Node interface for unnumbered peering; exclusive with `peerAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Local address to connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// TCP port to connect to.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 16384), transform = schema::without_format)]
    pub peer_port: u16,
    /// Requested hold time, a Go duration such as `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Requested keepalive time, a Go duration such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Time between connection attempts, a Go duration of whole seconds in 1s..=65535s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "message": "connect time should be between 1 seconds to 65535",
            "rule": "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535",
        },
        {
            "message": "connect time should contain a whole number of seconds",
            "rule": "duration(self).getMilliseconds() % 1000 == 0",
        },
    ]))]
    pub connect_time: Option<String>,
    /// BGP identifier to send instead of the node's.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "routerID")]
    pub router_id: Option<String>,
    /// Nodes that peer; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::atomic_label_selectors")]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password, in clear; exclusive with `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A `kubernetes.io/basic-auth` Secret, in ferrolb's namespace, whose `password` key holds
    /// the TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub password_secret: Option<SecretReference>,
    /// Name of the BFDProfile for a BFD session alongside the BGP session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Whether to keep forwarding along known routes while a session restarts; fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "message": "EnableGracefulRestart cannot be changed after creation",
        "rule": "self == oldSelf",
    }]))]
    pub enable_graceful_restart: Option<bool>,
    /// Whether the peer may be more than one hop away.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "ebgpMultiHop"
    )]
    pub ebgp_multi_hop: Option<bool>,
    /// Host VRF whose interfaces reach the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Deprecated in favour of `dualStackAddressFamily`: one session per address family.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    /// Exchange both address families over the session, whatever its own family.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}
schema::spec_may_be_absent!(BGPPeerSpec);

impl Default for BGPPeerSpec {
    fn default() -> Self {
        Self {
            my_asn: 0,
            peer_asn: None,
            dynamic_asn: None,
            local_asn: None,
            peer_address: None,
            interface: None,
            source_address: None,
            peer_port: default_peer_port(),
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: None,
            node_selectors: Vec::new(),
            password: None,
            password_secret: None,
            bfd_profile: None,
            enable_graceful_restart: None,
            ebgp_multi_hop: None,
            vrf: None,
            disable_mp: false,
            dual_stack_address_family: false,
        }
    }
}

/// The BGP port, and v1beta2's default for `peerPort`.
pub const DEFAULT_BGP_PORT: u16 = 179;

fn default_peer_port() -> u16 {
    DEFAULT_BGP_PORT
}

/// Which peer AS numbers `dynamicASN` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    /// iBGP: the peer's AS must equal `myASN`.
    Internal,
    /// eBGP: the peer's AS must differ from `myASN`.
    External,
}

/// What the speakers see of their sessions with this peer. MetalLB leaves this object empty;
/// ferrolb lists one entry per node that should peer, written by that node's speaker alone
/// (server-side apply into a list keyed by `node`, so speakers never overwrite each other).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BGPPeerStatus {
    /// One entry per node whose speaker should peer with this router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub nodes: Vec<BGPPeerNodeStatus>,
}

/// One node's session with the peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerNodeStatus {
    /// The node whose speaker writes this entry.
    pub node: String,
    /// The BGP session's state (RFC 4271): `Idle`, `Connect`, `Active`, `OpenSent`,
    /// `OpenConfirm` or `Established`; `NotPeering` when the node should peer but cannot
    /// (`message` says why).
    pub session: String,
    /// The BFD session's state (`Up`, `Down`, `Init`, `AdminDown`; `Unavailable` when the
    /// speaker could not open BFD's port), when the peer names a BFDProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
    /// When `session` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why the node does not peer, why the session last went down, or which routes it cannot
    /// carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
