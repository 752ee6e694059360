//! One BFD session in asynchronous mode (RFC 5880 §6): the state machine, the three-way
//! handshake, timer negotiation, the Poll/Final sequence and passive mode. Pure: time comes in
//! as `now`, randomness as a [`Jitter`] draw, and every effect goes out as an [`Action`].
//!
//! Demand mode and the Echo function are not used by this side. A peer that asks for Demand
//! mode is honoured (we stop periodic transmission while both sides are Up, §6.8.7).

use std::time::{Duration, Instant};

use crate::packet::{ControlPacket, Diag, State, micros};

/// §6.8.3: while a session is not Up, packets go out no faster than once a second.
pub const SLOW_TX_INTERVAL: Duration = Duration::from_secs(1);
const SLOW_TX_US: u32 = 1_000_000;

/// What the owner of a session configures (one side of a BFD profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.DesiredMinTxInterval while Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult; 0 is not valid on the wire and is raised to 1.
    pub detect_mult: u8,
    /// Passive role (§6.1): send nothing until the peer has sent something.
    pub passive: bool,
}

/// One uniform random draw for the §6.8.7 jitter: 0 reduces the transmit interval by nothing
/// (by 10% when Detect Mult is 1), `u16::MAX` by the full 25%.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jitter(pub u16);

impl Jitter {
    pub const NONE: Jitter = Jitter(0);
    pub const MAX: Jitter = Jitter(u16::MAX);

    /// `interval` reduced by this draw: by 0-25%, or by 10-25% when `detect_mult` is 1 (so
    /// that a single lost packet cannot expire the peer's detection time).
    fn apply(self, interval: Duration, detect_mult: u8) -> Duration {
        let (lowest, span) = if detect_mult == 1 { (10, 15) } else { (0, 25) };
        // Per ten thousand, integer arithmetic so tests can predict exact instants.
        let reduction = lowest * 100 + u32::from(self.0) * span * 100 / u32::from(u16::MAX);
        interval * (10_000 - reduction) / 10_000
    }
}

/// An effect the owner of the session must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Send(ControlPacket),
    StateChanged { from: State, to: State, diag: Diag },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poll {
    Idle,
    /// Packets carry P until a Final arrives. `again`: the parameters changed once more while
    /// this sequence ran, so its Final may acknowledge older values and another one follows.
    Active {
        again: bool,
    },
}

/// A BFD session: the state variables of RFC 5880 §6.8.1 and the timers that drive them.
#[derive(Clone, Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    remote_diag: Diag,
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval as advertised.
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
    /// The values the timers use. §6.8.3 makes them lag the advertised values while a Poll
    /// Sequence runs: a slower transmit rate or a shorter detection time waits for the Final.
    tx_in_force_us: u32,
    rx_in_force_us: u32,
    remote_min_rx_us: u32,
    remote_desired_min_tx_us: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    poll: Poll,
    next_tx: Option<Instant>,
    last_rx: Option<Instant>,
}

