//! Config build cost at scale: 1,000 IPAddressPools (a /28 each, in the scale-test range
//! 198.19.0.0/16, half with a serviceAllocation) validated into the allocator's pools.

use std::collections::BTreeSet;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_api::v1beta1::IPAddressPool;
use ferrolb_config::pools::build_pools;

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
}

criterion_group!(benches, build);
criterion_main!(benches);
