//! BGP communities as MetalLB writes them: standard `65535:65282` (two 16-bit halves, RFC 1997)
//! and large `large:1:2:3` (three 32-bit parts, RFC 8092).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    Standard(u32),
    Large(u32, u32, u32),
}

/// Why a community string was refused. `Format` may still be an alias that a Community object
/// defines later; `Value` never becomes valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error("{0:?} is neither `<0-65535>:<0-65535>` nor `large:<u32>:<u32>:<u32>`")]
    Format(String),
    #[error("{text:?}: {reason}")]
    Value { text: String, reason: String },
}

impl Community {
    pub fn parse(text: &str) -> Result<Self, CommunityError> {
        let parts: Vec<&str> = text.split(':').collect();
        let value_error = |reason: String| CommunityError::Value {
            text: text.to_string(),
            reason,
        };
        match parts.as_slice() {
            [high, low] => {
                let half = |part: &str| {
                    part.parse::<u16>().map_err(|_| {
                        value_error(format!("{part:?} is not a number from 0 to 65535"))
                    })
                };
                Ok(Community::Standard(
                    (u32::from(half(high)?) << 16) | u32::from(half(low)?),
                ))
            }
            [marker, a, b, c] => {
                if *marker != "large" {
                    return Err(value_error(format!(
                        "a four-part community must start with `large:`, not {marker:?}"
                    )));
                }
                let part = |part: &str| {
                    part.parse::<u32>().map_err(|_| {
                        value_error(format!("{part:?} is not a number from 0 to 4294967295"))
                    })
                };
                Ok(Community::Large(part(a)?, part(b)?, part(c)?))
            }
            _ => Err(CommunityError::Format(text.to_string())),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_and_large_communities_parse() {
        assert_eq!(
            Community::parse("65535:65282"),
            Ok(Community::Standard(0xffff_ff02))
        );
        assert_eq!(
            Community::parse("large:1:2:3"),
            Ok(Community::Large(1, 2, 3))
        );
        assert_eq!(Community::parse("0:0"), Ok(Community::Standard(0)));
    }

    #[test]
    fn an_alias_looks_like_a_format_error_and_a_bad_number_like_a_value_error() {
        assert!(matches!(
            Community::parse("no-advertise"),
            Err(CommunityError::Format(_))
        ));
        assert!(matches!(
            Community::parse("65536:1"),
            Err(CommunityError::Value { .. })
        ));
        assert!(matches!(
            Community::parse("big:1:2:3"),
            Err(CommunityError::Value { .. })
        ));
        assert!(matches!(
            Community::parse("large:1:2:-3"),
            Err(CommunityError::Value { .. })
        ));
    }

    proptest! {
        #[test]
        fn display_round_trips(c in prop_oneof![
            any::<u32>().prop_map(Community::Standard),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Community::Large(a, b, c)),
        ]) {
            prop_assert_eq!(Community::parse(&c.to_string()), Ok(c));
        }

        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = Community::parse(&text);
        }
    }
}
