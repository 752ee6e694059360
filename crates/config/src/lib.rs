//! From metallb.io resources to one validated ferrolb configuration: every validation rule MetalLB
//! applies (and a few it does not), all errors reported at once and each naming the object, the
//! field and the reason. Also reading MetalLB's legacy ConfigMap for `ferrolb migrate`. No I/O.
//!
//! So far: pools (IPAddressPool → the allocator's pools), L2 and BGP advertisements with
//! Community aliases, BGP peers and BFD profiles, one [`build`] over all of them, reading them
//! from YAML, and the migration from MetalLB's legacy format.

pub mod bgp;
mod build;
pub mod community;
pub mod duration;
mod error;
pub mod l2;
mod last_good;
pub mod legacy;
pub mod migrate;
pub mod peers;
pub mod pools;
pub mod scope;

pub use build::{Built, Config, Resources, build};
pub use error::ConfigError;
pub use last_good::{LastGood, Served, Stale};
