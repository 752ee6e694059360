//! The CustomResourceDefinitions ferrolb installs, generated from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
    JSONSchemaPropsOrBool, ServiceReference, WebhookClientConfig, WebhookConversion,
};
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

use crate::{v1beta1, v1beta2};

/// Name of the Service in front of ferrolb's webhook, which converts BGPPeers.
pub const WEBHOOK_SERVICE_NAME: &str = "ferrolb-webhook-service";
/// Namespace of that Service: ferrolb's default namespace, as MetalLB's.
pub const WEBHOOK_SERVICE_NAMESPACE: &str = "metallb-system";
/// Port of that Service.
pub const WEBHOOK_SERVICE_PORT: i32 = 443;
/// HTTP path of the BGPPeer conversion endpoint.
pub const CONVERSION_PATH: &str = "/convert";
/// `ConversionReview` versions the webhook understands.
pub const CONVERSION_REVIEW_VERSIONS: &[&str] = &["v1"];

/// Every CRD of group `metallb.io`, sorted by name; BGPPeer is one CRD with both versions.
///
/// Three adjustments to what kube derives bring the schemas in line with MetalLB's:
/// `spec` is optional except for IPAddressPool (see `schema::spec_may_be_absent`); no field
/// is `nullable` and no `enum` lists `null` (kube marks every `Option` so, where MetalLB's
/// schemas let the apiserver prune explicit nulls); and BGPPeer gets its conversion webhook.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let spec_may_be_absent = [
        v1beta1::BFDProfile::crd(),
        v1beta1::BGPAdvertisement::crd(),
        bgppeer(),
        v1beta1::Community::crd(),
        v1beta1::L2Advertisement::crd(),
        v1beta1::ServiceBGPStatus::crd(),
        v1beta1::ServiceL2Status::crd(),
    ]
    .map(without_required_spec);
    let mut crds: Vec<_> = [
        v1beta1::ConfigurationState::crd(),
        v1beta1::IPAddressPool::crd(),
    ]
    .into_iter()
    .chain(spec_may_be_absent)
    .map(without_nullable)
    .collect();
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// [`crds`] as a multi-document YAML stream, the content of `deploy/crds/ferrolb-crds.yaml`.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| {
            let yaml = serde_saphyr::to_string(crd)
                .expect("a CustomResourceDefinition is plain data and always serializes");
            format!("---\n{yaml}")
        })
        .collect()
}

fn bgppeer() -> CustomResourceDefinition {
    let mut crd = merge_crds(
        vec![v1beta1::BGPPeer::crd(), v1beta2::BGPPeer::crd()],
        "v1beta2",
    )
    .expect("both BGPPeer versions share group, kind and scope, and v1beta2 exists");
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: WEBHOOK_SERVICE_NAME.into(),
                    namespace: WEBHOOK_SERVICE_NAMESPACE.into(),
                    path: Some(CONVERSION_PATH.into()),
                    port: Some(WEBHOOK_SERVICE_PORT),
                }),
                ..WebhookClientConfig::default()
            }),
            conversion_review_versions: CONVERSION_REVIEW_VERSIONS
                .iter()
                .map(|&version| version.into())
                .collect(),
        }),
    });
    crd
}

fn without_required_spec(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for schema in root_schemas(&mut crd) {
        if let Some(required) = &mut schema.required {
            required.retain(|property| property != "spec");
            if required.is_empty() {
                schema.required = None;
            }
        }
    }
    crd
}

fn without_nullable(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(schema: &mut JSONSchemaProps) {
        schema.nullable = None;
        if let Some(values) = &mut schema.enum_ {
            values.retain(|value| !value.0.is_null());
        }
        schema
            .properties
            .iter_mut()
            .flat_map(|properties| properties.values_mut())
            .for_each(strip);
        match &mut schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => strip(items),
            Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip),
            None => {}
        }
        if let Some(JSONSchemaPropsOrBool::Schema(additional)) = &mut schema.additional_properties {
            strip(additional);
        }
    }
    root_schemas(&mut crd).for_each(strip);
    crd
}

