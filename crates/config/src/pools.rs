//! IPAddressPool resources → the allocator's [`ferrolb_ipam::Pools`].
//!
//! Every pool is checked on its own and all of its problems are reported; a bad pool is left
//! out and the good ones are served (MetalLB instead refuses the whole new configuration and
//! keeps its previous one, so one typo blocks every other change). Pools that overlap cannot
//! both be served: pools named in `keep_first` (those that already hold addresses, or were in
//! the last good configuration) win, then name order decides, and the loser's error names both.

use std::collections::BTreeSet;
use std::str::FromStr;

use ferrolb_api::v1beta1::IPAddressPool;
use ferrolb_ipam::{IpRange, Pool, Pools, ServiceAllocation};
use ferrolb_labels::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::ConfigError;

/// The pools that can be served, and why the others cannot.
#[derive(Debug)]
pub struct BuiltPools {
    pub pools: Pools,
    pub errors: Vec<ConfigError>,
}

const KIND: &str = "IPAddressPool";

pub fn build_pools(resources: &[IPAddressPool], keep_first: &BTreeSet<String>) -> BuiltPools {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut candidates = Vec::new();
    for resource in resources {
        let name = resource.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            errors.push(ConfigError::new(
                KIND,
                "",
                "metadata.name",
                "a pool needs a name",
            ));
            continue;
        }
        if !seen.insert(name.clone()) {
            errors.push(ConfigError::new(
                KIND,
                &name,
                "metadata.name",
                "another pool has the same name",
            ));
            continue;
        }
        match pool_from_resource(&name, resource) {
            Ok(pool) => candidates.push(pool),
            Err(mut pool_errors) => errors.append(&mut pool_errors),
        }
    }

    candidates.sort_by(|a, b| {
        (!keep_first.contains(&a.name), &a.name).cmp(&(!keep_first.contains(&b.name), &b.name))
    });
    let mut accepted: Vec<Pool> = Vec::new();
    for pool in candidates {
        let clash = pool.ranges.iter().find_map(|range| {
            accepted.iter().find_map(|other| {
                other
                    .ranges
                    .iter()
                    .find(|other_range| range.overlaps(other_range))
                    .map(|other_range| (range, other, other_range))
            })
        });
        match clash {
            Some((range, other, other_range)) => errors.push(ConfigError::new(
                KIND,
                &pool.name,
                "spec.addresses",
                format!(
                    "{range} overlaps {other_range} of pool `{}`, which is served; this pool is not",
                    other.name
                ),
            )),
            None => accepted.push(pool),
        }
    }
    let pools = match Pools::new(accepted) {
        Ok(pools) => pools,
        Err(err) => {
            // The checks above leave no duplicate and no overlap; should the allocator still
            // refuse, serve nothing rather than something inconsistent, and say why.
            errors.push(ConfigError::new(KIND, "", "", format!("internal: {err}")));
            Pools::default()
        }
    };
    BuiltPools { pools, errors }
}

fn pool_from_resource(name: &str, resource: &IPAddressPool) -> Result<Pool, Vec<ConfigError>> {
    let spec = &resource.spec;
    let mut errors = Vec::new();
    let error = |field: String, reason: String| ConfigError::new(KIND, name, &field, reason);
    if spec.addresses.is_empty() {
        errors.push(error(
            "spec.addresses".into(),
            "the pool has no addresses".into(),
        ));
    }
    let mut ranges: Vec<(usize, IpRange)> = Vec::new();
    for (index, text) in spec.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{index}]");
        match IpRange::from_str(text.trim()) {
            Ok(range) => {
                if let Some((other, _)) = ranges.iter().find(|(_, r)| r.overlaps(&range)) {
                    errors.push(error(
                        field,
                        format!("{range} overlaps spec.addresses[{other}] of the same pool"),
                    ));
                } else {
                    ranges.push((index, range));
                }
            }
            Err(err) => errors.push(error(field, err.to_string())),
        }
    }
    let allocation = spec.service_allocation.as_ref().map(|allocation| {
        let mut namespaces = BTreeSet::new();
        for namespace in &allocation.namespaces {
            if !namespaces.insert(namespace.clone()) {
                errors.push(error(
                    "spec.serviceAllocation.namespaces".into(),
                    format!("namespace {namespace:?} is listed twice"),
                ));
            }
        }
        // MetalLB reads priority 0 as "no priority"; so do we, or 0 would outrank 1.
        let priority = match allocation.priority {
            None | Some(0) => None,
            Some(p) => match i32::try_from(p) {
                Ok(p) => Some(p),
                Err(_) => {
                    errors.push(error(
                        "spec.serviceAllocation.priority".into(),
                        format!("{p} is out of range"),
                    ));
                    None
                }
            },
        };
        ServiceAllocation {
            priority,
            namespaces: namespaces.into_iter().collect(),
            namespace_selectors: selectors(
                &allocation.namespace_selectors,
                "spec.serviceAllocation.namespaceSelectors",
                &mut |field, reason| errors.push(error(field, reason)),
            ),
            service_selectors: selectors(
                &allocation.service_selectors,
                "spec.serviceAllocation.serviceSelectors",
                &mut |field, reason| errors.push(error(field, reason)),
            ),
        }
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut pool = Pool::new(name, ranges.into_iter().map(|(_, r)| r).collect());
    pool.auto_assign = spec.auto_assign;
    pool.avoid_buggy_ips = spec.avoid_buggy_ips;
    pool.allocation = allocation;
    Ok(pool)
}

/// The set of `values`; a value listed twice is reported, as MetalLB does.
pub(crate) fn unique(
    values: &[String],
    field: &str,
    what: &str,
    report: &mut dyn FnMut(String, String),
) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for value in values {
        if !set.insert(value.clone()) {
            report(field.into(), format!("{what} {value:?} is listed twice"));
        }
    }
    set
}

