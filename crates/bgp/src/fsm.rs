//! The BGP session state machine for one peer (RFC 4271 §8), pure: events and the current time
//! go in, actions come out, and [`Fsm::next_deadline`] says when the next timer fires. No
//! sockets and no clock of its own, so every transition is tested with a simulated clock.
//!
//! Simplified where the RFC allows: no DelayOpen, no peer oscillation damping. The session
//! restarts on its own after it drops (the RFC's automatic start), first after one second,
//! then twice as long each time, never longer than the configured connect time (MetalLB's
//! native speaker backs off the same way up to two minutes, FRR's default connect time).
//!
//! Up to two TCP connections to the peer exist at once: the one we initiated ([`Direction::
//! Outgoing`]) and one the peer initiated ([`Direction::Incoming`]), each with its own OPEN
//! exchange. When both have received an OPEN, the collision rule of §6.8 keeps one.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_bgp_wire::{
    Capabilities, Family, GracefulRestart, Inbound, Message, Notification, Open, code,
};

/// FRR's and RFC 4271's default ConnectRetryTime.
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(120);
/// RFC 4724's suggested default; what MetalLB configures FRR with.
pub const DEFAULT_RESTART_TIME: Duration = Duration::from_secs(120);
/// The hold timer while waiting for the peer's OPEN ("a large value", RFC 4271 §8.2.2).
const OPEN_SENT_HOLD_TIME: Duration = Duration::from_secs(240);
/// The first wait before reconnecting after a failure; it doubles from there.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Cease subcodes (RFC 4486, RFC 9384).
pub mod cease {
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
}

/// OPEN message error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open_error {
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Finite state machine error subcodes (RFC 6608).
pub mod fsm_error {
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Which ASN the peer must announce in its OPEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    Fixed(u32),
    /// `dynamicASN: internal`: any ASN equal to ours.
    Internal,
    /// `dynamicASN: external`: any ASN different from ours.
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to our listener.
    Incoming,
}

impl Direction {
    fn other(self) -> Self {
        match self {
            Direction::Outgoing => Direction::Incoming,
            Direction::Incoming => Direction::Outgoing,
        }
    }
}

/// What the state machine needs to know about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    pub local_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    /// Offered in our OPEN; whole seconds, 0 (no keepalives) or at least 3.
    pub hold_time: Duration,
    /// Used when smaller than a third of the negotiated hold time; zero: a third of it.
    pub keepalive_time: Duration,
    /// The longest wait between connection attempts, and how long one attempt may take.
    pub connect_time: Duration,
    /// The families to negotiate.
    pub families: BTreeSet<Family>,
    /// Send the graceful restart capability with this restart time.
    pub graceful_restart: Option<Duration>,
}

/// What both sides agreed on; known once the peer's OPEN is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_router_id: Ipv4Addr,
    /// Same ASN on both sides.
    pub ibgp: bool,
    /// Zero: no keepalives and no hold timer.
    pub hold_time: Duration,
    pub keepalive_time: Duration,
    /// The families both sides announced.
    pub families: BTreeSet<Family>,
    /// Both sides speak 4-octet ASNs (we always do), so AS_PATH carries 4-octet ASNs.
    pub four_octet_asn: bool,
    pub peer_route_refresh: bool,
    pub peer_graceful_restart: Option<GracefulRestart>,
    pub local_address: SocketAddr,
    pub peer_address: SocketAddr,
    pub direction: Direction,
}

