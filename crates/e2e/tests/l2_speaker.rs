//! The speaker in L2 mode on the real LAN: a controller and one `ferrolb speaker` per node (each
//! in its node's network namespace, with SWIM membership unless a test turns it off) give a
//! Service's addresses to exactly one node each, and the client reaches the backends through
//! them. Around that: nodeSelectors, interfaces, externalTrafficPolicy Local, a restart without
//! a flap, the loss of a node, a graceful stop, and running without the membership.
//!
//! Each test has its own scenario (config and Service namespaces, loadBalancerClass), its own
//! address sub-range of 198.51.100.220-239 / 2001:db8:100::220-239 (and 198.19.255.200-209 /
//! 2001:db8:101::200-209 on the second LAN), and its own membership and metrics ports, so the
//! tests run side by side. The two that change node labels or take a node's link down run
//! alone (`TOPOLOGY`).
//!
//! Needs `target/debug/ferrolb` (`cargo build -p ferrolb -p testbed-echo --bins`) and the testbed
//! brought up with `--lan2` (scripts/test does both).

#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_e2e::{L2Status, Scenario, SpeakerPorts, metric_with_labels};
use ferrolb_testbed::{Family, LinkDown, ManagedProcess, Pod, ServiceSpec, Testbed, wait_until};

/// Tests that change node labels or links take it for writing; every other test of this file
/// holds it for reading, so they never see another test's node go away.
static TOPOLOGY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

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

fn advertisement(name: &str, pool: &str, extra: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {name}}}\nspec:\n  ipAddressPools: [{pool}]\n{extra}---\n"
    )
}

/// A scenario with its speakers, pods and the log tails to show when the test fails.
struct Lab {
    scenario: Scenario,
    ports: SpeakerPorts,
    extra: Vec<&'static str>,
    speakers: BTreeMap<String, ManagedProcess>,
    /// Logs of speakers that were stopped and replaced, for the failure report.
    old_logs: Vec<std::path::PathBuf>,
    pods: Vec<Pod>,
    passed: bool,
}

