//! `pack`: every UPDATE fits, every prefix is sent exactly once and in order, attribute sets
//! never share an UPDATE, and no UPDATE could have taken the next prefix (so the count is the
//! minimum for an order-keeping packing).

mod common;

use std::net::{IpAddr, Ipv4Addr};

use ferrolb_bgp_wire::{
    Context, EncodeError, Family, Message, Origin, PathAttributes, Update, encode, pack,
};
use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;

fn encoded_len(update: &Update, ctx: &Context) -> Result<usize, EncodeError> {
    encode(&Message::Update(update.clone()), ctx).map(|bytes| bytes.len())
}

/// Checks everything `pack` promises for one input.
fn check_packing(
    withdrawn: &[IpNet],
    announced: &[(PathAttributes, Vec<IpNet>)],
    ctx: &Context,
    updates: &[Update],
) -> Result<(), TestCaseError> {
    // Fits.
    for update in updates {
        let len =
            encoded_len(update, ctx).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert!(
            len <= ctx.max_message_len,
            "{len} > {}",
            ctx.max_message_len
        );
        prop_assert!(update.end_of_rib.is_none());
    }

    // Withdrawals first, IPv4 then IPv6, each in input order, each exactly once.
    let first_announcement = updates
        .iter()
        .position(|update| !update.announced.is_empty())
        .unwrap_or(updates.len());
    let (withdrawals, announcements) = updates.split_at(first_announcement);
    for update in withdrawals {
        prop_assert!(update.announced.is_empty() && update.attributes.is_none());
    }
    let sent_withdrawn: Vec<IpNet> = withdrawals
        .iter()
        .flat_map(|u| u.withdrawn.clone())
        .collect();
    let mut expected_withdrawn: Vec<IpNet> = withdrawn
        .iter()
        .copied()
        .filter(|p| p.addr().is_ipv4())
        .collect();
    expected_withdrawn.extend(withdrawn.iter().copied().filter(|p| p.addr().is_ipv6()));
    prop_assert_eq!(sent_withdrawn, expected_withdrawn);

    // Announcements: one attribute set and one family per UPDATE; groups in order of first
    // appearance; within a group IPv4 then IPv6, in input order.
    let mut expected: Vec<(PathAttributes, Family, Vec<IpNet>)> = Vec::new();
    for (attributes, prefixes) in announced {
        for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            let of_family: Vec<IpNet> = prefixes
                .iter()
                .copied()
                .filter(|p| Family::of(p) == family)
                .collect();
            if of_family.is_empty() {
                continue;
            }
            match expected
                .iter_mut()
                .find(|(a, f, _)| a == attributes && *f == family)
            {
                Some((_, _, existing)) => existing.extend(of_family),
                None => expected.push((attributes.clone(), family, of_family)),
            }
        }
    }
    // Order of groups: by attribute set's first appearance, then family.
    let mut order: Vec<&PathAttributes> = Vec::new();
    for (attributes, prefixes) in announced {
        if !prefixes.is_empty() && !order.contains(&attributes) {
            order.push(attributes);
        }
    }
    expected.sort_by_key(|(attributes, family, _)| {
        (order.iter().position(|a| *a == attributes), *family)
    });

    let mut sent: Vec<(PathAttributes, Family, Vec<IpNet>)> = Vec::new();
    let mut runs: Vec<Vec<&Update>> = Vec::new();
    for update in announcements {
        prop_assert!(update.withdrawn.is_empty());
        prop_assert!(!update.announced.is_empty());
        let attributes = update
            .attributes
            .clone()
            .ok_or_else(|| TestCaseError::fail("no attributes"))?;
        let family = Family::of(&update.announced[0]);
        prop_assert!(
            update.announced.iter().all(|p| Family::of(p) == family),
            "mixed families"
        );
        match sent.last_mut() {
            Some((a, f, prefixes)) if *a == attributes && *f == family => {
                prefixes.extend(update.announced.iter().copied());
                runs.last_mut().into_iter().for_each(|run| run.push(update));
            }
            _ => {
                sent.push((attributes, family, update.announced.clone()));
                runs.push(vec![update]);
            }
        }
    }
    prop_assert_eq!(sent, expected);

    // Minimal: inside a run, the next UPDATE's first prefix would not have fitted.
    for run in runs {
        for pair in run.windows(2) {
            let mut grown = pair[0].clone();
            grown.announced.push(pair[1].announced[0]);
            match encoded_len(&grown, ctx) {
                Ok(len) => prop_assert!(len > ctx.max_message_len, "{len} would have fitted"),
                Err(EncodeError::TooLong { .. }) => {}
                Err(other) => return Err(TestCaseError::fail(other.to_string())),
            }
        }
    }
    // Same for withdrawals.
    for pair in withdrawals.windows(2) {
        let mut grown = pair[0].clone();
        grown.withdrawn.push(pair[1].withdrawn[0]);
        grown.withdrawn.sort_by_key(|p| p.addr().is_ipv6());
        match encoded_len(&grown, ctx) {
            Ok(len) => prop_assert!(len > ctx.max_message_len, "{len} would have fitted"),
            Err(EncodeError::TooLong { .. }) => {}
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }
    Ok(())
}

