//! The speaker process: metrics and health, the responder, the membership agent, the watches,
//! and one loop that recomputes this node's share of the L2 plan whenever its inputs change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferrolb_announce::{BgpPlan, ServiceKey, Speakers, desired_bgp, desired_l2};
use ferrolb_api::v1beta1::{self, ServiceBGPStatus, ServiceL2Status};
use ferrolb_api::v1beta2;
use ferrolb_config::{Config, LastGood, Resources};
use ferrolb_k8s::http::{self, Health};
use ferrolb_k8s::store::{Change, Store};
use ferrolb_k8s::watch::{slimmed, watch_as as watch};
use ferrolb_k8s::{object_reference as reference, shutdown_signal};
use ferrolb_l2::{Responder, ResponderOptions, Scope};
use ferrolb_membership::Membership;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long a speaker keeps answering for an address it hands to a node that has just joined
/// the membership: the newcomer needs a moment (its view of the members settles) before it
/// answers, and without the hold nobody would answer in between. Both answering for a moment
/// is harmless: both forward to the same Service, and the newcomer's gratuitous ARP /
/// unsolicited NA moves the neighbours' caches to it.
const HANDOVER_HOLD: Duration = Duration::from_secs(2);

use crate::bgp;
use crate::config_state;
use crate::local::{Local, handover_holds, local_part, newly_announced};
use crate::metrics::{AnnouncedLabels, Layer2Counts, Metrics, Totals};
use crate::peer_status;
use crate::status::{self, Desired, Wanted};
use crate::view::{self, EndpointIndex};

/// How the speakers learn which of them are alive.
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// Off: every Ready Node counts as having a live speaker (MetalLB's fallback).
    pub enabled: bool,
    /// The address to bind and advertise; default: this Node's first InternalIP.
    pub bind_address: Option<IpAddr>,
    pub port: u16,
    /// A file holding the shared key (MetalLB mounts the `memberlist` Secret's `secretkey`);
    /// without it the Secret is read through the API.
    pub secret_key_path: Option<PathBuf>,
    /// The Secret (in the speaker's namespace) whose `secretkey` is the shared key.
    pub secret_name: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the metallb.io configuration and the ServiceL2Status objects live.
    pub namespace: String,
    pub node_name: String,
    pub lb_class: Option<String>,
    pub metrics_address: SocketAddr,
    pub membership: MembershipOptions,
    pub ignore_exclude_lb: bool,
    pub responder: ResponderOptions,
}

