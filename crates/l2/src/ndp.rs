//! IPv6 neighbor discovery (RFC 4861): Neighbor Solicitations in, Neighbor Advertisements out.
//!
//! etherparse slices the Ethernet and IPv6 headers (extension headers included), the ICMPv6
//! message, the solicitation and advertisement bodies and their options, and verifies the
//! ICMPv6 checksum. It has no writer for neighbor discovery options, so the advertisement is
//! assembled here from etherparse's header types, option header and checksum sum.

use std::net::Ipv6Addr;

use etherparse::checksum::Sum16BitWords;
use etherparse::icmpv6::{
    NdpOptionHeader, NdpOptionSlice, NdpOptionType, NdpOptionsIterator,
    NeighborAdvertisementHeader, NeighborAdvertisementPayloadSlice,
    NeighborSolicitationPayloadSlice, TYPE_NEIGHBOR_ADVERTISEMENT, TYPE_NEIGHBOR_SOLICITATION,
};
use etherparse::{
    EtherType, Ethernet2Header, Ethernet2Slice, Icmpv6Slice, IpNumber, Ipv6ExtensionSlice,
    Ipv6FlowLabel, Ipv6Header, Ipv6Slice, err,
};

use crate::MacAddr;

/// The link-local all-nodes multicast group, `ff02::1`.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet address of [`ALL_NODES`], `33:33:00:00:00:01`.
pub const ALL_NODES_MAC: MacAddr = ipv6_multicast_mac(ALL_NODES);

/// Length of every frame this module builds: Ethernet header, IPv6 header, and a 32-byte
/// advertisement (8-byte ICMPv6 header, 16-byte target, 8-byte target link-layer option).
pub const NEIGHBOR_ADVERTISEMENT_FRAME_LEN: usize =
    Ethernet2Header::LEN + Ipv6Header::LEN + ADVERTISEMENT_LEN;

const ADVERTISEMENT_LEN: usize = 8 + 16 + LINK_LAYER_OPTION_LEN;
const LINK_LAYER_OPTION_LEN: usize = 8;
/// RFC 4861 §7.1.1 and §7.1.2: both messages are at least 24 bytes (header and target).
const MIN_MESSAGE_LEN: usize = 24;
/// RFC 4861 §7.1: a hop limit of 255 proves the sender is on-link (no router decremented it).
const ND_HOP_LIMIT: u8 = 255;
/// `ff02::1:ff00:0/104`, the solicited-node prefix (RFC 4291 §2.7.1).
const SOLICITED_NODE_PREFIX: [u8; 13] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff];

/// An Ethernet frame carrying a valid Neighbor Solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborSolicitation {
    pub eth_destination: MacAddr,
    pub eth_source: MacAddr,
    /// IPv6 source; `::` when the sender is probing for a duplicate address.
    pub source: Ipv6Addr,
    /// IPv6 destination: the target's solicited-node group, or the target itself when the
    /// sender re-checks a cached entry.
    pub destination: Ipv6Addr,
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The sender's source link-layer address option. Senders may omit it when soliciting by
    /// unicast, and must omit it in duplicate address detection.
    pub source_link_layer: Option<MacAddr>,
}

impl NeighborSolicitation {
    /// A duplicate address detection probe (RFC 4862 §5.4): the sender has no address yet.
    pub fn is_duplicate_address_detection(&self) -> bool {
        self.source.is_unspecified()
    }
}

/// An Ethernet frame carrying a valid Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborAdvertisement {
    pub eth_destination: MacAddr,
    pub eth_source: MacAddr,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    /// R: the sender is a router.
    pub router_flag: bool,
    /// S: the advertisement answers a solicitation.
    pub solicited_flag: bool,
    /// O: receivers replace a cached link-layer address with this one.
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub target_link_layer: Option<MacAddr>,
}

