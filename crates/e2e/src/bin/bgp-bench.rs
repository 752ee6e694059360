//! `bench/bgp`: the speaker's native BGP mode against the testbed's real routers (GoBGP and FRR
//! in the `router` namespace). Prints a table:
//! - convergence: 10,000 Service addresses advertised by one speaker (node-1) to GoBGP, and
//!   separately to FRR: speaker start → session Established → the router holds them all, and
//!   the UPDATE messages the speaker sent;
//! - latency: a Service created → its /32 in GoBGP's RIB (GoBGP's own event streams,
//!   `gobgp monitor global rib -j` and `… adj-in -j`), with the controller's ingress write
//!   (seen by a watch) as the split;
//! - churn: 1,000 Services created at once → all in the RIB; deleted → all gone;
//! - node loss with BFD (FRR bfdd, 100 ms × 3, hold time 90 s): node-1's link down and its
//!   speaker SIGKILLed → FRR no longer has node-1's path;
//! - speaker RSS with three sessions that each hold the 10,000 prefixes (FRR over IPv4, FRR
//!   over IPv6 carrying IPv4 too, and a second gobgpd on port 1791), and idle.
//!
//! Every process started here is held as a `ManagedProcess` (stopped by pid when dropped); the
//! routing daemons go through `testbed/testbed router start|stop`. The testbed's router and
//! node addresses are shared with the end-to-end tests: `bench/bgp` runs this binary under
//! `flock target/testbed/router.lock` (bench/bgp takes it).
//!
//! The bench Services carry `service.kubernetes.io/service-proxy-name`, so the nodes'
//! kube-proxies leave them alone: no traffic is sent to them, and programming 10,000 Services
//! into three kube-proxies would take the CPUs the measured processes need. Their endpoints
//! are one ready address on node-1 that nothing listens on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferrolb_e2e::{Scenario, SpeakerPorts, ingress_ips, metric_with_labels};
use ferrolb_testbed::routers::{BfdTimers, Daemon, Families, Neighbor, Router, RouterConfig};
use ferrolb_testbed::{LinkDown, ManagedProcess, Testbed, wait_until};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

// ---- shared helpers --------------------------------------------------------------------------

use ferrolb_e2e::stats::{env_usize, list_ms, median, now_us, percentile, sorted, worst};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

type Rows = Vec<(String, String)>;

/// Milliseconds from `start_us` (Unix µs) to the first line of a ferrolb log containing
/// `needle`, by the line's UTC timestamp (`2026-11-23T18:16:45.840155Z …`); same day assumed.
fn log_offset_ms(log: &std::path::Path, needle: &str, start_us: i64) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains(needle))?;
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let time = time.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    let at_ms = (hours * 3600.0 + minutes * 60.0 + seconds) * 1000.0;
    let start_ms = (start_us.rem_euclid(86_400_000_000)) as f64 / 1000.0;
    Some(at_ms - start_ms)
}

/// Between two polls of a router's CLI (convergence, churn).
const POLL_PAUSE: Duration = Duration::from_millis(5);

// ---- the testbed's shape ----------------------------------------------------------------------

const NODE_ASN: u32 = 64512;
const ROUTER_ASN: u32 = 64501;
/// The second gobgpd (RSS phase): its own AS, BGP port and API port in the router namespace.
const ALT_ASN: u32 = 64502;
const ALT_BGP_PORT: u16 = 1791;
const ALT_API: &str = "127.0.0.1:50052";
const ALT_ROUTER_ID: &str = "192.0.2.250";

const SCALE_PORTS: SpeakerPorts = SpeakerPorts {
    membership: 17900,
    metrics: 17901,
};
const ROUTE_PORTS: SpeakerPorts = SpeakerPorts {
    membership: 17910,
    metrics: 17911,
};
const BFD_PORTS: SpeakerPorts = SpeakerPorts {
    membership: 17920,
    metrics: 17921,
};

/// Where the bench Services' endpoint points: an address of node-1's pod block nothing listens
/// on (no traffic is sent; the Cluster policy only needs one ready endpoint).
const FAKE_ENDPOINT: &str = "203.0.113.142";
const PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Namespaces (`--namespace` of a speaker) that belong to this benchmark.
const OURS: &[&str] = &["cfg-bench-bgp-scale", "cfg-bench-bgp", "cfg-bench-bgp-bfd"];

fn pool(name: &str, ranges: &[&str]) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [{}]\n---\n",
        ranges
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A v1beta2 BGPPeer from every node; `extra` are more lines of `spec` (two-space indent).
fn peer(name: &str, address: IpAddr, peer_asn: u32, extra: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n  myASN: {NODE_ASN}\n  peerASN: {peer_asn}\n  peerAddress: \"{address}\"\n  connectTime: 2s\n{extra}---\n"
    )
}

fn advertisement(name: &str, pool: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}}}\nspec:\n  ipAddressPools: [{pool}]\n  aggregationLength: 32\n---\n"
    )
}

fn node_ip4(testbed: &Testbed, node: &str) -> Result<IpAddr> {
    Ok(IpAddr::V4(testbed.node(node)?.host.ip4))
}

fn node_ip6(testbed: &Testbed, node: &str) -> Result<IpAddr> {
    Ok(IpAddr::V6(testbed.node(node)?.host.ip6))
}

fn node_ips4(testbed: &Testbed) -> Vec<IpAddr> {
    testbed
        .nodes
        .iter()
        .map(|n| IpAddr::V4(n.host.ip4))
        .collect()
}

/// The router's view of one BGP session: Established, and how many IPv4 prefixes it accepted
/// from the neighbour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    established: bool,
    prefixes: u64,
}

/// Which daemon to read per-neighbour counts from.
#[derive(Debug, Clone)]
enum Counter {
    /// `vtysh --vty_socket DIR -c 'show bgp ipv4 unicast summary json'`: `peers[ADDR].state`,
    /// `.pfxRcd`.
    Frr { vty: String },
    /// `gobgp -u HOST -p PORT neighbor -j` in the router namespace: `state.session_state` (6 =
    /// Established), `afi_safis[].state.accepted` (`received` where absent).
    Gobgp { api: String },
}

impl Counter {
    fn frr(testbed: &Testbed) -> Result<Self> {
        Ok(Counter::Frr {
            vty: testbed.var("TESTBED_ROUTER_FRR_VTY")?.to_string(),
        })
    }

    fn gobgp(testbed: &Testbed) -> Result<Self> {
        Ok(Counter::Gobgp {
            api: testbed.var("TESTBED_ROUTER_GOBGP_API")?.to_string(),
        })
    }

