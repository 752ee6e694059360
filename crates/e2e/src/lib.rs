//! End-to-end tests of ferrolb against the real testbed live in `tests/`. They need root and
//! network namespaces: run them with `scripts/test`. This library holds what the controller
//! tests share: a scenario with its own configuration namespace, Service namespace,
//! loadBalancerClass and controller process, so that tests run side by side without seeing
//! each other's Services or pools.

pub mod stats;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use ferrolb_testbed::{Family, ManagedProcess, Pod, ServiceSpec, Testbed, wait_until};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};

/// The metallb.io kinds a test may write (or its speakers leave behind), with their plural
/// resource names.
const KINDS: [(&str, &str, &str); 8] = [
    ("v1beta1", "IPAddressPool", "ipaddresspools"),
    ("v1beta1", "ServiceL2Status", "servicel2statuses"),
    ("v1beta1", "ServiceBGPStatus", "servicebgpstatuses"),
    ("v1beta1", "L2Advertisement", "l2advertisements"),
    ("v1beta1", "BGPAdvertisement", "bgpadvertisements"),
    ("v1beta2", "BGPPeer", "bgppeers"),
    ("v1beta1", "BFDProfile", "bfdprofiles"),
    ("v1beta1", "Community", "communities"),
];

pub struct Scenario {
    pub testbed: Testbed,
    pub kube: kube::Client,
    /// Where this scenario's metallb.io objects and Lease live.
    pub config_namespace: String,
    /// Where its Services live.
    pub namespace: String,
    /// The loadBalancerClass its controllers serve; `None`: the default (no class).
    pub class: Option<String>,
    pub controllers: Vec<ManagedProcess>,
    lease_seconds: u64,
}

impl Scenario {
    /// A clean slate for test `name`: CRDs installed, its namespaces created and emptied (no
    /// Services, no metallb.io objects, no Lease left by an earlier run). No controller yet.
    pub async fn new(name: &str) -> Result<Self> {
        let class = Some(format!("ferrolb.test/{name}"));
        let testbed = Testbed::get();
        let kube = testbed.kube().await?;
        testbed.install_crds(&kube).await?;
        let config_namespace = format!("cfg-{name}");
        let namespace = format!("svc-{name}");
        for ns in [&config_namespace, &namespace] {
            testbed.ensure_namespace(&kube, ns).await?;
        }
        testbed.clear_namespace(&kube, &namespace).await?;
        for (version, kind, plural) in KINDS {
            let api = dynamic_api(&kube, &config_namespace, version, kind, plural);
            api.delete_collection(&DeleteParams::default(), &ListParams::default())
                .await
                .with_context(|| format!("deleting {kind} objects in {config_namespace}"))?;
        }
        let leases: Api<Lease> = Api::namespaced(kube.clone(), &config_namespace);
        leases
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        // Services are deleted asynchronously only if they have finalizers; these have none.
        Ok(Self {
            testbed,
            kube,
            config_namespace,
            namespace,
            class,
            controllers: Vec::new(),
            lease_seconds: 2,
        })
    }

    /// How long the controllers' leader Lease lasts (default 2 s, for quick failovers).
    pub fn set_lease_seconds(&mut self, seconds: u64) {
        self.lease_seconds = seconds;
    }

    /// Starts one more controller for this scenario; returns its index in `controllers`.
    pub fn start_controller(&mut self) -> Result<usize> {
        let lease = self.lease_seconds.to_string();
        let mut args = vec![
            "--namespace",
            &self.config_namespace,
            "--metrics-address",
            "127.0.0.1:0",
            "--lease-duration",
            &lease,
        ];
        let identity = format!("{}-{}", self.namespace, self.controllers.len());
        args.extend(["--identity", &identity]);
        if let Some(class) = &self.class {
            args.extend(["--lb-class", class]);
        }
        let process = self.testbed.start_controller(&self.namespace, &args)?;
        self.controllers.push(process);
        Ok(self.controllers.len() - 1)
    }

