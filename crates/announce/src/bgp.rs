//! The BGP plan of one node: the routes it sends to each of its peers, with their attributes,
//! and for every Service the peers that receive its addresses or why none does. The rules are
//! in the crate documentation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::bgp::BgpAdvertisement;
use ferrolb_config::community::Community;
use ferrolb_config::peers::{Peer, PeerAsn};
use ferrolb_ipam::ServiceKey;
use ferrolb_labels::any_matches;
use ipnet::IpNet;

use crate::model::{EXCLUDE_FROM_LOAD_BALANCERS, Node, Options, Service, TrafficPolicy};

/// What one route carries to one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttributes {
    /// LOCAL_PREF: the highest one the advertisements sending the route set. Always `None` for
    /// an eBGP peer; `None` for an iBGP peer leaves the value to the session (the attribute is
    /// mandatory there: FRR sends its default, 100, where MetalLB's native speaker sent 0).
    pub local_pref: Option<u32>,
    /// Standard and large communities: every one that some advertisement sending the route sets.
    pub communities: BTreeSet<Community>,
}

/// How one Service stands on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceBgp {
    /// The peers that receive from this node a route made from one of the Service's addresses
    /// (MetalLB's ServiceBGPStatus `peers`). Empty: this node advertises none of them.
    pub peers: BTreeSet<String>,
    /// Each address of the Service that reaches no peer from this node, and why.
    pub withheld: BTreeMap<IpAddr, BgpReason>,
}

impl ServiceBgp {
    /// At least one address of the Service reaches at least one peer from this node.
    pub fn is_advertised(&self) -> bool {
        !self.peers.is_empty()
    }
}

/// Why this node sends no route for a Service address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpReason {
    /// No BGPAdvertisement covers the address's pool.
    NoAdvertisement { pool: String },
    /// BGPAdvertisements cover the pool, but their `serviceSelectors` select other Services.
    ServiceNotSelected { pool: String },
    /// The BGPAdvertisements that apply to the Service select other nodes (`nodeSelectors`;
    /// MetalLB's "notOwner").
    NodeNotSelected { pool: String },
    /// This node's `NetworkUnavailable` condition is true.
    NetworkUnavailable,
    /// This node carries [`EXCLUDE_FROM_LOAD_BALANCERS`] (MetalLB's
    /// "nodeLabeledExcludeBalancers").
    NodeExcluded,
    /// `Cluster` policy and no endpoint of the Service can serve, anywhere (MetalLB's
    /// "noEndpoints").
    NoServingEndpoints,
    /// `Local` policy and no endpoint of the Service on this node can serve (MetalLB's
    /// "noLocalEndpoints").
    NoLocalEndpoint,
    /// The address makes routes, but none reaches a peer of this node: no BGPPeer selects the
    /// node, or the advertisements name only peers that do not.
    NoPeer,
}

impl BgpReason {
    /// A short camelCase code for logs, metrics and Event reasons.
    pub fn code(&self) -> &'static str {
        match self {
            BgpReason::NoAdvertisement { .. } => "noAdvertisement",
            BgpReason::ServiceNotSelected { .. } => "serviceNotSelected",
            BgpReason::NodeNotSelected { .. } => "nodeNotSelected",
            BgpReason::NetworkUnavailable => "networkUnavailable",
            BgpReason::NodeExcluded => "nodeExcluded",
            BgpReason::NoServingEndpoints => "noServingEndpoints",
            BgpReason::NoLocalEndpoint => "noLocalEndpoint",
            BgpReason::NoPeer => "noPeer",
        }
    }
}

impl fmt::Display for BgpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BgpReason::NoAdvertisement { pool } => {
                write!(f, "no BGPAdvertisement advertises pool {pool:?}")
            }
            BgpReason::ServiceNotSelected { pool } => write!(
                f,
                "the BGPAdvertisements of pool {pool:?} do not select this Service (serviceSelectors)"
            ),
            BgpReason::NodeNotSelected { pool } => write!(
                f,
                "the BGPAdvertisements of pool {pool:?} for this Service do not select this node (nodeSelectors)"
            ),
            BgpReason::NetworkUnavailable => {
                f.write_str("the node's NetworkUnavailable condition is true")
            }
            BgpReason::NodeExcluded => {
                write!(f, "the node is labelled {EXCLUDE_FROM_LOAD_BALANCERS}")
            }
            BgpReason::NoServingEndpoints => {
                f.write_str("the Service has no endpoint that can serve")
            }
            BgpReason::NoLocalEndpoint => {
                f.write_str("externalTrafficPolicy is Local and no endpoint on this node can serve")
            }
            BgpReason::NoPeer => f.write_str("no BGP peer of this node receives its routes"),
        }
    }
}

/// One iBGP peer sent one prefix by advertisements that disagree on LOCAL_PREF. The route
/// carries the highest; MetalLB leaves this case undefined (see the crate documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalPrefConflict {
    pub peer: String,
    pub prefix: IpNet,
    /// The LOCAL_PREF of each advertisement sending the route; `None` for those setting none.
    pub values: BTreeSet<Option<u32>>,
}

