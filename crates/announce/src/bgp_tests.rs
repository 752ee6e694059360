//! One test per BGP rule, on one hand-made node with a few peers.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_config::bgp::BgpAdvertisement;
use ferrolb_config::community::Community;
use ferrolb_config::peers::{Peer, PeerAsn, PeerEndpoint};
use ipnet::IpNet;

use crate::tests::{ip, selector, service};
use crate::*;

const MY_ASN: u32 = 64500;

pub(crate) fn net(text: &str) -> IpNet {
    text.parse().expect("test prefix")
}

/// An advertisement of `pools` from every node, for every Service, to every peer, one host
/// route per address and no attributes.
pub(crate) fn bgp_advertisement(name: &str, pools: &[&str]) -> BgpAdvertisement {
    BgpAdvertisement {
        name: name.to_string(),
        pools: pools.iter().map(|p| p.to_string()).collect(),
        aggregation_length: 32,
        aggregation_length_v6: 128,
        local_pref: None,
        communities: BTreeSet::new(),
        service_selectors: Vec::new(),
        node_selectors: Vec::new(),
        peers: BTreeSet::new(),
    }
}

/// A peer of every node, with our AS [`MY_ASN`].
pub(crate) fn peer(name: &str, asn: PeerAsn) -> Peer {
    Peer {
        name: name.to_string(),
        my_asn: MY_ASN,
        peer_asn: asn,
        local_asn: None,
        endpoint: PeerEndpoint::Address(ip("198.51.100.1")),
        port: 179,
        source_address: None,
        hold_time: None,
        keepalive_time: None,
        connect_time: None,
        router_id: None,
        node_selectors: Vec::new(),
        password: None,
        bfd_profile: None,
        graceful_restart: false,
        ebgp_multihop: false,
        vrf: None,
        disable_mp: false,
        dual_stack_address_family: false,
    }
}

fn peers(list: impl IntoIterator<Item = Peer>) -> BTreeMap<String, Peer> {
    list.into_iter().map(|p| (p.name.clone(), p)).collect()
}

/// Two eBGP routers.
fn two_routers() -> BTreeMap<String, Peer> {
    peers([
        peer("r1", PeerAsn::Fixed(64501)),
        peer("r2", PeerAsn::Fixed(64502)),
    ])
}

fn standard(text: &str) -> Community {
    Community::parse(text).expect("test community")
}

fn plan(
    services: &[Service],
    advs: &[BgpAdvertisement],
    peers: &BTreeMap<String, Peer>,
) -> BgpPlan {
    desired_bgp(
        services,
        &Node::new("node-a"),
        advs,
        peers,
        &Options::default(),
    )
}

/// The prefixes `peer` is sent.
fn prefixes(plan: &BgpPlan, peer: &str) -> Vec<IpNet> {
    plan.peers[peer].keys().copied().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn withheld(plan: &BgpPlan, name: &str) -> Vec<BgpReason> {
    plan.services[&ServiceKey::new("default", name)]
        .withheld
        .values()
        .cloned()
        .collect()
}

fn status<'a>(plan: &'a BgpPlan, name: &str) -> &'a ServiceBgp {
    &plan.services[&ServiceKey::new("default", name)]
}

/// Asserts that `name` is advertised nowhere, for `reason` on each of its addresses, and that
/// no peer is sent anything.
fn assert_withheld(plan: &BgpPlan, name: &str, reason: &BgpReason) {
    let status = status(plan, name);
    assert!(status.peers.is_empty(), "{status:?}");
    assert!(!status.withheld.is_empty());
    assert!(status.withheld.values().all(|r| r == reason), "{status:?}");
    assert!(plan.peers.values().all(BTreeMap::is_empty), "{plan:#?}");
}

const V4: &str = "203.0.113.5";
const V6: &str = "2001:db8:203::5";

// --- prefixes --------------------------------------------------------------------------

