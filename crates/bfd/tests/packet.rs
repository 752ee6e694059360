//! The Control packet codec against byte strings assembled by hand from the RFC 5880 §4.1
//! layout (and one captured by tcpdump), every §6.8.6 packet check, round trips, and 10,000
//! arbitrary byte strings that must never make the decoder panic.

use ferrolb_bfd::{ControlPacket, DecodeError, Diag, State};
use proptest::prelude::*;

/// tcpdump's test suite, bfd-lag-v.out frame 1 (a micro-BFD packet, RFC 7130, whose Control
/// packet is the RFC 5880 one): "State Down, Flags: [Poll], Diagnostic: No Diagnostic (0x00),
/// Detection Timer Multiplier: 3, BFD Length: 24, My Discriminator: 0x0de60837, Your
/// Discriminator: 0x00000000, Desired min Tx Interval: 1000 ms, Required min Rx Interval:
/// 300 ms, Required min Echo Interval: 300 ms".
const CAPTURED_DOWN_POLL: [u8; 24] = [
    0x20, // Vers 1 (001), Diag 0 (00000)
    0x60, // Sta 01 Down, P 1, F 0, C 0, A 0, D 0, M 0
    0x03, // Detect Mult 3
    0x18, // Length 24
    0x0d, 0xe6, 0x08, 0x37, // My Discriminator
    0x00, 0x00, 0x00, 0x00, // Your Discriminator
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1,000,000 µs
    0x00, 0x04, 0x93, 0xe0, // Required Min RX 300,000 µs
    0x00, 0x04, 0x93, 0xe0, // Required Min Echo RX 300,000 µs
];

/// Up with the Final bit, as a reply to a Poll.
const UP_FINAL: [u8; 24] = [
    0x20, // Vers 1, Diag 0
    0xd0, // Sta 11 Up, P 0, F 1, C 0, A 0, D 0, M 0
    0x05, // Detect Mult 5
    0x18, // Length 24
    0x00, 0x00, 0x00, 0x01, // My Discriminator 1
    0x12, 0x34, 0x56, 0x78, // Your Discriminator
    0x00, 0x01, 0x86, 0xa0, // Desired Min TX 100,000 µs
    0x00, 0x00, 0xc3, 0x50, // Required Min RX 50,000 µs
    0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0: no Echo
];

/// AdminDown, diag 7, with the C and D bits.
const ADMIN_DOWN_C_D: [u8; 24] = [
    0x27, // Vers 1 (001), Diag 7 (00111)
    0x0a, // Sta 00 AdminDown, P 0, F 0, C 1, A 0, D 1, M 0
    0x01, // Detect Mult 1
    0x18, // Length 24
    0xff, 0xff, 0xff, 0xff, // My Discriminator
    0x00, 0x00, 0x00, 0x00, // Your Discriminator 0 (allowed in AdminDown)
    0xff, 0xff, 0xff, 0xff, // Desired Min TX, the largest value
    0x00, 0x00, 0x00, 0x01, // Required Min RX 1 µs
    0x00, 0x00, 0x00, 0x32, // Required Min Echo RX 50 µs
];

/// Init with diag 1 (detection time expired), the state after the peer's Down arrived.
const INIT_DIAG_1: [u8; 24] = [
    0x21, // Vers 1, Diag 1
    0x80, // Sta 10 Init, no flags
    0x03, // Detect Mult 3
    0x18, // Length 24
    0x00, 0x00, 0x10, 0x00, // My Discriminator 4096
    0x00, 0x00, 0x20, 0x00, // Your Discriminator 8192
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1 s (not Up: slow)
    0x00, 0x04, 0x93, 0xe0, // Required Min RX 300 ms
    0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
];

