//! MetalLB's legacy configuration → metallb.io resources as YAML, named as MetalLB's own
//! converter names them (`peer1…`, `bgpadvertisement1…`, `l2advertisement1…`, one Community
//! `communities`), so that a migration from either tool gives the same objects. The output is
//! read back and built before it is returned: a migration never hands out a configuration that
//! would not be served.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::legacy::{LegacyConfig, LegacyInput, LegacyProtocol};
use crate::{ConfigError, Resources, build};

pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// The resources as multi-document YAML, or every problem the converted configuration has.
pub fn migrate(input: &LegacyInput) -> Result<String, Vec<ConfigError>> {
    let namespace = input.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let documents = documents(&input.config, namespace);
    let mut yaml =
        String::from("# Converted from MetalLB's legacy configuration by `ferrolb migrate`.\n");
    for document in &documents {
        let text = serde_saphyr::to_string(document)
            .map_err(|err| vec![ConfigError::new("YAML", "output", "", err.to_string())])?;
        yaml.push_str("---\n");
        yaml.push_str(&text);
    }
    let mut resources = Resources::default();
    let mut errors = resources.add_yaml("converted", &yaml);
    errors.extend(build(&resources, &BTreeSet::new()).errors);
    if errors.is_empty() {
        Ok(yaml)
    } else {
        Err(errors)
    }
}

fn metadata(name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace})
}

fn documents(config: &LegacyConfig, namespace: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (index, peer) in config.peers.iter().enumerate() {
        // MetalLB's converter writes the legacy defaults out: hold 90 s, keepalive a third.
        let hold = if peer.hold_time.is_empty() {
            "90s".to_string()
        } else {
            peer.hold_time.clone()
        };
        let keepalive = if peer.keepalive_time.is_empty() {
            crate::duration::parse(&hold)
                .map(|h| format!("{}s", (h / 3).as_secs()))
                .unwrap_or_default()
        } else {
            peer.keepalive_time.clone()
        };
        let mut spec = json!({
            "myASN": peer.my_asn,
            "peerASN": peer.peer_asn,
            "peerAddress": peer.peer_address,
            "peerPort": if peer.peer_port == 0 { 179 } else { peer.peer_port },
            "holdTime": hold,
        });
        let optional = [
            ("keepaliveTime", keepalive.as_str()),
            ("sourceAddress", peer.source_address.as_str()),
            ("routerID", peer.router_id.as_str()),
            ("password", peer.password.as_str()),
            ("bfdProfile", peer.bfd_profile.as_str()),
        ];
        for (key, value) in optional {
            if !value.is_empty() {
                spec[key] = json!(value);
            }
        }
        if peer.ebgp_multihop {
            spec["ebgpMultiHop"] = json!(true);
        }
        if !peer.node_selectors.is_empty() {
            spec["nodeSelectors"] = peer
                .node_selectors
                .iter()
                .map(|s| {
                    let expressions: Vec<Value> = s
                        .match_expressions
                        .iter()
                        .map(|e| json!({"key": e.key, "operator": e.operator, "values": e.values}))
                        .collect();
                    json!({"matchLabels": s.match_labels, "matchExpressions": expressions})
                })
                .collect();
        }
        out.push(
            json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": metadata(&format!("peer{}", index + 1), namespace), "spec": spec}),
        );
    }
    for pool in &config.address_pools {
        out.push(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": metadata(&pool.name, namespace),
            "spec": {"addresses": pool.addresses, "autoAssign": pool.auto_assign.unwrap_or(true),
                     "avoidBuggyIPs": pool.avoid_buggy_ips.unwrap_or(false)}}),
        );
    }
    let mut bgp_index = 0;
    for pool in &config.address_pools {
        let mut advertisements: Vec<Value> = pool
            .bgp_advertisements
            .iter()
            .map(|a| {
                let mut spec = json!({"ipAddressPools": [pool.name]});
                if let Some(length) = a.aggregation_length {
                    spec["aggregationLength"] = json!(length);
                }
                if let Some(length) = a.aggregation_length_v6 {
                    spec["aggregationLengthV6"] = json!(length);
                }
                if a.localpref != 0 {
                    spec["localPref"] = json!(a.localpref);
                }
                if !a.communities.is_empty() {
                    spec["communities"] = json!(a.communities);
                }
                spec
            })
            .collect();
        if advertisements.is_empty() && pool.protocol == LegacyProtocol::Bgp {
            advertisements.push(json!({"ipAddressPools": [pool.name]}));
        }
        for spec in advertisements {
            bgp_index += 1;
            out.push(json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                "metadata": metadata(&format!("bgpadvertisement{bgp_index}"), namespace), "spec": spec}));
        }
    }
    for (index, pool) in config
        .address_pools
        .iter()
        .filter(|p| p.protocol == LegacyProtocol::Layer2)
        .enumerate()
    {
        out.push(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": metadata(&format!("l2advertisement{}", index + 1), namespace),
            "spec": {"ipAddressPools": [pool.name]}}),
        );
    }
    for profile in &config.bfd_profiles {
        let mut spec = json!({"echoMode": profile.echo_mode, "passiveMode": profile.passive_mode});
        let numbers = [
            ("receiveInterval", profile.receive_interval),
            ("transmitInterval", profile.transmit_interval),
            ("detectMultiplier", profile.detect_multiplier),
            ("echoInterval", profile.echo_interval),
            ("minimumTtl", profile.minimum_ttl),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                spec[key] = json!(value);
            }
        }
        out.push(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
            "metadata": metadata(&profile.name, namespace), "spec": spec}),
        );
    }
    if !config.bgp_communities.is_empty() {
        let aliases: Vec<Value> = config
            .bgp_communities
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        out.push(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "Community",
            "metadata": metadata("communities", namespace), "spec": {"communities": aliases}}),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::read;

    const LEGACY: &str = r#"
