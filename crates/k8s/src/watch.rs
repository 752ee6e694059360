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

/// [`watch`], each event wrapped (say, into a variant of a role's input enum), so that watches
/// of several kinds merge into one stream.
pub fn watch_as<K, I, F>(api: Api<K>, wrap: F) -> BoxStream<'static, I>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(Event<K>) -> I + Send + 'static,
{
    watch(api).map(wrap).boxed()
}

/// [`watch_as`] narrowed by the watcher's config.
pub fn watch_as_with<K, I, F>(
    api: Api<K>,
    config: watcher::Config,
    wrap: F,
) -> BoxStream<'static, I>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(Event<K>) -> I + Send + 'static,
{
    watch_with(api, config).map(wrap).boxed()
}

/// `event` with `slim` applied to the object it carries: what a role keeps of an object is
/// decided before the store sees it.
pub fn slimmed<K>(event: Event<K>, slim: fn(&mut K)) -> Event<K> {
    match event {
        Event::Apply(mut object) => {
            slim(&mut object);
            Event::Apply(object)
        }
        Event::InitApply(mut object) => {
            slim(&mut object);
            Event::InitApply(object)
        }
        other => other,
    }
}