#[test]
fn an_address_goes_as_a_host_route_to_every_peer_of_the_node() {
    let p = plan(
        &[service("web", &[V4])],
        &[bgp_advertisement("all", &["lan"])],
        &two_routers(),
    );
    let route = BTreeMap::from([(net("203.0.113.5/32"), RouteAttributes::default())]);
    assert_eq!(
        p.peers,
        BTreeMap::from([("r1".into(), route.clone()), ("r2".into(), route)])
    );
    let web = status(&p, "web");
    assert_eq!(web.peers, names(&["r1", "r2"]));
    assert!(web.withheld.is_empty() && web.is_advertised());
    assert!(p.local_pref_conflicts.is_empty());
}

#[test]
fn a_dual_stack_service_makes_a_route_of_each_family() {
    let p = plan(
        &[service("web", &[V4, V6])],
        &[bgp_advertisement("all", &["lan"])],
        &two_routers(),
    );
    assert_eq!(
        prefixes(&p, "r1"),
        [net("203.0.113.5/32"), net("2001:db8:203::5/128")]
    );
    assert_eq!(prefixes(&p, "r1"), prefixes(&p, "r2"));

    // Each family takes its own aggregation length.
    let mut aggregated = bgp_advertisement("aggregated", &["lan"]);
    aggregated.aggregation_length = 24;
    aggregated.aggregation_length_v6 = 64;
    let p = plan(&[service("web", &[V4, V6])], &[aggregated], &two_routers());
    assert_eq!(
        prefixes(&p, "r1"),
        [net("203.0.113.0/24"), net("2001:db8:203::/64")]
    );
}

#[test]
fn an_ipv4_mapped_address_is_advertised_as_ipv4() {
    let mut adv = bgp_advertisement("all", &["lan"]);
    adv.aggregation_length = 30;
    adv.aggregation_length_v6 = 64;
    let p = plan(
        &[service("web", &["::ffff:203.0.113.5"])],
        &[adv],
        &two_routers(),
    );
    assert_eq!(prefixes(&p, "r1"), [net("203.0.113.4/30")]);
}

#[test]
fn services_aggregating_into_one_prefix_share_one_route() {
    let mut adv = bgp_advertisement("agg", &["lan"]);
    adv.aggregation_length = 24;
    adv.communities = [standard("64500:1")].into();
    let web = service("web", &["203.0.113.5"]);
    let db = service("db", &["203.0.113.77"]);
    let p = plan(&[web.clone(), db.clone()], &[adv.clone()], &two_routers());
    assert_eq!(prefixes(&p, "r1"), [net("203.0.113.0/24")]);
    assert_eq!(
        p.peers["r1"][&net("203.0.113.0/24")].communities,
        [standard("64500:1")].into()
    );
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));
    assert_eq!(status(&p, "db").peers, names(&["r1", "r2"]));

    // The route stays as long as one Service makes it.
    let mut local_elsewhere = db.clone();
    local_elsewhere.traffic_policy = TrafficPolicy::Local;
    local_elsewhere.endpoints = vec![Endpoint::ready_on("node-b")];
    let p = plan(
        &[web, local_elsewhere.clone()],
        &[adv.clone()],
        &two_routers(),
    );
    assert_eq!(prefixes(&p, "r1"), [net("203.0.113.0/24")]);
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));
    assert_eq!(withheld(&p, "db"), [BgpReason::NoLocalEndpoint]);
    let p = plan(&[local_elsewhere], &[adv], &two_routers());
    assert_withheld(&p, "db", &BgpReason::NoLocalEndpoint);
}

#[test]
fn two_advertisements_of_one_prefix_merge_their_communities() {
    let mut a = bgp_advertisement("a", &["lan"]);
    a.communities = [standard("64500:1"), standard("65535:65281")].into();
    let mut b = bgp_advertisement("b", &["lan"]);
    b.communities = [standard("64500:2"), Community::Large(64500, 7, 8)].into();
    let p = plan(&[service("web", &[V4])], &[a, b], &two_routers());
    let want: BTreeSet<Community> = [
        standard("64500:1"),
        standard("64500:2"),
        standard("65535:65281"),
        Community::Large(64500, 7, 8),
    ]
    .into();
    for router in ["r1", "r2"] {
        assert_eq!(p.peers[router][&net("203.0.113.5/32")].communities, want);
    }
}

// --- advertisements --------------------------------------------------------------------

