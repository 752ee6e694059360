//! The L2 plan: for every Service address, the node that announces it and on which interfaces,
//! or why no node does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::l2::L2Advertisement;
use ferrolb_ipam::ServiceKey;
use ferrolb_labels::any_matches;

use crate::election::{key_for, metallb_ip_string};
use crate::model::{EXCLUDE_FROM_LOAD_BALANCERS, Node, Options, Service, Speakers, TrafficPolicy};
use crate::nodeset::NodeSet;

/// One Service address announced from one node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Announcement {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub node: String,
    pub interfaces: Interfaces,
}

/// Where the announcing node answers for an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interfaces {
    /// Every interface but the responder's default exclusions: an applying advertisement names
    /// no interface.
    All,
    /// Only these: the union of the applying advertisements' `interfaces`.
    Only(BTreeSet<String>),
}

impl Interfaces {
    /// `a ∪ b`, where [`Interfaces::All`] absorbs everything.
    pub fn union(self, other: Interfaces) -> Interfaces {
        match (self, other) {
            (Interfaces::Only(mut a), Interfaces::Only(b)) => {
                a.extend(b);
                Interfaces::Only(a)
            }
            _ => Interfaces::All,
        }
    }
}

/// A Service address no node announces, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Withheld {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub reason: Reason,
}

/// Why a Service address is not announced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// No L2Advertisement covers the address's pool.
    NoAdvertisement { pool: String },
    /// L2Advertisements cover the pool, but their `serviceSelectors` select other Services.
    ServiceNotSelected { pool: String },
    /// No endpoint of the Service can serve, whatever its traffic policy: MetalLB announces
    /// nothing for a Service without a backend.
    NoServingEndpoints,
    /// No node passes every rule; the tally says how the candidates fell out.
    NoEligibleNode(NodeTally),
    /// The address is shared with other Services and announced from `node`, which cannot serve
    /// this one (`Local` policy with no endpoint of this Service there): no node can serve
    /// every Service sharing the address, and the one serving most of them was chosen.
    SharedIpOnIneligibleNode { node: String },
}

impl Reason {
    /// A short camelCase code for logs, metrics and Event reasons.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoAdvertisement { .. } => "noAdvertisement",
            Reason::ServiceNotSelected { .. } => "serviceNotSelected",
            Reason::NoServingEndpoints => "noServingEndpoints",
            Reason::NoEligibleNode(_) => "noEligibleNode",
            Reason::SharedIpOnIneligibleNode { .. } => "sharedIpOnIneligibleNode",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoAdvertisement { pool } => {
                write!(f, "no L2Advertisement announces pool {pool:?}")
            }
            Reason::ServiceNotSelected { pool } => write!(
                f,
                "the L2Advertisements of pool {pool:?} do not select this Service (serviceSelectors)"
            ),
            Reason::NoServingEndpoints => f.write_str("the Service has no endpoint that can serve"),
            Reason::NoEligibleNode(tally) => write!(f, "no node can announce it: {tally}"),
            Reason::SharedIpOnIneligibleNode { node } => write!(
                f,
                "the address is shared and announced from node {node:?}, which has no endpoint of this Service"
            ),
        }
    }
}

/// How the nodes selected by the applying advertisements fell out of the election, each by the
/// first rule it failed, in the order they are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeTally {
    /// Nodes the applying advertisements' `nodeSelectors` select.
    pub selected: usize,
    /// Of those, without a live speaker (or not Ready, without a membership layer).
    pub not_live: usize,
    /// With the `NetworkUnavailable` condition.
    pub network_unavailable: usize,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub excluded: usize,
    /// `Local` policy, and no endpoint of the Service that can serve there.
    pub no_local_endpoint: usize,
}

impl fmt::Display for NodeTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.selected == 0 {
            return f.write_str("the L2Advertisements' nodeSelectors select no known node");
        }
        write!(f, "of {} selected nodes", self.selected)?;
        let parts = [
            (self.not_live, "without a live speaker"),
            (self.network_unavailable, "with NetworkUnavailable"),
            (self.excluded, "excluded from load balancers"),
            (self.no_local_endpoint, "without a local endpoint"),
        ];
        let mut first = true;
        for (count, what) in parts {
            if count > 0 {
                f.write_str(if first { ", " } else { "; " })?;
                write!(f, "{count} {what}")?;
                first = false;
            }
        }
        Ok(())
    }
}

