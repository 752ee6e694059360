//! In-process fuzzing: whatever arrives on the wire, the parsers return an error or a value
//! and never panic, and any frame they accept can be answered with a frame they accept.
//!
//! Two sources of input: arbitrary bytes (mostly rejected early, at the EtherType), and
//! valid frames with random mutations, optionally with the ICMPv6 checksum repaired so the
//! mutations reach the option and address checks behind it.
//!
//! The responder's `decide` gets the same inputs: it must agree with the parsers about what
//! is invalid, and every answer it builds must parse back into exactly the answer the
//! request asks for.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use ferrolb_l2::*;
use proptest::prelude::*;
use proptest::test_runner::Config;

const CASES: u32 = 10_000;

/// Runs every parser on `frame`; whatever parses is answered, and the answer must parse.
fn exercise(frame: &[u8]) {
    if let Ok(request) = parse_arp(frame) {
        let reply = build_arp_reply(&request, OUR_MAC);
        assert!(parse_arp(&reply).is_ok(), "reply to {request:?} parses");
    }
    if let Ok(solicitation) = parse_neighbor_solicitation(frame) {
        let answer = build_neighbor_advertisement(&solicitation, OUR_MAC, OUR_LINK_LOCAL);
        assert!(
            parse_neighbor_advertisement(&answer).is_ok(),
            "answer to {solicitation:?} parses"
        );
    }
    let _ = parse_neighbor_advertisement(frame);
    check_decide(frame, |_| true);
    check_decide(frame, |ip| ip == IpAddr::V6(VIP_V6));
}

/// `decide` on `frame`, checked against the parsers.
fn check_decide(frame: &[u8], owns: impl Fn(IpAddr) -> bool) {
    let verdict = decide(frame, OUR_MAC, &owns);
    let ether_type = frame.get(12..14);
    match verdict {
        Verdict::Invalid => {
            let rejected = match ether_type {
                Some([0x08, 0x06]) => parse_arp(frame).is_err(),
                Some([0x86, 0xdd]) => parse_neighbor_solicitation(frame).is_err(),
                _ => true,
            };
            assert!(rejected, "decide calls a frame invalid that parses");
        }
        Verdict::Ignore => {}
        Verdict::Answer(Answer::Arp(reply)) => {
            let request = parse_arp(frame).expect("an answered ARP frame parses");
            assert_eq!(request.operation, ArpOperation::Request);
            assert_ne!(
                request.sender_ip, request.target_ip,
                "gratuitous ARP is not answered"
            );
            assert!(owns(IpAddr::V4(request.target_ip)));
            let reply = parse_arp(&reply).expect("the reply parses");
            assert_eq!(reply.operation, ArpOperation::Reply);
            assert_eq!(reply.eth_source, OUR_MAC);
            assert_eq!(reply.sender_mac, OUR_MAC);
            assert_eq!(reply.sender_ip, request.target_ip);
            assert_eq!(reply.target_ip, request.sender_ip);
            assert_eq!(reply.target_mac, request.sender_mac);
        }
        Verdict::Answer(Answer::Ndp(advertisement)) => {
            let solicitation =
                parse_neighbor_solicitation(frame).expect("an answered NDP frame parses");
            assert!(owns(IpAddr::V6(solicitation.target)));
            let advertisement =
                parse_neighbor_advertisement(&advertisement).expect("the answer parses");
            assert_eq!(advertisement.target, solicitation.target);
            assert_eq!(advertisement.source, solicitation.target);
            assert_eq!(advertisement.eth_source, OUR_MAC);
            assert_eq!(advertisement.target_link_layer, Some(OUR_MAC));
            assert!(advertisement.override_flag);
            let dad = solicitation.is_duplicate_address_detection();
            assert_eq!(advertisement.solicited_flag, !dad);
            if dad {
                assert_eq!(advertisement.destination, ALL_NODES);
            } else {
                assert_eq!(advertisement.destination, solicitation.source);
            }
        }
    }
}

