//! The responder's per-frame decision, without a socket: which requests are answered, with
//! what, and that nothing on the wire makes it panic or answer for an address it does not own.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use ferrolb_l2::*;
use proptest::prelude::*;
use proptest::test_runner::Config;

const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 4);
const VIP_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 240);

fn owns_vips(ip: IpAddr) -> bool {
    ip == IpAddr::V4(VIP_V4) || ip == IpAddr::V6(VIP_V6)
}

/// An ARP request from the client for `target`, assembled byte by byte.
fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&MacAddr::BROADCAST.octets());
    frame.extend_from_slice(&CLIENT_MAC.octets());
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&CLIENT_MAC.octets());
    frame.extend_from_slice(&CLIENT_V4.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame.resize(60, 0);
    frame
}

#[test]
fn an_arp_request_for_an_owned_ip_is_answered_from_our_mac() {
    let verdict = decide(&arp_request(VIP_V4), OUR_MAC, owns_vips);
    let Verdict::Answer(answer) = verdict else {
        panic!("no answer: {verdict:?}");
    };
    let reply = parse_arp(answer.bytes()).expect("the reply parses");
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!(reply.eth_source, OUR_MAC);
    assert_eq!(reply.eth_destination, CLIENT_MAC);
    assert_eq!(reply.sender_mac, OUR_MAC);
    assert_eq!(reply.sender_ip, VIP_V4);
    assert_eq!(reply.target_mac, CLIENT_MAC);
    assert_eq!(reply.target_ip, CLIENT_V4);
}

#[test]
fn arp_for_other_ips_replies_and_announcements_are_ignored() {
    let other = decide(
        &arp_request(Ipv4Addr::new(198, 51, 100, 242)),
        OUR_MAC,
        owns_vips,
    );
    assert_eq!(other, Verdict::Ignore);
    let reply = build_arp_reply(
        &parse_arp(&arp_request(VIP_V4)).expect("request parses"),
        CLIENT_MAC,
    );
    assert_eq!(decide(&reply, OUR_MAC, owns_vips), Verdict::Ignore);
    for operation in GRATUITOUS_ARP_OPERATIONS {
        let announcement = build_gratuitous_arp(operation, CLIENT_MAC, VIP_V4);
        assert_eq!(decide(&announcement, OUR_MAC, owns_vips), Verdict::Ignore);
    }
    // Our own request, looped back.
    let mut own = arp_request(VIP_V4);
    own[6..12].copy_from_slice(&OUR_MAC.octets());
    assert_eq!(decide(&own, OUR_MAC, owns_vips), Verdict::Ignore);
}

#[test]
fn a_solicitation_for_an_owned_ip_is_answered_from_the_target() {
    let verdict = decide(&NsSpec::client_resolving_vip().frame(), OUR_MAC, owns_vips);
    let Verdict::Answer(answer) = verdict else {
        panic!("no answer: {verdict:?}");
    };
    let advertisement = parse_neighbor_advertisement(answer.bytes()).expect("the answer parses");
    assert_eq!(advertisement.eth_source, OUR_MAC);
    assert_eq!(advertisement.eth_destination, CLIENT_MAC);
    assert_eq!(advertisement.source, VIP_V6);
    assert_eq!(advertisement.destination, CLIENT_V6);
    assert_eq!(advertisement.target, VIP_V6);
    assert_eq!(advertisement.target_link_layer, Some(OUR_MAC));
    assert!(advertisement.solicited_flag && advertisement.override_flag);
}

#[test]
fn solicitations_for_other_ips_are_ignored() {
    let mut spec = NsSpec::client_resolving_vip();
    spec.target = "2001:db8:100::242".parse().expect("literal address");
    assert_eq!(decide(&spec.frame(), OUR_MAC, owns_vips), Verdict::Ignore);
}

#[test]
fn broken_frames_are_invalid() {
    assert_eq!(decide(&[], OUR_MAC, owns_vips), Verdict::Invalid);
    assert_eq!(decide(&[0xff; 13], OUR_MAC, owns_vips), Verdict::Invalid);
    let truncated = arp_request(VIP_V4);
    assert_eq!(
        decide(&truncated[..30], OUR_MAC, owns_vips),
        Verdict::Invalid
    );
    let mut bad_checksum = NsSpec::client_resolving_vip().frame();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xff;
    assert_eq!(decide(&bad_checksum, OUR_MAC, owns_vips), Verdict::Invalid);
    let mut ipv4 = arp_request(VIP_V4);
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(decide(&ipv4, OUR_MAC, owns_vips), Verdict::Invalid);
}

proptest! {
    #![proptest_config(Config { cases: 5_000, failure_persistence: None, ..Config::default() })]

    /// Garbage never panics, and is answered only when it really is a request for an owned IP.
    #[test]
    fn garbage_never_panics_or_answers_for_others(
        ether_type in prop_oneof![Just([0x08u8, 0x06]), Just([0x86, 0xdd]), any::<[u8; 2]>()],
        rest in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&MacAddr::BROADCAST.octets());
        frame.extend_from_slice(&CLIENT_MAC.octets());
        frame.extend_from_slice(&ether_type);
        frame.extend_from_slice(&rest);
        if let Verdict::Answer(_) = decide(&frame, OUR_MAC, owns_vips) {
            let target = parse_arp(&frame)
                .map(|arp| IpAddr::V4(arp.target_ip))
                .or_else(|_| parse_neighbor_solicitation(&frame).map(|ns| IpAddr::V6(ns.target)));
            prop_assert!(target.is_ok_and(owns_vips));
        }
    }
}
