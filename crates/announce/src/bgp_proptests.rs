//! Properties of the BGP plan over random configurations, checked against a naive reference
//! written from the rules (one flat loop, its own masking arithmetic): the routes every peer
//! gets, only sessions of this node, every route backed by a Service credited for that peer,
//! no LOCAL_PREF to eBGP peers, a status consistent with the routes, and determinism.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::bgp::BgpAdvertisement;
use ferrolb_config::community::Community;
use ferrolb_config::peers::{Peer, PeerAsn};
use ferrolb_labels::any_matches;
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::subsequence;

use crate::bgp_tests::{bgp_advertisement, peer};
use crate::tests::{ip, selector};
use crate::*;

const MY_ASN: u32 = 64500;
const POOLS: [&str; 2] = ["a", "b"];
const PEER_NAMES: [&str; 4] = ["p0", "p1", "p2", "p3"];
const SERVICE_NAMES: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
/// Close enough that aggregates often hold several of them.
const ADDRESSES: [&str; 7] = [
    "203.0.113.5",
    "203.0.113.6",
    "203.0.113.77",
    "203.0.113.200",
    "2001:db8:203::5",
    "2001:db8:203::ff05",
    "::ffff:203.0.113.9",
];

fn this_node() -> impl Strategy<Value = Node> {
    (
        prop::option::of(prop::sample::select(vec!["r1", "r2"])),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(rack, excluded, cut_off)| {
            let mut node = Node::new("me");
            if let Some(rack) = rack {
                node.labels.insert("rack".into(), rack.into());
            }
            if excluded {
                node.labels
                    .insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), String::new());
            }
            node.network_unavailable = cut_off;
            node
        })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        prop::option::of(prop::sample::select(vec!["me", "other"])),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(node, ready, serving)| Endpoint {
            node: node.map(str::to_string),
            ready,
            serving,
        })
}

fn service() -> impl Strategy<Value = Service> {
    (
        prop::sample::select(SERVICE_NAMES.to_vec()),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::collection::vec(
            (
                prop::sample::select(ADDRESSES.to_vec()),
                prop::sample::select(POOLS.to_vec()),
            ),
            0..3,
        ),
        any::<bool>(),
        prop::collection::vec(endpoint(), 0..3),
    )
        .prop_map(|(name, app, ips, local, endpoints)| {
            let mut service = Service::new("default", name);
            if let Some(app) = app {
                service.labels.insert("app".into(), app.into());
            }
            service.ips = ips
                .into_iter()
                .map(|(address, pool)| ServiceIp::new(ip(address), pool))
                .collect();
            if local {
                service.traffic_policy = TrafficPolicy::Local;
            }
            service.endpoints = endpoints;
            service
        })
}

fn community() -> impl Strategy<Value = Community> {
    prop::sample::select(vec![
        Community::Standard(0xfbf4_0001),
        Community::Standard(0xffff_ff01),
        Community::Large(64500, 1, 2),
    ])
}

fn advertisement() -> impl Strategy<Value = BgpAdvertisement> {
    (
        subsequence(POOLS.to_vec(), 0..=2),
        prop::sample::select(vec![24u8, 28, 30, 32]),
        prop::sample::select(vec![64u8, 120, 128]),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::option::of(prop::sample::select(vec!["r1", "r2"])),
        subsequence([PEER_NAMES.as_slice(), &["ghost"]].concat(), 0..=2),
        prop::collection::btree_set(community(), 0..=2),
        prop::option::of(prop::sample::select(vec![100u32, 200])),
    )
        .prop_map(
            |(pools, length, length_v6, app, rack, peers, communities, local_pref)| {
                let mut adv = bgp_advertisement("adv", &pools);
                adv.aggregation_length = length;
                adv.aggregation_length_v6 = length_v6;
                adv.service_selectors = app
                    .map(|app| vec![selector(&[("app", app)])])
                    .unwrap_or_default();
                adv.node_selectors = rack
                    .map(|rack| vec![selector(&[("rack", rack)])])
                    .unwrap_or_default();
                adv.peers = peers.into_iter().map(str::to_string).collect();
                adv.communities = communities;
                adv.local_pref = local_pref;
                adv
            },
        )
}

