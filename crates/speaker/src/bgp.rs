//! The speaker's BGP side. Pure: from the validated configuration, this Node and the password
//! Secrets to the sessions this node opens ([`sessions`]), and from the announce crate's
//! [`BgpPlan`] to the routes each session advertises ([`routes`]). The thin shell around the
//! session hub and BFD is [`Engine`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_announce::BgpPlan;
use ferrolb_bfd::{Bfd, Profile as BfdProfile, State as BfdState};
use ferrolb_bgp::speaker::{Advertised, PeerConfig, PeerStatus, Speaker, SpeakerOptions};
use ferrolb_bgp::{PeerAsn, State};
use ferrolb_bgp_wire::Family;
use ferrolb_config::Config;
use ferrolb_config::community::Community;
use ferrolb_config::peers::{self, Password, PeerEndpoint};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Secret;
use tokio::sync::watch;

use crate::metrics::BgpSessionCounts;

/// The key of a `kubernetes.io/basic-auth` Secret that holds a BGPPeer's password.
pub const PASSWORD_KEY: &str = "password";

/// MetalLB's BGPPeer defaults.
const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);

/// Keeps only the password of a basic-auth Secret: nothing else of it is read, and the rest
/// (the username, annotations) need not sit in the speaker's memory.
pub fn slim_secret(secret: &mut Secret) {
    secret.string_data = None;
    if let Some(data) = secret.data.as_mut() {
        data.retain(|key, _| key == PASSWORD_KEY);
    }
    let meta = &mut secret.metadata;
    meta.annotations = None;
    meta.labels = None;
    meta.owner_references = None;
}

/// The password of a basic-auth Secret, if it has one that is text.
pub fn secret_password(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(PASSWORD_KEY)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// One session this node should have: the hub's config and, when the peer names a
/// BFDProfile, the BFD session that guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub config: PeerConfig,
    pub bfd: Option<(IpAddr, BfdProfile)>,
}

/// The sessions of this node and why some configured peers have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    pub sessions: Vec<Session>,
    /// `(peer, reason)` for every peer that selects this node but cannot be served.
    pub problems: Vec<(String, String)>,
}