impl Lab {
    /// Scenario `name` with `config` applied, a controller, and a speaker on every node, all
    /// ready. `index` picks the ports.
    async fn start(name: &str, index: u16, config: &str, extra: &[&'static str]) -> Result<Self> {
        let mut scenario = Scenario::new(name).await?;
        scenario.clear_l2_statuses().await?;
        scenario.apply(config).await?;
        scenario.start_controller()?;
        let ports = SpeakerPorts::for_test(index);
        let speakers = scenario.start_speakers(ports, extra).await?;
        Ok(Self {
            scenario,
            ports,
            extra: extra.to_vec(),
            speakers,
            old_logs: Vec::new(),
            pods: Vec::new(),
            passed: false,
        })
    }

    fn testbed(&self) -> &Testbed {
        &self.scenario.testbed
    }

    fn pass(mut self) -> Result<()> {
        self.passed = true;
        Ok(())
    }

    /// Adds a backend pod named `NAME-SUFFIX` on `node`.
    async fn add_pod(&mut self, suffix: &str, node: &str) -> Result<usize> {
        let name = format!(
            "{}-{suffix}",
            self.scenario.namespace.trim_start_matches("svc-")
        );
        let pod = self.scenario.add_backend(&name, node).await?;
        self.pods.push(pod);
        Ok(self.pods.len() - 1)
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<()> {
        self.testbed()
            .create_service(&self.scenario.kube, spec)
            .await?;
        Ok(())
    }

    async fn publish(&self, spec: &ServiceSpec, pods: &[usize]) -> Result<()> {
        let pods: Vec<&Pod> = pods.iter().map(|i| &self.pods[*i]).collect();
        self.testbed()
            .publish_endpoints(&self.scenario.kube, spec, &pods)
            .await
    }

    /// The node whose eth0 or eth1 has `mac`.
    fn node_of_mac(&self, mac: &str) -> Option<String> {
        self.testbed()
            .nodes
            .iter()
            .find(|n| n.host.mac == mac || n.host.eth1.as_ref().is_some_and(|e| e.mac == mac))
            .map(|n| n.name.clone())
    }

    fn mac_of(&self, node: &str, interface: &str) -> Result<String> {
        let host = &self.testbed().node(node)?.host;
        Ok(match interface {
            "eth1" => host.eth1.as_ref().context("no eth1")?.mac.clone(),
            _ => host.mac.clone(),
        })
    }

    /// Waits until exactly one node answers for `ip` on the client's `interface` and `want`
    /// accepts it; checks once more that the answer is still that one node. Returns the node.
    async fn wait_one_answer(
        &self,
        interface: &str,
        ip: IpAddr,
        what: &str,
        want: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        let testbed = self.testbed();
        flush_neighbour(testbed, ip).await?;
        let node = wait_until(
            &format!("exactly one node to answer for {ip} on the client's {interface} ({what})"),
            timeout,
            || async {
                let macs = answering_macs(testbed, interface, ip)
                    .await
                    .map_err(|e| e.to_string())?;
                let nodes: Vec<Option<String>> = macs.iter().map(|m| self.node_of_mac(m)).collect();
                match nodes.as_slice() {
                    [Some(node)] if want(node) => Ok(node.clone()),
                    _ => Err(format!("answered by {macs:?} = {nodes:?}")),
                }
            },
        )
        .await?;
        let again = answering_macs(testbed, interface, ip).await?;
        let mac = self.mac_of(&node, interface)?;
        ensure!(
            again == BTreeSet::from([mac.clone()]),
            "{ip}: first only {node} ({mac}) answered, then {again:?}"
        );
        Ok(node)
    }

    /// Waits until the ServiceL2Status objects of Service `name` satisfy `check`.
    async fn wait_statuses(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&[L2Status]) -> bool,
    ) -> Result<Vec<L2Status>> {
        wait_until(
            &format!("the ServiceL2Status of {name}: {what}"),
            Duration::from_secs(10),
            || async {
                let statuses = self
                    .scenario
                    .l2_statuses(name)
                    .await
                    .map_err(|e| e.to_string())?;
                if check(&statuses) {
                    Ok(statuses)
                } else {
                    Err(format!("{statuses:?}"))
                }
            },
        )
        .await
    }

    /// Waits until the ServiceL2Status objects of `name` are exactly one, from `node`.
    async fn wait_status_node(&self, name: &str, node: &str) -> Result<L2Status> {
        let statuses = self
            .wait_statuses(name, &format!("exactly one, naming {node}"), |s| {
                s.len() == 1
                    && s[0].node.as_deref() == Some(node)
                    && s[0].node_label.as_deref() == Some(node)
            })
            .await?;
        Ok(statuses[0].clone())
    }

    async fn metrics(&self, node: &str) -> Result<String> {
        self.scenario.speaker_metrics(node, self.ports).await
    }

    /// Stops the speaker on `node` with SIGTERM and waits for it to exit.
    async fn terminate(&mut self, node: &str) -> Result<()> {
        let mut process = self
            .speakers
            .remove(node)
            .with_context(|| format!("no speaker on {node}"))?;
        let (process, result) = tokio::task::spawn_blocking(move || {
            let result = process.terminate();
            (process, result)
        })
        .await?;
        self.old_logs.push(process.log.clone());
        result
    }

    /// Starts the speaker on `node` again and waits until it is ready.
    async fn restart(&mut self, node: &str) -> Result<()> {
        if let Some(old) = self.speakers.remove(node) {
            self.old_logs.push(old.log.clone());
        }
        let process = self.scenario.start_speaker(node, self.ports, &self.extra)?;
        self.scenario
            .wait_speaker_ready(node, self.ports, &process)
            .await?;
        self.speakers.insert(node.to_string(), process);
        Ok(())
    }

    fn url(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(ip) => format!("http://{ip}:80/"),
            IpAddr::V6(ip) => format!("http://[{ip}]:80/"),
        }
    }

    /// Waits until an HTTP GET from the client through `ip` reaches a backend; its answer.
    async fn wait_http(&self, ip: IpAddr, backend: impl Fn(&str) -> bool) -> Result<String> {
        let url = self.url(ip);
        wait_until(
            &format!("the client to reach a backend through {url}"),
            Duration::from_secs(15),
            || async {
                match self.testbed().http_get_from_client(&url).await {
                    Ok(body) if body.starts_with("pod=") && backend(&body) => Ok(body),
                    Ok(body) => Err(format!("answer {body:?}")),
                    Err(err) => Err(format!("{err:#}")),
                }
            },
        )
        .await
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

fn macs_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '(' || c == ')')
        .filter(|word| word.len() == 17 && word.matches(':').count() == 5)
        .map(str::to_lowercase)
        .collect()
}

