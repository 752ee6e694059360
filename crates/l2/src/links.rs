//! Which links the responder answers on, and for which IPs: pure functions over plain link
//! descriptions, so the rules are tested without netlink or a socket.
//!
//! The rules are MetalLB's (`internal/layer2/announcer.go`, `updateInterfaces`): a link is
//! skipped when it is down, enslaved to a bridge or bond (it has a master: the master
//! answers for it), marked NOARP, or cannot broadcast (ARP needs broadcast); loopback never
//! broadcasts and is skipped by name too. On top of that, links whose names match the
//! exclusion list are skipped, by default MetalLB's `metallb-excludel2` list
//! ([`DEFAULT_EXCLUDED_INTERFACES`]) that keeps the speaker off container and CNI plumbing.
//!
//! An L2Advertisement that names interfaces overrides the exclusion list for those names
//! ([`Scope::Only`]), never the other rules: a link that is down or enslaved cannot answer.
//!
//! MetalLB answers NDP only on links with an IPv6 link-local address; here every usable link
//! answers both ARP and NDP, since a link without IPv6 simply receives no solicitations.

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};

use crate::MacAddr;

/// MetalLB's default `announcedInterfacesToExclude` (the `metallb-excludel2` ConfigMap its
/// manifests and Helm chart ship), as regular expressions matched against link names.
pub const DEFAULT_EXCLUDED_INTERFACES: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
];

/// On which links an owned IP is answered and announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every link the responder uses by default: usable and not excluded by name.
    All,
    /// Only the links with these names, even ones the exclusion list names (what an
    /// L2Advertisement's `interfaces` asks for). An empty set answers nowhere.
    Only(BTreeSet<String>),
}

impl Scope {
    /// [`Scope::Only`] from names.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Scope {
        Scope::Only(names.into_iter().map(Into::into).collect())
    }

    /// Whether an IP with this scope is answered on the link named `name`; `default` says
    /// whether that link is in the default set (usable and not excluded by name).
    pub fn covers(&self, name: &str, default: bool) -> bool {
        match self {
            Scope::All => default,
            Scope::Only(names) => names.contains(name),
        }
    }

    /// The scope of an IP asked for twice: answered wherever either asks.
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::All, _) | (_, Scope::All) => Scope::All,
            (Scope::Only(mut names), Scope::Only(more)) => {
                names.extend(more);
                Scope::Only(names)
            }
        }
    }
}

/// The link-name exclusion list, compiled.
#[derive(Clone)]
pub struct Exclusion {
    patterns: Vec<String>,
    regex: Option<Regex>,
}

impl fmt::Debug for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Exclusion").field(&self.patterns).finish()
    }
}

impl Exclusion {
    /// Excludes the links whose names match any of `patterns` (regular expressions,
    /// unanchored like Go's `MatchString`: anchor them with `^` and `$` as MetalLB's do).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Exclusion, regex::Error> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.as_ref().to_owned()).collect();
        let regex = if patterns.is_empty() {
            None
        } else {
            // One alternation, as MetalLB joins its list: one pass per name.
            let joined = patterns
                .iter()
                .map(|pattern| format!("(?:{pattern})"))
                .collect::<Vec<_>>()
                .join("|");
            Some(Regex::new(&joined)?)
        };
        // Each pattern on its own too, so an error names the pattern at fault rather than
        // the alternation.
        for pattern in &patterns {
            Regex::new(pattern)?;
        }
        Ok(Exclusion { patterns, regex })
    }

    /// MetalLB's default list, [`DEFAULT_EXCLUDED_INTERFACES`].
    pub fn metallb_default() -> Exclusion {
        Exclusion::new(DEFAULT_EXCLUDED_INTERFACES).unwrap_or_else(|_| Exclusion::none())
    }

    /// Excludes nothing.
    pub fn none() -> Exclusion {
        Exclusion {
            patterns: Vec::new(),
            regex: None,
        }
    }

    /// Whether `name` is excluded.
    pub fn is_excluded(&self, name: &str) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|regex| regex.is_match(name))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// What the responder needs to know about a link, as netlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// The link-layer address, when it is a 6-byte one.
    pub mac: Option<MacAddr>,
    /// ARPHRD_ETHER: the frames built here are Ethernet frames.
    pub ethernet: bool,
    /// IFF_UP, administratively up (what MetalLB checks).
    pub up: bool,
    pub loopback: bool,
    pub broadcast: bool,
    pub noarp: bool,
    /// Enslaved to a bridge, bond, VRF… (IFLA_MASTER is set).
    pub has_master: bool,
}

