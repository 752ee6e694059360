//! The controller process: metrics and health endpoints, leader election, then the watches
//! and the decision loop around [`Core`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_api::{v1beta1, v1beta2};
use ferrolb_config::{ConfigError, Resources};
use ferrolb_ipam::ServiceKey;
use ferrolb_k8s::http::{self, Health};
use ferrolb_k8s::leader::Leadership;
use ferrolb_k8s::store::{Change, Store};
use ferrolb_k8s::watch::{slimmed, watch_as as watch};
use ferrolb_k8s::{object_reference as reference, shutdown_signal};
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::Event as WatchEvent;
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::core::{Core, Decision};
use crate::metrics::Metrics;
use crate::snapshot::{Desired, ServiceSnapshot, created, service_key, slim_service};
use crate::writer::{Context, Job, Outcome, Writer};

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the metallb.io configuration and the Lease live.
    pub namespace: String,
    pub lb_class: Option<String>,
    pub metrics_address: SocketAddr,
    /// This process, in the Lease and on Events.
    pub identity: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// Writes to the apiserver in flight at once.
    pub write_concurrency: usize,
}

/// Runs until SIGTERM / SIGINT (the Lease is released, so a standby takes over at once). A
/// lost Lease ends the term and the process stands by again.
pub async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(options.metrics_address)
        .await
        .with_context(|| format!("listening on {} for metrics", options.metrics_address))?;
    match listener.local_addr() {
        Ok(address) => tracing::info!(%address, "serving /metrics, /healthz and /readyz"),
        Err(error) => tracing::warn!(%error, "the metrics listener has no address"),
    }
    tokio::spawn(http::serve(listener, Arc::new(registry), health.clone()));

    let mut leadership = Leadership::compete(
        client.clone(),
        &options.namespace,
        &options.lease_name,
        &options.identity,
        options.lease_duration,
    )
    .await?;
    // A standby is healthy and ready: it is doing its job, which is to wait.
    health.set_ready(true);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let outcome = loop {
        tracing::info!(identity = %options.identity, lease = %options.lease_name, "waiting to become the leader");
        let became = tokio::select! {
            became = leadership.won() => became,
            () = &mut shutdown => break Ok(()),
        };
        if let Err(error) = became {
            break Err(error);
        }
        tracing::info!(identity = %options.identity, "became the leader");
        metrics.leader.set(1);
        health.set_ready(false);
        // Everything a term of leadership built (its state, its writer and the writes in
        // flight) is dropped with it when the term ends.
        let controller = Controller::new(client.clone(), &options, metrics.clone(), health.clone());
        let ended = tokio::select! {
            result = controller.run() => Some(result.context("the controller loop ended")),
            lost = leadership.lost() => match lost {
                Ok(()) => None,
                Err(error) => Some(Err(error)),
            },
            () = &mut shutdown => Some(Ok(())),
        };
        metrics.leader.set(0);
        health.set_ready(true);
        match ended {
            Some(outcome) => break outcome,
            // Another controller may lead now; stand by, and restore afresh if this one
            // leads again.
            None => tracing::warn!(
                "lost the leader Lease (the apiserver was unreachable for longer than the Lease lasts, or another controller took it); standing by"
            ),
        }
    };
    metrics.leader.set(0);
    if outcome.is_ok() {
        tracing::info!("releasing the leader Lease");
    }
    leadership.release().await;
    outcome
}

enum Input {
    Service(WatchEvent<Service>),
    Namespace(WatchEvent<Namespace>),
    Pool(WatchEvent<v1beta1::IPAddressPool>),
    L2(WatchEvent<v1beta1::L2Advertisement>),
    Bgp(WatchEvent<v1beta1::BGPAdvertisement>),
    Peer(WatchEvent<v2::BGPPeer>),
    Bfd(WatchEvent<v1beta1::BFDProfile>),
    Community(WatchEvent<v1beta1::Community>),
}

use v1beta2 as v2;

