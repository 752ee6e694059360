//! MetalLB's legacy configuration format (before v0.13): the `config` key of the `metallb`
//! ConfigMap, or the same structure under `configInline` in the old Helm chart's values.
//! Only reading it lives here; turning it into metallb.io resources is `migrate`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The legacy document: `peers`, `bgp-communities`, `address-pools`, `bfd-profiles`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LegacyConfig {
    #[serde(default)]
    pub peers: Vec<LegacyPeer>,
    #[serde(default, rename = "bgp-communities")]
    pub bgp_communities: BTreeMap<String, String>,
    #[serde(default, rename = "address-pools")]
    pub address_pools: Vec<LegacyPool>,
    #[serde(default, rename = "bfd-profiles")]
    pub bfd_profiles: Vec<LegacyBfdProfile>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LegacyPeer {
    #[serde(default)]
    pub my_asn: u32,
    #[serde(default)]
    pub peer_asn: u32,
    #[serde(default)]
    pub peer_address: String,
    #[serde(default)]
    pub source_address: String,
    #[serde(default)]
    pub peer_port: u16,
    #[serde(default)]
    pub hold_time: String,
    #[serde(default)]
    pub keepalive_time: String,
    #[serde(default)]
    pub router_id: String,
    #[serde(default)]
    pub node_selectors: Vec<LegacyNodeSelector>,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub bfd_profile: String,
    #[serde(default)]
    pub ebgp_multihop: bool,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LegacyNodeSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LegacySelectorRequirement>,
}

/// Legacy selectors spell these keys in lower case; MetalLB's Go decoder matched them without
/// regard to case, so both spellings are accepted.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LegacySelectorRequirement {
    #[serde(alias = "Key")]
    pub key: String,
    #[serde(alias = "Operator")]
    pub operator: String,
    #[serde(default, alias = "Values")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum LegacyProtocol {
    #[serde(rename = "layer2")]
    Layer2,
    #[serde(rename = "bgp")]
    Bgp,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LegacyPool {
    pub name: String,
    pub protocol: LegacyProtocol,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub auto_assign: Option<bool>,
    #[serde(default, rename = "avoid-buggy-ips")]
    pub avoid_buggy_ips: Option<bool>,
    #[serde(default)]
    pub bgp_advertisements: Vec<LegacyBgpAdvertisement>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LegacyBgpAdvertisement {
    #[serde(default, rename = "aggregation-length")]
    pub aggregation_length: Option<i32>,
    #[serde(default, rename = "aggregation-length-v6")]
    pub aggregation_length_v6: Option<i32>,
    #[serde(default)]
    pub localpref: u32,
    #[serde(default)]
    pub communities: Vec<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LegacyBfdProfile {
    pub name: String,
    #[serde(default)]
    pub receive_interval: Option<u32>,
    #[serde(default)]
    pub transmit_interval: Option<u32>,
    #[serde(default)]
    pub detect_multiplier: Option<u32>,
    #[serde(default)]
    pub echo_interval: Option<u32>,
    #[serde(default)]
    pub echo_mode: bool,
    #[serde(default)]
    pub passive_mode: bool,
    #[serde(default)]
    pub minimum_ttl: Option<u32>,
}

/// A legacy configuration as read from a file, and the namespace its ConfigMap named, if any.
#[derive(Debug, PartialEq)]
pub struct LegacyInput {
    pub config: LegacyConfig,
    pub namespace: Option<String>,
}

/// Reads any of the three shapes users have: a whole `ConfigMap` (its `data.config`), the bare
/// contents of `data.config`, or old Helm values with the configuration under `configInline`.
pub fn read(text: &str) -> Result<LegacyInput, String> {
    let document: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|err| format!("not YAML: {err}"))?;
    let from_value = |value: serde_json::Value, what: &str| -> Result<LegacyConfig, String> {
        serde_json::from_value(value).map_err(|err| format!("{what}: {err}"))
    };
    if document.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
        let config = document
            .pointer("/data/config")
            .and_then(|c| c.as_str())
            .ok_or("the ConfigMap has no data.config, where MetalLB kept its configuration")?;
        let inner: serde_json::Value = serde_saphyr::from_str(config)
            .map_err(|err| format!("data.config is not YAML: {err}"))?;
        return Ok(LegacyInput {
            config: from_value(inner, "data.config")?,
            namespace: document
                .pointer("/metadata/namespace")
                .and_then(|n| n.as_str())
                .map(str::to_string),
        });
    }
    if let Some(inline) = document.get("configInline") {
        return Ok(LegacyInput {
            config: from_value(inline.clone(), "configInline")?,
            namespace: None,
        });
    }
    Ok(LegacyInput {
        config: from_value(document, "legacy configuration")?,
        namespace: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = r#"
peers:
- peer-address: 198.51.100.3
  peer-asn: 64501
  my-asn: 64500
  hold-time: 120s
  node-selectors:
  - match-labels: {rack: r1}
    match-expressions:
    - {key: kubernetes.io/arch, operator: In, values: [amd64]}
bgp-communities:
  no-export: "65535:65281"
address-pools:
- name: lan
  protocol: layer2
  addresses: [198.51.100.200-198.51.100.250]
- name: routed
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [203.0.113.0/25]
  bgp-advertisements:
  - {aggregation-length: 32, localpref: 100, communities: [no-export]}
"#;

    #[test]
    fn reads_the_bare_configuration() {
        let input = read(DATA).expect("valid legacy data");
        assert_eq!(input.namespace, None);
        let config = input.config;
        assert_eq!(config.peers[0].peer_asn, 64501);
        assert_eq!(
            config.peers[0].node_selectors[0].match_expressions[0].values,
            ["amd64"]
        );
        assert_eq!(config.bgp_communities["no-export"], "65535:65281");
        assert_eq!(config.address_pools[1].protocol, LegacyProtocol::Bgp);
        assert_eq!(config.address_pools[1].auto_assign, Some(false));
        assert_eq!(config.address_pools[1].bgp_advertisements[0].localpref, 100);
    }

    #[test]
    fn reads_a_configmap_and_keeps_its_namespace() {
        let indented: String = DATA.lines().map(|l| format!("    {l}\n")).collect();
        let configmap = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: lb\ndata:\n  config: |\n{indented}"
        );
        let input = read(&configmap).expect("valid ConfigMap");
        assert_eq!(input.namespace.as_deref(), Some("lb"));
        assert_eq!(input.config, read(DATA).expect("valid").config);
    }

    #[test]
    fn reads_helm_config_inline() {
        let indented: String = DATA.lines().map(|l| format!("  {l}\n")).collect();
        let values = format!("configInline:\n{indented}");
        assert_eq!(
            read(&values).expect("valid values").config,
            read(DATA).expect("valid").config
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err =
            read("address-pools:\n- name: x\n  protocol: layer3\n").expect_err("bad protocol");
        assert!(err.contains("layer3"), "{err}");
        let err = read("address-pool:\n- name: x\n").expect_err("misspelt key");
        assert!(err.contains("address-pool"), "{err}");
        let err = read("kind: ConfigMap\ndata: {}\n").expect_err("empty ConfigMap");
        assert!(err.contains("data.config"), "{err}");
    }
}
