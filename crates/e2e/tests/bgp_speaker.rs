//! The speaker in BGP mode against real routers: a controller and one `ferrolb speaker` per
//! node peer with FRR, BIRD 2 or GoBGP in the `router` namespace, and the client, on a subnet
//! behind the router, reaches Service addresses only through the routes the speakers
//! advertised (FRR installs them, ECMP over the nodes, and kube-proxy on each node forwards to
//! the backends).
//!
//! Every test peers from the same node addresses with the one router (port 179 of the `router`
//! namespace), so the tests of this file run one at a time (`ROUTER`). Each has its own
//! scenario, metrics and membership ports, and address range in 203.0.113.0/25 /
//! 2001:db8:203::/64 (the routed pools of DESIGN.md).
//!
//! Needs `target/debug/ferrolb` and `target/debug/bgp-bad-peer` (`cargo build -p ferrolb -p
//! ferrolb-e2e --bins`; scripts/test does it) and the testbed.

#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ferrolb_e2e::{BgpStatus, Scenario, SpeakerPorts, metric_with_labels};
use ferrolb_testbed::routers::{
    BfdTimers, Daemon, Families, Neighbor, RibRoute, Router, RouterConfig,
};
use ferrolb_testbed::{Family, LinkDown, ManagedProcess, Pod, ServiceSpec, Testbed, wait_until};

/// One router, one set of node addresses: one test at a time.
static ROUTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODE_ASN: u32 = 64512;
const ROUTER_ASN: u32 = 64501;
/// How long a session may take to come up: the speakers retry every second or two.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a route change may take to show in a daemon's RIB (BIRD and GoBGP are read by
/// polling their CLIs).
const RIB_TIMEOUT: Duration = Duration::from_secs(15);

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

/// A v1beta2 BGPPeer towards the router; `extra` are more lines of `spec` (two-space indent).
fn peer(name: &str, address: IpAddr, peer_asn: u32, extra: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n  myASN: {NODE_ASN}\n  peerASN: {peer_asn}\n  peerAddress: \"{address}\"\n  connectTime: 2s\n{extra}---\n"
    )
}

fn advertisement(name: &str, pool: &str, extra: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}}}\nspec:\n  ipAddressPools: [{pool}]\n{extra}---\n"
    )
}

/// A scenario with its speakers, router, pods, and the logs to show when it fails.
struct Lab {
    scenario: Scenario,
    ports: SpeakerPorts,
    speakers: BTreeMap<String, ManagedProcess>,
    old_logs: Vec<std::path::PathBuf>,
    router: Option<Router>,
    pods: Vec<Pod>,
    passed: bool,
    _router_lock: tokio::sync::MutexGuard<'static, ()>,
}

impl Lab {
    /// Scenario `name` with `config`, the router running `daemon` with `router`, a controller,
    /// and a speaker on every node, all ready.
    async fn start(
        name: &str,
        index: u16,
        config: &str,
        daemon: Daemon,
        router: &RouterConfig,
    ) -> Result<Self> {
        Self::start_with_password(name, index, config, None, daemon, router).await
    }

    /// As `start`, with Secret `router-password` holding `password` for the BGPPeers.
    async fn start_with_password(
        name: &str,
        index: u16,
        config: &str,
        password: Option<&str>,
        daemon: Daemon,
        router: &RouterConfig,
    ) -> Result<Self> {
        let lock = ROUTER.lock().await;
        let mut scenario = Scenario::new(name).await?;
        if let Some(password) = password {
            scenario
                .create_password_secret("router-password", password)
                .await?;
        }
        scenario.apply(config).await?;
        scenario.start_controller()?;
        let router = Router::start(&scenario.testbed, daemon, router).await?;
        let ports = SpeakerPorts::for_test(20 + index);
        let mut lab = Self {
            scenario,
            ports,
            speakers: BTreeMap::new(),
            old_logs: Vec::new(),
            router: Some(router),
            pods: Vec::new(),
            passed: false,
            _router_lock: lock,
        };
        lab.speakers = lab.scenario.start_speakers(ports, &[]).await?;
        Ok(lab)
    }

    fn testbed(&self) -> &Testbed {
        &self.scenario.testbed
    }

    fn router(&self) -> Result<&Router> {
        self.router.as_ref().context("the router was stopped")
    }

    async fn stop_router(&mut self) -> Result<()> {
        match self.router.take() {
            Some(router) => router.stop().await,
            None => Ok(()),
        }
    }

