//! Allocator throughput at scale, on the design's scale-test ranges (198.19.0.0/16,
//! 2001:db8:f::/64).
//!
//! The assign/release benchmarks count two operations per iteration (criterion's `elem/s` is
//! operations per second, so pairs per second are half of it).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_ipam::{
    Addresses, Allocator, FamilyPolicy, IpFamily, Pool, Pools, Port, ServiceKey, ServiceRequest,
};

const POOL_V4: &str = "198.19.0.0/16";
const POOL_V6: &str = "2001:db8:f::/64";
/// 90% of the 65,536 addresses of the IPv4 pool; the same count in the IPv6 pool.
const FILLED: usize = 65_536 * 9 / 10;
const RESTORED: usize = 10_000;

fn pools(ranges: &[&str]) -> Pools {
    let ranges = ranges
        .iter()
        .map(|range| range.parse().expect("benchmark ranges are valid"))
        .collect();
    Pools::new(vec![Pool::new("scale", ranges)]).expect("one pool is consistent")
}

fn request(index: usize, families: FamilyPolicy) -> ServiceRequest {
    let mut request = ServiceRequest::new(
        ServiceKey::new("bench", format!("service-{index}")),
        families,
    );
    request.ports = vec![Port::tcp(80), Port::tcp(443)];
    request
}

fn assign_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator");
    group.throughput(Throughput::Elements(2));
    for (pool, range, family) in [
        ("ipv4 /16 at 90% use", POOL_V4, IpFamily::V4),
        ("ipv6 /64 with 58982 in use", POOL_V6, IpFamily::V6),
    ] {
        let families = FamilyPolicy::SingleStack(family);
        let mut allocator = Allocator::new(pools(&[range]));
        let requests: Vec<ServiceRequest> =
            (0..FILLED).map(|index| request(index, families)).collect();
        for request in &requests {
            allocator.assign(request).expect("the pool has room");
        }
        // A new service arrives and leaves: the allocator's own cost at this fill level.
        let newcomer = request(FILLED, families);
        group.bench_function(format!("assign+release/{pool}"), |b| {
            b.iter(|| {
                black_box(allocator.assign(&newcomer).is_ok());
                black_box(allocator.unassign(&newcomer.key))
            })
        });
        // An existing service, picked in a scattered order (prime stride), leaves and comes
        // back into the hole it left: every step touches cold memory, as a resync would.
        let mut next = 0;
        group.bench_function(format!("release+reassign scattered/{pool}"), |b| {
            b.iter(|| {
                let request = &requests[next];
                next = (next + 7_919) % requests.len();
                black_box(allocator.unassign(&request.key));
                black_box(allocator.assign(request).is_ok())
            })
        });
    }
    group.finish();
}

fn restore(c: &mut Criterion) {
    let pools = pools(&[POOL_V4, POOL_V6]);
    // A third each of IPv4, IPv6 and dual-stack services, as a real allocator placed them.
    let mut placed = Allocator::new(pools.clone());
    let held: Vec<(ServiceRequest, Addresses)> = (0..RESTORED)
        .map(|index| {
            let families = match index % 3 {
                0 => FamilyPolicy::SingleStack(IpFamily::V4),
                1 => FamilyPolicy::SingleStack(IpFamily::V6),
                _ => FamilyPolicy::RequireDualStack {
                    primary: IpFamily::V4,
                },
            };
            let request = request(index, families);
            let addresses = placed
                .assign(&request)
                .expect("the pool has room")
                .addresses;
            (request, addresses)
        })
        .collect();
    let mut group = c.benchmark_group("allocator");
    group.throughput(Throughput::Elements(RESTORED as u64));
    group.bench_function("restore/10000 assignments", |b| {
        b.iter_batched_ref(
            || Allocator::new(pools.clone()),
            |allocator| {
                for (request, addresses) in &held {
                    black_box(allocator.restore(request, *addresses).is_ok());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, assign_release, restore);
criterion_main!(benches);
