//! Packing routes into as few UPDATEs as fit in the negotiated message size.
//!
//! Sizes are computed from the RFC layouts rather than by encoding candidates: packing 10,000
//! prefixes by trial encoding would encode each UPDATE hundreds of times. The tests check every
//! packed UPDATE against the encoder, and that the next prefix would not have fitted.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Context, HEADER_LEN};
use crate::message::{Family, PathAttributes, Update};

/// Header, Withdrawn Routes Length and Total Path Attribute Length.
const UPDATE_FIXED_LEN: usize = HEADER_LEN + 2 + 2;
/// AFI, SAFI, next hop length, reserved.
const MP_REACH_FIXED_LEN: usize = 2 + 1 + 1 + 1;
/// AFI, SAFI.
const MP_UNREACH_FIXED_LEN: usize = 2 + 1;

/// Packs routes into as few UPDATEs as fit in `ctx.max_message_len`: withdrawals first (IPv4 in
/// the Withdrawn Routes field, IPv6 in MP_UNREACH_NLRI), then, per distinct attribute set in
/// order of first appearance, its IPv4 prefixes and then its IPv6 prefixes, as many per UPDATE
/// as fit. Two attribute sets never share an UPDATE, and neither do two MP_REACH_NLRI families.
/// Each returned UPDATE encodes to at most `ctx.max_message_len` bytes, unless one set's
/// attributes alone leave no room for a single prefix (then each UPDATE holds one prefix and
/// [`super::encode`] reports it too long). The order of prefixes within a group is kept.
pub fn pack(
    withdrawn: &[IpNet],
    announced: &[(PathAttributes, Vec<IpNet>)],
    ctx: &Context,
) -> Vec<Update> {
    let max = ctx.max_message_len.min(usize::from(u16::MAX));
    let mut updates = pack_withdrawals(withdrawn, max);

    let mut groups: Vec<(&PathAttributes, Vec<IpNet>)> = Vec::new();
    let mut index: HashMap<&PathAttributes, usize> = HashMap::new();
    for (attributes, prefixes) in announced {
        let at = *index.entry(attributes).or_insert_with(|| {
            groups.push((attributes, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.extend(prefixes.iter().copied());
    }

    for (attributes, prefixes) in groups {
        for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            let of_family: Vec<IpNet> = prefixes
                .iter()
                .copied()
                .filter(|prefix| Family::of(prefix) == family)
                .collect();
            if of_family.is_empty() {
                continue;
            }
            let shape = announce_shape(attributes, family, ctx);
            for chunk in fill(&of_family, max, |bytes| shape.message_len(bytes)) {
                updates.push(Update {
                    withdrawn: Vec::new(),
                    announced: chunk,
                    attributes: Some(attributes.clone()),
                    end_of_rib: None,
                });
            }
        }
    }
    updates
}

/// IPv4 withdrawals fill the Withdrawn Routes field; IPv6 ones continue in the same UPDATE's
/// MP_UNREACH_NLRI.
fn pack_withdrawals(withdrawn: &[IpNet], max: usize) -> Vec<Update> {
    let v4: Vec<IpNet> = withdrawn
        .iter()
        .copied()
        .filter(|prefix| prefix.addr().is_ipv4())
        .collect();
    let v6: Vec<IpNet> = withdrawn
        .iter()
        .copied()
        .filter(|prefix| prefix.addr().is_ipv6())
        .collect();
    let message_len = |v4_bytes: usize, v6: Option<usize>| {
        UPDATE_FIXED_LEN
            + v4_bytes
            + v6.map_or(0, |bytes| attribute_len(MP_UNREACH_FIXED_LEN + bytes))
    };

    let mut updates = Vec::new();
    let mut current: Vec<IpNet> = Vec::new();
    let (mut v4_bytes, mut v6_bytes) = (0, None::<usize>);
    for prefix in v4.iter().chain(v6.iter()) {
        let size = prefix_wire_len(prefix);
        let (next_v4, next_v6) = if prefix.addr().is_ipv4() {
            (v4_bytes + size, v6_bytes)
        } else {
            (v4_bytes, Some(v6_bytes.unwrap_or(0) + size))
        };
        if !current.is_empty() && message_len(next_v4, next_v6) > max {
            updates.push(withdrawal(std::mem::take(&mut current)));
            (v4_bytes, v6_bytes) = (0, None);
            if prefix.addr().is_ipv4() {
                v4_bytes = size;
            } else {
                v6_bytes = Some(size);
            }
        } else {
            (v4_bytes, v6_bytes) = (next_v4, next_v6);
        }
        current.push(*prefix);
    }
    if !current.is_empty() {
        updates.push(withdrawal(current));
    }
    updates
}

fn withdrawal(withdrawn: Vec<IpNet>) -> Update {
    Update {
        withdrawn,
        ..Update::default()
    }
}

/// Splits `prefixes` in order into the fewest runs whose `message_len(prefix bytes)` fits.
fn fill(prefixes: &[IpNet], max: usize, message_len: impl Fn(usize) -> usize) -> Vec<Vec<IpNet>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for prefix in prefixes {
        let size = prefix_wire_len(prefix);
        if !current.is_empty() && message_len(bytes + size) > max {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(*prefix);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// How an announcement UPDATE of one attribute set and family grows with its prefixes.
struct AnnounceShape {
    /// Everything but the prefixes and, when they travel in MP_REACH_NLRI, that attribute.
    fixed: usize,
    /// Next-hop length when the prefixes travel in MP_REACH_NLRI.
    mp_next_hop_len: Option<usize>,
}

impl AnnounceShape {
    fn message_len(&self, prefix_bytes: usize) -> usize {
        match self.mp_next_hop_len {
            None => self.fixed + prefix_bytes,
            Some(next_hop) => {
                self.fixed + attribute_len(MP_REACH_FIXED_LEN + next_hop + prefix_bytes)
            }
        }
    }
}

/// Mirrors `update::to_netgauze` and `push_path_attributes`.
fn announce_shape(attributes: &PathAttributes, family: Family, ctx: &Context) -> AnnounceShape {
    let classic = family == Family::Ipv4Unicast && matches!(attributes.next_hop, IpAddr::V4(_));
    let mut fixed = UPDATE_FIXED_LEN;
    // ORIGIN
    fixed += attribute_len(1);
    // AS_PATH: AS_SEQUENCE segments of at most 255 ASNs, 2 or 4 octets each.
    let asn_width = if ctx.four_octet_asn { 4 } else { 2 };
    fixed += attribute_len(as_path_value_len(&attributes.as_path, asn_width));
    if classic {
        // NEXT_HOP
        fixed += attribute_len(4);
    }
    if attributes.local_pref.is_some() {
        fixed += attribute_len(4);
    }
    if !attributes.communities.is_empty() {
        fixed += attribute_len(4 * attributes.communities.len());
    }
    if !ctx.four_octet_asn && attributes.as_path.iter().any(|asn| *asn > 0xffff) {
        // AS4_PATH
        fixed += attribute_len(as_path_value_len(&attributes.as_path, 4));
    }
    if !attributes.large_communities.is_empty() {
        fixed += attribute_len(12 * attributes.large_communities.len());
    }
    let mp_next_hop_len = (!classic).then(|| {
        if attributes.link_local_next_hop.is_some() {
            32
        } else {
            16
        }
    });
    AnnounceShape {
        fixed,
        mp_next_hop_len,
    }
}

fn as_path_value_len(as_path: &[u32], asn_width: usize) -> usize {
    as_path
        .chunks(255)
        .map(|chunk| 2 + asn_width * chunk.len())
        .sum()
}

/// Flags, type, a one- or two-octet length (RFC 4271 §4.3), and the value.
fn attribute_len(value_len: usize) -> usize {
    let length_octets = if value_len > usize::from(u8::MAX) {
        2
    } else {
        1
    };
    2 + length_octets + value_len
}

/// Length octet plus the prefix's significant octets (RFC 4271 §4.3).
fn prefix_wire_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}
