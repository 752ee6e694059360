//! The allocator's rules, one MetalLB behaviour per test.

use std::net::IpAddr;

use ferrolb_labels::{Labels, Selector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::*;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test addresses are valid")
}

pub(crate) fn one(s: &str) -> Addresses {
    Addresses::single(ip(s))
}

fn two(v4: &str, v6: &str) -> Addresses {
    one(v4).with(ip(v6))
}

pub(crate) fn pool(name: &str, ranges: &[&str]) -> Pool {
    Pool::new(
        name,
        ranges
            .iter()
            .map(|r| r.parse().expect("test ranges are valid"))
            .collect(),
    )
}

fn reserved(mut pool: Pool, allocation: ServiceAllocation) -> Pool {
    pool.allocation = Some(allocation);
    pool
}

fn manual(mut pool: Pool) -> Pool {
    pool.auto_assign = false;
    pool
}

fn allocator(pools: Vec<Pool>) -> Allocator {
    Allocator::new(Pools::new(pools).expect("test pools are consistent"))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> Selector {
    Selector::from_k8s(&LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    })
    .expect("test selectors are valid")
}

fn service(namespace: &str, name: &str) -> ServiceRequest {
    ServiceRequest::new(
        ServiceKey::new(namespace, name),
        FamilyPolicy::SingleStack(IpFamily::V4),
    )
}

fn with_family(mut request: ServiceRequest, families: FamilyPolicy) -> ServiceRequest {
    request.families = families;
    request
}

fn sharing(mut request: ServiceRequest, key: &str, ports: &[Port]) -> ServiceRequest {
    request.sharing_key = Some(key.to_string());
    request.ports = ports.to_vec();
    request
}

fn requesting(mut request: ServiceRequest, addresses: Addresses) -> ServiceRequest {
    request.requested_ips = addresses;
    request
}

fn in_pool(mut request: ServiceRequest, pool: &str) -> ServiceRequest {
    request.requested_pool = Some(pool.to_string());
    request
}

fn assigned(allocator: &mut Allocator, request: &ServiceRequest) -> Assigned {
    let result = allocator.assign(request);
    allocator.assert_consistent();
    result.unwrap_or_else(|err| panic!("assign {}: {err}", request.key))
}

fn refused(allocator: &mut Allocator, request: &ServiceRequest) -> String {
    let result = allocator.assign(request);
    allocator.assert_consistent();
    assert!(
        allocator.assignment(&request.key).is_none(),
        "a failed assign leaves nothing held"
    );
    match result {
        Ok(assigned) => panic!("{} unexpectedly got {}", request.key, assigned.addresses),
        Err(err) => err.to_string(),
    }
}

const DUAL: FamilyPolicy = FamilyPolicy::RequireDualStack {
    primary: IpFamily::V4,
};
const PREFER_V4: FamilyPolicy = FamilyPolicy::PreferDualStack {
    primary: IpFamily::V4,
};
const PREFER_V6: FamilyPolicy = FamilyPolicy::PreferDualStack {
    primary: IpFamily::V6,
};
const V6: FamilyPolicy = FamilyPolicy::SingleStack(IpFamily::V6);

// ---- Address order ----

#[test]
fn the_first_free_address_in_range_order_is_assigned() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/30"])]);
    for expected in ["192.0.2.0", "192.0.2.1", "192.0.2.2"] {
        let got = assigned(&mut alloc, &service("ns", expected));
        assert_eq!(got.addresses, one(expected));
        assert_eq!(&*got.pool, "a");
        assert_eq!(got.change, Change::Allocated);
    }
    alloc.unassign(&ServiceKey::new("ns", "192.0.2.1"));
    let refill = assigned(&mut alloc, &service("ns", "refill"));
    assert_eq!(
        refill.addresses,
        one("192.0.2.1"),
        "a freed hole is reused first"
    );
}

#[test]
fn ranges_are_searched_in_the_pool_s_order_not_address_order() {
    let mut alloc = allocator(vec![pool(
        "a",
        &["192.0.2.100/31", "192.0.2.10-192.0.2.10"],
    )]);
    let order: Vec<Addresses> = ["x", "y", "z"]
        .iter()
        .map(|name| assigned(&mut alloc, &service("ns", name)).addresses)
        .collect();
    assert_eq!(
        order,
        [one("192.0.2.100"), one("192.0.2.101"), one("192.0.2.10")]
    );
}

#[test]
fn avoid_buggy_ips_skips_addresses_ending_in_0_and_255() {
    let mut buggy = pool("a", &["192.0.2.254-192.0.3.1"]);
    buggy.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![buggy]);
    assert_eq!(
        assigned(&mut alloc, &service("ns", "x")).addresses,
        one("192.0.2.254")
    );
    assert_eq!(
        assigned(&mut alloc, &service("ns", "y")).addresses,
        one("192.0.3.1")
    );
    let err = refused(&mut alloc, &service("ns", "z"));
    assert_eq!(
        err,
        "ns/z: no pool with a free IPv4 address: pool `a` has no free IPv4 address"
    );
}

#[test]
fn avoid_buggy_ips_refuses_a_requested_dot_255() {
    let mut buggy = pool("a", &["192.0.2.0/24"]);
    buggy.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![buggy]);
    let err = refused(
        &mut alloc,
        &requesting(service("ns", "x"), one("192.0.2.255")),
    );
    assert!(
        err.contains("pool `a`: 192.0.2.255 ends in .0 or .255"),
        "{err}"
    );
}

