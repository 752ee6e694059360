//! Schema and serde helpers that make the derived CRD schemas say exactly what MetalLB's
//! kubebuilder-generated ones say.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// A label selector as MetalLB's schemas have it: k8s-openapi's schema for `LabelSelector`
/// plus the apiserver's merge markers (`+structType=atomic` and `+listType=atomic` upstream),
/// which k8s-openapi does not carry. They make server-side apply replace a selector as a whole
/// instead of merging two managers' selectors into one that neither wrote.
pub(crate) fn atomic_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut selector = generator.subschema_for::<LabelSelector>();
    selector.insert("x-kubernetes-map-type".into(), "atomic".into());
    if let Some(expressions) = selector.pointer_mut("/properties/matchExpressions") {
        expressions["x-kubernetes-list-type"] = "atomic".into();
        if let Some(values) = expressions.pointer_mut("/items/properties/values") {
            values["x-kubernetes-list-type"] = "atomic".into();
        }
    }
    selector
}

/// A list of [`atomic_label_selector`]s.
pub(crate) fn atomic_label_selectors(generator: &mut SchemaGenerator) -> Schema {
    let selector = atomic_label_selector(generator);
    json_schema!({ "type": "array", "items": selector })
}

/// `metav1.Condition` as it appears in CRDs generated from Go: k8s-openapi's schema lacks the
/// validation markers that apimachinery declares on the Go type (length limits, patterns, the
/// status enum), and a `+listType=map` keyed by `type`.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut condition = generator.subschema_for::<Condition>();
    let constraints = [
        ("/properties/message", "maxLength", Value::from(32768)),
        ("/properties/observedGeneration", "minimum", Value::from(0)),
        ("/properties/reason", "maxLength", Value::from(1024)),
        ("/properties/reason", "minLength", Value::from(1)),
        (
            "/properties/reason",
            "pattern",
            Value::from("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
        ),
        (
            "/properties/status",
            "enum",
            Value::from(vec!["True", "False", "Unknown"]),
        ),
        ("/properties/type", "maxLength", Value::from(316)),
        (
            "/properties/type",
            "pattern",
            Value::from(
                r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            ),
        ),
    ];
    for (property, keyword, value) in constraints {
        if let Some(Value::Object(property)) = condition.pointer_mut(property) {
            property.insert(keyword.into(), value);
        }
    }
    json_schema!({
        "type": "array",
        "items": condition,
        "x-kubernetes-list-map-keys": ["type"],
        "x-kubernetes-list-type": "map",
    })
}

/// Go's `int` and `uint16` fields come out of kubebuilder as a bare `type: integer`; schemars
/// would add a Rust-specific `format` (`uint16`, `int64`) that the apiserver does not know.
pub(crate) fn without_format(schema: &mut Schema) {
    schema.remove("format");
}

/// Spec types of kinds whose schema does not require `spec` (every kind but IPAddressPool).
///
/// The apiserver stores such objects without a `spec` (the documented catch-all
/// `L2Advertisement` has none) and MetalLB reads them as an empty spec. kube's derived root
/// struct has a non-optional `spec`, so the spec type itself reads a missing or null value as
/// its `Default`; everything else is serde's derive, reached through `#[serde(remote = "Self")]`.
macro_rules! spec_may_be_absent {
    ($spec:ty) => {
        impl<'de> ::serde::Deserialize<'de> for $spec {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct MissingAsDefault;

                impl<'de> ::serde::de::Visitor<'de> for MissingAsDefault {
                    type Value = $spec;

                    fn expecting(
                        &self,
                        formatter: &mut ::std::fmt::Formatter,
                    ) -> ::std::fmt::Result {
                        formatter.write_str(concat!("a ", stringify!($spec), " object or null"))
                    }

                    fn visit_none<E: ::serde::de::Error>(self) -> Result<$spec, E> {
                        Ok(<$spec>::default())
                    }

                    fn visit_unit<E: ::serde::de::Error>(self) -> Result<$spec, E> {
                        Ok(<$spec>::default())
                    }

                    fn visit_some<D: ::serde::Deserializer<'de>>(
                        self,
                        deserializer: D,
                    ) -> Result<$spec, D::Error> {
                        <$spec>::deserialize(deserializer)
                    }
                }

                deserializer.deserialize_option(MissingAsDefault)
            }
        }

        impl ::serde::Serialize for $spec {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, serializer)
            }
        }
    };
}
pub(crate) use spec_may_be_absent;
