//! The BGP-4 wire format of [`crate::message`]: framing, decoding, encoding and UPDATE packing.
//!
//! netgauze-bgp-pkt does the byte work: OPEN and its capabilities, path attribute values,
//! ROUTE-REFRESH, and every message we send except NOTIFICATION. This module maps between its
//! types and ours, and decides what a malformed message costs. That decision is made here
//! because netgauze stops at the first error it meets, while RFC 7606 asks for the most severe
//! outcome over the whole UPDATE (a bad ORIGIN followed by a duplicate MP_REACH_NLRI is a
//! session reset, not a treat-as-withdraw), and because a few of its checks differ from the
//! RFCs ferrolb follows (noted where they are worked around).
//!
//! # What a malformed message costs
//!
//! `Err` is the NOTIFICATION to send before closing the session; `TreatAsWithdraw` keeps the
//! session and withdraws every prefix the UPDATE carried; "discard" drops the attribute and
//! keeps the routes (decode returns the message without it).
//!
//! | input | outcome | source |
//! |---|---|---|
//! | marker not all ones | `Err` 1/1, no data | RFC 4271 §6.1 |
//! | length < 19, > `max_message_len` (> 4096 for OPEN/KEEPALIVE), below the type's minimum (OPEN 29, UPDATE 23, NOTIFICATION 21), KEEPALIVE ≠ 19, ROUTE-REFRESH ≠ 23, or ≠ the frame's size | `Err` 1/2, data = the length field | RFC 4271 §6.1, RFC 2918 §3 |
//! | type not 1..=5 | `Err` 1/3, data = the type | RFC 4271 §6.1 |
//! | OPEN version ≠ 4 | `Err` 2/1, data = 4 as 2 octets | RFC 4271 §6.2 |
//! | OPEN hold time 1 or 2 | `Err` 2/6 | RFC 4271 §6.2 |
//! | OPEN BGP identifier 0.0.0.0 | `Err` 2/3 | RFC 6286 §2.2 (any other value is accepted) |
//! | OPEN optional parameter type ≠ 2 (including RFC 9072's 255) | `Err` 2/4 | RFC 4271 §6.2 |
//! | OPEN parameter or capability lengths that do not add up, or a malformed 4-octet ASN capability | `Err` 2/0 | RFC 4271 §6.2 |
//! | any other capability netgauze cannot read (an AFI/SAFI it does not know, a bad length) | ignored, its code kept in `other` | RFC 5492 §3 |
//! | peer ASN not the configured one | the FSM's check; [`Notification::bad_peer_as`] builds 2/2 | RFC 4271 §6.2 |
//! | UPDATE Withdrawn Routes Length or Total Attribute Length beyond the message | `Err` 3/1 | RFC 4271 §6.3 |
//! | a prefix in Withdrawn Routes or NLRI with length > 32 or cut short | `Err` 3/10 | RFC 4271 §6.3, RFC 7606 §5.3 |
//! | MP_REACH_NLRI or MP_UNREACH_NLRI present twice | `Err` 3/1 | RFC 7606 §3 g |
//! | an attribute overruns Total Attribute Length, and it is MP_REACH/MP_UNREACH | `Err` 3/1 (its NLRI cannot be read) | RFC 7606 §4, §5.3 |
//! | an attribute overruns Total Attribute Length, any other type | `TreatAsWithdraw` | RFC 7606 §4 |
//! | MP_REACH/MP_UNREACH for IPv4/IPv6 unicast too short, next hop length not 16/32 (IPv6) or 4/16/32 (IPv4), or a prefix that cannot be parsed | `Err` 3/9, data = the attribute | RFC 7606 §7.11, RFC 4760 §7 |
//! | MP_REACH/MP_UNREACH for any other AFI/SAFI | ignored (not a family we negotiate) | RFC 4760 §7 |
//! | unrecognized attribute type with the Optional bit clear | `Err` 3/2, data = the attribute | RFC 4271 §6.3 |
//! | Optional/Transitive flags wrong for a known attribute (or Partial set on a well-known or optional non-transitive one) | `TreatAsWithdraw` | RFC 7606 §3 c |
//! | ORIGIN length ≠ 1 or value > 2 | `TreatAsWithdraw` | RFC 7606 §7.1 |
//! | AS_PATH segment overrun, zero-length segment, segment type not AS_SET/AS_SEQUENCE (confederation segments included) | `TreatAsWithdraw` | RFC 7606 §7.2 |
//! | NEXT_HOP length ≠ 4 | `TreatAsWithdraw` | RFC 7606 §7.3 |
//! | MULTI_EXIT_DISC or LOCAL_PREF length ≠ 4 | `TreatAsWithdraw` | RFC 7606 §7.4, §7.5 |
//! | COMMUNITIES length 0 or not a multiple of 4 | `TreatAsWithdraw` | RFC 7606 §7.8 |
//! | ORIGINATOR_ID length ≠ 4, CLUSTER_LIST length not a multiple of 4 | `TreatAsWithdraw` | RFC 7606 §7.9, §7.10 |
//! | EXTENDED COMMUNITIES length not a multiple of 8 | `TreatAsWithdraw` | RFC 7606 §7.14 |
//! | LARGE_COMMUNITY length 0 or not a multiple of 12 | `TreatAsWithdraw` | RFC 8092 §6 |
//! | ORIGIN or AS_PATH missing with NLRI present; NEXT_HOP missing with prefixes in the NLRI field | `TreatAsWithdraw` | RFC 7606 §3 d |
//! | ATOMIC_AGGREGATE length ≠ 0, AGGREGATOR length ≠ 6/8, AS4_PATH malformed | discard | RFC 7606 §7.6, §7.7, RFC 6793 §6 |
//! | any other attribute present twice | later copies discarded | RFC 7606 §3 g |
//! | ROUTE-REFRESH for an AFI/SAFI other than IPv4/IPv6 unicast, or with a non-zero subtype | `Ignored` | RFC 2918 §4, RFC 7313 §5 |
//!
//! The RFC 7606 outcome ranks session reset over treat-as-withdraw over discard; the first
//! NOTIFICATION found wins among resets.