    async fn pass(mut self) -> Result<()> {
        self.stop_router().await?;
        self.passed = true;
        Ok(())
    }

    /// The node addresses of `family`, by node name.
    fn node_addresses(&self, family: Family) -> BTreeMap<String, IpAddr> {
        self.testbed()
            .nodes
            .iter()
            .map(|n| {
                let ip = match family {
                    Family::V4 => IpAddr::V4(n.host.ip4),
                    Family::V6 => IpAddr::V6(n.host.ip6),
                };
                (n.name.clone(), ip)
            })
            .collect()
    }

    async fn wait_sessions(&self, addresses: impl IntoIterator<Item = IpAddr>) -> Result<()> {
        for address in addresses {
            self.router()?
                .wait_established(address, SESSION_TIMEOUT)
                .await
                .map_err(|e| e.context(self.log_tails()))?;
        }
        Ok(())
    }

    async fn add_pod(&mut self, suffix: &str, node: &str) -> Result<usize> {
        let name = format!(
            "{}-{suffix}",
            self.scenario.namespace.trim_start_matches("svc-")
        );
        let pod = self.scenario.add_backend(&name, node).await?;
        self.pods.push(pod);
        Ok(self.pods.len() - 1)
    }

    async fn publish(&self, spec: &ServiceSpec, pods: &[usize]) -> Result<()> {
        let pods: Vec<&Pod> = pods.iter().map(|i| &self.pods[*i]).collect();
        self.testbed()
            .publish_endpoints(&self.scenario.kube, spec, &pods)
            .await
    }

    /// Waits until the router's paths for `prefix` come from exactly `from` (neighbour
    /// addresses), each with the neighbour itself as next hop; returns them.
    async fn wait_paths(
        &self,
        prefix: ipnet::IpNet,
        from: &BTreeSet<IpAddr>,
    ) -> Result<Vec<RibRoute>> {
        let routes = self
            .router()?
            .wait_rib(
                &format!("{prefix} from exactly {from:?}"),
                RIB_TIMEOUT,
                |routes| {
                    let paths: BTreeSet<IpAddr> = routes
                        .iter()
                        .filter(|r| r.prefix == prefix)
                        .map(|r| r.peer)
                        .collect();
                    &paths == from
                },
            )
            .await
            .map_err(|e| e.context(self.log_tails()))?;
        let paths: Vec<RibRoute> = routes.into_iter().filter(|r| r.prefix == prefix).collect();
        for path in &paths {
            ensure!(
                path.next_hop == path.peer,
                "{prefix} from {} has next hop {}, not the node's address",
                path.peer,
                path.next_hop
            );
        }
        Ok(paths)
    }

    async fn wait_bgp_statuses(
        &self,
        service: &str,
        what: &str,
        check: impl Fn(&[BgpStatus]) -> bool,
    ) -> Result<Vec<BgpStatus>> {
        wait_until(
            &format!("the ServiceBGPStatus objects of {service}: {what}"),
            Duration::from_secs(10),
            || async {
                let statuses = self
                    .scenario
                    .bgp_statuses(service)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                if check(&statuses) {
                    Ok(statuses)
                } else {
                    Err(format!("{statuses:?}"))
                }
            },
        )
        .await
    }

    /// GETs `url` from the client until `pods` all answered (load spreads over the nodes and
    /// the backends), up to 40 tries.
    async fn reach_pods(&self, url: &str, pods: &[usize]) -> Result<()> {
        let wanted: BTreeSet<String> = pods.iter().map(|i| self.pods[*i].name.clone()).collect();
        let mut seen = BTreeSet::new();
        let mut errors = Vec::new();
        for _ in 0..40 {
            let out = self
                .testbed()
                .exec(
                    &self.testbed().client.netns,
                    &["curl", "-sS", "--max-time", "2", "--globoff", url],
                )
                .await?;
            match out.stdout.strip_prefix("pod=") {
                Some(rest) if out.success => {
                    seen.insert(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                _ => errors.push(out.stderr.trim().to_string()),
            }
            if wanted.is_subset(&seen) {
                return Ok(());
            }
        }
        anyhow::bail!(
            "from the client, {url} reached {seen:?}, not all of {wanted:?}; errors: {errors:?}\n{}",
            self.log_tails()
        )
    }

    async fn metrics(&self, node: &str) -> Result<String> {
        self.scenario.speaker_metrics(node, self.ports).await
    }

    fn log_tails(&self) -> String {
        ferrolb_e2e::speaker_log_tails(&self.scenario, &self.speakers, &self.old_logs)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.passed {
            eprintln!(
                "---- {} failed; speaker and controller logs ----\n{}",
                self.scenario.namespace,
                self.log_tails()
            );
        }
    }
}

fn host_prefix(ip: IpAddr) -> ipnet::IpNet {
    ipnet::IpNet::from(ip)
}

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
    }
}