peers:
- {peer-address: 198.51.100.3, peer-asn: 64501, my-asn: 64500, hold-time: 120s, bfd-profile: fast,
   node-selectors: [{match-labels: {rack: r1}}]}
bgp-communities: {no-export: "65535:65281"}
address-pools:
- {name: lan, protocol: layer2, addresses: [198.51.100.200-198.51.100.250]}
- name: routed
  protocol: bgp
  avoid-buggy-ips: true
  addresses: [203.0.113.0/25]
  bgp-advertisements:
  - {aggregation-length: 32, localpref: 100, communities: [no-export]}
  - {aggregation-length: 30, communities: ["64500:7"]}
- {name: quiet, protocol: bgp, auto-assign: false, addresses: ["2001:db8:203::/120"]}
bfd-profiles:
- {name: fast, receive-interval: 100, transmit-interval: 100, detect-multiplier: 3}
"#;

    #[test]
    fn legacy_configuration_becomes_the_resources_metallb_would_make_and_they_build() {
        let yaml = migrate(&read(LEGACY).expect("valid legacy")).expect("converts cleanly");
        let mut resources = Resources::default();
        assert!(resources.add_yaml("out", &yaml).is_empty(), "{yaml}");
        let built = build(&resources, &BTreeSet::new());
        assert!(
            built.errors.is_empty() && built.warnings.is_empty(),
            "{:?}\n{yaml}",
            built.errors
        );
        let config = built.config;
        let peer = &config.peers["peer1"];
        assert_eq!(peer.hold_time.map(|d| d.as_secs()), Some(120));
        assert_eq!(peer.keepalive_time.map(|d| d.as_secs()), Some(40));
        assert_eq!(peer.bfd_profile.as_deref(), Some("fast"));
        assert_eq!(peer.node_selectors.len(), 1);
        let names: Vec<&str> = config
            .bgp_advertisements
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "bgpadvertisement1",
                "bgpadvertisement2",
                "bgpadvertisement3"
            ]
        );
        assert_eq!(config.bgp_advertisements[0].local_pref, Some(100));
        assert_eq!(
            config.bgp_advertisements[2].pools,
            BTreeSet::from(["quiet".to_string()])
        );
        assert_eq!(config.l2_advertisements[0].name, "l2advertisement1");
        assert_eq!(
            config.l2_advertisements[0].pools,
            BTreeSet::from(["lan".to_string()])
        );
        assert!(!config.pools.get("quiet").expect("quiet pool").auto_assign);
        assert!(
            config
                .pools
                .get("routed")
                .expect("routed pool")
                .avoid_buggy_ips
        );
        assert!(config.communities.contains_key("no-export"));
        assert!(yaml.contains("namespace: metallb-system"), "{yaml}");
    }

    #[test]
    fn a_legacy_configuration_that_would_not_serve_is_refused_with_reasons() {
        let broken = "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n- {name: b, protocol: layer2, addresses: [192.0.2.8/29]}\n";
        let errors = migrate(&read(broken).expect("valid legacy")).expect_err("overlapping pools");
        assert!(
            errors[0]
                .to_string()
                .contains("IPAddressPool b: spec.addresses: 192.0.2.8/29 overlaps"),
            "{errors:?}"
        );
    }
}
