//! This node's entries in the BGPPeer status: one per peer that selects the node, saying how
//! its session stands (and its BFD session, and why it is down or missing).
//!
//! Each speaker writes only its own entry, by server-side apply into `status.nodes` (a list
//! keyed by node), under a field manager of its own, so speakers never overwrite each other.
//! The first live speaker by name prunes the entries of nodes that are no longer live, so a
//! node that died does not stay listed as `Established`; a speaker that finds its own entry
//! pruned (it was thought dead for a while) writes it again.
//!
//! [`entries`] and [`ops`] are pure; [`run_writer`] carries the ops out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_api::v1beta2::{BGPPeer, BGPPeerNodeStatus};
use ferrolb_bfd::PeerState;
use ferrolb_bgp::State;
use ferrolb_bgp::speaker::PeerStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// `session` of a node that should peer but cannot (the entry's message says why).
pub const NOT_PEERING: &str = "NotPeering";
/// `bfd` of a guarded session when this speaker could not start BFD at all.
pub const BFD_UNAVAILABLE: &str = "Unavailable";

/// What this node's entry for one peer says, but for the time of the last transition, which
/// the writer stamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub session: String,
    pub bfd: Option<String>,
    pub message: Option<String>,
}

/// What a BGPPeer's status lists, as the speaker's watch last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub resource_version: Option<u64>,
    /// The nodes of `status.nodes`, in list order (their indexes are used to prune).
    pub nodes: Vec<String>,
}

impl Listed {
    pub fn of(peer: &BGPPeer) -> Self {
        Self {
            resource_version: peer
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok()),
            nodes: peer
                .status
                .iter()
                .flat_map(|status| status.nodes.iter().map(|entry| entry.node.clone()))
                .collect(),
        }
    }
}

/// What the run loop knows that the entries depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The sessions this node runs, by peer name, with the address BFD guards, if any.
    pub sessions: BTreeMap<String, Option<IpAddr>>,
    /// The peers that select this node but have no session here, and why.
    pub problems: BTreeMap<String, String>,
    /// Every BGPPeer of the namespace, by name.
    pub listed: BTreeMap<String, Listed>,
    /// The nodes whose speakers are alive (empty while unknown: then nothing is pruned).
    pub live: BTreeSet<String>,
}

/// What an entry takes from a session's [`PeerStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub state: State,
    pub last_error: Option<String>,
    pub not_advertised: Option<String>,
}

impl From<&PeerStatus> for Session {
    fn from(status: &PeerStatus) -> Self {
        Self {
            state: status.state,
            last_error: status.last_error.clone(),
            not_advertised: status.not_advertised.clone(),
        }
    }
}

/// This node's entries, by peer name. `bfd` is `None` when BFD could not be started.
pub fn entries(
    inputs: &Inputs,
    sessions: &BTreeMap<String, Session>,
    bfd: Option<&BTreeMap<IpAddr, PeerState>>,
) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = inputs
        .problems
        .iter()
        .map(|(peer, reason)| {
            (
                peer.clone(),
                Entry {
                    session: NOT_PEERING.into(),
                    bfd: None,
                    message: Some(reason.clone()),
                },
            )
        })
        .collect();
    for (peer, guard) in &inputs.sessions {
        let status = sessions.get(peer);
        let state = status.map_or(State::Idle, |s| s.state);
        let message = status.and_then(|s| {
            if state == State::Established {
                s.not_advertised.clone()
            } else {
                s.last_error.clone()
            }
        });
        let bfd = guard.map(|address| match bfd {
            None => BFD_UNAVAILABLE.to_owned(),
            Some(states) => states
                .get(&address)
                .map_or_else(|| "Down".to_owned(), |state| format!("{:?}", state.state)),
        });
        out.insert(
            peer.clone(),
            Entry {
                session: state.to_string(),
                bfd,
                message,
            },
        );
    }
    out
}

