//! Who announces what. This crate owns the decision of which node makes a Service's external
//! address reachable: today the L2 (ARP/NDP) node election; the BGP advertisement set (which
//! prefixes go to which peers, with which attributes) comes later (issue 6).
//!
//! It is pure: plain data in, plain data out, no Kubernetes client, no sockets, no clock. The
//! speaker feeds it what its watches and the membership layer saw — Services with their
//! addresses and endpoints ([`Service`]), Nodes ([`Node`]), the validated
//! [`L2Advertisement`](ferrolb_config::l2::L2Advertisement)s, the live speakers
//! ([`Speakers`]) — and [`desired_l2`] answers, for every Service address, the one node that
//! announces it and on which interfaces ([`Announcement`]), or why nobody does ([`Withheld`]).
//! Every speaker computes the same answer from the same view, so exactly one node answers for an
//! address in steady state without any coordination beyond the membership layer.
//!
//! # The L2 rules, with MetalLB's behaviour they follow
//!
//! For a Service address taken from pool `P`:
//!
//! 1. **Advertisements.** The L2Advertisements that apply are those whose pools include `P`
//!    (the config crate already resolved `ipAddressPools`, `ipAddressPoolSelectors` and "none
//!    given means every pool") and whose `serviceSelectors` match the Service's labels (none
//!    given: every Service). None covers `P`: [`Reason::NoAdvertisement`]; some cover `P` but
//!    select other Services: [`Reason::ServiceNotSelected`].
//! 2. **Endpoints.** At least one endpoint of the Service must be able to serve, whatever the
//!    traffic policy (MetalLB's `activeEndpointExists`): otherwise [`Reason::NoServingEndpoints`].
//!    An endpoint can serve when its `ready` condition is true or unset, or its `serving`
//!    condition is true (MetalLB's `EndpointCanServe`), so a terminating endpoint that still
//!    serves keeps the address.
//! 3. **Eligible nodes** are the nodes selected by the `nodeSelectors` of at least one applying
//!    advertisement (MetalLB's `poolMatchesNodeL2`; several advertisements add up), that have a
//!    live speaker ([`Speakers`]), whose `NetworkUnavailable` condition is not true, and that
//!    do not carry the `node.kubernetes.io/exclude-from-external-load-balancers` label (any
//!    value; MetalLB's `speakersForPool`, switchable as its `--ignore-exclude-lb` is:
//!    [`Options::ignore_exclude_lb`]). For `externalTrafficPolicy: Local` only nodes with an
//!    endpoint that can serve remain (MetalLB's `nodesWithEndpoint`). Unschedulable (cordoned)
//!    nodes stay eligible and so do NotReady nodes with a live speaker, as in MetalLB; see
//!    [`Node`] and [`Speakers`] for the one difference (no membership layer). No eligible node:
//!    [`Reason::NoEligibleNode`], with a tally of why each candidate was out.
//! 4. **The winner** is the eligible node with the highest preference score (the weights of the
//!    applying advertisements' `preferredNodeSelectors` that match it), and among equals the one
//!    whose SHA-256 of `"<node name>#<address>"` is smallest — MetalLB's election, byte for
//!    byte (see [`election`]). This is rendezvous hashing: balanced over many addresses; a node
//!    that goes away moves only the addresses it held, and a node that comes takes only the
//!    ones it now wins. When several Services share the address (`allow-shared-ip`), one node
//!    answers for all of them: the one eligible for the most of them ranks first, and a Service
//!    that node cannot serve is told so ([`Reason::SharedIpOnIneligibleNode`]).
//! 5. **Interfaces** are the union of the `interfaces` of the applying advertisements that
//!    select the winner; one of them naming none means every interface ([`Interfaces::All`]),
//!    as MetalLB's `ipAdvertisementFor`. Whether the node has those interfaces, and the default
//!    exclusions (`docker*`, `veth*`, …), are the responder's business.
//!
//! Two deliberate differences from MetalLB, both in the speaker's favour and both documented
//! where they happen: each address is elected on its own (MetalLB elects a dual-stack Service's
//! two addresses together under its first one), which keeps one node per address when Services
//! share an address; and without a membership layer NotReady nodes are left out (MetalLB keeps
//! announcing from them).

pub mod election;
mod model;
mod nodeset;
mod plan;

pub use election::{elect, metallb_ip_string, rank_key};
pub use ferrolb_ipam::ServiceKey;
pub use model::{
    EXCLUDE_FROM_LOAD_BALANCERS, Endpoint, Node, Options, Service, ServiceIp, Speakers,
    TrafficPolicy,
};
pub use plan::{Announcement, Interfaces, L2Plan, NodeTally, Reason, Withheld, desired_l2};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
