//! The hub the ferrolb speaker talks to: one session task per configured peer, the listener for
//! passive sessions, the desired routes per peer, and every session's status in one watch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_bgp_wire::{Family, Message};
use ipnet::IpNet;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fsm::{DEFAULT_CONNECT_TIME, StopKind};
pub use crate::fsm::{Negotiated, PeerAsn, State};
use crate::session::{self, Command, DesiredRoutes, SessionHandle, StatusSink};
use crate::transport::{BGP_PORT, Listener, TransportError};

/// How long [`Speaker::shutdown`] waits for each session to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One BGP peer, as the speaker configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The BGPPeer's name, for status, metrics and logs; unique per speaker.
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub local_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    pub hold_time: Duration,
    pub keepalive_time: Duration,
    /// The longest wait between connection attempts (retries back off from 1 s up to it), and
    /// how long one attempt may take.
    pub connect_time: Duration,
    pub source_address: Option<IpAddr>,
    pub ebgp_multihop: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// Send the graceful restart capability (restart time [`crate::fsm::DEFAULT_RESTART_TIME`]),
    /// and leave without a NOTIFICATION on shutdown.
    pub graceful_restart: bool,
    pub vrf: Option<String>,
    /// The families to negotiate.
    pub families: BTreeSet<Family>,
    /// The next hop of IPv4 routes when the session runs over IPv6.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// The next hop of IPv6 routes when the session runs over IPv4.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl PeerConfig {
    /// A peer with MetalLB's defaults: port 179, hold time 90 s, keepalive 30 s, connect time
    /// 120 s, IPv4 and IPv6 unicast, no password, no graceful restart.
    pub fn new(
        name: impl Into<String>,
        address: IpAddr,
        local_asn: u32,
        peer_asn: PeerAsn,
        router_id: Ipv4Addr,
    ) -> Self {
        Self {
            name: name.into(),
            address,
            port: BGP_PORT,
            local_asn,
            peer_asn,
            router_id,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            connect_time: DEFAULT_CONNECT_TIME,
            source_address: None,
            ebgp_multihop: false,
            password: None,
            graceful_restart: false,
            vrf: None,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }
}

/// What one prefix is advertised with; the rest of the attributes are the session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Sent to iBGP peers only; 100 when unset.
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub state: State,
    pub established_at: Option<Instant>,
    /// Why the session last went down or failed to come up.
    pub last_error: Option<String>,
    pub negotiated: Option<Negotiated>,
    /// UPDATE messages, End-of-RIB markers included.
    pub updates_sent: u64,
    /// UPDATE messages, malformed ones treated as withdraw included.
    pub updates_received: u64,
    pub prefixes_advertised: usize,
    /// Desired routes the session cannot carry, and why (family not negotiated, no next hop).
    pub not_advertised: Option<String>,
    pub notifications_sent: u64,
    pub notifications_received: u64,
    pub opens_sent: u64,
    pub opens_received: u64,
    pub keepalives_sent: u64,
    pub keepalives_received: u64,
    pub route_refreshes_received: u64,
    /// Tells this session's entry from that of an older session of the same name.
    pub(crate) generation: u64,
}

impl PeerStatus {
    /// Counts one message sent or received.
    pub(crate) fn count(&mut self, message: &Message, sent: bool) {
        let counter = match (message, sent) {
            (Message::Open(_), true) => &mut self.opens_sent,
            (Message::Open(_), false) => &mut self.opens_received,
            (Message::Update(_), true) => &mut self.updates_sent,
            (Message::Update(_), false) => &mut self.updates_received,
            (Message::Notification(_), true) => &mut self.notifications_sent,
            (Message::Notification(_), false) => &mut self.notifications_received,
            (Message::Keepalive, true) => &mut self.keepalives_sent,
            (Message::Keepalive, false) => &mut self.keepalives_received,
            (Message::RouteRefresh(_), false) => &mut self.route_refreshes_received,
            // ferrolb never asks for a refresh.
            (Message::RouteRefresh(_), true) => return,
        };
        *counter += 1;
    }