fn router_config(
    testbed: &Testbed,
    asn: u32,
    neighbor: impl Fn(IpAddr) -> Neighbor,
) -> RouterConfig {
    let mut config = RouterConfig::new(asn, testbed.router.ip4);
    config.ecmp = true;
    for node in &testbed.nodes {
        config.neighbors.push(neighbor(IpAddr::V4(node.host.ip4)));
        config.neighbors.push(neighbor(IpAddr::V6(node.host.ip6)));
    }
    config
}

/// A router with ECMP peering with every node over IPv4 only, each neighbour as `neighbor`
/// makes it from the node's address.
fn router_config_v4(testbed: &Testbed, neighbor: impl Fn(IpAddr) -> Neighbor) -> RouterConfig {
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4);
    config.ecmp = true;
    for node in &testbed.nodes {
        config.neighbors.push(neighbor(IpAddr::V4(node.host.ip4)));
    }
    config
}

// ---- 1. FRR, eBGP, dual-stack, ECMP, through kube-proxy --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_learns_every_node_and_the_client_reaches_the_backends_over_ecmp() -> Result<()> {
    let testbed = Testbed::get();
    let config = pool(
        "routed",
        &[
            "203.0.113.10-203.0.113.19",
            "2001:db8:203::10-2001:db8:203::19",
        ],
    ) + &peer("router-v4", IpAddr::V4(testbed.router.ip4), ROUTER_ASN, "")
        + &peer("router-v6", IpAddr::V6(testbed.router.ip6), ROUTER_ASN, "")
        + &advertisement(
            "routed",
            "routed",
            "  communities: [\"64512:100\", \"large:64512:1:2\"]\n",
        );
    let router = router_config(&testbed, ROUTER_ASN, |a| Neighbor::new(a, NODE_ASN));
    let mut lab = Lab::start("bgp-frr-ecmp", 1, &config, Daemon::Frr, &router).await?;
    let v4 = lab.node_addresses(Family::V4);
    let v6 = lab.node_addresses(Family::V6);
    lab.wait_sessions(v4.values().chain(v6.values()).copied())
        .await?;

    let a = lab.add_pod("a", "node-1").await?;
    let b = lab.add_pod("b", "node-2").await?;
    let spec = lab.scenario.service("web", &[Family::V4, Family::V6]);
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[a, b]).await?;
    let ips = lab.scenario.wait_assigned("web").await?;
    ensure!(ips.len() == 2, "web got {ips:?}");

    for ip in &ips {
        let from: BTreeSet<IpAddr> = if ip.is_ipv4() { &v4 } else { &v6 }
            .values()
            .copied()
            .collect();
        let paths = lab.wait_paths(host_prefix(*ip), &from).await?;
        for path in &paths {
            ensure!(path.as_path == [NODE_ASN], "eBGP AS_PATH: {path:?}");
            ensure!(
                path.communities.contains("64512:100"),
                "standard community missing: {path:?}"
            );
            ensure!(
                path.large_communities.contains("64512:1:2"),
                "large community missing: {path:?}"
            );
        }
        let hops: BTreeSet<IpAddr> = wait_until(
            &format!("FRR to install {ip} into the router's kernel over all three nodes"),
            RIB_TIMEOUT,
            || async {
                let hops: BTreeSet<IpAddr> = lab
                    .router()
                    .map_err(|e| e.to_string())?
                    .kernel_routes(host_prefix(*ip))
                    .await
                    .map_err(|e| format!("{e:#}"))?
                    .into_iter()
                    .collect();
                if hops == from {
                    Ok(hops)
                } else {
                    Err(format!("{hops:?}"))
                }
            },
        )
        .await?;
        ensure!(hops.len() == 3);
        lab.reach_pods(&url(*ip, spec.port), &[a, b]).await?;
    }

    let statuses = lab
        .wait_bgp_statuses("web", "one per node, naming both peers", |s| {
            s.len() == 3
                && s.iter().all(|s| {
                    s.node == s.node_label
                        && s.peers == ["router-v4".to_string(), "router-v6".to_string()]
                })
        })
        .await?;
    ensure!(
        statuses
            .iter()
            .filter_map(|s| s.node.clone())
            .collect::<BTreeSet<_>>()
            == v4.keys().cloned().collect(),
        "{statuses:?}"
    );
    let metrics = lab.metrics("node-1").await?;
    let peer4 = format!("{}:179", testbed.router.ip4);
    ensure!(
        metric_with_labels(&metrics, "metallb_bgp_session_up", &[("peer", &peer4)]) == Some(1.0),
        "session_up for {peer4}:\n{metrics}"
    );
    ensure!(
        metric_with_labels(
            &metrics,
            "metallb_bgp_announced_prefixes_total",
            &[("peer", &peer4)]
        ) == Some(1.0),
        "announced prefixes for {peer4}:\n{metrics}"
    );
    ensure!(
        metric_with_labels(
            &metrics,
            "metallb_speaker_announced",
            &[("protocol", "bgp"), ("ip", &ips[0].to_string())]
        ) == Some(1.0),
        "metallb_speaker_announced:\n{metrics}"
    );
    lab.scenario
        .wait_event("web", "nodeAssigned", "with protocol \"bgp\"")
        .await?;

    // Deleting the Service withdraws it everywhere.
    lab.scenario
        .services()
        .delete("web", &Default::default())
        .await?;
    for ip in &ips {
        lab.wait_paths(host_prefix(*ip), &BTreeSet::new()).await?;
    }
    lab.wait_bgp_statuses("web", "none left", <[BgpStatus]>::is_empty)
        .await?;
    lab.pass().await
}