impl fmt::Display for LocalPrefConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<String> = self
            .values
            .iter()
            .map(|v| v.map_or_else(|| "none".to_string(), |v| v.to_string()))
            .collect();
        write!(
            f,
            "BGPAdvertisements send {} to peer {:?} with different LOCAL_PREFs ({}); the highest is used",
            self.prefix,
            self.peer,
            values.join(", ")
        )
    }
}

/// What this node advertises over BGP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpPlan {
    /// Every BGPPeer this node sessions with (its `nodeSelectors` select the node), by name, with
    /// the routes to send it; a peer with nothing to send is there with no routes.
    pub peers: BTreeMap<String, BTreeMap<IpNet, RouteAttributes>>,
    /// Every Service with at least one address.
    pub services: BTreeMap<ServiceKey, ServiceBgp>,
    /// Sorted by peer, then prefix.
    pub local_pref_conflicts: Vec<LocalPrefConflict>,
}

/// Decides what `node` advertises to its BGP peers (see the crate documentation for the rules).
/// Only this node's view is needed: BGP mode has no election, each speaker computes its own
/// part. The answer depends on the inputs' contents only, not their order. A Service given twice
/// counts once (the least of its variants); a Service listing an address twice counts it once,
/// with the least pool name.
pub fn desired_bgp(
    services: &[Service],
    node: &Node,
    advertisements: &[BgpAdvertisement],
    peers: &BTreeMap<String, Peer>,
    options: &Options,
) -> BgpPlan {
    let sessions: Vec<Session> = peers
        .iter()
        .filter(|(_, peer)| any_matches(&peer.node_selectors, &node.labels))
        .map(|(name, peer)| Session {
            name,
            internal: is_internal(peer),
        })
        .collect();
    let advertisements: Vec<Prepared> = advertisements
        .iter()
        .map(|adv| Prepared {
            adv,
            selects_node: any_matches(&adv.node_selectors, &node.labels),
            targets: sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| adv.peers.is_empty() || adv.peers.contains(s.name))
                .map(|(index, _)| index)
                .collect(),
        })
        .collect();
    let mut by_pool: BTreeMap<&str, Vec<&Prepared>> = BTreeMap::new();
    for prepared in &advertisements {
        for pool in &prepared.adv.pools {
            by_pool.entry(pool.as_str()).or_default().push(prepared);
        }
    }
    let standing = if node.network_unavailable {
        Some(BgpReason::NetworkUnavailable)
    } else if !options.ignore_exclude_lb && node.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS) {
        Some(BgpReason::NodeExcluded)
    } else {
        None
    };

    let mut services: Vec<&Service> = services.iter().collect();
    services.sort();
    services.dedup_by(|later, first| later.key == first.key);

    // Every (session, prefix) pair with what the advertisements sending it set, and for every
    // Service address the prefixes it makes or why it makes none.
    let mut routes: BTreeMap<(usize, IpNet), Merged> = BTreeMap::new();
    let mut outcomes: Vec<(&Service, Vec<(IpAddr, AddressOutcome)>)> =
        Vec::with_capacity(services.len());
    for service in services {
        let mut ips: Vec<_> = service.ips.iter().collect();
        ips.sort();
        ips.dedup_by(|later, first| later.ip == first.ip);
        if ips.is_empty() {
            continue;
        }
        let endpoints = endpoint_rule(service, &node.name);
        let mut per_ip = Vec::with_capacity(ips.len());
        for service_ip in ips {
            let pool = service_ip.pool.as_str();
            let outcome = applying(service, pool, &by_pool)
                .and_then(|applying| match (&standing, &endpoints) {
                    (Some(reason), _) | (None, Err(reason)) => Err(reason.clone()),
                    (None, Ok(())) => Ok(applying),
                })
                .map(|applying| {
                    let mut prefixes = BTreeSet::new();
                    for prepared in applying {
                        let prefix = aggregate(service_ip.ip, prepared.adv);
                        prefixes.insert(prefix);
                        for &session in &prepared.targets {
                            let merged = routes.entry((session, prefix)).or_default();
                            merged
                                .communities
                                .extend(prepared.adv.communities.iter().copied());
                            merged.local_prefs.insert(prepared.adv.local_pref);
                        }
                    }
                    prefixes
                });
            per_ip.push((service_ip.ip, outcome));
        }
        outcomes.push((service, per_ip));
    }

    let mut plan = BgpPlan {
        peers: sessions
            .iter()
            .map(|s| (s.name.clone(), BTreeMap::new()))
            .collect(),
        ..BgpPlan::default()
    };
    let mut receivers: BTreeMap<IpNet, BTreeSet<&str>> = BTreeMap::new();
    for ((session, prefix), merged) in routes {
        let Some(session) = sessions.get(session) else {
            continue;
        };
        receivers.entry(prefix).or_default().insert(session.name);
        let local_pref = if session.internal {
            if merged.local_prefs.len() > 1 {
                plan.local_pref_conflicts.push(LocalPrefConflict {
                    peer: session.name.clone(),
                    prefix,
                    values: merged.local_prefs.clone(),
                });
            }
            merged.local_prefs.iter().max().copied().flatten()
        } else {
            None
        };
        if let Some(table) = plan.peers.get_mut(session.name) {
            table.insert(
                prefix,
                RouteAttributes {
                    local_pref,
                    communities: merged.communities,
                },
            );
        }
    }

    for (service, per_ip) in outcomes {
        let mut status = ServiceBgp::default();
        for (ip, outcome) in per_ip {
            let reached: BTreeSet<&str> = match outcome {
                Ok(prefixes) => prefixes
                    .iter()
                    .filter_map(|prefix| receivers.get(prefix))
                    .flatten()
                    .copied()
                    .collect(),
                Err(reason) => {
                    status.withheld.insert(ip, reason);
                    continue;
                }
            };
            if reached.is_empty() {
                status.withheld.insert(ip, BgpReason::NoPeer);
            }
            status.peers.extend(reached.into_iter().map(str::to_string));
        }
        plan.services.insert(service.key.clone(), status);
    }
    plan
}

