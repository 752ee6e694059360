//! Every transition and every NOTIFICATION the state machine sends, against a simulated clock.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_bgp_wire::{
    Capabilities, Family, GracefulRestart, Inbound, Message, Notification, Open, Update, code,
};

use super::*;

const LOCAL_ASN: u32 = 64500;
const PEER_ASN: u32 = 64501;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn local() -> SocketAddr {
    "198.51.100.10:40000".parse().expect("a valid literal")
}

fn peer() -> SocketAddr {
    "198.51.100.1:179".parse().expect("a valid literal")
}

fn config() -> FsmConfig {
    FsmConfig {
        local_asn: LOCAL_ASN,
        peer_asn: PeerAsn::Fixed(PEER_ASN),
        router_id: LOCAL_ID,
        hold_time: Duration::from_secs(90),
        keepalive_time: Duration::from_secs(30),
        connect_time: Duration::from_secs(120),
        families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        graceful_restart: None,
    }
}

fn peer_open() -> Open {
    Open {
        asn: PEER_ASN,
        hold_time: 90,
        router_id: PEER_ID,
        capabilities: Capabilities {
            four_octet_asn: true,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            route_refresh: true,
            ..Capabilities::default()
        },
    }
}

fn received(direction: Direction, message: Message) -> Event {
    Event::Received(direction, Inbound::Message(message))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A state machine and a clock that only moves when told.
struct Harness {
    fsm: Fsm,
    base: Instant,
    now: Instant,
}

impl Harness {
    fn new(config: FsmConfig) -> Self {
        let base = Instant::now();
        Self {
            fsm: Fsm::new(config),
            base,
            now: base,
        }
    }

    fn at(&mut self, offset: Duration) -> &mut Self {
        self.now = self.base + offset;
        self
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        self.fsm.handle(event, self.now)
    }

    fn connected(&mut self) -> Vec<Action> {
        self.handle(Event::TcpConnected {
            direction: Direction::Outgoing,
            local: local(),
            peer: peer(),
        })
    }

    /// Started, connected, OPENs and KEEPALIVEs exchanged on the outgoing connection.
    fn established_with(config: FsmConfig, open: Open) -> (Self, Negotiated) {
        let mut h = Self::new(config);
        h.handle(Event::ManualStart);
        h.connected();
        h.handle(received(Direction::Outgoing, Message::Open(open)));
        let actions = h.handle(received(Direction::Outgoing, Message::Keepalive));
        let negotiated = actions
            .iter()
            .find_map(|a| match a {
                Action::Established(n) => Some(n.clone()),
                _ => None,
            })
            .expect("established");
        assert_eq!(h.fsm.state(), State::Established);
        (h, negotiated)
    }

    fn established() -> (Self, Negotiated) {
        Self::established_with(config(), peer_open())
    }
}

fn sent(actions: &[Action]) -> Vec<(Direction, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(d, m) => Some((*d, m.clone())),
            _ => None,
        })
        .collect()
}

fn notification_sent(actions: &[Action]) -> Option<Notification> {
    sent(actions).into_iter().find_map(|(_, m)| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

fn session_down(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::SessionDown { reason } => Some(reason.clone()),
        _ => None,
    })
}

fn state_change(actions: &[Action]) -> Option<(State, State)> {
    actions.iter().find_map(|a| match a {
        Action::StateChanged { from, to } => Some((*from, *to)),
        _ => None,
    })
}

/// The NOTIFICATION the peer's OPEN gets, if any.
fn open_rejection(config: FsmConfig, open: Open) -> Option<Notification> {
    let mut h = Harness::new(config);
    h.handle(Event::ManualStart);
    h.connected();
    let actions = h.handle(received(Direction::Outgoing, Message::Open(open)));
    let notification = notification_sent(&actions);
    if notification.is_some() {
        assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
        assert!(session_down(&actions).is_some_and(|r| r.contains("OPEN")));
        assert_eq!(h.fsm.state(), State::Idle);
    } else {
        assert_eq!(h.fsm.state(), State::OpenConfirm);
    }
    notification
}