/// What every speaker should announce: one [`Announcement`] per announced (Service, address)
/// and one [`Withheld`] per other, both sorted by address, then Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Plan {
    pub announcements: Vec<Announcement>,
    pub withheld: Vec<Withheld>,
}

impl L2Plan {
    /// What `node` answers for: each address it announces, with the interfaces of every Service
    /// holding it put together (a shared address is answered once, on all of them).
    pub fn ips_for(&self, node: &str) -> BTreeMap<IpAddr, Interfaces> {
        let mut owned: BTreeMap<IpAddr, Interfaces> = BTreeMap::new();
        for announcement in self.announcements.iter().filter(|a| a.node == node) {
            let interfaces = match owned.remove(&announcement.ip) {
                Some(held) => held.union(announcement.interfaces.clone()),
                None => announcement.interfaces.clone(),
            };
            owned.insert(announcement.ip, interfaces);
        }
        owned
    }

    /// The node announcing `ip`, if any.
    pub fn owner(&self, ip: IpAddr) -> Option<&str> {
        self.announcements
            .iter()
            .find(|a| a.ip == ip)
            .map(|a| a.node.as_str())
    }
}

/// Decides, for every address of every Service, which node announces it over ARP/NDP (see the
/// crate documentation for the rules). The answer depends on the inputs' contents only, not
/// their order: every speaker given the same view computes the same plan. A node or Service
/// given twice counts once (the least of its variants); a Service listing an address twice
/// counts it once, with the least pool name.
pub fn desired_l2(
    services: &[Service],
    nodes: &[Node],
    advertisements: &[L2Advertisement],
    speakers: &Speakers,
    options: &Options,
) -> L2Plan {
    let table = NodeTable::new(nodes, speakers, options);
    let advertisements: Vec<Prepared> = advertisements
        .iter()
        .map(|adv| Prepared::new(adv, &table))
        .collect();
    let mut by_pool: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, adv) in advertisements.iter().enumerate() {
        for pool in &adv.adv.pools {
            by_pool.entry(pool.as_str()).or_default().push(index);
        }
    }

    let mut services: Vec<&Service> = services.iter().collect();
    services.sort();
    services.dedup_by(|later, first| later.key == first.key);

    // Every (Service, pool) holding each address, Services in key order.
    let mut holders: BTreeMap<IpAddr, Vec<(&Service, &str)>> = BTreeMap::new();
    for service in &services {
        let mut ips: Vec<_> = service.ips.iter().collect();
        ips.sort();
        ips.dedup_by(|later, first| later.ip == first.ip);
        for ip in ips {
            holders
                .entry(ip.ip)
                .or_default()
                .push((service, ip.pool.as_str()));
        }
    }

    let mut plan = L2Plan::default();
    let mut local_cache: BTreeMap<&ServiceKey, NodeSet> = BTreeMap::new();
    for (ip, holding) in holders {
        let mut demands = Vec::with_capacity(holding.len());
        for (service, pool) in holding {
            match demand(
                service,
                pool,
                &table,
                &advertisements,
                &by_pool,
                &mut local_cache,
            ) {
                Ok(demand) => demands.push(demand),
                Err(reason) => plan.withheld.push(Withheld {
                    service: service.key.clone(),
                    ip,
                    reason,
                }),
            }
        }
        elect_for(ip, demands, &table, &advertisements, &mut plan);
    }
    plan.announcements
        .sort_by(|a, b| (a.ip, &a.service).cmp(&(b.ip, &b.service)));
    plan.withheld
        .sort_by(|a, b| (a.ip, &a.service).cmp(&(b.ip, &b.service)));
    plan
}

/// How a node stands before any advertisement or Service is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Usable,
    NotLive,
    NetworkUnavailable,
    Excluded,
}

/// The nodes in name order, each with its standing.
struct NodeTable<'a> {
    nodes: Vec<&'a Node>,
    standing: Vec<Standing>,
    usable: NodeSet,
}

