//! Byte-exact vectors, assembled by hand from the RFC layouts (each field named), for every
//! message ferrolb sends and several it receives. They check encode against the bytes, and
//! decode of the same bytes against the model.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp_wire::{
    Capabilities, Context, Family, GracefulRestart, Inbound, Message, Notification, Open, Origin,
    PathAttributes, Update, decode, encode, frame_length,
};
use ipnet::IpNet;

const MARKER: [u8; 16] = [0xff; 16];

fn four_octet() -> Context {
    Context {
        four_octet_asn: true,
        ..Context::default()
    }
}

/// Marker, length (2 octets), type, then the body.
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

fn net(text: &str) -> IpNet {
    text.parse().expect("well-formed test data")
}

fn decoded(bytes: &[u8], ctx: &Context) -> Message {
    assert_eq!(frame_length(bytes, ctx), Ok(Some(bytes.len())));
    match decode(bytes, ctx) {
        Ok(Inbound::Message(message)) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn assert_vector(message: &Message, ctx: &Context, expected: &[u8]) {
    let encoded = encode(message, ctx).expect("the vector message encodes");
    assert_eq!(encoded, expected, "encode");
    assert_eq!(&decoded(expected, ctx), message, "decode");
}

#[test]
fn open_with_a_four_octet_asn_sends_as_trans_and_the_capability() {
    let open = Open {
        asn: 4_200_000_000,
        hold_time: 90,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: Capabilities {
            four_octet_asn: true,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            route_refresh: true,
            graceful_restart: Some(GracefulRestart {
                restarting: false,
                restart_time: 120,
                families: vec![(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, false)],
            }),
            extended_next_hop_ipv4: true,
            other: Vec::new(),
        },
    };
    #[rustfmt::skip]
    let body = [
        4,                              // Version (RFC 4271 §4.2)
        0x5b, 0xa0,                     // My Autonomous System: AS_TRANS 23456 (RFC 6793 §4.2.1)
        0, 90,                          // Hold Time
        192, 0, 2, 1,                   // BGP Identifier
        42,                             // Optional Parameters Length
        2, 40,                          // Parameter Type 2 (Capabilities, RFC 5492), Length 40
        1, 4, 0, 1, 0, 1,               // Multiprotocol (RFC 4760 §8): AFI 1, Reserved, SAFI 1
        1, 4, 0, 2, 0, 1,               // Multiprotocol: AFI 2, Reserved, SAFI 1
        2, 0,                           // Route Refresh (RFC 2918 §2), no value
        5, 6, 0, 1, 0, 1, 0, 2,         // Extended Next Hop (RFC 8950 §3): NLRI AFI 1, NLRI SAFI 1 (2 octets), Next Hop AFI 2
        64, 10,                         // Graceful Restart (RFC 4724 §3), Length 10
        0x00, 120,                      //   R bit 0, Restart Time 120 (12 bits)
        0, 1, 1, 0x80,                  //   AFI 1, SAFI 1, F bit set
        0, 2, 1, 0x00,                  //   AFI 2, SAFI 1, F bit clear
        65, 4, 0xfa, 0x56, 0xea, 0x00,  // 4-octet ASN (RFC 6793 §3): 4200000000
    ];
    assert_vector(&Message::Open(open), &Context::default(), &frame(1, &body));
}

#[test]
fn open_with_a_two_octet_asn_and_no_capabilities() {
    let open = Open {
        asn: 64512,
        hold_time: 0,
        router_id: Ipv4Addr::new(198, 51, 100, 7),
        capabilities: Capabilities::default(),
    };
    #[rustfmt::skip]
    let body = [
        4,              // Version
        0xfc, 0x00,     // My Autonomous System 64512
        0, 0,           // Hold Time 0: no keepalives
        198, 51, 100, 7, // BGP Identifier
        0,              // Optional Parameters Length
    ];
    assert_vector(&Message::Open(open), &Context::default(), &frame(1, &body));
}

/// As FRR sends it: one capability per optional parameter, with capabilities ferrolb does not
/// use (kept by code) and the real ASN in the 4-octet capability.
#[test]
fn received_open_with_one_capability_per_parameter() {
    #[rustfmt::skip]
    let body = [
        4,                              // Version
        0xfd, 0xe8,                     // My Autonomous System 65000
        0, 180,                         // Hold Time 180
        203, 0, 113, 1,                 // BGP Identifier
        34,                             // Optional Parameters Length
        2, 6, 1, 4, 0, 2, 0, 1,         // Capabilities: Multiprotocol AFI 2 SAFI 1
        2, 2, 128, 0,                   // Capabilities: Cisco route refresh (128)
        2, 2, 2, 0,                     // Capabilities: Route Refresh
        2, 2, 70, 0,                    // Capabilities: Enhanced Route Refresh (RFC 7313, 70)
        2, 6, 65, 4, 0, 0, 0xfd, 0xe8,  // Capabilities: 4-octet ASN 65000
        2, 4, 200, 2, 0xab, 0xcd,       // Capabilities: unassigned code 200 with a 2-octet value
    ];
    let expected = Open {
        asn: 65000,
        hold_time: 180,
        router_id: Ipv4Addr::new(203, 0, 113, 1),
        capabilities: Capabilities {
            four_octet_asn: true,
            families: BTreeSet::from([Family::Ipv6Unicast]),
            route_refresh: true,
            graceful_restart: None,
            extended_next_hop_ipv4: false,
            other: vec![128, 70, 200],
        },
    };
    assert_eq!(
        decoded(&frame(1, &body), &Context::default()),
        Message::Open(expected)
    );
}

fn ibgp_attributes() -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: Vec::new(),
        next_hop: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        link_local_next_hop: None,
        local_pref: Some(100),
        communities: vec![0xfde8_0064],
        large_communities: vec![[4_200_000_000, 1, 2]],
    }
}