#[test]
fn avoid_buggy_ips_does_not_apply_to_ipv6() {
    let mut buggy = pool("a", &["2001:db8::ff-2001:db8::100"]);
    buggy.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![buggy]);
    let got = assigned(&mut alloc, &with_family(service("ns", "x"), V6));
    assert_eq!(got.addresses, one("2001:db8::ff"));
}

// ---- Requested addresses ----

#[test]
fn a_requested_address_is_given_when_it_lies_in_a_pool() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let got = assigned(
        &mut alloc,
        &requesting(service("ns", "x"), one("192.0.2.77")),
    );
    assert_eq!(got.addresses, one("192.0.2.77"));
}

#[test]
fn a_requested_address_outside_every_pool_is_refused() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let err = refused(
        &mut alloc,
        &requesting(service("ns", "x"), one("198.51.100.1")),
    );
    assert_eq!(
        err,
        "ns/x: cannot use requested 198.51.100.1: 198.51.100.1 is not in any address pool"
    );
}

#[test]
fn a_requested_address_may_come_from_a_pool_without_auto_assign() {
    let mut alloc = allocator(vec![manual(pool("manual", &["192.0.2.0/24"]))]);
    let got = assigned(
        &mut alloc,
        &requesting(service("ns", "x"), one("192.0.2.9")),
    );
    assert_eq!(&*got.pool, "manual");
}

#[test]
fn a_requested_address_must_be_in_the_requested_pool_when_both_are_given() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/25"]),
        pool("b", &["192.0.2.128/25"]),
    ]);
    let request = in_pool(requesting(service("ns", "x"), one("192.0.2.1")), "b");
    let err = refused(&mut alloc, &request);
    assert!(
        err.contains("pool `a` is not the requested pool `b`"),
        "{err}"
    );
}

#[test]
fn a_requested_address_in_a_pool_reserved_for_other_namespaces_is_refused() {
    let only_team = ServiceAllocation {
        namespaces: vec!["team".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![reserved(pool("team", &["192.0.2.0/24"]), only_team)]);
    let err = refused(
        &mut alloc,
        &requesting(service("other", "x"), one("192.0.2.1")),
    );
    assert!(
        err.contains("pool `team` is not allowed for namespace `other`"),
        "{err}"
    );
    assigned(
        &mut alloc,
        &requesting(service("team", "x"), one("192.0.2.1")),
    );
}

#[test]
fn requested_addresses_must_fit_the_family_policy() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24", "2001:db8::/64"])]);
    let err = refused(
        &mut alloc,
        &requesting(with_family(service("ns", "x"), DUAL), one("192.0.2.1")),
    );
    assert!(
        err.contains("RequireDualStack (IPv4 first) does not accept the requested 192.0.2.1"),
        "{err}"
    );
    let err = refused(
        &mut alloc,
        &requesting(service("ns", "y"), one("2001:db8::1")),
    );
    assert!(
        err.contains("SingleStack IPv4 does not accept the requested 2001:db8::1"),
        "{err}"
    );
    let got = assigned(
        &mut alloc,
        &requesting(
            with_family(service("ns", "z"), DUAL),
            two("192.0.2.1", "2001:db8::1"),
        ),
    );
    assert_eq!(got.addresses, two("192.0.2.1", "2001:db8::1"));
}

#[test]
fn requested_dual_stack_addresses_must_come_from_one_pool() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["2001:db8::/64"]),
    ]);
    let request = requesting(
        with_family(service("ns", "x"), DUAL),
        two("192.0.2.1", "2001:db8::1"),
    );
    let err = refused(&mut alloc, &request);
    assert!(
        err.contains("192.0.2.1 is in pool `a` but 2001:db8::1 is in pool `b`"),
        "{err}"
    );
}

#[test]
fn a_requested_address_held_by_a_service_that_does_not_share_is_refused() {
    let mut alloc = allocator(vec![pool("blue", &["203.0.113.0/24"])]);
    let holder = sharing(
        requesting(service("ns", "other"), one("203.0.113.5")),
        "j",
        &[Port::tcp(80)],
    );
    assigned(&mut alloc, &holder);
    let wanting = sharing(
        requesting(service("ns", "me"), one("203.0.113.5")),
        "k",
        &[Port::tcp(443)],
    );
    let err = refused(&mut alloc, &wanting);
    assert_eq!(
        err,
        "ns/me: cannot use requested 203.0.113.5: pool `blue`: 203.0.113.5 is used by ns/other, \
         which does not share key `k` (its key is `j`)"
    );
}

// ---- Requested pool ----

#[test]
fn a_requested_pool_is_used_even_without_auto_assign() {
    let mut alloc = allocator(vec![
        pool("auto", &["192.0.2.0/25"]),
        manual(pool("manual", &["192.0.2.128/25"])),
    ]);
    let got = assigned(&mut alloc, &in_pool(service("ns", "x"), "manual"));
    assert_eq!(got.addresses, one("192.0.2.128"));
}

#[test]
fn an_unknown_requested_pool_is_an_error() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let err = refused(&mut alloc, &in_pool(service("ns", "x"), "nope"));
    assert_eq!(err, "ns/x: requested pool `nope` does not exist");
}

