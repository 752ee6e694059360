//! The controller's address allocation, end to end against the real apiserver: requested
//! addresses and pools, `autoAssign`, `avoidBuggyIPs`, exhaustion, sharing, dual-stack,
//! `serviceAllocation` scoping and priority, configuration edits, pool status counters,
//! loadBalancerClass and type changes. Each test is one scenario with its own controller, so
//! every address below is the one MetalLB's rules give, and each is asserted exactly.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferrolb_e2e::{Scenario, ingress_ips};
use ferrolb_testbed::{Family, wait_until};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use serde_json::{Value, json};

const POOL_ANNOTATION: &str = "metallb.io/ip-allocated-from-pool";

/// Two pools side by side: `blue` .200–.209 and `green` .210–.219.
const BLUE_AND_GREEN: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: blue}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: green}
spec:
  addresses: ["198.51.100.210-198.51.100.219"]
"#;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal address")
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|text| ip(text)).collect()
}

/// A `type: LoadBalancer` Service of the scenario's class, built as JSON so that a test can
/// set any field (labels, `spec.loadBalancerIP`, ipFamilyPolicy …) before creating it.
/// Defaults: the scenario's namespace, SingleStack IPv4, one TCP port 80.
struct Svc(Value);

impl Svc {
    fn new(scenario: &Scenario, name: &str) -> Self {
        let mut spec = json!({
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
            "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
        });
        if let Some(class) = &scenario.class {
            spec["loadBalancerClass"] = json!(class);
        }
        Self(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": scenario.namespace,
                "annotations": {},
                "labels": {},
            },
            "spec": spec,
        }))
    }

    fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    fn label(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["labels"][key] = json!(value);
        self
    }

    fn namespace(mut self, namespace: &str) -> Self {
        self.0["metadata"]["namespace"] = json!(namespace);
        self
    }

    fn spec(mut self, field: &str, value: Value) -> Self {
        self.0["spec"][field] = value;
        self
    }

    /// The port list: `(name, port)` pairs, all TCP.
    fn ports(self, ports: &[(&str, u16)]) -> Self {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(name, port)| {
                json!({"name": name, "protocol": "TCP", "port": port, "targetPort": 8080})
            })
            .collect();
        self.spec("ports", json!(ports))
    }

    async fn create(self, scenario: &Scenario) -> Result<()> {
        let namespace = self.0["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = self.0["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let service: Service = serde_json::from_value(self.0).context("building the Service")?;
        let api: Api<Service> = Api::namespaced(scenario.kube.clone(), &namespace);
        api.create(&PostParams::default(), &service)
            .await
            .with_context(|| format!("creating Service {namespace}/{name}"))?;
        Ok(())
    }
}

/// Waits for the Service to show an address, then requires exactly `expected` (in order:
/// IPv4 first, as MetalLB writes them).
async fn expect_ingress(scenario: &Scenario, name: &str, expected: &[&str]) -> Result<()> {
    let got = scenario.wait_assigned(name).await?;
    ensure!(
        got == ips(expected),
        "Service {name}: expected ingress {expected:?}, got {got:?}\ncontroller log:\n{}",
        scenario.log_tails()
    );
    Ok(())
}