#[test]
fn ipv4_update_with_local_pref_communities_and_large_communities() {
    let update = Update {
        withdrawn: Vec::new(),
        announced: vec![net("203.0.113.10/32"), net("203.0.113.128/25")],
        attributes: Some(ibgp_attributes()),
        end_of_rib: None,
    };
    #[rustfmt::skip]
    let body = [
        0, 0,                           // Withdrawn Routes Length
        0, 43,                          // Total Path Attribute Length
        0x40, 1, 1, 0,                  // ORIGIN: well-known transitive, length 1, IGP
        0x40, 2, 0,                     // AS_PATH: empty (iBGP)
        0x40, 3, 4, 198, 51, 100, 10,   // NEXT_HOP
        0x40, 5, 4, 0, 0, 0, 100,       // LOCAL_PREF 100
        0xc0, 8, 4, 0xfd, 0xe8, 0, 100, // COMMUNITIES (RFC 1997): optional transitive, 65000:100
        0xc0, 32, 12,                   // LARGE_COMMUNITY (RFC 8092): optional transitive, length 12
        0xfa, 0x56, 0xea, 0x00,         //   Global Administrator 4200000000
        0, 0, 0, 1,                     //   Local Data Part 1
        0, 0, 0, 2,                     //   Local Data Part 2
        32, 203, 0, 113, 10,            // NLRI: 203.0.113.10/32
        25, 203, 0, 113, 128,           // NLRI: 203.0.113.128/25 (4 octets for 25 bits)
    ];
    assert_vector(&Message::Update(update), &four_octet(), &frame(2, &body));
}

