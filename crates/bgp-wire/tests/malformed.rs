//! Malformed input: the exact NOTIFICATION (code/subcode/data), or the RFC 7606 outcome, for
//! each case in the table of `ferrolb_bgp_wire::wire`.

use ferrolb_bgp_wire::{Context, Inbound, Message, Notification, decode, frame_length};
use ipnet::IpNet;

const MARKER: [u8; 16] = [0xff; 16];

fn frame(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(
        &u16::try_from(19 + body.len())
            .expect("well-formed test data")
            .to_be_bytes(),
    );
    bytes.push(message_type);
    bytes.extend_from_slice(body);
    bytes
}

fn four_octet() -> Context {
    Context {
        four_octet_asn: true,
        ..Context::default()
    }
}

fn notification(bytes: &[u8]) -> Notification {
    match decode(bytes, &four_octet()) {
        Err(notification) => notification,
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
}

fn treat_as_withdraw(bytes: &[u8]) -> (Vec<IpNet>, String) {
    match decode(bytes, &four_octet()) {
        Ok(Inbound::TreatAsWithdraw { withdrawn, reason }) => (withdrawn, reason),
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

fn n(code: u8, subcode: u8, data: &[u8]) -> Notification {
    Notification::new(code, subcode, data.to_vec())
}

fn net(text: &str) -> IpNet {
    text.parse().expect("well-formed test data")
}

/// An UPDATE body from its attribute bytes and NLRI (no withdrawals).
fn update(attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(
        &u16::try_from(attributes.len())
            .expect("well-formed test data")
            .to_be_bytes(),
    );
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    frame(2, &body)
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH_64512: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 198, 51, 100, 10];
/// 192.0.2.0/24
const NLRI: [u8; 4] = [24, 192, 0, 2];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// --- Message header (RFC 4271 §6.1) ---

#[test]
fn frame_length_waits_for_a_whole_header() {
    let keepalive = frame(4, &[]);
    assert_eq!(
        frame_length(&keepalive[..18], &Context::default()),
        Ok(None)
    );
    assert_eq!(frame_length(&[], &Context::default()), Ok(None));
    assert_eq!(frame_length(&keepalive, &Context::default()), Ok(Some(19)));
    let open_header = &frame(1, &[0; 40])[..19];
    assert_eq!(frame_length(open_header, &Context::default()), Ok(Some(59)));
}

#[test]
fn bad_marker_is_connection_not_synchronized() {
    let mut bytes = frame(4, &[]);
    bytes[3] = 0xfe;
    assert_eq!(frame_length(&bytes, &Context::default()), Err(n(1, 1, &[])));
    assert_eq!(notification(&bytes), n(1, 1, &[]));
}

#[test]
fn bad_lengths_are_bad_message_length_with_the_length() {
    let with_length = |message_type: u8, length: u16| {
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.push(message_type);
        bytes
    };
    for (message_type, length) in [
        (4, 18),   // below the header
        (2, 4097), // above 4096
        (4, 20),   // KEEPALIVE is exactly 19
        (1, 28),   // OPEN is at least 29
        (2, 22),   // UPDATE is at least 23
        (3, 20),   // NOTIFICATION is at least 21
        (5, 24),   // ROUTE-REFRESH is exactly 23
    ] {
        let header = with_length(message_type, length);
        assert_eq!(
            frame_length(&header, &Context::default()),
            Err(n(1, 2, &length.to_be_bytes())),
            "type {message_type} length {length}"
        );
    }
    // OPEN stays at 4096 even when a larger size is allowed for the rest (RFC 8654 §4).
    let large = Context {
        max_message_len: 65535,
        ..Context::default()
    };
    assert_eq!(
        frame_length(&with_length(1, 5000), &large),
        Err(n(1, 2, &5000u16.to_be_bytes()))
    );
    assert_eq!(frame_length(&with_length(2, 5000), &large), Ok(Some(5000)));
}

#[test]
fn a_frame_whose_size_differs_from_its_length_field_is_bad_message_length() {
    let mut bytes = frame(4, &[]);
    bytes.push(0);
    assert_eq!(notification(&bytes), n(1, 2, &[0, 19]));
}

#[test]
fn bad_type_is_bad_message_type_with_the_type() {
    for message_type in [0, 6, 255] {
        let bytes = frame(message_type, &[0, 0, 0, 0]);
        assert_eq!(
            frame_length(&bytes, &Context::default()),
            Err(n(1, 3, &[message_type]))
        );
        assert_eq!(notification(&bytes), n(1, 3, &[message_type]));
    }
}

// --- OPEN (RFC 4271 §6.2) ---

fn open(version: u8, hold_time: u16, router_id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut body = vec![version, 0xfd, 0xe8];
    body.extend_from_slice(&hold_time.to_be_bytes());
    body.extend_from_slice(&router_id);
    body.push(u8::try_from(params.len()).expect("well-formed test data"));
    body.extend_from_slice(params);
    frame(1, &body)
}

#[test]
fn open_version_other_than_4_is_unsupported_version_with_ours() {
    assert_eq!(
        notification(&open(3, 90, [192, 0, 2, 1], &[])),
        n(2, 1, &[0, 4])
    );
    assert_eq!(
        notification(&open(5, 90, [192, 0, 2, 1], &[])),
        n(2, 1, &[0, 4])
    );
}

#[test]
fn open_hold_time_of_one_or_two_is_unacceptable() {
    assert_eq!(notification(&open(4, 1, [192, 0, 2, 1], &[])), n(2, 6, &[]));
    assert_eq!(notification(&open(4, 2, [192, 0, 2, 1], &[])), n(2, 6, &[]));
    assert!(decode(&open(4, 3, [192, 0, 2, 1], &[]), &four_octet()).is_ok());
    assert!(decode(&open(4, 0, [192, 0, 2, 1], &[]), &four_octet()).is_ok());
}

#[test]
fn open_bgp_identifier_zero_is_bad_identifier_and_any_other_is_accepted() {
    assert_eq!(notification(&open(4, 90, [0, 0, 0, 0], &[])), n(2, 3, &[]));
    // RFC 6286 §2.1: any non-zero value, even one that is not a unicast host address.
    for id in [[255, 255, 255, 255], [224, 0, 0, 1]] {
        match decode(&open(4, 90, id, &[]), &four_octet()) {
            Ok(Inbound::Message(Message::Open(open))) => {
                assert_eq!(open.router_id.octets(), id);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn open_optional_parameter_other_than_capabilities_is_unsupported() {
    // Type 1 (the deprecated Authentication parameter), length 1.
    assert_eq!(
        notification(&open(4, 90, [192, 0, 2, 1], &[1, 1, 0])),
        n(2, 4, &[])
    );
}

#[test]
fn open_with_broken_parameter_framing_is_unspecific() {
    // Capabilities parameter claiming 6 octets with 2 present.
    assert_eq!(
        notification(&open(4, 90, [192, 0, 2, 1], &[2, 6, 1, 4])),
        n(2, 0, &[])
    );
    // A capability claiming more than its parameter holds.
    assert_eq!(
        notification(&open(4, 90, [192, 0, 2, 1], &[2, 4, 1, 4, 0, 1])),
        n(2, 0, &[])
    );
    // A 4-octet ASN capability of 3 octets.
    assert_eq!(
        notification(&open(4, 90, [192, 0, 2, 1], &[2, 5, 65, 3, 0, 0, 1])),
        n(2, 0, &[])
    );
}

#[test]
fn open_capability_netgauze_cannot_read_is_ignored_and_kept_by_code() {
    // Multiprotocol for AFI 1 SAFI 250, an unassigned SAFI.
    let bytes = open(4, 90, [192, 0, 2, 1], &[2, 6, 1, 4, 0, 1, 0, 250]);
    match decode(&bytes, &four_octet()) {
        Ok(Inbound::Message(Message::Open(open))) => {
            assert!(open.capabilities.families.is_empty());
            assert_eq!(open.capabilities.other, vec![1]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_peer_as_helper() {
    assert_eq!(Notification::bad_peer_as(64512), n(2, 2, &[0xfc, 0x00]));
    assert_eq!(
        Notification::bad_peer_as(4_200_000_000),
        n(2, 2, &[0xfa, 0x56, 0xea, 0x00])
    );
}

// --- UPDATE: session resets ---

#[test]
fn withdrawn_routes_length_beyond_the_message_is_malformed_attribute_list() {
    let bytes = frame(2, &[0, 10, 24, 192, 0, 2, 0, 0]);
    assert_eq!(notification(&bytes), n(3, 1, &[]));
}

#[test]
fn total_attribute_length_beyond_the_message_is_malformed_attribute_list() {
    let mut body = vec![0, 0, 0, 50];
    body.extend_from_slice(&ORIGIN_IGP);
    assert_eq!(notification(&frame(2, &body)), n(3, 1, &[]));
}

#[test]
fn bad_prefix_in_nlri_or_withdrawn_routes_is_invalid_network_field() {
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &NEXT_HOP]);
    // Prefix length 33.
    assert_eq!(
        notification(&update(&all, &[33, 192, 0, 2, 1, 0])),
        n(3, 10, &[])
    );
    // /24 with two of its three octets.
    assert_eq!(notification(&update(&all, &[24, 192, 0])), n(3, 10, &[]));
    // The same in Withdrawn Routes.
    assert_eq!(
        notification(&frame(2, &[0, 3, 24, 192, 0, 0, 0])),
        n(3, 10, &[])
    );
}

fn mp_reach_v6() -> Vec<u8> {
    #[rustfmt::skip]
    let attribute = [
        0x80, 14, 28, 0, 2, 1, 16,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 48, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00,
    ];
    attribute.to_vec()
}

#[test]
fn duplicate_mp_reach_or_mp_unreach_is_malformed_attribute_list() {
    let reach = mp_reach_v6();
    let twice = attrs(&[&reach, &ORIGIN_IGP, &AS_PATH_64512, &reach]);
    assert_eq!(notification(&update(&twice, &[])), n(3, 1, &[]));
    let unreach = [0x80, 15, 3, 0, 2, 1];
    assert_eq!(
        notification(&update(&attrs(&[&unreach, &unreach]), &[])),
        n(3, 1, &[])
    );
}

#[test]
fn session_reset_outranks_treat_as_withdraw() {
    let reach = mp_reach_v6();
    let bad_origin = [0x40, 1, 1, 7];
    let all = attrs(&[&bad_origin, &reach, &AS_PATH_64512, &reach]);
    assert_eq!(notification(&update(&all, &[])), n(3, 1, &[]));
}

#[test]
fn mp_reach_overrunning_the_attribute_list_is_malformed_attribute_list() {
    let mut reach = mp_reach_v6();
    reach[2] = 40; // claims 40 octets, 28 follow
    assert_eq!(
        notification(&update(&attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &reach]), &[])),
        n(3, 1, &[])
    );
}

#[test]
fn mp_reach_with_a_bad_next_hop_length_is_optional_attribute_error() {
    #[rustfmt::skip]
    let reach = [
        0x80, 14, 16, 0, 2, 1,
        4, 198, 51, 100, 10,      // a 4-octet next hop for IPv6 (RFC 7606 §7.11)
        0, 48, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00,
    ];
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &reach]);
    assert_eq!(notification(&update(&all, &[])), n(3, 9, &reach));
}

#[test]
fn mp_reach_with_an_unparseable_prefix_is_optional_attribute_error() {
    let mut reach = mp_reach_v6();
    reach[24] = 129; // prefix length 129
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &reach]);
    assert_eq!(notification(&update(&all, &[])), n(3, 9, &reach));
}

#[test]
fn unrecognized_well_known_attribute_is_reported_with_the_attribute() {
    let unknown = [0x40, 99, 2, 0xab, 0xcd];
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &NEXT_HOP, &unknown]);
    assert_eq!(notification(&update(&all, &NLRI)), n(3, 2, &unknown));
}

// --- UPDATE: treat-as-withdraw (RFC 7606) ---

#[test]
fn attribute_overrunning_the_attribute_list_is_treat_as_withdraw() {
    // COMMUNITIES claims 8 octets and the list ends after 4.
    let communities = [0xc0, 8, 8, 0xfd, 0xe8, 0, 100];
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &NEXT_HOP, &communities]);
    let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
    assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
    assert!(reason.contains("RFC 7606 §4"), "{reason}");
    // Fewer than three octets left for an attribute header.
    let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &NEXT_HOP, &[0x40, 5]]);
    assert_eq!(
        treat_as_withdraw(&update(&all, &NLRI)).0,
        vec![net("192.0.2.0/24")]
    );
}

