//! A watch of one kind that never ends: it retries with backoff across apiserver restarts and
//! re-lists when its resource version expires (the store turns a re-list into deletions), and
//! drops what no ferrolb decision reads before the object is kept.

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// managedFields and kubectl's copy of the last applied object are most of an object's bytes,
/// and no ferrolb decision reads them.
pub fn drop_unread_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

pub fn watch<K>(api: Api<K>) -> BoxStream<'static, Event<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watch_with(api, watcher::Config::default())
}

/// [`watch`] narrowed by the watcher's config, e.g. a label selector.
pub fn watch_with<K>(api: Api<K>, config: watcher::Config) -> BoxStream<'static, Event<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kind = K::kind(&()).to_string();
    watcher::watcher(api, config)
        .default_backoff()
        .modify(|object| drop_unread_metadata(object.meta_mut()))
        .filter_map(move |event| {
            let result = match event {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(kind = %kind, %error, "watch failed; retrying");
                    None
                }
            };
            std::future::ready(result)
        })
        .boxed()
}
