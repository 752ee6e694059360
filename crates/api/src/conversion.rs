//! BGPPeer conversion between v1beta1 and the v1beta2 storage version, with MetalLB's semantics.
//!
//! Up-conversion (v1beta1 → v1beta2) loses nothing. Down-conversion drops what v1beta1 cannot
//! express (`dynamicASN`, `localASN`, `interface`, `connectTime`, `passwordSecret`,
//! `enableGracefulRestart`, `vrf`, `disableMP`, `dualStackAddressFamily`), exactly as MetalLB's
//! conversion webhook does: failing instead would make every v1beta1 read of the peer list fail.
//!
//! Where the Go types cannot tell "unset" from the zero value (`peerASN: 0`, `peerAddress: ""`),
//! neither do these conversions. An unset or zero v1beta1 `peerPort` becomes v1beta2's default,
//! 179, which is also what a v1beta1 client reads back from the apiserver after a round trip.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::{v1beta1, v1beta2};

impl From<v1beta1::BGPPeer> for v1beta2::BGPPeer {
    fn from(peer: v1beta1::BGPPeer) -> Self {
        Self {
            metadata: peer.metadata,
            spec: peer.spec.into(),
            status: peer.status,
        }
    }
}

impl From<v1beta2::BGPPeer> for v1beta1::BGPPeer {
    fn from(peer: v1beta2::BGPPeer) -> Self {
        Self {
            metadata: peer.metadata,
            spec: peer.spec.into(),
            status: peer.status,
        }
    }
}

impl From<v1beta1::BGPPeerSpec> for v1beta2::BGPPeerSpec {
    fn from(spec: v1beta1::BGPPeerSpec) -> Self {
        Self {
            my_asn: spec.my_asn,
            peer_asn: Some(spec.peer_asn).filter(|&asn| asn != 0),
            peer_address: Some(spec.peer_address).filter(|address| !address.is_empty()),
            source_address: spec.source_address,
            peer_port: match spec.peer_port {
                None | Some(0) => v1beta2::DEFAULT_BGP_PORT,
                Some(port) => port,
            },
            hold_time: spec.hold_time,
            keepalive_time: spec.keepalive_time,
            router_id: spec.router_id,
            node_selectors: spec
                .node_selectors
                .into_iter()
                .map(label_selector)
                .collect(),
            password: spec.password,
            bfd_profile: spec.bfd_profile,
            ebgp_multi_hop: spec.ebgp_multi_hop,
            // The fields v1beta1 does not have.
            ..v1beta2::BGPPeerSpec::default()
        }
    }
}

impl From<v1beta2::BGPPeerSpec> for v1beta1::BGPPeerSpec {
    fn from(spec: v1beta2::BGPPeerSpec) -> Self {
        Self {
            my_asn: spec.my_asn,
            peer_asn: spec.peer_asn.unwrap_or_default(),
            peer_address: spec.peer_address.unwrap_or_default(),
            source_address: spec.source_address,
            peer_port: Some(spec.peer_port),
            hold_time: spec.hold_time,
            keepalive_time: spec.keepalive_time,
            router_id: spec.router_id,
            node_selectors: spec.node_selectors.into_iter().map(node_selector).collect(),
            password: spec.password,
            bfd_profile: spec.bfd_profile,
            ebgp_multi_hop: spec.ebgp_multi_hop,
        }
    }
}

fn label_selector(selector: v1beta1::NodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector.match_labels).filter(|labels| !labels.is_empty()),
        match_expressions: Some(
            selector
                .match_expressions
                .into_iter()
                .map(|expression| LabelSelectorRequirement {
                    key: expression.key,
                    operator: expression.operator,
                    values: Some(expression.values).filter(|values| !values.is_empty()),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|expressions| !expressions.is_empty()),
    }
}