impl LinkInfo {
    /// The description of an RTM_NEWLINK message, `None` without a name (which the kernel
    /// always sends; a message without one is not acted on).
    pub fn from_netlink(message: &LinkMessage) -> Option<LinkInfo> {
        let mut name = None;
        let mut mac = None;
        let mut has_master = false;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(ifname) => name = Some(ifname.clone()),
                LinkAttribute::Address(bytes) => {
                    mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
                }
                LinkAttribute::Controller(index) => has_master = *index != 0,
                _ => {}
            }
        }
        let flags = message.header.flags;
        Some(LinkInfo {
            index: message.header.index,
            name: name?,
            mac,
            ethernet: message.header.link_layer_type == LinkLayerType::Ether,
            up: flags.contains(LinkFlags::Up),
            loopback: flags.contains(LinkFlags::Loopback),
            broadcast: flags.contains(LinkFlags::Broadcast),
            noarp: flags.contains(LinkFlags::Noarp),
            has_master,
        })
    }
}

/// Why a link cannot answer, whatever its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Loopback,
    Down,
    /// Has a master; the bridge or bond answers for it.
    Enslaved,
    NoArp,
    NoBroadcast,
    NotEthernet,
    /// No usable Ethernet address (missing or all zero).
    NoMac,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unusable::Loopback => "loopback",
            Unusable::Down => "down",
            Unusable::Enslaved => "enslaved to a master",
            Unusable::NoArp => "NOARP",
            Unusable::NoBroadcast => "no broadcast",
            Unusable::NotEthernet => "not Ethernet",
            Unusable::NoMac => "no Ethernet address",
        })
    }
}

/// The link's MAC if the responder can answer on it at all, MetalLB's rules.
pub fn check_usable(link: &LinkInfo) -> Result<MacAddr, Unusable> {
    if link.loopback {
        return Err(Unusable::Loopback);
    }
    if !link.up {
        return Err(Unusable::Down);
    }
    if link.has_master {
        return Err(Unusable::Enslaved);
    }
    if link.noarp {
        return Err(Unusable::NoArp);
    }
    if !link.broadcast {
        return Err(Unusable::NoBroadcast);
    }
    if !link.ethernet {
        return Err(Unusable::NotEthernet);
    }
    link.mac
        .filter(|mac| *mac != MacAddr::ZERO)
        .ok_or(Unusable::NoMac)
}

/// Whether and how the responder uses a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUse {
    /// In the default set: answers for [`Scope::All`] IPs and for the IPs naming it.
    Default(MacAddr),
    /// Excluded by name, but some owned IP's [`Scope::Only`] names it: answers for those.
    Named(MacAddr),
    /// Excluded by name and named by no owned IP.
    Excluded,
    Unusable(Unusable),
}

impl LinkUse {
    /// The MAC to answer with, when the link is used.
    pub fn mac(self) -> Option<MacAddr> {
        match self {
            LinkUse::Default(mac) | LinkUse::Named(mac) => Some(mac),
            LinkUse::Excluded | LinkUse::Unusable(_) => None,
        }
    }

    /// Whether the link is in the default set.
    pub fn is_default(self) -> bool {
        matches!(self, LinkUse::Default(_))
    }
}

