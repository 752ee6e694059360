//! Properties of the election over random clusters, checked against a naive reference model
//! written from the rules (not from the implementation): determinism, one node per address,
//! only eligible winners, the reference's winner on unshared addresses, stability when a
//! losing node goes, and balance.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ferrolb_config::l2::L2Advertisement;
use ferrolb_labels::{Labels, any_matches};
use proptest::prelude::*;
use proptest::sample::subsequence;

use crate::tests::{ip, selector};
use crate::*;

const NODE_NAMES: [&str; 8] = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
const POOLS: [&str; 3] = ["a", "b", "c"];
/// Few enough that Services often share an address.
const ADDRESSES: [&str; 6] = [
    "198.51.100.200",
    "198.51.100.201",
    "198.51.100.202",
    "2001:db8:100::200",
    "2001:db8:100::201",
    "::ffff:198.51.100.9",
];

fn node() -> impl Strategy<Value = (Labels, bool, bool)> {
    (
        prop::option::of(prop::sample::select(vec!["1", "2", "3"])),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(rack, edge, excluded, ready, cut_off)| {
            let mut labels = Labels::new();
            if let Some(rack) = rack {
                labels.insert("rack".into(), rack.into());
            }
            if edge {
                labels.insert("role".into(), "edge".into());
            }
            if excluded {
                labels.insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), String::new());
            }
            (labels, ready, cut_off)
        })
}

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    (
        subsequence(NODE_NAMES.to_vec(), 1..=NODE_NAMES.len()),
        prop::collection::vec(node(), 8),
    )
        .prop_map(|(names, details)| {
            names
                .into_iter()
                .zip(details)
                .map(|(name, (labels, ready, cut_off))| Node {
                    name: name.into(),
                    labels,
                    ready,
                    network_unavailable: cut_off,
                })
                .collect()
        })
}

fn speakers() -> impl Strategy<Value = Speakers> {
    prop_oneof![
        1 => Just(Speakers::MembershipDisabled),
        4 => subsequence([NODE_NAMES.as_slice(), &["ghost"]].concat(), 0..=9)
            .prop_map(Speakers::live),
    ]
}

fn advertisement() -> impl Strategy<Value = L2Advertisement> {
    (
        subsequence(POOLS.to_vec(), 0..=3),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::option::of(prop::sample::select(vec!["1", "2", "3"])),
        prop::option::of((prop::sample::select(vec!["edge", "core"]), 1..=100u32)),
        prop::option::of((prop::sample::select(vec!["1", "2"]), 1..=100u32)),
        subsequence(vec!["eth0", "eth1", "eth2"], 0..=2),
    )
        .prop_map(|(pools, app, rack, role_pref, rack_pref, interfaces)| {
            let mut preferred = Vec::new();
            if let Some((role, weight)) = role_pref {
                preferred.push((selector(&[("role", role)]), weight));
            }
            if let Some((rack, weight)) = rack_pref {
                preferred.push((selector(&[("rack", rack)]), weight));
            }
            L2Advertisement {
                name: format!("adv-{pools:?}"),
                pools: pools.into_iter().map(String::from).collect(),
                service_selectors: app.map(|a| selector(&[("app", a)])).into_iter().collect(),
                node_selectors: rack.map(|r| selector(&[("rack", r)])).into_iter().collect(),
                preferred_nodes: preferred,
                interfaces: interfaces.into_iter().map(String::from).collect(),
            }
        })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        prop::option::of(prop::sample::select(
            [NODE_NAMES.as_slice(), &["ghost"]].concat(),
        )),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(node, ready, serving)| Endpoint {
            node: node.map(String::from),
            ready,
            serving,
        })
}

