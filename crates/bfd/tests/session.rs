//! The session state machine against RFC 5880 §6: every state transition of §6.8.6, the
//! detection time (§6.8.4), timer negotiation and slow transmission while not Up (§6.8.3),
//! jitter (§6.8.7), the Poll/Final sequence (§6.5), passive mode (§6.1), AdminDown (§6.8.16)
//! and a peer in Demand mode. Time is a base instant plus offsets; jitter is given.

use std::time::{Duration, Instant};

use ferrolb_bfd::{Action, ControlPacket, Diag, Jitter, Session, SessionConfig, State};

const OURS: u32 = 0x1111;
const THEIRS: u32 = 0x2222;

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn config(tx_ms: u64, rx_ms: u64, detect_mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: ms(tx_ms),
        required_min_rx: ms(rx_ms),
        detect_mult,
        passive: false,
    }
}

/// What the peer sends: `state`, knowing our discriminator unless it is Down / AdminDown.
fn from_peer(state: State, tx_ms: u32, rx_ms: u32, detect_mult: u8) -> ControlPacket {
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult,
        my_discriminator: THEIRS,
        your_discriminator: if matches!(state, State::Down | State::AdminDown) {
            0
        } else {
            OURS
        },
        desired_min_tx_us: tx_ms * 1000,
        required_min_rx_us: rx_ms * 1000,
        required_min_echo_rx_us: 0,
    }
}

fn sent(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(packet) => Some(*packet),
            Action::StateChanged { .. } => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<(State, State, Diag)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
            Action::Send(_) => None,
        })
        .collect()
}

struct Clock(Instant);

impl Clock {
    fn at(&self, offset_ms: u64) -> Instant {
        self.0 + ms(offset_ms)
    }
}

/// A session brought Up by the handshake at t=0 (peer: Down, then Up), with the peer's
/// `tx`/`rx`/`mult`, and the Poll Sequence that followed answered at t=0 as well.
fn up_session(
    clock: &Clock,
    ours: SessionConfig,
    peer_tx: u32,
    peer_rx: u32,
    peer_mult: u8,
) -> Session {
    let mut session = Session::new(ours, OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, peer_rx, peer_mult),
        clock.at(0),
        Jitter::NONE,
    );
    session.on_packet(
        &from_peer(State::Up, peer_tx, peer_rx, peer_mult),
        clock.at(0),
        Jitter::NONE,
    );
    assert_eq!(session.state(), State::Up);
    let fin = ControlPacket {
        is_final: true,
        ..from_peer(State::Up, peer_tx, peer_rx, peer_mult)
    };
    session.on_packet(&fin, clock.at(0), Jitter::NONE);
    assert!(!session.poll_in_progress());
    session
}

#[test]
fn a_new_session_sends_down_at_once_then_once_a_second() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 200, 3), OURS, clock.at(0));
    assert_eq!(session.state(), State::Down);
    assert_eq!(session.next_deadline(), Some(clock.at(0)));
    let packets = sent(&session.on_timer(clock.at(0), Jitter::NONE));
    assert_eq!(
        packets,
        vec![ControlPacket {
            diag: Diag::NoDiagnostic,
            state: State::Down,
            poll: false,
            is_final: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: OURS,
            your_discriminator: 0,
            // §6.8.3: not Up, so at least one second whatever is configured.
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 200_000,
            required_min_echo_rx_us: 0,
        }]
    );
    assert_eq!(session.next_deadline(), Some(clock.at(1000)));
    assert!(session.on_timer(clock.at(999), Jitter::NONE).is_empty());
    assert_eq!(
        sent(&session.on_timer(clock.at(1000), Jitter::MAX)).len(),
        1
    );
    // Full jitter takes 25% off.
    assert_eq!(session.next_deadline(), Some(clock.at(1750)));
}

