//! The I/O shell around the codecs: one AF_PACKET socket per interface, answering ARP
//! requests and Neighbor Solicitations for the IPs this node currently owns, and announcing
//! an IP with gratuitous ARP / unsolicited Neighbor Advertisements when it is taken over.
//!
//! # Sockets
//!
//! Each interface gets one `AF_PACKET`/`SOCK_RAW` socket, made with `socket2` and created
//! with protocol 0 so it receives nothing until it is bound. A classic BPF filter
//! ([`frame_filter`]) is attached before the bind: it passes ARP and ICMPv6 type 135
//! (Neighbor Solicitation) and drops everything else, including frames this host sends
//! itself (`PACKET_OUTGOING`), so the kernel wakes the responder only for frames it may
//! answer. `pnet_datalink` then binds the socket to the interface (`ETH_P_ALL`, no
//! promiscuous mode) and provides the sender; the receiving side is a duplicate of the same
//! socket registered with tokio's `AsyncFd`, read without any thread of its own.
//!
//! Neighbor Advertisements are sent from the target address itself, as Linux does for its
//! own addresses: some resolvers (ndisc6 among them) ignore an answer to a solicitation for
//! X that does not come from X, and receivers' caches take either.
//!
//! Neighbor Solicitations go to the target's solicited-node multicast group. The responder
//! joins that group on every interface for every owned IPv6 address, through an IPv6 UDP
//! socket's `IPV6_ADD_MEMBERSHIP` (which programs the interface's multicast filter and sends
//! an MLD report, so snooping bridges forward the solicitations too).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pnet_datalink::{Channel, DataLinkSender, NetworkInterface};
use socket2::{Domain, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use crate::{
    ARP_FRAME_LEN, ArpOperation, GRATUITOUS_ARP_OPERATIONS, MacAddr,
    NEIGHBOR_ADVERTISEMENT_FRAME_LEN, build_arp_reply, build_gratuitous_arp,
    build_neighbor_advertisement, build_unsolicited_neighbor_advertisement, parse_arp,
    parse_neighbor_solicitation, solicited_node_multicast,
};

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER_LEN: usize = 14;

/// How often an IP is announced when this node takes it over.
///
/// MetalLB sends gratuitous ARP / unsolicited NA at once and then every 1.1 s for 5 s, five
/// rounds in all (at 0, 1.1, 2.2, 3.3 and 4.4 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceSchedule {
    /// Rounds in all, the first at once.
    pub rounds: u32,
    /// Time between two rounds.
    pub interval: Duration,
}

impl Default for AnnounceSchedule {
    fn default() -> Self {
        AnnounceSchedule {
            rounds: 5,
            interval: Duration::from_millis(1100),
        }
    }
}

/// What the responder has seen and done, as plain atomics for the metrics layer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames that passed the socket filter (ARP, Neighbor Solicitations).
    pub frames_received: AtomicU64,
    /// ARP requests and Neighbor Solicitations for an owned IP
    /// (`metallb_layer2_requests_received`).
    pub requests_received: AtomicU64,
    /// ARP replies and Neighbor Advertisements sent in answer
    /// (`metallb_layer2_responses_sent`).
    pub responses_sent: AtomicU64,
    /// Gratuitous ARP and unsolicited Neighbor Advertisement frames sent
    /// (`metallb_layer2_gratuitous_sent`).
    pub gratuitous_sent: AtomicU64,
    /// Frames dropped because they did not parse (truncated, bad checksum, garbage).
    pub invalid_frames: AtomicU64,
    /// Frames that could not be sent.
    pub send_errors: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every counter, for logs and tests.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            frames_received: self.frames_received.load(Ordering::Relaxed),
            requests_received: self.requests_received.load(Ordering::Relaxed),
            responses_sent: self.responses_sent.load(Ordering::Relaxed),
            gratuitous_sent: self.gratuitous_sent.load(Ordering::Relaxed),
            invalid_frames: self.invalid_frames.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
        }
    }
}