/// Every MAC that answered the client's ARP (`arping -d`, 1 s) or NDP query for `ip`, as
/// received on the client's `interface`. ndisc6 alone will not do for NDP: its socket is not
/// bound to the interface, so it also prints Neighbor Advertisements that arrive on the
/// client's other LAN; a capture on `interface` sees only that LAN's answers.
async fn answering_macs(
    testbed: &Testbed,
    interface: &str,
    ip: IpAddr,
) -> Result<BTreeSet<String>> {
    let ip = ip.to_string();
    if ip.contains(':') {
        let script = format!(
            "err=$(mktemp); \
             tcpdump -i {interface} -n -e -l -Q in 'icmp6 and ip6[40] == 136' 2>\"$err\" & p=$!; \
             for _ in $(seq 100); do grep -q 'listening on' \"$err\" && break; sleep 0.05; done; \
             ndisc6 -m -n -r 1 -w 1000 {ip} {interface} >/dev/null 2>&1; \
             sleep 0.1; kill $p; wait $p; rm -f \"$err\""
        );
        let out = testbed
            .exec(&testbed.client.netns, &["sh", "-c", &script])
            .await?;
        let target = format!("tgt is {ip},");
        Ok(out
            .stdout
            .lines()
            .filter(|line| line.contains(&target))
            .filter_map(|line| line.split_whitespace().nth(1))
            .map(str::to_lowercase)
            .collect())
    } else {
        // -d: keep listening for answers from further MACs until the deadline.
        let args = ["arping", "-d", "-c", "2", "-w", "1", "-i", interface, &ip];
        let out = testbed.exec(&testbed.client.netns, &args).await?;
        Ok(macs_in(&out.stdout))
    }
}

/// The first MAC that answers a single query for `ip` on eth0, within `wait`.
async fn first_answer(testbed: &Testbed, ip: IpAddr, wait: Duration) -> Result<Option<String>> {
    let ip = ip.to_string();
    let out = if ip.contains(':') {
        let ms = wait.as_millis().to_string();
        let args = ["ndisc6", "-1", "-n", "-r", "1", "-w", &ms, &ip, "eth0"];
        testbed.exec(&testbed.client.netns, &args).await?
    } else {
        let secs = format!("{:.2}", wait.as_secs_f64());
        let args = [
            "arping", "-c", "1", "-C", "1", "-w", &secs, "-i", "eth0", &ip,
        ];
        testbed.exec(&testbed.client.netns, &args).await?
    };
    Ok(macs_in(&out.stdout).into_iter().next())
}

async fn flush_neighbour(testbed: &Testbed, ip: IpAddr) -> Result<()> {
    let family = if ip.is_ipv4() { "-4" } else { "-6" };
    testbed
        .exec(
            &testbed.client.netns,
            &["ip", family, "neigh", "flush", "to", &ip.to_string()],
        )
        .await?
        .ok()?;
    Ok(())
}

/// One GET from the client with short timeouts, for measuring a failover.
async fn quick_get(testbed: &Testbed, url: &str) -> bool {
    testbed
        .exec(
            &testbed.client.netns,
            &[
                "curl",
                "-sS",
                "--connect-timeout",
                "0.5",
                "--max-time",
                "0.8",
                "--globoff",
                url,
            ],
        )
        .await
        .is_ok_and(|out| out.success && out.stdout.starts_with("pod="))
}

fn other_nodes(testbed: &Testbed, but: &str) -> Vec<String> {
    testbed
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| n != but)
        .collect()
}

