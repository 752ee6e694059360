//! Properties of the allocator over random pool configurations and random sequences of
//! assign / unassign / release / restore / set_pools, checked against small reference models
//! written independently of the implementation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use ferrolb_labels::{Labels, Selector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::range::to_u128;
use crate::tests::{ip, pool};
use crate::*;

/// Non-overlapping ranges the generated pools are made of; small enough to enumerate, with
/// .0 and .255 addresses for `avoidBuggyIPs`.
const PALETTE: [&str; 8] = [
    "192.0.2.0/29",
    "192.0.2.248/29",
    "198.51.100.16-198.51.100.20",
    "203.0.113.5-203.0.113.5",
    "2001:db8::/125",
    "2001:db8:1::/126",
    "2001:db8:2::ff-2001:db8:2::101",
    "192.0.3.0/30",
];
const POOL_NAMES: [&str; 3] = ["a", "b", "c"];
const ADDRESSES: [&str; 8] = [
    "192.0.2.0",
    "192.0.2.3",
    "192.0.2.255",
    "198.51.100.17",
    "203.0.113.5",
    "10.0.0.1",
    "2001:db8::2",
    "2001:db8:2::100",
];

fn label_selector(key: &str, value: &str) -> Selector {
    Selector::from_k8s(&LabelSelector {
        match_labels: Some([(key.to_string(), value.to_string())].into()),
        match_expressions: None,
    })
    .expect("valid selector")
}

fn allocation_strategy() -> impl Strategy<Value = Option<ServiceAllocation>> {
    let allocation = (
        proptest::option::of(0..3i32),
        subsequence(vec!["n1", "n2"], 0..=1),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(priority, namespaces, by_team, web_only)| ServiceAllocation {
                priority,
                namespaces: namespaces.into_iter().map(str::to_string).collect(),
                namespace_selectors: if by_team {
                    vec![label_selector("team", "blue")]
                } else {
                    vec![]
                },
                service_selectors: if web_only {
                    vec![label_selector("app", "web")]
                } else {
                    vec![]
                },
            },
        );
    proptest::option::weighted(0.4, allocation)
}

fn pools_strategy() -> impl Strategy<Value = Vec<Pool>> {
    (
        proptest::collection::vec(0..4usize, PALETTE.len()),
        proptest::collection::vec(
            (
                proptest::bool::weighted(0.8),
                any::<bool>(),
                any::<bool>(),
                allocation_strategy(),
            ),
            POOL_NAMES.len(),
        ),
    )
        .prop_map(|(owners, attributes)| {
            POOL_NAMES
                .iter()
                .zip(attributes)
                .enumerate()
                .map(
                    |(index, (name, (auto_assign, avoid_buggy_ips, reversed, allocation)))| {
                        let mut ranges: Vec<&str> = PALETTE
                            .iter()
                            .zip(&owners)
                            .filter(|(_, owner)| **owner == index)
                            .map(|(range, _)| *range)
                            .collect();
                        if reversed {
                            ranges.reverse();
                        }
                        let mut pool = pool(name, &ranges);
                        pool.auto_assign = auto_assign;
                        pool.avoid_buggy_ips = avoid_buggy_ips;
                        pool.allocation = allocation;
                        pool
                    },
                )
                .collect()
        })
}

fn key_of(index: usize) -> ServiceKey {
    let namespace = if index.is_multiple_of(2) { "n1" } else { "n2" };
    ServiceKey::new(namespace, format!("s{index}"))
}

fn families_strategy() -> impl Strategy<Value = FamilyPolicy> {
    select(vec![
        FamilyPolicy::SingleStack(IpFamily::V4),
        FamilyPolicy::SingleStack(IpFamily::V6),
        FamilyPolicy::PreferDualStack {
            primary: IpFamily::V4,
        },
        FamilyPolicy::PreferDualStack {
            primary: IpFamily::V6,
        },
        FamilyPolicy::RequireDualStack {
            primary: IpFamily::V6,
        },
    ])
}

fn addresses_strategy() -> impl Strategy<Value = Addresses> {
    subsequence(ADDRESSES.to_vec(), 0..=2).prop_map(|picked| {
        picked
            .iter()
            .fold(Addresses::NONE, |addresses, s| addresses.with(ip(s)))
    })
}