#[test]
fn jitter_is_between_ten_and_twenty_five_percent_when_detect_mult_is_one() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 1), OURS, clock.at(0));
    session.on_timer(clock.at(0), Jitter::NONE);
    assert_eq!(session.next_deadline(), Some(clock.at(900)));
    session.on_timer(clock.at(900), Jitter::MAX);
    assert_eq!(session.next_deadline(), Some(clock.at(900 + 750)));
    session.on_timer(clock.at(1650), Jitter(u16::MAX / 2));
    let gap = session.next_deadline().map(|at| at - clock.at(1650));
    assert!(
        gap.is_some_and(|gap| gap > ms(750) && gap < ms(900)),
        "{gap:?}"
    );
}

#[test]
fn three_way_handshake_down_init_up() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    // Down + Down -> Init, announced at once with the peer's discriminator.
    let actions = session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(10),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Down, State::Init, Diag::NoDiagnostic)]
    );
    let packets = sent(&actions);
    assert_eq!(packets.len(), 1);
    assert_eq!(
        (packets[0].state, packets[0].your_discriminator),
        (State::Init, THEIRS)
    );
    // Init + Up -> Up.
    let actions = session.on_packet(
        &from_peer(State::Up, 1000, 1000, 3),
        clock.at(20),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Init, State::Up, Diag::NoDiagnostic)]
    );
    assert_eq!(sent(&actions)[0].state, State::Up);
    assert_eq!(session.remote_state(), State::Up);
}

#[test]
fn down_goes_up_on_init_and_init_stays_up_on_init() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    let actions = session.on_packet(
        &from_peer(State::Init, 1000, 1000, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Down, State::Up, Diag::NoDiagnostic)]
    );

    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(0),
        Jitter::NONE,
    );
    let actions = session.on_packet(
        &from_peer(State::Init, 1000, 1000, 3),
        clock.at(5),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Init, State::Up, Diag::NoDiagnostic)]
    );
}

#[test]
fn transitions_the_rfc_does_not_list_do_not_happen() {
    let clock = Clock(Instant::now());
    // Down ignores Up (the peer must see us first).
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    let actions = session.on_packet(
        &from_peer(State::Up, 1000, 1000, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert!(changes(&actions).is_empty());
    assert_eq!(session.state(), State::Down);
    // Init stays Init on Down; Up stays Up on Init and Up.
    session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(1),
        Jitter::NONE,
    );
    let actions = session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(2),
        Jitter::NONE,
    );
    assert!(changes(&actions).is_empty());
    assert_eq!(session.state(), State::Init);
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    for state in [State::Init, State::Up] {
        let actions = session.on_packet(&from_peer(state, 100, 100, 3), clock.at(10), Jitter::NONE);
        assert!(changes(&actions).is_empty(), "{state:?}");
        assert_eq!(session.state(), State::Up);
    }
}

#[test]
fn up_goes_down_when_the_neighbor_signals_down() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    let actions = session.on_packet(
        &from_peer(State::Down, 1000, 100, 3),
        clock.at(50),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Up, State::Down, Diag::NeighborSignaledSessionDown)]
    );
    let packets = sent(&actions);
    assert_eq!(
        (packets[0].state, packets[0].diag),
        (State::Down, Diag::NeighborSignaledSessionDown)
    );
    // Down again: slow transmission.
    assert_eq!(packets[0].desired_min_tx_us, 1_000_000);
    assert_eq!(session.transmit_interval(), ms(1000));
}

#[test]
fn a_neighbor_in_admin_down_takes_init_and_up_down_with_diag_3() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    let admin_down = ControlPacket {
        diag: Diag::AdministrativelyDown,
        ..from_peer(State::AdminDown, 1000, 100, 3)
    };
    let actions = session.on_packet(&admin_down, clock.at(10), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Up, State::Down, Diag::NeighborSignaledSessionDown)]
    );
    assert_eq!(session.remote_state(), State::AdminDown);
    assert_eq!(session.remote_diag(), Diag::AdministrativelyDown);
    // Already Down: nothing changes.
    assert!(changes(&session.on_packet(&admin_down, clock.at(20), Jitter::NONE)).is_empty());

    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(0),
        Jitter::NONE,
    );
    let actions = session.on_packet(&admin_down, clock.at(10), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Init, State::Down, Diag::NeighborSignaledSessionDown)]
    );
}

