//! The L2 election key: MetalLB's, byte for byte.
//!
//! MetalLB's speaker (`speaker/layer2_controller.go`, `ShouldAnnounce`) sorts the candidate
//! nodes by `sha256(nodeName + "#" + ip.String())`, compared as bytes, and the first one
//! announces. `ip.String()` is Go's text form of the address: dotted quad for IPv4 (also for an
//! IPv4-mapped IPv6 address, which Go treats as IPv4) and RFC 5952 for IPv6. [`rank_key`]
//! computes exactly that hash and [`metallb_ip_string`] exactly that text (checked against
//! vectors produced with Go's `crypto/sha256` and `net` packages in the tests), so for the same
//! candidates ferrolb picks the node MetalLB would: a cluster migrating from MetalLB keeps its
//! addresses where they are.
//!
//! Two differences, on purpose:
//! - MetalLB hashes every address of a Service with the Service's *first* address, so a
//!   dual-stack Service's two addresses always share a node. We hash each address with itself,
//!   so every Service holding an address (shared addresses, `allow-shared-ip`) agrees on one
//!   node for it. For single-stack Services, and for the first address of a dual-stack one, the
//!   key is the same as MetalLB's.
//! - A full sort is not needed: the winner is the minimum, found in one pass
//!   ([`elect`]). Candidates with equal hashes (never seen; it would take a SHA-256 collision)
//!   fall back to name order so the answer stays deterministic.
//!
//! Why this rule is balanced and stable: it is rendezvous (highest-random-weight) hashing. Each
//! node's key for an address is independent of the other nodes, so the winner is uniformly
//! spread over the candidates, and removing a node that does not win an address never changes
//! who wins it.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// An address as Go's `net.IP.String()` writes it, which is what MetalLB hashes.
pub fn metallb_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
    }
}

/// MetalLB's election key of `node` for `ip`: `sha256("<node>#<ip>")`. Smaller wins.
pub fn rank_key(node: &str, ip: IpAddr) -> [u8; 32] {
    key_for(node, metallb_ip_string(ip).as_bytes())
}

/// The key with the address text already made (the batch makes it once per address).
pub(crate) fn key_for(node: &str, ip_text: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update(b"#")
        .chain_update(ip_text)
        .finalize()
        .into()
}

/// The node that announces `ip` among `candidates` when none is preferred over another:
/// the one with the smallest [`rank_key`] (MetalLB's winner). `None` when there is no candidate.
/// A name given twice counts once.
pub fn elect<'a>(ip: IpAddr, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let text = metallb_ip_string(ip);
    candidates
        .into_iter()
        .map(|node| (key_for(node, text.as_bytes()), node))
        .min()
        .map(|(_, node)| node)
}