fn node_selector(selector: LabelSelector) -> v1beta1::NodeSelector {
    v1beta1::NodeSelector {
        match_labels: selector.match_labels.unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .unwrap_or_default()
            .into_iter()
            .map(|requirement| v1beta1::MatchExpression {
                key: requirement.key,
                operator: requirement.operator,
                values: requirement.values.unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::SecretReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;

    use super::*;

    fn full_v1beta1_spec() -> v1beta1::BGPPeerSpec {
        v1beta1::BGPPeerSpec {
            my_asn: 64500,
            peer_asn: 64501,
            peer_address: "198.51.100.3".into(),
            source_address: Some("198.51.100.11".into()),
            peer_port: Some(1179),
            hold_time: Some("90s".into()),
            keepalive_time: Some("30s".into()),
            router_id: Some("192.0.2.11".into()),
            node_selectors: vec![v1beta1::NodeSelector {
                match_labels: BTreeMap::from([("kubernetes.io/hostname".into(), "node-1".into())]),
                match_expressions: vec![v1beta1::MatchExpression {
                    key: "rack".into(),
                    operator: "In".into(),
                    values: vec!["r1".into(), "r2".into()],
                }],
            }],
            password: Some("not-a-secret".into()),
            bfd_profile: Some("full-profile".into()),
            ebgp_multi_hop: Some(true),
        }
    }

    #[test]
    fn up_conversion_keeps_every_field() {
        let peer = v1beta1::BGPPeer {
            metadata: ObjectMeta {
                name: Some("router-a".into()),
                namespace: Some("metallb-system".into()),
                ..ObjectMeta::default()
            },
            spec: full_v1beta1_spec(),
            status: Some(v1beta1::BGPPeerStatus {
                nodes: vec![v1beta1::BGPPeerNodeStatus {
                    node: "node-1".into(),
                    session: "Established".into(),
                    bfd: Some("Up".into()),
                    last_transition_time: None,
                    message: None,
                }],
            }),
        };
        let converted = v1beta2::BGPPeer::from(peer.clone());
        assert_eq!(converted.metadata, peer.metadata);
        assert_eq!(converted.status, peer.status);
        assert_eq!(
            converted.spec,
            v1beta2::BGPPeerSpec {
                my_asn: 64500,
                peer_asn: Some(64501),
                peer_address: Some("198.51.100.3".into()),
                source_address: Some("198.51.100.11".into()),
                peer_port: 1179,
                hold_time: Some("90s".into()),
                keepalive_time: Some("30s".into()),
                router_id: Some("192.0.2.11".into()),
                node_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/hostname".into(),
                        "node-1".into()
                    )])),
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "rack".into(),
                        operator: "In".into(),
                        values: Some(vec!["r1".into(), "r2".into()]),
                    }]),
                }],
                password: Some("not-a-secret".into()),
                bfd_profile: Some("full-profile".into()),
                ebgp_multi_hop: Some(true),
                ..v1beta2::BGPPeerSpec::default()
            }
        );
        assert_eq!(v1beta1::BGPPeer::from(converted), peer);
    }

    #[test]
    fn an_unset_or_zero_v1beta1_port_becomes_the_bgp_port() {
        for port in [None, Some(0)] {
            let spec = v1beta1::BGPPeerSpec {
                peer_port: port,
                ..full_v1beta1_spec()
            };
            assert_eq!(v1beta2::BGPPeerSpec::from(spec).peer_port, 179);
        }
    }

    #[test]
    fn down_conversion_drops_what_v1beta1_cannot_express() {
        let spec = v1beta2::BGPPeerSpec {
            my_asn: 64500,
            dynamic_asn: Some(v1beta2::DynamicAsn::External),
            local_asn: Some(65010),
            interface: Some("eth1".into()),
            connect_time: Some("10s".into()),
            password_secret: Some(SecretReference {
                name: Some("bgp-router-secret".into()),
                namespace: Some("metallb-system".into()),
            }),
            enable_graceful_restart: Some(true),
            vrf: Some("red".into()),
            disable_mp: true,
            dual_stack_address_family: true,
            ..v1beta2::BGPPeerSpec::default()
        };
        let down = v1beta1::BGPPeerSpec::from(spec);
        assert_eq!(
            down,
            v1beta1::BGPPeerSpec {
                my_asn: 64500,
                peer_asn: 0,
                peer_address: String::new(),
                peer_port: Some(179),
                ..v1beta1::BGPPeerSpec::default()
            }
        );
        assert_eq!(
            v1beta2::BGPPeerSpec::from(down),
            v1beta2::BGPPeerSpec {
                my_asn: 64500,
                ..v1beta2::BGPPeerSpec::default()
            }
        );
    }

    #[test]
    fn selector_expressions_without_values_survive_both_ways() {
        let selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "rack".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        let spec = v1beta2::BGPPeerSpec {
            node_selectors: vec![selector.clone(), LabelSelector::default()],
            ..v1beta2::BGPPeerSpec::default()
        };
        let round_tripped = v1beta2::BGPPeerSpec::from(v1beta1::BGPPeerSpec::from(spec));
        assert_eq!(
            round_tripped.node_selectors,
            vec![selector, LabelSelector::default()]
        );
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9.]{0,10}[a-z0-9])?"
    }

    fn node_selector() -> impl Strategy<Value = v1beta1::NodeSelector> {
        let expression = (
            name(),
            prop_oneof!["In", "NotIn", "Exists"],
            proptest::collection::vec(name(), 0..3),
        )
            .prop_map(|(key, operator, values)| v1beta1::MatchExpression {
                key,
                operator: operator.to_owned(),
                values,
            });
        (
            proptest::collection::btree_map(name(), name(), 0..3),
            proptest::collection::vec(expression, 0..3),
        )
            .prop_map(|(match_labels, match_expressions)| v1beta1::NodeSelector {
                match_labels,
                match_expressions,
            })
    }

    prop_compose! {
        fn v1beta1_spec()(
            my_asn in any::<u32>(),
            peer_asn in any::<u32>(),
            peer_address in prop_oneof![Just(String::new()), any::<std::net::IpAddr>().prop_map(|address| address.to_string())],
            source_address in proptest::option::of(any::<std::net::IpAddr>().prop_map(|address| address.to_string())),
            peer_port in proptest::option::of(1..=16384_u16),
            hold_time in proptest::option::of("[0-9]{1,3}s"),
            keepalive_time in proptest::option::of("[0-9]{1,3}s"),
            router_id in proptest::option::of(any::<std::net::Ipv4Addr>().prop_map(|address| address.to_string())),
            node_selectors in proptest::collection::vec(node_selector(), 0..3),
            password in proptest::option::of("\\PC{0,20}"),
            bfd_profile in proptest::option::of(name()),
            ebgp_multi_hop in proptest::option::of(any::<bool>()),
        ) -> v1beta1::BGPPeerSpec {
            v1beta1::BGPPeerSpec {
                my_asn, peer_asn, peer_address, source_address, peer_port, hold_time, keepalive_time,
                router_id, node_selectors, password, bfd_profile, ebgp_multi_hop,
            }
        }
    }

    proptest! {
        /// MetalLB's conversion is lossless for v1beta1 objects; so is ours, given a port
        /// (an unset one comes back as 179, see the module documentation).
        #[test]
        fn v1beta1_round_trips_through_v1beta2(spec in v1beta1_spec()) {
            let round_tripped = v1beta1::BGPPeerSpec::from(v1beta2::BGPPeerSpec::from(spec.clone()));
            prop_assert_eq!(round_tripped, v1beta1::BGPPeerSpec { peer_port: spec.peer_port.or(Some(179)), ..spec });
        }

        /// A v1beta2 object that only uses what v1beta1 has comes back unchanged.
        #[test]
        fn v1beta2_within_v1beta1_round_trips(spec in v1beta1_spec()) {
            let v1beta2_spec = v1beta2::BGPPeerSpec::from(spec);
            let round_tripped = v1beta2::BGPPeerSpec::from(v1beta1::BGPPeerSpec::from(v1beta2_spec.clone()));
            prop_assert_eq!(round_tripped, v1beta2_spec);
        }
    }
}
