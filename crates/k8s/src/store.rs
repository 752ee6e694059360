//! The objects one watch has seen, kept current through its events, including the full
//! re-lists a watch does after it expires or the apiserver restarts: an object missing from
//! a re-list was deleted while the watch was down.

use std::collections::BTreeMap;

use kube::Resource;
use kube::runtime::watcher::Event;

/// What an event changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<K> {
    Upserted(K),
    Deleted(K),
}

#[derive(Debug)]
pub struct Store<K> {
    objects: BTreeMap<String, K>,
    relisting: Option<BTreeMap<String, K>>,
    synced: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

pub fn key_of<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

impl<K: Resource + Clone> Store<K> {
    /// Whether the first full list has arrived.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn get(&self, key: &str) -> Option<&K> {
        self.objects.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.objects.values()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Puts a newer version seen elsewhere (the answer to a write) in place, unless the
    /// store already has a newer one: resource versions are etcd revisions on every real
    /// apiserver, so they order.
    pub fn offer(&mut self, object: K) {
        let key = key_of(&object);
        let newer = match self.objects.get(&key) {
            Some(current) => newer_than(&object, current),
            None => false,
        };
        if newer {
            self.objects.insert(key, object);
        }
    }

    pub fn apply(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(object) => self.upsert(object).into_iter().collect(),
            Event::Delete(object) => {
                let key = key_of(&object);
                self.objects.remove(&key);
                vec![Change::Deleted(object)]
            }
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                if let Some(relisting) = self.relisting.as_mut() {
                    relisting.insert(key_of(&object), object);
                }
                Vec::new()
            }
            Event::InitDone => {
                self.synced = true;
                let Some(listed) = self.relisting.take() else {
                    return Vec::new();
                };
                let mut changes: Vec<Change<K>> = self
                    .objects
                    .iter()
                    .filter(|(key, _)| !listed.contains_key(*key))
                    .map(|(_, object)| Change::Deleted(object.clone()))
                    .collect();
                for key in changes.iter().filter_map(|c| match c {
                    Change::Deleted(o) => Some(key_of(o)),
                    Change::Upserted(_) => None,
                }) {
                    self.objects.remove(&key);
                }
                for object in listed.into_values() {
                    changes.extend(self.upsert(object));
                }
                changes
            }
        }
    }

    /// Stores the object; no change if the store already has this version or a newer one.
    fn upsert(&mut self, object: K) -> Option<Change<K>> {
        let key = key_of(&object);
        if let Some(current) = self.objects.get(&key)
            && !newer_than(&object, current)
            && current.meta().uid == object.meta().uid
        {
            return None;
        }
        self.objects.insert(key, object.clone());
        Some(Change::Upserted(object))
    }
}

fn newer_than<K: Resource>(candidate: &K, current: &K) -> bool {
    let version = |o: &K| {
        o.meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (version(candidate), version(current)) {
        (Some(candidate), Some(current)) => candidate > current,
        // Opaque versions: trust the order events arrive in.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn object(name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn a_relist_deletes_what_it_no_longer_lists() {
        let mut store = Store::default();
        store.apply(Event::Init);
        store.apply(Event::InitApply(object("a", "1")));
        store.apply(Event::InitApply(object("b", "2")));
        assert!(!store.synced());
        let changes = store.apply(Event::InitDone);
        assert!(store.synced());
        assert_eq!(changes.len(), 2);

        // The watch expired; b was deleted and a changed meanwhile.
        store.apply(Event::Init);
        store.apply(Event::InitApply(object("a", "5")));
        let changes = store.apply(Event::InitDone);
        assert_eq!(
            changes,
            vec![
                Change::Deleted(object("b", "2")),
                Change::Upserted(object("a", "5"))
            ]
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn an_older_or_equal_version_changes_nothing() {
        let mut store = Store::default();
        store.apply(Event::Apply(object("a", "5")));
        assert!(store.apply(Event::Apply(object("a", "5"))).is_empty());
        assert!(store.apply(Event::Apply(object("a", "4"))).is_empty());
        assert_eq!(store.apply(Event::Apply(object("a", "6"))).len(), 1);
    }

    #[test]
    fn an_offered_write_answer_is_kept_only_if_newer() {
        let mut store = Store::default();
        store.apply(Event::Apply(object("a", "5")));
        store.offer(object("a", "7"));
        assert_eq!(
            store
                .get("ns/a")
                .and_then(|o| o.metadata.resource_version.clone()),
            Some("7".into())
        );
        store.offer(object("a", "6"));
        assert_eq!(
            store
                .get("ns/a")
                .and_then(|o| o.metadata.resource_version.clone()),
            Some("7".into())
        );
        // The watch then delivers the version it already has: no change to act on.
        assert!(store.apply(Event::Apply(object("a", "7"))).is_empty());
    }
}
