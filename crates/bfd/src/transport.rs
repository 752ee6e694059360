//! The I/O edge: UDP sockets and one tokio task that runs every [`Session`] of this node.
//!
//! RFC 5881 single hop: packets are received on port 3784 and accepted only with TTL / hop
//! limit 255 (§5, the generalized TTL security mechanism), which proves they were not forwarded;
//! each session sends from its own source port in 49152-65535 (§4) with TTL 255.
//! Received packets go to a session by Your Discriminator, or by the source address while the
//! peer does not know our discriminator yet.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrLike, recvmsg, setsockopt,
    sockopt,
};
use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::packet::{CONTROL_PORT, ControlPacket, Diag, State};
use crate::session::{Action, Jitter, Session, SessionConfig};

/// RFC 5881 §4: the source port range for BFD Control packets.
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5: the TTL / hop limit of every single-hop packet, sent and accepted.
const SINGLE_HOP_TTL: u8 = 255;
/// IP precedence "internetwork control", as routers mark their own control traffic.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// The longest Control packet (its Length field is one byte).
const MAX_PACKET: usize = 255;
/// However slow the timers, a removed session stops announcing AdminDown after this.
const MAX_ADMIN_DOWN_ANNOUNCEMENT: Duration = Duration::from_secs(10);

/// A BFD profile, as MetalLB's BFDProfile (its defaults are FRR's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The slowest rate we need to receive at (Required Min RX Interval).
    pub receive_interval: Duration,
    /// The rate we would like to send at (Desired Min TX Interval), before jitter.
    pub transmit_interval: Duration,
    pub detect_multiplier: u8,
    /// Wait for the peer to speak first (RFC 5880 §6.1 passive role).
    pub passive: bool,
    /// Multi-hop sessions only; single hop (all this crate does) always requires 255.
    pub minimum_ttl: u8,
    /// Not supported: the Echo function needs the peer to loop our echo packets back through its
    /// forwarding plane and a second socket path here; asking for it only logs that it is ignored.
    pub echo_mode: bool,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
            minimum_ttl: 254,
            echo_mode: false,
        }
    }
}

impl Profile {
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            desired_min_tx: self.transmit_interval,
            required_min_rx: self.receive_interval,
            detect_mult: self.detect_multiplier,
            passive: self.passive,
        }
    }
}

/// What the owner of a session sees: our state and why, and what the peer last said. RFC 5882
/// §3.2: a session that went Down because the peer is AdminDown (`remote_state`) is no reason
/// to take the client (BGP) session down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub state: State,
    pub diag: Diag,
    pub remote_state: State,
    pub remote_diag: Diag,
    pub local: IpAddr,
    pub last_change: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("BFD socket on {address}: {source}")]
    Socket {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("no free UDP source port in 49152-65535 on {0}")]
    NoSourcePort(IpAddr),
}

/// Handle to the running BFD sessions. Clones share them; when the last clone is dropped every
/// session sends AdminDown once and the task ends.
#[derive(Clone)]
pub struct Bfd {
    commands: mpsc::UnboundedSender<Command>,
    states: watch::Receiver<BTreeMap<IpAddr, PeerState>>,
}

enum Command {
    Add {
        peer: IpAddr,
        local: IpAddr,
        profile: Profile,
        socket: UdpSocket,
    },
    Remove {
        peer: IpAddr,
    },
}

