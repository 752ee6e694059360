//! Random histories of Services and pool edits, with every wanted status written back as the
//! runtime would: no address is ever shown by two Services that may not share it, what the
//! Services show is what the allocator holds, and a restart (a new core restoring from the
//! statuses) changes nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::Resources;
use ferrolb_ipam::ServiceKey;
use k8s_openapi::api::core::v1::Service;
use proptest::prelude::*;
use serde_json::json;

use crate::core::Core;
use crate::snapshot::ServiceSnapshot;

#[derive(Debug, Clone)]
enum Op {
    Create { id: u8, shared: bool, port: u16 },
    Delete { id: u8 },
    Request { id: u8, last_octet: u8 },
    Pools { variant: u8 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, any::<bool>(), 80u16..82).prop_map(|(id, shared, port)| Op::Create { id, shared, port }),
        2 => (0u8..8).prop_map(|id| Op::Delete { id }),
        1 => (0u8..8, 198u8..206).prop_map(|(id, last_octet)| Op::Request { id, last_octet }),
        1 => (0u8..4).prop_map(|variant| Op::Pools { variant }),
        1 => Just(Op::Restart),
    ]
}

fn pools(variant: u8) -> Resources {
    let (a, b) = match variant {
        0 => ("198.51.100.200-198.51.100.203", "198.51.100.204/32"),
        1 => ("198.51.100.201-198.51.100.202", "198.51.100.204/32"),
        2 => ("198.51.100.200-198.51.100.205", "198.51.100.299/32"), // b invalid: last good kept
        _ => ("198.51.100.203-198.51.100.205", "198.51.100.200/32"),
    };
    let mut resources = Resources::default();
    for (name, range) in [("a", a), ("b", b)] {
        let text = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [\"{range}\"]\n"
        );
        resources.add_yaml("proptest", &text);
    }
    resources
}

/// A Service as the apiserver holds it: spec from the test, status from the controller.
#[derive(Debug, Clone)]
struct Stored {
    created: u32,
    shared: bool,
    port: u16,
    requested: Option<u8>,
    status: Vec<IpAddr>,
    pool: Option<String>,
}

fn snapshot(id: u8, stored: &Stored) -> ServiceSnapshot {
    let mut annotations = serde_json::Map::new();
    if stored.shared {
        annotations.insert("metallb.io/allow-shared-ip".into(), json!("k"));
    }
    if let Some(octet) = stored.requested {
        annotations.insert(
            "metallb.io/loadBalancerIPs".into(),
            json!(format!("198.51.100.{octet}")),
        );
    }
    if let Some(pool) = &stored.pool {
        annotations.insert("metallb.io/ip-allocated-from-pool".into(), json!(pool));
    }
    let ingress: Vec<_> = stored
        .status
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": format!("s{id}"), "namespace": "ns", "annotations": annotations,
                     "creationTimestamp": format!("2026-01-01T00:{:02}:{:02}Z", stored.created / 60 % 60, stored.created % 60)},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["198.18.0.1"], "ipFamilies": ["IPv4"],
                 "ports": [{"port": stored.port, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }))
    .expect("a valid Service");
    ServiceSnapshot::from_service(&service)
}

/// Reconciles every Service (oldest first), pending ones again, and writes the answers back.
fn settle(core: &mut Core, services: &mut BTreeMap<u8, Stored>) {
    for _ in 0..3 {
        let mut order: Vec<(u32, u8)> = services.iter().map(|(id, s)| (s.created, *id)).collect();
        order.sort();
        for (_, id) in order {
            let Some(stored) = services.get(&id) else {
                continue;
            };
            let decision = core.reconcile(&snapshot(id, stored));
            if let (Some(desired), Some(stored)) = (decision.desired, services.get_mut(&id)) {
                stored.status = desired.ips;
                stored.pool = desired.pool;
            }
        }
    }
}

fn check(core: &Core, services: &BTreeMap<u8, Stored>) -> Result<(), TestCaseError> {
    let mut shown: BTreeMap<IpAddr, Vec<(u8, &Stored)>> = BTreeMap::new();
    for (id, stored) in services {
        for ip in &stored.status {
            shown.entry(*ip).or_default().push((*id, stored));
        }
        let held: Vec<IpAddr> = core
            .allocator()
            .assignment(&ServiceKey::new("ns", format!("s{id}")))
            .map(|a| a.addresses.iter().collect())
            .unwrap_or_default();
        prop_assert_eq!(&held, &stored.status, "s{} shows what it holds", id);
    }
    for (ip, holders) in shown {
        if holders.len() > 1 {
            let ports: Vec<u16> = holders.iter().map(|(_, s)| s.port).collect();
            let mut distinct = ports.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert!(
                holders.iter().all(|(_, s)| s.shared) && distinct.len() == ports.len(),
                "{} shown by {:?} that may not share it",
                ip,
                holders.iter().map(|(id, _)| *id).collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_address_is_duplicated_lost_or_moved_by_a_restart(ops in proptest::collection::vec(op(), 1..40)) {
        let mut core = Core::new(None);
        let mut variant = 0;
        core.set_config(&pools(variant));
        let mut services: BTreeMap<u8, Stored> = BTreeMap::new();
        let mut clock = 0u32;
        for op in ops {
            match op {
                Op::Create { id, shared, port } => {
                    clock += 1;
                    services.entry(id).or_insert(Stored { created: clock, shared, port, requested: None, status: Vec::new(), pool: None });
                }
                Op::Delete { id } => {
                    if services.remove(&id).is_some() {
                        core.delete(&ServiceKey::new("ns", format!("s{id}")));
                    }
                }
                Op::Request { id, last_octet } => {
                    if let Some(stored) = services.get_mut(&id) {
                        stored.requested = Some(last_octet);
                    }
                }
                Op::Pools { variant: v } => {
                    variant = v;
                    core.set_config(&pools(variant));
                }
                Op::Restart => {
                    let before: BTreeMap<u8, Vec<IpAddr>> = services.iter().map(|(id, s)| (*id, s.status.clone())).collect();
                    core = Core::new(None);
                    core.set_config(&pools(variant));
                    let snapshots: Vec<ServiceSnapshot> = services.iter().map(|(id, s)| snapshot(*id, s)).collect();
                    core.restore(&snapshots);
                    settle(&mut core, &mut services);
                    for (id, stored) in &services {
                        if !before[id].is_empty() {
                            prop_assert_eq!(&before[id], &stored.status, "s{} kept its address over a restart", id);
                        }
                    }
                }
            }
            settle(&mut core, &mut services);
            check(&core, &services)?;
        }
    }
}