/// Runs until SIGTERM / SIGINT. On the way out the speaker leaves the membership first, so
/// the other speakers take its addresses over at once, then stops answering and deletes its
/// ServiceL2Status objects.
pub async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    let responder = Arc::new(
        Responder::start(options.responder.clone())
            .await
            .context("starting the ARP/NDP responder (needs CAP_NET_RAW)")?,
    );
    let bgp_engine = Arc::new(
        bgp::Engine::start()
            .await
            .context("starting the BGP speaker")?,
    );
    let membership_stats: Arc<OnceLock<Box<dyn Fn() -> ferrolb_membership::Stats + Send + Sync>>> =
        Arc::new(OnceLock::new());
    let live_for_metrics: Arc<OnceLock<watch::Receiver<BTreeSet<String>>>> =
        Arc::new(OnceLock::new());
    let mut registry = Registry::default();
    let metrics = {
        let layer2 = {
            let responder = responder.clone();
            move || {
                responder
                    .ip_counters()
                    .into_iter()
                    .map(|(ip, counts)| {
                        (
                            ip,
                            Layer2Counts {
                                requests_received: counts.requests_received,
                                responses_sent: counts.responses_sent,
                                gratuitous_sent: counts.gratuitous_sent,
                            },
                        )
                    })
                    .collect()
            }
        };
        let totals = {
            let responder = responder.clone();
            let stats = membership_stats.clone();
            let live = live_for_metrics.clone();
            move || {
                let counters = responder.counters().snapshot();
                let membership = stats.get().map(|read| read()).unwrap_or_default();
                Totals {
                    members_live: live.get().map_or(0, |live| live.borrow().len() as u64),
                    membership_rejected: membership.rejected_unauthenticated,
                    membership_received: membership.received,
                    frames_received: counters.frames_received,
                    invalid_frames: counters.invalid_frames,
                    send_errors: counters.send_errors,
                }
            }
        };
        let bgp_counts = bgp_engine.counts_reader();
        Arc::new(Metrics::register(
            &mut registry,
            Arc::new(layer2),
            Arc::new(totals),
            Arc::new(bgp_counts),
        ))
    };
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(options.metrics_address)
        .await
        .with_context(|| format!("listening on {} for metrics", options.metrics_address))?;
    tokio::spawn(http::serve(listener, Arc::new(registry), health.clone()));

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    let node = tokio::select! {
        node = wait_for_node(&client, &options.node_name) => node?,
        () = &mut shutdown => return Ok(()),
    };

    let (status_tx, status_rx) = watch::channel(Wanted::default());
    let status_writer = tokio::spawn(status::run_status_writer::<ServiceL2Status>(
        client.clone(),
        options.namespace.clone(),
        options.node_name.clone(),
        status_rx,
    ));
    let (bgp_status_tx, bgp_status_rx) = watch::channel(Wanted::default());
    let bgp_status_writer = tokio::spawn(status::run_status_writer::<ServiceBGPStatus>(
        client.clone(),
        options.namespace.clone(),
        options.node_name.clone(),
        bgp_status_rx,
    ));
    let (peer_status_tx, peer_status_rx) = watch::channel(peer_status::Inputs::default());
    let peer_status_writer = tokio::spawn(peer_status::run_writer(
        client.clone(),
        options.namespace.clone(),
        options.node_name.clone(),
        peer_status_rx,
        bgp_engine.status(),
        bgp_engine.bfd_states(),
    ));
    let (config_state_tx, config_state_rx) = watch::channel(None);
    let config_state_writer = tokio::spawn(config_state::run_writer(
        client.clone(),
        options.namespace.clone(),
        options.node_name.clone(),
        config_state_rx,
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(publish_events(
        client.clone(),
        options.node_name.clone(),
        events_rx,
    ));

    let mut speaker = Speaker {
        options: options.clone(),
        responder: responder.clone(),
        metrics: metrics.clone(),
        stores: Stores::default(),
        endpoints: EndpointIndex::default(),
        last_good: LastGood::default(),
        config: Config::default(),
        live: None,
        local: Local::default(),
        status_tx,
        bgp: bgp_engine.clone(),
        bgp_status_tx,
        peer_status_tx,
        peers_seen: false,
        config_errors: Vec::new(),
        config_state_tx,
        bgp_services: BTreeMap::new(),
        bgp_problems: BTreeSet::new(),
        bgp_active: false,
        announced_l2: BTreeSet::new(),
        announced_bgp: BTreeSet::new(),
        live_nodes: BTreeSet::new(),
        joined: HashMap::new(),
        held: BTreeMap::new(),
        recheck_at: None,
        events_tx,
        unpooled_reported: BTreeSet::new(),
    };
    let mut membership = None;
    let outcome = {
        let body = async {
            // The watches sync before this speaker joins the membership: the moment the
            // others see it, they hand it its addresses, and it must be ready to take them.
            let mut inputs = speaker.watches(&client);
            speaker.sync(&mut inputs).await?;
            speaker.reconfigure();
            speaker.open_bgp_sessions();
            if options.membership.enabled {
                match start_membership(&client, &options, &node, speaker.stores.nodes.iter()).await
                {
                    Ok((agent, live)) => {
                        let _ = membership_stats.set(Box::new(agent.stats_reader()));
                        let _ = live_for_metrics.set(live.clone());
                        metrics.membership_enabled.set(1);
                        membership = Some(agent);
                        speaker.live = Some(live);
                    }
                    Err(error) => tracing::error!(
                        "membership disabled: {error:#}; falling back to Kubernetes Node state, so a dead node is noticed only when its Node turns NotReady"
                    ),
                }
            } else {
                tracing::info!("membership disabled by flag; live speakers are the Ready Nodes");
            }
            speaker.run(&mut inputs, &health).await
        };
        tokio::select! {
            result = body => result,
            () = &mut shutdown => Ok(()),
        }
    };
    // The writers would put back what the cleanup below deletes.
    status_writer.abort();
    bgp_status_writer.abort();
    peer_status_writer.abort();
    config_state_writer.abort();
    let peer_entries: Vec<String> = speaker.peers_listing_this_node();
    health.set_ready(false);
    if let Some(membership) = membership {
        tracing::info!("leaving the membership so that the other speakers take over at once");
        membership.leave().await;
    }
    responder.set_owned(std::iter::empty());
    bgp_engine.shutdown().await;
    let deleted = tokio::time::timeout(Duration::from_secs(3), async {
        tokio::join!(
            peer_status::withdraw_all(
                client.clone(),
                &options.namespace,
                &options.node_name,
                peer_entries
            ),
            status::delete_all::<ServiceL2Status>(
                client.clone(),
                &options.namespace,
                &options.node_name
            ),
            status::delete_all::<ServiceBGPStatus>(client, &options.namespace, &options.node_name),
        )
    })
    .await;
    match deleted {
        Ok(((), l2, bgp)) => {
            for (kind, result) in [("ServiceL2Status", l2), ("ServiceBGPStatus", bgp)] {
                if let Err(error) = result {
                    tracing::warn!(kind, %error, "could not delete this node's status objects");
                }
            }
        }
        Err(_) => tracing::warn!("deleting this node's status objects timed out"),
    }
    outcome
}

async fn wait_for_node(client: &Client, name: &str) -> anyhow::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let mut warned = false;
    loop {
        match api.get_opt(name).await {
            Ok(Some(node)) => return Ok(node),
            Ok(None) => {
                if !warned {
                    tracing::warn!(
                        node = name,
                        "no Node object of this name yet; waiting (is --node-name right?)"
                    );
                    warned = true;
                }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                bail!("not allowed to read Node {name}: {}", status.message)
            }
            Err(error) => tracing::warn!(%error, "reading this speaker's Node; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn start_membership(
    client: &Client,
    options: &Options,
    node: &Node,
    nodes: impl Iterator<Item = &Node>,
) -> anyhow::Result<(Membership, watch::Receiver<BTreeSet<String>>)> {
    let ml = &options.membership;
    let key = match &ml.secret_key_path {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading the membership key from {}", path.display()))?,
        None => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &options.namespace);
            let secret = secrets
                .get_opt(&ml.secret_name)
                .await
                .with_context(|| format!("reading Secret {}/{}", options.namespace, ml.secret_name))?
                .with_context(|| {
                    format!(
                        "no Secret {}/{} (create it as MetalLB's: kubectl -n {} create secret generic {} --from-literal=secretkey=\"$(openssl rand -base64 128)\")",
                        options.namespace, ml.secret_name, options.namespace, ml.secret_name
                    )
                })?;
            secret
                .data
                .and_then(|mut data| data.remove("secretkey"))
                .map(|bytes| bytes.0)
                .with_context(|| {
                    format!(
                        "Secret {}/{} has no key `secretkey`",
                        options.namespace, ml.secret_name
                    )
                })?
        }
    };
    let key = trim_key(key);
    let own_ips = view::internal_ips(node);
    let bind_ip = match ml.bind_address {
        Some(ip) => ip,
        None => *own_ips.first().with_context(|| {
            format!(
                "Node {} has no InternalIP to bind the membership to; give --ml-bindaddr",
                options.node_name
            )
        })?,
    };
    let seeds: Vec<SocketAddr> = nodes
        .filter(|other| other.metadata.name.as_deref() != Some(options.node_name.as_str()))
        .filter_map(|other| {
            view::internal_ips(other)
                .into_iter()
                .find(|ip| ip.is_ipv4() == bind_ip.is_ipv4())
        })
        .map(|ip| SocketAddr::new(ip, ml.port))
        .collect();
    let config = ferrolb_membership::Config {
        node_name: options.node_name.clone(),
        advertise: None,
        bind: SocketAddr::new(bind_ip, ml.port),
        key,
        seeds: seeds.clone(),
        tuning: ferrolb_membership::Tuning::default(),
    };
    let (membership, mut live) = Membership::start(config)
        .await
        .context("starting the membership")?;
    tracing::info!(bind = %membership.local_addr(), seeds = seeds.len(), "membership started");
    if !seeds.is_empty() {
        settle(&mut live).await;
    }
    Ok((membership, live))
}

/// A key file or Secret value often ends in a newline that the other speakers' copy lacks.
fn trim_key(mut key: Vec<u8>) -> Vec<u8> {
    while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
        key.pop();
    }
    key
}