fn valid_frames() -> Vec<Vec<u8>> {
    let solicitation = NsSpec::client_resolving_vip();
    let mut dad = solicitation.clone();
    dad.source = std::net::Ipv6Addr::UNSPECIFIED;
    dad.options.clear();
    let mut unicast = solicitation.clone();
    unicast.destination = VIP_V6;
    unicast.eth_destination = OUR_MAC;
    unicast.options = vec![14, 1, 1, 2, 3, 4, 5, 6];
    let parsed = parse_neighbor_solicitation(&solicitation.frame());
    let answer = parsed
        .map(|ns| build_neighbor_advertisement(&ns, OUR_MAC, OUR_LINK_LOCAL).to_vec())
        .unwrap_or_default();
    let vip = Ipv4Addr::new(198, 51, 100, 200);
    let mut arp_request = build_gratuitous_arp(ArpOperation::Request, CLIENT_MAC, vip).to_vec();
    arp_request[28..32].copy_from_slice(&[198, 51, 100, 10]);
    vec![
        arp_request,
        build_gratuitous_arp(ArpOperation::Reply, OUR_MAC, vip).to_vec(),
        solicitation.frame(),
        dad.frame(),
        unicast.frame(),
        answer,
        build_unsolicited_neighbor_advertisement(OUR_MAC, OUR_LINK_LOCAL, VIP_V6).to_vec(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite the byte at (index modulo length).
    Set(usize, u8),
    /// Flip one bit of the byte at (index modulo length).
    Flip(usize, u8),
    /// Keep only this many bytes (modulo length + 1).
    Truncate(usize),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert a byte at (index modulo length + 1).
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Set(index, byte)),
        4 => (any::<usize>(), 0u8..8).prop_map(|(index, bit)| Mutation::Flip(index, bit)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Mutation::Extend),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Insert(index, byte)),
    ]
}

fn apply(frame: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Set(index, byte) if !frame.is_empty() => {
            let len = frame.len();
            frame[index % len] = *byte;
        }
        Mutation::Flip(index, bit) if !frame.is_empty() => {
            let len = frame.len();
            frame[index % len] ^= 1 << bit;
        }
        Mutation::Truncate(len) => {
            let keep = len % (frame.len() + 1);
            frame.truncate(keep);
        }
        Mutation::Extend(bytes) => frame.extend_from_slice(bytes),
        Mutation::Insert(index, byte) => {
            let at = index % (frame.len() + 1);
            frame.insert(at, *byte);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(Config { cases: CASES, failure_persistence: None, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..160)) {
        exercise(&frame);
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_header_never_panic(
        ether_type in prop_oneof![Just([0x08, 0x06]), Just([0x86, 0xdd])],
        ip_start in prop_oneof![
            Just(vec![0x00, 0x01, 0x08, 0x00, 0x06, 0x04]),
            Just(vec![0x60, 0, 0, 0, 0, 0x20, 58, 255]),
            Just(Vec::new()),
        ],
        rest in proptest::collection::vec(any::<u8>(), 0..120),
        fix_checksum in any::<bool>(),
    ) {
        let mut frame = [&[0xff; 6][..], &CLIENT_MAC.0, &ether_type, &ip_start, &rest].concat();
        if fix_checksum {
            fix_icmpv6_checksum(&mut frame);
        }
        exercise(&frame);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        base in 0usize..7,
        mutations in proptest::collection::vec(mutation(), 1..6),
        fix_checksum in any::<bool>(),
    ) {
        let frames = valid_frames();
        let mut frame = frames[base % frames.len()].clone();
        for mutation in &mutations {
            apply(&mut frame, mutation);
        }
        if fix_checksum {
            fix_icmpv6_checksum(&mut frame);
        }
        exercise(&frame);
    }
}

#[test]
fn valid_frames_parse_before_mutation() {
    let frames = valid_frames();
    assert!(parse_arp(&frames[0]).is_ok());
    assert!(parse_arp(&frames[1]).is_ok());
    for frame in &frames[2..5] {
        assert!(parse_neighbor_solicitation(frame).is_ok());
    }
    for frame in &frames[5..] {
        assert!(parse_neighbor_advertisement(frame).is_ok());
    }
    // The mutations start from frames `decide` answers, so its answers get fuzzed too.
    for frame in [&frames[0], &frames[2], &frames[3], &frames[4]] {
        assert!(matches!(
            decide(frame, OUR_MAC, |_| true),
            Verdict::Answer(_)
        ));
    }
}