mod open;
mod pack;
mod update;

use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::iana::RouteRefreshSubcode;
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFrom;

use crate::message::{Family, Message, Notification, code};

pub use pack::pack;

/// What the session negotiated that changes the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Both sides sent the 4-octet ASN capability (RFC 6793): AS_PATH carries 4-octet ASNs.
    pub four_octet_asn: bool,
    /// The largest message either side may send: 4096 (RFC 4271), the only size ferrolb
    /// negotiates (it does not send the RFC 8654 Extended Message capability).
    pub max_message_len: usize,
}

impl Default for Context {
    /// The context before the OPEN exchange: 2-octet ASNs, 4096-byte messages.
    fn default() -> Self {
        Self {
            four_octet_asn: false,
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

/// Marker, length and type.
pub const HEADER_LEN: usize = 19;

/// RFC 4271's limit, which RFC 8654 keeps for OPEN and KEEPALIVE.
const MAX_MESSAGE_LEN: usize = 4096;

const MARKER: [u8; 16] = [0xff; 16];

/// Message types (RFC 4271 §4.1, RFC 2918 §3).
mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Error subcodes this codec sends (RFC 4271 §4.5).
pub(crate) mod subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;

    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;

    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
}

/// What [`decode`] made of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Message(Message),
    /// RFC 7606 treat-as-withdraw: the UPDATE was malformed in a way that keeps the session
    /// up, and every prefix it carried (announced or withdrawn) counts as withdrawn.
    TreatAsWithdraw {
        withdrawn: Vec<IpNet>,
        reason: String,
    },
    /// A well-formed message the RFCs say to ignore (see the module table); not an UPDATE.
    Ignored {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the message would be {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("an End-of-RIB UPDATE carries no prefixes")]
    EndOfRibWithPrefixes,
    #[error("announced prefixes need path attributes")]
    MissingAttributes,
    #[error(
        "IPv4 prefixes over an IPv6 next hop and IPv6 prefixes both need MP_REACH_NLRI, and an UPDATE holds one"
    )]
    TwoMpReach,
    #[error("ASN {0} needs the 4-octet ASN capability in the OPEN")]
    AsnNeedsFourOctetCapability(u32),
    #[error("graceful restart time {0} does not fit in 12 bits")]
    RestartTimeTooLarge(u16),
    #[error("hold time {0} is neither 0 nor at least 3 seconds")]
    UnacceptableHoldTime(u16),
    #[error("the BGP identifier must not be 0.0.0.0")]
    ZeroRouterId,
    #[error("{0} is not a unicast prefix")]
    NotUnicast(IpNet),
    #[error("netgauze could not write the message: {0}")]
    Netgauze(String),
}

