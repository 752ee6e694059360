//! The controller rides out an apiserver restart: its watches re-list, its Lease is kept or
//! won back, no address moves and new Services are served afterwards. Ignored by default
//! because every other test would see the apiserver vanish: `scripts/test` runs it alone.

use anyhow::{Result, ensure};
use ferrolb_e2e::Scenario;
use ferrolb_testbed::Family;

const POOL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
"#;

#[tokio::test]
#[ignore = "restarts the shared apiserver: scripts/test runs it alone"]
async fn the_controller_survives_an_apiserver_restart() -> Result<()> {
    let mut scenario = Scenario::new("apiserver-restart").await?;
    scenario.apply(POOL).await?;
    scenario.start_controller()?;
    for name in ["a", "b"] {
        scenario
            .testbed
            .create_service(&scenario.kube, &scenario.service(name, &[Family::V4]))
            .await?;
    }
    let a = scenario.wait_assigned("a").await?;
    let b = scenario.wait_assigned("b").await?;

    scenario.testbed.restart_apiserver().await?;
    // A fresh client: the old connection pool points at the dead process.
    scenario.kube = scenario.testbed.kube().await?;
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("c", &[Family::V4]))
        .await?;
    let c = scenario.wait_assigned("c").await?;
    ensure!(
        scenario.controllers[0].running(),
        "the controller kept running:\n{}",
        scenario.log_tails()
    );
    ensure!(scenario.ingress("a").await? == a, "a kept {a:?}");
    ensure!(scenario.ingress("b").await? == b, "b kept {b:?}");
    ensure!(c != a && c != b, "c got a free address: {c:?}");
    Ok(())
}
