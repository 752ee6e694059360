//! Taking a node's LAN link down and bringing it back whole: what the node-loss tests and
//! benchmarks need.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

use crate::Testbed;

/// A node's LAN link taken down; set up again when dropped (also when a test fails).
///
/// `ip link set eth0 down` makes the kernel drop what hangs off the link: the node's IPv6
/// addresses on it (`keep_addr_on_down` is 0) and every route through it (to the other nodes'
/// pods, to the router's networks). They are recorded before and put back after, and the node
/// must answer ARP and NDP from the client again before the guard is done.
pub struct LinkDown {
    node: String,
    ip4: String,
    ip6: String,
    /// `ip -o addr show dev eth0 scope global` entries: ("-4" | "-6", "ADDR/PREFIX").
    addresses: Vec<Entry>,
    /// `ip route show` lines through eth0 via a gateway, per family.
    routes: Vec<Entry>,
    down: bool,
}

/// An address or route of one family: ("-4" | "-6", text).
type Entry = (&'static str, String);

fn ip_in(netns: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "ip -n {netns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl LinkDown {
    fn snapshot(node: &str) -> Result<(Vec<Entry>, Vec<Entry>)> {
        let mut addresses = Vec::new();
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            let text = ip_in(
                node,
                &[
                    family, "-o", "addr", "show", "dev", "eth0", "scope", "global",
                ],
            )?;
            for line in text.lines() {
                let mut words = line.split_whitespace();
                if words.any(|w| w == "inet" || w == "inet6")
                    && let Some(address) = words.next()
                {
                    addresses.push((family, address.to_string()));
                }
            }
            let text = ip_in(node, &[family, "route", "show"])?;
            for line in text.lines() {
                if line.contains(" dev eth0")
                    && line.contains(" via ")
                    && !line.contains("proto kernel")
                {
                    let cleaned: Vec<&str> = line
                        .split_whitespace()
                        .filter(|w| !matches!(*w, "linkdown" | "dead" | "offload"))
                        .collect();
                    routes.push((family, cleaned.join(" ")));
                }
            }
        }
        Ok((addresses, routes))
    }

    /// Records what `node`'s eth0 carries; nothing changes yet.
    pub fn prepare(testbed: &Testbed, node: &str) -> Result<Self> {
        let (addresses, routes) = Self::snapshot(node)?;
        let host = &testbed.node(node)?.host;
        let guard = Self {
            node: node.to_string(),
            ip4: host.ip4.to_string(),
            ip6: host.ip6.to_string(),
            addresses,
            routes,
            down: false,
        };
        Ok(guard)
    }

    /// `ip -n NODE link set eth0 down`; from here on, dropping the guard brings it back.
    pub fn take_down(&mut self) -> Result<()> {
        self.down = true;
        ip_in(&self.node, &["link", "set", "eth0", "down"])?;
        Ok(())
    }

    /// Sets the link up, puts back its addresses and routes, checks they are as before, and
    /// waits until the node answers ARP and NDP from the client again.
    pub fn restore(&mut self) -> Result<()> {
        let node = self.node.clone();
        ip_in(&node, &["link", "set", "eth0", "up"])?;
        self.down = false;
        for (family, address) in &self.addresses {
            let mut args = vec![*family, "addr", "replace", address.as_str(), "dev", "eth0"];
            if *family == "-6" {
                args.push("nodad");
            }
            ip_in(&node, &args)?;
        }
        for (family, route) in &self.routes {
            let mut args = vec![*family, "route", "replace"];
            args.extend(route.split_whitespace());
            // A gateway may not be reachable for a moment after the link comes up.
            let mut attempts = 0;
            while let Err(error) = ip_in(&node, &args) {
                attempts += 1;
                if attempts == 50 {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let (addresses, routes) = Self::snapshot(&node)?;
        ensure!(
            addresses == self.addresses && routes == self.routes,
            "{node} after its link came back: addresses {addresses:?} and routes {routes:?}, before {:?} and {:?}",
            self.addresses,
            self.routes
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let client = |args: &[&str]| {
                std::process::Command::new("ip")
                    .args(["netns", "exec", "client"])
                    .args(args)
                    .output()
                    .is_ok_and(|out| out.status.success())
            };
            if client(&[
                "arping", "-c", "1", "-C", "1", "-w", "1", "-i", "eth0", &self.ip4,
            ]) && client(&[
                "ndisc6", "-1", "-n", "-r", "1", "-w", "1000", &self.ip6, "eth0",
            ]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{node} ({}, {}) does not answer ARP and NDP 20 s after its link came back",
                    self.ip4,
                    self.ip6
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        if self.down
            && let Err(err) = self.restore()
        {
            eprintln!("restoring {}'s eth0: {err:#}", self.node);
        }
    }
}
