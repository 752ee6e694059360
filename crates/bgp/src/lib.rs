//! ferrolb's BGP speaker. It owns the sessions to the routers: the session state machine
//! (`fsm`, pure: events and a clock in, actions out), the TCP transport (`transport`: MD5,
//! TTL, source address, VRF), the per-peer tasks (`session`) that keep each peer's Adj-RIB-Out
//! equal to the routes the speaker wants advertised, and the [`Speaker`] that runs them.
//! Messages and their wire format are `ferrolb-bgp-wire`'s; which routes go to which peer is
//! `ferrolb-announce`'s.

pub mod fsm;
mod session;
pub mod speaker;
pub mod transport;

pub use speaker::{
    Advertised, Error, PeerAsn, PeerConfig, PeerStatus, Speaker, SpeakerOptions, State,
};