#[test]
fn manual_start_connects_and_arms_the_connect_retry_timer() {
    let mut h = Harness::new(config());
    assert_eq!(h.fsm.state(), State::Idle);
    assert_eq!(h.fsm.next_deadline(), None);
    let actions = h.handle(Event::ManualStart);
    assert_eq!(
        actions,
        vec![
            Action::Connect,
            Action::StateChanged {
                from: State::Idle,
                to: State::Connect
            }
        ]
    );
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(120)));
    assert!(
        h.handle(Event::ManualStart).is_empty(),
        "a second start is a no-op"
    );
}

#[test]
fn tcp_connected_sends_our_open() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    let actions = h.connected();
    let sent = sent(&actions);
    let [(Direction::Outgoing, Message::Open(open))] = &sent[..] else {
        panic!("expected one OPEN, got {actions:?}");
    };
    assert_eq!(open.asn, LOCAL_ASN);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.router_id, LOCAL_ID);
    assert!(open.capabilities.four_octet_asn);
    assert!(open.capabilities.route_refresh);
    assert_eq!(open.capabilities.families, config().families);
    assert_eq!(open.capabilities.graceful_restart, None);
    assert_eq!(
        state_change(&actions),
        Some((State::Connect, State::OpenSent))
    );
    // The OpenSent hold timer is the RFC's "large value", 4 minutes.
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(240)));
}

#[test]
fn graceful_restart_capability_is_sent_when_configured() {
    let mut h = Harness::new(FsmConfig {
        graceful_restart: Some(DEFAULT_RESTART_TIME),
        ..config()
    });
    h.handle(Event::ManualStart);
    let open = h.fsm.open_message();
    assert_eq!(
        open.capabilities.graceful_restart,
        Some(GracefulRestart {
            restarting: false,
            restart_time: 120,
            families: vec![(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, true)],
        })
    );
}

#[test]
fn open_then_keepalive_establishes() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    h.at(secs(1));
    let actions = h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
    assert_eq!(
        sent(&actions),
        vec![(Direction::Outgoing, Message::Keepalive)]
    );
    assert_eq!(
        state_change(&actions),
        Some((State::OpenSent, State::OpenConfirm))
    );
    // Keepalive timer (30 s) comes before the hold timer (90 s).
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(31)));

    h.at(secs(2));
    let actions = h.handle(received(Direction::Outgoing, Message::Keepalive));
    let expected = Negotiated {
        peer_asn: PEER_ASN,
        peer_router_id: PEER_ID,
        ibgp: false,
        hold_time: secs(90),
        keepalive_time: secs(30),
        families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        four_octet_asn: true,
        peer_route_refresh: true,
        peer_graceful_restart: None,
        local_address: local(),
        peer_address: peer(),
        direction: Direction::Outgoing,
    };
    assert_eq!(
        actions,
        vec![
            Action::Established(expected.clone()),
            Action::StateChanged {
                from: State::OpenConfirm,
                to: State::Established
            }
        ]
    );
    assert_eq!(h.fsm.established(), Some((Direction::Outgoing, &expected)));
}