/// The Service shows no address now and for the next 1.5 s: long enough for a controller
/// that (wrongly) decided to give it one to have written it.
async fn stays_unassigned(scenario: &Scenario, name: &str) -> Result<()> {
    for _ in 0..15 {
        let got = scenario.ingress(name).await?;
        ensure!(
            got.is_empty(),
            "Service {name} must have no address, has {got:?}\ncontroller log:\n{}",
            scenario.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `"svc-NAME/service"`: how MetalLB's event notes name a Service.
fn quoted_key(scenario: &Scenario, name: &str) -> String {
    format!("\"{}/{name}\"", scenario.namespace)
}

/// Waits until the Service no longer carries the pool annotation.
async fn wait_pool_annotation_gone(scenario: &Scenario, name: &str) -> Result<()> {
    wait_until(
        &format!("Service {name} without {POOL_ANNOTATION}"),
        Duration::from_secs(20),
        || async {
            let annotations = scenario
                .annotations(name)
                .await
                .map_err(|e| e.to_string())?;
            match annotations.get(POOL_ANNOTATION) {
                None => Ok(()),
                Some(pool) => Err(format!("{POOL_ANNOTATION} is {pool:?}")),
            }
        },
    )
    .await
}

async fn pool_annotation(scenario: &Scenario, name: &str) -> Result<Option<String>> {
    Ok(scenario
        .annotations(name)
        .await?
        .get(POOL_ANNOTATION)
        .cloned())
}

fn pools_api(scenario: &Scenario) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    );
    Api::namespaced_with(scenario.kube.clone(), &scenario.config_namespace, &resource)
}

/// `(reason, note)` of every Event about the IPAddressPool `pool`.
async fn pool_events(scenario: &Scenario, pool: &str) -> Result<Vec<(String, String)>> {
    let uid = pools_api(scenario).get(pool).await?.metadata.uid;
    let api: Api<Event> = Api::namespaced(scenario.kube.clone(), &scenario.config_namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("IPAddressPool")
                    && r.name.as_deref() == Some(pool)
                    && r.uid.is_some()
                    && r.uid == uid
            })
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}

/// Sets (`Some`) or removes (`None`) one label of a namespace.
async fn label_namespace(
    scenario: &Scenario,
    namespace: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    let api: Api<Namespace> = Api::all(scenario.kube.clone());
    api.patch(
        namespace,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
    )
    .await
    .with_context(|| format!("labelling namespace {namespace}"))?;
    Ok(())
}

// 1 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn requested_ip_by_annotation_and_by_spec_field() -> Result<()> {
    let mut scenario = Scenario::new("alloc-requested-ip").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.219"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    Svc::new(&scenario, "by-annotation")
        .annotate("metallb.io/loadBalancerIPs", "198.51.100.210")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "by-annotation", &["198.51.100.210"]).await?;
    ensure!(
        pool_annotation(&scenario, "by-annotation").await? == Some("lan".into()),
        "the pool the requested address came from is recorded"
    );
    let note = scenario
        .wait_event("by-annotation", "IPAllocated", "198.51.100.210")
        .await?;
    ensure!(
        note == "Assigned IP [\"198.51.100.210\"]",
        "MetalLB's wording: {note}"
    );

    Svc::new(&scenario, "by-field")
        .spec("loadBalancerIP", json!("198.51.100.211"))
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "by-field", &["198.51.100.211"]).await?;

    // An address in no pool: refused, and nothing else is handed out instead.
    Svc::new(&scenario, "outside")
        .annotate("metallb.io/loadBalancerIPs", "198.51.100.230")
        .create(&scenario)
        .await?;
    let note = scenario
        .wait_event("outside", "AllocationFailed", "198.51.100.230")
        .await?;
    let prefix = format!(
        "Failed to allocate IP for {}: ",
        quoted_key(&scenario, "outside")
    );
    ensure!(note.starts_with(&prefix), "MetalLB's wording: {note}");
    stays_unassigned(&scenario, "outside").await?;

    // The requested addresses were taken out of the free list: an automatic allocation gets
    // the first free address, which is neither of them.
    Svc::new(&scenario, "auto").create(&scenario).await?;
    expect_ingress(&scenario, "auto", &["198.51.100.200"]).await?;
    ensure!(
        scenario.ingress("outside").await?.is_empty(),
        "the refused Service still has no address"
    );
    Ok(())
}