impl Bfd {
    /// Listens on port 3784 of each address in `bind` (on 0.0.0.0 and :: when it is empty) and
    /// starts the task that runs the sessions.
    pub async fn start(bind: Vec<IpAddr>) -> Result<Bfd, Error> {
        let bind = if bind.is_empty() {
            vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ]
        } else {
            bind
        };
        let (datagrams_tx, datagrams) = mpsc::channel(1024);
        let mut receivers = Vec::new();
        for address in bind {
            let address = SocketAddr::new(address, CONTROL_PORT);
            let socket =
                receive_socket(address).map_err(|source| Error::Socket { address, source })?;
            let socket = tokio::net::UdpSocket::from_std(socket)
                .map_err(|source| Error::Socket { address, source })?;
            receivers.push(tokio::spawn(receive_loop(
                socket,
                address,
                datagrams_tx.clone(),
            )));
        }
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (states_tx, states) = watch::channel(BTreeMap::new());
        let engine = Engine {
            peers: HashMap::new(),
            peers_by_discriminator: HashMap::new(),
            rng: new_rng(),
            states: states_tx,
            receivers,
        };
        tokio::spawn(engine.run(commands, datagrams));
        Ok(Bfd {
            commands: commands_tx,
            states,
        })
    }

    /// Runs a session to `peer` from `local` with `profile`. A session to the same peer from the
    /// same address keeps running with the new profile (a Poll Sequence if it is Up); one from
    /// another address is replaced. Fails when no socket can be bound to `local`.
    pub fn add(&self, peer: IpAddr, local: IpAddr, profile: Profile) -> Result<(), Error> {
        let socket = send_socket(local)?;
        if self
            .commands
            .send(Command::Add {
                peer: peer.to_canonical(),
                local,
                profile,
                socket,
            })
            .is_err()
        {
            warn!(%peer, "BFD task has stopped; session not added");
        }
        Ok(())
    }

    /// Stops the session to `peer`, announcing AdminDown to it for a detection time first.
    pub fn remove(&self, peer: IpAddr) {
        if self
            .commands
            .send(Command::Remove {
                peer: peer.to_canonical(),
            })
            .is_err()
        {
            warn!(%peer, "BFD task has stopped; nothing to remove");
        }
    }

    /// The state of every configured session, updated on each state change.
    pub fn states(&self) -> watch::Receiver<BTreeMap<IpAddr, PeerState>> {
        self.states.clone()
    }
}

fn new_rng() -> StdRng {
    StdRng::try_from_rng(&mut SysRng).unwrap_or_else(|_| {
        // Only jitter and discriminators come from it; GTSM, not their secrecy, is what keeps
        // off-link packets out. The clock is an acceptable seed if the OS has no entropy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        StdRng::seed_from_u64(nanos as u64 ^ u64::from(std::process::id()))
    })
}

