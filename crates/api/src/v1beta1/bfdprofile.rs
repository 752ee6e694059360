use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Settings of a BFD session, referenced by name from BGPPeers. Unset fields take the BFD
/// implementation's defaults (300 ms intervals, multiplier 3, echo 50 ms).
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) lists repeat keys"
)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    namespaced,
    status = "BFDProfileStatus",
    derive = "PartialEq",
    doc = "Settings of the BFD sessions that BGPPeers can refer to.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
pub struct BFDProfileSpec {
    /// Minimum interval, in milliseconds, at which this end can receive control packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000), extend("format" = "int32"))]
    pub receive_interval: Option<u32>,
    /// Minimum interval, in milliseconds, at which this end wants to send control packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000), extend("format" = "int32"))]
    pub transmit_interval: Option<u32>,
    /// How many missed packets declare the session down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255), extend("format" = "int32"))]
    pub detect_multiplier: Option<u32>,
    /// Minimum interval, in milliseconds, at which this end can receive echo packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000), extend("format" = "int32"))]
    pub echo_interval: Option<u32>,
    /// Whether to send echo packets (single-hop sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Whether to wait for the peer's control packets instead of starting the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Lowest TTL accepted on incoming control packets (multi-hop sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254), extend("format" = "int32"))]
    pub minimum_ttl: Option<u32>,
}
schema::spec_may_be_absent!(BFDProfileSpec);

/// BFDProfile has no status yet; the empty object keeps the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BFDProfileStatus {}