#[test]
fn hold_time_is_the_smaller_of_both_and_keepalive_a_third_unless_configured_smaller() {
    let open = |hold_time| Open {
        hold_time,
        ..peer_open()
    };
    let (_, n) = Harness::established_with(config(), open(30));
    assert_eq!((n.hold_time, n.keepalive_time), (secs(30), secs(10)));

    let (_, n) = Harness::established_with(config(), open(180));
    assert_eq!((n.hold_time, n.keepalive_time), (secs(90), secs(30)));

    let small_keepalive = FsmConfig {
        keepalive_time: secs(5),
        ..config()
    };
    let (_, n) = Harness::established_with(small_keepalive, open(30));
    assert_eq!((n.hold_time, n.keepalive_time), (secs(30), secs(5)));

    let large_keepalive = FsmConfig {
        keepalive_time: secs(60),
        ..config()
    };
    let (_, n) = Harness::established_with(large_keepalive, open(90));
    assert_eq!(n.keepalive_time, secs(30));
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let (mut h, n) = Harness::established_with(
        config(),
        Open {
            hold_time: 0,
            ..peer_open()
        },
    );
    assert_eq!(
        (n.hold_time, n.keepalive_time),
        (Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(h.fsm.next_deadline(), None);
    h.at(secs(100_000));
    assert!(h.handle(Event::Timer).is_empty());
    assert_eq!(h.fsm.state(), State::Established);
}

#[test]
fn hold_time_one_or_two_is_rejected_with_2_6() {
    for hold_time in [1, 2] {
        let rejected = open_rejection(
            config(),
            Open {
                hold_time,
                ..peer_open()
            },
        );
        assert_eq!(
            rejected,
            Some(Notification::new(2, 6, vec![])),
            "hold {hold_time}"
        );
    }
    assert_eq!(
        open_rejection(
            config(),
            Open {
                hold_time: 3,
                ..peer_open()
            }
        ),
        None
    );
}

#[test]
fn peer_asn_is_checked_against_the_configuration_with_2_2() {
    // The data is the ASN the peer sent, in 2 octets when it fits (as FRR sends it).
    let bad_peer_as = |data: &[u8]| Some(Notification::new(2, 2, data.to_vec()));
    let with_asn = |asn| Open { asn, ..peer_open() };
    assert_eq!(
        open_rejection(config(), with_asn(64999)),
        bad_peer_as(&[0xfd, 0xe7])
    );
    assert_eq!(open_rejection(config(), with_asn(PEER_ASN)), None);

    let internal = FsmConfig {
        peer_asn: PeerAsn::Internal,
        ..config()
    };
    assert_eq!(
        open_rejection(internal.clone(), with_asn(4_200_000_000)),
        bad_peer_as(&[0xfa, 0x56, 0xea, 0x00])
    );
    assert_eq!(open_rejection(internal, with_asn(LOCAL_ASN)), None);

    let external = FsmConfig {
        peer_asn: PeerAsn::External,
        ..config()
    };
    assert_eq!(
        open_rejection(external.clone(), with_asn(LOCAL_ASN)),
        bad_peer_as(&[0xfb, 0xf4])
    );
    assert_eq!(open_rejection(external, with_asn(4_200_000_000)), None);
}

#[test]
fn router_id_zero_or_ours_over_ibgp_is_rejected_with_2_3() {
    let bad_id = Some(Notification::new(2, 3, vec![]));
    let with_id = |router_id| Open {
        router_id,
        ..peer_open()
    };
    assert_eq!(
        open_rejection(config(), with_id(Ipv4Addr::UNSPECIFIED)),
        bad_id
    );
    // eBGP: the same identifier is allowed (RFC 6286).
    assert_eq!(open_rejection(config(), with_id(LOCAL_ID)), None);
    let ibgp = FsmConfig {
        peer_asn: PeerAsn::Fixed(LOCAL_ASN),
        ..config()
    };
    let ibgp_open = |router_id| Open {
        asn: LOCAL_ASN,
        router_id,
        ..peer_open()
    };
    assert_eq!(open_rejection(ibgp.clone(), ibgp_open(LOCAL_ID)), bad_id);
    assert_eq!(open_rejection(ibgp, ibgp_open(PEER_ID)), None);
}

#[test]
fn families_are_the_intersection_and_no_mp_capability_means_ipv4_only() {
    let with_families = |families: &[Family]| Open {
        capabilities: Capabilities {
            families: families.iter().copied().collect(),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let (_, n) = Harness::established_with(config(), with_families(&[]));
    assert_eq!(n.families, BTreeSet::from([Family::Ipv4Unicast]));
    let (_, n) = Harness::established_with(config(), with_families(&[Family::Ipv6Unicast]));
    assert_eq!(n.families, BTreeSet::from([Family::Ipv6Unicast]));

    // Nothing in common: 2/7 listing our multiprotocol capability (code 1, length 4, AFI 2,
    // reserved, SAFI 1).
    let v6_only = FsmConfig {
        families: BTreeSet::from([Family::Ipv6Unicast]),
        ..config()
    };
    assert_eq!(
        open_rejection(v6_only, with_families(&[])),
        Some(Notification::new(2, 7, vec![1, 4, 0, 2, 0, 1]))
    );
}

#[test]
fn notification_from_the_peer_ends_the_session_with_its_reason() {
    let (mut h, _) = Harness::established();
    h.at(secs(10));
    let actions = h.handle(received(
        Direction::Outgoing,
        Message::Notification(Notification::new(6, 2, vec![])),
    ));
    assert!(
        notification_sent(&actions).is_none(),
        "never answer a NOTIFICATION"
    );
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    let reason = session_down(&actions).expect("down");
    assert!(reason.contains("cease (6/2)"), "{reason}");
    assert_eq!(
        state_change(&actions),
        Some((State::Established, State::Idle))
    );
    // Back after a second.
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(11)));
    h.at(secs(11));
    let actions = h.handle(Event::Timer);
    assert!(actions.contains(&Action::Connect));
    assert_eq!(h.fsm.state(), State::Connect);
}

#[test]
fn notification_in_open_sent_ends_the_attempt() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    let actions = h.handle(received(
        Direction::Outgoing,
        Message::Notification(Notification::new(2, 2, vec![])),
    ));
    assert!(session_down(&actions).is_some_and(|r| r.contains("2/2")));
    assert_eq!(h.fsm.state(), State::Idle);
}

/// Drives a fresh machine to `state` and delivers `message`; returns the NOTIFICATION sent.
fn unexpected_in(state: State, message: Message) -> Option<Notification> {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    if state >= State::OpenConfirm {
        h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
    }
    if state == State::Established {
        h.handle(received(Direction::Outgoing, Message::Keepalive));
    }
    assert_eq!(h.fsm.state(), state);
    let actions = h.handle(received(Direction::Outgoing, message));
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    assert_eq!(h.fsm.state(), State::Idle);
    notification_sent(&actions)
}

#[test]
fn unexpected_messages_get_rfc_6608_fsm_errors() {
    let update = Message::Update(Update::default());
    let fsm_error = |subcode, message_type| Some(Notification::new(5, subcode, vec![message_type]));
    assert_eq!(
        unexpected_in(State::OpenSent, Message::Keepalive),
        fsm_error(1, 4)
    );
    assert_eq!(
        unexpected_in(State::OpenSent, update.clone()),
        fsm_error(1, 2)
    );
    assert_eq!(
        unexpected_in(State::OpenSent, Message::RouteRefresh(Family::Ipv4Unicast)),
        fsm_error(1, 5)
    );
    assert_eq!(unexpected_in(State::OpenConfirm, update), fsm_error(2, 2));
    assert_eq!(
        unexpected_in(State::OpenConfirm, Message::Open(peer_open())),
        fsm_error(2, 1)
    );
    assert_eq!(
        unexpected_in(State::Established, Message::Open(peer_open())),
        fsm_error(3, 1)
    );
}

#[test]
fn treat_as_withdraw_before_established_is_an_unexpected_update() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
    let actions = h.handle(Event::Received(
        Direction::Outgoing,
        Inbound::TreatAsWithdraw {
            withdrawn: vec![],
            reason: "bad attribute".into(),
        },
    ));
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(5, 2, vec![2]))
    );
}

