//! What a Service asks of the allocator, and MetalLB's IP sharing rule.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_labels::Labels;

use crate::range::IpFamily;

/// `namespace/name` of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which addresses a Service wants, from its `spec.ipFamilyPolicy` and `spec.ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    /// One address of this family.
    SingleStack(IpFamily),
    /// Both families from one pool when a pool can give both, otherwise one: `primary`
    /// (the first of `spec.ipFamilies`) before the other.
    PreferDualStack { primary: IpFamily },
    /// One address of each family, from the same pool.
    RequireDualStack { primary: IpFamily },
}

/// Why a Service's family fields make no sense together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilyPolicyError {
    #[error("unknown ipFamilyPolicy {0:?} (SingleStack, PreferDualStack or RequireDualStack)")]
    UnknownPolicy(String),
    #[error("ipFamilies is empty")]
    NoFamily,
    #[error("ipFamilies lists {0} twice")]
    Repeated(IpFamily),
    #[error("ipFamilies lists {0} families; at most 2")]
    TooMany(usize),
    #[error("SingleStack with two ipFamilies")]
    SingleStackWithTwoFamilies,
    #[error("RequireDualStack with only {0} in ipFamilies")]
    RequireDualStackWithOneFamily(IpFamily),
}

impl FamilyPolicy {
    /// Reads a Service's `spec.ipFamilyPolicy` (unset means SingleStack) and `spec.ipFamilies`
    /// (already filled in by the apiserver). PreferDualStack with a single family, as on a
    /// single-stack cluster, wants that family only, as in MetalLB.
    pub fn from_service_spec(
        policy: Option<&str>,
        ip_families: &[IpFamily],
    ) -> Result<Self, FamilyPolicyError> {
        let (primary, secondary) = match ip_families {
            [] => return Err(FamilyPolicyError::NoFamily),
            [only] => (*only, None),
            [first, second] if first == second => return Err(FamilyPolicyError::Repeated(*first)),
            [first, second] => (*first, Some(*second)),
            more => return Err(FamilyPolicyError::TooMany(more.len())),
        };
        match (policy.unwrap_or("SingleStack"), secondary) {
            ("SingleStack", None) | ("PreferDualStack", None) => {
                Ok(FamilyPolicy::SingleStack(primary))
            }
            ("SingleStack", Some(_)) => Err(FamilyPolicyError::SingleStackWithTwoFamilies),
            ("PreferDualStack", Some(_)) => Ok(FamilyPolicy::PreferDualStack { primary }),
            ("RequireDualStack", Some(_)) => Ok(FamilyPolicy::RequireDualStack { primary }),
            ("RequireDualStack", None) => {
                Err(FamilyPolicyError::RequireDualStackWithOneFamily(primary))
            }
            (other, _) => Err(FamilyPolicyError::UnknownPolicy(other.to_string())),
        }
    }

    /// Whether the service wants an address of `family` at all.
    pub fn wants(&self, family: IpFamily) -> bool {
        match self {
            FamilyPolicy::SingleStack(only) => *only == family,
            _ => true,
        }
    }

    /// Whether `addresses` are a complete answer for this policy.
    pub fn fits(&self, addresses: &Addresses) -> bool {
        match self {
            FamilyPolicy::SingleStack(family) => {
                addresses.len() == 1 && addresses.get(*family).is_some()
            }
            FamilyPolicy::PreferDualStack { .. } => !addresses.is_empty(),
            FamilyPolicy::RequireDualStack { .. } => addresses.len() == 2,
        }
    }

    /// The families in the order they are preferred.
    pub(crate) fn order(&self) -> (IpFamily, Option<IpFamily>) {
        match self {
            FamilyPolicy::SingleStack(family) => (*family, None),
            FamilyPolicy::PreferDualStack { primary }
            | FamilyPolicy::RequireDualStack { primary } => (*primary, Some(primary.other())),
        }
    }
}

impl fmt::Display for FamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FamilyPolicy::SingleStack(family) => write!(f, "SingleStack {family}"),
            FamilyPolicy::PreferDualStack { primary } => {
                write!(f, "PreferDualStack ({primary} first)")
            }
            FamilyPolicy::RequireDualStack { primary } => {
                write!(f, "RequireDualStack ({primary} first)")
            }
        }
    }
}

/// At most one address per family: what a Service holds or asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Addresses {
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

