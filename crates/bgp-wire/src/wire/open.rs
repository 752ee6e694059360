//! OPEN (RFC 4271 §4.2) with the capabilities ferrolb speaks (RFC 5492).
//!
//! netgauze writes the whole message and reads each capability. The fixed fields and the
//! parameter/capability framing are walked here, for two reasons: netgauze fails the whole
//! OPEN on a capability it cannot read (an AFI/SAFI pair it does not know, for one), where
//! RFC 5492 §3 says to ignore what is not understood; and it applies RFC 4271's "unicast host
//! address" rule to the BGP identifier, which RFC 6286 §2.1 replaced with "non-zero".

use std::net::Ipv4Addr;

use netgauze_bgp_pkt::capabilities::{
    BgpCapability, ExtendedNextHopEncoding, ExtendedNextHopEncodingCapability,
    FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_iana::address_family::{AddressFamily, AddressType};
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFrom;

use super::{EncodeError, address_type, family_of, subcode};
use crate::message::{AS_TRANS, Capabilities, GracefulRestart, Notification, Open, code};

const BGP_VERSION: u8 = 4;
const CAPABILITIES_PARAMETER: u8 = 2;
const FOUR_OCTET_ASN_CAPABILITY: u8 = 65;
/// RFC 4724 §3: the restart time is 12 bits.
const MAX_RESTART_TIME: u16 = 0x0fff;

fn open_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::OPEN_MESSAGE, subcode, data)
}

/// Capabilities go in one optional parameter, in ascending code order: multiprotocol (1),
/// route refresh (2), extended next hop (5), graceful restart (64), 4-octet ASN (65).
/// `capabilities.other` is left out: it records what a peer sent, and ferrolb does not
/// advertise capabilities it does not implement. Graceful restart's N bit (RFC 8538) is sent
/// clear and not read.
pub(super) fn to_netgauze(open: &Open) -> Result<BgpOpenMessage, EncodeError> {
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(EncodeError::UnacceptableHoldTime(open.hold_time));
    }
    if open.router_id.is_unspecified() {
        return Err(EncodeError::ZeroRouterId);
    }
    let caps = &open.capabilities;
    let short_asn = match u16::try_from(open.asn) {
        Ok(short) => short,
        Err(_) if caps.four_octet_asn => AS_TRANS,
        Err(_) => return Err(EncodeError::AsnNeedsFourOctetCapability(open.asn)),
    };
    let mut capabilities = Vec::new();
    for family in &caps.families {
        capabilities.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(address_type(*family)),
        ));
    }
    if caps.route_refresh {
        capabilities.push(BgpCapability::RouteRefresh);
    }
    if caps.extended_next_hop_ipv4 {
        capabilities.push(BgpCapability::ExtendedNextHopEncoding(
            ExtendedNextHopEncodingCapability::new(vec![ExtendedNextHopEncoding::new(
                AddressType::Ipv4Unicast,
                AddressFamily::IPv6,
            )]),
        ));
    }
    if let Some(restart) = &caps.graceful_restart {
        if restart.restart_time > MAX_RESTART_TIME {
            return Err(EncodeError::RestartTimeTooLarge(restart.restart_time));
        }
        let families: Vec<_> = restart
            .families
            .iter()
            .map(|(family, forwarding)| {
                GracefulRestartAddressFamily::new(*forwarding, address_type(*family))
            })
            .collect();
        capabilities.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                restart.restarting,
                false,
                restart.restart_time,
                families,
            ),
        ));
    }
    if caps.four_octet_asn {
        capabilities.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
            open.asn,
        )));
    }
    let params = if capabilities.is_empty() {
        Vec::new()
    } else {
        vec![BgpOpenMessageParameter::new_capabilities(capabilities)]
    };
    Ok(BgpOpenMessage::new(
        short_asn,
        open.hold_time,
        open.router_id,
        params,
    ))
}

