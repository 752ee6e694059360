//! The allocator: who holds which address, and MetalLB's rules for handing out more.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::{
    AssignError, Dropped, Failure, Lack, NoAddress, Refusal, SharedAddress, Unsuitable,
};
use crate::holdings::{Holders, Holding, Holdings, KeyHash};
use crate::index::RangeIndex;
use crate::pool::Pools;
use crate::range::{IpFamily, is_buggy, to_u128};
use crate::service::{
    Addresses, FamilyPolicy, ServiceKey, ServiceRequest, SharingConflict, sharing_conflict,
};

/// The addresses a service holds and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub pool: Arc<str>,
    pub addresses: Addresses,
}

/// A successful `assign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub pool: Arc<str>,
    pub addresses: Addresses,
    pub change: Change,
}

/// What `assign` changed for the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It keeps exactly what it held.
    Unchanged,
    /// It held nothing and now holds `addresses`.
    Allocated,
    /// A dual-stack service holding one family got the other from the same pool.
    Extended { added: IpAddr },
    /// The service no longer wants this family; its other address is kept.
    Narrowed { released: IpAddr },
    /// What it held was no longer valid; it was released and `addresses` allocated instead.
    Replaced(Box<Dropped>),
}

/// A service whose addresses a new pool configuration no longer allows. Addresses still in
/// some pool stay reserved for the service until `assign` moves it (so nobody else is given an
/// address it still announces); addresses in no pool at all are released at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidated {
    pub service: ServiceKey,
    /// What it held before the change.
    pub addresses: Addresses,
    /// The part of `addresses` that is in no pool any more, and released.
    pub released: Addresses,
    pub reason: Refusal,
}

/// Per-pool counters for metrics (MetalLB's `metallb_allocator_addresses_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub pool: Arc<str>,
    pub ipv4: FamilyStats,
    pub ipv6: FamilyStats,
    /// Services holding an address of the pool.
    pub services: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyStats {
    /// Addresses the pool can hand out (without .0/.255 when it avoids buggy IPs); saturates
    /// at `u128::MAX` for `::/0`.
    pub total: u128,
    /// Distinct addresses held, however many services share each.
    pub in_use: u64,
}

impl FamilyStats {
    pub fn available(&self) -> u128 {
        self.total.saturating_sub(u128::from(self.in_use))
    }
}

/// Tracks every service's addresses against the configured pools.
///
/// Invariants: every held address lies in some pool's range; all services on one address have
/// the same sharing key and may pairwise share; each range's index marks exactly the held
/// addresses it can number.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: Pools,
    slots: Vec<PoolSlot>,
    /// Per family, every range of every pool, sorted by first address.
    lookup: [Vec<RangeRef>; 2],
    holdings: Holdings,
    /// Who holds each held address, by holding id, sorted by service key so that which holder
    /// a refusal names does not depend on history.
    holders: HashMap<IpAddr, Holders>,
    /// Held addresses by the sharing key of their holders, to find a shareable one in order.
    shareable: HashMap<String, BTreeSet<IpAddr>>,
}

#[derive(Debug, Clone)]
struct PoolSlot {
    name: Arc<str>,
    ranges: Vec<RangeIndex>,
    in_use: [u64; 2],
    total: [u128; 2],
    services: u64,
}

#[derive(Debug, Clone, Copy)]
struct RangeRef {
    first: u128,
    last: u128,
    pool: usize,
    range: usize,
}

