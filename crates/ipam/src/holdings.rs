//! The allocator's record of who holds what, laid out for speed at scale: each holding lives
//! under a small id, looked up through one keyed hash of its service key, so that per-address
//! bookkeeping never clones, hashes or compares service names.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crate::service::{Addresses, ServiceKey, ServiceRequest};

#[derive(Debug, Clone)]
pub(crate) struct Holding {
    pub(crate) request: ServiceRequest,
    pub(crate) pool: usize,
    pub(crate) addresses: Addresses,
}

/// The keyed (per-process random) SipHash of a service key: computed once per call, and not
/// predictable by whoever names services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash(u64);

#[derive(Debug, Clone, Default)]
pub(crate) struct Holdings {
    hasher: RandomState,
    /// Key hash → ids. A bucket names more than one holding only on a 64-bit hash collision.
    ids: HashMap<u64, Ids, BuildHasherDefault<AlreadyHashed>>,
    slab: Vec<Option<Holding>>,
    vacant: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Ids {
    One(usize),
    Several(Vec<usize>),
}

impl Ids {
    fn as_slice(&self) -> &[usize] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Several(ids) => ids,
        }
    }
}

/// The hasher for keys that already are uniformly distributed 64-bit hashes.
#[derive(Debug, Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl Holdings {
    pub(crate) fn hash(&self, service: &ServiceKey) -> KeyHash {
        KeyHash(self.hasher.hash_one(service))
    }

    pub(crate) fn find(&self, hash: KeyHash, service: &ServiceKey) -> Option<usize> {
        self.ids
            .get(&hash.0)?
            .as_slice()
            .iter()
            .copied()
            .find(|&id| self.at(id).is_some_and(|h| h.request.key == *service))
    }

    pub(crate) fn id(&self, service: &ServiceKey) -> Option<usize> {
        self.find(self.hash(service), service)
    }

    pub(crate) fn get(&self, service: &ServiceKey) -> Option<&Holding> {
        self.at(self.id(service)?)
    }

    pub(crate) fn at(&self, id: usize) -> Option<&Holding> {
        self.slab.get(id)?.as_ref()
    }

    pub(crate) fn at_mut(&mut self, id: usize) -> Option<&mut Holding> {
        self.slab.get_mut(id)?.as_mut()
    }

    /// Stores a holding for a service that has none; `hash` is its key's.
    pub(crate) fn insert(&mut self, hash: KeyHash, holding: Holding) -> usize {
        let id = match self.vacant.pop() {
            Some(id) => {
                self.slab[id] = Some(holding);
                id
            }
            None => {
                self.slab.push(Some(holding));
                self.slab.len() - 1
            }
        };
        self.ids
            .entry(hash.0)
            .and_modify(|ids| {
                let mut several = ids.as_slice().to_vec();
                several.push(id);
                *ids = Ids::Several(several);
            })
            .or_insert(Ids::One(id));
        id
    }

    pub(crate) fn remove(&mut self, service: &ServiceKey) -> Option<(usize, Holding)> {
        let hash = self.hash(service);
        let id = self.find(hash, service)?;
        let holding = self.slab.get_mut(id)?.take()?;
        self.vacant.push(id);
        if let Entry::Occupied(mut entry) = self.ids.entry(hash.0) {
            match entry.get_mut() {
                Ids::One(_) => {
                    entry.remove();
                }
                Ids::Several(ids) => {
                    ids.retain(|&other| other != id);
                    if let [one] = ids.as_slice() {
                        let one = *one;
                        entry.insert(Ids::One(one));
                    }
                }
            }
        }
        Some((id, holding))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Holding)> {
        self.slab
            .iter()
            .enumerate()
            .filter_map(|(id, holding)| Some((id, holding.as_ref()?)))
    }
}

/// The holding ids on one address, sorted by service key; almost always just one.
#[derive(Debug, Clone)]
pub(crate) enum Holders {
    One(usize),
    Shared(Vec<usize>),
}

impl Holders {
    pub(crate) fn as_slice(&self) -> &[usize] {
        match self {
            Holders::One(id) => std::slice::from_ref(id),
            Holders::Shared(ids) => ids,
        }
    }

    pub(crate) fn insert(&mut self, position: usize, id: usize) {
        let mut ids = self.as_slice().to_vec();
        ids.insert(position, id);
        *self = Holders::Shared(ids);
    }

    /// Removes `id`; true when nobody is left.
    pub(crate) fn remove(&mut self, id: usize) -> bool {
        match self {
            Holders::One(only) => *only == id,
            Holders::Shared(ids) => {
                ids.retain(|&other| other != id);
                match ids.as_slice() {
                    [] => true,
                    [one] => {
                        *self = Holders::One(*one);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::IpFamily;
    use crate::service::FamilyPolicy;

    fn holding(name: &str) -> Holding {
        Holding {
            request: ServiceRequest::new(
                ServiceKey::new("ns", name),
                FamilyPolicy::SingleStack(IpFamily::V4),
            ),
            pool: 0,
            addresses: Addresses::NONE,
        }
    }

    #[test]
    fn holdings_sharing_a_64_bit_hash_stay_apart() {
        let mut holdings = Holdings::default();
        let (a, b) = (holding("a"), holding("b"));
        // Force a collision: both stored under a's hash.
        let hash = holdings.hash(&a.request.key);
        let a_id = holdings.insert(hash, a.clone());
        let b_id = holdings.insert(hash, b.clone());
        assert_eq!(holdings.find(hash, &a.request.key), Some(a_id));
        assert_eq!(holdings.find(hash, &b.request.key), Some(b_id));
        assert_eq!(holdings.find(hash, &ServiceKey::new("ns", "c")), None);
        assert_eq!(holdings.iter().count(), 2);
        let removed = holdings.remove(&a.request.key).map(|(id, _)| id);
        assert_eq!(removed, Some(a_id));
        assert_eq!(holdings.find(hash, &b.request.key), Some(b_id));
        assert_eq!(holdings.iter().count(), 1);
    }

    #[test]
    fn freed_ids_are_reused() {
        let mut holdings = Holdings::default();
        let a = holding("a");
        let first = holdings.insert(holdings.hash(&a.request.key), a.clone());
        holdings.remove(&a.request.key);
        let second = holdings.insert(holdings.hash(&a.request.key), a);
        assert_eq!(first, second);
        assert_eq!(holdings.iter().count(), 1);
    }

    #[test]
    fn holders_shrink_back_to_one_and_report_emptiness() {
        let mut holders = Holders::One(3);
        holders.insert(0, 1);
        assert_eq!(holders.as_slice(), [1, 3]);
        assert!(!holders.remove(1));
        assert!(matches!(holders, Holders::One(3)));
        assert!(holders.remove(3));
    }
}