#[derive(Default)]
struct Stores {
    services: Store<Service>,
    namespaces: Store<Namespace>,
    pools: Store<v1beta1::IPAddressPool>,
    l2: Store<v1beta1::L2Advertisement>,
    bgp: Store<v1beta1::BGPAdvertisement>,
    peers: Store<v2::BGPPeer>,
    bfd: Store<v1beta1::BFDProfile>,
    communities: Store<v1beta1::Community>,
}

impl Stores {
    fn synced(&self) -> bool {
        self.services.synced()
            && self.namespaces.synced()
            && self.pools.synced()
            && self.l2.synced()
            && self.bgp.synced()
            && self.peers.synced()
            && self.bfd.synced()
            && self.communities.synced()
    }

    fn resources(&self) -> Resources {
        Resources {
            pools: self.pools.iter().cloned().collect(),
            l2_advertisements: self.l2.iter().cloned().collect(),
            bgp_advertisements: self.bgp.iter().cloned().collect(),
            peers: self.peers.iter().cloned().collect(),
            bfd_profiles: self.bfd.iter().cloned().collect(),
            communities: self.communities.iter().cloned().collect(),
        }
    }
}

struct Controller {
    client: Client,
    namespace: String,
    core: Core,
    stores: Stores,
    writer: Writer,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The state last sent for each Service and not yet seen on it.
    sent: HashMap<ServiceKey, Desired>,
    /// Pool counters last written.
    pool_status: HashMap<String, serde_json::Value>,
    /// Services to decide again after the current batch of events.
    dirty: BTreeSet<ServiceKey>,
    config_dirty: bool,
    /// The errors last written to the ConfigurationState (`None`: not written this term).
    state_errors: Option<Vec<String>>,
    freed: bool,
}

