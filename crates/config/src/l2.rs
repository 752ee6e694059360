//! L2Advertisement resources → which pools are announced over ARP/NDP, from which nodes and
//! interfaces. Node and service selectors stay selectors: the speaker evaluates them against the
//! nodes and Services it sees, so node churn never needs a config rebuild.

use std::collections::BTreeSet;

use ferrolb_api::v1beta1::L2Advertisement as L2AdvertisementResource;
use ferrolb_labels::Selector;

use crate::ConfigError;
use crate::scope::{PoolLabels, scope};

const KIND: &str = "L2Advertisement";

/// One validated L2Advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Advertisement {
    pub name: String,
    /// The served pools it announces (no pool names or selectors: every pool, as in MetalLB).
    pub pools: BTreeSet<String>,
    /// Services it applies to; empty: all.
    pub service_selectors: Vec<Selector>,
    /// Nodes that may announce; empty: all.
    pub node_selectors: Vec<Selector>,
    /// Weighted preferences among the eligible nodes.
    pub preferred_nodes: Vec<(Selector, u32)>,
    /// Interfaces to announce on; empty: every interface but the default exclusions.
    pub interfaces: Vec<String>,
}

/// The advertisements that can be served, the errors that left others out, and warnings about
/// served ones (a pool name that names no served pool: MetalLB ignores it silently).
#[derive(Debug, Default)]
pub struct BuiltL2 {
    pub advertisements: Vec<L2Advertisement>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

pub fn build_l2(resources: &[L2AdvertisementResource], pool_labels: &PoolLabels) -> BuiltL2 {
    let mut built = BuiltL2::default();
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
        let mut preferred_nodes = Vec::new();
        for (index, preferred) in spec.preferred_node_selectors.iter().enumerate() {
            let field = format!("spec.preferredNodeSelectors[{index}]");
            let weight = u32::try_from(preferred.weight)
                .ok()
                .filter(|w| (1..=100).contains(w));
            match (Selector::from_k8s(&preferred.preference), weight) {
                (Ok(selector), Some(weight)) => preferred_nodes.push((selector, weight)),
                (Err(err), _) => report(format!("{field}.preference"), err.to_string()),
                (_, None) => report(
                    format!("{field}.weight"),
                    format!("{} is not from 1 to 100", preferred.weight),
                ),
            }
        }
        let mut interfaces = BTreeSet::new();
        for (index, interface) in spec.interfaces.iter().enumerate() {
            if let Some(why) = bad_interface_name(interface) {
                report(
                    format!("spec.interfaces[{index}]"),
                    format!("{interface:?} {why}"),
                );
            } else if !interfaces.insert(interface.clone()) {
                report(
                    format!("spec.interfaces[{index}]"),
                    format!("{interface:?} is listed twice"),
                );
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
                format!("no served pool is named {pool:?}; it announces nothing for it"),
            ));
        }
        built.advertisements.push(L2Advertisement {
            name,
            pools: scope.pools,
            service_selectors: scope.service_selectors,
            node_selectors: scope.node_selectors,
            preferred_nodes,
            interfaces: interfaces.into_iter().collect(),
        });
    }
    built
}

/// Linux interface names: 1 to 15 bytes, no '/', no whitespace, not "." or "..".
pub(crate) fn bad_interface_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 15 {
        Some("is not 1 to 15 characters long, as Linux interface names are")
    } else if name.contains('/')
        || name.chars().any(char::is_whitespace)
        || name == "."
        || name == ".."
    {
        Some("cannot be a Linux interface name")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::build_pools;
    use crate::scope::served_pool_labels;
    use ferrolb_api::v1beta1::IPAddressPool;
    use ferrolb_ipam::Pools;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).expect("test YAML")
    }

    fn setup() -> (Vec<IPAddressPool>, Pools) {
        let pools: Vec<IPAddressPool> = ["lan", "routed", "spare"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                from_yaml(&format!(
                    "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, labels: {{zone: z{}}}}}\nspec:\n  addresses: ['192.0.2.{}/28']\n",
                    i % 2,
                    i * 16
                ))
            })
            .collect();
        let served = build_pools(&pools, &BTreeSet::new()).pools;
        (pools, served)
    }

    fn advertisement(spec: &str) -> L2AdvertisementResource {
        from_yaml(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: adv}}\n{spec}"
        ))
    }

    #[test]
    fn no_pool_names_or_selectors_means_every_pool() {
        let (pools, served) = setup();
        let built = build_l2(&[advertisement("")], &served_pool_labels(&pools, &served));
        assert!(built.errors.is_empty() && built.warnings.is_empty());
        assert_eq!(
            built.advertisements[0].pools,
            BTreeSet::from(["lan".into(), "routed".into(), "spare".into()])
        );
        assert!(
            built.advertisements[0].interfaces.is_empty()
                && built.advertisements[0].node_selectors.is_empty()
        );
    }

    #[test]
    fn pools_by_name_and_by_label_are_joined_and_unknown_names_warn() {
        let (pools, served) = setup();
        let adv = advertisement(
            "spec:\n  ipAddressPools: [routed, gone]\n  ipAddressPoolSelectors: [{matchLabels: {zone: z0}}]\n  interfaces: [eth1]\n  preferredNodeSelectors: [{preference: {matchLabels: {rack: a}}, weight: 50}]\n",
        );
        let built = build_l2(&[adv], &served_pool_labels(&pools, &served));
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let served_adv = &built.advertisements[0];
        assert_eq!(
            served_adv.pools,
            BTreeSet::from(["lan".into(), "routed".into(), "spare".into()])
        );
        assert_eq!(served_adv.interfaces, ["eth1"]);
        assert_eq!(served_adv.preferred_nodes[0].1, 50);
        assert_eq!(built.warnings.len(), 1);
        assert!(
            built.warnings[0]
                .to_string()
                .contains("no served pool is named \"gone\""),
            "{}",
            built.warnings[0]
        );
    }

    #[test]
    fn mistakes_leave_the_advertisement_out_and_are_all_named() {
        let (pools, served) = setup();
        let adv = advertisement(
            "spec:\n  ipAddressPools: [lan, lan]\n  nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]\n  interfaces: [eth0, eth0, 'bad/name', averyveryverylongname]\n  preferredNodeSelectors: [{preference: {matchExpressions: [{key: k, operator: Bogus}]}, weight: 5}]\n",
        );
        let built = build_l2(&[adv], &served_pool_labels(&pools, &served));
        assert!(built.advertisements.is_empty());
        let text: Vec<String> = built.errors.iter().map(ToString::to_string).collect();
        for expected in [
            "L2Advertisement adv: spec.ipAddressPools: pool \"lan\" is listed twice",
            "spec.nodeSelectors[1]: selector `a=b` is listed twice",
            "spec.interfaces[1]: \"eth0\" is listed twice",
            "spec.interfaces[2]: \"bad/name\" cannot be a Linux interface name",
            "spec.interfaces[3]: \"averyveryverylongname\" is not 1 to 15 characters",
            "spec.preferredNodeSelectors[0].preference: invalid label selector",
        ] {
            assert!(
                text.iter().any(|t| t.contains(expected)),
                "missing {expected:?} in {text:#?}"
            );
        }
    }
}