impl<'a> NodeTable<'a> {
    fn new(nodes: &'a [Node], speakers: &Speakers, options: &Options) -> Self {
        let mut nodes: Vec<&Node> = nodes.iter().collect();
        nodes.sort();
        nodes.dedup_by(|later, first| later.name == first.name);
        let mut usable = NodeSet::empty(nodes.len());
        let standing = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let live = match speakers {
                    Speakers::Live(members) => members.contains(&node.name),
                    Speakers::MembershipDisabled => node.ready,
                };
                let standing = if !live {
                    Standing::NotLive
                } else if node.network_unavailable {
                    Standing::NetworkUnavailable
                } else if !options.ignore_exclude_lb
                    && node.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS)
                {
                    Standing::Excluded
                } else {
                    Standing::Usable
                };
                if standing == Standing::Usable {
                    usable.insert(index);
                }
                standing
            })
            .collect();
        Self {
            nodes,
            standing,
            usable,
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|node| node.name.as_str().cmp(name))
            .ok()
    }
}

/// An advertisement with its node selectors and preferences evaluated against every node.
struct Prepared<'a> {
    adv: &'a L2Advertisement,
    selected: NodeSet,
    /// Sum of the matching preference weights, per node index, and 0 for the nodes the
    /// advertisement does not select (its preferences apply only among those it selects);
    /// empty without preferences.
    scores: Vec<u64>,
}

impl<'a> Prepared<'a> {
    fn new(adv: &'a L2Advertisement, table: &NodeTable) -> Self {
        let mut selected = NodeSet::empty(table.nodes.len());
        let mut scores = if adv.preferred_nodes.is_empty() {
            Vec::new()
        } else {
            vec![0; table.nodes.len()]
        };
        for (index, node) in table.nodes.iter().enumerate() {
            if !any_matches(&adv.node_selectors, &node.labels) {
                continue;
            }
            selected.insert(index);
            if let Some(score) = scores.get_mut(index) {
                *score = adv
                    .preferred_nodes
                    .iter()
                    .filter(|(selector, _)| selector.matches(&node.labels))
                    .map(|(_, weight)| u64::from(*weight))
                    .sum();
            }
        }
        Self {
            adv,
            selected,
            scores,
        }
    }

    fn score(&self, node: usize) -> u64 {
        self.scores.get(node).copied().unwrap_or(0)
    }
}

/// One Service's claim on an address that passed the advertisement and endpoint rules.
struct Demand<'a> {
    service: &'a Service,
    /// Indices of the applying advertisements.
    advertisements: Vec<usize>,
    /// Nodes selected by at least one applying advertisement.
    selected: NodeSet,
    /// The Service's nodes with a serving endpoint, for `Local`.
    local: Option<NodeSet>,
    eligible: NodeSet,
}

fn demand<'a>(
    service: &'a Service,
    pool: &str,
    table: &NodeTable,
    advertisements: &[Prepared],
    by_pool: &BTreeMap<&str, Vec<usize>>,
    local_cache: &mut BTreeMap<&'a ServiceKey, NodeSet>,
) -> Result<Demand<'a>, Reason> {
    let covering = by_pool.get(pool).map(Vec::as_slice).unwrap_or_default();
    if covering.is_empty() {
        return Err(Reason::NoAdvertisement {
            pool: pool.to_string(),
        });
    }
    let applying: Vec<usize> = covering
        .iter()
        .copied()
        .filter(|&index| {
            advertisements.get(index).is_some_and(|prepared| {
                any_matches(&prepared.adv.service_selectors, &service.labels)
            })
        })
        .collect();
    if applying.is_empty() {
        return Err(Reason::ServiceNotSelected {
            pool: pool.to_string(),
        });
    }
    if !service.endpoints.iter().any(|e| e.can_serve()) {
        return Err(Reason::NoServingEndpoints);
    }

    let mut selected = NodeSet::empty(table.nodes.len());
    for prepared in applying.iter().filter_map(|&i| advertisements.get(i)) {
        selected.union_with(&prepared.selected);
    }
    let mut eligible = selected.clone();
    eligible.intersect_with(&table.usable);
    let local = match service.traffic_policy {
        TrafficPolicy::Cluster => None,
        TrafficPolicy::Local => {
            let local = local_cache
                .entry(&service.key)
                .or_insert_with(|| {
                    let mut local = NodeSet::empty(table.nodes.len());
                    for endpoint in service.endpoints.iter().filter(|e| e.can_serve()) {
                        if let Some(index) = endpoint.node.as_deref().and_then(|n| table.index(n)) {
                            local.insert(index);
                        }
                    }
                    local
                })
                .clone();
            eligible.intersect_with(&local);
            Some(local)
        }
    };
    Ok(Demand {
        service,
        advertisements: applying,
        selected,
        local,
        eligible,
    })
}