/// Reads an OPEN body (after the header). Checks in RFC 4271 §6.2's order.
pub(super) fn decode(body: &[u8]) -> Result<Open, Notification> {
    let unspecific = || open_error(subcode::UNSPECIFIC, Vec::new());
    let [
        version,
        as_high,
        as_low,
        hold_high,
        hold_low,
        id0,
        id1,
        id2,
        id3,
        params_len,
        rest @ ..,
    ] = body
    else {
        return Err(unspecific());
    };
    if *version != BGP_VERSION {
        return Err(open_error(
            subcode::UNSUPPORTED_VERSION_NUMBER,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }
    let short_asn = u16::from_be_bytes([*as_high, *as_low]);
    let hold_time = u16::from_be_bytes([*hold_high, *hold_low]);
    if hold_time == 1 || hold_time == 2 {
        return Err(open_error(subcode::UNACCEPTABLE_HOLD_TIME, Vec::new()));
    }
    let router_id = Ipv4Addr::new(*id0, *id1, *id2, *id3);
    if router_id.is_unspecified() {
        return Err(open_error(subcode::BAD_BGP_IDENTIFIER, Vec::new()));
    }
    let Some(mut params) = rest.get(..usize::from(*params_len)) else {
        return Err(unspecific());
    };
    if rest.len() != usize::from(*params_len) {
        return Err(unspecific());
    }

    let mut capabilities = Capabilities::default();
    let mut four_octet_asn = None;
    while let [param_type, param_len, after @ ..] = params {
        let Some(value) = after.get(..usize::from(*param_len)) else {
            return Err(unspecific());
        };
        if *param_type != CAPABILITIES_PARAMETER {
            return Err(open_error(
                subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                Vec::new(),
            ));
        }
        read_capabilities(value, &mut capabilities, &mut four_octet_asn)?;
        params = &after[value.len()..];
    }
    if !params.is_empty() {
        return Err(unspecific());
    }
    capabilities.four_octet_asn = four_octet_asn.is_some();
    Ok(Open {
        asn: four_octet_asn.unwrap_or(u32::from(short_asn)),
        hold_time,
        router_id,
        capabilities,
    })
}

fn read_capabilities(
    mut list: &[u8],
    capabilities: &mut Capabilities,
    four_octet_asn: &mut Option<u32>,
) -> Result<(), Notification> {
    let unspecific = || open_error(subcode::UNSPECIFIC, Vec::new());
    while let [capability_code, capability_len, ..] = list {
        let total = 2 + usize::from(*capability_len);
        let Some(one) = list.get(..total) else {
            return Err(unspecific());
        };
        list = &list[total..];
        match BgpCapability::parse(&mut SliceReader::new(one)) {
            Ok(capability) => apply(capability, capabilities, four_octet_asn),
            // The 4-octet ASN decides how the peer's ASN and every AS_PATH are read: a broken
            // one is a malformed parameter (RFC 4271 §6.2: 2/0), not one to skip.
            Err(_) if *capability_code == FOUR_OCTET_ASN_CAPABILITY => return Err(unspecific()),
            Err(_) => capabilities.other.push(*capability_code),
        }
    }
    if !list.is_empty() {
        return Err(unspecific());
    }
    Ok(())
}

fn apply(
    capability: BgpCapability,
    capabilities: &mut Capabilities,
    four_octet_asn: &mut Option<u32>,
) {
    match &capability {
        BgpCapability::MultiProtocolExtensions(multiprotocol) => {
            match family_of(multiprotocol.address_type()) {
                Some(family) => {
                    capabilities.families.insert(family);
                }
                None => push_code(&capability, capabilities),
            }
        }
        BgpCapability::RouteRefresh => capabilities.route_refresh = true,
        BgpCapability::FourOctetAs(asn) => *four_octet_asn = Some(asn.asn4()),
        BgpCapability::GracefulRestartCapability(restart) => {
            capabilities.graceful_restart = Some(GracefulRestart {
                restarting: restart.restart(),
                restart_time: restart.time(),
                families: restart
                    .address_families()
                    .iter()
                    .filter_map(|family| {
                        family_of(family.address_type())
                            .map(|ours| (ours, family.forwarding_state()))
                    })
                    .collect(),
            });
        }
        BgpCapability::ExtendedNextHopEncoding(encodings) => {
            if encodings.encodings().iter().any(|encoding| {
                encoding.address_type() == AddressType::Ipv4Unicast
                    && encoding.next_hop_afi() == AddressFamily::IPv6
            }) {
                capabilities.extended_next_hop_ipv4 = true;
            } else {
                push_code(&capability, capabilities);
            }
        }
        _ => push_code(&capability, capabilities),
    }
}

fn push_code(capability: &BgpCapability, capabilities: &mut Capabilities) {
    let code = match capability.code() {
        Ok(known) => known.into(),
        Err(unknown) => unknown,
    };
    capabilities.other.push(code);
}