fn root_schemas(crd: &mut CustomResourceDefinition) -> impl Iterator<Item = &mut JSONSchemaProps> {
    crd.spec
        .versions
        .iter_mut()
        .filter_map(|version| version.schema.as_mut()?.open_api_v3_schema.as_mut())
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn read_without_spec<K>(spec: Option<serde_json::Value>) -> Result<K, serde_json::Error>
    where
        K: DeserializeOwned + kube::Resource<DynamicType = ()>,
    {
        let mut object = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": "example", "namespace": "metallb-system"},
        });
        if let Some(spec) = spec {
            object["spec"] = spec;
        }
        serde_json::from_value(object)
    }

    fn read_as_default<K>(spec: &Option<serde_json::Value>) -> K
    where
        K: DeserializeOwned + kube::Resource<DynamicType = ()>,
    {
        read_without_spec(spec.clone())
            .unwrap_or_else(|error| panic!("{} with spec {spec:?}: {error}", K::kind(&())))
    }

    /// The apiserver stores objects of these kinds without a spec (their schemas do not require
    /// one): the types must read them, as MetalLB does, as an empty spec.
    #[test]
    fn a_missing_or_null_spec_reads_as_the_default_spec() {
        for spec in [None, Some(serde_json::Value::Null)] {
            let advertisement: v1beta1::L2Advertisement = read_as_default(&spec);
            assert_eq!(advertisement.spec, v1beta1::L2AdvertisementSpec::default());
            let advertisement: v1beta1::BGPAdvertisement = read_as_default(&spec);
            assert_eq!(
                (
                    advertisement.spec.aggregation_length,
                    advertisement.spec.aggregation_length_v6
                ),
                (32, 128)
            );
            let peer: v1beta2::BGPPeer = read_as_default(&spec);
            assert_eq!(peer.spec.peer_port, 179);
            let peer: v1beta1::BGPPeer = read_as_default(&spec);
            assert_eq!(peer.spec, v1beta1::BGPPeerSpec::default());
            let profile: v1beta1::BFDProfile = read_as_default(&spec);
            assert_eq!(profile.spec, v1beta1::BFDProfileSpec::default());
            let community: v1beta1::Community = read_as_default(&spec);
            assert_eq!(community.spec, v1beta1::CommunitySpec::default());
            read_as_default::<v1beta1::ServiceL2Status>(&spec);
            read_as_default::<v1beta1::ServiceBGPStatus>(&spec);
        }
    }

    #[test]
    fn an_ipaddresspool_needs_a_spec() {
        let error = read_without_spec::<v1beta1::IPAddressPool>(None).expect_err("no spec");
        assert!(
            error.to_string().contains("missing field `spec`"),
            "{error}"
        );
    }

    #[test]
    fn only_ipaddresspool_requires_a_spec() {
        for crd in crds() {
            for version in &crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|schema| schema.open_api_v3_schema.as_ref())
                    .expect("a schema");
                let requires_spec = schema
                    .required
                    .iter()
                    .flatten()
                    .any(|property| property == "spec");
                assert_eq!(
                    requires_spec,
                    crd.spec.names.kind == "IPAddressPool",
                    "{} {}",
                    crd.spec.names.kind,
                    version.name
                );
            }
        }
    }

    #[test]
    fn bgppeer_is_one_crd_with_both_versions_stored_as_v1beta2() {
        let crds = crds();
        let peers: Vec<_> = crds
            .iter()
            .filter(|crd| crd.spec.names.kind == "BGPPeer")
            .collect();
        assert_eq!(peers.len(), 1);
        let versions: Vec<_> = peers[0]
            .spec
            .versions
            .iter()
            .map(|version| (version.name.as_str(), version.storage, version.served))
            .collect();
        assert_eq!(
            versions,
            [("v1beta1", false, true), ("v1beta2", true, true)]
        );
        assert_eq!(peers[0].spec.versions[0].deprecated, Some(true));
    }

    #[test]
    fn the_yaml_holds_every_crd_in_name_order() {
        let documents: Vec<CustomResourceDefinition> =
            serde_saphyr::from_multiple(&crds_yaml()).expect("valid YAML");
        assert_eq!(documents, crds());
        let names: Vec<_> = documents
            .iter()
            .filter_map(|crd| crd.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "bfdprofiles.metallb.io",
                "bgpadvertisements.metallb.io",
                "bgppeers.metallb.io",
                "communities.metallb.io",
                "configurationstates.metallb.io",
                "ipaddresspools.metallb.io",
                "l2advertisements.metallb.io",
                "servicebgpstatuses.metallb.io",
                "servicel2statuses.metallb.io",
            ]
        );
    }
}