#[test]
fn a_requested_pool_reserved_for_other_services_is_refused() {
    let web_only = ServiceAllocation {
        service_selectors: vec![selector(&[("app", "web")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![reserved(pool("web", &["192.0.2.0/24"]), web_only)]);
    let err = refused(&mut alloc, &in_pool(service("ns", "db"), "web"));
    assert_eq!(
        err,
        "ns/db: requested pool `web` is only for services matching `app=web`"
    );
}

#[test]
fn a_full_requested_pool_is_not_replaced_by_another() {
    let mut alloc = allocator(vec![
        pool("small", &["192.0.2.1-192.0.2.1"]),
        pool("big", &["198.51.100.0/24"]),
    ]);
    assigned(&mut alloc, &in_pool(service("ns", "x"), "small"));
    let err = refused(&mut alloc, &in_pool(service("ns", "y"), "small"));
    assert_eq!(
        err,
        "ns/y: no pool with a free IPv4 address: pool `small` has no free IPv4 address"
    );
}

// ---- Pool order for automatic allocation ----

#[test]
fn pools_without_auto_assign_are_skipped_for_automatic_allocation() {
    let mut alloc = allocator(vec![
        manual(pool("a-manual", &["192.0.2.0/25"])),
        pool("b-auto", &["192.0.2.128/25"]),
    ]);
    assert_eq!(&*assigned(&mut alloc, &service("ns", "x")).pool, "b-auto");
}

#[test]
fn open_pools_are_tried_in_name_order() {
    let mut alloc = allocator(vec![
        pool("b", &["192.0.2.0/25"]),
        pool("a", &["192.0.2.128/31"]),
    ]);
    let pools: Vec<String> = ["x", "y", "z"]
        .iter()
        .map(|name| assigned(&mut alloc, &service("ns", name)).pool.to_string())
        .collect();
    assert_eq!(pools, ["a", "a", "b"]);
}

#[test]
fn service_allocation_pools_come_first_lower_priority_first_unset_last() {
    let for_ns = |priority| ServiceAllocation {
        priority,
        namespaces: vec!["ns".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        pool("a-open", &["192.0.2.0/28"]),
        reserved(pool("b-unset", &["192.0.2.16/32"]), for_ns(None)),
        reserved(pool("c-ten", &["192.0.2.32/32"]), for_ns(Some(10))),
        reserved(pool("d-one", &["192.0.2.48/32"]), for_ns(Some(1))),
    ]);
    let pools: Vec<String> = ["1", "2", "3", "4"]
        .iter()
        .map(|name| assigned(&mut alloc, &service("ns", name)).pool.to_string())
        .collect();
    assert_eq!(pools, ["d-one", "c-ten", "b-unset", "a-open"]);
}

#[test]
fn equal_priorities_are_tried_in_name_order() {
    let same = ServiceAllocation {
        priority: Some(5),
        namespaces: vec!["ns".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("zeta", &["192.0.2.0/32"]), same.clone()),
        reserved(pool("alpha", &["192.0.2.1/32"]), same),
    ]);
    assert_eq!(&*assigned(&mut alloc, &service("ns", "x")).pool, "alpha");
    assert_eq!(&*assigned(&mut alloc, &service("ns", "y")).pool, "zeta");
}

#[test]
fn service_allocation_matches_namespaces_by_name_or_by_namespace_selector() {
    let allocation = ServiceAllocation {
        namespaces: vec!["listed".into()],
        namespace_selectors: vec![selector(&[("team", "blue")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("blue", &["192.0.2.0/28"]), allocation),
        pool("open", &["198.51.100.0/28"]),
    ]);
    assert_eq!(&*assigned(&mut alloc, &service("listed", "x")).pool, "blue");
    let mut selected = service("labelled", "x");
    selected.namespace_labels = labels(&[("team", "blue")]);
    assert_eq!(&*assigned(&mut alloc, &selected).pool, "blue");
    assert_eq!(
        &*assigned(&mut alloc, &service("elsewhere", "x")).pool,
        "open"
    );
}

#[test]
fn service_allocation_needs_both_namespace_and_service_selector_to_match() {
    let allocation = ServiceAllocation {
        namespaces: vec!["ns".into()],
        service_selectors: vec![selector(&[("app", "web")]), selector(&[("app", "api")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("web", &["192.0.2.0/28"]), allocation),
        pool("open", &["198.51.100.0/28"]),
    ]);
    let mut api = service("ns", "api");
    api.labels = labels(&[("app", "api")]);
    assert_eq!(&*assigned(&mut alloc, &api).pool, "web");
    let mut api_elsewhere = service("other", "api");
    api_elsewhere.labels = labels(&[("app", "api")]);
    assert_eq!(&*assigned(&mut alloc, &api_elsewhere).pool, "open");
    assert_eq!(&*assigned(&mut alloc, &service("ns", "plain")).pool, "open");
}

#[test]
fn a_pool_whose_service_allocation_excludes_a_service_is_never_used_for_it() {
    let allocation = ServiceAllocation {
        namespaces: vec!["team".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("team", &["192.0.2.0/24"]), allocation),
        pool("tiny", &["198.51.100.1/32"]),
    ]);
    assigned(&mut alloc, &service("other", "first"));
    let err = refused(&mut alloc, &service("other", "second"));
    assert_eq!(
        err,
        "other/second: no pool with a free IPv4 address: pool `team` is not allowed for \
         namespace `other`, pool `tiny` has no free IPv4 address"
    );
}

#[test]
fn a_full_reserved_pool_falls_back_to_the_open_pools() {
    let allocation = ServiceAllocation {
        namespaces: vec!["ns".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("reserved", &["192.0.2.1/32"]), allocation),
        pool("open", &["198.51.100.0/24"]),
    ]);
    assert_eq!(&*assigned(&mut alloc, &service("ns", "x")).pool, "reserved");
    assert_eq!(&*assigned(&mut alloc, &service("ns", "y")).pool, "open");
}

#[test]
fn a_reserved_pool_without_auto_assign_is_not_used_automatically() {
    let allocation = ServiceAllocation {
        namespaces: vec!["ns".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        manual(reserved(pool("reserved", &["192.0.2.0/24"]), allocation)),
        pool("open", &["198.51.100.0/24"]),
    ]);
    assert_eq!(&*assigned(&mut alloc, &service("ns", "x")).pool, "open");
}

#[test]
fn a_service_allocation_without_restrictions_serves_everyone_with_its_priority() {
    let anyone = ServiceAllocation {
        priority: Some(1),
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        pool("a-open", &["192.0.2.0/24"]),
        reserved(pool("b-preferred", &["198.51.100.0/24"]), anyone),
    ]);
    assert_eq!(
        &*assigned(&mut alloc, &service("any", "x")).pool,
        "b-preferred"
    );
}

#[test]
fn the_failure_explains_every_pool() {
    let team = ServiceAllocation {
        namespaces: vec!["team".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        pool("a", &["2001:db8::1/128"]),
        pool("b", &["192.0.2.0/24"]),
        reserved(pool("c", &["2001:db8:1::/64"]), team),
        manual(pool("d", &["2001:db8:2::/64"])),
    ]);
    assigned(&mut alloc, &with_family(service("x", "first"), V6));
    let err = refused(&mut alloc, &with_family(service("x", "second"), V6));
    assert_eq!(
        err,
        "x/second: no pool with a free IPv6 address: pool `a` has no free IPv6 address, \
         pool `b` has no IPv6 range, pool `c` is not allowed for namespace `x`, \
         pool `d` has autoAssign off"
    );
}

#[test]
fn no_pools_at_all_is_said_plainly() {
    let mut alloc = Allocator::default();
    let err = refused(&mut alloc, &service("ns", "x"));
    assert_eq!(
        err,
        "ns/x: no pool with a free IPv4 address: no address pool is configured"
    );
}

// ---- Families ----

#[test]
fn single_stack_ipv6_gets_an_ipv6_address() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24", "2001:db8::/64"])]);
    let got = assigned(&mut alloc, &with_family(service("ns", "x"), V6));
    assert_eq!(got.addresses, one("2001:db8::"));
}

