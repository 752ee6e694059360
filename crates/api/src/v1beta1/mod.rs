//! `metallb.io/v1beta1`: every kind, including the deprecated but still served BGPPeer version.

mod bfdprofile;
mod bgpadvertisement;
mod bgppeer;
mod community;
mod ipaddresspool;
mod l2advertisement;
mod status;

pub use bfdprofile::{BFDProfile, BFDProfileSpec, BFDProfileStatus};
pub use bgpadvertisement::{BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus};
pub use bgppeer::{
    BGPPeer, BGPPeerNodeStatus, BGPPeerSpec, BGPPeerStatus, MatchExpression, NodeSelector,
};
pub use community::{Community, CommunityAlias, CommunitySpec, CommunityStatus};
pub use ipaddresspool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use l2advertisement::{
    L2Advertisement, L2AdvertisementSpec, L2AdvertisementStatus, PreferredNodeSelector,
};
pub use status::{
    ConfigurationResult, ConfigurationState, ConfigurationStateFields, ConfigurationStateStatus,
    InterfaceInfo, ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};
