//! What L2 and BGP advertisements share: which served pools they cover (by name, by label, or
//! all of them), and the Services and nodes they apply to.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::v1beta1::IPAddressPool;
use ferrolb_ipam::Pools;
use ferrolb_labels::{Labels, Selector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::pools::{selectors, unique};

/// The labels of every served pool, by name: what advertisements select pools by.
pub type PoolLabels<'a> = BTreeMap<&'a str, Labels>;

pub fn served_pool_labels<'a>(resources: &'a [IPAddressPool], served: &Pools) -> PoolLabels<'a> {
    resources
        .iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            served.get(name)?;
            Some((name, p.metadata.labels.clone().unwrap_or_default()))
        })
        .collect()
}

/// An advertisement's reach, validated.
pub(crate) struct Scope {
    /// The served pools it covers: named or selected, and every pool when it names none and
    /// selects none (MetalLB's rule).
    pub pools: BTreeSet<String>,
    /// Pool names it gives that no served pool has: MetalLB ignores them silently, we warn.
    pub unknown_pools: Vec<String>,
    pub service_selectors: Vec<Selector>,
    pub node_selectors: Vec<Selector>,
}

/// Validates the four fields both advertisement kinds have, reporting problems by field.
pub(crate) fn scope(
    pool_names: &[String],
    pool_selectors: &[LabelSelector],
    service_selectors: &[LabelSelector],
    node_selectors: &[LabelSelector],
    pool_labels: &PoolLabels,
    report: &mut dyn FnMut(String, String),
) -> Scope {
    let named = unique(pool_names, "spec.ipAddressPools", "pool", report);
    let pool_selectors = selectors(pool_selectors, "spec.ipAddressPoolSelectors", report);
    let every_pool = named.is_empty() && pool_selectors.is_empty();
    Scope {
        pools: pool_labels
            .iter()
            .filter(|(pool, labels)| {
                every_pool
                    || named.contains(**pool)
                    || pool_selectors.iter().any(|s| s.matches(labels))
            })
            .map(|(pool, _)| pool.to_string())
            .collect(),
        unknown_pools: named
            .iter()
            .filter(|name| !pool_labels.contains_key(name.as_str()))
            .cloned()
            .collect(),
        service_selectors: selectors(service_selectors, "spec.serviceSelectors", report),
        node_selectors: selectors(node_selectors, "spec.nodeSelectors", report),
    }
}
