//! Who reports a ConfigurationState, and what its two server-side apply bodies say: the object
//! (name and MetalLB's labels) and its status (the result and the joined errors). One
//! `controller`, and one `speaker-<node>` per speaker, as MetalLB names them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const COMPONENT_TYPE_LABEL: &str = "metallb.io/component-type";
pub const NODE_NAME_LABEL: &str = "metallb.io/node-name";

/// The component whose ConfigurationState this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reporter {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Reporter {
    pub fn controller() -> Self {
        Self {
            name: "controller".into(),
            labels: BTreeMap::from([(COMPONENT_TYPE_LABEL.into(), "controller".into())]),
        }
    }

    pub fn speaker(node: &str) -> Self {
        Self {
            name: format!("speaker-{node}"),
            labels: BTreeMap::from([
                (COMPONENT_TYPE_LABEL.into(), "speaker".into()),
                (NODE_NAME_LABEL.into(), node.into()),
            ]),
        }
    }

    /// The object itself (created by the apply if missing).
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ConfigurationState",
            "metadata": { "name": self.name, "labels": self.labels },
        })
    }

    /// Its status: `Valid` without errors, else `Invalid` with the errors one per line.
    pub fn status(&self, errors: &[String]) -> Value {
        json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ConfigurationState",
            "metadata": { "name": self.name },
            "status": {
                "result": if errors.is_empty() { "Valid" } else { "Invalid" },
                "errorSummary": errors.join("\n"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1beta1::{ConfigurationResult, ConfigurationState};

    #[test]
    fn a_speaker_reports_under_metallbs_name_and_labels() {
        let reporter = Reporter::speaker("node-2");
        let object: ConfigurationState =
            serde_json::from_value(reporter.object()).expect("a ConfigurationState");
        assert_eq!(object.metadata.name.as_deref(), Some("speaker-node-2"));
        let labels = object.metadata.labels.unwrap_or_default();
        assert_eq!(labels[COMPONENT_TYPE_LABEL], "speaker");
        assert_eq!(labels[NODE_NAME_LABEL], "node-2");

        let invalid: ConfigurationState = serde_json::from_value(
            reporter.status(&["BGPPeer a: no Secret".into(), "BGPPeer b: bad".into()]),
        )
        .expect("a ConfigurationState");
        let status = invalid.status.unwrap_or_default();
        assert_eq!(status.result, Some(ConfigurationResult::Invalid));
        assert_eq!(
            status.error_summary.as_deref(),
            Some("BGPPeer a: no Secret\nBGPPeer b: bad")
        );
        let valid: ConfigurationState =
            serde_json::from_value(Reporter::controller().status(&[])).expect("valid");
        assert_eq!(
            valid.status.and_then(|s| s.result),
            Some(ConfigurationResult::Valid)
        );
    }
}