/// The values of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub frames_received: u64,
    pub requests_received: u64,
    pub responses_sent: u64,
    pub gratuitous_sent: u64,
    pub invalid_frames: u64,
    pub send_errors: u64,
}

/// Answers ARP and NDP for the IPs it owns on a fixed set of interfaces.
///
/// Created inside a tokio runtime; receiving runs in one task per interface, announcing in
/// one task per newly owned IP. Dropping the responder stops them all and closes the sockets.
pub struct Responder {
    shared: Arc<Shared>,
    receivers: Vec<JoinHandle<()>>,
}

/// One interface, with what answering on it needs.
struct Link {
    name: String,
    index: u32,
    mac: MacAddr,
    sender: Mutex<Box<dyn DataLinkSender>>,
    /// Holds the solicited-node memberships; `None` when IPv6 is disabled.
    multicast: Option<UdpSocket>,
    /// Solicited-node groups joined, with how many owned IPs need each.
    groups: Mutex<HashMap<Ipv6Addr, usize>>,
}

struct Shared {
    links: Vec<Link>,
    owned: RwLock<HashSet<IpAddr>>,
    announcers: Mutex<HashMap<IpAddr, JoinHandle<()>>>,
    counters: Arc<Counters>,
    schedule: AnnounceSchedule,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Responder {
    /// Opens a socket on each of `interfaces` (by name) and starts answering, owning no IP
    /// yet. Fails if an interface does not exist, has no MAC, or a socket cannot be opened
    /// (which needs `CAP_NET_RAW`).
    pub fn new<S: AsRef<str>>(interfaces: &[S]) -> Result<Responder> {
        Responder::with_schedule(interfaces, AnnounceSchedule::default())
    }

    /// [`Responder::new`] with another announcement schedule.
    pub fn with_schedule<S: AsRef<str>>(
        interfaces: &[S],
        schedule: AnnounceSchedule,
    ) -> Result<Responder> {
        let all = pnet_datalink::interfaces();
        let mut links = Vec::with_capacity(interfaces.len());
        let mut sockets = Vec::with_capacity(interfaces.len());
        for name in interfaces {
            let name = name.as_ref();
            let interface = all
                .iter()
                .find(|interface| interface.name == name)
                .with_context(|| format!("no interface named {name}"))?;
            let (link, socket) =
                open_link(interface).with_context(|| format!("opening interface {name}"))?;
            links.push(link);
            sockets.push(socket);
        }
        let shared = Arc::new(Shared {
            links,
            owned: RwLock::new(HashSet::new()),
            announcers: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            schedule,
        });
        let mut receivers = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            // `AsyncFd::new` is deprecated because a generic `T` may change or close the
            // descriptor it reports; `socket2::Socket` owns its descriptor and reports the
            // same one until dropped, which is what `AsyncFd::register` (unsafe, forbidden
            // here) asks of its caller.
            #[allow(deprecated)]
            let socket = AsyncFd::new(socket).context("registering the socket with tokio")?;
            receivers.push(tokio::spawn(receive(shared.clone(), index, socket)));
        }
        Ok(Responder { shared, receivers })
    }

    /// The counters, shared with the responder (they keep counting).
    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// The interfaces answered on, with their MACs.
    pub fn interfaces(&self) -> Vec<(String, MacAddr)> {
        self.shared
            .links
            .iter()
            .map(|link| (link.name.clone(), link.mac))
            .collect()
    }