#[test]
fn ipv6_update_with_mp_reach_and_a_link_local_next_hop() {
    let update = Update {
        withdrawn: Vec::new(),
        announced: vec![net("2001:db8:203::/64")],
        attributes: Some(PathAttributes {
            origin: Origin::Igp,
            as_path: vec![64512],
            next_hop: IpAddr::V6("2001:db8::1".parse().expect("well-formed test data")),
            link_local_next_hop: Some("fe80::1".parse().expect("well-formed test data")),
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }),
        end_of_rib: None,
    };
    #[rustfmt::skip]
    let body = [
        0, 0,                           // Withdrawn Routes Length
        0, 62,                          // Total Path Attribute Length
        0x80, 14, 46,                   // MP_REACH_NLRI (RFC 4760 §3): optional non-transitive, length 46
        0, 2, 1,                        //   AFI 2, SAFI 1
        32,                             //   Length of Next Hop: global + link-local (RFC 2545 §3)
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,       // fe80::1
        0,                              //   Reserved
        64, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x03, 0, 0, // NLRI 2001:db8:203::/64
        0x40, 1, 1, 0,                  // ORIGIN IGP
        0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00, // AS_PATH: AS_SEQUENCE of one 4-octet ASN, 64512
    ];
    assert_vector(&Message::Update(update), &four_octet(), &frame(2, &body));
}

#[test]
fn ipv4_prefixes_over_an_ipv6_next_hop_use_mp_reach() {
    let update = Update {
        withdrawn: Vec::new(),
        announced: vec![net("198.51.100.0/24")],
        attributes: Some(PathAttributes {
            origin: Origin::Igp,
            as_path: vec![64512],
            next_hop: IpAddr::V6("2001:db8::1".parse().expect("well-formed test data")),
            link_local_next_hop: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }),
        end_of_rib: None,
    };
    #[rustfmt::skip]
    let body = [
        0, 0,                           // Withdrawn Routes Length
        0, 41,                          // Total Path Attribute Length
        0x80, 14, 25,                   // MP_REACH_NLRI, length 25
        0, 1, 1,                        //   AFI 1, SAFI 1 (RFC 8950 §4)
        16,                             //   Length of Next Hop: one IPv6 address
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
        0,                              //   Reserved
        24, 198, 51, 100,               //   NLRI 198.51.100.0/24
        0x40, 1, 1, 0,                  // ORIGIN IGP
        0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00, // AS_PATH 64512
    ];
    assert_vector(&Message::Update(update), &four_octet(), &frame(2, &body));
}

#[test]
fn two_octet_peer_gets_as_trans_and_as4_path() {
    let update = Update {
        withdrawn: Vec::new(),
        announced: vec![net("192.0.2.0/24")],
        attributes: Some(PathAttributes {
            origin: Origin::Incomplete,
            as_path: vec![4_200_000_000],
            next_hop: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
            link_local_next_hop: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }),
        end_of_rib: None,
    };
    #[rustfmt::skip]
    let body = [
        0, 0,                           // Withdrawn Routes Length
        0, 27,                          // Total Path Attribute Length
        0x40, 1, 1, 2,                  // ORIGIN INCOMPLETE
        0x40, 2, 4, 2, 1, 0x5b, 0xa0,   // AS_PATH: AS_SEQUENCE of one 2-octet ASN, AS_TRANS
        0x40, 3, 4, 198, 51, 100, 10,   // NEXT_HOP
        0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x00, // AS4_PATH (RFC 6793 §3): optional transitive, 4200000000
        24, 192, 0, 2,                  // NLRI 192.0.2.0/24
    ];
    assert_vector(
        &Message::Update(update),
        &Context::default(),
        &frame(2, &body),
    );
}

#[test]
fn withdrawals_of_both_families() {
    let update = Update {
        withdrawn: vec![net("203.0.113.0/25"), net("2001:db8:203::/64")],
        ..Update::default()
    };
    #[rustfmt::skip]
    let body = [
        0, 5,                           // Withdrawn Routes Length
        25, 203, 0, 113, 0,             // 203.0.113.0/25
        0, 15,                          // Total Path Attribute Length
        0x80, 15, 12,                   // MP_UNREACH_NLRI (RFC 4760 §4): optional non-transitive, length 12
        0, 2, 1,                        //   AFI 2, SAFI 1
        64, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x03, 0, 0, // 2001:db8:203::/64
    ];
    assert_vector(&Message::Update(update), &four_octet(), &frame(2, &body));
}

