//! Which addresses of a range are in use, in memory proportional to the number of addresses in
//! use and never to the size of the range.
//!
//! Each range numbers its *usable* addresses 0, 1, 2, … ("ordinals"): every address for a plain
//! range, and every address but the .0 and .255 ones when the pool avoids buggy IPs. Used
//! ordinals are kept as maximal runs, so the first free address is one map lookup away whatever
//! the range's size or fill level.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::range::{IpFamily, IpRange, from_u128, to_u128};

/// A set of `u128` stored as maximal runs of consecutive values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunSet {
    /// Run start → run end (inclusive). Runs never touch: a gap of at least one value separates
    /// any two of them.
    runs: BTreeMap<u128, u128>,
}

impl RunSet {
    /// Adds `value`; false if it was already there.
    pub(crate) fn insert(&mut self, value: u128) -> bool {
        let before = self
            .runs
            .range(..=value)
            .next_back()
            .map(|(&start, &end)| (start, end));
        if let Some((_, end)) = before
            && end >= value
        {
            return false;
        }
        let start = match before {
            Some((start, end)) if end + 1 == value => start,
            _ => value,
        };
        let end = value
            .checked_add(1)
            .and_then(|next| self.runs.remove(&next))
            .unwrap_or(value);
        self.runs.insert(start, end);
        true
    }

    /// Removes `value`; false if it was not there.
    pub(crate) fn remove(&mut self, value: u128) -> bool {
        let Some((start, end)) = self
            .runs
            .range(..=value)
            .next_back()
            .map(|(&start, &end)| (start, end))
            .filter(|&(_, end)| end >= value)
        else {
            return false;
        };
        self.runs.remove(&start);
        if start < value {
            self.runs.insert(start, value - 1);
        }
        if value < end {
            self.runs.insert(value + 1, end);
        }
        true
    }

    /// The smallest value not in the set, `None` when the set holds every `u128`.
    pub(crate) fn first_absent(&self) -> Option<u128> {
        match self.runs.first_key_value() {
            Some((0, end)) => end.checked_add(1),
            _ => Some(0),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u128 {
        self.runs.iter().map(|(start, end)| end - start + 1).sum()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, value: u128) -> bool {
        self.runs
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| end >= value)
    }
}

/// One range of one pool: its usable addresses and which of them are in use.
#[derive(Debug, Clone)]
pub(crate) struct RangeIndex {
    range: IpRange,
    first: u128,
    last: u128,
    numbering: Numbering,
    /// The highest ordinal; `None` when the range has no usable address at all (a lone .0).
    last_ordinal: Option<u128>,
    used: RunSet,
}

#[derive(Debug, Clone, Copy)]
enum Numbering {
    /// Ordinal = address − first.
    Every,
    /// IPv4 without .0 and .255: ordinal = usable addresses below it − `base`, where `base`
    /// counts the usable addresses below the range's first.
    SkipBuggy { base: u128 },
}

/// Usable (not .0, not .255) IPv4 addresses in `0..address`.
fn usable_below(address: u128) -> u128 {
    let (block, offset) = (address / 256, address % 256);
    254 * block + offset.saturating_sub(1).min(254)
}

impl RangeIndex {
    pub(crate) fn new(range: IpRange, avoid_buggy_ips: bool) -> Self {
        let (first, last) = (to_u128(range.first()), to_u128(range.last()));
        let skip_buggy = avoid_buggy_ips && range.family() == IpFamily::V4;
        let (numbering, last_ordinal) = if skip_buggy {
            let base = usable_below(first);
            // `last + 1` fits: IPv4 addresses are far below u128::MAX.
            let usable = usable_below(last + 1) - base;
            (Numbering::SkipBuggy { base }, usable.checked_sub(1))
        } else {
            (Numbering::Every, Some(last - first))
        };
        Self {
            range,
            first,
            last,
            numbering,
            last_ordinal,
            used: RunSet::default(),
        }
    }

    pub(crate) fn range(&self) -> IpRange {
        self.range
    }

    pub(crate) fn family(&self) -> IpFamily {
        self.range.family()
    }

    /// How many usable addresses the range has (saturating at `u128::MAX` for `::/0`).
    pub(crate) fn usable(&self) -> u128 {
        self.last_ordinal.map_or(0, |last| last.saturating_add(1))
    }

    /// The ordinal of `ip`, `None` when it is outside the range or not usable in it.
    pub(crate) fn ordinal(&self, ip: IpAddr) -> Option<u128> {
        if IpFamily::of(ip) != self.family() {
            return None;
        }
        let address = to_u128(ip);
        if address < self.first || address > self.last {
            return None;
        }
        match self.numbering {
            Numbering::Every => Some(address - self.first),
            Numbering::SkipBuggy { base } => {
                matches!(address % 256, 1..=254).then(|| usable_below(address) - base)
            }
        }
    }

    fn address(&self, ordinal: u128) -> IpAddr {
        let value = match self.numbering {
            Numbering::Every => self.first + ordinal,
            Numbering::SkipBuggy { base } => {
                let usable = base + ordinal;
                256 * (usable / 254) + 1 + usable % 254
            }
        };
        from_u128(self.family(), value)
    }

