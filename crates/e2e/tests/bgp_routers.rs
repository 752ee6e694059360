//! The router helpers (`ferrolb_testbed::routers`) against real BGP speakers that are not
//! ferrolb: gobgpd in a node's namespace stands in for the speaker (and BIRD for a BFD peer),
//! so that a later failure of a ferrolb BGP test points at ferrolb, not at these helpers.
//!
//! FRR, BIRD and GoBGP take turns as the router: they all listen on port 179 in its namespace,
//! so the tests hold one lock (and are run with `--test-threads=1` besides).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferrolb_testbed::routers::{
    BfdTimers, Daemon, IpNet, Neighbor, RibRoute, Router, RouterConfig,
};
use ferrolb_testbed::{ManagedProcess, Node, Testbed, wait_until};

static ROUTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ROUTER_ASN: u32 = 64500;
const NODE_ASN: u32 = 64512;
const PASSWORD: &str = "ferrolb-md5";
/// Each stand-in's gRPC API, on the loopback of its own node namespace.
const STAND_IN_API_PORT: &str = "50052";
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

fn write_file(name: &str, text: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("ferrolb-e2e-bgp-routers");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// gobgpd in a node's namespace, peering with the router over IPv4 (with an MD5 password if
/// given) and IPv6 (never with one). Dropping it kills it by pid.
struct StandIn {
    process: ManagedProcess,
    netns: String,
}

impl StandIn {
    async fn start(
        testbed: &Testbed,
        node: &Node,
        asn: u32,
        password: Option<&str>,
    ) -> Result<Self> {
        let router = &testbed.router;
        let mut config = format!(
            "[global.config]\n  as = {asn}\n  router-id = \"{}\"\n",
            node.host.ip4
        );
        for (address, family, password) in [
            (IpAddr::from(router.ip4), "ipv4-unicast", password),
            (IpAddr::from(router.ip6), "ipv6-unicast", None),
        ] {
            config += &format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{address}\"\n    peer-as = {ROUTER_ASN}\n"
            );
            if let Some(password) = password {
                config += &format!("    auth-password = \"{password}\"\n");
            }
            config += &format!(
                "  [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
            );
        }
        let path = write_file(&format!("stand-in-{}.toml", node.name), &config)?;
        let path = path.to_string_lossy();
        let api = format!("127.0.0.1:{STAND_IN_API_PORT}");
        let mut process = testbed.start_process(
            &format!("stand-in-gobgpd-{}", node.name),
            Path::new("ip"),
            &[
                "netns",
                "exec",
                &node.name,
                "gobgpd",
                "-f",
                &path,
                "-t",
                "toml",
                "--api-hosts",
                &api,
                "--pprof-disable",
            ],
        )?;
        let stand_in_ready = wait_until(
            &format!("the stand-in gobgpd on {} to answer", node.name),
            Duration::from_secs(10),
            || async {
                let out = testbed
                    .exec(
                        &node.name,
                        &[
                            "gobgp",
                            "-u",
                            "127.0.0.1",
                            "-p",
                            STAND_IN_API_PORT,
                            "global",
                        ],
                    )
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                if out.success { Ok(()) } else { Err(out.stderr) }
            },
        )
        .await;
        if let Err(err) = stand_in_ready {
            let running = process.running();
            return Err(err.context(format!(
                "gobgpd running: {running}; its log:\n{}",
                process.log_tail()
            )));
        }
        Ok(Self {
            process,
            netns: node.name.clone(),
        })
    }

    /// `gobgp global rib add PREFIX ATTRIBUTES… nexthop NEXT_HOP`.
    async fn announce(
        &self,
        testbed: &Testbed,
        prefix: &str,
        attributes: &[&str],
        next_hop: IpAddr,
    ) -> Result<()> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let next_hop = next_hop.to_string();
        let mut args = vec![
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            STAND_IN_API_PORT,
            "global",
            "rib",
            "-a",
            family,
            "add",
            prefix,
        ];
        args.extend_from_slice(attributes);
        args.extend(["nexthop", &next_hop]);
        testbed
            .exec(&self.netns, &args)
            .await?
            .ok()
            .with_context(|| format!("stand-in log:\n{}", self.process.log_tail()))?;
        Ok(())
    }
}

