//! This node's share of the L2 plan: the addresses it answers for (and where), the Services it
//! announces, and what changed since the last plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Add;
use std::time::Duration;

use ferrolb_announce::{Interfaces, L2Plan, ServiceKey};
use ferrolb_l2::Scope;

/// What this node announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// Every address this node answers for, with the interfaces it answers on.
    pub owned: BTreeMap<IpAddr, Scope>,
    /// Every Service announced from this node, with its addresses announced here.
    pub services: BTreeMap<ServiceKey, BTreeSet<IpAddr>>,
}

/// This node's part of `plan`. Services sharing an address are all announced from the one node
/// the plan chose, so an address's scope is the union of its announcements' interfaces.
pub fn local_part(plan: &L2Plan, node: &str) -> Local {
    let mut local = Local::default();
    let mut scopes: BTreeMap<IpAddr, Interfaces> = BTreeMap::new();
    for announcement in plan.announcements.iter().filter(|a| a.node == node) {
        let scope = match scopes.remove(&announcement.ip) {
            Some(before) => before.union(announcement.interfaces.clone()),
            None => announcement.interfaces.clone(),
        };
        scopes.insert(announcement.ip, scope);
        local
            .services
            .entry(announcement.service.clone())
            .or_default()
            .insert(announcement.ip);
    }
    local.owned = scopes
        .into_iter()
        .map(|(ip, interfaces)| {
            let scope = match interfaces {
                Interfaces::All => Scope::All,
                Interfaces::Only(names) => Scope::Only(names),
            };
            (ip, scope)
        })
        .collect();
    local
}

/// Services announced from here now and not before: each gets a `nodeAssigned` Event.
pub fn newly_announced(before: &Local, now: &Local) -> Vec<ServiceKey> {
    now.services
        .keys()
        .filter(|key| !before.services.contains_key(*key))
        .cloned()
        .collect()
}

/// Addresses this node no longer owns but keeps answering for a moment (make before break):
/// those the plan gives to a node that joined the membership less than `hold` ago, which may
/// not answer yet. Each is held, with the scope it had, until `hold` after that node joined.
/// `before` and `held` are the previous plan's owned and held addresses; `T` is the clock.
pub fn handover_holds<T>(
    before: &BTreeMap<IpAddr, Scope>,
    held: &BTreeMap<IpAddr, (Scope, T)>,
    now_local: &Local,
    plan: &L2Plan,
    joined: &HashMap<String, T>,
    hold: Duration,
    now: T,
) -> BTreeMap<IpAddr, (Scope, T)>
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    let previous = before
        .iter()
        .chain(held.iter().map(|(ip, (scope, _))| (ip, scope)));
    let mut holds = BTreeMap::new();
    for (ip, scope) in previous {
        if now_local.owned.contains_key(ip) || holds.contains_key(ip) {
            continue;
        }
        let until = plan
            .owner(*ip)
            .and_then(|owner| joined.get(owner))
            .map(|joined| *joined + hold)
            .filter(|until| *until > now);
        if let Some(until) = until {
            holds.insert(*ip, (scope.clone(), until));
        }
    }
    holds
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_announce::Announcement;

    fn announcement(service: &str, ip: &str, node: &str, interfaces: Interfaces) -> Announcement {
        Announcement {
            service: ServiceKey::new("shop", service),
            ip: ip.parse().expect("an address"),
            node: node.into(),
            interfaces,
        }
    }

    fn only(names: &[&str]) -> Interfaces {
        Interfaces::Only(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn keeps_this_nodes_announcements_and_merges_shared_scopes() {
        let plan = L2Plan {
            announcements: vec![
                announcement("a", "198.51.100.200", "node-1", only(&["eth0"])),
                announcement("b", "198.51.100.200", "node-1", only(&["eth1"])),
                announcement("c", "198.51.100.201", "node-2", Interfaces::All),
                announcement("d", "2001:db8:100::200", "node-1", Interfaces::All),
                announcement("d", "198.51.100.202", "node-1", only(&["eth0"])),
            ],
            withheld: Vec::new(),
        };
        let local = local_part(&plan, "node-1");
        let owned: Vec<String> = local
            .owned
            .iter()
            .map(|(ip, scope)| format!("{ip} {scope:?}"))
            .collect();
        assert_eq!(
            owned,
            [
                "198.51.100.200 Only({\"eth0\", \"eth1\"})",
                "198.51.100.202 Only({\"eth0\"})",
                "2001:db8:100::200 All",
            ]
        );
        let services: Vec<String> = local
            .services
            .iter()
            .map(|(key, ips)| format!("{key} {}", ips.len()))
            .collect();
        assert_eq!(services, ["shop/a 1", "shop/b 1", "shop/d 2"]);
        assert_eq!(local_part(&plan, "node-3"), Local::default());
    }

    #[test]
    fn an_address_handed_to_a_newcomer_is_held_until_it_has_had_time() {
        let ip = |text: &str| -> IpAddr { text.parse().expect("an address") };
        let plan = L2Plan {
            announcements: vec![
                announcement("a", "198.51.100.200", "node-2", Interfaces::All),
                announcement("b", "198.51.100.201", "node-3", Interfaces::All),
                announcement("c", "198.51.100.202", "node-1", Interfaces::All),
            ],
            withheld: Vec::new(),
        };
        let before: BTreeMap<IpAddr, Scope> = [
            (ip("198.51.100.200"), Scope::All),
            (ip("198.51.100.201"), Scope::only(["eth1"])),
            (ip("198.51.100.202"), Scope::All),
            (ip("198.51.100.203"), Scope::All),
        ]
        .into();
        let hold = Duration::from_secs(2);
        // node-2 joined 1 s ago; node-3 was there all along; .203 went to nobody.
        let joined: HashMap<String, Duration> =
            [("node-2".to_owned(), Duration::from_secs(9))].into();
        let now = Duration::from_secs(10);
        let local = local_part(&plan, "node-1");
        let holds = handover_holds(&before, &BTreeMap::new(), &local, &plan, &joined, hold, now);
        assert_eq!(
            holds,
            BTreeMap::from([(ip("198.51.100.200"), (Scope::All, Duration::from_secs(11)))])
        );
        // Still held on the next plan, with no owned address left to carry it…
        let again = handover_holds(&BTreeMap::new(), &holds, &local, &plan, &joined, hold, now);
        assert_eq!(again, holds);
        // …and let go once the time is up.
        let later = Duration::from_secs(11);
        assert!(
            handover_holds(
                &BTreeMap::new(),
                &holds,
                &local,
                &plan,
                &joined,
                hold,
                later
            )
            .is_empty()
        );
    }

    #[test]
    fn only_services_that_arrive_are_new() {
        let plan = |services: &[&str]| L2Plan {
            announcements: services
                .iter()
                .map(|s| announcement(s, "198.51.100.200", "node-1", Interfaces::All))
                .collect(),
            withheld: Vec::new(),
        };
        let before = local_part(&plan(&["a", "b"]), "node-1");
        let now = local_part(&plan(&["b", "c"]), "node-1");
        assert_eq!(
            newly_announced(&before, &now),
            [ServiceKey::new("shop", "c")]
        );
        assert!(newly_announced(&now, &now).is_empty());
    }
}
