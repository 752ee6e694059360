//! A peer's routes as they go on the wire (pure): the speaker's desired routes turned into path
//! attributes for one session, and the difference between what was sent and what is desired.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp_wire::{Family, Origin, PathAttributes};
use ipnet::IpNet;

use crate::speaker::Advertised;

/// LOCAL_PREF must go to every iBGP peer (RFC 4271 §5.1.5); FRR, which MetalLB configures,
/// sends 100 when none is set.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What the path attributes of one session depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteContext {
    pub local_asn: u32,
    pub ibgp: bool,
    /// The families negotiated on the session.
    pub families: BTreeSet<Family>,
    /// The local address of the session's TCP connection: the next hop of its own family.
    pub local_address: IpAddr,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// The routes one session advertises, and what could not be advertised and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Built {
    pub routes: BTreeMap<IpNet, PathAttributes>,
    /// One line per reason, with how many prefixes it kept back.
    pub not_advertised: Vec<String>,
}

pub fn build(desired: &BTreeMap<IpNet, Advertised>, ctx: &RouteContext) -> Built {
    let local = ctx.local_address.to_canonical();
    let next_hop = |family: Family| -> Option<IpAddr> {
        match (family, local) {
            (Family::Ipv4Unicast, IpAddr::V4(_)) | (Family::Ipv6Unicast, IpAddr::V6(_)) => {
                Some(local)
            }
            (Family::Ipv4Unicast, IpAddr::V6(_)) => ctx.next_hop_v4.map(IpAddr::V4),
            (Family::Ipv6Unicast, IpAddr::V4(_)) => ctx.next_hop_v6.map(IpAddr::V6),
        }
    };
    let mut routes = BTreeMap::new();
    let mut not_negotiated: BTreeMap<Family, usize> = BTreeMap::new();
    let mut no_next_hop: BTreeMap<Family, usize> = BTreeMap::new();
    for (prefix, advertised) in desired {
        let family = Family::of(prefix);
        if !ctx.families.contains(&family) {
            *not_negotiated.entry(family).or_default() += 1;
            continue;
        }
        let Some(next_hop) = next_hop(family) else {
            *no_next_hop.entry(family).or_default() += 1;
            continue;
        };
        let mut communities = advertised.communities.clone();
        communities.sort_unstable();
        communities.dedup();
        let mut large_communities = advertised.large_communities.clone();
        large_communities.sort_unstable();
        large_communities.dedup();
        let attributes = PathAttributes {
            // As MetalLB's native speaker sends it.
            origin: Origin::Igp,
            as_path: if ctx.ibgp {
                Vec::new()
            } else {
                vec![ctx.local_asn]
            },
            next_hop,
            link_local_next_hop: None,
            local_pref: ctx
                .ibgp
                .then(|| advertised.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
            communities,
            large_communities,
        };
        routes.insert(prefix.trunc(), attributes);
    }
    let mut not_advertised = Vec::new();
    for (family, count) in not_negotiated {
        not_advertised.push(format!(
            "{count} {} prefix(es) not advertised: the peer did not negotiate {}",
            family_name(family),
            family_name(family)
        ));
    }
    for (family, count) in no_next_hop {
        let (field, session) = match family {
            Family::Ipv4Unicast => ("next_hop_v4", "IPv6"),
            Family::Ipv6Unicast => ("next_hop_v6", "IPv4"),
        };
        not_advertised.push(format!(
            "{count} {} prefix(es) not advertised: the session runs over {session} and no {} next hop is configured ({field})",
            family_name(family),
            family_name(family)
        ));
    }
    Built {
        routes,
        not_advertised,
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "IPv4",
        Family::Ipv6Unicast => "IPv6",
    }
}

/// What to send to go from `sent` to `desired`: the prefixes to withdraw, and the prefixes to
/// announce (new, or with changed attributes) grouped by their attributes.
pub fn diff(
    sent: &BTreeMap<IpNet, PathAttributes>,
    desired: &BTreeMap<IpNet, PathAttributes>,
) -> (Vec<IpNet>, Vec<(PathAttributes, Vec<IpNet>)>) {
    let withdrawn = sent
        .keys()
        .filter(|prefix| !desired.contains_key(prefix))
        .copied()
        .collect();
    let mut announced: BTreeMap<&PathAttributes, Vec<IpNet>> = BTreeMap::new();
    for (prefix, attributes) in desired {
        if sent.get(prefix) != Some(attributes) {
            announced.entry(attributes).or_default().push(*prefix);
        }
    }
    let announced = announced
        .into_iter()
        .map(|(attributes, prefixes)| (attributes.clone(), prefixes))
        .collect();
    (withdrawn, announced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("a valid literal")
    }

    fn ebgp_v4() -> RouteContext {
        RouteContext {
            local_asn: 64500,
            ibgp: false,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            local_address: "198.51.100.10".parse().expect("a valid literal"),
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }

    fn advertised(local_pref: Option<u32>, communities: Vec<u32>) -> Advertised {
        Advertised {
            local_pref,
            communities,
            large_communities: vec![[64500, 2, 1], [64500, 1, 1], [64500, 1, 1]],
        }
    }

    #[test]
    fn ebgp_routes_carry_our_asn_no_local_pref_and_the_session_address_as_next_hop() {
        let desired =
            BTreeMap::from([(net("203.0.113.5/32"), advertised(Some(200), vec![3, 1, 3]))]);
        let built = build(&desired, &ebgp_v4());
        assert!(built.not_advertised.is_empty());
        assert_eq!(
            built.routes[&net("203.0.113.5/32")],
            PathAttributes {
                origin: Origin::Igp,
                as_path: vec![64500],
                next_hop: "198.51.100.10".parse().expect("a valid literal"),
                link_local_next_hop: None,
                local_pref: None,
                communities: vec![1, 3],
                large_communities: vec![[64500, 1, 1], [64500, 2, 1]],
            }
        );
    }

    #[test]
    fn ibgp_routes_have_an_empty_as_path_and_local_pref_defaulting_to_100() {
        let ctx = RouteContext {
            ibgp: true,
            ..ebgp_v4()
        };
        let desired = BTreeMap::from([
            (net("203.0.113.5/32"), advertised(Some(200), vec![])),
            (net("203.0.113.6/32"), advertised(None, vec![])),
        ]);
        let built = build(&desired, &ctx);
        let five = &built.routes[&net("203.0.113.5/32")];
        assert_eq!((five.as_path.clone(), five.local_pref), (vec![], Some(200)));
        assert_eq!(built.routes[&net("203.0.113.6/32")].local_pref, Some(100));
    }

    #[test]
    fn the_other_family_needs_a_configured_next_hop_or_is_reported() {
        let desired = BTreeMap::from([
            (net("203.0.113.5/32"), advertised(None, vec![])),
            (net("2001:db8:203::5/128"), advertised(None, vec![])),
        ]);
        let built = build(&desired, &ebgp_v4());
        assert_eq!(
            built.routes.keys().collect::<Vec<_>>(),
            vec![&net("203.0.113.5/32")]
        );
        assert_eq!(built.not_advertised.len(), 1);
        assert!(
            built.not_advertised[0].contains("next_hop_v6"),
            "{:?}",
            built.not_advertised
        );

        let with_v6_next_hop = RouteContext {
            next_hop_v6: Some("2001:db8:100::10".parse().expect("a valid literal")),
            ..ebgp_v4()
        };
        let built = build(&desired, &with_v6_next_hop);
        assert!(built.not_advertised.is_empty());
        assert_eq!(
            built.routes[&net("2001:db8:203::5/128")].next_hop,
            "2001:db8:100::10"
                .parse::<IpAddr>()
                .expect("a valid literal")
        );
    }

    #[test]
    fn families_the_peer_did_not_negotiate_are_reported() {
        let ctx = RouteContext {
            families: BTreeSet::from([Family::Ipv4Unicast]),
            next_hop_v6: Some("2001:db8:100::10".parse().expect("a valid literal")),
            ..ebgp_v4()
        };
        let desired = BTreeMap::from([(net("2001:db8:203::5/128"), advertised(None, vec![]))]);
        let built = build(&desired, &ctx);
        assert!(built.routes.is_empty());
        assert!(built.not_advertised[0].contains("did not negotiate IPv6"));
    }

    #[test]
    fn a_v4_mapped_local_address_is_an_ipv4_next_hop() {
        let ctx = RouteContext {
            local_address: "::ffff:198.51.100.10".parse().expect("a valid literal"),
            ..ebgp_v4()
        };
        let desired = BTreeMap::from([(net("203.0.113.5/32"), advertised(None, vec![]))]);
        assert_eq!(
            build(&desired, &ctx).routes[&net("203.0.113.5/32")].next_hop,
            "198.51.100.10".parse::<IpAddr>().expect("a valid literal")
        );
    }

    #[test]
    fn diff_sends_only_what_changed() {
        let ctx = ebgp_v4();
        let before = build(
            &BTreeMap::from([
                (net("203.0.113.1/32"), advertised(None, vec![1])),
                (net("203.0.113.2/32"), advertised(None, vec![1])),
                (net("203.0.113.3/32"), advertised(None, vec![1])),
            ]),
            &ctx,
        )
        .routes;
        let after = build(
            &BTreeMap::from([
                (net("203.0.113.1/32"), advertised(None, vec![1])),
                (net("203.0.113.2/32"), advertised(None, vec![2])),
                (net("203.0.113.4/32"), advertised(None, vec![1])),
            ]),
            &ctx,
        )
        .routes;
        let (withdrawn, announced) = diff(&before, &after);
        assert_eq!(withdrawn, vec![net("203.0.113.3/32")]);
        let announced: Vec<(Vec<u32>, Vec<IpNet>)> = announced
            .into_iter()
            .map(|(a, p)| (a.communities, p))
            .collect();
        assert_eq!(
            announced,
            vec![
                (vec![1], vec![net("203.0.113.4/32")]),
                (vec![2], vec![net("203.0.113.2/32")]),
            ]
        );
        assert_eq!(diff(&after, &after), (vec![], vec![]));
    }
}