/// The one path to `prefix` from `peer`, or an error listing what there is.
fn path<'a>(routes: &'a [RibRoute], prefix: &str, peer: IpAddr) -> Result<&'a RibRoute> {
    let prefix: IpNet = prefix.parse()?;
    let found: Vec<&RibRoute> = routes
        .iter()
        .filter(|r| r.prefix == prefix && r.peer == peer)
        .collect();
    ensure!(
        found.len() == 1,
        "expected one path to {prefix} from {peer}, found {}: {routes:#?}",
        found.len()
    );
    Ok(found[0])
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn wait_kernel(router: &Router, prefix: &str, expected: &[IpAddr]) -> Result<()> {
    let prefix: IpNet = prefix.parse()?;
    let mut expected = expected.to_vec();
    expected.sort();
    wait_until(
        &format!(
            "{} to install {prefix} via {expected:?} in the router's kernel",
            router.daemon()
        ),
        Duration::from_secs(10),
        || async {
            let hops = router
                .kernel_routes(prefix)
                .await
                .map_err(|e| format!("{e:#}"))?;
            if hops == expected {
                Ok(())
            } else {
                Err(format!("next hops {hops:?}"))
            }
        },
    )
    .await
}

/// node-1 is an iBGP neighbour over IPv4 (MD5) and IPv6; node-2 an eBGP one the router waits
/// for; node-3 an iBGP one whose stand-in has the wrong password. Every learned attribute is
/// read back, and FRR and BIRD install the routes in the kernel (GoBGP has no kernel install).
async fn router_learns_routes_from_stand_ins(daemon: Daemon) -> Result<()> {
    let _turn = ROUTER.lock().await;
    let testbed = Testbed::get();
    ensure!(testbed.nodes.len() >= 3, "these tests need three nodes");
    let (node1, node2, node3) = (&testbed.nodes[0], &testbed.nodes[1], &testbed.nodes[2]);
    let n1_4 = IpAddr::from(node1.host.ip4);
    let n1_6 = IpAddr::from(node1.host.ip6);
    let n2_4 = IpAddr::from(node2.host.ip4);
    let n3_4 = IpAddr::from(node3.host.ip4);

    let config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4)
        .with_neighbor(Neighbor {
            password: Some(PASSWORD.into()),
            ..Neighbor::new(n1_4, ROUTER_ASN)
        })
        .with_neighbor(Neighbor::new(n1_6, ROUTER_ASN))
        .with_neighbor(Neighbor {
            passive: true,
            ..Neighbor::new(n2_4, NODE_ASN)
        })
        .with_neighbor(Neighbor {
            password: Some(PASSWORD.into()),
            ..Neighbor::new(n3_4, ROUTER_ASN)
        });
    let router = Router::start(&testbed, daemon, &config).await?;
    let stand_in1 = StandIn::start(&testbed, node1, ROUTER_ASN, Some(PASSWORD)).await?;
    let stand_in2 = StandIn::start(&testbed, node2, NODE_ASN, None).await?;
    let _stand_in3 = StandIn::start(&testbed, node3, ROUTER_ASN, Some("not-the-password")).await?;
    let tagged = [
        "community",
        "65535:65282",
        "large-community",
        "1:2:3",
        "local-pref",
        "200",
    ];
    stand_in1
        .announce(&testbed, "203.0.113.7/32", &tagged, n1_4)
        .await?;
    stand_in1
        .announce(&testbed, "2001:db8:203::7/128", &tagged, n1_6)
        .await?;
    stand_in2
        .announce(
            &testbed,
            "203.0.113.8/32",
            &["origin", "igp", "community", "64512:100"],
            n2_4,
        )
        .await?;

    for neighbor in [n1_4, n1_6, n2_4] {
        router.wait_established(neighbor, SESSION_TIMEOUT).await?;
    }
    let sessions = router.sessions().await?;
    ensure!(
        sessions.len() == 4,
        "{daemon} should report its four configured sessions: {sessions:?}"
    );
    // By now node-3's stand-in has tried for as long as the others needed, several times over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node3_session = &router.sessions().await?[&n3_4];
    ensure!(
        !node3_session.established,
        "{daemon} established a session whose MD5 password does not match: {node3_session:?}"
    );

    let routes = router
        .wait_rib(
            "paths to 203.0.113.7/32, 2001:db8:203::7/128 and 203.0.113.8/32",
            Duration::from_secs(15),
            |routes| routes.len() >= 3,
        )
        .await?;
    ensure!(routes.len() == 3, "{daemon}: unexpected paths: {routes:#?}");
    for (prefix, next_hop) in [("203.0.113.7/32", n1_4), ("2001:db8:203::7/128", n1_6)] {
        let route = path(&routes, prefix, next_hop)?;
        ensure!(
            route.next_hop == next_hop,
            "{daemon}: next hop of {prefix}: {route:?}"
        );
        ensure!(
            route.local_pref == Some(200),
            "{daemon}: local-pref of {prefix} (iBGP): {route:?}"
        );
        ensure!(
            route.communities == set(&["65535:65282"]),
            "{daemon}: {route:?}"
        );
        ensure!(
            route.large_communities == set(&["1:2:3"]),
            "{daemon}: {route:?}"
        );
        ensure!(route.as_path.is_empty(), "{daemon}: iBGP path {route:?}");
        // The gobgp CLI's default origin.
        ensure!(route.origin == "INCOMPLETE", "{daemon}: {route:?}");
        ensure!(!route.stale, "{daemon}: {route:?}");
    }
    let ebgp = path(&routes, "203.0.113.8/32", n2_4)?;
    ensure!(
        ebgp.next_hop == n2_4
            && ebgp.as_path == vec![NODE_ASN]
            && ebgp.origin == "IGP"
            && ebgp.communities == set(&["64512:100"])
            && ebgp.large_communities.is_empty(),
        "{daemon}: eBGP path {ebgp:?}"
    );

    match daemon {
        Daemon::Frr | Daemon::Bird => {
            wait_kernel(&router, "203.0.113.7/32", &[n1_4]).await?;
            wait_kernel(&router, "2001:db8:203::7/128", &[n1_6]).await?;
            wait_kernel(&router, "203.0.113.8/32", &[n2_4]).await?;
        }
        Daemon::Gobgp => {
            let hops = router.kernel_routes("203.0.113.7/32".parse()?).await?;
            ensure!(
                hops.is_empty(),
                "GoBGP has no kernel install here, yet: {hops:?}"
            );
        }
    }
    router.stop().await
}