    async fn read(&self, testbed: &Testbed) -> Result<BTreeMap<IpAddr, Held>> {
        match self {
            Counter::Frr { vty } => {
                // vtysh talks to the daemons over Unix sockets: no need to enter the namespace.
                let out = tokio::process::Command::new("vtysh")
                    .args([
                        "--vty_socket",
                        vty,
                        "-c",
                        "show bgp ipv4 unicast summary json",
                    ])
                    .output()
                    .await
                    .context("running vtysh")?;
                ensure!(
                    out.status.success(),
                    "vtysh: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                parse_frr_summary(&String::from_utf8_lossy(&out.stdout))
            }
            Counter::Gobgp { api } => {
                let (host, port) = api
                    .rsplit_once(':')
                    .ok_or_else(|| anyhow!("GoBGP API {api} is not HOST:PORT"))?;
                let out = tokio::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &testbed.router.netns,
                        "gobgp",
                        "-u",
                        host,
                        "-p",
                        port,
                        "neighbor",
                        "-j",
                    ])
                    .output()
                    .await
                    .context("running gobgp")?;
                ensure!(
                    out.status.success(),
                    "gobgp neighbor -j: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                parse_gobgp_neighbors(&String::from_utf8_lossy(&out.stdout))
            }
        }
    }
}

fn parse_frr_summary(text: &str) -> Result<BTreeMap<IpAddr, Held>> {
    let value: Value = serde_json::from_str(text).with_context(|| {
        format!(
            "FRR summary is not JSON: {}",
            text.chars().take(300).collect::<String>()
        )
    })?;
    let mut out = BTreeMap::new();
    for (address, peer) in value["peers"].as_object().into_iter().flatten() {
        let Ok(address) = address.parse::<IpAddr>() else {
            continue;
        };
        out.insert(
            address,
            Held {
                established: peer["state"].as_str() == Some("Established"),
                prefixes: peer["pfxRcd"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok(out)
}

fn parse_gobgp_neighbors(text: &str) -> Result<BTreeMap<IpAddr, Held>> {
    let value: Value = serde_json::from_str(text).with_context(|| {
        format!(
            "`gobgp neighbor -j` is not JSON: {}",
            text.chars().take(300).collect::<String>()
        )
    })?;
    let mut out = BTreeMap::new();
    for peer in value.as_array().into_iter().flatten() {
        let Some(address) = peer["state"]["neighbor_address"]
            .as_str()
            .or(peer["conf"]["neighbor_address"].as_str())
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let state = &peer["state"]["session_state"];
        let established = state.as_u64() == Some(6)
            || state
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("established"));
        let prefixes = peer["afi_safis"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|family| {
                let state = &family["state"];
                state["accepted"]
                    .as_u64()
                    .or(state["received"].as_u64())
                    .unwrap_or(0)
            })
            .sum();
        out.insert(
            address,
            Held {
                established,
                prefixes,
            },
        );
    }
    Ok(out)
}

/// Polls a `Counter` as fast as its CLI answers, keeping each poll's duration: the resolution
/// of whatever is read from it.
struct Poll {
    counter: Counter,
    /// Milliseconds between the completions of consecutive polls.
    intervals: Vec<f64>,
    last: Option<Instant>,
}

impl Poll {
    fn new(counter: Counter) -> Self {
        Self {
            counter,
            intervals: Vec::new(),
            last: None,
        }
    }

    async fn read(&mut self, testbed: &Testbed) -> Result<BTreeMap<IpAddr, Held>> {
        let result = self.counter.read(testbed).await;
        let now = Instant::now();
        if let Some(last) = self.last {
            self.intervals.push(ms(now - last));
        }
        self.last = Some(now);
        result
    }

    fn resolution(&self) -> String {
        format!(
            "polled every {:.0} ms (median; worst {:.0} ms)",
            median(&self.intervals),
            worst(&self.intervals)
        )
    }
}

// ---- Services in bulk -------------------------------------------------------------------------

fn service_object(scenario: &Scenario, name: &str) -> Result<Service> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": scenario.namespace,
            "labels": {PROXY_NAME_LABEL: "ferrolb-bench-none"},
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": scenario.class,
            "allocateLoadBalancerNodePorts": false,
            "selector": {"app": name},
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))?)
}

fn slice_object(scenario: &Scenario, name: &str) -> Result<EndpointSlice> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-bench"),
            "namespace": scenario.namespace,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "bench.ferrolb.io",
                // As the EndpointSlice controller copies it from the Service: kube-proxy's
                // slice watch leaves such slices out too.
                PROXY_NAME_LABEL: "ferrolb-bench-none",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [FAKE_ENDPOINT],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
        }],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }))?)
}

fn slices(scenario: &Scenario) -> Api<EndpointSlice> {
    Api::namespaced(scenario.kube.clone(), &scenario.namespace)
}

