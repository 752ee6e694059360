//! The authentication envelope every membership datagram travels in.
//!
//! Layout: `[version: u8 = 1][payload …][tag: 32 bytes]`, where the tag is
//! HMAC-SHA256, keyed by the shared secret, over `version ‖ payload`. Pure
//! functions only: no socket, no state.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Envelope format version, the first byte of every datagram.
pub const VERSION: u8 = 1;
/// Length of the HMAC-SHA256 tag at the end of every datagram.
pub const TAG_LEN: usize = 32;
/// Bytes the envelope adds to a payload.
pub const OVERHEAD: usize = 1 + TAG_LEN;

/// Why a datagram was refused. Every variant means "drop it unparsed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than the version byte plus the tag.
    #[error("datagram too short for the authentication envelope")]
    Truncated,
    /// Unknown envelope version.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// The tag does not match: wrong key, or tampered with.
    #[error("authentication tag mismatch")]
    BadTag,
}

fn mac(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC hashes long keys and pads short ones: no length is invalid.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

/// Wraps `payload` in an authenticated envelope keyed by `key`.
pub fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
    out.push(VERSION);
    out.extend_from_slice(payload);
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

/// Checks a datagram's envelope and returns its payload, or why it was refused.
/// The payload is only returned, never looked at, if the tag is valid.
pub fn open<'a>(key: &[u8], datagram: &'a [u8]) -> Result<&'a [u8], OpenError> {
    if datagram.len() < OVERHEAD {
        return Err(OpenError::Truncated);
    }
    let (body, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let mut m = mac(key);
    m.update(body);
    // Constant-time comparison.
    m.verify_slice(tag).map_err(|_| OpenError::BadTag)?;
    match body.split_first() {
        Some((&VERSION, payload)) => Ok(payload),
        Some((&v, _)) => Err(OpenError::Version(v)),
        None => Err(OpenError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let sealed = seal(b"secret", b"hello");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(open(b"secret", &sealed), Ok(&b"hello"[..]));
    }

    #[test]
    fn empty_payload_round_trips() {
        let sealed = seal(b"k", b"");
        assert_eq!(open(b"k", &sealed), Ok(&b""[..]));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let sealed = seal(b"secret", b"hello");
        assert_eq!(open(b"other", &sealed), Err(OpenError::BadTag));
    }

    #[test]
    fn short_datagrams_are_rejected() {
        assert_eq!(open(b"k", b""), Err(OpenError::Truncated));
        assert_eq!(open(b"k", &[1; OVERHEAD - 1]), Err(OpenError::Truncated));
        let sealed = seal(b"k", b"");
        assert_eq!(open(b"k", &sealed[1..]), Err(OpenError::Truncated));
    }

    #[test]
    fn unknown_version_with_valid_tag_is_rejected() {
        let mut body = vec![2u8, 9, 9];
        let mut m = mac(b"k");
        m.update(&body);
        body.extend_from_slice(&m.finalize().into_bytes());
        assert_eq!(open(b"k", &body), Err(OpenError::Version(2)));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(key in proptest::collection::vec(any::<u8>(), 0..80),
                                 payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let sealed = seal(&key, &payload);
            prop_assert_eq!(open(&key, &sealed), Ok(&payload[..]));
        }

        #[test]
        fn any_single_bit_flip_is_rejected(payload in proptest::collection::vec(any::<u8>(), 0..300),
                                          pos in any::<prop::sample::Index>(),
                                          bit in 0u8..8) {
            let mut sealed = seal(b"secretkey", &payload);
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(open(b"secretkey", &sealed).is_err());
        }

        #[test]
        fn truncation_is_rejected(payload in proptest::collection::vec(any::<u8>(), 0..300),
                                  cut in any::<prop::sample::Index>()) {
            let sealed = seal(b"secretkey", &payload);
            let keep = cut.index(sealed.len());
            prop_assert!(open(b"secretkey", &sealed[..keep]).is_err());
        }

        #[test]
        fn garbage_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40),
                                data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = open(&key, &data);
        }
    }
}
