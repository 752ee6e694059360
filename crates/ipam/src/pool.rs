//! Address pools as the allocator sees them, and MetalLB's `serviceAllocation` rule.

use std::cmp::Ordering;
use std::fmt;

use ferrolb_labels::{Selector, any_matches};

use crate::range::IpRange;
use crate::service::ServiceRequest;

/// One `IPAddressPool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    /// Searched in this order for a free address.
    pub ranges: Vec<IpRange>,
    /// When false the pool only serves services that ask for it, by name or by address.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in .0 or .255.
    pub avoid_buggy_ips: bool,
    pub allocation: Option<ServiceAllocation>,
}

impl Pool {
    /// A pool with MetalLB's defaults: auto-assigned, buggy IPs allowed, open to every service.
    pub fn new(name: impl Into<String>, ranges: Vec<IpRange>) -> Self {
        Self {
            name: name.into(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }
}

/// A pool's `spec.serviceAllocation`: which services it is reserved for, and how strongly it
/// is preferred for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower is preferred; unset comes after every set priority. MetalLB reads `priority: 0` as
    /// unset, so the `config` crate maps 0 to `None`.
    pub priority: Option<i32>,
    /// The namespaces the pool serves, together with those matching `namespace_selectors`.
    /// Both empty: every namespace.
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<Selector>,
    /// Empty: every service; otherwise a service must match one of them.
    pub service_selectors: Vec<Selector>,
}

/// Why a pool's `serviceAllocation` excludes a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAllowed {
    Namespace { namespace: String },
    ServiceLabels { selectors: Vec<Selector> },
}

impl fmt::Display for NotAllowed {
    /// Completes "pool `x` is …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAllowed::Namespace { namespace } => {
                write!(f, "not allowed for namespace `{namespace}`")
            }
            NotAllowed::ServiceLabels { selectors } => {
                f.write_str("only for services matching ")?;
                for (i, selector) in selectors.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "`{selector}`")?;
                }
                Ok(())
            }
        }
    }
}

impl ServiceAllocation {
    /// Whether the pool may serve `service`: its namespace must be listed or selected (when
    /// the pool names namespaces at all) and its labels must match a service selector (when
    /// the pool has any).
    pub fn allows(&self, service: &ServiceRequest) -> Result<(), NotAllowed> {
        let namespace = &service.key.namespace;
        let namespace_open = self.namespaces.is_empty() && self.namespace_selectors.is_empty();
        if !namespace_open
            && !self.namespaces.contains(namespace)
            && !self
                .namespace_selectors
                .iter()
                .any(|selector| selector.matches(&service.namespace_labels))
        {
            return Err(NotAllowed::Namespace {
                namespace: namespace.clone(),
            });
        }
        if !any_matches(&self.service_selectors, &service.labels) {
            return Err(NotAllowed::ServiceLabels {
                selectors: self.service_selectors.clone(),
            });
        }
        Ok(())
    }

    /// MetalLB's order among pools reserved for a service: lower priority first, unset last.
    pub(crate) fn priority_order(&self, other: &Self) -> Ordering {
        match (self.priority, other.priority) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

/// A consistent set of pools: unique names, no address in two ranges. Kept sorted by name,
/// which is the deterministic order ties are broken in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pools {
    pools: Vec<Pool>,
}

/// Why a set of pools cannot be used together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    #[error("two pools are named `{0}`")]
    DuplicateName(String),
    #[error("range {range} of pool `{pool}` overlaps range {other_range} of pool `{other_pool}`")]
    Overlap {
        pool: String,
        range: IpRange,
        other_pool: String,
        other_range: IpRange,
    },
}

impl Pools {
    pub fn new(mut pools: Vec<Pool>) -> Result<Self, PoolsError> {
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = pools.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(PoolsError::DuplicateName(pair[0].name.clone()));
        }
        let mut ranges: Vec<(&Pool, IpRange)> = pools
            .iter()
            .flat_map(|pool| pool.ranges.iter().map(move |range| (pool, *range)))
            .collect();
        ranges.sort_by_key(|(_, range)| (range.first(), range.last()));
        // Sorted by start, a range can only overlap the one reaching furthest before it.
        let mut furthest: Option<(&Pool, IpRange)> = None;
        for (pool, range) in ranges {
            if let Some((other_pool, other_range)) = furthest {
                if range.overlaps(&other_range) {
                    return Err(PoolsError::Overlap {
                        pool: pool.name.clone(),
                        range,
                        other_pool: other_pool.name.clone(),
                        other_range,
                    });
                }
                if other_range.family() == range.family() && other_range.last() > range.last() {
                    continue;
                }
            }
            furthest = Some((pool, range));
        }
        Ok(Self { pools })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Pool> {
        self.pools.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.index_of(name).map(|index| &self.pools[index])
    }

    pub fn len(&self) -> usize {
        self.pools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.pools
            .binary_search_by(|pool| pool.name.as_str().cmp(name))
            .ok()
    }

    pub(crate) fn at(&self, index: usize) -> &Pool {
        &self.pools[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, ranges: &[&str]) -> Pool {
        Pool::new(
            name,
            ranges
                .iter()
                .map(|r| r.parse().expect("valid range"))
                .collect(),
        )
    }

    #[test]
    fn pools_are_sorted_by_name_and_found_by_name() {
        let pools = Pools::new(vec![
            pool("b", &["192.0.2.0/28"]),
            pool("a", &["192.0.2.16/28"]),
        ])
        .expect("valid");
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(pools.get("b").map(|p| p.ranges.len()), Some(1));
        assert!(pools.get("c").is_none());
    }

    #[test]
    fn duplicate_pool_names_are_refused() {
        let err = Pools::new(vec![
            pool("a", &["192.0.2.0/28"]),
            pool("a", &["192.0.2.16/28"]),
        ])
        .expect_err("duplicate");
        assert_eq!(err.to_string(), "two pools are named `a`");
    }

    #[test]
    fn overlapping_ranges_are_refused_within_and_across_pools() {
        let err = Pools::new(vec![
            pool("wide", &["192.0.2.0/24"]),
            pool("small", &["192.0.2.10-192.0.2.11"]),
        ])
        .expect_err("overlap");
        assert!(err.to_string().contains("overlaps"), "{err}");
        let err = Pools::new(vec![pool(
            "self",
            &["192.0.2.0/28", "192.0.2.15-192.0.2.20"],
        )])
        .expect_err("overlap within a pool");
        assert!(err.to_string().contains("pool `self`"), "{err}");
    }

    #[test]
    fn ipv4_and_ipv6_ranges_never_overlap_each_other() {
        Pools::new(vec![pool("v4", &["0.0.0.0/0"]), pool("v6", &["::/0"])])
            .expect("distinct families");
    }
}