#[test]
fn require_dual_stack_takes_both_families_from_the_same_pool() {
    let mut alloc = allocator(vec![
        pool("a-v4", &["192.0.2.0/24"]),
        pool("b-v6", &["2001:db8::/64"]),
        pool("c-both", &["198.51.100.0/24", "2001:db8:1::/64"]),
    ]);
    let got = assigned(&mut alloc, &with_family(service("ns", "x"), DUAL));
    assert_eq!(&*got.pool, "c-both");
    assert_eq!(got.addresses, two("198.51.100.0", "2001:db8:1::"));
}

#[test]
fn require_dual_stack_fails_when_no_pool_has_both_families_free() {
    let mut alloc = allocator(vec![
        pool("a-v4", &["192.0.2.0/24"]),
        pool("b-both", &["198.51.100.1/32", "2001:db8::/64"]),
    ]);
    assigned(&mut alloc, &in_pool(service("ns", "taker"), "b-both"));
    let err = refused(&mut alloc, &with_family(service("ns", "x"), DUAL));
    assert_eq!(
        err,
        "ns/x: no pool with both a free IPv4 and a free IPv6 address: pool `a-v4` has no IPv6 \
         range, pool `b-both` has no free IPv4 address"
    );
}

#[test]
fn prefer_dual_stack_prefers_a_later_pool_with_both_families_over_an_earlier_single_one() {
    let mut alloc = allocator(vec![
        pool("a-v4", &["192.0.2.0/24"]),
        pool("b-both", &["198.51.100.0/24", "2001:db8::/64"]),
    ]);
    let got = assigned(&mut alloc, &with_family(service("ns", "x"), PREFER_V4));
    assert_eq!(&*got.pool, "b-both");
    assert_eq!(got.addresses.len(), 2);
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family_then_the_other() {
    let mut alloc = allocator(vec![
        pool("a-v4", &["192.0.2.0/24"]),
        pool("b-v6", &["2001:db8::/64"]),
    ]);
    let v6_first = assigned(&mut alloc, &with_family(service("ns", "x"), PREFER_V6));
    assert_eq!(v6_first.addresses, one("2001:db8::"));
    let v4_first = assigned(&mut alloc, &with_family(service("ns", "y"), PREFER_V4));
    assert_eq!(v4_first.addresses, one("192.0.2.0"));
    let mut only_v6 = allocator(vec![pool("b-v6", &["2001:db8::/64"])]);
    let fallback = assigned(&mut only_v6, &with_family(service("ns", "z"), PREFER_V4));
    assert_eq!(fallback.addresses, one("2001:db8::"));
}

#[test]
fn prefer_dual_stack_holding_one_family_gets_the_other_from_the_same_pool_later() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["2001:db8::/64"]),
    ]);
    let request = with_family(service("ns", "x"), PREFER_V4);
    assert_eq!(assigned(&mut alloc, &request).addresses, one("192.0.2.0"));
    // Another pool has IPv6, but the extension must come from the same pool.
    assert_eq!(assigned(&mut alloc, &request).change, Change::Unchanged);
    alloc.set_pools(
        Pools::new(vec![
            pool("a", &["192.0.2.0/24", "2001:db8:1::/64"]),
            pool("b", &["2001:db8::/64"]),
        ])
        .expect("consistent"),
    );
    let extended = assigned(&mut alloc, &request);
    assert_eq!(
        extended.change,
        Change::Extended {
            added: ip("2001:db8:1::")
        }
    );
    assert_eq!(extended.addresses, two("192.0.2.0", "2001:db8:1::"));
}

