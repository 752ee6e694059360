//! UPDATE (RFC 4271 §4.3, RFC 4760 for MP_REACH_NLRI/MP_UNREACH_NLRI) and its RFC 7606 error
//! handling.
//!
//! Encoding builds netgauze's UPDATE. Decoding walks the framing here (lengths, attribute
//! headers, duplicates) so that every error in the message is seen and ranked, then hands each
//! attribute to netgauze on its own, so that an error inside one attribute is attributed to
//! that attribute and nothing else. The MP_REACH_NLRI/MP_UNREACH_NLRI of the two unicast
//! families are read here with netgauze's prefix parsers: its MP_REACH_NLRI parser does not
//! check the next-hop length against the family (RFC 7606 §7.11) and rejects a multicast
//! prefix, which RFC 4271 §6.3 says to ignore, the same way as one it cannot parse.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::community::{Community, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, NextHop, Origin as NgOrigin,
    PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::{ParseFrom, ParseFromWithOneInput};

use super::{Context, EncodeError, Inbound, strict_context, subcode};
use crate::message::{
    AS_TRANS, Family, Message, Notification, Origin, PathAttributes, Update, code,
};

/// Attribute type codes (IANA "BGP Path Attributes").
pub(super) mod attribute {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;
const PARTIAL: u8 = 0x20;
const EXTENDED_LENGTH: u8 = 0x10;

const AFI_IPV4: u16 = 1;
const AFI_IPV6: u16 = 2;
const SAFI_UNICAST: u8 = 1;

/// An AS_PATH segment holds at most 255 ASNs (its count is one octet).
const MAX_SEGMENT_ASNS: usize = 255;

// ---------------------------------------------------------------------------------------------
// Encoding

pub(super) fn to_netgauze(update: &Update, ctx: &Context) -> Result<BgpUpdateMessage, EncodeError> {
    if let Some(family) = update.end_of_rib {
        if !update.withdrawn.is_empty() || !update.announced.is_empty() {
            return Err(EncodeError::EndOfRibWithPrefixes);
        }
        // RFC 4724 §2: IPv4 unicast's marker is an empty UPDATE; any other family's is an
        // UPDATE holding only an empty MP_UNREACH_NLRI.
        let attributes = match family {
            Family::Ipv4Unicast => Vec::new(),
            Family::Ipv6Unicast => vec![mp_attribute(PathAttributeValue::MpUnreach(
                MpUnreach::Ipv6Unicast {
                    nlri: Vec::new().into(),
                },
            ))?],
        };
        return Ok(BgpUpdateMessage::new(Vec::new(), attributes, Vec::new()));
    }

    let (withdrawn_v4, withdrawn_v6) = split_families(&update.withdrawn)?;
    let mut attributes = Vec::new();
    let mut nlri = Vec::new();
    let announced_attributes = if update.announced.is_empty() {
        None
    } else {
        Some(
            update
                .attributes
                .as_ref()
                .ok_or(EncodeError::MissingAttributes)?,
        )
    };

    // RFC 7606 §5.1: MP_REACH_NLRI and MP_UNREACH_NLRI first, so that a receiver that finds a
    // later attribute malformed has already read every prefix it must withdraw. The others
    // follow in ascending type order (RFC 4271 §5).
    let mut classic_next_hop = None;
    if let Some(attrs) = announced_attributes {
        let (v4, v6) = split_families(&update.announced)?;
        let v4_over_ipv6 = matches!(attrs.next_hop, IpAddr::V6(_));
        if v4_over_ipv6 && !v4.is_empty() && !v6.is_empty() {
            return Err(EncodeError::TwoMpReach);
        }
        if !v6.is_empty() {
            attributes.push(mp_attribute(PathAttributeValue::MpReach(
                MpReach::Ipv6Unicast {
                    next_hop_global: ipv6_next_hop(attrs.next_hop),
                    next_hop_local: attrs.link_local_next_hop,
                    nlri: v6.into(),
                },
            ))?);
        }
        match attrs.next_hop {
            // RFC 8950: IPv4 prefixes over an IPv6 next hop travel in MP_REACH_NLRI.
            IpAddr::V6(_) if !v4.is_empty() => {
                attributes.push(mp_attribute(PathAttributeValue::MpReach(
                    MpReach::Ipv4Unicast {
                        next_hop: attrs.next_hop,
                        next_hop_local: attrs.link_local_next_hop,
                        nlri: v4.into(),
                    },
                ))?);
            }
            IpAddr::V4(address) if !v4.is_empty() => {
                classic_next_hop = Some(address);
                nlri = v4;
            }
            _ => {}
        }
    }
    if !withdrawn_v6.is_empty() {
        attributes.push(mp_attribute(PathAttributeValue::MpUnreach(
            MpUnreach::Ipv6Unicast {
                nlri: withdrawn_v6.into(),
            },
        ))?);
    }
    if let Some(attrs) = announced_attributes {
        push_path_attributes(&mut attributes, attrs, classic_next_hop, ctx)?;
    }
    Ok(BgpUpdateMessage::new(withdrawn_v4, attributes, nlri))
}

/// The next hop of IPv6 prefixes: an IPv4 next hop is sent IPv4-mapped (::ffff:a.b.c.d), as
/// FRR and GoBGP do for IPv6 routes over an IPv4 session; decode maps it back.
pub(super) fn ipv6_next_hop(next_hop: IpAddr) -> Ipv6Addr {
    match next_hop {
        IpAddr::V6(address) => address,
        IpAddr::V4(address) => address.to_ipv6_mapped(),
    }
}

fn push_path_attributes(
    attributes: &mut Vec<PathAttribute>,
    attrs: &PathAttributes,
    classic_next_hop: Option<Ipv4Addr>,
    ctx: &Context,
) -> Result<(), EncodeError> {
    // MetalLB's native speaker sends ORIGIN IGP (internal/bgp/native/messages.go,
    // encodePathAttrs); Origin::default() is IGP, so a caller that does not choose sends the same.
    let origin = match attrs.origin {
        Origin::Igp => NgOrigin::IGP,
        Origin::Egp => NgOrigin::EGP,
        Origin::Incomplete => NgOrigin::Incomplete,
    };
    attributes.push(well_known(PathAttributeValue::Origin(origin))?);

    // With a 2-octet peer, ASNs above 65535 become AS_TRANS in AS_PATH and the real path goes
    // in AS4_PATH (RFC 6793 §4.2.2).
    let needs_as4_path = !ctx.four_octet_asn && attrs.as_path.iter().any(|asn| *asn > 0xffff);
    let as_path = if ctx.four_octet_asn {
        AsPath::As4PathSegments(as4_segments(&attrs.as_path).into())
    } else {
        let segments: Vec<_> = attrs
            .as_path
            .chunks(MAX_SEGMENT_ASNS)
            .map(|chunk| {
                let short: Vec<u16> = chunk
                    .iter()
                    .map(|asn| u16::try_from(*asn).unwrap_or(AS_TRANS))
                    .collect();
                As2PathSegment::new(AsPathSegmentType::AsSequence, short)
            })
            .collect();
        AsPath::As2PathSegments(segments.into())
    };
    attributes.push(well_known(PathAttributeValue::AsPath(as_path))?);

    if let Some(next_hop) = classic_next_hop {
        attributes.push(well_known(PathAttributeValue::NextHop(NextHop::new(
            next_hop,
        )))?);
    }
    if let Some(local_pref) = attrs.local_pref {
        attributes.push(well_known(PathAttributeValue::LocalPreference(
            LocalPreference::new(local_pref),
        ))?);
    }
    if !attrs.communities.is_empty() {
        let communities: Vec<_> = attrs
            .communities
            .iter()
            .map(|c| Community::new(*c))
            .collect();
        attributes.push(optional_transitive(PathAttributeValue::Communities(
            Communities::new(communities),
        ))?);
    }
    if needs_as4_path {
        attributes.push(optional_transitive(PathAttributeValue::As4Path(
            As4Path::new(as4_segments(&attrs.as_path)),
        ))?);
    }
    if !attrs.large_communities.is_empty() {
        let large: Vec<_> = attrs
            .large_communities
            .iter()
            .map(|[global, local1, local2]| LargeCommunity::new(*global, *local1, *local2))
            .collect();
        attributes.push(optional_transitive(PathAttributeValue::LargeCommunities(
            LargeCommunities::new(large),
        ))?);
    }
    Ok(())
}

fn as4_segments(as_path: &[u32]) -> Vec<As4PathSegment> {
    as_path
        .chunks(MAX_SEGMENT_ASNS)
        .map(|chunk| As4PathSegment::new(AsPathSegmentType::AsSequence, chunk.to_vec()))
        .collect()
}

fn split_families(
    prefixes: &[IpNet],
) -> Result<(Vec<Ipv4UnicastAddress>, Vec<Ipv6UnicastAddress>), EncodeError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for prefix in prefixes {
        match prefix.trunc() {
            IpNet::V4(net) => v4.push(Ipv4UnicastAddress::new(
                None,
                Ipv4Unicast::from_net(net).map_err(|_| EncodeError::NotUnicast(*prefix))?,
            )),
            IpNet::V6(net) => v6.push(Ipv6UnicastAddress::new(
                None,
                Ipv6Unicast::from_net(net).map_err(|_| EncodeError::NotUnicast(*prefix))?,
            )),
        }
    }
    Ok((v4, v6))
}

/// ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF: well-known transitive, flags 0x40.
fn well_known(value: PathAttributeValue) -> Result<PathAttribute, EncodeError> {
    attribute_with_flags(false, true, value)
}

/// MP_REACH_NLRI, MP_UNREACH_NLRI: optional non-transitive, flags 0x80 (RFC 4760 §3, §4).
fn mp_attribute(value: PathAttributeValue) -> Result<PathAttribute, EncodeError> {
    attribute_with_flags(true, false, value)
}

/// COMMUNITIES (RFC 1997), AS4_PATH (RFC 6793), LARGE_COMMUNITY (RFC 8092): optional
/// transitive, flags 0xC0.
fn optional_transitive(value: PathAttributeValue) -> Result<PathAttribute, EncodeError> {
    attribute_with_flags(true, true, value)
}

/// Sets the Extended Length bit (0x10) exactly when the value is longer than 255 octets.
/// netgauze writes a two-octet length for a long value but leaves the flag to its caller.
fn attribute_with_flags(
    optional: bool,
    transitive: bool,
    value: PathAttributeValue,
) -> Result<PathAttribute, EncodeError> {
    use netgauze_parse_utils::WritablePdu;
    let short = PathAttribute::from(optional, transitive, false, false, value)
        .map_err(|(_, error)| EncodeError::Netgauze(format!("{error:?}")))?;
    // flags, type and one length octet
    let value_len = short.len().saturating_sub(3);
    if value_len <= usize::from(u8::MAX) {
        return Ok(short);
    }
    PathAttribute::from(optional, transitive, false, true, short.value().clone())
        .map_err(|(_, error)| EncodeError::Netgauze(format!("{error:?}")))
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn update_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::UPDATE_MESSAGE, subcode, data)
}