/// Why a list of addresses cannot be a Service's addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressesError {
    #[error("{first} and {second} are both {family}; a service has at most one per family")]
    SameFamily {
        first: IpAddr,
        second: IpAddr,
        family: IpFamily,
    },
    #[error("{0} addresses; a service has at most two, one per family")]
    TooMany(usize),
}

impl Addresses {
    pub const NONE: Addresses = Addresses { v4: None, v6: None };

    pub fn single(ip: IpAddr) -> Self {
        Self::NONE.with(ip)
    }

    pub fn dual(v4: Ipv4Addr, v6: Ipv6Addr) -> Self {
        Self {
            v4: Some(v4),
            v6: Some(v6),
        }
    }

    /// From a list such as `status.loadBalancer.ingress` or the `loadBalancerIPs` annotation.
    pub fn from_ips(ips: &[IpAddr]) -> Result<Self, AddressesError> {
        match ips {
            [] => Ok(Self::NONE),
            [one] => Ok(Self::single(*one)),
            [first, second] if IpFamily::of(*first) == IpFamily::of(*second) => {
                Err(AddressesError::SameFamily {
                    first: *first,
                    second: *second,
                    family: IpFamily::of(*first),
                })
            }
            [first, second] => Ok(Self::single(*first).with(*second)),
            more => Err(AddressesError::TooMany(more.len())),
        }
    }

    /// These addresses with `ip` in its family's place.
    pub fn with(mut self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => self.v4 = Some(v4),
            IpAddr::V6(v6) => self.v6 = Some(v6),
        }
        self
    }

    /// These addresses without the one of `family`.
    pub fn without(mut self, family: IpFamily) -> Self {
        match family {
            IpFamily::V4 => self.v4 = None,
            IpFamily::V6 => self.v6 = None,
        }
        self
    }

    pub fn v4(&self) -> Option<Ipv4Addr> {
        self.v4
    }

    pub fn v6(&self) -> Option<Ipv6Addr> {
        self.v6
    }

    pub fn get(&self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => self.v4.map(IpAddr::V4),
            IpFamily::V6 => self.v6.map(IpAddr::V6),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.get(IpFamily::of(ip)) == Some(ip)
    }

    /// IPv4 first, as MetalLB writes them into the status.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + use<> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }

    pub fn len(&self) -> usize {
        usize::from(self.v4.is_some()) + usize::from(self.v6.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

impl fmt::Display for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v4, self.v6) {
            (None, None) => f.write_str("no address"),
            (Some(v4), None) => write!(f, "{v4}"),
            (None, Some(v6)) => write!(f, "{v6}"),
            (Some(v4), Some(v6)) => write!(f, "{v4} and {v6}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The spelling of a Service port's `protocol`.
    pub fn from_k8s(protocol: &str) -> Option<Self> {
        match protocol {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One of a Service's ports: services sharing an address must not have one in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
}

impl Port {
    pub fn tcp(port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            port,
        }
    }

    pub fn udp(port: u16) -> Self {
        Self {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Where a Service's traffic may go, which decides whom it may share an address with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendKey {
    /// `externalTrafficPolicy: Cluster`: any node may answer, so any such services can share.
    Cluster,
    /// `externalTrafficPolicy: Local`: only nodes with a ready endpoint answer, so services
    /// sharing an address must select the very same pods (identical `spec.selector`).
    Local { selector: Labels },
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendKey::Cluster => f.write_str("externalTrafficPolicy Cluster"),
            BackendKey::Local { selector } => {
                f.write_str("externalTrafficPolicy Local with selector `")?;
                for (i, (key, value)) in selector.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{key}={value}")?;
                }
                f.write_str("`")
            }
        }
    }
}

/// Everything the allocator needs to know about one `type: LoadBalancer` Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    pub labels: Labels,
    /// The labels of the Service's namespace, for `serviceAllocation.namespaceSelectors`.
    pub namespace_labels: Labels,
    pub families: FamilyPolicy,
    /// `spec.loadBalancerIP` or the `loadBalancerIPs` annotation; empty when not set.
    pub requested_ips: Addresses,
    /// The `address-pool` annotation.
    pub requested_pool: Option<String>,
    /// The `allow-shared-ip` annotation; empty or `None` means the service shares with no one.
    pub sharing_key: Option<String>,
    pub ports: Vec<Port>,
    pub backend: BackendKey,
}

impl ServiceRequest {
    /// A Cluster-policy service with no labels, ports, requests or sharing key.
    pub fn new(key: ServiceKey, families: FamilyPolicy) -> Self {
        Self {
            key,
            labels: Labels::new(),
            namespace_labels: Labels::new(),
            families,
            requested_ips: Addresses::NONE,
            requested_pool: None,
            sharing_key: None,
            ports: Vec::new(),
            backend: BackendKey::Cluster,
        }
    }

    pub(crate) fn sharing_key(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|key| !key.is_empty())
    }
}