#[test]
fn a_service_going_single_stack_keeps_its_remaining_family() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24", "2001:db8::/64"])]);
    let dual = with_family(service("ns", "x"), DUAL);
    assigned(&mut alloc, &dual);
    let single = with_family(service("ns", "x"), V6);
    let got = assigned(&mut alloc, &single);
    assert_eq!(
        got.change,
        Change::Narrowed {
            released: ip("192.0.2.0")
        }
    );
    assert_eq!(got.addresses, one("2001:db8::"));
    assert_eq!(alloc.holders(ip("192.0.2.0")).count(), 0);
}

#[test]
fn a_single_stack_service_going_require_dual_stack_is_extended_or_moved() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24", "2001:db8::/64"]),
    ]);
    assigned(&mut alloc, &service("ns", "x"));
    let got = assigned(&mut alloc, &with_family(service("ns", "x"), DUAL));
    assert_eq!(&*got.pool, "b");
    match got.change {
        Change::Replaced(dropped) => {
            assert_eq!(dropped.addresses, one("192.0.2.0"));
            assert!(dropped.reason.to_string().contains("RequireDualStack"));
        }
        other => panic!("expected a move, got {other:?}"),
    }
}

// ---- Sharing ----

#[test]
fn services_with_the_same_sharing_key_and_distinct_ports_share_the_first_address() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let dns_tcp = sharing(service("ns", "dns-tcp"), "dns", &[Port::tcp(53)]);
    let dns_udp = sharing(service("ns", "dns-udp"), "dns", &[Port::udp(53)]);
    assert_eq!(assigned(&mut alloc, &dns_tcp).addresses, one("192.0.2.0"));
    assert_eq!(assigned(&mut alloc, &dns_udp).addresses, one("192.0.2.0"));
    assert_eq!(alloc.holders(ip("192.0.2.0")).count(), 2);
    let stats = &alloc.stats()[0];
    assert_eq!((stats.ipv4.in_use, stats.services), (1, 2));
}

#[test]
fn a_sharing_service_takes_a_lower_free_address_before_a_shareable_one() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let high = sharing(
        requesting(service("ns", "high"), one("192.0.2.9")),
        "k",
        &[Port::tcp(80)],
    );
    assigned(&mut alloc, &high);
    let low = sharing(service("ns", "low"), "k", &[Port::tcp(443)]);
    assert_eq!(assigned(&mut alloc, &low).addresses, one("192.0.2.0"));
}

#[test]
fn a_sharing_service_joins_a_compatible_address_before_later_free_ones() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &service("ns", "private"));
    let web = sharing(service("ns", "web"), "k", &[Port::tcp(80)]);
    assert_eq!(assigned(&mut alloc, &web).addresses, one("192.0.2.1"));
    let tls = sharing(service("ns", "tls"), "k", &[Port::tcp(443)]);
    assert_eq!(assigned(&mut alloc, &tls).addresses, one("192.0.2.1"));
}

#[test]
fn a_sharing_service_with_an_overlapping_port_gets_another_address() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let first = sharing(service("ns", "first"), "k", &[Port::tcp(80)]);
    let second = sharing(
        service("ns", "second"),
        "k",
        &[Port::tcp(80), Port::tcp(443)],
    );
    assigned(&mut alloc, &first);
    assert_eq!(assigned(&mut alloc, &second).addresses, one("192.0.2.1"));
}

#[test]
fn local_services_share_only_with_identical_selectors_and_never_with_cluster_ones() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let local = |name: &str, app: &str, port: u16| {
        let mut request = sharing(service("ns", name), "k", &[Port::tcp(port)]);
        request.backend = BackendKey::Local {
            selector: labels(&[("app", app)]),
        };
        request
    };
    assert_eq!(
        assigned(&mut alloc, &local("web", "web", 80)).addresses,
        one("192.0.2.0")
    );
    assert_eq!(
        assigned(&mut alloc, &local("web2", "web", 443)).addresses,
        one("192.0.2.0")
    );
    assert_eq!(
        assigned(&mut alloc, &local("db", "db", 5432)).addresses,
        one("192.0.2.1")
    );
    let cluster = sharing(service("ns", "cluster"), "k", &[Port::tcp(8080)]);
    assert_eq!(assigned(&mut alloc, &cluster).addresses, one("192.0.2.2"));
    let err = refused(
        &mut alloc,
        &requesting(local("db2", "db2", 1), one("192.0.2.0")),
    );
    assert!(
        err.contains(
            "is used by ns/web, which has externalTrafficPolicy Local with selector \
                      `app=web` while this service has externalTrafficPolicy Local with selector \
                      `app=db2`"
        ),
        "{err}"
    );
}