#[test]
fn bad_origin_is_treat_as_withdraw() {
    for origin in [[0x40, 1, 1, 3].to_vec(), vec![0x40, 1, 2, 0, 0]] {
        let all = attrs(&[&origin, &AS_PATH_64512, &NEXT_HOP]);
        let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
        assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
        assert!(reason.contains("ORIGIN"), "{reason}");
    }
}

#[test]
fn bad_as_path_segments_are_treat_as_withdraw() {
    for as_path in [
        vec![0x40, 2, 6, 5, 1, 0, 0, 0xfc, 0x00], // segment type 5
        vec![0x40, 2, 6, 2, 2, 0, 0, 0xfc, 0x00], // two ASNs announced, one present
        vec![0x40, 2, 2, 2, 0],                   // zero-length segment
    ] {
        let all = attrs(&[&ORIGIN_IGP, &as_path, &NEXT_HOP]);
        let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
        assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
        assert!(reason.contains("AS_PATH"), "{reason}");
    }
}

#[test]
fn missing_mandatory_attributes_with_nlri_are_treat_as_withdraw() {
    for (all, missing) in [
        (attrs(&[&ORIGIN_IGP, &AS_PATH_64512]), "NEXT_HOP"),
        (attrs(&[&AS_PATH_64512, &NEXT_HOP]), "ORIGIN"),
        (attrs(&[&ORIGIN_IGP, &NEXT_HOP]), "AS_PATH"),
        (Vec::new(), "ORIGIN"),
    ] {
        let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
        assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
        assert!(reason.contains(missing), "{reason}");
    }
    // IPv6 in MP_REACH_NLRI needs ORIGIN and AS_PATH but no NEXT_HOP.
    let (withdrawn, _) = treat_as_withdraw(&update(&mp_reach_v6(), &[]));
    assert_eq!(withdrawn, vec![net("2001:db8:200::/48")]);
    let complete = attrs(&[&mp_reach_v6(), &ORIGIN_IGP, &AS_PATH_64512]);
    assert!(matches!(
        decode(&update(&complete, &[]), &four_octet()),
        Ok(Inbound::Message(_))
    ));
}

