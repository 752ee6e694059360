//! The messages, as plain data. Wire details (AS_TRANS, which prefixes travel in MP_REACH_NLRI,
//! message length limits) are the codec's business, not the model's.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// The 2-octet ASN an OPEN carries when the real one does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// The address families ferrolb advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl Family {
    pub fn of(prefix: &IpNet) -> Self {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918) for one family: the peer asks for our routes again.
    RouteRefresh(Family),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The speaker's real ASN: from the 4-octet ASN capability when present, otherwise the
    /// OPEN's 2-octet field.
    pub asn: u32,
    /// Seconds; 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Capabilities,
}

/// The capabilities ferrolb sends and reads. Others that a peer sends are kept by code only,
/// for logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// 4-octet ASN capability (RFC 6793) present. ferrolb always sends it.
    pub four_octet_asn: bool,
    /// Multiprotocol capabilities (RFC 4760). A peer that sends none supports IPv4 unicast only.
    pub families: BTreeSet<Family>,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Graceful restart (RFC 4724).
    pub graceful_restart: Option<GracefulRestart>,
    /// Extended next hop encoding for IPv4 unicast over an IPv6 next hop (RFC 8950).
    pub extended_next_hop_ipv4: bool,
    /// Codes of other capabilities the peer sent.
    pub other: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted and its peer should wait for its End-of-RIB.
    pub restarting: bool,
    /// Seconds the peer keeps our routes after the session drops (12 bits).
    pub restart_time: u16,
    /// The families whose routes are preserved, with the F bit (forwarding state kept).
    pub families: Vec<(Family, bool)>,
}

/// One UPDATE. An UPDATE with no prefixes at all for a family is that family's End-of-RIB
/// marker (RFC 4724): see [`Update::end_of_rib`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn prefixes, IPv4 and IPv6 (the codec puts IPv6 in MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    /// Announced prefixes, all with `attributes`.
    pub announced: Vec<IpNet>,
    /// Present when `announced` is not empty.
    pub attributes: Option<PathAttributes>,
    /// Set on decode when the message is an End-of-RIB for this family.
    pub end_of_rib: Option<Family>,
}

impl Update {
    pub fn end_of_rib(family: Family) -> Self {
        Self {
            end_of_rib: Some(family),
            ..Self::default()
        }
    }
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    #[default]
    Igp,
    Egp,
    Incomplete,
}

/// The attributes of announced routes. Two routes with equal attributes can share an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathAttributes {
    pub origin: Origin,
    /// AS_PATH as one AS_SEQUENCE; empty towards iBGP peers, `[local ASN]` towards eBGP peers.
    pub as_path: Vec<u32>,
    /// NEXT_HOP for IPv4 routes with an IPv4 next hop; otherwise the MP_REACH_NLRI next hop.
    pub next_hop: IpAddr,
    /// Also sent in MP_REACH_NLRI for IPv6 routes when set (RFC 2545).
    pub link_local_next_hop: Option<std::net::Ipv6Addr>,
    /// LOCAL_PREF, iBGP only.
    pub local_pref: Option<u32>,
    /// COMMUNITIES (RFC 1997), sorted, no duplicates.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY (RFC 8092), sorted, no duplicates.
    pub large_communities: Vec<[u32; 3]>,
}

/// A NOTIFICATION (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// Error codes (RFC 4271 §4.5, RFC 4486, RFC 7313).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE: u8 = 7;
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            code::MESSAGE_HEADER => "message header error",
            code::OPEN_MESSAGE => "OPEN message error",
            code::UPDATE_MESSAGE => "UPDATE message error",
            code::HOLD_TIMER_EXPIRED => "hold timer expired",
            code::FSM => "finite state machine error",
            code::CEASE => "cease",
            code::ROUTE_REFRESH_MESSAGE => "ROUTE-REFRESH message error",
            _ => "unknown error code",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if !self.data.is_empty() {
            write!(f, ", {} bytes of data", self.data.len())?;
        }
        Ok(())
    }
}
