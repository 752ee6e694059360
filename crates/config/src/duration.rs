//! Durations as Kubernetes writes them in `metav1.Duration` fields (`holdTime: 90s`,
//! `connectTime: 1m30s`): Go's `time.ParseDuration` syntax, here without negative values,
//! which no ferrolb timer accepts.

use std::time::Duration;

/// Parses `300ms`, `1.5h`, `2h45m`, `0`. Units: ns, us (µs), ms, s, m, h.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid("empty"));
    }
    let mut rest = body;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid("missing unit"))?;
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid("expected a number before each unit"));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => return Err(invalid(&format!("unknown unit {other:?}"))),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid("number too large"))?
        };
        let mut nanos = whole
            .checked_mul(nanos_per_unit)
            .ok_or_else(|| invalid("too large"))?;
        // Fractions are exact to the nanosecond and truncated below it, as Go does.
        let mut scale = nanos_per_unit;
        for digit in fraction.bytes() {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| invalid("too large"))?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid("too large"))?;
    // The remainder of a division by 10^9 always fits in u32.
    let subsec = u32::try_from(total_nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_what_kubernetes_users_write() {
        let cases = [
            ("90s", Duration::from_secs(90)),
            ("3m", Duration::from_secs(180)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (".5s", Duration::from_millis(500)),
            ("+2s", Duration::from_secs(2)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("90", "missing unit"),
            ("-1s", "negative"),
            ("1d", "unknown unit \"d\""),
            ("s", "expected a number"),
            ("1..2s", "expected a number"),
            ("99999999999999999999999h", "too large"),
        ];
        for (text, reason) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err} lacks {reason:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let _ = parse(&text);
        }

        #[test]
        fn whole_seconds_round_trip(secs in 0u64..10_000_000) {
            prop_assert_eq!(parse(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
        }
    }
}