// ---- 2. externalTrafficPolicy: Local ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_policy_advertises_only_from_nodes_with_an_endpoint() -> Result<()> {
    let testbed = Testbed::get();
    let config = pool("routed", &["203.0.113.20-203.0.113.29"])
        + &peer("router-v4", IpAddr::V4(testbed.router.ip4), ROUTER_ASN, "")
        + &advertisement("routed", "routed", "");
    let router = router_config_v4(&testbed, |a| Neighbor::new(a, NODE_ASN));
    let mut lab = Lab::start("bgp-local", 2, &config, Daemon::Frr, &router).await?;
    let v4 = lab.node_addresses(Family::V4);
    lab.wait_sessions(v4.values().copied()).await?;

    let on2 = lab.add_pod("a", "node-2").await?;
    let on3 = lab.add_pod("b", "node-3").await?;
    let mut spec = lab.scenario.service("local", &[Family::V4]);
    spec.external_traffic_policy = "Local".into();
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[on2]).await?;
    let ip = lab.scenario.wait_assigned("local").await?[0];
    let prefix = host_prefix(ip);
    lab.wait_paths(prefix, &BTreeSet::from([v4["node-2"]]))
        .await?;
    lab.reach_pods(&url(ip, spec.port), &[on2]).await?;

    lab.publish(&spec, &[on3]).await?;
    lab.wait_paths(prefix, &BTreeSet::from([v4["node-3"]]))
        .await?;
    lab.reach_pods(&url(ip, spec.port), &[on3]).await?;

    lab.publish(&spec, &[]).await?;
    lab.wait_paths(prefix, &BTreeSet::new()).await?;
    lab.wait_bgp_statuses("local", "none left", <[BgpStatus]>::is_empty)
        .await?;
    lab.pass().await
}