#[test]
fn a_pool_no_advertisement_covers_is_not_advertised() {
    let p = plan(
        &[service("web", &[V4])],
        &[bgp_advertisement("other", &["routed"])],
        &two_routers(),
    );
    let reason = BgpReason::NoAdvertisement { pool: "lan".into() };
    assert_withheld(&p, "web", &reason);
    assert_eq!(reason.code(), "noAdvertisement");
    assert_eq!(
        reason.to_string(),
        "no BGPAdvertisement advertises pool \"lan\""
    );
}

#[test]
fn service_selectors_pick_the_services_an_advertisement_applies_to() {
    let mut web_only = bgp_advertisement("web-only", &["lan"]);
    web_only.service_selectors = vec![selector(&[("app", "web")])];
    web_only.communities = [standard("64500:80")].into();

    let p = plan(
        &[service("db", &[V4])],
        std::slice::from_ref(&web_only),
        &two_routers(),
    );
    assert_withheld(
        &p,
        "db",
        &BgpReason::ServiceNotSelected { pool: "lan".into() },
    );

    let mut web = service("web", &[V4]);
    web.labels.insert("app".into(), "web".into());
    let db = service("db", &["203.0.113.9"]);
    let p = plan(
        &[web, db],
        &[web_only, bgp_advertisement("all", &["lan"])],
        &two_routers(),
    );
    assert_eq!(
        p.peers["r1"][&net("203.0.113.5/32")].communities,
        [standard("64500:80")].into()
    );
    assert!(p.peers["r1"][&net("203.0.113.9/32")].communities.is_empty());
}

#[test]
fn advertisement_node_selectors_pick_the_nodes_that_advertise() {
    let mut rack1 = bgp_advertisement("rack1", &["lan"]);
    rack1.node_selectors = vec![selector(&[("rack", "r1")])];
    rack1.communities = [standard("64500:1")].into();
    let services = [service("web", &[V4])];
    let on = |node: Node, advs: &[BgpAdvertisement]| {
        desired_bgp(&services, &node, advs, &two_routers(), &Options::default())
    };

    let p = on(
        Node::new("node-a").with_label("rack", "r2"),
        std::slice::from_ref(&rack1),
    );
    assert_withheld(
        &p,
        "web",
        &BgpReason::NodeNotSelected { pool: "lan".into() },
    );
    assert_eq!(p.peers.keys().collect::<Vec<_>>(), ["r1", "r2"]);

    let p = on(
        Node::new("node-a").with_label("rack", "r1"),
        std::slice::from_ref(&rack1),
    );
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));

    // Another advertisement for every node: only its attributes reach the node outside rack 1.
    let mut everywhere = bgp_advertisement("everywhere", &["lan"]);
    everywhere.communities = [standard("64500:2")].into();
    let p = on(
        Node::new("node-a").with_label("rack", "r2"),
        &[rack1, everywhere],
    );
    assert_eq!(
        p.peers["r1"][&net("203.0.113.5/32")].communities,
        [standard("64500:2")].into()
    );
}

// --- the node --------------------------------------------------------------------------

#[test]
fn the_exclusion_label_stops_the_node_unless_ignored() {
    let services = [service("web", &[V4])];
    let advs = [bgp_advertisement("all", &["lan"])];
    // Any value counts, even "false".
    let node = Node::new("node-a").with_label(EXCLUDE_FROM_LOAD_BALANCERS, "false");

    let p = desired_bgp(&services, &node, &advs, &two_routers(), &Options::default());
    assert_withheld(&p, "web", &BgpReason::NodeExcluded);
    // The sessions stay: only the routes go.
    assert_eq!(p.peers.keys().collect::<Vec<_>>(), ["r1", "r2"]);

    let ignore = Options {
        ignore_exclude_lb: true,
    };
    let p = desired_bgp(&services, &node, &advs, &two_routers(), &ignore);
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));
}

#[test]
fn a_node_without_network_advertises_nothing() {
    let mut node = Node::new("node-a");
    node.network_unavailable = true;
    let p = desired_bgp(
        &[service("web", &[V4])],
        &node,
        &[bgp_advertisement("all", &["lan"])],
        &two_routers(),
        &Options::default(),
    );
    assert_withheld(&p, "web", &BgpReason::NetworkUnavailable);
    assert_eq!(BgpReason::NetworkUnavailable.code(), "networkUnavailable");
}

