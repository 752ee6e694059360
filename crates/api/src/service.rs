//! What a Service asks of the load balancer: its spec fields and MetalLB's annotations, read
//! once into plain data so that the allocator and the announcer never see a `Service`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

/// The allocator's own types: what a Service asks for is read straight into them.
pub use ferrolb_ipam::{Addresses, IpFamily, Port, Protocol};

/// The addresses in `status.loadBalancer.ingress`, in order; hostnames and entries that are
/// not addresses are left out.
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
        .collect()
}

/// A MetalLB Service annotation. Each is read under the current prefix `metallb.io/` and the
/// legacy prefix `metallb.universe.tf/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Annotation {
    /// Comma-separated addresses the Service wants, at most one per family.
    LoadBalancerIps,
    /// The pool to allocate from.
    AddressPool,
    /// The sharing key: Services with the same key may share an address.
    AllowSharedIp,
    /// The pool the current address came from; written by the controller.
    IpAllocatedFromPool,
}

impl Annotation {
    pub const ALL: [Self; 4] = [
        Self::LoadBalancerIps,
        Self::AddressPool,
        Self::AllowSharedIp,
        Self::IpAllocatedFromPool,
    ];

    /// The key under the current prefix, the one ferrolb writes.
    pub const fn key(self) -> &'static str {
        match self {
            Self::LoadBalancerIps => "metallb.io/loadBalancerIPs",
            Self::AddressPool => "metallb.io/address-pool",
            Self::AllowSharedIp => "metallb.io/allow-shared-ip",
            Self::IpAllocatedFromPool => "metallb.io/ip-allocated-from-pool",
        }
    }

    /// The key under the legacy prefix, still read and reported as deprecated.
    pub const fn legacy_key(self) -> &'static str {
        match self {
            Self::LoadBalancerIps => "metallb.universe.tf/loadBalancerIPs",
            Self::AddressPool => "metallb.universe.tf/address-pool",
            Self::AllowSharedIp => "metallb.universe.tf/allow-shared-ip",
            Self::IpAllocatedFromPool => "metallb.universe.tf/ip-allocated-from-pool",
        }
    }
}

impl fmt::Display for Annotation {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.key())
    }
}

/// Where requested addresses were read from, for error messages.
const LOAD_BALANCER_IP_FIELD: &str = "spec.loadBalancerIP";

/// Everything about a Service that allocation and announcement depend on. It does not look at
/// `spec.type`: callers decide whether the Service is a LoadBalancer before asking for this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancerRequest {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.selector`; empty for Services whose endpoints are managed by hand.
    pub selector: BTreeMap<String, String>,
    /// `spec.loadBalancerClass`: the implementation meant to serve the Service.
    pub load_balancer_class: Option<String>,
    /// From the `loadBalancerIPs` annotation or `spec.loadBalancerIP`; empty when any address
    /// will do.
    pub requested_ips: Addresses,
    /// From the `address-pool` annotation.
    pub requested_pool: Option<String>,
    /// From the `allow-shared-ip` annotation.
    pub sharing_key: Option<String>,
    /// From the `ip-allocated-from-pool` annotation.
    pub allocated_from_pool: Option<String>,
    /// `spec.ipFamilies` in order or, when unset, the families of the cluster IPs (which is
    /// what MetalLB goes by).
    pub ip_families: Vec<IpFamily>,
    pub ip_family_policy: IpFamilyPolicy,
    pub external_traffic_policy: ExternalTrafficPolicy,
    pub ports: Vec<Port>,
    /// The annotations that were found under their legacy key (with or without the current
    /// one), which deserve a deprecation warning.
    pub legacy_annotations: BTreeSet<Annotation>,
}

/// `spec.ipFamilyPolicy`; unset means `SingleStack`, as in MetalLB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpFamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// `spec.externalTrafficPolicy`; unset means `Cluster`, as in Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExternalTrafficPolicy {
    /// Any node may receive the traffic and forward it to any endpoint.
    #[default]
    Cluster,
    /// Only nodes with a local endpoint may receive the traffic.
    Local,
}

