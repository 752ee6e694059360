//! The LAN behaves like one: ARP and NDP from the client resolve each node's address to that
//! node's MAC, on `eth0` and on the second LAN's `eth1`; and the admin kubeconfig works from
//! inside a node's namespace, where the speakers will run.

use anyhow::{Context, Result, ensure};
use ferrolb_testbed::Testbed;

/// How the client asks who has an address: ARP (`arping`) or IPv6 NDP (`ndisc6`).
#[derive(Clone, Copy)]
enum Ask {
    Arp,
    Ndp,
}

/// The MAC that answered the client's ARP or NDP query for `ip` on `interface`.
async fn who_has(testbed: &Testbed, ask: Ask, interface: &str, ip: &str) -> Result<String> {
    let args = match ask {
        Ask::Arp => ["arping", "-c", "1", "-w", "2", "-i", interface, ip],
        Ask::Ndp => ["ndisc6", "-1", "-r", "2", "-w", "1000", ip, interface],
    };
    let out = testbed.exec(&testbed.client.netns, &args).await?.ok()?;
    mac_in(&out.stdout)
        .with_context(|| format!("no MAC in the answer of {}: {}", args[0], out.stdout))
}

fn mac_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '(' || c == ')')
        .find(|word| word.len() == 17 && word.matches(':').count() == 5)
        .map(str::to_lowercase)
}

#[tokio::test]
async fn arp_and_ndp_resolve_every_node_to_its_own_mac() -> Result<()> {
    let testbed = Testbed::get();
    for node in &testbed.nodes {
        let mac = who_has(&testbed, Ask::Arp, "eth0", &node.host.ip4.to_string()).await?;
        ensure!(
            mac == node.host.mac,
            "ARP for {} answered by {mac}, not {}",
            node.name,
            node.host.mac
        );
        let mac = who_has(&testbed, Ask::Ndp, "eth0", &node.host.ip6.to_string()).await?;
        ensure!(
            mac == node.host.mac,
            "NDP for {} answered by {mac}, not {}",
            node.name,
            node.host.mac
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_second_lan_is_a_separate_segment_on_eth1() -> Result<()> {
    let testbed = Testbed::get();
    ensure!(
        testbed.client.eth1.is_some(),
        "scripts/test brings the testbed up with --lan2"
    );
    for node in &testbed.nodes {
        let eth1 = node.host.eth1.as_ref().context("a node without eth1")?;
        let mac = who_has(&testbed, Ask::Arp, "eth1", &eth1.ip4.to_string()).await?;
        ensure!(
            mac == eth1.mac,
            "ARP on eth1 for {} answered by {mac}, not {}",
            node.name,
            eth1.mac
        );
        let mac = who_has(&testbed, Ask::Ndp, "eth1", &eth1.ip6.to_string()).await?;
        ensure!(
            mac == eth1.mac,
            "NDP on eth1 for {} answered by {mac}, not {}",
            node.name,
            eth1.mac
        );
        // Linux answers ARP for any of its addresses on any interface (arp_ignore=0, as on a
        // real host), but only ever with the MAC of the interface the request came in on.
        let mac = who_has(&testbed, Ask::Arp, "eth1", &node.host.ip4.to_string()).await?;
        ensure!(
            mac == eth1.mac,
            "{}'s eth0 MAC {mac} was seen on the second LAN",
            node.name
        );
    }
    // Separate segments: the router, on the first LAN only, cannot be reached over eth1.
    let router = testbed
        .exec(
            &testbed.client.netns,
            &[
                "arping",
                "-c",
                "1",
                "-w",
                "1",
                "-i",
                "eth1",
                &testbed.router.ip4.to_string(),
            ],
        )
        .await?;
    ensure!(
        !router.success,
        "the router answered on the second LAN: {}",
        router.stdout
    );
    Ok(())
}

#[tokio::test]
async fn kubeconfig_works_from_inside_a_node_namespace() -> Result<()> {
    let testbed = Testbed::get();
    let kubectl = testbed.bin_dir()?.join("kubectl");
    let kubeconfig = testbed.kubeconfig()?;
    let node = &testbed.nodes[testbed.nodes.len() - 1];
    let out = testbed
        .exec(
            &node.name,
            &[
                kubectl.as_os_str(),
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
                "get".as_ref(),
                "--raw".as_ref(),
                "/readyz".as_ref(),
            ],
        )
        .await?
        .ok()?;
    ensure!(
        out.stdout.trim() == "ok",
        "/readyz from {} said {:?}",
        node.name,
        out.stdout
    );
    Ok(())
}
