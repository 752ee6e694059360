//! The least-privilege RBAC in `deploy/rbac/` is enough: a controller holding only a token of
//! its ServiceAccount allocates, writes status, pool counters, its ConfigurationState, Events
//! and its Lease; speakers holding only theirs read the membership Secret, announce, write and
//! delete ServiceL2Status objects and Events. Neither is ever refused.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use ferrolb_api::v1beta1::ServiceL2Status;
use ferrolb_e2e::Scenario;
use ferrolb_testbed::{Family, wait_until};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;

async fn apply<K>(api: Api<K>, document: Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = document["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("ferrolb-e2e").force(),
        &Patch::Apply(&document),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// Applies `deploy/rbac/ROLE.yaml` in the scenario's config namespace and writes a kubeconfig
/// holding only a token of its ServiceAccount `ferrolb-ROLE`; returns the kubeconfig's path.
async fn restricted_kubeconfig(scenario: &Scenario, role: &str) -> Result<std::path::PathBuf> {
    let kube = scenario.kube.clone();
    let namespace = scenario.config_namespace.clone();
    let text = std::fs::read_to_string(
        scenario
            .testbed
            .repo()
            .join(format!("deploy/rbac/{role}.yaml")),
    )?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)?;
    for mut document in documents.into_iter().filter(|d| !d.is_null()) {
        // The manifests name metallb-system; the scenario has its own namespace.
        let rewritten = serde_json::to_string(&document)?
            .replace("\"metallb-system\"", &format!("\"{namespace}\""));
        document = serde_json::from_str(&rewritten)?;
        match document["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                apply(
                    Api::<ServiceAccount>::namespaced(kube.clone(), &namespace),
                    document,
                )
                .await?
            }
            "ClusterRole" => apply(Api::<ClusterRole>::all(kube.clone()), document).await?,
            "ClusterRoleBinding" => {
                apply(Api::<ClusterRoleBinding>::all(kube.clone()), document).await?
            }
            "Role" => apply(Api::<Role>::namespaced(kube.clone(), &namespace), document).await?,
            "RoleBinding" => {
                apply(
                    Api::<RoleBinding>::namespaced(kube.clone(), &namespace),
                    document,
                )
                .await?
            }
            other => {
                return Err(anyhow!(
                    "unexpected kind {other} in deploy/rbac/{role}.yaml"
                ));
            }
        }
    }

    let token = Api::<ServiceAccount>::namespaced(kube.clone(), &namespace)
        .create_token_request(
            &format!("ferrolb-{role}"),
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow!("no token in the TokenRequest answer"))?;
    // The admin kubeconfig's cluster (server, CA) with the ServiceAccount's token as the user.
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(scenario.testbed.kubeconfig()?)?)?;
    let cluster = &admin["clusters"][0]["cluster"];
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: controller\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: testbed, user: controller}}\ncurrent-context: c\n",
        cluster["server"].as_str().unwrap_or_default(),
        cluster["certificate-authority-data"]
            .as_str()
            .unwrap_or_default(),
    );
    let path = scenario
        .testbed
        .repo()
        .join(format!("target/testbed/kubeconfig-rbac-{role}"));
    std::fs::write(&path, kubeconfig)?;
    Ok(path)
}