/// Why a Service's request cannot be served as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "annotations {current} ({current_value:?}) and {legacy} ({legacy_value:?}) disagree; \
         remove the legacy one",
        current = .annotation.key(),
        legacy = .annotation.legacy_key()
    )]
    ConflictingAnnotations {
        annotation: Annotation,
        current_value: String,
        legacy_value: String,
    },
    #[error(
        "both {key} ({annotation_value:?}) and spec.loadBalancerIP ({field_value:?}) are set; \
         use only the annotation"
    )]
    IpsInAnnotationAndSpec {
        key: &'static str,
        annotation_value: String,
        field_value: String,
    },
    #[error("{source_name}: {address:?} is not an IP address (in {value:?})")]
    InvalidIp {
        source_name: &'static str,
        address: String,
        value: String,
    },
    #[error("{source_name}: {value:?} asks for more than one {family} address")]
    SeveralIpsOfOneFamily {
        source_name: &'static str,
        value: String,
        family: IpFamily,
    },
    #[error("spec.ipFamilies: unknown family {0:?} (expected IPv4 or IPv6)")]
    UnknownIpFamily(String),
    #[error(
        "spec.ipFamilyPolicy: unknown policy {0:?} \
         (expected SingleStack, PreferDualStack or RequireDualStack)"
    )]
    UnknownIpFamilyPolicy(String),
    #[error("spec.externalTrafficPolicy: unknown policy {0:?} (expected Cluster or Local)")]
    UnknownExternalTrafficPolicy(String),
    #[error("spec.ports: unknown protocol {0:?} (expected TCP, UDP or SCTP)")]
    UnknownProtocol(String),
    #[error("spec.ports: {0} is not a port number")]
    InvalidPort(i32),
}

impl LoadBalancerRequest {
    /// Reads the request out of a Service; the first rule it breaks is the error.
    pub fn from_service(service: &Service) -> Result<Self, ServiceError> {
        let metadata = &service.metadata;
        let spec = service.spec.clone().unwrap_or_default();
        let mut annotations = Annotations {
            all: metadata.annotations.as_ref(),
            legacy_used: BTreeSet::new(),
        };

        let requested_ips = requested_ips(&mut annotations, spec.load_balancer_ip.as_deref())?;
        let requested_pool = annotations.get(Annotation::AddressPool)?;
        let sharing_key = annotations.get(Annotation::AllowSharedIp)?;
        let allocated_from_pool = annotations.get(Annotation::IpAllocatedFromPool)?;

        let ip_families = match &spec.ip_families {
            Some(families) => families
                .iter()
                .map(|family| parse_ip_family(family))
                .collect::<Result<_, _>>()?,
            None => cluster_ip_families(spec.cluster_ips.as_deref(), spec.cluster_ip.as_deref()),
        };
        let ip_family_policy = match spec.ip_family_policy.as_deref() {
            None => IpFamilyPolicy::SingleStack,
            Some("SingleStack") => IpFamilyPolicy::SingleStack,
            Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
            Some(other) => return Err(ServiceError::UnknownIpFamilyPolicy(other.to_owned())),
        };
        let external_traffic_policy = match spec.external_traffic_policy.as_deref() {
            None | Some("Cluster") => ExternalTrafficPolicy::Cluster,
            Some("Local") => ExternalTrafficPolicy::Local,
            Some(other) => {
                return Err(ServiceError::UnknownExternalTrafficPolicy(other.to_owned()));
            }
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|port| {
                let protocol = match port.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    Some(other) => return Err(ServiceError::UnknownProtocol(other.to_owned())),
                };
                let number = u16::try_from(port.port)
                    .ok()
                    .filter(|&number| number != 0)
                    .ok_or(ServiceError::InvalidPort(port.port))?;
                Ok(Port {
                    protocol,
                    port: number,
                })
            })
            .collect::<Result<_, _>>()?;