fn peers() -> impl Strategy<Value = BTreeMap<String, Peer>> {
    (
        subsequence(PEER_NAMES.to_vec(), 0..=PEER_NAMES.len()),
        prop::collection::vec(
            (
                prop_oneof![
                    Just(PeerAsn::Fixed(MY_ASN)),
                    Just(PeerAsn::Fixed(64501)),
                    Just(PeerAsn::Internal),
                    Just(PeerAsn::External),
                ],
                prop::option::of(prop::sample::select(vec!["r1", "r2"])),
            ),
            PEER_NAMES.len(),
        ),
    )
        .prop_map(|(names, details)| {
            names
                .into_iter()
                .zip(details)
                .map(|(name, (asn, rack))| {
                    let mut peer = peer(name, asn);
                    peer.node_selectors = rack
                        .map(|rack| vec![selector(&[("rack", rack)])])
                        .unwrap_or_default();
                    (name.to_string(), peer)
                })
                .collect()
        })
}

/// `ip` masked to `length` bits, with plain integer arithmetic.
fn reference_prefix(ip: IpAddr, length: u8, length_v6: u8) -> IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let text = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
            let masked = std::net::Ipv4Addr::from(u32::from(v4) & mask);
            format!("{masked}/{length}")
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(length_v6))
                .unwrap_or(0);
            let masked = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{masked}/{length_v6}")
        }
    };
    text.parse().expect("reference prefix")
}

/// A repeated Service counts once, as its least variant.
fn least_variants(services: &[Service]) -> BTreeMap<&ServiceKey, &Service> {
    let mut unique: BTreeMap<&ServiceKey, &Service> = BTreeMap::new();
    for service in services {
        let held = unique.entry(&service.key).or_insert(service);
        if service < *held {
            *held = service;
        }
    }
    unique
}

/// The routes every session of the node should carry, straight from the rules.
fn reference_routes(
    services: &[Service],
    node: &Node,
    advs: &[BgpAdvertisement],
    peers: &BTreeMap<String, Peer>,
    options: &Options,
) -> BTreeMap<String, BTreeMap<IpNet, RouteAttributes>> {
    let unique = least_variants(services);
    let node_ok = !node.network_unavailable
        && (options.ignore_exclude_lb || !node.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS));
    let mut plan = BTreeMap::new();
    for (name, peer) in peers {
        if !any_matches(&peer.node_selectors, &node.labels) {
            continue;
        }
        let internal = match peer.peer_asn {
            PeerAsn::Fixed(asn) => asn == peer.local_asn.unwrap_or(peer.my_asn),
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        };
        let mut merged: BTreeMap<IpNet, (BTreeSet<Community>, BTreeSet<Option<u32>>)> =
            BTreeMap::new();
        for service in unique.values() {
            let endpoints_ok = match service.traffic_policy {
                TrafficPolicy::Cluster => service.endpoints.iter().any(|e| e.can_serve()),
                TrafficPolicy::Local => service
                    .endpoints
                    .iter()
                    .any(|e| e.can_serve() && e.node.as_deref() == Some(node.name.as_str())),
            };
            // A repeated address counts once, with its least pool.
            let mut pools: BTreeMap<IpAddr, &str> = BTreeMap::new();
            for service_ip in &service.ips {
                let pool = pools.entry(service_ip.ip).or_insert(&service_ip.pool);
                if service_ip.pool.as_str() < *pool {
                    *pool = &service_ip.pool;
                }
            }
            for (&address, &pool) in &pools {
                for adv in advs {
                    if node_ok
                        && endpoints_ok
                        && adv.pools.contains(pool)
                        && any_matches(&adv.service_selectors, &service.labels)
                        && any_matches(&adv.node_selectors, &node.labels)
                        && (adv.peers.is_empty() || adv.peers.contains(name))
                    {
                        let prefix = reference_prefix(
                            address,
                            adv.aggregation_length,
                            adv.aggregation_length_v6,
                        );
                        let entry = merged.entry(prefix).or_default();
                        entry.0.extend(adv.communities.iter().copied());
                        entry.1.insert(adv.local_pref);
                    }
                }
            }
        }
        let routes = merged
            .into_iter()
            .map(|(prefix, (communities, prefs))| {
                let local_pref = if internal {
                    prefs.into_iter().flatten().max()
                } else {
                    None
                };
                (
                    prefix,
                    RouteAttributes {
                        local_pref,
                        communities,
                    },
                )
            })
            .collect();
        plan.insert(name.clone(), routes);
    }
    plan
}

