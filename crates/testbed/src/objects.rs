//! Kubernetes objects and backend pods as end-to-end tests need them.
//!
//! The testbed runs no kubelet and no kube-controller-manager, so what those would do for a
//! Service's backends is done here: pods are network namespaces started by `testbed pod add`,
//! and their EndpointSlices are written directly.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::Testbed;

/// An IP family, as Kubernetes spells it in `spec.ipFamilies` and EndpointSlice `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn kubernetes_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A backend "pod": a network namespace behind a node running the testbed's HTTP echo server.
/// Dropping it stops the server and removes the namespace.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub node: String,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub port: u16,
    script: PathBuf,
}

impl Pod {
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(self.ip4),
            Family::V6 => IpAddr::V6(self.ip6),
        }
    }

    /// Parses the `name=… node=… ip4=… ip6=… port=…` line of `testbed pod add`.
    fn parse(line: &str, script: PathBuf) -> Result<Self> {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .collect();
        let field = |name: &str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| anyhow!("`testbed pod add` printed no {name}: {line:?}"))
        };
        Ok(Self {
            name: field("name")?.to_string(),
            node: field("node")?.to_string(),
            ip4: field("ip4")?.parse()?,
            ip6: field("ip6")?.parse()?,
            port: field("port")?.parse()?,
            script,
        })
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Synchronous on purpose: it must also run when a test panics.
        let result = std::process::Command::new(&self.script)
            .args(["pod", "del", &self.name])
            .output();
        if let Err(err) = result {
            eprintln!("could not remove pod {}: {err}", self.name);
        }
    }
}

/// A `type: LoadBalancer` Service with one TCP port named `http`.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub namespace: String,
    pub name: String,
    pub families: Vec<Family>,
    pub port: u16,
    pub target_port: u16,
    /// `Cluster` or `Local`.
    pub external_traffic_policy: String,
    pub annotations: BTreeMap<String, String>,
    pub load_balancer_class: Option<String>,
}

impl ServiceSpec {
    pub fn new(namespace: &str, name: &str, families: &[Family]) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            families: families.to_vec(),
            port: 80,
            target_port: 8080,
            external_traffic_policy: "Cluster".to_string(),
            annotations: BTreeMap::new(),
            load_balancer_class: None,
        }
    }

    fn to_service(&self) -> Result<Service> {
        let families: Vec<_> = self.families.iter().map(|f| f.kubernetes_name()).collect();
        let policy = if families.len() > 1 {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        let mut spec = json!({
            "type": "LoadBalancer",
            "selector": {"app": self.name},
            "ipFamilies": families,
            "ipFamilyPolicy": policy,
            "externalTrafficPolicy": self.external_traffic_policy,
            "ports": [{"name": "http", "protocol": "TCP", "port": self.port, "targetPort": self.target_port}],
        });
        if let Some(class) = &self.load_balancer_class {
            spec["loadBalancerClass"] = json!(class);
        }
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": self.annotations},
            "spec": spec,
        }))
        .context("building the Service")
    }
}

impl Testbed {
    /// Starts a backend pod on `node` (see `testbed pod add`).
    pub async fn add_pod(&self, name: &str, node: &str) -> Result<Pod> {
        let output = self.script(&["pod", "add", name, node]).await?.ok()?;
        let line = output
            .stdout
            .lines()
            .last()
            .ok_or_else(|| anyhow!("`testbed pod add` printed nothing"))?;
        Pod::parse(line, self.repo().join("testbed/testbed"))
    }

    /// Creates the namespace if it does not exist yet.
    pub async fn ensure_namespace(&self, client: &kube::Client, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(client.clone());
        if api.get_opt(name).await?.is_none() {
            let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            api.create(&PostParams::default(), &namespace)
                .await
                .with_context(|| format!("creating namespace {name}"))?;
        }
        Ok(())
    }

    /// Creates the Service and returns it as the apiserver stored it (ClusterIPs allocated).
    pub async fn create_service(
        &self,
        client: &kube::Client,
        spec: &ServiceSpec,
    ) -> Result<Service> {
        let api: Api<Service> = Api::namespaced(client.clone(), &spec.namespace);
        api.create(&PostParams::default(), &spec.to_service()?)
            .await
            .with_context(|| format!("creating Service {}/{}", spec.namespace, spec.name))
    }

    /// Writes one EndpointSlice per family of `spec`, listing `pods` as ready endpoints on their
    /// nodes: what the EndpointSlice controller would write for running pods.
    pub async fn publish_endpoints(
        &self,
        client: &kube::Client,
        spec: &ServiceSpec,
        pods: &[&Pod],
    ) -> Result<()> {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &spec.namespace);
        for family in &spec.families {
            let name = format!(
                "{}-testbed-{}",
                spec.name,
                family.kubernetes_name().to_lowercase()
            );
            let endpoints: Vec<_> = pods
                .iter()
                .map(|pod| {
                    json!({
                        "addresses": [pod.ip(*family).to_string()],
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                        "nodeName": pod.node,
                        "targetRef": {"kind": "Pod", "name": pod.name, "namespace": spec.namespace},
                    })
                })
                .collect();
            let slice: EndpointSlice = serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": spec.namespace,
                    "labels": {
                        "kubernetes.io/service-name": spec.name,
                        "endpointslice.kubernetes.io/managed-by": "testbed.ferrolb.io",
                    },
                },
                "addressType": family.kubernetes_name(),
                "endpoints": endpoints,
                "ports": [{"name": "http", "protocol": "TCP", "port": spec.target_port}],
            }))?;
            api.patch(
                &name,
                &PatchParams::apply("ferrolb-testbed").force(),
                &Patch::Apply(&slice),
            )
            .await
            .with_context(|| format!("writing EndpointSlice {}/{name}", spec.namespace))?;
        }
        Ok(())
    }

    /// Writes `status.loadBalancer.ingress` by hand, as a load-balancer controller would.
    pub async fn set_ingress(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
        ips: &[IpAddr],
    ) -> Result<()> {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let ingress: Vec<_> = ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
        )
        .await
        .with_context(|| format!("writing the status of Service {namespace}/{name}"))?;
        Ok(())
    }

    /// Deletes every Service and EndpointSlice in `namespace`. The namespace itself stays: the
    /// testbed has no namespace controller to finalize its deletion.
    pub async fn clear_namespace(&self, client: &kube::Client, namespace: &str) -> Result<()> {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
        services
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        slices
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_line_is_parsed() {
        let pod = Pod::parse(
            "name=web-a node=node-2 ip4=203.0.113.146 ip6=2001:db8:1:2::2 port=8080",
            PathBuf::from("/bin/true"),
        )
        .expect("parses");
        assert_eq!(pod.node, "node-2");
        assert_eq!(
            pod.ip(Family::V4),
            "203.0.113.146".parse::<IpAddr>().expect("literal")
        );
        assert_eq!(
            pod.ip(Family::V6),
            "2001:db8:1:2::2".parse::<IpAddr>().expect("literal")
        );
        assert_eq!(pod.port, 8080);
    }

    #[test]
    fn dual_stack_services_require_both_families() {
        let spec = ServiceSpec::new("ns", "web", &[Family::V4, Family::V6]);
        let service = spec.to_service().expect("valid");
        let spec = service.spec.expect("has spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(
            spec.ip_families,
            Some(vec!["IPv4".to_string(), "IPv6".to_string()])
        );
    }
}