/// The prefixes a Service address makes on this node, or why it makes none.
type AddressOutcome = Result<BTreeSet<IpNet>, BgpReason>;

/// A BGPPeer this node sessions with.
struct Session<'a> {
    name: &'a String,
    /// iBGP: LOCAL_PREF is sent.
    internal: bool,
}

/// Whether the session is iBGP: the peer's AS is the one we present to it (`localASN`, or else
/// `myASN`), as the peer sees it from our OPEN.
fn is_internal(peer: &Peer) -> bool {
    match peer.peer_asn {
        PeerAsn::Fixed(asn) => asn == peer.local_asn.unwrap_or(peer.my_asn),
        PeerAsn::Internal => true,
        PeerAsn::External => false,
    }
}

/// An advertisement with its node selectors evaluated for this node and its peers resolved.
struct Prepared<'a> {
    adv: &'a BgpAdvertisement,
    selects_node: bool,
    /// Indices of the sessions it sends to.
    targets: Vec<usize>,
}

/// What the advertisements sending one prefix to one peer set, before merging.
#[derive(Default)]
struct Merged {
    communities: BTreeSet<Community>,
    local_prefs: BTreeSet<Option<u32>>,
}

/// The advertisements that apply to an address of `service` from `pool` on this node.
fn applying<'a>(
    service: &Service,
    pool: &str,
    by_pool: &BTreeMap<&str, Vec<&'a Prepared<'a>>>,
) -> Result<Vec<&'a Prepared<'a>>, BgpReason> {
    let covering = by_pool.get(pool).map(Vec::as_slice).unwrap_or_default();
    if covering.is_empty() {
        return Err(BgpReason::NoAdvertisement {
            pool: pool.to_string(),
        });
    }
    let for_service: Vec<&Prepared> = covering
        .iter()
        .copied()
        .filter(|prepared| any_matches(&prepared.adv.service_selectors, &service.labels))
        .collect();
    if for_service.is_empty() {
        return Err(BgpReason::ServiceNotSelected {
            pool: pool.to_string(),
        });
    }
    let for_node: Vec<&Prepared> = for_service
        .into_iter()
        .filter(|prepared| prepared.selects_node)
        .collect();
    if for_node.is_empty() {
        return Err(BgpReason::NodeNotSelected {
            pool: pool.to_string(),
        });
    }
    Ok(for_node)
}

/// MetalLB's endpoint rule for BGP: `Local` needs an endpoint on this node that can serve,
/// `Cluster` one anywhere.
fn endpoint_rule(service: &Service, node: &str) -> Result<(), BgpReason> {
    let mut serving = service.endpoints.iter().filter(|e| e.can_serve());
    match service.traffic_policy {
        TrafficPolicy::Local => serving
            .any(|e| e.node.as_deref() == Some(node))
            .then_some(())
            .ok_or(BgpReason::NoLocalEndpoint),
        TrafficPolicy::Cluster => serving
            .next()
            .map(|_| ())
            .ok_or(BgpReason::NoServingEndpoints),
    }
}

/// The route `adv` makes for `ip`: the address masked to the advertisement's aggregation
/// length for its family. An IPv4-mapped IPv6 address counts as IPv4, as in MetalLB (Go's
/// `To4`). A length beyond the family's maximum (which the config refuses) is taken as the
/// maximum: a host route.
fn aggregate(ip: IpAddr, adv: &BgpAdvertisement) -> IpNet {
    let ip = ip.to_canonical();
    let length = match ip {
        IpAddr::V4(_) => adv.aggregation_length.min(32),
        IpAddr::V6(_) => adv.aggregation_length_v6.min(128),
    };
    IpNet::new(ip, length).map_or_else(|_| IpNet::from(ip), |net| net.trunc())
}