    /// Applies metallb.io objects from YAML into the configuration namespace (server-side
    /// apply: creates or updates).
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(yaml).context("parsing the test's YAML")?;
        for mut document in documents.into_iter().filter(|d| !d.is_null()) {
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            let (version, _, plural) = KINDS
                .iter()
                .find(|(_, k, _)| *k == kind)
                .ok_or_else(|| anyhow!("not a metallb.io kind: {kind}"))?;
            document["metadata"]["namespace"] = self.config_namespace.clone().into();
            let name = document["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let api = dynamic_api(&self.kube, &self.config_namespace, version, &kind, plural);
            let object: DynamicObject = serde_json::from_value(document)?;
            api.patch(
                &name,
                &PatchParams::apply("ferrolb-e2e").force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("applying {kind} {name}"))?;
        }
        Ok(())
    }

    pub async fn delete(&self, kind: &str, name: &str) -> Result<()> {
        let (version, _, plural) = KINDS
            .iter()
            .find(|(_, k, _)| *k == kind)
            .ok_or_else(|| anyhow!("not a metallb.io kind: {kind}"))?;
        dynamic_api(&self.kube, &self.config_namespace, version, kind, plural)
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// A Service of this scenario's class in its namespace.
    pub fn service(&self, name: &str, families: &[Family]) -> ServiceSpec {
        let mut spec = ServiceSpec::new(&self.namespace, name, families);
        spec.load_balancer_class = self.class.clone();
        spec
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.kube.clone(), &self.namespace)
    }

    /// The addresses `status.loadBalancer.ingress` shows now.
    pub async fn ingress(&self, name: &str) -> Result<Vec<IpAddr>> {
        let service = self.services().get(name).await?;
        Ok(ingress_ips(&service))
    }

