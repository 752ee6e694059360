//! The L2 election at scale: 10,000 Service addresses over 100 nodes, from the design's
//! scale-test range (198.19.0.0/16), every node live.
//!
//! - `cluster`: externalTrafficPolicy Cluster, one advertisement for every node: every address
//!   weighs all 100 nodes (100 SHA-256 keys each).
//! - `local`: externalTrafficPolicy Local with endpoints on 3 nodes each, two advertisements
//!   (racks) with node selectors, interfaces and preferred nodes.
//! - `dual_stack`: 5,000 Services with an IPv4 and an IPv6 address each (Cluster).
//!
//! Criterion's `elem/s` counts addresses decided per second. `rank_key` times one election key
//! (one SHA-256 of `"<node>#<address>"`), of which `cluster` computes 1,000,000.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_announce::{
    Endpoint, Node, Options, Service, ServiceIp, Speakers, TrafficPolicy, desired_l2,
};
use ferrolb_config::l2::L2Advertisement;
use ferrolb_labels::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

const ADDRESSES: usize = 10_000;
const NODES: usize = 100;

fn selector(key: &str, value: &str) -> Selector {
    Selector::from_k8s(&LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        match_expressions: None,
    })
    .expect("benchmark selectors are valid")
}

fn nodes() -> Vec<Node> {
    (0..NODES)
        .map(|i| {
            Node::new(format!("node-{i:03}"))
                .with_label("rack", if i % 2 == 0 { "even" } else { "odd" })
                .with_label("tier", if i % 10 == 0 { "edge" } else { "worker" })
        })
        .collect()
}

fn v4(index: usize) -> IpAddr {
    let offset = u32::try_from(index).expect("small index");
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 19, 0, 0)) + offset,
    ))
}

fn v6(index: usize) -> IpAddr {
    let base = u128::from("2001:db8:f::".parse::<Ipv6Addr>().expect("valid"));
    IpAddr::V6(Ipv6Addr::from(base + index as u128))
}

fn cluster_services() -> Vec<Service> {
    (0..ADDRESSES)
        .map(|i| {
            let mut service = Service::new("bench", format!("svc-{i}"));
            service.ips = vec![ServiceIp::new(v4(i), "scale")];
            service.endpoints = vec![Endpoint::ready_on(format!("node-{:03}", i % NODES))];
            service
        })
        .collect()
}

fn local_services() -> Vec<Service> {
    let mut services = cluster_services();
    for (i, service) in services.iter_mut().enumerate() {
        service.traffic_policy = TrafficPolicy::Local;
        service.endpoints = (0..3)
            .map(|k| Endpoint::ready_on(format!("node-{:03}", (i * 7 + k * 31) % NODES)))
            .collect();
    }
    services
}

fn dual_stack_services() -> Vec<Service> {
    (0..ADDRESSES / 2)
        .map(|i| {
            let mut service = Service::new("bench", format!("svc-{i}"));
            service.ips = vec![
                ServiceIp::new(v4(i), "scale"),
                ServiceIp::new(v6(i), "scale"),
            ];
            service.endpoints = vec![Endpoint::ready_on("node-000")];
            service
        })
        .collect()
}

fn everywhere() -> L2Advertisement {
    L2Advertisement {
        name: "all".into(),
        pools: ["scale".to_string()].into(),
        service_selectors: Vec::new(),
        node_selectors: Vec::new(),
        preferred_nodes: Vec::new(),
        interfaces: Vec::new(),
    }
}

fn racks() -> Vec<L2Advertisement> {
    ["even", "odd"]
        .iter()
        .enumerate()
        .map(|(i, rack)| L2Advertisement {
            name: format!("rack-{rack}"),
            pools: ["scale".to_string()].into(),
            service_selectors: Vec::new(),
            node_selectors: vec![selector("rack", rack)],
            preferred_nodes: vec![(selector("tier", "edge"), 50)],
            interfaces: vec![format!("eth{i}")],
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let nodes = nodes();
    let speakers = Speakers::live(nodes.iter().map(|n| n.name.clone()));
    let options = Options::default();
    let mut group = c.benchmark_group("desired_l2_10000_addresses_100_nodes");
    group.throughput(Throughput::Elements(ADDRESSES as u64));
    group.sample_size(20);

    let cases = [
        ("cluster", cluster_services(), vec![everywhere()]),
        ("local", local_services(), racks()),
        ("dual_stack", dual_stack_services(), vec![everywhere()]),
    ];
    for (name, services, advertisements) in &cases {
        let plan = desired_l2(services, &nodes, advertisements, &speakers, &options);
        assert_eq!(
            plan.announcements.len(),
            ADDRESSES,
            "{name}: every address is announced"
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                desired_l2(
                    black_box(services),
                    black_box(&nodes),
                    black_box(advertisements),
                    black_box(&speakers),
                    &options,
                )
            })
        });
    }
    group.finish();

    // What one of the 1,000,000 keys of the `cluster` case costs on its own.
    let ip = v4(4242);
    c.bench_function("rank_key", |b| {
        b.iter(|| ferrolb_announce::rank_key(black_box("node-042"), black_box(ip)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