#[test]
fn end_of_rib_markers() {
    // RFC 4724 §2: IPv4 unicast, an UPDATE with nothing in it.
    assert_vector(
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        &four_octet(),
        &frame(2, &[0, 0, 0, 0]),
    );
    #[rustfmt::skip]
    let ipv6 = [
        0, 0,                           // Withdrawn Routes Length
        0, 6,                           // Total Path Attribute Length
        0x80, 15, 3, 0, 2, 1,           // MP_UNREACH_NLRI: AFI 2, SAFI 1, no prefixes
    ];
    assert_vector(
        &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
        &four_octet(),
        &frame(2, &ipv6),
    );
}

#[test]
fn notification_cease_administrative_shutdown_keeps_its_data() {
    // RFC 8203 §2: the data is a length octet and a UTF-8 message.
    let mut data = vec![11];
    data.extend_from_slice(b"maintenance");
    let notification = Notification::new(6, 2, data.clone());
    let mut body = vec![6, 2]; // Error code 6 (Cease), subcode 2 (Administrative Shutdown)
    body.extend_from_slice(&data);
    assert_vector(
        &Message::Notification(notification),
        &Context::default(),
        &frame(3, &body),
    );
}

#[test]
fn received_notification_with_an_unassigned_subcode_is_reported_as_is() {
    let bytes = frame(3, &[6, 200, 1, 2, 3]);
    assert_eq!(
        decoded(&bytes, &Context::default()),
        Message::Notification(Notification::new(6, 200, vec![1, 2, 3]))
    );
}

#[test]
fn keepalive_is_the_bare_header() {
    assert_vector(&Message::Keepalive, &Context::default(), &frame(4, &[]));
    assert_eq!(frame(4, &[]).len(), 19);
}

#[test]
fn route_refresh_for_each_family() {
    // RFC 2918 §3: AFI (2 octets), Reserved, SAFI.
    assert_vector(
        &Message::RouteRefresh(Family::Ipv4Unicast),
        &Context::default(),
        &frame(5, &[0, 1, 0, 1]),
    );
    assert_vector(
        &Message::RouteRefresh(Family::Ipv6Unicast),
        &Context::default(),
        &frame(5, &[0, 2, 0, 1]),
    );
}

/// As a router might send it: MP_REACH_NLRI last, AS_SET in the path, MED, a 2-octet session,
/// and an IPv6 next hop without link-local.
#[test]
fn received_ipv6_update_in_another_order() {
    #[rustfmt::skip]
    let body = [
        0, 0,                           // Withdrawn Routes Length
        0, 55,                          // Total Path Attribute Length
        0x40, 1, 1, 1,                  // ORIGIN EGP
        0x40, 2, 10,                    // AS_PATH, length 10
        2, 2, 0xfd, 0xe8, 0xfd, 0xe9,   //   AS_SEQUENCE 65000 65001
        1, 1, 0xfd, 0xea,               //   AS_SET {65002}
        0x80, 4, 4, 0, 0, 0, 5,         // MULTI_EXIT_DISC 5 (checked, not modelled)
        0x80, 14, 28,                   // MP_REACH_NLRI, length 28
        0, 2, 1, 16,                    //   AFI 2, SAFI 1, next hop length 16
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
        0,                              //   Reserved
        48, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00, // 2001:db8:200::/48
    ];
    let expected = Update {
        withdrawn: Vec::new(),
        announced: vec![net("2001:db8:200::/48")],
        attributes: Some(PathAttributes {
            origin: Origin::Egp,
            as_path: vec![65000, 65001, 65002],
            next_hop: IpAddr::V6(
                "2001:db8::2"
                    .parse::<Ipv6Addr>()
                    .expect("well-formed test data"),
            ),
            link_local_next_hop: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }),
        end_of_rib: None,
    };
    assert_eq!(
        decoded(&frame(2, &body), &Context::default()),
        Message::Update(expected)
    );
}
