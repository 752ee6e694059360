//! The I/O shell around the codecs: one AF_PACKET socket per link, answering ARP requests
//! and Neighbor Solicitations for the IPs this node currently owns, on the links each IP's
//! [`Scope`] allows, and announcing an IP with gratuitous ARP / unsolicited Neighbor
//! Advertisements when it is taken over.
//!
//! # Links
//!
//! [`Responder::start`] follows the links itself: it subscribes to netlink's RTNLGRP_LINK
//! group, then dumps the links, so no change between the dump and the subscription is lost.
//! Every RTM_NEWLINK and RTM_DELLINK is checked against the rules in the `links` module: a
//! link that becomes usable gets a socket, one that goes down, is enslaved or vanishes has
//! its socket closed, and a MAC change is answered with the new MAC and announced at once.
//! Links that only some owned IP's [`Scope::Only`] names are opened while it does.
//! [`Responder::new`] uses a fixed list of links instead, as the `l2-responder` binary does.
//!
//! # Sockets
//!
//! Each link gets one `AF_PACKET`/`SOCK_RAW` socket, made with `socket2` and created with
//! protocol 0 so it receives nothing until it is bound. A classic BPF filter is attached
//! before the bind, built per link from the owned IPs whose [`Scope`] covers the link
//! ([`owned_filter`]): it passes only ARP frames whose target protocol address is one of
//! them and ICMPv6 Neighbor Solicitations whose target is one of them, and drops everything
//! else, including frames this host sends itself (`PACKET_OUTGOING`). A flood of requests
//! for addresses the node does not own is thus dropped in the kernel and never wakes the
//! responder; with no owned IP on the link, the filter drops everything (the socket stays
//! open). When the owned set changes, `set_owned` replaces the filter of every link whose
//! IPs changed (SO_ATTACH_FILTER swaps it atomically), under the same lock and before the
//! new set is answered for and announced, so a newly owned IP is never announced while its
//! requests are still dropped; a released IP the filter still passes for a moment is
//! ignored by [`decide`]. When a link's IPs do not fit in a classic BPF program (about 2,000
//! IPv4 or 450 IPv6 addresses), or the kernel refuses it (the filter is charged against
//! `net.core.optmem_max`), the link gets the generic [`frame_filter`] instead, passing every
//! ARP frame and Neighbor Solicitation: the filter saves work, [`decide`] alone decides what
//! is answered. `pnet_datalink` then binds the socket to the link (`ETH_P_ALL`, no
//! promiscuous mode) and provides the sender; the receiving side is a duplicate of the same
//! socket registered with tokio's `AsyncFd`, read without any thread of its own, and a
//! third duplicate is kept to replace the filter (it belongs to the socket, which all the
//! duplicates share).
//!
//! Neighbor Advertisements are sent from the target address itself, as Linux does for its
//! own addresses: some resolvers (ndisc6 among them) ignore an answer to a solicitation for
//! X that does not come from X, and receivers' caches take either.
//!
//! Neighbor Solicitations go to the target's solicited-node multicast group. The responder
//! joins that group on every link an owned IPv6 address is answered on, through an IPv6
//! UDP socket's `IPV6_ADD_MEMBERSHIP` (which programs the link's multicast filter and sends
//! an MLD report, so snooping bridges forward the solicitations too).
//!
//! # Hot path
//!
//! Requests for other IPs normally never get here (the socket filter drops them); when
//! they do (generic filter), a received frame costs one read lock and one hash lookup of
//! its target when the target is not owned, and allocates nothing: floods of requests for
//! other IPs must not slow the answers for ours.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use pnet_datalink::{Channel, DataLinkSender, NetworkInterface};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use socket2::{Domain, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::links::{DEFAULT_EXCLUDED_INTERFACES, Exclusion, LinkInfo, LinkUse, Scope, link_use};
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
    /// Frames that passed the socket filter: ARP frames and Neighbor Solicitations whose
    /// target is owned (or any of them, on a link whose owned IPs do not fit the filter).
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
    /// Frames dropped because they did not parse (truncated, bad checksum, garbage). Only
    /// those that got past the socket filter, so mostly ones naming an owned target.
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

/// How many requests and answers concern one owned IP, for MetalLB's per-IP metrics.
///
/// The counts start from zero when an IP becomes owned and are forgotten when it is
/// released; Prometheus takes the restart of a re-owned IP as a counter reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpCounts {
    /// `metallb_layer2_requests_received{ip}`: ARP requests and Neighbor Solicitations for
    /// the IP received on a link it is answered on.
    pub requests_received: u64,
    /// `metallb_layer2_responses_sent{ip}`.
    pub responses_sent: u64,
    /// `metallb_layer2_gratuitous_sent{ip}`: gratuitous ARP and unsolicited NA frames.
    pub gratuitous_sent: u64,
}

#[derive(Debug, Default)]
struct IpCounters {
    requests_received: AtomicU64,
    responses_sent: AtomicU64,
    gratuitous_sent: AtomicU64,
}

impl IpCounters {
    fn snapshot(&self) -> IpCounts {
        IpCounts {
            requests_received: self.requests_received.load(Ordering::Relaxed),
            responses_sent: self.responses_sent.load(Ordering::Relaxed),
            gratuitous_sent: self.gratuitous_sent.load(Ordering::Relaxed),
        }
    }
}

/// How [`Responder::start`] chooses links and announces.
#[derive(Debug, Clone)]
pub struct ResponderOptions {
    /// Regular expressions for link names not used by default (unless an owned IP's
    /// [`Scope::Only`] names the link). Defaults to MetalLB's list,
    /// [`DEFAULT_EXCLUDED_INTERFACES`]; empty excludes nothing.
    pub exclude: Vec<String>,
    /// How newly owned IPs are announced.
    pub schedule: AnnounceSchedule,
    /// Announce every owned IP again on this period, for networks whose switches or routers
    /// age out entries the responder would otherwise only refresh by answering. Off by
    /// default, as in MetalLB.
    pub refresh: Option<Duration>,
}

impl Default for ResponderOptions {
    fn default() -> Self {
        ResponderOptions {
            exclude: DEFAULT_EXCLUDED_INTERFACES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            schedule: AnnounceSchedule::default(),
            refresh: None,
        }
    }
}

/// Answers ARP and NDP for the IPs it owns, each on the links its [`Scope`] allows.
///
/// Created inside a tokio runtime; receiving runs in one task per link, announcing in one
/// task per IP and link being announced, following links in one more. Dropping the
/// responder stops them all and closes the sockets.
pub struct Responder {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// One link, with what answering on it needs.
struct Link {
    name: String,
    index: u32,
    /// In the default set, so answering for [`Scope::All`] IPs; fixed for the link's
    /// lifetime (a rename reopens the link).
    default: bool,
    /// The MAC as a u64, changed in place when the link's MAC changes so that receiving
    /// goes on undisturbed.
    mac: AtomicU64,
    sender: Mutex<Box<dyn DataLinkSender>>,
    /// Holds the solicited-node memberships; `None` when IPv6 is disabled.
    multicast: Option<UdpSocket>,
    /// Solicited-node groups joined.
    groups: Mutex<HashSet<Ipv6Addr>>,
    /// A duplicate of the receiving socket, kept to replace its filter: the filter belongs
    /// to the socket, which the receiving task's descriptor and this one share.
    filter_socket: Socket,
    /// The owned IPs answered on the link (sorted) that the filter was last built for.
    filtered: Mutex<Vec<IpAddr>>,
}

impl Link {
    fn mac(&self) -> MacAddr {
        let bytes = self.mac.load(Ordering::Relaxed).to_be_bytes();
        MacAddr([bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]])
    }

