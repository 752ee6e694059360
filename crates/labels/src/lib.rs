//! Kubernetes label selectors as ferrolb uses them: pool selectors in advertisements, node and
//! service selectors, and `serviceAllocation` namespace and service selectors. A `LabelSelector`
//! from an object is validated once into a [`Selector`] (clear errors for bad keys, values and
//! operators, as the apiserver's own selector parsing gives them) and then matched as plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels of an object, as Kubernetes stores them.
pub type Labels = BTreeMap<String, String>;

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requirement {
    Equals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            // As in Kubernetes: an absent label is "not in" any set.
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A validated label selector: all requirements must hold. No requirements match everything,
/// which is what an empty `LabelSelector` means in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a `LabelSelector` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(String);

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Validates a `LabelSelector` as the apiserver would.
    pub fn from_k8s(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            validate_key(key)?;
            validate_value(key, value)?;
            requirements.push(Requirement::Equals(key.clone(), value.clone()));
        }
        for expression in selector.match_expressions.iter().flatten() {
            let key = &expression.key;
            validate_key(key)?;
            let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
            for value in &values {
                validate_value(key, value)?;
            }
            let requirement = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError(format!(
                        "key {key:?}: operator {} needs at least one value",
                        expression.operator
                    )));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError(format!(
                        "key {key:?}: operator {} takes no values",
                        expression.operator
                    )));
                }
                "In" => Requirement::In(key.clone(), values),
                "NotIn" => Requirement::NotIn(key.clone(), values),
                "Exists" => Requirement::Exists(key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(key.clone()),
                other => {
                    return Err(SelectorError(format!(
                        "key {key:?}: unknown operator {other:?} (In, NotIn, Exists or DoesNotExist)"
                    )));
                }
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// MetalLB's rule for a list of selectors: an empty list selects everything, otherwise any one
/// matching selector is enough.
pub fn any_matches(selectors: &[Selector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

impl fmt::Display for Selector {
    /// The apiserver's string form, e.g. `app=web,tier in (a,b),!legacy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", set(vs)),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", set(vs)),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        if parts.is_empty() {
            f.write_str("<everything>")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// `[prefix/]name`: prefix a DNS subdomain of at most 253 characters, name at most 63
/// alphanumerics, '-', '_' or '.', starting and ending alphanumeric.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(SelectorError(format!(
            "key {key:?}: prefix {prefix:?} is not a DNS subdomain"
        )));
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(SelectorError(format!(
            "key {key:?}: name part must be 1-63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric"
        )));
    }
    Ok(())
}

fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "key {key:?}: value {value:?} must be at most 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric"
        )))
    }
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_string(),
            operator: operator.to_string(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        expressions: Vec<LabelSelectorRequirement>,
    ) -> Result<Selector, SelectorError> {
        Selector::from_k8s(&LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        })
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = selector(&[], vec![]).expect("valid");
        assert!(s.is_everything());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let s = selector(
            &[("app", "web")],
            vec![
                expression("tier", "In", &["front", "edge"]),
                expression("legacy", "DoesNotExist", &[]),
            ],
        )
        .expect("valid");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "edge"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("tier", "edge")])));
        assert_eq!(s.to_string(), "app=web,tier in (edge,front),!legacy");
    }

    #[test]
    fn not_in_matches_an_absent_label_and_exists_does_not() {
        let not_in = selector(&[], vec![expression("zone", "NotIn", &["a"])]).expect("valid");
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("zone", "a")])));
        let exists = selector(&[], vec![expression("zone", "Exists", &[])]).expect("valid");
        assert!(!exists.matches(&labels(&[])));
        assert!(exists.matches(&labels(&[("zone", "")])));
    }

    #[test]
    fn bad_selectors_are_refused_with_the_reason() {
        let cases = [
            (
                selector(&[], vec![expression("a", "Within", &["x"])]),
                "unknown operator",
            ),
            (
                selector(&[], vec![expression("a", "In", &[])]),
                "needs at least one value",
            ),
            (
                selector(&[], vec![expression("a", "Exists", &["x"])]),
                "takes no values",
            ),
            (selector(&[("-bad", "x")], vec![]), "name part"),
            (
                selector(&[("Example.com/x", "y")], vec![]),
                "not a DNS subdomain",
            ),
            (selector(&[("ok", "not ok")], vec![]), "value"),
        ];
        for (result, reason) in cases {
            let err = result.expect_err(reason);
            assert!(err.to_string().contains(reason), "{err} lacks {reason:?}");
        }
    }

    #[test]
    fn prefixed_keys_are_accepted() {
        let s = selector(
            &[(
                "node.kubernetes.io/exclude-from-external-load-balancers",
                "",
            )],
            vec![],
        )
        .expect("valid");
        assert!(s.matches(&labels(&[(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            ""
        )])));
    }

    #[test]
    fn an_empty_list_selects_everything_and_otherwise_any_one_suffices() {
        let web = selector(&[("app", "web")], vec![]).expect("valid");
        let db = selector(&[("app", "db")], vec![]).expect("valid");
        assert!(any_matches(&[], &labels(&[])));
        assert!(any_matches(&[web.clone(), db], &labels(&[("app", "db")])));
        assert!(!any_matches(&[web], &labels(&[("app", "db")])));
    }

    proptest! {
        // In and NotIn over the same key and values are exact complements.
        #[test]
        fn in_and_not_in_are_complements(value in "[a-c]{0,1}", set in proptest::collection::btree_set("[a-c]", 1..3), present in any::<bool>()) {
            let values: Vec<&str> = set.iter().map(String::as_str).collect();
            let is_in = selector(&[], vec![expression("k", "In", &values)]).expect("valid");
            let not_in = selector(&[], vec![expression("k", "NotIn", &values)]).expect("valid");
            let object = if present { labels(&[("k", value.as_str())]) } else { labels(&[]) };
            prop_assert_ne!(is_in.matches(&object), not_in.matches(&object));
        }
    }
}