fn request_strategy(keys: std::ops::Range<usize>) -> impl Strategy<Value = ServiceRequest> {
    (
        keys,
        any::<bool>(),
        families_strategy(),
        proptest::option::weighted(0.15, addresses_strategy()),
        proptest::option::weighted(0.15, select(vec!["a", "b", "c", "zz"])),
        select(vec![None, Some("k"), Some("j")]),
        subsequence(vec![Port::tcp(80), Port::tcp(443), Port::udp(53)], 1..=2),
        0..3usize,
    )
        .prop_map(
            |(key, web, families, requested_ips, requested_pool, sharing_key, ports, backend)| {
                let key = key_of(key);
                let team = if key.namespace == "n1" { "blue" } else { "red" };
                ServiceRequest {
                    labels: if web {
                        [("app".to_string(), "web".to_string())].into()
                    } else {
                        Labels::new()
                    },
                    namespace_labels: [("team".to_string(), team.to_string())].into(),
                    families,
                    requested_ips: requested_ips.unwrap_or_default(),
                    requested_pool: requested_pool.map(str::to_string),
                    sharing_key: sharing_key.map(str::to_string),
                    ports,
                    backend: match backend {
                        0 => BackendKey::Cluster,
                        1 => BackendKey::Local {
                            selector: [("app".to_string(), "web".to_string())].into(),
                        },
                        _ => BackendKey::Local {
                            selector: [("app".to_string(), "db".to_string())].into(),
                        },
                    },
                    key,
                }
            },
        )
}

const KEYS: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    Assign(ServiceRequest),
    Unassign(usize),
    Release(usize, IpFamily),
    Restore(ServiceRequest, Addresses),
    SetPools(Vec<Pool>),
}

fn op_strategy(with_pool_changes: bool, with_releases: bool) -> impl Strategy<Value = Op> {
    let set_pools_weight = if with_pool_changes { 1 } else { 0 };
    let release_weight = if with_releases { 1 } else { 0 };
    prop_oneof![
        8 => request_strategy(0..KEYS).prop_map(Op::Assign),
        2 => (0..KEYS).prop_map(Op::Unassign),
        release_weight => (0..KEYS, select(vec![IpFamily::V4, IpFamily::V6]))
            .prop_map(|(key, family)| Op::Release(key, family)),
        2 => (request_strategy(0..KEYS), addresses_strategy())
            .prop_map(|(request, addresses)| Op::Restore(request, addresses)),
        set_pools_weight => pools_strategy().prop_map(Op::SetPools),
    ]
}

// ---- Reference models ----

fn may_share(a: &ServiceRequest, b: &ServiceRequest) -> bool {
    let key = |r: &ServiceRequest| r.sharing_key.clone().filter(|k| !k.is_empty());
    key(a).is_some()
        && key(a) == key(b)
        && a.backend == b.backend
        && a.ports.iter().all(|port| !b.ports.contains(port))
}

fn allowed(pool: &Pool, request: &ServiceRequest) -> bool {
    let Some(allocation) = &pool.allocation else {
        return true;
    };
    let namespace_ok = (allocation.namespaces.is_empty()
        && allocation.namespace_selectors.is_empty())
        || allocation.namespaces.contains(&request.key.namespace)
        || allocation
            .namespace_selectors
            .iter()
            .any(|selector| selector.matches(&request.namespace_labels));
    let service_ok = allocation.service_selectors.is_empty()
        || allocation
            .service_selectors
            .iter()
            .any(|selector| selector.matches(&request.labels));
    namespace_ok && service_ok
}

fn usable_in(pool: &Pool, address: IpAddr) -> bool {
    pool.ranges.iter().any(|range| range.contains(address))
        && !(pool.avoid_buggy_ips && is_buggy(address))
}

/// Whether `request` may hold `addresses` from `pool_name` under `pools`.
fn valid_holding(
    pools: &Pools,
    request: &ServiceRequest,
    pool_name: &str,
    addresses: Addresses,
) -> bool {
    let Some(pool) = pools.get(pool_name) else {
        return false;
    };
    request.families.fits(&addresses)
        && addresses.iter().all(|address| usable_in(pool, address))
        && allowed(pool, request)
        && request
            .requested_pool
            .as_ref()
            .is_none_or(|requested| requested == pool_name)
        && (request.requested_ips.is_empty() || request.requested_ips == addresses)
}

