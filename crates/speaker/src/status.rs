//! ServiceL2Status and ServiceBGPStatus objects: one per Service this node announces, naming
//! the node and the interfaces it answers on (L2) or the BGPPeers it advertises the Service to
//! (BGP), in the speaker's namespace (MetalLB's layout: labels `metallb.io/node`,
//! `metallb.io/service-name`, `metallb.io/service-namespace`; the facts in `.status`). Which
//! objects to create, change and delete is a pure diff ([`status_ops`]), the same for both
//! kinds ([`StatusKind`]); [`run_status_writer`] carries it out against its own watch of this
//! node's objects.
//!
//! A node that dies cannot delete its objects; the node that takes a Service over deletes
//! the dead node's object for it (only nodes the membership no longer sees alive, so two live
//! speakers with briefly different views never delete each other's objects).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrolb_announce::ServiceKey;
use ferrolb_api::v1beta1::{
    InterfaceInfo, ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use ferrolb_k8s::store::Store;
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

pub const NODE_LABEL: &str = "metallb.io/node";
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

/// What this node's status objects should say: per announced Service, the facts (interface
/// names for L2, BGPPeer names for BGP).
pub type Desired = BTreeMap<ServiceKey, BTreeSet<String>>;

/// What differs between the two status kinds; the diff and the writer are shared.
pub trait StatusKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    /// Starts every object name, so that the names of the two kinds never meet.
    const NAME_PREFIX: &'static str;
    /// The facts its `.status` holds.
    fn facts(&self) -> BTreeSet<String>;
    /// `.status.node` is set (a created object whose status was never written is not).
    fn has_status(&self) -> bool;
    /// The `.status` to write.
    fn status(node: &str, service: &ServiceKey, facts: &BTreeSet<String>) -> serde_json::Value;
}

impl StatusKind for ServiceL2Status {
    const KIND: &'static str = "ServiceL2Status";
    const NAME_PREFIX: &'static str = "l2";
    fn facts(&self) -> BTreeSet<String> {
        self.status
            .iter()
            .flat_map(|status| status.interfaces.iter().filter_map(|i| i.name.clone()))
            .collect()
    }
    fn has_status(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.node.is_some())
    }
    fn status(node: &str, service: &ServiceKey, facts: &BTreeSet<String>) -> serde_json::Value {
        serde_json::json!(ServiceL2StatusStatus {
            node: Some(node.to_owned()),
            service_name: Some(service.name.clone()),
            service_namespace: Some(service.namespace.clone()),
            interfaces: facts
                .iter()
                .map(|name| InterfaceInfo {
                    name: Some(name.clone()),
                })
                .collect(),
        })
    }
}

impl StatusKind for ServiceBGPStatus {
    const KIND: &'static str = "ServiceBGPStatus";
    const NAME_PREFIX: &'static str = "bgp";
    fn facts(&self) -> BTreeSet<String> {
        self.status
            .iter()
            .flat_map(|status| status.peers.iter().cloned())
            .collect()
    }
    fn has_status(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.node.is_some())
    }
    fn status(node: &str, service: &ServiceKey, facts: &BTreeSet<String>) -> serde_json::Value {
        serde_json::json!(ServiceBGPStatusStatus {
            node: Some(node.to_owned()),
            service_name: Some(service.name.clone()),
            service_namespace: Some(service.namespace.clone()),
            peers: facts.iter().cloned().collect(),
        })
    }
}

/// What the writer works towards: this node's objects, and which nodes are alive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub services: Desired,
    pub live: BTreeSet<String>,
}

/// A status object as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// From its `metallb.io/node` label.
    pub node: Option<String>,
    /// From its labels; `None` when they are missing (not ours to keep).
    pub service: Option<ServiceKey>,
    pub facts: BTreeSet<String>,
    /// `.status.node` is set (a created object whose status was never written is not).
    pub has_status: bool,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        name: String,
        service: ServiceKey,
        facts: BTreeSet<String>,
    },
    /// Writes `.status` of an existing object.
    Update {
        name: String,
        service: ServiceKey,
        facts: BTreeSet<String>,
    },
    Delete {
        name: String,
    },
}