impl Controller {
    fn new(client: Client, options: &Options, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "ferrolb-controller".into(),
                instance: Some(options.identity.clone()),
            },
        );
        let (writer, outcomes) = Writer::start(
            Context {
                client: client.clone(),
                namespace: options.namespace.clone(),
                recorder,
                metrics: metrics.clone(),
            },
            options.write_concurrency,
        );
        Self {
            client,
            namespace: options.namespace.clone(),
            core: Core::new(options.lb_class.clone()),
            stores: Stores::default(),
            writer,
            outcomes,
            metrics,
            health,
            sent: HashMap::new(),
            pool_status: HashMap::new(),
            dirty: BTreeSet::new(),
            config_dirty: false,
            state_errors: None,
            freed: false,
        }
    }

    fn watches(&self) -> SelectAll<BoxStream<'static, Input>> {
        let client = &self.client;
        let ns = &self.namespace;
        let mut all = SelectAll::new();
        all.push(watch(Api::<Service>::all(client.clone()), |event| {
            Input::Service(slimmed(event, slim_service))
        }));
        all.push(watch(
            Api::<Namespace>::all(client.clone()),
            Input::Namespace,
        ));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Pool));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::L2));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Bgp));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Peer));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Bfd));
        all.push(watch(Api::namespaced(client.clone(), ns), Input::Community));
        all
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let mut inputs = self.watches();
        while !self.stores.synced() {
            let input = inputs.next().await.context("the watches ended")?;
            self.apply(input);
        }
        // The first decisions: configuration, then every address shown in a status taken
        // back, and only then anything new allocated.
        self.reconfigure();
        let snapshots: Vec<ServiceSnapshot> = self
            .stores
            .services
            .iter()
            .map(ServiceSnapshot::from_service)
            .collect();
        self.core.restore(&snapshots);
        tracing::info!(
            services = snapshots.len(),
            held = self.core.allocator().assignments().count(),
            "restored the addresses Services show; deciding every Service"
        );
        self.reconcile_all();
        self.dirty.clear();
        self.config_dirty = false;
        self.finish_batch();
        self.health.set_ready(true);

        loop {
            tokio::select! {
                input = inputs.next() => self.apply(input.context("the watches ended")?),
                Some(outcome) = self.outcomes.recv() => self.absorb(outcome),
            }
            // Take every event already waiting before deciding, so that a burst is one batch.
            for _ in 0..10_000 {
                match inputs.next().now_or_never() {
                    Some(Some(input)) => self.apply(input),
                    Some(None) => anyhow::bail!("the watches ended"),
                    None => break,
                }
            }
            while let Ok(outcome) = self.outcomes.try_recv() {
                self.absorb(outcome);
            }
            if self.config_dirty {
                self.config_dirty = false;
                self.reconfigure();
                self.reconcile_all();
                self.dirty.clear();
            }
            let dirty = std::mem::take(&mut self.dirty);
            for key in dirty {
                self.reconcile(&key);
            }
            self.finish_batch();
        }
    }

    fn apply(&mut self, input: Input) {
        self.metrics.updates.inc();
        match input {
            Input::Service(event) => {
                for change in self.stores.services.apply(event) {
                    match change {
                        Change::Upserted(service) => {
                            self.dirty.insert(service_key(&service));
                        }
                        Change::Deleted(service) => {
                            let key = service_key(&service);
                            self.sent.remove(&key);
                            self.dirty.remove(&key);
                            if self.core.delete(&key) {
                                tracing::info!(service = %key, "Service deleted; its addresses are free");
                                self.freed = true;
                            }
                        }
                    }
                }
            }
            Input::Namespace(event) => {
                for change in self.stores.namespaces.apply(event) {
                    match change {
                        Change::Upserted(namespace) => {
                            let name = namespace.metadata.name.clone().unwrap_or_default();
                            let labels = namespace.metadata.labels.clone().unwrap_or_default();
                            if self.core.set_namespace(&name, labels) && self.stores.synced() {
                                let keys: Vec<ServiceKey> = self
                                    .stores
                                    .services
                                    .iter()
                                    .filter(|s| {
                                        s.metadata.namespace.as_deref() == Some(name.as_str())
                                    })
                                    .map(service_key)
                                    .collect();
                                self.dirty.extend(keys);
                            }
                        }
                        Change::Deleted(namespace) => {
                            self.core.forget_namespace(
                                namespace.metadata.name.as_deref().unwrap_or_default(),
                            );
                        }
                    }
                }
            }
            Input::Pool(event) => self.config_dirty |= !self.stores.pools.apply(event).is_empty(),
            Input::L2(event) => self.config_dirty |= !self.stores.l2.apply(event).is_empty(),
            Input::Bgp(event) => self.config_dirty |= !self.stores.bgp.apply(event).is_empty(),
            Input::Peer(event) => self.config_dirty |= !self.stores.peers.apply(event).is_empty(),
            Input::Bfd(event) => self.config_dirty |= !self.stores.bfd.apply(event).is_empty(),
            Input::Community(event) => {
                self.config_dirty |= !self.stores.communities.apply(event).is_empty()
            }
        }
    }

    fn absorb(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written(mut service) => {
                slim_service(&mut service);
                self.stores.services.offer(*service);
            }
            Outcome::Failed(key) => {
                // Decide again; the next write goes out even if it is the same.
                self.sent.remove(&key);
                self.dirty.insert(key);
            }
            Outcome::Gone(key) => {
                self.sent.remove(&key);
            }
        }
    }

    fn reconfigure(&mut self) {
        let report = self.core.set_config(&self.stores.resources());
        for error in &report.errors {
            tracing::warn!(%error, "configuration error; the object is not served as written");
        }
        for warning in &report.warnings {
            tracing::warn!(%warning, "configuration warning");
        }
        for stale in &report.stale {
            tracing::warn!(kind = stale.kind, name = %stale.name, "serving the last valid version of this object");
        }
        for invalid in &report.invalidated {
            tracing::info!(service = %invalid.service, addresses = %invalid.addresses, reason = %invalid.reason, "the new configuration no longer allows these addresses");
        }
        for error in &report.new_errors {
            if let Some(reference) = self.config_reference(error) {
                self.writer.send(Job::Event {
                    reference,
                    event: crate::core::Event {
                        type_: crate::core::EventType::Warning,
                        reason: "InvalidConfiguration",
                        message: format!("{}: {}", error.field, error.reason),
                    },
                });
            }
        }
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        if self.state_errors.as_ref() != Some(&errors) {
            self.state_errors = Some(errors.clone());
            self.writer.send(Job::ConfigurationState { errors });
        }
        self.metrics.config_loaded.set(1);
        self.metrics
            .config_stale
            .set(i64::from(!report.stale.is_empty()));
        self.freed = true;
    }

    fn config_reference(&self, error: &ConfigError) -> Option<ObjectReference> {
        let name = error.name.as_str();
        let key = format!("{}/{name}", self.namespace);
        match error.kind {
            "IPAddressPool" => self.stores.pools.get(&key).map(reference),
            "L2Advertisement" => self.stores.l2.get(&key).map(reference),
            "BGPAdvertisement" => self.stores.bgp.get(&key).map(reference),
            "BGPPeer" => self.stores.peers.get(&key).map(reference),
            "BFDProfile" => self.stores.bfd.get(&key).map(reference),
            "Community" => self.stores.communities.get(&key).map(reference),
            _ => None,
        }
    }

    fn reconcile_all(&mut self) {
        let mut services: Vec<(String, ServiceKey)> = self
            .stores
            .services
            .iter()
            .map(|s| (created(s), service_key(s)))
            .collect();
        services.sort();
        for (_, key) in services {
            self.reconcile(&key);
        }
    }

    fn reconcile(&mut self, key: &ServiceKey) {
        let Some(service) = self
            .stores
            .services
            .get(&format!("{}/{}", key.namespace, key.name))
        else {
            return;
        };
        let snapshot = ServiceSnapshot::from_service(service);
        let reference = reference(service);
        let uid = service.metadata.uid.clone();
        let Decision {
            desired,
            events,
            freed,
        } = self.core.reconcile(&snapshot);
        self.freed |= freed;
        for event in events {
            match event.type_ {
                crate::core::EventType::Normal => {
                    tracing::info!(service = %key, reason = event.reason, "{}", event.message)
                }
                crate::core::EventType::Warning => {
                    tracing::warn!(service = %key, reason = event.reason, "{}", event.message)
                }
            }
            self.writer.send(Job::Event {
                reference: reference.clone(),
                event,
            });
        }
        let Some(desired) = desired else { return };
        if snapshot.shows(&desired) {
            self.sent.remove(key);
            return;
        }
        if self.sent.get(key) == Some(&desired) {
            return;
        }
        self.sent.insert(key.clone(), desired.clone());
        self.writer.send(Job::Service {
            key: key.clone(),
            uid,
            desired,
        });
    }

    /// After a batch: Services waiting for an address try again if any was freed, and the
    /// pools' counters are brought up to date.
    fn finish_batch(&mut self) {
        if std::mem::take(&mut self.freed) {
            for key in self.core.pending() {
                self.reconcile(&key);
            }
            // A retry can free addresses too (a dual-stack Service narrowed); one more round
            // settles it, and the next batch any rest.
            if std::mem::take(&mut self.freed) {
                for key in self.core.pending() {
                    self.reconcile(&key);
                }
            }
        }
        let stats = self.core.pool_stats();
        self.metrics.set_pools(&stats);
        self.metrics
            .pending_services
            .set(i64::try_from(self.core.pending_count()).unwrap_or(i64::MAX));
        let mut current = HashMap::new();
        for pool in stats {
            let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
            let status = serde_json::json!({
                "assignedIPv4": clamp(u128::from(pool.ipv4.in_use)),
                "assignedIPv6": clamp(u128::from(pool.ipv6.in_use)),
                "availableIPv4": clamp(pool.ipv4.available()),
                "availableIPv6": clamp(pool.ipv6.available()),
            });
            let name = pool.pool.to_string();
            if self.pool_status.get(&name) != Some(&status) {
                self.writer.send(Job::PoolStatus {
                    name: name.clone(),
                    status: status.clone(),
                });
            }
            current.insert(name, status);
        }
        self.pool_status = current;
    }
}