impl Notification {
    /// OPEN Message Error / Bad Peer AS (RFC 4271 §6.2), for the FSM when the peer's ASN is
    /// not the configured one. The data is the ASN the peer sent (2 octets when it fits, as
    /// FRR does, otherwise 4).
    pub fn bad_peer_as(received_asn: u32) -> Self {
        let data = match u16::try_from(received_asn) {
            Ok(short) => short.to_be_bytes().to_vec(),
            Err(_) => received_asn.to_be_bytes().to_vec(),
        };
        Self::new(code::OPEN_MESSAGE, subcode::BAD_PEER_AS, data)
    }
}

fn header_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::MESSAGE_HEADER, subcode, data)
}

fn bad_length(length: u16) -> Notification {
    header_error(subcode::BAD_MESSAGE_LENGTH, length.to_be_bytes().to_vec())
}

/// Looks at the start of a receive buffer: `Ok(None)` if fewer than 19 bytes; `Ok(Some(total_len))`
/// once the header is there and valid; `Err` with the NOTIFICATION for a bad marker (1/1), a bad
/// length (1/2, the length as data) or a bad type (1/3, the type as data), RFC 4271 §6.1.
pub fn frame_length(buf: &[u8], ctx: &Context) -> Result<Option<usize>, Notification> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    check_header(header, ctx).map(|(length, _)| Some(length))
}