/// How the responder uses `link`, given the exclusion list and the names that owned IPs'
/// scopes ask for.
pub fn link_use(link: &LinkInfo, exclusion: &Exclusion, named: &BTreeSet<String>) -> LinkUse {
    let mac = match check_usable(link) {
        Ok(mac) => mac,
        Err(reason) => return LinkUse::Unusable(reason),
    };
    if !exclusion.is_excluded(&link.name) {
        LinkUse::Default(mac)
    } else if named.contains(&link.name) {
        LinkUse::Named(mac)
    } else {
        LinkUse::Excluded
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::link::LinkHeader;

    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);

    fn ethernet(name: &str) -> LinkInfo {
        LinkInfo {
            index: 7,
            name: name.to_owned(),
            mac: Some(MAC),
            ethernet: true,
            up: true,
            loopback: false,
            broadcast: true,
            noarp: false,
            has_master: false,
        }
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn an_up_ethernet_link_is_used() {
        assert_eq!(
            link_use(&ethernet("eth0"), &Exclusion::metallb_default(), &none()),
            LinkUse::Default(MAC)
        );
    }

    #[test]
    fn metallbs_rules_make_links_unusable() {
        type Change = fn(&mut LinkInfo);
        let cases: [(Change, Unusable); 7] = [
            (|l| l.loopback = true, Unusable::Loopback),
            (|l| l.up = false, Unusable::Down),
            (|l| l.has_master = true, Unusable::Enslaved),
            (|l| l.noarp = true, Unusable::NoArp),
            (|l| l.broadcast = false, Unusable::NoBroadcast),
            (|l| l.ethernet = false, Unusable::NotEthernet),
            (|l| l.mac = Some(MacAddr::ZERO), Unusable::NoMac),
        ];
        for (change, reason) in cases {
            let mut link = ethernet("eth0");
            change(&mut link);
            assert_eq!(check_usable(&link), Err(reason));
            // Naming the link does not override these.
            let named = BTreeSet::from(["eth0".to_owned()]);
            assert_eq!(
                link_use(&link, &Exclusion::none(), &named),
                LinkUse::Unusable(reason)
            );
        }
    }

    #[test]
    fn metallbs_default_list_excludes_container_plumbing() {
        let exclusion = Exclusion::metallb_default();
        assert_eq!(
            exclusion.patterns().len(),
            DEFAULT_EXCLUDED_INTERFACES.len()
        );
        for name in [
            "docker0",
            "cbr0",
            "dummy0",
            "virbr0",
            "lxcbr0",
            "veth1234abcd",
            "lo",
            "cali12ab",
            "tunl0",
            "flannel.1",
            "kube-ipvs0",
            "cni0",
            "nodelocaldns",
        ] {
            assert!(exclusion.is_excluded(name), "{name} is excluded");
        }
        for name in [
            "eth0",
            "ens3",
            "enp0s31f6",
            "bond0",
            "br0",
            "vlan100",
            "lo1",
            "wlan0",
        ] {
            assert!(!exclusion.is_excluded(name), "{name} is not excluded");
        }
    }

    #[test]
    fn the_exclusion_list_is_replaceable() {
        let exclusion = Exclusion::new(&["^eth1$", "^ens"]).expect("valid patterns");
        assert!(exclusion.is_excluded("eth1"));
        assert!(exclusion.is_excluded("ens3"));
        assert!(!exclusion.is_excluded("eth10"));
        assert!(!exclusion.is_excluded("veth0"));
        assert!(!Exclusion::none().is_excluded("lo"));
        assert!(Exclusion::new(&["("]).is_err());
    }

    #[test]
    fn naming_an_excluded_link_uses_it_outside_the_default_set() {
        let link = ethernet("veth0");
        let exclusion = Exclusion::metallb_default();
        assert_eq!(link_use(&link, &exclusion, &none()), LinkUse::Excluded);
        let named = BTreeSet::from(["veth0".to_owned()]);
        assert_eq!(link_use(&link, &exclusion, &named), LinkUse::Named(MAC));
        assert!(!LinkUse::Named(MAC).is_default());
        // Naming a link that is in the default set anyway changes nothing.
        let named = BTreeSet::from(["eth0".to_owned()]);
        assert_eq!(
            link_use(&ethernet("eth0"), &exclusion, &named),
            LinkUse::Default(MAC)
        );
    }

    #[test]
    fn scopes_cover_their_links() {
        assert!(Scope::All.covers("eth0", true));
        assert!(!Scope::All.covers("veth0", false));
        let only = Scope::only(["eth1", "veth0"]);
        assert!(only.covers("eth1", true));
        assert!(only.covers("veth0", false));
        assert!(!only.covers("eth0", true));
        assert!(!Scope::Only(BTreeSet::new()).covers("eth0", true));
    }

    #[test]
    fn scopes_unite() {
        assert_eq!(Scope::only(["a"]).union(Scope::All), Scope::All);
        assert_eq!(Scope::All.union(Scope::only(["a"])), Scope::All);
        assert_eq!(
            Scope::only(["a"]).union(Scope::only(["b"])),
            Scope::only(["a", "b"])
        );
    }

    #[test]
    fn netlink_messages_become_link_descriptions() {
        let mut message = LinkMessage::default();
        message.header = LinkHeader {
            index: 3,
            link_layer_type: LinkLayerType::Ether,
            flags: LinkFlags::Up | LinkFlags::Broadcast | LinkFlags::Multicast,
            ..LinkHeader::default()
        };
        message.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(MAC.0.to_vec()),
        ];
        let info = LinkInfo::from_netlink(&message).expect("named");
        assert_eq!(info, ethernet("eth0").with_index(3));

        message.attributes.push(LinkAttribute::Controller(9));
        message.header.flags = LinkFlags::Broadcast | LinkFlags::Noarp;
        let info = LinkInfo::from_netlink(&message).expect("named");
        assert!(info.has_master && info.noarp && !info.up);

        // Odd-sized link-layer addresses (IPoIB, tunnels) are not MACs.
        message.attributes = vec![
            LinkAttribute::IfName("ib0".into()),
            LinkAttribute::Address(vec![1; 20]),
        ];
        assert_eq!(LinkInfo::from_netlink(&message).and_then(|i| i.mac), None);

        message.attributes.clear();
        assert_eq!(LinkInfo::from_netlink(&message), None);
    }

    impl LinkInfo {
        fn with_index(mut self, index: u32) -> LinkInfo {
            self.index = index;
            self
        }
    }
}