    /// Whether `ip` is currently owned.
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.shared.owns(ip)
    }

    /// Replaces the set of owned IPs. IPs newly owned are announced at once and then on the
    /// [`AnnounceSchedule`]; for IPv6 ones the solicited-node group is joined first. IPs no
    /// longer owned stop being answered for and announced at once.
    ///
    /// Cheap when nothing changes; must be called inside the tokio runtime.
    pub fn set_owned<I: IntoIterator<Item = IpAddr>>(&self, ips: I) {
        let new: HashSet<IpAddr> = ips.into_iter().collect();
        let (added, removed) = {
            let mut owned = self
                .shared
                .owned
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let added: Vec<IpAddr> = new.difference(&owned).copied().collect();
            let removed: Vec<IpAddr> = owned.difference(&new).copied().collect();
            // Join before answering: the groups must be in place when NS arrive.
            for ip in &added {
                if let IpAddr::V6(ip) = ip {
                    self.shared.join(*ip);
                }
            }
            *owned = new;
            (added, removed)
        };
        let mut announcers = lock(&self.shared.announcers);
        for ip in removed {
            if let Some(task) = announcers.remove(&ip) {
                task.abort();
            }
            if let IpAddr::V6(ip) = ip {
                self.shared.leave(ip);
            }
        }
        announcers.retain(|_, task| !task.is_finished());
        for ip in added {
            let task = tokio::spawn(announce(self.shared.clone(), ip));
            if let Some(old) = announcers.insert(ip, task) {
                old.abort();
            }
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.receivers {
            task.abort();
        }
        for (_, task) in lock(&self.shared.announcers).drain() {
            task.abort();
        }
    }
}

impl Shared {
    fn owns(&self, ip: IpAddr) -> bool {
        self.owned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&ip)
    }

    fn join(&self, ip: Ipv6Addr) {
        let group = solicited_node_multicast(ip);
        for link in &self.links {
            let Some(socket) = &link.multicast else {
                continue;
            };
            let mut groups = lock(&link.groups);
            let count = groups.entry(group).or_insert(0);
            if *count == 0
                && let Err(error) = socket.join_multicast_v6(&group, link.index)
            {
                tracing::warn!(interface = %link.name, %group, %error, "joining the solicited-node group");
            }
            *count += 1;
        }
    }

    fn leave(&self, ip: Ipv6Addr) {
        let group = solicited_node_multicast(ip);
        for link in &self.links {
            let Some(socket) = &link.multicast else {
                continue;
            };
            let mut groups = lock(&link.groups);
            if let Some(count) = groups.get_mut(&group) {
                *count -= 1;
                if *count == 0 {
                    groups.remove(&group);
                    if let Err(error) = socket.leave_multicast_v6(&group, link.index) {
                        tracing::warn!(interface = %link.name, %group, %error, "leaving the solicited-node group");
                    }
                }
            }
        }
    }

    fn send(&self, link: &Link, frame: &[u8]) -> bool {
        let result = lock(&link.sender).send_to(frame, None);
        match result {
            Some(Ok(())) => true,
            Some(Err(error)) => {
                Counters::bump(&self.counters.send_errors);
                tracing::debug!(interface = %link.name, %error, "sending a frame");
                false
            }
            None => {
                Counters::bump(&self.counters.send_errors);
                false
            }
        }
    }

    /// Decides about one received frame and answers it if this node owns the target.
    fn handle(&self, link: &Link, frame: &[u8]) {
        Counters::bump(&self.counters.frames_received);
        match decide(frame, link.mac, |ip| self.owns(ip)) {
            Verdict::Ignore => {}
            Verdict::Invalid => Counters::bump(&self.counters.invalid_frames),
            Verdict::Answer(answer) => {
                Counters::bump(&self.counters.requests_received);
                if self.send(link, answer.bytes()) {
                    Counters::bump(&self.counters.responses_sent);
                }
            }
        }
    }

    /// One round of announcements of `ip` on every interface.
    fn announce_once(&self, ip: IpAddr) {
        for link in &self.links {
            match ip {
                IpAddr::V4(ip) => self.gratuitous_arp(link, ip),
                IpAddr::V6(ip) => {
                    let frame = build_unsolicited_neighbor_advertisement(link.mac, ip, ip);
                    if self.send(link, &frame) {
                        Counters::bump(&self.counters.gratuitous_sent);
                    }
                }
            }
        }
    }

    fn gratuitous_arp(&self, link: &Link, ip: Ipv4Addr) {
        for operation in GRATUITOUS_ARP_OPERATIONS {
            if self.send(link, &build_gratuitous_arp(operation, link.mac, ip)) {
                Counters::bump(&self.counters.gratuitous_sent);
            }
        }
    }
}