/// Checks a 19-byte header; returns the message length and type.
fn check_header(header: &[u8], ctx: &Context) -> Result<(usize, u8), Notification> {
    if header.len() < HEADER_LEN {
        return Err(bad_length(u16::try_from(header.len()).unwrap_or(u16::MAX)));
    }
    if header[..16] != MARKER {
        return Err(header_error(
            subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let length_field = u16::from_be_bytes([header[16], header[17]]);
    let length = usize::from(length_field);
    let message_type = header[18];
    let max = ctx.max_message_len.clamp(HEADER_LEN, usize::from(u16::MAX));
    if length < HEADER_LEN || length > max {
        return Err(bad_length(length_field));
    }
    let fits_type = match message_type {
        message_type::OPEN => (29..=MAX_MESSAGE_LEN).contains(&length),
        message_type::UPDATE => length >= 23,
        message_type::NOTIFICATION => length >= 21,
        message_type::KEEPALIVE => length == HEADER_LEN,
        message_type::ROUTE_REFRESH => length == 23,
        other => {
            return Err(header_error(subcode::BAD_MESSAGE_TYPE, vec![other]));
        }
    };
    if !fits_type {
        return Err(bad_length(length_field));
    }
    Ok((length, message_type))
}

/// Decodes one whole frame (exactly [`frame_length`] bytes). Never panics on any input; see the
/// module documentation for what each kind of malformation returns.
pub fn decode(frame: &[u8], ctx: &Context) -> Result<Inbound, Notification> {
    let (length, message_type) = check_header(frame, ctx)?;
    if frame.len() != length {
        return Err(bad_length(u16::try_from(length).unwrap_or(u16::MAX)));
    }
    let body = &frame[HEADER_LEN..];
    match message_type {
        message_type::OPEN => open::decode(body).map(|open| Inbound::Message(Message::Open(open))),
        message_type::UPDATE => update::decode(body, ctx),
        message_type::NOTIFICATION => Ok(Inbound::Message(Message::Notification(
            decode_notification(body),
        ))),
        message_type::KEEPALIVE => Ok(Inbound::Message(Message::Keepalive)),
        _ => Ok(decode_route_refresh(body)),
    }
}

/// NOTIFICATION is read and written here rather than through netgauze: its NOTIFICATION type
/// is an enum of the codes and subcodes it knows, so a peer's message with a newer subcode
/// (or code 0) would fail to parse, and a NOTIFICATION must be reported whatever it holds —
/// it is never answered with another one.
fn decode_notification(body: &[u8]) -> Notification {
    match body {
        [error_code, error_subcode, data @ ..] => {
            Notification::new(*error_code, *error_subcode, data.to_vec())
        }
        // check_header guarantees 2 octets; an empty one would be a bug, not a panic.
        _ => Notification::new(0, 0, body.to_vec()),
    }
}

fn decode_route_refresh(body: &[u8]) -> Inbound {
    let ignored = |reason: String| Inbound::Ignored { reason };
    match BgpRouteRefreshMessage::parse(&mut SliceReader::new(body)) {
        Ok(refresh) => {
            if refresh.operation_type() != RouteRefreshSubcode::NormalRequest {
                return ignored(format!(
                    "ROUTE-REFRESH subtype {:?} ignored: enhanced route refresh is not negotiated (RFC 7313 §5)",
                    refresh.operation_type()
                ));
            }
            match refresh.address_type() {
                AddressType::Ipv4Unicast => {
                    Inbound::Message(Message::RouteRefresh(Family::Ipv4Unicast))
                }
                AddressType::Ipv6Unicast => {
                    Inbound::Message(Message::RouteRefresh(Family::Ipv6Unicast))
                }
                other => ignored(format!(
                    "ROUTE-REFRESH for {other:?} ignored: not an advertised family (RFC 2918 §4)"
                )),
            }
        }
        Err(error) => ignored(format!(
            "ROUTE-REFRESH ignored: {error} (RFC 2918 §4, RFC 7313 §5)"
        )),
    }
}

/// Encodes one message. OPEN, UPDATE, KEEPALIVE and ROUTE-REFRESH go through netgauze;
/// NOTIFICATION is written here: netgauze's NOTIFICATION type only holds the codes and subcodes
/// it knows, and ours is raw code, subcode and data.
pub fn encode(message: &Message, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
    let max = ctx.max_message_len.min(usize::from(u16::MAX));
    let netgauze_message = match message {
        Message::Notification(notification) => {
            let len = HEADER_LEN + 2 + notification.data.len();
            if len > max {
                return Err(EncodeError::TooLong { len, max });
            }
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(&MARKER);
            bytes.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            bytes.push(message_type::NOTIFICATION);
            bytes.push(notification.code);
            bytes.push(notification.subcode);
            bytes.extend_from_slice(&notification.data);
            return Ok(bytes);
        }
        Message::Open(open) => BgpMessage::Open(open::to_netgauze(open)?),
        Message::Update(update) => BgpMessage::Update(update::to_netgauze(update, ctx)?),
        Message::Keepalive => BgpMessage::KeepAlive,
        Message::RouteRefresh(family) => BgpMessage::RouteRefresh(BgpRouteRefreshMessage::new(
            address_type(*family),
            RouteRefreshSubcode::NormalRequest,
        )),
    };
    let max = match message {
        Message::Open(_) | Message::Keepalive => max.min(MAX_MESSAGE_LEN),
        _ => max,
    };
    let len = netgauze_message.len();
    if len > max {
        return Err(EncodeError::TooLong { len, max });
    }
    let mut bytes = Vec::with_capacity(len);
    netgauze_message
        .write(&mut bytes)
        .map_err(|error| EncodeError::Netgauze(error.to_string()))?;
    Ok(bytes)
}

fn address_type(family: Family) -> AddressType {
    match family {
        Family::Ipv4Unicast => AddressType::Ipv4Unicast,
        Family::Ipv6Unicast => AddressType::Ipv6Unicast,
    }
}

fn family_of(address_type: AddressType) -> Option<Family> {
    match address_type {
        AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
        AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

/// A parsing context for netgauze that fails on every error, so that this module sees each.
fn strict_context(four_octet_asn: bool) -> BgpParsingContext {
    let mut context = BgpParsingContext::asn2_default();
    context.set_asn4(four_octet_asn);
    context
}