#[test]
fn readiness_is_not_read_the_speaker_asking_is_on_the_node() {
    let mut node = Node::new("node-a");
    node.ready = false;
    let p = desired_bgp(
        &[service("web", &[V4])],
        &node,
        &[bgp_advertisement("all", &["lan"])],
        &two_routers(),
        &Options::default(),
    );
    assert!(status(&p, "web").is_advertised());
}

#[test]
fn advertisement_reasons_come_before_the_node_and_the_node_before_endpoints() {
    let mut node = Node::new("node-a").with_label(EXCLUDE_FROM_LOAD_BALANCERS, "");
    node.network_unavailable = true;
    let mut web = service("web", &[V4]);
    web.endpoints.clear();
    let run = |advs: &[BgpAdvertisement], node: &Node| {
        desired_bgp(
            std::slice::from_ref(&web),
            node,
            advs,
            &two_routers(),
            &Options::default(),
        )
    };
    let p = run(&[], &node);
    assert_withheld(
        &p,
        "web",
        &BgpReason::NoAdvertisement { pool: "lan".into() },
    );
    let advs = [bgp_advertisement("all", &["lan"])];
    assert_withheld(&run(&advs, &node), "web", &BgpReason::NetworkUnavailable);
    node.network_unavailable = false;
    assert_withheld(&run(&advs, &node), "web", &BgpReason::NodeExcluded);
    assert_withheld(
        &run(&advs, &Node::new("node-a")),
        "web",
        &BgpReason::NoServingEndpoints,
    );
}

// --- endpoints -------------------------------------------------------------------------

#[test]
fn cluster_policy_needs_a_serving_endpoint_on_any_node() {
    let advs = [bgp_advertisement("all", &["lan"])];
    let mut web = service("web", &[V4]);
    web.endpoints = vec![Endpoint::ready_on("node-b")];
    let p = plan(std::slice::from_ref(&web), &advs, &two_routers());
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));

    web.endpoints[0].ready = Some(false);
    web.endpoints[0].serving = Some(false);
    let p = plan(&[web], &advs, &two_routers());
    assert_withheld(&p, "web", &BgpReason::NoServingEndpoints);
}

#[test]
fn local_policy_withdraws_when_the_last_local_endpoint_stops_serving() {
    let advs = [bgp_advertisement("all", &["lan"])];
    let mut web = service("web", &[V4, V6]);
    web.traffic_policy = TrafficPolicy::Local;
    web.endpoints = vec![
        Endpoint::ready_on("node-a"),
        Endpoint::ready_on("node-a"),
        Endpoint::ready_on("node-b"),
    ];
    let run = |web: &Service| plan(std::slice::from_ref(web), &advs, &two_routers());
    assert_eq!(prefixes(&run(&web), "r1").len(), 2);

    // One local endpoint gone, the other terminating but still serving: the routes stay.
    web.endpoints[0].ready = Some(false);
    web.endpoints[0].serving = Some(false);
    web.endpoints[1] = Endpoint {
        node: Some("node-a".into()),
        ready: Some(false),
        serving: Some(true),
    };
    assert_eq!(status(&run(&web), "web").peers, names(&["r1", "r2"]));

    // The last local one stops serving: both families are withdrawn, although node-b serves.
    web.endpoints[1].serving = Some(false);
    let p = run(&web);
    assert_withheld(&p, "web", &BgpReason::NoLocalEndpoint);
    assert_eq!(withheld(&p, "web").len(), 2);
    assert_eq!(
        BgpReason::NoLocalEndpoint.to_string(),
        "externalTrafficPolicy is Local and no endpoint on this node can serve"
    );

    // An endpoint without a node name is no local endpoint.
    web.endpoints = vec![Endpoint {
        node: None,
        ready: Some(true),
        serving: Some(true),
    }];
    assert_withheld(&run(&web), "web", &BgpReason::NoLocalEndpoint);
}

// --- peers -----------------------------------------------------------------------------

