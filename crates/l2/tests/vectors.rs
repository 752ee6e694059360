//! Byte-exact vectors for every frame the codecs read and write, the rejections the RFCs
//! ask for, and round trips from builders back through the parsers.
//!
//! The vectors are written out by hand from RFC 826 / RFC 4861 field layouts on the
//! documentation LAN (client 198.51.100.10 / 2001:db8:100::a at 02:00:00:00:00:0a, VIP
//! 198.51.100.200 / 2001:db8:100::200, our node fe80::1 at 02:00:00:00:00:01). Their ICMPv6
//! checksums are recomputed in the tests with a plain RFC 1071 sum; they were also checked
//! by decoding the frames with `tcpdump -vv`.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use ferrolb_l2::*;
use proptest::prelude::*;

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("test vectors are hex"))
        .collect()
}

const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const VIP_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const ARP_PADDING: &str = "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";

/// Who has 198.51.100.200? Tell 198.51.100.10 — as Linux sends it: broadcast, target
/// hardware address zero, padded to 60 bytes.
fn arp_request_vector() -> Vec<u8> {
    hex(&format!(
        "ff ff ff ff ff ff  02 00 00 00 00 0a  08 06
         00 01  08 00  06  04  00 01
         02 00 00 00 00 0a  c6 33 64 0a
         00 00 00 00 00 00  c6 33 64 c8
         {ARP_PADDING}"
    ))
}

#[test]
fn parses_arp_request() {
    let request = parse_arp(&arp_request_vector()).expect("valid ARP request");
    assert_eq!(
        request,
        ArpFrame {
            eth_destination: MacAddr::BROADCAST,
            eth_source: CLIENT_MAC,
            operation: ArpOperation::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT_V4,
            target_mac: MacAddr::ZERO,
            target_ip: VIP_V4,
        }
    );
}

#[test]
fn parses_unpadded_arp_request() {
    // Frames from veth peers arrive without padding.
    let frame = arp_request_vector();
    let request = parse_arp(&frame[..42]).expect("valid ARP request");
    assert_eq!(request.target_ip, VIP_V4);
}

#[test]
fn arp_reply_is_byte_exact() {
    let request = parse_arp(&arp_request_vector()).expect("valid ARP request");
    let reply = build_arp_reply(&request, OUR_MAC);
    let expected = hex(&format!(
        "02 00 00 00 00 0a  02 00 00 00 00 01  08 06
         00 01  08 00  06  04  00 02
         02 00 00 00 00 01  c6 33 64 c8
         02 00 00 00 00 0a  c6 33 64 0a
         {ARP_PADDING}"
    ));
    assert_eq!(reply.as_slice(), expected.as_slice());
}

#[test]
fn gratuitous_arp_matches_metallb() {
    // MetalLB: request then reply, both broadcast, sender and target IP the VIP, target
    // hardware address broadcast.
    assert_eq!(
        GRATUITOUS_ARP_OPERATIONS,
        [ArpOperation::Request, ArpOperation::Reply]
    );
    for (operation, code) in [(ArpOperation::Request, "01"), (ArpOperation::Reply, "02")] {
        let frame = build_gratuitous_arp(operation, OUR_MAC, VIP_V4);
        let expected = hex(&format!(
            "ff ff ff ff ff ff  02 00 00 00 00 01  08 06
             00 01  08 00  06  04  00 {code}
             02 00 00 00 00 01  c6 33 64 c8
             ff ff ff ff ff ff  c6 33 64 c8
             {ARP_PADDING}"
        ));
        assert_eq!(frame.as_slice(), expected.as_slice(), "{operation:?}");
    }
}