#[tokio::test]
async fn frr_learns_routes_from_a_gobgp_stand_in() -> Result<()> {
    router_learns_routes_from_stand_ins(Daemon::Frr).await
}

#[tokio::test]
async fn bird_learns_routes_from_a_gobgp_stand_in() -> Result<()> {
    router_learns_routes_from_stand_ins(Daemon::Bird).await
}

#[tokio::test]
async fn gobgp_learns_routes_from_a_gobgp_stand_in() -> Result<()> {
    router_learns_routes_from_stand_ins(Daemon::Gobgp).await
}

/// Two eBGP stand-ins announce one /32, each with itself as next hop: the router's kernel gets
/// one route with both.
async fn router_installs_an_ecmp_route(daemon: Daemon) -> Result<()> {
    let _turn = ROUTER.lock().await;
    let testbed = Testbed::get();
    let (node1, node2) = (&testbed.nodes[0], &testbed.nodes[1]);
    let n1_4 = IpAddr::from(node1.host.ip4);
    let n2_4 = IpAddr::from(node2.host.ip4);
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4)
        .with_neighbor(Neighbor::new(n1_4, NODE_ASN))
        .with_neighbor(Neighbor::new(n2_4, NODE_ASN));
    config.ecmp = true;
    let router = Router::start(&testbed, daemon, &config).await?;
    let stand_in1 = StandIn::start(&testbed, node1, NODE_ASN, None).await?;
    let stand_in2 = StandIn::start(&testbed, node2, NODE_ASN, None).await?;
    stand_in1
        .announce(&testbed, "203.0.113.9/32", &["origin", "igp"], n1_4)
        .await?;
    stand_in2
        .announce(&testbed, "203.0.113.9/32", &["origin", "igp"], n2_4)
        .await?;
    for neighbor in [n1_4, n2_4] {
        router.wait_established(neighbor, SESSION_TIMEOUT).await?;
    }
    let routes = router
        .wait_rib(
            "two paths to 203.0.113.9/32",
            Duration::from_secs(15),
            |routes| routes.len() == 2,
        )
        .await?;
    path(&routes, "203.0.113.9/32", n1_4)?;
    path(&routes, "203.0.113.9/32", n2_4)?;
    wait_kernel(&router, "203.0.113.9/32", &[n1_4, n2_4]).await?;

    // One speaker withdraws (it stops): the route narrows to the other.
    drop(stand_in1);
    wait_kernel(&router, "203.0.113.9/32", &[n2_4]).await?;
    drop(stand_in2);
    router.stop().await
}

#[tokio::test]
async fn frr_installs_an_ecmp_route_from_two_speakers() -> Result<()> {
    router_installs_an_ecmp_route(Daemon::Frr).await
}

#[tokio::test]
async fn bird_installs_an_ecmp_route_from_two_speakers() -> Result<()> {
    router_installs_an_ecmp_route(Daemon::Bird).await
}