// ---- 3. every daemon: eBGP without a password; iBGP with MD5, LOCAL_PREF, communities ---------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_bird_and_gobgp_take_routes_over_ebgp_and_over_ibgp_with_md5() -> Result<()> {
    let testbed = Testbed::get();
    let password = "e2e-md5-secret";
    let daemons = [Daemon::Frr, Daemon::Bird, Daemon::Gobgp];
    for (index, (daemon, ibgp)) in daemons
        .iter()
        .flat_map(|d| [(*d, false), (*d, true)])
        .enumerate()
    {
        let router_asn = if ibgp { NODE_ASN } else { ROUTER_ASN };
        let peer_extra = if ibgp {
            "  passwordSecret: {name: router-password}\n"
        } else {
            ""
        };
        let config = pool(
            "routed",
            &[
                "203.0.113.30-203.0.113.39",
                "2001:db8:203::30-2001:db8:203::39",
            ],
        ) + &peer(
            "router-v4",
            IpAddr::V4(testbed.router.ip4),
            router_asn,
            peer_extra,
        ) + &peer(
            "router-v6",
            IpAddr::V6(testbed.router.ip6),
            router_asn,
            peer_extra,
        ) + "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: aliases}\nspec:\n  communities:\n  - {name: edge, value: \"64512:300\"}\n---\n"
            + &advertisement(
                "routed",
                "routed",
                "  localPref: 150\n  communities: [edge, \"large:64512:7:8\"]\n",
            );
        let router = router_config(&testbed, router_asn, |address| Neighbor {
            password: ibgp.then(|| password.to_string()),
            ..Neighbor::new(address, NODE_ASN)
        });
        let name = format!(
            "bgp-{}-{}",
            if ibgp { "ibgp" } else { "ebgp" },
            daemon.name()
        );
        let mut lab = Lab::start_with_password(
            &name,
            3 + index as u16,
            &config,
            ibgp.then_some(password),
            daemon,
            &router,
        )
        .await?;
        let v4 = lab.node_addresses(Family::V4);
        let v6 = lab.node_addresses(Family::V6);
        lab.wait_sessions(v4.values().chain(v6.values()).copied())
            .await?;
        let a = lab.add_pod("a", "node-1").await?;
        let spec = lab.scenario.service("web", &[Family::V4, Family::V6]);
        lab.scenario.create(&spec).await?;
        lab.publish(&spec, &[a]).await?;
        let ips = lab.scenario.wait_assigned("web").await?;
        for ip in &ips {
            let from: BTreeSet<IpAddr> = if ip.is_ipv4() { &v4 } else { &v6 }
                .values()
                .copied()
                .collect();
            let paths = lab.wait_paths(host_prefix(*ip), &from).await?;
            for path in &paths {
                if ibgp {
                    ensure!(
                        path.local_pref == Some(150),
                        "{daemon:?}: LOCAL_PREF {path:?}"
                    );
                    ensure!(path.as_path.is_empty(), "{daemon:?}: iBGP AS_PATH {path:?}");
                } else {
                    // LOCAL_PREF is not sent to eBGP peers; what a daemon shows then is its
                    // own default (100), or nothing.
                    ensure!(
                        path.local_pref.is_none_or(|p| p == 100),
                        "{daemon:?}: LOCAL_PREF reached an eBGP peer: {path:?}"
                    );
                    ensure!(
                        path.as_path == [NODE_ASN],
                        "{daemon:?}: eBGP AS_PATH {path:?}"
                    );
                }
                ensure!(
                    path.communities.contains("64512:300")
                        && path.large_communities.contains("64512:7:8"),
                    "{daemon:?}: communities {path:?}"
                );
            }
        }
        lab.pass().await?;
    }
    Ok(())
}

