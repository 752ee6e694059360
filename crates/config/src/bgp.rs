//! BGPAdvertisement and Community resources → what each served pool is advertised with:
//! aggregation lengths, LOCAL_PREF, communities (values or aliases from Community objects),
//! and which nodes, Services and peers it applies to. MetalLB's rules, all errors at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::v1beta1::{
    BGPAdvertisement as BgpAdvertisementResource, Community as CommunityResource,
};
use ferrolb_ipam::{IpRange, Pools};
use ferrolb_labels::Selector;

use crate::ConfigError;
use crate::community::{Community, CommunityError};
use crate::pools::unique;
use crate::scope::{PoolLabels, scope};

const KIND: &str = "BGPAdvertisement";

/// One validated BGPAdvertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    pub name: String,
    /// The served pools it advertises (no names or selectors: every pool).
    pub pools: BTreeSet<String>,
    pub aggregation_length: u8,
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, sent to iBGP peers only.
    pub local_pref: Option<u32>,
    pub communities: BTreeSet<Community>,
    pub service_selectors: Vec<Selector>,
    pub node_selectors: Vec<Selector>,
    /// BGPPeer names it is limited to; empty: every peer.
    pub peers: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct BuiltBgp {
    pub advertisements: Vec<BgpAdvertisement>,
    /// Community aliases defined by Community objects.
    pub communities: BTreeMap<String, Community>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

pub fn build_bgp(
    resources: &[BgpAdvertisementResource],
    community_resources: &[CommunityResource],
    pool_labels: &PoolLabels,
    served: &Pools,
) -> BuiltBgp {
    let mut built = BuiltBgp::default();
    aliases(community_resources, &mut built);
    // Name order decides which of two conflicting advertisements is served.
    let mut resources: Vec<&BgpAdvertisementResource> = resources.iter().collect();
    resources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for resource in resources {
        let name = resource.metadata.name.clone().unwrap_or_default();
        let spec = &resource.spec;
        let mut errors = Vec::new();
        let mut report = |field: String, reason: String| {
            errors.push(ConfigError::new(KIND, &name, &field, reason))
        };

        let scope = scope(
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
            &spec.service_selectors,
            &spec.node_selectors,
            pool_labels,
            &mut report,
        );
        let peers = unique(&spec.peers, "spec.peers", "peer", &mut report);
        let length = |value: i32, max: u8, field: &str, report: &mut dyn FnMut(String, String)| {
            match u8::try_from(value).ok().filter(|v| (1..=max).contains(v)) {
                Some(v) => v,
                None => {
                    report(
                        field.into(),
                        format!("{value} is not a prefix length from 1 to {max}"),
                    );
                    max
                }
            }
        };
        let aggregation_length = length(
            spec.aggregation_length,
            32,
            "spec.aggregationLength",
            &mut report,
        );
        let aggregation_length_v6 = length(
            spec.aggregation_length_v6,
            128,
            "spec.aggregationLengthV6",
            &mut report,
        );
        if !scope.service_selectors.is_empty()
            && (aggregation_length != 32 || aggregation_length_v6 != 128)
        {
            report(
                "spec.serviceSelectors".into(),
                "serviceSelectors and aggregationLength are mutually exclusive: with serviceSelectors, keep aggregationLength 32 and aggregationLengthV6 128".into(),
            );
        }
        let mut communities = BTreeSet::new();
        for (index, text) in spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{index}]");
            let value = match built.communities.get(text) {
                Some(value) => Ok(*value),
                None => Community::parse(text).map_err(|err| match err {
                    CommunityError::Format(_) => format!("{text:?} is not a community value and no Community object defines it as an alias"),
                    value_error => value_error.to_string(),
                }),
            };
            match value {
                Ok(value) if !communities.insert(value) => {
                    report(field, format!("{text:?} ({value}) is listed twice"))
                }
                Ok(_) => {}
                Err(reason) => report(field, reason),
            }
        }

        // Aggregating to a prefix shorter than an address entry would advertise addresses
        // that are not in the pool.
        for pool in &scope.pools {
            let Some(ranges) = served.get(pool).map(|p| &p.ranges) else {
                continue;
            };
            for range in ranges {
                let (shortest, max) = shortest_prefix(range);
                let wanted = if max == 32 {
                    aggregation_length
                } else {
                    aggregation_length_v6
                };
                if wanted < shortest {
                    report(
                        if max == 32 {
                            "spec.aggregationLength"
                        } else {
                            "spec.aggregationLengthV6"
                        }
                        .into(),
                        format!(
                            "/{wanted} is shorter than /{shortest}, the largest block of {range} in pool `{pool}`"
                        ),
                    );
                }
            }
        }
        if !errors.is_empty() {
            built.errors.append(&mut errors);
            continue;
        }
        for pool in &scope.unknown_pools {
            built.warnings.push(ConfigError::new(
                KIND,
                &name,
                "spec.ipAddressPools",
                format!("no served pool is named {pool:?}; it advertises nothing for it"),
            ));
        }
        let candidate = BgpAdvertisement {
            name,
            pools: scope.pools,
            aggregation_length,
            aggregation_length_v6,
            local_pref: spec.local_pref,
            communities,
            service_selectors: scope.service_selectors,
            node_selectors: scope.node_selectors,
            peers,
        };
        if let Some(conflict) = local_pref_conflict(&candidate, &built.advertisements, served) {
            built.errors.push(ConfigError::new(
                KIND,
                &candidate.name,
                "spec.localPref",
                conflict,
            ));
            continue;
        }
        built.advertisements.push(candidate);
    }
    built
}