/// FRR's bgpd asks bfdd for a session with the neighbour; BIRD's BFD in node-1 (gobgpd has no
/// BFD) answers it, and the session comes up with FRR's timers, then goes down when BIRD stops.
#[tokio::test]
async fn frr_bfd_session_comes_up_with_a_bird_bfd_stand_in() -> Result<()> {
    let _turn = ROUTER.lock().await;
    let testbed = Testbed::get();
    let node1 = &testbed.nodes[0];
    let n1_4 = IpAddr::from(node1.host.ip4);
    let timers = BfdTimers {
        rx_ms: 200,
        tx_ms: 200,
        multiplier: 3,
    };
    let config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4).with_neighbor(Neighbor {
        bfd: Some(timers),
        ..Neighbor::new(n1_4, NODE_ASN)
    });
    let router = Router::start(&testbed, Daemon::Frr, &config).await?;
    let _stand_in = StandIn::start(&testbed, node1, NODE_ASN, None).await?;
    router.wait_established(n1_4, SESSION_TIMEOUT).await?;

    let bird_config = write_file(
        "bfd-stand-in.conf",
        &format!(
            "router id {};\nprotocol device {{ }}\nprotocol bfd {{\n  interface \"eth0\" {{ min rx interval 200 ms; min tx interval 200 ms; multiplier 3; }};\n  neighbor {};\n}}\n",
            node1.host.ip4, testbed.router.ip4
        ),
    )?;
    let ctl = write_file("bfd-stand-in.ctl", "")?;
    std::fs::remove_file(&ctl)?;
    let (bird_config, ctl) = (bird_config.to_string_lossy(), ctl.to_string_lossy());
    let mut bird = testbed.start_process(
        "stand-in-bird-bfd",
        Path::new("ip"),
        &[
            "netns",
            "exec",
            &node1.name,
            "bird",
            "-f",
            "-c",
            &bird_config,
            "-s",
            &ctl,
        ],
    )?;
    let up = wait_until(
        "FRR's BFD session with node-1 to be up",
        Duration::from_secs(15),
        || async {
            let peers = router.bfd_peers().await.map_err(|e| format!("{e:#}"))?;
            match peers.iter().find(|p| p.peer == n1_4) {
                Some(peer) if peer.up() => Ok(peer.clone()),
                other => Err(format!("{other:?} (all: {peers:?})")),
            }
        },
    )
    .await;
    let peer = match up {
        Ok(peer) => peer,
        Err(err) => {
            let running = bird.running();
            return Err(err.context(format!(
                "BIRD running: {running}; its log:\n{}",
                bird.log_tail()
            )));
        }
    };
    ensure!(
        peer.receive_interval_ms == 200
            && peer.transmit_interval_ms == 200
            && peer.detect_multiplier == 3,
        "FRR's BFD session does not have the configured timers: {peer:?}"
    );
    ensure!(
        peer.local == Some(IpAddr::from(testbed.router.ip4)),
        "{peer:?}"
    );
    ensure!(
        peer.remote_detect_multiplier == Some(3),
        "the remote's multiplier is BIRD's: {peer:?}"
    );

    bird.kill()?;
    wait_until(
        "FRR's BFD session with node-1 to go down once BIRD is gone",
        Duration::from_secs(5),
        || async {
            let peers = router.bfd_peers().await.map_err(|e| format!("{e:#}"))?;
            match peers.iter().find(|p| p.peer == n1_4) {
                Some(peer) if !peer.up() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    router.stop().await
}

/// FRR accepts a session from any node in its listen range, with no neighbour configured.
#[tokio::test]
async fn frr_accepts_dynamic_neighbors_in_its_listen_range() -> Result<()> {
    let _turn = ROUTER.lock().await;
    let testbed = Testbed::get();
    let node2 = &testbed.nodes[1];
    let n2_4 = IpAddr::from(node2.host.ip4);
    let lan: IpNet = testbed.var("TESTBED_LAN_CIDR4")?.parse()?;
    let mut config = RouterConfig::new(ROUTER_ASN, testbed.router.ip4);
    config.dynamic_neighbors = Some((lan, NODE_ASN));
    let router = Router::start(&testbed, Daemon::Frr, &config).await?;
    let stand_in = StandIn::start(&testbed, node2, NODE_ASN, None).await?;
    stand_in
        .announce(&testbed, "203.0.113.10/32", &[], n2_4)
        .await?;
    router.wait_established(n2_4, SESSION_TIMEOUT).await?;
    let routes = router
        .wait_rib("a path to 203.0.113.10/32", Duration::from_secs(15), |r| {
            !r.is_empty()
        })
        .await?;
    let route = path(&routes, "203.0.113.10/32", n2_4)?;
    ensure!(route.as_path == vec![NODE_ASN], "{route:?}");
    router.stop().await
}