/// Why a frame is not a valid Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    #[error("truncated frame: the {layer} needs {needed} bytes, {got} present")]
    Truncated {
        layer: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("not IPv6: EtherType {ether_type:#06x}")]
    NotIpv6 { ether_type: u16 },
    #[error("IP version {0} in a frame of EtherType IPv6")]
    IpVersion(u8),
    #[error("malformed IPv6 extension headers")]
    ExtensionHeaders,
    #[error("IPv6 payload length 0 (a jumbogram), which neighbor discovery never uses")]
    JumboPayload,
    #[error("fragment header present (RFC 6980: neighbor discovery is never fragmented)")]
    Fragmented,
    #[error("IPv6 payload is protocol {0}, not ICMPv6 (58)")]
    NotIcmpv6(u8),
    #[error("ICMPv6 type {got}, expected {expected}")]
    Icmpv6Type { expected: u8, got: u8 },
    #[error("ICMPv6 code {0}, neighbor discovery uses 0")]
    Code(u8),
    #[error("hop limit {0}, neighbor discovery requires 255")]
    HopLimit(u8),
    #[error("ICMPv6 checksum mismatch")]
    Checksum,
    #[error("IPv6 source {0} is a multicast address")]
    MulticastSource(Ipv6Addr),
    #[error("target {0} is a multicast address")]
    MulticastTarget(Ipv6Addr),
    #[error("malformed option (zero length, or longer than the message)")]
    MalformedOption,
    #[error("link-layer address option holds {0} bytes, an Ethernet address 6")]
    LinkLayerAddressLength(usize),
    #[error(
        "duplicate address detection probe (source ::) sent to {0}, not a solicited-node group"
    )]
    DadDestination(Ipv6Addr),
    #[error("duplicate address detection probe (source ::) with a source link-layer address")]
    DadSourceLinkLayerAddress,
    #[error("solicited advertisement sent to multicast {0}")]
    SolicitedToMulticast(Ipv6Addr),
}

/// Parses a received Ethernet frame (without FCS) as a Neighbor Solicitation, with every
/// validity check of RFC 4861 §7.1.1: hop limit 255, correct ICMPv6 checksum, code 0,
/// length at least 24, non-multicast target, options of non-zero length, and for duplicate
/// address detection probes a solicited-node destination and no source link-layer address.
///
/// Frames with a fragment header are rejected (RFC 6980), as are multicast sources, a
/// source link-layer address option that is not 6 bytes long, and 802.1Q-tagged frames
/// (AF_PACKET sockets bound to an interface receive them untagged).
pub fn parse_neighbor_solicitation(frame: &[u8]) -> Result<NeighborSolicitation, NdpError> {
    let message = parse_message(frame, TYPE_NEIGHBOR_SOLICITATION, "neighbor solicitation")?;
    let body = NeighborSolicitationPayloadSlice::from_slice(message.icmp.payload())
        .map_err(|error| truncated("neighbor solicitation", &error))?;
    let target = body.target_address();
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget(target));
    }
    let source_link_layer = link_layer_address(body.options_iterator(), Direction::Source)?;
    if message.source.is_unspecified() {
        if !is_solicited_node_multicast(message.destination) {
            return Err(NdpError::DadDestination(message.destination));
        }
        if source_link_layer.is_some() {
            return Err(NdpError::DadSourceLinkLayerAddress);
        }
    }
    Ok(NeighborSolicitation {
        eth_destination: message.eth_destination,
        eth_source: message.eth_source,
        source: message.source,
        destination: message.destination,
        target,
        source_link_layer,
    })
}

/// Parses a received Ethernet frame (without FCS) as a Neighbor Advertisement, with the
/// checks of RFC 4861 §7.1.2 (as for solicitations, and no Solicited flag on multicast).
///
/// The responder does not need this to answer; it reads what it and other nodes announce,
/// in tests and when watching for a competing owner of an address.
pub fn parse_neighbor_advertisement(frame: &[u8]) -> Result<NeighborAdvertisement, NdpError> {
    let message = parse_message(frame, TYPE_NEIGHBOR_ADVERTISEMENT, "neighbor advertisement")?;
    let flags = NeighborAdvertisementHeader::from_bytes(message.icmp.bytes5to8());
    let body = NeighborAdvertisementPayloadSlice::from_slice(message.icmp.payload())
        .map_err(|error| truncated("neighbor advertisement", &error))?;
    let target = body.target_address();
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget(target));
    }
    if flags.solicited && message.destination.is_multicast() {
        return Err(NdpError::SolicitedToMulticast(message.destination));
    }
    Ok(NeighborAdvertisement {
        eth_destination: message.eth_destination,
        eth_source: message.eth_source,
        source: message.source,
        destination: message.destination,
        router_flag: flags.router,
        solicited_flag: flags.solicited,
        override_flag: flags.r#override,
        target,
        target_link_layer: link_layer_address(body.options_iterator(), Direction::Target)?,
    })
}