#[test]
fn updates_are_reported_and_treat_as_withdraw_carries_its_reason() {
    let (mut h, _) = Harness::established();
    let actions = h.handle(received(
        Direction::Outgoing,
        Message::Update(Update::default()),
    ));
    assert_eq!(
        actions,
        vec![Action::UpdateReceived {
            treat_as_withdraw: None
        }]
    );
    let actions = h.handle(Event::Received(
        Direction::Outgoing,
        Inbound::TreatAsWithdraw {
            withdrawn: vec!["203.0.113.0/25".parse().expect("a valid literal")],
            reason: "bad ORIGIN".into(),
        },
    ));
    assert_eq!(
        actions,
        vec![Action::UpdateReceived {
            treat_as_withdraw: Some("bad ORIGIN".into())
        }]
    );
    assert_eq!(h.fsm.state(), State::Established);
}

#[test]
fn route_refresh_for_a_negotiated_family_asks_for_a_resend_and_others_are_ignored() {
    let v4_only = Open {
        capabilities: Capabilities {
            families: BTreeSet::from([Family::Ipv4Unicast]),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let (mut h, _) = Harness::established_with(config(), v4_only);
    assert_eq!(
        h.handle(received(
            Direction::Outgoing,
            Message::RouteRefresh(Family::Ipv4Unicast)
        )),
        vec![Action::RouteRefresh(Family::Ipv4Unicast)]
    );
    assert!(
        h.handle(received(
            Direction::Outgoing,
            Message::RouteRefresh(Family::Ipv6Unicast)
        ))
        .is_empty()
    );
}

#[test]
fn malformed_input_gets_the_codecs_notification_and_ends_the_session() {
    let (mut h, _) = Harness::established();
    let codec_says = Notification::new(3, 1, vec![]);
    let actions = h.handle(Event::Malformed(Direction::Outgoing, codec_says.clone()));
    assert_eq!(
        sent(&actions),
        vec![(Direction::Outgoing, Message::Notification(codec_says))]
    );
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    assert!(session_down(&actions).is_some_and(|r| r.contains("malformed")));
    assert_eq!(h.fsm.state(), State::Idle);
}

#[test]
fn keepalives_are_sent_every_keepalive_interval() {
    let (mut h, _) = Harness::established();
    // OPEN and KEEPALIVE were received at the base instant: keepalive due at 30 s.
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(30)));
    h.at(secs(29));
    assert!(h.handle(Event::Timer).is_empty());
    h.at(secs(30));
    assert_eq!(
        h.handle(Event::Timer),
        vec![Action::Send(Direction::Outgoing, Message::Keepalive)]
    );
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(60)));
}

