//! Bidirectional Forwarding Detection (RFC 5880), single-hop over UDP (RFC 5881): tells the
//! BGP speaker within milliseconds that a router stopped forwarding, so that the session (and
//! the routes through it) go down at once instead of after the hold time.
//!
//! [`packet`] and [`session`] are pure (codec and state machine, time passed in);
//! [`transport`] holds the sockets and the task that drives the sessions.

pub mod packet;
pub mod session;
pub mod transport;

pub use packet::{ControlPacket, DecodeError, Diag, State};
pub use session::{Action, Jitter, Session, SessionConfig};
pub use transport::{Bfd, Error, PeerState, Profile};
