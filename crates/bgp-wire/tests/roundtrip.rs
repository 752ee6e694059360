//! decode(encode(x)) == x over generated messages, for both ASN widths.

mod common;

use ferrolb_bgp_wire::{Inbound, decode, encode, frame_length};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decode_inverts_encode(message in common::message(), ctx in common::context()) {
        let bytes = encode(&message, &ctx).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert!(bytes.len() <= ctx.max_message_len);
        prop_assert_eq!(frame_length(&bytes, &ctx), Ok(Some(bytes.len())));
        prop_assert_eq!(decode(&bytes, &ctx), Ok(Inbound::Message(message)));
    }
}
