//! Test helpers written independently of the crate: frames are assembled byte by byte and
//! checksums computed with a plain RFC 1071 sum, so tests do not check the codecs against
//! themselves.

#![allow(dead_code)] // each test binary uses a different part

use std::net::Ipv6Addr;

use ferrolb_l2::MacAddr;

pub const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);
pub const OUR_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0xa);
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x200);

pub const ETHERNET_LEN: usize = 14;
pub const IPV6_LEN: usize = 40;
/// Offset of the ICMPv6 message in an untagged frame without extension headers.
pub const ICMP_OFFSET: usize = ETHERNET_LEN + IPV6_LEN;

/// The Internet checksum as RFC 1071 §4.1 writes it: 16-bit big-endian words summed with
/// end-around carry, odd byte padded with zero, result complemented.
pub fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for word in data.chunks(2) {
        let high = u32::from(word[0]) << 8;
        let low = word.get(1).copied().map_or(0, u32::from);
        sum += high | low;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMPv6 checksum over the RFC 8200 §8.1 pseudo-header and `message` (whose checksum
/// field must be zero, or the result is zero when the field already holds the right value).
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut data = Vec::with_capacity(40 + message.len());
    data.extend_from_slice(&source.octets());
    data.extend_from_slice(&destination.octets());
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(message);
    rfc1071(&data)
}

/// Everything a Neighbor Solicitation frame is made of, for crafting valid and broken ones.
#[derive(Debug, Clone)]
pub struct NsSpec {
    pub eth_destination: MacAddr,
    pub eth_source: MacAddr,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    pub target: Ipv6Addr,
    /// Raw option bytes following the target.
    pub options: Vec<u8>,
}

impl NsSpec {
    /// A client resolving the VIP: to the VIP's solicited-node group, with its own address as
    /// source link-layer address option.
    pub fn client_resolving_vip() -> NsSpec {
        NsSpec {
            eth_destination: MacAddr([0x33, 0x33, 0xff, 0x00, 0x02, 0x00]),
            eth_source: CLIENT_MAC,
            source: CLIENT_V6,
            destination: "ff02::1:ff00:200".parse().expect("literal address"),
            hop_limit: 255,
            code: 0,
            target: VIP_V6,
            options: source_link_layer_option(CLIENT_MAC),
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        self.frame_with_type(135)
    }

    pub fn frame_with_type(&self, icmp_type: u8) -> Vec<u8> {
        let mut message = vec![icmp_type, self.code, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&self.target.octets());
        message.extend_from_slice(&self.options);
        let checksum = icmpv6_checksum(self.source, self.destination, &message);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());

        let mut frame = Vec::new();
        frame.extend_from_slice(&self.eth_destination.0);
        frame.extend_from_slice(&self.eth_source.0);
        frame.extend_from_slice(&[0x86, 0xdd]);
        frame.extend_from_slice(&[0x60, 0, 0, 0]);
        frame.extend_from_slice(&(message.len() as u16).to_be_bytes());
        frame.extend_from_slice(&[58, self.hop_limit]);
        frame.extend_from_slice(&self.source.octets());
        frame.extend_from_slice(&self.destination.octets());
        frame.extend_from_slice(&message);
        frame
    }
}

pub fn source_link_layer_option(mac: MacAddr) -> Vec<u8> {
    let mut option = vec![1, 1];
    option.extend_from_slice(&mac.0);
    option
}

/// Recomputes the ICMPv6 checksum of an untagged IPv6 frame without extension headers, so
/// that mutated frames get past the checksum check and exercise what comes after it.
/// Leaves anything else alone.
pub fn fix_icmpv6_checksum(frame: &mut [u8]) {
    if frame.len() < ICMP_OFFSET + 4 || frame[12..14] != [0x86, 0xdd] || frame[20] != 58 {
        return;
    }
    let payload_len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let end = (ICMP_OFFSET + payload_len).min(frame.len());
    let octets = |range: std::ops::Range<usize>| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&frame[range]);
        Ipv6Addr::from(octets)
    };
    let source = octets(22..38);
    let destination = octets(38..54);
    frame[ICMP_OFFSET + 2..ICMP_OFFSET + 4].fill(0);
    let checksum = icmpv6_checksum(source, destination, &frame[ICMP_OFFSET..end]);
    frame[ICMP_OFFSET + 2..ICMP_OFFSET + 4].copy_from_slice(&checksum.to_be_bytes());
}