// ---- 7. session options: dynamic ASN, router ID, source address, multihop, aggregation ------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_options_and_aggregation_reach_the_router() -> Result<()> {
    let testbed = Testbed::get();
    let node1 = testbed.node("node-1")?.host.ip4;
    let config = pool("routed", &["203.0.113.64/28", "2001:db8:203::40/124"])
        + &peer(
            "router-v4",
            IpAddr::V4(testbed.router.ip4),
            ROUTER_ASN,
            &format!(
                "  dynamicASN: external\n  routerID: 192.0.2.77\n  sourceAddress: \"{node1}\"\n  ebgpMultiHop: true\n  holdTime: 30s\n  dualStackAddressFamily: true\n  nodeSelectors:\n  - matchLabels: {{kubernetes.io/hostname: node-1}}\n"
            ),
        )
        .replace(&format!("  peerASN: {ROUTER_ASN}\n"), "")
        + &advertisement(
            "routed",
            "routed",
            "  aggregationLength: 28\n  aggregationLengthV6: 124\n",
        );
    // IPv6 routes ride the IPv4 session (dualStackAddressFamily).
    let router = router_config_v4(&testbed, |a| Neighbor {
        families: Families::BOTH,
        ..Neighbor::new(a, NODE_ASN)
    });
    let mut lab = Lab::start("bgp-options", 10, &config, Daemon::Frr, &router).await?;
    lab.wait_sessions([IpAddr::V4(node1)]).await?;
    // Only the selected node peers, so only it has an entry in the BGPPeer's status.
    lab.scenario
        .wait_peer_status(
            "router-v4",
            "node-1 alone, Established",
            SESSION_TIMEOUT,
            |entries| {
                matches!(entries, [only] if only.node == "node-1" && only.session == "Established")
            },
        )
        .await?;
    let neighbors: serde_json::Value = serde_json::from_str(
        &lab.router()?
            .cli(&format!("show bgp neighbors {node1} json"))
            .await?,
    )?;
    let neighbor = &neighbors[node1.to_string()];
    ensure!(
        neighbor["remoteRouterId"] == "192.0.2.77",
        "FRR sees router ID {} (want 192.0.2.77): {neighbor}",
        neighbor["remoteRouterId"]
    );
    ensure!(
        neighbor["bgpTimerHoldTimeMsecs"] == 30_000,
        "negotiated hold time: {}",
        neighbor["bgpTimerHoldTimeMsecs"]
    );
    // Only node-1 is selected by the peer's nodeSelectors: the others never connect.
    let sessions = lab.router()?.sessions().await?;
    for node in ["node-2", "node-3"] {
        let address = IpAddr::V4(testbed.node(node)?.host.ip4);
        ensure!(
            !sessions.get(&address).is_some_and(|s| s.established),
            "{node} peered although the BGPPeer does not select it: {sessions:?}"
        );
    }
    let a = lab.add_pod("a", "node-2").await?;
    let spec = lab.scenario.service("web", &[Family::V4, Family::V6]);
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[a]).await?;
    let ips = lab.scenario.wait_assigned("web").await?;
    let ip4 = *ips.iter().find(|ip| ip.is_ipv4()).context("no IPv4")?;
    let ip6 = *ips.iter().find(|ip| ip.is_ipv6()).context("no IPv6")?;
    let aggregate: ipnet::IpNet = "203.0.113.64/28".parse()?;
    ensure!(aggregate.contains(&ip4), "{ip4} is outside {aggregate}");
    lab.wait_paths(aggregate, &BTreeSet::from([IpAddr::V4(node1)]))
        .await?;
    lab.reach_pods(&url(ip4, spec.port), &[a]).await?;
    // The IPv6 aggregate came over the IPv4 session, with node-1's IPv6 address as next hop.
    let aggregate6: ipnet::IpNet = "2001:db8:203::40/124".parse()?;
    ensure!(aggregate6.contains(&ip6), "{ip6} is outside {aggregate6}");
    let node1_v6 = IpAddr::V6(testbed.node("node-1")?.host.ip6);
    let routes = lab
        .router()?
        .wait_rib(
            &format!("{aggregate6} over the IPv4 session, next hop {node1_v6}"),
            RIB_TIMEOUT,
            |routes| {
                routes.iter().any(|r| {
                    r.prefix == aggregate6 && r.peer == IpAddr::V4(node1) && r.next_hop == node1_v6
                })
            },
        )
        .await?;
    ensure!(
        routes.iter().filter(|r| r.prefix == aggregate6).count() == 1,
        "{routes:?}"
    );
    lab.reach_pods(&url(ip6, spec.port), &[a]).await?;
    lab.pass().await
}