/// Waits until this speaker has met the others and the view has been still for a moment, so
/// that a starting speaker does not take over addresses others hold because it sees only
/// itself. Gives up after a few seconds: alone in the cluster is a valid answer.
async fn settle(live: &mut watch::Receiver<BTreeSet<String>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let quiet = Duration::from_millis(400);
    loop {
        let met = live.borrow_and_update().len() > 1;
        let wait = if met {
            quiet
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, live.changed()).await {
            Ok(Ok(())) if tokio::time::Instant::now() < deadline => continue,
            _ => break,
        }
    }
    tracing::info!(live = ?*live.borrow(), "membership settled");
}

#[expect(
    clippy::large_enum_variant,
    reason = "one event at a time passes through; boxing would allocate for every event"
)]
enum Input {
    Service(WatchEvent<Service>),
    Slice(WatchEvent<EndpointSlice>),
    Node(WatchEvent<Node>),
    Pool(WatchEvent<v1beta1::IPAddressPool>),
    L2(WatchEvent<v1beta1::L2Advertisement>),
    BgpAdvertisement(WatchEvent<v1beta1::BGPAdvertisement>),
    Peer(WatchEvent<v1beta2::BGPPeer>),
    BfdProfile(WatchEvent<v1beta1::BFDProfile>),
    Community(WatchEvent<v1beta1::Community>),
    /// `kubernetes.io/basic-auth` Secrets of the namespace: BGPPeer `passwordSecret`s.
    Secret(WatchEvent<Secret>),
}

impl Input {
    /// Whether the event is part of the metallb.io configuration (or a peer's password).
    fn is_config(&self) -> bool {
        matches!(
            self,
            Input::Pool(_)
                | Input::L2(_)
                | Input::BgpAdvertisement(_)
                | Input::Peer(_)
                | Input::BfdProfile(_)
                | Input::Community(_)
                | Input::Secret(_)
        )
    }
}

