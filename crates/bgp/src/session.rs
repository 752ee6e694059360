//! One task per peer: the thin shell around [`crate::fsm::Fsm`]. It opens the outgoing TCP
//! connection, takes the incoming one the speaker's listener hands over, frames and decodes
//! what arrives, feeds the state machine, writes what it says, and once the session is
//! established keeps the peer's Adj-RIB-Out equal to the desired routes: everything and then
//! End-of-RIB on establishment, only the difference after each change.

pub mod routes;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrolb_bgp_wire::{
    Context, Family, Inbound, Message, PathAttributes, Update, decode, encode, frame_length, pack,
};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fsm::{Action, Direction, Event, Fsm, FsmConfig, PeerAsn, StopKind};
use crate::speaker::{Advertised, PeerConfig, PeerStatus};
use crate::transport::{self, ConnectOptions};
use routes::{RouteContext, build, diff};

/// The desired routes of one peer, as the speaker publishes them.
pub type DesiredRoutes = Arc<BTreeMap<IpNet, Advertised>>;

/// How long a connection that just got our NOTIFICATION is kept open so the peer reads it:
/// closing a socket with unread input makes Linux send a RST, which can overtake the data.
const LINGER_AFTER_NOTIFICATION: Duration = Duration::from_secs(1);
/// The shortest time a write may block before the connection counts as broken.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Command {
    /// A connection the peer opened to our listener.
    Incoming(TcpStream),
    /// Stop (or, for [`StopKind::Reset`], drop and reconnect).
    Stop(StopKind),
}

/// The speaker's end of a session task.
pub(crate) struct SessionHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub task: JoinHandle<()>,
}

/// Writes one peer's entry of the speaker's status map. `generation` tells this session's entry
/// from that of a newer session for a peer of the same name.
#[derive(Clone)]
pub(crate) struct StatusSink {
    pub name: String,
    pub generation: u64,
    pub sender: Arc<watch::Sender<BTreeMap<String, PeerStatus>>>,
}

impl StatusSink {
    fn update(&self, change: impl FnOnce(&mut PeerStatus)) {
        self.sender
            .send_if_modified(|map| match map.get_mut(&self.name) {
                Some(status) if status.generation == self.generation => {
                    change(status);
                    true
                }
                _ => false,
            });
    }
}

pub(crate) fn spawn(
    config: PeerConfig,
    routes: watch::Receiver<DesiredRoutes>,
    status: StatusSink,
) -> SessionHandle {
    let (commands, receiver) = mpsc::unbounded_channel();
    let session = Session {
        fsm: Fsm::new(fsm_config(&config)),
        config,
        outgoing: None,
        incoming: None,
        connecting: None,
        routes,
        routes_closed: false,
        sent: BTreeMap::new(),
        pending: VecDeque::new(),
        status,
        commands: receiver,
    };
    let task = tokio::spawn(session.run());
    SessionHandle { commands, task }
}

pub(crate) fn fsm_config(config: &PeerConfig) -> FsmConfig {
    FsmConfig {
        local_asn: config.local_asn,
        peer_asn: config.peer_asn,
        router_id: config.router_id,
        hold_time: config.hold_time,
        keepalive_time: config.keepalive_time,
        connect_time: config.connect_time,
        families: config.families.clone(),
        graceful_restart: config
            .graceful_restart
            .then_some(crate::fsm::DEFAULT_RESTART_TIME),
    }
}

/// The TTL of our packets: 1 for single-hop eBGP, 255 with eBGP multihop (as FRR), the
/// kernel's default for iBGP.
pub(crate) fn ttl(config: &PeerConfig) -> Option<u8> {
    let ebgp = match config.peer_asn {
        PeerAsn::Fixed(asn) => asn != config.local_asn,
        PeerAsn::External => true,
        PeerAsn::Internal => false,
    };
    match (ebgp, config.ebgp_multihop) {
        (false, _) => None,
        (true, false) => Some(1),
        (true, true) => Some(255),
    }
}

struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buffer: BytesMut,
    ctx: Context,
    /// A write failed; nothing more is written.
    broken: bool,
    /// We sent a NOTIFICATION on it.
    notified: bool,
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<TcpStream, transport::TransportError>> + Send>>;

