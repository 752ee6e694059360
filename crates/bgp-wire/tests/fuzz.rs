//! Fuzz-style properties: arbitrary bytes and mutated valid frames through `frame_length` and
//! `decode` never panic, and every error is a NOTIFICATION with a code in 1..=6.

mod common;

use ferrolb_bgp_wire::{Context, Notification, decode, encode, frame_length};
use proptest::prelude::*;

fn assert_error_code(result: Result<impl Sized, Notification>) -> Result<(), TestCaseError> {
    if let Err(notification) = result {
        prop_assert!(
            (1..=6).contains(&notification.code),
            "code {} out of range",
            notification.code
        );
    }
    Ok(())
}

/// Runs the receive path the way a session does: frame, then decode the frame.
fn receive(buffer: &[u8], ctx: &Context) -> Result<(), TestCaseError> {
    match frame_length(buffer, ctx) {
        Ok(Some(length)) => {
            prop_assert!(length >= 19 && length <= ctx.max_message_len);
            if let Some(frame) = buffer.get(..length) {
                assert_error_code(decode(frame, ctx))?;
            }
        }
        Ok(None) => prop_assert!(buffer.len() < 19),
        Err(notification) => prop_assert_eq!(notification.code, 1),
    }
    // decode is also called on whatever it is given.
    assert_error_code(decode(buffer, ctx))
}

#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, value: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, count: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..8).prop_map(|(at, count)| Mutation::Remove { at, count }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::Set { at, value } => {
            let at = at % bytes.len();
            bytes[at] = *value;
        }
        Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
        Mutation::Insert {
            at,
            bytes: inserted,
        } => {
            let at = at % bytes.len();
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Remove { at, count } => {
            let at = at % bytes.len();
            let end = (at + count).min(bytes.len());
            bytes.drain(at..end);
        }
    }
}

/// Keeps the header's length field in step with the frame after a mutation, so that the
/// body parsers, not just the header check, see the damage.
fn fix_length(bytes: &mut [u8]) {
    if bytes.len() >= 19
        && let Ok(length) = u16::try_from(bytes.len())
    {
        bytes[16..18].copy_from_slice(&length.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ctx in common::context(),
    ) {
        receive(&bytes, &ctx)?;
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        message_type in 1u8..=5,
        body in proptest::collection::vec(any::<u8>(), 0..300),
        ctx in common::context(),
    ) {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&u16::try_from(19 + body.len()).unwrap_or(u16::MAX).to_be_bytes());
        bytes.push(message_type);
        bytes.extend_from_slice(&body);
        receive(&bytes, &ctx)?;
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        message in common::message(),
        ctx in common::context(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        keep_length_in_step in any::<bool>(),
    ) {
        let Ok(mut bytes) = encode(&message, &ctx) else {
            return Ok(());
        };
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if keep_length_in_step {
            fix_length(&mut bytes);
        }
        receive(&bytes, &ctx)?;
    }
}