    fn set_mac(&self, mac: MacAddr) {
        self.mac.store(mac_to_u64(mac), Ordering::Relaxed);
    }

    fn answers(&self, scope: &Scope) -> bool {
        scope.covers(&self.name, self.default)
    }

    /// Makes the socket's filter pass requests for `ips` (sorted), the owned IPs answered
    /// on the link; nothing to do when it already does.
    fn filter_for(&self, ips: Vec<IpAddr>) {
        let mut filtered = lock(&self.filtered);
        if *filtered == ips {
            return;
        }
        match attach_owned_filter(&self.filter_socket, &ips) {
            Ok(FilterKind::Owned) => {
                tracing::debug!(interface = %self.name, ips = ips.len(), "owned-address filter attached");
            }
            Ok(kind) => {
                tracing::debug!(interface = %self.name, ips = ips.len(), ?kind, "no owned-address filter; requests for other addresses reach the responder");
            }
            Err(error) => {
                // The old filter stays; it may drop requests for addresses owned since.
                tracing::error!(interface = %self.name, %error, "replacing the socket filter");
            }
        }
        // Remembered even after a failure: the next change of the owned set tries again.
        *filtered = ips;
    }
}

/// The owned IPs answered on the link named `name`, sorted: what its filter passes.
fn answered_on(name: &str, default: bool, owned: &HashMap<IpAddr, Owned>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = owned
        .iter()
        .filter(|(_, owned)| owned.scope.covers(name, default))
        .map(|(ip, _)| *ip)
        .collect();
    ips.sort_unstable();
    ips
}

fn mac_to_u64(mac: MacAddr) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

#[derive(Clone)]
struct Owned {
    scope: Scope,
    counters: Arc<IpCounters>,
}

struct Shared {
    /// By interface index.
    links: RwLock<HashMap<u32, Arc<Link>>>,
    owned: RwLock<HashMap<IpAddr, Owned>>,
    /// Serializes changes of the owned set and of the links, and holds what only they use.
    control: Mutex<Control>,
    counters: Arc<Counters>,
    schedule: AnnounceSchedule,
    generation: watch::Sender<u64>,
}