#[test]
fn timers_are_negotiated_as_section_6_8_2_and_6_8_4_say() {
    let clock = Clock(Instant::now());
    // We: tx 100, rx 200, mult 3. Peer: tx 300, rx 150, mult 5.
    let session = up_session(&clock, config(100, 200, 3), 300, 150, 5);
    // Transmit: max(our desired tx 100, their required rx 150).
    assert_eq!(session.transmit_interval(), ms(150));
    // Detection: their mult 5 x max(our required rx 200, their desired tx 300).
    assert_eq!(session.detection_time(), ms(1500));
    // What the peer runs on us: our mult 3 x max(our tx 100, their rx 150).
    assert_eq!(session.peer_detection_time(), ms(450));
}

#[test]
fn the_detection_time_expires_into_down_with_diag_1() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    session.on_packet(
        &from_peer(State::Up, 100, 100, 3),
        clock.at(1000),
        Jitter::NONE,
    );
    // 3 x 100 ms after the last packet, not a moment before.
    assert!(changes(&session.on_timer(clock.at(1299), Jitter::NONE)).is_empty());
    assert_eq!(session.state(), State::Up);
    let actions = session.on_timer(clock.at(1300), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Up, State::Down, Diag::ControlDetectionTimeExpired)]
    );
    // The peer is forgotten (§6.8.1): Your Discriminator goes back to zero.
    let packets = sent(&actions);
    assert_eq!(packets.len(), 1);
    assert_eq!(
        (packets[0].state, packets[0].your_discriminator),
        (State::Down, 0)
    );
    assert_eq!(session.remote_state(), State::Down);
}

#[test]
fn init_also_expires_and_down_only_forgets_the_peer() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert_eq!(session.state(), State::Init);
    // Peer tx 1 s (not Up), mult 3: 3 s.
    assert_eq!(session.detection_time(), ms(3000));
    let actions = session.on_timer(clock.at(3000), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Init, State::Down, Diag::ControlDetectionTimeExpired)]
    );

    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    let admin_down = from_peer(State::AdminDown, 1000, 1000, 3);
    session.on_packet(&admin_down, clock.at(0), Jitter::NONE);
    assert_eq!(session.remote_discriminator(), THEIRS);
    let actions = session.on_timer(clock.at(3000), Jitter::NONE);
    assert!(changes(&actions).is_empty());
    assert_eq!(session.remote_discriminator(), 0);
}

#[test]
fn going_up_starts_a_poll_sequence_for_the_fast_timers() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, 100, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert_eq!(session.transmit_interval(), ms(1000));
    let actions = session.on_packet(
        &from_peer(State::Up, 1000, 100, 3),
        clock.at(10),
        Jitter::NONE,
    );
    assert!(session.poll_in_progress());
    let announced = sent(&actions);
    assert!(announced[0].poll && !announced[0].is_final);
    assert_eq!(announced[0].desired_min_tx_us, 100_000);
    // A faster rate is safe at once.
    assert_eq!(session.transmit_interval(), ms(100));
    assert_eq!(session.next_deadline(), Some(clock.at(110)));
    let periodic = sent(&session.on_timer(clock.at(110), Jitter::NONE));
    assert!(periodic[0].poll);
    // The Final ends it.
    let fin = ControlPacket {
        is_final: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    session.on_packet(&fin, clock.at(120), Jitter::NONE);
    assert!(!session.poll_in_progress());
    assert!(!sent(&session.on_timer(clock.at(210), Jitter::NONE))[0].poll);
}