/// One attribute as framed on the wire.
struct RawAttribute<'a> {
    flags: u8,
    type_code: u8,
    /// Flags, type, length and value.
    whole: &'a [u8],
    value: &'a [u8],
}

/// What the attributes add up to, before deciding the outcome.
#[derive(Default)]
struct Decoded {
    withdraw_reasons: Vec<String>,
    origin: Option<Origin>,
    as_path: Option<Vec<u32>>,
    as4_path: Option<Vec<u32>>,
    next_hop: Option<Ipv4Addr>,
    local_pref: Option<u32>,
    communities: Vec<u32>,
    large_communities: Vec<[u32; 3]>,
    mp_reach: Option<MpReachRead>,
    mp_unreach: Option<(Family, Vec<IpNet>)>,
}

struct MpReachRead {
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
    prefixes: Vec<IpNet>,
}

pub(super) fn decode(body: &[u8], ctx: &Context) -> Result<Inbound, Notification> {
    let fields = split_fields(body)?;
    let withdrawn = read_prefixes(fields.withdrawn, Family::Ipv4Unicast)?;
    let nlri = read_prefixes(fields.nlri, Family::Ipv4Unicast)?;

    let mut decoded = Decoded::default();
    let attributes = walk_attributes(fields.attributes, &mut decoded)?;
    let mut seen = HashSet::new();
    for raw in &attributes {
        if seen.insert(raw.type_code) {
            read_attribute(raw, ctx, &mut decoded)?;
        } else if matches!(
            raw.type_code,
            attribute::MP_REACH_NLRI | attribute::MP_UNREACH_NLRI
        ) {
            return Err(update_error(subcode::MALFORMED_ATTRIBUTE_LIST, Vec::new()));
        }
        // Any other repeated attribute: later copies are discarded (RFC 7606 §3 g).
    }

    let mp_announced = decoded
        .mp_reach
        .as_ref()
        .is_some_and(|reach| !reach.prefixes.is_empty());
    if !nlri.is_empty() || mp_announced {
        if decoded.origin.is_none() && !seen.contains(&attribute::ORIGIN) {
            decoded
                .withdraw_reasons
                .push("ORIGIN missing (RFC 7606 §3 d)".to_owned());
        }
        if decoded.as_path.is_none() && !seen.contains(&attribute::AS_PATH) {
            decoded
                .withdraw_reasons
                .push("AS_PATH missing (RFC 7606 §3 d)".to_owned());
        }
        if !nlri.is_empty() && !seen.contains(&attribute::NEXT_HOP) {
            decoded.withdraw_reasons.push(
                "NEXT_HOP missing with prefixes in the NLRI field (RFC 7606 §3 d)".to_owned(),
            );
        }
    }

    let mut mp_withdrawn = Vec::new();
    let mut mp_unreach_family = None;
    if let Some((family, prefixes)) = decoded.mp_unreach.take() {
        mp_unreach_family = Some(family);
        mp_withdrawn = prefixes;
    }
    let (mp_next_hop, mp_link_local, mp_prefixes) = match decoded.mp_reach.take() {
        Some(reach) => (Some(reach.next_hop), reach.link_local, reach.prefixes),
        None => (None, None, Vec::new()),
    };
    // The NLRI field's prefixes use NEXT_HOP; MP_REACH_NLRI's use its own next hop. When both
    // are present the model keeps NEXT_HOP (ferrolb ignores received routes either way).
    let next_hop = if nlri.is_empty() {
        mp_next_hop
    } else {
        decoded.next_hop.map(IpAddr::V4)
    };
    if next_hop.is_none()
        && (!nlri.is_empty() || !mp_prefixes.is_empty())
        && decoded.withdraw_reasons.is_empty()
    {
        decoded
            .withdraw_reasons
            .push("no next hop for the announced prefixes (RFC 7606 §3 d)".to_owned());
    }

    if !decoded.withdraw_reasons.is_empty() {
        let mut all = withdrawn;
        all.extend(mp_withdrawn);
        all.extend(nlri);
        all.extend(mp_prefixes);
        return Ok(Inbound::TreatAsWithdraw {
            withdrawn: all,
            reason: decoded.withdraw_reasons.join("; "),
        });
    }

    let end_of_rib = if !withdrawn.is_empty() || !nlri.is_empty() {
        None
    } else {
        match attributes.as_slice() {
            [] => Some(Family::Ipv4Unicast),
            [only] if only.type_code == attribute::MP_UNREACH_NLRI && mp_withdrawn.is_empty() => {
                mp_unreach_family
            }
            _ => None,
        }
    };

    let mut announced = nlri;
    announced.extend(mp_prefixes);
    let attributes = match next_hop {
        Some(next_hop) if !announced.is_empty() => Some(PathAttributes {
            origin: decoded.origin.unwrap_or_default(),
            as_path: merge_as4_path(decoded.as_path.unwrap_or_default(), decoded.as4_path, ctx),
            next_hop,
            link_local_next_hop: mp_link_local,
            local_pref: decoded.local_pref,
            communities: sorted(decoded.communities),
            large_communities: sorted(decoded.large_communities),
        }),
        _ => None,
    };
    let mut all_withdrawn = withdrawn;
    all_withdrawn.extend(mp_withdrawn);
    Ok(Inbound::Message(Message::Update(Update {
        withdrawn: all_withdrawn,
        announced,
        attributes,
        end_of_rib,
    })))
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    values.dedup();
    values
}