fn service(index: usize) -> impl Strategy<Value = Service> {
    (
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        subsequence(ADDRESSES.to_vec(), 1..=2),
        prop::collection::vec(prop::sample::select(POOLS.to_vec()), 2),
        prop::bool::weighted(0.5),
        prop::collection::vec(endpoint(), 0..5),
    )
        .prop_map(move |(app, addresses, pools, local, endpoints)| {
            let mut service = Service::new("ns", format!("svc-{index}"));
            if let Some(app) = app {
                service.labels.insert("app".into(), app.into());
            }
            service.ips = addresses
                .into_iter()
                .zip(pools)
                .map(|(address, pool)| ServiceIp::new(ip(address), pool))
                .collect();
            service.traffic_policy = if local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            };
            service.endpoints = endpoints;
            service
        })
}

fn services() -> impl Strategy<Value = Vec<Service>> {
    (1..10usize).prop_flat_map(|count| (0..count).map(service).collect::<Vec<_>>())
}

#[derive(Debug, Clone)]
struct Cluster {
    services: Vec<Service>,
    nodes: Vec<Node>,
    advertisements: Vec<L2Advertisement>,
    speakers: Speakers,
    options: Options,
}

impl Cluster {
    fn plan(&self) -> L2Plan {
        desired_l2(
            &self.services,
            &self.nodes,
            &self.advertisements,
            &self.speakers,
            &self.options,
        )
    }
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        services(),
        nodes(),
        prop::collection::vec(advertisement(), 0..4),
        speakers(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(services, nodes, advertisements, speakers, ignore)| Cluster {
                services,
                nodes,
                advertisements,
                speakers,
                options: Options {
                    ignore_exclude_lb: ignore,
                },
            },
        )
}

/// A permutation of `items` driven by `seed` (xorshift Fisher–Yates).
fn shuffled<T: Clone>(items: &[T], seed: &mut u64) -> Vec<T> {
    let mut items = items.to_vec();
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = usize::try_from(*seed % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
    items
}

// --- the reference model: the rules, written plainly ---------------------------------------

fn applying<'a>(cluster: &'a Cluster, service: &Service, pool: &str) -> Vec<&'a L2Advertisement> {
    cluster
        .advertisements
        .iter()
        .filter(|a| a.pools.contains(pool) && any_matches(&a.service_selectors, &service.labels))
        .collect()
}

/// The nodes the rules allow to announce `service`'s address from `pool`.
fn eligible<'a>(cluster: &'a Cluster, service: &Service, pool: &str) -> BTreeSet<&'a str> {
    let advs = applying(cluster, service, pool);
    if !service.endpoints.iter().any(Endpoint::can_serve) {
        return BTreeSet::new();
    }
    cluster
        .nodes
        .iter()
        .filter(|node| {
            let live = match &cluster.speakers {
                Speakers::Live(members) => members.contains(&node.name),
                Speakers::MembershipDisabled => node.ready,
            };
            let excluded = !cluster.options.ignore_exclude_lb
                && node.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS);
            let local_ok = service.traffic_policy == TrafficPolicy::Cluster
                || service
                    .endpoints
                    .iter()
                    .any(|e| e.can_serve() && e.node.as_deref() == Some(node.name.as_str()));
            live && !node.network_unavailable
                && !excluded
                && local_ok
                && advs
                    .iter()
                    .any(|a| any_matches(&a.node_selectors, &node.labels))
        })
        .map(|node| node.name.as_str())
        .collect()
}