#[test]
fn peer_node_selectors_pick_the_sessions_of_the_node() {
    let mut rack1 = peer("rack1-tor", PeerAsn::Fixed(64501));
    rack1.node_selectors = vec![selector(&[("rack", "r1")])];
    let spine = peer("spine", PeerAsn::Fixed(64502));
    let all = peers([rack1, spine]);
    let services = [service("web", &[V4])];
    let advs = [bgp_advertisement("all", &["lan"])];
    let on = |node: Node| desired_bgp(&services, &node, &advs, &all, &Options::default());

    let p = on(Node::new("node-a").with_label("rack", "r2"));
    assert_eq!(p.peers.keys().collect::<Vec<_>>(), ["spine"]);
    assert_eq!(status(&p, "web").peers, names(&["spine"]));

    let p = on(Node::new("node-a").with_label("rack", "r1"));
    assert_eq!(p.peers.keys().collect::<Vec<_>>(), ["rack1-tor", "spine"]);
    assert_eq!(status(&p, "web").peers, names(&["rack1-tor", "spine"]));
}

#[test]
fn advertisement_peers_limit_where_routes_go() {
    let mut to_r1 = bgp_advertisement("to-r1", &["lan"]);
    to_r1.peers = names(&["r1"]);
    let p = plan(
        &[service("web", &[V4])],
        std::slice::from_ref(&to_r1),
        &two_routers(),
    );
    assert_eq!(prefixes(&p, "r1"), [net("203.0.113.5/32")]);
    assert!(p.peers["r2"].is_empty());
    assert_eq!(status(&p, "web").peers, names(&["r1"]));

    // Naming only peers this node has no session with reaches nobody.
    let mut to_ghost = bgp_advertisement("to-ghost", &["lan"]);
    to_ghost.peers = names(&["ghost"]);
    let p = plan(&[service("web", &[V4])], &[to_ghost], &two_routers());
    assert_withheld(&p, "web", &BgpReason::NoPeer);

    // No peer selects the node at all.
    let p = plan(&[service("web", &[V4])], &[to_r1], &BTreeMap::new());
    assert!(p.peers.is_empty());
    assert_eq!(withheld(&p, "web"), [BgpReason::NoPeer]);
}

#[test]
fn a_service_is_credited_with_every_peer_its_prefixes_reach() {
    // As MetalLB's status: web's own advertisement goes to r1 only, but db, sharing its
    // address, sends the same prefix to r2, so web's address reaches r2 too.
    let mut web_to_r1 = bgp_advertisement("web-to-r1", &["lan"]);
    web_to_r1.service_selectors = vec![selector(&[("app", "web")])];
    web_to_r1.peers = names(&["r1"]);
    let mut db_to_r2 = bgp_advertisement("db-to-r2", &["lan"]);
    db_to_r2.service_selectors = vec![selector(&[("app", "db")])];
    db_to_r2.peers = names(&["r2"]);
    let mut web = service("web", &[V4]);
    web.labels.insert("app".into(), "web".into());
    let mut db = service("db", &[V4]);
    db.labels.insert("app".into(), "db".into());
    let p = plan(&[web, db], &[web_to_r1, db_to_r2], &two_routers());
    assert_eq!(status(&p, "web").peers, names(&["r1", "r2"]));
    assert_eq!(status(&p, "db").peers, names(&["r1", "r2"]));
}

// --- attributes ------------------------------------------------------------------------

#[test]
fn local_pref_goes_to_ibgp_peers_only_and_communities_to_all() {
    let mut adv = bgp_advertisement("all", &["lan"]);
    adv.local_pref = Some(150);
    adv.communities = [standard("64500:1")].into();
    let mut presented = peer("local-asn-ibgp", PeerAsn::Fixed(64510));
    presented.local_asn = Some(64510);
    let mut hidden = peer("local-asn-ebgp", PeerAsn::Fixed(MY_ASN));
    hidden.local_asn = Some(64510);
    let all = peers([
        peer("fixed-ibgp", PeerAsn::Fixed(MY_ASN)),
        peer("fixed-ebgp", PeerAsn::Fixed(64501)),
        peer("dynamic-internal", PeerAsn::Internal),
        peer("dynamic-external", PeerAsn::External),
        presented,
        hidden,
    ]);
    let p = plan(&[service("web", &[V4])], &[adv], &all);
    let sent: BTreeMap<&str, Option<u32>> = p
        .peers
        .iter()
        .map(|(name, routes)| (name.as_str(), routes[&net("203.0.113.5/32")].local_pref))
        .collect();
    assert_eq!(
        sent,
        BTreeMap::from([
            ("dynamic-external", None),
            ("dynamic-internal", Some(150)),
            ("fixed-ebgp", None),
            ("fixed-ibgp", Some(150)),
            ("local-asn-ebgp", None),
            ("local-asn-ibgp", Some(150)),
        ])
    );
    for routes in p.peers.values() {
        assert_eq!(
            routes[&net("203.0.113.5/32")].communities,
            [standard("64500:1")].into()
        );
    }
}

