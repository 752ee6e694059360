//! Test support for ferrolb's end-to-end tests. It owns the bridge between a Rust test and the
//! real testbed that `testbed/testbed` runs: reading its environment, a `kube::Client` for its
//! apiserver, commands inside its network namespaces, backend pods with their EndpointSlices,
//! and waiting with deadlines that say what they were waiting for.
//!
//! Nothing here fakes a component: every call reaches the real apiserver, kernel or daemon.

mod env;
mod exec;
mod ferrolb;
mod link;
mod objects;
pub mod routers;
mod wait;

pub use env::{Host, Interface, Node, Testbed};
pub use exec::CommandOutput;
pub use ferrolb::ManagedProcess;
pub use link::LinkDown;
pub use objects::{Family, Pod, ServiceSpec};
pub use wait::wait_until;