/// The sessions for the peers in `plan` (those whose nodeSelectors select this node).
///
/// `node_ips` are the Node's InternalIPs: the first IPv4 one is the router ID unless the peer
/// sets one (MetalLB: the session's own IPv4 address, else a hash of the node name), and one
/// of each family is the next hop for routes of the family the session does not run over.
pub fn sessions(
    config: &Config,
    plan: &BgpPlan,
    node_name: &str,
    node_ips: &[IpAddr],
    passwords: &BTreeMap<String, String>,
) -> Sessions {
    let mut out = Sessions::default();
    let first_v4 = node_ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let first_v6 = node_ips.iter().find_map(|ip| match ip {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    });
    for name in plan.peers.keys() {
        let Some(peer) = config.peers.get(name) else {
            continue;
        };
        let mut problem = |reason: String| out.problems.push((name.clone(), reason));
        let address = match &peer.endpoint {
            PeerEndpoint::Address(ip) => ip.to_canonical(),
            PeerEndpoint::Interface(interface) => {
                problem(format!(
                    "unnumbered BGP (spec.interface {interface:?}) is not supported yet; give spec.peerAddress"
                ));
                continue;
            }
        };
        let password = match &peer.password {
            None => None,
            Some(Password::Inline(text)) => Some(text.clone()),
            Some(Password::Secret(secret)) => match passwords.get(secret) {
                Some(text) => Some(text.clone()),
                None => {
                    problem(format!(
                        "passwordSecret {secret:?} is not a kubernetes.io/basic-auth Secret with a `{PASSWORD_KEY}` key in this namespace (yet)"
                    ));
                    continue;
                }
            },
        };
        let bfd = match &peer.bfd_profile {
            None => None,
            Some(profile) => match config.bfd_profiles.get(profile) {
                Some(profile) => {
                    let local = peer.source_address.or(if address.is_ipv4() {
                        first_v4.map(IpAddr::V4)
                    } else {
                        first_v6.map(IpAddr::V6)
                    });
                    match local {
                        Some(local) => Some((local, bfd_profile(profile))),
                        None => {
                            problem(
                                "BFD needs a local address of the peer's family; the Node has no InternalIP of it and the peer no sourceAddress".to_string(),
                            );
                            None
                        }
                    }
                }
                None => {
                    problem(format!("BFDProfile {profile:?} does not exist"));
                    None
                }
            },
        };
        let (hold_time, keepalive_time) = match (peer.hold_time, peer.keepalive_time) {
            (Some(hold), Some(keepalive)) => (hold, keepalive),
            (Some(hold), None) => (hold, hold / 3),
            (None, Some(keepalive)) => (keepalive * 3, keepalive),
            (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
        };
        let own_family = if address.is_ipv4() {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        };
        let mut families = BTreeSet::from([own_family]);
        if peer.dual_stack_address_family && !peer.disable_mp {
            families.insert(Family::Ipv4Unicast);
            families.insert(Family::Ipv6Unicast);
        }
        let router_id = peer
            .router_id
            .or(first_v4)
            .unwrap_or_else(|| hashed_router_id(node_name));
        let mut session = PeerConfig::new(
            name.clone(),
            address,
            peer.local_asn.unwrap_or(peer.my_asn),
            match peer.peer_asn {
                peers::PeerAsn::Fixed(asn) => PeerAsn::Fixed(asn),
                peers::PeerAsn::Internal => PeerAsn::Internal,
                peers::PeerAsn::External => PeerAsn::External,
            },
            router_id,
        );
        session.port = peer.port;
        session.hold_time = hold_time;
        session.keepalive_time = keepalive_time;
        if let Some(connect) = peer.connect_time {
            session.connect_time = connect;
        }
        session.source_address = peer.source_address;
        session.ebgp_multihop = peer.ebgp_multihop;
        session.password = password;
        session.graceful_restart = peer.graceful_restart;
        session.vrf = peer.vrf.clone();
        session.families = families;
        session.next_hop_v4 = first_v4;
        session.next_hop_v6 = first_v6;
        out.sessions.push(Session {
            config: session,
            bfd,
        });
    }
    out
}

/// MetalLB's router ID for a node without IPv4: the CRC-32 (IEEE) of its name, little-endian.
fn hashed_router_id(node_name: &str) -> Ipv4Addr {
    let crc = crc32_ieee(node_name.as_bytes());
    Ipv4Addr::from(crc.to_le_bytes())
}

fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn bfd_profile(profile: &peers::BfdProfile) -> BfdProfile {
    let defaults = BfdProfile::default();
    let ms = |value: Option<u32>, default: Duration| {
        value.map_or(default, |ms| Duration::from_millis(u64::from(ms)))
    };
    BfdProfile {
        receive_interval: ms(profile.receive_interval_ms, defaults.receive_interval),
        transmit_interval: ms(profile.transmit_interval_ms, defaults.transmit_interval),
        detect_multiplier: profile
            .detect_multiplier
            .and_then(|m| u8::try_from(m).ok())
            .unwrap_or(defaults.detect_multiplier),
        passive: profile.passive_mode,
        minimum_ttl: profile
            .minimum_ttl
            .and_then(|t| u8::try_from(t).ok())
            .unwrap_or(defaults.minimum_ttl),
        echo_mode: profile.echo_mode,
    }
}

/// The routes of every peer in `plan`, as the session hub takes them.
pub fn routes(plan: &BgpPlan) -> BTreeMap<String, BTreeMap<IpNet, Advertised>> {
    plan.peers
        .iter()
        .map(|(peer, routes)| {
            let routes = routes
                .iter()
                .map(|(prefix, attributes)| {
                    let mut advertised = Advertised {
                        local_pref: attributes.local_pref,
                        ..Advertised::default()
                    };
                    for community in &attributes.communities {
                        match *community {
                            Community::Standard(value) => advertised.communities.push(value),
                            Community::Large(a, b, c) => {
                                advertised.large_communities.push([a, b, c])
                            }
                        }
                    }
                    (*prefix, advertised)
                })
                .collect();
            (peer.clone(), routes)
        })
        .collect()
}

/// The session hub and BFD, kept in line with the latest [`Sessions`] and routes. A BFD session
/// that goes Down (other than by the peer's own AdminDown, RFC 5882 §3.2) takes its BGP
/// session down at once.
pub struct Engine {
    speaker: Speaker,
    bfd: Option<Bfd>,
    status: watch::Receiver<BTreeMap<String, PeerStatus>>,
    applied: Arc<Mutex<Applied>>,
    /// Which peer a BFD session guards, by the peer's address.
    guarded: Arc<Mutex<BTreeMap<IpAddr, (String, u16)>>>,
}

/// What was last handed to the hub and to BFD.
#[derive(Default)]
struct Applied {
    sessions: Vec<Session>,
    routes: BTreeMap<String, BTreeMap<IpNet, Advertised>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub async fn start() -> anyhow::Result<Self> {
        let speaker = Speaker::start(SpeakerOptions::default()).await?;
        let status = speaker.status();
        let guarded: Arc<Mutex<BTreeMap<IpAddr, (String, u16)>>> = Arc::default();
        let bfd = match Bfd::start(Vec::new()).await {
            Ok(bfd) => {
                tokio::spawn(follow_bfd(bfd.states(), speaker.clone(), guarded.clone()));
                Some(bfd)
            }
            Err(error) => {
                tracing::error!(%error, "BFD is unavailable; peers with a BFDProfile rely on the BGP hold time");
                None
            }
        };
        Ok(Self {
            speaker,
            bfd,
            status,
            applied: Arc::default(),
            guarded,
        })
    }

    /// Brings the sessions, their BFD guards and the routes in line; unchanged parts are left
    /// alone.
    pub fn apply(
        &self,
        sessions: Vec<Session>,
        mut routes: BTreeMap<String, BTreeMap<IpNet, Advertised>>,
    ) {
        let mut applied = lock(&self.applied);
        if sessions != applied.sessions {
            let wanted_bfd: BTreeMap<IpAddr, (String, u16, IpAddr, BfdProfile)> = sessions
                .iter()
                .filter_map(|s| {
                    s.bfd.as_ref().map(|(local, profile)| {
                        (
                            s.config.address,
                            (
                                s.config.name.clone(),
                                s.config.port,
                                *local,
                                profile.clone(),
                            ),
                        )
                    })
                })
                .collect();
            let applied_bfd: BTreeMap<IpAddr, (IpAddr, BfdProfile)> = applied
                .sessions
                .iter()
                .filter_map(|s| s.bfd.clone().map(|b| (s.config.address, b)))
                .collect();
            if let Some(bfd) = &self.bfd {
                for peer in applied_bfd.keys() {
                    if !wanted_bfd.contains_key(peer) {
                        bfd.remove(*peer);
                    }
                }
                for (peer, (name, _, local, profile)) in &wanted_bfd {
                    if applied_bfd.get(peer) != Some(&(*local, profile.clone()))
                        && let Err(error) = bfd.add(*peer, *local, profile.clone())
                    {
                        tracing::warn!(peer = %name, %error, "cannot start the BFD session");
                    }
                }
            }
            *lock(&self.guarded) = wanted_bfd
                .into_iter()
                .map(|(peer, (name, port, _, _))| (peer, (name, port)))
                .collect();
            self.speaker
                .set_peers(sessions.iter().map(|s| s.config.clone()).collect());
            applied.sessions = sessions;
        }
        let Applied {
            sessions,
            routes: applied_routes,
        } = &mut *applied;
        for session in sessions.iter() {
            let name = &session.config.name;
            let wanted = routes.remove(name).unwrap_or_default();
            if applied_routes.get(name) != Some(&wanted) {
                self.speaker.set_routes(name, wanted.clone());
                applied_routes.insert(name.clone(), wanted);
            }
        }
        let names: BTreeSet<&String> = sessions.iter().map(|s| &s.config.name).collect();
        applied_routes.retain(|name, _| names.contains(name));
    }

    /// Reads every session's figures, for the metrics at scrape time.
    pub fn counts_reader(&self) -> impl Fn() -> Vec<BgpSessionCounts> + Send + Sync + 'static {
        let status = self.status.clone();
        let bfd = self.bfd.as_ref().map(Bfd::states);
        let applied = self.applied.clone();
        move || {
            counts(
                &lock(&applied),
                &status.borrow(),
                bfd.as_ref().map(|b| b.borrow().clone()),
            )
        }
    }
    /// Each session's state by peer name, as the hub reports it.
    pub fn status(&self) -> watch::Receiver<BTreeMap<String, PeerStatus>> {
        self.status.clone()
    }

    /// Each BFD session's state by the peer's address; `None` when BFD could not be started.
    pub fn bfd_states(&self) -> Option<watch::Receiver<BTreeMap<IpAddr, ferrolb_bfd::PeerState>>> {
        self.bfd.as_ref().map(Bfd::states)
    }

    /// Stops every session (without a NOTIFICATION where graceful restart is on, so routers
    /// keep the routes until this speaker is back) and every BFD session (AdminDown).
    pub async fn shutdown(&self) {
        self.speaker.clone().shutdown().await;
        if let Some(bfd) = &self.bfd {
            for session in &lock(&self.applied).sessions {
                if session.bfd.is_some() {
                    bfd.remove(session.config.address);
                }
            }
        }
    }
}

