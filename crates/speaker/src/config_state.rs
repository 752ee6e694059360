//! This speaker's ConfigurationState, `speaker-<node>` with MetalLB's labels: whether the
//! speaker can serve the metallb.io configuration as written and, if not, why — the objects
//! that fail validation, and the BGPPeers selecting this node that it cannot peer with (a
//! missing `passwordSecret`, say).

use std::time::Duration;

use ferrolb_api::configuration_state::Reporter;
use ferrolb_api::v1beta1::ConfigurationState;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;

use crate::peer_status::field_manager;

/// The errors to report: the configuration's, then one per peer this node cannot serve.
pub fn errors<'a>(
    config_errors: impl IntoIterator<Item = String>,
    peer_problems: impl IntoIterator<Item = &'a (String, String)>,
) -> Vec<String> {
    config_errors
        .into_iter()
        .chain(
            peer_problems
                .into_iter()
                .map(|(peer, reason)| format!("BGPPeer {peer}: {reason}")),
        )
        .collect()
}

/// Writes the ConfigurationState whenever the errors change (`None`: nothing decided yet).
pub async fn run_writer(
    client: Client,
    namespace: String,
    node: String,
    mut errors: watch::Receiver<Option<Vec<String>>>,
) {
    let api: Api<ConfigurationState> = Api::namespaced(client, &namespace);
    let reporter = Reporter::speaker(&node);
    let params = PatchParams::apply(&field_manager(&node)).force();
    loop {
        let current = errors.borrow_and_update().clone();
        if let Some(current) = current {
            // The object too, every time: the errors change rarely, and so a deleted object
            // comes back with the next write.
            let result = async {
                api.patch(&reporter.name, &params, &Patch::Apply(reporter.object()))
                    .await?;
                api.patch_status(
                    &reporter.name,
                    &params,
                    &Patch::Apply(reporter.status(&current)),
                )
                .await
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, "could not write this speaker's ConfigurationState; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if errors.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_come_first_then_the_peers_this_node_cannot_serve() {
        let problems = [(
            "edge".to_owned(),
            "passwordSecret \"pw\" is missing".to_owned(),
        )];
        assert_eq!(
            errors(
                ["BFDProfile fast: spec.receiveInterval: out of range".to_owned()],
                &problems
            ),
            vec![
                "BFDProfile fast: spec.receiveInterval: out of range".to_owned(),
                "BGPPeer edge: passwordSecret \"pw\" is missing".to_owned(),
            ]
        );
        assert!(errors(Vec::new(), &[]).is_empty());
    }
}