/// The address a single-stack, automatic request must get: MetalLB's pool order, ranges in
/// order, the lowest address nobody holds or whose holders all may share with it.
fn expected_first(
    alloc: &Allocator,
    requests: &HashMap<ServiceKey, ServiceRequest>,
    request: &ServiceRequest,
    family: IpFamily,
) -> Option<(String, IpAddr)> {
    let pools = alloc.pools();
    let mut reserved: Vec<&Pool> = pools
        .iter()
        .filter(|p| p.auto_assign && p.allocation.is_some() && allowed(p, request))
        .collect();
    reserved.sort_by_key(|p| {
        let priority = p.allocation.as_ref().and_then(|a| a.priority);
        (priority.is_none(), priority)
    });
    let open = pools
        .iter()
        .filter(|p| p.auto_assign && p.allocation.is_none());
    for pool in reserved.into_iter().chain(open) {
        for range in pool.ranges.iter().filter(|r| r.family() == family) {
            let (first, last) = (to_u128(range.first()), to_u128(range.last()));
            for value in first..=last {
                let address = crate::range::from_u128(family, value);
                if !usable_in(pool, address) {
                    continue;
                }
                if alloc
                    .holders(address)
                    .all(|holder| *holder == request.key || may_share(request, &requests[holder]))
                {
                    return Some((pool.name.clone(), address));
                }
            }
        }
    }
    None
}

// ---- The harness ----

struct Harness {
    alloc: Allocator,
    /// What each holding service last asked for.
    requests: HashMap<ServiceKey, ServiceRequest>,
    /// Holders known to be invalid (reported by `set_pools`, or cut down by `release`) until
    /// they are assigned again.
    invalid: HashSet<ServiceKey>,
}

impl Harness {
    fn new(pools: Vec<Pool>) -> Self {
        Self {
            alloc: Allocator::new(Pools::new(pools).expect("palette ranges never overlap")),
            requests: HashMap::new(),
            invalid: HashSet::new(),
        }
    }