// 2 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn requested_pool_by_annotation() -> Result<()> {
    let mut scenario = Scenario::new("alloc-requested-pool").await?;
    scenario.apply(BLUE_AND_GREEN).await?;
    scenario.start_controller()?;

    Svc::new(&scenario, "want-green")
        .annotate("metallb.io/address-pool", "green")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "want-green", &["198.51.100.210"]).await?;
    ensure!(
        pool_annotation(&scenario, "want-green").await? == Some("green".into()),
        "allocated from the named pool"
    );

    Svc::new(&scenario, "want-blue")
        .annotate("metallb.io/address-pool", "blue")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "want-blue", &["198.51.100.200"]).await?;
    ensure!(
        pool_annotation(&scenario, "want-blue").await? == Some("blue".into()),
        "allocated from the named pool"
    );

    Svc::new(&scenario, "wants-unknown")
        .annotate("metallb.io/address-pool", "purple")
        .create(&scenario)
        .await?;
    let note = scenario
        .wait_event("wants-unknown", "AllocationFailed", "purple")
        .await?;
    ensure!(
        note.contains(&quoted_key(&scenario, "wants-unknown")),
        "the note names the Service: {note}"
    );
    stays_unassigned(&scenario, "wants-unknown").await?;
    Ok(())
}

// 3 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn auto_assign_false_pool_serves_only_who_asks_for_it() -> Result<()> {
    let mut scenario = Scenario::new("alloc-auto-assign").await?;
    // The manual pool sorts first by name, so skipping it is the rule, not the order.
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a-manual}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b-auto}
spec:
  addresses: ["198.51.100.210-198.51.100.219"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    Svc::new(&scenario, "plain").create(&scenario).await?;
    expect_ingress(&scenario, "plain", &["198.51.100.210"]).await?;
    ensure!(pool_annotation(&scenario, "plain").await? == Some("b-auto".into()));

    Svc::new(&scenario, "named")
        .annotate("metallb.io/address-pool", "a-manual")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "named", &["198.51.100.200"]).await?;
    ensure!(pool_annotation(&scenario, "named").await? == Some("a-manual".into()));

    // Asking for one of its addresses is asking for the pool too.
    Svc::new(&scenario, "by-ip")
        .annotate("metallb.io/loadBalancerIPs", "198.51.100.205")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "by-ip", &["198.51.100.205"]).await?;
    ensure!(pool_annotation(&scenario, "by-ip").await? == Some("a-manual".into()));

    // Still never handed out automatically.
    Svc::new(&scenario, "plain-2").create(&scenario).await?;
    expect_ingress(&scenario, "plain-2", &["198.51.100.211"]).await?;
    Ok(())
}

// 4 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn avoid_buggy_ips_skips_dot_zero_and_dot_255() -> Result<()> {
    let mut scenario = Scenario::new("alloc-buggy-ips").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: avoiding}
spec:
  addresses: ["198.19.1.0/24"]
  avoidBuggyIPs: true
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: plain}
spec:
  addresses: ["198.19.2.0/24"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    Svc::new(&scenario, "avoid-1")
        .annotate("metallb.io/address-pool", "avoiding")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "avoid-1", &["198.19.1.1"]).await?;
    Svc::new(&scenario, "avoid-2")
        .annotate("metallb.io/address-pool", "avoiding")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "avoid-2", &["198.19.1.2"]).await?;

    Svc::new(&scenario, "plain-1")
        .annotate("metallb.io/address-pool", "plain")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "plain-1", &["198.19.2.0"]).await?;

    // Asking for .255 explicitly: refused where the pool avoids it, granted where not.
    Svc::new(&scenario, "avoid-255")
        .annotate("metallb.io/loadBalancerIPs", "198.19.1.255")
        .create(&scenario)
        .await?;
    let note = scenario
        .wait_event("avoid-255", "AllocationFailed", "198.19.1.255")
        .await?;
    ensure!(
        note.contains(&quoted_key(&scenario, "avoid-255")),
        "the note names the Service: {note}"
    );
    stays_unassigned(&scenario, "avoid-255").await?;
    Svc::new(&scenario, "plain-255")
        .annotate("metallb.io/loadBalancerIPs", "198.19.2.255")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "plain-255", &["198.19.2.255"]).await?;
    Ok(())
}

// 5 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn exhausted_pool_fails_then_serves_the_freed_address() -> Result<()> {
    let mut scenario = Scenario::new("alloc-exhaustion").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny}