    /// Waits until the Service's addresses satisfy `check`, returning them.
    pub async fn wait_ingress(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&[IpAddr]) -> bool,
    ) -> Result<Vec<IpAddr>> {
        let result = wait_until(
            &format!("Service {}/{name}: {what}", self.namespace),
            Duration::from_secs(20),
            || async {
                let ips = self.ingress(name).await.map_err(|e| e.to_string())?;
                if check(&ips) {
                    Ok(ips)
                } else {
                    Err(format!("ingress is {ips:?}"))
                }
            },
        )
        .await;
        result.map_err(|e| anyhow!("{e}\ncontroller log:\n{}", self.log_tails()))
    }

    /// Waits for an address and returns it.
    pub async fn wait_assigned(&self, name: &str) -> Result<Vec<IpAddr>> {
        self.wait_ingress(name, "has an address", |ips| !ips.is_empty())
            .await
    }

    /// `(reason, note)` of every Event about this very Service, oldest first. Events are
    /// matched by the Service's UID: the namespaces persist between runs and Events live for
    /// an hour, so an earlier run's Event about a same-named Service must not count.
    pub async fn events(&self, name: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .event_objects(name)
            .await?
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect())
    }

    /// How many times an Event with `reason` was published about the Service: the events.k8s.io
    /// recorder folds repeats into one object with a series count, so objects alone undercount.
    pub async fn times_reported(&self, name: &str, reason: &str) -> Result<i32> {
        Ok(self
            .event_objects(name)
            .await?
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map_or(1, |series| series.count))
            .sum())
    }

    async fn event_objects(&self, name: &str) -> Result<Vec<Event>> {
        let uid = self.services().get(name).await?.metadata.uid;
        let api: Api<Event> = Api::namespaced(self.kube.clone(), &self.namespace);
        let mut events: Vec<Event> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.name.as_deref() == Some(name) && r.uid.is_some() && r.uid == uid
                })
            })
            .collect();
        events.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        Ok(events)
    }

    /// Waits for an Event with `reason` whose note contains `text`.
    pub async fn wait_event(&self, name: &str, reason: &str, text: &str) -> Result<String> {
        let result = wait_until(
            &format!(
                "an Event {reason} mentioning {text:?} on {}/{name}",
                self.namespace
            ),
            Duration::from_secs(20),
            || async {
                let events = self.events(name).await.map_err(|e| e.to_string())?;
                events
                    .iter()
                    .find(|(r, note)| r == reason && note.contains(text))
                    .map(|(_, note)| note.clone())
                    .ok_or_else(|| format!("events: {events:?}"))
            },
        )
        .await;
        result.map_err(|e| anyhow!("{e}\ncontroller log:\n{}", self.log_tails()))
    }

    /// The address controller `index` serves /metrics, /healthz and /readyz on, from its log.
    pub fn metrics_address(&self, index: usize) -> Result<String> {
        let process = self
            .controllers
            .get(index)
            .ok_or_else(|| anyhow!("no controller {index}"))?;
        let log = std::fs::read_to_string(&process.log)?;
        Ok(log
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| l.split("address=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .ok_or_else(|| anyhow!("no metrics address in {}", process.log.display()))?
            .to_string())
    }

    /// The `/metrics` text of controller `index`.
    pub async fn metrics(&self, index: usize) -> Result<String> {
        let address = self.metrics_address(index)?;
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://{address}/metrics"),
            ])
            .output()
            .await?;
        if !output.status.success() {
            return Err(anyhow!(
                "curl http://{address}/metrics: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn log_tails(&self) -> String {
        self.controllers
            .iter()
            .map(|c| format!("== {}\n{}", c.log.display(), c.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Annotations of the Service now.
    pub async fn annotations(&self, name: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .services()
            .get(name)
            .await?
            .metadata
            .annotations
            .unwrap_or_default())
    }
}

pub use ferrolb_api::service::ingress_ips;

fn dynamic_api(
    kube: &kube::Client,
    namespace: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", version, kind),
        plural,
    );
    Api::namespaced_with(kube.clone(), namespace, &resource)
}

/// The value of an unlabelled sample in Prometheus text, e.g. `metric_value(text, "x_total")`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// `testbed pod add` picks a free pod address without a lock of its own.
static POD_ADD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Scenario {
    /// Creates Service `spec` as written.
    pub async fn create(&self, spec: &ServiceSpec) -> Result<()> {
        self.testbed.create_service(&self.kube, spec).await?;
        Ok(())
    }

    /// Adds backend pod `name` on `node`, once more if the first try fails (a busy testbed
    /// can be slow to show the echo server up).
    pub async fn add_backend(&self, name: &str, node: &str) -> Result<Pod> {
        let _lock = POD_ADD.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // `testbed pod del` leaves the node's neighbour entry for the pod's address, and
            // `pod add` hands the address to the next pod, with a new MAC: the node keeps
            // sending to the old MAC for seconds and `pod add` times out waiting for its echo.
            self.testbed
                .exec(node, &["ip", "neigh", "flush", "dev", "cni0"])
                .await?
                .ok()?;
            match self.testbed.add_pod(name, node).await {
                Ok(pod) => return Ok(pod),
                Err(err) => {
                    // A failed `pod add` leaves its namespace behind (there is no Pod to drop).
                    let _ = self.testbed.script(&["pod", "del", name]).await;
                    if attempt == 2 {
                        return Err(err.context(format!("adding pod {name} on {node} (twice)")));
                    }
                    eprintln!("adding pod {name} on {node} failed, once more: {err:#}");
                }
            }
        }
    }
}

// ---- failure reports ----------------------------------------------------------------------------

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What to show when a test with speakers fails: the stopped speakers' logs (`old_logs`), the
/// running ones', then the scenario's controllers'.
pub fn speaker_log_tails(
    scenario: &Scenario,
    speakers: &BTreeMap<String, ManagedProcess>,
    old_logs: &[std::path::PathBuf],
) -> String {
    let mut text = String::new();
    for log in old_logs {
        text.push_str(&format!(
            "== {} (stopped)\n{}\n",
            log.display(),
            tail(log, 30)
        ));
    }
    for (node, process) in speakers {
        text.push_str(&format!(
            "== speaker on {node}: {}\n{}\n",
            process.log.display(),
            process.log_tail()
        ));
    }
    text.push_str(&scenario.log_tails());
    text
}

// ---- benchmarks sharing the testbed -------------------------------------------------------------

/// Configuration namespaces (`--namespace`, default `metallb-system`) of running ferrolb or
/// MetalLB speakers, other than `ours`.
pub fn foreign_speakers(ours: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut found = Vec::new();
    for line in out.lines().filter(|l| l.contains(" speaker ")) {
        if !line.contains("ferrolb") && !line.contains("metallb") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let ns = words
            .iter()
            .position(|w| *w == "--namespace")
            .and_then(|i| words.get(i + 1))
            .copied()
            .unwrap_or("metallb-system");
        if !ours.contains(&ns) {
            found.push(ns.to_string());
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Waits (`limit` at most, polling every 10 s) until no speakers but `ours` run: a benchmark
/// about to take a node's link down, or to flood the LAN, would break other users' tests.
pub async fn wait_alone(bench: &str, ours: &[&str], what: &str, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let others = foreign_speakers(ours);
        if others.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "speakers of {others:?} still run after {} s; {what} not measured",
                limit.as_secs()
            );
        }
        eprintln!("{bench}: waiting for speakers of {others:?} to stop before {what}");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

// ---- speakers ---------------------------------------------------------------------------------

/// The ports one scenario's speakers use. Speakers of several scenarios may run on one node at
/// once, so every scenario needs its own membership (UDP) port and metrics (TCP) port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerPorts {
    /// `--ml-bindport`.
    pub membership: u16,
    /// The port of `--metrics-address <node IPv4>:<port>`.
    pub metrics: u16,
}

impl SpeakerPorts {
    /// Ports for test number `index` of a file: 17000 + 10 × index, and the one after it.
    pub fn for_test(index: u16) -> Self {
        Self {
            membership: 17000 + 10 * index,
            metrics: 17001 + 10 * index,
        }
    }
}

/// One ServiceL2Status object as the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Status {
    pub name: String,
    /// The `metallb.io/node` label.
    pub node_label: Option<String>,
    /// `.status.node`.
    pub node: Option<String>,
    /// `.status.interfaces[].name`.
    pub interfaces: Vec<String>,
    /// `metadata.creationTimestamp` (RFC 3339, whole seconds), to tell a re-created object.
    pub created: Option<String>,
}

fn l2_status_api(kube: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status"),
        "servicel2statuses",
    );
    Api::namespaced_with(kube.clone(), namespace, &resource)
}