impl Demand<'_> {
    fn tally(&self, table: &NodeTable) -> NodeTally {
        let mut tally = NodeTally::default();
        for index in self.selected.iter() {
            tally.selected += 1;
            match table.standing.get(index) {
                Some(Standing::NotLive) | None => tally.not_live += 1,
                Some(Standing::NetworkUnavailable) => tally.network_unavailable += 1,
                Some(Standing::Excluded) => tally.excluded += 1,
                Some(Standing::Usable) => {
                    if self.local.as_ref().is_some_and(|l| !l.contains(index)) {
                        tally.no_local_endpoint += 1;
                    }
                }
            }
        }
        tally
    }

    /// The union of the `interfaces` of the applying advertisements that select `node`.
    fn interfaces(&self, node: usize, advertisements: &[Prepared]) -> Interfaces {
        let mut names = BTreeSet::new();
        for prepared in self
            .advertisements
            .iter()
            .filter_map(|&i| advertisements.get(i))
            .filter(|prepared| prepared.selected.contains(node))
        {
            if prepared.adv.interfaces.is_empty() {
                return Interfaces::All;
            }
            names.extend(prepared.adv.interfaces.iter().cloned());
        }
        Interfaces::Only(names)
    }
}

/// The node's rank for an address; greater wins. The hash is compared reversed (smaller wins,
/// as in MetalLB) and computed only when coverage and preference tie.
struct Rank {
    node: usize,
    /// How many of the Services holding the address the node can serve.
    coverage: usize,
    preference: u64,
    key: Option<[u8; 32]>,
}

/// Elects the node for `ip` among the demands' eligible nodes and records the outcome of each.
fn elect_for(
    ip: IpAddr,
    demands: Vec<Demand>,
    table: &NodeTable,
    advertisements: &[Prepared],
    plan: &mut L2Plan,
) {
    if demands.is_empty() {
        return;
    }
    let mut candidates = NodeSet::empty(table.nodes.len());
    let mut preferring = BTreeSet::new();
    for demand in demands.iter().filter(|d| !d.eligible.is_empty()) {
        candidates.union_with(&demand.eligible);
        preferring.extend(
            demand
                .advertisements
                .iter()
                .copied()
                .filter(|&i| advertisements.get(i).is_some_and(|p| !p.scores.is_empty())),
        );
    }

    let text = metallb_ip_string(ip);
    let key = |node: usize| {
        table
            .nodes
            .get(node)
            .map(|n| key_for(&n.name, text.as_bytes()))
            .unwrap_or([u8::MAX; 32])
    };
    let mut best: Option<Rank> = None;
    for node in candidates.iter() {
        let coverage = demands.iter().filter(|d| d.eligible.contains(node)).count();
        let preference = preferring
            .iter()
            .filter_map(|&i| advertisements.get(i))
            .map(|p| p.score(node))
            .sum();
        let mut rank = Rank {
            node,
            coverage,
            preference,
            key: None,
        };
        let wins = match &mut best {
            None => true,
            Some(held) => {
                match (rank.coverage, rank.preference).cmp(&(held.coverage, held.preference)) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => {
                        let held_key = *held.key.get_or_insert_with(|| key(held.node));
                        let own = *rank.key.insert(key(node));
                        // Ascending node order breaks an (impossible) hash tie: the held one stays.
                        own < held_key
                    }
                }
            }
        };
        if wins {
            best = Some(rank);
        }
    }

    let winner = best.and_then(|rank| table.nodes.get(rank.node).map(|n| (rank.node, n)));
    for demand in demands {
        let outcome = match winner {
            Some((index, node)) if demand.eligible.contains(index) => Ok(Announcement {
                service: demand.service.key.clone(),
                ip,
                node: node.name.clone(),
                interfaces: demand.interfaces(index, advertisements),
            }),
            Some((_, node)) if !demand.eligible.is_empty() => {
                Err(Reason::SharedIpOnIneligibleNode {
                    node: node.name.clone(),
                })
            }
            _ => Err(Reason::NoEligibleNode(demand.tally(table))),
        };
        match outcome {
            Ok(announcement) => plan.announcements.push(announcement),
            Err(reason) => plan.withheld.push(Withheld {
                service: demand.service.key.clone(),
                ip,
                reason,
            }),
        }
    }
}