spec:
  addresses: ["198.51.100.200-198.51.100.201"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    Svc::new(&scenario, "a").create(&scenario).await?;
    expect_ingress(&scenario, "a", &["198.51.100.200"]).await?;
    Svc::new(&scenario, "b").create(&scenario).await?;
    expect_ingress(&scenario, "b", &["198.51.100.201"]).await?;
    Svc::new(&scenario, "c").create(&scenario).await?;
    let note = scenario
        .wait_event("c", "AllocationFailed", &quoted_key(&scenario, "c"))
        .await?;
    ensure!(
        note.starts_with("Failed to allocate IP for "),
        "MetalLB's wording: {note}"
    );
    stays_unassigned(&scenario, "c").await?;

    scenario
        .services()
        .delete("b", &DeleteParams::default())
        .await?;
    expect_ingress(&scenario, "c", &["198.51.100.201"]).await?;
    scenario
        .wait_event("c", "IPAllocated", "198.51.100.201")
        .await?;
    ensure!(
        scenario.ingress("a").await? == ips(&["198.51.100.200"]),
        "a keeps its address"
    );
    Ok(())
}

// 6 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn sharing_needs_the_same_key_and_distinct_ports() -> Result<()> {
    let mut scenario = Scenario::new("alloc-sharing").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
"#,
        )
        .await?;
    scenario.start_controller()?;
    let shared = |name: &str, key: &str, port: u16| {
        Svc::new(&scenario, name)
            .annotate("metallb.io/loadBalancerIPs", "198.51.100.205")
            .annotate("metallb.io/allow-shared-ip", key)
            .ports(&[("p", port)])
    };

    shared("web", "k1", 80).create(&scenario).await?;
    expect_ingress(&scenario, "web", &["198.51.100.205"]).await?;
    shared("tls", "k1", 443).create(&scenario).await?;
    expect_ingress(&scenario, "tls", &["198.51.100.205"]).await?;

    // Same key, but port 80 is web's.
    shared("dup-port", "k1", 80).create(&scenario).await?;
    let note = scenario
        .wait_event("dup-port", "AllocationFailed", "198.51.100.205")
        .await?;
    let web = format!("{}/web", scenario.namespace);
    let tls = format!("{}/tls", scenario.namespace);
    ensure!(
        note.contains(&web) && note.contains("port") && note.contains("80"),
        "the note names the holder of port 80 and the port: {note}"
    );
    stays_unassigned(&scenario, "dup-port").await?;

    // Distinct port, but another key.
    shared("stranger", "k2", 8443).create(&scenario).await?;
    let note = scenario
        .wait_event("stranger", "AllocationFailed", "198.51.100.205")
        .await?;
    ensure!(
        note.contains("key") && (note.contains(&web) || note.contains(&tls)),
        "the note names the sharing key conflict and a holder: {note}"
    );
    stays_unassigned(&scenario, "stranger").await?;

    // Both sharers still hold it, and the pool counts the shared address once.
    ensure!(scenario.ingress("web").await? == ips(&["198.51.100.205"]));
    ensure!(scenario.ingress("tls").await? == ips(&["198.51.100.205"]));
    wait_pool_status(
        &scenario,
        "lan",
        json!({"assignedIPv4": 1, "availableIPv4": 9, "assignedIPv6": 0, "availableIPv6": 0}),
    )
    .await?;
    Ok(())
}

// 7 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn dual_stack_families_follow_the_ip_family_policy() -> Result<()> {
    let mut scenario = Scenario::new("alloc-dual-stack").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual}
spec:
  addresses: ["198.51.100.200-198.51.100.209", "2001:db8:100::200-2001:db8:100::209"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v4only}