fn ebgp_attributes() -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: vec![64512],
        next_hop: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        link_local_next_hop: None,
        local_pref: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
    }
}

/// 10,000 host routes out of 198.18.0.0/15.
fn host_routes(count: u32) -> Vec<IpNet> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    (0..count)
        .map(|i| {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base + i), 32).expect("well-formed test data"))
        })
        .collect()
}

#[test]
fn ten_thousand_host_routes_fill_the_minimum_number_of_updates() {
    let ctx = Context {
        four_octet_asn: true,
        ..Context::default()
    };
    let prefixes = host_routes(10_000);
    let announced = vec![(ebgp_attributes(), prefixes.clone())];
    let updates = pack(&[], &announced, &ctx);

    // RFC 4271 layout: 19 header + 2 Withdrawn Routes Length + 2 Total Path Attribute Length,
    // ORIGIN 4 (3 header + 1), AS_PATH 9 (3 + segment type, count, one 4-octet ASN),
    // NEXT_HOP 7 (3 + 4). Each /32 is 5 octets (length + 4).
    let overhead = 19 + 2 + 2 + 4 + 9 + 7;
    let per_update = (4096 - overhead) / 5;
    let minimum = 10_000usize.div_ceil(per_update);
    assert_eq!(per_update, 810);
    assert_eq!(minimum, 13);
    assert_eq!(updates.len(), minimum);

    let sent: Vec<IpNet> = updates.iter().flat_map(|u| u.announced.clone()).collect();
    assert_eq!(sent, prefixes);
    let full = encode(&Message::Update(updates[0].clone()), &ctx).expect("the full UPDATE encodes");
    assert_eq!(full.len(), overhead + 810 * 5);
    check_packing(&[], &announced, &ctx, &updates).expect("packing keeps its promises");
}

#[test]
fn mixed_families_and_withdrawals() {
    let ctx = Context {
        four_octet_asn: false,
        max_message_len: 512,
    };
    let v4: Vec<IpNet> = host_routes(300);
    let v6: Vec<IpNet> = (0..200u16)
        .map(|i| {
            format!("2001:db8:f::{i:x}/128")
                .parse()
                .expect("well-formed test data")
        })
        .collect();
    let mut withdrawn = v6[..50].to_vec();
    withdrawn.extend_from_slice(&v4[..80]);
    let mut mixed = v4[100..].to_vec();
    mixed.extend_from_slice(&v6[50..]);
    let mut v6_attributes = ebgp_attributes();
    v6_attributes.next_hop = IpAddr::V6("2001:db8::1".parse().expect("well-formed test data"));
    v6_attributes.link_local_next_hop = Some("fe80::1".parse().expect("well-formed test data"));
    v6_attributes.as_path = vec![4_200_000_000];
    let announced = vec![
        (ebgp_attributes(), mixed),
        (v6_attributes.clone(), v6[..30].to_vec()),
        (v6_attributes, v4[80..100].to_vec()),
    ];
    let updates = pack(&withdrawn, &announced, &ctx);
    check_packing(&withdrawn, &announced, &ctx, &updates).expect("packing keeps its promises");
    assert!(updates.len() > 10);
}

#[test]
fn two_attribute_sets_never_share_an_update() {
    let ctx = Context::default();
    let mut other = ebgp_attributes();
    other.communities = vec![0xfde8_0001];
    let prefixes = host_routes(10);
    let announced = vec![
        (ebgp_attributes(), prefixes[..5].to_vec()),
        (other.clone(), prefixes[5..].to_vec()),
    ];
    let updates = pack(&[], &announced, &ctx);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].attributes.as_ref(), Some(&ebgp_attributes()));
    assert_eq!(updates[0].announced, prefixes[..5]);
    assert_eq!(updates[1].attributes.as_ref(), Some(&other));
    assert_eq!(updates[1].announced, prefixes[5..]);
}

#[test]
fn nothing_to_send_is_no_updates() {
    assert!(pack(&[], &[], &Context::default()).is_empty());
    assert!(pack(&[], &[(ebgp_attributes(), Vec::new())], &Context::default()).is_empty());
}

fn announced_routes() -> impl Strategy<Value = Vec<(PathAttributes, Vec<IpNet>)>> {
    let group = (any::<bool>(), 0usize..3).prop_flat_map(|(v6_hop, _)| {
        (
            common::attributes(v6_hop),
            proptest::collection::vec(
                prop_oneof![common::ipv4_prefix(), common::ipv6_prefix()],
                0..150,
            ),
        )
    });
    proptest::collection::vec(group, 0..4).prop_map(|mut groups| {
        // Sometimes repeat an attribute set, which must merge with its first appearance.
        if groups.len() >= 2 {
            let repeated = groups[0].0.clone();
            groups[1].0 = repeated;
        }
        groups
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn packing_keeps_every_promise(
        withdrawn in proptest::collection::vec(
            prop_oneof![common::ipv4_prefix(), common::ipv6_prefix()], 0..300),
        announced in announced_routes(),
        four_octet_asn in any::<bool>(),
        max_message_len in 2300usize..=4096,
    ) {
        let ctx = Context { four_octet_asn, max_message_len };
        let updates = pack(&withdrawn, &announced, &ctx);
        check_packing(&withdrawn, &announced, &ctx, &updates)?;
    }
}