    pub(crate) fn mark_used(&mut self, ip: IpAddr) {
        if let Some(ordinal) = self.ordinal(ip) {
            self.used.insert(ordinal);
        }
    }

    pub(crate) fn mark_free(&mut self, ip: IpAddr) {
        if let Some(ordinal) = self.ordinal(ip) {
            self.used.remove(ordinal);
        }
    }

    /// The lowest usable address nobody holds.
    pub(crate) fn first_free(&self) -> Option<IpAddr> {
        let ordinal = self.used.first_absent()?;
        (ordinal <= self.last_ordinal?).then(|| self.address(ordinal))
    }

    #[cfg(test)]
    pub(crate) fn marked_count(&self) -> u128 {
        self.used.len()
    }

    #[cfg(test)]
    pub(crate) fn is_marked(&self, ip: IpAddr) -> bool {
        self.ordinal(ip)
            .is_some_and(|ordinal| self.used.contains(ordinal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn index(range: &str, avoid_buggy_ips: bool) -> RangeIndex {
        RangeIndex::new(range.parse().expect("valid range"), avoid_buggy_ips)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid ip")
    }

    #[test]
    fn first_free_skips_used_runs() {
        let mut index = index("192.0.2.0/30", false);
        assert_eq!(index.first_free(), Some(ip("192.0.2.0")));
        index.mark_used(ip("192.0.2.0"));
        index.mark_used(ip("192.0.2.1"));
        index.mark_used(ip("192.0.2.3"));
        assert_eq!(index.first_free(), Some(ip("192.0.2.2")));
        index.mark_used(ip("192.0.2.2"));
        assert_eq!(index.first_free(), None);
        index.mark_free(ip("192.0.2.1"));
        assert_eq!(index.first_free(), Some(ip("192.0.2.1")));
    }

    #[test]
    fn avoid_buggy_ips_numbering_skips_dot_0_and_dot_255() {
        let index = index("192.0.2.250-192.0.3.5", true);
        // .250-.254 then .1-.5 of the next block.
        assert_eq!(index.usable(), 10);
        assert_eq!(index.ordinal(ip("192.0.2.255")), None);
        assert_eq!(index.ordinal(ip("192.0.3.0")), None);
        assert_eq!(index.ordinal(ip("192.0.2.254")), Some(4));
        assert_eq!(index.ordinal(ip("192.0.3.1")), Some(5));
        assert_eq!(index.address(5), ip("192.0.3.1"));
        assert_eq!(index.address(9), ip("192.0.3.5"));
    }

    #[test]
    fn a_range_of_only_buggy_addresses_has_nothing_usable() {
        let index = index("192.0.2.255-192.0.3.0", true);
        assert_eq!(index.usable(), 0);
        assert_eq!(index.first_free(), None);
    }

    #[test]
    fn the_whole_ipv6_space_numbers_without_overflow() {
        let mut index = index("::/0", false);
        assert_eq!(index.usable(), u128::MAX);
        index.mark_used(ip("::"));
        assert_eq!(index.first_free(), Some(ip("::1")));
        index.mark_used(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(index.is_marked(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    }

    proptest! {
        // The run set behaves as a plain set, and its first absent value is the model's.
        #[test]
        fn run_set_matches_a_plain_set(ops in proptest::collection::vec((any::<bool>(), 0u128..40), 0..200)) {
            let mut runs = RunSet::default();
            let mut model = BTreeSet::new();
            for (insert, value) in ops {
                if insert {
                    prop_assert_eq!(runs.insert(value), model.insert(value));
                } else {
                    prop_assert_eq!(runs.remove(value), model.remove(&value));
                }
                let expected = (0..).find(|v| !model.contains(v));
                prop_assert_eq!(runs.first_absent(), expected);
                for value in 0..40 {
                    prop_assert_eq!(runs.contains(value), model.contains(&value));
                }
                // Maximal runs: no two runs touch.
                let mut previous_end: Option<u128> = None;
                for (&start, &end) in &runs.runs {
                    prop_assert!(start <= end);
                    if let Some(previous_end) = previous_end {
                        prop_assert!(previous_end + 1 < start);
                    }
                    previous_end = Some(end);
                }
            }
        }

        // Ordinals and addresses are inverse bijections over exactly the usable addresses.
        #[test]
        fn skip_buggy_numbering_is_a_bijection(first in 0u32..2000, span in 0u32..1200) {
            let first = u32::MAX / 2 + first;
            let range = IpRange::new(
                IpAddr::V4(first.into()),
                IpAddr::V4((first + span).into()),
            ).expect("ordered");
            let index = RangeIndex::new(range, true);
            let mut expected = 0u128;
            for value in first..=first + span {
                let address = IpAddr::V4(value.into());
                match index.ordinal(address) {
                    Some(ordinal) => {
                        prop_assert_eq!(ordinal, expected);
                        prop_assert_eq!(index.address(ordinal), address);
                        expected += 1;
                    }
                    None => prop_assert!(crate::range::is_buggy(address)),
                }
            }
            prop_assert_eq!(index.usable(), expected);
        }
    }
}
