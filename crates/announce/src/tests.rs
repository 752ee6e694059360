//! One test per rule, on small hand-made clusters, plus the MetalLB compatibility vectors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::l2::L2Advertisement;
use ferrolb_labels::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::*;

pub(crate) fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

pub(crate) fn selector(pairs: &[(&str, &str)]) -> Selector {
    let labels: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Selector::from_k8s(&LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    })
    .expect("test selector")
}

/// An advertisement of `pools` from every node, for every Service, on every interface.
pub(crate) fn advertisement(name: &str, pools: &[&str]) -> L2Advertisement {
    L2Advertisement {
        name: name.to_string(),
        pools: pools.iter().map(|p| p.to_string()).collect(),
        service_selectors: Vec::new(),
        node_selectors: Vec::new(),
        preferred_nodes: Vec::new(),
        interfaces: Vec::new(),
    }
}

/// A Cluster-policy Service with one ready endpoint on `node-a` and these addresses from "lan".
pub(crate) fn service(name: &str, ips: &[&str]) -> Service {
    let mut service = Service::new("default", name);
    service.ips = ips.iter().map(|i| ServiceIp::new(ip(i), "lan")).collect();
    service.endpoints = vec![Endpoint::ready_on("node-a")];
    service
}

fn nodes(names: &[&str]) -> Vec<Node> {
    names.iter().map(|n| Node::new(*n)).collect()
}

fn all_live(nodes: &[Node]) -> Speakers {
    Speakers::live(nodes.iter().map(|n| n.name.clone()))
}

fn plan(services: &[Service], nodes: &[Node], advs: &[L2Advertisement]) -> L2Plan {
    desired_l2(services, nodes, advs, &all_live(nodes), &Options::default())
}

fn only_reason(plan: &L2Plan) -> &Reason {
    assert!(plan.announcements.is_empty(), "{:#?}", plan.announcements);
    assert_eq!(plan.withheld.len(), 1, "{:#?}", plan.withheld);
    &plan.withheld[0].reason
}

fn only_node(plan: &L2Plan) -> &str {
    assert!(plan.withheld.is_empty(), "{:#?}", plan.withheld);
    assert_eq!(plan.announcements.len(), 1, "{:#?}", plan.announcements);
    &plan.announcements[0].node
}

const V4: &str = "198.51.100.200";
const V6: &str = "2001:db8:100::200";

// --- MetalLB's election key --------------------------------------------------------------

/// Made with Go 1.26: `net.ParseIP(s).String()` and
/// `sha256.Sum256([]byte(node + "#" + net.ParseIP(s).String()))`.
#[test]
fn the_key_is_metallbs_byte_for_byte() {
    let vectors = [
        (
            "node-a",
            V4,
            "875f5ff20cc1a052c883e18104c467116fae44c059a025e0f7fb6f95ce176857",
        ),
        (
            "node-a",
            V6,
            "5f657d2fffdc6682c414eb6d896ecd1cb799d3e966cc799c4d25c74594493d99",
        ),
        (
            "node-b",
            V4,
            "47ef6f64a3c6bb26a0f964f325b643a1cc54a4276628a3c7c3076b126317c573",
        ),
        (
            "node-b",
            V6,
            "18b48b55c97c11db8da5a0f33ec744ba129e6556e883ee05016efabfda6f40b0",
        ),
        (
            "node-c",
            V4,
            "ef21fc11e4de571c1404f4e5a16ea06908df6356a6a0937f3bc45333033ee156",
        ),
        (
            "node-c",
            V6,
            "94b07f6d81c108c3059673f664f30137cb5434e377e0a08866f2e8f18b528034",
        ),
    ];
    for (node, address, hex) in vectors {
        let key: String = rank_key(node, ip(address))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key, hex, "{node}#{address}");
    }
    // MetalLB sorts ascending and the first wins: node-b for both.
    let candidates = ["node-c", "node-a", "node-b"];
    assert_eq!(elect(ip(V4), candidates), Some("node-b"));
    assert_eq!(elect(ip(V6), candidates), Some("node-b"));
    assert_eq!(elect(ip(V4), []), None);
}