struct Session {
    config: PeerConfig,
    fsm: Fsm,
    outgoing: Option<Connection>,
    incoming: Option<Connection>,
    connecting: Option<ConnectFuture>,
    routes: watch::Receiver<DesiredRoutes>,
    routes_closed: bool,
    /// The Adj-RIB-Out: what the peer has from us on the established connection.
    sent: BTreeMap<IpNet, PathAttributes>,
    /// Events found while carrying out actions (a write that failed), handled next.
    pending: VecDeque<Event>,
    status: StatusSink,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl Session {
    async fn run(mut self) {
        self.step(Event::ManualStart).await;
        loop {
            let deadline = self.fsm.next_deadline();
            let established = self.fsm.established().is_some();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Incoming(stream)) => self.incoming_connection(stream).await,
                    Some(Command::Stop(kind)) => {
                        let last = !matches!(kind, StopKind::Reset(_));
                        self.step(Event::ManualStop(kind)).await;
                        if last {
                            break;
                        }
                    }
                    // The speaker is gone without a shutdown: stop as it would have.
                    None => {
                        self.step(Event::ManualStop(StopKind::Shutdown)).await;
                        break;
                    }
                },
                result = connect_in_progress(&mut self.connecting) => {
                    self.connecting = None;
                    match result {
                        Ok(stream) => self.outgoing_connected(stream).await,
                        Err(error) => {
                            let error = error.to_string();
                            tracing::debug!(peer = %self.config.name, %error, "BGP connection attempt failed");
                            self.status.update(|s| s.last_error = Some(error));
                            self.step(Event::TcpFailed).await;
                        }
                    }
                }
                read = read_some(&mut self.outgoing) => self.on_read(Direction::Outgoing, read).await,
                read = read_some(&mut self.incoming) => self.on_read(Direction::Incoming, read).await,
                () = sleep_until(deadline) => self.step(Event::Timer).await,
                changed = self.routes.changed(), if established && !self.routes_closed => {
                    if changed.is_err() {
                        self.routes_closed = true;
                    } else {
                        self.sync_routes().await;
                        // A write that failed left an event behind.
                        self.handle_pending().await;
                    }
                }
            }
        }
    }

    /// Hands one event to the state machine and carries out what it says, then whatever
    /// events that produced.
    async fn step(&mut self, event: Event) {
        self.pending.push_back(event);
        self.handle_pending().await;
    }

    async fn handle_pending(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            let actions = self.fsm.handle(event, Instant::now());
            for action in actions {
                self.execute(action).await;
            }
        }
    }

    async fn execute(&mut self, action: Action) {
        match action {
            Action::Connect => {
                let options = ConnectOptions {
                    peer: SocketAddr::new(self.config.address, self.config.port),
                    source: self.config.source_address,
                    md5_key: self.config.password.clone(),
                    ttl: ttl(&self.config),
                    vrf: self.config.vrf.clone(),
                    timeout: self.config.connect_time,
                };
                self.connecting = Some(Box::pin(async move { transport::connect(&options).await }));
            }
            Action::Send(direction, message) => self.send(direction, &message).await,
            Action::CloseTcp(direction) => self.close(direction).await,
            Action::StateChanged { from, to } => {
                tracing::info!(peer = %self.config.name, %from, %to, "BGP session state changed");
                self.status.update(|s| s.state = to);
            }
            Action::Established(negotiated) => {
                tracing::info!(
                    peer = %self.config.name,
                    peer_asn = negotiated.peer_asn,
                    hold_time = ?negotiated.hold_time,
                    families = ?negotiated.families,
                    "BGP session established"
                );
                let four_octet_asn = negotiated.four_octet_asn;
                if let Some(connection) = self.connection_mut(negotiated.direction) {
                    connection.ctx.four_octet_asn = four_octet_asn;
                }
                self.status.update(|s| {
                    s.established_at = Some(Instant::now());
                    s.negotiated = Some(negotiated);
                });
                self.sent.clear();
                self.sync_routes().await;
                let families: Vec<Family> = self
                    .fsm
                    .established()
                    .map(|(_, n)| n.families.iter().copied().collect())
                    .unwrap_or_default();
                for family in families {
                    self.send_update(Message::Update(Update::end_of_rib(family)))
                        .await;
                }
            }
            Action::SessionDown { reason } => {
                tracing::warn!(peer = %self.config.name, %reason, "BGP session down");
                self.sent.clear();
                self.status.update(|s| {
                    s.last_error = Some(reason);
                    s.established_at = None;
                    s.negotiated = None;
                    s.prefixes_advertised = 0;
                });
            }
            Action::UpdateReceived { treat_as_withdraw } => {
                if let Some(reason) = &treat_as_withdraw {
                    tracing::warn!(peer = %self.config.name, %reason, "malformed UPDATE from the peer treated as withdraw");
                }
            }
            Action::RouteRefresh(family) => self.resend(family).await,
        }
    }

    async fn outgoing_connected(&mut self, stream: TcpStream) {
        let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
            self.step(Event::TcpFailed).await;
            return;
        };
        self.outgoing = Some(Connection::new(stream));
        self.step(Event::TcpConnected {
            direction: Direction::Outgoing,
            local,
            peer,
        })
        .await;
    }

    async fn incoming_connection(&mut self, stream: TcpStream) {
        if !self.fsm.accepts_incoming() {
            tracing::debug!(peer = %self.config.name, state = %self.fsm.state(), "incoming BGP connection refused");
            return;
        }
        let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
            return;
        };
        if let Some(ttl) = ttl(&self.config)
            && let Err(error) = transport::set_ttl(&stream, ttl)
        {
            tracing::warn!(peer = %self.config.name, %error, "incoming BGP connection refused");
            return;
        }
        self.incoming = Some(Connection::new(stream));
        self.step(Event::TcpConnected {
            direction: Direction::Incoming,
            local,
            peer,
        })
        .await;
    }

    async fn on_read(&mut self, direction: Direction, read: io::Result<usize>) {
        let reason = match read {
            Ok(0) => "the peer closed the connection".to_string(),
            Ok(_) => return self.drain_frames(direction).await,
            Err(error) => format!("reading from the peer failed: {error}"),
        };
        self.step(Event::TcpClosed { direction, reason }).await;
    }

    /// Decodes and delivers every whole message in the connection's buffer.
    async fn drain_frames(&mut self, direction: Direction) {
        loop {
            let Some(connection) = self.connection_mut(direction) else {
                return;
            };
            let event = match frame_length(&connection.buffer, &connection.ctx) {
                Ok(Some(length)) if connection.buffer.len() >= length => {
                    let frame = connection.buffer.split_to(length);
                    match decode(&frame, &connection.ctx) {
                        Ok(inbound) => {
                            if let Inbound::Message(Message::Open(open)) = &inbound {
                                // We always send the capability: the peer's decides.
                                connection.ctx.four_octet_asn = open.capabilities.four_octet_asn;
                            }
                            match &inbound {
                                Inbound::Message(message) => {
                                    self.status.update(|s| s.count(message, false));
                                }
                                Inbound::TreatAsWithdraw { .. } => {
                                    self.status.update(|s| s.updates_received += 1);
                                }
                                Inbound::Ignored { .. } => {}
                            }
                            Event::Received(direction, inbound)
                        }
                        Err(notification) => Event::Malformed(direction, notification),
                    }
                }
                Ok(_) => return,
                Err(notification) => Event::Malformed(direction, notification),
            };
            self.step(event).await;
        }
    }

    /// Brings the peer's Adj-RIB-Out to the desired routes.
    async fn sync_routes(&mut self) {
        let Some(ctx) = self.route_context() else {
            return;
        };
        let desired = self.routes.borrow_and_update().clone();
        let built = build(&desired, &ctx);
        let (withdrawn, announced) = diff(&self.sent, &built.routes);
        let updates = pack(&withdrawn, &announced, &self.wire_context());
        for update in updates {
            if !self.send_update(Message::Update(update)).await {
                return;
            }
        }
        self.sent = built.routes;
        let count = self.sent.len();
        let not_advertised =
            (!built.not_advertised.is_empty()).then(|| built.not_advertised.join("; "));
        let name = &self.config.name;
        self.status.update(|s| {
            // Logged when it changes, not on every route change.
            if let Some(text) = &not_advertised
                && s.not_advertised.as_ref() != Some(text)
            {
                tracing::warn!(peer = %name, "{text}");
            }
            s.prefixes_advertised = count;
            s.not_advertised = not_advertised;
        });
    }

    /// ROUTE-REFRESH: everything of `family` again (RFC 2918).
    async fn resend(&mut self, family: Family) {
        let mut groups: BTreeMap<&PathAttributes, Vec<IpNet>> = BTreeMap::new();
        for (prefix, attributes) in &self.sent {
            if Family::of(prefix) == family {
                groups.entry(attributes).or_default().push(*prefix);
            }
        }
        let announced: Vec<(PathAttributes, Vec<IpNet>)> = groups
            .into_iter()
            .map(|(attributes, prefixes)| (attributes.clone(), prefixes))
            .collect();
        for update in pack(&[], &announced, &self.wire_context()) {
            if !self.send_update(Message::Update(update)).await {
                return;
            }
        }
    }

    fn route_context(&self) -> Option<RouteContext> {
        let (_, negotiated) = self.fsm.established()?;
        Some(RouteContext {
            local_asn: self.config.local_asn,
            ibgp: negotiated.ibgp,
            families: negotiated.families.clone(),
            local_address: negotiated.local_address.ip(),
            next_hop_v4: self.config.next_hop_v4,
            next_hop_v6: self.config.next_hop_v6,
        })
    }

    fn wire_context(&self) -> Context {
        self.fsm
            .established()
            .and_then(|(direction, _)| self.connection(direction))
            .map(|connection| connection.ctx)
            .unwrap_or_default()
    }

    /// Sends on the established connection; false if there is none or the write failed.
    async fn send_update(&mut self, message: Message) -> bool {
        let Some((direction, _)) = self.fsm.established() else {
            return false;
        };
        self.send(direction, &message).await;
        self.connection(direction).is_some_and(|c| !c.broken)
    }

    async fn send(&mut self, direction: Direction, message: &Message) {
        let write_timeout = self.config.hold_time.max(MIN_WRITE_TIMEOUT);
        let name = self.config.name.clone();
        let Some(connection) = self.connection_mut(direction) else {
            return;
        };
        if connection.broken {
            return;
        }
        let bytes = match encode(message, &connection.ctx) {
            Ok(bytes) => bytes,
            Err(error) => {
                // Our own message: a bug or a configuration the codec cannot express. The
                // session cannot go on without it.
                tracing::error!(peer = %name, %error, "cannot encode a BGP message");
                connection.broken = true;
                let reason = format!("cannot encode a message for the peer: {error}");
                self.pending
                    .push_back(Event::TcpClosed { direction, reason });
                return;
            }
        };
        let result = tokio::time::timeout(write_timeout, connection.writer.write_all(&bytes)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("writing to the peer failed: {error}")),
            Err(_) => Some(format!("writing to the peer stalled for {write_timeout:?}")),
        };
        if let Some(reason) = failure {
            connection.broken = true;
            self.pending
                .push_back(Event::TcpClosed { direction, reason });
            return;
        }
        if matches!(message, Message::Notification(_)) {
            connection.notified = true;
        }
        self.status.update(|s| s.count(message, true));
    }

    async fn close(&mut self, direction: Direction) {
        if direction == Direction::Outgoing {
            self.connecting = None;
        }
        let Some(mut connection) = self.slot(direction).take() else {
            return;
        };
        let _ = connection.writer.shutdown().await;
        if connection.notified && !connection.broken {
            // Let the NOTIFICATION reach the peer: wait (briefly) for it to close its side.
            let _ = tokio::time::timeout(LINGER_AFTER_NOTIFICATION, async {
                let mut discard = [0u8; 4096];
                while let Ok(n) = connection.reader.read(&mut discard).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
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
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader,
            writer,
            buffer: BytesMut::with_capacity(4096),
            ctx: Context::default(),
            broken: false,
            notified: false,
        }
    }
}

async fn read_some(connection: &mut Option<Connection>) -> io::Result<usize> {
    match connection {
        Some(connection) if !connection.broken => {
            connection.reader.read_buf(&mut connection.buffer).await
        }
        _ => std::future::pending().await,
    }
}

async fn connect_in_progress(
    connecting: &mut Option<ConnectFuture>,
) -> Result<TcpStream, transport::TransportError> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