/// RFC 6793 §4.2.3: from a 2-octet peer, AS4_PATH replaces the tail of AS_PATH it covers; an
/// AS4_PATH longer than AS_PATH is ignored. From a 4-octet peer AS4_PATH is ignored (§4.1).
fn merge_as4_path(as_path: Vec<u32>, as4_path: Option<Vec<u32>>, ctx: &Context) -> Vec<u32> {
    match as4_path {
        Some(as4) if !ctx.four_octet_asn && as4.len() <= as_path.len() => {
            let keep = as_path.len() - as4.len();
            let mut merged = as_path[..keep].to_vec();
            merged.extend(as4);
            merged
        }
        _ => as_path,
    }
}

/// The three variable fields of an UPDATE body.
struct Fields<'a> {
    withdrawn: &'a [u8],
    attributes: &'a [u8],
    nlri: &'a [u8],
}

/// Splits an UPDATE body into Withdrawn Routes, Path Attributes and NLRI (RFC 4271 §6.3:
/// lengths beyond the message are a Malformed Attribute List).
fn split_fields(body: &[u8]) -> Result<Fields<'_>, Notification> {
    let malformed = || update_error(subcode::MALFORMED_ATTRIBUTE_LIST, Vec::new());
    let [w_high, w_low, rest @ ..] = body else {
        return Err(malformed());
    };
    let withdrawn_len = usize::from(u16::from_be_bytes([*w_high, *w_low]));
    let (withdrawn, rest) = rest.split_at_checked(withdrawn_len).ok_or_else(malformed)?;
    let [a_high, a_low, rest @ ..] = rest else {
        return Err(malformed());
    };
    let attributes_len = usize::from(u16::from_be_bytes([*a_high, *a_low]));
    let (attributes, nlri) = rest
        .split_at_checked(attributes_len)
        .ok_or_else(malformed)?;
    Ok(Fields {
        withdrawn,
        attributes,
        nlri,
    })
}

