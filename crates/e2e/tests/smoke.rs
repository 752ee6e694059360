//! The data path works before ferrolb exists: a LoadBalancer Service whose status was written by
//! hand is reached from the client, through node-1 (a static neighbour entry stands in for ARP),
//! by real kube-proxy, at backends on two nodes. If this fails, no ferrolb test can pass.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use ferrolb_testbed::{Family, ServiceSpec, Testbed, wait_until};

async fn client_reaches_backends_through_kube_proxy(family: Family, vip: IpAddr) -> Result<()> {
    let testbed = Testbed::get();
    let kube = testbed.kube().await?;
    let tag = match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    };
    let namespace = format!("smoke-{tag}");
    testbed.ensure_namespace(&kube, &namespace).await?;
    testbed.clear_namespace(&kube, &namespace).await?;

    let pod_a = testbed.add_pod(&format!("smoke-{tag}-a"), "node-1").await?;
    let pod_b = testbed.add_pod(&format!("smoke-{tag}-b"), "node-2").await?;
    let mut spec = ServiceSpec::new(&namespace, "web", &[family]);
    // A class no ferrolb controller serves: this test writes the status by hand.
    spec.load_balancer_class = Some("testbed.ferrolb.io/hand-written".into());
    testbed.create_service(&kube, &spec).await?;
    testbed
        .publish_endpoints(&kube, &spec, &[&pod_a, &pod_b])
        .await?;

    let node1 = testbed.node("node-1")?;
    let client = &testbed.client.netns;
    testbed
        .exec(
            client,
            &[
                "ip",
                "neigh",
                "replace",
                &vip.to_string(),
                "lladdr",
                &node1.host.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
        .await?
        .ok()?;
    let url = match vip {
        IpAddr::V4(ip) => format!("http://{ip}:{}/", spec.port),
        IpAddr::V6(ip) => format!("http://[{ip}]:{}/", spec.port),
    };

    // Nothing answers yet: no node owns the VIP, and kube-proxy has no rule for it until the
    // Service's status names it. This is what makes the next step a proof about kube-proxy.
    let before = testbed.http_get_from_client(&url).await;
    ensure!(
        before.is_err(),
        "{url} answered before any status named it: {before:?}"
    );

    testbed
        .set_ingress(&kube, &namespace, &spec.name, &[vip])
        .await?;
    let first = wait_until(
        &format!("the client to reach a backend at {url} through kube-proxy on node-1"),
        Duration::from_secs(30),
        || async {
            match testbed.http_get_from_client(&url).await {
                Ok(body) if body.starts_with("pod=") => Ok(body),
                Ok(body) => Err(format!("unexpected answer {body:?}")),
                Err(err) => Err(format!("{err:#}")),
            }
        },
    )
    .await?;
    eprintln!("first answer through {url}: {}", first.trim());

    // Cluster policy: kube-proxy on node-1 spreads connections over both nodes' backends, so the
    // backend on node-2 is reached across the LAN. 30 tries all landing on one backend would
    // happen with probability 2^-29 if both were reachable.
    let mut served_by = BTreeSet::new();
    for _ in 0..30 {
        let body = testbed.http_get_from_client(&url).await?;
        let pod = body
            .split_whitespace()
            .find_map(|field| field.strip_prefix("pod="))
            .unwrap_or_default()
            .to_string();
        served_by.insert(pod);
        if served_by.len() == 2 {
            break;
        }
    }
    let expected: BTreeSet<String> = [pod_a.name.clone(), pod_b.name.clone()].into();
    ensure!(
        served_by == expected,
        "backends that answered: {served_by:?}, expected {expected:?}"
    );

    testbed
        .exec(
            client,
            &["ip", "neigh", "del", &vip.to_string(), "dev", "eth0"],
        )
        .await?
        .ok()?;
    testbed.clear_namespace(&kube, &namespace).await?;
    Ok(())
}

#[tokio::test]
async fn ipv4_client_reaches_backends_on_two_nodes_through_kube_proxy() -> Result<()> {
    client_reaches_backends_through_kube_proxy(Family::V4, "198.51.100.250".parse()?).await
}

#[tokio::test]
async fn ipv6_client_reaches_backends_on_two_nodes_through_kube_proxy() -> Result<()> {
    client_reaches_backends_through_kube_proxy(Family::V6, "2001:db8:100::250".parse()?).await
}

#[tokio::test]
async fn nodes_are_ready_with_both_internal_ips() -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let testbed = Testbed::get();
    let nodes: kube::Api<Node> = kube::Api::all(testbed.kube().await?);
    for expected in &testbed.nodes {
        let node = nodes.get(&expected.name).await?;
        let status = node.status.unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(ready, "node {} is not Ready", expected.name);
        let internal: BTreeSet<String> = status
            .addresses
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.type_ == "InternalIP")
            .map(|a| a.address)
            .collect();
        let want: BTreeSet<String> =
            [expected.host.ip4.to_string(), expected.host.ip6.to_string()].into();
        ensure!(
            internal == want,
            "node {} InternalIPs {internal:?}, want {want:?}",
            expected.name
        );
    }
    Ok(())
}