/// What to do with a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Well-formed, but not for us: other operations, other targets, our own frames.
    Ignore,
    /// Does not parse: counted and dropped.
    Invalid,
    /// A request for an owned IP, and the frame answering it.
    Answer(Answer),
}

/// The frame answering a request, ready to send on the interface it came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Arp([u8; ARP_FRAME_LEN]),
    Ndp([u8; NEIGHBOR_ADVERTISEMENT_FRAME_LEN]),
}

impl Answer {
    /// The whole Ethernet frame.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Answer::Arp(frame) => frame,
            Answer::Ndp(frame) => frame,
        }
    }
}

/// The responder's decision about one frame received on an interface whose MAC is `mac`,
/// pure: ARP requests for an owned target get a reply (not gratuitous ones, whose sender
/// and target are the same address), Neighbor Solicitations for an owned target an
/// advertisement sent from the target itself; frames that do not parse are invalid.
pub fn decide(frame: &[u8], mac: MacAddr, owns: impl Fn(IpAddr) -> bool) -> Verdict {
    let Some(header) = frame.first_chunk::<ETHERNET_HEADER_LEN>() else {
        return Verdict::Invalid;
    };
    if header[6..12] == mac.octets() {
        // Our own frames, should the filter let one through.
        return Verdict::Ignore;
    }
    match u16::from_be_bytes([header[12], header[13]]) {
        ETHERTYPE_ARP => match parse_arp(frame) {
            Ok(arp)
                if arp.operation == ArpOperation::Request
                    && arp.sender_ip != arp.target_ip
                    && owns(IpAddr::V4(arp.target_ip)) =>
            {
                Verdict::Answer(Answer::Arp(build_arp_reply(&arp, mac)))
            }
            Ok(_) => Verdict::Ignore,
            Err(_) => Verdict::Invalid,
        },
        ETHERTYPE_IPV6 => match parse_neighbor_solicitation(frame) {
            Ok(solicitation) if owns(IpAddr::V6(solicitation.target)) => {
                Verdict::Answer(Answer::Ndp(build_neighbor_advertisement(
                    &solicitation,
                    mac,
                    solicitation.target,
                )))
            }
            Ok(_) => Verdict::Ignore,
            Err(_) => Verdict::Invalid,
        },
        _ => Verdict::Invalid,
    }
}

/// Announces `ip` on the schedule, as long as it stays owned.
async fn announce(shared: Arc<Shared>, ip: IpAddr) {
    let mut ticker = tokio::time::interval(shared.schedule.interval);
    for _ in 0..shared.schedule.rounds {
        ticker.tick().await;
        if !shared.owns(ip) {
            return;
        }
        shared.announce_once(ip);
    }
}

/// Reads frames from one interface's socket until the task is aborted.
async fn receive(shared: Arc<Shared>, index: usize, socket: AsyncFd<Socket>) {
    let link = &shared.links[index];
    let mut buffer = vec![0u8; 65536];
    loop {
        let mut guard = match socket.readable().await {
            Ok(guard) => guard,
            Err(error) => {
                tracing::error!(interface = %link.name, %error, "waiting for frames; receiving stops");
                return;
            }
        };
        loop {
            let read = guard.try_io(|socket| {
                let mut socket: &Socket = socket.get_ref();
                socket.read(&mut buffer)
            });
            match read {
                Ok(Ok(length)) => shared.handle(link, &buffer[..length]),
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => {
                    // ENETDOWN and the like (the interface went down): reported once, the
                    // next read goes on. Pause so that an error that persists cannot spin.
                    tracing::debug!(interface = %link.name, %error, "receiving a frame");
                    drop(guard);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    break;
                }
                Err(_would_block) => break,
            }
        }
    }
}

