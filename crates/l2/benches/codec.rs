//! Per-packet cost of the responder's hot path: parse what arrives, build the answer.
//!
//! Each iteration handles one packet, so criterion's time per iteration is the cost per
//! packet and its `elem/s` the packets per second one core sustains.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_l2::{
    ArpOperation, MacAddr, build_arp_reply, build_gratuitous_arp, build_neighbor_advertisement,
    build_unsolicited_neighbor_advertisement, parse_arp, parse_neighbor_solicitation,
};

const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);
const OUR_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const VIP_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x200);

/// A client's who-has for the VIP, built as the gratuitous request is and then re-addressed.
fn arp_request() -> Vec<u8> {
    let mut frame = build_gratuitous_arp(ArpOperation::Request, CLIENT_MAC, VIP_V4).to_vec();
    // Sender IP: the client's own address, target hardware address zero (RFC 826 leaves it
    // unspecified; Linux sends zeros).
    frame[28..32].copy_from_slice(&[198, 51, 100, 10]);
    frame[32..38].fill(0);
    frame
}

/// A client's solicitation for the VIP, written out byte by byte with its checksum (the
/// crate builds no solicitations).
fn neighbor_solicitation() -> Vec<u8> {
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0xa);
    let group = ferrolb_l2::solicited_node_multicast(VIP_V6);
    let mut frame = Vec::with_capacity(86);
    frame.extend_from_slice(&ferrolb_l2::ipv6_multicast_mac(group).0);
    frame.extend_from_slice(&CLIENT_MAC.0);
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
    frame.extend_from_slice(&client.octets());
    frame.extend_from_slice(&group.octets());
    let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&VIP_V6.octets());
    message.extend_from_slice(&[1, 1]);
    message.extend_from_slice(&CLIENT_MAC.0);
    let mut sum: u32 = 0;
    let pseudo_and_message = [
        &client.octets()[..],
        &group.octets()[..],
        &[0, 0, 0, 32, 0, 0, 0, 58],
        &message,
    ]
    .concat();
    for word in pseudo_and_message.chunks(2) {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    message[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

fn codec(c: &mut Criterion) {
    let arp_request = arp_request();
    let solicitation = neighbor_solicitation();
    assert!(
        parse_arp(&arp_request).is_ok(),
        "benchmark ARP request parses"
    );
    assert!(
        parse_neighbor_solicitation(&solicitation).is_ok(),
        "benchmark solicitation parses"
    );

    let mut group = c.benchmark_group("l2");
    group.throughput(Throughput::Elements(1));
    group.bench_function("arp: parse request + build reply", |b| {
        b.iter(|| {
            let request = parse_arp(black_box(&arp_request));
            request.map(|request| build_arp_reply(&request, black_box(OUR_MAC)))
        })
    });
    group.bench_function("ndp: parse solicitation + build advertisement", |b| {
        b.iter(|| {
            let solicitation = parse_neighbor_solicitation(black_box(&solicitation));
            solicitation.map(|solicitation| {
                build_neighbor_advertisement(&solicitation, black_box(OUR_MAC), OUR_LINK_LOCAL)
            })
        })
    });
    group.bench_function("arp: build gratuitous pair", |b| {
        b.iter(|| {
            [ArpOperation::Request, ArpOperation::Reply]
                .map(|operation| build_gratuitous_arp(operation, black_box(OUR_MAC), VIP_V4))
        })
    });
    group.bench_function("ndp: build unsolicited advertisement", |b| {
        b.iter(|| {
            build_unsolicited_neighbor_advertisement(black_box(OUR_MAC), OUR_LINK_LOCAL, VIP_V6)
        })
    });
    group.bench_function("arp: reject non-ARP frame", |b| {
        b.iter(|| parse_arp(black_box(&solicitation)))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