/// MetalLB's rule: two advertisements that would send the same route (a shared pool, no
/// serviceSelectors, the same aggregation for the pool's families, a common peer, a common
/// node) must agree on LOCAL_PREF. Without the cluster's nodes, two different non-empty node
/// selector lists are taken as disjoint: permissive where only the nodes could tell.
fn local_pref_conflict(
    candidate: &BgpAdvertisement,
    accepted: &[BgpAdvertisement],
    served: &Pools,
) -> Option<String> {
    if !candidate.service_selectors.is_empty() {
        return None;
    }
    let pref = candidate.local_pref.unwrap_or(0);
    accepted.iter().filter(|other| other.service_selectors.is_empty() && other.local_pref.unwrap_or(0) != pref).find_map(|other| {
        let peers_meet = candidate.peers.is_empty() || other.peers.is_empty() || !candidate.peers.is_disjoint(&other.peers);
        let nodes_meet = candidate.node_selectors.is_empty() || other.node_selectors.is_empty() || candidate.node_selectors == other.node_selectors;
        if !peers_meet || !nodes_meet {
            return None;
        }
        candidate.pools.intersection(&other.pools).find_map(|pool| {
            let ranges = &served.get(pool)?.ranges;
            let has_v4 = ranges.iter().any(|r| r.first().is_ipv4());
            let has_v6 = ranges.iter().any(|r| r.first().is_ipv6());
            let v4_differs = candidate.aggregation_length != other.aggregation_length;
            let v6_differs = candidate.aggregation_length_v6 != other.aggregation_length_v6;
            let same_routes = match (has_v4, has_v6) {
                (true, false) => !v4_differs,
                (false, true) => !v6_differs,
                _ => !(v4_differs && v6_differs),
            };
            same_routes.then(|| {
                format!(
                    "LOCAL_PREF {pref} differs from {} of BGPAdvertisement `{}`, which advertises the same routes of pool `{pool}` to the same peers and nodes",
                    other.local_pref.unwrap_or(0),
                    other.name
                )
            })
        })
    })
}

/// Collects aliases in object name order; an alias defined twice keeps its first definition.
fn aliases(resources: &[CommunityResource], built: &mut BuiltBgp) {
    let mut sorted: Vec<&CommunityResource> = resources.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for resource in sorted {
        let object = resource.metadata.name.clone().unwrap_or_default();
        for (index, alias) in resource.spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{index}]");
            let error = |reason: String| ConfigError::new("Community", &object, &field, reason);
            let (Some(name), Some(value)) = (alias.name.as_deref(), alias.value.as_deref()) else {
                built
                    .errors
                    .push(error("an alias needs both name and value".into()));
                continue;
            };
            match Community::parse(value) {
                Err(err) => built.errors.push(error(format!("alias {name:?}: {err}"))),
                Ok(_) if built.communities.contains_key(name) => {
                    built
                        .errors
                        .push(error(format!("alias {name:?} is already defined")));
                }
                Ok(community) => {
                    built.communities.insert(name.to_string(), community);
                }
            }
        }
    }
}

