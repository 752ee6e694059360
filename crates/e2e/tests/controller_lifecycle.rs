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

    // `ferrolb status` shows the same, from the cluster.
    let output = tokio::process::Command::new(scenario.testbed.ferrolb_binary()?)
        .args(["status", "--namespace", &scenario.config_namespace])
        .env("KUBECONFIG", scenario.testbed.kubeconfig()?)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "ferrolb status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(text.contains("controller: Valid"), "{text}");
    ensure!(
        text.contains("lan   4/20"),
        "4 of 20 IPv4 addresses in use:\n{text}"
    );
    let row = format!("{}/d ", scenario.namespace);
    let line = text
        .lines()
        .find(|l| l.starts_with(&row))
        .unwrap_or_default();
    ensure!(
        line.contains(" 198.51.100.203 ") && line.contains(" lan "),
        "d's row names its address and pool:\n{text}"
    );
    Ok(())
}

/// The identity holding the scenario's leader Lease, if any.
async fn lease_holder(scenario: &Scenario) -> Result<Option<String>> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(scenario.kube.clone(), &scenario.config_namespace);
    Ok(leases
        .get_opt("ferrolb-controller")
        .await?
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty()))
}

async fn wait_holder(
    scenario: &Scenario,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> Result<String> {
    ferrolb_testbed::wait_until(what, std::time::Duration::from_secs(20), || async {
        match lease_holder(scenario).await.map_err(|e| e.to_string())? {
            Some(holder) if check(&holder) => Ok(holder),
            other => Err(format!("holder is {other:?}")),
        }
    })
    .await
}

/// `identity-N` → N, the index of the controller in the scenario.
fn index_of(holder: &str) -> usize {
    holder
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

#[tokio::test]
async fn two_controllers_one_leader_and_failover_keeps_every_address() -> Result<()> {
    let mut scenario = Scenario::new("lifecycle-failover").await?;
    scenario.apply(POOL).await?;
    scenario.start_controller()?;
    scenario.start_controller()?;
    let first = wait_holder(&scenario, "a leader", |_| true).await?;
    let leader = index_of(&first);
    let standby = 1 - leader;
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("before", &[Family::V4]))
        .await?;
    let before = scenario.wait_assigned("before").await?;
    // Only the leader decides: the standby's log names no Service.
    let standby_log = std::fs::read_to_string(&scenario.controllers[standby].log)?;
    ensure!(
        standby_log.contains("waiting to become the leader")
            && !standby_log.contains("Assigned IP"),
        "the standby stays passive:\n{standby_log}"
    );
    // A crash: no Lease release. The standby takes over once the Lease expires.
    scenario.controllers[leader].kill()?;
    let second = wait_holder(&scenario, "the standby takes the Lease", |h| h != first).await?;
    ensure!(
        index_of(&second) == standby,
        "the standby leads now: {second}"
    );
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("after", &[Family::V4]))
        .await?;
    let after = scenario.wait_assigned("after").await?;
    ensure!(
        before != after,
        "no address given twice: {before:?} {after:?}"
    );
    ensure!(
        scenario.ingress("before").await? == before,
        "kept across the failover"
    );
    let log = std::fs::read_to_string(&scenario.controllers[standby].log)?;
    let restored = log.find("restored the addresses").unwrap_or(usize::MAX);
    let allocated = log.find("Assigned IP").unwrap_or(0);
    ensure!(
        restored < allocated,
        "the new leader restores before it allocates:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stopped_leader_hands_over_and_metrics_are_served() -> Result<()> {
    let mut scenario = Scenario::new("lifecycle-handover").await?;
    scenario.apply(POOL).await?;
    scenario.start_controller()?;
    let holder = wait_holder(&scenario, "a leader", |_| true).await?;
    scenario
        .testbed
        .create_service(
            &scenario.kube,
            &scenario.service("web", &[Family::V4, Family::V6]),
        )
        .await?;
    let ips = scenario.wait_assigned("web").await?;
    ensure!(ips.len() == 2, "dual-stack gets two addresses: {ips:?}");

    // The metrics endpoint, with MetalLB's names and the values the pool implies.
    let metrics = ferrolb_testbed::wait_until(
        "metrics count both addresses",
        std::time::Duration::from_secs(10),
        || async {
            let text = scenario.metrics(0).await.map_err(|e| e.to_string())?;
            if text.contains("metallb_allocator_addresses_in_use_total{pool=\"lan\"} 2") {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await?;
    ensure!(
        ferrolb_e2e::metric_value(&metrics, "ferrolb_controller_service_status_writes_total")
            == Some(1.0),
        "one Service, one status write:\n{metrics}"
    );
    let address = scenario.metrics_address(0)?;
    ensure!(
        metrics.contains("metallb_allocator_addresses_total{pool=\"lan\"} 52"),
        "20 IPv4 + 32 IPv6 addresses:\n{metrics}"
    );
    ensure!(
        metrics.contains("ferrolb_controller_leader_bool 1"),
        "{metrics}"
    );
    for path in ["healthz", "readyz"] {
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{address}/{path}"),
            ])
            .output()
            .await?;
        ensure!(
            output.stdout == b"200",
            "/{path} answers 200: {:?}",
            output.stdout
        );
    }

    // SIGTERM releases the Lease, so a new controller does not wait for it to expire.
    scenario.controllers[0].terminate()?;
    ensure!(
        lease_holder(&scenario).await?.is_none(),
        "the Lease is released on a graceful stop (held by {holder} before)"
    );
    scenario.start_controller()?;
    wait_holder(&scenario, "the new controller leads", |h| h != holder).await?;
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("next", &[Family::V4]))
        .await?;
    let next = scenario.wait_assigned("next").await?;
    ensure!(
        !ips.contains(&next[0]),
        "a fresh address: {next:?} vs {ips:?}"
    );
    ensure!(
        scenario.ingress("web").await? == ips,
        "kept across the handover"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_configuration_namespace_is_a_clear_error() -> Result<()> {
    let testbed = ferrolb_testbed::Testbed::get();
    let mut process = testbed.start_controller(
        "missing-namespace",
        &[
            "--namespace",
            "no-such-namespace",
            "--metrics-address",
            "127.0.0.1:0",
        ],
    )?;
    ferrolb_testbed::wait_until(
        "the controller exits",
        std::time::Duration::from_secs(20),
        || {
            let running = process.running();
            async move {
                if running {
                    Err("still running".to_string())
                } else {
                    Ok(())
                }
            }
        },
    )
    .await?;
    let log = std::fs::read_to_string(&process.log)?;
    ensure!(
        log.contains("namespace \"no-such-namespace\" (--namespace) does not exist"),
        "the log says what is wrong:\n{log}"
    );
    Ok(())
}