/// Reads a list of prefixes of one family with netgauze's prefix parser. Anything it cannot
/// parse is an Invalid Network Field (RFC 4271 §6.3; RFC 7606 §5.3 keeps it a session reset).
fn read_prefixes(mut field: &[u8], family: Family) -> Result<Vec<IpNet>, Notification> {
    let invalid = || update_error(subcode::INVALID_NETWORK_FIELD, Vec::new());
    let mut prefixes = Vec::new();
    while !field.is_empty() {
        let mut reader = SliceReader::new(field);
        let prefix = match family {
            Family::Ipv4Unicast => <Ipv4Net as ParseFrom>::parse(&mut reader)
                .map(|net| IpNet::V4(net.trunc()))
                .map_err(|_| invalid())?,
            Family::Ipv6Unicast => <Ipv6Net as ParseFrom>::parse(&mut reader)
                .map(|net| IpNet::V6(net.trunc()))
                .map_err(|_| invalid())?,
        };
        // netgauze reads at most the family's width whatever the length octet claims; the
        // length check above rejects longer ones, so the consumed size is the prefix's.
        let consumed = reader.offset();
        if consumed == 0 || consumed > field.len() {
            return Err(invalid());
        }
        field = &field[consumed..];
        prefixes.push(prefix);
    }
    Ok(prefixes)
}

