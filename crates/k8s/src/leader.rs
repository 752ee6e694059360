//! Leadership on a `coordination.k8s.io` Lease (kube-lease-manager): wait to lead, notice the
//! loss, release on a graceful stop so that a standby takes over at once.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Starts competing for `name` in `namespace`, which must exist (said in one line if not).
    /// A dead leader is waited for at most `duration`.
    pub async fn compete(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> anyhow::Result<Self> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        match namespaces.get_opt(namespace).await {
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!(
                "namespace {namespace:?} (--namespace) does not exist: create it, and put the metallb.io configuration there"
            ),
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "cannot reach the apiserver to read namespace {namespace:?}"
                )));
            }
        }
        let seconds = duration.as_secs().max(2);
        let params = LeaseParams::new(identity.to_owned(), seconds, (seconds / 3).max(1));
        let manager = LeaseManager::new(
            client,
            name.to_owned(),
            namespace.to_owned(),
            params,
            LeaseCreateMode::default(),
        )
        .await
        .context("setting up the leader Lease")?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    /// Until this process holds the Lease.
    pub async fn won(&mut self) -> anyhow::Result<()> {
        loop {
            if *self.leading.borrow_and_update() {
                return Ok(());
            }
            self.leading
                .changed()
                .await
                .context("the Lease manager stopped")?;
        }
    }

    /// Until this process no longer holds the Lease.
    pub async fn lost(&mut self) -> anyhow::Result<()> {
        loop {
            self.leading
                .changed()
                .await
                .context("the Lease manager stopped")?;
            if !*self.leading.borrow_and_update() {
                return Ok(());
            }
        }
    }

    /// Gives the Lease up (if held) and stops competing; waits at most 5 s.
    pub async fn release(self) {
        drop(self.leading);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