    fn held(&self) -> BTreeMap<ServiceKey, Assignment> {
        self.alloc
            .assignments()
            .map(|(service, assignment)| (service.clone(), assignment))
            .collect()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Assign(request) => self.assign(request)?,
            Op::Unassign(key) => {
                let key = key_of(*key);
                let had = self.alloc.assignment(&key);
                prop_assert_eq!(self.alloc.unassign(&key), had);
                self.forget(&key);
            }
            Op::Release(key, family) => {
                let key = key_of(*key);
                let held = self.alloc.assignment(&key);
                let address = held.as_ref().and_then(|a| a.addresses.get(*family));
                match address {
                    Some(address) => {
                        prop_assert!(self.alloc.release(&key, address));
                        let left = held
                            .map(|a| a.addresses.without(*family))
                            .unwrap_or_default();
                        prop_assert_eq!(
                            self.alloc.assignment(&key).map(|a| a.addresses),
                            (!left.is_empty()).then_some(left)
                        );
                        if left.is_empty() {
                            self.forget(&key);
                        } else {
                            self.invalid.insert(key);
                        }
                    }
                    None => prop_assert!(!self.alloc.release(&key, ip("10.9.9.9"))),
                }
            }
            Op::Restore(request, addresses) => {
                let before = self.held();
                match self.alloc.restore(request, *addresses) {
                    Ok(assignment) => {
                        prop_assert_eq!(assignment.addresses, *addresses);
                        prop_assert!(valid_holding(
                            self.alloc.pools(),
                            request,
                            &assignment.pool,
                            *addresses
                        ));
                        self.requests.insert(request.key.clone(), request.clone());
                        self.invalid.remove(&request.key);
                    }
                    Err(_) => {
                        prop_assert_eq!(self.held(), before, "a refused restore changes nothing")
                    }
                }
            }
            Op::SetPools(pools) => self.set_pools(pools.clone())?,
        }
        self.check_state()
    }

    fn forget(&mut self, key: &ServiceKey) {
        self.requests.remove(key);
        self.invalid.remove(key);
    }

    fn assign(&mut self, request: &ServiceRequest) -> Result<(), TestCaseError> {
        let held_before = self.alloc.assignment(&request.key);
        match self.alloc.assign(request) {
            Ok(assigned) => {
                prop_assert!(
                    valid_holding(
                        self.alloc.pools(),
                        request,
                        &assigned.pool,
                        assigned.addresses
                    ),
                    "{} got {} from {} against its rules",
                    request.key,
                    assigned.addresses,
                    assigned.pool
                );
                let automatic =
                    request.requested_ips.is_empty() && request.requested_pool.is_none();
                let fresh = matches!(assigned.change, Change::Allocated | Change::Replaced(_));
                if automatic && fresh {
                    let pool = self
                        .alloc
                        .pools()
                        .get(&assigned.pool)
                        .expect("assigned from a pool");
                    prop_assert!(pool.auto_assign, "automatic allocation from {}", pool.name);
                }
                if let Change::Unchanged = assigned.change {
                    prop_assert_eq!(held_before.map(|a| a.addresses), Some(assigned.addresses));
                }
                self.requests.insert(request.key.clone(), request.clone());
                self.invalid.remove(&request.key);
            }
            Err(err) => {
                prop_assert!(self.alloc.assignment(&request.key).is_none(), "{err}");
                prop_assert_eq!(err.dropped.is_some(), held_before.is_some());
                self.forget(&request.key);
            }
        }
        Ok(())
    }

    fn set_pools(&mut self, pools: Vec<Pool>) -> Result<(), TestCaseError> {
        let before = self.held();
        let report = self
            .alloc
            .set_pools(Pools::new(pools).expect("palette ranges never overlap"));
        let reported: HashMap<&ServiceKey, &Invalidated> =
            report.iter().map(|entry| (&entry.service, entry)).collect();
        prop_assert_eq!(reported.len(), report.len(), "each service reported once");
        for (service, previous) in &before {
            let now = self.alloc.assignment(service);
            let kept = now.as_ref().map(|a| a.addresses).unwrap_or_default();
            match reported.get(service) {
                Some(entry) => {
                    prop_assert_eq!(entry.addresses, previous.addresses);
                    let released: Vec<IpAddr> = previous
                        .addresses
                        .iter()
                        .filter(|address| !kept.contains(*address))
                        .collect();
                    prop_assert_eq!(entry.released.iter().collect::<Vec<_>>(), released);
                    for address in entry.released.iter() {
                        prop_assert!(self.alloc.pool_of(address).is_none());
                    }
                }
                None => {
                    prop_assert_eq!(kept, previous.addresses, "{} changed silently", service);
                    let now = now.expect("kept");
                    prop_assert!(
                        self.invalid.contains(service)
                            || valid_holding(
                                self.alloc.pools(),
                                &self.requests[service],
                                &now.pool,
                                kept
                            ),
                        "{} kept {} in {} without being reported",
                        service,
                        kept,
                        now.pool
                    );
                }
            }
        }
        for entry in &report {
            prop_assert!(before.contains_key(&entry.service));
            if self.alloc.assignment(&entry.service).is_some() {
                self.invalid.insert(entry.service.clone());
            } else {
                self.forget(&entry.service);
            }
        }
        Ok(())
    }

    /// Every index consistent, no address held by two services that may not share, every
    /// valid holder within its rules, every held address inside some pool.
    fn check_state(&self) -> Result<(), TestCaseError> {
        self.alloc.assert_consistent();
        let held = self.held();
        prop_assert_eq!(
            held.keys().collect::<HashSet<_>>(),
            self.requests.keys().collect::<HashSet<_>>()
        );
        for (service, assignment) in &held {
            let request = &self.requests[service];
            for address in assignment.addresses.iter() {
                prop_assert!(
                    self.alloc.pool_of(address).is_some(),
                    "{address} outside every pool"
                );
                for other in self.alloc.holders(address) {
                    prop_assert!(
                        other == service || may_share(request, &self.requests[other]),
                        "{} and {} both hold {}",
                        service,
                        other,
                        address
                    );
                }
            }
            if !self.invalid.contains(service) {
                prop_assert!(
                    valid_holding(
                        self.alloc.pools(),
                        request,
                        &assignment.pool,
                        assignment.addresses
                    ),
                    "{} holds {} from {} against its rules",
                    service,
                    assignment.addresses,
                    assignment.pool
                );
            }
        }
        Ok(())
    }

    /// Reassigns every service known to be invalid, so that every holding is valid again.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        let mut invalid: Vec<ServiceKey> = self.invalid.iter().cloned().collect();
        invalid.sort();
        for service in invalid {
            let request = self.requests[&service].clone();
            self.assign(&request)?;
        }
        prop_assert!(self.invalid.is_empty());
        self.check_state()
    }

    /// A new allocator with the same pools, given every holding back through `restore`.
    fn restored(&self) -> Result<Allocator, TestCaseError> {
        let mut fresh = Allocator::new(self.alloc.pools().clone());
        for (service, assignment) in self.held() {
            let restored = fresh.restore(&self.requests[&service], assignment.addresses);
            prop_assert_eq!(restored, Ok(assignment), "restoring {}", service);
        }
        Ok(fresh)
    }
}

