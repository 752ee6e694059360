//! Address families and the address ranges pools are made of.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            IpFamily::V4 => 0,
            IpFamily::V6 => 1,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Why a string is not an IP family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown IP family {0:?} (IPv4 or IPv6)")]
pub struct UnknownFamily(pub String);

impl FromStr for IpFamily {
    type Err = UnknownFamily;

    /// The spelling of a Service's `spec.ipFamilies`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "IPv4" => Ok(IpFamily::V4),
            "IPv6" => Ok(IpFamily::V6),
            other => Err(UnknownFamily(other.to_string())),
        }
    }
}

/// A non-empty, inclusive range of addresses of one family: what one entry of an
/// `IPAddressPool`'s `addresses` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    first: IpAddr,
    last: IpAddr,
}

/// Why an address range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error(
        "`{input}` is neither a CIDR (192.0.2.0/24) nor a range (192.0.2.10-192.0.2.20): {reason}"
    )]
    Malformed { input: String, reason: String },
    #[error("range `{input}` is reversed: it starts at {first}, after its end {last}")]
    Reversed {
        input: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("range `{input}` mixes an IPv4 and an IPv6 address")]
    MixedFamilies { input: String },
}

impl IpRange {
    /// The addresses from `first` to `last`, both included.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, RangeError> {
        Self::checked(first, last, || format!("{first}-{last}"))
    }

    fn checked(
        first: IpAddr,
        last: IpAddr,
        input: impl FnOnce() -> String,
    ) -> Result<Self, RangeError> {
        if IpFamily::of(first) != IpFamily::of(last) {
            return Err(RangeError::MixedFamilies { input: input() });
        }
        if first > last {
            return Err(RangeError::Reversed {
                input: input(),
                first,
                last,
            });
        }
        Ok(Self { first, last })
    }

    pub fn first(&self) -> IpAddr {
        self.first
    }

    pub fn last(&self) -> IpAddr {
        self.last
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.first)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.first <= ip && ip <= self.last
    }

    /// How many addresses the range holds; `::/0` (2^128 addresses) reports `u128::MAX`.
    pub fn size(&self) -> u128 {
        (to_u128(self.last) - to_u128(self.first)).saturating_add(1)
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family() == other.family() && self.first <= other.last && other.first <= self.last
    }

    /// The prefix length when the range is exactly one CIDR block.
    fn prefix_len(&self) -> Option<u8> {
        let span = to_u128(self.last) - to_u128(self.first);
        let is_block = span & span.wrapping_add(1) == 0 && to_u128(self.first) & span == 0;
        let bits: u32 = match self.family() {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        };
        is_block.then(|| (bits - span.count_ones()) as u8)
    }
}

impl From<IpNet> for IpRange {
    fn from(net: IpNet) -> Self {
        Self {
            first: net.network(),
            last: net.broadcast(),
        }
    }
}

impl FromStr for IpRange {
    type Err = RangeError;

    /// Parses what MetalLB accepts in `IPAddressPool.spec.addresses`: a CIDR (`192.0.2.0/28`,
    /// host bits ignored as MetalLB does) or a range `first-last` (spaces around the dash
    /// allowed, `a-a` for a single address).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = |reason: String| RangeError::Malformed {
            input: input.to_string(),
            reason,
        };
        let parse_ip = |text: &str| {
            let text = text.trim();
            text.parse::<IpAddr>()
                .map_err(|_| malformed(format!("`{text}` is not an IP address")))
        };
        if let Some((first, last)) = input.split_once('-') {
            let (first, last) = (parse_ip(first)?, parse_ip(last)?);
            return Self::checked(first, last, || input.to_string());
        }
        let Some((address, length)) = input.trim().split_once('/') else {
            return Err(malformed("a CIDR needs a /prefix length".to_string()));
        };
        let address = parse_ip(address)?;
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let length: u8 = length
            .parse()
            .ok()
            .filter(|length| *length <= max)
            .ok_or_else(|| malformed(format!("prefix length `{length}` is not 0 to {max}")))?;
        let net = IpNet::new(address, length)
            .map_err(|_| malformed(format!("prefix length `{length}` is not 0 to {max}")))?;
        Ok(net.trunc().into())
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(length) => write!(f, "{}/{length}", self.first),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`to_u128`]; `value` must fit the family (ranges guarantee it).
pub(crate) fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// MetalLB's `avoidBuggyIPs` rule: IPv4 addresses ending in .0 or .255 confuse the smurf
/// protection of some old consumer routers.
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        s.parse().expect("valid range")
    }

    #[test]
    fn cidr_and_dash_ranges_parse_to_their_bounds() {
        let cidr = range("192.0.2.0/28");
        assert_eq!(cidr.first().to_string(), "192.0.2.0");
        assert_eq!(cidr.last().to_string(), "192.0.2.15");
        assert_eq!(cidr.size(), 16);
        let dash = range("192.0.2.10 - 192.0.2.20");
        assert_eq!(dash.size(), 11);
        assert_eq!(dash.to_string(), "192.0.2.10-192.0.2.20");
        assert_eq!(range("192.0.2.7-192.0.2.7").size(), 1);
        assert_eq!(range("2001:db8::/64").size(), 1 << 64);
        assert_eq!(range("::/0").size(), u128::MAX);
    }

    #[test]
    fn cidr_host_bits_are_ignored_as_in_metallb() {
        assert_eq!(range("192.0.2.5/24"), range("192.0.2.0/24"));
    }

    #[test]
    fn ranges_that_are_exactly_a_block_display_as_cidr() {
        assert_eq!(range("192.0.2.0-192.0.2.255").to_string(), "192.0.2.0/24");
        assert_eq!(range("2001:db8::/48").to_string(), "2001:db8::/48");
        assert_eq!(range("192.0.2.1-192.0.2.1").to_string(), "192.0.2.1/32");
        assert_eq!(range("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(
            range("192.0.2.1-192.0.2.2").to_string(),
            "192.0.2.1-192.0.2.2"
        );
    }

    #[test]
    fn malformed_reversed_and_mixed_ranges_are_refused_with_the_reason() {
        let cases = [
            ("192.0.2.0", "needs a /prefix length"),
            ("192.0.2.0/33", "prefix length `33` is not 0 to 32"),
            ("2001:db8::/129", "prefix length `129` is not 0 to 128"),
            ("192.0.2.0/x", "prefix length `x`"),
            ("192.0.2.300/24", "`192.0.2.300` is not an IP address"),
            ("192.0.2.1-", "`` is not an IP address"),
            ("192.0.2.9-192.0.2.1", "is reversed: it starts at 192.0.2.9"),
            ("192.0.2.1-2001:db8::1", "mixes an IPv4 and an IPv6 address"),
        ];
        for (input, reason) in cases {
            let err = input.parse::<IpRange>().expect_err(input);
            assert!(err.to_string().contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn buggy_addresses_are_ipv4_ending_in_0_or_255() {
        assert!(is_buggy("192.0.2.0".parse().expect("ip")));
        assert!(is_buggy("192.0.2.255".parse().expect("ip")));
        assert!(!is_buggy("192.0.2.1".parse().expect("ip")));
        assert!(!is_buggy("2001:db8::ff".parse().expect("ip")));
        assert!(!is_buggy("2001:db8::".parse().expect("ip")));
    }

    #[test]
    fn families_parse_from_the_service_spelling() {
        assert_eq!("IPv6".parse::<IpFamily>(), Ok(IpFamily::V6));
        assert!("ipv6".parse::<IpFamily>().is_err());
    }
}
