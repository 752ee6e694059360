//! What the election reads: plain views of Services, their endpoints, Nodes and the live
//! speakers, made by the speaker from its watches.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_ipam::ServiceKey;
use ferrolb_labels::Labels;

/// The Node label that keeps a node from announcing (any value, even `"false"`, counts: MetalLB
/// and Kubernetes test only that the key is present).
pub const EXCLUDE_FROM_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

/// A `type: LoadBalancer` Service as the election needs it. The caller leaves out Services that
/// are not ferrolb's (other `loadBalancerClass`, not `LoadBalancer`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Service {
    pub key: ServiceKey,
    /// `metadata.labels`, for the advertisements' `serviceSelectors`.
    pub labels: Labels,
    /// The addresses in `status.loadBalancer.ingress`, each with the pool it came from.
    pub ips: Vec<ServiceIp>,
    pub traffic_policy: TrafficPolicy,
    /// Every endpoint of every EndpointSlice of the Service.
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// A Cluster-policy Service with no labels, no addresses and no endpoints.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            key: ServiceKey::new(namespace, name),
            labels: Labels::new(),
            ips: Vec::new(),
            traffic_policy: TrafficPolicy::Cluster,
            endpoints: Vec::new(),
        }
    }
}

/// One address of a Service and the pool it was allocated from (the controller's
/// `metallb.io/ip-allocated-from-pool` annotation, or the pool whose ranges hold it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceIp {
    pub ip: IpAddr,
    pub pool: String,
}

impl ServiceIp {
    pub fn new(ip: IpAddr, pool: impl Into<String>) -> Self {
        Self {
            ip,
            pool: pool.into(),
        }
    }
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficPolicy {
    /// Any eligible node may announce: kube-proxy forwards to endpoints anywhere.
    #[default]
    Cluster,
    /// Only nodes with an endpoint that can serve may announce: kube-proxy sends the traffic
    /// to local endpoints only, and keeps the client's source address.
    Local,
}

/// One endpoint of an EndpointSlice: the node it runs on and its conditions, as given (unset
/// conditions stay `None`, which is not the same as `false`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// `nodeName`; an endpoint without one counts for "the Service has a serving endpoint"
    /// but puts no node in the running for `Local`.
    pub node: Option<String>,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
}

impl Endpoint {
    /// A ready endpoint on `node`.
    pub fn ready_on(node: impl Into<String>) -> Self {
        Self {
            node: Some(node.into()),
            ready: Some(true),
            serving: Some(true),
        }
    }

    /// Whether the endpoint can take traffic: `ready` true or unset, or `serving` true — a
    /// terminating endpoint that still serves counts (MetalLB's `EndpointCanServe`; the
    /// `terminating` condition itself is not read, as there).
    pub fn can_serve(&self) -> bool {
        self.ready.unwrap_or(true) || self.serving == Some(true)
    }
}

/// A Node as the election needs it.
///
/// There is no "unschedulable" here on purpose: MetalLB's speaker does not take cordoned nodes
/// out of the election (the check is commented out in its `IsNodeAvailable`, and a change of
/// `spec.unschedulable` only triggers a re-sync), so draining a node for maintenance does not
/// move addresses by itself — the speaker leaving does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    pub name: String,
    /// `metadata.labels`: the advertisements' `nodeSelectors` and `preferredNodeSelectors`, and
    /// [`EXCLUDE_FROM_LOAD_BALANCERS`].
    pub labels: Labels,
    /// The `Ready` condition is `True`. Read only without a membership layer
    /// ([`Speakers::MembershipDisabled`]): with one, a live speaker is authoritative, as in
    /// MetalLB (a node whose kubelet is down but whose network works keeps serving).
    pub ready: bool,
    /// The `NetworkUnavailable` condition is `True`: the node cannot announce (MetalLB's
    /// `IsNetworkUnavailable`).
    pub network_unavailable: bool,
}

impl Node {
    /// A Ready node with no labels and its network available.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: Labels::new(),
            ready: true,
            network_unavailable: false,
        }
    }

    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Which nodes have a speaker that can announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speakers {
    /// The members the membership layer sees alive, by node name (MetalLB's
    /// `UsableSpeakers`). A member with no Node object is never eligible: nothing selects it.
    Live(BTreeSet<String>),
    /// No membership layer: every Node is taken to run a speaker (MetalLB's fallback, which
    /// assumes the speaker runs on all nodes), except that ferrolb leaves out nodes that are
    /// not Ready, the only sign of a dead node left without membership (MetalLB keeps announcing
    /// from them until the Node object goes). A caller that knows better, for instance from
    /// the speaker pods' readiness, passes [`Speakers::Live`] instead.
    MembershipDisabled,
}

impl Speakers {
    pub fn live<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Live(names.into_iter().map(Into::into).collect())
    }
}

/// Switches of the speaker that change the election.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Let nodes labelled [`EXCLUDE_FROM_LOAD_BALANCERS`] announce anyway (MetalLB's
    /// `--ignore-exclude-lb`). Every speaker must use the same value.
    pub ignore_exclude_lb: bool,
}