#[test]
fn a_poll_is_answered_at_once_with_final_and_without_poll() {
    let clock = Clock(Instant::now());
    // Even while our own Poll Sequence runs (right after Up), the answer carries F, not P.
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::Down, 1000, 100, 3),
        clock.at(0),
        Jitter::NONE,
    );
    session.on_packet(
        &from_peer(State::Up, 1000, 100, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert!(session.poll_in_progress());
    let deadline = session.next_deadline();
    let poll = ControlPacket {
        poll: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    let packets = sent(&session.on_packet(&poll, clock.at(5), Jitter::NONE));
    assert_eq!(packets.len(), 1);
    assert!(packets[0].is_final && !packets[0].poll);
    // The Final is extra: the periodic schedule does not move.
    assert_eq!(session.next_deadline(), deadline);
    // Also in Down.
    let mut down = Session::new(config(100, 100, 3), OURS, clock.at(0));
    let poll_down = ControlPacket {
        poll: true,
        ..from_peer(State::AdminDown, 1000, 1000, 3)
    };
    assert!(sent(&down.on_packet(&poll_down, clock.at(0), Jitter::NONE))[0].is_final);
}

#[test]
fn a_slower_rate_waits_for_the_final() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    session.update_config(config(500, 100, 3), clock.at(0), Jitter::NONE);
    assert!(session.poll_in_progress());
    // §6.8.3: the peer has not yet stretched its detection time.
    assert_eq!(session.transmit_interval(), ms(100));
    let packets = sent(&session.on_timer(clock.at(100), Jitter::NONE));
    assert!(packets[0].poll);
    assert_eq!(packets[0].desired_min_tx_us, 500_000);
    let fin = ControlPacket {
        is_final: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    session.on_packet(&fin, clock.at(105), Jitter::NONE);
    assert_eq!(session.transmit_interval(), ms(500));
}

#[test]
fn a_shorter_detection_time_waits_for_the_final_and_a_longer_one_does_not() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 300, 3), 100, 100, 3);
    assert_eq!(session.detection_time(), ms(900));
    session.update_config(config(100, 100, 3), clock.at(0), Jitter::NONE);
    // The peer still sends at the rate our old 300 ms allowed.
    assert_eq!(session.detection_time(), ms(900));
    let fin = ControlPacket {
        is_final: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    session.on_packet(&fin, clock.at(10), Jitter::NONE);
    assert_eq!(session.detection_time(), ms(300));
    session.update_config(config(100, 600, 3), clock.at(20), Jitter::NONE);
    assert_eq!(session.detection_time(), ms(1800));
}

#[test]
fn a_change_during_a_poll_needs_a_second_final() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    session.update_config(config(200, 100, 3), clock.at(0), Jitter::NONE);
    session.update_config(config(400, 100, 3), clock.at(1), Jitter::NONE);
    let fin = ControlPacket {
        is_final: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    // The first Final may answer a packet that still said 200 ms.
    session.on_packet(&fin, clock.at(2), Jitter::NONE);
    assert!(session.poll_in_progress());
    assert_eq!(session.transmit_interval(), ms(100));
    session.on_packet(&fin, clock.at(3), Jitter::NONE);
    assert!(!session.poll_in_progress());
    assert_eq!(session.transmit_interval(), ms(400));
}

#[test]
fn a_change_while_down_needs_no_poll() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.update_config(config(2000, 700, 3), clock.at(0), Jitter::NONE);
    assert!(!session.poll_in_progress());
    assert_eq!(session.transmit_interval(), ms(2000));
    let packets = sent(&session.on_timer(clock.at(0), Jitter::NONE));
    assert_eq!(
        (packets[0].desired_min_tx_us, packets[0].required_min_rx_us),
        (2_000_000, 700_000)
    );
}

#[test]
fn a_passive_session_waits_for_the_peer_and_falls_silent_when_it_goes() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(
        SessionConfig {
            passive: true,
            ..config(100, 100, 3)
        },
        OURS,
        clock.at(0),
    );
    assert_eq!(session.next_deadline(), None);
    assert!(session.on_timer(clock.at(5000), Jitter::NONE).is_empty());
    let actions = session.on_packet(
        &from_peer(State::Down, 1000, 1000, 3),
        clock.at(6000),
        Jitter::NONE,
    );
    assert_eq!(sent(&actions)[0].state, State::Init);
    // The peer disappears: Down with diag 1, and silence once more.
    let actions = session.on_timer(clock.at(9000), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Init, State::Down, Diag::ControlDetectionTimeExpired)]
    );
    assert!(sent(&actions).is_empty());
    assert_eq!(session.next_deadline(), None);
}

