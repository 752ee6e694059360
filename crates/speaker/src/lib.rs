//! `ferrolb speaker`: one per node. It owns the speaker's runtime loop — watching Services,
//! EndpointSlices, Nodes and the L2 configuration, learning which speakers are alive from the
//! SWIM membership, and turning the L2 plan (the pure election in `ferrolb-announce`) into this
//! node's answers on the wire (the responder in `ferrolb-l2`), its ServiceL2Status objects,
//! `nodeAssigned` Events and metrics.
//!
//! The pure parts live here too and are tested without a cluster: reading Kubernetes objects
//! into the election's inputs ([`view`]), this node's share of a plan ([`local`]) and the
//! ServiceL2Status diff ([`status::status_ops`]).

pub mod bgp;
pub mod config_state;
pub mod local;
pub mod metrics;
pub mod peer_status;
mod run;
pub mod status;
pub mod view;

pub use run::{MembershipOptions, Options, run};