#[derive(Default)]
struct Stores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    pools: Store<v1beta1::IPAddressPool>,
    l2: Store<v1beta1::L2Advertisement>,
    bgp_advertisements: Store<v1beta1::BGPAdvertisement>,
    peers: Store<v1beta2::BGPPeer>,
    bfd_profiles: Store<v1beta1::BFDProfile>,
    communities: Store<v1beta1::Community>,
    secrets: Store<Secret>,
}

impl Stores {
    fn synced(&self) -> bool {
        self.services.synced()
            && self.slices.synced()
            && self.nodes.synced()
            && self.pools.synced()
            && self.l2.synced()
            && self.bgp_advertisements.synced()
            && self.peers.synced()
            && self.bfd_profiles.synced()
            && self.communities.synced()
            && self.secrets.synced()
    }
}

struct Speaker {
    options: Options,
    responder: Arc<Responder>,
    metrics: Arc<Metrics>,
    stores: Stores,
    endpoints: EndpointIndex,
    last_good: LastGood,
    config: Config,
    live: Option<watch::Receiver<BTreeSet<String>>>,
    local: Local,
    status_tx: watch::Sender<Wanted>,
    bgp: Arc<bgp::Engine>,
    bgp_status_tx: watch::Sender<Wanted>,
    /// What this node's BGPPeer status entries depend on, for their writer.
    peer_status_tx: watch::Sender<peer_status::Inputs>,
    /// A BGPPeer event came in (maybe only another node's status entry) since the peers'
    /// listing was last handed to that writer.
    peers_seen: bool,
    /// The configuration's errors, as of the last reconfiguration.
    config_errors: Vec<String>,
    /// What this speaker's ConfigurationState should say (`None` before the first plan).
    config_state_tx: watch::Sender<Option<Vec<String>>>,
    /// Per Service this node advertises over BGP, the peers it goes to.
    bgp_services: BTreeMap<ServiceKey, BTreeSet<String>>,
    /// Peers that select this node but cannot be served, as last logged.
    bgp_problems: BTreeSet<(String, String)>,
    /// The last BGP pass had peers configured (a pass without any runs once, to clear).
    bgp_active: bool,
    /// `metallb_speaker_announced` series of each protocol.
    announced_l2: BTreeSet<AnnouncedLabels>,
    announced_bgp: BTreeSet<AnnouncedLabels>,
    /// The nodes counted as having a live speaker in the last plan.
    live_nodes: BTreeSet<String>,
    /// When each node joined the live set, as this speaker's plans saw it (not those in the
    /// first plan); kept for [`HANDOVER_HOLD`].
    joined: HashMap<String, Instant>,
    /// Addresses handed to a node that has just joined, still answered here until it has had
    /// time to take them (make before break), with when to let go.
    held: BTreeMap<IpAddr, (Scope, Instant)>,
    /// When the next hold ends.
    recheck_at: Option<Instant>,
    events_tx: mpsc::UnboundedSender<(ObjectReference, String)>,
    unpooled_reported: BTreeSet<(ServiceKey, IpAddr)>,
}