/// Why the session is being stopped; decides the NOTIFICATION, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopKind {
    /// The process is shutting down. With graceful restart an Established session is closed
    /// without a NOTIFICATION, so the peer keeps our routes until we are back (RFC 4724);
    /// otherwise CEASE / Administrative Shutdown.
    Shutdown,
    /// The peer was removed from the configuration: CEASE / Peer De-configured.
    Deconfigured,
    /// The session's configuration changed and it restarts: CEASE / Other Configuration Change.
    Reconfigured,
    /// Drop the session now and reconnect (e.g. BFD saw the path go down): CEASE /
    /// Administrative Reset, with the reason as the shutdown communication (RFC 9003).
    Reset(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ManualStart,
    ManualStop(StopKind),
    TcpConnected {
        direction: Direction,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// The outgoing connection attempt failed.
    TcpFailed,
    /// A connection was closed or broke.
    TcpClosed {
        direction: Direction,
        reason: String,
    },
    Received(Direction, Inbound),
    /// The codec rejected what the peer sent; this NOTIFICATION says why.
    Malformed(Direction, Notification),
    /// A deadline from [`Fsm::next_deadline`] may have passed.
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an outgoing TCP connection.
    Connect,
    Send(Direction, Message),
    /// Drop this connection (or the outgoing attempt still in progress).
    CloseTcp(Direction),
    StateChanged {
        from: State,
        to: State,
    },
    Established(Negotiated),
    /// The session (or the attempt to bring it up) ended.
    SessionDown {
        reason: String,
    },
    /// An UPDATE arrived on the established session; the speaker does not install routes.
    UpdateReceived {
        treat_as_withdraw: Option<String>,
    },
    /// The peer asked for our routes in this family again (RFC 2918).
    RouteRefresh(Family),
}

#[derive(Debug, Clone)]
enum Phase {
    OpenSent,
    OpenConfirm(Box<Negotiated>),
    Established(Box<Negotiated>),
}

#[derive(Debug, Clone)]
struct Connection {
    local: SocketAddr,
    peer: SocketAddr,
    phase: Phase,
    hold_deadline: Option<Instant>,
    keepalive_deadline: Option<Instant>,
}

impl Connection {
    fn state(&self) -> State {
        match self.phase {
            Phase::OpenSent => State::OpenSent,
            Phase::OpenConfirm(_) => State::OpenConfirm,
            Phase::Established(_) => State::Established,
        }
    }

    fn negotiated(&self) -> Option<&Negotiated> {
        match &self.phase {
            Phase::OpenSent => None,
            Phase::OpenConfirm(n) | Phase::Established(n) => Some(n),
        }
    }
}

/// The state machine of one peer.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: FsmConfig,
    started: bool,
    /// The state when no connection exists: Idle, Connect (an attempt is in progress) or
    /// Active (waiting to retry).
    base: State,
    /// ConnectRetry: when to connect again, or when the attempt in progress times out.
    retry_at: Option<Instant>,
    /// Failed attempts since the last Established, for the backoff.
    failures: u32,
    outgoing: Option<Connection>,
    incoming: Option<Connection>,
}