impl Session {
    /// A session in state Down. `local_discriminator` must be nonzero and unique on this
    /// system; the owner draws it (randomly, §9).
    pub fn new(config: SessionConfig, local_discriminator: u32, now: Instant) -> Session {
        let config = SessionConfig {
            detect_mult: config.detect_mult.max(1),
            ..config
        };
        let desired_min_tx_us = micros(config.desired_min_tx).max(SLOW_TX_US);
        let required_min_rx_us = micros(config.required_min_rx);
        let mut session = Session {
            config,
            state: State::Down,
            remote_state: State::Down,
            local_discr: local_discriminator,
            remote_discr: 0,
            local_diag: Diag::NoDiagnostic,
            remote_diag: Diag::NoDiagnostic,
            desired_min_tx_us,
            required_min_rx_us,
            tx_in_force_us: desired_min_tx_us,
            rx_in_force_us: required_min_rx_us,
            // §6.8.1: 1 µs until the peer says otherwise.
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            poll: Poll::Idle,
            next_tx: None,
            last_rx: None,
        };
        if session.may_transmit_periodically() {
            session.next_tx = Some(now);
        }
        session
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiag: why this side last changed state.
    pub fn diag(&self) -> Diag {
        self.local_diag
    }

    /// The state the peer last reported (Down once its packets stopped for a detection time).
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    pub fn poll_in_progress(&self) -> bool {
        matches!(self.poll, Poll::Active { .. })
    }

    /// The interval between periodic packets before jitter (§6.8.7): the greater of what we
    /// want and what the peer can take.
    pub fn transmit_interval(&self) -> Duration {
        Duration::from_micros(u64::from(self.tx_in_force_us.max(self.remote_min_rx_us)))
    }

    /// How long without a packet before the session fails (§6.8.4): the peer's Detect Mult
    /// times the greater of our Required Min RX and its Desired Min TX. Zero before the peer
    /// has sent anything.
    pub fn detection_time(&self) -> Duration {
        let agreed = self.rx_in_force_us.max(self.remote_desired_min_tx_us);
        Duration::from_micros(u64::from(agreed) * u64::from(self.remote_detect_mult))
    }

    /// The detection time the peer runs on our packets: what to keep sending AdminDown for
    /// before going silent (§6.8.16).
    pub fn peer_detection_time(&self) -> Duration {
        let agreed = self.desired_min_tx_us.max(self.remote_min_rx_us);
        Duration::from_micros(u64::from(agreed) * u64::from(self.config.detect_mult))
    }

    /// When [`Session::on_timer`] has something to do: a packet to send or a detection time to
    /// expire. `None` when neither can happen until a packet arrives (passive, or nothing heard).
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detection_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn detection_deadline(&self) -> Option<Instant> {
        self.last_rx.map(|at| at + self.detection_time())
    }

    /// Expires the detection time and sends the periodic packet when they are due.
    pub fn on_timer(&mut self, now: Instant, jitter: Jitter) -> Vec<Action> {
        let mut actions = Vec::new();
        if self
            .detection_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            // §6.8.1: a detection time without packets forgets the peer (a passive session
            // falls silent again); §6.8.4: a session in Init or Up goes Down.
            self.last_rx = None;
            self.remote_discr = 0;
            self.remote_state = State::Down;
            self.remote_min_rx_us = 1;
            self.remote_desired_min_tx_us = 0;
            self.remote_detect_mult = 0;
            self.remote_demand = false;
            if matches!(self.state, State::Init | State::Up) {
                self.change_state(State::Down, Diag::ControlDetectionTimeExpired, &mut actions);
                // Tell the peer at once (if it is still there to hear it).
                self.next_tx = Some(now);
            }
        }
        if !self.may_transmit_periodically() {
            self.next_tx = None;
        } else if self.next_tx.is_none_or(|due| now >= due) {
            actions.push(Action::Send(self.packet(false)));
            self.next_tx = Some(now + self.jittered_interval(jitter));
        }
        actions
    }

    /// Processes a packet that passed [`ControlPacket::decode`] and was demultiplexed to this
    /// session (§6.8.6 from "Set bfd.RemoteDiscr" on).
    pub fn on_packet(
        &mut self,
        packet: &ControlPacket,
        now: Instant,
        jitter: Jitter,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discr {
            return actions;
        }
        self.remote_discr = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_diag = packet.diag;
        self.remote_demand = packet.demand;
        self.remote_min_rx_us = packet.required_min_rx_us;
        self.remote_desired_min_tx_us = packet.desired_min_tx_us;
        self.remote_detect_mult = packet.detect_mult;
        self.last_rx = Some(now);
        if packet.is_final && self.poll_in_progress() {
            self.finish_poll();
        }
        let before = self.state;
        if self.state != State::AdminDown {
            if packet.state == State::AdminDown {
                if self.state != State::Down {
                    self.change_state(State::Down, Diag::NeighborSignaledSessionDown, &mut actions);
                }
            } else {
                match (self.state, packet.state) {
                    (State::Down, State::Down) => {
                        self.change_state(State::Init, Diag::NoDiagnostic, &mut actions)
                    }
                    (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                        self.change_state(State::Up, Diag::NoDiagnostic, &mut actions)
                    }
                    (State::Up, State::Down) => self.change_state(
                        State::Down,
                        Diag::NeighborSignaledSessionDown,
                        &mut actions,
                    ),
                    _ => {}
                }
            }
        }
        let answers_poll = packet.poll && self.state != State::AdminDown;
        let changed = self.state != before;
        if answers_poll || (changed && self.may_transmit_periodically()) {
            // A Final goes out at once whatever the timers say (§6.8.7); a state change is sent
            // at once too, so that the handshake does not wait for the slow timer.
            actions.push(Action::Send(self.packet(answers_poll)));
        }
        if !self.may_transmit_periodically() {
            self.next_tx = None;
        } else if changed || self.next_tx.is_none() {
            self.next_tx = Some(now + self.jittered_interval(jitter));
        } else {
            // A shorter interval (the peer's RX went down) takes effect now, not after the
            // packet scheduled at the old rate.
            let sooner = now + self.jittered_interval(jitter);
            self.next_tx = self.next_tx.map(|due| due.min(sooner));
        }
        actions
    }

    /// Takes new parameters; a change of interval while Up starts a Poll Sequence (§6.8.3).
    /// The new values ride on the next periodic packet.
    pub fn update_config(&mut self, config: SessionConfig, now: Instant, jitter: Jitter) {
        self.config = SessionConfig {
            detect_mult: config.detect_mult.max(1),
            ..config
        };
        let desired = self.desired_tx_for_state();
        self.advertise(desired, micros(self.config.required_min_rx));
        self.reschedule_after_change(now, jitter);
    }