impl Allocator {
    pub fn new(pools: Pools) -> Self {
        let mut allocator = Self::default();
        allocator.install(pools);
        allocator
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// Gives the service the addresses MetalLB would, or keeps what it holds if that is still
    /// valid for its current request and configuration.
    ///
    /// Order: the requested addresses (in a pool that allows the service, `autoAssign` or not);
    /// else the requested pool; else the pools whose `serviceAllocation` selects the service,
    /// by priority (lower first, unset last, then by name); else every `autoAssign` pool with no
    /// `serviceAllocation`, by name. Within a pool, ranges in order, lowest address first; an
    /// address already used by services this one may share with counts as available.
    ///
    /// On error the service holds nothing.
    pub fn assign(&mut self, request: &ServiceRequest) -> Result<Assigned, AssignError> {
        let hash = self.holdings.hash(&request.key);
        let mut dropped = None;
        let held = self.holdings.find(hash, &request.key);
        if let Some(held) = held
            .and_then(|id| self.holdings.at(id))
            .map(|h| h.addresses)
        {
            match self.keep(request, held) {
                Ok((pool, addresses, change)) => {
                    return Ok(self.commit(request, pool, addresses, change));
                }
                Err(reason) => {
                    self.unhold(&request.key);
                    dropped = Some(Box::new(Dropped {
                        addresses: held,
                        reason,
                    }));
                }
            }
        }
        match self.allocate(request) {
            Ok((pool, addresses)) => {
                self.hold(hash, request.clone(), pool, addresses);
                Ok(Assigned {
                    pool: self.slots[pool].name.clone(),
                    addresses,
                    change: dropped.map_or(Change::Allocated, Change::Replaced),
                })
            }
            Err(failure) => Err(AssignError {
                service: request.key.clone(),
                dropped,
                failure,
            }),
        }
    }

    /// Takes back what a service held before a restart, if the current pools and sharing rules
    /// still allow it (`autoAssign` and priorities do not matter: MetalLB keeps such
    /// addresses). On refusal nothing changes.
    pub fn restore(
        &mut self,
        request: &ServiceRequest,
        addresses: Addresses,
    ) -> Result<Assignment, Refusal> {
        let pool = self.validate(request, addresses)?;
        self.unhold(&request.key);
        self.hold(
            self.holdings.hash(&request.key),
            request.clone(),
            pool,
            addresses,
        );
        Ok(self.assignment_of(pool, addresses))
    }

    /// Releases one address of a service; false if it did not hold it.
    pub fn release(&mut self, service: &ServiceKey, ip: IpAddr) -> bool {
        if !self
            .holdings
            .get(service)
            .is_some_and(|holding| holding.addresses.contains(ip))
        {
            return false;
        }
        if let Some(holding) = self.unhold(service) {
            let remaining = holding.addresses.without(IpFamily::of(ip));
            if let Some((pool, _)) = remaining.iter().next().and_then(|ip| self.locate(ip)) {
                let hash = self.holdings.hash(service);
                self.hold(hash, holding.request, pool, remaining);
            }
        }
        true
    }

    /// Releases everything a service holds, returning it.
    pub fn unassign(&mut self, service: &ServiceKey) -> Option<Assignment> {
        self.unhold(service)
            .map(|holding| self.assignment_of(holding.pool, holding.addresses))
    }

    /// Switches to a new pool configuration, keeping every assignment that is still valid and
    /// reporting, in service order, each one that is not.
    pub fn set_pools(&mut self, pools: Pools) -> Vec<Invalidated> {
        self.install(pools);
        let held: Vec<IpAddr> = self.holders.keys().copied().collect();
        for ip in held {
            if !self.mark_used(ip) {
                self.forget_address(ip);
            }
        }
        let mut services: Vec<(ServiceKey, usize)> = self
            .holdings
            .iter()
            .map(|(id, holding)| (holding.request.key.clone(), id))
            .collect();
        services.sort();
        let mut invalidated = Vec::new();
        for (service, id) in services {
            let Some(holding) = self.holdings.at(id) else {
                continue;
            };
            let addresses = holding.addresses;
            let verdict = self.validate(&holding.request, addresses);
            let released = addresses
                .iter()
                .filter(|ip| !self.holders.contains_key(ip))
                .fold(Addresses::NONE, Addresses::with);
            let remaining = released
                .iter()
                .fold(addresses, |left, ip| left.without(IpFamily::of(ip)));
            match remaining.iter().next().and_then(|ip| self.locate(ip)) {
                Some((pool, _)) => {
                    self.slots[pool].services += 1;
                    if let Some(holding) = self.holdings.at_mut(id) {
                        holding.pool = pool;
                        holding.addresses = remaining;
                    }
                }
                None => {
                    self.holdings.remove(&service);
                }
            }
            if let Err(reason) = verdict {
                invalidated.push(Invalidated {
                    service,
                    addresses,
                    released,
                    reason,
                });
            }
        }
        invalidated
    }

    pub fn assignment(&self, service: &ServiceKey) -> Option<Assignment> {
        self.holdings
            .get(service)
            .map(|holding| self.assignment_of(holding.pool, holding.addresses))
    }

    /// Every service holding addresses, in no particular order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, Assignment)> {
        self.holdings.iter().map(|(_, holding)| {
            (
                &holding.request.key,
                self.assignment_of(holding.pool, holding.addresses),
            )
        })
    }