#[test]
fn hold_timer_expiry_sends_4_0_and_messages_restart_it() {
    let (mut h, _) = Harness::established();
    // A KEEPALIVE at 60 s moves the hold deadline from 90 s to 150 s.
    h.at(secs(30));
    h.handle(Event::Timer);
    h.at(secs(60));
    h.handle(received(Direction::Outgoing, Message::Keepalive));
    h.handle(Event::Timer);
    h.at(secs(120));
    h.handle(Event::Timer);
    h.at(secs(149));
    let actions = h.handle(Event::Timer);
    assert!(notification_sent(&actions).is_none());
    assert_eq!(h.fsm.state(), State::Established);

    h.at(secs(150));
    let actions = h.handle(Event::Timer);
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(4, 0, vec![]))
    );
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    assert_eq!(
        session_down(&actions).as_deref(),
        Some("hold timer expired")
    );
    assert_eq!(h.fsm.state(), State::Idle);
}

#[test]
fn hold_timer_in_open_sent_expires_after_four_minutes() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    h.at(secs(240));
    let actions = h.handle(Event::Timer);
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(4, 0, vec![]))
    );
    assert_eq!(h.fsm.state(), State::Idle);
}

#[test]
fn failed_connects_back_off_from_one_second_to_the_connect_time() {
    let mut h = Harness::new(FsmConfig {
        connect_time: secs(10),
        ..config()
    });
    h.handle(Event::ManualStart);
    let mut now = Duration::ZERO;
    let mut waits = Vec::new();
    for _ in 0..6 {
        let actions = h.handle(Event::TcpFailed);
        assert_eq!(
            state_change(&actions),
            Some((State::Connect, State::Active))
        );
        let due = h.fsm.next_deadline().expect("retry scheduled") - h.base;
        waits.push((due - now).as_secs());
        now = due;
        h.at(due);
        let actions = h.handle(Event::Timer);
        assert!(actions.contains(&Action::Connect));
        assert_eq!(h.fsm.state(), State::Connect);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
}

#[test]
fn established_resets_the_backoff() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    for _ in 0..4 {
        h.handle(Event::TcpFailed);
        let due = h.fsm.next_deadline().expect("a retry is scheduled") - h.base;
        h.at(due);
        h.handle(Event::Timer);
    }
    h.connected();
    h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
    h.handle(received(Direction::Outgoing, Message::Keepalive));
    let down_at = h.now - h.base + secs(1);
    h.at(down_at);
    h.handle(Event::TcpClosed {
        direction: Direction::Outgoing,
        reason: "connection reset".into(),
    });
    assert_eq!(h.fsm.next_deadline(), Some(h.base + down_at + secs(1)));
}

#[test]
fn a_connect_attempt_that_takes_longer_than_the_connect_time_starts_over() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.at(secs(120));
    let actions = h.handle(Event::Timer);
    assert_eq!(
        actions,
        vec![Action::CloseTcp(Direction::Outgoing), Action::Connect]
    );
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(240)));
}

