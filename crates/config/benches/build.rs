//! Config build cost at scale: 1,000 IPAddressPools (a /28 each, in the scale-test range
//! 198.19.0.0/16, half with a serviceAllocation) validated into the allocator's pools.

use std::collections::BTreeSet;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_api::v1beta1::{BGPAdvertisement, IPAddressPool, L2Advertisement};
use ferrolb_config::bgp::build_bgp;
use ferrolb_config::l2::build_l2;
use ferrolb_config::pools::build_pools;
use ferrolb_config::scope::served_pool_labels;

fn pools(count: u32) -> Vec<IPAddressPool> {
    (0..count)
        .map(|i| {
            let base = i * 16;
            let allocation = if i % 2 == 0 {
                format!("\n  serviceAllocation:\n    priority: {}\n    namespaces: [ns-{i}]\n    serviceSelectors: [{{matchLabels: {{app: a{i}}}}}]", i % 7 + 1)
            } else {
                String::new()
            };
            let yaml = format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: pool-{i}}}\nspec:\n  addresses: ['198.19.{}.{}/28']{allocation}\n",
                base / 256,
                base % 256
            );
            serde_saphyr::from_str(&yaml).expect("benchmark pool YAML")
        })
        .collect()
}

/// Half L2, half BGP, each naming one pool; every tenth BGP one also selects by label.
fn advertisements(count: u32) -> (Vec<L2Advertisement>, Vec<BGPAdvertisement>) {
    let mut l2 = Vec::new();
    let mut bgp = Vec::new();
    for i in 0..count {
        if i % 2 == 0 {
            let yaml = format!(
                "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2-{i}}}\nspec:\n  ipAddressPools: [pool-{i}]\n  interfaces: [eth0]\n"
            );
            l2.push(serde_saphyr::from_str(&yaml).expect("benchmark L2Advertisement YAML"));
        } else {
            let selector = if i % 10 == 1 {
                "\n  ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]"
            } else {
                ""
            };
            let yaml = format!(
                "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: bgp-{i}}}\nspec:\n  ipAddressPools: [pool-{i}]\n  aggregationLength: 30\n  communities: ['65535:65282']{selector}\n"
            );
            bgp.push(serde_saphyr::from_str(&yaml).expect("benchmark BGPAdvertisement YAML"));
        }
    }
    (l2, bgp)
}

fn build(c: &mut Criterion) {
    let resources = pools(1000);
    let none = BTreeSet::new();
    let built = build_pools(&resources, &none);
    assert!(
        built.errors.is_empty() && built.pools.len() == 1000,
        "{:?}",
        built.errors.first()
    );
    c.bench_function("config/build_pools/1000 pools", |b| {
        b.iter(|| build_pools(&resources, &none))
    });

    let (l2, bgp) = advertisements(1000);
    let whole = || {
        let pools = build_pools(&resources, &none);
        let labels = served_pool_labels(&resources, &pools.pools);
        let l2 = build_l2(&l2, &labels);
        let bgp = build_bgp(&bgp, &[], &labels, &pools.pools);
        (pools, l2, bgp)
    };
    let (_, built_l2, built_bgp) = whole();
    assert!(
        built_l2.errors.is_empty() && built_bgp.errors.is_empty(),
        "{:?}",
        built_bgp.errors.first()
    );
    assert_eq!(
        built_l2.advertisements.len() + built_bgp.advertisements.len(),
        1000
    );
    c.bench_function("config/build/1000 pools + 1000 advertisements", |b| {
        b.iter(whole)
    });
}

criterion_group!(benches, build);
criterion_main!(benches);