#[test]
fn a_service_without_a_sharing_key_never_shares() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(
        &mut alloc,
        &sharing(service("ns", "keyed"), "k", &[Port::tcp(80)]),
    );
    let err = refused(
        &mut alloc,
        &requesting(service("ns", "plain"), one("192.0.2.0")),
    );
    assert!(err.contains("and this service has no sharing key"), "{err}");
}

// ---- Keeping and moving what is held ----

#[test]
fn assign_is_idempotent_and_keeps_an_address_even_when_a_better_pool_appears() {
    let mut alloc = allocator(vec![pool("b", &["192.0.2.0/24"])]);
    let request = service("ns", "x");
    let first = assigned(&mut alloc, &request);
    let again = assigned(&mut alloc, &request);
    assert_eq!(
        (again.addresses, again.change),
        (first.addresses, Change::Unchanged)
    );
    let preferred = ServiceAllocation {
        priority: Some(1),
        namespaces: vec!["ns".into()],
        ..Default::default()
    };
    let report = alloc.set_pools(
        Pools::new(vec![
            pool("b", &["192.0.2.0/24"]),
            reserved(pool("a", &["198.51.100.0/24"]), preferred),
        ])
        .expect("consistent"),
    );
    assert!(report.is_empty());
    assert_eq!(assigned(&mut alloc, &request).change, Change::Unchanged);
}

#[test]
fn an_address_held_in_a_pool_whose_auto_assign_was_turned_off_is_kept() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let request = service("ns", "x");
    assigned(&mut alloc, &request);
    let report =
        alloc.set_pools(Pools::new(vec![manual(pool("a", &["192.0.2.0/24"]))]).expect("ok"));
    assert!(report.is_empty());
    assert_eq!(assigned(&mut alloc, &request).change, Change::Unchanged);
}

#[test]
fn a_service_is_moved_when_it_requests_another_pool() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    assigned(&mut alloc, &service("ns", "x"));
    let got = assigned(&mut alloc, &in_pool(service("ns", "x"), "b"));
    assert_eq!(got.addresses, one("198.51.100.0"));
    assert!(matches!(
        got.change,
        Change::Replaced(ref dropped) if matches!(dropped.reason, Refusal::NotRequestedPool { .. })
    ));
    assert_eq!(alloc.holders(ip("192.0.2.0")).count(), 0);
}

#[test]
fn a_service_is_moved_when_it_requests_another_address() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &service("ns", "x"));
    let got = assigned(
        &mut alloc,
        &requesting(service("ns", "x"), one("192.0.2.50")),
    );
    assert_eq!(got.addresses, one("192.0.2.50"));
    assert!(matches!(
        got.change,
        Change::Replaced(ref dropped) if matches!(dropped.reason, Refusal::NotRequestedAddresses { .. })
    ));
}

#[test]
fn a_service_whose_ports_now_clash_with_a_sharer_is_moved() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(
        &mut alloc,
        &sharing(service("ns", "a"), "k", &[Port::tcp(80)]),
    );
    assigned(
        &mut alloc,
        &sharing(service("ns", "b"), "k", &[Port::tcp(443)]),
    );
    let got = assigned(
        &mut alloc,
        &sharing(service("ns", "b"), "k", &[Port::tcp(80)]),
    );
    assert_eq!(got.addresses, one("192.0.2.1"));
    assert!(matches!(
        got.change,
        Change::Replaced(ref dropped) if matches!(dropped.reason, Refusal::Shared(_))
    ));
}

#[test]
fn the_sole_holder_may_change_its_sharing_key_in_place() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(
        &mut alloc,
        &sharing(service("ns", "x"), "old", &[Port::tcp(80)]),
    );
    let got = assigned(
        &mut alloc,
        &sharing(service("ns", "x"), "new", &[Port::tcp(80)]),
    );
    assert_eq!(
        (got.addresses, got.change),
        (one("192.0.2.0"), Change::Unchanged)
    );
    let joiner = sharing(service("ns", "y"), "new", &[Port::tcp(443)]);
    assert_eq!(assigned(&mut alloc, &joiner).addresses, one("192.0.2.0"));
}

#[test]
fn a_failed_move_reports_what_was_given_up() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &service("ns", "x"));
    let err = alloc
        .assign(&in_pool(service("ns", "x"), "gone"))
        .expect_err("unknown pool");
    assert_eq!(
        err.to_string(),
        "ns/x: requested pool `gone` does not exist (it gave up 192.0.2.0 because pool `a` is \
         not the requested pool `gone`)"
    );
    assert!(alloc.assignment(&ServiceKey::new("ns", "x")).is_none());
}

// ---- Release ----