#[test]
fn tcp_closed_while_established_ends_the_session_and_retries() {
    let (mut h, _) = Harness::established();
    let actions = h.handle(Event::TcpClosed {
        direction: Direction::Outgoing,
        reason: "connection reset by peer".into(),
    });
    assert_eq!(
        session_down(&actions).as_deref(),
        Some("connection reset by peer")
    );
    assert_eq!(
        state_change(&actions),
        Some((State::Established, State::Idle))
    );
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(1)));
}

#[test]
fn shutdown_with_graceful_restart_closes_without_notification() {
    let gr = FsmConfig {
        graceful_restart: Some(DEFAULT_RESTART_TIME),
        ..config()
    };
    let (mut h, _) = Harness::established_with(gr, peer_open());
    let actions = h.handle(Event::ManualStop(StopKind::Shutdown));
    assert!(sent(&actions).is_empty(), "{actions:?}");
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    assert_eq!(h.fsm.state(), State::Idle);
    assert_eq!(h.fsm.next_deadline(), None, "stopped: no reconnect");
}

#[test]
fn shutdown_without_graceful_restart_sends_cease_administrative_shutdown() {
    let (mut h, _) = Harness::established();
    let actions = h.handle(Event::ManualStop(StopKind::Shutdown));
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(6, 2, vec![]))
    );
    assert!(session_down(&actions).is_some());
    assert_eq!(h.fsm.next_deadline(), None);
    h.at(secs(1000));
    assert!(h.handle(Event::Timer).is_empty());
}

#[test]
fn deconfigured_and_reconfigured_send_6_3_and_6_6_even_with_graceful_restart() {
    let gr = FsmConfig {
        graceful_restart: Some(DEFAULT_RESTART_TIME),
        ..config()
    };
    let (mut h, _) = Harness::established_with(gr.clone(), peer_open());
    let actions = h.handle(Event::ManualStop(StopKind::Deconfigured));
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(6, 3, vec![]))
    );
    let (mut h, _) = Harness::established_with(gr, peer_open());
    let actions = h.handle(Event::ManualStop(StopKind::Reconfigured));
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(6, 6, vec![]))
    );
}

#[test]
fn reset_sends_administrative_reset_with_the_reason_and_reconnects() {
    let (mut h, _) = Harness::established();
    let actions = h.handle(Event::ManualStop(StopKind::Reset("BFD down".into())));
    let mut data = vec![8];
    data.extend_from_slice(b"BFD down");
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(6, 4, data))
    );
    assert!(session_down(&actions).is_some_and(|r| r.contains("BFD down")));
    assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(1)));
    h.at(secs(1));
    assert!(h.handle(Event::Timer).contains(&Action::Connect));
}

#[test]
fn stopping_while_connecting_abandons_the_attempt() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    let actions = h.handle(Event::ManualStop(StopKind::Shutdown));
    assert_eq!(
        actions,
        vec![
            Action::CloseTcp(Direction::Outgoing),
            Action::StateChanged {
                from: State::Connect,
                to: State::Idle
            }
        ]
    );
    // A connection that completes afterwards is closed straight away.
    assert_eq!(h.connected(), vec![Action::CloseTcp(Direction::Outgoing)]);
}

#[test]
fn shutdown_communication_is_cut_at_255_octets_on_a_character_boundary() {
    let text = "é".repeat(200); // 400 octets
    let data = shutdown_communication(&text);
    assert_eq!(data[0], 254);
    assert_eq!(data.len(), 255);
    assert!(std::str::from_utf8(&data[1..]).is_ok());
}

fn incoming(h: &mut Harness) -> Vec<Action> {
    h.handle(Event::TcpConnected {
        direction: Direction::Incoming,
        local: "198.51.100.10:179".parse().expect("a valid literal"),
        peer: "198.51.100.1:50000".parse().expect("a valid literal"),
    })
}