/// Validates a list of selectors; a selector listed twice is an error, as in MetalLB.
pub(crate) fn selectors(
    list: &[LabelSelector],
    field: &str,
    report: &mut dyn FnMut(String, String),
) -> Vec<Selector> {
    let mut valid: Vec<Selector> = Vec::new();
    for (index, selector) in list.iter().enumerate() {
        let at = format!("{field}[{index}]");
        match Selector::from_k8s(selector) {
            Ok(selector) if valid.contains(&selector) => {
                report(at, format!("selector `{selector}` is listed twice"));
            }
            Ok(selector) => valid.push(selector),
            Err(err) => report(at, err.to_string()),
        }
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(yaml: &str) -> IPAddressPool {
        serde_saphyr::from_str(yaml).expect("test pool YAML")
    }

    fn named(name: &str, addresses: &str) -> IPAddressPool {
        pool(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec:\n  addresses: [{addresses}]\n"
        ))
    }

    fn reasons(built: &BuiltPools) -> Vec<String> {
        built.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_pools_are_served_with_their_settings() {
        let resource = pool(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec:\n  addresses: [198.51.100.200-198.51.100.250, '2001:db8:100::200/120']\n  autoAssign: false\n  avoidBuggyIPs: true\n  serviceAllocation:\n    priority: 0\n    namespaces: [web]\n    serviceSelectors: [{matchLabels: {tier: front}}]\n",
        );
        let built = build_pools(&[resource], &BTreeSet::new());
        assert!(built.errors.is_empty(), "{:?}", reasons(&built));
        let served = built.pools.get("lan").expect("served");
        assert_eq!(served.ranges.len(), 2);
        assert!(!served.auto_assign && served.avoid_buggy_ips);
        let allocation = served.allocation.as_ref().expect("has allocation");
        assert_eq!(
            allocation.priority, None,
            "priority 0 means unset, as in MetalLB"
        );
        assert_eq!(allocation.namespaces, ["web"]);
        assert_eq!(allocation.service_selectors.len(), 1);
    }

    #[test]
    fn every_problem_of_a_bad_pool_is_named_and_the_good_pool_still_serves() {
        let bad = named(
            "bad",
            "198.51.100.300/32, 198.51.100.20-198.51.100.10, 203.0.113.0/28, 203.0.113.8/29",
        );
        let good = named("good", "192.0.2.0/28");
        let built = build_pools(&[bad, good], &BTreeSet::new());
        let text = reasons(&built);
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(
            text[0].starts_with("IPAddressPool bad: spec.addresses[0]:"),
            "{text:#?}"
        );
        assert!(
            text[1].contains("spec.addresses[1]") && text[1].contains("reversed"),
            "{text:#?}"
        );
        assert!(
            text[2].contains("spec.addresses[3]") && text[2].contains("overlaps spec.addresses[2]"),
            "{text:#?}"
        );
        assert!(built.pools.get("bad").is_none());
        assert!(built.pools.get("good").is_some());
    }

    #[test]
    fn of_two_overlapping_pools_the_kept_one_wins_and_the_other_is_named() {
        let a = named("a", "203.0.113.0/28");
        let b = named("b", "203.0.113.8-203.0.113.20");
        let by_name = build_pools(&[b.clone(), a.clone()], &BTreeSet::new());
        assert!(by_name.pools.get("a").is_some() && by_name.pools.get("b").is_none());
        assert!(
            reasons(&by_name)[0].contains("pool `a`"),
            "{:?}",
            reasons(&by_name)
        );
        let keep_b = build_pools(&[a, b], &BTreeSet::from(["b".to_string()]));
        assert!(keep_b.pools.get("b").is_some() && keep_b.pools.get("a").is_none());
    }

    #[test]
    fn empty_duplicate_and_selector_mistakes_are_errors() {
        let empty = named("empty", "");
        let twice = named("twice", "192.0.2.0/30");
        let twice_again = named("twice", "192.0.2.8/30");
        let selectors = pool(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: sel}\nspec:\n  addresses: [192.0.2.64/28]\n  serviceAllocation:\n    namespaces: [a, a]\n    namespaceSelectors: [{matchLabels: {team: x}}, {matchLabels: {team: x}}]\n    serviceSelectors: [{matchExpressions: [{key: app, operator: Near, values: [y]}]}]\n",
        );
        let built = build_pools(&[empty, twice, twice_again, selectors], &BTreeSet::new());
        let text = reasons(&built).join("\n");
        for expected in [
            "IPAddressPool empty: spec.addresses: the pool has no addresses",
            "IPAddressPool twice: metadata.name: another pool has the same name",
            "spec.serviceAllocation.namespaces: namespace \"a\" is listed twice",
            "spec.serviceAllocation.namespaceSelectors[1]: selector `team=x` is listed twice",
            "spec.serviceAllocation.serviceSelectors[0]: invalid label selector",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(built.pools.len(), 1, "only the first `twice` is served");
    }
}
