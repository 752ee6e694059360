//! ARP for Ethernet and IPv4 (RFC 826).
//!
//! etherparse does the byte work here: it slices the Ethernet header and the ARP packet,
//! and writes both. This module adds the Ethernet/IPv4-only policy, the reply and
//! announcement rules, and the padding to Ethernet's minimum frame size.

use std::net::Ipv4Addr;

use etherparse::{
    ArpEthIpv4Packet, ArpHardwareId, ArpPacketSlice, EtherType, Ethernet2Header, Ethernet2Slice,
};

use crate::MacAddr;

/// Length of every frame this module builds: Ethernet's 60-byte minimum (without FCS).
///
/// The 14-byte header and the 28-byte ARP packet are followed by 18 zero bytes of padding.
/// Frames written to an AF_PACKET socket reach the driver as they are, and veth and some
/// other drivers do not pad short frames, so the padding is done here.
pub const ARP_FRAME_LEN: usize = 60;

const ETHERNET_HEADER_LEN: usize = Ethernet2Header::LEN;

/// The ARP operations an Ethernet/IPv4 responder deals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl ArpOperation {
    const fn to_wire(self) -> etherparse::ArpOperation {
        match self {
            ArpOperation::Request => etherparse::ArpOperation::REQUEST,
            ArpOperation::Reply => etherparse::ArpOperation::REPLY,
        }
    }
}

/// The operations of a gratuitous announcement, in the order they are sent.
///
/// MetalLB (`internal/layer2/arp.go`, `Gratuitous`) sends a request and then a reply for the
/// same address, both broadcast: receivers differ in which of the two they learn from.
pub const GRATUITOUS_ARP_OPERATIONS: [ArpOperation; 2] =
    [ArpOperation::Request, ArpOperation::Reply];

/// An Ethernet frame carrying an Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpFrame {
    /// Destination of the Ethernet frame (broadcast for most requests).
    pub eth_destination: MacAddr,
    /// Source of the Ethernet frame.
    pub eth_source: MacAddr,
    pub operation: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// Why a frame is not an Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    #[error("truncated frame: the {layer} needs {needed} bytes, {got} present")]
    Truncated {
        layer: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("not ARP: EtherType {ether_type:#06x}")]
    NotArp { ether_type: u16 },
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    NotEthernet(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    NotIpv4(u16),
    #[error("ARP address lengths {hardware}/{protocol}, Ethernet/IPv4 has 6/4")]
    AddressLengths { hardware: u8, protocol: u8 },
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    UnsupportedOperation(u16),
}

/// Parses a received Ethernet frame (without FCS) as an Ethernet/IPv4 ARP request or reply.
///
/// Bytes after the 28-byte ARP packet (Ethernet padding) are ignored. 802.1Q-tagged frames
/// are rejected as [`ArpError::NotArp`]: AF_PACKET sockets bound to an interface receive
/// them with the tag already stripped.
pub fn parse_arp(frame: &[u8]) -> Result<ArpFrame, ArpError> {
    let ethernet =
        Ethernet2Slice::from_slice_without_fcs(frame).map_err(|error| ArpError::Truncated {
            layer: "Ethernet header",
            needed: error.required_len,
            got: error.len,
        })?;
    let ether_type = ethernet.ether_type();
    if ether_type != EtherType::ARP {
        return Err(ArpError::NotArp {
            ether_type: ether_type.0,
        });
    }
    let arp = ArpPacketSlice::from_slice(ethernet.payload_slice()).map_err(|error| {
        ArpError::Truncated {
            layer: "ARP packet",
            needed: error.required_len,
            got: error.len,
        }
    })?;
    if arp.hw_addr_type() != ArpHardwareId::ETHERNET {
        return Err(ArpError::NotEthernet(arp.hw_addr_type().0));
    }
    if arp.proto_addr_type() != EtherType::IPV4 {
        return Err(ArpError::NotIpv4(arp.proto_addr_type().0));
    }
    let lengths_error = ArpError::AddressLengths {
        hardware: arp.hw_addr_size(),
        protocol: arp.proto_addr_size(),
    };
    if (arp.hw_addr_size(), arp.proto_addr_size()) != (6, 4) {
        return Err(lengths_error);
    }
    let operation = match arp.operation() {
        etherparse::ArpOperation::REQUEST => ArpOperation::Request,
        etherparse::ArpOperation::REPLY => ArpOperation::Reply,
        other => return Err(ArpError::UnsupportedOperation(other.0)),
    };
    // The lengths were checked above, so these conversions cannot fail; the error keeps
    // them free of panics all the same.
    let mac = |bytes: &[u8]| MacAddr::from_prefix(bytes).ok_or(lengths_error.clone());
    let ipv4 = |bytes: &[u8]| {
        bytes
            .first_chunk::<4>()
            .map(|octets| Ipv4Addr::from(*octets))
            .ok_or(lengths_error.clone())
    };
    Ok(ArpFrame {
        eth_destination: MacAddr(ethernet.destination()),
        eth_source: MacAddr(ethernet.source()),
        operation,
        sender_mac: mac(arp.sender_hw_addr())?,
        sender_ip: ipv4(arp.sender_protocol_addr())?,
        target_mac: mac(arp.target_hw_addr())?,
        target_ip: ipv4(arp.target_protocol_addr())?,
    })
}

/// Builds the answer to `request`: "`request.target_ip` is at `our_mac`".
///
/// The reply goes by unicast to the asker's hardware address (RFC 826: the requester's
/// sender fields become the reply's target fields). Whether to answer at all (operation,
/// Ethernet destination, ownership of the target IP) is the responder's decision.
pub fn build_arp_reply(request: &ArpFrame, our_mac: MacAddr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        request.sender_mac,
        our_mac,
        &ArpEthIpv4Packet {
            operation: ArpOperation::Reply.to_wire(),
            sender_mac: our_mac.0,
            sender_ipv4: request.target_ip.octets(),
            target_mac: request.sender_mac.0,
            target_ipv4: request.sender_ip.octets(),
        },
    )
}

/// Builds one gratuitous ARP announcing "`ip` is at `our_mac`" to the whole segment.
///
/// Send one frame per operation of [`GRATUITOUS_ARP_OPERATIONS`]. The frame matches what
/// MetalLB sends: Ethernet broadcast, sender and target IP both `ip`, and the broadcast
/// address as target hardware address.
pub fn build_gratuitous_arp(
    operation: ArpOperation,
    our_mac: MacAddr,
    ip: Ipv4Addr,
) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        MacAddr::BROADCAST,
        our_mac,
        &ArpEthIpv4Packet {
            operation: operation.to_wire(),
            sender_mac: our_mac.0,
            sender_ipv4: ip.octets(),
            target_mac: MacAddr::BROADCAST.0,
            target_ipv4: ip.octets(),
        },
    )
}

fn arp_frame(
    destination: MacAddr,
    source: MacAddr,
    packet: &ArpEthIpv4Packet,
) -> [u8; ARP_FRAME_LEN] {
    let header = Ethernet2Header {
        destination: destination.0,
        source: source.0,
        ether_type: EtherType::ARP,
    };
    let mut frame = [0u8; ARP_FRAME_LEN];
    frame[..ETHERNET_HEADER_LEN].copy_from_slice(&header.to_bytes());
    frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ArpEthIpv4Packet::LEN]
        .copy_from_slice(&packet.to_bytes());
    frame
}