spec:
  addresses: ["198.51.100.220-198.51.100.229"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    // RequireDualStack: one of each family, both from the one pool that has both.
    scenario
        .testbed
        .create_service(
            &scenario.kube,
            &scenario.service("both", &[Family::V4, Family::V6]),
        )
        .await?;
    expect_ingress(&scenario, "both", &["198.51.100.200", "2001:db8:100::200"]).await?;
    ensure!(pool_annotation(&scenario, "both").await? == Some("dual".into()));

    Svc::new(&scenario, "v6")
        .spec("ipFamilies", json!(["IPv6"]))
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "v6", &["2001:db8:100::201"]).await?;

    Svc::new(&scenario, "prefer")
        .spec("ipFamilyPolicy", json!("PreferDualStack"))
        .spec("ipFamilies", json!(["IPv4", "IPv6"]))
        .annotate("metallb.io/address-pool", "v4only")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "prefer", &["198.51.100.220"]).await?;
    ensure!(pool_annotation(&scenario, "prefer").await? == Some("v4only".into()));

    let mut require = scenario.service("require", &[Family::V4, Family::V6]);
    require
        .annotations
        .insert("metallb.io/address-pool".into(), "v4only".into());
    scenario
        .testbed
        .create_service(&scenario.kube, &require)
        .await?;
    let note = scenario
        .wait_event(
            "require",
            "AllocationFailed",
            &quoted_key(&scenario, "require"),
        )
        .await?;
    ensure!(
        note.to_lowercase().contains("ipv6"),
        "the note names the missing family: {note}"
    );
    stays_unassigned(&scenario, "require").await?;
    Ok(())
}

// 8 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn service_allocation_scopes_pools_and_priority_picks_among_them() -> Result<()> {
    let mut scenario = Scenario::new("alloc-scope").await?;
    let other_namespace = "svc-alloc-scope-b";
    scenario
        .testbed
        .ensure_namespace(&scenario.kube, other_namespace)
        .await?;
    scenario
        .testbed
        .clear_namespace(&scenario.kube, other_namespace)
        .await?;
    let ns_label = "ferrolb.test/alloc-scope";
    let own_namespace = scenario.namespace.clone();
    label_namespace(&scenario, &own_namespace, ns_label, None).await?;
    scenario
        .apply(&format!(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: by-namespace}}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
  serviceAllocation:
    namespaces: ["{other_namespace}"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: by-namespace-label}}
spec:
  addresses: ["198.51.100.210-198.51.100.219"]
  serviceAllocation:
    namespaceSelectors:
    - matchLabels: {{"{ns_label}": blue}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: by-service-label}}
spec:
  addresses: ["198.51.100.220-198.51.100.229"]
  serviceAllocation:
    serviceSelectors:
    - matchLabels: {{tier: gold}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: a-priority-10}}
spec:
  addresses: ["198.51.100.230-198.51.100.234"]
  serviceAllocation:
    priority: 10
    serviceSelectors:
    - matchLabels: {{tier: ranked}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: b-priority-1}}
spec:
  addresses: ["198.51.100.235-198.51.100.239"]
  serviceAllocation:
    priority: 1
    serviceSelectors:
    - matchLabels: {{tier: ranked}}