    fn new(generation: u64) -> Self {
        Self {
            state: State::Idle,
            established_at: None,
            last_error: None,
            negotiated: None,
            updates_sent: 0,
            updates_received: 0,
            prefixes_advertised: 0,
            not_advertised: None,
            notifications_sent: 0,
            notifications_received: 0,
            opens_sent: 0,
            opens_received: 0,
            keepalives_sent: 0,
            keepalives_received: 0,
            route_refreshes_received: 0,
            generation,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerOptions {
    /// Where to accept passive sessions (port 179 is [`BGP_PORT`]); `None`: active sessions
    /// only, as MetalLB's native speaker.
    pub listen: Option<Vec<SocketAddr>>,
    /// The VRF device the listening sockets are bound to.
    pub listen_vrf: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Listen(#[from] TransportError),
}

/// The BGP speaker. Cheap to clone; all clones drive the same sessions.
#[derive(Clone)]
pub struct Speaker {
    inner: Arc<Inner>,
}

struct Inner {
    peers: Mutex<Peers>,
    status: Arc<watch::Sender<BTreeMap<String, PeerStatus>>>,
    listener: Option<Arc<Listener>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    generations: AtomicU64,
}

#[derive(Default)]
struct Peers {
    sessions: BTreeMap<String, Peer>,
    /// Desired routes by peer name; kept for names not (yet) configured, until the next
    /// `set_peers`.
    routes: BTreeMap<String, watch::Sender<DesiredRoutes>>,
    /// Sessions told to stop that may still be sending their NOTIFICATION.
    stopping: Vec<JoinHandle<()>>,
}

struct Peer {
    config: PeerConfig,
    handle: SessionHandle,
}

impl Speaker {
    pub async fn start(options: SpeakerOptions) -> Result<Self, Error> {
        let listener = match &options.listen {
            Some(addresses) => Some(Arc::new(
                Listener::bind(addresses, options.listen_vrf.as_deref()).await?,
            )),
            None => None,
        };
        let (status, _) = watch::channel(BTreeMap::new());
        let speaker = Self {
            inner: Arc::new(Inner {
                peers: Mutex::new(Peers::default()),
                status: Arc::new(status),
                listener: listener.clone(),
                accept_task: Mutex::new(None),
                generations: AtomicU64::new(0),
            }),
        };
        if let Some(listener) = listener {
            let weak = Arc::downgrade(&speaker.inner);
            let task = tokio::spawn(async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "accepting a BGP connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    inner.hand_over(stream, peer);
                }
            });
            *lock(&speaker.inner.accept_task) = Some(task);
        }
        Ok(speaker)
    }

    /// The addresses passive sessions are accepted on (with the kernel's port if 0 was asked).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.inner
            .listener
            .as_ref()
            .map(|listener| listener.local_addrs())
            .unwrap_or_default()
    }

    /// The peers to have sessions with (call from within the Tokio runtime: sessions are tasks): new ones start, removed ones stop (CEASE / Peer
    /// De-configured), changed ones restart (CEASE / Other Configuration Change). A name given
    /// twice keeps its first entry.
    pub fn set_peers(&self, peers: Vec<PeerConfig>) {
        let inner = &self.inner;
        let mut wanted: BTreeMap<String, PeerConfig> = BTreeMap::new();
        for peer in peers {
            if wanted.contains_key(&peer.name) {
                tracing::warn!(peer = %peer.name, "BGP peer configured twice; the first entry is used");
                continue;
            }
            wanted.insert(peer.name.clone(), peer);
        }
        let mut state = lock(&inner.peers);
        state.stopping.retain(|task| !task.is_finished());

        let current: Vec<String> = state.sessions.keys().cloned().collect();
        for name in current {
            let kind = match wanted.get(&name) {
                None => StopKind::Deconfigured,
                Some(config) if state.sessions[&name].config != *config => StopKind::Reconfigured,
                Some(_) => continue,
            };
            if let Some(peer) = state.sessions.remove(&name) {
                inner.set_md5(&peer.config, None);
                let _ = peer.handle.commands.send(Command::Stop(kind));
                state.stopping.push(peer.handle.task);
            }
        }
        state.routes.retain(|name, _| wanted.contains_key(name));
        inner.status.send_modify(|map| {
            map.retain(|name, _| wanted.contains_key(name));
        });

        for (name, config) in wanted {
            if state.sessions.contains_key(&name) {
                continue;
            }
            inner.set_md5(&config, config.password.as_deref());
            let routes = state
                .routes
                .entry(name.clone())
                .or_insert_with(|| watch::channel(DesiredRoutes::default()).0)
                .subscribe();
            let generation = inner.generations.fetch_add(1, Ordering::Relaxed);
            inner.status.send_modify(|map| {
                map.insert(name.clone(), PeerStatus::new(generation));
            });
            let sink = StatusSink {
                name: name.clone(),
                generation,
                sender: inner.status.clone(),
            };
            let handle = session::spawn(config.clone(), routes, sink);
            state.sessions.insert(name, Peer { config, handle });
        }
    }

    /// The routes `peer` should have from us; the session sends only the difference.
    pub fn set_routes(&self, peer: &str, routes: BTreeMap<IpNet, Advertised>) {
        let mut state = lock(&self.inner.peers);
        let routes = Arc::new(routes);
        match state.routes.get(peer) {
            Some(sender) => {
                sender.send_replace(routes);
            }
            None => {
                state
                    .routes
                    .insert(peer.to_string(), watch::channel(routes).0);
            }
        }
    }

    /// Drops `peer`'s session now (CEASE / Administrative Reset, `reason` as the shutdown
    /// communication) and reconnects, e.g. when BFD saw the path go down.
    pub fn reset(&self, peer: &str, reason: &str) {
        let state = lock(&self.inner.peers);
        if let Some(session) = state.sessions.get(peer) {
            let _ = session
                .handle
                .commands
                .send(Command::Stop(StopKind::Reset(reason.to_string())));
        }
    }

    pub fn status(&self) -> watch::Receiver<BTreeMap<String, PeerStatus>> {
        self.inner.status.subscribe()
    }

    /// Stops every session: with graceful restart an established session is closed without a
    /// NOTIFICATION (the peer keeps our routes until we are back), otherwise with CEASE /
    /// Administrative Shutdown. Returns when all have finished, or after a grace period.
    pub async fn shutdown(self) {
        if let Some(task) = lock(&self.inner.accept_task).take() {
            task.abort();
        }
        let tasks: Vec<JoinHandle<()>> = {
            let mut state = lock(&self.inner.peers);
            let mut tasks: Vec<_> = std::mem::take(&mut state.stopping);
            for (_, peer) in std::mem::take(&mut state.sessions) {
                let _ = peer.handle.commands.send(Command::Stop(StopKind::Shutdown));
                tasks.push(peer.handle.task);
            }
            tasks
        };
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Inner {
    /// Gives a connection accepted by the listener to the session of the peer it came from.
    fn hand_over(&self, stream: tokio::net::TcpStream, from: SocketAddr) {
        let from = from.ip().to_canonical();
        let state = lock(&self.peers);
        let session = state
            .sessions
            .values()
            .find(|peer| peer.config.address.to_canonical() == from);
        match session {
            Some(peer) => {
                let _ = peer.handle.commands.send(Command::Incoming(stream));
            }
            None => {
                tracing::debug!(%from, "BGP connection from an address that is not a peer refused")
            }
        }
    }

    fn set_md5(&self, config: &PeerConfig, key: Option<&str>) {
        let Some(listener) = &self.listener else {
            return;
        };
        if key.is_none() && config.password.is_none() {
            return;
        }
        if let Err(error) = listener.set_md5(config.address, key) {
            tracing::warn!(peer = %config.name, %error, "cannot set the TCP MD5 key for passive sessions");
        }
    }
}

/// A poisoned lock means a panic elsewhere already; the maps are still consistent (every
/// change is a single insert or remove), so carry on with them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