fn holdings_of(alloc: &Allocator) -> BTreeMap<ServiceKey, Assignment> {
    alloc
        .assignments()
        .map(|(service, assignment)| (service.clone(), assignment))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // No address is ever held by two services that may not share; every holder is within its
    // pool's rules (or was reported as invalid); every held address lies in a pool; pool
    // changes report every assignment they disturb.
    #[test]
    fn random_operations_keep_every_invariant(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(true, true), 1..60),
    ) {
        let mut harness = Harness::new(pools);
        for op in &ops {
            harness.apply(op)?;
        }
    }

    // Assigning a new service and releasing it leaves the allocator exactly as it was.
    #[test]
    fn assign_then_release_restores_the_previous_state(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(true, true), 0..40),
        newcomer in request_strategy(KEYS..KEYS + 1),
    ) {
        let mut harness = Harness::new(pools);
        for op in &ops {
            harness.apply(op)?;
        }
        let (held, stats) = (holdings_of(&harness.alloc), harness.alloc.stats());
        if harness.alloc.assign(&newcomer).is_ok() {
            prop_assert!(harness.alloc.unassign(&newcomer.key).is_some());
        }
        harness.alloc.assert_consistent();
        prop_assert_eq!(holdings_of(&harness.alloc), held);
        prop_assert_eq!(harness.alloc.stats(), stats);
    }

    // Releasing a service and assigning it again gives what an allocator that never saw it,
    // holding the same other addresses, would give: the result depends on the current
    // holdings, not on history.
    #[test]
    fn release_then_assign_depends_only_on_current_holdings(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(true, true), 1..40),
        pick in any::<proptest::sample::Index>(),
    ) {
        let mut harness = Harness::new(pools);
        for op in &ops {
            harness.apply(op)?;
        }
        harness.settle()?;
        let held = harness.held();
        prop_assume!(!held.is_empty());
        let service = held.keys().nth(pick.index(held.len())).expect("in range").clone();
        let request = harness.requests[&service].clone();
        harness.alloc.unassign(&service);
        harness.forget(&service);
        let fresh_state = harness.restored()?;
        let mut fresh = fresh_state;
        let again = harness.alloc.assign(&request).map(|a| (a.pool, a.addresses));
        let expected = fresh.assign(&request).map(|a| (a.pool, a.addresses));
        prop_assert_eq!(again.map_err(|e| e.failure), expected.map_err(|e| e.failure));
        harness.alloc.assert_consistent();
    }

    // Restoring every assignment into a fresh allocator reproduces the same state.
    #[test]
    fn restore_of_all_assignments_reproduces_the_state(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(true, true), 1..60),
    ) {
        let mut harness = Harness::new(pools);
        for op in &ops {
            harness.apply(op)?;
        }
        harness.settle()?;
        let fresh = harness.restored()?;
        fresh.assert_consistent();
        prop_assert_eq!(holdings_of(&fresh), harness.held());
        prop_assert_eq!(fresh.stats(), harness.alloc.stats());
    }

    // Removing ranges never leaves an assignment outside every pool unreported.
    #[test]
    fn shrinking_pools_reports_every_displaced_assignment(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(false, false), 1..60),
        keep in proptest::collection::vec(any::<bool>(), PALETTE.len()),
    ) {
        let mut harness = Harness::new(pools.clone());
        for op in &ops {
            harness.apply(op)?;
        }
        let shrunk: Vec<Pool> = pools
            .into_iter()
            .map(|mut pool| {
                pool.ranges.retain(|range| {
                    PALETTE
                        .iter()
                        .position(|p| p.parse::<IpRange>().ok() == Some(*range))
                        .is_some_and(|index| keep[index])
                });
                pool
            })
            .collect();
        harness.apply(&Op::SetPools(shrunk))?;
    }

    // An automatic single-stack allocation is the first usable address in MetalLB's order,
    // found by enumerating every address of every pool.
    #[test]
    fn automatic_allocation_takes_the_first_usable_address(
        pools in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(false, false), 0..40),
        mut newcomer in request_strategy(KEYS..KEYS + 1),
        family in select(vec![IpFamily::V4, IpFamily::V6]),
    ) {
        let mut harness = Harness::new(pools);
        for op in &ops {
            harness.apply(op)?;
        }
        newcomer.requested_ips = Addresses::NONE;
        newcomer.requested_pool = None;
        newcomer.families = FamilyPolicy::SingleStack(family);
        let expected = expected_first(&harness.alloc, &harness.requests, &newcomer, family);
        let got = harness
            .alloc
            .assign(&newcomer)
            .ok()
            .map(|a| (a.pool.to_string(), a.addresses));
        prop_assert_eq!(got, expected.map(|(pool, address)| (pool, Addresses::single(address))));
    }
}