#[test]
fn disagreeing_local_prefs_take_the_highest_and_are_reported() {
    // Two advertisements with serviceSelectors, which the config does not check against each
    // other, both select a Service: the same host route, two LOCAL_PREFs.
    let mut high = bgp_advertisement("high", &["lan"]);
    high.service_selectors = vec![selector(&[("app", "web")])];
    high.local_pref = Some(200);
    let mut low = bgp_advertisement("low", &["lan"]);
    low.service_selectors = vec![selector(&[("tier", "front")])];
    low.local_pref = Some(100);
    let mut unset = bgp_advertisement("unset", &["lan"]);
    unset.service_selectors = vec![selector(&[("tier", "front")])];
    let mut web = service("web", &[V4]);
    web.labels.insert("app".into(), "web".into());
    web.labels.insert("tier".into(), "front".into());
    let all = peers([
        peer("ibgp", PeerAsn::Fixed(MY_ASN)),
        peer("ebgp", PeerAsn::Fixed(64501)),
    ]);
    let p = plan(&[web], &[low, unset, high], &all);
    assert_eq!(
        p.peers["ibgp"][&net("203.0.113.5/32")].local_pref,
        Some(200)
    );
    assert_eq!(p.peers["ebgp"][&net("203.0.113.5/32")].local_pref, None);
    // Only the iBGP peer, which is sent LOCAL_PREF at all, has a conflict.
    assert_eq!(
        p.local_pref_conflicts,
        [LocalPrefConflict {
            peer: "ibgp".into(),
            prefix: net("203.0.113.5/32"),
            values: [None, Some(100), Some(200)].into(),
        }]
    );
    assert_eq!(
        p.local_pref_conflicts[0].to_string(),
        "BGPAdvertisements send 203.0.113.5/32 to peer \"ibgp\" with different LOCAL_PREFs (none, 100, 200); the highest is used"
    );
}

#[test]
fn equal_local_prefs_from_several_services_are_no_conflict() {
    let mut adv = bgp_advertisement("agg", &["lan"]);
    adv.aggregation_length = 24;
    adv.local_pref = Some(120);
    let all = peers([peer("ibgp", PeerAsn::Internal)]);
    let p = plan(
        &[
            service("web", &["203.0.113.5"]),
            service("db", &["203.0.113.6"]),
        ],
        &[adv],
        &all,
    );
    assert_eq!(
        p.peers["ibgp"][&net("203.0.113.0/24")].local_pref,
        Some(120)
    );
    assert!(p.local_pref_conflicts.is_empty());
}

// --- inputs ----------------------------------------------------------------------------

#[test]
fn input_order_and_repeats_do_not_change_the_plan() {
    let mut agg = bgp_advertisement("agg", &["lan"]);
    agg.aggregation_length = 28;
    agg.communities = [standard("64500:28")].into();
    let mut to_r2 = bgp_advertisement("to-r2", &["lan"]);
    to_r2.peers = names(&["r2"]);
    to_r2.communities = [standard("64500:2")].into();
    let mut services = vec![
        service("web", &[V4, V6]),
        service("db", &["203.0.113.9", "203.0.113.9"]),
        service("empty", &[]),
    ];
    let mut advs = vec![agg, to_r2];
    let forward = plan(&services, &advs, &two_routers());
    services.reverse();
    services.push(service("web", &[V4, V6]));
    advs.reverse();
    assert_eq!(plan(&services, &advs, &two_routers()), forward);
    // A Service without an address has no status.
    assert_eq!(
        forward
            .services
            .keys()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
        ["default/db", "default/web"]
    );
}