/// Why two services may not hold the same address (MetalLB's sharing rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharingConflict {
    /// The service asking has no sharing key.
    NoSharingKey,
    /// The service holding the address has no sharing key.
    HolderDoesNotShare,
    DifferentKeys {
        wanted: String,
        held: String,
    },
    DifferentBackends {
        wanted: BackendKey,
        held: BackendKey,
    },
    SamePort(Port),
}

impl fmt::Display for SharingConflict {
    /// Completes "… is used by ns/other, …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharingConflict::NoSharingKey => {
                f.write_str("and this service has no sharing key (allow-shared-ip)")
            }
            SharingConflict::HolderDoesNotShare => {
                f.write_str("which has no sharing key (allow-shared-ip)")
            }
            SharingConflict::DifferentKeys { wanted, held } => {
                write!(
                    f,
                    "which does not share key `{wanted}` (its key is `{held}`)"
                )
            }
            SharingConflict::DifferentBackends { wanted, held } => write!(
                f,
                "which has {held} while this service has {wanted}; only Cluster services, or \
                 Local services with identical selectors, may share"
            ),
            SharingConflict::SamePort(port) => write!(f, "which also uses port {port}"),
        }
    }
}

/// Whether `wanted` may share an address with `holder`.
pub(crate) fn sharing_conflict(
    wanted: &ServiceRequest,
    holder: &ServiceRequest,
) -> Option<SharingConflict> {
    let Some(wanted_key) = wanted.sharing_key() else {
        return Some(SharingConflict::NoSharingKey);
    };
    let Some(held_key) = holder.sharing_key() else {
        return Some(SharingConflict::HolderDoesNotShare);
    };
    if wanted_key != held_key {
        return Some(SharingConflict::DifferentKeys {
            wanted: wanted_key.to_string(),
            held: held_key.to_string(),
        });
    }
    if wanted.backend != holder.backend {
        return Some(SharingConflict::DifferentBackends {
            wanted: wanted.backend.clone(),
            held: holder.backend.clone(),
        });
    }
    wanted
        .ports
        .iter()
        .find(|port| holder.ports.contains(port))
        .map(|port| SharingConflict::SamePort(*port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use IpFamily::{V4, V6};

    #[test]
    fn family_policy_follows_the_service_spec() {
        let spec = FamilyPolicy::from_service_spec;
        assert_eq!(spec(None, &[V6]), Ok(FamilyPolicy::SingleStack(V6)));
        assert_eq!(
            spec(Some("PreferDualStack"), &[V6, V4]),
            Ok(FamilyPolicy::PreferDualStack { primary: V6 })
        );
        assert_eq!(
            spec(Some("RequireDualStack"), &[V4, V6]),
            Ok(FamilyPolicy::RequireDualStack { primary: V4 })
        );
    }

    #[test]
    fn prefer_dual_stack_on_a_single_stack_cluster_wants_one_family_as_in_metallb() {
        assert_eq!(
            FamilyPolicy::from_service_spec(Some("PreferDualStack"), &[V4]),
            Ok(FamilyPolicy::SingleStack(V4))
        );
    }

    #[test]
    fn inconsistent_family_specs_are_refused() {
        let spec = FamilyPolicy::from_service_spec;
        assert_eq!(spec(None, &[]), Err(FamilyPolicyError::NoFamily));
        assert_eq!(spec(None, &[V4, V4]), Err(FamilyPolicyError::Repeated(V4)));
        assert_eq!(
            spec(None, &[V4, V6]),
            Err(FamilyPolicyError::SingleStackWithTwoFamilies)
        );
        assert_eq!(
            spec(Some("RequireDualStack"), &[V6]),
            Err(FamilyPolicyError::RequireDualStackWithOneFamily(V6))
        );
        assert_eq!(
            spec(Some("Dual"), &[V4, V6]),
            Err(FamilyPolicyError::UnknownPolicy("Dual".into()))
        );
    }

    #[test]
    fn addresses_hold_at_most_one_per_family() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let other_v4: IpAddr = "192.0.2.2".parse().expect("ip");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        let both = Addresses::from_ips(&[v6, v4]).expect("one per family");
        assert_eq!(both.iter().collect::<Vec<_>>(), [v4, v6]);
        assert_eq!(both.to_string(), "192.0.2.1 and 2001:db8::1");
        let err = Addresses::from_ips(&[v4, other_v4]).expect_err("same family");
        assert!(err.to_string().contains("both IPv4"), "{err}");
        assert_eq!(
            Addresses::from_ips(&[v4, v6, other_v4]),
            Err(AddressesError::TooMany(3))
        );
    }

    fn sharer(key: Option<&str>, backend: BackendKey, ports: &[Port]) -> ServiceRequest {
        let mut request =
            ServiceRequest::new(ServiceKey::new("ns", "svc"), FamilyPolicy::SingleStack(V4));
        request.sharing_key = key.map(str::to_string);
        request.backend = backend;
        request.ports = ports.to_vec();
        request
    }

    fn local(app: &str) -> BackendKey {
        BackendKey::Local {
            selector: [("app".to_string(), app.to_string())].into(),
        }
    }

    #[test]
    fn sharing_needs_the_same_non_empty_key_on_both_sides() {
        let a = sharer(Some("k"), BackendKey::Cluster, &[Port::tcp(80)]);
        let b = sharer(Some("k"), BackendKey::Cluster, &[Port::tcp(443)]);
        assert_eq!(sharing_conflict(&a, &b), None);
        let unkeyed = sharer(None, BackendKey::Cluster, &[Port::tcp(443)]);
        let empty_key = sharer(Some(""), BackendKey::Cluster, &[Port::tcp(443)]);
        assert_eq!(
            sharing_conflict(&unkeyed, &a),
            Some(SharingConflict::NoSharingKey)
        );
        assert_eq!(
            sharing_conflict(&empty_key, &a),
            Some(SharingConflict::NoSharingKey)
        );
        assert_eq!(
            sharing_conflict(&a, &empty_key),
            Some(SharingConflict::HolderDoesNotShare)
        );
        let other = sharer(Some("other"), BackendKey::Cluster, &[Port::tcp(443)]);
        assert!(matches!(
            sharing_conflict(&other, &a),
            Some(SharingConflict::DifferentKeys { .. })
        ));
    }

    #[test]
    fn sharing_services_may_not_overlap_on_protocol_and_port() {
        let a = sharer(Some("k"), BackendKey::Cluster, &[Port::tcp(53)]);
        let same_port_other_protocol = sharer(Some("k"), BackendKey::Cluster, &[Port::udp(53)]);
        assert_eq!(sharing_conflict(&same_port_other_protocol, &a), None);
        let clash = sharer(
            Some("k"),
            BackendKey::Cluster,
            &[Port::udp(53), Port::tcp(53)],
        );
        assert_eq!(
            sharing_conflict(&clash, &a),
            Some(SharingConflict::SamePort(Port::tcp(53)))
        );
    }

    #[test]
    fn sharing_local_services_need_identical_selectors_and_never_mix_with_cluster() {
        let web = sharer(Some("k"), local("web"), &[Port::tcp(80)]);
        let web_too = sharer(Some("k"), local("web"), &[Port::tcp(443)]);
        let db = sharer(Some("k"), local("db"), &[Port::tcp(5432)]);
        let cluster = sharer(Some("k"), BackendKey::Cluster, &[Port::tcp(8080)]);
        assert_eq!(sharing_conflict(&web_too, &web), None);
        assert!(matches!(
            sharing_conflict(&db, &web),
            Some(SharingConflict::DifferentBackends { .. })
        ));
        assert!(matches!(
            sharing_conflict(&cluster, &web),
            Some(SharingConflict::DifferentBackends { .. })
        ));
        let empty_local = sharer(
            Some("k"),
            BackendKey::Local {
                selector: Labels::new(),
            },
            &[],
        );
        assert!(sharing_conflict(&empty_local, &cluster).is_some());
    }
}
