//! Who announces what. This crate owns the decision of which node makes a Service's external
//! address reachable: the L2 (ARP/NDP) node election, and the BGP advertisement set (which
//! prefixes each node sends to which peers, with which attributes).
//!
//! It is pure: plain data in, plain data out, no Kubernetes client, no sockets, no clock. The
//! speaker feeds it what its watches and the membership layer saw — Services with their
//! addresses and endpoints ([`Service`]), Nodes ([`Node`]), the validated
//! [`L2Advertisement`](ferrolb_config::l2::L2Advertisement)s, the live speakers
//! ([`Speakers`]) — and [`desired_l2`] answers, for every Service address, the one node that
//! announces it and on which interfaces ([`Announcement`]), or why nobody does ([`Withheld`]).
//! Every speaker computes the same answer from the same view, so exactly one node answers for an
//! address in steady state without any coordination beyond the membership layer. In BGP mode
//! there is no election: [`desired_bgp`] answers for one node, from that node, the validated
//! [`BgpAdvertisement`](ferrolb_config::bgp::BgpAdvertisement)s and
//! [`Peer`](ferrolb_config::peers::Peer)s, the routes it sends to each of its peers
//! ([`BgpPlan`]) and, for every Service, the peers that receive it or why none does
//! ([`BgpReason`]).
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
//!
//! # The BGP rules, with MetalLB's behaviour they follow
//!
//! Every node that may advertise an address does, and the routers spread the traffic over them
//! (ECMP), so each speaker computes only its own part (MetalLB's `bgpController`). For a Service
//! address taken from pool `P`, on this node:
//!
//! 1. **Advertisements.** The BGPAdvertisements that apply are those whose pools include `P`
//!    (resolved by the config crate as for L2), whose `serviceSelectors` match the Service's
//!    labels (none given: every Service) and whose `nodeSelectors` select this node (none
//!    given: every node) — MetalLB's `poolMatchesNodeBGP` and its per-Service filter of the
//!    pool's advertisements. None covers `P`: [`BgpReason::NoAdvertisement`]; some cover it
//!    but select other Services: [`BgpReason::ServiceNotSelected`]; those that select the
//!    Service select other nodes: [`BgpReason::NodeNotSelected`].
//! 2. **This node** advertises nothing while its `NetworkUnavailable` condition is true
//!    ([`BgpReason::NetworkUnavailable`]) or while it carries the
//!    `node.kubernetes.io/exclude-from-external-load-balancers` label, unless
//!    [`Options::ignore_exclude_lb`] ([`BgpReason::NodeExcluded`]); MetalLB's `ShouldAnnounce`.
//!    Its BGP sessions stay up either way, as in MetalLB (its `syncPeers` reads only the peers'
//!    node selectors). Ready and cordoned are not read: the speaker asking is on the node.
//! 3. **Endpoints.** `externalTrafficPolicy: Cluster` needs an endpoint of the Service that can
//!    serve, on any node ([`BgpReason::NoServingEndpoints`]); `Local` needs one on this node
//!    ([`BgpReason::NoLocalEndpoint`]), so the node withdraws its routes when its last local
//!    endpoint stops serving and the routers stop sending it traffic kube-proxy would drop
//!    (MetalLB's `hasHealthyEndpoint`, with the L2 rule for "can serve").
//! 4. **Prefix.** Each applying advertisement makes one route: the address masked to its
//!    `aggregationLength` (IPv4) or `aggregationLengthV6` (IPv6), so 203.0.113.5 with
//!    `aggregationLength: 24` gives 203.0.113.0/24, and the defaults 32 and 128 a host route
//!    (MetalLB's `SetBalancer`). A dual-stack Service makes routes of both families. The mask is
//!    applied whatever the traffic policy, as in MetalLB: with `Local`, a node that has an
//!    endpoint of one Service attracts the traffic for the whole aggregate. The config crate
//!    already refuses an aggregate shorter than a pool's largest CIDR block, and
//!    `serviceSelectors` with any aggregate.
//! 5. **Peers.** This node sessions with the BGPPeers whose `nodeSelectors` select it (none
//!    given: every node); each is a key of [`BgpPlan::peers`], with routes or without. An
//!    advertisement naming `peers` sends its routes to those of them only; naming none, to all
//!    of them (MetalLB's `MatchesPeer`). An address whose routes reach no peer:
//!    [`BgpReason::NoPeer`].
//! 6. **Attributes.** Communities, standard and large, go to every peer. LOCAL_PREF goes to iBGP
//!    peers only, as RFC 4271 wants and both MetalLB back ends do: a peer is iBGP when its
//!    `peerASN` equals the AS we present to it (`localASN`, else `myASN`), or with
//!    `dynamicASN: internal`.
//! 7. **One route per prefix and peer.** Several advertisements, or several Services sharing an
//!    address or an aggregate, may send one peer the same prefix. It gets one route with the
//!    union of their communities, as MetalLB's FRR back end merges them. For LOCAL_PREF MetalLB
//!    defines no answer (its FRR back end refuses the whole update, its native one keeps an
//!    arbitrary one) and its validation tries to rule the case out; where it still happens
//!    (advertisements with `serviceSelectors`, overlapping `nodeSelectors`) the route takes the
//!    highest and [`BgpPlan::local_pref_conflicts`] names it for the speaker to report.
//! 8. **Status.** A Service is listed for a peer ([`ServiceBgp::peers`], for ServiceBGPStatus)
//!    when this node sends that peer a prefix made from one of the Service's addresses —
//!    MetalLB's `activeAds`, which also credits a prefix to every Service that makes it.

mod bgp;
pub mod election;
mod model;
mod nodeset;
mod plan;

pub use bgp::{BgpPlan, BgpReason, LocalPrefConflict, RouteAttributes, ServiceBgp, desired_bgp};
pub use election::{elect, metallb_ip_string, rank_key};
pub use ferrolb_ipam::ServiceKey;
pub use model::{
    EXCLUDE_FROM_LOAD_BALANCERS, Endpoint, Node, Options, Service, ServiceIp, Speakers,
    TrafficPolicy,
};
pub use plan::{Announcement, Interfaces, L2Plan, NodeTally, Reason, Withheld, desired_l2};

#[cfg(test)]
mod bgp_proptests;
#[cfg(test)]
mod bgp_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