#[test]
fn passive_connection_establishes_and_cancels_the_outgoing_attempt() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    assert!(h.fsm.accepts_incoming());
    let actions = incoming(&mut h);
    assert!(matches!(
        sent(&actions)[..],
        [(Direction::Incoming, Message::Open(_))]
    ));
    h.handle(received(Direction::Incoming, Message::Open(peer_open())));
    let actions = h.handle(received(Direction::Incoming, Message::Keepalive));
    assert!(actions.contains(&Action::CloseTcp(Direction::Outgoing)));
    let (direction, negotiated) = h.fsm.established().expect("established");
    assert_eq!(direction, Direction::Incoming);
    assert_eq!(
        negotiated.local_address,
        "198.51.100.10:179".parse().expect("a valid literal")
    );
    // Established: a further passive connection is refused.
    assert!(!h.fsm.accepts_incoming());
    assert_eq!(
        incoming(&mut h),
        vec![Action::CloseTcp(Direction::Incoming)]
    );
    assert_eq!(h.fsm.state(), State::Established);
}

/// Both connections reach OpenConfirm; returns the direction closed with CEASE 6/7.
fn collision(local_id: Ipv4Addr, peer_id: Ipv4Addr) -> Direction {
    let mut h = Harness::new(FsmConfig {
        router_id: local_id,
        ..config()
    });
    h.handle(Event::ManualStart);
    h.connected();
    incoming(&mut h);
    let open = Open {
        router_id: peer_id,
        ..peer_open()
    };
    let actions = h.handle(received(Direction::Outgoing, Message::Open(open.clone())));
    assert!(
        notification_sent(&actions).is_none(),
        "one OPEN: no collision yet"
    );
    let actions = h.handle(received(Direction::Incoming, Message::Open(open)));
    let closed: Vec<_> = sent(&actions)
        .into_iter()
        .filter(|(_, m)| *m == Message::Notification(Notification::new(6, 7, vec![])))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(closed.len(), 1, "{actions:?}");
    assert!(
        !sent(&actions).contains(&(closed[0], Message::Keepalive)),
        "the losing connection gets no KEEPALIVE: {actions:?}"
    );
    assert!(actions.contains(&Action::CloseTcp(closed[0])));
    assert!(
        session_down(&actions).is_none(),
        "the other connection lives on"
    );
    assert_eq!(h.fsm.state(), State::OpenConfirm);
    // The survivor establishes.
    let survivor = closed[0].other();
    h.handle(received(survivor, Message::Keepalive));
    assert_eq!(h.fsm.established().map(|(d, _)| d), Some(survivor));
    closed[0]
}

#[test]
fn collision_keeps_the_connection_initiated_by_the_higher_identifier() {
    // Ours is higher: our outgoing connection wins, the incoming one is closed.
    assert_eq!(
        collision(
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 1)
        ),
        Direction::Incoming
    );
    assert_eq!(
        collision(
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(198, 51, 100, 10)
        ),
        Direction::Outgoing
    );
}

#[test]
fn collision_winner_falls_back_to_the_higher_asn_for_equal_identifiers() {
    let id = Ipv4Addr::new(192, 0, 2, 1);
    assert_eq!(collision_winner(id, id, 65001, 65000), Direction::Outgoing);
    assert_eq!(collision_winner(id, id, 65000, 65001), Direction::Incoming);
}

#[test]
fn established_connection_closes_the_other_one_still_opening() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    incoming(&mut h);
    h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
    let actions = h.handle(received(Direction::Outgoing, Message::Keepalive));
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(code::CEASE, 7, vec![]))
    );
    assert!(actions.contains(&Action::CloseTcp(Direction::Incoming)));
    assert!(session_down(&actions).is_none());
    assert_eq!(
        h.fsm.established().map(|(d, _)| d),
        Some(Direction::Outgoing)
    );
}

#[test]
fn losing_one_of_two_connections_is_not_a_session_down() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    incoming(&mut h);
    let actions = h.handle(Event::TcpClosed {
        direction: Direction::Incoming,
        reason: "reset".into(),
    });
    assert!(session_down(&actions).is_none());
    assert_eq!(h.fsm.state(), State::OpenSent);
}

