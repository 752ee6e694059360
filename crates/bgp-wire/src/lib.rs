//! BGP-4 messages as ferrolb's speaker uses them ([`message`]) and their wire format ([`wire`]).
//!
//! The speaker originates routes and never installs what it hears, so the model is small: an
//! OPEN with the capabilities ferrolb speaks, UPDATEs as prefixes plus one set of path
//! attributes, NOTIFICATIONs as code, subcode and data. Every byte that comes from a peer is
//! parsed in full all the same, so that a malformed message is answered with the NOTIFICATION
//! the RFCs ask for (RFC 4271 §6, RFC 7606), and never with a panic.

pub mod message;
pub mod wire;

pub use message::*;
pub use wire::{Context, EncodeError, HEADER_LEN, Inbound, decode, encode, frame_length, pack};
