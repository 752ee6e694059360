//! All metallb.io resources → one [`Config`], and reading them from YAML files.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::{v1beta1, v1beta2};
use ferrolb_ipam::Pools;
use serde::de::DeserializeOwned;

use crate::ConfigError;
use crate::bgp::{BgpAdvertisement, build_bgp};
use crate::community::Community;
use crate::l2::{L2Advertisement, build_l2};
use crate::peers::{BfdProfile, Peer, build_peers};
use crate::pools::build_pools;
use crate::scope::served_pool_labels;

/// The metallb.io resources of one namespace (or of some files), as they were written.
#[derive(Debug, Default, Clone)]
pub struct Resources {
    pub pools: Vec<v1beta1::IPAddressPool>,
    pub l2_advertisements: Vec<v1beta1::L2Advertisement>,
    pub bgp_advertisements: Vec<v1beta1::BGPAdvertisement>,
    /// v1beta1 peers are converted on reading, as the apiserver's conversion would.
    pub peers: Vec<v1beta2::BGPPeer>,
    pub bfd_profiles: Vec<v1beta1::BFDProfile>,
    pub communities: Vec<v1beta1::Community>,
}

/// Everything ferrolb serves.
#[derive(Debug, Default)]
pub struct Config {
    pub pools: Pools,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    pub communities: BTreeMap<String, Community>,
    pub peers: BTreeMap<String, Peer>,
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
}

/// What can be served, what cannot and why (errors), and what is served but looks wrong.
#[derive(Debug, Default)]
pub struct Built {
    pub config: Config,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

/// Builds the configuration. Each bad object is left out with all of its errors and the good
/// ones are served; of two conflicting pools, those in `keep_pools` win (see `pools`).
pub fn build(resources: &Resources, keep_pools: &BTreeSet<String>) -> Built {
    let pools = build_pools(&resources.pools, keep_pools);
    let pool_labels = served_pool_labels(&resources.pools, &pools.pools);
    let l2 = build_l2(&resources.l2_advertisements, &pool_labels);
    let bgp = build_bgp(
        &resources.bgp_advertisements,
        &resources.communities,
        &pool_labels,
        &pools.pools,
    );
    let peers = build_peers(&resources.peers, &resources.bfd_profiles);
    let mut warnings = l2.warnings;
    warnings.extend(bgp.warnings);
    for advertisement in &bgp.advertisements {
        for peer in advertisement
            .peers
            .iter()
            .filter(|p| !peers.peers.contains_key(*p))
        {
            warnings.push(ConfigError::new(
                "BGPAdvertisement",
                &advertisement.name,
                "spec.peers",
                format!("no valid BGPPeer is named {peer:?}; nothing is advertised to it"),
            ));
        }
    }
    let mut errors = pools.errors;
    errors.extend(l2.errors);
    errors.extend(bgp.errors);
    errors.extend(peers.errors);
    // MetalLB's rule: BFD echo mode cannot run beside IPv6 routes on a session. The
    // advertisement is left out rather than the peer, whose other routes stay up.
    let mut bgp_advertisements = bgp.advertisements;
    bgp_advertisements.retain(|advertisement| {
        let has_v6 = advertisement.pools.iter().filter_map(|p| pools.pools.get(p)).flat_map(|p| &p.ranges).any(|r| r.first().is_ipv6());
        let echo_peer = peers.peers.values().find(|peer| {
            (advertisement.peers.is_empty() || advertisement.peers.contains(&peer.name))
                && peer.bfd_profile.as_ref().and_then(|b| peers.bfd_profiles.get(b)).is_some_and(|b| b.echo_mode)
        });
        match echo_peer.filter(|_| has_v6) {
            Some(peer) => {
                errors.push(ConfigError::new(
                    "BGPAdvertisement",
                    &advertisement.name,
                    "spec",
                    format!("it advertises IPv6 addresses to peer `{}`, whose BFD profile enables echo mode, which IPv6 sessions cannot use", peer.name),
                ));
                false
            }
            None => true,
        }
    });
    Built {
        config: Config {
            pools: pools.pools,
            l2_advertisements: l2.advertisements,
            bgp_advertisements,
            communities: bgp.communities,
            peers: peers.peers,
            bfd_profiles: peers.bfd_profiles,
        },
        errors,
        warnings,
    }
}

impl Resources {
    /// Adds every metallb.io object of a multi-document YAML text. Documents of other groups
    /// (a Service, a Deployment in the same file) are skipped; status-only kinds too.
    /// `source` names the text in errors.
    pub fn add_yaml(&mut self, source: &str, text: &str) -> Vec<ConfigError> {
        let documents: Vec<serde_json::Value> = match serde_saphyr::from_multiple(text) {
            Ok(documents) => documents,
            Err(err) => {
                return vec![ConfigError::new(
                    "YAML",
                    source,
                    "",
                    format!("not valid YAML: {err}"),
                )];
            }
        };
        let mut errors = Vec::new();
        for (index, document) in documents.into_iter().enumerate() {
            if document.is_null() {
                continue;
            }
            let at = format!("{source}, document {}", index + 1);
            let api_version = document
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let kind = document
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            if !api_version.starts_with("metallb.io/") {
                continue;
            }
            let result = match (api_version.as_str(), kind.as_str()) {
                ("metallb.io/v1beta1", "IPAddressPool") => {
                    parse(document).map(|o| self.pools.push(o))
                }
                ("metallb.io/v1beta1", "L2Advertisement") => {
                    parse(document).map(|o| self.l2_advertisements.push(o))
                }
                ("metallb.io/v1beta1", "BGPAdvertisement") => {
                    parse(document).map(|o| self.bgp_advertisements.push(o))
                }
                ("metallb.io/v1beta1", "BFDProfile") => {
                    parse(document).map(|o| self.bfd_profiles.push(o))
                }
                ("metallb.io/v1beta1", "Community") => {
                    parse(document).map(|o| self.communities.push(o))
                }
                ("metallb.io/v1beta2", "BGPPeer") => parse(document).map(|o| self.peers.push(o)),
                ("metallb.io/v1beta1", "BGPPeer") => {
                    parse::<v1beta1::BGPPeer>(document).map(|o| self.peers.push(o.into()))
                }
                (_, "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState") => Ok(()),
                _ => Err(format!(
                    "metallb.io has no kind {kind:?} in version {api_version:?}"
                )),
            };
            if let Err(reason) = result {
                errors.push(ConfigError::new("YAML", &at, &kind, reason));
            }
        }
        errors
    }