#[test]
fn arp_rejections() {
    let valid = arp_request_vector();
    let with = |offset: usize, bytes: &[u8]| {
        let mut frame = valid.clone();
        frame[offset..offset + bytes.len()].copy_from_slice(bytes);
        parse_arp(&frame)
    };
    assert_eq!(
        with(12, &[0x08, 0x00]),
        Err(ArpError::NotArp { ether_type: 0x0800 })
    );
    // 802.1Q-tagged frames are not unwrapped.
    assert_eq!(
        with(12, &[0x81, 0x00]),
        Err(ArpError::NotArp { ether_type: 0x8100 })
    );
    assert_eq!(with(14, &[0x00, 0x06]), Err(ArpError::NotEthernet(6)));
    assert_eq!(with(16, &[0x86, 0xdd]), Err(ArpError::NotIpv4(0x86dd)));
    assert_eq!(
        with(18, &[6, 6]),
        Err(ArpError::AddressLengths {
            hardware: 6,
            protocol: 6
        })
    );
    // Address lengths are taken at their word first: 8 + 2 * (6 + 16) bytes do not fit in
    // the 46 bytes after the Ethernet header.
    assert_eq!(
        with(18, &[6, 16]),
        Err(ArpError::Truncated {
            layer: "ARP packet",
            needed: 52,
            got: 46
        })
    );
    assert_eq!(
        with(18, &[8, 4]),
        Err(ArpError::AddressLengths {
            hardware: 8,
            protocol: 4
        })
    );
    // RARP and InARP operations.
    assert_eq!(with(20, &[0, 3]), Err(ArpError::UnsupportedOperation(3)));
    assert_eq!(with(20, &[0, 8]), Err(ArpError::UnsupportedOperation(8)));
    assert!(matches!(
        parse_arp(&valid[..41]),
        Err(ArpError::Truncated {
            layer: "ARP packet",
            needed: 28,
            got: 27
        })
    ));
    assert!(matches!(
        parse_arp(&valid[..13]),
        Err(ArpError::Truncated {
            layer: "Ethernet header",
            ..
        })
    ));
    assert!(parse_arp(&[]).is_err());
}