impl Speaker {
    fn watches(&self, client: &Client) -> SelectAll<BoxStream<'static, Input>> {
        let ns = &self.options.namespace;
        let mut all = SelectAll::new();
        all.push(watch(Api::<Service>::all(client.clone()), |event| {
            Input::Service(slimmed(event, view::slim_service))
        }));
        all.push(watch(Api::<EndpointSlice>::all(client.clone()), |event| {
            Input::Slice(slimmed(event, view::slim_slice))
        }));
        all.push(watch(Api::<Node>::all(client.clone()), |event| {
            Input::Node(slimmed(event, view::slim_node))
        }));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Pool));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::L2));
        all.push(watch(
            Api::namespaced(client.clone(), ns),
            Input::BgpAdvertisement,
        ));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Peer));
        all.push(watch(
            Api::namespaced(client.clone(), ns),
            Input::BfdProfile,
        ));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Community));
        // Peer passwords live in basic-auth Secrets; other Secrets (TLS keys, tokens) of the
        // namespace are none of the speaker's business and are not even listed.
        all.push(ferrolb_k8s::watch::watch_as_with(
            Api::namespaced(client.clone(), ns),
            watcher::Config::default().fields("type=kubernetes.io/basic-auth"),
            |event| Input::Secret(slimmed(event, bgp::slim_secret)),
        ));
        all
    }

    /// Reads every watch's initial list.
    async fn sync(
        &mut self,
        inputs: &mut SelectAll<BoxStream<'static, Input>>,
    ) -> anyhow::Result<()> {
        while !self.stores.synced() {
            let input = inputs.next().await.context("the watches ended")?;
            self.apply(input);
        }
        Ok(())
    }

    async fn run(
        &mut self,
        inputs: &mut SelectAll<BoxStream<'static, Input>>,
        health: &Health,
    ) -> anyhow::Result<()> {
        let mut links = self.responder.link_changes();
        let mut live = self.live.clone();
        self.decide();
        self.publish_peer_listing();
        self.publish_configuration_state();
        health.set_ready(true);
        tracing::info!(
            node = %self.options.node_name,
            owned = self.local.owned.len(),
            "speaker ready"
        );
        loop {
            let mut dirty = false;
            let mut config_dirty = false;
            tokio::select! {
                input = inputs.next() => {
                    let input = input.context("the watches ended")?;
                    let config = input.is_config();
                    let changed = self.apply(input);
                    config_dirty |= config && changed;
                    dirty |= changed;
                }
                changed = async {
                    match live.as_mut() {
                        Some(live) => live.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if changed.is_err() {
                        bail!("the membership agent stopped");
                    }
                    if let Some(live) = live.as_mut() {
                        tracing::info!(live = ?*live.borrow_and_update(), "live speakers changed");
                    }
                    dirty = true;
                }
                () = async {
                    match self.recheck_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.recheck_at = None;
                    dirty = true;
                }
                changed = links.changed() => {
                    if changed.is_err() {
                        bail!("the responder stopped following interfaces");
                    }
                    self.publish_statuses();
                }
            }
            // Take every event already waiting before deciding, so that a burst is one plan.
            for _ in 0..10_000 {
                match inputs.next().now_or_never() {
                    Some(Some(input)) => {
                        let config = input.is_config();
                        let changed = self.apply(input);
                        config_dirty |= config && changed;
                        dirty |= changed;
                    }
                    Some(None) => bail!("the watches ended"),
                    None => break,
                }
            }
            if config_dirty {
                self.reconfigure();
            }
            if dirty || config_dirty {
                self.decide();
                self.publish_configuration_state();
            }
            if dirty || config_dirty || std::mem::take(&mut self.peers_seen) {
                self.publish_peer_listing();
            }
        }
    }

    /// Takes in one watch event; whether it can change the plan.
    fn apply(&mut self, input: Input) -> bool {
        self.metrics.updates.inc();
        match input {
            Input::Service(event) => !self.stores.services.apply(event).is_empty(),
            Input::Slice(event) => {
                let changes = self.stores.slices.apply(event);
                for change in &changes {
                    match change {
                        Change::Upserted(slice) => {
                            self.endpoints.upsert(slice);
                        }
                        Change::Deleted(slice) => {
                            self.endpoints.remove(slice);
                        }
                    }
                }
                !changes.is_empty()
            }
            Input::Node(event) => !self.stores.nodes.apply(event).is_empty(),
            Input::Pool(event) => !self.stores.pools.apply(event).is_empty(),
            Input::L2(event) => !self.stores.l2.apply(event).is_empty(),
            Input::BgpAdvertisement(event) => {
                !self.stores.bgp_advertisements.apply(event).is_empty()
            }
            Input::Peer(event) => {
                self.peers_seen = true;
                // The speakers write the status: a change there alone is no new configuration
                // (a CRD's generation counts changes of everything but status and metadata).
                let generations: BTreeMap<String, Option<i64>> = self
                    .stores
                    .peers
                    .iter()
                    .map(|peer| (peer.name_any(), peer.metadata.generation))
                    .collect();
                self.stores
                    .peers
                    .apply(event)
                    .iter()
                    .any(|change| match change {
                        Change::Upserted(peer) => {
                            generations.get(&peer.name_any()) != Some(&peer.metadata.generation)
                        }
                        Change::Deleted(_) => true,
                    })
            }
            Input::BfdProfile(event) => !self.stores.bfd_profiles.apply(event).is_empty(),
            Input::Community(event) => !self.stores.communities.apply(event).is_empty(),
            Input::Secret(event) => !self.stores.secrets.apply(event).is_empty(),
        }
    }

    fn reconfigure(&mut self) {
        let resources = Resources {
            pools: self.stores.pools.iter().cloned().collect(),
            l2_advertisements: self.stores.l2.iter().cloned().collect(),
            bgp_advertisements: self.stores.bgp_advertisements.iter().cloned().collect(),
            peers: self.stores.peers.iter().cloned().collect(),
            bfd_profiles: self.stores.bfd_profiles.iter().cloned().collect(),
            communities: self.stores.communities.iter().cloned().collect(),
        };
        let served = self.last_good.build(&resources, &BTreeSet::new());
        for error in &served.built.errors {
            tracing::warn!(%error, "configuration error; the object is not served as written");
        }
        self.config_errors = served
            .built
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        for stale in &served.stale {
            tracing::warn!(kind = stale.kind, name = %stale.name, "serving the last valid version of this object");
        }
        self.metrics.config_loaded.set(1);
        self.metrics
            .config_stale
            .set(i64::from(!served.stale.is_empty()));
        self.config = served.built.config;
    }

    /// Recomputes the plan and brings the responder, the statuses, the Events and the
    /// metrics in line with this node's part of it.
    fn decide(&mut self) {
        let (services, nodes) = self.election_inputs();
        self.decide_l2(&services, &nodes);
        self.decide_bgp(&services, &nodes);
    }

    /// The Services this speaker serves and the Nodes, as the announce crate reads them.
    fn election_inputs(&mut self) -> (Vec<ferrolb_announce::Service>, Vec<ferrolb_announce::Node>) {
        let lb_class = self.options.lb_class.as_deref();
        let mut services = Vec::new();
        let mut unpooled_now = BTreeSet::new();
        for service in self.stores.services.iter() {
            if !view::is_served(service, lb_class) {
                continue;
            }
            let key = ServiceKey::new(
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default(),
            );
            let (service, unpooled) =
                view::service_view(service, self.endpoints.endpoints(&key), &self.config.pools);
            for ip in unpooled {
                unpooled_now.insert((ip.service, ip.ip));
            }
            services.push(service);
        }
        for (service, ip) in unpooled_now.difference(&self.unpooled_reported) {
            tracing::warn!(%service, %ip, "no served IPAddressPool holds this address; not announcing it");
        }
        self.unpooled_reported = unpooled_now;
        let nodes: Vec<_> = self.stores.nodes.iter().map(view::node_view).collect();
        (services, nodes)
    }

    /// This node's share of the L2 plan: the responder, holds, ServiceL2Status, Events.
    fn decide_l2(
        &mut self,
        services: &[ferrolb_announce::Service],
        nodes: &[ferrolb_announce::Node],
    ) {
        let speakers = match &self.live {
            Some(live) => Speakers::Live(live.borrow().clone()),
            None => Speakers::MembershipDisabled,
        };
        let live_before = std::mem::take(&mut self.live_nodes);
        self.live_nodes = match &speakers {
            Speakers::Live(live) => live.clone(),
            Speakers::MembershipDisabled => nodes
                .iter()
                .filter(|n| n.ready)
                .map(|n| n.name.clone())
                .collect(),
        };
        // The first plan has nothing to hand over; after it, a node new to the live set has
        // just joined (or, without membership, just turned Ready).
        if !live_before.is_empty() {
            for joined in self.live_nodes.difference(&live_before) {
                self.joined.insert(joined.clone(), Instant::now());
            }
        }
        let plan = desired_l2(
            services,
            nodes,
            &self.config.l2_advertisements,
            &speakers,
            &ferrolb_announce::Options {
                ignore_exclude_lb: self.options.ignore_exclude_lb,
            },
        );
        let me = self.options.node_name.as_str();
        let local = local_part(&plan, me);
        let now = Instant::now();
        let held = handover_holds(
            &self.local.owned,
            &self.held,
            &local,
            &plan,
            &self.joined,
            HANDOVER_HOLD,
            now,
        );
        for (ip, (_, until)) in &held {
            if !self.held.contains_key(ip) {
                tracing::info!(%ip, to = plan.owner(*ip).unwrap_or_default(), hold = ?until.saturating_duration_since(now), "handing over to a node that just joined; answering until it has taken over");
            }
        }
        self.joined
            .retain(|_, joined| *joined + HANDOVER_HOLD > now);
        self.recheck_at = held.values().map(|(_, until)| *until).min();
        // An address taken back while it was only held (the newcomer died or left within the
        // hold) was answered all along, so the responder sees no change and would not announce
        // it; but the newcomer may have announced it meanwhile.
        let retaken: Vec<IpAddr> = local
            .owned
            .keys()
            .filter(|ip| self.held.contains_key(*ip))
            .copied()
            .collect();
        self.responder.set_owned(
            local
                .owned
                .iter()
                .map(|(ip, scope)| (*ip, scope.clone()))
                .chain(held.iter().map(|(ip, (scope, _))| (*ip, scope.clone()))),
        );
        self.held = held;
        if !retaken.is_empty() {
            tracing::info!(?retaken, "taking back addresses held for a node that went");
            self.responder.announce_again(&retaken);
        }
        for ip in local.owned.keys() {
            if !self.local.owned.contains_key(ip) {
                tracing::info!(%ip, "announcing");
            }
        }
        for ip in self.local.owned.keys() {
            if !local.owned.contains_key(ip) {
                match plan.owner(*ip) {
                    Some(node) => {
                        tracing::info!(%ip, to = node, "no longer announcing; another node does")
                    }
                    None => {
                        let reason = plan.withheld.iter().find(|w| w.ip == *ip).map_or_else(
                            || "the address is gone".to_owned(),
                            |w| w.reason.to_string(),
                        );
                        tracing::info!(%ip, %reason, "no longer announcing")
                    }
                }
            }
        }
        for key in newly_announced(&self.local, &local) {
            if let Some(service) = self
                .stores
                .services
                .get(&format!("{}/{}", key.namespace, key.name))
            {
                let _ = self.events_tx.send((
                    reference(service),
                    format!("announcing from node \"{me}\" with protocol \"layer2\""),
                ));
            }
        }
        // Most batches change nothing here (another node's Service, an unrelated update): the
        // metric series and the status map are only rebuilt when this node's share or the
        // live set moved, which keeps a burst of a thousand Services from churning memory.
        if local == self.local && self.live_nodes == live_before {
            return;
        }
        let announced: BTreeSet<AnnouncedLabels> = local
            .services
            .iter()
            .flat_map(|(key, ips)| {
                ips.iter().map(move |ip| AnnouncedLabels {
                    ip: ip.to_string(),
                    node: me.to_owned(),
                    protocol: "layer2".into(),
                    service: key.to_string(),
                })
            })
            .collect();
        self.announced_l2 = announced;
        self.metrics.set_announced(
            self.announced_l2
                .union(&self.announced_bgp)
                .cloned()
                .collect(),
        );
        self.metrics
            .owned_addresses
            .set(i64::try_from(local.owned.len()).unwrap_or(i64::MAX));
        self.local = local;
        self.publish_statuses();
    }

    /// This node's BGP plan and the sessions it needs; `None` while its Node is unknown.
    fn bgp_plan(
        &self,
        services: &[ferrolb_announce::Service],
        nodes: &[ferrolb_announce::Node],
    ) -> Option<(BgpPlan, bgp::Sessions)> {
        let me = self.options.node_name.as_str();
        let node = nodes.iter().find(|n| n.name == me)?;
        let plan = desired_bgp(
            services,
            node,
            &self.config.bgp_advertisements,
            &self.config.peers,
            &ferrolb_announce::Options {
                ignore_exclude_lb: self.options.ignore_exclude_lb,
            },
        );
        let passwords: BTreeMap<String, String> = self
            .stores
            .secrets
            .iter()
            .filter_map(|secret| {
                Some((secret.metadata.name.clone()?, bgp::secret_password(secret)?))
            })
            .collect();
        let node_ips = self
            .stores
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(me))
            .map(view::internal_ips)
            .unwrap_or_default();
        let sessions = bgp::sessions(&self.config, &plan, me, &node_ips, &passwords);
        Some((plan, sessions))
    }

    /// Opens this node's BGP sessions with their routes before the membership has settled:
    /// unlike L2, what a node advertises over BGP does not depend on which other speakers are
    /// alive, so a (re)starting speaker need not wait seconds for that. Statuses, Events and
    /// metrics follow with the first full plan.
    fn open_bgp_sessions(&mut self) {
        if self.config.peers.is_empty() {
            return;
        }
        let (services, nodes) = self.election_inputs();
        if let Some((plan, sessions)) = self.bgp_plan(&services, &nodes) {
            tracing::info!(
                sessions = sessions.sessions.len(),
                "opening BGP sessions while the membership settles"
            );
            self.bgp.apply(sessions.sessions, bgp::routes(&plan));
        }
    }

    /// This node's BGP part: the sessions, the routes to each peer, ServiceBGPStatus, Events.
    fn decide_bgp(
        &mut self,
        services: &[ferrolb_announce::Service],
        nodes: &[ferrolb_announce::Node],
    ) {
        // Without BGPPeers nothing is advertised: an L2-only cluster pays nothing per batch,
        // once the last peer's sessions, statuses and metrics have been cleared.
        let active = !self.config.peers.is_empty();
        if !active && !self.bgp_active {
            return;
        }
        self.bgp_active = active;
        let Some((plan, sessions)) = self.bgp_plan(services, nodes) else {
            return;
        };
        let me = self.options.node_name.as_str();
        for conflict in &plan.local_pref_conflicts {
            tracing::warn!(%conflict, "BGPAdvertisements disagree on LOCAL_PREF; sending the highest");
        }
        let problems: BTreeSet<(String, String)> = sessions.problems.iter().cloned().collect();
        for (peer, reason) in problems.difference(&self.bgp_problems) {
            tracing::warn!(%peer, %reason, "no BGP session with this peer");
        }
        self.bgp_problems = problems;
        let peer_sessions: BTreeMap<String, Option<IpAddr>> = sessions
            .sessions
            .iter()
            .map(|s| {
                (
                    s.config.name.clone(),
                    s.bfd.as_ref().map(|_| s.config.address),
                )
            })
            .collect();
        let peer_problems: BTreeMap<String, String> = sessions.problems.iter().cloned().collect();
        self.peer_status_tx.send_if_modified(|inputs| {
            if inputs.sessions == peer_sessions && inputs.problems == peer_problems {
                return false;
            }
            inputs.sessions = peer_sessions;
            inputs.problems = peer_problems;
            true
        });
        let routes = bgp::routes(&plan);
        self.bgp.apply(sessions.sessions, routes);

        let advertised: BTreeMap<ServiceKey, BTreeSet<String>> = plan
            .services
            .iter()
            .filter(|(_, service)| service.is_advertised())
            .map(|(key, service)| (key.clone(), service.peers.clone()))
            .collect();
        for key in advertised.keys() {
            if self.bgp_services.contains_key(key) {
                continue;
            }
            if let Some(service) = self
                .stores
                .services
                .get(&format!("{}/{}", key.namespace, key.name))
            {
                let _ = self.events_tx.send((
                    reference(service),
                    format!("announcing from node \"{me}\" with protocol \"bgp\""),
                ));
            }
        }
        if advertised == self.bgp_services {
            if self.bgp_status_tx.borrow().live != self.live_nodes {
                let live = self.live_nodes.clone();
                self.bgp_status_tx.send_modify(|wanted| wanted.live = live);
            }
            return;
        }
        let by_key: BTreeMap<&ServiceKey, &ferrolb_announce::Service> =
            services.iter().map(|s| (&s.key, s)).collect();
        self.announced_bgp = advertised
            .keys()
            .filter_map(|key| by_key.get(key))
            .flat_map(|service| {
                service.ips.iter().map(move |ip| AnnouncedLabels {
                    ip: ip.ip.to_string(),
                    node: me.to_owned(),
                    protocol: "bgp".into(),
                    service: service.key.to_string(),
                })
            })
            .collect();
        self.metrics.set_announced(
            self.announced_l2
                .union(&self.announced_bgp)
                .cloned()
                .collect(),
        );
        self.bgp_services = advertised;
        let wanted = Wanted {
            services: self.bgp_services.clone(),
            live: self.live_nodes.clone(),
        };
        self.bgp_status_tx.send_if_modified(|current| {
            if *current == wanted {
                false
            } else {
                *current = wanted;
                true
            }
        });
    }

    /// Hands the ConfigurationState writer the errors as they stand.
    fn publish_configuration_state(&self) {
        let errors = config_state::errors(self.config_errors.iter().cloned(), &self.bgp_problems);
        self.config_state_tx.send_if_modified(|current| {
            if current.as_ref() == Some(&errors) {
                return false;
            }
            *current = Some(errors);
            true
        });
    }

    /// Hands the BGPPeer status writer what the peers' statuses list and who is alive.
    fn publish_peer_listing(&self) {
        let listed: BTreeMap<String, peer_status::Listed> = self
            .stores
            .peers
            .iter()
            .map(|peer| (peer.name_any(), peer_status::Listed::of(peer)))
            .collect();
        let live = if self.bgp_active {
            self.live_nodes.clone()
        } else {
            BTreeSet::new()
        };
        self.peer_status_tx.send_if_modified(|inputs| {
            if inputs.listed == listed && inputs.live == live {
                return false;
            }
            inputs.listed = listed;
            inputs.live = live;
            true
        });
    }

    /// The peers whose status lists this node or that it has an entry for: what to withdraw
    /// from on a graceful stop.
    fn peers_listing_this_node(&self) -> Vec<String> {
        let me = self.options.node_name.as_str();
        let inputs = self.peer_status_tx.borrow();
        let mut peers: BTreeSet<String> = inputs
            .listed
            .iter()
            .filter(|(_, listed)| listed.nodes.iter().any(|n| n == me))
            .map(|(peer, _)| peer.clone())
            .collect();
        peers.extend(inputs.sessions.keys().cloned());
        peers.extend(inputs.problems.keys().cloned());
        peers.into_iter().collect()
    }

    /// Hands the status writer what this node's ServiceL2Status objects should say now.
    fn publish_statuses(&self) {
        let services: Desired = self
            .local
            .services
            .iter()
            .map(|(key, ips)| {
                let interfaces: BTreeSet<String> = ips
                    .iter()
                    .flat_map(|ip| self.responder.interfaces_for(*ip))
                    .collect();
                (key.clone(), interfaces)
            })
            .collect();
        let desired = Wanted {
            services,
            live: self.live_nodes.clone(),
        };
        self.status_tx.send_if_modified(|current| {
            if *current == desired {
                false
            } else {
                *current = desired;
                true
            }
        });
    }
}

