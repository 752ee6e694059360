//! Kubernetes glue shared by `ferrolb controller` and `ferrolb speaker`: watches that survive
//! apiserver restarts and their in-memory stores ([`store`], [`watch`]), the order in which
//! writes go out ([`dispatch`]), leadership on a Lease ([`leader`]) and the metrics and health
//! endpoints ([`http`]). Decisions live elsewhere; this crate only moves objects in and out.

pub mod dispatch;
pub mod http;
pub mod leader;
pub mod store;
pub mod watch;