/// Who has 2001:db8:100::200? From 2001:db8:100::a to the solicited-node group
/// ff02::1:ff00:200 (Ethernet 33:33:ff:00:02:00), source link-layer address option
/// 02:00:00:00:00:0a, checksum 0x1619.
fn solicitation_vector() -> Vec<u8> {
    hex("33 33 ff 00 02 00  02 00 00 00 00 0a  86 dd
         60 00 00 00  00 20  3a  ff
         20 01 0d b8 01 00 00 00 00 00 00 00 00 00 00 0a
         ff 02 00 00 00 00 00 00 00 00 00 01 ff 00 02 00
         87  00  16 19  00 00 00 00
         20 01 0d b8 01 00 00 00 00 00 00 00 00 00 02 00
         01 01 02 00 00 00 00 0a")
}

fn client_solicitation() -> NeighborSolicitation {
    NeighborSolicitation {
        eth_destination: MacAddr([0x33, 0x33, 0xff, 0x00, 0x02, 0x00]),
        eth_source: CLIENT_MAC,
        source: CLIENT_V6,
        destination: "ff02::1:ff00:200".parse().expect("literal address"),
        target: VIP_V6,
        source_link_layer: Some(CLIENT_MAC),
    }
}

#[test]
fn solicitation_vector_checksum_is_right() {
    let frame = solicitation_vector();
    let mut message = frame[ICMP_OFFSET..].to_vec();
    assert_eq!(message[2..4], [0x16, 0x19]);
    message[2..4].fill(0);
    let destination = "ff02::1:ff00:200".parse().expect("literal address");
    assert_eq!(icmpv6_checksum(CLIENT_V6, destination, &message), 0x1619);
    // The helper that crafts solicitations agrees with the hand-written vector.
    assert_eq!(NsSpec::client_resolving_vip().frame(), frame);
}

#[test]
fn parses_solicitation() {
    assert_eq!(
        parse_neighbor_solicitation(&solicitation_vector()),
        Ok(client_solicitation())
    );
}

#[test]
fn parses_solicitation_with_ethernet_padding_and_unknown_options() {
    // Trailing bytes beyond the IPv6 payload length are padding; unknown options (here a
    // nonce, type 14) are skipped (RFC 4861 §4.6).
    let mut spec = NsSpec::client_resolving_vip();
    spec.options = [
        vec![14, 1, 1, 2, 3, 4, 5, 6],
        source_link_layer_option(CLIENT_MAC),
    ]
    .concat();
    let mut frame = spec.frame();
    frame.extend_from_slice(&[0xee; 10]);
    let solicitation = parse_neighbor_solicitation(&frame).expect("valid solicitation");
    assert_eq!(solicitation.source_link_layer, Some(CLIENT_MAC));
}

/// 2001:db8:100::200 is at 02:00:00:00:00:01: from fe80::1 to the client, Solicited and
/// Override set (flags 0x60), target link-layer address option, checksum 0xb5a4.
fn advertisement_vector() -> Vec<u8> {
    hex("02 00 00 00 00 0a  02 00 00 00 00 01  86 dd
         60 00 00 00  00 20  3a  ff
         fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01
         20 01 0d b8 01 00 00 00 00 00 00 00 00 00 00 0a
         88  00  b5 a4  60 00 00 00
         20 01 0d b8 01 00 00 00 00 00 00 00 00 00 02 00
         02 01 02 00 00 00 00 01")
}

#[test]
fn advertisement_is_byte_exact() {
    let solicitation = parse_neighbor_solicitation(&solicitation_vector()).expect("valid NS");
    let advertisement = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
    assert_eq!(advertisement.as_slice(), advertisement_vector().as_slice());
}

#[test]
fn advertisement_checksum_verified_independently() {
    let solicitation = client_solicitation();
    let frame = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
    let message = &frame[ICMP_OFFSET..];
    // Summing a message with its checksum in place gives zero (RFC 1071 §1).
    assert_eq!(icmpv6_checksum(OUR_LINK_LOCAL, CLIENT_V6, message), 0);
    let mut zeroed = message.to_vec();
    zeroed[2..4].fill(0);
    assert_eq!(
        icmpv6_checksum(OUR_LINK_LOCAL, CLIENT_V6, &zeroed).to_be_bytes(),
        [0xb5, 0xa4]
    );
}

#[test]
fn parses_own_advertisement() {
    assert_eq!(
        parse_neighbor_advertisement(&advertisement_vector()),
        Ok(NeighborAdvertisement {
            eth_destination: CLIENT_MAC,
            eth_source: OUR_MAC,
            source: OUR_LINK_LOCAL,
            destination: CLIENT_V6,
            router_flag: false,
            solicited_flag: true,
            override_flag: true,
            target: VIP_V6,
            target_link_layer: Some(OUR_MAC),
        })
    );
}

#[test]
fn unsolicited_advertisement_is_byte_exact() {
    let frame = build_unsolicited_neighbor_advertisement(OUR_MAC, OUR_LINK_LOCAL, VIP_V6);
    let expected = hex("33 33 00 00 00 01  02 00 00 00 00 01  86 dd
         60 00 00 00  00 20  3a  ff
         fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01
         ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01
         88  00  25 64  20 00 00 00
         20 01 0d b8 01 00 00 00 00 00 00 00 00 00 02 00
         02 01 02 00 00 00 00 01");
    assert_eq!(frame.as_slice(), expected.as_slice());
    assert_eq!(
        icmpv6_checksum(OUR_LINK_LOCAL, ALL_NODES, &frame[ICMP_OFFSET..]),
        0
    );
}

#[test]
fn duplicate_address_detection_is_answered_to_all_nodes() {
    let mut spec = NsSpec::client_resolving_vip();
    spec.source = Ipv6Addr::UNSPECIFIED;
    spec.options.clear();
    let solicitation = parse_neighbor_solicitation(&spec.frame()).expect("valid DAD probe");
    assert!(solicitation.is_duplicate_address_detection());
    let frame = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
    let advertisement = parse_neighbor_advertisement(&frame).expect("valid NA");
    assert_eq!(advertisement.eth_destination, ALL_NODES_MAC);
    assert_eq!(advertisement.destination, ALL_NODES);
    // RFC 4861 §7.2.4: Solicited clear when answering the unspecified address.
    assert!(!advertisement.solicited_flag);
    assert!(advertisement.override_flag);
    assert_eq!(advertisement.target, VIP_V6);
    assert_eq!(advertisement.target_link_layer, Some(OUR_MAC));
}

#[test]
fn unicast_solicitation_without_source_link_layer_is_answered_to_frame_source() {
    // Neighbor unreachability detection probes go by unicast and may omit the option.
    let mut spec = NsSpec::client_resolving_vip();
    spec.eth_destination = OUR_MAC;
    spec.destination = VIP_V6;
    spec.options.clear();
    let solicitation = parse_neighbor_solicitation(&spec.frame()).expect("valid NUD probe");
    assert_eq!(solicitation.source_link_layer, None);
    let frame = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
    let advertisement = parse_neighbor_advertisement(&frame).expect("valid NA");
    assert_eq!(advertisement.eth_destination, CLIENT_MAC);
    assert_eq!(advertisement.destination, CLIENT_V6);
    assert!(advertisement.solicited_flag);
}

#[test]
fn answer_goes_to_source_link_layer_address_over_frame_source() {
    let mut spec = NsSpec::client_resolving_vip();
    let relayed_by = MacAddr([0x02, 0, 0, 0, 0, 0x77]);
    spec.eth_source = relayed_by;
    let solicitation = parse_neighbor_solicitation(&spec.frame()).expect("valid NS");
    let frame = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
    assert_eq!(frame[..6], CLIENT_MAC.0);
}

#[test]
fn solicited_node_multicast_vectors() {
    // RFC 4291 §2.7.1 and RFC 2464 §7.
    let cases = [
        (
            "2001:db8:100::200",
            "ff02::1:ff00:200",
            [0x33, 0x33, 0xff, 0x00, 0x02, 0x00],
        ),
        (
            "fe80::2aa:ff:fe28:9c5a",
            "ff02::1:ff28:9c5a",
            [0x33, 0x33, 0xff, 0x28, 0x9c, 0x5a],
        ),
        (
            "2001:db8:f::abcd:ef12",
            "ff02::1:ffcd:ef12",
            [0x33, 0x33, 0xff, 0xcd, 0xef, 0x12],
        ),
    ];
    for (address, group, mac) in cases {
        let address: Ipv6Addr = address.parse().expect("literal address");
        let group: Ipv6Addr = group.parse().expect("literal address");
        assert_eq!(solicited_node_multicast(address), group);
        assert!(is_solicited_node_multicast(group));
        assert!(!is_solicited_node_multicast(address));
        assert_eq!(ipv6_multicast_mac(group), MacAddr(mac));
    }
    assert_eq!(ALL_NODES_MAC, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
}

#[test]
fn solicitation_rejections() {
    let reject = |change: &dyn Fn(&mut NsSpec)| {
        let mut spec = NsSpec::client_resolving_vip();
        change(&mut spec);
        parse_neighbor_solicitation(&spec.frame())
    };
    assert_eq!(
        reject(&|spec| spec.hop_limit = 254),
        Err(NdpError::HopLimit(254))
    );
    assert_eq!(reject(&|spec| spec.code = 1), Err(NdpError::Code(1)));
    let group: Ipv6Addr = "ff02::1:ff00:200".parse().expect("literal address");
    assert_eq!(
        reject(&|spec| spec.target = group),
        Err(NdpError::MulticastTarget(group))
    );
    assert_eq!(
        reject(&|spec| spec.source = ALL_NODES),
        Err(NdpError::MulticastSource(ALL_NODES))
    );
    assert_eq!(
        reject(&|spec| spec.options = vec![1, 0, 2, 0, 0, 0, 0, 0x0a]),
        Err(NdpError::MalformedOption)
    );
    // An option running past the end of the message.
    assert_eq!(
        reject(&|spec| spec.options = vec![1, 2, 2, 0, 0, 0, 0, 0x0a]),
        Err(NdpError::MalformedOption)
    );
    // A zero-length option after a good one still invalidates the message.
    assert_eq!(
        reject(&|spec| spec.options.extend_from_slice(&[14, 0, 0, 0, 0, 0, 0, 0])),
        Err(NdpError::MalformedOption)
    );
    assert_eq!(
        reject(&|spec| spec.options = [vec![1, 2], vec![0; 14]].concat()),
        Err(NdpError::LinkLayerAddressLength(14))
    );
    assert_eq!(
        reject(&|spec| spec.source = Ipv6Addr::UNSPECIFIED),
        Err(NdpError::DadSourceLinkLayerAddress)
    );
    assert_eq!(
        reject(&|spec| {
            spec.source = Ipv6Addr::UNSPECIFIED;
            spec.destination = ALL_NODES;
            spec.options.clear();
        }),
        Err(NdpError::DadDestination(ALL_NODES))
    );

    let valid = solicitation_vector();
    let with = |offset: usize, bytes: &[u8]| {
        let mut frame = valid.clone();
        frame[offset..offset + bytes.len()].copy_from_slice(bytes);
        parse_neighbor_solicitation(&frame)
    };
    assert_eq!(with(ICMP_OFFSET + 3, &[0x18]), Err(NdpError::Checksum));
    assert_eq!(
        with(12, &[0x08, 0x06]),
        Err(NdpError::NotIpv6 { ether_type: 0x0806 })
    );
    assert_eq!(with(14, &[0x40]), Err(NdpError::IpVersion(4)));
    assert_eq!(with(20, &[17]), Err(NdpError::NotIcmpv6(17)));
    assert_eq!(with(18, &[0, 0]), Err(NdpError::JumboPayload));
    assert_eq!(
        with(ICMP_OFFSET, &[136]),
        Err(NdpError::Icmpv6Type {
            expected: 135,
            got: 136
        })
    );
    assert!(matches!(
        parse_neighbor_solicitation(&valid[..valid.len() - 1]),
        Err(NdpError::Truncated {
            layer: "IPv6 packet",
            ..
        })
    ));
    // A message shorter than 24 bytes, consistent in every length field.
    let short = NsSpec::client_resolving_vip();
    let mut frame = short.frame();
    frame.truncate(ICMP_OFFSET + 20);
    frame[18..20].copy_from_slice(&20u16.to_be_bytes());
    fix_icmpv6_checksum(&mut frame);
    assert_eq!(
        parse_neighbor_solicitation(&frame),
        Err(NdpError::Truncated {
            layer: "neighbor solicitation",
            needed: 24,
            got: 20
        })
    );
}

#[test]
fn fragmented_solicitation_is_rejected() {
    // RFC 6980: even an atomic fragment (offset 0, no more fragments) is dropped.
    let frame = solicitation_vector();
    let mut fragmented = frame[..ICMP_OFFSET].to_vec();
    fragmented[18..20].copy_from_slice(&(32u16 + 8).to_be_bytes());
    fragmented[20] = 44; // next header: fragment
    fragmented.extend_from_slice(&[58, 0, 0, 0, 0, 0, 0, 1]);
    fragmented.extend_from_slice(&frame[ICMP_OFFSET..]);
    assert_eq!(
        parse_neighbor_solicitation(&fragmented),
        Err(NdpError::Fragmented)
    );
}

#[test]
fn solicitation_behind_extension_header_is_accepted() {
    // A destination options header (padding only) before the ICMPv6 message; the checksum
    // covers the ICMPv6 message alone.
    let frame = solicitation_vector();
    let mut extended = frame[..ICMP_OFFSET].to_vec();
    extended[18..20].copy_from_slice(&(32u16 + 8).to_be_bytes());
    extended[20] = 60;
    extended.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
    extended.extend_from_slice(&frame[ICMP_OFFSET..]);
    assert_eq!(
        parse_neighbor_solicitation(&extended),
        Ok(client_solicitation())
    );
}

#[test]
fn solicited_advertisement_to_multicast_is_rejected() {
    let mut frame = build_unsolicited_neighbor_advertisement(OUR_MAC, OUR_LINK_LOCAL, VIP_V6);
    frame[ICMP_OFFSET + 4] |= 0x40;
    fix_icmpv6_checksum(&mut frame);
    assert_eq!(
        parse_neighbor_advertisement(&frame),
        Err(NdpError::SolicitedToMulticast(ALL_NODES))
    );
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn unicast_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>()
        .prop_filter("unicast", |octets| octets[0] != 0xff)
        .prop_map(Ipv6Addr::from)
}

proptest! {
    #[test]
    fn arp_reply_round_trip(
        client_mac in mac(),
        our_mac in mac(),
        client_ip in any::<[u8; 4]>().prop_map(Ipv4Addr::from),
        vip in any::<[u8; 4]>().prop_map(Ipv4Addr::from),
        eth_destination in mac(),
    ) {
        let mut request_frame = build_gratuitous_arp(ArpOperation::Request, client_mac, vip);
        request_frame[..6].copy_from_slice(&eth_destination.0);
        request_frame[28..32].copy_from_slice(&client_ip.octets());
        let request = parse_arp(&request_frame).expect("built request parses");
        prop_assert_eq!(request.eth_destination, eth_destination);
        prop_assert_eq!(request.sender_ip, client_ip);

        let reply = parse_arp(&build_arp_reply(&request, our_mac)).expect("built reply parses");
        prop_assert_eq!(reply, ArpFrame {
            eth_destination: client_mac,
            eth_source: our_mac,
            operation: ArpOperation::Reply,
            sender_mac: our_mac,
            sender_ip: vip,
            target_mac: client_mac,
            target_ip: client_ip,
        });
    }

    #[test]
    fn gratuitous_arp_round_trip(our_mac in mac(), ip in any::<[u8; 4]>().prop_map(Ipv4Addr::from)) {
        for operation in GRATUITOUS_ARP_OPERATIONS {
            let parsed = parse_arp(&build_gratuitous_arp(operation, our_mac, ip))
                .expect("built announcement parses");
            prop_assert_eq!(parsed, ArpFrame {
                eth_destination: MacAddr::BROADCAST,
                eth_source: our_mac,
                operation,
                sender_mac: our_mac,
                sender_ip: ip,
                target_mac: MacAddr::BROADCAST,
                target_ip: ip,
            });
        }
    }

    #[test]
    fn solicitation_and_answer_round_trip(
        client_mac in mac(),
        our_mac in mac(),
        client in unicast_v6(),
        target in unicast_v6(),
        our_ip in unicast_v6(),
        with_option in any::<bool>(),
    ) {
        let group = solicited_node_multicast(target);
        let spec = NsSpec {
            eth_destination: ipv6_multicast_mac(group),
            eth_source: client_mac,
            source: client,
            destination: group,
            hop_limit: 255,
            code: 0,
            target,
            options: if with_option && !client.is_unspecified() {
                source_link_layer_option(client_mac)
            } else {
                Vec::new()
            },
        };
        let solicitation = parse_neighbor_solicitation(&spec.frame()).expect("crafted NS parses");
        prop_assert_eq!(solicitation, NeighborSolicitation {
            eth_destination: spec.eth_destination,
            eth_source: client_mac,
            source: client,
            destination: group,
            target,
            source_link_layer: (!spec.options.is_empty()).then_some(client_mac),
        });

        let frame = build_neighbor_advertisement(&solicitation, our_mac, our_ip);
        let source: [u8; 16] = frame[22..38].try_into().expect("16 bytes");
        let destination: [u8; 16] = frame[38..54].try_into().expect("16 bytes");
        prop_assert_eq!(
            icmpv6_checksum(source.into(), destination.into(), &frame[ICMP_OFFSET..]),
            0
        );
        let dad = client.is_unspecified();
        let advertisement = parse_neighbor_advertisement(&frame).expect("built NA parses");
        prop_assert_eq!(advertisement, NeighborAdvertisement {
            eth_destination: if dad { ALL_NODES_MAC } else { client_mac },
            eth_source: our_mac,
            source: our_ip,
            destination: if dad { ALL_NODES } else { client },
            router_flag: false,
            solicited_flag: !dad,
            override_flag: true,
            target,
            target_link_layer: Some(our_mac),
        });
    }

    #[test]
    fn unsolicited_advertisement_round_trip(our_mac in mac(), our_ip in unicast_v6(), target in unicast_v6()) {
        let frame = build_unsolicited_neighbor_advertisement(our_mac, our_ip, target);
        prop_assert_eq!(
            icmpv6_checksum(our_ip, ALL_NODES, &frame[ICMP_OFFSET..]),
            0
        );
        prop_assert_eq!(
            parse_neighbor_advertisement(&frame).expect("built NA parses"),
            NeighborAdvertisement {
                eth_destination: ALL_NODES_MAC,
                eth_source: our_mac,
                source: our_ip,
                destination: ALL_NODES,
                router_flag: false,
                solicited_flag: false,
                override_flag: true,
                target,
                target_link_layer: Some(our_mac),
            }
        );
    }

    #[test]
    fn solicited_node_group_keeps_low_24_bits(octets in any::<[u8; 16]>()) {
        let group = solicited_node_multicast(Ipv6Addr::from(octets)).octets();
        prop_assert_eq!(&group[..13], &[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]);
        prop_assert_eq!(&group[13..], &octets[13..]);
        let mac = ipv6_multicast_mac(Ipv6Addr::from(group));
        prop_assert_eq!(mac.0, [0x33, 0x33, 0xff, octets[13], octets[14], octets[15]]);
    }
}