/// Go's `net.IP.String()` for the same inputs (see above).
#[test]
fn addresses_are_written_as_go_writes_them() {
    for (input, go) in [
        ("198.51.100.200", "198.51.100.200"),
        ("2001:db8:100::200", "2001:db8:100::200"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::198.51.100.7", "::c633:6407"),
        ("2001:DB8::A", "2001:db8::a"),
        ("fe80::1:0:0:0", "fe80::1:0:0:0"),
        ("::", "::"),
        ("::1", "::1"),
    ] {
        assert_eq!(metallb_ip_string(ip(input)), go, "{input}");
    }
}

#[test]
fn the_winner_is_metallbs_for_the_same_candidates() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let p = plan(
        &[service("web", &[V4])],
        &nodes,
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(only_node(&p), "node-b");
    assert_eq!(p.owner(ip(V4)), Some("node-b"));
    assert_eq!(p.announcements[0].interfaces, Interfaces::All);
}

// --- advertisements ----------------------------------------------------------------------

#[test]
fn a_pool_no_advertisement_covers_is_not_announced() {
    let p = plan(
        &[service("web", &[V4])],
        &nodes(&["node-a"]),
        &[advertisement("other", &["routed"])],
    );
    assert_eq!(
        only_reason(&p),
        &Reason::NoAdvertisement { pool: "lan".into() }
    );
    assert_eq!(only_reason(&p).code(), "noAdvertisement");
}

#[test]
fn service_selectors_pick_the_services_an_advertisement_applies_to() {
    let mut adv = advertisement("web-only", &["lan"]);
    adv.service_selectors = vec![selector(&[("app", "web")])];
    let nodes = nodes(&["node-a"]);

    let p = plan(&[service("db", &[V4])], &nodes, std::slice::from_ref(&adv));
    assert_eq!(
        only_reason(&p),
        &Reason::ServiceNotSelected { pool: "lan".into() }
    );

    let mut web = service("web", &[V4]);
    web.labels.insert("app".into(), "web".into());
    let p = plan(&[web], &nodes, &[adv.clone()]);
    assert_eq!(only_node(&p), "node-a");

    // Another advertisement for every Service makes "db" announced again.
    let p = plan(
        &[service("db", &[V4])],
        &nodes,
        &[adv, advertisement("all", &["lan"])],
    );
    assert_eq!(only_node(&p), "node-a");
}

// --- endpoints ---------------------------------------------------------------------------

#[test]
fn a_service_without_a_serving_endpoint_is_not_announced_even_with_cluster_policy() {
    let mut web = service("web", &[V4]);
    web.endpoints = vec![Endpoint {
        node: Some("node-a".into()),
        ready: Some(false),
        serving: Some(false),
    }];
    let p = plan(
        &[web.clone()],
        &nodes(&["node-a"]),
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(only_reason(&p), &Reason::NoServingEndpoints);

    web.endpoints.clear();
    let p = plan(
        &[web],
        &nodes(&["node-a"]),
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(only_reason(&p), &Reason::NoServingEndpoints);
}

#[test]
fn endpoint_conditions_follow_metallb() {
    let endpoint = |ready, serving| Endpoint {
        node: None,
        ready,
        serving,
    };
    // Ready true or unset: serves.
    assert!(endpoint(Some(true), None).can_serve());
    assert!(endpoint(None, None).can_serve());
    assert!(endpoint(None, Some(false)).can_serve());
    // Not ready but serving (terminating, still serving): serves.
    assert!(endpoint(Some(false), Some(true)).can_serve());
    // Not ready, not serving or serving unknown: does not.
    assert!(!endpoint(Some(false), Some(false)).can_serve());
    assert!(!endpoint(Some(false), None).can_serve());
}

#[test]
fn an_endpoint_without_a_node_keeps_a_cluster_service_announced() {
    let mut web = service("web", &[V4]);
    web.endpoints = vec![Endpoint {
        node: None,
        ready: Some(true),
        serving: None,
    }];
    let p = plan(
        &[web.clone()],
        &nodes(&["node-a"]),
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(only_node(&p), "node-a");

    // ... but puts no node in the running for Local.
    web.traffic_policy = TrafficPolicy::Local;
    let p = plan(
        &[web],
        &nodes(&["node-a"]),
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(
        only_reason(&p),
        &Reason::NoEligibleNode(NodeTally {
            selected: 1,
            no_local_endpoint: 1,
            ..NodeTally::default()
        })
    );
}

#[test]
fn local_policy_announces_only_from_nodes_with_a_serving_endpoint() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let mut web = service("web", &[V4]);
    web.traffic_policy = TrafficPolicy::Local;
    // node-b would win under Cluster; its endpoint does not serve.
    web.endpoints = vec![
        Endpoint {
            node: Some("node-b".into()),
            ready: Some(false),
            serving: Some(false),
        },
        Endpoint::ready_on("node-c"),
    ];
    let p = plan(&[web.clone()], &nodes, &[advertisement("all", &["lan"])]);
    assert_eq!(only_node(&p), "node-c");

    // A terminating endpoint that still serves counts.
    web.endpoints[0].serving = Some(true);
    let p = plan(&[web.clone()], &nodes, &[advertisement("all", &["lan"])]);
    assert_eq!(only_node(&p), "node-b");

    // An endpoint on a node the cluster does not know is not a candidate.
    web.endpoints = vec![Endpoint::ready_on("elsewhere")];
    let p = plan(&[web], &nodes, &[advertisement("all", &["lan"])]);
    assert_eq!(
        only_reason(&p),
        &Reason::NoEligibleNode(NodeTally {
            selected: 3,
            no_local_endpoint: 3,
            ..NodeTally::default()
        })
    );
}

// --- nodes -------------------------------------------------------------------------------

#[test]
fn node_selectors_limit_who_may_announce_and_several_advertisements_add_up() {
    let nodes = vec![
        Node::new("node-a").with_label("rack", "1"),
        Node::new("node-b").with_label("rack", "2"),
        Node::new("node-c").with_label("rack", "3"),
    ];
    let mut rack1 = advertisement("rack1", &["lan"]);
    rack1.node_selectors = vec![selector(&[("rack", "1")])];
    let p = plan(
        &[service("web", &[V4])],
        &nodes,
        std::slice::from_ref(&rack1),
    );
    assert_eq!(only_node(&p), "node-a");

    let mut rack3 = advertisement("rack3", &["lan"]);
    rack3.node_selectors = vec![selector(&[("rack", "3")])];
    // node-c's key is larger than node-a's for V4, so node-a still wins; with node-a gone,
    // node-c (selected by the second advertisement) takes over, never node-b.
    let p = plan(
        &[service("web", &[V4])],
        &nodes,
        &[rack1.clone(), rack3.clone()],
    );
    assert_eq!(only_node(&p), "node-a");
    let p = desired_l2(
        &[service("web", &[V4])],
        &nodes,
        &[rack1, rack3],
        &Speakers::live(["node-b", "node-c"]),
        &Options::default(),
    );
    assert_eq!(only_node(&p), "node-c");
}

#[test]
fn nodes_without_a_live_speaker_do_not_announce() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let p = desired_l2(
        &[service("web", &[V4])],
        &nodes,
        &[advertisement("all", &["lan"])],
        &Speakers::live(["node-a", "node-c", "ghost"]),
        &Options::default(),
    );
    assert_eq!(only_node(&p), "node-a");

    let p = desired_l2(
        &[service("web", &[V4])],
        &nodes,
        &[advertisement("all", &["lan"])],
        &Speakers::live(["ghost"]),
        &Options::default(),
    );
    assert_eq!(
        only_reason(&p),
        &Reason::NoEligibleNode(NodeTally {
            selected: 3,
            not_live: 3,
            ..NodeTally::default()
        })
    );
}

#[test]
fn not_ready_matters_only_without_membership() {
    let mut nodes = nodes(&["node-a", "node-b", "node-c"]);
    nodes[1].ready = false; // node-b, the winner
    let advs = [advertisement("all", &["lan"])];
    let services = [service("web", &[V4])];

    // A live speaker is authoritative, as in MetalLB.
    let p = plan(&services, &nodes, &advs);
    assert_eq!(only_node(&p), "node-b");

    // Without membership, every Ready node is taken to run a speaker.
    let p = desired_l2(
        &services,
        &nodes,
        &advs,
        &Speakers::MembershipDisabled,
        &Options::default(),
    );
    assert_eq!(only_node(&p), "node-a");
}

#[test]
fn network_unavailable_nodes_do_not_announce() {
    let mut nodes = nodes(&["node-a", "node-b"]);
    nodes[1].network_unavailable = true;
    let p = plan(
        &[service("web", &[V4])],
        &nodes,
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(only_node(&p), "node-a");
    nodes[0].network_unavailable = true;
    let p = plan(
        &[service("web", &[V4])],
        &nodes,
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(
        only_reason(&p),
        &Reason::NoEligibleNode(NodeTally {
            selected: 2,
            network_unavailable: 2,
            ..NodeTally::default()
        })
    );
}

#[test]
fn the_exclude_label_takes_a_node_out_whatever_its_value_unless_ignored() {
    let nodes = vec![
        Node::new("node-a"),
        Node::new("node-b").with_label(EXCLUDE_FROM_LOAD_BALANCERS, "false"),
    ];
    let services = [service("web", &[V4])];
    let advs = [advertisement("all", &["lan"])];
    let p = plan(&services, &nodes, &advs);
    assert_eq!(only_node(&p), "node-a");

    let p = desired_l2(
        &services,
        &nodes,
        &advs,
        &all_live(&nodes),
        &Options {
            ignore_exclude_lb: true,
        },
    );
    assert_eq!(only_node(&p), "node-b");
}

#[test]
fn the_tally_counts_each_node_by_the_first_rule_it_fails() {
    let mut nodes = vec![
        Node::new("dead"),
        Node::new("cut-off"),
        Node::new("excluded").with_label(EXCLUDE_FROM_LOAD_BALANCERS, ""),
        Node::new("no-backend"),
        Node::new("other-rack").with_label("rack", "2"),
    ];
    nodes[1].network_unavailable = true;
    for node in &mut nodes[..4] {
        node.labels.insert("rack".into(), "1".into());
    }
    let mut adv = advertisement("rack1", &["lan"]);
    adv.node_selectors = vec![selector(&[("rack", "1")])];
    let mut web = service("web", &[V4]);
    web.traffic_policy = TrafficPolicy::Local;
    web.endpoints = vec![Endpoint::ready_on("other-rack")];
    let p = desired_l2(
        &[web],
        &nodes,
        &[adv],
        &Speakers::live(["cut-off", "excluded", "no-backend", "other-rack"]),
        &Options::default(),
    );
    let reason = only_reason(&p);
    assert_eq!(
        reason,
        &Reason::NoEligibleNode(NodeTally {
            selected: 4,
            not_live: 1,
            network_unavailable: 1,
            excluded: 1,
            no_local_endpoint: 1,
        })
    );
    assert_eq!(
        reason.to_string(),
        "no node can announce it: of 4 selected nodes, 1 without a live speaker; \
         1 with NetworkUnavailable; 1 excluded from load balancers; 1 without a local endpoint"
    );
}

#[test]
fn selectors_that_match_no_node_are_reported_as_such() {
    let mut adv = advertisement("nowhere", &["lan"]);
    adv.node_selectors = vec![selector(&[("rack", "9")])];
    let p = plan(&[service("web", &[V4])], &nodes(&["node-a"]), &[adv]);
    let reason = only_reason(&p);
    assert_eq!(reason, &Reason::NoEligibleNode(NodeTally::default()));
    assert!(
        reason.to_string().contains("select no known node"),
        "{reason}"
    );
}

// --- preferences -------------------------------------------------------------------------

#[test]
fn a_preferred_node_wins_and_weights_add_up() {
    let nodes = vec![
        Node::new("node-a").with_label("zone", "primary"),
        Node::new("node-b"),
        Node::new("node-c")
            .with_label("role", "edge")
            .with_label("zone", "primary"),
    ];
    let services = [service("web", &[V4])];
    let mut adv = advertisement("prefer", &["lan"]);
    adv.preferred_nodes = vec![(selector(&[("zone", "primary")]), 60)];
    // node-a and node-c tie at 60: the hash decides between them (node-a), not node-b.
    let p = plan(&services, &nodes, std::slice::from_ref(&adv));
    assert_eq!(only_node(&p), "node-a");

    adv.preferred_nodes
        .push((selector(&[("role", "edge")]), 50));
    let p = plan(&services, &nodes, std::slice::from_ref(&adv));
    assert_eq!(only_node(&p), "node-c"); // 110 against 60

    // A preferred node that cannot announce leaves the next best.
    let p = desired_l2(
        &services,
        &nodes,
        &[adv],
        &Speakers::live(["node-a", "node-b"]),
        &Options::default(),
    );
    assert_eq!(only_node(&p), "node-a");
}

#[test]
fn preferences_score_only_nodes_their_advertisement_selects() {
    let nodes = vec![
        Node::new("node-a").with_label("rack", "1"),
        Node::new("node-b").with_label("rack", "2"),
        Node::new("node-c").with_label("rack", "1"),
    ];
    // "rack2" announces from node-b only and prefers rack-1 nodes, which it does not select:
    // the preference scores nobody, and the hash winner (node-b) stays. Were it to leak onto
    // the nodes "rack1" selects, node-a would win.
    let mut rack2 = advertisement("rack2", &["lan"]);
    rack2.node_selectors = vec![selector(&[("rack", "2")])];
    rack2.preferred_nodes = vec![(selector(&[("rack", "1")]), 100)];
    let mut rack1 = advertisement("rack1", &["lan"]);
    rack1.node_selectors = vec![selector(&[("rack", "1")])];
    let p = plan(&[service("web", &[V4])], &nodes, &[rack1, rack2.clone()]);
    assert_eq!(only_node(&p), "node-b");

    // Selecting node-b, the same preference makes it win against the hash order.
    rack2.preferred_nodes = vec![(selector(&[("rack", "2")]), 1)];
    let mut all = advertisement("all", &["lan"]);
    all.preferred_nodes = vec![(selector(&[("rack", "1")]), 2)];
    let p = plan(&[service("web", &[V4])], &nodes, &[rack2, all]);
    assert_eq!(only_node(&p), "node-a"); // 2 against node-b's 1 + 0
}

#[test]
fn preferences_of_advertisements_that_do_not_apply_are_ignored() {
    let nodes = vec![
        Node::new("node-a"),
        Node::new("node-b"),
        Node::new("node-c").with_label("fast", "yes"),
    ];
    let mut other_pool = advertisement("other", &["routed"]);
    other_pool.preferred_nodes = vec![(selector(&[("fast", "yes")]), 100)];
    let mut other_service = advertisement("db", &["lan"]);
    other_service.service_selectors = vec![selector(&[("app", "db")])];
    other_service.preferred_nodes = vec![(selector(&[("fast", "yes")]), 100)];
    let advs = [other_pool, other_service, advertisement("all", &["lan"])];
    let p = plan(&[service("web", &[V4])], &nodes, &advs);
    assert_eq!(only_node(&p), "node-b"); // the plain hash winner

    let mut db = service("db", &[V4]);
    db.labels.insert("app".into(), "db".into());
    let p = plan(&[db], &nodes, &advs);
    assert_eq!(only_node(&p), "node-c");
}

// --- interfaces --------------------------------------------------------------------------

#[test]
fn interfaces_are_the_union_of_the_advertisements_that_select_the_winner() {
    let nodes = vec![
        Node::new("node-a").with_label("rack", "1"),
        Node::new("node-b").with_label("rack", "2"),
    ];
    let mut eth1 = advertisement("eth1", &["lan"]);
    eth1.interfaces = vec!["eth1".into()];
    let mut eth2 = advertisement("eth2", &["lan"]);
    eth2.interfaces = vec!["eth2".into(), "eth1".into()];
    let mut rack2_eth3 = advertisement("rack2-eth3", &["lan"]);
    rack2_eth3.interfaces = vec!["eth3".into()];
    rack2_eth3.node_selectors = vec![selector(&[("rack", "2")])];
    let mut web = service("web", &[V4]);
    web.traffic_policy = TrafficPolicy::Local;
    web.endpoints = vec![Endpoint::ready_on("node-a")];

    let p = plan(
        &[web.clone()],
        &nodes,
        &[eth1.clone(), eth2.clone(), rack2_eth3.clone()],
    );
    assert_eq!(only_node(&p), "node-a");
    assert_eq!(
        p.announcements[0].interfaces,
        Interfaces::Only(["eth1".to_string(), "eth2".to_string()].into())
    );

    // On node-b the rack-2 advertisement adds eth3.
    web.endpoints = vec![Endpoint::ready_on("node-b")];
    let p = plan(&[web.clone()], &nodes, &[eth1.clone(), eth2, rack2_eth3]);
    assert_eq!(
        p.announcements[0].interfaces,
        Interfaces::Only(["eth1", "eth2", "eth3"].map(String::from).into())
    );

    // An applying advertisement without interfaces means all of them.
    let p = plan(&[web], &nodes, &[eth1, advertisement("all", &["lan"])]);
    assert_eq!(p.announcements[0].interfaces, Interfaces::All);
}

// --- several addresses, shared addresses -------------------------------------------------

#[test]
fn each_address_of_a_dual_stack_service_is_elected_on_its_own() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let web = service("web", &[V4, V6]);
    let p = plan(&[web], &nodes, &[advertisement("all", &["lan"])]);
    assert!(p.withheld.is_empty());
    let winners: Vec<_> = p
        .announcements
        .iter()
        .map(|a| (a.ip, a.node.as_str()))
        .collect();
    assert_eq!(
        winners,
        [
            (
                ip(V4),
                elect(ip(V4), ["node-a", "node-b", "node-c"]).unwrap_or_default()
            ),
            (
                ip(V6),
                elect(ip(V6), ["node-a", "node-b", "node-c"]).unwrap_or_default()
            ),
        ]
    );
}

#[test]
fn services_sharing_an_address_agree_on_one_node() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let mut tcp = service("dns-tcp", &[V4]);
    let mut udp = service("dns-udp", &[V4]);
    let mut eth1 = advertisement("eth1", &["lan"]);
    eth1.interfaces = vec!["eth1".into()];
    eth1.service_selectors = vec![selector(&[("proto", "tcp")])];
    let mut eth2 = advertisement("eth2", &["lan"]);
    eth2.interfaces = vec!["eth2".into()];
    eth2.service_selectors = vec![selector(&[("proto", "udp")])];
    tcp.labels.insert("proto".into(), "tcp".into());
    udp.labels.insert("proto".into(), "udp".into());

    let p = plan(&[udp.clone(), tcp.clone()], &nodes, &[eth1, eth2]);
    assert!(p.withheld.is_empty(), "{:#?}", p.withheld);
    let owners: BTreeSet<_> = p.announcements.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(owners.len(), 1);
    let owner = p.owner(ip(V4)).unwrap_or_default().to_string();
    // The responder answers once, on both Services' interfaces.
    assert_eq!(
        p.ips_for(&owner),
        BTreeMap::from([(
            ip(V4),
            Interfaces::Only(["eth1", "eth2"].map(String::from).into())
        )])
    );
    assert!(p.ips_for("nobody").is_empty());
}

#[test]
fn a_shared_address_goes_where_most_of_its_services_can_be_served() {
    let nodes = nodes(&["node-a", "node-b", "node-c"]);
    let local = |name: &str, on: &[&str]| {
        let mut s = service(name, &[V4]);
        s.traffic_policy = TrafficPolicy::Local;
        s.endpoints = on.iter().map(|n| Endpoint::ready_on(*n)).collect();
        s
    };
    let advs = [advertisement("all", &["lan"])];

    // node-b would win on the hash, but only node-c serves both.
    let p = plan(
        &[
            local("one", &["node-b", "node-c"]),
            local("two", &["node-c"]),
        ],
        &nodes,
        &advs,
    );
    assert!(p.withheld.is_empty());
    assert!(p.announcements.iter().all(|a| a.node == "node-c"));

    // No node serves all three: the one serving two wins, the third Service is told why.
    let p = plan(
        &[
            local("one", &["node-b", "node-c"]),
            local("two", &["node-c"]),
            local("three", &["node-a"]),
        ],
        &nodes,
        &advs,
    );
    assert_eq!(p.announcements.len(), 2);
    assert!(p.announcements.iter().all(|a| a.node == "node-c"));
    assert_eq!(
        p.withheld,
        [Withheld {
            service: ServiceKey::new("default", "three"),
            ip: ip(V4),
            reason: Reason::SharedIpOnIneligibleNode {
                node: "node-c".into()
            },
        }]
    );
    assert_eq!(p.withheld[0].reason.code(), "sharedIpOnIneligibleNode");
}

#[test]
fn a_shared_address_is_announced_for_the_services_that_qualify() {
    let nodes = nodes(&["node-a", "node-b"]);
    let mut orphan = service("orphan", &[V4]);
    orphan.endpoints.clear();
    let p = plan(
        &[service("web", &[V4]), orphan],
        &nodes,
        &[advertisement("all", &["lan"])],
    );
    assert_eq!(p.announcements.len(), 1);
    assert_eq!(p.withheld.len(), 1);
    assert_eq!(p.withheld[0].reason, Reason::NoServingEndpoints);
}

// --- input hygiene -----------------------------------------------------------------------

#[test]
fn duplicates_in_the_input_count_once() {
    let nodes = vec![
        Node::new("node-b"),
        Node::new("node-a"),
        Node::new("node-b"),
    ];
    let mut web = service("web", &[V4, V4]);
    web.ips.push(ServiceIp::new(ip(V4), "zzz"));
    let p = plan(
        &[web.clone(), web],
        &nodes,
        &[
            advertisement("all", &["lan"]),
            advertisement("all", &["lan"]),
        ],
    );
    assert_eq!(only_node(&p), "node-b");
}

#[test]
fn nothing_in_nothing_out() {
    let p = plan(&[], &[], &[]);
    assert_eq!(p, L2Plan::default());
    let p = plan(&[service("web", &[])], &nodes(&["node-a"]), &[]);
    assert_eq!(p, L2Plan::default());
}

#[test]
fn interfaces_union_absorbs_into_all() {
    let only = |names: &[&str]| Interfaces::Only(names.iter().map(|n| n.to_string()).collect());
    assert_eq!(only(&["a"]).union(only(&["b"])), only(&["a", "b"]));
    assert_eq!(only(&["a"]).union(Interfaces::All), Interfaces::All);
    assert_eq!(Interfaces::All.union(only(&["a"])), Interfaces::All);
}

#[test]
fn reasons_read_well() {
    assert_eq!(
        Reason::NoAdvertisement { pool: "lan".into() }.to_string(),
        "no L2Advertisement announces pool \"lan\""
    );
    assert_eq!(
        Reason::NoServingEndpoints.to_string(),
        "the Service has no endpoint that can serve"
    );
    assert!(
        Reason::ServiceNotSelected { pool: "lan".into() }
            .to_string()
            .contains("serviceSelectors")
    );
    assert!(
        Reason::SharedIpOnIneligibleNode {
            node: "node-c".into()
        }
        .to_string()
        .contains("\"node-c\"")
    );
}
