//! Strategies for generated messages, shared by the property tests. Addresses stay in the
//! documentation and benchmarking ranges.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp_wire::{
    Capabilities, Context, Family, GracefulRestart, Message, Notification, Open, Origin,
    PathAttributes, Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

pub fn context() -> impl Strategy<Value = Context> {
    any::<bool>().prop_map(|four_octet_asn| Context {
        four_octet_asn,
        ..Context::default()
    })
}

pub fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Ipv4Unicast), Just(Family::Ipv6Unicast)]
}

/// A prefix inside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 198.18.0.0/15.
pub fn ipv4_prefix() -> impl Strategy<Value = IpNet> {
    let bases = [
        (Ipv4Addr::new(192, 0, 2, 0), 24u8),
        (Ipv4Addr::new(198, 51, 100, 0), 24),
        (Ipv4Addr::new(203, 0, 113, 0), 24),
        (Ipv4Addr::new(198, 18, 0, 0), 15),
    ];
    (0..bases.len(), any::<u32>(), 0u8..=32).prop_map(move |(which, bits, extra)| {
        let (base, base_len) = bases[which];
        let host_mask = u32::MAX >> base_len;
        let address = Ipv4Addr::from(u32::from(base) | (bits & host_mask));
        let len = base_len + extra % (33 - base_len);
        IpNet::V4(
            Ipv4Net::new(address, len)
                .expect("well-formed test data")
                .trunc(),
        )
    })
}

/// A prefix inside 2001:db8::/32.
pub fn ipv6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 32u8..=128).prop_map(|(bits, len)| {
        let base: u128 = 0x2001_0db8 << 96;
        let address = Ipv6Addr::from(base | (bits & (u128::MAX >> 32)));
        IpNet::V6(
            Ipv6Net::new(address, len)
                .expect("well-formed test data")
                .trunc(),
        )
    })
}

pub fn ipv4_address() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=254).prop_map(|host| Ipv4Addr::new(198, 51, 100, host))
}

pub fn ipv6_address() -> impl Strategy<Value = Ipv6Addr> {
    (1u16..=0xffff).prop_map(|host| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host))
}

pub fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

/// Attributes; `ipv6_next_hop` picks the next hop's family.
pub fn attributes(ipv6_next_hop: bool) -> impl Strategy<Value = PathAttributes> {
    let next_hop = if ipv6_next_hop {
        (ipv6_address(), proptest::option::of(1u16..=0xffff))
            .prop_map(|(global, local)| {
                (
                    IpAddr::V6(global),
                    local.map(|host| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, host)),
                )
            })
            .boxed()
    } else {
        ipv4_address()
            .prop_map(|address| (IpAddr::V4(address), None))
            .boxed()
    };
    (
        origin(),
        prop_oneof![
            4 => proptest::collection::vec(any::<u32>(), 0..6),
            1 => proptest::collection::vec(any::<u32>(), 250..300),
        ],
        next_hop,
        proptest::option::of(any::<u32>()),
        proptest::collection::btree_set(any::<u32>(), 0..80),
        proptest::collection::btree_set(any::<[u32; 3]>(), 0..25),
    )
        .prop_map(
            |(origin, as_path, (next_hop, link_local_next_hop), local_pref, communities, large)| {
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    link_local_next_hop,
                    local_pref,
                    communities: communities.into_iter().collect(),
                    large_communities: large.into_iter().collect(),
                }
            },
        )
}

/// An UPDATE as `decode` returns it: IPv4 before IPv6 in each list, never empty unless it is
/// an End-of-RIB, attributes exactly when something is announced.
pub fn update() -> impl Strategy<Value = Update> {
    let routes = (
        proptest::collection::vec(ipv4_prefix(), 0..20),
        proptest::collection::vec(ipv6_prefix(), 0..20),
        proptest::collection::vec(ipv4_prefix(), 0..20),
        proptest::collection::vec(ipv6_prefix(), 0..20),
        any::<bool>(),
    )
        .prop_flat_map(
            |(withdrawn_v4, withdrawn_v6, announced_v4, announced_v6, v6_hop)| {
                attributes(v6_hop).prop_map(move |attributes| {
                    let mut withdrawn = withdrawn_v4.clone();
                    withdrawn.extend(withdrawn_v6.iter().copied());
                    // Over an IPv6 next hop, IPv4 and IPv6 both need MP_REACH_NLRI: one family.
                    let mut announced = announced_v4.clone();
                    if !v6_hop || announced_v4.is_empty() {
                        announced.extend(announced_v6.iter().copied());
                    }
                    let attributes = (!announced.is_empty()).then_some(attributes);
                    Update {
                        withdrawn,
                        announced,
                        attributes,
                        end_of_rib: None,
                    }
                })
            },
        )
        .prop_filter("an empty UPDATE is the IPv4 End-of-RIB", |update| {
            !update.withdrawn.is_empty() || !update.announced.is_empty()
        });
    prop_oneof![
        1 => family().prop_map(Update::end_of_rib),
        6 => routes,
    ]
}

pub fn open() -> impl Strategy<Value = Open> {
    (
        any::<u32>(),
        any::<bool>(),
        prop_oneof![Just(0u16), 3u16..=u16::MAX],
        1u32..=u32::MAX,
        proptest::collection::btree_set(family(), 0..=2),
        any::<bool>(),
        proptest::option::of((
            any::<bool>(),
            0u16..=4095,
            proptest::collection::btree_map(family(), any::<bool>(), 0..=2),
        )),
        any::<bool>(),
    )
        .prop_map(
            |(asn, four_octet, hold_time, id, families, route_refresh, restart, extended)| {
                Open {
                    asn,
                    hold_time,
                    router_id: Ipv4Addr::from(id),
                    capabilities: Capabilities {
                        // A 4-octet ASN can only be sent with the capability.
                        four_octet_asn: four_octet || asn > 0xffff,
                        families: families.into_iter().collect::<BTreeSet<_>>(),
                        route_refresh,
                        graceful_restart: restart.map(|(restarting, restart_time, families)| {
                            GracefulRestart {
                                restarting,
                                restart_time,
                                families: families.into_iter().collect(),
                            }
                        }),
                        extended_next_hop_ipv4: extended,
                        other: Vec::new(),
                    },
                }
            },
        )
}

pub fn notification() -> impl Strategy<Value = Notification> {
    (
        1u8..=7,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(code, subcode, data)| Notification::new(code, subcode, data))
}

pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(Message::Update),
        notification().prop_map(Message::Notification),
        Just(Message::Keepalive),
        family().prop_map(Message::RouteRefresh),
    ]
}