#[test]
fn communities_of_bad_length_are_treat_as_withdraw() {
    for communities in [
        vec![0xc0, 8, 5, 0xfd, 0xe8, 0, 100, 1],
        vec![0xc0, 8, 0],
        vec![0xc0, 32, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0], // LARGE_COMMUNITY of 11
        vec![0xc0, 32, 0],
    ] {
        let all = attrs(&[&ORIGIN_IGP, &AS_PATH_64512, &NEXT_HOP, &communities]);
        let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
        assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
        assert!(reason.contains("COMMUNIT"), "{reason}");
    }
}

#[test]
fn wrong_flags_on_a_known_attribute_are_treat_as_withdraw() {
    let origin_optional = [0xc0, 1, 1, 0];
    let all = attrs(&[&origin_optional, &AS_PATH_64512, &NEXT_HOP]);
    let (withdrawn, reason) = treat_as_withdraw(&update(&all, &NLRI));
    assert_eq!(withdrawn, vec![net("192.0.2.0/24")]);
    assert!(reason.contains("Attribute Flags"), "{reason}");
    // A well-known-flagged MP_REACH_NLRI: its prefixes are still read to be withdrawn.
    let mut reach = mp_reach_v6();
    reach[0] = 0x40;
    let all = attrs(&[&reach, &ORIGIN_IGP, &AS_PATH_64512]);
    assert_eq!(
        treat_as_withdraw(&update(&all, &[])).0,
        vec![net("2001:db8:200::/48")]
    );
}