fn bgp_status_api(kube: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceBGPStatus"),
        "servicebgpstatuses",
    );
    Api::namespaced_with(kube.clone(), namespace, &resource)
}

/// The `metallb.io/node` label of a status object.
fn node_label(object: &DynamicObject) -> Option<String> {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("metallb.io/node").cloned())
}

/// One ServiceBGPStatus object as the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpStatus {
    pub name: String,
    /// The `metallb.io/node` label.
    pub node_label: Option<String>,
    /// `.status.node`.
    pub node: Option<String>,
    /// `.status.peers`.
    pub peers: Vec<String>,
}

impl Scenario {
    /// Creates or replaces the Secret `memberlist` (key `secretkey`) in the configuration
    /// namespace, from which the speakers read the membership's shared key.
    pub async fn create_memberlist_secret(&self) -> Result<()> {
        use k8s_openapi::api::core::v1::Secret;
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), &self.config_namespace);
        let key = format!(
            "e2e-shared-key-of-{}-0123456789abcdef",
            self.config_namespace
        );
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "memberlist", "namespace": self.config_namespace},
            "stringData": {"secretkey": key},
        }))?;
        api.patch(
            "memberlist",
            &PatchParams::apply("ferrolb-e2e").force(),
            &Patch::Apply(&secret),
        )
        .await
        .context("writing Secret memberlist")?;
        Ok(())
    }

    /// Creates or replaces a `kubernetes.io/basic-auth` Secret `name` in the configuration
    /// namespace with key `password` (what a BGPPeer's `passwordSecret` names).
    pub async fn create_password_secret(&self, name: &str, password: &str) -> Result<()> {
        use k8s_openapi::api::core::v1::Secret;
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), &self.config_namespace);
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/basic-auth",
            "metadata": {"name": name, "namespace": self.config_namespace},
            "stringData": {"password": password},
        }))?;
        api.patch(
            name,
            &PatchParams::apply("ferrolb-e2e").force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("writing Secret {name}"))?;
        Ok(())
    }

    /// The arguments after `--node-name NODE` for a speaker of this scenario on `node`.
    pub fn speaker_args(
        &self,
        node: &str,
        ports: SpeakerPorts,
        extra: &[&str],
    ) -> Result<Vec<String>> {
        let ip4 = self.testbed.node(node)?.host.ip4;
        let mut args = vec![
            "--namespace".to_string(),
            self.config_namespace.clone(),
            "--metrics-address".to_string(),
            format!("{ip4}:{}", ports.metrics),
            "--ml-bindport".to_string(),
            ports.membership.to_string(),
        ];
        if let Some(class) = &self.class {
            args.extend(["--lb-class".to_string(), class.clone()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_string()));
        Ok(args)
    }

    /// Starts this scenario's speaker on `node` (no wait).
    pub fn start_speaker(
        &self,
        node: &str,
        ports: SpeakerPorts,
        extra: &[&str],
    ) -> Result<ManagedProcess> {
        let args = self.speaker_args(node, ports, extra)?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.testbed.start_speaker(&self.namespace, node, &args)
    }

    /// Starts a speaker on every node of the testbed (after writing the membership Secret,
    /// unless `extra` holds `--ml-disabled`) and waits until each one says it is ready on
    /// `/readyz`. Returns them by node name.
    pub async fn start_speakers(
        &self,
        ports: SpeakerPorts,
        extra: &[&str],
    ) -> Result<BTreeMap<String, ManagedProcess>> {
        if !extra.contains(&"--ml-disabled") {
            self.create_memberlist_secret().await?;
        }
        let mut speakers = BTreeMap::new();
        for node in &self.testbed.nodes {
            let process = self.start_speaker(&node.name, ports, extra)?;
            speakers.insert(node.name.clone(), process);
        }
        for (node, process) in &speakers {
            self.wait_speaker_ready(node, ports, process).await?;
        }
        Ok(speakers)
    }

    /// Waits (20 s at most) until the speaker on `node` answers `/readyz` with success.
    pub async fn wait_speaker_ready(
        &self,
        node: &str,
        ports: SpeakerPorts,
        process: &ManagedProcess,
    ) -> Result<()> {
        let url = format!(
            "http://{}:{}/readyz",
            self.testbed.node(node)?.host.ip4,
            ports.metrics
        );
        wait_until(
            &format!("the speaker on {node} to be ready ({url})"),
            Duration::from_secs(20),
            || async {
                let out = self
                    .testbed
                    .exec(node, &["curl", "-sf", "--max-time", "1", &url])
                    .await
                    .map_err(|e| e.to_string())?;
                if out.success {
                    Ok(())
                } else {
                    Err(format!("curl: {}", out.stderr.trim()))
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\nspeaker log:\n{}", process.log_tail()))
    }

    /// The `/metrics` text of this scenario's speaker on `node`.
    pub async fn speaker_metrics(&self, node: &str, ports: SpeakerPorts) -> Result<String> {
        let url = format!(
            "http://{}:{}/metrics",
            self.testbed.node(node)?.host.ip4,
            ports.metrics
        );
        let out = self
            .testbed
            .exec(node, &["curl", "-sS", "--max-time", "5", &url])
            .await?
            .ok()?;
        Ok(out.stdout)
    }

    /// Deletes every ServiceL2Status in the configuration namespace (an earlier run's speakers,
    /// killed with SIGKILL, may have left some).
    pub async fn clear_l2_statuses(&self) -> Result<()> {
        l2_status_api(&self.kube, &self.config_namespace)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .context("deleting ServiceL2Status objects")?;
        Ok(())
    }

    /// The ServiceL2Status objects in the configuration namespace about Service `name` of this
    /// scenario (by their `metallb.io/service-name` / `-namespace` labels), by object name.
    pub async fn l2_statuses(&self, name: &str) -> Result<Vec<L2Status>> {
        let objects = self
            .status_objects(l2_status_api(&self.kube, &self.config_namespace), name)
            .await?;
        let mut statuses: Vec<L2Status> = objects
            .into_iter()
            .map(|object| {
                let status = &object.data["status"];
                L2Status {
                    name: object.metadata.name.clone().unwrap_or_default(),
                    node_label: node_label(&object),
                    node: status["node"].as_str().map(str::to_string),
                    interfaces: status["interfaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["name"].as_str().map(str::to_string))
                        .collect(),
                    created: object
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string()),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(statuses)
    }

    /// Deletes every ServiceBGPStatus in the configuration namespace.
    pub async fn clear_bgp_statuses(&self) -> Result<()> {
        bgp_status_api(&self.kube, &self.config_namespace)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .context("deleting ServiceBGPStatus objects")?;
        Ok(())
    }

    /// The ServiceBGPStatus objects about Service `name` of this scenario, sorted by node.
    pub async fn bgp_statuses(&self, name: &str) -> Result<Vec<BgpStatus>> {
        let objects = self
            .status_objects(bgp_status_api(&self.kube, &self.config_namespace), name)
            .await?;
        let mut statuses: Vec<BgpStatus> = objects
            .into_iter()
            .map(|object| {
                let status = &object.data["status"];
                BgpStatus {
                    name: object.metadata.name.clone().unwrap_or_default(),
                    node_label: node_label(&object),
                    node: status["node"].as_str().map(str::to_string),
                    peers: status["peers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect(),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(statuses)
    }

    /// The entries of BGPPeer `peer`'s status (one per node that should peer), sorted by node.
    pub async fn peer_status(
        &self,
        peer: &str,
    ) -> Result<Vec<ferrolb_api::v1beta2::BGPPeerNodeStatus>> {
        let api: Api<ferrolb_api::v1beta2::BGPPeer> =
            Api::namespaced(self.kube.clone(), &self.config_namespace);
        let object = api
            .get(peer)
            .await
            .with_context(|| format!("reading BGPPeer {peer}"))?;
        let mut nodes = object.status.map(|s| s.nodes).unwrap_or_default();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    /// Waits until BGPPeer `peer`'s status entries (sorted by node) satisfy `wanted`.
    pub async fn wait_peer_status(
        &self,
        peer: &str,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&[ferrolb_api::v1beta2::BGPPeerNodeStatus]) -> bool,
    ) -> Result<()> {
        wait_until(
            &format!("BGPPeer {peer}'s status: {what}"),
            timeout,
            || async {
                let entries = self.peer_status(peer).await.map_err(|e| format!("{e:#}"))?;
                if wanted(&entries) {
                    Ok(())
                } else {
                    Err(format!("{entries:?}"))
                }
            },
        )
        .await
    }

    /// The status objects (of `api`'s kind) about Service `name` of this scenario, by their
    /// `metallb.io/service-name` / `-namespace` labels.
    async fn status_objects(
        &self,
        api: Api<DynamicObject>,
        name: &str,
    ) -> Result<Vec<DynamicObject>> {
        let selector = format!(
            "metallb.io/service-name={name},metallb.io/service-namespace={}",
            self.namespace
        );
        Ok(api
            .list(&ListParams::default().labels(&selector))
            .await
            .with_context(|| format!("listing status objects of {name}"))?
            .items)
    }

    /// Every ServiceL2Status in the configuration namespace labelled with `node`.
    pub async fn l2_statuses_of_node(&self, node: &str) -> Result<Vec<String>> {
        let list = l2_status_api(&self.kube, &self.config_namespace)
            .list(&ListParams::default().labels(&format!("metallb.io/node={node}")))
            .await
            .context("listing ServiceL2Status objects")?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect())
    }
}

/// The value of the sample of `name` whose labels include every `(label, value)` of `labels`,
/// in Prometheus text; e.g. `metric_with_labels(text, "x", &[("ip", "1.2.3.4")])`.
pub fn metric_with_labels(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = if let Some(inner) = rest.strip_prefix('{') {
            let (set, value) = inner.split_once('}')?;
            (parse_labels(set), value)
        } else if rest.starts_with(' ') {
            (BTreeMap::new(), rest)
        } else {
            return None;
        };
        labels
            .iter()
            .all(|(k, v)| set.get(*k).map(String::as_str) == Some(*v))
            .then(|| value.split_whitespace().next()?.parse().ok())
            .flatten()
    })
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim().trim_start_matches(',').trim().to_string(), value);
        rest = after[end..].trim_start_matches(',').trim();
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_samples_are_found_by_a_subset_of_their_labels() {
        let text = "# TYPE metallb_speaker_announced gauge\n\
            metallb_speaker_announced{ip=\"198.51.100.220\",node=\"node-1\",protocol=\"layer2\",service=\"svc-x/web\"} 1\n\
            metallb_layer2_responses_sent{ip=\"2001:db8:100::220\"} 7\n\
            plain 3\n";
        assert_eq!(
            metric_with_labels(
                text,
                "metallb_speaker_announced",
                &[("ip", "198.51.100.220"), ("node", "node-1")]
            ),
            Some(1.0)
        );
        assert_eq!(
            metric_with_labels(text, "metallb_speaker_announced", &[("node", "node-2")]),
            None
        );
        assert_eq!(
            metric_with_labels(
                text,
                "metallb_layer2_responses_sent",
                &[("ip", "2001:db8:100::220")]
            ),
            Some(7.0)
        );
        assert_eq!(metric_with_labels(text, "plain", &[]), Some(3.0));
        assert_eq!(metric_with_labels(text, "plai", &[]), None);
    }
}