/// The classic BPF program attached to every socket: keep ARP and ICMPv6 Neighbor
/// Solicitations without extension headers (RFC 6980 forbids fragmenting them) that this
/// host did not send itself; drop the rest in the kernel.
pub fn frame_filter() -> Vec<SockFilter> {
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4; // SKF_AD_OFF + SKF_AD_PKTTYPE
    const PACKET_OUTGOING: u32 = 4;
    const ACCEPT: u32 = 0x0004_0000;
    vec![
        // 0: the packet type (ancillary data), drop what this host sends
        SockFilter::new(LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        // 1
        SockFilter::new(JEQ_K, 8, 0, PACKET_OUTGOING),
        // 2: EtherType
        SockFilter::new(LD_H_ABS, 0, 0, 12),
        // 3: ARP → accept
        SockFilter::new(JEQ_K, 5, 0, u32::from(ETHERTYPE_ARP)),
        // 4: IPv6 or drop
        SockFilter::new(JEQ_K, 0, 5, u32::from(ETHERTYPE_IPV6)),
        // 5: IPv6 next header
        SockFilter::new(LD_B_ABS, 0, 0, 14 + 6),
        // 6: ICMPv6 or drop
        SockFilter::new(JEQ_K, 0, 3, 58),
        // 7: ICMPv6 type
        SockFilter::new(LD_B_ABS, 0, 0, 14 + 40),
        // 8: Neighbor Solicitation or drop
        SockFilter::new(JEQ_K, 0, 1, 135),
        // 9: accept
        SockFilter::new(RET_K, 0, 0, ACCEPT),
        // 10: drop
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// Opens `interface`'s socket: the link with its sender, and the receiving socket.
fn open_link(interface: &NetworkInterface) -> Result<(Link, Socket)> {
    let mac = interface
        .mac
        .map(|mac| MacAddr(mac.octets()))
        .or_else(|| sys_mac(&interface.name))
        .filter(|mac| *mac != MacAddr::ZERO)
        .context("the interface has no Ethernet address")?;
    // Protocol 0: nothing is received before the bind to the interface.
    let socket =
        Socket::new(Domain::PACKET, Type::RAW, None).context("opening an AF_PACKET socket")?;
    socket
        .attach_filter(&frame_filter())
        .context("attaching the frame filter")?;
    if let Err(error) = socket.set_recv_buffer_size(1 << 20) {
        tracing::debug!(%error, "raising the receive buffer");
    }
    let receiver = socket.try_clone().context("duplicating the socket")?;
    let config = pnet_datalink::Config {
        write_timeout: Some(Duration::from_millis(100)),
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        ..pnet_datalink::Config::default()
    };
    // pnet binds the socket (ETH_P_ALL, this interface's index) and takes its descriptor.
    let sender = match pnet_datalink::channel(interface, config).context("binding the socket")? {
        Channel::Ethernet(sender, _receiver) => sender,
        _ => bail!("pnet_datalink returned a channel that is not Ethernet"),
    };
    receiver
        .set_nonblocking(true)
        .context("making the socket non-blocking")?;
    let multicast = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) {
        Ok(socket) => Some(socket),
        Err(error) => {
            tracing::warn!(%error, "no IPv6 socket for solicited-node memberships; NDP may not be answered");
            None
        }
    };
    let link = Link {
        name: interface.name.clone(),
        index: interface.index,
        mac,
        sender: Mutex::new(sender),
        multicast,
        groups: Mutex::new(HashMap::new()),
    };
    Ok((link, receiver))
}

/// The interface's MAC from sysfs, when pnet did not report one.
fn sys_mac(name: &str) -> Option<MacAddr> {
    fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_metallbs() {
        let schedule = AnnounceSchedule::default();
        assert_eq!(schedule.rounds, 5);
        assert_eq!(schedule.interval, Duration::from_millis(1100));
        // The last round goes out within the 5 s.
        assert!(schedule.interval * (schedule.rounds - 1) < Duration::from_secs(5));
    }
}