    /// §6.8.16: AdminDown with diag 7. Packets keep going out (at the slow rate) so the peer
    /// learns it; the owner stops them after [`Session::peer_detection_time`] if it wants to.
    pub fn admin_down(&mut self, now: Instant, jitter: Jitter) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::AdminDown {
            return actions;
        }
        self.change_state(State::AdminDown, Diag::AdministrativelyDown, &mut actions);
        if self.may_transmit_periodically() {
            actions.push(Action::Send(self.packet(false)));
            self.next_tx = Some(now + self.jittered_interval(jitter));
        }
        actions
    }

    /// §6.8.16: back to Down, from where the handshake starts again.
    pub fn admin_up(&mut self, now: Instant, jitter: Jitter) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != State::AdminDown {
            return actions;
        }
        self.change_state(State::Down, Diag::NoDiagnostic, &mut actions);
        if self.may_transmit_periodically() {
            actions.push(Action::Send(self.packet(false)));
            self.next_tx = Some(now + self.jittered_interval(jitter));
        }
        actions
    }

    fn change_state(&mut self, to: State, diag: Diag, actions: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        actions.push(Action::StateChanged { from, to, diag });
        let desired = self.desired_tx_for_state();
        if to == State::Up {
            self.advertise(desired, self.required_min_rx_us);
        } else {
            // Outside Up nobody relies on our rate yet: no Poll, new values at once.
            self.poll = Poll::Idle;
            self.desired_min_tx_us = desired;
            self.tx_in_force_us = desired;
            self.rx_in_force_us = self.required_min_rx_us;
        }
    }

    fn desired_tx_for_state(&self) -> u32 {
        let configured = micros(self.config.desired_min_tx);
        if self.state == State::Up {
            configured
        } else {
            configured.max(SLOW_TX_US)
        }
    }

    /// Advertises new intervals. While Up, a faster transmit rate and a longer detection time
    /// take effect at once; the opposite directions wait for the Poll Sequence's Final, so that
    /// the peer has adjusted its detection time (or its rate) before ours moves (§6.8.3).
    fn advertise(&mut self, desired_min_tx_us: u32, required_min_rx_us: u32) {
        if desired_min_tx_us == self.desired_min_tx_us
            && required_min_rx_us == self.required_min_rx_us
        {
            return;
        }
        self.desired_min_tx_us = desired_min_tx_us;
        self.required_min_rx_us = required_min_rx_us;
        if self.state == State::Up {
            self.tx_in_force_us = self.tx_in_force_us.min(desired_min_tx_us);
            self.rx_in_force_us = self.rx_in_force_us.max(required_min_rx_us);
            self.poll = match self.poll {
                Poll::Idle => Poll::Active { again: false },
                Poll::Active { .. } => Poll::Active { again: true },
            };
        } else {
            self.tx_in_force_us = desired_min_tx_us;
            self.rx_in_force_us = required_min_rx_us;
        }
    }

    fn finish_poll(&mut self) {
        if self.poll == (Poll::Active { again: true }) {
            self.poll = Poll::Active { again: false };
        } else {
            self.poll = Poll::Idle;
            self.tx_in_force_us = self.desired_min_tx_us;
            self.rx_in_force_us = self.required_min_rx_us;
        }
    }

    fn reschedule_after_change(&mut self, now: Instant, jitter: Jitter) {
        if !self.may_transmit_periodically() {
            self.next_tx = None;
            return;
        }
        let sooner = now + self.jittered_interval(jitter);
        self.next_tx = Some(self.next_tx.map_or(now, |due| due.min(sooner)));
    }

    /// §6.8.7: periodic packets stop in the passive role until the peer is known, while the
    /// peer runs Demand mode (unless we are polling), and when the peer wants none at all.
    fn may_transmit_periodically(&self) -> bool {
        if self.config.passive && self.remote_discr == 0 {
            return false;
        }
        if self.remote_min_rx_us == 0 {
            return false;
        }
        let peer_in_demand =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        !peer_in_demand || self.poll_in_progress()
    }

    fn jittered_interval(&self, jitter: Jitter) -> Duration {
        jitter.apply(self.transmit_interval(), self.config.detect_mult)
    }

    /// The packet this session sends now (§6.8.7 lists every field). A Final never carries P.
    fn packet(&self, is_final: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll_in_progress() && !is_final,
            is_final,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: self.desired_min_tx_us,
            required_min_rx_us: self.required_min_rx_us,
            required_min_echo_rx_us: 0,
        }
    }
}