// ---- 4. a misbehaving peer --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_a_malformed_update_gets_a_notification_and_others_keep_their_routes()
-> Result<()> {
    let testbed = Testbed::get();
    let router_ip = IpAddr::V4(testbed.router.ip4);
    let config = pool("routed", &["203.0.113.40-203.0.113.49"])
        + &peer("router", router_ip, ROUTER_ASN, "")
        + &peer("bad", router_ip, 64666, "  peerPort: 1790\n")
        + &advertisement("routed", "routed", "");
    let router = router_config_v4(&testbed, |a| Neighbor::new(a, NODE_ASN));
    let bad_peer_bin = testbed.repo().join("target/debug/bgp-bad-peer");
    ensure!(
        bad_peer_bin.exists(),
        "{} is missing: cargo build -p ferrolb-e2e --bins",
        bad_peer_bin.display()
    );
    let mut lab = Lab::start("bgp-bad-peer", 7, &config, Daemon::Frr, &router).await?;
    let bad = testbed.start_process(
        "bgp-bad-peer",
        std::path::Path::new("ip"),
        &[
            "netns",
            "exec",
            &testbed.router.netns,
            &bad_peer_bin.to_string_lossy(),
            &format!("{router_ip}:1790"),
            "64666",
            "192.0.2.250",
        ],
    )?;
    let v4 = lab.node_addresses(Family::V4);
    lab.wait_sessions(v4.values().copied()).await?;
    let a = lab.add_pod("a", "node-1").await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[a]).await?;
    let ip = lab.scenario.wait_assigned("web").await?[0];
    let all: BTreeSet<IpAddr> = v4.values().copied().collect();
    lab.wait_paths(host_prefix(ip), &all).await?;

    // Every speaker answers the bad UPDATE with UPDATE Message Error / Malformed Attribute List.
    let log = bad.log.clone();
    let nodes = all.clone();
    wait_until(
        "every node to answer the malformed UPDATE with NOTIFICATION 3/1",
        Duration::from_secs(20),
        || {
            let log = log.clone();
            let nodes = nodes.clone();
            async move {
                let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
                let answered: BTreeSet<IpAddr> = text
                    .lines()
                    .filter_map(|l| {
                        let rest = l.strip_prefix("notification ")?;
                        let (from, code) = rest.split_once(' ')?;
                        (code == "3/1").then(|| from.parse().ok())?
                    })
                    .collect();
                if answered == nodes { Ok(()) } else { Err(text) }
            }
        },
    )
    .await?;
    // Meanwhile FRR's sessions never dropped and it still has every path.
    for address in &all {
        let sessions = lab.router()?.sessions().await?;
        ensure!(
            sessions.get(address).is_some_and(|s| s.established),
            "FRR's session with {address} is not Established: {sessions:?}"
        );
    }
    lab.wait_paths(host_prefix(ip), &all).await?;
    let metrics = lab.metrics("node-1").await?;
    let bad_label = format!("{router_ip}:1790");
    ensure!(
        metric_with_labels(
            &metrics,
            "metallb_bgp_notifications_sent",
            &[("peer", &bad_label)]
        )
        .is_some_and(|n| n >= 1.0),
        "no NOTIFICATION counted towards the bad peer:\n{metrics}"
    );
    drop(bad);
    lab.pass().await
}

// ---- 5. node loss with BFD --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_takes_a_lost_nodes_routes_away_long_before_the_hold_time() -> Result<()> {
    let testbed = Testbed::get();
    let config = pool("routed", &["203.0.113.50-203.0.113.59"])
        + "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}\n---\n"
        + &peer(
            "router-v4",
            IpAddr::V4(testbed.router.ip4),
            ROUTER_ASN,
            "  bfdProfile: fast\n  holdTime: 90s\n",
        )
        + &advertisement("routed", "routed", "");
    let router = router_config_v4(&testbed, |a| Neighbor {
        bfd: Some(BfdTimers {
            rx_ms: 100,
            tx_ms: 100,
            multiplier: 3,
        }),
        ..Neighbor::new(a, NODE_ASN)
    });
    let mut lab = Lab::start("bgp-bfd", 8, &config, Daemon::Frr, &router).await?;
    let v4 = lab.node_addresses(Family::V4);
    lab.wait_sessions(v4.values().copied()).await?;
    wait_until(
        "FRR's BFD sessions with every node to be up",
        SESSION_TIMEOUT,
        || async {
            let peers = lab
                .router()
                .map_err(|e| e.to_string())?
                .bfd_peers()
                .await
                .map_err(|e| format!("{e:#}"))?;
            let up: BTreeSet<IpAddr> = peers.iter().filter(|p| p.up()).map(|p| p.peer).collect();
            if v4.values().all(|a| up.contains(a)) {
                Ok(())
            } else {
                Err(format!("{peers:?}"))
            }
        },
    )
    .await?;
    // The BGPPeer's status says the same, node by node.
    lab.scenario
        .wait_peer_status(
            "router-v4",
            "every node Established with BFD Up, since a given time",
            SESSION_TIMEOUT,
            |entries| {
                let up: Vec<&str> = entries
                    .iter()
                    .filter(|e| e.session == "Established" && e.bfd.as_deref() == Some("Up"))
                    .filter(|e| e.last_transition_time.is_some())
                    .map(|e| e.node.as_str())
                    .collect();
                up == ["node-1", "node-2", "node-3"]
            },
        )
        .await?;
    let a = lab.add_pod("a", "node-2").await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[a]).await?;
    let ip = lab.scenario.wait_assigned("web").await?[0];
    let all: BTreeSet<IpAddr> = v4.values().copied().collect();
    lab.wait_paths(host_prefix(ip), &all).await?;

    // node-1 dies: its link goes down, then its speaker is killed. In that order, the FIN of
    // the killed speaker's TCP session cannot reach FRR: only BFD (or the 90 s hold time) can
    // tell it that node-1 is gone.
    let mut link = LinkDown::prepare(lab.testbed(), "node-1")?;
    let started = Instant::now();
    link.take_down()?;
    if let Some(mut speaker) = lab.speakers.remove("node-1") {
        speaker.kill()?;
        lab.old_logs.push(speaker.log.clone());
    }
    let remaining: BTreeSet<IpAddr> = all.iter().copied().filter(|a| *a != v4["node-1"]).collect();
    let outcome = lab.wait_paths(host_prefix(ip), &remaining).await;
    let took = started.elapsed();
    link.restore()?;
    outcome?;
    eprintln!(
        "FRR withdrew node-1's path {} ms after its link went down",
        took.as_millis()
    );
    ensure!(
        took < Duration::from_secs(5),
        "withdrawal took {took:?}: the hold time (90 s), not BFD, must have done it"
    );
    // The killed speaker could not withdraw its entry: the first live one prunes it.
    lab.scenario
        .wait_peer_status(
            "router-v4",
            "node-1's entry pruned",
            SESSION_TIMEOUT,
            |entries| {
                entries
                    .iter()
                    .map(|e| e.node.as_str())
                    .eq(["node-2", "node-3"])
            },
        )
        .await?;
    lab.pass().await
}