"#
        ))
        .await?;
    scenario.start_controller()?;

    // No pool admits an unlabelled Service in an unlabelled, unlisted namespace.
    Svc::new(&scenario, "plain").create(&scenario).await?;
    scenario
        .wait_event("plain", "AllocationFailed", &quoted_key(&scenario, "plain"))
        .await?;
    stays_unassigned(&scenario, "plain").await?;

    // Naming a pool does not get around its namespace list.
    Svc::new(&scenario, "sneaky")
        .annotate("metallb.io/address-pool", "by-namespace")
        .create(&scenario)
        .await?;
    scenario
        .wait_event("sneaky", "AllocationFailed", "by-namespace")
        .await?;
    stays_unassigned(&scenario, "sneaky").await?;

    // The listed namespace gets the pool.
    Svc::new(&scenario, "elsewhere")
        .namespace(other_namespace)
        .create(&scenario)
        .await?;
    let services_b: Api<Service> = Api::namespaced(scenario.kube.clone(), other_namespace);
    let elsewhere = wait_until(
        "Service svc-alloc-scope-b/elsewhere has an address",
        Duration::from_secs(20),
        || async {
            let service = services_b
                .get("elsewhere")
                .await
                .map_err(|e| e.to_string())?;
            let got = ingress_ips(&service);
            if got.is_empty() {
                Err("no address".to_string())
            } else {
                Ok(service)
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\ncontroller log:\n{}", scenario.log_tails()))?;
    ensure!(
        ingress_ips(&elsewhere) == ips(&["198.51.100.200"]),
        "from by-namespace: {:?}",
        ingress_ips(&elsewhere)
    );
    ensure!(
        elsewhere
            .metadata
            .annotations
            .unwrap_or_default()
            .get(POOL_ANNOTATION)
            == Some(&"by-namespace".to_string())
    );

    // Service labels select a pool.
    Svc::new(&scenario, "gold")
        .label("tier", "gold")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "gold", &["198.51.100.220"]).await?;
    ensure!(pool_annotation(&scenario, "gold").await? == Some("by-service-label".into()));

    // Two pools select it: the lower priority number wins, whatever the names say.
    Svc::new(&scenario, "ranked")
        .label("tier", "ranked")
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "ranked", &["198.51.100.235"]).await?;
    ensure!(pool_annotation(&scenario, "ranked").await? == Some("b-priority-1".into()));

    // Labelling the namespace opens by-namespace-label to the waiting Service.
    label_namespace(&scenario, &own_namespace, ns_label, Some("blue")).await?;
    expect_ingress(&scenario, "plain", &["198.51.100.210"]).await?;
    ensure!(pool_annotation(&scenario, "plain").await? == Some("by-namespace-label".into()));
    ensure!(
        scenario.ingress("gold").await? == ips(&["198.51.100.220"])
            && scenario.ingress("ranked").await? == ips(&["198.51.100.235"]),
        "Services holding valid addresses do not move"
    );
    label_namespace(&scenario, &own_namespace, ns_label, None).await?;
    Ok(())
}

// 9 ─────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn pool_shrink_moves_the_service_and_pool_deletion_clears_it() -> Result<()> {
    let mut scenario = Scenario::new("alloc-pool-shrink").await?;
    let pool = |range: &str| {
        format!(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan}}
spec:
  addresses: ["{range}"]
"#
        )
    };
    scenario
        .apply(&pool("198.51.100.200-198.51.100.203"))
        .await?;
    scenario.start_controller()?;
    Svc::new(&scenario, "a").create(&scenario).await?;
    expect_ingress(&scenario, "a", &["198.51.100.200"]).await?;
    Svc::new(&scenario, "b").create(&scenario).await?;
    expect_ingress(&scenario, "b", &["198.51.100.201"]).await?;

    scenario
        .apply(&pool("198.51.100.201-198.51.100.203"))
        .await?;
    let moved = scenario
        .wait_ingress("a", "moved off 198.51.100.200", |got| {
            !got.is_empty() && !got.contains(&ip("198.51.100.200"))
        })
        .await?;
    ensure!(
        moved == ips(&["198.51.100.202"]),
        "a moves to the first free address left, got {moved:?}"
    );
    let note = scenario
        .wait_event("a", "ClearAssignment", "198.51.100.200")
        .await?;
    let prefix = format!(
        "current IP for {} not allowed by config, will attempt for new IP assignment: ",
        quoted_key(&scenario, "a")
    );
    ensure!(note.starts_with(&prefix), "MetalLB's wording: {note}");
    scenario
        .wait_event("a", "IPAllocated", "198.51.100.202")
        .await?;
    ensure!(
        scenario.ingress("b").await? == ips(&["198.51.100.201"]),
        "b's address is still in the pool: it stays"
    );
    ensure!(
        !scenario
            .events("b")
            .await?
            .iter()
            .any(|(reason, _)| reason == "ClearAssignment"),
        "b is not told to move"
    );

    scenario.delete("IPAddressPool", "lan").await?;
    for (name, held) in [("a", "198.51.100.202"), ("b", "198.51.100.201")] {
        scenario
            .wait_ingress(name, "has no address", <[IpAddr]>::is_empty)
            .await?;
        wait_pool_annotation_gone(&scenario, name).await?;
        let note = scenario.wait_event(name, "ClearAssignment", held).await?;
        ensure!(
            note.contains("not allowed by config"),
            "MetalLB's wording: {note}"
        );
        scenario
            .wait_event(name, "AllocationFailed", &quoted_key(&scenario, name))
            .await?;
    }
    Ok(())
}

