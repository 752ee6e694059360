//! The L2 responder on the real LAN: `l2-responder` runs in node-1's namespace and the client
//! resolves the IPs it owns with `arping` and `ndisc6` to node-1's MAC, gets no answer for an
//! IP it does not own, and has a stale neighbour entry replaced by the gratuitous ARP and
//! unsolicited Neighbor Advertisement sent when the responder takes the IPs.
//!
//! The binary is `target/debug/l2-responder`, built by `cargo build -p ferrolb-l2 --bins`
//! (and by `cargo test --workspace`, which scripts/test runs before the e2e tests).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_testbed::Testbed;

/// A running `l2-responder`, stopped (SIGTERM, then SIGKILL) by pid when dropped.
struct ResponderProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl ResponderProcess {
    /// Starts `l2-responder` in `netns` and waits until it says `ready`.
    fn start(testbed: &Testbed, netns: &str, interface: &str, ips: &[&str]) -> Result<Self> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| testbed.repo().join("target"));
        let binary = target.join("debug/l2-responder");
        ensure!(
            binary.is_file(),
            "{} is missing: build it with `cargo build -p ferrolb-l2 --bins`",
            binary.display()
        );
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns])
            .arg(&binary)
            .args(["--interface", interface]);
        for ip in ips {
            command.args(["--ip", ip]);
        }
        let mut child = command
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                if let Ok(mut stderr) = stderr.lock() {
                    stderr.push_str(&text);
                }
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.trim() == "ready" {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let mut process = ResponderProcess { child, stderr };
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let status = process.child.try_wait().ok().flatten();
            process.stop();
            bail!(
                "l2-responder did not get ready (exit status {status:?}); stderr:\n{}",
                process.stderr()
            );
        }
        Ok(process)
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// SIGTERM by pid, then SIGKILL if it has not exited within 3 s.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ResponderProcess {
    fn drop(&mut self) {
        self.stop();
        // Shown by the test harness when the test fails.
        std::thread::sleep(Duration::from_millis(50));
        eprintln!("l2-responder stderr:\n{}", self.stderr());
    }
}