#[tokio::test]
async fn the_controller_needs_nothing_beyond_its_rbac() -> Result<()> {
    let mut scenario = Scenario::new("rbac").await?;
    let kube = scenario.kube.clone();
    let namespace = scenario.config_namespace.clone();
    let path = restricted_kubeconfig(&scenario, "controller").await?;

    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.203"]
"#,
        )
        .await?;
    let class = scenario.class.clone().unwrap_or_default();
    let binary = scenario.testbed.ferrolb_binary()?;
    let process = scenario.testbed.start_process_with_kubeconfig(
        "controller-rbac",
        &binary,
        &[
            "controller",
            "--namespace",
            &namespace,
            "--lb-class",
            &class,
            "--metrics-address",
            "127.0.0.1:0",
            "--lease-duration",
            "2",
            "--identity",
            "rbac-0",
        ],
        &path,
    )?;
    scenario.controllers.push(process);
    scenario
        .testbed
        .create_service(&scenario.kube, &scenario.service("web", &[Family::V4]))
        .await?;
    let ips = scenario.wait_assigned("web").await?;
    ensure!(
        ips == vec!["198.51.100.200".parse::<std::net::IpAddr>()?],
        "{ips:?}"
    );
    scenario
        .wait_event("web", "IPAllocated", "198.51.100.200")
        .await?;

    // Pool counters and the ConfigurationState are written too.
    let pools = kube::Api::<ferrolb_api_pool::IPAddressPool>::namespaced(kube.clone(), &namespace);
    wait_until(
        "pool status counts the address",
        Duration::from_secs(20),
        || async {
            let pool = pools.get("lan").await.map_err(|e| e.to_string())?;
            match pool.status {
                Some(status) if status.assigned_ipv4 == 1 && status.available_ipv4 == 3 => Ok(()),
                other => Err(format!("status {other:?}")),
            }
        },
    )
    .await?;
    let states =
        kube::Api::<ferrolb_api_pool::ConfigurationState>::namespaced(kube.clone(), &namespace);
    wait_until(
        "ConfigurationState controller is Valid",
        Duration::from_secs(20),
        || async {
            let state = states
                .get_opt("controller")
                .await
                .map_err(|e| e.to_string())?;
            match state.and_then(|s| s.status).and_then(|s| s.result) {
                Some(ferrolb_api_pool::ConfigurationResult::Valid) => Ok(()),
                other => Err(format!("result {other:?}")),
            }
        },
    )
    .await?;
    // Longer than the 2 s Lease: renewals run too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        scenario.controllers[0].running(),
        "still running:\n{}",
        scenario.log_tails()
    );
    let log = std::fs::read_to_string(&scenario.controllers[0].log)?;
    ensure!(
        !log.to_lowercase().contains("forbidden"),
        "the controller was refused something:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn speakers_need_nothing_beyond_their_rbac() -> Result<()> {
    let mut scenario = Scenario::new("rbac-speaker").await?;
    let kube = scenario.kube.clone();
    let namespace = scenario.config_namespace.clone();
    let path = restricted_kubeconfig(&scenario, "speaker").await?;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "memberlist"},
        "stringData": {"secretkey": "rbac-test-key"},
    }))?;
    let secrets = Api::<Secret>::namespaced(kube.clone(), &namespace);
    if secrets.get_opt("memberlist").await?.is_none() {
        secrets.create(&PostParams::default(), &secret).await?;
    }
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.240/32"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: slow}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases}
spec:
  communities: [{name: edge, value: "64512:300"}]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: lan}
spec:
  communities: [edge]
---
# Nothing listens there: the BGP side only has to read its configuration and write its statuses.
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: nobody}
spec:
  myASN: 64512
  peerASN: 64501
  peerAddress: 198.51.100.3
  peerPort: 1799
  bfdProfile: slow
  passwordSecret: {name: bgp-password}