#[test]
fn admin_down_announces_itself_and_ignores_the_peer_until_admin_up() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    let actions = session.admin_down(clock.at(10), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::Up, State::AdminDown, Diag::AdministrativelyDown)]
    );
    let packets = sent(&actions);
    assert_eq!(
        (packets[0].state, packets[0].diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    assert_eq!(session.peer_detection_time(), ms(3000));
    // Received packets, polls included, and the detection time leave AdminDown alone.
    let poll = ControlPacket {
        poll: true,
        ..from_peer(State::Down, 1000, 100, 3)
    };
    assert!(
        session
            .on_packet(&poll, clock.at(20), Jitter::NONE)
            .is_empty()
    );
    assert!(changes(&session.on_timer(clock.at(5000), Jitter::NONE)).is_empty());
    assert_eq!(session.state(), State::AdminDown);
    // Still announcing AdminDown, slowly.
    assert_eq!(session.transmit_interval(), ms(1000));

    let actions = session.admin_up(clock.at(6000), Jitter::NONE);
    assert_eq!(
        changes(&actions),
        vec![(State::AdminDown, State::Down, Diag::NoDiagnostic)]
    );
    let actions = session.on_packet(
        &from_peer(State::Down, 1000, 100, 3),
        clock.at(6010),
        Jitter::NONE,
    );
    assert_eq!(
        changes(&actions),
        vec![(State::Down, State::Init, Diag::NoDiagnostic)]
    );
}

#[test]
fn a_peer_in_demand_mode_gets_no_periodic_packets_but_its_polls_are_answered() {
    let clock = Clock(Instant::now());
    let mut session = up_session(&clock, config(100, 100, 3), 100, 100, 3);
    let demand = ControlPacket {
        demand: true,
        ..from_peer(State::Up, 100, 100, 3)
    };
    session.on_packet(&demand, clock.at(10), Jitter::NONE);
    assert!(sent(&session.on_timer(clock.at(200), Jitter::NONE)).is_empty());
    let poll = ControlPacket {
        poll: true,
        ..demand
    };
    assert!(sent(&session.on_packet(&poll, clock.at(210), Jitter::NONE))[0].is_final);
}

#[test]
fn a_peer_that_wants_no_packets_gets_none() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    session.on_packet(
        &from_peer(State::AdminDown, 1000, 0, 3),
        clock.at(0),
        Jitter::NONE,
    );
    assert!(sent(&session.on_timer(clock.at(1000), Jitter::NONE)).is_empty());
}

#[test]
fn a_packet_for_another_discriminator_is_ignored() {
    let clock = Clock(Instant::now());
    let mut session = Session::new(config(100, 100, 3), OURS, clock.at(0));
    let stray = ControlPacket {
        your_discriminator: OURS + 1,
        ..from_peer(State::Init, 1000, 1000, 3)
    };
    assert!(
        session
            .on_packet(&stray, clock.at(0), Jitter::NONE)
            .is_empty()
    );
    assert_eq!(
        (session.state(), session.remote_discriminator()),
        (State::Down, 0)
    );
}

#[test]
fn the_rate_follows_a_peer_that_can_receive_faster() {
    let clock = Clock(Instant::now());
    // The peer first can take one packet every 2 s, then every 100 ms: the next packet is not
    // held back to the old 2 s schedule.
    let mut session = up_session(&clock, config(100, 100, 3), 100, 2000, 3);
    assert_eq!(session.transmit_interval(), ms(2000));
    session.on_packet(
        &from_peer(State::Up, 100, 100, 3),
        clock.at(10),
        Jitter::NONE,
    );
    assert_eq!(session.next_deadline(), Some(clock.at(110)));
}