        Ok(Self {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
            selector: spec.selector.unwrap_or_default(),
            load_balancer_class: spec.load_balancer_class,
            requested_ips,
            requested_pool,
            sharing_key,
            allocated_from_pool,
            ip_families,
            ip_family_policy,
            external_traffic_policy,
            ports,
            legacy_annotations: annotations.legacy_used,
        })
    }
}

/// A Service's annotations, read under both prefixes.
struct Annotations<'a> {
    all: Option<&'a BTreeMap<String, String>>,
    legacy_used: BTreeSet<Annotation>,
}

impl Annotations<'_> {
    /// The annotation's value, with the key it was found under. An empty value counts as
    /// unset, as in MetalLB.
    fn get_with_key(
        &mut self,
        annotation: Annotation,
    ) -> Result<Option<(String, &'static str)>, ServiceError> {
        let lookup = |key: &str| self.all.and_then(|all| all.get(key));
        let current = lookup(annotation.key());
        let legacy = lookup(annotation.legacy_key());
        // The pool annotation is the controller's own record, not the user's request: an old
        // MetalLB's legacy copy is simply replaced, so it is neither a conflict nor deprecated.
        let controller_written = annotation == Annotation::IpAllocatedFromPool;
        if legacy.is_some() && !controller_written {
            self.legacy_used.insert(annotation);
        }
        let found = match (current, legacy) {
            (Some(current), Some(legacy)) if current != legacy && !controller_written => {
                return Err(ServiceError::ConflictingAnnotations {
                    annotation,
                    current_value: current.clone(),
                    legacy_value: legacy.clone(),
                });
            }
            (Some(value), _) => Some((value, annotation.key())),
            (None, Some(value)) => Some((value, annotation.legacy_key())),
            (None, None) => None,
        };
        Ok(found
            .filter(|(value, _)| !value.is_empty())
            .map(|(value, key)| (value.clone(), key)))
    }

    fn get(&mut self, annotation: Annotation) -> Result<Option<String>, ServiceError> {
        Ok(self.get_with_key(annotation)?.map(|(value, _)| value))
    }
}

fn requested_ips(
    annotations: &mut Annotations,
    load_balancer_ip: Option<&str>,
) -> Result<Addresses, ServiceError> {
    let field = load_balancer_ip.filter(|value| !value.is_empty());
    let (source_name, value) = match (
        annotations.get_with_key(Annotation::LoadBalancerIps)?,
        field,
    ) {
        (Some((annotation_value, key)), Some(field_value)) => {
            return Err(ServiceError::IpsInAnnotationAndSpec {
                key,
                annotation_value,
                field_value: field_value.to_owned(),
            });
        }
        (Some((value, key)), None) => (key, value),
        (None, Some(value)) => (LOAD_BALANCER_IP_FIELD, value.to_owned()),
        (None, None) => return Ok(Addresses::NONE),
    };
    // spec.loadBalancerIP holds a single address: no splitting, so a comma in it is an error.
    let addresses: Vec<&str> = if source_name == LOAD_BALANCER_IP_FIELD {
        vec![value.trim()]
    } else {
        value.split(',').map(str::trim).collect()
    };
    let mut requested = Addresses::NONE;
    for address in addresses {
        // `to_canonical` reads `::ffff:192.0.2.1` as the IPv4 address it maps, as Go does.
        let parsed = address
            .parse::<IpAddr>()
            .map_err(|_| ServiceError::InvalidIp {
                source_name,
                address: address.to_owned(),
                value: value.clone(),
            })?
            .to_canonical();
        if requested.get(IpFamily::of(parsed)).is_some() {
            return Err(ServiceError::SeveralIpsOfOneFamily {
                source_name,
                value: value.clone(),
                family: IpFamily::of(parsed),
            });
        }
        requested = requested.with(parsed);
    }
    Ok(requested)
}