// 10 ────────────────────────────────────────────────────────────────────────────────────────

async fn wait_pool_status(scenario: &Scenario, pool: &str, expected: Value) -> Result<()> {
    let api = pools_api(scenario);
    let result = wait_until(
        &format!("IPAddressPool {pool} status {expected}"),
        Duration::from_secs(20),
        || async {
            let object = api.get(pool).await.map_err(|e| e.to_string())?;
            let status = object.data.get("status").cloned().unwrap_or(Value::Null);
            let matches = expected
                .as_object()
                .into_iter()
                .flatten()
                .all(|(field, value)| status.get(field) == Some(value));
            if matches {
                Ok(())
            } else {
                Err(format!("status is {status}"))
            }
        },
    )
    .await;
    result.map_err(|e| anyhow::anyhow!("{e}\ncontroller log:\n{}", scenario.log_tails()))
}

#[tokio::test]
async fn pool_status_counts_assigned_and_available_addresses() -> Result<()> {
    let mut scenario = Scenario::new("alloc-pool-status").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: four}
spec:
  addresses: ["198.51.100.200-198.51.100.203"]
"#,
        )
        .await?;
    scenario.start_controller()?;
    wait_pool_status(
        &scenario,
        "four",
        json!({"assignedIPv4": 0, "availableIPv4": 4, "assignedIPv6": 0, "availableIPv6": 0}),
    )
    .await?;

    for name in ["a", "b"] {
        Svc::new(&scenario, name).create(&scenario).await?;
        scenario.wait_assigned(name).await?;
    }
    wait_pool_status(
        &scenario,
        "four",
        json!({"assignedIPv4": 2, "availableIPv4": 2, "assignedIPv6": 0, "availableIPv6": 0}),
    )
    .await?;

    scenario
        .services()
        .delete("a", &DeleteParams::default())
        .await?;
    wait_pool_status(
        &scenario,
        "four",
        json!({"assignedIPv4": 1, "availableIPv4": 3, "assignedIPv6": 0, "availableIPv6": 0}),
    )
    .await?;
    Ok(())
}

// 11 ────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn services_of_another_load_balancer_class_are_left_alone() -> Result<()> {
    let mut scenario = Scenario::new("alloc-class").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
"#,
        )
        .await?;
    scenario.start_controller()?;

    // Created first: had it been served, it would hold .200.
    Svc::new(&scenario, "foreign")
        .spec(
            "loadBalancerClass",
            json!("ferrolb.test/alloc-class-nobody"),
        )
        .create(&scenario)
        .await?;
    Svc::new(&scenario, "ours").create(&scenario).await?;
    expect_ingress(&scenario, "ours", &["198.51.100.200"]).await?;
    stays_unassigned(&scenario, "foreign").await?;
    ensure!(pool_annotation(&scenario, "foreign").await?.is_none());
    let events = scenario.events("foreign").await?;
    ensure!(
        events.is_empty(),
        "nothing is said about a Service of another class: {events:?}"
    );
    Ok(())
}

// 12 ────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn type_change_to_cluster_ip_releases_the_address() -> Result<()> {
    let mut scenario = Scenario::new("alloc-type-change").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: one}
spec:
  addresses: ["198.51.100.200/32"]