    pub fn len(&self) -> usize {
        self.pools.len()
            + self.l2_advertisements.len()
            + self.bgp_advertisements.len()
            + self.peers.len()
            + self.bfd_profiles.len()
            + self.communities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse<T: DeserializeOwned>(document: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(document).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: not-ours}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.200-198.51.100.250]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: old-style}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.3}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: to-nobody}
spec: {peers: [nobody]}
"#;

    #[test]
    fn a_mixed_file_builds_and_v1beta1_peers_are_converted() {
        let mut resources = Resources::default();
        assert!(resources.add_yaml("f.yaml", FILE).is_empty());
        assert_eq!(resources.len(), 4);
        let built = build(&resources, &BTreeSet::new());
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        assert_eq!(built.config.pools.len(), 1);
        assert_eq!(
            built.config.l2_advertisements[0].pools,
            BTreeSet::from(["lan".to_string()])
        );
        assert_eq!(built.config.peers["old-style"].port, 179);
        assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
        assert!(
            built.warnings[0]
                .to_string()
                .contains("no valid BGPPeer is named \"nobody\"")
        );
    }

    #[test]
    fn bfd_echo_on_a_peer_that_gets_ipv6_routes_is_refused() {
        let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: v6}\nspec: {addresses: ['2001:db8:203::/120']}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: v4}\nspec: {addresses: [203.0.113.0/28]}\n---\napiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: echo}\nspec: {echoMode: true}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.3, bfdProfile: echo}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: six}\nspec: {ipAddressPools: [v6]}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: four}\nspec: {ipAddressPools: [v4]}\n";
        let mut resources = Resources::default();
        assert!(resources.add_yaml("f", text).is_empty());
        let built = build(&resources, &BTreeSet::new());
        let served: Vec<&str> = built
            .config
            .bgp_advertisements
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(served, ["four"]);
        assert!(
            built.errors[0].to_string().starts_with(
                "BGPAdvertisement six: spec: it advertises IPv6 addresses to peer `r`"
            ),
            "{:?}",
            built.errors
        );
    }

    #[test]
    fn document_mistakes_name_the_document() {
        let mut resources = Resources::default();
        let errors = resources.add_yaml(
            "f.yaml",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddresPool\nmetadata: {name: x}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: y}\nspec: {addresses: 5}\n",
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        assert!(
            text[0].starts_with("YAML f.yaml, document 1: IPAddresPool: metallb.io has no kind"),
            "{text:#?}"
        );
        assert!(
            text[1].starts_with("YAML f.yaml, document 2: IPAddressPool:"),
            "{text:#?}"
        );
        let broken = Resources::default().add_yaml("g.yaml", "a: [");
        assert!(
            broken[0].to_string().contains("not valid YAML"),
            "{broken:?}"
        );
    }
}