struct Control {
    exclusion: Exclusion,
    /// Whether links come and go with netlink events, or are the fixed list given.
    follow: bool,
    /// Every link as netlink last described it, used or not, to reconsider them when the
    /// names owned IPs ask for change.
    known: BTreeMap<u32, LinkInfo>,
    /// The names in owned IPs' [`Scope::Only`]s.
    named: BTreeSet<String>,
    receivers: HashMap<u32, JoinHandle<()>>,
    announcers: HashMap<(IpAddr, u32), JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Responder {
    /// Opens a socket on each of `interfaces` (by name) and starts answering, owning no IP
    /// yet. The links are fixed: whatever happens to them later is not followed, and the
    /// usable-link rules and exclusion list do not apply (the caller chose them): all of
    /// them answer for [`Scope::All`] IPs, and [`Scope::Only`] picks among them. Fails if
    /// an interface does not exist, has no MAC, or a socket cannot be opened (which needs
    /// `CAP_NET_RAW`). Must be called inside the tokio runtime.
    pub fn new<S: AsRef<str>>(interfaces: &[S]) -> Result<Responder> {
        Responder::with_schedule(interfaces, AnnounceSchedule::default())
    }

    /// [`Responder::new`] with another announcement schedule.
    pub fn with_schedule<S: AsRef<str>>(
        interfaces: &[S],
        schedule: AnnounceSchedule,
    ) -> Result<Responder> {
        let all = pnet_datalink::interfaces();
        let shared = Shared::new(schedule, Exclusion::none(), false);
        {
            let mut control = lock(&shared.control);
            for name in interfaces {
                let name = name.as_ref();
                let interface = all
                    .iter()
                    .find(|interface| interface.name == name)
                    .with_context(|| format!("no interface named {name}"))?;
                let mac = interface
                    .mac
                    .map(|mac| MacAddr(mac.octets()))
                    .or_else(|| sys_mac(&interface.name))
                    .filter(|mac| *mac != MacAddr::ZERO)
                    .with_context(|| format!("interface {name} has no Ethernet address"))?;
                shared
                    .open(&mut control, interface.index, name, mac, true)
                    .with_context(|| format!("opening interface {name}"))?;
            }
        }
        Ok(Responder {
            shared,
            tasks: Vec::new(),
        })
    }

    /// Starts answering on the links the host has and will have, following them through
    /// netlink (see the module docs), owning no IP yet. Fails if the exclusion patterns do
    /// not compile or netlink cannot be read; a link whose socket cannot be opened is
    /// logged and tried again on its next change.
    pub async fn start(options: ResponderOptions) -> Result<Responder> {
        let exclusion = Exclusion::new(&options.exclude)
            .context("compiling the interface exclusion patterns")?;
        // Subscribed before the dump: a change during the dump is queued as an event and
        // applied after it, so the last word on every link is the newest.
        let (connection, handle, events) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .context("subscribing to netlink link events")?;
        let mut tasks = vec![tokio::spawn(connection)];
        let shared = Shared::new(options.schedule, exclusion, true);
        if let Err(error) = dump_links(&shared, &handle).await {
            for task in &tasks {
                task.abort();
            }
            return Err(error);
        }
        tasks.push(tokio::spawn(follow(shared.clone(), handle, events)));
        if let Some(period) = options.refresh {
            tasks.push(tokio::spawn(refresh(shared.clone(), period)));
        }
        Ok(Responder { shared, tasks })
    }

    /// The counters, shared with the responder (they keep counting).
    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// The links answered on, with their MACs, sorted by name.
    pub fn interfaces(&self) -> Vec<(String, MacAddr)> {
        let mut links: Vec<(String, MacAddr)> = read(&self.shared.links)
            .values()
            .map(|link| (link.name.clone(), link.mac()))
            .collect();
        links.sort();
        links
    }

    /// The names of the links `ip` is currently answered on, sorted; empty when it is not
    /// owned.
    pub fn interfaces_for(&self, ip: IpAddr) -> Vec<String> {
        let Some(scope) = read(&self.shared.owned)
            .get(&ip)
            .map(|owned| owned.scope.clone())
        else {
            return Vec::new();
        };
        let mut names: Vec<String> = read(&self.shared.links)
            .values()
            .filter(|link| link.answers(&scope))
            .map(|link| link.name.clone())
            .collect();
        names.sort();
        names
    }

    /// A generation number bumped whenever a link is opened, closed or changes MAC, so that
    /// the owner can refresh what it derived from [`Responder::interfaces_for`].
    pub fn link_changes(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Whether `ip` is currently owned.
    pub fn owns(&self, ip: IpAddr) -> bool {
        read(&self.shared.owned).contains_key(&ip)
    }

    /// The per-IP counts of every owned IP, sorted by IP.
    pub fn ip_counters(&self) -> Vec<(IpAddr, IpCounts)> {
        let mut counts: Vec<(IpAddr, IpCounts)> = read(&self.shared.owned)
            .iter()
            .map(|(ip, owned)| (*ip, owned.counters.snapshot()))
            .collect();
        counts.sort_by_key(|(ip, _)| *ip);
        counts
    }

    /// Replaces the set of owned IPs, each with the links it is answered on (an IP given
    /// twice is answered on the union of its scopes).
    ///
    /// IPs newly owned are announced at once and then on the [`AnnounceSchedule`] on every
    /// link in their scope; an IP whose scope grows is announced that way on the links
    /// added. For IPv6 ones the solicited-node groups are joined first. IPs no longer owned,
    /// or no longer on a link, stop being answered for and announced there at once.
    ///
    /// Cheap when nothing changes; must be called inside the tokio runtime.
    /// Announces owned `ips` again at once and on the schedule, on every link that answers
    /// for them, as on a takeover: for an address this node kept answering for while another
    /// node may have announced it meanwhile. Addresses not owned are ignored.
    pub fn announce_again(&self, ips: &[IpAddr]) {
        let shared = &self.shared;
        let mut control = lock(&shared.control);
        let links = shared.links();
        let due: Vec<(IpAddr, u32)> = {
            let owned = read(&shared.owned);
            ips.iter()
                .filter_map(|ip| owned.get(ip).map(|entry| (*ip, &entry.scope)))
                .flat_map(|(ip, scope)| {
                    links
                        .iter()
                        .filter(|link| link.answers(scope))
                        .map(move |link| (ip, link.index))
                })
                .collect()
        };
        for (ip, index) in due {
            shared.schedule_announcements(&mut control, ip, index);
        }
    }

    pub fn set_owned<I: IntoIterator<Item = (IpAddr, Scope)>>(&self, ips: I) {
        let mut desired: HashMap<IpAddr, Scope> = HashMap::new();
        for (ip, scope) in ips {
            let scope = match desired.remove(&ip) {
                Some(earlier) => earlier.union(scope),
                None => scope,
            };
            desired.insert(ip, scope);
        }
        self.shared.set_owned(desired);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let mut control = lock(&self.shared.control);
        for (_, task) in control.receivers.drain() {
            task.abort();
        }
        for (_, task) in control.announcers.drain() {
            task.abort();
        }
        drop(control);
        write(&self.shared.links).clear();
    }
}

impl Shared {
    fn new(schedule: AnnounceSchedule, exclusion: Exclusion, follow: bool) -> Arc<Shared> {
        Arc::new(Shared {
            links: RwLock::new(HashMap::new()),
            owned: RwLock::new(HashMap::new()),
            control: Mutex::new(Control {
                exclusion,
                follow,
                known: BTreeMap::new(),
                named: BTreeSet::new(),
                receivers: HashMap::new(),
                announcers: HashMap::new(),
            }),
            counters: Arc::new(Counters::default()),
            schedule,
            generation: watch::Sender::new(0),
        })
    }

    fn link(&self, index: u32) -> Option<Arc<Link>> {
        read(&self.links).get(&index).cloned()
    }

    fn links(&self) -> Vec<Arc<Link>> {
        read(&self.links).values().cloned().collect()
    }

    fn bump_generation(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn set_owned(self: &Arc<Self>, desired: HashMap<IpAddr, Scope>) {
        let mut control = lock(&self.control);
        let old = {
            let owned = read(&self.owned);
            if desired.len() == owned.len()
                && desired
                    .iter()
                    .all(|(ip, scope)| owned.get(ip).is_some_and(|owned| owned.scope == *scope))
            {
                return;
            }
            owned.clone()
        };
        let new: HashMap<IpAddr, Owned> = desired
            .into_iter()
            .map(|(ip, scope)| {
                let counters = old
                    .get(&ip)
                    .map(|owned| owned.counters.clone())
                    .unwrap_or_default();
                (ip, Owned { scope, counters })
            })
            .collect();
        let links = self.links();
        // Join before answering: the groups must be in place when solicitations arrive.
        // The filters too, and both before the owned set changes and announcements go out:
        // a request for a newly owned IP must not be dropped in the kernel once it is
        // announced. A filter still passing a released IP does no harm, `decide` ignores it.
        for link in &links {
            self.sync_groups(link, &new);
            link.filter_for(answered_on(&link.name, link.default, &new));
        }
        let mut fresh = Vec::new();
        for (ip, owned) in &new {
            let before = old.get(ip).map(|owned| &owned.scope);
            for link in &links {
                if link.answers(&owned.scope) && !before.is_some_and(|scope| link.answers(scope)) {
                    fresh.push((*ip, link.index));
                }
            }
        }
        let named: BTreeSet<String> = new
            .values()
            .filter_map(|owned| match &owned.scope {
                Scope::Only(names) => Some(names.iter().cloned()),
                Scope::All => None,
            })
            .flatten()
            .collect();
        *write(&self.owned) = new;
        control.announcers.retain(|(ip, _), task| {
            let keep = !task.is_finished() && read(&self.owned).contains_key(ip);
            if !keep {
                task.abort();
            }
            keep
        });
        if control.follow && named != control.named {
            control.named = named;
            let known: Vec<LinkInfo> = control.known.values().cloned().collect();
            for info in known {
                self.reconcile(&mut control, &info);
            }
        }
        for (ip, index) in fresh {
            self.schedule_announcements(&mut control, ip, index);
        }
    }

    /// Joins the solicited-node groups of the IPv6 addresses `owned` answers on `link`,
    /// and leaves the others.
    fn sync_groups(&self, link: &Link, owned: &HashMap<IpAddr, Owned>) {
        let Some(socket) = &link.multicast else {
            return;
        };
        let wanted: HashSet<Ipv6Addr> = owned
            .iter()
            .filter(|(_, owned)| link.answers(&owned.scope))
            .filter_map(|(ip, _)| match ip {
                IpAddr::V6(ip) => Some(solicited_node_multicast(*ip)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let mut groups = lock(&link.groups);
        for group in wanted.difference(&groups) {
            if let Err(error) = socket.join_multicast_v6(group, link.index) {
                tracing::warn!(interface = %link.name, %group, %error, "joining the solicited-node group");
            }
        }
        for group in groups.difference(&wanted) {
            if let Err(error) = socket.leave_multicast_v6(group, link.index) {
                tracing::debug!(interface = %link.name, %group, %error, "leaving the solicited-node group");
            }
        }
        *groups = wanted;
    }

    /// A link was described by netlink (dump or RTM_NEWLINK).
    fn link_changed(self: &Arc<Self>, info: LinkInfo) {
        let mut control = lock(&self.control);
        // Reconciled even when nothing changed: a link whose socket failed to open is
        // tried again.
        control.known.insert(info.index, info.clone());
        self.reconcile(&mut control, &info);
    }

    /// After a full dump: the links it did not list are gone.
    fn links_listed(&self, listed: &BTreeSet<u32>) {
        let gone: Vec<u32> = {
            let control = lock(&self.control);
            control
                .known
                .keys()
                .filter(|index| !listed.contains(index))
                .copied()
                .collect()
        };
        for index in gone {
            self.link_removed(index);
        }
    }

    /// A link is gone (RTM_DELLINK).
    fn link_removed(&self, index: u32) {
        let mut control = lock(&self.control);
        control.known.remove(&index);
        if self.link(index).is_some() {
            self.close(&mut control, index, "removed");
        }
    }

    /// Brings the link's socket in line with its description and the rules.
    fn reconcile(self: &Arc<Self>, control: &mut Control, info: &LinkInfo) {
        let wanted = link_use(info, &control.exclusion, &control.named);
        let current = self.link(info.index);
        match (wanted.mac(), current) {
            (None, None) => {
                tracing::debug!(interface = %info.name, ?wanted, "not answering on the link");
            }
            (None, Some(_)) => {
                let reason = match wanted {
                    LinkUse::Unusable(reason) => reason.to_string(),
                    _ => "excluded".to_owned(),
                };
                self.close(control, info.index, &reason);
            }
            (Some(mac), Some(link))
                if link.name == info.name && link.default == wanted.is_default() =>
            {
                if link.mac() != mac {
                    tracing::info!(interface = %link.name, old = %link.mac(), new = %mac, "MAC changed; announcing again");
                    link.set_mac(mac);
                    self.bump_generation();
                    let ips: Vec<IpAddr> = read(&self.owned)
                        .iter()
                        .filter(|(_, owned)| link.answers(&owned.scope))
                        .map(|(ip, _)| *ip)
                        .collect();
                    for ip in ips {
                        self.schedule_announcements(control, ip, link.index);
                    }
                }
            }
            (Some(mac), current) => {
                if current.is_some() {
                    self.close(control, info.index, "renamed or re-scoped");
                }
                if let Err(error) =
                    self.open(control, info.index, &info.name, mac, wanted.is_default())
                {
                    // A link can vanish between its event and the bind; its next event
                    // (or RTM_DELLINK) settles it.
                    tracing::warn!(interface = %info.name, error = format!("{error:#}"), "opening the link");
                }
            }
        }
    }

    /// Opens a socket on the link, starts receiving, and announces the owned IPs it
    /// answers for.
    fn open(
        self: &Arc<Self>,
        control: &mut Control,
        index: u32,
        name: &str,
        mac: MacAddr,
        default: bool,
    ) -> Result<()> {
        // Under the control lock, so the owned set cannot change before the link is listed
        // (after which `set_owned` keeps its filter up to date).
        let filtered = answered_on(name, default, &read(&self.owned));
        let (link, socket) = open_link(index, name, mac, default, filtered)?;
        // `AsyncFd::new` is deprecated because a generic `T` may change or close the
        // descriptor it reports; `socket2::Socket` owns its descriptor and reports the same
        // one until dropped, which is what `AsyncFd::register` (unsafe, forbidden here)
        // asks of its caller.
        #[allow(deprecated)]
        let socket = AsyncFd::new(socket).context("registering the socket with tokio")?;
        let link = Arc::new(link);
        let ips: Vec<IpAddr> = {
            let owned = read(&self.owned);
            self.sync_groups(&link, &owned);
            owned
                .iter()
                .filter(|(_, owned)| link.answers(&owned.scope))
                .map(|(ip, _)| *ip)
                .collect()
        };
        write(&self.links).insert(index, link.clone());
        let receiver = tokio::spawn(receive(self.clone(), link, socket));
        if let Some(old) = control.receivers.insert(index, receiver) {
            old.abort();
        }
        tracing::info!(interface = %name, %mac, default, "answering on the link");
        self.bump_generation();
        for ip in ips {
            self.schedule_announcements(control, ip, index);
        }
        Ok(())
    }

    /// Closes the link's socket; its announcements stop.
    fn close(&self, control: &mut Control, index: u32, reason: &str) {
        let link = write(&self.links).remove(&index);
        if let Some(task) = control.receivers.remove(&index) {
            task.abort();
        }
        control.announcers.retain(|(_, link_index), task| {
            if *link_index == index {
                task.abort();
            }
            *link_index != index
        });
        if let Some(link) = link {
            tracing::info!(interface = %link.name, reason, "no longer answering on the link");
            self.bump_generation();
        }
    }

    /// Announces `ip` on the link at once and then on the schedule, restarting the
    /// schedule if it was running (as MetalLB does).
    fn schedule_announcements(self: &Arc<Self>, control: &mut Control, ip: IpAddr, index: u32) {
        let task = tokio::spawn(announce(self.clone(), ip, index));
        if let Some(old) = control.announcers.insert((ip, index), task) {
            old.abort();
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

    /// Decides about one received frame and answers it if this node owns the target on
    /// this link.
    fn handle(&self, link: &Link, frame: &[u8]) {
        Counters::bump(&self.counters.frames_received);
        let matched: Cell<Option<Arc<IpCounters>>> = Cell::new(None);
        let verdict = decide(frame, link.mac(), |ip| {
            let owned = read(&self.owned);
            match owned.get(&ip) {
                Some(entry) if link.answers(&entry.scope) => {
                    matched.set(Some(entry.counters.clone()));
                    true
                }
                _ => false,
            }
        });
        match verdict {
            Verdict::Ignore => {}
            Verdict::Invalid => Counters::bump(&self.counters.invalid_frames),
            Verdict::Answer(answer) => {
                Counters::bump(&self.counters.requests_received);
                let counters = matched.take();
                if let Some(counters) = &counters {
                    Counters::bump(&counters.requests_received);
                }
                if self.send(link, answer.bytes()) {
                    Counters::bump(&self.counters.responses_sent);
                    if let Some(counters) = &counters {
                        Counters::bump(&counters.responses_sent);
                    }
                }
            }
        }
    }

    /// One round of announcements of `ip` on the link; false when the link is gone or
    /// `ip` is no longer answered on it.
    fn announce_on(&self, ip: IpAddr, index: u32) -> bool {
        let Some(link) = self.link(index) else {
            return false;
        };
        let counters = match read(&self.owned).get(&ip) {
            Some(owned) if link.answers(&owned.scope) => owned.counters.clone(),
            _ => return false,
        };
        let mac = link.mac();
        let mut sent = 0;
        match ip {
            IpAddr::V4(ip) => sent += self.gratuitous_arp(&link, mac, ip),
            IpAddr::V6(ip) => {
                let frame = build_unsolicited_neighbor_advertisement(mac, ip, ip);
                if self.send(&link, &frame) {
                    sent += 1;
                }
            }
        }
        self.counters
            .gratuitous_sent
            .fetch_add(sent, Ordering::Relaxed);
        counters.gratuitous_sent.fetch_add(sent, Ordering::Relaxed);
        true
    }

    fn gratuitous_arp(&self, link: &Link, mac: MacAddr, ip: Ipv4Addr) -> u64 {
        let mut sent = 0;
        for operation in GRATUITOUS_ARP_OPERATIONS {
            if self.send(link, &build_gratuitous_arp(operation, mac, ip)) {
                sent += 1;
            }
        }
        sent
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

/// Announces `ip` on one link on the schedule, as long as it is answered there.
async fn announce(shared: Arc<Shared>, ip: IpAddr, index: u32) {
    let mut ticker = tokio::time::interval(shared.schedule.interval);
    for _ in 0..shared.schedule.rounds {
        ticker.tick().await;
        if !shared.announce_on(ip, index) {
            return;
        }
    }
}

/// Announces every owned IP on every link it is answered on, every `period`.
async fn refresh(shared: Arc<Shared>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    // Taking over already announces; the first refresh is one period later.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let ips: Vec<IpAddr> = read(&shared.owned).keys().copied().collect();
        let links: Vec<u32> = shared.links().iter().map(|link| link.index).collect();
        for ip in ips {
            for &index in &links {
                shared.announce_on(ip, index);
            }
        }
    }
}

/// Lists every link over netlink and brings the sockets in line with the list.
async fn dump_links(shared: &Arc<Shared>, handle: &rtnetlink::Handle) -> Result<()> {
    let mut listed = BTreeSet::new();
    let mut links = handle.link().get().execute();
    while let Some(message) = links
        .try_next()
        .await
        .context("listing links over netlink")?
    {
        if let Some(info) = LinkInfo::from_netlink(&message) {
            listed.insert(info.index);
            shared.link_changed(info);
        }
    }
    shared.links_listed(&listed);
    Ok(())
}

/// Applies netlink link events until the connection ends.
async fn follow(
    shared: Arc<Shared>,
    handle: rtnetlink::Handle,
    mut events: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
) {
    while let Some((message, _)) = events.next().await {
        match message.payload {
            NetlinkPayload::Overrun(_) => {
                // The kernel dropped events when the socket's buffer was full: which links
                // changed is unknown, so all of them are listed again.
                tracing::warn!("netlink link events were lost; listing the links again");
                if let Err(error) = dump_links(&shared, &handle).await {
                    tracing::error!(error = format!("{error:#}"), "listing the links again");
                }
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                match LinkInfo::from_netlink(&link) {
                    Some(info) => shared.link_changed(info),
                    None => {
                        tracing::debug!(index = link.header.index, "RTM_NEWLINK without a name")
                    }
                }
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                shared.link_removed(link.header.index);
            }
            _ => {}
        }
    }
    // The links answered on stay as they are; they are no longer followed.
    tracing::error!("the netlink connection ended; links are no longer followed");
}

/// Reads frames from one link's socket until the task is aborted.
async fn receive(shared: Arc<Shared>, link: Arc<Link>, socket: AsyncFd<Socket>) {
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
                Ok(Ok(length)) => shared.handle(&link, &buffer[..length]),
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => {
                    // ENETDOWN and the like (the link went down): reported once, the next
                    // read goes on. Pause so that an error that persists cannot spin.
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

// Classic BPF opcodes (linux/filter.h), only those the programs below use.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const LD_MEM: u16 = 0x60; // BPF_LD | BPF_MEM: A = M[k], the scratch memory
const ST: u16 = 0x02; // BPF_ST: M[k] = A
const JA: u16 = 0x05; // BPF_JMP | BPF_JA: 32-bit offset, unlike the conditional jumps' 8 bits
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// The ancillary load of the packet type: SKF_AD_OFF + SKF_AD_PKTTYPE.
const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
const PACKET_OUTGOING: u32 = 4;
/// Accept: the number of bytes to keep, more than any frame.
const ACCEPT: u32 = 0x0004_0000;
const DROP: u32 = 0;
/// The kernel refuses longer programs (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;
/// Where an Ethernet/IPv4 ARP packet carries the target protocol address.
const ARP_TARGET_OFFSET: u32 = 14 + 8 + 6 + 4 + 6;
/// Where an untagged Neighbor Solicitation without extension headers carries its target:
/// after the Ethernet and IPv6 headers and the ICMPv6 type, code, checksum and reserved.
const NS_TARGET_OFFSET: u32 = 14 + 40 + 8;
const IPV6_NEXT_HEADER_OFFSET: u32 = 14 + 6;
const ICMPV6_TYPE_OFFSET: u32 = 14 + 40;
const IPPROTO_ICMPV6: u32 = 58;
const ICMPV6_NEIGHBOR_SOLICITATION: u32 = 135;

/// One classic BPF instruction, kept in plain form (`SockFilter` hides its fields) so the
/// unit tests can run the programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

fn sock_filters(program: &[Insn]) -> Vec<SockFilter> {
    program
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

/// The classic BPF program attached to every socket whose owned addresses do not fit
/// [`owned_filter`]: keep ARP and ICMPv6 Neighbor Solicitations without extension headers
/// (RFC 6980 forbids fragmenting them) that this host did not send itself; drop the rest
/// in the kernel.
pub fn frame_filter() -> Vec<SockFilter> {
    sock_filters(&frame_program())
}

fn frame_program() -> Vec<Insn> {
    vec![
        // 0: the packet type (ancillary data), drop what this host sends
        insn(LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        // 1
        insn(JEQ_K, 8, 0, PACKET_OUTGOING),
        // 2: EtherType
        insn(LD_H_ABS, 0, 0, 12),
        // 3: ARP → accept
        insn(JEQ_K, 5, 0, u32::from(ETHERTYPE_ARP)),
        // 4: IPv6 or drop
        insn(JEQ_K, 0, 5, u32::from(ETHERTYPE_IPV6)),
        // 5: IPv6 next header
        insn(LD_B_ABS, 0, 0, IPV6_NEXT_HEADER_OFFSET),
        // 6: ICMPv6 or drop
        insn(JEQ_K, 0, 3, IPPROTO_ICMPV6),
        // 7: ICMPv6 type
        insn(LD_B_ABS, 0, 0, ICMPV6_TYPE_OFFSET),
        // 8: Neighbor Solicitation or drop
        insn(JEQ_K, 0, 1, ICMPV6_NEIGHBOR_SOLICITATION),
        // 9: accept
        insn(RET_K, 0, 0, ACCEPT),
        // 10: drop
        insn(RET_K, 0, 0, DROP),
    ]
}

/// The classic BPF program that keeps only requests for `ips`: ARP frames whose target
/// protocol address is one of the IPv4 addresses, and Neighbor Solicitations (checked as
/// [`frame_filter`] does) whose target is one of the IPv6 addresses; everything else, and
/// whatever this host sends itself, is dropped in the kernel, so a flood of requests for
/// other addresses never wakes the responder. With no address it drops everything.
///
/// When the addresses do not fit in a program the kernel takes (about 2,000 IPv4 or 450
/// IPv6 addresses), it is [`frame_filter`]: the responder checks ownership itself anyway,
/// so the filter only saves work and never decides what is answered.
pub fn owned_filter(ips: &[IpAddr]) -> Vec<SockFilter> {
    sock_filters(&owned_program(ips).unwrap_or_else(frame_program))
}

/// [`owned_filter`]'s program, `None` when it would be too long.
///
/// Conditional jumps only reach 255 instructions ahead, so every comparison is followed by
/// its own `ret`: per IPv4 address `jeq #ip, 0, 1; ret #accept`, per IPv6 address four
/// word compares that fall through to the next address on the first mismatch (last word
/// first: addresses from one pool share their leading words, so a foreign target usually
/// fails at once). The only long jump, past the ARP block, is an unconditional `ja`.
///
/// The NS target is read from the frame once, into the scratch memory, and compared from
/// there: the kernel turns every packet load into several eBPF instructions (a memory load
/// into one) and charges the result to the socket against `net.core.optmem_max`, which
/// per-address packet loads exceed from about 250 IPv6 addresses on.
fn owned_program(ips: &[IpAddr]) -> Option<Vec<Insn>> {
    let mut v4: Vec<u32> = Vec::new();
    let mut v6: Vec<[u32; 4]> = Vec::new();
    for ip in ips {
        match ip {
            IpAddr::V4(ip) => v4.push(u32::from(*ip)),
            IpAddr::V6(ip) => {
                let o = ip.octets();
                let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                v6.push([word(0), word(4), word(8), word(12)]);
            }
        }
    }
    v4.sort_unstable();
    v4.dedup();
    v6.sort_unstable();
    v6.dedup();
    if v4.is_empty() && v6.is_empty() {
        return Some(vec![insn(RET_K, 0, 0, DROP)]);
    }
    let arp_len = if v4.is_empty() { 1 } else { 2 + 2 * v4.len() };
    let ndp_len = if v6.is_empty() { 1 } else { 17 + 9 * v6.len() };
    let total = 6 + arp_len + ndp_len;
    if total > BPF_MAXINSNS {
        return None;
    }
    let mut program = Vec::with_capacity(total);
    program.extend([
        // Drop what this host sends.
        insn(LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        insn(JEQ_K, 0, 1, PACKET_OUTGOING),
        insn(RET_K, 0, 0, DROP),
        // ARP goes on to the ARP block, anything else jumps past it.
        insn(LD_H_ABS, 0, 0, 12),
        insn(JEQ_K, 1, 0, u32::from(ETHERTYPE_ARP)),
        // `total` fits in u32: it is at most BPF_MAXINSNS.
        insn(JA, 0, 0, arp_len as u32),
    ]);
    if v4.is_empty() {
        program.push(insn(RET_K, 0, 0, DROP));
    } else {
        program.push(insn(LD_W_ABS, 0, 0, ARP_TARGET_OFFSET));
        for ip in &v4 {
            program.extend([insn(JEQ_K, 0, 1, *ip), insn(RET_K, 0, 0, ACCEPT)]);
        }
        program.push(insn(RET_K, 0, 0, DROP));
    }
    if v6.is_empty() {
        program.push(insn(RET_K, 0, 0, DROP));
    } else {
        // The accumulator still holds the EtherType.
        program.extend([
            insn(JEQ_K, 1, 0, u32::from(ETHERTYPE_IPV6)),
            insn(RET_K, 0, 0, DROP),
            insn(LD_B_ABS, 0, 0, IPV6_NEXT_HEADER_OFFSET),
            insn(JEQ_K, 1, 0, IPPROTO_ICMPV6),
            insn(RET_K, 0, 0, DROP),
            insn(LD_B_ABS, 0, 0, ICMPV6_TYPE_OFFSET),
            insn(JEQ_K, 1, 0, ICMPV6_NEIGHBOR_SOLICITATION),
            insn(RET_K, 0, 0, DROP),
            // M[i] = the target's word i; a frame too short to hold it is dropped here.
            insn(LD_W_ABS, 0, 0, NS_TARGET_OFFSET),
            insn(ST, 0, 0, 0),
            insn(LD_W_ABS, 0, 0, NS_TARGET_OFFSET + 4),
            insn(ST, 0, 0, 1),
            insn(LD_W_ABS, 0, 0, NS_TARGET_OFFSET + 8),
            insn(ST, 0, 0, 2),
            insn(LD_W_ABS, 0, 0, NS_TARGET_OFFSET + 12),
            insn(ST, 0, 0, 3),
        ]);
        for words in &v6 {
            program.extend([
                insn(LD_MEM, 0, 0, 3),
                insn(JEQ_K, 0, 7, words[3]),
                insn(LD_MEM, 0, 0, 2),
                insn(JEQ_K, 0, 5, words[2]),
                insn(LD_MEM, 0, 0, 1),
                insn(JEQ_K, 0, 3, words[1]),
                insn(LD_MEM, 0, 0, 0),
                insn(JEQ_K, 0, 1, words[0]),
                insn(RET_K, 0, 0, ACCEPT),
            ]);
        }
        program.push(insn(RET_K, 0, 0, DROP));
    }
    debug_assert_eq!(program.len(), total);
    Some(program)
}

/// Which program a socket's filter ended up being.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKind {
    /// Only requests for the owned addresses.
    Owned,
    /// Every ARP frame and Neighbor Solicitation: the addresses did not fit, or the owned
    /// program could not be attached.
    Generic,
    /// No filter at all (neither program could be attached): every frame reaches the
    /// responder, which still answers only for owned addresses.
    None,
}

/// Attaches the filter for `ips` to the socket, replacing the previous one atomically
/// (SO_ATTACH_FILTER swaps the socket's filter under RCU: each frame sees the old program
/// or the new one). The filter belongs to the socket, not the descriptor, so any
/// duplicate of the socket will do.
///
/// Never leaves a filter that could drop a request for an owned address: when the owned
/// program cannot be attached, it falls back to the generic one, and failing that to none.
/// The kernel charges a filter against `net.core.optmem_max`, the outgoing one included
/// while it is replaced, so a large program refused next to a large old one is tried
/// again once the small generic program has taken the old one's place.
fn attach_owned_filter(socket: &Socket, ips: &[IpAddr]) -> io::Result<FilterKind> {
    let generic = frame_filter();
    let Some(owned) = owned_program(ips).map(|program| sock_filters(&program)) else {
        return match socket.attach_filter(&generic) {
            Ok(()) => Ok(FilterKind::Generic),
            Err(error) => socket
                .detach_filter()
                .map(|()| FilterKind::None)
                .or(Err(error)),
        };
    };
    if socket.attach_filter(&owned).is_ok() {
        return Ok(FilterKind::Owned);
    }
    match socket.attach_filter(&generic) {
        Ok(()) => match socket.attach_filter(&owned) {
            Ok(()) => Ok(FilterKind::Owned),
            Err(error) => {
                tracing::warn!(%error, "attaching the owned-address filter; passing every request");
                Ok(FilterKind::Generic)
            }
        },
        Err(error) => socket
            .detach_filter()
            .map(|()| FilterKind::None)
            .or(Err(error)),
    }
}

/// Opens the link's socket, filtered for the owned IPs `filtered` answered on it: the link
/// with its sender, and the receiving socket.
fn open_link(
    index: u32,
    name: &str,
    mac: MacAddr,
    default: bool,
    filtered: Vec<IpAddr>,
) -> Result<(Link, Socket)> {
    // Protocol 0: nothing is received before the bind to the link, so nothing unfiltered.
    let socket =
        Socket::new(Domain::PACKET, Type::RAW, None).context("opening an AF_PACKET socket")?;
    let kind = attach_owned_filter(&socket, &filtered).context("attaching the frame filter")?;
    if kind != FilterKind::Owned {
        tracing::debug!(interface = %name, ips = filtered.len(), ?kind, "no owned-address filter; requests for other addresses reach the responder");
    }
    if let Err(error) = socket.set_recv_buffer_size(1 << 20) {
        tracing::debug!(%error, "raising the receive buffer");
    }
    let receiver = socket.try_clone().context("duplicating the socket")?;
    let filter_socket = socket.try_clone().context("duplicating the socket")?;
    let config = pnet_datalink::Config {
        write_timeout: Some(Duration::from_millis(100)),
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        ..pnet_datalink::Config::default()
    };
    // pnet binds by index; the rest of the description is not used on Linux.
    let interface = NetworkInterface {
        name: name.to_owned(),
        description: String::new(),
        index,
        mac: Some(mac.0.into()),
        ips: Vec::new(),
        flags: 0,
    };
    // pnet binds the socket (ETH_P_ALL, this link's index) and takes its descriptor.
    let sender = match pnet_datalink::channel(&interface, config).context("binding the socket")? {
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
        name: name.to_owned(),
        index,
        default,
        mac: AtomicU64::new(mac_to_u64(mac)),
        sender: Mutex::new(sender),
        multicast,
        groups: Mutex::new(HashSet::new()),
        filter_socket,
        filtered: Mutex::new(filtered),
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

    #[test]
    fn default_options_exclude_metallbs_list_and_do_not_refresh() {
        let options = ResponderOptions::default();
        assert_eq!(options.exclude, DEFAULT_EXCLUDED_INTERFACES);
        assert_eq!(options.refresh, None);
        assert_eq!(options.schedule, AnnounceSchedule::default());
    }

    #[test]
    fn the_responder_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Responder>();
    }

    #[test]
    fn macs_survive_the_atomic() {
        for mac in [
            MacAddr::ZERO,
            MacAddr([0xff; 6]),
            MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
        ] {
            let bytes = mac_to_u64(mac).to_be_bytes();
            assert_eq!(bytes[2..], mac.0);
        }
    }

    // The socket filters, run by a classic BPF interpreter that knows only the opcodes the
    // builders emit (any other one fails the test) and the kernel's rules for them.

    const PACKET_HOST: u32 = 0;
    const PACKET_BROADCAST: u32 = 1;
    const PACKET_MULTICAST: u32 = 2;
    const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
    const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 4);
    const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0xa);

    /// What the kernel checks before accepting a program (`bpf_check_classic`), for the
    /// opcodes used: a length in 1..=BPF_MAXINSNS, jumps inside the program, scratch
    /// memory in M[0..16], a final `ret`. (That M[k] is stored before it is loaded on every
    /// path, the kernel's other check, `run` asserts on the paths it takes.)
    fn check(program: &[Insn]) {
        assert!(!program.is_empty() && program.len() <= BPF_MAXINSNS);
        for (pc, i) in program.iter().enumerate() {
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS | RET_K => {}
                LD_MEM | ST => assert!(i.k < 16, "M[{}] at {pc}", i.k),
                JA => assert!(pc + 1 + (i.k as usize) < program.len(), "ja at {pc}"),
                JEQ_K => {
                    let far = pc + 1 + usize::from(i.jt.max(i.jf));
                    assert!(far < program.len(), "jeq at {pc} jumps out");
                }
                code => panic!("unexpected opcode {code:#x} at {pc}"),
            }
        }
        assert_eq!(program.last().map(|i| i.code), Some(RET_K));
    }

    /// Runs `program` on `frame` received with packet type `pkttype`; the bytes kept, 0
    /// for a drop. A load past the end of the frame drops it, as in the kernel.
    fn run(program: &[Insn], frame: &[u8], pkttype: u32) -> u32 {
        check(program);
        let load = |k: u32, size: usize| -> Option<u32> {
            let start = usize::try_from(k).ok()?;
            let bytes = frame.get(start..start.checked_add(size)?)?;
            Some(bytes.iter().fold(0, |a, b| a << 8 | u32::from(*b)))
        };
        let mut a: u32 = 0;
        let mut memory: [Option<u32>; 16] = [None; 16];
        let mut pc = 0;
        loop {
            let i = program[pc];
            pc += 1;
            let loaded = match i.code {
                LD_B_ABS if i.k == SKF_AD_PKTTYPE => Some(pkttype),
                LD_B_ABS => load(i.k, 1),
                LD_H_ABS => load(i.k, 2),
                LD_W_ABS => load(i.k, 4),
                LD_MEM => Some(memory[i.k as usize].expect("M[k] loaded before it is stored")),
                ST => {
                    memory[i.k as usize] = Some(a);
                    continue;
                }
                JA => {
                    pc += i.k as usize;
                    continue;
                }
                JEQ_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                    continue;
                }
                RET_K => return i.k,
                code => panic!("unexpected opcode {code:#x}"),
            };
            match loaded {
                Some(value) => a = value,
                None => return 0,
            }
        }
    }

    fn passes(program: &[Insn], frame: &[u8]) -> bool {
        run(program, frame, PACKET_BROADCAST) != 0
    }

    fn program(ips: &[IpAddr]) -> Vec<Insn> {
        owned_program(ips).expect("the addresses fit")
    }

    /// An ARP request from the client for `target`: a gratuitous request from the codec
    /// with the client's own address as sender.
    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut frame = build_gratuitous_arp(ArpOperation::Request, CLIENT_MAC, target).to_vec();
        frame[28..32].copy_from_slice(&CLIENT_V4.octets());
        frame
    }

    /// A Neighbor Solicitation from the client for `target`, to its solicited-node group:
    /// the codec's advertisement made a solicitation (type, flags, source link-layer
    /// option, checksum).
    fn neighbor_solicitation(target: Ipv6Addr) -> Vec<u8> {
        let group = solicited_node_multicast(target);
        let mut frame =
            build_unsolicited_neighbor_advertisement(CLIENT_MAC, CLIENT_V6, target).to_vec();
        frame[0..6].copy_from_slice(&crate::ipv6_multicast_mac(group).0);
        frame[38..54].copy_from_slice(&group.octets());
        let icmp = ETHERNET_HEADER_LEN + 40;
        frame[icmp] = 135;
        frame[icmp + 2..icmp + 8].fill(0);
        frame[icmp + 24] = 1; // source link-layer address
        let checksum = etherparse::checksum::Sum16BitWords::new()
            .add_16bytes(CLIENT_V6.octets())
            .add_16bytes(group.octets())
            .add_4bytes(((frame.len() - icmp) as u32).to_be_bytes())
            .add_2bytes([0, 58])
            .add_slice(&frame[icmp..])
            .ones_complement();
        frame[icmp + 2..icmp + 4].copy_from_slice(&checksum.to_ne_bytes());
        frame
    }

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, last)
    }

    fn v6(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, last)
    }

    #[test]
    fn the_test_frames_are_requests_the_responder_answers() {
        let owns = |ip: IpAddr| ip == IpAddr::V4(v4(200)) || ip == IpAddr::V6(v6(0x200));
        for frame in [arp_request(v4(200)), neighbor_solicitation(v6(0x200))] {
            assert!(matches!(decide(&frame, OUR_MAC, owns), Verdict::Answer(_)));
        }
        for frame in [arp_request(v4(201)), neighbor_solicitation(v6(0x201))] {
            assert_eq!(decide(&frame, OUR_MAC, owns), Verdict::Ignore);
        }
    }

    #[test]
    fn the_generic_filter_passes_every_request_and_nothing_else() {
        let program = frame_program();
        assert!(passes(&program, &arp_request(v4(1))));
        assert!(passes(&program, &neighbor_solicitation(v6(1))));
        let mut advertisement = neighbor_solicitation(v6(1));
        advertisement[ETHERNET_HEADER_LEN + 40] = 136;
        assert!(!passes(&program, &advertisement));
        assert_eq!(run(&program, &arp_request(v4(1)), PACKET_OUTGOING), 0);
    }

    #[test]
    fn owned_requests_pass_and_others_are_dropped() {
        let ips = [
            IpAddr::V4(v4(200)),
            IpAddr::V4(v4(210)),
            IpAddr::V6(v6(0x200)),
            IpAddr::V6(v6(0x210)),
        ];
        let program = program(&ips);
        for pkttype in [PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST] {
            for frame in [
                arp_request(v4(200)),
                arp_request(v4(210)),
                neighbor_solicitation(v6(0x200)),
                neighbor_solicitation(v6(0x210)),
            ] {
                assert_eq!(run(&program, &frame, pkttype), ACCEPT);
                // What this host sends is dropped, owned target or not.
                assert_eq!(run(&program, &frame, PACKET_OUTGOING), 0);
            }
        }
        for frame in [
            arp_request(v4(201)),
            arp_request(v4(1)),
            neighbor_solicitation(v6(0x201)),
            // Same last word as an owned address, different prefix.
            neighbor_solicitation(Ipv6Addr::new(0x2001, 0xdb8, 0x101, 0, 0, 0, 0, 0x200)),
            // Every word but one matching, for each of the four words.
            neighbor_solicitation(Ipv6Addr::new(0x2001, 0xdb9, 0x100, 0, 0, 0, 0, 0x200)),
            neighbor_solicitation(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0x200)),
            neighbor_solicitation(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 1, 0, 0, 0x200)),
            neighbor_solicitation(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 1, 0x200)),
        ] {
            assert!(!passes(&program, &frame));
        }
    }

    #[test]
    fn other_frames_are_dropped_even_with_an_owned_target() {
        let program = program(&[IpAddr::V4(v4(200)), IpAddr::V6(v6(0x200))]);
        let solicitation = neighbor_solicitation(v6(0x200));
        let icmp = ETHERNET_HEADER_LEN + 40;
        let mut advertisement = solicitation.clone();
        advertisement[icmp] = 136;
        let mut not_icmp = solicitation.clone();
        not_icmp[ETHERNET_HEADER_LEN + 6] = 17;
        let mut extension_header = solicitation.clone();
        extension_header[ETHERNET_HEADER_LEN + 6] = 0;
        let mut ipv4 = arp_request(v4(200));
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut tagged = arp_request(v4(200));
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        for frame in [
            advertisement,
            not_icmp,
            extension_header,
            ipv4,
            tagged,
            // Cut before the target: the load fails and the kernel drops the frame.
            arp_request(v4(200))[..40].to_vec(),
            solicitation[..70].to_vec(),
            Vec::new(),
        ] {
            assert!(!passes(&program, &frame), "{frame:02x?}");
        }
        // The ARP target is read where an ARP reply has it too; replies to owned targets
        // reach `decide`, which ignores them.
        let reply = build_gratuitous_arp(ArpOperation::Reply, CLIENT_MAC, v4(200));
        assert!(passes(&program, &reply));
    }

    #[test]
    fn one_family_owned_drops_the_other_entirely() {
        let only_v4 = program(&[IpAddr::V4(v4(200))]);
        assert!(passes(&only_v4, &arp_request(v4(200))));
        assert!(!passes(&only_v4, &neighbor_solicitation(v6(0x200))));
        // An IPv6 target whose first word equals the owned IPv4 address.
        let first_word = Ipv6Addr::from(u128::from(u32::from(v4(200))) << 96);
        assert!(!passes(&only_v4, &neighbor_solicitation(first_word)));

        let only_v6 = program(&[IpAddr::V6(v6(0x200))]);
        assert!(passes(&only_v6, &neighbor_solicitation(v6(0x200))));
        assert!(!passes(&only_v6, &arp_request(v4(200))));
        // An IPv4-mapped address does not make the IPv4 address owned.
        let mapped = IpAddr::V6(v4(200).to_ipv6_mapped());
        assert!(!passes(&program(&[mapped]), &arp_request(v4(200))));
    }

    #[test]
    fn no_owned_address_drops_everything() {
        let program = program(&[]);
        for frame in [arp_request(v4(200)), neighbor_solicitation(v6(0x200))] {
            for pkttype in [PACKET_HOST, PACKET_BROADCAST, PACKET_OUTGOING] {
                assert_eq!(run(&program, &frame, pkttype), 0);
            }
        }
        assert_eq!(owned_filter(&[]).len(), 1);
    }

    #[test]
    fn duplicates_and_order_do_not_change_the_program() {
        let a = [IpAddr::V4(v4(1)), IpAddr::V6(v6(2)), IpAddr::V4(v4(3))];
        let b = [a[2], a[1], a[0], a[2], a[1]];
        assert_eq!(program(&a), program(&b));
    }

    /// The most addresses of one family that fit, found by trying (a binary search: more
    /// never fit where fewer do not).
    fn capacity(make: impl Fn(u32) -> IpAddr) -> usize {
        let ips: Vec<IpAddr> = (0..BPF_MAXINSNS as u32).map(make).collect();
        let (mut fits, mut too_many) = (0, ips.len());
        while too_many - fits > 1 {
            let middle = (fits + too_many) / 2;
            if owned_program(&ips[..middle]).is_some() {
                fits = middle;
            } else {
                too_many = middle;
            }
        }
        fits
    }

    #[test]
    fn too_many_addresses_fall_back_to_the_generic_filter() {
        let v4_of = |i: u32| IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i)); // 198.18/15
        let v6_of =
            |i: u32| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_000f_u128 << 80 | u128::from(i)));
        let (v4_cap, v6_cap) = (capacity(v4_of), capacity(v6_of));
        assert!(v4_cap >= 2000 && v6_cap >= 450, "{v4_cap} {v6_cap}");

        // The largest programs are still valid and exact, at both ends of the chains.
        let ips: Vec<IpAddr> = (0..v4_cap as u32).map(v4_of).collect();
        let largest = program(&ips);
        assert!(largest.len() <= BPF_MAXINSNS);
        for ip in [ips[0], ips[ips.len() / 2], ips[ips.len() - 1]] {
            let IpAddr::V4(ip) = ip else { unreachable!() };
            assert!(passes(&largest, &arp_request(ip)));
        }
        let IpAddr::V4(past) = v4_of(v4_cap as u32) else {
            unreachable!()
        };
        assert!(!passes(&largest, &arp_request(past)));
        let ips: Vec<IpAddr> = (0..v6_cap as u32).map(v6_of).collect();
        let largest = program(&ips);
        for ip in [ips[0], ips[ips.len() - 1]] {
            let IpAddr::V6(ip) = ip else { unreachable!() };
            assert!(passes(&largest, &neighbor_solicitation(ip)));
        }

        // One more falls back to passing every request.
        let ips: Vec<IpAddr> = (0..=v6_cap as u32).map(v6_of).collect();
        assert_eq!(owned_program(&ips), None);
        assert_eq!(owned_filter(&ips).len(), frame_program().len());
        let mixed: Vec<IpAddr> = (0..v4_cap as u32)
            .map(v4_of)
            .chain((0..2).map(v6_of))
            .collect();
        assert_eq!(owned_program(&mixed), None);
    }

    /// The kernel takes the programs, the largest ones included, also in place of each
    /// other (the outgoing one is charged to the socket until the new one is in); a UDP
    /// socket needs no privilege and is charged the same way as the responder's.
    #[test]
    fn the_kernel_accepts_the_programs() {
        let v4_of = |i: u32| IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
        let v6_of =
            |i: u32| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_000f_u128 << 80 | u128::from(i)));
        let largest_v4: Vec<IpAddr> = (0..capacity(v4_of) as u32).map(v4_of).collect();
        let largest_v6: Vec<IpAddr> = (0..capacity(v6_of) as u32).map(v6_of).collect();
        let too_many: Vec<IpAddr> = (0..=capacity(v6_of) as u32).map(v6_of).collect();
        // On kernels with a small net.core.optmem_max (20 KiB before Linux 6.9) the largest
        // programs fall back to the generic one, which is still correct.
        let small_optmem = fs::read_to_string("/proc/sys/net/core/optmem_max")
            .ok()
            .and_then(|value| value.trim().parse::<usize>().ok())
            .is_some_and(|value| value < 128 * 1024);
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("a UDP socket");
        for (ips, kind) in [
            (&[][..], FilterKind::Owned),
            (&largest_v4[..], FilterKind::Owned),
            (&largest_v6[..], FilterKind::Owned),
            (&too_many[..], FilterKind::Generic),
            (&largest_v4[..1], FilterKind::Owned),
        ] {
            let attached = attach_owned_filter(&socket, ips).expect("a filter attached");
            if !small_optmem {
                assert_eq!(attached, kind, "{} addresses", ips.len());
            }
        }
    }

    proptest::proptest! {
        /// Below the size cap, the program passes a request iff its target is owned.
        #[test]
        fn the_filter_passes_exactly_the_owned_targets(
            owned in proptest::collection::vec(any_ip(), 0..300),
            others in proptest::collection::vec(any_ip(), 0..20),
            pick in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..20),
        ) {
            let program = owned_program(&owned);
            proptest::prop_assume!(program.is_some());
            let program = program.expect("assumed");
            let targets = others
                .iter()
                .copied()
                .chain(pick.iter().filter(|_| !owned.is_empty()).map(|i| owned[i.index(owned.len())]));
            for target in targets {
                let frame = match target {
                    IpAddr::V4(ip) => arp_request(ip),
                    IpAddr::V6(ip) => neighbor_solicitation(ip),
                };
                proptest::prop_assert_eq!(passes(&program, &frame), owned.contains(&target));
            }
        }
    }

    /// Addresses from a small space, so that owned and random targets often share words.
    fn any_ip() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..4, any::<u8>()).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(198, 51, 100 + c, d))),
            (0u16..3, 0u16..3, any::<u16>()).prop_map(|(a, b, c)| {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, 0, b, 0, 0, c))
            }),
        ]
    }
}