#[test]
fn withdrawn_prefixes_are_part_of_a_treat_as_withdraw() {
    let all = attrs(&[&[0x40, 1, 1, 9], &AS_PATH_64512, &NEXT_HOP]);
    let mut body = vec![0, 4, 24, 198, 51, 100];
    body.extend_from_slice(
        &u16::try_from(all.len())
            .expect("well-formed test data")
            .to_be_bytes(),
    );
    body.extend_from_slice(&all);
    body.extend_from_slice(&NLRI);
    let (withdrawn, _) = treat_as_withdraw(&frame(2, &body));
    assert_eq!(withdrawn, vec![net("198.51.100.0/24"), net("192.0.2.0/24")]);
}

// --- UPDATE: kept ---

#[test]
fn discarded_and_unknown_optional_attributes_keep_the_route() {
    let atomic_aggregate_with_a_value = [0x40, 6, 1, 0];
    let unknown_optional = [0xc0, 99, 2, 0xab, 0xcd];
    let second_origin = [0x40, 1, 1, 2];
    let all = attrs(&[
        &ORIGIN_IGP,
        &AS_PATH_64512,
        &NEXT_HOP,
        &atomic_aggregate_with_a_value,
        &unknown_optional,
        &second_origin,
    ]);
    match decode(&update(&all, &NLRI), &four_octet()) {
        Ok(Inbound::Message(Message::Update(update))) => {
            assert_eq!(update.announced, vec![net("192.0.2.0/24")]);
            let attributes = update
                .attributes
                .expect("an announcement carries attributes");
            // RFC 7606 §3 g: the first ORIGIN counts.
            assert_eq!(attributes.origin, ferrolb_bgp_wire::Origin::Igp);
            assert_eq!(attributes.as_path, vec![64512]);
        }
        other => panic!("{other:?}"),
    }
}

// --- ROUTE-REFRESH and NOTIFICATION ---

#[test]
fn route_refresh_for_another_family_is_ignored() {
    // AFI 1, SAFI 128 (VPN): RFC 2918 §4 says to ignore it.
    match decode(&frame(5, &[0, 1, 0, 128]), &four_octet()) {
        Ok(Inbound::Ignored { reason }) => {
            assert!(reason.contains("ROUTE-REFRESH"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn short_notification_is_bad_message_length() {
    assert_eq!(notification(&frame(3, &[6])), n(1, 2, &[0, 20]));
}