fn parse_ip_family(family: &str) -> Result<IpFamily, ServiceError> {
    match family {
        "IPv4" => Ok(IpFamily::V4),
        "IPv6" => Ok(IpFamily::V6),
        other => Err(ServiceError::UnknownIpFamily(other.to_owned())),
    }
}

/// The families of `spec.clusterIPs` (or the older `spec.clusterIP`), skipping what is not an
/// address (`None` for headless Services).
fn cluster_ip_families(cluster_ips: Option<&[String]>, cluster_ip: Option<&str>) -> Vec<IpFamily> {
    let addresses: Vec<&str> = match cluster_ips {
        Some(cluster_ips) if !cluster_ips.is_empty() => {
            cluster_ips.iter().map(String::as_str).collect()
        }
        _ => cluster_ip.into_iter().collect(),
    };
    let mut families = Vec::new();
    for address in addresses {
        if let Ok(address) = address.parse::<IpAddr>() {
            let family = IpFamily::of(address.to_canonical());
            if !families.contains(&family) {
                families.push(family);
            }
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;

    use super::*;

    fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..spec
            }),
            status: None,
        }
    }

    fn parse(annotations: &[(&str, &str)]) -> Result<LoadBalancerRequest, ServiceError> {
        LoadBalancerRequest::from_service(&service(annotations, ServiceSpec::default()))
    }

    fn parse_spec(spec: ServiceSpec) -> Result<LoadBalancerRequest, ServiceError> {
        LoadBalancerRequest::from_service(&service(&[], spec))
    }

    fn ipv4(address: &str) -> Ipv4Addr {
        address.parse().expect("test address")
    }

    fn ipv6(address: &str) -> Ipv6Addr {
        address.parse().expect("test address")
    }

    #[test]
    fn a_plain_service_gets_kubernetes_and_metallb_defaults() {
        let request = parse_spec(ServiceSpec {
            cluster_ip: Some("198.18.0.10".into()),
            cluster_ips: Some(vec!["198.18.0.10".into()]),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        })
        .expect("valid");
        assert_eq!(
            request,
            LoadBalancerRequest {
                namespace: "default".into(),
                name: "web".into(),
                ip_families: vec![IpFamily::V4],
                ip_family_policy: IpFamilyPolicy::SingleStack,
                external_traffic_policy: ExternalTrafficPolicy::Cluster,
                ports: vec![Port {
                    protocol: Protocol::Tcp,
                    port: 80
                }],
                ..LoadBalancerRequest::default()
            }
        );
    }

    #[test]
    fn metadata_selector_and_class_are_copied() {
        let mut service = service(
            &[],
            ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                load_balancer_class: Some("ferrolb.io/lb".into()),
                ..ServiceSpec::default()
            },
        );
        service.metadata.labels = Some(BTreeMap::from([("tier".into(), "front".into())]));
        let request = LoadBalancerRequest::from_service(&service).expect("valid");
        assert_eq!(
            (request.namespace.as_str(), request.name.as_str()),
            ("default", "web")
        );
        assert_eq!(
            request.labels,
            BTreeMap::from([("tier".into(), "front".into())])
        );
        assert_eq!(
            request.selector,
            BTreeMap::from([("app".into(), "web".into())])
        );
        assert_eq!(
            request.load_balancer_class.as_deref(),
            Some("ferrolb.io/lb")
        );
    }

    #[test]
    fn a_service_without_spec_or_metadata_is_read_with_defaults() {
        let request = LoadBalancerRequest::from_service(&Service::default()).expect("valid");
        assert_eq!(request, LoadBalancerRequest::default());
    }

    #[test]
    fn the_ips_annotation_asks_for_one_address_per_family() {
        let request =
            parse(&[("metallb.io/loadBalancerIPs", "192.0.2.10, 2001:db8::10")]).expect("valid");
        assert_eq!(
            request.requested_ips,
            Addresses::dual(ipv4("192.0.2.10"), ipv6("2001:db8::10"))
        );
        assert_eq!(
            request.requested_ips.iter().collect::<Vec<_>>(),
            vec![
                IpAddr::from(ipv4("192.0.2.10")),
                IpAddr::from(ipv6("2001:db8::10"))
            ]
        );
        assert!(request.legacy_annotations.is_empty());
    }

    #[test]
    fn spec_load_balancer_ip_asks_for_one_address() {
        let request = parse_spec(ServiceSpec {
            load_balancer_ip: Some("2001:db8::10".into()),
            ..ServiceSpec::default()
        })
        .expect("valid");
        assert_eq!(
            request.requested_ips,
            Addresses::single(IpAddr::from(ipv6("2001:db8::10")))
        );
    }

    #[test]
    fn no_requested_ips_is_empty() {
        let request = parse(&[("metallb.io/loadBalancerIPs", "")]).expect("valid");
        assert!(request.requested_ips.is_empty());
        let request = parse_spec(ServiceSpec {
            load_balancer_ip: Some(String::new()),
            ..ServiceSpec::default()
        })
        .expect("valid");
        assert!(request.requested_ips.is_empty());
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_an_ipv4_address() {
        let request = parse(&[("metallb.io/loadBalancerIPs", "::ffff:192.0.2.10")]).expect("valid");
        assert_eq!(request.requested_ips.v4(), Some(ipv4("192.0.2.10")));
        assert_eq!(request.requested_ips.v6(), None);
    }

    #[test]
    fn annotation_and_spec_ips_together_are_an_error() {
        let error = LoadBalancerRequest::from_service(&service(
            &[("metallb.io/loadBalancerIPs", "192.0.2.10")],
            ServiceSpec {
                load_balancer_ip: Some("192.0.2.11".into()),
                ..ServiceSpec::default()
            },
        ))
        .expect_err("both set");
        assert_eq!(
            error,
            ServiceError::IpsInAnnotationAndSpec {
                key: "metallb.io/loadBalancerIPs",
                annotation_value: "192.0.2.10".into(),
                field_value: "192.0.2.11".into(),
            }
        );
        assert_eq!(
            error.to_string(),
            "both metallb.io/loadBalancerIPs (\"192.0.2.10\") and spec.loadBalancerIP (\"192.0.2.11\") \
             are set; use only the annotation"
        );
    }

    #[test]
    fn two_addresses_of_one_family_are_an_error() {
        let error = parse(&[("metallb.io/loadBalancerIPs", "192.0.2.10,192.0.2.11")])
            .expect_err("two IPv4");
        assert_eq!(
            error,
            ServiceError::SeveralIpsOfOneFamily {
                source_name: "metallb.io/loadBalancerIPs",
                value: "192.0.2.10,192.0.2.11".into(),
                family: IpFamily::V4,
            }
        );
        let error = parse(&[(
            "metallb.io/loadBalancerIPs",
            "2001:db8::1,192.0.2.1,2001:db8::2",
        )])
        .expect_err("two IPv6");
        assert!(matches!(
            error,
            ServiceError::SeveralIpsOfOneFamily {
                family: IpFamily::V6,
                ..
            }
        ));
    }

    #[test]
    fn an_unparsable_address_is_an_error_naming_it() {
        let error = parse(&[("metallb.io/loadBalancerIPs", "192.0.2.10,192.0.2.300")])
            .expect_err("bad address");
        assert_eq!(
            error.to_string(),
            "metallb.io/loadBalancerIPs: \"192.0.2.300\" is not an IP address (in \"192.0.2.10,192.0.2.300\")"
        );
        let error =
            parse(&[("metallb.io/loadBalancerIPs", "192.0.2.10,")]).expect_err("empty item");
        assert!(matches!(error, ServiceError::InvalidIp { ref address, .. } if address.is_empty()));
        let error = parse(&[("metallb.io/loadBalancerIPs", "192.0.2.0/24")]).expect_err("a CIDR");
        assert!(matches!(error, ServiceError::InvalidIp { .. }));
        let error = parse_spec(ServiceSpec {
            load_balancer_ip: Some("192.0.2.10,2001:db8::10".into()),
            ..ServiceSpec::default()
        })
        .expect_err("the spec field holds one address");
        assert_eq!(
            error,
            ServiceError::InvalidIp {
                source_name: "spec.loadBalancerIP",
                address: "192.0.2.10,2001:db8::10".into(),
                value: "192.0.2.10,2001:db8::10".into(),
            }
        );
    }

    #[test]
    fn pool_sharing_key_and_allocated_pool_are_read() {
        let request = parse(&[
            ("metallb.io/address-pool", "production"),
            ("metallb.io/allow-shared-ip", "web-and-dns"),
            ("metallb.io/ip-allocated-from-pool", "production"),
        ])
        .expect("valid");
        assert_eq!(request.requested_pool.as_deref(), Some("production"));
        assert_eq!(request.sharing_key.as_deref(), Some("web-and-dns"));
        assert_eq!(request.allocated_from_pool.as_deref(), Some("production"));
        assert!(request.legacy_annotations.is_empty());
    }

    #[test]
    fn an_empty_annotation_is_unset() {
        let request = parse(&[
            ("metallb.io/address-pool", ""),
            ("metallb.io/allow-shared-ip", ""),
        ])
        .expect("valid");
        assert_eq!(request.requested_pool, None);
        assert_eq!(request.sharing_key, None);
    }

    #[test]
    fn legacy_annotations_are_read_and_reported() {
        let request = parse(&[
            ("metallb.universe.tf/address-pool", "production"),
            ("metallb.universe.tf/allow-shared-ip", "web-and-dns"),
            ("metallb.universe.tf/loadBalancerIPs", "198.51.100.200"),
            ("metallb.universe.tf/ip-allocated-from-pool", "production"),
        ])
        .expect("valid");
        assert_eq!(request.requested_pool.as_deref(), Some("production"));
        assert_eq!(request.sharing_key.as_deref(), Some("web-and-dns"));
        assert_eq!(request.allocated_from_pool.as_deref(), Some("production"));
        assert_eq!(request.requested_ips.v4(), Some(ipv4("198.51.100.200")));
        assert_eq!(
            request.legacy_annotations,
            BTreeSet::from([
                Annotation::AddressPool,
                Annotation::AllowSharedIp,
                Annotation::LoadBalancerIps
            ])
        );
    }

    #[test]
    fn the_controller_written_pool_annotation_prefers_the_current_key_and_is_not_deprecated() {
        let request = parse(&[
            ("metallb.io/ip-allocated-from-pool", "new"),
            ("metallb.universe.tf/ip-allocated-from-pool", "old"),
        ])
        .expect("the controller replaces the legacy copy; not the user's conflict");
        assert_eq!(request.allocated_from_pool.as_deref(), Some("new"));
        assert!(request.legacy_annotations.is_empty());
    }

    #[test]
    fn errors_name_the_legacy_key_when_that_is_where_the_value_came_from() {
        let error = parse(&[("metallb.universe.tf/loadBalancerIPs", "not-an-address")])
            .expect_err("bad address");
        assert!(
            error
                .to_string()
                .starts_with("metallb.universe.tf/loadBalancerIPs: "),
            "{error}"
        );
    }

    #[test]
    fn equal_values_under_both_prefixes_are_fine_but_reported() {
        let request = parse(&[
            ("metallb.io/address-pool", "production"),
            ("metallb.universe.tf/address-pool", "production"),
        ])
        .expect("valid");
        assert_eq!(request.requested_pool.as_deref(), Some("production"));
        assert_eq!(
            request.legacy_annotations,
            BTreeSet::from([Annotation::AddressPool])
        );
    }

    #[test]
    fn different_values_under_both_prefixes_are_an_error() {
        for annotation in Annotation::ALL
            .into_iter()
            .filter(|a| *a != Annotation::IpAllocatedFromPool)
        {
            let error = parse(&[
                (annotation.key(), "192.0.2.1"),
                (annotation.legacy_key(), "192.0.2.2"),
            ])
            .expect_err("conflicting annotations");
            assert_eq!(
                error,
                ServiceError::ConflictingAnnotations {
                    annotation,
                    current_value: "192.0.2.1".into(),
                    legacy_value: "192.0.2.2".into(),
                }
            );
        }
        let error = parse(&[
            ("metallb.io/address-pool", "a"),
            ("metallb.universe.tf/address-pool", "b"),
        ])
        .expect_err("conflicting annotations");
        assert_eq!(
            error.to_string(),
            "annotations metallb.io/address-pool (\"a\") and metallb.universe.tf/address-pool (\"b\") disagree; \
             remove the legacy one"
        );
    }

    #[test]
    fn annotation_keys_differ_only_by_prefix() {
        for annotation in Annotation::ALL {
            let name = annotation
                .key()
                .strip_prefix("metallb.io/")
                .expect("current prefix");
            assert_eq!(
                annotation.legacy_key(),
                format!("metallb.universe.tf/{name}")
            );
            assert_eq!(annotation.to_string(), annotation.key());
        }
    }

    #[test]
    fn ip_families_come_from_the_spec_in_order() {
        let request = parse_spec(ServiceSpec {
            ip_families: Some(vec!["IPv6".into(), "IPv4".into()]),
            cluster_ips: Some(vec!["198.18.0.10".into()]),
            ..ServiceSpec::default()
        })
        .expect("valid");
        assert_eq!(request.ip_families, vec![IpFamily::V6, IpFamily::V4]);

        let error = parse_spec(ServiceSpec {
            ip_families: Some(vec!["IPv5".into()]),
            ..ServiceSpec::default()
        })
        .expect_err("unknown family");
        assert_eq!(error, ServiceError::UnknownIpFamily("IPv5".into()));
    }

    #[test]
    fn without_ip_families_the_cluster_ips_decide() {
        let families = |cluster_ips: Option<Vec<&str>>, cluster_ip: Option<&str>| {
            parse_spec(ServiceSpec {
                cluster_ips: cluster_ips.map(|ips| ips.into_iter().map(String::from).collect()),
                cluster_ip: cluster_ip.map(String::from),
                ..ServiceSpec::default()
            })
            .expect("valid")
            .ip_families
        };
        assert_eq!(
            families(Some(vec!["2001:db8:c::10", "198.18.0.10"]), None),
            vec![IpFamily::V6, IpFamily::V4]
        );
        assert_eq!(families(None, Some("198.18.0.10")), vec![IpFamily::V4]);
        assert_eq!(
            families(Some(vec![]), Some("2001:db8:c::10")),
            vec![IpFamily::V6]
        );
        assert_eq!(families(Some(vec!["None"]), Some("None")), vec![]);
        assert_eq!(families(None, None), vec![]);
    }

    #[test]
    fn ip_family_policy_defaults_to_single_stack() {
        let policy = |value: Option<&str>| {
            parse_spec(ServiceSpec {
                ip_family_policy: value.map(String::from),
                ..ServiceSpec::default()
            })
            .map(|request| request.ip_family_policy)
        };
        assert_eq!(policy(None), Ok(IpFamilyPolicy::SingleStack));
        assert_eq!(policy(Some("SingleStack")), Ok(IpFamilyPolicy::SingleStack));
        assert_eq!(
            policy(Some("PreferDualStack")),
            Ok(IpFamilyPolicy::PreferDualStack)
        );
        assert_eq!(
            policy(Some("RequireDualStack")),
            Ok(IpFamilyPolicy::RequireDualStack)
        );
        assert_eq!(
            policy(Some("DualStack")),
            Err(ServiceError::UnknownIpFamilyPolicy("DualStack".into()))
        );
    }

    #[test]
    fn external_traffic_policy_defaults_to_cluster() {
        let policy = |value: Option<&str>| {
            parse_spec(ServiceSpec {
                external_traffic_policy: value.map(String::from),
                ..ServiceSpec::default()
            })
            .map(|request| request.external_traffic_policy)
        };
        assert_eq!(policy(None), Ok(ExternalTrafficPolicy::Cluster));
        assert_eq!(policy(Some("Cluster")), Ok(ExternalTrafficPolicy::Cluster));
        assert_eq!(policy(Some("Local")), Ok(ExternalTrafficPolicy::Local));
        assert_eq!(
            policy(Some("OnlyLocal")),
            Err(ServiceError::UnknownExternalTrafficPolicy(
                "OnlyLocal".into()
            ))
        );
    }

    #[test]
    fn ports_are_protocol_and_number_pairs() {
        let port = |protocol: Option<&str>, port: i32| ServicePort {
            protocol: protocol.map(String::from),
            port,
            ..ServicePort::default()
        };
        let request = parse_spec(ServiceSpec {
            ports: Some(vec![
                port(None, 80),
                port(Some("TCP"), 443),
                port(Some("UDP"), 53),
                port(Some("SCTP"), 9899),
            ]),
            ..ServiceSpec::default()
        })
        .expect("valid");
        assert_eq!(
            request.ports,
            vec![
                Port {
                    protocol: Protocol::Tcp,
                    port: 80
                },
                Port {
                    protocol: Protocol::Tcp,
                    port: 443
                },
                Port {
                    protocol: Protocol::Udp,
                    port: 53
                },
                Port {
                    protocol: Protocol::Sctp,
                    port: 9899
                },
            ]
        );

        let error = parse_spec(ServiceSpec {
            ports: Some(vec![port(Some("QUIC"), 443)]),
            ..ServiceSpec::default()
        })
        .expect_err("unknown protocol");
        assert_eq!(error, ServiceError::UnknownProtocol("QUIC".into()));
        for number in [0, -1, 65536] {
            let error = parse_spec(ServiceSpec {
                ports: Some(vec![port(None, number)]),
                ..ServiceSpec::default()
            })
            .expect_err("not a port");
            assert_eq!(error, ServiceError::InvalidPort(number));
        }
    }

    fn annotation_key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(Annotation::ALL.map(Annotation::key).to_vec())
                .prop_map(String::from),
            proptest::sample::select(Annotation::ALL.map(Annotation::legacy_key).to_vec())
                .prop_map(String::from),
            "\\PC{0,30}",
        ]
    }

    fn annotation_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC*",
            "[0-9a-f:., ]{0,40}",
            proptest::collection::vec(
                any::<IpAddr>().prop_map(|address| address.to_string()),
                0..4
            )
            .prop_map(|addresses| addresses.join(",")),
        ]
    }

    proptest! {
        #[test]
        fn parsing_never_panics(
            annotations in proptest::collection::btree_map(annotation_key(), annotation_value(), 0..8),
            load_balancer_ip in proptest::option::of(annotation_value()),
        ) {
            let mut service = service(&[], ServiceSpec { load_balancer_ip, ..ServiceSpec::default() });
            service.metadata.annotations = Some(annotations);
            let _ = LoadBalancerRequest::from_service(&service);
        }

        #[test]
        fn any_address_pair_round_trips(
            ipv4 in any::<Ipv4Addr>(),
            ipv6 in any::<Ipv6Addr>().prop_filter("not IPv4-mapped", |address| address.to_ipv4_mapped().is_none()),
            ipv6_first in any::<bool>(),
            padding in " {0,2}",
        ) {
            let (first, second) = if ipv6_first { (ipv6.to_string(), ipv4.to_string()) } else { (ipv4.to_string(), ipv6.to_string()) };
            let value = format!("{padding}{first}{padding},{padding}{second}{padding}");
            let request = parse(&[("metallb.io/loadBalancerIPs", &value)]).expect("valid pair");
            prop_assert_eq!(request.requested_ips, Addresses::dual(ipv4, ipv6));
        }
    }
}