/// Frames the path attributes. An attribute that runs past Total Attribute Length ends the
/// walk: RFC 7606 §4 makes it treat-as-withdraw, unless it is MP_REACH/MP_UNREACH, whose
/// prefixes then cannot be read (§5.3: session reset).
fn walk_attributes<'a>(
    mut field: &'a [u8],
    decoded: &mut Decoded,
) -> Result<Vec<RawAttribute<'a>>, Notification> {
    let mut attributes = Vec::new();
    while !field.is_empty() {
        match frame_attribute(field) {
            Ok(raw) => {
                field = &field[raw.whole.len()..];
                attributes.push(raw);
            }
            Err(Some(attribute::MP_REACH_NLRI | attribute::MP_UNREACH_NLRI)) => {
                return Err(update_error(subcode::MALFORMED_ATTRIBUTE_LIST, Vec::new()));
            }
            Err(_) => {
                decoded.withdraw_reasons.push(
                    "a path attribute runs past the Total Attribute Length (RFC 7606 §4)"
                        .to_owned(),
                );
                break;
            }
        }
    }
    Ok(attributes)
}

/// The first attribute of `field`, or the type code (when there is one) of the attribute
/// that does not fit.
fn frame_attribute(field: &[u8]) -> Result<RawAttribute<'_>, Option<u8>> {
    let [flags, type_code, rest @ ..] = field else {
        return Err(None);
    };
    let (length, header_len) = if flags & EXTENDED_LENGTH != 0 {
        let [high, low, ..] = rest else {
            return Err(Some(*type_code));
        };
        (usize::from(u16::from_be_bytes([*high, *low])), 4)
    } else {
        let [length, ..] = rest else {
            return Err(Some(*type_code));
        };
        (usize::from(*length), 3)
    };
    let whole = field.get(..header_len + length).ok_or(Some(*type_code))?;
    Ok(RawAttribute {
        flags: *flags,
        type_code: *type_code,
        whole,
        value: &whole[header_len..],
    })
}

/// How a malformed attribute of a given type is handled (RFC 7606 §7).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    Withdraw,
    Discard,
}

/// The attributes this codec checks: (name, optional, transitive, outcome when malformed).
fn known_attribute(type_code: u8) -> Option<(&'static str, bool, bool, OnError)> {
    use OnError::{Discard, Withdraw};
    Some(match type_code {
        attribute::ORIGIN => ("ORIGIN", false, true, Withdraw),
        attribute::AS_PATH => ("AS_PATH", false, true, Withdraw),
        attribute::NEXT_HOP => ("NEXT_HOP", false, true, Withdraw),
        attribute::MULTI_EXIT_DISC => ("MULTI_EXIT_DISC", true, false, Withdraw),
        attribute::LOCAL_PREF => ("LOCAL_PREF", false, true, Withdraw),
        attribute::ATOMIC_AGGREGATE => ("ATOMIC_AGGREGATE", false, true, Discard),
        attribute::AGGREGATOR => ("AGGREGATOR", true, true, Discard),
        attribute::COMMUNITIES => ("COMMUNITIES", true, true, Withdraw),
        attribute::ORIGINATOR_ID => ("ORIGINATOR_ID", true, false, Withdraw),
        attribute::CLUSTER_LIST => ("CLUSTER_LIST", true, false, Withdraw),
        // Errors inside these two are session resets, decided in read_mp_*.
        attribute::MP_REACH_NLRI => ("MP_REACH_NLRI", true, false, Withdraw),
        attribute::MP_UNREACH_NLRI => ("MP_UNREACH_NLRI", true, false, Withdraw),
        attribute::EXTENDED_COMMUNITIES => ("EXTENDED COMMUNITIES", true, true, Withdraw),
        attribute::AS4_PATH => ("AS4_PATH", true, true, Discard),
        attribute::AS4_AGGREGATOR => ("AS4_AGGREGATOR", true, true, Discard),
        attribute::LARGE_COMMUNITY => ("LARGE_COMMUNITY", true, true, Withdraw),
        _ => return None,
    })
}