/// The prefix length of the largest CIDR block in `range`, and the family's maximum (32 or 128).
fn shortest_prefix(range: &IpRange) -> (u8, u8) {
    let (first, last, bits) = match (range.first(), range.last()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u8)
        }
        (a, b) => (ip_u128(a), ip_u128(b), 128u8),
    };
    let mut shortest = bits;
    let mut start = first;
    loop {
        // The largest block aligned at `start` that stays within the range.
        let mut size_log2 = start.trailing_zeros().min(u32::from(bits));
        while size_log2 > 0 && block_end(start, size_log2).is_none_or(|end| end > last) {
            size_log2 -= 1;
        }
        let prefix = bits - u8::try_from(size_log2).unwrap_or(bits);
        shortest = shortest.min(prefix);
        match block_end(start, size_log2) {
            Some(end) if end < last => start = end + 1,
            _ => return (shortest, bits),
        }
    }
}

fn block_end(start: u128, size_log2: u32) -> Option<u128> {
    if size_log2 >= 128 {
        return (start == 0).then_some(u128::MAX);
    }
    start.checked_add((1u128 << size_log2) - 1)
}

fn ip_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::build_pools;
    use crate::scope::served_pool_labels;
    use ferrolb_api::v1beta1::IPAddressPool;
    use std::str::FromStr;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).expect("test YAML")
    }

    fn pools() -> (Vec<IPAddressPool>, Pools) {
        let pools: Vec<IPAddressPool> = vec![
            from_yaml(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: routed}\nspec:\n  addresses: ['203.0.113.0/25', '2001:db8:203::/120']\n",
            ),
            from_yaml(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: ranged}\nspec:\n  addresses: ['192.0.2.10-192.0.2.20']\n",
            ),
        ];
        let served = build_pools(&pools, &BTreeSet::new()).pools;
        (pools, served)
    }

    fn adv(spec: &str) -> BgpAdvertisementResource {
        from_yaml(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: adv}}\n{spec}"
        ))
    }

    fn community_aliases() -> CommunityResource {
        from_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: communities}\nspec:\n  communities:\n  - {name: no-export, value: '65535:65281'}\n  - {name: big, value: 'large:64500:1:2'}\n",
        )
    }

    #[test]
    fn shortest_prefix_is_the_largest_block_of_a_range() {
        let cases = [
            ("203.0.113.0/25", 25),
            ("192.0.2.10-192.0.2.20", 30),
            ("192.0.2.7-192.0.2.7", 32),
            ("2001:db8::/64", 64),
            ("::/0", 0),
        ];
        for (text, want) in cases {
            let range = IpRange::from_str(text).expect("valid range");
            assert_eq!(shortest_prefix(&range).0, want, "{text}");
        }
    }

    #[test]
    fn defaults_values_and_aliases_resolve() {
        let (pool_resources, served) = pools();
        let resource = adv(
            "spec:\n  ipAddressPools: [routed]\n  localPref: 150\n  communities: ['65535:65282', no-export, big, 'large:1:2:3']\n  peers: [router]\n",
        );
        let built = build_bgp(
            &[resource],
            &[community_aliases()],
            &served_pool_labels(&pool_resources, &served),
            &served,
        );
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let a = &built.advertisements[0];
        assert_eq!(
            (a.aggregation_length, a.aggregation_length_v6, a.local_pref),
            (32, 128, Some(150))
        );
        assert_eq!(a.pools, BTreeSet::from(["routed".to_string()]));
        let want: BTreeSet<Community> = [
            Community::Standard(0xffff_ff02),
            Community::Standard(0xffff_ff01),
            Community::Large(64500, 1, 2),
            Community::Large(1, 2, 3),
        ]
        .into();
        assert_eq!(a.communities, want);
    }

    #[test]
    fn aggregation_shorter_than_a_pool_block_is_refused_per_family() {
        let (pool_resources, served) = pools();
        let ok = adv(
            "spec:\n  ipAddressPools: [routed]\n  aggregationLength: 25\n  aggregationLengthV6: 120\n",
        );
        let bad = adv("spec:\n  aggregationLength: 24\n  aggregationLengthV6: 64\n");
        let built = build_bgp(
            &[ok, bad],
            &[],
            &served_pool_labels(&pool_resources, &served),
            &served,
        );
        assert_eq!(built.advertisements.len(), 1);
        let text: Vec<String> = built.errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("spec.aggregationLength: /24 is shorter than /25")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(
                |t| t.contains("spec.aggregationLength: /24 is shorter than /30")
                    && t.contains("pool `ranged`")
            ),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("spec.aggregationLengthV6: /64 is shorter than /120")),
            "{text:#?}"
        );
    }

    #[test]
    fn conflicting_local_prefs_for_the_same_routes_keep_the_first_by_name() {
        let (pool_resources, served) = pools();
        let named = |name: &str, spec: &str| {
            from_yaml::<BgpAdvertisementResource>(&format!(
                "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}}}\nspec:\n  ipAddressPools: [routed]\n{spec}"
            ))
        };
        let built = build_bgp(
            &[
                named("b-conflict", "  localPref: 200\n  peers: [x]\n"),
                named(
                    "a-first",
                    "  localPref: 100\n  peers: [x]\n  nodeSelectors: [{matchLabels: {rack: r1}}]\n",
                ),
                named("c-other-peer", "  localPref: 300\n  peers: [y]\n"),
                named("d-all-peers", "  localPref: 400\n"),
                named(
                    "e-other-aggregation",
                    "  localPref: 500\n  aggregationLength: 30\n  aggregationLengthV6: 124\n",
                ),
                named(
                    "f-other-nodes",
                    "  localPref: 600\n  peers: [x]\n  nodeSelectors: [{matchLabels: {rack: r9}}]\n",
                ),
            ],
            &[],
            &served_pool_labels(&pool_resources, &served),
            &served,
        );
        let served_names: Vec<&str> = built
            .advertisements
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            served_names,
            [
                "a-first",
                "c-other-peer",
                "e-other-aggregation",
                "f-other-nodes"
            ],
            "{:?}",
            built.errors
        );
        let text: Vec<String> = built.errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        assert!(text[0].starts_with("BGPAdvertisement b-conflict: spec.localPref: LOCAL_PREF 200 differs from 100 of BGPAdvertisement `a-first`"), "{text:#?}");
        assert!(
            text[1].starts_with(
                "BGPAdvertisement d-all-peers: spec.localPref: LOCAL_PREF 400 differs from 100"
            ),
            "{text:#?}"
        );
    }

    #[test]
    fn every_mistake_is_named() {
        let (pool_resources, served) = pools();
        let resource = adv(
            "spec:\n  aggregationLength: 28\n  aggregationLengthV6: 129\n  serviceSelectors: [{matchLabels: {a: b}}]\n  communities: [unknown-alias, '70000:1', '1:1', '1:1']\n  peers: [p, p]\n",
        );
        let bad_alias: CommunityResource = from_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: z}\nspec:\n  communities:\n  - {name: no-export, value: '1:2'}\n  - {name: broken, value: 'x:y'}\n",
        );
        let built = build_bgp(
            &[resource],
            &[community_aliases(), bad_alias],
            &served_pool_labels(&pool_resources, &served),
            &served,
        );
        assert!(built.advertisements.is_empty());
        let text = built
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for expected in [
            "Community z: spec.communities[0]: alias \"no-export\" is already defined",
            "Community z: spec.communities[1]: alias \"broken\"",
            "BGPAdvertisement adv: spec.aggregationLengthV6: 129 is not a prefix length from 1 to 128",
            "spec.serviceSelectors: serviceSelectors and aggregationLength are mutually exclusive",
            "spec.communities[0]: \"unknown-alias\" is not a community value and no Community object defines it",
            "spec.communities[1]: \"70000:1\"",
            "spec.communities[3]: \"1:1\" (1:1) is listed twice",
            "spec.peers: peer \"p\" is listed twice",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}