    /// The services holding `ip`, in key order.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.holders
            .get(&ip)
            .map_or(&[][..], Holders::as_slice)
            .iter()
            .filter_map(|&id| Some(&self.holdings.at(id)?.request.key))
    }

    /// The pool whose ranges contain `ip`.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.locate(ip).map(|(pool, _)| &*self.slots[pool].name)
    }

    /// Counters of every pool, in name order.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.slots
            .iter()
            .map(|slot| PoolStats {
                pool: slot.name.clone(),
                ipv4: FamilyStats {
                    total: slot.total[0],
                    in_use: slot.in_use[0],
                },
                ipv6: FamilyStats {
                    total: slot.total[1],
                    in_use: slot.in_use[1],
                },
                services: slot.services,
            })
            .collect()
    }

    /// Replaces the pools and their indexes, all empty; callers re-mark what is held.
    fn install(&mut self, pools: Pools) {
        self.slots = pools
            .iter()
            .map(|pool| {
                let ranges: Vec<RangeIndex> = pool
                    .ranges
                    .iter()
                    .map(|range| RangeIndex::new(*range, pool.avoid_buggy_ips))
                    .collect();
                let mut total = [0u128; 2];
                for range in &ranges {
                    let family = range.family().index();
                    total[family] = total[family].saturating_add(range.usable());
                }
                PoolSlot {
                    name: Arc::from(pool.name.as_str()),
                    ranges,
                    in_use: [0; 2],
                    total,
                    services: 0,
                }
            })
            .collect();
        self.lookup = [Vec::new(), Vec::new()];
        for (pool, slot) in self.slots.iter().enumerate() {
            for (range, index) in slot.ranges.iter().enumerate() {
                let bounds = index.range();
                self.lookup[index.family().index()].push(RangeRef {
                    first: to_u128(bounds.first()),
                    last: to_u128(bounds.last()),
                    pool,
                    range,
                });
            }
        }
        for table in &mut self.lookup {
            table.sort_by_key(|entry| entry.first);
        }
        self.pools = pools;
    }

    /// The pool and range containing `ip`.
    fn locate(&self, ip: IpAddr) -> Option<(usize, usize)> {
        let table = &self.lookup[IpFamily::of(ip).index()];
        let value = to_u128(ip);
        let after = table.partition_point(|entry| entry.first <= value);
        let entry = table.get(after.checked_sub(1)?)?;
        (value <= entry.last).then_some((entry.pool, entry.range))
    }

    fn assignment_of(&self, pool: usize, addresses: Addresses) -> Assignment {
        Assignment {
            pool: self.slots[pool].name.clone(),
            addresses,
        }
    }

    /// Whether the service may hold exactly `addresses`.
    fn validate(&self, request: &ServiceRequest, addresses: Addresses) -> Result<usize, Refusal> {
        if addresses.is_empty() {
            return Err(Refusal::NoAddress);
        }
        if !request.families.fits(&addresses) {
            return Err(Refusal::WrongFamilies {
                addresses,
                policy: request.families,
            });
        }
        self.check(request, addresses)
    }

    /// Every rule but the family policy: one pool holds all the addresses, none is a buggy
    /// address the pool avoids, the pool is the requested one and allows the service, the
    /// addresses are the requested ones, and their other holders may share with the service.
    fn check(&self, request: &ServiceRequest, addresses: Addresses) -> Result<usize, Refusal> {
        let mut found: Option<(IpAddr, usize)> = None;
        for ip in addresses.iter() {
            let (pool, _) = self.locate(ip).ok_or(Refusal::NotInAnyPool { ip })?;
            if self.pools.at(pool).avoid_buggy_ips && is_buggy(ip) {
                return Err(Refusal::BuggyAddress {
                    pool: self.slots[pool].name.clone(),
                    ip,
                });
            }
            match found {
                Some((other_ip, other_pool)) if other_pool != pool => {
                    return Err(Refusal::SplitAcrossPools {
                        ip: other_ip,
                        pool: self.slots[other_pool].name.clone(),
                        other_ip: ip,
                        other_pool: self.slots[pool].name.clone(),
                    });
                }
                Some(_) => {}
                None => found = Some((ip, pool)),
            }
        }
        let Some((_, pool)) = found else {
            return Err(Refusal::NoAddress);
        };
        let name = &self.slots[pool].name;
        if let Some(requested) = &request.requested_pool
            && **requested != **name
        {
            return Err(Refusal::NotRequestedPool {
                addresses,
                pool: name.clone(),
                requested: requested.clone(),
            });
        }
        if !request.requested_ips.is_empty() && request.requested_ips != addresses {
            return Err(Refusal::NotRequestedAddresses {
                addresses,
                requested: request.requested_ips,
            });
        }
        if let Some(allocation) = &self.pools.at(pool).allocation {
            allocation
                .allows(request)
                .map_err(|reason| Refusal::NotAllowed {
                    pool: name.clone(),
                    reason,
                })?;
        }
        for ip in addresses.iter() {
            if let Some((holder, conflict)) = self.conflict_at(ip, request) {
                return Err(Refusal::Shared(Box::new(SharedAddress {
                    pool: name.clone(),
                    ip,
                    holder,
                    conflict,
                })));
            }
        }
        Ok(pool)
    }

    /// The first other holder of `ip` the service may not share with.
    fn conflict_at(
        &self,
        ip: IpAddr,
        request: &ServiceRequest,
    ) -> Option<(ServiceKey, SharingConflict)> {
        self.holders.get(&ip)?.as_slice().iter().find_map(|&id| {
            let holder = &self.holdings.at(id)?.request;
            if holder.key == request.key {
                return None;
            }
            let conflict = sharing_conflict(request, holder)?;
            Some((holder.key.clone(), conflict))
        })
    }

    /// What of `held` the service keeps: the families it still wants, if still valid, plus the
    /// missing family of a dual-stack service from the same pool when there is one free.
    fn keep(
        &self,
        request: &ServiceRequest,
        held: Addresses,
    ) -> Result<(usize, Addresses, Change), Refusal> {
        let policy = request.families;
        let mut kept = held;
        let mut change = Change::Unchanged;
        for family in [IpFamily::V4, IpFamily::V6] {
            if let Some(ip) = held.get(family)
                && !policy.wants(family)
            {
                kept = kept.without(family);
                change = Change::Narrowed { released: ip };
            }
        }
        if kept.is_empty() {
            return Err(Refusal::WrongFamilies {
                addresses: held,
                policy,
            });
        }
        let pool = self.check(request, kept)?;
        if request.requested_ips.is_empty() {
            let (primary, secondary) = policy.order();
            for family in [primary].into_iter().chain(secondary) {
                if kept.get(family).is_none()
                    && let Ok(ip) = self.first_usable(pool, family, request)
                {
                    kept = kept.with(ip);
                    change = Change::Extended { added: ip };
                }
            }
        }
        if !policy.fits(&kept) {
            return Err(Refusal::WrongFamilies {
                addresses: kept,
                policy,
            });
        }
        Ok((pool, kept, change))
    }

    /// Fresh addresses for a service that holds none.
    fn allocate(&self, request: &ServiceRequest) -> Result<(usize, Addresses), Failure> {
        let requested = request.requested_ips;
        if !requested.is_empty() {
            if !request.families.fits(&requested) {
                return Err(Failure::RequestedFamilies {
                    requested,
                    policy: request.families,
                });
            }
            return self
                .check(request, requested)
                .map(|pool| (pool, requested))
                .map_err(|refusal| Failure::Requested {
                    requested,
                    refusal: Box::new(refusal),
                });
        }
        if let Some(name) = &request.requested_pool {
            let pool = self
                .pools
                .index_of(name)
                .ok_or_else(|| Failure::UnknownPool(name.clone()))?;
            let slot_name = &self.slots[pool].name;
            if let Some(allocation) = &self.pools.at(pool).allocation {
                allocation
                    .allows(request)
                    .map_err(|reason| Failure::RequestedPoolNotAllowed {
                        pool: slot_name.clone(),
                        reason,
                    })?;
            }
            return self
                .pick_from(pool, request)
                .map(|addresses| (pool, addresses))
                .map_err(|lacks| {
                    NoAddress {
                        policy: request.families,
                        pools: vec![(slot_name.clone(), Unsuitable::Lacks(lacks))],
                    }
                    .into()
                });
        }
        let mut reserved: Vec<usize> = (0..self.slots.len())
            .filter(|&pool| {
                let pool = self.pools.at(pool);
                pool.auto_assign
                    && pool
                        .allocation
                        .as_ref()
                        .is_some_and(|allocation| allocation.allows(request).is_ok())
            })
            .collect();
        // Stable: pools of equal priority stay in name order.
        reserved.sort_by(|&a, &b| {
            match (&self.pools.at(a).allocation, &self.pools.at(b).allocation) {
                (Some(a), Some(b)) => a.priority_order(b),
                _ => std::cmp::Ordering::Equal,
            }
        });
        if let Some(found) = self.find_best(reserved.into_iter(), request) {
            return Ok(found);
        }
        let open = (0..self.slots.len()).filter(|&pool| {
            let pool = self.pools.at(pool);
            pool.auto_assign && pool.allocation.is_none()
        });
        if let Some(found) = self.find_best(open, request) {
            return Ok(found);
        }
        Err(self.explain(request).into())
    }

    /// MetalLB's choice among candidate pools: the first that gives everything the policy
    /// wants; for PreferDualStack, failing that, the first giving the primary family, then the
    /// first giving the other.
    fn find_best(
        &self,
        pools: impl Iterator<Item = usize>,
        request: &ServiceRequest,
    ) -> Option<(usize, Addresses)> {
        let FamilyPolicy::PreferDualStack { primary } = request.families else {
            return pools
                .into_iter()
                .find_map(|pool| Some((pool, self.pick_from(pool, request).ok()?)));
        };
        let mut primary_only = None;
        let mut other_only = None;
        for pool in pools {
            match self.pick_from(pool, request) {
                Ok(addresses) if addresses.len() == 2 => return Some((pool, addresses)),
                Ok(addresses) if addresses.get(primary).is_some() => {
                    primary_only.get_or_insert((pool, addresses));
                }
                Ok(addresses) => {
                    other_only.get_or_insert((pool, addresses));
                }
                Err(_) => {}
            }
        }
        primary_only.or(other_only)
    }

    /// What one pool can give the service under its family policy, or what it lacks.
    fn pick_from(
        &self,
        pool: usize,
        request: &ServiceRequest,
    ) -> Result<Addresses, Vec<(IpFamily, Lack)>> {
        let (primary, secondary) = request.families.order();
        let first = self.first_usable(pool, primary, request);
        let Some(secondary) = secondary else {
            return first
                .map(Addresses::single)
                .map_err(|lack| vec![(primary, lack)]);
        };
        let second = self.first_usable(pool, secondary, request);
        let prefer = matches!(request.families, FamilyPolicy::PreferDualStack { .. });
        match (first, second) {
            (Ok(a), Ok(b)) => Ok(Addresses::single(a).with(b)),
            (Ok(a), Err(_)) if prefer => Ok(Addresses::single(a)),
            (Err(_), Ok(b)) if prefer => Ok(Addresses::single(b)),
            (first, second) => Err([(primary, first.err()), (secondary, second.err())]
                .into_iter()
                .filter_map(|(family, lack)| Some((family, lack?)))
                .collect()),
        }
    }

    /// The lowest address of `family` in the pool, ranges in order, that is free or used only
    /// by services this one may share with.
    fn first_usable(
        &self,
        pool: usize,
        family: IpFamily,
        request: &ServiceRequest,
    ) -> Result<IpAddr, Lack> {
        let mut has_range = false;
        for range in self.slots[pool]
            .ranges
            .iter()
            .filter(|range| range.family() == family)
        {
            has_range = true;
            let free = range.first_free();
            if let Some(shared) = self.first_shareable(range, free, request) {
                return Ok(shared);
            }
            if let Some(free) = free {
                return Ok(free);
            }
        }
        Err(if has_range { Lack::Full } else { Lack::NoRange })
    }

    /// The lowest used address of the range below `below` that the service may share.
    fn first_shareable(
        &self,
        range: &RangeIndex,
        below: Option<IpAddr>,
        request: &ServiceRequest,
    ) -> Option<IpAddr> {
        let candidates = self.shareable.get(request.sharing_key()?)?;
        let bounds = range.range();
        let upper = below.map_or(Bound::Included(bounds.last()), Bound::Excluded);
        candidates
            .range((Bound::Included(bounds.first()), upper))
            .copied()
            .filter(|ip| range.ordinal(*ip).is_some())
            .find(|ip| self.conflict_at(*ip, request).is_none())
    }

    /// Why no pool could serve the service, pool by pool.
    fn explain(&self, request: &ServiceRequest) -> NoAddress {
        let pools = (0..self.slots.len())
            .filter_map(|index| {
                let pool = self.pools.at(index);
                let why = match pool.allocation.as_ref().map(|a| a.allows(request)) {
                    Some(Err(reason)) => Unsuitable::NotAllowed(reason),
                    _ if !pool.auto_assign => Unsuitable::NotAutoAssign,
                    _ => Unsuitable::Lacks(self.pick_from(index, request).err()?),
                };
                Some((self.slots[index].name.clone(), why))
            })
            .collect();
        NoAddress {
            policy: request.families,
            pools,
        }
    }

    /// Records what a service that already holds addresses keeps.
    fn commit(
        &mut self,
        request: &ServiceRequest,
        pool: usize,
        addresses: Addresses,
        change: Change,
    ) -> Assigned {
        let hash = self.holdings.hash(&request.key);
        let holding = self
            .holdings
            .find(hash, &request.key)
            .and_then(|id| self.holdings.at_mut(id));
        match holding {
            // Same addresses and sharing key: the indexes stay as they are.
            Some(holding)
                if holding.addresses == addresses
                    && holding.pool == pool
                    && holding.request.sharing_key() == request.sharing_key() =>
            {
                holding.request = request.clone();
            }
            _ => {
                self.unhold(&request.key);
                self.hold(hash, request.clone(), pool, addresses);
            }
        }
        Assigned {
            pool: self.slots[pool].name.clone(),
            addresses,
            change,
        }
    }

    /// Records addresses for a service that holds none.
    fn hold(&mut self, hash: KeyHash, request: ServiceRequest, pool: usize, addresses: Addresses) {
        let sharing_key = request.sharing_key().map(str::to_string);
        let id = self.holdings.insert(
            hash,
            Holding {
                request,
                pool,
                addresses,
            },
        );
        self.slots[pool].services += 1;
        for ip in addresses.iter() {
            match self.holders.entry(ip) {
                Entry::Vacant(vacant) => {
                    vacant.insert(Holders::One(id));
                    self.mark_used(ip);
                    if let Some(key) = &sharing_key {
                        self.shareable.entry(key.clone()).or_default().insert(ip);
                    }
                }
                Entry::Occupied(mut occupied) => {
                    let holdings = &self.holdings;
                    let key_of = |id: usize| holdings.at(id).map(|h| &h.request.key);
                    let holders = occupied.get_mut();
                    let position = holders
                        .as_slice()
                        .partition_point(|&other| key_of(other) < key_of(id));
                    holders.insert(position, id);
                }
            }
        }
    }

    fn unhold(&mut self, service: &ServiceKey) -> Option<Holding> {
        let (id, holding) = self.holdings.remove(service)?;
        self.slots[holding.pool].services -= 1;
        for ip in holding.addresses.iter() {
            let Entry::Occupied(mut holders) = self.holders.entry(ip) else {
                continue;
            };
            if holders.get_mut().remove(id) {
                holders.remove();
                self.mark_free(ip);
                if let Some(key) = holding.request.sharing_key() {
                    self.unshare(key, ip);
                }
            }
        }
        Some(holding)
    }

    /// Drops a held address that no pool contains any more.
    fn forget_address(&mut self, ip: IpAddr) {
        let key = self
            .holders
            .remove(&ip)
            .and_then(|holders| holders.as_slice().first().copied())
            .and_then(|holder| self.holdings.at(holder))
            .and_then(|holding| holding.request.sharing_key().map(str::to_string));
        if let Some(key) = key {
            self.unshare(&key, ip);
        }
    }

    fn unshare(&mut self, key: &str, ip: IpAddr) {
        if let Some(addresses) = self.shareable.get_mut(key) {
            addresses.remove(&ip);
            if addresses.is_empty() {
                self.shareable.remove(key);
            }
        }
    }

    /// Counts `ip` as used in its pool; false if no pool contains it.
    fn mark_used(&mut self, ip: IpAddr) -> bool {
        let Some((pool, range)) = self.locate(ip) else {
            return false;
        };
        let slot = &mut self.slots[pool];
        slot.ranges[range].mark_used(ip);
        slot.in_use[IpFamily::of(ip).index()] += 1;
        true
    }

    fn mark_free(&mut self, ip: IpAddr) {
        if let Some((pool, range)) = self.locate(ip) {
            let slot = &mut self.slots[pool];
            slot.ranges[range].mark_free(ip);
            slot.in_use[IpFamily::of(ip).index()] -= 1;
        }
    }
}

