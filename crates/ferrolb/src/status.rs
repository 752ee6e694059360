//! `ferrolb status`: what a user asks first — which Service got which address from which pool,
//! who announces it, why a pending one waits, whether the configuration was accepted, and how
//! each node's BGP sessions stand.
//! The rendering is a pure function over plain rows; `main` fetches them.

use std::fmt::Write as _;

/// One address pool and its counters (IPAddressPool status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    pub assigned_ipv4: i64,
    pub available_ipv4: i64,
    pub assigned_ipv6: i64,
    pub available_ipv6: i64,
}

/// One LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    pub class: Option<String>,
    pub addresses: Vec<String>,
    pub pool: Option<String>,
    /// Node and interfaces, from ServiceL2Status / ServiceBGPStatus.
    pub announced_by: Vec<String>,
    /// Why it has no address: the latest AllocationFailed Event.
    pub waiting_because: Option<String>,
}

/// One node's BGP session with one BGPPeer (an entry of the peer's status), or a peer no
/// speaker reports on (`entry` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub peer: String,
    pub address: String,
    pub entry: Option<SessionEntry>,
}

/// What one node's speaker says of its session with a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub node: String,
    pub session: String,
    pub bfd: Option<String>,
    /// When `session` last changed (RFC 3339).
    pub since: Option<String>,
    pub message: Option<String>,
}

/// The ConfigurationState of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub component: String,
    pub result: String,
    pub errors: String,
}

pub fn render(
    namespace: &str,
    pools: &[PoolRow],
    states: &[StateRow],
    services: &[ServiceRow],
    sessions: &[SessionRow],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Configuration ({namespace}):");
    if states.is_empty() {
        let _ = writeln!(
            out,
            "  no ConfigurationState yet: is a controller running with --namespace {namespace}?"
        );
    }
    for state in states {
        let _ = writeln!(out, "  {}: {}", state.component, state.result);
        for line in state.errors.lines().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out);
    let pool_rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}/{}", p.assigned_ipv4, p.assigned_ipv4 + p.available_ipv4),
                format!("{}/{}", p.assigned_ipv6, p.assigned_ipv6 + p.available_ipv6),
            ]
        })
        .collect();
    if pool_rows.is_empty() {
        let _ = writeln!(out, "No IPAddressPool in {namespace}.");
    } else {
        table(
            &mut out,
            &["POOL", "IPV4 IN USE/TOTAL", "IPV6 IN USE/TOTAL"],
            &pool_rows,
        );
    }
    let _ = writeln!(out);
    let service_rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let address = if s.addresses.is_empty() {
                "<pending>".to_string()
            } else {
                s.addresses.join(",")
            };
            vec![
                format!("{}/{}", s.namespace, s.name),
                address,
                s.pool.clone().unwrap_or_else(|| "-".into()),
                if s.announced_by.is_empty() {
                    "-".into()
                } else {
                    s.announced_by.join(", ")
                },
                s.class.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if service_rows.is_empty() {
        let _ = writeln!(out, "No Service of type LoadBalancer.");
    } else {
        table(
            &mut out,
            &["SERVICE", "EXTERNAL-IP", "POOL", "ANNOUNCED BY", "CLASS"],
            &service_rows,
        );
    }
    if !sessions.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<Vec<String>> = sessions
            .iter()
            .map(|s| {
                let mut row = vec![s.peer.clone(), s.address.clone()];
                match &s.entry {
                    None => row.extend(
                        ["-", "no speaker peers (no node selected?)", "-", "-", ""]
                            .map(String::from),
                    ),
                    Some(e) => row.extend([
                        e.node.clone(),
                        e.session.clone(),
                        e.bfd.clone().unwrap_or_else(|| "-".into()),
                        e.since.clone().unwrap_or_else(|| "-".into()),
                        e.message.clone().unwrap_or_default(),
                    ]),
                }
                row
            })
            .collect();
        table(
            &mut out,
            &[
                "BGP PEER", "ADDRESS", "NODE", "SESSION", "BFD", "SINCE", "MESSAGE",
            ],
            &rows,
        );
    }
    let waiting: Vec<&ServiceRow> = services
        .iter()
        .filter(|s| s.addresses.is_empty() && s.waiting_because.is_some())
        .collect();
    if !waiting.is_empty() {
        let _ = writeln!(out, "\nPending:");
        for s in waiting {
            let _ = writeln!(
                out,
                "  {}/{}: {}",
                s.namespace,
                s.name,
                s.waiting_because.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:width$}  ");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, header.to_vec());
    for row in rows {
        line(out, row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_service_says_why_and_pools_show_totals() {
        let text = render(
            "metallb-system",
            &[PoolRow {
                name: "lan".into(),
                assigned_ipv4: 2,
                available_ipv4: 9,
                assigned_ipv6: 0,
                available_ipv6: 17,
            }],
            &[StateRow {
                component: "controller".into(),
                result: "Invalid".into(),
                errors: "IPAddressPool bad: spec.addresses: not a CIDR".into(),
            }],
            &[
                ServiceRow {
                    namespace: "shop".into(),
                    name: "web".into(),
                    class: None,
                    addresses: vec!["198.51.100.200".into()],
                    pool: Some("lan".into()),
                    announced_by: vec!["node-1 (eth0)".into()],
                    waiting_because: None,
                },
                ServiceRow {
                    namespace: "shop".into(),
                    name: "api".into(),
                    class: None,
                    addresses: vec![],
                    pool: None,
                    announced_by: vec![],
                    waiting_because: Some("no pool with a free IPv4 address".into()),
                },
            ],
            &[
                SessionRow {
                    peer: "tor".into(),
                    address: "198.51.100.1".into(),
                    entry: Some(SessionEntry {
                        node: "node-1".into(),
                        session: "Established".into(),
                        bfd: Some("Up".into()),
                        since: Some("2026-12-04T17:06:50Z".into()),
                        message: None,
                    }),
                },
                SessionRow {
                    peer: "edge".into(),
                    address: "198.51.100.2".into(),
                    entry: Some(SessionEntry {
                        node: "node-1".into(),
                        session: "NotPeering".into(),
                        bfd: None,
                        since: None,
                        message: Some("passwordSecret \"pw\" is missing".into()),
                    }),
                },
                SessionRow {
                    peer: "spare".into(),
                    address: "198.51.100.3".into(),
                    entry: None,
                },
            ],
        );
        assert!(
            text.contains("controller: Invalid\n    IPAddressPool bad"),
            "{text}"
        );
        assert!(text.contains("lan   2/11"), "{text}");
        assert!(text.contains("shop/web  198.51.100.200"), "{text}");
        assert!(text.contains("node-1 (eth0)"), "{text}");
        assert!(text.contains("shop/api  <pending>"), "{text}");
        assert!(
            text.contains("tor       198.51.100.1  node-1  Established"),
            "{text}"
        );
        assert!(
            text.contains("NotPeering") && text.contains("passwordSecret \"pw\" is missing"),
            "{text}"
        );
        assert!(text.contains("no speaker peers"), "{text}");
        assert!(
            text.contains("Pending:\n  shop/api: no pool with a free IPv4 address"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_cluster_says_so() {
        let text = render("metallb-system", &[], &[], &[], &[]);
        assert!(text.contains("no ConfigurationState yet"), "{text}");
        assert!(
            text.contains("No IPAddressPool in metallb-system."),
            "{text}"
        );
        assert!(text.contains("No Service of type LoadBalancer."), "{text}");
        assert!(!text.contains("BGP PEER"), "{text}");
    }
}