/// What this writer last wrote for a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The entry, or `None` once it was withdrawn.
    pub entry: Option<Entry>,
    /// The BGPPeer's resourceVersion that the write returned.
    pub resource_version: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write this node's entry.
    Apply { peer: String, entry: Entry },
    /// Remove this node's entry.
    Withdraw { peer: String },
    /// Remove the entries of dead nodes: `(index, node)`, highest index first.
    Prune {
        peer: String,
        removals: Vec<(usize, String)>,
    },
}

/// The writes that bring the peers' statuses in line with `wanted`.
///
/// A write the watch has not caught up with yet (the listed resourceVersion is older than the
/// one the write returned) is not judged by what the watch shows: that would write again what
/// was just written, or prune by a list that is out of date.
pub fn ops(
    me: &str,
    wanted: &BTreeMap<String, Entry>,
    written: &BTreeMap<String, Written>,
    listed: &BTreeMap<String, Listed>,
    live: &BTreeSet<String>,
) -> Vec<Op> {
    let caught_up = |peer: &str, seen: &Listed| match written.get(peer) {
        None => true,
        Some(w) => match (seen.resource_version, w.resource_version) {
            (Some(seen), Some(wrote)) => seen >= wrote,
            _ => false,
        },
    };
    let mut out = Vec::new();
    for (peer, entry) in wanted {
        let Some(seen) = listed.get(peer) else {
            continue;
        };
        let mine = written.get(peer).and_then(|w| w.entry.as_ref());
        let pruned = caught_up(peer, seen) && !seen.nodes.iter().any(|n| n == me);
        if mine != Some(entry) || pruned {
            out.push(Op::Apply {
                peer: peer.clone(),
                entry: entry.clone(),
            });
        }
    }
    for (peer, seen) in listed {
        if wanted.contains_key(peer) {
            continue;
        }
        let wrote_entry = written.get(peer).is_some_and(|w| w.entry.is_some());
        let still_listed = caught_up(peer, seen) && seen.nodes.iter().any(|n| n == me);
        if wrote_entry || still_listed {
            out.push(Op::Withdraw { peer: peer.clone() });
        }
    }
    if live.first().is_some_and(|first| first == me) {
        for (peer, seen) in listed {
            if !caught_up(peer, seen) {
                continue;
            }
            let mut removals: Vec<(usize, String)> = seen
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, node)| *node != me && !live.contains(*node))
                .map(|(index, node)| (index, node.clone()))
                .collect();
            if !removals.is_empty() {
                removals.reverse();
                out.push(Op::Prune {
                    peer: peer.clone(),
                    removals,
                });
            }
        }
    }
    out
}

/// The field manager of what `node`'s speaker applies: its BGPPeer status entries and its
/// ConfigurationState.
pub fn field_manager(node: &str) -> String {
    format!("ferrolb-speaker/{node}")
}