#[cfg(test)]
impl Allocator {
    /// Panics unless every index and counter agrees with the holdings.
    pub(crate) fn assert_consistent(&self) {
        let mut holders: HashMap<IpAddr, Vec<ServiceKey>> = HashMap::new();
        let mut services = vec![0u64; self.slots.len()];
        for (id, holding) in self.holdings.iter() {
            let service = &holding.request.key;
            assert_eq!(self.holdings.id(service), Some(id));
            assert!(!holding.addresses.is_empty(), "{service} holds nothing");
            services[holding.pool] += 1;
            for ip in holding.addresses.iter() {
                holders.entry(ip).or_default().push(service.clone());
            }
        }
        let mut in_use = vec![[0u64; 2]; self.slots.len()];
        for (ip, expected) in &mut holders {
            let actual: Vec<ServiceKey> = self.holders(*ip).cloned().collect();
            expected.sort();
            assert_eq!(&actual, expected, "holders of {ip}, in key order");
            let (pool, range) = self.locate(*ip).expect("every held address is in a pool");
            in_use[pool][IpFamily::of(*ip).index()] += 1;
            let index = &self.slots[pool].ranges[range];
            assert_eq!(
                index.is_marked(*ip),
                index.ordinal(*ip).is_some(),
                "{ip} mark"
            );
            let keys: BTreeSet<Option<&str>> = expected
                .iter()
                .map(|holder| {
                    self.holdings
                        .get(holder)
                        .and_then(|h| h.request.sharing_key())
                })
                .collect();
            assert_eq!(keys.len(), 1, "{ip} holders disagree on the sharing key");
            if let Some(Some(key)) = keys.first() {
                assert!(self.shareable[*key].contains(ip), "{ip} not shareable");
            }
        }
        assert_eq!(holders.len(), self.holders.len());
        let shared: usize = self.shareable.values().map(BTreeSet::len).sum();
        let keyed = holders
            .values()
            .filter(|holders| {
                self.holdings
                    .get(&holders[0])
                    .is_some_and(|h| h.request.sharing_key().is_some())
            })
            .count();
        assert_eq!(shared, keyed);
        for (pool, slot) in self.slots.iter().enumerate() {
            assert_eq!(slot.services, services[pool], "services of {}", slot.name);
            assert_eq!(slot.in_use, in_use[pool], "in use in {}", slot.name);
            for range in &slot.ranges {
                let marked = range.marked_count();
                let held_here = holders
                    .keys()
                    .filter(|ip| range.ordinal(**ip).is_some())
                    .count();
                assert_eq!(marked, held_here as u128, "marks in {}", range.range());
            }
        }
    }
}