fn receive_socket(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    match address {
        SocketAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?,
        SocketAddr::V6(_) => {
            socket.set_only_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// A socket bound to `local` and a source port of its own in 49152-65535, starting the search
/// at a random port so that sessions do not queue up on the same ones.
fn send_socket(local: IpAddr) -> Result<UdpSocket, Error> {
    let error = |source| Error::Socket {
        address: SocketAddr::new(local, 0),
        source,
    };
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(local, 0)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(error)?;
    match local {
        IpAddr::V4(_) => {
            socket
                .set_ttl_v4(u32::from(SINGLE_HOP_TTL))
                .map_err(error)?;
            socket.set_tos_v4(TOS_NETWORK_CONTROL).map_err(error)?;
        }
        IpAddr::V6(_) => {
            socket
                .set_unicast_hops_v6(u32::from(SINGLE_HOP_TTL))
                .map_err(error)?;
            socket.set_tclass_v6(TOS_NETWORK_CONTROL).map_err(error)?;
        }
    }
    socket.set_nonblocking(true).map_err(error)?;
    let ports = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let first = new_rng().random_range(0..ports);
    for offset in 0..ports {
        let port = *SOURCE_PORTS.start() + ((first + offset) % ports) as u16;
        let address = SocketAddr::new(local, port);
        match socket.bind(&address.into()) {
            Ok(()) => return Ok(socket.into()),
            Err(bind) if bind.kind() == io::ErrorKind::AddrInUse => continue,
            Err(source) => return Err(Error::Socket { address, source }),
        }
    }
    Err(Error::NoSourcePort(local))
}

struct Datagram {
    source: IpAddr,
    payload: Vec<u8>,
    received: Instant,
}

async fn receive_loop(
    socket: tokio::net::UdpSocket,
    address: SocketAddr,
    out: mpsc::Sender<Datagram>,
) {
    let mut buffer = [0u8; MAX_PACKET];
    loop {
        let fd = socket.as_raw_fd();
        let received = socket
            .async_io(Interest::READABLE, || receive(fd, address, &mut buffer))
            .await;
        match received {
            Ok((len, Some(source), hop_limit)) => {
                // RFC 5881 §5: anything but 255 was forwarded by a router, or forged off-link.
                if hop_limit != Some(SINGLE_HOP_TTL) {
                    debug!(%source, ?hop_limit, "BFD packet dropped: TTL/hop limit is not 255");
                    continue;
                }
                let datagram = Datagram {
                    source: source.to_canonical(),
                    payload: buffer[..len].to_vec(),
                    received: Instant::now(),
                };
                match out.try_send(datagram) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        debug!("BFD receive queue full; packet dropped")
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok((_, None, _)) => {}
            Err(error) => {
                warn!(%address, %error, "BFD receive failed");
                // Not a busy loop if the error persists.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One `recvmsg` on `fd`: the payload length, the source address and the TTL / hop limit.
fn receive(
    fd: RawFd,
    address: SocketAddr,
    buffer: &mut [u8],
) -> io::Result<(usize, Option<IpAddr>, Option<u8>)> {
    match address {
        SocketAddr::V4(_) => receive_from::<SockaddrIn>(fd, buffer, |source| {
            IpAddr::V4(*SocketAddrV4::from(*source).ip())
        }),
        SocketAddr::V6(_) => receive_from::<SockaddrIn6>(fd, buffer, |source| {
            IpAddr::V6(*SocketAddrV6::from(*source).ip())
        }),
    }
}

fn receive_from<A: SockaddrLike>(
    fd: RawFd,
    buffer: &mut [u8],
    source_ip: impl Fn(&A) -> IpAddr,
) -> io::Result<(usize, Option<IpAddr>, Option<u8>)> {
    let mut control = nix::cmsg_space!(i32);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<A>(fd, &mut iov, Some(&mut control), MsgFlags::empty())?;
    let mut hop_limit = None;
    for cmsg in message.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
                hop_limit = u8::try_from(ttl).ok();
            }
            _ => {}
        }
    }
    let source = message.address.as_ref().map(source_ip);
    Ok((message.bytes, source, hop_limit))
}

struct Peer {
    session: Session,
    local: IpAddr,
    socket: UdpSocket,
    /// Removed: announcing AdminDown until then, no longer in the published states.
    retiring_until: Option<Instant>,
    send_failing: bool,
}

struct Engine {
    peers: HashMap<IpAddr, Peer>,
    peers_by_discriminator: HashMap<u32, IpAddr>,
    rng: StdRng,
    states: watch::Sender<BTreeMap<IpAddr, PeerState>>,
    receivers: Vec<JoinHandle<()>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        for receiver in &self.receivers {
            receiver.abort();
        }
    }
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut datagrams: mpsc::Receiver<Datagram>,
    ) {
        loop {
            let wake = self.next_deadline();
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some(datagram) = datagrams.recv() => self.receive(datagram),
                () = timer => self.fire_timers(Instant::now()),
            }
        }
        // The owner is gone (the speaker stops): tell every peer, so that it does not take
        // this for a failure (RFC 5882 §3.2).
        let now = Instant::now();
        let peers: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in peers {
            let jitter = self.jitter();
            if let Some(peer) = self.peers.get_mut(&address) {
                let actions = peer.session.admin_down(now, jitter);
                peer.carry_out(address, actions, &self.states, now);
            }
        }
    }

    fn jitter(&mut self) -> Jitter {
        Jitter(self.rng.random())
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Add {
                peer,
                local,
                profile,
                socket,
            } => self.add(peer, local, profile, socket, now),
            Command::Remove { peer } => self.remove(peer, now),
        }
    }

    fn add(
        &mut self,
        address: IpAddr,
        local: IpAddr,
        profile: Profile,
        socket: UdpSocket,
        now: Instant,
    ) {
        if profile.echo_mode {
            warn!(peer = %address, "BFD echo mode requested but not supported (the peer would have to loop our echo packets back through its forwarding plane); running asynchronous mode only");
        }
        let config = profile.session_config();
        let jitter = self.jitter();
        if let Some(peer) = self.peers.get_mut(&address)
            && peer.local == local
            && peer.retiring_until.is_none()
        {
            // Same session: keep discriminator and source port (RFC 5881 §4), renegotiate; the
            // socket `add` opened in case this was a new session is closed unused.
            peer.session.update_config(config, now, jitter);
            return;
        }
        if let Some(old) = self.peers.remove(&address) {
            self.peers_by_discriminator
                .remove(&old.session.local_discriminator());
        }
        let discriminator = loop {
            let candidate: u32 = self.rng.random();
            if candidate != 0 && !self.peers_by_discriminator.contains_key(&candidate) {
                break candidate;
            }
        };
        let session = Session::new(config, discriminator, now);
        self.states.send_modify(|states| {
            states.insert(address, peer_state(&session, local, now));
        });
        self.peers_by_discriminator.insert(discriminator, address);
        self.peers.insert(
            address,
            Peer {
                session,
                local,
                socket,
                retiring_until: None,
                send_failing: false,
            },
        );
        info!(peer = %address, %local, discriminator, "BFD session added");
    }

    fn remove(&mut self, address: IpAddr, now: Instant) {
        let jitter = self.jitter();
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        self.states.send_modify(|states| {
            states.remove(&address);
        });
        if peer.retiring_until.is_some() {
            return;
        }
        peer.retiring_until = Some(
            now + peer
                .session
                .peer_detection_time()
                .min(MAX_ADMIN_DOWN_ANNOUNCEMENT),
        );
        let actions = peer.session.admin_down(now, jitter);
        peer.carry_out(address, actions, &self.states, now);
        info!(peer = %address, "BFD session removed; announcing AdminDown");
    }

    fn receive(&mut self, datagram: Datagram) {
        let packet = match ControlPacket::decode(&datagram.payload) {
            Ok(packet) => packet,
            Err(error) => {
                debug!(source = %datagram.source, %error, "BFD packet discarded");
                return;
            }
        };
        // RFC 5880 §6.8.6: by Your Discriminator when the peer knows it, else by address.
        let address = if packet.your_discriminator != 0 {
            match self.peers_by_discriminator.get(&packet.your_discriminator) {
                Some(address) if *address == datagram.source => *address,
                _ => {
                    debug!(source = %datagram.source, your_discriminator = packet.your_discriminator, "BFD packet for no session of ours");
                    return;
                }
            }
        } else {
            datagram.source
        };
        let jitter = self.jitter();
        let Some(peer) = self.peers.get_mut(&address) else {
            debug!(source = %datagram.source, "BFD packet from an unknown peer");
            return;
        };
        let actions = peer.session.on_packet(&packet, datagram.received, jitter);
        peer.carry_out(address, actions, &self.states, datagram.received);
    }

    fn fire_timers(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.session.next_deadline().is_some_and(|at| at <= now))
            .map(|(address, _)| *address)
            .collect();
        for address in due {
            let jitter = self.jitter();
            if let Some(peer) = self.peers.get_mut(&address) {
                let actions = peer.session.on_timer(now, jitter);
                peer.carry_out(address, actions, &self.states, now);
            }
        }
        let retired: Vec<(IpAddr, u32)> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.retiring_until.is_some_and(|until| until <= now))
            .map(|(address, peer)| (*address, peer.session.local_discriminator()))
            .collect();
        for (address, discriminator) in retired {
            self.peers.remove(&address);
            self.peers_by_discriminator.remove(&discriminator);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|peer| [peer.session.next_deadline(), peer.retiring_until])
            .flatten()
            .min()
    }
}