#[test]
fn a_connection_lost_in_any_state_returns_to_idle_and_retries() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::new(config());
        h.handle(Event::ManualStart);
        h.connected();
        if state >= State::OpenConfirm {
            h.handle(received(Direction::Outgoing, Message::Open(peer_open())));
        }
        if state == State::Established {
            h.handle(received(Direction::Outgoing, Message::Keepalive));
        }
        assert_eq!(h.fsm.state(), state);
        let actions = h.handle(Event::TcpClosed {
            direction: Direction::Outgoing,
            reason: "connection reset".into(),
        });
        assert_eq!(
            state_change(&actions),
            Some((state, State::Idle)),
            "{state}"
        );
        assert_eq!(session_down(&actions).as_deref(), Some("connection reset"));
        assert_eq!(h.fsm.next_deadline(), Some(h.base + secs(1)), "{state}");
    }
}

#[test]
fn hold_timer_in_open_confirm_expires_with_4_0() {
    let mut h = Harness::new(config());
    h.handle(Event::ManualStart);
    h.connected();
    h.handle(received(
        Direction::Outgoing,
        Message::Open(Open {
            hold_time: 9,
            ..peer_open()
        }),
    ));
    // Keepalives every 3 s keep going out; the peer's KEEPALIVE never comes.
    h.at(secs(3));
    assert_eq!(
        h.handle(Event::Timer),
        vec![Action::Send(Direction::Outgoing, Message::Keepalive)]
    );
    h.at(secs(9));
    let actions = h.handle(Event::Timer);
    assert_eq!(
        notification_sent(&actions),
        Some(Notification::new(4, 0, vec![]))
    );
    assert_eq!(
        state_change(&actions),
        Some((State::OpenConfirm, State::Idle))
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = Event> {
        let direction = prop_oneof![Just(Direction::Outgoing), Just(Direction::Incoming)];
        let message = prop_oneof![
            Just(Message::Keepalive),
            Just(Message::Open(peer_open())),
            Just(Message::Open(Open {
                hold_time: 3,
                router_id: Ipv4Addr::new(198, 51, 100, 200),
                ..peer_open()
            })),
            Just(Message::Open(Open {
                asn: 1,
                ..peer_open()
            })),
            Just(Message::Update(Update::default())),
            Just(Message::RouteRefresh(Family::Ipv6Unicast)),
            Just(Message::Notification(Notification::new(6, 4, vec![]))),
        ];
        prop_oneof![
            Just(Event::ManualStart),
            Just(Event::ManualStop(StopKind::Shutdown)),
            Just(Event::ManualStop(StopKind::Reset("test".into()))),
            direction.clone().prop_map(|direction| Event::TcpConnected {
                direction,
                local: local(),
                peer: peer(),
            }),
            Just(Event::TcpFailed),
            direction.clone().prop_map(|direction| Event::TcpClosed {
                direction,
                reason: "closed".into(),
            }),
            (direction.clone(), message).prop_map(|(d, m)| Event::Received(d, Inbound::Message(m))),
            direction.prop_map(|d| Event::Malformed(d, Notification::new(1, 1, vec![]))),
            Just(Event::Timer),
        ]
    }

    proptest! {
        /// Whatever happens, a started session is never stuck: it has a connection, an attempt
        /// in progress, or a timer; a stopped one does nothing until started again; and the
        /// reported state agrees with the established connection.
        #[test]
        fn never_stuck_and_consistent(steps in proptest::collection::vec((event(), 0u64..200), 1..80)) {
            let mut h = Harness::new(config());
            let mut elapsed = Duration::ZERO;
            let mut started = false;
            for (event, advance) in steps {
                elapsed += Duration::from_secs(advance);
                h.at(elapsed);
                match &event {
                    Event::ManualStart => started = true,
                    Event::ManualStop(StopKind::Reset(_)) => {}
                    Event::ManualStop(_) => started = false,
                    _ => {}
                }
                let actions = h.handle(event);
                if !started {
                    prop_assert!(!actions.contains(&Action::Connect), "{actions:?}");
                    prop_assert_eq!(h.fsm.next_deadline(), None);
                }
                let state = h.fsm.state();
                prop_assert_eq!(state == State::Established, h.fsm.established().is_some());
                if started && state <= State::Active {
                    prop_assert!(
                        state == State::Connect || h.fsm.next_deadline().is_some(),
                        "stuck in {state}"
                    );
                }
                if let Some(deadline) = h.fsm.next_deadline() {
                    // Deadlines already passed are delivered at the next Timer event.
                    prop_assert!(deadline >= h.base);
                }
            }
        }
    }
}