fn read_attribute(
    raw: &RawAttribute<'_>,
    ctx: &Context,
    decoded: &mut Decoded,
) -> Result<(), Notification> {
    let optional = raw.flags & OPTIONAL != 0;
    let Some((name, want_optional, want_transitive, on_error)) = known_attribute(raw.type_code)
    else {
        if !optional {
            return Err(update_error(
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                raw.whole.to_vec(),
            ));
        }
        // An optional attribute we do not know: nothing to check, and ferrolb passes no
        // routes on, so transitive or not it is dropped.
        return Ok(());
    };
    let transitive = raw.flags & TRANSITIVE != 0;
    let partial = raw.flags & PARTIAL != 0;
    let flags_match = optional == want_optional
        && transitive == want_transitive
        && (!partial || (want_optional && want_transitive));
    let is_mp = matches!(
        raw.type_code,
        attribute::MP_REACH_NLRI | attribute::MP_UNREACH_NLRI
    );
    if !flags_match {
        decoded.withdraw_reasons.push(format!(
            "{name} has Attribute Flags {:#04x} (RFC 7606 §3 c)",
            raw.flags
        ));
        // The prefixes of an MP attribute are still needed to know what to withdraw.
        if !is_mp {
            return Ok(());
        }
    }
    match raw.type_code {
        attribute::MP_REACH_NLRI => {
            decoded.mp_reach = read_mp_reach(raw.value).map_err(|()| {
                update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, raw.whole.to_vec())
            })?;
            return Ok(());
        }
        attribute::MP_UNREACH_NLRI => {
            decoded.mp_unreach = read_mp_unreach(raw.value).map_err(|()| {
                update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, raw.whole.to_vec())
            })?;
            return Ok(());
        }
        // netgauze reads AS4_AGGREGATOR as an unknown attribute; its only error outcome is
        // discard (RFC 6793 §6), and ferrolb does not use it.
        attribute::AS4_AGGREGATOR => return Ok(()),
        _ => {}
    }
    let malformed = |decoded: &mut Decoded, why: String| {
        if on_error == OnError::Withdraw {
            decoded
                .withdraw_reasons
                .push(format!("{name} malformed: {why}"));
        }
    };
    let rule = match raw.type_code {
        attribute::COMMUNITIES => Some(("RFC 7606 §7.8", 4)),
        attribute::LARGE_COMMUNITY => Some(("RFC 8092 §6", 12)),
        _ => None,
    };
    if let Some((source, unit)) = rule
        && (raw.value.is_empty() || !raw.value.len().is_multiple_of(unit))
    {
        malformed(
            decoded,
            format!(
                "length {} is not a non-zero multiple of {unit} ({source})",
                raw.value.len()
            ),
        );
        return Ok(());
    }

    // The flags were checked above; netgauze gets the expected ones so that it reads the value.
    let mut bytes = raw.whole.to_vec();
    let mut expected_flags = raw.flags & EXTENDED_LENGTH;
    if want_optional {
        expected_flags |= OPTIONAL;
    }
    if want_transitive {
        expected_flags |= TRANSITIVE;
    }
    bytes[0] = expected_flags;
    let mut context = strict_context(ctx.four_octet_asn);
    let parsed = match PathAttribute::parse(&mut SliceReader::new(&bytes), &mut context) {
        Ok(parsed) => parsed,
        Err(error) => {
            malformed(decoded, error.to_string());
            return Ok(());
        }
    };
    match parsed.value() {
        PathAttributeValue::Origin(origin) => {
            decoded.origin = Some(match origin {
                NgOrigin::IGP => Origin::Igp,
                NgOrigin::EGP => Origin::Egp,
                NgOrigin::Incomplete => Origin::Incomplete,
            });
        }
        PathAttributeValue::AsPath(as_path) => {
            decoded.as_path = Some(Vec::<u32>::from(as_path.clone()));
        }
        PathAttributeValue::As4Path(as4_path) => {
            decoded.as4_path = Some(
                as4_path
                    .segments()
                    .iter()
                    .flat_map(|segment| segment.as_numbers().iter().copied())
                    .collect(),
            );
        }
        PathAttributeValue::NextHop(next_hop) => decoded.next_hop = Some(next_hop.next_hop()),
        PathAttributeValue::LocalPreference(local_pref) => {
            decoded.local_pref = Some(local_pref.metric());
        }
        PathAttributeValue::Communities(communities) => {
            decoded.communities = communities
                .communities()
                .iter()
                .map(|c| c.value())
                .collect();
        }
        PathAttributeValue::LargeCommunities(large) => {
            decoded.large_communities = large
                .communities()
                .iter()
                .map(|c| [c.global_admin(), c.local_data1(), c.local_data2()])
                .collect();
        }
        // Checked, not used by ferrolb: MED, ATOMIC_AGGREGATE, AGGREGATOR, ORIGINATOR_ID,
        // CLUSTER_LIST, EXTENDED COMMUNITIES.
        _ => {}
    }
    Ok(())
}