// ---- 1. dual-stack through the VIP ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_vips_are_answered_by_one_node_and_reach_the_backends() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let config = pool(
        "lan",
        &[
            "198.51.100.220-198.51.100.221",
            "2001:db8:100::220-2001:db8:100::221",
        ],
    ) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-dual", 1, &config, &[]).await?;
    let spec = lab.scenario.service("web", &[Family::V4, Family::V6]);
    lab.create_service(&spec).await?;
    let a = lab.add_pod("a", "node-1").await?;
    let b = lab.add_pod("b", "node-2").await?;
    lab.publish(&spec, &[a, b]).await?;
    let vips = lab
        .scenario
        .wait_ingress("web", "an IPv4 and an IPv6 address", |ips| {
            ips.len() == 2 && ips.iter().any(IpAddr::is_ipv4) && ips.iter().any(IpAddr::is_ipv6)
        })
        .await?;

    let mut announcers = BTreeSet::new();
    for vip in &vips {
        let node = lab
            .wait_one_answer("eth0", *vip, "any node", |_| true, Duration::from_secs(15))
            .await?;
        eprintln!("{vip} is answered by {node}");
        announcers.insert(node.clone());

        let statuses = lab
            .wait_statuses("web", &format!("one names {node}"), |s| {
                s.iter().any(|s| {
                    s.node.as_deref() == Some(node.as_str())
                        && s.node_label.as_deref() == Some(node.as_str())
                })
            })
            .await?;
        // No L2Advertisement names interfaces: the speaker answers on every one (as MetalLB).
        ensure!(
            statuses
                .iter()
                .filter(|s| s.node.as_deref() == Some(node.as_str()))
                .all(|s| s.interfaces.iter().any(|i| i == "eth0")),
            "{node}'s ServiceL2Status should list eth0: {statuses:?}"
        );

        let service = format!("{}/web", lab.scenario.namespace);
        let ip = vip.to_string();
        for other in lab.speakers.keys() {
            let text = lab.metrics(other).await?;
            let announced = metric_with_labels(
                &text,
                "metallb_speaker_announced",
                &[("ip", &ip), ("service", &service), ("protocol", "layer2")],
            );
            if *other == node {
                ensure!(
                    announced == Some(1.0)
                        && metric_with_labels(
                            &text,
                            "metallb_speaker_announced",
                            &[("ip", &ip), ("node", &node)]
                        ) == Some(1.0),
                    "{node} answers {ip} but its metallb_speaker_announced says {announced:?}"
                );
                let responses =
                    metric_with_labels(&text, "metallb_layer2_responses_sent", &[("ip", &ip)]);
                ensure!(
                    responses.is_some_and(|n| n > 0.0),
                    "{node} answered the client for {ip}, but metallb_layer2_responses_sent is {responses:?}"
                );
                let requests =
                    metric_with_labels(&text, "metallb_layer2_requests_received", &[("ip", &ip)]);
                ensure!(
                    requests.is_some_and(|n| n > 0.0),
                    "metallb_layer2_requests_received{{ip={ip}}} on {node} is {requests:?}"
                );
            } else {
                ensure!(
                    announced.is_none(),
                    "{other} does not answer {ip} but reports metallb_speaker_announced = {announced:?}"
                );
            }
        }

        let body = lab.wait_http(*vip, |_| true).await?;
        eprintln!("through {vip}: {}", body.trim());
        let note = lab
            .scenario
            .wait_event(
                "web",
                "nodeAssigned",
                &format!("announcing from node \"{node}\" with protocol \"layer2\""),
            )
            .await?;
        eprintln!("Event nodeAssigned: {note}");
    }
    // One ServiceL2Status per announcing node, none from anyone else.
    let statuses = lab.scenario.l2_statuses("web").await?;
    let from: BTreeSet<String> = statuses.iter().filter_map(|s| s.node.clone()).collect();
    ensure!(
        from == announcers && statuses.len() == announcers.len(),
        "ServiceL2Status objects {statuses:?}, announcers {announcers:?}"
    );
    lab.pass()
}

// ---- 2. nodeSelectors ------------------------------------------------------------------------------

const SELECTOR_LABEL: &str = "ferrolb.test/l2s-selectors";

/// Removes the test's label from every node when dropped (also when the test fails).
struct NodeLabels {
    kubectl: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    nodes: Vec<String>,
}

impl NodeLabels {
    fn set(testbed: &Testbed, nodes: &[&str]) -> Result<Self> {
        let labels = Self {
            kubectl: testbed.bin_dir()?.join("kubectl"),
            kubeconfig: testbed.kubeconfig()?,
            nodes: testbed.nodes.iter().map(|n| n.name.clone()).collect(),
        };
        for node in nodes {
            labels.kubectl(&[
                "label",
                "node",
                node,
                &format!("{SELECTOR_LABEL}={node}"),
                "--overwrite",
            ])?;
        }
        Ok(labels)
    }

