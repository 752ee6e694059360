//! Kubernetes glue shared by `ferrolb controller` and `ferrolb speaker`: watches that survive
//! apiserver restarts and their in-memory stores ([`store`], [`watch`]), the order in which
//! writes go out ([`dispatch`]), leadership on a Lease ([`leader`]) and the metrics and health
//! endpoints ([`http`]), and what every long-running role does the same way: references to
//! objects for Events ([`object_reference`]) and waiting for SIGTERM ([`shutdown_signal`]).
//! Decisions live elsewhere; this crate only moves objects in and out.

pub mod dispatch;
pub mod http;
pub mod leader;
pub mod store;
pub mod watch;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

/// A reference to `object`, as Events name what they are about.
pub fn object_reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Returns on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
