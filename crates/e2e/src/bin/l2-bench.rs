//! `bench/l2`: the L2 speaker against the real testbed, timed from the client's side of the LAN.
//! Prints a table:
//! - failover on node loss (speaker SIGKILLed and the node's eth0 taken down at T0): time to
//!   the first successful HTTP request through the VIP, IPv4 and IPv6;
//! - graceful handover (speaker SIGTERMed at T0, link up): time to the first announcement from
//!   the new node seen on the client's wire, and to the first success after it;
//! - Service created → first successful request through the VIP (controller + speakers);
//! - ARP reply latency for the VIP under a flood of ARP requests for other addresses, with the
//!   announcing speaker's RSS and CPU time around it;
//! - speaker RSS with 1,000 announced Services.
//!
//! Subcommands run inside the client's network namespace (`ip netns exec client l2-bench …`):
//! - `probe VIP PORT`: one fresh HTTP request every 10 ms (50 ms timeout), printing
//!   `P <start µs> <end µs> ok|fail` (Unix time) per request, and `A <µs> <mac>` for every
//!   ARP or Neighbor Advertisement about VIP that reaches the client;
//! - `flood VIP SECONDS RATE`: ARP requests for 198.51.100.100-199 at RATE frames/s and one
//!   ARP request for VIP every 10 ms, printing one `FLOOD key=value …` line.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferrolb_e2e::{Scenario, SpeakerPorts, ingress_ips};
use ferrolb_l2::{ArpOperation, MacAddr, parse_arp, parse_neighbor_advertisement};
use ferrolb_testbed::{Family, LinkDown, ManagedProcess, Pod, ServiceSpec, Testbed, wait_until};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use socket2::{Domain, SockFilter, Socket, Type};
use tokio::io::AsyncBufReadExt;

// ---- shared helpers --------------------------------------------------------------------------

use ferrolb_e2e::stats::{env_usize, list_ms, median, now_us, percentile, worst};

// ---- BPF -----------------------------------------------------------------------------------------

const LD_B_ABS: u16 = 0x30;
const LD_H_ABS: u16 = 0x28;
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
const PACKET_OUTGOING: u32 = 4;
const ACCEPT: u32 = 0x0004_0000;

/// Incoming ARP frames and ICMPv6 Neighbor Advertisements (no extension headers).
fn announcement_filter() -> Vec<SockFilter> {
    vec![
        SockFilter::new(LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        SockFilter::new(JEQ_K, 8, 0, PACKET_OUTGOING),
        SockFilter::new(LD_H_ABS, 0, 0, 12),
        SockFilter::new(JEQ_K, 5, 0, 0x0806),
        SockFilter::new(JEQ_K, 0, 5, 0x86dd),
        SockFilter::new(LD_B_ABS, 0, 0, 14 + 6),
        SockFilter::new(JEQ_K, 0, 3, 58),
        SockFilter::new(LD_B_ABS, 0, 0, 14 + 40),
        SockFilter::new(JEQ_K, 0, 1, 136),
        SockFilter::new(RET_K, 0, 0, ACCEPT),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// Incoming ARP replies whose sender IP is `ip`.
fn reply_filter(ip: Ipv4Addr) -> Vec<SockFilter> {
    vec![
        SockFilter::new(LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        SockFilter::new(JEQ_K, 6, 0, PACKET_OUTGOING),
        SockFilter::new(LD_H_ABS, 0, 0, 12),
        SockFilter::new(JEQ_K, 0, 4, 0x0806),
        SockFilter::new(LD_H_ABS, 0, 0, 20),
        SockFilter::new(JEQ_K, 0, 2, 2),
        SockFilter::new(LD_W_ABS, 0, 0, 28),
        SockFilter::new(JEQ_K, 1, 0, u32::from(ip)),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, ACCEPT),
    ]
}

fn drop_all_filter() -> Vec<SockFilter> {
    vec![SockFilter::new(RET_K, 0, 0, 0)]
}

/// An AF_PACKET socket bound to `link` (by pnet, as the responder does), receiving only the
/// frames that pass `filter`; the returned socket is a duplicate of the bound one, for
/// sending and receiving, with the link's MAC.
fn bound(link: &str, filter: &[SockFilter]) -> Result<(Socket, MacAddr)> {
    let interface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == link)
        .ok_or_else(|| anyhow!("no link {link}"))?;
    let mac = interface
        .mac
        .map(|m| MacAddr(m.octets()))
        .ok_or_else(|| anyhow!("{link} has no MAC"))?;
    // Protocol 0: nothing is received before the bind.
    let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
    socket.attach_filter(filter)?;
    socket.set_recv_buffer_size(1 << 20)?;
    socket.set_send_buffer_size(4 << 20)?;
    let duplicate = socket.try_clone()?;
    use std::os::fd::IntoRawFd;
    let config = pnet_datalink::Config {
        write_timeout: Some(Duration::from_millis(100)),
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(&interface, config)? {
        pnet_datalink::Channel::Ethernet(_tx, _rx) => Ok((duplicate, mac)),
        _ => bail!("not an Ethernet channel"),
    }
}

/// A broadcast ARP request "who has `target`? tell `sender_ip`".
fn arp_request(mac: MacAddr, sender_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&sender_ip.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

fn first_ipv4(link: &str) -> Result<Ipv4Addr> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == link)
        .and_then(|i| {
            i.ips.iter().find_map(|n| match n.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
        })
        .ok_or_else(|| anyhow!("{link} has no IPv4 address"))
}

// ---- `probe` -----------------------------------------------------------------------------------

fn probe_main(vip: IpAddr, port: u16) -> Result<()> {
    // Announcements: a thread on a blocking AF_PACKET socket.
    let (socket, _) = bound("eth0", &announcement_filter())?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut socket = socket;
        loop {
            let Ok(n) = socket.read(&mut buf) else {
                continue;
            };
            let at = now_us();
            let frame = &buf[..n];
            let mac = match vip {
                IpAddr::V4(v4) => match parse_arp(frame) {
                    Ok(arp) if arp.sender_ip == v4 => Some((arp.sender_mac, arp.operation)),
                    _ => None,
                }
                .map(|(mac, op)| {
                    (
                        mac,
                        if op == ArpOperation::Reply {
                            "reply"
                        } else {
                            "request"
                        },
                    )
                }),
                IpAddr::V6(v6) => match parse_neighbor_advertisement(frame) {
                    Ok(na) if na.target == v6 => {
                        na.target_link_layer.or(Some(na.eth_source)).map(|m| {
                            (
                                m,
                                if na.solicited_flag {
                                    "solicited"
                                } else {
                                    "unsolicited"
                                },
                            )
                        })
                    }
                    _ => None,
                },
            };
            if let Some((mac, kind)) = mac {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "A {at} {mac} {kind}");
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let target = std::net::SocketAddr::new(vip, port);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            tokio::spawn(async move {
                let start = now_us();
                let ok = tokio::time::timeout(Duration::from_millis(50), http_get(target))
                    .await
                    .is_ok_and(|r| r.is_ok_and(|body| body.contains("pod=")));
                let end = now_us();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "P {start} {end} {}", if ok { "ok" } else { "fail" });
            });
        }
    })
}

