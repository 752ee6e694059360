//! The BFD Control packet (RFC 5880 §4.1): encoding, decoding, and the reception checks of
//! §6.8.6 that concern the packet alone. The checks that need a session (does Your
//! Discriminator name one of ours?) belong to the caller.
//!
//! No authentication section is supported: a packet with the A bit set is rejected, which is
//! what §6.8.6 asks of a session that does not use authentication.

use std::time::Duration;

/// UDP destination port of single-hop BFD Control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// Length of the mandatory section, the whole packet when there is no authentication.
pub const MANDATORY_LEN: usize = 24;
/// The only protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const FLAG_AUTHENTICATION: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;
/// The shortest authentication section (RFC 5880 §4.1: Auth Type and Auth Len).
const MIN_AUTH_LEN: usize = 2;

/// Session state (RFC 5880 §4.1 "Sta"), in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state in the two low bits of `code` (the field is two bits wide, so every value is one).
    pub fn from_code(code: u8) -> State {
        match code & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1 "Diag"): why the sender's session last changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    NoDiagnostic,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9-31: reserved; kept rather than refused because the code is informational only.
    Reserved(u8),
}

impl Diag {
    pub fn code(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(code) => code & 0x1f,
        }
    }

    /// The diagnostic in the five low bits of `code`.
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Reserved(other),
        }
    }
}

/// A BFD Control packet without authentication section. Intervals are in microseconds, as on
/// the wire. The Authentication and Multipoint bits are not fields: both are always sent clear
/// and a packet with either set is refused by [`ControlPacket::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub is_final: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received packet was discarded (RFC 5880 §6.8.6, in its order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes is shorter than a BFD Control packet (24)")]
    Truncated(usize),
    #[error("unsupported BFD version {0} (only 1)")]
    Version(u8),
    #[error("Length field {field} is below the minimum {minimum}")]
    LengthTooSmall { field: u8, minimum: usize },
    #[error("Length field {field} exceeds the {received} bytes received")]
    LengthBeyondPayload { field: u8, received: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("the Multipoint bit is set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {0:?} (allowed only in Down and AdminDown)")]
    ZeroYourDiscriminator(State),
    #[error("the packet is authenticated but this implementation uses no authentication")]
    Authenticated,
}

impl ControlPacket {
    pub fn encode(&self) -> [u8; MANDATORY_LEN] {
        let mut out = [0u8; MANDATORY_LEN];
        out[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.code() << 6;
        if self.poll {
            flags |= FLAG_POLL;
        }
        if self.is_final {
            flags |= FLAG_FINAL;
        }
        if self.control_plane_independent {
            flags |= FLAG_CONTROL_PLANE_INDEPENDENT;
        }
        if self.demand {
            flags |= FLAG_DEMAND;
        }
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = MANDATORY_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        out
    }

    /// Decodes `payload` (the whole UDP payload) and applies the packet-only checks of §6.8.6.
    pub fn decode(payload: &[u8]) -> Result<ControlPacket, DecodeError> {
        let Some(header) = payload.first_chunk::<MANDATORY_LEN>() else {
            return Err(DecodeError::Truncated(payload.len()));
        };
        let version = header[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = header[1];
        let length = header[3];
        let authenticated = flags & FLAG_AUTHENTICATION != 0;
        let minimum = if authenticated {
            MANDATORY_LEN + MIN_AUTH_LEN
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < minimum {
            return Err(DecodeError::LengthTooSmall {
                field: length,
                minimum,
            });
        }
        if usize::from(length) > payload.len() {
            return Err(DecodeError::LengthBeyondPayload {
                field: length,
                received: payload.len(),
            });
        }
        let detect_mult = header[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let my_discriminator = word(4);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let state = State::from_code(flags >> 6);
        let your_discriminator = word(8);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        if authenticated {
            return Err(DecodeError::Authenticated);
        }
        Ok(ControlPacket {
            diag: Diag::from_code(header[0]),
            state,
            poll: flags & FLAG_POLL != 0,
            is_final: flags & FLAG_FINAL != 0,
            control_plane_independent: flags & FLAG_CONTROL_PLANE_INDEPENDENT != 0,
            demand: flags & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        })
    }
}

/// An interval in whole microseconds for the wire, saturating at the 32-bit field's maximum
/// (about 71 minutes, far beyond any sensible BFD interval).
pub fn micros(interval: Duration) -> u32 {
    u32::try_from(interval.as_micros()).unwrap_or(u32::MAX)
}
