//! FRR, BIRD 2 and GoBGP start in the `router` namespace with a config a test gives them, apply
//! it, and stop by pid. The BGP end-to-end tests of ferrolb build on exactly this.
//! One test runs the three in turn: they would all listen on port 179 in the same namespace.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferrolb_testbed::{Testbed, wait_until};

fn write_config(name: &str, text: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join("ferrolb-e2e-routers");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn router_output(testbed: &Testbed, args: &[&str]) -> Result<String> {
    Ok(testbed
        .exec(&testbed.router.netns, args)
        .await?
        .ok()?
        .stdout)
}

#[tokio::test]
async fn frr_bird_and_gobgp_start_with_the_given_config_and_stop() -> Result<()> {
    let testbed = Testbed::get();
    let router_ip = testbed.router.ip4.to_string();
    let node_ip = testbed.nodes[0].host.ip4.to_string();
    testbed.script(&["router", "stop"]).await?.ok()?;

    // FRR: bgpd and bfdd get their config through vtysh; read it back as JSON.
    let frr = write_config(
        "frr.conf",
        &format!(
            "router bgp 64501\n bgp router-id {router_ip}\n no bgp ebgp-requires-policy\n neighbor {node_ip} remote-as 64512\nexit\nbfd\n profile testbed-fast\n  receive-interval 100\n exit\nexit\n"
        ),
    )?;
    testbed
        .script(&["router", "start", "frr", &frr.to_string_lossy()])
        .await?
        .ok()?;
    let vty = testbed.var("TESTBED_ROUTER_FRR_VTY")?.to_string();
    let summary = router_output(
        &testbed,
        &["vtysh", "--vty_socket", &vty, "-c", "show bgp summary json"],
    )
    .await?;
    let summary: serde_json::Value = serde_json::from_str(&summary).context("FRR summary JSON")?;
    ensure!(
        summary["ipv4Unicast"]["as"] == 64501,
        "FRR's AS is not the configured one: {summary}"
    );
    ensure!(
        summary["ipv4Unicast"]["peers"].get(&node_ip).is_some(),
        "FRR has no neighbour {node_ip}: {summary}"
    );
    let bfd = router_output(
        &testbed,
        &["vtysh", "--vty_socket", &vty, "-c", "show running-config"],
    )
    .await?;
    ensure!(
        bfd.contains("profile testbed-fast"),
        "bfdd did not take its profile:\n{bfd}"
    );
    testbed.script(&["router", "stop", "frr"]).await?.ok()?;

    // BIRD 2
    let bird = write_config(
        "bird.conf",
        &format!(
            "router id {router_ip};\nprotocol device {{}}\nprotocol bgp node1 {{\n  local as 64502;\n  neighbor {node_ip} as 64512;\n  ipv4 {{ import all; export none; }};\n}}\n"
        ),
    )?;
    testbed
        .script(&["router", "start", "bird", &bird.to_string_lossy()])
        .await?
        .ok()?;
    let ctl = testbed.var("TESTBED_ROUTER_BIRD_CTL")?.to_string();
    let protocols = router_output(
        &testbed,
        &["birdc", "-s", &ctl, "show", "protocols", "all", "node1"],
    )
    .await?;
    ensure!(
        protocols.contains("node1") && protocols.contains("64502"),
        "BIRD did not load the config:\n{protocols}"
    );
    testbed.script(&["router", "stop", "bird"]).await?.ok()?;

    // GoBGP
    let gobgp = write_config(
        "gobgpd.toml",
        &format!(
            "[global.config]\n  as = 64503\n  router-id = \"{router_ip}\"\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{node_ip}\"\n    peer-as = 64512\n"
        ),
    )?;
    testbed
        .script(&["router", "start", "gobgp", &gobgp.to_string_lossy()])
        .await?
        .ok()?;
    let global = wait_until(
        "gobgpd to report its global config",
        Duration::from_secs(10),
        || async {
            let out = router_output(
                &testbed,
                &["gobgp", "-u", "127.0.0.1", "-p", "50051", "global"],
            )
            .await
            .map_err(|e| format!("{e:#}"))?;
            if out.contains("64503") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    )
    .await?;
    ensure!(
        global.contains(&router_ip),
        "GoBGP router-id is not {router_ip}:\n{global}"
    );
    let neighbors = router_output(
        &testbed,
        &["gobgp", "-u", "127.0.0.1", "-p", "50051", "neighbor"],
    )
    .await?;
    ensure!(
        neighbors.contains(&node_ip),
        "GoBGP has no neighbour {node_ip}:\n{neighbors}"
    );
    testbed.script(&["router", "stop", "gobgp"]).await?.ok()?;

    let status = testbed.script(&["status"]).await?.ok()?.stdout;
    ensure!(
        !status.contains("router-"),
        "a routing daemon is still tracked after stop:\n{status}"
    );
    Ok(())
}
