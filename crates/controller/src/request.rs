//! A Service as the allocator sees it: the api crate's reading of the Service, plus the labels
//! of its namespace, in the allocator's terms.

use ferrolb_api::service::{ExternalTrafficPolicy, IpFamilyPolicy, LoadBalancerRequest};
use ferrolb_ipam::{BackendKey, FamilyPolicy, FamilyPolicyError, ServiceKey, ServiceRequest};
use ferrolb_labels::Labels;

pub fn service_request(
    service: &LoadBalancerRequest,
    namespace_labels: &Labels,
) -> Result<ServiceRequest, FamilyPolicyError> {
    let policy = match service.ip_family_policy {
        IpFamilyPolicy::SingleStack => "SingleStack",
        IpFamilyPolicy::PreferDualStack => "PreferDualStack",
        IpFamilyPolicy::RequireDualStack => "RequireDualStack",
    };
    let families = FamilyPolicy::from_service_spec(Some(policy), &service.ip_families)?;
    let backend = match service.external_traffic_policy {
        ExternalTrafficPolicy::Cluster => BackendKey::Cluster,
        ExternalTrafficPolicy::Local => BackendKey::Local {
            selector: service.selector.clone(),
        },
    };
    Ok(ServiceRequest {
        key: ServiceKey::new(&service.namespace, &service.name),
        labels: service.labels.clone(),
        namespace_labels: namespace_labels.clone(),
        families,
        requested_ips: service.requested_ips,
        requested_pool: service.requested_pool.clone(),
        sharing_key: service.sharing_key.clone(),
        ports: service.ports.clone(),
        backend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_ipam::{Addresses, IpFamily, Port};

    #[test]
    fn every_field_is_carried_over() {
        let service = LoadBalancerRequest {
            namespace: "shop".into(),
            name: "web".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            selector: [("pod".to_string(), "web".to_string())].into(),
            requested_ips: Addresses::single("198.51.100.200".parse().expect("literal")),
            requested_pool: Some("gold".into()),
            sharing_key: Some("k".into()),
            ip_families: vec![IpFamily::V6, IpFamily::V4],
            ip_family_policy: IpFamilyPolicy::RequireDualStack,
            external_traffic_policy: ExternalTrafficPolicy::Local,
            ports: vec![Port::udp(53)],
            ..LoadBalancerRequest::default()
        };
        let namespace: Labels = [("team".to_string(), "a".to_string())].into();
        let request = service_request(&service, &namespace).expect("valid");
        assert_eq!(request.key, ServiceKey::new("shop", "web"));
        assert_eq!(request.labels, service.labels);
        assert_eq!(request.namespace_labels, namespace);
        assert_eq!(
            request.families,
            FamilyPolicy::RequireDualStack {
                primary: IpFamily::V6
            }
        );
        assert_eq!(
            request.requested_ips,
            Addresses::single("198.51.100.200".parse().expect("literal"))
        );
        assert_eq!(request.requested_pool.as_deref(), Some("gold"));
        assert_eq!(request.sharing_key.as_deref(), Some("k"));
        assert_eq!(request.ports, vec![Port::udp(53)]);
        assert_eq!(
            request.backend,
            BackendKey::Local {
                selector: service.selector.clone()
            }
        );
    }

    #[test]
    fn require_dual_stack_with_one_family_is_refused() {
        let service = LoadBalancerRequest {
            ip_families: vec![IpFamily::V4],
            ip_family_policy: IpFamilyPolicy::RequireDualStack,
            ..LoadBalancerRequest::default()
        };
        assert_eq!(
            service_request(&service, &Labels::new()),
            Err(FamilyPolicyError::RequireDualStackWithOneFamily(
                IpFamily::V4
            ))
        );
    }
}