/// The object name for `service` announced from `node`: fixed, so that a create that raced a
/// restart finds its object instead of making a second one.
pub fn object_name(prefix: &str, node: &str, service: &ServiceKey) -> String {
    let digest = Sha256::digest(format!("{node}\0{}\0{}", service.namespace, service.name));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// The writes that turn `found` into `wanted`. Objects of this node for Services no longer
/// announced here and duplicates (say, MetalLB's generated names) are deleted, and so are the
/// objects of dead nodes for Services this node announces now.
pub fn status_ops(prefix: &str, node: &str, wanted: &Wanted, found: &[Found]) -> Vec<Op> {
    let desired = &wanted.services;
    let (found, others): (Vec<&Found>, Vec<&Found>) =
        found.iter().partition(|f| f.node.as_deref() == Some(node));
    let by_name: BTreeMap<&str, &Found> = found.iter().map(|f| (f.name.as_str(), *f)).collect();
    let wanted_live = &wanted.live;
    let mut ops = Vec::new();
    let mut wanted = BTreeSet::new();
    for (service, facts) in desired {
        let name = object_name(prefix, node, service);
        match by_name.get(name.as_str()) {
            None => ops.push(Op::Create {
                name: name.clone(),
                service: service.clone(),
                facts: facts.clone(),
            }),
            Some(found)
                if !found.has_status
                    || &found.facts != facts
                    || found.service.as_ref() != Some(service) =>
            {
                ops.push(Op::Update {
                    name: name.clone(),
                    service: service.clone(),
                    facts: facts.clone(),
                })
            }
            Some(_) => {}
        }
        wanted.insert(name);
    }
    for found in found {
        if !wanted.contains(&found.name) {
            ops.push(Op::Delete {
                name: found.name.clone(),
            });
        }
    }
    for other in others {
        let dead = other
            .node
            .as_ref()
            .is_some_and(|n| !wanted_live.contains(n));
        if dead
            && other
                .service
                .as_ref()
                .is_some_and(|s| desired.contains_key(s))
        {
            ops.push(Op::Delete {
                name: other.name.clone(),
            });
        }
    }
    ops
}

fn found<K: StatusKind>(object: &K) -> Found {
    let labels = object.meta().labels.clone().unwrap_or_default();
    let service = match (
        labels.get(SERVICE_NAMESPACE_LABEL),
        labels.get(SERVICE_NAME_LABEL),
    ) {
        (Some(namespace), Some(name)) => Some(ServiceKey::new(namespace.as_str(), name.as_str())),
        _ => None,
    };
    Found {
        name: object.meta().name.clone().unwrap_or_default(),
        node: labels.get(NODE_LABEL).cloned(),
        service,
        facts: object.facts(),
        has_status: object.has_status(),
    }
}

/// Keeps this node's status objects of kind `K` equal to the latest `desired`, until the sender
/// goes. Failed writes are retried after a second; a write's result is taken as found at once,
/// so nothing is written twice while the watch catches up.
///
/// Only this node's objects are watched (a thousand Services would otherwise cost every
/// speaker a copy of every node's objects); dead nodes' objects are listed when they matter:
/// once at start, and for each node that leaves the membership.
pub async fn run_status_writer<K: StatusKind>(
    client: Client,
    namespace: String,
    node: String,
    mut desired: watch::Receiver<Wanted>,
) {
    let api: Api<K> = Api::namespaced(client, &namespace);
    let mut events = ferrolb_k8s::watch::watch_with(
        api.clone(),
        watcher::Config::default().labels(&format!("{NODE_LABEL}={node}")),
    );
    let mut store: Store<K> = Store::default();
    let mut retry_at: Option<tokio::time::Instant> = None;
    // Objects of nodes not alive, and which nodes' objects still need a look (`None`: all).
    let mut dead: Vec<Found> = Vec::new();
    let mut to_list: Option<BTreeSet<String>> = None;
    let mut listed_all = false;
    let mut live = BTreeSet::new();
    loop {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => match event {
                Some(event) => { store.apply(event); }
                None => return,
            },
            changed = desired.changed() => if changed.is_err() { return },
            () = retry => retry_at = None,
        }
        if !store.synced() || retry_at.is_some() {
            continue;
        }
        let wanted = desired.borrow_and_update().clone();
        let gone: BTreeSet<String> = live.difference(&wanted.live).cloned().collect();
        if !gone.is_empty() {
            to_list.get_or_insert_with(BTreeSet::new).extend(gone);
        }
        live.clone_from(&wanted.live);
        let lookup = if listed_all {
            to_list.take().map(Some)
        } else {
            Some(None)
        };
        if let Some(nodes) = lookup {
            match list_dead(&api, &node, nodes.as_ref(), &wanted.live).await {
                Ok(found) => {
                    listed_all = true;
                    dead.extend(found);
                }
                Err(error) => {
                    tracing::warn!(kind = K::KIND, %error, "listing other nodes' status objects failed; retrying in 1 s");
                    to_list = nodes.or(to_list);
                    retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    continue;
                }
            }
        }
        dead.retain(|f| f.node.as_ref().is_some_and(|n| !wanted.live.contains(n)));
        let mut found: Vec<Found> = store.iter().map(found).collect();
        found.extend(dead.iter().cloned());
        for op in status_ops(K::NAME_PREFIX, &node, &wanted, &found) {
            match apply(&api, &node, &op).await {
                Ok(Some(object)) => store.offer(object),
                Ok(None) => {
                    if let Op::Delete { name } = &op {
                        dead.retain(|f| &f.name != name);
                        if let Some(object) = store.get(&format!("{namespace}/{name}")).cloned() {
                            store.apply(Event::Delete(object));
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(kind = K::KIND, ?op, %error, "writing a status object failed; retrying in 1 s");
                    retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

/// The status objects of nodes other than `me` that are not alive: of `nodes`, or of every
/// node when `None`.
async fn list_dead<K: StatusKind>(
    api: &Api<K>,
    me: &str,
    nodes: Option<&BTreeSet<String>>,
    live: &BTreeSet<String>,
) -> kube::Result<Vec<Found>> {
    let selector = match nodes {
        Some(nodes) if nodes.is_empty() => return Ok(Vec::new()),
        Some(nodes) => format!(
            "{NODE_LABEL} in ({})",
            nodes.iter().cloned().collect::<Vec<_>>().join(",")
        ),
        None => NODE_LABEL.to_owned(),
    };
    let list = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    Ok(list
        .items
        .iter()
        .map(found::<K>)
        .filter(|f| {
            f.node
                .as_ref()
                .is_some_and(|n| n != me && !live.contains(n))
        })
        .collect())
}

/// Deletes every status object of kind `K` of `node`: on a graceful stop, the node announces
/// nothing.
pub async fn delete_all<K: StatusKind>(
    client: Client,
    namespace: &str,
    node: &str,
) -> kube::Result<()> {
    let api: Api<K> = Api::namespaced(client, namespace);
    let selector = format!("{NODE_LABEL}={node}");
    api.delete_collection(
        &DeleteParams::default(),
        &kube::api::ListParams::default().labels(&selector),
    )
    .await
    .map(|_| ())
}

async fn apply<K: StatusKind>(api: &Api<K>, node: &str, op: &Op) -> kube::Result<Option<K>> {
    match op {
        Op::Create {
            name,
            service,
            facts,
        } => {
            let object: K = serde_json::from_value(serde_json::json!({
                "apiVersion": "metallb.io/v1beta1",
                "kind": K::KIND,
                "metadata": {
                    "name": name,
                    "labels": {
                        NODE_LABEL: node,
                        SERVICE_NAME_LABEL: service.name,
                        SERVICE_NAMESPACE_LABEL: service.namespace,
                    },
                },
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                // Made before a restart: its status is written below all the same.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
            write_status(api, node, name, service, facts)
                .await
                .map(Some)
        }
        Op::Update {
            name,
            service,
            facts,
        } => write_status(api, node, name, service, facts)
            .await
            .map(Some),
        Op::Delete { name } => match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(error) => Err(error),
        },
    }
}

async fn write_status<K: StatusKind>(
    api: &Api<K>,
    node: &str,
    name: &str,
    service: &ServiceKey,
    facts: &BTreeSet<String>,
) -> kube::Result<K> {
    let patch = serde_json::json!({ "status": K::status(node, service, facts) });
    let mut written = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    ferrolb_k8s::watch::drop_unread_metadata(written.meta_mut());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("shop", name)
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_new_announcer_deletes_a_dead_nodes_object_and_nothing_else() {
        let object = |node: &str, service: &str| Found {
            name: object_name("l2", node, &key(service)),
            node: Some(node.into()),
            service: Some(key(service)),
            facts: names(&["eth0"]),
            has_status: true,
        };
        let wanted = Wanted {
            services: BTreeMap::from([(key("web"), names(&["eth0"]))]),
            live: names(&["node-1", "node-2"]),
        };
        let found = vec![
            object("node-1", "web"),
            // Dead, and for a Service node-1 announces now: node-1 cleans it up.
            object("node-3", "web"),
            // Alive: its own speaker deals with it, even if the views differ for a moment.
            object("node-2", "web"),
            // Dead, but for a Service node-1 does not announce: whoever does cleans it up.
            object("node-3", "api"),
        ];
        assert_eq!(
            status_ops("l2", "node-1", &wanted, &found),
            [Op::Delete {
                name: object_name("l2", "node-3", &key("web"))
            }]
        );
    }

    #[test]
    fn names_are_fixed_per_node_and_service_and_valid() {
        let a = object_name("l2", "node-1", &key("web"));
        assert_eq!(a, object_name("l2", "node-1", &key("web")));
        assert_ne!(a, object_name("l2", "node-2", &key("web")));
        assert_ne!(a, object_name("l2", "node-1", &key("api")));
        // "shop/we" + "b" must not collide with "shop/w" + "eb".
        assert_ne!(
            object_name("l2", "node-1", &ServiceKey::new("a", "bc")),
            object_name("l2", "node-1", &ServiceKey::new("ab", "c"))
        );
        assert_eq!(a.len(), 19);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn creates_updates_and_deletes_to_match() {
        let node = "node-1";
        let desired: Desired = BTreeMap::from([
            (key("new"), names(&["eth0"])),
            (key("same"), names(&["eth0"])),
            (key("moved"), names(&["eth0", "eth1"])),
            (key("unwritten"), names(&["eth0"])),
        ]);
        let found = |service: &str, facts: &[&str], has_status: bool| Found {
            name: object_name("l2", node, &key(service)),
            node: Some(node.into()),
            service: Some(key(service)),
            facts: names(facts),
            has_status,
        };
        let existing = vec![
            found("same", &["eth0"], true),
            found("moved", &["eth0"], true),
            found("unwritten", &[], false),
            found("gone", &["eth0"], true),
            Found {
                name: "l2-metallb-made".into(),
                node: Some(node.into()),
                service: Some(key("same")),
                facts: names(&["eth0"]),
                has_status: true,
            },
        ];
        let wanted = Wanted {
            services: desired.clone(),
            live: names(&[node]),
        };
        let ops = status_ops("l2", node, &wanted, &existing);
        assert_eq!(
            ops,
            [
                Op::Update {
                    name: object_name("l2", node, &key("moved")),
                    service: key("moved"),
                    facts: names(&["eth0", "eth1"]),
                },
                Op::Create {
                    name: object_name("l2", node, &key("new")),
                    service: key("new"),
                    facts: names(&["eth0"]),
                },
                Op::Update {
                    name: object_name("l2", node, &key("unwritten")),
                    service: key("unwritten"),
                    facts: names(&["eth0"]),
                },
                Op::Delete {
                    name: object_name("l2", node, &key("gone"))
                },
                Op::Delete {
                    name: "l2-metallb-made".into()
                },
            ]
        );
        let settled: Vec<Found> = desired
            .iter()
            .map(|(service, facts)| Found {
                name: object_name("l2", node, service),
                node: Some(node.into()),
                service: Some(service.clone()),
                facts: facts.clone(),
                has_status: true,
            })
            .collect();
        assert!(status_ops("l2", node, &wanted, &settled).is_empty());
        let everything_gone = status_ops("l2", node, &Wanted::default(), &settled);
        assert_eq!(everything_gone.len(), 4);
        assert!(
            everything_gone
                .iter()
                .all(|op| matches!(op, Op::Delete { .. }))
        );
    }
}
