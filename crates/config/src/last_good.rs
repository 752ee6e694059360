//! Serving the last good version of an object that an edit made invalid.
//!
//! MetalLB refuses a whole new configuration when one object in it is wrong and keeps serving
//! the previous one. [`build`](crate::build) is finer: it leaves out only the bad objects. On
//! its own that would turn a typo in an edited pool into the pool vanishing and every Service
//! in it losing its address. [`LastGood`] closes that gap: an object that was served before and
//! is now invalid is served at its last valid version (and its errors are still reported),
//! while an object that was never valid is left out. Deleting an object is deliberate and is
//! never undone.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::{v1beta1, v1beta2};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{Built, Resources, build};

/// An object kept at an older version than the one in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stale {
    pub kind: &'static str,
    pub name: String,
}

/// What to serve: the configuration, every error of the objects as they are written now, and
/// the objects served at their last good version instead.
#[derive(Debug, Default)]
pub struct Served {
    pub built: Built,
    pub stale: Vec<Stale>,
}

/// The last version of each object that was valid, by kind and name.
#[derive(Debug, Default)]
pub struct LastGood {
    versions: BTreeMap<(&'static str, String), serde_json::Value>,
}

impl LastGood {
    /// Builds `current`, substituting the last good version of each object that is now
    /// invalid, and remembers the versions that were valid this time.
    pub fn build(&mut self, current: &Resources, keep_pools: &BTreeSet<String>) -> Served {
        let first = build(current, keep_pools);
        let bad: BTreeSet<(&'static str, String)> = first
            .errors
            .iter()
            .map(|e| (e.kind, e.name.clone()))
            .collect();
        let mut substituted = current.clone();
        let mut stale = Vec::new();
        {
            let mut swap = Swap {
                bad: &bad,
                versions: &self.versions,
                stale: &mut stale,
            };
            swap.apply("IPAddressPool", &mut substituted.pools);
            swap.apply("L2Advertisement", &mut substituted.l2_advertisements);
            swap.apply("BGPAdvertisement", &mut substituted.bgp_advertisements);
            swap.apply("BGPPeer", &mut substituted.peers);
            swap.apply("BFDProfile", &mut substituted.bfd_profiles);
            swap.apply("Community", &mut substituted.communities);
        }
        let built = if stale.is_empty() {
            first
        } else {
            let second = build(&substituted, keep_pools);
            let mut errors = first.errors;
            for error in second.errors {
                if !errors.contains(&error) {
                    errors.push(error);
                }
            }
            Built {
                config: second.config,
                errors,
                warnings: second.warnings,
            }
        };
        let served_bad: BTreeSet<(&'static str, String)> = built
            .errors
            .iter()
            .map(|e| (e.kind, e.name.clone()))
            .collect();
        let mut versions = BTreeMap::new();
        remember(
            "IPAddressPool",
            &substituted.pools,
            &served_bad,
            &mut versions,
        );
        remember(
            "L2Advertisement",
            &substituted.l2_advertisements,
            &served_bad,
            &mut versions,
        );
        remember(
            "BGPAdvertisement",
            &substituted.bgp_advertisements,
            &served_bad,
            &mut versions,
        );
        remember("BGPPeer", &substituted.peers, &served_bad, &mut versions);
        remember(
            "BFDProfile",
            &substituted.bfd_profiles,
            &served_bad,
            &mut versions,
        );
        remember(
            "Community",
            &substituted.communities,
            &served_bad,
            &mut versions,
        );
        // A stale object stays remembered at its old version even if the second build found
        // something new to say about it: it was valid once, and may be again.
        for Stale { kind, name } in &stale {
            if let Some(old) = self.versions.get(&(*kind, name.clone())) {
                versions.insert((*kind, name.clone()), old.clone());
            }
        }
        self.versions = versions;
        Served { built, stale }
    }
}

struct Swap<'a> {
    bad: &'a BTreeSet<(&'static str, String)>,
    versions: &'a BTreeMap<(&'static str, String), serde_json::Value>,
    stale: &'a mut Vec<Stale>,
}