/// Keeps this node's BGPPeer status entries current until the process ends.
pub async fn run_writer(
    client: Client,
    namespace: String,
    node: String,
    mut inputs: watch::Receiver<Inputs>,
    mut sessions: watch::Receiver<BTreeMap<String, PeerStatus>>,
    mut bfd: Option<watch::Receiver<BTreeMap<IpAddr, PeerState>>>,
) {
    let api: Api<BGPPeer> = Api::namespaced(client, &namespace);
    let params = PatchParams::apply(&field_manager(&node)).force();
    let mut written: BTreeMap<String, Written> = BTreeMap::new();
    // Per peer, the session state last written and since when.
    let mut transitions: BTreeMap<String, (String, Time)> = BTreeMap::new();
    loop {
        let current = inputs.borrow_and_update().clone();
        let states: BTreeMap<String, Session> = sessions
            .borrow_and_update()
            .iter()
            .map(|(peer, status)| (peer.clone(), Session::from(status)))
            .collect();
        let wanted = entries(
            &current,
            &states,
            bfd.as_mut().map(|b| b.borrow_and_update().clone()).as_ref(),
        );
        // Peers that are gone: nothing to write to, nothing to remember.
        written.retain(|peer, _| current.listed.contains_key(peer));
        transitions.retain(|peer, _| current.listed.contains_key(peer));
        let mut failed = false;
        for op in ops(&node, &wanted, &written, &current.listed, &current.live) {
            let outcome = match &op {
                Op::Apply { peer, entry } => {
                    let since = match transitions.get(peer) {
                        Some((session, since)) if *session == entry.session => since.clone(),
                        _ => Time(k8s_openapi::jiff::Timestamp::now()),
                    };
                    let status = BGPPeerNodeStatus {
                        node: node.clone(),
                        session: entry.session.clone(),
                        bfd: entry.bfd.clone(),
                        last_transition_time: Some(since.clone()),
                        message: entry.message.clone(),
                    };
                    let outcome = write_entry(&api, &params, peer, status).await;
                    if outcome.is_ok() {
                        transitions.insert(peer.clone(), (entry.session.clone(), since));
                    }
                    outcome
                }
                Op::Withdraw { peer } => withdraw(&api, &params, peer).await,
                Op::Prune { peer, removals } => prune(&api, peer, removals).await,
            };
            match (outcome, op) {
                (Ok(resource_version), Op::Apply { peer, entry }) => {
                    written.insert(
                        peer,
                        Written {
                            entry: Some(entry),
                            resource_version,
                        },
                    );
                }
                (Ok(resource_version), Op::Withdraw { peer }) => {
                    transitions.remove(&peer);
                    written.insert(
                        peer,
                        Written {
                            entry: None,
                            resource_version,
                        },
                    );
                }
                (Ok(_), Op::Prune { .. }) => {}
                // Deleted meanwhile: the next round's listing drops it.
                (Err(kube::Error::Api(status)), _) if status.code == 404 => {}
                // A prune whose test failed: the list changed; the watch brings the new one.
                (Err(kube::Error::Api(status)), Op::Prune { .. }) if status.code == 422 => {}
                (Err(error), op) => {
                    tracing::warn!(?op, %error, "writing the BGPPeer status failed; retrying in 1 s");
                    failed = true;
                    break;
                }
            }
        }
        // At most a few rounds a second, however often sessions flap.
        tokio::time::sleep(Duration::from_millis(if failed { 1000 } else { 200 })).await;
        if failed {
            continue;
        }
        let bfd_changed = async {
            match bfd.as_mut() {
                Some(b) => b.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = inputs.changed() => if changed.is_err() { return },
            changed = sessions.changed() => if changed.is_err() { return },
            changed = bfd_changed => if changed.is_err() { bfd = None },
        }
    }
}

/// The BGPPeer's resourceVersion after a write.
fn resource_version(peer: &BGPPeer) -> Option<u64> {
    peer.resource_version().and_then(|v| v.parse().ok())
}

/// Writes this node's entry (server-side apply under the node's own field manager).
async fn write_entry(
    api: &Api<BGPPeer>,
    params: &PatchParams,
    peer: &str,
    status: BGPPeerNodeStatus,
) -> kube::Result<Option<u64>> {
    let body = serde_json::json!({
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": { "name": peer },
        "status": { "nodes": [status] },
    });
    let written = api.patch_status(peer, params, &Patch::Apply(&body)).await?;
    Ok(resource_version(&written))
}

/// Removes this node's entry: applying without it drops what the node's field manager owned.
async fn withdraw(
    api: &Api<BGPPeer>,
    params: &PatchParams,
    peer: &str,
) -> kube::Result<Option<u64>> {
    let body = serde_json::json!({
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": { "name": peer },
    });
    let written = api.patch_status(peer, params, &Patch::Apply(&body)).await?;
    Ok(resource_version(&written))
}

/// Removes other nodes' entries by index, each guarded by a test of the node's name, so a list
/// that changed meanwhile fails the whole patch instead of losing a live node's entry.
async fn prune(
    api: &Api<BGPPeer>,
    peer: &str,
    removals: &[(usize, String)],
) -> kube::Result<Option<u64>> {
    let mut patch = Vec::new();
    for (index, dead) in removals {
        tracing::info!(%peer, node = %dead, "removing a dead node's BGPPeer status entry");
        patch.push(serde_json::json!({
            "op": "test", "path": format!("/status/nodes/{index}/node"), "value": dead,
        }));
        patch.push(serde_json::json!({ "op": "remove", "path": format!("/status/nodes/{index}") }));
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(patch)).map_err(kube::Error::SerdeError)?;
    let written = api
        .patch_status(peer, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(resource_version(&written))
}

/// Removes this node's entry from every peer in `peers`: on a graceful stop, the node peers
/// with nobody.
pub async fn withdraw_all(
    client: Client,
    namespace: &str,
    node: &str,
    peers: impl IntoIterator<Item = String>,
) {
    let api: Api<BGPPeer> = Api::namespaced(client, namespace);
    let params = PatchParams::apply(&field_manager(node)).force();
    for peer in peers {
        match withdraw(&api, &params, &peer).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                tracing::warn!(%peer, %error, "could not remove this node's BGPPeer status entry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session: &str) -> Entry {
        Entry {
            session: session.into(),
            bfd: None,
            message: None,
        }
    }

    fn listed(rv: u64, nodes: &[&str]) -> Listed {
        Listed {
            resource_version: Some(rv),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    fn written(session: Option<&str>, rv: u64) -> Written {
        Written {
            entry: session.map(entry),
            resource_version: Some(rv),
        }
    }

    #[test]
    fn entries_say_the_session_state_bfd_and_why_a_peer_is_not_served() {
        let guarded: IpAddr = "198.51.100.1".parse().expect("address");
        let inputs = Inputs {
            sessions: BTreeMap::from([
                ("up".to_owned(), Some(guarded)),
                ("down".to_owned(), None),
                ("new".to_owned(), None),
            ]),
            problems: BTreeMap::from([("secretless".to_owned(), "no Secret".to_owned())]),
            ..Inputs::default()
        };
        let up = Session {
            state: State::Established,
            last_error: Some("an old error".into()),
            not_advertised: None,
        };
        let down = Session {
            state: State::Active,
            last_error: Some("connection refused".into()),
            not_advertised: None,
        };
        let sessions = BTreeMap::from([("up".to_owned(), up), ("down".to_owned(), down)]);

        let out = entries(&inputs, &sessions, Some(&BTreeMap::new()));
        assert_eq!(
            out,
            BTreeMap::from([
                (
                    "down".to_owned(),
                    Entry {
                        session: "Active".into(),
                        bfd: None,
                        message: Some("connection refused".into()),
                    }
                ),
                ("new".to_owned(), entry("Idle")),
                (
                    "secretless".to_owned(),
                    Entry {
                        session: NOT_PEERING.into(),
                        bfd: None,
                        message: Some("no Secret".into()),
                    }
                ),
                (
                    "up".to_owned(),
                    Entry {
                        session: "Established".into(),
                        // No BFD state yet: a BFD session starts Down (RFC 5880 §6.2).
                        bfd: Some("Down".into()),
                        message: None,
                    }
                ),
            ])
        );
        let without_bfd = entries(&inputs, &sessions, None);
        assert_eq!(without_bfd["up"].bfd.as_deref(), Some(BFD_UNAVAILABLE));
    }

    #[test]
    fn a_changed_entry_is_written_and_an_unchanged_one_is_not() {
        let wanted = BTreeMap::from([
            ("a".to_owned(), entry("Established")),
            ("b".to_owned(), entry("Active")),
        ]);
        let done = BTreeMap::from([
            ("a".to_owned(), written(Some("Established"), 10)),
            ("b".to_owned(), written(Some("Connect"), 11)),
        ]);
        let seen = BTreeMap::from([
            ("a".to_owned(), listed(10, &["node-1"])),
            ("b".to_owned(), listed(11, &["node-1"])),
        ]);
        assert_eq!(
            ops("node-1", &wanted, &done, &seen, &BTreeSet::new()),
            vec![Op::Apply {
                peer: "b".into(),
                entry: entry("Active")
            }]
        );
    }

    #[test]
    fn an_entry_pruned_by_another_node_is_written_again_once_the_watch_shows_it() {
        let wanted = BTreeMap::from([("a".to_owned(), entry("Established"))]);
        let done = BTreeMap::from([("a".to_owned(), written(Some("Established"), 10))]);
        // The watch has not yet seen our write: no judgement.
        let behind = BTreeMap::from([("a".to_owned(), listed(9, &[]))]);
        assert_eq!(
            ops("node-1", &wanted, &done, &behind, &BTreeSet::new()),
            vec![]
        );
        // A newer version without us: someone pruned it.
        let pruned = BTreeMap::from([("a".to_owned(), listed(12, &["node-2"]))]);
        assert_eq!(
            ops("node-1", &wanted, &done, &pruned, &BTreeSet::new()),
            vec![Op::Apply {
                peer: "a".into(),
                entry: entry("Established")
            }]
        );
    }

    #[test]
    fn a_peer_that_no_longer_selects_the_node_loses_its_entry_also_after_a_restart() {
        let wanted = BTreeMap::new();
        // Written by this run.
        let done = BTreeMap::from([("a".to_owned(), written(Some("Established"), 10))]);
        let seen = BTreeMap::from([
            ("a".to_owned(), listed(10, &["node-1"])),
            // Written before a restart: this run wrote nothing, but the list names us.
            ("b".to_owned(), listed(7, &["node-2", "node-1"])),
            ("c".to_owned(), listed(8, &["node-2"])),
        ]);
        assert_eq!(
            ops("node-1", &wanted, &done, &seen, &BTreeSet::new()),
            vec![
                Op::Withdraw { peer: "a".into() },
                Op::Withdraw { peer: "b".into() }
            ]
        );
        // Once withdrawn and seen gone, nothing more.
        let done = BTreeMap::from([
            ("a".to_owned(), written(None, 12)),
            ("b".to_owned(), written(None, 13)),
        ]);
        let seen = BTreeMap::from([
            ("a".to_owned(), listed(12, &[])),
            ("b".to_owned(), listed(13, &["node-2"])),
        ]);
        assert_eq!(
            ops("node-1", &wanted, &done, &seen, &BTreeSet::new()),
            vec![]
        );
    }

    #[test]
    fn only_the_first_live_node_prunes_and_only_dead_nodes() {
        let seen = BTreeMap::from([(
            "a".to_owned(),
            listed(20, &["node-1", "node-3", "node-2", "node-4"]),
        )]);
        let live = names(&["node-1", "node-2"]);
        let wanted = BTreeMap::from([("a".to_owned(), entry("Established"))]);
        let done = BTreeMap::from([("a".to_owned(), written(Some("Established"), 19))]);
        assert_eq!(
            ops("node-1", &wanted, &done, &seen, &live),
            vec![Op::Prune {
                peer: "a".into(),
                removals: vec![(3, "node-4".into()), (1, "node-3".into())],
            }]
        );
        // node-1 wrote last: the watch showing its own write has caught up.
        let last_writer = BTreeMap::from([("a".to_owned(), written(Some("Established"), 20))]);
        assert_eq!(
            ops("node-1", &wanted, &last_writer, &seen, &live).len(),
            1,
            "prunes after its own write"
        );
        // node-2 is live too, but not the first: it leaves pruning to node-1.
        let done2 = BTreeMap::from([("a".to_owned(), written(Some("Established"), 18))]);
        assert_eq!(ops("node-2", &wanted, &done2, &seen, &live), vec![]);
        // Membership not known yet: nobody prunes.
        assert_eq!(
            ops("node-1", &wanted, &done, &seen, &BTreeSet::new()),
            vec![]
        );
    }
}