/// The reference winner for an address: among the nodes eligible for at least one holder, the
/// one eligible for most holders, then with the highest sum of preference weights (each
/// applying advertisement counted once, for the nodes it selects), then with the smallest key.
fn reference_winner(cluster: &Cluster, ip: IpAddr, holding: &[(&Service, &str)]) -> Option<String> {
    let eligible: Vec<BTreeSet<&str>> = holding
        .iter()
        .map(|(service, pool)| eligible(cluster, service, pool))
        .collect();
    let mut advs: BTreeSet<usize> = BTreeSet::new();
    for ((service, pool), eligible) in holding.iter().zip(&eligible) {
        if eligible.is_empty() {
            continue;
        }
        for (index, adv) in cluster.advertisements.iter().enumerate() {
            if applying(cluster, service, pool)
                .iter()
                .any(|a| std::ptr::eq(*a, adv))
            {
                advs.insert(index);
            }
        }
    }
    let candidates: BTreeSet<&str> = eligible.iter().flatten().copied().collect();
    candidates
        .into_iter()
        .map(|name| {
            let coverage = eligible.iter().filter(|e| e.contains(name)).count();
            let labels = cluster
                .nodes
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.labels.clone())
                .unwrap_or_default();
            let preference: u64 = advs
                .iter()
                .map(|&i| &cluster.advertisements[i])
                .filter(|a| any_matches(&a.node_selectors, &labels))
                .flat_map(|a| &a.preferred_nodes)
                .filter(|(selector, _)| selector.matches(&labels))
                .map(|(_, weight)| u64::from(*weight))
                .sum();
            (
                coverage,
                preference,
                std::cmp::Reverse(rank_key(name, ip)),
                name,
            )
        })
        .max()
        .map(|(_, _, _, name)| name.to_string())
}