impl Fsm {
    pub fn new(config: FsmConfig) -> Self {
        Self {
            config,
            started: false,
            base: State::Idle,
            retry_at: None,
            failures: 0,
            outgoing: None,
            incoming: None,
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// The session's state: that of its most advanced connection, else Idle, Connect or Active.
    pub fn state(&self) -> State {
        self.connections()
            .map(|(_, c)| c.state())
            .max()
            .unwrap_or(self.base)
    }

    /// The established connection and what was negotiated on it.
    pub fn established(&self) -> Option<(Direction, &Negotiated)> {
        self.connections().find_map(|(d, c)| match &c.phase {
            Phase::Established(n) => Some((d, &**n)),
            _ => None,
        })
    }

    /// Whether a connection the peer opened to our listener should be handed in now. It is
    /// not while the session is stopped, established (RFC 4271 §6.8: the new one is closed),
    /// or already has an incoming connection.
    pub fn accepts_incoming(&self) -> bool {
        self.started && self.incoming.is_none() && self.established().is_none()
    }

    /// When [`Event::Timer`] should next be delivered.
    pub fn next_deadline(&self) -> Option<Instant> {
        let connection_deadlines = self
            .connections()
            .flat_map(|(_, c)| [c.hold_deadline, c.keepalive_deadline])
            .flatten();
        let retry = if self.started { self.retry_at } else { None };
        connection_deadlines.chain(retry).min()
    }

    /// The OPEN we send.
    pub fn open_message(&self) -> Open {
        let config = &self.config;
        let graceful_restart = config.graceful_restart.map(|restart_time| GracefulRestart {
            restarting: false,
            // 12 bits on the wire.
            restart_time: restart_time.as_secs().min(4095) as u16,
            // Forwarding goes on while the speaker restarts: kube-proxy, not us, forwards.
            families: config.families.iter().map(|f| (*f, true)).collect(),
        });
        Open {
            asn: config.local_asn,
            hold_time: offered_hold_time(config.hold_time),
            router_id: config.router_id,
            capabilities: Capabilities {
                four_octet_asn: true,
                families: config.families.clone(),
                route_refresh: true,
                graceful_restart,
                extended_next_hop_ipv4: false,
                other: Vec::new(),
            },
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let before = self.state();
        let mut out = Vec::new();
        match event {
            Event::ManualStart => self.start(now, &mut out),
            Event::ManualStop(kind) => self.stop(kind, now, &mut out),
            Event::TcpConnected {
                direction,
                local,
                peer,
            } => self.connected(direction, local, peer, now, &mut out),
            Event::TcpFailed => {
                if self.base == State::Connect && self.outgoing.is_none() {
                    self.base = State::Active;
                    self.failures += 1;
                    self.retry_at = Some(now + self.retry_delay());
                }
            }
            Event::TcpClosed { direction, reason } => {
                if self.connection(direction).is_some() {
                    self.drop_connection(direction, reason, now, &mut out);
                }
            }
            Event::Received(direction, inbound) => self.received(direction, inbound, now, &mut out),
            Event::Malformed(direction, notification) => {
                if self.connection(direction).is_some() {
                    let reason = format!("malformed message from the peer: {notification}");
                    out.push(Action::Send(direction, Message::Notification(notification)));
                    self.drop_connection(direction, reason, now, &mut out);
                }
            }
            Event::Timer => self.timer(now, &mut out),
        }
        let after = self.state();
        if before != after {
            out.push(Action::StateChanged {
                from: before,
                to: after,
            });
        }
        out
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        self.failures = 0;
        self.begin_connect(now, out);
    }

    fn begin_connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.base = State::Connect;
        self.retry_at = Some(now + self.config.connect_time);
        out.push(Action::Connect);
    }

    fn stop(&mut self, kind: StopKind, now: Instant, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let restart = matches!(kind, StopKind::Reset(_));
        let reason = match &kind {
            StopKind::Shutdown => "shutting down".to_string(),
            StopKind::Deconfigured => "peer removed from the configuration".to_string(),
            StopKind::Reconfigured => "peer configuration changed".to_string(),
            StopKind::Reset(why) => format!("reset: {why}"),
        };
        let graceful = self.config.graceful_restart.is_some();
        let mut was_up = false;
        for direction in [Direction::Outgoing, Direction::Incoming] {
            let Some(connection) = self.take(direction) else {
                continue;
            };
            let established = matches!(connection.phase, Phase::Established(_));
            was_up |= established;
            let notification = match &kind {
                StopKind::Shutdown if graceful && established => None,
                StopKind::Shutdown => Some(cease_notification(cease::ADMINISTRATIVE_SHUTDOWN)),
                StopKind::Deconfigured => Some(cease_notification(cease::PEER_DECONFIGURED)),
                StopKind::Reconfigured => {
                    Some(cease_notification(cease::OTHER_CONFIGURATION_CHANGE))
                }
                StopKind::Reset(why) => Some(Notification::new(
                    code::CEASE,
                    cease::ADMINISTRATIVE_RESET,
                    shutdown_communication(why),
                )),
            };
            if let Some(notification) = notification {
                out.push(Action::Send(direction, Message::Notification(notification)));
            }
            out.push(Action::CloseTcp(direction));
        }
        if self.base == State::Connect {
            out.push(Action::CloseTcp(Direction::Outgoing));
        }
        if was_up {
            out.push(Action::SessionDown {
                reason: reason.clone(),
            });
        }
        self.base = State::Idle;
        if restart {
            self.failures += 1;
            self.retry_at = Some(now + self.retry_delay());
        } else {
            self.started = false;
            self.retry_at = None;
        }
    }

    fn connected(
        &mut self,
        direction: Direction,
        local: SocketAddr,
        peer: SocketAddr,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let expected = match direction {
            Direction::Outgoing => {
                self.started && self.base == State::Connect && self.outgoing.is_none()
            }
            Direction::Incoming => self.accepts_incoming(),
        };
        if !expected {
            out.push(Action::CloseTcp(direction));
            return;
        }
        // An outgoing attempt still in progress keeps its timeout when the peer connects to us.
        if direction == Direction::Outgoing || self.base != State::Connect {
            self.base = State::Active;
            self.retry_at = None;
        }
        *self.slot(direction) = Some(Connection {
            local,
            peer,
            phase: Phase::OpenSent,
            hold_deadline: Some(now + OPEN_SENT_HOLD_TIME),
            keepalive_deadline: None,
        });
        out.push(Action::Send(direction, Message::Open(self.open_message())));
    }

    fn received(
        &mut self,
        direction: Direction,
        inbound: Inbound,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(connection) = self.connection_mut(direction) else {
            return;
        };
        if let Some(negotiated) = connection.negotiated() {
            // Every message counts as a sign of life (RFC 4271 §8.2.2: KEEPALIVE and UPDATE
            // in Established; anything else either moves the state on or ends the session).
            let hold = negotiated.hold_time;
            connection.hold_deadline = (!hold.is_zero()).then(|| now + hold);
        }
        let state = connection.state();
        let message = match inbound {
            Inbound::Message(message) => message,
            Inbound::TreatAsWithdraw { reason, .. } => {
                if state == State::Established {
                    out.push(Action::UpdateReceived {
                        treat_as_withdraw: Some(reason),
                    });
                } else {
                    self.unexpected(direction, state, UPDATE_TYPE, now, out);
                }
                return;
            }
            Inbound::Ignored { reason } => {
                tracing::debug!(%reason, "ignoring a message from the peer");
                return;
            }
        };
        if let Message::Notification(notification) = message {
            let reason = format!("the peer sent a NOTIFICATION: {notification}");
            self.drop_connection(direction, reason, now, out);
            return;
        }
        match (state, message) {
            (State::OpenSent, Message::Open(open)) => self.open_received(direction, open, now, out),
            (State::OpenConfirm, Message::Keepalive) => self.establish(direction, now, out),
            (State::Established, Message::Keepalive) => {}
            (State::Established, Message::Update(_)) => out.push(Action::UpdateReceived {
                treat_as_withdraw: None,
            }),
            (State::Established, Message::RouteRefresh(family)) => {
                // RFC 2918 §4: a family that was not negotiated is ignored.
                if self
                    .established()
                    .is_some_and(|(_, n)| n.families.contains(&family))
                {
                    out.push(Action::RouteRefresh(family));
                }
            }
            (state, message) => self.unexpected(direction, state, message_type(&message), now, out),
        }
    }

    fn open_received(
        &mut self,
        direction: Direction,
        open: Open,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(connection) = self.connection(direction) else {
            return;
        };
        let negotiated = match negotiate(&self.config, &open, connection, direction) {
            Ok(negotiated) => negotiated,
            Err(notification) => {
                let reason = format!("rejected the peer's OPEN: {notification}");
                out.push(Action::Send(direction, Message::Notification(notification)));
                self.drop_connection(direction, reason, now, out);
                return;
            }
        };
        // Collision detection (§6.8), once both connections have the peer's OPEN, and before
        // this one answers with a KEEPALIVE: a losing connection gets only the CEASE.
        let loser = match self.connection(direction.other()).map(Connection::state) {
            Some(State::Established) => Some(direction),
            Some(State::OpenConfirm) => Some(
                collision_winner(
                    self.config.router_id,
                    negotiated.peer_router_id,
                    self.config.local_asn,
                    negotiated.peer_asn,
                )
                .other(),
            ),
            _ => None,
        };
        if loser == Some(direction) {
            self.close_for_collision(direction, now, out);
            return;
        }
        let hold = negotiated.hold_time;
        let keepalive = negotiated.keepalive_time;
        if let Some(connection) = self.connection_mut(direction) {
            connection.phase = Phase::OpenConfirm(Box::new(negotiated));
            connection.hold_deadline = (!hold.is_zero()).then(|| now + hold);
            connection.keepalive_deadline = (!keepalive.is_zero()).then(|| now + keepalive);
        }
        out.push(Action::Send(direction, Message::Keepalive));
        if let Some(loser) = loser {
            self.close_for_collision(loser, now, out);
        }
    }

    fn establish(&mut self, direction: Direction, now: Instant, out: &mut Vec<Action>) {
        let Some(connection) = self.connection_mut(direction) else {
            return;
        };
        let Phase::OpenConfirm(negotiated) = connection.phase.clone() else {
            return;
        };
        connection.phase = Phase::Established(negotiated.clone());
        self.failures = 0;
        self.retry_at = None;
        if self.connection(direction.other()).is_some() {
            self.close_for_collision(direction.other(), now, out);
        } else if self.base == State::Connect && direction == Direction::Incoming {
            // Stop the outgoing attempt still in progress: this session is up.
            out.push(Action::CloseTcp(Direction::Outgoing));
        }
        self.base = State::Active;
        out.push(Action::Established(*negotiated));
    }

    fn close_for_collision(&mut self, direction: Direction, now: Instant, out: &mut Vec<Action>) {
        let notification = cease_notification(cease::CONNECTION_COLLISION_RESOLUTION);
        out.push(Action::Send(direction, Message::Notification(notification)));
        self.drop_connection(direction, "connection collision".to_string(), now, out);
    }

    fn unexpected(
        &mut self,
        direction: Direction,
        state: State,
        message_type: u8,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let subcode = match state {
            State::OpenSent => fsm_error::UNEXPECTED_IN_OPEN_SENT,
            State::OpenConfirm => fsm_error::UNEXPECTED_IN_OPEN_CONFIRM,
            _ => fsm_error::UNEXPECTED_IN_ESTABLISHED,
        };
        let notification = Notification::new(code::FSM, subcode, vec![message_type]);
        let reason = format!("unexpected message in {state}: {notification}");
        out.push(Action::Send(direction, Message::Notification(notification)));
        self.drop_connection(direction, reason, now, out);
    }

    fn timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        for direction in [Direction::Outgoing, Direction::Incoming] {
            let Some(connection) = self.connection_mut(direction) else {
                continue;
            };
            if connection.hold_deadline.is_some_and(|at| at <= now) {
                let notification = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                out.push(Action::Send(direction, Message::Notification(notification)));
                self.drop_connection(direction, "hold timer expired".to_string(), now, out);
                continue;
            }
            if let (Some(at), Some(negotiated)) =
                (connection.keepalive_deadline, connection.negotiated())
                && at <= now
            {
                connection.keepalive_deadline = Some(now + negotiated.keepalive_time);
                out.push(Action::Send(direction, Message::Keepalive));
            }
        }
        if !self.started || self.retry_at.is_none_or(|at| at > now) {
            return;
        }
        match self.base {
            State::Connect => {
                // The attempt took longer than the connect time: start over.
                out.push(Action::CloseTcp(Direction::Outgoing));
                self.begin_connect(now, out);
            }
            _ if self.outgoing.is_some() || self.incoming.is_some() => self.retry_at = None,
            _ => self.begin_connect(now, out),
        }
    }

    /// Forgets a connection, and when it was the last one, ends the session and schedules the
    /// next attempt.
    fn drop_connection(
        &mut self,
        direction: Direction,
        reason: String,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(connection) = self.take(direction) else {
            return;
        };
        out.push(Action::CloseTcp(direction));
        let was_established = matches!(connection.phase, Phase::Established(_));
        let others_remain = self.outgoing.is_some()
            || self.incoming.is_some()
            || (self.base == State::Connect && self.started);
        if was_established || !others_remain {
            out.push(Action::SessionDown { reason });
        }
        if !others_remain && self.started {
            self.base = State::Idle;
            self.failures += 1;
            self.retry_at = Some(now + self.retry_delay());
        }
    }

    /// 1 s after the first failure, doubling, at most the connect time.
    fn retry_delay(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        (FIRST_RETRY_DELAY * (1u32 << doublings)).min(self.config.connect_time)
    }

    fn connections(&self) -> impl Iterator<Item = (Direction, &Connection)> {
        [
            (Direction::Outgoing, self.outgoing.as_ref()),
            (Direction::Incoming, self.incoming.as_ref()),
        ]
        .into_iter()
        .filter_map(|(d, c)| c.map(|c| (d, c)))
    }

    fn slot(&mut self, direction: Direction) -> &mut Option<Connection> {
        match direction {
            Direction::Outgoing => &mut self.outgoing,
            Direction::Incoming => &mut self.incoming,
        }
    }

    fn connection(&self, direction: Direction) -> Option<&Connection> {
        match direction {
            Direction::Outgoing => self.outgoing.as_ref(),
            Direction::Incoming => self.incoming.as_ref(),
        }
    }

    fn connection_mut(&mut self, direction: Direction) -> Option<&mut Connection> {
        self.slot(direction).as_mut()
    }

    fn take(&mut self, direction: Direction) -> Option<Connection> {
        self.slot(direction).take()
    }
}

const UPDATE_TYPE: u8 = 2;

/// The message type codes (RFC 4271 §4.1, RFC 2918), for RFC 6608's NOTIFICATION data.
fn message_type(message: &Message) -> u8 {
    match message {
        Message::Open(_) => 1,
        Message::Update(_) => UPDATE_TYPE,
        Message::Notification(_) => 3,
        Message::Keepalive => 4,
        Message::RouteRefresh(_) => 5,
    }
}

fn cease_notification(subcode: u8) -> Notification {
    Notification::new(code::CEASE, subcode, Vec::new())
}

/// RFC 9003: a length octet and at most 255 octets of UTF-8.
fn shutdown_communication(text: &str) -> Vec<u8> {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut data = Vec::with_capacity(end + 1);
    data.push(end as u8);
    data.extend_from_slice(&text.as_bytes()[..end]);
    data
}

/// Whole seconds, at most 65535; 1 and 2 are not valid hold times and become 3.
fn offered_hold_time(hold: Duration) -> u16 {
    match hold.as_secs().min(u64::from(u16::MAX)) as u16 {
        1 | 2 => 3,
        seconds => seconds,
    }
}

/// Which connection survives a collision (RFC 4271 §6.8): the one initiated by the side with
/// the higher BGP identifier; with equal identifiers (allowed between ASes, RFC 6286 §2.3),
/// the one initiated by the side with the higher ASN.
pub fn collision_winner(
    local_router_id: Ipv4Addr,
    peer_router_id: Ipv4Addr,
    local_asn: u32,
    peer_asn: u32,
) -> Direction {
    let local_wins = match u32::from(local_router_id).cmp(&u32::from(peer_router_id)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => local_asn > peer_asn,
    };
    if local_wins {
        Direction::Outgoing
    } else {
        Direction::Incoming
    }
}

/// Checks the peer's OPEN against the configuration and works out the session parameters, or
/// says which NOTIFICATION rejects it.
fn negotiate(
    config: &FsmConfig,
    open: &Open,
    connection: &Connection,
    direction: Direction,
) -> Result<Negotiated, Notification> {
    let open_error = |subcode, data| Notification::new(code::OPEN_MESSAGE, subcode, data);
    if matches!(open.hold_time, 1 | 2) {
        return Err(open_error(open_error::UNACCEPTABLE_HOLD_TIME, Vec::new()));
    }
    let ibgp = open.asn == config.local_asn;
    let asn_ok = match config.peer_asn {
        PeerAsn::Fixed(asn) => open.asn == asn,
        PeerAsn::Internal => ibgp,
        PeerAsn::External => !ibgp,
    };
    if !asn_ok {
        return Err(Notification::bad_peer_as(open.asn));
    }
    if open.router_id.is_unspecified() || (ibgp && open.router_id == config.router_id) {
        return Err(open_error(open_error::BAD_BGP_IDENTIFIER, Vec::new()));
    }
    let peer_families = if open.capabilities.families.is_empty() {
        BTreeSet::from([Family::Ipv4Unicast])
    } else {
        open.capabilities.families.clone()
    };
    let families: BTreeSet<Family> = config
        .families
        .intersection(&peer_families)
        .copied()
        .collect();
    if families.is_empty() {
        // RFC 5492 §5: the data lists the capabilities we need, here our multiprotocol ones.
        let data = config
            .families
            .iter()
            .flat_map(|family| {
                let afi: u8 = match family {
                    Family::Ipv4Unicast => 1,
                    Family::Ipv6Unicast => 2,
                };
                [1, 4, 0, afi, 0, 1]
            })
            .collect();
        return Err(open_error(open_error::UNSUPPORTED_CAPABILITY, data));
    }
    let hold_seconds = offered_hold_time(config.hold_time).min(open.hold_time);
    let hold_time = Duration::from_secs(u64::from(hold_seconds));
    let keepalive_time = if hold_time.is_zero() {
        Duration::ZERO
    } else {
        let third = hold_time / 3;
        if !config.keepalive_time.is_zero() && config.keepalive_time < third {
            config.keepalive_time
        } else {
            third
        }
    };
    Ok(Negotiated {
        peer_asn: open.asn,
        peer_router_id: open.router_id,
        ibgp,
        hold_time,
        keepalive_time,
        families,
        four_octet_asn: open.capabilities.four_octet_asn,
        peer_route_refresh: open.capabilities.route_refresh,
        peer_graceful_restart: open.capabilities.graceful_restart.clone(),
        local_address: connection.local,
        peer_address: connection.peer,
        direction,
    })
}

#[cfg(test)]
mod tests;