fn counts(
    applied: &Applied,
    status: &BTreeMap<String, PeerStatus>,
    bfd: Option<BTreeMap<IpAddr, ferrolb_bfd::PeerState>>,
) -> Vec<BgpSessionCounts> {
    applied
        .sessions
        .iter()
        .map(|session| {
            let config = &session.config;
            let peer = std::net::SocketAddr::new(config.address, config.port).to_string();
            let status = status.get(&config.name);
            let pending = applied
                .routes
                .get(&config.name)
                .map_or(0, |routes| routes.len() as u64);
            BgpSessionCounts {
                peer,
                session_up: status.is_some_and(|s| s.state == State::Established),
                updates_sent: status.map_or(0, |s| s.updates_sent),
                updates_received: status.map_or(0, |s| s.updates_received),
                notifications_sent: status.map_or(0, |s| s.notifications_sent),
                notifications_received: status.map_or(0, |s| s.notifications_received),
                announced_prefixes: status.map_or(0, |s| s.prefixes_advertised as u64),
                pending_prefixes: pending,
                bfd_up: session.bfd.as_ref().map(|_| {
                    bfd.as_ref()
                        .and_then(|states| states.get(&config.address))
                        .is_some_and(|s| s.state == BfdState::Up)
                }),
            }
        })
        .collect()
}