fn packet(diag: Diag, state: State) -> ControlPacket {
    ControlPacket {
        diag,
        state,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 1,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
}

#[test]
fn vectors_decode_to_their_fields_and_encode_back() {
    let vectors = [
        (
            CAPTURED_DOWN_POLL,
            ControlPacket {
                poll: true,
                my_discriminator: 0x0de6_0837,
                required_min_echo_rx_us: 300_000,
                ..packet(Diag::NoDiagnostic, State::Down)
            },
        ),
        (
            UP_FINAL,
            ControlPacket {
                is_final: true,
                detect_mult: 5,
                your_discriminator: 0x1234_5678,
                desired_min_tx_us: 100_000,
                required_min_rx_us: 50_000,
                ..packet(Diag::NoDiagnostic, State::Up)
            },
        ),
        (
            ADMIN_DOWN_C_D,
            ControlPacket {
                control_plane_independent: true,
                demand: true,
                detect_mult: 1,
                my_discriminator: u32::MAX,
                desired_min_tx_us: u32::MAX,
                required_min_rx_us: 1,
                required_min_echo_rx_us: 50,
                ..packet(Diag::AdministrativelyDown, State::AdminDown)
            },
        ),
        (
            INIT_DIAG_1,
            ControlPacket {
                my_discriminator: 4096,
                your_discriminator: 8192,
                ..packet(Diag::ControlDetectionTimeExpired, State::Init)
            },
        ),
    ];
    for (bytes, expected) in vectors {
        assert_eq!(ControlPacket::decode(&bytes), Ok(expected), "{bytes:02x?}");
        assert_eq!(expected.encode(), bytes, "{expected:?}");
    }
}

#[test]
fn bytes_beyond_the_length_field_are_ignored() {
    // Ethernet pads short frames; the Length field, not the datagram, bounds the packet.
    let mut padded = UP_FINAL.to_vec();
    padded.extend_from_slice(&[0xaa; 8]);
    assert_eq!(
        ControlPacket::decode(&padded),
        ControlPacket::decode(&UP_FINAL)
    );
}

fn with(mut bytes: [u8; 24], at: usize, value: u8) -> [u8; 24] {
    bytes[at] = value;
    bytes
}

#[test]
fn every_packet_check_of_section_6_8_6_discards() {
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (UP_FINAL[..23].to_vec(), DecodeError::Truncated(23)),
        (Vec::new(), DecodeError::Truncated(0)),
        // Version 0 and 2 (the first three bits).
        (with(UP_FINAL, 0, 0x00).to_vec(), DecodeError::Version(0)),
        (with(UP_FINAL, 0, 0x40).to_vec(), DecodeError::Version(2)),
        (
            with(UP_FINAL, 3, 23).to_vec(),
            DecodeError::LengthTooSmall {
                field: 23,
                minimum: 24,
            },
        ),
        (
            with(UP_FINAL, 3, 25).to_vec(),
            DecodeError::LengthBeyondPayload {
                field: 25,
                received: 24,
            },
        ),
        // A bit set: the authentication section makes 26 the minimum length.
        (
            with(UP_FINAL, 1, 0xd4).to_vec(),
            DecodeError::LengthTooSmall {
                field: 24,
                minimum: 26,
            },
        ),
        (with(UP_FINAL, 2, 0).to_vec(), DecodeError::ZeroDetectMult),
        (with(UP_FINAL, 1, 0xd1).to_vec(), DecodeError::Multipoint),
        (
            {
                let mut bytes = UP_FINAL;
                bytes[4..8].fill(0);
                bytes.to_vec()
            },
            DecodeError::ZeroMyDiscriminator,
        ),
        (
            {
                let mut bytes = UP_FINAL;
                bytes[8..12].fill(0);
                bytes.to_vec()
            },
            DecodeError::ZeroYourDiscriminator(State::Up),
        ),
        (
            {
                let mut bytes = INIT_DIAG_1;
                bytes[8..12].fill(0);
                bytes.to_vec()
            },
            DecodeError::ZeroYourDiscriminator(State::Init),
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(ControlPacket::decode(&bytes), Err(error), "{bytes:02x?}");
    }
}

#[test]
fn an_authenticated_packet_is_refused_cleanly() {
    // A bit set, Length 28: Simple Password section (Auth Type 1, Auth Len 4, Key ID, one
    // password byte) — well formed, but we use no authentication.
    let mut bytes = with(with(UP_FINAL, 1, 0xd4), 3, 28).to_vec();
    bytes.extend_from_slice(&[0x01, 0x04, 0x01, b'x']);
    assert_eq!(
        ControlPacket::decode(&bytes),
        Err(DecodeError::Authenticated)
    );
}

#[test]
fn every_diag_and_state_code_round_trips() {
    for code in 0..32u8 {
        assert_eq!(Diag::from_code(code).code(), code);
    }
    assert_eq!(Diag::from_code(9), Diag::Reserved(9));
    assert_eq!(Diag::from_code(7), Diag::AdministrativelyDown);
    for code in 0..4u8 {
        assert_eq!(State::from_code(code).code(), code);
    }
}

fn any_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, 0u8..4, any::<[bool; 4]>(), 1u8..=255),
        (1u32.., any::<u32>(), any::<[u32; 3]>()),
    )
        .prop_map(
            |((diag, state, flags, detect_mult), (my, your, intervals))| {
                let state = State::from_code(state);
                // §6.8.6: Your Discriminator may be zero only in Down and AdminDown.
                let your = if your == 0 && matches!(state, State::Up | State::Init) {
                    1
                } else {
                    your
                };
                ControlPacket {
                    diag: Diag::from_code(diag),
                    state,
                    poll: flags[0],
                    is_final: flags[1],
                    control_plane_independent: flags[2],
                    demand: flags[3],
                    detect_mult,
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx_us: intervals[0],
                    required_min_rx_us: intervals[1],
                    required_min_echo_rx_us: intervals[2],
                }
            },
        )
}

proptest! {
    #[test]
    fn valid_packets_round_trip(packet in any_packet()) {
        prop_assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
    }

    #[test]
    fn encoding_follows_the_layout(packet in any_packet()) {
        let bytes = packet.encode();
        prop_assert_eq!(bytes[0] >> 5, 1);
        prop_assert_eq!(bytes[0] & 0x1f, packet.diag.code());
        prop_assert_eq!(bytes[1] >> 6, packet.state.code());
        // A and M are never sent.
        prop_assert_eq!(bytes[1] & 0x05, 0);
        prop_assert_eq!(bytes[3], 24);
        prop_assert_eq!(&bytes[4..8], &packet.my_discriminator.to_be_bytes());
        prop_assert_eq!(&bytes[20..24], &packet.required_min_echo_rx_us.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Arbitrary bytes never panic the decoder, and whatever it accepts is exactly what the
    /// bytes say: encoding it again gives back the mandatory section (Length normalised to 24).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(packet) = ControlPacket::decode(&bytes) {
            let mut expected = [0u8; 24];
            expected.copy_from_slice(&bytes[..24]);
            expected[3] = 24;
            prop_assert_eq!(packet.encode(), expected);
        }
    }

    /// The same, from a valid packet with a few bytes changed, which reaches the later checks
    /// far more often than random bytes do.
    #[test]
    fn mutated_packets_never_panic(
        packet in any_packet(),
        changes in proptest::collection::vec((0usize..24, any::<u8>()), 1..4),
    ) {
        let mut bytes = packet.encode();
        for (at, value) in changes {
            bytes[at] = value;
        }
        if let Ok(decoded) = ControlPacket::decode(&bytes) {
            let mut expected = bytes;
            expected[3] = 24;
            prop_assert_eq!(decoded.encode(), expected);
        }
    }
}