/// Neighbour entries added on the client, deleted when dropped.
struct NeighbourEntries {
    netns: String,
    entries: Vec<(&'static str, String)>,
}

impl NeighbourEntries {
    /// `ip neigh replace IP lladdr MAC dev eth0 nud stale` in `netns`.
    fn seed(netns: &str, ips: &[&str], mac: &str) -> Result<Self> {
        let mut seeded = NeighbourEntries {
            netns: netns.to_string(),
            entries: Vec::new(),
        };
        for ip in ips {
            let family = if ip.contains(':') { "-6" } else { "-4" };
            let status = Command::new("ip")
                .args(["netns", "exec", netns, "ip", family, "neigh", "replace", ip])
                .args(["lladdr", mac, "dev", "eth0", "nud", "stale"])
                .status()
                .context("running ip neigh replace")?;
            ensure!(status.success(), "ip neigh replace {ip} failed: {status}");
            seeded.entries.push((family, (*ip).to_string()));
        }
        Ok(seeded)
    }
}

impl Drop for NeighbourEntries {
    fn drop(&mut self) {
        for (family, ip) in &self.entries {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.netns,
                    "ip",
                    family,
                    "neigh",
                    "del",
                    ip,
                ])
                .args(["dev", "eth0"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// How the client asks who has an address: ARP (`arping`) or IPv6 NDP (`ndisc6`).
#[derive(Clone, Copy, Debug)]
enum Ask {
    Arp,
    Ndp,
}

/// The MAC that answered the client's ARP or NDP query for `ip` on eth0, if any did.
async fn who_has(testbed: &Testbed, ask: Ask, ip: &str) -> Result<Option<String>> {
    let args = match ask {
        Ask::Arp => ["arping", "-c", "1", "-w", "2", "-i", "eth0", ip],
        Ask::Ndp => ["ndisc6", "-1", "-r", "2", "-w", "1000", ip, "eth0"],
    };
    let out = testbed.exec(&testbed.client.netns, &args).await?;
    let mac = mac_in(&out.stdout);
    ensure!(
        out.success == mac.is_some(),
        "{} exited with success={} but printed {:?}",
        args[0],
        out.success,
        out.stdout
    );
    Ok(mac)
}

fn mac_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '(' || c == ')')
        .find(|word| word.len() == 17 && word.matches(':').count() == 5)
        .map(str::to_lowercase)
}

/// The link-layer address of the client's neighbour entry for `ip` on eth0, if any.
async fn client_neighbour(testbed: &Testbed, ip: &str) -> Result<Option<String>> {
    let family = if ip.contains(':') { "-6" } else { "-4" };
    let out = testbed
        .exec(
            &testbed.client.netns,
            &["ip", family, "neigh", "show", ip, "dev", "eth0"],
        )
        .await?
        .ok()?;
    Ok(out
        .stdout
        .split_whitespace()
        .skip_while(|word| *word != "lladdr")
        .nth(1)
        .map(str::to_lowercase))
}

/// The IPv6 multicast groups `netns`'s eth0 is in.
async fn solicited_node_groups(testbed: &Testbed, netns: &str) -> Result<Vec<String>> {
    let out = testbed
        .exec(netns, &["ip", "-6", "maddr", "show", "dev", "eth0"])
        .await?
        .ok()?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("inet6 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

#[tokio::test]
async fn answers_arp_and_ndp_for_owned_ips_only() -> Result<()> {
    let testbed = Testbed::get();
    let node = testbed.node("node-1")?;
    let responder = ResponderProcess::start(
        &testbed,
        &node.host.netns,
        "eth0",
        &["198.51.100.240", "2001:db8:100::240"],
    )?;

    for (ask, ip) in [
        (Ask::Arp, "198.51.100.240"),
        (Ask::Ndp, "2001:db8:100::240"),
    ] {
        let mac = who_has(&testbed, ask, ip).await?;
        ensure!(
            mac.as_deref() == Some(node.host.mac.as_str()),
            "{ask:?} for owned {ip} answered by {mac:?}, not node-1's {}",
            node.host.mac
        );
    }
    for (ask, ip) in [
        (Ask::Arp, "198.51.100.242"),
        (Ask::Ndp, "2001:db8:100::242"),
    ] {
        let mac = who_has(&testbed, ask, ip).await?;
        ensure!(
            mac.is_none(),
            "{ask:?} for {ip}, owned by no one, answered by {mac:?}"
        );
    }

    // The answers came from the responder: once it stops, nobody answers for its IPs.
    drop(responder);
    for (ask, ip) in [
        (Ask::Arp, "198.51.100.240"),
        (Ask::Ndp, "2001:db8:100::240"),
    ] {
        let mac = who_has(&testbed, ask, ip).await?;
        ensure!(
            mac.is_none(),
            "{ask:?} for {ip} answered by {mac:?} after the responder stopped"
        );
    }
    let groups = solicited_node_groups(&testbed, &node.host.netns).await?;
    ensure!(
        !groups.iter().any(|group| group == "ff02::1:ff00:240"),
        "node-1's eth0 is still in ff02::1:ff00:240 after the responder stopped: {groups:?}"
    );
    Ok(())
}

#[tokio::test]
async fn taking_an_ip_replaces_a_stale_neighbour_entry_on_the_client() -> Result<()> {
    const STALE_MAC: &str = "02:00:00:00:00:01";
    let ips = ["198.51.100.241", "2001:db8:100::241"];
    let testbed = Testbed::get();
    let node = testbed.node("node-1")?;
    let _entries = NeighbourEntries::seed(&testbed.client.netns, &ips, STALE_MAC)?;
    for ip in ips {
        let mac = client_neighbour(&testbed, ip).await?;
        ensure!(
            mac.as_deref() == Some(STALE_MAC),
            "the seeded entry for {ip} reads {mac:?}"
        );
    }

    let started = Instant::now();
    let _responder = ResponderProcess::start(&testbed, &node.host.netns, "eth0", &ips)?;
    // Announcements go out at once and then every 1.1 s for 5 s; nothing on the client asks.
    let mut pending: Vec<&str> = ips.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for ip in pending {
            if client_neighbour(&testbed, ip).await?.as_deref() != Some(node.host.mac.as_str()) {
                still.push(ip);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if started.elapsed() > Duration::from_secs(6) {
            let mut seen = Vec::new();
            for ip in &pending {
                seen.push((ip.to_string(), client_neighbour(&testbed, ip).await?));
            }
            bail!(
                "after {:?} the client's entries still do not name node-1's {}: {seen:?}",
                started.elapsed(),
                node.host.mac
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "client learned node-1's MAC for {ips:?} within {:?} of the start",
        started.elapsed()
    );
    Ok(())
}

/// `tcpdump` on the client's eth0, stopped by pid when dropped.
struct Capture {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Capture {
    /// Starts capturing ARP and ICMPv6 with epoch timestamps; returns once tcpdump listens.
    fn start(netns: &str) -> Result<Self> {
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", netns, "tcpdump", "-i", "eth0", "-n", "-e", "-tt", "-l",
            ])
            .args(["arp or icmp6"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let (line_tx, lines) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(pipe) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening on") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let mut capture = Capture { child, lines };
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            capture.stop();
            bail!("tcpdump did not start listening on the client's eth0");
        }
        Ok(capture)
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the capture and returns every line it printed.
    fn finish(mut self) -> Vec<String> {
        self.stop();
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
        lines
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.stop();
        }
    }
}

fn epoch_seconds(line: &str) -> Option<f64> {
    line.split_whitespace().next()?.parse().ok()
}

#[tokio::test]
async fn announcements_follow_metallbs_schedule() -> Result<()> {
    let (ip4, ip6) = ("198.51.100.243", "2001:db8:100::243");
    let testbed = Testbed::get();
    let node = testbed.node("node-1")?;
    let capture = Capture::start(&testbed.client.netns)?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs_f64();
    let responder = ResponderProcess::start(&testbed, &node.host.netns, "eth0", &[ip4, ip6])?;
    tokio::time::sleep(Duration::from_millis(5_800)).await;
    drop(responder);
    let lines = capture.finish();

    let from_node: Vec<&String> = lines
        .iter()
        .filter(|line| line.split_whitespace().nth(1) == Some(node.host.mac.as_str()))
        .collect();
    let arp: Vec<f64> = from_node
        .iter()
        .filter(|line| {
            // "Request who-has IP (ff:ff:ff:ff:ff:ff) tell IP" and "Reply IP is-at MAC".
            (line.contains(&format!("who-has {ip4} "))
                && line.ends_with(&format!("tell {ip4}, length 46")))
                || line.contains(&format!("Reply {ip4} is-at {}", node.host.mac))
        })
        .filter_map(|line| epoch_seconds(line))
        .collect();
    let na: Vec<f64> = from_node
        .iter()
        .filter(|line| line.contains(&format!("neighbor advertisement, tgt is {ip6}")))
        .filter_map(|line| epoch_seconds(line))
        .collect();
    eprintln!(
        "gratuitous ARP at {:?} s, unsolicited NA at {:?} s after the start",
        arp.iter().map(|t| t - started).collect::<Vec<_>>(),
        na.iter().map(|t| t - started).collect::<Vec<_>>()
    );
    // Five rounds: at once, then every 1.1 s (a request and a reply per ARP round).
    ensure!(
        arp.len() == 10,
        "{} gratuitous ARP frames, not 10: {lines:#?}",
        arp.len()
    );
    ensure!(
        na.len() == 5,
        "{} unsolicited NAs, not 5: {lines:#?}",
        na.len()
    );
    for times in [&arp, &na] {
        let (first, last) = (times[0], times[times.len() - 1]);
        ensure!(
            first - started < 1.0,
            "the first announcement came {:.3} s after the start",
            first - started
        );
        ensure!(
            (4.2..4.8).contains(&(last - first)),
            "the announcements span {:.3} s, not 4.4",
            last - first
        );
    }
    Ok(())
}