/// Creates an EndpointSlice (and with `services`, the Service) for every name, `parallel` at a
/// time, printing progress every `progress` objects (0: never).
async fn create_all(
    scenario: &Scenario,
    names: &[String],
    services: bool,
    parallel: usize,
    progress: usize,
) -> Result<()> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    futures::stream::iter(names.iter())
        .map(|name| {
            let done = &done;
            async move {
                slices(scenario)
                    .create(&PostParams::default(), &slice_object(scenario, name)?)
                    .await
                    .with_context(|| format!("creating EndpointSlice {name}-bench"))?;
                if services {
                    scenario
                        .services()
                        .create(&PostParams::default(), &service_object(scenario, name)?)
                        .await
                        .with_context(|| format!("creating Service {name}"))?;
                }
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if progress > 0 && n.is_multiple_of(progress) {
                    eprintln!(
                        "bgp-bench: {n} of {} created ({:.0} s)",
                        names.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Services of the scenario with an address now.
async fn assigned_count(scenario: &Scenario) -> Result<usize> {
    let mut count = 0;
    let mut params = ListParams::default().limit(2000);
    loop {
        let page = scenario.services().list(&params).await?;
        count += page
            .items
            .iter()
            .filter(|s| !ingress_ips(s).is_empty())
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(count),
        }
    }
}

/// Waits until `count` Services of the scenario have an address, printing progress.
async fn wait_all_assigned(scenario: &Scenario, count: usize, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let assigned = assigned_count(scenario).await?;
        eprintln!(
            "bgp-bench: {assigned} of {count} Services have an address ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        if assigned >= count {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "only {assigned} of {count} Services have an address after {timeout:?}\n{}",
                scenario.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Deletes every object `api` lists, 32 requests in flight, until none is left: one
/// deletecollection of 10,000 Services outlives the client's request timeout, and the
/// apiserver gives up on it half-way.
async fn delete_every<K>(api: &Api<K>, what: &str) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..5 {
        let mut names = Vec::new();
        let mut params = ListParams::default().limit(1000);
        loop {
            let page = api.list_metadata(&params).await?;
            names.extend(page.items.into_iter().filter_map(|o| o.metadata.name));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        let failures = futures::stream::iter(names)
            .map(|name| async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => 0,
                    Err(kube::Error::Api(status)) if status.code == 404 => 0,
                    Err(_) => 1,
                }
            })
            .buffer_unordered(32)
            .fold(0, |sum, failed| async move { sum + failed })
            .await;
        if failures > 0 {
            eprintln!("bgp-bench: {failures} {what} deletes failed; listing again");
        }
    }
    bail!("{what} are still left after five rounds of deletes")
}

/// Empties the scale phase's Service namespace of an earlier run's Services and slices before
/// anything is measured: `Scenario::new` would try one deletecollection, which 10,000 Services
/// outlast, and deleting them loads the apiserver and every watcher for minutes.
async fn clean_earlier_scale_run() -> Result<()> {
    let testbed = Testbed::get();
    let kube = testbed.kube().await?;
    let namespace = "svc-bench-bgp-scale";
    testbed.ensure_namespace(&kube, namespace).await?;
    delete_every(
        &Api::<Service>::namespaced(kube.clone(), namespace),
        "Services",
    )
    .await?;
    delete_every(
        &Api::<EndpointSlice>::namespaced(kube, namespace),
        "EndpointSlices",
    )
    .await
}

/// Deletes every Service and EndpointSlice of the scenario and every ServiceBGPStatus its
/// speakers wrote.
async fn clean(scenario: &Scenario) {
    if let Err(err) = delete_every(&scenario.services(), "Services").await {
        eprintln!("bgp-bench: cleaning {}: {err:#}", scenario.namespace);
    }
    if let Err(err) = delete_every(&slices(scenario), "EndpointSlices").await {
        eprintln!("bgp-bench: cleaning {}: {err:#}", scenario.namespace);
    }
    if let Err(err) = scenario.clear_bgp_statuses().await {
        eprintln!(
            "bgp-bench: clearing statuses in {}: {err:#}",
            scenario.config_namespace
        );
    }
}

/// SIGTERM, as a rollout would; a speaker that does not stop within 10 s is SIGKILLed, which
/// is reported and does not end the phase.
async fn terminate(speaker: ManagedProcess) {
    let mut speaker = speaker;
    let log = speaker.log.clone();
    match tokio::task::spawn_blocking(move || speaker.terminate()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("bgp-bench: speaker ({}): {err:#}", log.display()),
        Err(err) => eprintln!("bgp-bench: stopping the speaker ({}): {err}", log.display()),
    }
}

fn pid_of(process: &ManagedProcess) -> Result<u32> {
    process.pid().context("the speaker is not running")
}

async fn wait_alone(what: &str) -> Result<()> {
    ferrolb_e2e::wait_alone("bgp-bench", OURS, what, Duration::from_secs(10 * 60)).await
}

// ---- 1. convergence and 5. RSS: 10,000 Services, one speaker ----------------------------------

fn scale_config(testbed: &Testbed) -> String {
    pool("scale", &["198.19.0.0/18"])
        + &peer("router-v4", IpAddr::V4(testbed.router.ip4), ROUTER_ASN, "")
        + &advertisement("scale", "scale")
}

/// The two more BGPPeers of the RSS phase: FRR over IPv6 (carrying IPv4 too), and the second
/// gobgpd on port 1791.
fn rss_peers(testbed: &Testbed) -> String {
    peer(
        "router-v6",
        IpAddr::V6(testbed.router.ip6),
        ROUTER_ASN,
        "  dualStackAddressFamily: true\n",
    ) + &peer(
        "router-alt",
        IpAddr::V4(testbed.router.ip4),
        ALT_ASN,
        &format!("  peerPort: {ALT_BGP_PORT}\n"),
    )
}

/// The router with node-1 as its only neighbour (over IPv4; with `v6`, over IPv6 too,
/// carrying IPv4 routes as well).
fn node1_router(testbed: &Testbed, v6: bool) -> Result<RouterConfig> {
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4);
    config.families = Families::BOTH;
    config
        .neighbors
        .push(Neighbor::new(node_ip4(testbed, "node-1")?, NODE_ASN));
    if v6 {
        config.neighbors.push(Neighbor {
            families: Families::BOTH,
            ..Neighbor::new(node_ip6(testbed, "node-1")?, NODE_ASN)
        });
    }
    Ok(config)
}

/// A second gobgpd in the router namespace, listening on `ALT_BGP_PORT` for node-1 (passive),
/// its API on `ALT_API`. Stopped by pid when dropped.
fn start_alt_gobgp(testbed: &Testbed) -> Result<(ManagedProcess, std::path::PathBuf)> {
    let node1 = node_ip4(testbed, "node-1")?;
    let config = format!(
        "[global.config]\n  as = {ALT_ASN}\n  router-id = \"{ALT_ROUTER_ID}\"\n  port = {ALT_BGP_PORT}\n[global.apply-policy.config]\n  default-export-policy = \"reject-route\"\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{node1}\"\n    peer-as = {NODE_ASN}\n  [neighbors.transport.config]\n    passive-mode = true\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
    );
    let path = std::env::temp_dir().join(format!("bgp-bench-alt-{}.toml", std::process::id()));
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    let process = testbed.start_process(
        "bgp-bench-gobgpd-alt",
        std::path::Path::new("ip"),
        &[
            "netns",
            "exec",
            &testbed.router.netns,
            "gobgpd",
            "-f",
            &path.to_string_lossy(),
            "-t",
            "toml",
            "--api-hosts",
            ALT_API,
            "--pprof-disable",
        ],
    )?;
    Ok((process, path))
}

/// The RSS phase's three sessions: FRR (IPv4 and IPv6 neighbour) and the second gobgpd.
struct ThreeRouters {
    frr: Router,
    alt: ManagedProcess,
    alt_config: std::path::PathBuf,
}

impl ThreeRouters {
    async fn start(testbed: &Testbed) -> Result<Self> {
        let frr = Router::start(testbed, Daemon::Frr, &node1_router(testbed, true)?).await?;
        let (alt, alt_config) = start_alt_gobgp(testbed)?;
        Ok(Self {
            frr,
            alt,
            alt_config,
        })
    }

    /// Per session (`FRR v4`, `FRR v6`, `GoBGP :1791`): what the router holds from node-1.
    async fn held(&self, testbed: &Testbed) -> Result<Vec<(String, Held)>> {
        let frr = Counter::frr(testbed)?.read(testbed).await?;
        let alt = Counter::Gobgp {
            api: ALT_API.to_string(),
        }
        .read(testbed)
        .await?;
        let v4 = node_ip4(testbed, "node-1")?;
        let v6 = node_ip6(testbed, "node-1")?;
        Ok(vec![
            (
                format!("FRR over IPv4 ({v4})"),
                frr.get(&v4).copied().unwrap_or_default(),
            ),
            (
                format!("FRR over IPv6 ({v6})"),
                frr.get(&v6).copied().unwrap_or_default(),
            ),
            (
                format!("gobgpd on :{ALT_BGP_PORT} ({v4})"),
                alt.get(&v4).copied().unwrap_or_default(),
            ),
        ])
    }

    async fn stop(self) -> Result<()> {
        drop(self.alt);
        let _ = std::fs::remove_file(&self.alt_config);
        self.frr.stop().await
    }
}

async fn scale(
    count: usize,
    converge: bool,
    rss: bool,
    errors: &mut Vec<String>,
    rows: &mut Rows,
) -> Result<()> {
    let mut scenario = Scenario::new("bench-bgp-scale").await?;
    scenario.clear_bgp_statuses().await?;
    let testbed = scenario.testbed.clone();
    scenario.apply(&scale_config(&testbed)).await?;
    scenario.create_memberlist_secret().await?;
    scenario.start_controller()?;
    let result = scale_inner(&scenario, count, converge, rss, errors, rows).await;
    clean(&scenario).await;
    result
}

async fn scale_inner(
    scenario: &Scenario,
    count: usize,
    converge: bool,
    rss: bool,
    errors: &mut Vec<String>,
    rows: &mut Rows,
) -> Result<()> {
    if rss && let Err(err) = rss_idle(scenario, rows).await {
        errors.push(format!("rss (idle): {err:#}"));
    }
    let names: Vec<String> = (0..count).map(|i| format!("s-{i}")).collect();
    let started = Instant::now();
    create_all(scenario, &names, true, 48, 1000).await?;
    let created = started.elapsed();
    wait_all_assigned(scenario, count, Duration::from_secs(600)).await?;
    rows.push((
        format!("setup: {count} Services + EndpointSlices created (48 at a time), then all assigned an address by the controller"),
        format!(
            "created in {:.0} s, all assigned {:.0} s after the first create",
            created.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    ));
    if converge {
        for daemon in [Daemon::Gobgp, Daemon::Frr] {
            if let Err(err) = converge_with(scenario, daemon, count, rows).await {
                errors.push(format!("converge ({daemon}): {err:#}"));
            }
        }
    }
    if rss && let Err(err) = rss_full(scenario, count, rows).await {
        errors.push(format!("rss (with {count} prefixes): {err:#}"));
    }
    Ok(())
}

/// 1. One speaker on node-1, `count` Services: start → Established → the router holds them.
async fn converge_with(
    scenario: &Scenario,
    daemon: Daemon,
    count: usize,
    rows: &mut Rows,
) -> Result<()> {
    let testbed = &scenario.testbed;
    let node1 = node_ip4(testbed, "node-1")?;
    let router = Router::start(testbed, daemon, &node1_router(testbed, false)?).await?;
    let counter = match daemon {
        Daemon::Frr => Counter::frr(testbed)?,
        _ => Counter::gobgp(testbed)?,
    };
    let mut poll = Poll::new(counter);
    // The router is up and reads back before the speaker starts.
    poll.read(testbed).await?;
    poll.last = None;
    let t0 = Instant::now();
    let t0_us = now_us();
    let speaker = scenario.start_speaker("node-1", SCALE_PORTS, &[])?;
    // Poll completion times (since the speaker started): the last before the session was seen
    // Established and the first that saw it; the last before all prefixes were seen and the
    // first that saw them. Each event lies between its pair.
    let mut before_established = Duration::ZERO;
    let mut established = None;
    let mut held_at_established = 0;
    let mut before_full = Duration::ZERO;
    let mut full = None;
    let mut last = Held::default();
    let deadline = Duration::from_secs(180);
    while t0.elapsed() < deadline {
        let held = poll.read(testbed).await?;
        let at = t0.elapsed();
        last = held.get(&node1).copied().unwrap_or_default();
        if last.established && established.is_none() {
            established = Some(at);
            held_at_established = last.prefixes;
        }
        if !last.established {
            before_established = at;
        }
        if last.established && last.prefixes >= count as u64 {
            full = Some(at);
            break;
        }
        before_full = at;
        // A short pause: back-to-back CLI processes would take CPU from the speaker and the
        // router being measured.
        tokio::time::sleep(POLL_PAUSE).await;
    }
    let metrics = scenario
        .speaker_metrics("node-1", SCALE_PORTS)
        .await
        .unwrap_or_default();
    let peer_label = format!("{}:179", testbed.router.ip4);
    let updates = metric_with_labels(
        &metrics,
        "metallb_bgp_updates_total",
        &[("peer", &peer_label)],
    );
    let announced = metric_with_labels(
        &metrics,
        "metallb_bgp_announced_prefixes_total",
        &[("peer", &peer_label)],
    );
    let rss = speaker.pid().and_then(|pid| proc_status_kib(pid, "VmRSS:"));
    let log = speaker.log.clone();
    terminate(speaker).await;
    router.stop().await?;
    let settled = log_offset_ms(&log, "membership settled", t0_us);
    let opened = log_offset_ms(&log, "BGP session established", t0_us);
    let (Some(established), Some(full)) = (established, full) else {
        bail!(
            "{daemon}: after {deadline:?} the session is established: {} and holds {} of {count} prefixes (see {})",
            last.established,
            last.prefixes,
            log.display()
        );
    };
    let name = match daemon {
        Daemon::Frr => "FRR 8.4 (`show bgp ipv4 unicast summary json` pfxRcd)",
        Daemon::Gobgp => "GoBGP 3.10 (`gobgp neighbor -j` accepted)",
        Daemon::Bird => "BIRD",
    };
    let lower = before_full.saturating_sub(established);
    let upper = full - before_established;
    rows.push((
        format!("convergence, {count} /32s from one speaker (node-1) to {name}: speaker started → session Established"),
        format!(
            "{:.0} ms (seen between {:.0} and {:.0} ms; {}); by the speaker's log: membership settled at {} ms, session established at {} ms",
            ms(established),
            ms(before_established),
            ms(established),
            poll.resolution(),
            settled.map_or("?".into(), |v| format!("{v:.0}")),
            opened.map_or("?".into(), |v| format!("{v:.0}")),
        ),
    ));
    rows.push((
        format!("… Established → the router holds all {count} (target < 1 s)"),
        format!(
            "≤ {:.0} ms{} (≥ {:.0} ms; bounds from the polls around both events; {held_at_established} held at the first poll that saw Established); speaker start → all held {:.0} ms",
            ms(upper),
            if upper < Duration::from_secs(1) {
                " (met)"
            } else {
                " (missed)"
            },
            ms(lower),
            ms(full)
        ),
    ));
    rows.push((
        format!("… UPDATE messages the speaker sent to {daemon} (metallb_bgp_updates_total, End-of-RIB included); speaker RSS"),
        format!(
            "{} UPDATEs for {} prefixes announced; RSS {}",
            updates.map_or("?".into(), |u| format!("{u:.0}")),
            announced.map_or("?".into(), |a| format!("{a:.0}")),
            rss.map_or("?".into(), mib)
        ),
    ));
    Ok(())
}

/// 5a. The node-1 speaker with the three sessions up and no Service.
async fn rss_idle(scenario: &Scenario, rows: &mut Rows) -> Result<()> {
    let testbed = &scenario.testbed;
    let routers = ThreeRouters::start(testbed).await?;
    scenario.apply(&rss_peers(testbed)).await?;
    let speaker = scenario.start_speaker("node-1", SCALE_PORTS, &[])?;
    let result = async {
        let held = wait_until(
            "the three sessions of node-1 to be Established",
            Duration::from_secs(60),
            || async {
                let held = routers.held(testbed).await.map_err(|e| format!("{e:#}"))?;
                if held.iter().all(|(_, h)| h.established) {
                    Ok(held)
                } else {
                    Err(format!("{held:?}"))
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\nspeaker log:\n{}", speaker.log_tail()))?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = pid_of(&speaker)?;
        let rss = proc_status_kib(pid, "VmRSS:").unwrap_or_default();
        rows.push((
            "speaker RSS, idle: node-1, three sessions Established, no Service".into(),
            format!(
                "{} (sessions: {})",
                mib(rss),
                held.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        Ok::<_, anyhow::Error>(())
    }
    .await;
    terminate(speaker).await;
    scenario.delete("BGPPeer", "router-v6").await?;
    scenario.delete("BGPPeer", "router-alt").await?;
    routers.stop().await?;
    result
}

/// 5b. The node-1 speaker with the three sessions each holding every prefix.
async fn rss_full(scenario: &Scenario, count: usize, rows: &mut Rows) -> Result<()> {
    let testbed = &scenario.testbed;
    let routers = ThreeRouters::start(testbed).await?;
    scenario.apply(&rss_peers(testbed)).await?;
    let t0 = Instant::now();
    let speaker = scenario.start_speaker("node-1", SCALE_PORTS, &[])?;
    let result = async {
        let held = wait_until(
            &format!("the three sessions of node-1 to hold {count} prefixes each"),
            Duration::from_secs(300),
            || async {
                let held = routers.held(testbed).await.map_err(|e| format!("{e:#}"))?;
                if held
                    .iter()
                    .all(|(_, h)| h.established && h.prefixes >= count as u64)
                {
                    Ok(held)
                } else {
                    Err(format!("{held:?}"))
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\nspeaker log:\n{}", speaker.log_tail()))?;
        let all_held = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = pid_of(&speaker)?;
        let rss = proc_status_kib(pid, "VmRSS:").unwrap_or_default();
        let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or_default();
        rows.push((
            format!("speaker RSS: node-1, three sessions each holding the {count} prefixes"),
            format!(
                "{} ({:.1} MB), peak {}; {} (all held {:.1} s after the speaker started)",
                mib(rss),
                rss as f64 * 1024.0 / 1e6,
                mib(hwm),
                held.iter()
                    .map(|(n, h)| format!("{n}: {}", h.prefixes))
                    .collect::<Vec<_>>()
                    .join(", "),
                all_held.as_secs_f64()
            ),
        ));
        Ok::<_, anyhow::Error>(())
    }
    .await;
    terminate(speaker).await;
    scenario.delete("BGPPeer", "router-v6").await?;
    scenario.delete("BGPPeer", "router-alt").await?;
    routers.stop().await?;
    result
}

// ---- 2. latency and 3. churn: GoBGP, a speaker per node --------------------------------------

/// `gobgp monitor … -j` in the router namespace, each JSON line timestamped (Unix µs) as it
/// arrives: `global rib` prints best-path changes of the Loc-RIB (a prefix's first path, its
/// final withdrawal), `adj-in` every path received from a neighbour and every withdrawal.
struct Monitor {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<(i64, String)>,
    /// `(µs, prefix, neighbour, withdrawn)` of every path seen so far.
    seen: Vec<(i64, String, String, bool)>,
}

impl Monitor {
    fn start(testbed: &Testbed, stream: &[&str]) -> Result<Self> {
        let api = testbed.var("TESTBED_ROUTER_GOBGP_API")?;
        let (host, port) = api
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("GoBGP API {api} is not HOST:PORT"))?;
        let mut child = tokio::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &testbed.router.netns,
                "gobgp",
                "-u",
                host,
                "-p",
                port,
                "monitor",
            ])
            .args(stream)
            .arg("-j")
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting gobgp monitor")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send((now_us(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Paths in one monitor line: every object with `nlri.prefix` (or `prefix`) anywhere in it.
    fn paths(line: &str) -> Vec<(String, String, bool)> {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        fn walk(value: &Value, out: &mut Vec<(String, String, bool)>) {
            match value {
                Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                Value::Object(map) => {
                    let prefix = map
                        .get("nlri")
                        .and_then(|n| n["prefix"].as_str())
                        .map(str::to_string);
                    if let Some(prefix) = prefix {
                        let neighbor = map
                            .get("neighbor-ip")
                            .or(map.get("source-id"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let withdrawn = map
                            .get("withdrawal")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        out.push((prefix, neighbor, withdrawn));
                    } else {
                        map.values().for_each(|v| walk(v, out));
                    }
                }
                _ => {}
            }
        }
        walk(&value, &mut out);
        out
    }

    /// Takes every line that has arrived.
    fn drain(&mut self) {
        while let Ok((at, line)) = self.lines.try_recv() {
            for (prefix, neighbor, withdrawn) in Self::paths(&line) {
                self.seen.push((at, prefix, neighbor, withdrawn));
            }
        }
    }

    /// Reads lines until `done` holds for what was seen, or `timeout`.
    async fn until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[(i64, String, String, bool)]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.drain();
            if done(&self.seen) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((at, line))) => {
                    for (prefix, neighbor, withdrawn) in Self::paths(&line) {
                        self.seen.push((at, prefix, neighbor, withdrawn));
                    }
                }
                _ => return done(&self.seen),
            }
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The arrival times (Unix µs) of the lines about `prefix` at or after `t0` that announce it
/// (`withdrawn` false) or withdraw it, in order.
fn lines_about(
    seen: &[(i64, String, String, bool)],
    prefix: &str,
    t0: i64,
    withdrawn: bool,
) -> Vec<i64> {
    seen.iter()
        .filter(|(at, p, _, w)| *at >= t0 && p == prefix && *w == withdrawn)
        .map(|(at, _, _, _)| *at)
        .collect()
}

struct RouteLab {
    scenario: Scenario,
    speakers: BTreeMap<String, ManagedProcess>,
    router: Option<Router>,
}

fn route_config(testbed: &Testbed) -> String {
    pool("routes", &["198.19.64.0/21"])
        + &peer("router-v4", IpAddr::V4(testbed.router.ip4), ROUTER_ASN, "")
        + &advertisement("routes", "routes")
}

async fn start_route_lab() -> Result<RouteLab> {
    let mut scenario = Scenario::new("bench-bgp").await?;
    scenario.clear_bgp_statuses().await?;
    let testbed = scenario.testbed.clone();
    scenario.apply(&route_config(&testbed)).await?;
    scenario.start_controller()?;
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4);
    for address in node_ips4(&testbed) {
        config.neighbors.push(Neighbor::new(address, NODE_ASN));
    }
    let router = Router::start(&testbed, Daemon::Gobgp, &config).await?;
    let mut lab = RouteLab {
        scenario,
        speakers: BTreeMap::new(),
        router: Some(router),
    };
    lab.speakers = lab.scenario.start_speakers(ROUTE_PORTS, &[]).await?;
    let router = lab.router.as_ref().context("no router")?;
    for address in node_ips4(&testbed) {
        router
            .wait_established(address, Duration::from_secs(60))
            .await?;
    }
    Ok(lab)
}

async fn stop_route_lab(mut lab: RouteLab) {
    clean(&lab.scenario).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (_, speaker) in std::mem::take(&mut lab.speakers) {
        terminate(speaker).await;
    }
    let _ = lab.scenario.clear_bgp_statuses().await;
    if let Some(router) = lab.router.take()
        && let Err(err) = router.stop().await
    {
        eprintln!("bgp-bench: stopping GoBGP: {err:#}");
    }
}

/// The first time (Unix µs) a watched Service shows an address, and the address.
async fn watch_ingress(api: Api<Service>, name: String, version: String) -> Option<(i64, IpAddr)> {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(20);
    let stream = api.watch(&params, &version).await.ok()?;
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Ok(WatchEvent::Modified(service) | WatchEvent::Added(service)) = event
            && let Some(ip) = ingress_ips(&service).first().copied()
        {
            return Some((now_us(), ip));
        }
    }
    None
}

/// 2. A Service created → its /32 in GoBGP's RIB.
async fn latency(lab: &RouteLab, runs: usize, rows: &mut Rows) -> Result<()> {
    let testbed = &lab.scenario.testbed;
    let mut rib = Monitor::start(testbed, &["global", "rib"])?;
    let mut adj_in = Monitor::start(testbed, &["adj-in"])?;
    // gobgp monitor prints nothing until something changes: give it a moment to subscribe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let result = latency_runs(lab, runs, &mut rib, &mut adj_in, rows).await;
    rib.stop().await;
    adj_in.stop().await;
    result
}

async fn latency_runs(
    lab: &RouteLab,
    runs: usize,
    rib: &mut Monitor,
    adj_in: &mut Monitor,
    rows: &mut Rows,
) -> Result<()> {
    let nodes = lab.speakers.len();
    let mut ingress = Vec::new();
    let mut first = Vec::new();
    let mut all = Vec::new();
    for run in 0..runs {
        let name = format!("lat-{run}");
        slices(&lab.scenario)
            .create(&PostParams::default(), &slice_object(&lab.scenario, &name)?)
            .await?;
        rib.drain();
        adj_in.drain();
        rib.seen.clear();
        adj_in.seen.clear();
        let t0 = now_us();
        let created = lab
            .scenario
            .services()
            .create(
                &PostParams::default(),
                &service_object(&lab.scenario, &name)?,
            )
            .await?;
        let version = created.metadata.resource_version.unwrap_or_default();
        let watch = tokio::spawn(watch_ingress(
            lab.scenario.services(),
            name.clone(),
            version,
        ));
        let Some((ingress_at, ip)) = watch.await? else {
            bail!(
                "{name}: no address within 20 s\n{}",
                lab.scenario.log_tails()
            );
        };
        let prefix = format!("{ip}/32");
        let in_rib = rib
            .until(Duration::from_secs(10), |seen| {
                !lines_about(seen, &prefix, t0, false).is_empty()
            })
            .await;
        ensure!(
            in_rib,
            "{name} ({prefix}) not in GoBGP's RIB 10 s after the create"
        );
        let from_all = adj_in
            .until(Duration::from_secs(10), |seen| {
                lines_about(seen, &prefix, t0, false).len() >= nodes
            })
            .await;
        let received = lines_about(&adj_in.seen, &prefix, t0, false);
        ensure!(
            from_all,
            "{name} ({prefix}): GoBGP received {} paths 10 s after the create, not one from each of the {nodes} nodes",
            received.len()
        );
        let first_at = lines_about(&rib.seen, &prefix, t0, false)[0];
        let all_at = received[nodes - 1];
        let (i, f, a) = (
            (ingress_at - t0) as f64 / 1000.0,
            (first_at - t0) as f64 / 1000.0,
            (all_at - t0) as f64 / 1000.0,
        );
        eprintln!(
            "bgp-bench: latency run {run}: {prefix} ingress {i:.1} ms, in the RIB {f:.1} ms, received from all {nodes} nodes {a:.1} ms"
        );
        ingress.push(i);
        first.push(f);
        all.push(a);
        let t1 = now_us();
        lab.scenario
            .services()
            .delete(&name, &DeleteParams::default())
            .await?;
        slices(&lab.scenario)
            .delete(&format!("{name}-bench"), &DeleteParams::default())
            .await?;
        // Withdrawn by every node and gone from the RIB before the address is handed out again.
        let gone = adj_in
            .until(Duration::from_secs(10), |seen| {
                lines_about(seen, &prefix, t1, true).len() >= nodes
            })
            .await
            && rib
                .until(Duration::from_secs(10), |seen| {
                    !lines_about(seen, &prefix, t1, true).is_empty()
                })
                .await;
        ensure!(
            gone,
            "{prefix} not withdrawn by every node 10 s after deleting {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let f = sorted(&first);
    let a = sorted(&all);
    let i = sorted(&ingress);
    rows.push((
        format!("latency ({runs} runs): Service with a ready endpoint created → its /32 in GoBGP's RIB (target p50 < 100 ms)"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{} (GoBGP's event stream `gobgp monitor global rib -j`, each line timestamped as it arrived)",
            percentile(&f, 0.5),
            percentile(&f, 0.99),
            f.last().copied().unwrap_or(f64::NAN),
            if percentile(&f, 0.5) < 100.0 { " (met)" } else { " (missed)" }
        ),
    ));
    rows.push((
        "… of which: create → the controller's `status.loadBalancer.ingress` write seen (watch on the Service)".to_string(),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(&i, 0.5),
            percentile(&i, 0.99)
        ),
    ));
    rows.push((
        format!("… create → GoBGP received the path from every one of the {nodes} nodes' speakers (`gobgp monitor adj-in -j`)"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(&a, 0.5),
            percentile(&a, 0.99)
        ),
    ));
    Ok(())
}

/// 3. `count` Services created at once → all in GoBGP's RIB (from every node); deleted → gone.
async fn churn(lab: &RouteLab, count: usize, rows: &mut Rows) -> Result<()> {
    let testbed = &lab.scenario.testbed;
    let nodes = node_ips4(testbed);
    let mut poll = Poll::new(Counter::gobgp(testbed)?);
    let baseline = poll.read(testbed).await?;
    let base = |held: &BTreeMap<IpAddr, Held>, n: &IpAddr| {
        held.get(n).map_or(0, |h| h.prefixes) as i64
            - baseline.get(n).map_or(0, |h| h.prefixes) as i64
    };
    let names: Vec<String> = (0..count).map(|i| format!("churn-{i}")).collect();
    create_all(&lab.scenario, &names, false, 48, 0).await?;
    poll.last = None;
    let t0 = Instant::now();
    let creating = {
        let scenario = &lab.scenario;
        let names = &names;
        async move {
            futures::stream::iter(names.iter())
                .map(|name| async move {
                    scenario
                        .services()
                        .create(&PostParams::default(), &service_object(scenario, name)?)
                        .await
                        .with_context(|| format!("creating Service {name}"))?;
                    Ok::<_, anyhow::Error>(())
                })
                .buffer_unordered(64)
                .try_collect::<Vec<()>>()
                .await?;
            Ok::<_, anyhow::Error>(t0.elapsed())
        }
    };
    let watching = async {
        let deadline = Duration::from_secs(300);
        loop {
            let held = poll.read(testbed).await?;
            if nodes.iter().all(|n| base(&held, n) >= count as i64) {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(POLL_PAUSE).await;
            ensure!(
                t0.elapsed() < deadline,
                "after {deadline:?} GoBGP holds {:?} more than before, not {count} from each node",
                nodes.iter().map(|n| base(&held, n)).collect::<Vec<_>>()
            );
        }
    };
    let (created, all_in) = tokio::join!(creating, watching);
    let created = created?;
    let all_in: Duration = all_in?;
    let add_resolution = poll.resolution();
    poll.intervals.clear();
    poll.last = None;
    let t1 = Instant::now();
    let deleting = {
        let scenario = &lab.scenario;
        let names = &names;
        async move {
            futures::stream::iter(names.iter())
                .map(|name| async move {
                    scenario
                        .services()
                        .delete(name, &DeleteParams::default())
                        .await
                        .with_context(|| format!("deleting Service {name}"))?;
                    Ok::<_, anyhow::Error>(())
                })
                .buffer_unordered(64)
                .try_collect::<Vec<()>>()
                .await?;
            Ok::<_, anyhow::Error>(t1.elapsed())
        }
    };
    let watching = async {
        loop {
            let held = poll.read(testbed).await?;
            if nodes.iter().all(|n| base(&held, n) <= 0) {
                return Ok(t1.elapsed());
            }
            tokio::time::sleep(POLL_PAUSE).await;
            ensure!(
                t1.elapsed() < Duration::from_secs(300),
                "5 min after deleting, GoBGP still holds {:?} more than before",
                nodes.iter().map(|n| base(&held, n)).collect::<Vec<_>>()
            );
        }
    };
    let (deleted, all_out) = tokio::join!(deleting, watching);
    let deleted = deleted?;
    let all_out: Duration = all_out?;
    slices(&lab.scenario)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    rows.push((
        format!("churn: {count} Services created at once (64 creates in flight) → GoBGP holds all {count} from each of the {} nodes", nodes.len()),
        format!(
            "{:.0} ms after the first create; the creates took {:.0} ms, so {:+.0} ms from the last create's return ({add_resolution})",
            ms(all_in),
            ms(created),
            ms(all_in) - ms(created)
        ),
    ));
    rows.push((
        format!("churn: all {count} deleted at once (64 deletes in flight) → GoBGP holds none of them"),
        format!(
            "{:.0} ms after the first delete; the deletes took {:.0} ms, so {:+.0} ms from the last delete's return ({})",
            ms(all_out),
            ms(deleted),
            ms(all_out) - ms(deleted),
            poll.resolution()
        ),
    ));
    Ok(())
}

// ---- 4. node loss with BFD -------------------------------------------------------------------

fn bfd_config(testbed: &Testbed) -> String {
    pool("bfd", &["198.19.80.0/28"])
        + "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}\n---\n"
        + &peer(
            "router-v4",
            IpAddr::V4(testbed.router.ip4),
            ROUTER_ASN,
            "  bfdProfile: fast\n  holdTime: 90s\n",
        )
        + &advertisement("bfd", "bfd")
}

/// The peers (node addresses) FRR has a path to `prefix` from; `vtysh` run directly (Unix
/// sockets), the fastest way to ask.
async fn frr_paths(vty: &str, prefix: &str) -> Result<BTreeSet<IpAddr>> {
    let out = tokio::process::Command::new("vtysh")
        .args([
            "--vty_socket",
            vty,
            "-c",
            &format!("show bgp ipv4 unicast {prefix} json"),
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(value["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer"]["peerId"].as_str()?.parse().ok())
        .collect())
}

async fn frr_bfd_up(router: &Router, address: IpAddr) -> bool {
    router
        .bfd_peers()
        .await
        .is_ok_and(|peers| peers.iter().any(|p| p.peer == address && p.up()))
}

async fn bfd(runs: usize, rows: &mut Rows) -> Result<()> {
    let mut scenario = Scenario::new("bench-bgp-bfd").await?;
    scenario.clear_bgp_statuses().await?;
    let testbed = scenario.testbed.clone();
    scenario.apply(&bfd_config(&testbed)).await?;
    scenario.start_controller()?;
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4);
    config.ecmp = true;
    for address in node_ips4(&testbed) {
        config.neighbors.push(Neighbor {
            bfd: Some(BfdTimers {
                rx_ms: 100,
                tx_ms: 100,
                multiplier: 3,
            }),
            ..Neighbor::new(address, NODE_ASN)
        });
    }
    let router = Router::start(&testbed, Daemon::Frr, &config).await?;
    let mut speakers = scenario.start_speakers(BFD_PORTS, &[]).await?;
    let result = bfd_inner(&scenario, &router, &mut speakers, runs, rows).await;
    clean(&scenario).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (_, speaker) in speakers {
        terminate(speaker).await;
    }
    let _ = scenario.clear_bgp_statuses().await;
    router.stop().await?;
    result
}

async fn bfd_inner(
    scenario: &Scenario,
    router: &Router,
    speakers: &mut BTreeMap<String, ManagedProcess>,
    runs: usize,
    rows: &mut Rows,
) -> Result<()> {
    let testbed = &scenario.testbed;
    let vty = testbed.var("TESTBED_ROUTER_FRR_VTY")?.to_string();
    let all: BTreeSet<IpAddr> = node_ips4(testbed).into_iter().collect();
    let node1 = node_ip4(testbed, "node-1")?;
    let name = "bfd";
    slices(scenario)
        .create(&PostParams::default(), &slice_object(scenario, name)?)
        .await?;
    scenario
        .services()
        .create(&PostParams::default(), &service_object(scenario, name)?)
        .await?;
    let ip = scenario.wait_assigned(name).await?[0];
    let prefix = format!("{ip}/32");
    let mut times = Vec::new();
    let mut intervals = Vec::new();
    let mut timers = String::new();
    let mut unsteady = Vec::new();
    for run in 0..runs {
        // Every node's session, BFD session and path are up before the run.
        wait_until(
            &format!("run {run}: FRR has {prefix} from every node and BFD up with node-1"),
            Duration::from_secs(60),
            || async {
                let paths = frr_paths(&vty, &prefix)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                if paths != all {
                    return Err(format!("paths from {paths:?}"));
                }
                if !frr_bfd_up(router, node1).await {
                    return Err("BFD with node-1 not up".into());
                }
                Ok(())
            },
        )
        .await?;
        // BFD starts at 1 s intervals and moves to the profile's 100 ms by a Poll sequence
        // once Up (RFC 5880 6.8.3): the run measures the steady state.
        let steady = wait_until(
            &format!("run {run}: node-1's BFD session at 100 ms both ways"),
            Duration::from_secs(15),
            || async {
                let peers = router.bfd_peers().await.map_err(|e| format!("{e:#}"))?;
                let peer = peers
                    .into_iter()
                    .find(|p| p.peer == node1)
                    .ok_or("no BFD session with node-1")?;
                if peer.up()
                    && peer.remote_transmit_interval_ms == Some(100)
                    && peer.remote_receive_interval_ms == Some(100)
                {
                    Ok(())
                } else {
                    Err(format!("{peer:?}"))
                }
            },
        )
        .await;
        let snapshot = router
            .bfd_peers()
            .await?
            .into_iter()
            .find(|p| p.peer == node1)
            .map(|p| {
                format!(
                    "FRR bfdd with node-1 at T0: local rx {} ms, tx {} ms, × {}; remote (the speaker) rx {:?} ms, tx {:?} ms, × {:?}",
                    p.receive_interval_ms,
                    p.transmit_interval_ms,
                    p.detect_multiplier,
                    p.remote_receive_interval_ms,
                    p.remote_transmit_interval_ms,
                    p.remote_detect_multiplier
                )
            })
            .unwrap_or_default();
        if let Err(err) = steady {
            eprintln!("bgp-bench: bfd run {run}: {err:#}");
            unsteady.push(format!("run {run}: {snapshot}"));
        }
        if timers.is_empty() {
            timers = snapshot;
        }
        wait_alone("taking node-1's link down").await?;
        let mut link = LinkDown::prepare(testbed, "node-1")?;
        let mut speaker = speakers.remove("node-1").context("no speaker on node-1")?;
        // The link first: a speaker killed on a live link has its TCP connection closed by the
        // kernel (FIN), and FRR would drop the session for that, not for BFD.
        let t0 = Instant::now();
        link.take_down()?;
        speaker.kill()?;
        let mut last = t0;
        let mut gone = None;
        while t0.elapsed() < Duration::from_secs(10) {
            let paths = frr_paths(&vty, &prefix).await?;
            let now = Instant::now();
            intervals.push(ms(now - last));
            last = now;
            if !paths.contains(&node1) {
                gone = Some(now - t0);
                break;
            }
        }
        tokio::task::spawn_blocking(move || link.restore()).await??;
        let process = scenario.start_speaker("node-1", BFD_PORTS, &[])?;
        scenario
            .wait_speaker_ready("node-1", BFD_PORTS, &process)
            .await?;
        speakers.insert("node-1".into(), process);
        let Some(gone) = gone else {
            bail!(
                "run {run}: FRR still has node-1's path to {prefix} 10 s after its link went down (BFD did not take it away; hold time 90 s)"
            );
        };
        eprintln!(
            "bgp-bench: bfd run {run}: node-1's path gone after {:.0} ms",
            ms(gone)
        );
        times.push(ms(gone));
    }
    rows.push((
        format!("node loss with BFD 100 ms × 3, hold time 90 s ({runs} runs): node-1's eth0 down, then its speaker SIGKILLed (link first, so no FIN reaches FRR) → FRR's RIB has no path from node-1 (target < 500 ms)"),
        format!(
            "median {:.0} ms, worst {:.0} ms{} (runs: {}); `show bgp ipv4 unicast PREFIX json` polled every {:.0} ms (median; worst {:.0} ms); {timers}",
            median(&times),
            worst(&times),
            if worst(&times) < 500.0 { " (met)" } else { " (missed)" },
            list_ms(&times),
            median(&intervals),
            worst(&intervals)
        ),
    ));
    if !unsteady.is_empty() {
        rows.push((
            "… runs whose BFD session had not reached 100 ms both ways 15 s after coming up".into(),
            unsteady.join("; "),
        ));
    }
    Ok(())
}

// ---- orchestration -----------------------------------------------------------------------------

async fn orchestrate() -> Result<()> {
    let runs = env_usize("BENCH_RUNS", 20);
    let bfd_runs = env_usize("BENCH_BFD_RUNS", 10);
    let services = env_usize("BENCH_SERVICES", 10_000);
    let churn_count = env_usize("BENCH_CHURN", 1000);
    let phases: Vec<String> = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "converge,latency,churn,bfd,rss".into())
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    let has = |p: &str| phases.iter().any(|x| x == p);
    let mut rows: Rows = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    // The machine is shared: the 1-minute load average when each part starts, for reading
    // the numbers.
    clean_earlier_scale_run().await?;
    let mut load = vec![format!("start {}", load_average())];
    if has("latency") || has("churn") {
        match start_route_lab().await {
            Ok(lab) => {
                if has("latency")
                    && let Err(err) = latency(&lab, runs, &mut rows).await
                {
                    errors.push(format!("latency: {err:#}"));
                }
                if has("churn")
                    && let Err(err) = churn(&lab, churn_count, &mut rows).await
                {
                    errors.push(format!("churn: {err:#}"));
                }
                stop_route_lab(lab).await;
            }
            Err(err) => errors.push(format!("latency/churn: {err:#}")),
        }
    }
    load.push(format!("bfd {}", load_average()));
    if has("bfd")
        && let Err(err) = bfd(bfd_runs, &mut rows).await
    {
        errors.push(format!("bfd: {err:#}"));
    }
    // The 10,000-Service phases last: cleaning up after them loads the apiserver (and every
    // watcher) for minutes.
    load.push(format!("converge/rss {}", load_average()));
    if (has("converge") || has("rss"))
        && let Err(err) = scale(
            services,
            has("converge"),
            has("rss"),
            &mut errors,
            &mut rows,
        )
        .await
    {
        errors.push(format!("converge/rss: {err:#}"));
    }
    load.push(format!("end {}", load_average()));
    rows.push((
        format!(
            "machine: {} CPUs shared with other work; 1-minute load average when each part started",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        load.join(", "),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(7);
    let mut table = format!(
        "| {:width$} | ferrolb |\n|{}|---|\n",
        "measure",
        "-".repeat(width + 2)
    );
    for (k, v) in &rows {
        table.push_str(&format!("| {k:width$} | {v} |\n"));
    }
    print!("{table}");
    for e in &errors {
        println!("\nnot measured: {e}");
    }
    std::io::stdout().flush()?;
    ensure!(errors.is_empty(), "{} phase(s) failed", errors.len());
    Ok(())
}

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(orchestrate())
}