/// Publishes `nodeAssigned` Events one after another, so a burst does not open a connection
/// per Event. Each is created outright: kube's `Recorder` would keep every Event for six
/// minutes to fold repeats into a series, which for a thousand Services costs more memory
/// than the speaker's whole view of them, and a speaker announces a Service once.
async fn publish_events(
    client: Client,
    node: String,
    mut events: mpsc::UnboundedReceiver<(ObjectReference, String)>,
) {
    while let Some((reference, note)) = events.recv().await {
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = micro_time_now();
        let event = Event {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!(
                    "{}-",
                    reference.name.as_deref().unwrap_or("service")
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(now),
            type_: Some("Normal".into()),
            reason: Some("nodeAssigned".into()),
            action: Some("Announcing".into()),
            note: Some(note),
            regarding: Some(reference.clone()),
            reporting_controller: Some("ferrolb-speaker".into()),
            reporting_instance: Some(node.clone()),
            ..Default::default()
        };
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(object = ?reference.name, %error, "could not publish an Event");
        }
    }
}

fn micro_time_now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::trim_key;

    #[test]
    fn a_trailing_newline_is_not_part_of_the_key() {
        assert_eq!(trim_key(b"secret\n".to_vec()), b"secret");
        assert_eq!(trim_key(b"se cret \r\n".to_vec()), b"se cret");
        assert_eq!(trim_key(b"\n".to_vec()), b"");
    }
}