/// The holders of each address in the generated clusters (addresses are unique per Service).
fn holders(cluster: &Cluster) -> BTreeMap<IpAddr, Vec<(&Service, &str)>> {
    let mut holders: BTreeMap<IpAddr, Vec<(&Service, &str)>> = BTreeMap::new();
    for service in &cluster.services {
        for ip in &service.ips {
            holders
                .entry(ip.ip)
                .or_default()
                .push((service, ip.pool.as_str()));
        }
    }
    holders
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn input_order_does_not_change_the_answer(cluster in cluster(), seed in 1..u64::MAX) {
        let expected = cluster.plan();
        let mut seed = seed;
        let mut reordered = cluster.clone();
        reordered.services = shuffled(&cluster.services, &mut seed);
        for service in &mut reordered.services {
            service.ips = shuffled(&service.ips, &mut seed);
            service.endpoints = shuffled(&service.endpoints, &mut seed);
        }
        reordered.nodes = shuffled(&cluster.nodes, &mut seed);
        reordered.advertisements = shuffled(&cluster.advertisements, &mut seed);
        prop_assert_eq!(reordered.plan(), expected);
    }

    #[test]
    fn every_address_has_one_outcome_and_at_most_one_node(cluster in cluster()) {
        let plan = cluster.plan();
        let mut outcomes: BTreeMap<(IpAddr, &ServiceKey), usize> = BTreeMap::new();
        for (ip, service) in plan
            .announcements
            .iter()
            .map(|a| (a.ip, &a.service))
            .chain(plan.withheld.iter().map(|w| (w.ip, &w.service)))
        {
            *outcomes.entry((ip, service)).or_default() += 1;
        }
        let demanded: usize = cluster.services.iter().map(|s| s.ips.len()).sum();
        prop_assert_eq!(outcomes.len(), demanded);
        prop_assert!(outcomes.values().all(|&n| n == 1), "{:?}", outcomes);

        let mut owners: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
        for a in &plan.announcements {
            owners.entry(a.ip).or_default().insert(&a.node);
        }
        prop_assert!(owners.values().all(|o| o.len() == 1), "{:?}", owners);
    }

    #[test]
    fn the_winner_is_always_eligible_and_the_reference_winner(cluster in cluster()) {
        let plan = cluster.plan();
        for (ip, holding) in holders(&cluster) {
            let winner = reference_winner(&cluster, ip, &holding);
            prop_assert_eq!(plan.owner(ip), winner.as_deref(), "{}", ip);
            for (service, pool) in &holding {
                let eligible = eligible(&cluster, service, pool);
                let announced = plan
                    .announcements
                    .iter()
                    .find(|a| a.ip == ip && a.service == service.key);
                let withheld = plan
                    .withheld
                    .iter()
                    .find(|w| w.ip == ip && w.service == service.key);
                match (&winner, announced, withheld) {
                    (Some(node), Some(a), None) => {
                        prop_assert_eq!(&a.node, node);
                        let labels = &cluster.nodes.iter().find(|n| &n.name == node).ok_or_else(|| TestCaseError::fail("winner is no node"))?.labels;
                        let mut interfaces = Interfaces::Only(BTreeSet::new());
                        for adv in applying(&cluster, service, pool) {
                            if any_matches(&adv.node_selectors, labels) {
                                interfaces = interfaces.union(if adv.interfaces.is_empty() {
                                    Interfaces::All
                                } else {
                                    Interfaces::Only(adv.interfaces.iter().cloned().collect())
                                });
                            }
                        }
                        prop_assert_eq!(&a.interfaces, &interfaces);
                        prop_assert!(eligible.contains(node.as_str()), "{} not in {:?}", node, eligible);
                    }
                    (Some(node), None, Some(w)) if !eligible.is_empty() => {
                        prop_assert!(!eligible.contains(node.as_str()));
                        prop_assert_eq!(
                            &w.reason,
                            &Reason::SharedIpOnIneligibleNode { node: node.clone() }
                        );
                    }
                    (_, None, Some(w)) => {
                        prop_assert!(eligible.is_empty(), "{:?} but {:?}", w, eligible);
                        prop_assert!(
                            !matches!(w.reason, Reason::SharedIpOnIneligibleNode { .. }),
                            "{:?}", w
                        );
                    }
                    other => prop_assert!(false, "{} {}: {:?}", ip, service.key, other),
                }
            }
        }
    }

    #[test]
    fn removing_a_node_moves_only_what_it_announced(cluster in cluster(), pick in any::<prop::sample::Index>(), from_membership_only in any::<bool>()) {
        let before = cluster.plan();
        let gone = pick.get(&cluster.nodes).name.clone();
        let mut after = cluster.clone();
        if let Speakers::Live(members) = &mut after.speakers {
            members.remove(&gone);
        }
        if !from_membership_only || after.speakers == Speakers::MembershipDisabled {
            after.nodes.retain(|n| n.name != gone);
        }
        let after = after.plan();
        for a in before.announcements.iter().filter(|a| a.node != gone) {
            prop_assert!(after.announcements.contains(a), "{:?} moved when {} went", a, gone);
        }
        prop_assert!(after.announcements.iter().all(|a| a.node != gone));
    }

    #[test]
    fn elect_is_metallbs_sort_then_first(names in subsequence(NODE_NAMES.to_vec(), 0..=8), address in prop::sample::select(ADDRESSES.to_vec())) {
        let ip = ip(address);
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| rank_key(n, ip));
        prop_assert_eq!(elect(ip, names.iter().copied()), sorted.first().copied());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// 1,000 addresses over 5 nodes: none takes more than 30% (the mean is 20%, the standard
    /// deviation about 1.3 points).
    #[test]
    fn many_addresses_spread_evenly(
        names in prop::collection::btree_set("[a-z][a-z0-9-]{0,20}", 5),
        start in any::<u32>(),
        v6 in any::<bool>(),
    ) {
        let nodes: Vec<Node> = names.iter().map(Node::new).collect();
        let services: Vec<Service> = (0..1000u32)
            .map(|i| {
                let address = start.wrapping_add(i);
                let ip = if v6 {
                    IpAddr::V6(Ipv4Addr::from(address).to_ipv6_compatible())
                } else {
                    IpAddr::V4(Ipv4Addr::from(address))
                };
                let mut service = Service::new("ns", format!("svc-{i}"));
                service.ips = vec![ServiceIp::new(ip, "a")];
                service.endpoints = vec![Endpoint::ready_on("anywhere")];
                service
            })
            .collect();
        let plan = desired_l2(
            &services,
            &nodes,
            &[crate::tests::advertisement("all", &["a"])],
            &Speakers::live(names.iter().cloned()),
            &Options::default(),
        );
        prop_assert_eq!(plan.announcements.len(), 1000);
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &plan.announcements {
            *per_node.entry(&a.node).or_default() += 1;
        }
        prop_assert_eq!(per_node.len(), 5);
        prop_assert!(per_node.values().all(|&n| n <= 300), "{:?}", per_node);
    }
}