/// Resets the BGP session of every guarded peer whose BFD session leaves Up for Down, unless the
/// peer itself said AdminDown (then the path is fine; RFC 5882 §3.2).
async fn follow_bfd(
    mut states: watch::Receiver<BTreeMap<IpAddr, ferrolb_bfd::PeerState>>,
    speaker: Speaker,
    guarded: Arc<Mutex<BTreeMap<IpAddr, (String, u16)>>>,
) {
    let mut up: BTreeSet<IpAddr> = BTreeSet::new();
    while states.changed().await.is_ok() {
        let now = states.borrow_and_update().clone();
        for (peer, state) in &now {
            if state.state == BfdState::Up {
                up.insert(*peer);
                continue;
            }
            if up.remove(peer) && state.remote_state != BfdState::AdminDown {
                let name = guarded
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(peer)
                    .map(|(name, _)| name.clone());
                if let Some(name) = name {
                    tracing::warn!(peer = %name, address = %peer, diag = ?state.diag, "BFD went down; taking the BGP session down");
                    speaker.reset(&name, "BFD down");
                }
            }
        }
        up.retain(|peer| now.contains_key(peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_announce::RouteAttributes;
    use ferrolb_config::peers::{BfdProfile as ConfigBfdProfile, Peer};

    fn peer(name: &str, address: &str) -> Peer {
        Peer {
            name: name.into(),
            my_asn: 64512,
            peer_asn: peers::PeerAsn::Fixed(64501),
            local_asn: None,
            endpoint: PeerEndpoint::Address(address.parse().expect("address")),
            port: 179,
            source_address: None,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: None,
            node_selectors: Vec::new(),
            password: None,
            bfd_profile: None,
            graceful_restart: false,
            ebgp_multihop: false,
            vrf: None,
            disable_mp: false,
            dual_stack_address_family: false,
        }
    }

    /// A plan in which every peer of `config` selects this node.
    fn plan_for(config: &Config) -> BgpPlan {
        BgpPlan {
            peers: config
                .peers
                .keys()
                .map(|name| (name.clone(), BTreeMap::new()))
                .collect(),
            ..BgpPlan::default()
        }
    }

    fn node_ips() -> Vec<IpAddr> {
        vec![
            "198.51.100.11".parse().expect("v4"),
            "2001:db8:100::11".parse().expect("v6"),
        ]
    }

    fn config_with(peers: Vec<Peer>) -> Config {
        Config {
            peers: peers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn a_plain_peer_gets_metallbs_defaults_and_the_nodes_addresses() {
        let config = config_with(vec![peer("router", "198.51.100.3")]);
        let out = sessions(
            &config,
            &plan_for(&config),
            "node-1",
            &node_ips(),
            &BTreeMap::new(),
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let [session] = out.sessions.as_slice() else {
            panic!("{out:?}");
        };
        let c = &session.config;
        assert_eq!(
            c.router_id,
            Ipv4Addr::new(198, 51, 100, 11),
            "the node's IPv4"
        );
        assert_eq!((c.local_asn, c.peer_asn), (64512, PeerAsn::Fixed(64501)));
        assert_eq!(c.hold_time, Duration::from_secs(90));
        assert_eq!(c.keepalive_time, Duration::from_secs(30));
        assert_eq!(c.families, BTreeSet::from([Family::Ipv4Unicast]));
        assert_eq!(c.next_hop_v6, Some("2001:db8:100::11".parse().expect("v6")));
        assert!(session.bfd.is_none());
    }

    #[test]
    fn timers_given_alone_imply_the_other_and_options_pass_through() {
        let mut p = peer("router", "2001:db8:100::3");
        p.hold_time = Some(Duration::from_secs(9));
        p.router_id = Some(Ipv4Addr::new(192, 0, 2, 77));
        p.local_asn = Some(65000);
        p.dual_stack_address_family = true;
        p.graceful_restart = true;
        p.ebgp_multihop = true;
        p.port = 1790;
        let mut q = peer("other", "198.51.100.4");
        q.keepalive_time = Some(Duration::from_secs(5));
        q.dual_stack_address_family = true;
        q.disable_mp = true;
        let config = config_with(vec![p, q]);
        let out = sessions(
            &config,
            &plan_for(&config),
            "node-1",
            &node_ips(),
            &BTreeMap::new(),
        );
        let by_name: BTreeMap<&str, &PeerConfig> = out
            .sessions
            .iter()
            .map(|s| (s.config.name.as_str(), &s.config))
            .collect();
        let router = by_name["router"];
        assert_eq!(router.keepalive_time, Duration::from_secs(3));
        assert_eq!(router.router_id, Ipv4Addr::new(192, 0, 2, 77));
        assert_eq!(router.local_asn, 65000, "localASN is the AS presented");
        assert_eq!(
            router.families,
            BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast])
        );
        assert!(router.graceful_restart && router.ebgp_multihop);
        assert_eq!(router.port, 1790);
        let other = by_name["other"];
        assert_eq!(other.hold_time, Duration::from_secs(15));
        assert_eq!(
            other.families,
            BTreeSet::from([Family::Ipv4Unicast]),
            "disableMP keeps a session to its own family"
        );
    }

    #[test]
    fn passwords_come_inline_or_from_a_secret_and_a_missing_secret_is_reported() {
        let mut inline = peer("inline", "198.51.100.3");
        inline.password = Some(Password::Inline("a".into()));
        let mut secret = peer("secret", "198.51.100.4");
        secret.password = Some(Password::Secret("router-password".into()));
        let mut missing = peer("missing", "198.51.100.5");
        missing.password = Some(Password::Secret("nowhere".into()));
        let config = config_with(vec![inline, secret, missing]);
        let passwords = BTreeMap::from([("router-password".to_string(), "b".to_string())]);
        let out = sessions(
            &config,
            &plan_for(&config),
            "node-1",
            &node_ips(),
            &passwords,
        );
        let by_name: BTreeMap<&str, Option<&str>> = out
            .sessions
            .iter()
            .map(|s| (s.config.name.as_str(), s.config.password.as_deref()))
            .collect();
        assert_eq!(
            by_name,
            BTreeMap::from([("inline", Some("a")), ("secret", Some("b"))]),
            "a session without its password would never come up: none is opened"
        );
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].0, "missing");
        assert!(out.problems[0].1.contains("nowhere"), "{:?}", out.problems);
    }

    #[test]
    fn only_peers_of_the_plan_get_sessions_and_unnumbered_peers_are_reported() {
        let mut unnumbered = peer("unnumbered", "198.51.100.3");
        unnumbered.endpoint = PeerEndpoint::Interface("eth0".into());
        let config = config_with(vec![
            peer("selected", "198.51.100.3"),
            peer("elsewhere", "198.51.100.4"),
            unnumbered,
        ]);
        let mut plan = plan_for(&config);
        plan.peers.remove("elsewhere");
        let out = sessions(&config, &plan, "node-1", &node_ips(), &BTreeMap::new());
        let names: Vec<&str> = out
            .sessions
            .iter()
            .map(|s| s.config.name.as_str())
            .collect();
        assert_eq!(names, ["selected"]);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0].1.contains("unnumbered"));
    }

    #[test]
    fn a_bfd_profile_guards_the_session_with_the_nodes_address_of_the_peers_family() {
        let mut p = peer("router", "2001:db8:100::3");
        p.bfd_profile = Some("fast".into());
        let mut q = peer("ghost", "198.51.100.3");
        q.bfd_profile = Some("nonexistent".into());
        let mut config = config_with(vec![p, q]);
        config.bfd_profiles.insert(
            "fast".into(),
            ConfigBfdProfile {
                name: "fast".into(),
                receive_interval_ms: Some(100),
                transmit_interval_ms: Some(150),
                detect_multiplier: Some(4),
                echo_interval_ms: None,
                echo_mode: false,
                passive_mode: true,
                minimum_ttl: None,
            },
        );
        let out = sessions(
            &config,
            &plan_for(&config),
            "node-1",
            &node_ips(),
            &BTreeMap::new(),
        );
        let router = out
            .sessions
            .iter()
            .find(|s| s.config.name == "router")
            .expect("router session");
        let (local, profile) = router.bfd.clone().expect("BFD");
        assert_eq!(local, "2001:db8:100::11".parse::<IpAddr>().expect("v6"));
        assert_eq!(profile.receive_interval, Duration::from_millis(100));
        assert_eq!(profile.transmit_interval, Duration::from_millis(150));
        assert_eq!(profile.detect_multiplier, 4);
        assert!(profile.passive);
        assert!(
            out.problems
                .iter()
                .any(|(peer, reason)| peer == "ghost" && reason.contains("nonexistent")),
            "{:?}",
            out.problems
        );
    }

    #[test]
    fn routes_split_standard_and_large_communities() {
        let prefix: IpNet = "203.0.113.10/32".parse().expect("prefix");
        let plan = BgpPlan {
            peers: BTreeMap::from([(
                "router".to_string(),
                BTreeMap::from([(
                    prefix,
                    RouteAttributes {
                        local_pref: Some(150),
                        communities: BTreeSet::from([
                            Community::Standard(0xfde8_0064),
                            Community::Large(1, 2, 3),
                        ]),
                    },
                )]),
            )]),
            ..BgpPlan::default()
        };
        let routes = routes(&plan);
        assert_eq!(
            routes["router"][&prefix],
            Advertised {
                local_pref: Some(150),
                communities: vec![0xfde8_0064],
                large_communities: vec![[1, 2, 3]],
            }
        );
    }

    #[test]
    fn the_hashed_router_id_is_metallbs() {
        assert_eq!(
            crc32_ieee(b"123456789"),
            0xcbf4_3926,
            "the CRC-32 check value"
        );
        // MetalLB writes crc32.ChecksumIEEE(name) little-endian into the four octets.
        let crc = crc32_ieee(b"node-1");
        assert_eq!(
            hashed_router_id("node-1"),
            Ipv4Addr::from(crc.to_le_bytes())
        );
        let config = config_with(vec![peer("router", "2001:db8:100::3")]);
        let v6_only = vec!["2001:db8:100::11".parse().expect("v6")];
        let out = sessions(
            &config,
            &plan_for(&config),
            "node-1",
            &v6_only,
            &BTreeMap::new(),
        );
        assert_eq!(out.sessions[0].config.router_id, hashed_router_id("node-1"));
    }
}