#[test]
fn release_frees_one_address_and_unassign_frees_all() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24", "2001:db8::/64"])]);
    let key = ServiceKey::new("ns", "x");
    assigned(&mut alloc, &with_family(service("ns", "x"), DUAL));
    assert!(!alloc.release(&key, ip("192.0.2.99")));
    assert!(alloc.release(&key, ip("192.0.2.0")));
    alloc.assert_consistent();
    assert_eq!(
        alloc.assignment(&key).map(|a| a.addresses),
        Some(one("2001:db8::"))
    );
    assert_eq!(
        alloc.unassign(&key).map(|a| a.addresses),
        Some(one("2001:db8::"))
    );
    alloc.assert_consistent();
    assert!(alloc.unassign(&key).is_none());
    assert_eq!(alloc.stats()[0].ipv6.in_use, 0);
}

#[test]
fn a_shared_address_stays_in_use_until_its_last_holder_leaves() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/31"])]);
    assigned(
        &mut alloc,
        &sharing(service("ns", "a"), "k", &[Port::tcp(80)]),
    );
    assigned(
        &mut alloc,
        &sharing(service("ns", "b"), "k", &[Port::tcp(81)]),
    );
    alloc.unassign(&ServiceKey::new("ns", "a"));
    alloc.assert_consistent();
    assert_eq!(
        assigned(&mut alloc, &service("ns", "c")).addresses,
        one("192.0.2.1")
    );
    alloc.unassign(&ServiceKey::new("ns", "b"));
    assert_eq!(
        assigned(&mut alloc, &service("ns", "d")).addresses,
        one("192.0.2.0")
    );
}

// ---- Restore ----

#[test]
fn restore_accepts_a_valid_assignment_regardless_of_auto_assign_and_priority() {
    let preferred = ServiceAllocation {
        priority: Some(1),
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        reserved(pool("a", &["198.51.100.0/24"]), preferred),
        manual(pool("b", &["192.0.2.0/24"])),
    ]);
    let restored = alloc
        .restore(&service("ns", "x"), one("192.0.2.40"))
        .expect("valid");
    alloc.assert_consistent();
    assert_eq!(&*restored.pool, "b");
    assert_eq!(
        assigned(&mut alloc, &service("ns", "x")).change,
        Change::Unchanged
    );
}

#[test]
fn restore_refuses_invalid_assignments_with_the_reason() {
    let team = ServiceAllocation {
        namespaces: vec!["team".into()],
        ..Default::default()
    };
    let mut avoiding = pool("c", &["203.0.113.0/24"]);
    avoiding.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["2001:db8::/64"]),
        avoiding,
        reserved(pool("d", &["198.51.100.0/24"]), team),
    ]);
    alloc
        .restore(&service("ns", "holder"), one("192.0.2.1"))
        .expect("valid");
    let cases = [
        (service("ns", "x"), Addresses::NONE, "no address given"),
        (
            service("ns", "x"),
            one("10.0.0.1"),
            "10.0.0.1 is not in any address pool",
        ),
        (
            service("ns", "x"),
            one("2001:db8::1"),
            "SingleStack IPv4 does not accept 2001:db8::1",
        ),
        (
            with_family(service("ns", "x"), DUAL),
            two("192.0.2.2", "2001:db8::2"),
            "192.0.2.2 is in pool `a` but 2001:db8::2 is in pool `b`",
        ),
        (
            service("ns", "x"),
            one("203.0.113.255"),
            "pool `c`: 203.0.113.255 ends in .0 or .255",
        ),
        (
            service("ns", "x"),
            one("198.51.100.1"),
            "pool `d` is not allowed for namespace `ns`",
        ),
        (
            service("ns", "x"),
            one("192.0.2.1"),
            "pool `a`: 192.0.2.1 is used by ns/holder, and this service has no sharing key",
        ),
        (
            in_pool(service("ns", "x"), "c"),
            one("192.0.2.2"),
            "pool `a` is not the requested pool `c`",
        ),
    ];
    for (request, addresses, reason) in cases {
        let refusal = alloc
            .restore(&request, addresses)
            .expect_err(reason)
            .to_string();
        assert!(refusal.contains(reason), "{refusal} lacks {reason:?}");
        alloc.assert_consistent();
    }
    assert_eq!(alloc.assignments().count(), 1, "refusals change nothing");
}

// ---- Pool changes ----