fn read_afi_safi(value: &[u8]) -> Result<(Option<Family>, &[u8]), ()> {
    let [afi_high, afi_low, safi, rest @ ..] = value else {
        return Err(());
    };
    let family = match (u16::from_be_bytes([*afi_high, *afi_low]), *safi) {
        (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
        (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
        _ => None,
    };
    Ok((family, rest))
}

/// MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next hop length and address, a reserved octet,
/// NLRI. Other families are ignored (`Ok(None)`): they are not ones ferrolb negotiates.
fn read_mp_reach(value: &[u8]) -> Result<Option<MpReachRead>, ()> {
    let (family, rest) = read_afi_safi(value)?;
    let Some(family) = family else {
        return Ok(None);
    };
    let [next_hop_len, rest @ ..] = rest else {
        return Err(());
    };
    let next_hop_len = usize::from(*next_hop_len);
    // RFC 2545 (IPv6: global, or global and link-local), RFC 4760 and RFC 8950 (IPv4).
    let allowed = match family {
        Family::Ipv4Unicast => matches!(next_hop_len, 4 | 16 | 32),
        Family::Ipv6Unicast => matches!(next_hop_len, 16 | 32),
    };
    if !allowed {
        return Err(());
    }
    let (next_hop_bytes, rest) = rest.split_at_checked(next_hop_len).ok_or(())?;
    let [_reserved, nlri @ ..] = rest else {
        return Err(());
    };
    let (next_hop, link_local) = match next_hop_bytes {
        [a, b, c, d] => (IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)), None),
        _ => {
            let global = ipv6_at(next_hop_bytes, 0).ok_or(())?;
            let link_local = if next_hop_len == 32 {
                Some(ipv6_at(next_hop_bytes, 16).ok_or(())?)
            } else {
                None
            };
            let next_hop = match global.to_ipv4_mapped() {
                Some(mapped) if family == Family::Ipv6Unicast => IpAddr::V4(mapped),
                _ => IpAddr::V6(global),
            };
            (next_hop, link_local)
        }
    };
    let prefixes = read_prefixes(nlri, family).map_err(|_| ())?;
    Ok(Some(MpReachRead {
        next_hop,
        link_local,
        prefixes,
    }))
}

/// MP_UNREACH_NLRI (RFC 4760 §4): AFI, SAFI, withdrawn routes.
fn read_mp_unreach(value: &[u8]) -> Result<Option<(Family, Vec<IpNet>)>, ()> {
    let (family, nlri) = read_afi_safi(value)?;
    let Some(family) = family else {
        return Ok(None);
    };
    let prefixes = read_prefixes(nlri, family).map_err(|_| ())?;
    Ok(Some((family, prefixes)))
}

fn ipv6_at(bytes: &[u8], start: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(start..start + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}