impl Peer {
    fn carry_out(
        &mut self,
        address: IpAddr,
        actions: Vec<Action>,
        states: &watch::Sender<BTreeMap<IpAddr, PeerState>>,
        now: Instant,
    ) {
        for action in actions {
            match action {
                Action::Send(packet) => self.send(address, &packet),
                Action::StateChanged { from, to, diag } => {
                    info!(peer = %address, ?from, ?to, ?diag, "BFD session state changed");
                    if self.retiring_until.is_none() {
                        let state = peer_state(&self.session, self.local, now);
                        states.send_modify(|states| {
                            states.insert(address, state);
                        });
                    }
                }
            }
        }
    }

    fn send(&mut self, address: IpAddr, packet: &ControlPacket) {
        match self
            .socket
            .send_to(&packet.encode(), SocketAddr::new(address, CONTROL_PORT))
        {
            Ok(_) => self.send_failing = false,
            Err(error) => {
                // Once per outage, not once per packet.
                if !self.send_failing {
                    warn!(peer = %address, %error, "sending BFD packet failed");
                }
                self.send_failing = true;
            }
        }
    }
}

fn peer_state(session: &Session, local: IpAddr, now: Instant) -> PeerState {
    PeerState {
        state: session.state(),
        diag: session.diag(),
        remote_state: session.remote_state(),
        remote_diag: session.remote_diag(),
        local,
        last_change: now,
    }
}