/// Builds the advertisement answering `solicitation`: "`solicitation.target` is at
/// `our_mac`", sent from `source_ip` (MetalLB uses the interface's link-local address; the
/// responder, like Linux for its own addresses, uses the target itself).
///
/// It goes to the solicitation's source, at the link layer to its source link-layer
/// address option or, when that was omitted, to the frame's Ethernet source; the Solicited
/// flag is set. A duplicate address detection probe has no source to answer, so the answer
/// goes to all nodes with the Solicited flag clear (RFC 4861 §7.2.4).
///
/// The Override flag is always set, unlike MetalLB's solicited answers: after a failover a
/// client still holds the old node's address, and RFC 4861 §7.2.5 has it ignore (or merely
/// mark stale) an advertisement without Override that names a different address, so the
/// takeover would wait for neighbor unreachability detection to give up on the old node.
pub fn build_neighbor_advertisement(
    solicitation: &NeighborSolicitation,
    our_mac: MacAddr,
    source_ip: Ipv6Addr,
) -> [u8; NEIGHBOR_ADVERTISEMENT_FRAME_LEN] {
    if solicitation.is_duplicate_address_detection() {
        advertisement(
            our_mac,
            ALL_NODES_MAC,
            source_ip,
            ALL_NODES,
            solicitation.target,
            false,
        )
    } else {
        let eth_destination = solicitation
            .source_link_layer
            .unwrap_or(solicitation.eth_source);
        advertisement(
            our_mac,
            eth_destination,
            source_ip,
            solicitation.source,
            solicitation.target,
            true,
        )
    }
}

/// Builds an unsolicited advertisement of "`target` is at `our_mac`" to all nodes, sent when
/// this node takes an address over: Override set so caches switch at once, Solicited clear.
pub fn build_unsolicited_neighbor_advertisement(
    our_mac: MacAddr,
    source_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> [u8; NEIGHBOR_ADVERTISEMENT_FRAME_LEN] {
    advertisement(our_mac, ALL_NODES_MAC, source_ip, ALL_NODES, target, false)
}

/// The solicited-node multicast group of `address`, `ff02::1:ffXX:XXXX` with its low 24 bits
/// (RFC 4291 §2.7.1): solicitations for `address` are sent there, so a node answering for
/// it joins the group.
pub const fn solicited_node_multicast(address: Ipv6Addr) -> Ipv6Addr {
    let octets = address.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        0x0001,
        0xff00 | octets[13] as u16,
        u16::from_be_bytes([octets[14], octets[15]]),
    )
}

/// Whether `address` is in `ff02::1:ff00:0/104`.
pub fn is_solicited_node_multicast(address: Ipv6Addr) -> bool {
    address.octets().starts_with(&SOLICITED_NODE_PREFIX)
}

/// The Ethernet address frames to the IPv6 multicast `group` are sent to: `33:33` and the
/// group's low 32 bits (RFC 2464 §7); `33:33:ff:XX:XX:XX` for a solicited-node group.
pub const fn ipv6_multicast_mac(group: Ipv6Addr) -> MacAddr {
    let octets = group.octets();
    MacAddr([0x33, 0x33, octets[12], octets[13], octets[14], octets[15]])
}

/// The parts of a neighbor discovery message both parsers share, after the common checks.
struct Message<'a> {
    eth_destination: MacAddr,
    eth_source: MacAddr,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    icmp: Icmpv6Slice<'a>,
}

/// Cheapest checks first: most frames a responder sees fail on EtherType or ICMPv6 type.
fn parse_message<'a>(
    frame: &'a [u8],
    icmp_type: u8,
    name: &'static str,
) -> Result<Message<'a>, NdpError> {
    let ethernet = Ethernet2Slice::from_slice_without_fcs(frame)
        .map_err(|error| truncated("Ethernet header", &error))?;
    let ether_type = ethernet.ether_type();
    if ether_type != EtherType::IPV6 {
        return Err(NdpError::NotIpv6 {
            ether_type: ether_type.0,
        });
    }
    let ip = Ipv6Slice::from_slice(ethernet.payload_slice()).map_err(|error| match error {
        err::ipv6::SliceError::Len(error) => truncated("IPv6 packet", &error),
        err::ipv6::SliceError::Header(err::ipv6::HeaderError::UnexpectedVersion {
            version_number,
        }) => NdpError::IpVersion(version_number),
        err::ipv6::SliceError::Exts(_) => NdpError::ExtensionHeaders,
    })?;
    let header = ip.header();
    // etherparse reads a zero payload length as "jumbogram, payload runs to the end of the
    // slice"; neighbor discovery messages are small and never jumbograms.
    if header.payload_length() == 0 {
        return Err(NdpError::JumboPayload);
    }
    // RFC 6980 §5: ignore neighbor discovery carrying any fragment header, including atomic
    // fragments that etherparse does not count as fragmenting the payload.
    if ip
        .extensions()
        .clone()
        .into_iter()
        .any(|extension| matches!(extension, Ipv6ExtensionSlice::Fragment(_)))
    {
        return Err(NdpError::Fragmented);
    }
    let payload = ip.payload();
    if payload.ip_number != IpNumber::IPV6_ICMP {
        return Err(NdpError::NotIcmpv6(payload.ip_number.0));
    }
    let icmp = Icmpv6Slice::from_slice(payload.payload)
        .map_err(|error| truncated("ICMPv6 message", &error))?;
    if icmp.type_u8() != icmp_type {
        return Err(NdpError::Icmpv6Type {
            expected: icmp_type,
            got: icmp.type_u8(),
        });
    }
    if header.hop_limit() != ND_HOP_LIMIT {
        return Err(NdpError::HopLimit(header.hop_limit()));
    }
    if icmp.code_u8() != 0 {
        return Err(NdpError::Code(icmp.code_u8()));
    }
    if icmp.slice().len() < MIN_MESSAGE_LEN {
        return Err(NdpError::Truncated {
            layer: name,
            needed: MIN_MESSAGE_LEN,
            got: icmp.slice().len(),
        });
    }
    if !icmp.is_checksum_valid(header.source(), header.destination()) {
        return Err(NdpError::Checksum);
    }
    let source = header.source_addr();
    if source.is_multicast() {
        return Err(NdpError::MulticastSource(source));
    }
    Ok(Message {
        eth_destination: MacAddr(ethernet.destination()),
        eth_source: MacAddr(ethernet.source()),
        source,
        destination: header.destination_addr(),
        icmp,
    })
}