// ---- 6. graceful restart ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_a_restarting_speakers_routes() -> Result<()> {
    let testbed = Testbed::get();
    let config = pool("routed", &["203.0.113.60-203.0.113.69"])
        + &peer(
            "router-v4",
            IpAddr::V4(testbed.router.ip4),
            ROUTER_ASN,
            "  enableGracefulRestart: true\n",
        )
        + &advertisement("routed", "routed", "");
    let router = router_config_v4(&testbed, |a| Neighbor {
        graceful_restart: true,
        ..Neighbor::new(a, NODE_ASN)
    });
    let mut lab = Lab::start("bgp-gr", 9, &config, Daemon::Frr, &router).await?;
    let v4 = lab.node_addresses(Family::V4);
    lab.wait_sessions(v4.values().copied()).await?;
    let a = lab.add_pod("a", "node-2").await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.scenario.create(&spec).await?;
    lab.publish(&spec, &[a]).await?;
    let ip = lab.scenario.wait_assigned("web").await?[0];
    let all: BTreeSet<IpAddr> = v4.values().copied().collect();
    lab.wait_paths(host_prefix(ip), &all).await?;

    // SIGTERM node-1's speaker: with graceful restart it leaves without a NOTIFICATION, and FRR
    // keeps its path, marked stale, while the client still gets through.
    let mut speaker = lab
        .speakers
        .remove("node-1")
        .context("no speaker on node-1")?;
    let speaker = tokio::task::spawn_blocking(move || {
        let result = speaker.terminate();
        (speaker, result)
    })
    .await?;
    lab.old_logs.push(speaker.0.log.clone());
    speaker.1?;
    let node1 = v4["node-1"];
    let stale = lab
        .router()?
        .wait_rib("node-1's path kept, marked stale", RIB_TIMEOUT, |routes| {
            routes
                .iter()
                .any(|r| r.prefix == host_prefix(ip) && r.peer == node1 && r.stale)
        })
        .await?;
    ensure!(
        stale.iter().filter(|r| r.prefix == host_prefix(ip)).count() == 3,
        "a path went away during the restart: {stale:?}"
    );
    lab.reach_pods(&url(ip, spec.port), &[a]).await?;

    // Back again: the path is fresh.
    let process = lab.scenario.start_speaker("node-1", lab.ports, &[])?;
    lab.scenario
        .wait_speaker_ready("node-1", lab.ports, &process)
        .await?;
    lab.speakers.insert("node-1".into(), process);
    lab.router()?
        .wait_rib("node-1's path fresh again", SESSION_TIMEOUT, |routes| {
            routes
                .iter()
                .any(|r| r.prefix == host_prefix(ip) && r.peer == node1 && !r.stale)
        })
        .await?;
    lab.pass().await
}