fn options() -> impl Strategy<Value = Options> {
    prop::bool::weighted(0.2).prop_map(|ignore_exclude_lb| Options { ignore_exclude_lb })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_peer_gets_the_reference_routes(
        services in prop::collection::vec(service(), 0..6),
        node in this_node(),
        advs in prop::collection::vec(advertisement(), 0..4),
        peers in peers(),
        options in options(),
    ) {
        let plan = desired_bgp(&services, &node, &advs, &peers, &options);
        let reference = reference_routes(&services, &node, &advs, &peers, &options);
        prop_assert_eq!(&plan.peers, &reference);
    }

    #[test]
    fn routes_are_backed_by_services_credited_for_the_peer(
        services in prop::collection::vec(service(), 0..6),
        node in this_node(),
        advs in prop::collection::vec(advertisement(), 0..4),
        peers in peers(),
        options in options(),
    ) {
        let plan = desired_bgp(&services, &node, &advs, &peers, &options);
        let unique = least_variants(&services);
        for (name, routes) in &plan.peers {
            // No route, nor session, to a peer that does not select this node.
            let peer = &peers[name];
            prop_assert!(any_matches(&peer.node_selectors, &node.labels));
            let external = match peer.peer_asn {
                PeerAsn::Fixed(asn) => asn != MY_ASN,
                PeerAsn::Internal => false,
                PeerAsn::External => true,
            };
            for (prefix, attributes) in routes {
                prop_assert!(!external || attributes.local_pref.is_none());
                let backed = unique.values().any(|s| {
                    plan.services.get(&s.key).is_some_and(|status| status.peers.contains(name))
                        && s.ips.iter().any(|i| prefix.contains(&i.ip.to_canonical()))
                });
                prop_assert!(backed, "{prefix} to {name} is backed by no credited Service");
            }
        }
        for (key, status) in &plan.services {
            let ips: BTreeSet<IpAddr> = unique[key].ips.iter().map(|i| i.ip).collect();
            prop_assert!(status.withheld.keys().all(|ip| ips.contains(ip)));
            // Credited with a peer exactly when one of its addresses is not withheld.
            prop_assert_eq!(status.is_advertised(), status.withheld.len() < ips.len());
            for peer in &status.peers {
                prop_assert!(plan.peers.contains_key(peer));
            }
        }
        for conflict in &plan.local_pref_conflicts {
            prop_assert!(conflict.values.len() > 1);
            prop_assert_eq!(
                plan.peers[&conflict.peer][&conflict.prefix].local_pref,
                conflict.values.iter().max().copied().flatten()
            );
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_input_order(
        services in prop::collection::vec(service(), 0..6),
        node in this_node(),
        advs in prop::collection::vec(advertisement(), 0..4),
        peers in peers(),
        options in options(),
    ) {
        let plan = desired_bgp(&services, &node, &advs, &peers, &options);
        let mut services = services;
        services.reverse();
        let mut advs = advs;
        advs.reverse();
        prop_assert_eq!(desired_bgp(&services, &node, &advs, &peers, &options), plan);
    }
}

#[test]
fn reference_prefix_masks_as_expected() {
    assert_eq!(
        reference_prefix(ip("203.0.113.77"), 28, 128),
        "203.0.113.64/28".parse::<IpNet>().expect("prefix")
    );
    assert_eq!(
        reference_prefix(ip("2001:db8:203::ff05"), 32, 120),
        "2001:db8:203::ff00/120".parse::<IpNet>().expect("prefix")
    );
    assert_eq!(
        reference_prefix(ip("::ffff:203.0.113.9"), 30, 64),
        "203.0.113.8/30".parse::<IpNet>().expect("prefix")
    );
}
