//! Every refusal the allocator gives, each naming the rule and the pool involved.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::pool::NotAllowed;
use crate::range::IpFamily;
use crate::service::{Addresses, FamilyPolicy, ServiceKey, SharingConflict};

/// Why a service may not hold particular addresses (requested, restored, or held before a
/// configuration change).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no address given")]
    NoAddress,
    #[error("{policy} does not accept {addresses}")]
    WrongFamilies {
        addresses: Addresses,
        policy: FamilyPolicy,
    },
    #[error("{ip} is not in any address pool")]
    NotInAnyPool { ip: IpAddr },
    #[error("pool `{pool}`: {ip} ends in .0 or .255 and the pool avoids buggy IPs")]
    BuggyAddress { pool: Arc<str>, ip: IpAddr },
    #[error(
        "{ip} is in pool `{pool}` but {other_ip} is in pool `{other_pool}`; both addresses must \
         come from one pool"
    )]
    SplitAcrossPools {
        ip: IpAddr,
        pool: Arc<str>,
        other_ip: IpAddr,
        other_pool: Arc<str>,
    },
    #[error("pool `{pool}` is not the requested pool `{requested}`")]
    NotRequestedPool {
        addresses: Addresses,
        pool: Arc<str>,
        requested: String,
    },
    #[error("the service asks for {requested}, not {addresses}")]
    NotRequestedAddresses {
        addresses: Addresses,
        requested: Addresses,
    },
    #[error("pool `{pool}` is {reason}")]
    NotAllowed { pool: Arc<str>, reason: NotAllowed },
    #[error(transparent)]
    Shared(Box<SharedAddress>),
}

/// An address the service may not share with one of its holders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool `{pool}`: {ip} is used by {holder}, {conflict}")]
pub struct SharedAddress {
    pub pool: Arc<str>,
    pub ip: IpAddr,
    pub holder: ServiceKey,
    pub conflict: SharingConflict,
}

/// What a pool is out of, for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lack {
    NoRange,
    /// No address that is free, or shareable with this service.
    Full,
}

/// Why a pool could not serve an automatic allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsuitable {
    NotAllowed(NotAllowed),
    /// `autoAssign: false`: only services that name the pool, or one of its addresses, get one.
    NotAutoAssign,
    /// The wanted families it cannot provide, in the service's order of preference.
    Lacks(Vec<(IpFamily, Lack)>),
}

impl fmt::Display for Unsuitable {
    /// Completes "pool `x` …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsuitable::NotAllowed(reason) => write!(f, "is {reason}"),
            Unsuitable::NotAutoAssign => f.write_str("has autoAssign off"),
            Unsuitable::Lacks(lacks) => {
                f.write_str("has ")?;
                for (i, (family, lack)) in lacks.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    match lack {
                        Lack::NoRange => write!(f, "no {family} range")?,
                        Lack::Full => write!(f, "no free {family} address")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// No pool could give the service what it wants; every pool considered says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAddress {
    pub policy: FamilyPolicy,
    /// In name order.
    pub pools: Vec<(Arc<str>, Unsuitable)>,
}

impl fmt::Display for NoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            FamilyPolicy::SingleStack(family) => write!(f, "no pool with a free {family} address")?,
            FamilyPolicy::PreferDualStack { primary } => write!(
                f,
                "no pool with a free {primary} or {} address",
                primary.other()
            )?,
            FamilyPolicy::RequireDualStack { .. } => {
                f.write_str("no pool with both a free IPv4 and a free IPv6 address")?
            }
        }
        if self.pools.is_empty() {
            return f.write_str(": no address pool is configured");
        }
        for (i, (pool, why)) in self.pools.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "pool `{pool}` {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NoAddress {}

/// Why `assign` found no address for a service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("{policy} does not accept the requested {requested}")]
    RequestedFamilies {
        requested: Addresses,
        policy: FamilyPolicy,
    },
    #[error("cannot use requested {requested}: {refusal}")]
    Requested {
        requested: Addresses,
        refusal: Box<Refusal>,
    },
    #[error("requested pool `{0}` does not exist")]
    UnknownPool(String),
    #[error("requested pool `{pool}` is {reason}")]
    RequestedPoolNotAllowed { pool: Arc<str>, reason: NotAllowed },
    #[error(transparent)]
    NoAddress(#[from] NoAddress),
}

/// Addresses a service held and no longer may, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub addresses: Addresses,
    pub reason: Refusal,
}

/// `assign` failed; the service now holds no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignError {
    pub service: ServiceKey,
    /// What the service held before, released because it was no longer valid.
    pub dropped: Option<Box<Dropped>>,
    pub failure: Failure,
}

impl fmt::Display for AssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.service, self.failure)?;
        if let Some(dropped) = &self.dropped {
            write!(
                f,
                " (it gave up {} because {})",
                dropped.addresses, dropped.reason
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for AssignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failure)
    }
}