"#,
        )
        .await?;
    scenario
        .create_password_secret("bgp-password", "rbac")
        .await?;
    scenario.start_controller()?;
    let pod = scenario.testbed.add_pod("rbac-speaker", "node-1").await?;
    let spec = scenario.service("web", &[Family::V4]);
    scenario.testbed.create_service(&kube, &spec).await?;
    scenario
        .testbed
        .publish_endpoints(&kube, &spec, &[&pod])
        .await?;
    let class = scenario.class.clone().unwrap_or_default();
    let nodes: Vec<(String, String)> = scenario
        .testbed
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.host.ip4.to_string()))
        .collect();
    let mut speakers = Vec::new();
    for (node, ip) in &nodes {
        let metrics = format!("{ip}:17991");
        speakers.push(scenario.testbed.start_speaker_with_kubeconfig(
            "rbac",
            node,
            &[
                "--namespace",
                &namespace,
                "--lb-class",
                &class,
                "--metrics-address",
                &metrics,
                "--ml-bindport",
                "17991",
            ],
            &path,
        )?);
    }
    let statuses = Api::<ServiceL2Status>::namespaced(kube.clone(), &namespace);
    let announcer = |exclude: Option<String>| {
        let statuses = statuses.clone();
        async move {
            let list = statuses
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let nodes: Vec<String> = list
                .items
                .iter()
                .filter_map(|s| s.status.as_ref()?.node.clone())
                .collect();
            match nodes.as_slice() {
                [node] if Some(node) != exclude.as_ref() => Ok(node.clone()),
                other => Err(format!("ServiceL2Status nodes {other:?}")),
            }
        }
    };
    let first = wait_until(
        "one ServiceL2Status names the announcing node",
        Duration::from_secs(20),
        || announcer(None),
    )
    .await?;
    // BGP mode: every node advertises, and writes its ServiceBGPStatus.
    wait_until(
        "a ServiceBGPStatus from every node, naming the peer",
        Duration::from_secs(20),
        || async {
            let statuses = scenario
                .bgp_statuses("web")
                .await
                .map_err(|e| format!("{e:#}"))?;
            let nodes: Vec<&str> = statuses
                .iter()
                .filter(|s| s.peers == ["nobody"])
                .filter_map(|s| s.node.as_deref())
                .collect();
            if nodes.len() == 3 {
                Ok(())
            } else {
                Err(format!("{statuses:?}"))
            }
        },
    )
    .await?;
    // Each node's entry in the BGPPeer's status: nothing listens, so no session is up.
    scenario
        .wait_peer_status(
            "nobody",
            "an entry from every node, none Established, each with its BFD state",
            Duration::from_secs(20),
            |entries| {
                entries.len() == 3
                    && entries
                        .iter()
                        .all(|e| e.session != "Established" && e.bfd.is_some())
            },
        )
        .await?;
    // Each speaker's ConfigurationState, under MetalLB's name: the configuration is valid.
    let states = Api::<ferrolb_api_pool::ConfigurationState>::namespaced(kube.clone(), &namespace);
    let speaker_results = || async {
        let list = states
            .list(&ListParams::default().labels("metallb.io/component-type=speaker"))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(
            list.items
                .into_iter()
                .map(|state| {
                    let status = state.status.unwrap_or_default();
                    (
                        state.metadata.name.unwrap_or_default(),
                        status.result,
                        status.error_summary.unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    wait_until(
        "a Valid ConfigurationState speaker-<node> from every speaker",
        Duration::from_secs(20),
        || async {
            let results = speaker_results().await?;
            let valid: Vec<&str> = results
                .iter()
                .filter(|(_, result, _)| {
                    *result == Some(ferrolb_api_pool::ConfigurationResult::Valid)
                })
                .map(|(name, _, _)| name.as_str())
                .collect();
            if valid == ["speaker-node-1", "speaker-node-2", "speaker-node-3"] {
                Ok(())
            } else {
                Err(format!("{results:?}"))
            }
        },
    )
    .await?;
    // A peer whose passwordSecret does not exist: no session, and every speaker says why, in
    // its ConfigurationState and in the peer's status.
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: secretless}
spec:
  myASN: 64512
  peerASN: 64501
  peerAddress: 198.51.100.3
  peerPort: 1798
  passwordSecret: {name: no-such-secret}
"#,
        )
        .await?;
    scenario
        .wait_peer_status(
            "secretless",
            "NotPeering on every node, naming the Secret",
            Duration::from_secs(20),
            |entries| {
                entries.len() == 3
                    && entries.iter().all(|e| {
                        e.session == "NotPeering"
                            && e.message
                                .as_deref()
                                .is_some_and(|m| m.contains("no-such-secret"))
                    })
            },
        )
        .await?;
    wait_until(
        "every speaker's ConfigurationState Invalid, naming the peer and the Secret",
        Duration::from_secs(20),
        || async {
            let results = speaker_results().await?;
            let invalid = results
                .iter()
                .filter(|(_, result, summary)| {
                    *result == Some(ferrolb_api_pool::ConfigurationResult::Invalid)
                        && summary.contains("BGPPeer secretless")
                        && summary.contains("no-such-secret")
                })
                .count();
            if invalid == 3 {
                Ok(())
            } else {
                Err(format!("{results:?}"))
            }
        },
    )
    .await?;
    scenario
        .wait_event("web", "nodeAssigned", &format!("\"{first}\""))
        .await?;
    // A graceful stop deletes the stopped node's object; the next node writes its own.
    let index = nodes
        .iter()
        .position(|(name, _)| *name == first)
        .ok_or_else(|| anyhow!("{first} is not a testbed node"))?;
    speakers[index].terminate()?;
    let second = wait_until(
        "another node's ServiceL2Status, and the stopped node's gone",
        Duration::from_secs(20),
        || announcer(Some(first.clone())),
    )
    .await?;
    ensure!(second != first);
    wait_until(
        "the stopped node's ServiceBGPStatus to be gone",
        Duration::from_secs(20),
        || async {
            let statuses = scenario
                .bgp_statuses("web")
                .await
                .map_err(|e| format!("{e:#}"))?;
            if statuses.len() == 2 && statuses.iter().all(|s| s.node.as_deref() != Some(&first)) {
                Ok(())
            } else {
                Err(format!("{statuses:?}"))
            }
        },
    )
    .await?;
    scenario
        .wait_peer_status(
            "nobody",
            "the stopped node's entry withdrawn",
            Duration::from_secs(20),
            |entries| entries.len() == 2 && entries.iter().all(|e| e.node != first),
        )
        .await?;
    for (speaker, (node, _)) in speakers.iter_mut().zip(&nodes) {
        let log = std::fs::read_to_string(&speaker.log)?;
        ensure!(
            !log.to_lowercase().contains("forbidden"),
            "the speaker on {node} was refused something:\n{log}"
        );
        if *node != first {
            ensure!(speaker.running(), "the speaker on {node} stopped:\n{log}");
        }
    }
    Ok(())
}

/// The metallb.io types, under a name that says why this test needs them.
mod ferrolb_api_pool {
    pub use ferrolb_api::v1beta1::{ConfigurationResult, ConfigurationState, IPAddressPool};
}
