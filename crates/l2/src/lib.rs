//! ferrolb's layer 2 mode: making a Service IP reachable on the LAN by answering ARP (IPv4)
//! and neighbor discovery (IPv6) for it.
//!
//! This crate owns the packet codecs, pure functions over bytes and plain data: parsing a
//! received Ethernet frame into an ARP request or reply ([`parse_arp`]) or a Neighbor
//! Solicitation ([`parse_neighbor_solicitation`]), and building the frames sent back: ARP
//! replies and gratuitous ARP, solicited and unsolicited Neighbor Advertisements. Parsers
//! never panic on any input; they say why a frame is rejected with [`ArpError`] and
//! [`NdpError`]. Builders return whole Ethernet frames in fixed-size arrays, ready for an
//! AF_PACKET socket, without allocating.
//!
//! It also owns the choice of links, pure too: MetalLB's rules for which links can answer
//! ([`check_usable`], [`link_use`]), its default interface exclusion list
//! ([`DEFAULT_EXCLUDED_INTERFACES`], [`Exclusion`]), and per-IP link scopes ([`Scope`]).
//!
//! [`Responder`] is the I/O shell on top of them: it follows the host's links over netlink
//! ([`Responder::start`]) or uses a fixed list ([`Responder::new`]), reads and writes frames
//! on one AF_PACKET socket per link, answers for each owned IP only on the links its scope
//! allows, joins the solicited-node groups of the IPv6 addresses it owns, announces newly
//! owned addresses (and, optionally, all of them periodically), and counts requests and
//! answers globally and per IP (see the `responder` module docs). Deciding which IPs this
//! node owns is the speaker's business, not this crate's.

mod arp;
mod links;
mod mac;
mod ndp;
mod responder;

pub use arp::{
    ARP_FRAME_LEN, ArpError, ArpFrame, ArpOperation, GRATUITOUS_ARP_OPERATIONS, build_arp_reply,
    build_gratuitous_arp, parse_arp,
};
pub use links::{
    DEFAULT_EXCLUDED_INTERFACES, Exclusion, LinkInfo, LinkUse, Scope, Unusable, check_usable,
    link_use,
};
pub use mac::{MacAddr, MacAddrParseError};
pub use ndp::{
    ALL_NODES, ALL_NODES_MAC, NEIGHBOR_ADVERTISEMENT_FRAME_LEN, NdpError, NeighborAdvertisement,
    NeighborSolicitation, build_neighbor_advertisement, build_unsolicited_neighbor_advertisement,
    ipv6_multicast_mac, is_solicited_node_multicast, parse_neighbor_advertisement,
    parse_neighbor_solicitation, solicited_node_multicast,
};
pub use responder::{
    AnnounceSchedule, Answer, CounterSnapshot, Counters, IpCounts, Responder, ResponderOptions,
    Verdict, decide, frame_filter, owned_filter,
};