"#,
        )
        .await?;
    scenario.start_controller()?;
    Svc::new(&scenario, "first").create(&scenario).await?;
    expect_ingress(&scenario, "first", &["198.51.100.200"]).await?;
    Svc::new(&scenario, "waiting").create(&scenario).await?;
    scenario
        .wait_event(
            "waiting",
            "AllocationFailed",
            &quoted_key(&scenario, "waiting"),
        )
        .await?;
    stays_unassigned(&scenario, "waiting").await?;

    scenario
        .services()
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "type": "ClusterIP",
                "loadBalancerClass": null,
                "allocateLoadBalancerNodePorts": null,
                "externalTrafficPolicy": null,
            }})),
        )
        .await
        .context("making `first` a ClusterIP Service")?;
    expect_ingress(&scenario, "waiting", &["198.51.100.200"]).await?;
    ensure!(pool_annotation(&scenario, "waiting").await? == Some("one".into()));
    ensure!(
        scenario.ingress("first").await?.is_empty(),
        "a ClusterIP Service shows no load-balancer address"
    );
    wait_pool_annotation_gone(&scenario, "first").await?;
    Ok(())
}

// 13 ────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn invalid_pool_edit_keeps_the_last_good_version() -> Result<()> {
    let mut scenario = Scenario::new("alloc-invalid-edit").await?;
    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.209"]
"#,
        )
        .await?;
    scenario.start_controller()?;
    Svc::new(&scenario, "a").create(&scenario).await?;
    expect_ingress(&scenario, "a", &["198.51.100.200"]).await?;

    scenario
        .apply(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: ["not-a-cidr"]
"#,
        )
        .await?;
    let note = wait_until(
        "an InvalidConfiguration Event on IPAddressPool lan",
        Duration::from_secs(20),
        || async {
            let events = pool_events(&scenario, "lan")
                .await
                .map_err(|e| e.to_string())?;
            events
                .iter()
                .find(|(reason, _)| reason == "InvalidConfiguration")
                .map(|(_, note)| note.clone())
                .ok_or_else(|| format!("events: {events:?}"))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\ncontroller log:\n{}", scenario.log_tails()))?;
    ensure!(
        note.contains("not-a-cidr"),
        "the Event names the bad value: {note}"
    );

    Svc::new(&scenario, "b").create(&scenario).await?;
    expect_ingress(&scenario, "b", &["198.51.100.201"]).await?;
    ensure!(
        scenario.ingress("a").await? == ips(&["198.51.100.200"]),
        "a keeps its address"
    );
    ensure!(
        !scenario
            .events("a")
            .await?
            .iter()
            .any(|(reason, _)| reason == "ClearAssignment"),
        "a is not told to move"
    );
    Ok(())
}

// 14 ────────────────────────────────────────────────────────────────────────────────────────

/// MetalLB's legacy `metallb.universe.tf/` annotations still work, each use is reported once
/// with a `deprecatedAnnotation` Event, and an old controller's legacy pool annotation is
/// replaced by the current one.
#[tokio::test]
async fn legacy_annotations_work_and_are_reported() -> Result<()> {
    let mut scenario = Scenario::new("alloc-legacy").await?;
    scenario.apply(BLUE_AND_GREEN).await?;
    scenario.start_controller()?;
    Svc::new(&scenario, "old-style")
        .annotate("metallb.universe.tf/address-pool", "green")
        .annotate(
            "metallb.universe.tf/ip-allocated-from-pool",
            "left-by-metallb",
        )
        .create(&scenario)
        .await?;
    expect_ingress(&scenario, "old-style", &["198.51.100.210"]).await?;
    let note = scenario
        .wait_event(
            "old-style",
            "deprecatedAnnotation",
            "metallb.universe.tf/address-pool",
        )
        .await?;
    ensure!(
        note.contains("metallb.io/address-pool"),
        "the Event names the current key: {note}"
    );
    let annotations = scenario.annotations("old-style").await?;
    ensure!(
        annotations.get(POOL_ANNOTATION) == Some(&"green".to_string())
            && !annotations.contains_key("metallb.universe.tf/ip-allocated-from-pool")
            && annotations.get("metallb.universe.tf/address-pool") == Some(&"green".to_string()),
        "the controller's own legacy annotation is replaced, the user's is kept: {annotations:?}"
    );
    let reported = scenario
        .times_reported("old-style", "deprecatedAnnotation")
        .await?;
    ensure!(
        reported == 1,
        "reported once, not on every pass: {reported}"
    );
    Ok(())
}