#[test]
fn set_pools_keeps_valid_assignments_and_follows_a_renamed_pool() {
    let mut alloc = allocator(vec![pool("old", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &service("ns", "x"));
    let report = alloc.set_pools(Pools::new(vec![pool("new", &["192.0.2.0/24"])]).expect("ok"));
    alloc.assert_consistent();
    assert!(report.is_empty());
    let key = ServiceKey::new("ns", "x");
    assert_eq!(
        alloc.assignment(&key).map(|a| a.pool.to_string()),
        Some("new".into())
    );
    assert_eq!(alloc.stats()[0].services, 1);
}

#[test]
fn set_pools_reports_and_releases_addresses_left_outside_every_pool() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24", "2001:db8::/64"])]);
    assigned(&mut alloc, &service("ns", "v4"));
    assigned(&mut alloc, &with_family(service("ns", "dual"), DUAL));
    let report = alloc.set_pools(Pools::new(vec![pool("a", &["2001:db8::/64"])]).expect("ok"));
    alloc.assert_consistent();
    assert_eq!(report.len(), 2);
    assert_eq!(report[0].service, ServiceKey::new("ns", "dual"));
    assert_eq!(report[0].released, one("192.0.2.1"));
    assert_eq!(
        report[0].reason.to_string(),
        "192.0.2.1 is not in any address pool"
    );
    assert_eq!(report[1].service, ServiceKey::new("ns", "v4"));
    assert_eq!(report[1].released, one("192.0.2.0"));
    assert!(alloc.assignment(&ServiceKey::new("ns", "v4")).is_none());
    // The dual-stack service keeps its IPv6 address reserved until it is reassigned.
    let dual = alloc
        .assignment(&ServiceKey::new("ns", "dual"))
        .expect("kept");
    assert_eq!(dual.addresses, one("2001:db8::"));
}

#[test]
fn set_pools_reports_but_keeps_reserved_addresses_no_longer_allowed() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let request = service("ns", "x");
    assigned(&mut alloc, &request);
    let elsewhere = ServiceAllocation {
        namespaces: vec!["other".into()],
        ..Default::default()
    };
    let report = alloc.set_pools(
        Pools::new(vec![
            reserved(pool("a", &["192.0.2.0/24"]), elsewhere),
            pool("b", &["198.51.100.0/24"]),
        ])
        .expect("ok"),
    );
    alloc.assert_consistent();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].released, Addresses::NONE);
    assert_eq!(
        report[0].reason.to_string(),
        "pool `a` is not allowed for namespace `ns`"
    );
    // Still reserved: nobody else is given it while the service is being moved.
    let other = assigned(&mut alloc, &service("other", "y"));
    assert_eq!(other.addresses, one("192.0.2.1"));
    let moved = assigned(&mut alloc, &request);
    assert_eq!(moved.addresses, one("198.51.100.0"));
}

#[test]
fn set_pools_reports_addresses_that_became_buggy() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &service("ns", "x"));
    let mut avoiding = pool("a", &["192.0.2.0/24"]);
    avoiding.avoid_buggy_ips = true;
    let report = alloc.set_pools(Pools::new(vec![avoiding]).expect("ok"));
    alloc.assert_consistent();
    assert_eq!(
        report[0].reason.to_string(),
        "pool `a`: 192.0.2.0 ends in .0 or .255 and the pool avoids buggy IPs"
    );
    assert_eq!(
        assigned(&mut alloc, &service("ns", "x")).addresses,
        one("192.0.2.1")
    );
}

// ---- Counters ----

#[test]
fn stats_count_usable_totals_in_use_per_family_and_services() {
    let mut avoiding = pool("a", &["192.0.2.0/23", "2001:db8::/120"]);
    avoiding.avoid_buggy_ips = true;
    let mut alloc = allocator(vec![avoiding, pool("b", &["198.51.100.0/24"])]);
    assigned(&mut alloc, &service("ns", "x"));
    assigned(&mut alloc, &with_family(service("ns", "y"), DUAL));
    let stats = alloc.stats();
    assert_eq!(&*stats[0].pool, "a");
    assert_eq!(stats[0].ipv4.total, 2 * 254);
    assert_eq!(stats[0].ipv4.in_use, 2);
    assert_eq!(stats[0].ipv4.available(), 2 * 254 - 2);
    assert_eq!(stats[0].ipv6.total, 256);
    assert_eq!(stats[0].ipv6.in_use, 1);
    assert_eq!(stats[0].services, 2);
    assert_eq!(
        (stats[1].ipv4.total, stats[1].ipv4.in_use, stats[1].services),
        (256, 0, 0)
    );
}

#[test]
fn huge_ipv6_pools_cost_nothing_and_count_exactly() {
    assert_eq!(
        allocator(vec![pool("all", &["::/0"])]).stats()[0]
            .ipv6
            .total,
        u128::MAX
    );
    let mut alloc = allocator(vec![pool("slash48", &["2001:db8::/48"])]);
    assert_eq!(alloc.stats()[0].ipv6.total, 1 << 80);
    let mut last = Addresses::NONE;
    for n in 0..1000 {
        last = assigned(
            &mut alloc,
            &in_pool(with_family(service("ns", &n.to_string()), V6), "slash48"),
        )
        .addresses;
    }
    assert_eq!(last, one("2001:db8::3e7"));
}

#[test]
fn pool_of_names_the_pool_containing_an_address() {
    let alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["2001:db8::/64"]),
    ]);
    assert_eq!(alloc.pool_of(ip("2001:db8::5")), Some("b"));
    assert_eq!(alloc.pool_of(ip("192.0.3.0")), None);
}

#[test]
fn a_held_address_that_no_longer_fits_the_family_policy_is_given_up() {
    let mut alloc = allocator(vec![pool("a", &["2001:db8::/64"])]);
    assigned(&mut alloc, &with_family(service("ns", "x"), V6));
    let dual_with_one_request =
        requesting(with_family(service("ns", "x"), DUAL), one("2001:db8::"));
    let err = refused(&mut alloc, &dual_with_one_request);
    assert_eq!(
        err,
        "ns/x: RequireDualStack (IPv4 first) does not accept the requested 2001:db8:: (it gave \
         up 2001:db8:: because RequireDualStack (IPv4 first) does not accept 2001:db8::)"
    );
}