async fn http_get(target: std::net::SocketAddr) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

// ---- `flood` -----------------------------------------------------------------------------------

fn flood_main(vip: Ipv4Addr, seconds: f64, rate: f64) -> Result<()> {
    let link = "eth0";
    let own_ip = first_ipv4(link)?;
    let (flood_tx, mac) = bound(link, &drop_all_filter())?;
    let (mut replies, _) = bound(link, &reply_filter(vip))?;
    replies.set_read_timeout(Some(Duration::from_millis(1)))?;
    let frames: Vec<[u8; 60]> = (100..200u8)
        .map(|i| arp_request(mac, own_ip, Ipv4Addr::new(198, 51, 100, i)))
        .collect();
    let duration = Duration::from_secs_f64(seconds);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood_stop = stop.clone();
    let flood = std::thread::spawn(move || -> Result<(u64, u64, f64)> {
        let start = Instant::now();
        let mut sent: u64 = 0;
        let mut errors: u64 = 0;
        while start.elapsed() < duration && !flood_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            // Catch up in batches; never more than 2 ms' worth at once.
            let batch = due.saturating_sub(sent).min((rate / 500.0) as u64 + 1);
            for _ in 0..batch {
                let frame = &frames[(sent % frames.len() as u64) as usize];
                if flood_tx.send(frame).is_err() {
                    errors += 1;
                }
                sent += 1;
            }
            if due <= sent {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        Ok((sent, errors, start.elapsed().as_secs_f64()))
    });
    // The VIP prober: one request every 10 ms, its reply awaited until the next one is due.
    let request = arp_request(mac, own_ip, vip);
    let start = Instant::now();
    let mut latencies: Vec<f64> = Vec::new();
    let mut lost = 0u64;
    let mut probes = 0u64;
    let mut buf = [0u8; 2048];
    // Let the flood get going first.
    std::thread::sleep(Duration::from_millis(100));
    while start.elapsed() + Duration::from_millis(20) < duration {
        let due = Instant::now() + Duration::from_millis(10);
        // Drain anything late from the previous request.
        replies.set_nonblocking(true)?;
        while replies.read(&mut buf).is_ok() {}
        replies.set_nonblocking(false)?;
        let sent_at = Instant::now();
        replies.send(&request).context("sending the VIP request")?;
        probes += 1;
        let mut answered = false;
        while Instant::now() < due {
            if let Ok(n) = replies.read(&mut buf) {
                let at = Instant::now();
                if parse_arp(&buf[..n]).is_ok_and(|a| a.sender_ip == vip) {
                    latencies.push((at - sent_at).as_secs_f64() * 1e6);
                    answered = true;
                    break;
                }
            }
        }
        if !answered {
            lost += 1;
        }
        let rest = due.saturating_duration_since(Instant::now());
        std::thread::sleep(rest);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, errors, elapsed) = flood
        .join()
        .map_err(|_| anyhow!("flood thread panicked"))??;
    latencies.sort_by(f64::total_cmp);
    println!(
        "FLOOD sent={sent} errors={errors} secs={elapsed:.3} rate={:.0} probes={probes} replies={} lost={lost} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        sent as f64 / elapsed,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

// ---- the probe process, seen from the orchestrator -------------------------------------------

#[derive(Debug, Clone)]
enum Line {
    Probe { start: i64, end: i64, ok: bool },
    Announce { at: i64, mac: String },
}

struct Probe {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Line>,
    seen: Vec<Line>,
}

impl Probe {
    fn start(testbed: &Testbed, vip: IpAddr, port: u16) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &testbed.client.netns])
            .arg(&exe)
            .args(["probe", &vip.to_string(), &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the probe")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let f: Vec<&str> = line.split_whitespace().collect();
                let parsed = match f.as_slice() {
                    ["P", s, e, r] => Some(Line::Probe {
                        start: s.parse().unwrap_or_default(),
                        end: e.parse().unwrap_or_default(),
                        ok: *r == "ok",
                    }),
                    ["A", at, mac, ..] => Some(Line::Announce {
                        at: at.parse().unwrap_or_default(),
                        mac: (*mac).to_string(),
                    }),
                    _ => None,
                };
                if let Some(p) = parsed
                    && tx.send(p).is_err()
                {
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

    /// Reads lines until `done` holds for what was seen, or `timeout`.
    async fn until(&mut self, timeout: Duration, mut done: impl FnMut(&[Line]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.seen) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                _ => return done(&self.seen),
            }
        }
    }

    /// Waits until `n` consecutive probes succeeded.
    async fn wait_healthy(&mut self, n: usize, timeout: Duration) -> bool {
        self.until(timeout, |seen| {
            let probes: Vec<bool> = seen
                .iter()
                .filter_map(|l| match l {
                    Line::Probe { ok, .. } => Some(*ok),
                    Line::Announce { .. } => None,
                })
                .collect();
            probes.len() >= n && probes[probes.len() - n..].iter().all(|ok| *ok)
        })
        .await
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The end time of the first successful probe started at or after `t0`.
fn first_ok_after(seen: &[Line], t0: i64) -> Option<i64> {
    seen.iter()
        .filter_map(|l| match l {
            Line::Probe { start, end, ok } if *ok && *start >= t0 => Some(*end),
            _ => None,
        })
        .min()
}

// ---- the orchestrator -----------------------------------------------------------------------------

/// Pause between a run's settling and its disruption.
const SETTLE: Duration = Duration::from_secs(3);

const OURS: &[&str] = &["cfg-l2bench", "cfg-l2bench-scale", "metallb-system"];
const PORTS: SpeakerPorts = SpeakerPorts {
    membership: 17800,
    metrics: 17801,
};
const SCALE_PORTS: SpeakerPorts = SpeakerPorts {
    membership: 17810,
    metrics: 17811,
};

async fn wait_alone(what: &str) -> Result<()> {
    ferrolb_e2e::wait_alone("l2-bench", OURS, what, Duration::from_secs(15 * 60)).await
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

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct Lab {
    scenario: Scenario,
    speakers: BTreeMap<String, ManagedProcess>,
    pods: Vec<Pod>,
}

impl Lab {
    fn testbed(&self) -> &Testbed {
        &self.scenario.testbed
    }

    async fn announcer(&self, service: &str) -> Result<String> {
        let statuses = self.scenario.l2_statuses(service).await?;
        let nodes: Vec<String> = statuses.iter().filter_map(|s| s.node.clone()).collect();
        ensure!(
            nodes.len() == 1,
            "ServiceL2Status nodes of {service}: {nodes:?}"
        );
        Ok(nodes[0].clone())
    }

    fn mac_of(&self, node: &str) -> Result<String> {
        Ok(self.testbed().node(node)?.host.mac.to_lowercase())
    }

    /// The MACs of the node's eth0 and (second LAN) eth1.
    fn macs_of(&self, node: &str) -> Result<Vec<String>> {
        let host = &self.testbed().node(node)?.host;
        let mut macs = vec![host.mac.to_lowercase()];
        macs.extend(host.eth1.as_ref().map(|e| e.mac.to_lowercase()));
        Ok(macs)
    }

    async fn neighbour_mac(&self, vip: IpAddr) -> Result<Option<String>> {
        let out = self
            .testbed()
            .exec(
                &self.testbed().client.netns,
                &["ip", "neigh", "show", &vip.to_string()],
            )
            .await?;
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        Ok(words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|i| words.get(i + 1))
            .map(|m| m.to_lowercase()))
    }

    async fn flush_neighbour(&self, vip: IpAddr) -> Result<()> {
        let family = if vip.is_ipv4() { "-4" } else { "-6" };
        self.testbed()
            .exec(
                &self.testbed().client.netns,
                &["ip", family, "neigh", "flush", "to", &vip.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Waits until one node announces `service` per its ServiceL2Status, the client's neighbour
    /// entry for `vip` names that node, and a request through `vip` succeeds. Returns the node.
    /// Waits until `vip` is settled on one node, past the previous run's handover, and a probe
    /// from the client reaches it; returns the announcing node and the running probe.
    async fn ready_for_run(
        &self,
        service: &str,
        vip: IpAddr,
        run: usize,
    ) -> Result<(String, Probe)> {
        let node = self.settled(service, vip).await?;
        // The speaker that held the address while the restarted one joined keeps answering
        // for 2 s (the speaker's HANDOVER_HOLD); a run starting inside that window would
        // measure a handover between two answering nodes.
        tokio::time::sleep(SETTLE).await;
        let mut probe = Probe::start(self.testbed(), vip, 80)?;
        ensure!(
            probe.wait_healthy(20, Duration::from_secs(10)).await,
            "the probe does not reach {vip} before run {run}"
        );
        Ok((node, probe))
    }

    async fn settled(&self, service: &str, vip: IpAddr) -> Result<String> {
        let url = match vip {
            IpAddr::V4(v4) => format!("http://{v4}/"),
            IpAddr::V6(v6) => format!("http://[{v6}]/"),
        };
        wait_until(
            &format!("{service} ({vip}) to settle"),
            Duration::from_secs(60),
            || async {
                let node = self.announcer(service).await.map_err(|e| e.to_string())?;
                let body = self
                    .testbed()
                    .http_get_from_client(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                if !body.contains("pod=") {
                    return Err(format!("answer {body:?}"));
                }
                let mac = self.neighbour_mac(vip).await.map_err(|e| e.to_string())?;
                let want = self.mac_of(&node).map_err(|e| e.to_string())?;
                if mac.as_deref() != Some(want.as_str()) {
                    // An entry learnt before the last move; ask again.
                    let _ = self.flush_neighbour(vip).await;
                    return Err(format!("{node} announces but the client has {mac:?}"));
                }
                let again = self.announcer(service).await.map_err(|e| e.to_string())?;
                if again != node {
                    return Err(format!("moved from {node} to {again}"));
                }
                Ok(node)
            },
        )
        .await
    }

    async fn restart_speaker(&mut self, node: &str) -> Result<()> {
        let process = self.scenario.start_speaker(node, PORTS, &[])?;
        self.scenario
            .wait_speaker_ready(node, PORTS, &process)
            .await?;
        self.speakers.insert(node.to_string(), process);
        Ok(())
    }
}

/// `testbed pod add`, after forgetting the node's neighbour entries on its pod bridge: a new
/// pod often gets the address of one just removed, and a stale entry for the old pod's MAC
/// keeps the node from reaching it for longer than `pod add` waits.
async fn add_pod(testbed: &Testbed, name: &str, node: &str) -> Result<Pod> {
    let flush = || {
        std::process::Command::new("ip")
            .args(["-n", node, "neigh", "flush", "dev", "cni0"])
            .status()
    };
    flush()?;
    match testbed.add_pod(name, node).await {
        Ok(pod) => Ok(pod),
        Err(err) => {
            eprintln!("l2-bench: pod {name} on {node}: {err:#}; once more");
            flush()?;
            testbed.add_pod(name, node).await
        }
    }
}

const CONFIG: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec:
  addresses: ["198.51.100.250-198.51.100.254", "2001:db8:100::250-2001:db8:100::254"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bench}
spec:
  ipAddressPools: [bench]
"#;

async fn start_lab() -> Result<Lab> {
    let mut scenario = Scenario::new("l2bench").await?;
    scenario.clear_l2_statuses().await?;
    scenario.apply(CONFIG).await?;
    scenario.start_controller()?;
    let speakers = scenario.start_speakers(PORTS, &[]).await?;
    let mut pods = Vec::new();
    for node in scenario.testbed.nodes.clone() {
        let name = format!("l2bench-{}", node.name);
        pods.push(add_pod(&scenario.testbed, &name, &node.name).await?);
    }
    Ok(Lab {
        scenario,
        speakers,
        pods,
    })
}

async fn create_web(lab: &Lab, name: &str, family: Family) -> Result<IpAddr> {
    let spec = lab.scenario.service(name, &[family]);
    let pods: Vec<&Pod> = lab.pods.iter().collect();
    lab.testbed()
        .publish_endpoints(&lab.scenario.kube, &spec, &pods)
        .await?;
    if lab.scenario.services().get_opt(name).await?.is_none() {
        lab.testbed()
            .create_service(&lab.scenario.kube, &spec)
            .await?;
    }
    let ips = lab.scenario.wait_assigned(name).await?;
    Ok(ips[0])
}

type Rows = Vec<(String, String)>;

/// 1. Node loss: SIGKILL + link down at T0; first successful probe after T0.
async fn failover(lab: &mut Lab, runs: usize, rows: &mut Rows) -> Result<()> {
    for (service, family) in [("web4", Family::V4), ("web6", Family::V6)] {
        let vip = create_web(lab, service, family).await?;
        let mut times = Vec::new();
        let mut announce = Vec::new();
        let mut down_ms = Vec::new();
        let mut moved_to = BTreeMap::<String, usize>::new();
        for run in 0..runs {
            let (node, mut probe) = lab.ready_for_run(service, vip, run).await?;
            wait_alone("taking a node's link down").await?;
            let old_macs = lab.macs_of(&node)?;
            let mut link = LinkDown::prepare(lab.testbed(), &node)?;
            let mut speaker = lab
                .speakers
                .remove(&node)
                .context("no speaker on the announcing node")?;
            let t0 = now_us();
            speaker.kill()?;
            link.take_down()?;
            // Probes started before the link is actually down may still pass through it.
            let t_down = now_us();
            let found = probe
                .until(Duration::from_secs(10), |seen| {
                    first_ok_after(seen, t_down).is_some()
                })
                .await;
            // A little longer, for the announcement lines.
            probe.until(Duration::from_millis(100), |_| false).await;
            let first = first_ok_after(&probe.seen, t_down);
            down_ms.push((t_down - t0) as f64 / 1000.0);
            let first_announce = probe
                .seen
                .iter()
                .filter_map(|l| match l {
                    Line::Announce { at, mac } if *at >= t0 && !old_macs.contains(mac) => {
                        Some((*at, mac.clone()))
                    }
                    _ => None,
                })
                .min();
            probe.stop().await;
            tokio::task::spawn_blocking(move || link.restore()).await??;
            lab.restart_speaker(&node).await?;
            let Some(first) = first.filter(|_| found) else {
                bail!(
                    "{service}: no successful request through {vip} within 10 s of losing {node}"
                );
            };
            let ms = (first - t0) as f64 / 1000.0;
            eprintln!(
                "l2-bench: failover {service} run {run}: lost {node}, first success after {ms:.1} ms"
            );
            times.push(ms);
            if let Some((at, mac)) = first_announce {
                announce.push((at - t0) as f64 / 1000.0);
                let name = lab
                    .testbed()
                    .nodes
                    .iter()
                    .find(|n| lab.macs_of(&n.name).is_ok_and(|m| m.contains(&mac)))
                    .map_or(mac.clone(), |n| n.name.clone());
                *moved_to.entry(name).or_default() += 1;
            }
        }
        let label = if family == Family::V4 { "IPv4" } else { "IPv6" };
        rows.push((
            format!("failover on node loss, {label} ({runs} runs): SIGKILL + eth0 down → first successful HTTP request through the VIP"),
            format!(
                "median {:.0} ms, worst {:.0} ms (runs: {}); only requests started after `link set down` returned count (median {:.1} ms after T0)",
                median(&times),
                worst(&times),
                list_ms(&times),
                median(&down_ms)
            ),
        ));
        rows.push((
            format!("… of which: first announcement from the new node seen by the client, {label}"),
            format!(
                "median {:.0} ms, worst {:.0} ms ({} of {runs} runs seen; taken over by {:?})",
                median(&announce),
                worst(&announce),
                announce.len(),
                moved_to
            ),
        ));
    }
    Ok(())
}

/// Graceful handover (2.): SIGTERM at T0; first announcement from another node on the
/// client's wire, then the first successful probe started after it.
async fn handover(lab: &mut Lab, runs: usize, rows: &mut Rows) -> Result<()> {
    for (service, family) in [("web4", Family::V4), ("web6", Family::V6)] {
        let vip = create_web(lab, service, family).await?;
        let mut announce = Vec::new();
        let mut success = Vec::new();
        let mut neighbour_ok = 0;
        for run in 0..runs {
            let (node, mut probe) = lab.ready_for_run(service, vip, run).await?;
            let old_mac = lab.mac_of(&node)?;
            let mut speaker = lab
                .speakers
                .remove(&node)
                .context("no speaker on the announcing node")?;
            let t0 = now_us();
            let stopping = tokio::task::spawn_blocking(move || {
                let result = speaker.terminate();
                (speaker, result)
            });
            let announced_after = |seen: &[Line]| {
                seen.iter()
                    .filter_map(|l| match l {
                        Line::Announce { at, mac } if *at >= t0 && *mac != old_mac => Some(*at),
                        _ => None,
                    })
                    .min()
            };
            let found = probe
                .until(Duration::from_secs(10), |seen| {
                    announced_after(seen).is_some_and(|a| first_ok_after(seen, a).is_some())
                })
                .await;
            let a = announced_after(&probe.seen);
            let ok = a.and_then(|a| first_ok_after(&probe.seen, a));
            probe.stop().await;
            let (_speaker, result) = stopping.await?;
            if let Err(err) = result {
                eprintln!("l2-bench: {node}'s speaker: {err:#}");
            }
            let neighbour = lab.neighbour_mac(vip).await?;
            if neighbour.is_some_and(|m| m != old_mac) {
                neighbour_ok += 1;
            }
            lab.restart_speaker(&node).await?;
            let (Some(a), Some(ok), true) = (a, ok, found) else {
                bail!(
                    "{service}: no announcement + success through another node within 10 s of SIGTERM to {node}'s speaker"
                );
            };
            let a_ms = (a - t0) as f64 / 1000.0;
            let ok_ms = (ok - t0) as f64 / 1000.0;
            eprintln!(
                "l2-bench: handover {service} run {run}: {node} stopped, announcement after {a_ms:.1} ms, success after {ok_ms:.1} ms"
            );
            announce.push(a_ms);
            success.push(ok_ms);
        }
        let label = if family == Family::V4 { "IPv4" } else { "IPv6" };
        rows.push((
            format!("graceful handover, {label} ({runs} runs): SIGTERM → first gratuitous ARP / unsolicited NA from the new node at the client"),
            format!(
                "median {:.1} ms, worst {:.1} ms (runs: {})",
                median(&announce),
                worst(&announce),
                list_ms(&announce)
            ),
        ));
        rows.push((
            format!("graceful handover, {label}: SIGTERM → first successful request started after that announcement"),
            format!(
                "median {:.1} ms, worst {:.1} ms; client neighbour entry on the new MAC afterwards in {neighbour_ok}/{runs} runs",
                median(&success),
                worst(&success),
            ),
        ));
    }
    Ok(())
}

/// 3. Service created → first successful request through its (requested) address.
async fn create_to_traffic(lab: &mut Lab, runs: usize, rows: &mut Rows) -> Result<()> {
    // The failover Services go; their addresses are used here.
    for name in ["web4", "web6"] {
        if lab.scenario.services().get_opt(name).await?.is_some() {
            lab.scenario
                .services()
                .delete(name, &DeleteParams::default())
                .await?;
        }
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut ingress_at = Vec::new();
    let mut announce_at = Vec::new();
    for run in 0..runs {
        let family = if run % 2 == 0 { Family::V4 } else { Family::V6 };
        let k = 250 + (run / 2) % 5;
        let vip: IpAddr = match family {
            Family::V4 => format!("198.51.100.{k}").parse()?,
            Family::V6 => format!("2001:db8:100::{k}").parse()?,
        };
        let name = format!("create-{run}");
        let mut spec = lab.scenario.service(&name, &[family]);
        spec.annotations
            .insert("metallb.io/loadBalancerIPs".into(), vip.to_string());
        let pods: Vec<&Pod> = lab.pods.iter().collect();
        lab.testbed()
            .publish_endpoints(&lab.scenario.kube, &spec, &pods)
            .await?;
        lab.flush_neighbour(vip).await?;
        let mut probe = Probe::start(lab.testbed(), vip, 80)?;
        // The probe is running once it reports its first (failed) request.
        probe
            .until(Duration::from_secs(5), |seen| {
                seen.iter().any(|l| matches!(l, Line::Probe { .. }))
            })
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = now_us();
        lab.testbed()
            .create_service(&lab.scenario.kube, &spec)
            .await?;
        let api = lab.scenario.services();
        let watched = name.clone();
        let status = tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(15);
            while Instant::now() < until {
                if let Ok(s) = api.get(&watched).await
                    && !ingress_ips(&s).is_empty()
                {
                    return Some(now_us());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        });
        let found = probe
            .until(Duration::from_secs(15), |seen| {
                first_ok_after(seen, t0).is_some()
            })
            .await;
        let first = first_ok_after(&probe.seen, t0);
        let announced = probe
            .seen
            .iter()
            .filter_map(|l| match l {
                Line::Announce { at, .. } if *at >= t0 => Some(*at),
                _ => None,
            })
            .min();
        probe.stop().await;
        if let Ok(Some(at)) = status.await {
            ingress_at.push((at - t0) as f64 / 1000.0);
        }
        if let Some(at) = announced {
            announce_at.push((at - t0) as f64 / 1000.0);
        }
        let ips = lab.scenario.ingress(&name).await?;
        lab.scenario
            .services()
            .delete(&name, &DeleteParams::default())
            .await?;
        let Some(first) = first.filter(|_| found) else {
            bail!("{name}: no successful request through {vip} within 15 s (ingress {ips:?})");
        };
        let ms = (first - t0) as f64 / 1000.0;
        eprintln!("l2-bench: create run {run}: {vip} reachable after {ms:.1} ms");
        match family {
            Family::V4 => v4.push(ms),
            Family::V6 => v6.push(ms),
        }
        // Let the speakers withdraw before the address is used again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut all: Vec<f64> = v4.iter().chain(&v6).copied().collect();
    all.sort_by(f64::total_cmp);
    v4.sort_by(f64::total_cmp);
    v6.sort_by(f64::total_cmp);
    rows.push((
        format!("Service created → first successful request through the VIP ({runs} runs, IPv4 and IPv6 alternating, address requested by annotation)"),
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (IPv4 p50 {:.0} ms, IPv6 p50 {:.0} ms)",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all.last().copied().unwrap_or(f64::NAN),
            percentile(&v4, 0.5),
            percentile(&v6, 0.5)
        ),
    ));
    rows.push((
        "… of which: create → `status.loadBalancer.ingress` set (polled every 5 ms)".into(),
        format!(
            "median {:.0} ms, worst {:.0} ms",
            median(&ingress_at),
            worst(&ingress_at)
        ),
    ));
    rows.push((
        "… of which: create → first ARP / NA for the VIP from a node at the client".into(),
        format!(
            "median {:.0} ms, worst {:.0} ms ({} of {runs} runs)",
            median(&announce_at),
            worst(&announce_at),
            announce_at.len()
        ),
    ));
    Ok(())
}

/// 4. ARP reply latency for the VIP while the client floods ARP requests for other addresses.
async fn flood(lab: &mut Lab, seconds: f64, rate: f64, rows: &mut Rows) -> Result<()> {
    let vip = create_web(lab, "flood4", Family::V4).await?;
    let IpAddr::V4(vip4) = vip else {
        bail!("not IPv4")
    };
    let node = lab.settled("flood4", vip).await?;
    let pid = lab.speakers[&node].pid().context("speaker not running")?;
    wait_alone("the ARP flood").await?;
    let exe = std::env::current_exe()?;
    // The same prober without a flood, for the measurement's own floor.
    let quiet = lab
        .testbed()
        .exec(
            &lab.testbed().client.netns,
            &[
                exe.to_string_lossy().as_ref(),
                "flood",
                &vip4.to_string(),
                "3",
                "0",
            ],
        )
        .await?;
    if let Some(line) = quiet.stdout.lines().find(|l| l.starts_with("FLOOD")) {
        let kv: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let us = |k: &str| {
            kv.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .map_or("?".to_string(), |v| format!("{:.3} ms", v / 1000.0))
        };
        rows.push((
            "ARP request for the VIP every 10 ms, no flood (3 s): request → reply at the client"
                .into(),
            format!(
                "p50 {}, p99 {}, max {}; {} lost of {}",
                us("p50_us"),
                us("p99_us"),
                us("max_us"),
                kv.get("lost").unwrap_or(&"?"),
                kv.get("probes").unwrap_or(&"?")
            ),
        ));
    }
    let rss_before = proc_status_kib(pid, "VmRSS:").unwrap_or_default();
    let cpu_before = cpu_ticks(pid).unwrap_or_default();
    let out = lab
        .testbed()
        .exec(
            &lab.testbed().client.netns,
            &[
                exe.to_string_lossy().as_ref(),
                "flood",
                &vip4.to_string(),
                &seconds.to_string(),
                &rate.to_string(),
            ],
        )
        .await?;
    let cpu_after = cpu_ticks(pid).unwrap_or_default();
    let rss_after = proc_status_kib(pid, "VmRSS:").unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_later = proc_status_kib(pid, "VmRSS:").unwrap_or_default();
    let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or_default();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("FLOOD"))
        .with_context(|| format!("flood printed no result: {} {}", out.stdout, out.stderr))?;
    let kv: BTreeMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    let get = |k: &str| kv.get(k).copied().unwrap_or("?");
    rows.push((
        format!("ARP flood from the client: requests for 198.51.100.100-199, {seconds} s"),
        format!(
            "{} frames/s achieved ({} sent, {} send errors)",
            get("rate"),
            get("sent"),
            get("errors")
        ),
    ));
    let us = |k: &str| {
        get(k)
            .parse::<f64>()
            .map_or("?".to_string(), |v| format!("{:.3} ms", v / 1000.0))
    };
    rows.push((
        "… ARP request for the VIP every 10 ms during the flood: request → reply at the client"
            .into(),
        format!(
            "p50 {}, p99 {}, max {}; {} replies to {} requests, {} lost (no reply within 10 ms)",
            us("p50_us"),
            us("p99_us"),
            us("max_us"),
            get("replies"),
            get("probes"),
            get("lost")
        ),
    ));
    let ticks = cpu_after.saturating_sub(cpu_before);
    rows.push((
        format!("… announcing speaker ({node}) RSS before → after the flood (2 s later), CPU time during it"),
        format!(
            "{} → {} ({}); peak {}; CPU {:.2} s (utime+stime) in {seconds} s",
            mib(rss_before),
            mib(rss_after),
            mib(rss_later),
            mib(hwm),
            ticks as f64 / 100.0
        ),
    ));
    lab.scenario
        .services()
        .delete("flood4", &DeleteParams::default())
        .await?;
    Ok(())
}

/// 5. Speaker RSS with `count` announced Services.
async fn scale(count: usize, rows: &mut Rows) -> Result<()> {
    let mut scenario = Scenario::new("l2bench-scale").await?;
    scenario.clear_l2_statuses().await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: scale}
spec:
  addresses: ["198.19.0.0-198.19.3.255"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: scale}
spec:
  ipAddressPools: [scale]
"#,
        )
        .await?;
    scenario.start_controller()?;
    let speakers = scenario.start_speakers(SCALE_PORTS, &[]).await?;
    let testbed = scenario.testbed.clone();
    let pod = add_pod(&testbed, "l2bench-scale", "node-1").await?;
    let result = scale_inner(&scenario, &speakers, &pod, count, rows).await;
    if let Err(err) = testbed
        .clear_namespace(&scenario.kube, &scenario.namespace)
        .await
    {
        eprintln!("l2-bench: cleaning {}: {err:#}", scenario.namespace);
    }
    // Give the speakers a moment to withdraw, then stop them and clear what they wrote.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(speakers);
    scenario.clear_l2_statuses().await?;
    drop(pod);
    result
}

async fn scale_inner(
    scenario: &Scenario,
    speakers: &BTreeMap<String, ManagedProcess>,
    pod: &Pod,
    count: usize,
    rows: &mut Rows,
) -> Result<()> {
    let names: Vec<String> = (0..count).map(|i| format!("s-{i}")).collect();
    let testbed = &scenario.testbed;
    let idle: Vec<String> = speakers
        .iter()
        .map(|(node, p)| {
            let rss = p.pid().and_then(|pid| proc_status_kib(pid, "VmRSS:"));
            format!("{node} {}", mib(rss.unwrap_or_default()))
        })
        .collect();
    rows.push((
        "speaker RSS with no Service (ready, same config)".into(),
        idle.join(", "),
    ));
    futures::stream::iter(names.iter())
        .map(|name| async move {
            let spec = ServiceSpec::new(&scenario.namespace, name, &[Family::V4]);
            testbed
                .publish_endpoints(&scenario.kube, &spec, &[pod])
                .await
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    let api = scenario.services();
    let start = Instant::now();
    futures::stream::iter(names.iter())
        .map(|name| {
            let api = api.clone();
            let object: Result<Service> = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": scenario.namespace},
                "spec": {
                    "type": "LoadBalancer",
                    "loadBalancerClass": scenario.class,
                    "allocateLoadBalancerNodePorts": false,
                    "selector": {"app": name},
                    "ipFamilies": ["IPv4"],
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            }))
            .map_err(Into::into);
            async move {
                api.create(&PostParams::default(), &object?)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    let created = start.elapsed();
    let last_created = Instant::now();
    let mut announced;
    let mut per_node = BTreeMap::new();
    loop {
        announced = 0;
        for node in speakers.keys() {
            let text = scenario
                .speaker_metrics(node, SCALE_PORTS)
                .await
                .unwrap_or_default();
            let n = text
                .lines()
                .filter(|l| l.starts_with("metallb_speaker_announced{"))
                .filter(|l| {
                    l.split_whitespace()
                        .last()
                        .and_then(|v| v.parse::<f64>().ok())
                        == Some(1.0)
                })
                .count();
            per_node.insert(node.clone(), n);
            announced += n;
        }
        if announced >= count {
            break;
        }
        if last_created.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {announced} of {count} announced 300 s after the last create ({per_node:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_after = last_created.elapsed();
    let assigned = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|s| !ingress_ips(s).is_empty())
        .count();
    let mut rss = Vec::new();
    for (node, process) in speakers {
        let pid = process.pid().context("speaker gone")?;
        rss.push((
            node.clone(),
            proc_status_kib(pid, "VmRSS:").unwrap_or_default(),
            proc_status_kib(pid, "VmHWM:").unwrap_or_default(),
        ));
    }
    let max = rss.iter().map(|r| r.1).max().unwrap_or_default();
    rows.push((
        format!("{count} Services announced ({assigned} with an address; announced per node {per_node:?}): speaker RSS"),
        format!(
            "max {} ({:.1} MB); {}",
            mib(max),
            max as f64 * 1024.0 / 1e6,
            rss.iter()
                .map(|(n, r, h)| format!("{n} {} (peak {})", mib(*r), mib(*h)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    rows.push((
        format!("{count} Services: last create returned → all announced (sum of metallb_speaker_announced, polled every 100 ms)"),
        format!(
            "{:.0} ms (creating them took {:.0} ms)",
            all_after.as_secs_f64() * 1000.0,
            created.as_secs_f64() * 1000.0
        ),
    ));
    Ok(())
}

async fn orchestrate() -> Result<()> {
    let runs = env_usize("BENCH_RUNS", 10);
    let create_runs = env_usize("BENCH_CREATE_RUNS", 20);
    let services = env_usize("BENCH_SERVICES", 1000);
    let flood_seconds: f64 = std::env::var("BENCH_FLOOD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let flood_rate: f64 = std::env::var("BENCH_FLOOD_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000.0);
    let phases: Vec<String> = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "failover,handover,create,flood,scale".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let has = |p: &str| phases.iter().any(|x| x == p);
    let mut rows: Rows = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    if has("failover") || has("handover") || has("create") || has("flood") {
        let mut lab = start_lab().await?;
        if has("handover")
            && let Err(err) = handover(&mut lab, runs, &mut rows).await
        {
            errors.push(format!("handover: {err:#}"));
        }
        if has("failover")
            && let Err(err) = failover(&mut lab, runs, &mut rows).await
        {
            errors.push(format!("failover: {err:#}"));
        }
        if has("flood")
            && let Err(err) = flood(&mut lab, flood_seconds, flood_rate, &mut rows).await
        {
            errors.push(format!("flood: {err:#}"));
        }
        if has("create")
            && let Err(err) = create_to_traffic(&mut lab, create_runs, &mut rows).await
        {
            errors.push(format!("create: {err:#}"));
        }
        let _ = lab
            .testbed()
            .clear_namespace(&lab.scenario.kube, &lab.scenario.namespace)
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        lab.speakers.clear();
        let _ = lab.scenario.clear_l2_statuses().await;
    }
    if has("scale")
        && let Err(err) = scale(services, &mut rows).await
    {
        errors.push(format!("scale: {err:#}"));
    }
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("probe") => {
            let vip: IpAddr = args.get(1).context("probe VIP PORT")?.parse()?;
            let port: u16 = args.get(2).map_or(Ok(80), |p| p.parse())?;
            probe_main(vip, port)
        }
        Some("flood") => {
            let vip: Ipv4Addr = args.get(1).context("flood VIP SECONDS RATE")?.parse()?;
            let seconds: f64 = args.get(2).map_or(Ok(10.0), |p| p.parse())?;
            let rate: f64 = args.get(3).map_or(Ok(50_000.0), |p| p.parse())?;
            flood_main(vip, seconds, rate)
        }
        None | Some("run") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(orchestrate()),
        Some(other) => bail!("unknown subcommand {other}: use probe, flood or run"),
    }
}
