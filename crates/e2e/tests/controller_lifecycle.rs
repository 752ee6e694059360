//! The controller as a process: it restores before it allocates, survives restarts and
//! SIGKILL without moving an address, elects one leader among two, and serves metrics.

use std::net::IpAddr;

use anyhow::{Result, ensure};
use ferrolb_e2e::Scenario;
use ferrolb_testbed::Family;

const POOL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.219", "2001:db8:100::200-2001:db8:100::21f"]
"#;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal address")
}

#[tokio::test]
async fn first_free_address_then_restart_keeps_every_address() -> Result<()> {
    let mut scenario = Scenario::new("lifecycle-restart").await?;
    scenario.apply(POOL).await?;
    scenario.start_controller()?;
    for name in ["a", "b", "c"] {
        scenario
            .testbed
            .create_service(&scenario.kube, &scenario.service(name, &[Family::V4]))
            .await?;
    }
    let mut before = Vec::new();
    for name in ["a", "b", "c"] {
        before.push(scenario.wait_assigned(name).await?);
    }
    let mut all: Vec<IpAddr> = before.iter().flatten().copied().collect();
    all.sort();
    ensure!(
        all == vec![
            ip("198.51.100.200"),
            ip("198.51.100.201"),
            ip("198.51.100.202")
        ],
        "the first three addresses of the pool, one each: {before:?}"
    );
    let note = scenario
        .wait_event("a", "IPAllocated", "198.51.100.")
        .await?;
    ensure!(
        note.starts_with("Assigned IP [\""),
        "MetalLB's wording: {note}"
    );
    ensure!(
        scenario
            .annotations("a")
            .await?
            .get("metallb.io/ip-allocated-from-pool")
            == Some(&"lan".to_string()),
        "the pool annotation is written"
    );

    // A restart must not move anything, even with a new Service created while it is down
    // that would otherwise be given the first free address.
    scenario.controllers[0].kill()?;
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("d", &[Family::V4]))
        .await?;
    scenario.start_controller()?;
    let d = scenario.wait_assigned("d").await?;
    ensure!(
        d == vec![ip("198.51.100.203")],
        "d gets the next free address, got {d:?}"
    );
    for (name, ips) in ["a", "b", "c"].iter().zip(&before) {
        ensure!(&scenario.ingress(name).await? == ips, "{name} kept {ips:?}");
    }
    Ok(())
}