    fn kubectl(&self, args: &[&str]) -> Result<()> {
        let out = std::process::Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()?;
        ensure!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for NodeLabels {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Err(err) = self.kubectl(&["label", "node", node, &format!("{SELECTOR_LABEL}-")])
            {
                eprintln!("could not remove {SELECTOR_LABEL} from {node}: {err:#}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selectors_pick_the_announcing_node_and_moving_them_moves_the_address() -> Result<()> {
    let _exclusive = TOPOLOGY.write().await;
    let testbed = Testbed::get();
    let _labels = NodeLabels::set(&testbed, &["node-2", "node-3"])?;
    let selecting = |node: &str| {
        advertisement(
            "lan",
            "lan",
            &format!("  nodeSelectors:\n  - matchLabels: {{\"{SELECTOR_LABEL}\": {node}}}\n"),
        )
    };
    let config = pool("lan", &["198.51.100.222-198.51.100.223"]) + &selecting("node-3");
    let mut lab = Lab::start("l2s-selectors", 2, &config, &[]).await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.create_service(&spec).await?;
    let backend = lab.add_pod("a", "node-1").await?;
    lab.publish(&spec, &[backend]).await?;
    let vip = lab.scenario.wait_assigned("web").await?[0];

    lab.wait_one_answer(
        "eth0",
        vip,
        "node-3",
        |n| n == "node-3",
        Duration::from_secs(15),
    )
    .await?;
    lab.wait_status_node("web", "node-3").await?;

    lab.scenario.apply(&selecting("node-2")).await?;
    let moved = Instant::now();
    lab.wait_one_answer(
        "eth0",
        vip,
        "node-2",
        |n| n == "node-2",
        Duration::from_secs(15),
    )
    .await?;
    eprintln!("{vip} moved to node-2 within {:?}", moved.elapsed());
    lab.wait_status_node("web", "node-2").await?;
    lab.pass()
}

// ---- 3. interfaces ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_limit_where_an_address_is_answered() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let testbed = Testbed::get();
    ensure!(
        testbed.client.eth1.is_some() && testbed.nodes.iter().all(|n| n.host.eth1.is_some()),
        "the testbed has no second LAN: bring it up with `testbed/testbed up --nodes 3 --lan2` (scripts/test does)"
    );
    let config = pool(
        "lan",
        &[
            "198.51.100.224-198.51.100.225",
            "2001:db8:100::224-2001:db8:100::225",
        ],
    ) + &pool(
        "lan2",
        &[
            "198.19.255.200-198.19.255.201",
            "2001:db8:101::200-2001:db8:101::201",
        ],
    ) + &advertisement("on-eth0", "lan", "  interfaces: [eth0]\n")
        + &advertisement("on-eth1", "lan2", "  interfaces: [eth1]\n");
    let mut lab = Lab::start("l2s-interfaces", 3, &config, &[]).await?;
    let mut first = lab.scenario.service("first", &[Family::V4, Family::V6]);
    first
        .annotations
        .insert("metallb.io/address-pool".into(), "lan".into());
    let mut second = lab.scenario.service("second", &[Family::V4, Family::V6]);
    second
        .annotations
        .insert("metallb.io/address-pool".into(), "lan2".into());
    lab.create_service(&first).await?;
    lab.create_service(&second).await?;
    let pod = lab.add_pod("a", "node-1").await?;
    lab.publish(&second, &[pod]).await?;
    lab.publish(&first, &[pod]).await?;

    for (name, on, not_on) in [("first", "eth0", "eth1"), ("second", "eth1", "eth0")] {
        let vips = lab
            .scenario
            .wait_ingress(name, "two addresses", |ips| ips.len() == 2)
            .await?;
        let mut announcers = BTreeSet::new();
        for vip in vips {
            let node = lab
                .wait_one_answer(on, vip, "any node", |_| true, Duration::from_secs(15))
                .await?;
            eprintln!("{name}: {vip} is answered on {on} by {node}");
            announcers.insert(node);
            let elsewhere = answering_macs(lab.testbed(), not_on, vip).await?;
            ensure!(
                elsewhere.is_empty(),
                "{vip} must be answered on {on} only, but on {not_on} {elsewhere:?} answered"
            );
        }
        let statuses = lab
            .wait_statuses(name, &format!("from {announcers:?}, listing {on}"), |s| {
                s.len() == announcers.len()
                    && s.iter().all(|s| {
                        s.node.as_ref().is_some_and(|n| announcers.contains(n))
                            && s.interfaces == [on]
                    })
            })
            .await?;
        eprintln!("{name}: {statuses:?}");
    }
    // The second LAN carries traffic too: the client reaches the backend over its eth1.
    let v4 = lab
        .scenario
        .ingress("second")
        .await?
        .into_iter()
        .find(IpAddr::is_ipv4)
        .context("no IPv4 address")?;
    let body = lab.wait_http(v4, |_| true).await?;
    eprintln!("through {v4} over eth1: {}", body.trim());
    lab.pass()
}

// ---- 4. externalTrafficPolicy Local -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_policy_announces_from_a_node_with_an_endpoint() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let config = pool("lan", &["198.51.100.226-198.51.100.227"]) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-local", 4, &config, &[]).await?;
    let mut spec = lab.scenario.service("web", &[Family::V4]);
    spec.external_traffic_policy = "Local".into();
    lab.create_service(&spec).await?;
    let on2 = lab.add_pod("n2", "node-2").await?;
    let on3 = lab.add_pod("n3", "node-3").await?;
    let (name2, name3) = (lab.pods[on2].name.clone(), lab.pods[on3].name.clone());
    lab.publish(&spec, &[on2]).await?;
    let vip = lab.scenario.wait_assigned("web").await?[0];

    lab.wait_one_answer(
        "eth0",
        vip,
        "node-2, the one with the endpoint",
        |n| n == "node-2",
        Duration::from_secs(15),
    )
    .await?;
    lab.wait_status_node("web", "node-2").await?;
    let body = lab
        .wait_http(vip, |b| b.contains(&format!("pod={name2} ")))
        .await?;
    eprintln!("through {vip}: {}", body.trim());

    lab.publish(&spec, &[on3]).await?;
    lab.wait_one_answer(
        "eth0",
        vip,
        "node-3, now the one with the endpoint",
        |n| n == "node-3",
        Duration::from_secs(15),
    )
    .await?;
    lab.wait_status_node("web", "node-3").await?;
    let body = lab
        .wait_http(vip, |b| b.contains(&format!("pod={name3} ")))
        .await?;
    eprintln!("through {vip} after the move: {}", body.trim());
    lab.pass()
}

// ---- 5. restart without a flap --------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    /// What was seen, or the error.
    seen: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_a_speaker_that_does_not_announce_moves_nothing() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let config = pool("lan", &["198.51.100.228-198.51.100.229"]) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-restart", 5, &config, &[]).await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.create_service(&spec).await?;
    let backend = lab.add_pod("a", "node-1").await?;
    lab.publish(&spec, &[backend]).await?;
    let vip = lab.scenario.wait_assigned("web").await?[0];
    let owner = lab
        .wait_one_answer("eth0", vip, "any node", |_| true, Duration::from_secs(15))
        .await?;
    lab.wait_status_node("web", &owner).await?;
    let owner_mac = lab.mac_of(&owner, "eth0")?;
    let restarted = other_nodes(lab.testbed(), &owner)[0].clone();
    eprintln!("{vip} is on {owner}; restarting the speaker on {restarted}");

    // Poll the client's view and the statuses every ~100 ms across the restart, each on its own.
    let stop = Arc::new(AtomicBool::new(false));
    let arp_poller = {
        let stop = stop.clone();
        let testbed = lab.testbed().clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mac = first_answer(&testbed, vip, Duration::from_millis(500)).await;
                samples.push(Sample {
                    at: started.elapsed(),
                    seen: format!("{:?}", mac.map_err(|e| format!("{e:#}"))),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    let status_poller = {
        let stop = stop.clone();
        let config_namespace = lab.scenario.config_namespace.clone();
        let kube = lab.scenario.kube.clone();
        let service_namespace = lab.scenario.namespace.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let nodes = l2_status_nodes(&kube, &config_namespace, &service_namespace).await;
                samples.push(Sample {
                    at: started.elapsed(),
                    seen: format!("{:?}", nodes.map_err(|e| format!("{e:#}"))),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.terminate(&restarted).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.restart(&restarted).await?;
    // Past the new speaker's settling and first decisions.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let arp_samples = arp_poller.await?;
    let status_samples = status_poller.await?;

    let want_arp = format!("{:?}", Ok::<_, String>(Some(owner_mac.clone())));
    let want_status = format!("{:?}", Ok::<_, String>(vec![Some(owner.clone())]));
    let bad: Vec<&Sample> = arp_samples
        .iter()
        .filter(|s| s.seen != want_arp)
        .chain(status_samples.iter().filter(|s| s.seen != want_status))
        .collect();
    eprintln!(
        "{} ARP and {} ServiceL2Status samples over {:?} across the restart",
        arp_samples.len(),
        status_samples.len(),
        arp_samples.last().map(|s| s.at)
    );
    ensure!(
        arp_samples.len() >= 20 && status_samples.len() >= 20,
        "too few samples: {arp_samples:?} {status_samples:?}"
    );
    ensure!(
        bad.is_empty(),
        "the announcement of {vip} by {owner} ({owner_mac}) flapped while {restarted}'s speaker restarted: {bad:#?}"
    );

    // The new speaker met the others before it decided anything.
    let log = std::fs::read_to_string(&lab.speakers[&restarted].log)?;
    let settled = log
        .lines()
        .position(|l| l.contains("membership settled"))
        .with_context(|| {
            format!("no `membership settled` in the restarted speaker's log:\n{log}")
        })?;
    let settled_line = log.lines().nth(settled).unwrap_or_default();
    ensure!(
        lab.testbed()
            .nodes
            .iter()
            .all(|n| settled_line.contains(&format!("\"{}\"", n.name))),
        "the restarted speaker settled without seeing every node: {settled_line}"
    );
    let ready = log
        .lines()
        .position(|l| l.contains("speaker ready"))
        .context("no `speaker ready` in the restarted speaker's log")?;
    ensure!(
        settled < ready,
        "the speaker was ready before its membership settled:\n{log}"
    );
    ensure!(
        !log.lines()
            .any(|l| l.contains("announcing") && l.contains(&vip.to_string())),
        "the restarted speaker announced {vip}:\n{log}"
    );
    lab.pass()
}

async fn l2_status_nodes(
    kube: &kube::Client,
    config_namespace: &str,
    service_namespace: &str,
) -> Result<Vec<Option<String>>> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status"),
        "servicel2statuses",
    );
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(kube.clone(), config_namespace, &resource);
    let selector =
        format!("metallb.io/service-name=web,metallb.io/service-namespace={service_namespace}");
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .iter()
        .map(|o| o.data["status"]["node"].as_str().map(str::to_string))
        .collect())
}

// ---- 6. node loss -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_announcing_node_moves_the_address_within_3_seconds() -> Result<()> {
    let _exclusive = TOPOLOGY.write().await;
    let config = pool("lan", &["198.51.100.230-198.51.100.231"]) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-nodeloss", 6, &config, &[]).await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.create_service(&spec).await?;
    // A Service is announced only while it has a ready endpoint.
    let first = lab.add_pod("a", "node-1").await?;
    lab.publish(&spec, &[first]).await?;
    let vip = lab.scenario.wait_assigned("web").await?[0];
    let lost = lab
        .wait_one_answer("eth0", vip, "any node", |_| true, Duration::from_secs(15))
        .await?;
    let lost_mac = lab.mac_of(&lost, "eth0")?;
    // The backend lives on a node that stays.
    let survivor = other_nodes(lab.testbed(), &lost)[0].clone();
    if lost == "node-1" {
        let pod = lab.add_pod("b", &survivor).await?;
        lab.publish(&spec, &[pod]).await?;
    }
    lab.wait_http(vip, |_| true).await?;
    lab.wait_status_node("web", &lost).await?;
    eprintln!("{vip} is on {lost}; killing its speaker and taking its link down");

    lab.speakers
        .get_mut(&lost)
        .context("no speaker on the announcing node")?
        .kill()?;
    let mut link = LinkDown::prepare(lab.testbed(), &lost)?;
    link.take_down()?;
    let lost_at = Instant::now();
    let url = lab.url(vip);
    let testbed = lab.testbed().clone();
    let arp = async {
        loop {
            match first_answer(&testbed, vip, Duration::from_millis(300)).await {
                Ok(Some(mac)) if mac != lost_mac => return (lost_at.elapsed(), mac),
                _ => {}
            }
            if lost_at.elapsed() > Duration::from_secs(10) {
                return (lost_at.elapsed(), String::new());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let http = async {
        loop {
            if quick_get(&testbed, &url).await {
                return lost_at.elapsed();
            }
            if lost_at.elapsed() > Duration::from_secs(10) {
                return lost_at.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let ((arp_after, new_mac), http_after) = tokio::join!(arp, http);
    let new_node = lab.node_of_mac(&new_mac);
    eprintln!(
        "after losing {lost}: ARP answered by {new_mac} ({new_node:?}) after {arp_after:?}, HTTP through {vip} after {http_after:?}"
    );
    let new_node =
        new_node.with_context(|| format!("no node took {vip} over within {arp_after:?}"))?;
    ensure!(
        arp_after < Duration::from_secs(3),
        "{new_node} answered ARP for {vip} only {arp_after:?} after {lost} was lost"
    );
    ensure!(
        http_after < Duration::from_secs(3),
        "the client reached a backend through {vip} only {http_after:?} after {lost} was lost"
    );
    lab.wait_statuses("web", &format!("one names {new_node}"), |s| {
        s.iter()
            .any(|s| s.node.as_deref() == Some(new_node.as_str()))
    })
    .await?;
    lab.wait_one_answer(
        "eth0",
        vip,
        &new_node,
        |n| n == new_node,
        Duration::from_secs(5),
    )
    .await?;

    // The node comes back: its new speaker clears what its killed one left, and one node answers.
    tokio::task::spawn_blocking(move || link.restore().map(|()| link)).await??;
    // Reported, not asserted: how long the client got no ARP answer while the speaker rejoined
    // (the address may move back to it).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let testbed = lab.testbed().clone();
        tokio::spawn(async move {
            let mut last_answer = Instant::now();
            let mut longest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(_)) = first_answer(&testbed, vip, Duration::from_millis(200)).await {
                    longest = longest.max(last_answer.elapsed());
                    last_answer = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            longest.max(last_answer.elapsed())
        })
    };
    lab.restart(&lost).await?;
    let owner = lab
        .wait_one_answer(
            "eth0",
            vip,
            "any node, after the node came back",
            |_| true,
            Duration::from_secs(15),
        )
        .await?;
    stop.store(true, Ordering::Relaxed);
    let longest = watcher.await?;
    lab.wait_status_node("web", &owner).await?;
    eprintln!(
        "after {lost} came back, {vip} is on {owner}; the longest span without an ARP answer while its speaker rejoined: {longest:?}"
    );
    lab.pass()
}

// ---- 7. graceful stop ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_hands_the_address_over_within_a_second() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let config = pool("lan", &["198.51.100.232-198.51.100.233"]) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-graceful", 7, &config, &[]).await?;
    let spec = lab.scenario.service("web", &[Family::V4]);
    lab.create_service(&spec).await?;
    let backend = lab.add_pod("a", "node-1").await?;
    lab.publish(&spec, &[backend]).await?;
    let vip = lab.scenario.wait_assigned("web").await?[0];
    let stopped = lab
        .wait_one_answer("eth0", vip, "any node", |_| true, Duration::from_secs(15))
        .await?;
    lab.wait_status_node("web", &stopped).await?;
    let stopped_mac = lab.mac_of(&stopped, "eth0")?;

    let pid = lab.speakers[&stopped]
        .pid()
        .context("the speaker is not running")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM {pid}: {status}");
    let sent = Instant::now();
    let sigterm_at = k8s_openapi::jiff::Timestamp::now();
    let (after, mac) = loop {
        if let Some(mac) = first_answer(lab.testbed(), vip, Duration::from_millis(200)).await?
            && mac != stopped_mac
        {
            break (sent.elapsed(), mac);
        }
        if sent.elapsed() > Duration::from_secs(5) {
            bail!("no other node answered for {vip} within 5 s of SIGTERM to {stopped}'s speaker");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let successor = lab.node_of_mac(&mac).context("an unknown MAC answered")?;
    eprintln!("{successor} answered for {vip} {after:?} after SIGTERM to {stopped}'s speaker");
    ensure!(
        after < Duration::from_secs(1),
        "{successor} took {vip} over {after:?} after {stopped}'s speaker got SIGTERM (limit 1 s)"
    );
    lab.terminate(&stopped).await?;
    let left = lab.scenario.l2_statuses_of_node(&stopped).await?;
    if !left.is_empty() {
        let statuses = lab.scenario.l2_statuses("web").await?;
        bail!(
            "{stopped}'s speaker exited (SIGTERM at {sigterm_at}) but its ServiceL2Status objects are still there: {left:?}; all of the Service's: {statuses:?}"
        );
    }
    lab.wait_status_node("web", &successor).await?;
    lab.wait_one_answer(
        "eth0",
        vip,
        &successor,
        |n| n == successor,
        Duration::from_secs(5),
    )
    .await?;
    lab.pass()
}

// ---- 8. without membership -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_membership_one_node_still_answers() -> Result<()> {
    let _shared = TOPOLOGY.read().await;
    let config = pool(
        "lan",
        &[
            "198.51.100.234-198.51.100.235",
            "2001:db8:100::234-2001:db8:100::235",
        ],
    ) + &advertisement("lan", "lan", "");
    let mut lab = Lab::start("l2s-noml", 8, &config, &["--ml-disabled"]).await?;
    for node in lab.speakers.keys() {
        let text = lab.metrics(node).await?;
        ensure!(
            metric_with_labels(&text, "ferrolb_speaker_membership_enabled", &[]) == Some(0.0),
            "the speaker on {node} runs a membership despite --ml-disabled"
        );
    }
    let spec = lab.scenario.service("web", &[Family::V4, Family::V6]);
    lab.create_service(&spec).await?;
    let backend = lab.add_pod("a", "node-1").await?;
    lab.publish(&spec, &[backend]).await?;
    let vips = lab
        .scenario
        .wait_ingress("web", "two addresses", |ips| ips.len() == 2)
        .await?;
    let mut announcers = BTreeSet::new();
    for vip in vips {
        let node = lab
            .wait_one_answer("eth0", vip, "any node", |_| true, Duration::from_secs(15))
            .await?;
        // And it stays one.
        for _ in 0..2 {
            let macs = answering_macs(lab.testbed(), "eth0", vip).await?;
            ensure!(
                macs == BTreeSet::from([lab.mac_of(&node, "eth0")?]),
                "{vip}: answered by {macs:?}, expected only {node}"
            );
        }
        eprintln!("{vip} is answered by {node} alone");
        announcers.insert(node);
    }
    lab.wait_statuses("web", &format!("from {announcers:?}"), |s| {
        s.len() == announcers.len()
            && s.iter()
                .all(|s| s.node.as_ref().is_some_and(|n| announcers.contains(n)))
    })
    .await?;
    lab.pass()
}
