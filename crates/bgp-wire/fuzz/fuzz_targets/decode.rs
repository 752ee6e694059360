//! Any bytes through the receive path: `frame_length`, then `decode` of the frame it finds, with
//! both ASN widths. Neither may panic, and every error must be a NOTIFICATION with a code in
//! 1..=6 (a header error from `frame_length`).

#![no_main]

use ferrolb_bgp_wire::{Context, decode, frame_length};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for four_octet_asn in [false, true] {
        let ctx = Context {
            four_octet_asn,
            ..Context::default()
        };
        match frame_length(data, &ctx) {
            Ok(Some(length)) => {
                if let Some(frame) = data.get(..length)
                    && let Err(notification) = decode(frame, &ctx)
                {
                    assert!((1..=6).contains(&notification.code));
                }
            }
            Ok(None) => assert!(data.len() < 19),
            Err(notification) => assert_eq!(notification.code, 1),
        }
    }
});