impl Swap<'_> {
    fn apply<T: Named + Serialize + DeserializeOwned>(
        &mut self,
        kind: &'static str,
        objects: &mut [T],
    ) {
        for object in objects.iter_mut() {
            let key = (kind, object.name().to_owned());
            if !self.bad.contains(&key) {
                continue;
            }
            let Some(old) = self.versions.get(&key) else {
                continue;
            };
            // Versions are stored from values of the very same type, so this only fails if
            // the type changed under a running process, which cannot happen.
            if let Ok(old) = serde_json::from_value::<T>(old.clone()) {
                *object = old;
                self.stale.push(Stale { kind, name: key.1 });
            }
        }
    }
}

fn remember<T: Named + Serialize>(
    kind: &'static str,
    objects: &[T],
    bad: &BTreeSet<(&'static str, String)>,
    versions: &mut BTreeMap<(&'static str, String), serde_json::Value>,
) {
    for object in objects {
        let key = (kind, object.name().to_owned());
        if bad.contains(&key) || key.1.is_empty() {
            continue;
        }
        if let Ok(value) = serde_json::to_value(object) {
            versions.insert(key, value);
        }
    }
}

trait Named {
    fn name(&self) -> &str;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or_default()
            }
        }
    )*};
}

named!(
    v1beta1::IPAddressPool,
    v1beta1::L2Advertisement,
    v1beta1::BGPAdvertisement,
    v1beta2::BGPPeer,
    v1beta1::BFDProfile,
    v1beta1::Community
);

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Resources {
        let mut resources = Resources::default();
        let errors = resources.add_yaml("test", yaml);
        assert!(errors.is_empty(), "{errors:?}");
        resources
    }

    fn pool(name: &str, addresses: &str) -> String {
        format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [\"{addresses}\"]\n"
        )
    }

    fn ranges(served: &Served, name: &str) -> Vec<String> {
        served
            .built
            .config
            .pools
            .get(name)
            .map(|p| p.ranges.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn an_edit_that_breaks_a_pool_keeps_serving_its_last_good_version() {
        let mut last_good = LastGood::default();
        let good = last_good.build(&resources(&pool("a", "198.51.100.0/28")), &BTreeSet::new());
        assert!(good.built.errors.is_empty());
        assert!(good.stale.is_empty());

        let broken = last_good.build(&resources(&pool("a", "198.51.100.0/33")), &BTreeSet::new());
        assert_eq!(broken.built.errors.len(), 1, "{:?}", broken.built.errors);
        assert_eq!(broken.built.errors[0].name, "a");
        assert_eq!(
            broken.stale,
            vec![Stale {
                kind: "IPAddressPool",
                name: "a".into()
            }]
        );
        assert_eq!(ranges(&broken, "a"), ranges(&good, "a"));

        // Still broken on the next build: still the old version.
        let again = last_good.build(&resources(&pool("a", "not-an-ip")), &BTreeSet::new());
        assert_eq!(ranges(&again, "a"), ranges(&good, "a"));

        let fixed = last_good.build(&resources(&pool("a", "198.51.100.16/28")), &BTreeSet::new());
        assert!(fixed.built.errors.is_empty());
        assert!(fixed.stale.is_empty());
        assert_ne!(ranges(&fixed, "a"), ranges(&good, "a"));
    }

    #[test]
    fn an_object_never_valid_is_left_out() {
        let mut last_good = LastGood::default();
        let served = last_good.build(&resources(&pool("a", "198.51.100.0/33")), &BTreeSet::new());
        assert_eq!(served.built.errors.len(), 1);
        assert!(served.stale.is_empty());
        assert!(served.built.config.pools.get("a").is_none());
    }

    #[test]
    fn a_deleted_object_is_not_brought_back() {
        let mut last_good = LastGood::default();
        last_good.build(&resources(&pool("a", "198.51.100.0/28")), &BTreeSet::new());
        let gone = last_good.build(&Resources::default(), &BTreeSet::new());
        assert!(gone.built.config.pools.is_empty());
        // Re-created broken after the deletion: there is no good version to fall back to.
        let broken = last_good.build(&resources(&pool("a", "198.51.100.0/33")), &BTreeSet::new());
        assert!(broken.built.config.pools.get("a").is_none());
    }
}