fn truncated(layer: &'static str, error: &err::LenError) -> NdpError {
    NdpError::Truncated {
        layer,
        needed: error.required_len,
        got: error.len,
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Source,
    Target,
}

/// The first link-layer address option of `direction`, after checking that every option is
/// well-formed (RFC 4861 §7.1: any option of length zero invalidates the message). Options
/// of other kinds are ignored, as §4.6 asks.
fn link_layer_address(
    options: NdpOptionsIterator<'_>,
    direction: Direction,
) -> Result<Option<MacAddr>, NdpError> {
    let mut found = None;
    for option in options {
        let address = match (option.map_err(|_| NdpError::MalformedOption)?, direction) {
            (NdpOptionSlice::SourceLinkLayerAddress(option), Direction::Source) => {
                option.link_layer_address()
            }
            (NdpOptionSlice::TargetLinkLayerAddress(option), Direction::Target) => {
                option.link_layer_address()
            }
            _ => continue,
        };
        if found.is_none() {
            // RFC 2464 §8: on Ethernet the option is one 8-byte unit, a 6-byte address.
            if address.len() != 6 {
                return Err(NdpError::LinkLayerAddressLength(address.len()));
            }
            found = MacAddr::from_prefix(address);
        }
    }
    Ok(found)
}

fn advertisement(
    our_mac: MacAddr,
    eth_destination: MacAddr,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    target: Ipv6Addr,
    solicited: bool,
) -> [u8; NEIGHBOR_ADVERTISEMENT_FRAME_LEN] {
    let flags = NeighborAdvertisementHeader {
        router: false,
        solicited,
        r#override: true,
    };
    let target_link_layer = NdpOptionHeader {
        option_type: NdpOptionType::TARGET_LINK_LAYER_ADDRESS,
        length_units: 1,
    };
    // Type, code 0, checksum (filled in below), flags; target; target link-layer option.
    let mut message = [0u8; ADVERTISEMENT_LEN];
    message[0] = TYPE_NEIGHBOR_ADVERTISEMENT;
    message[4..8].copy_from_slice(&flags.to_bytes());
    message[8..24].copy_from_slice(&target.octets());
    message[24..26].copy_from_slice(&target_link_layer.to_bytes());
    message[26..32].copy_from_slice(&our_mac.0);
    // RFC 4443 §2.3: the checksum covers the pseudo-header (source, destination, upper-layer
    // length, next header) and the message with a zero checksum field.
    let checksum = Sum16BitWords::new()
        .add_16bytes(source.octets())
        .add_16bytes(destination.octets())
        .add_4bytes((ADVERTISEMENT_LEN as u32).to_be_bytes())
        .add_2bytes([0, IpNumber::IPV6_ICMP.0])
        .add_slice(&message)
        .ones_complement();
    // Sum16BitWords adds 16-bit words in native byte order, so the native bytes of the
    // result are the wire bytes (RFC 1071 §2(B), byte order independence).
    message[2..4].copy_from_slice(&checksum.to_ne_bytes());

    let ethernet = Ethernet2Header {
        destination: eth_destination.0,
        source: our_mac.0,
        ether_type: EtherType::IPV6,
    };
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: ADVERTISEMENT_LEN as u16,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: ND_HOP_LIMIT,
        source: source.octets(),
        destination: destination.octets(),
    };
    let mut frame = [0u8; NEIGHBOR_ADVERTISEMENT_FRAME_LEN];
    let (ethernet_part, rest) = frame.split_at_mut(Ethernet2Header::LEN);
    let (ip_part, message_part) = rest.split_at_mut(Ipv6Header::LEN);
    ethernet_part.copy_from_slice(&ethernet.to_bytes());
    ip_part.copy_from_slice(&ip.to_bytes());
    message_part.copy_from_slice(&message);
    frame
}
