//! BGPPeer (v1beta2) and BFDProfile resources → validated BGP sessions and BFD profiles, with
//! MetalLB's rules (ASNs, dynamic ASN, address or interface, timers, password or secret, BFD
//! ranges) plus a few that spare users a session that could never come up (a non-IPv4 router
//! ID, a hold time beyond BGP's 65535 s). A password secret stays a reference: reading Secrets
//! is I/O and belongs to the speaker.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_api::v1beta1::BFDProfile as BfdProfileResource;
use ferrolb_api::v1beta2::{BGPPeer, DynamicAsn};
use ferrolb_labels::Selector;

use crate::l2::bad_interface_name;
use crate::pools::selectors;
use crate::{ConfigError, duration};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval_ms: Option<u32>,
    pub transmit_interval_ms: Option<u32>,
    pub detect_multiplier: Option<u32>,
    pub echo_interval_ms: Option<u32>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAsn {
    Fixed(u32),
    /// `dynamicASN: internal`: whatever the peer says, as long as it equals ours.
    Internal,
    /// `dynamicASN: external`: whatever the peer says, as long as it differs from ours.
    External,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEndpoint {
    Address(IpAddr),
    /// Unnumbered BGP over this interface.
    Interface(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    Inline(String),
    /// A `kubernetes.io/basic-auth` Secret in the config namespace, key `password`.
    Secret(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub my_asn: u32,
    pub peer_asn: PeerAsn,
    pub local_asn: Option<u32>,
    pub endpoint: PeerEndpoint,
    pub port: u16,
    pub source_address: Option<IpAddr>,
    /// Both or neither: one given alone implies the other (hold = 3 × keepalive), as in MetalLB.
    pub hold_time: Option<Duration>,
    pub keepalive_time: Option<Duration>,
    pub connect_time: Option<Duration>,
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer; empty: all.
    pub node_selectors: Vec<Selector>,
    pub password: Option<Password>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub ebgp_multihop: bool,
    pub vrf: Option<String>,
    pub disable_mp: bool,
    pub dual_stack_address_family: bool,
}

#[derive(Debug, Default)]
pub struct BuiltPeers {
    pub peers: BTreeMap<String, Peer>,
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    pub errors: Vec<ConfigError>,
}

pub fn build_peers(peer_resources: &[BGPPeer], bfd_resources: &[BfdProfileResource]) -> BuiltPeers {
    let mut built = BuiltPeers::default();
    for resource in bfd_resources {
        let name = resource.metadata.name.clone().unwrap_or_default();
        let spec = &resource.spec;
        let mut errors = Vec::new();
        let mut check = |value: Option<u32>, min: u32, max: u32, field: &str| {
            if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
                errors.push(ConfigError::new(
                    "BFDProfile",
                    &name,
                    field,
                    format!("{v} is not from {min} to {max}"),
                ));
            }
            value
        };
        let profile = BfdProfile {
            name: name.clone(),
            receive_interval_ms: check(spec.receive_interval, 10, 60000, "spec.receiveInterval"),
            transmit_interval_ms: check(spec.transmit_interval, 10, 60000, "spec.transmitInterval"),
            detect_multiplier: check(spec.detect_multiplier, 2, 255, "spec.detectMultiplier"),
            echo_interval_ms: check(spec.echo_interval, 10, 60000, "spec.echoInterval"),
            echo_mode: spec.echo_mode.unwrap_or(false),
            passive_mode: spec.passive_mode.unwrap_or(false),
            minimum_ttl: check(spec.minimum_ttl, 1, 254, "spec.minimumTtl"),
        };
        if errors.is_empty() {
            built.bfd_profiles.insert(name, profile);
        } else {
            built.errors.append(&mut errors);
        }
    }

    let mut sorted: Vec<&BGPPeer> = peer_resources.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for resource in sorted {
        let name = resource.metadata.name.clone().unwrap_or_default();
        match peer_from_resource(&name, resource, &built.bfd_profiles) {
            Ok(peer) => {
                let twin = built.peers.values().find(|other| {
                    other.endpoint == peer.endpoint
                        && other.port == peer.port
                        && other.vrf == peer.vrf
                        && other.node_selectors == peer.node_selectors
                });
                if let Some(twin) = twin {
                    built.errors.push(ConfigError::new(
                        "BGPPeer",
                        &name,
                        "spec",
                        format!("peer `{}` already opens this session (same address, port, VRF and nodes)", twin.name),
                    ));
                } else {
                    built.peers.insert(name, peer);
                }
            }
            Err(mut errors) => built.errors.append(&mut errors),
        }
    }
    built
}

fn peer_from_resource(
    name: &str,
    resource: &BGPPeer,
    profiles: &BTreeMap<String, BfdProfile>,
) -> Result<Peer, Vec<ConfigError>> {
    let spec = &resource.spec;
    let mut errors = Vec::new();
    let mut report = |field: String, reason: String| {
        errors.push(ConfigError::new("BGPPeer", name, &field, reason))
    };

    if spec.my_asn == 0 {
        report(
            "spec.myASN".into(),
            "the local ASN is missing (0 is not an ASN)".into(),
        );
    }
    let peer_asn = match (spec.peer_asn.filter(|a| *a != 0), &spec.dynamic_asn) {
        (Some(asn), None) => PeerAsn::Fixed(asn),
        (None, Some(DynamicAsn::Internal)) => PeerAsn::Internal,
        (None, Some(DynamicAsn::External)) => PeerAsn::External,
        (None, None) => {
            report("spec.peerASN".into(), "set peerASN or dynamicASN".into());
            PeerAsn::External
        }
        (Some(_), Some(_)) => {
            report(
                "spec.dynamicASN".into(),
                "peerASN and dynamicASN exclude each other".into(),
            );
            PeerAsn::External
        }
    };
    let ebgp_multihop = spec.ebgp_multi_hop.unwrap_or(false);
    let internal = match peer_asn {
        PeerAsn::Fixed(asn) => asn == spec.my_asn,
        PeerAsn::Internal => true,
        PeerAsn::External => false,
    };
    if ebgp_multihop && internal {
        report(
            "spec.ebgpMultiHop".into(),
            "ebgpMultiHop is for eBGP; this peer is iBGP".into(),
        );
    }
    let endpoint = match (
        spec.peer_address.as_deref().filter(|a| !a.is_empty()),
        spec.interface.as_deref().filter(|i| !i.is_empty()),
    ) {
        (Some(address), None) => match address.parse() {
            Ok(ip) => PeerEndpoint::Address(ip),
            Err(_) => {
                report(
                    "spec.peerAddress".into(),
                    format!("{address:?} is not an IP address"),
                );
                PeerEndpoint::Interface(String::new())
            }
        },
        (None, Some(interface)) => {
            if let Some(why) = bad_interface_name(interface) {
                report("spec.interface".into(), format!("{interface:?} {why}"));
            }
            PeerEndpoint::Interface(interface.to_string())
        }
        (None, None) => {
            report(
                "spec.peerAddress".into(),
                "set peerAddress or interface".into(),
            );
            PeerEndpoint::Interface(String::new())
        }
        (Some(_), Some(_)) => {
            report(
                "spec.interface".into(),
                "peerAddress and interface exclude each other".into(),
            );
            PeerEndpoint::Interface(String::new())
        }
    };
    let source_address = spec
        .source_address
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|text| {
            text.parse()
                .map_err(|_| {
                    report(
                        "spec.sourceAddress".into(),
                        format!("{text:?} is not an IP address"),
                    )
                })
                .ok()
        });
    let router_id = spec
        .router_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|text| {
            text.parse::<Ipv4Addr>()
                .map_err(|_| {
                    report(
                        "spec.routerID".into(),
                        format!("{text:?} is not an IPv4 address, which a BGP identifier must be"),
                    )
                })
                .ok()
        });
    let mut timer = |text: &Option<String>, field: &str| {
        text.as_deref().and_then(|t| {
            duration::parse(t)
                .map_err(|err| report(field.into(), err))
                .ok()
        })
    };
    let hold = timer(&spec.hold_time, "spec.holdTime");
    let keepalive = timer(&spec.keepalive_time, "spec.keepaliveTime");
    let connect_time = timer(&spec.connect_time, "spec.connectTime");
    let (hold_time, keepalive_time) = match (hold, keepalive) {
        (Some(h), Some(k)) => (Some(h), Some(k)),
        (Some(h), None) => (Some(h), Some(h / 3)),
        (None, Some(k)) => (Some(k * 3), Some(k)),
        (None, None) => (None, None),
    };
    if let (Some(hold), Some(keepalive)) = (hold_time, keepalive_time) {
        let whole = hold.as_secs();
        if whole != 0 && whole < 3 {
            report(
                "spec.holdTime".into(),
                format!("{hold:?} must be 0 or at least 3s"),
            );
        }
        if whole > u64::from(u16::MAX) {
            report(
                "spec.holdTime".into(),
                format!("{hold:?} is beyond BGP's 65535 s"),
            );
        }
        if keepalive > hold {
            report(
                "spec.keepaliveTime".into(),
                format!("{keepalive:?} must not exceed the hold time {hold:?}"),
            );
        }
    }
    let node_selectors = selectors(&spec.node_selectors, "spec.nodeSelectors", &mut report);
    let secret = spec
        .password_secret
        .as_ref()
        .and_then(|s| s.name.clone())
        .filter(|n| !n.is_empty());
    let password = match (spec.password.as_deref().filter(|p| !p.is_empty()), secret) {
        (Some(_), Some(_)) => {
            report(
                "spec.passwordSecret".into(),
                "password and passwordSecret exclude each other".into(),
            );
            None
        }
        (Some(password), None) => Some(Password::Inline(password.to_string())),
        (None, Some(secret)) => Some(Password::Secret(secret)),
        (None, None) => None,
    };
    for (field, value) in [("spec.password", &spec.password), ("spec.vrf", &spec.vrf)] {
        if value.as_deref().is_some_and(|v| v.contains(['\n', '\r'])) {
            report(field.into(), "must not contain line breaks".into());
        }
    }
    let bfd_profile = spec.bfd_profile.clone().filter(|p| !p.is_empty());
    if let Some(profile) = &bfd_profile
        && !profiles.contains_key(profile)
    {
        report(
            "spec.bfdProfile".into(),
            format!("no valid BFDProfile is named {profile:?}"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Peer {
        name: name.to_string(),
        my_asn: spec.my_asn,
        peer_asn,
        local_asn: spec.local_asn.filter(|a| *a != 0),
        endpoint,
        port: if spec.peer_port == 0 {
            179
        } else {
            spec.peer_port
        },
        source_address,
        hold_time,
        keepalive_time,
        connect_time,
        router_id,
        node_selectors,
        password,
        bfd_profile,
        graceful_restart: spec.enable_graceful_restart.unwrap_or(false),
        ebgp_multihop,
        vrf: spec.vrf.clone().filter(|v| !v.is_empty()),
        disable_mp: spec.disable_mp,
        dual_stack_address_family: spec.dual_stack_address_family,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).expect("test YAML")
    }

    fn peer(name: &str, spec: &str) -> BGPPeer {
        from_yaml(&format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        ))
    }

    fn fast() -> BfdProfileResource {
        from_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}\n",
        )
    }

    #[test]
    fn a_typical_peer_gets_metallb_defaults() {
        let built = build_peers(
            &[peer(
                "router",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 198.51.100.3\n  holdTime: 9s\n  bfdProfile: fast\n  passwordSecret: {name: bgp-auth}\n",
            )],
            &[fast()],
        );
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let p = &built.peers["router"];
        assert_eq!(p.port, 179);
        assert_eq!(
            (p.hold_time, p.keepalive_time),
            (Some(Duration::from_secs(9)), Some(Duration::from_secs(3)))
        );
        assert_eq!(p.password, Some(Password::Secret("bgp-auth".into())));
        assert_eq!(p.peer_asn, PeerAsn::Fixed(64501));
        assert_eq!(built.bfd_profiles["fast"].detect_multiplier, Some(3));
    }

    #[test]
    fn keepalive_alone_implies_three_times_the_hold_time() {
        let built = build_peers(
            &[peer(
                "p",
                "  myASN: 64500\n  dynamicASN: external\n  peerAddress: '2001:db8:100::3'\n  keepaliveTime: 10s\n",
            )],
            &[],
        );
        let p = &built.peers["p"];
        assert_eq!(p.hold_time, Some(Duration::from_secs(30)));
        assert_eq!(p.peer_asn, PeerAsn::External);
    }

    #[test]
    fn every_mistake_is_named() {
        let bad = peer(
            "bad",
            "  myASN: 64500\n  peerASN: 64500\n  dynamicASN: internal\n  ebgpMultiHop: true\n  peerAddress: 198.51.100.999\n  interface: eth0\n  sourceAddress: nowhere\n  routerID: '2001:db8::1'\n  holdTime: 2s\n  keepaliveTime: 5s\n  connectTime: soon\n  password: secret\n  passwordSecret: {name: s}\n  bfdProfile: missing\n",
        );
        let bad_bfd: BfdProfileResource = from_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: wild}\nspec: {receiveInterval: 5, detectMultiplier: 300, minimumTtl: 255}\n",
        );
        let built = build_peers(&[bad], &[bad_bfd]);
        assert!(built.peers.is_empty() && built.bfd_profiles.is_empty());
        let text = built
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for expected in [
            "BFDProfile wild: spec.receiveInterval: 5 is not from 10 to 60000",
            "BFDProfile wild: spec.detectMultiplier: 300 is not from 2 to 255",
            "BFDProfile wild: spec.minimumTtl: 255 is not from 1 to 254",
            "BGPPeer bad: spec.dynamicASN: peerASN and dynamicASN exclude each other",
            "spec.interface: peerAddress and interface exclude each other",
            "spec.sourceAddress: \"nowhere\" is not an IP address",
            "spec.routerID: \"2001:db8::1\" is not an IPv4 address",
            "spec.holdTime: 2s must be 0 or at least 3s",
            "spec.keepaliveTime: 5s must not exceed the hold time 2s",
            "spec.connectTime: invalid duration \"soon\"",
            "spec.passwordSecret: password and passwordSecret exclude each other",
            "spec.bfdProfile: no valid BFDProfile is named \"missing\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let missing = build_peers(&[peer("empty", "  myASN: 0\n")], &[]);
        let text = missing
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for expected in [
            "spec.myASN: the local ASN is missing",
            "spec.peerASN: set peerASN or dynamicASN",
            "spec.peerAddress: set peerAddress or interface",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let ibgp = build_peers(
            &[peer(
                "i",
                "  myASN: 64500\n  peerASN: 64500\n  ebgpMultiHop: true\n  peerAddress: 198.51.100.3\n",
            )],
            &[],
        );
        assert!(
            ibgp.errors[0]
                .to_string()
                .contains("ebgpMultiHop is for eBGP"),
            "{}",
            ibgp.errors[0]
        );
    }

    #[test]
    fn the_same_session_twice_keeps_the_first_by_name() {
        let spec = "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 198.51.100.3\n";
        let built = build_peers(&[peer("b", spec), peer("a", spec)], &[]);
        assert_eq!(built.peers.keys().collect::<Vec<_>>(), ["a"]);
        assert!(
            built.errors[0]
                .to_string()
                .contains("BGPPeer b: spec: peer `a` already opens this session"),
            "{}",
            built.errors[0]
        );
    }
}
