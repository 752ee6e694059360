//! `Responder::start` in-process: link generations, `interfaces_for`, per-IP counters, scope
//! changes, the periodic refresh, MAC changes and link removal, seen through the API the
//! speaker uses.
//!
//! The responder must run inside a network namespace of its own, or it would open sockets
//! on the host's links; entering one needs `setns`, which this crate does not do. So the
//! outer test makes two namespaces (`fl2a<pid>` for the responder, `fl2b<pid>` for the
//! client) and runs this same test binary's `in_namespace` test inside the first with
//! `ip netns exec`. Needs root: skipped without it, except under CI (`CI=true`), where it
//! fails.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_l2::{AnnounceSchedule, IpCounts, MacAddr, Responder, ResponderOptions, Scope};

const INNER: &str = "FERROLB_L2_TEST_IN_NAMESPACE";
const CLIENT_NS: &str = "FERROLB_L2_TEST_CLIENT_NS";
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 88);
const SCOPED_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 89);

fn privileged() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    if root {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("responder_api needs root under CI");
    }
    eprintln!("SKIPPED responder_api: not running as root");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = Netns(name);
        ip(&["-n", &netns.0, "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn the_responder_api_follows_links() {
    if !privileged() {
        return;
    }
    let id = std::process::id() % 100_000;
    let responder_ns = Netns::new(format!("fl2a{id}"));
    let client_ns = Netns::new(format!("fl2b{id}"));
    let exe = std::env::current_exe().expect("the test binary's path");
    // `.output()` waits for the child: it cannot outlive the namespaces.
    let out = Command::new("ip")
        .args(["netns", "exec", &responder_ns.0])
        .arg(exe)
        .args(["--exact", "in_namespace", "--ignored", "--nocapture"])
        .env(INNER, "1")
        .env(CLIENT_NS, &client_ns.0)
        .output()
        .expect("running the test binary in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "in_namespace failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Waits up to 10 s for `condition`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counts(responder: &Responder, ip: Ipv4Addr) -> IpCounts {
    responder
        .ip_counters()
        .into_iter()
        .find(|(owned, _)| *owned == IpAddr::V4(ip))
        .map(|(_, counts)| counts)
        .unwrap_or_else(|| panic!("{ip} has counters"))
}

/// Runs inside the responder's namespace, started by the test above; does nothing when run
/// any other way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_responder_api_follows_links inside a network namespace"]
async fn in_namespace() {
    if std::env::var(INNER).is_err() {
        return;
    }
    let client_ns = std::env::var(CLIENT_NS).expect("the client namespace");
    let id = std::process::id() % 100_000;
    let (ours, theirs) = (format!("ia{id}"), format!("ib{id}"));
    let vip = IpAddr::V4(VIP);
    let scoped = IpAddr::V4(SCOPED_VIP);

    let responder = Responder::start(ResponderOptions {
        schedule: AnnounceSchedule {
            rounds: 2,
            interval: Duration::from_millis(100),
        },
        refresh: Some(Duration::from_millis(400)),
        ..ResponderOptions::default()
    })
    .await
    .expect("starting the responder");
    // Only the loopback so far, which is never used.
    assert!(responder.interfaces().is_empty());
    let mut changes = responder.link_changes();
    let generation = *changes.borrow_and_update();
    responder.set_owned([
        (vip, Scope::All),
        (scoped, Scope::only(["elsewhere".to_owned()])),
    ]);
    assert!(responder.owns(vip) && responder.owns(scoped));
    assert!(responder.interfaces_for(vip).is_empty());

    // A new link: the generation moves, the VIP is answered and announced there.
    ip(&[
        "link",
        "add",
        &ours,
        "address",
        "02:00:5e:10:02:01",
        "type",
        "veth",
        "peer",
        "name",
        &theirs,
        "netns",
        &client_ns,
    ]);
    ip(&[
        "-n",
        &client_ns,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        &theirs,
    ]);
    ip(&["-n", &client_ns, "link", "set", &theirs, "up"]);
    ip(&["link", "set", &ours, "up"]);
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a link change within 10 s")
        .expect("the responder is alive");
    assert!(*changes.borrow_and_update() > generation);
    let mac: MacAddr = "02:00:5e:10:02:01".parse().expect("a MAC");
    assert_eq!(responder.interfaces(), vec![(ours.clone(), mac)]);
    assert_eq!(responder.interfaces_for(vip), vec![ours.clone()]);
    assert!(responder.interfaces_for(scoped).is_empty());
    eventually("the VIP announced on the new link", || {
        counts(&responder, VIP).gratuitous_sent > 0
    })
    .await;
    assert_eq!(counts(&responder, SCOPED_VIP).gratuitous_sent, 0);

    // A client resolving the VIP is counted against it.
    let _ = Command::new("ip")
        .args(["netns", "exec", &client_ns, "bash", "-c"])
        .arg(format!("echo probe > /dev/udp/{VIP}/9"))
        .output();
    eventually("the request answered", || {
        let counts = counts(&responder, VIP);
        counts.requests_received > 0 && counts.responses_sent > 0
    })
    .await;
    assert_eq!(counts(&responder, SCOPED_VIP).requests_received, 0);

    // The refresh announces again after the takeover schedule is over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = counts(&responder, VIP).gratuitous_sent;
    eventually("a refresh", || {
        counts(&responder, VIP).gratuitous_sent > before
    })
    .await;

    // Widening a scope announces on the links added, and they show up for it.
    responder.set_owned([
        (vip, Scope::All),
        (scoped, Scope::Only(BTreeSet::from([ours.clone()]))),
    ]);
    assert_eq!(responder.interfaces_for(scoped), vec![ours.clone()]);
    eventually("the scoped VIP announced", || {
        counts(&responder, SCOPED_VIP).gratuitous_sent > 0
    })
    .await;

    // A MAC change moves the generation and is answered with at once.
    let generation = *changes.borrow_and_update();
    ip(&["link", "set", &ours, "address", "02:00:5e:10:02:11"]);
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a link change within 10 s")
        .expect("the responder is alive");
    assert!(*changes.borrow_and_update() > generation);
    let mac: MacAddr = "02:00:5e:10:02:11".parse().expect("a MAC");
    assert_eq!(responder.interfaces(), vec![(ours.clone(), mac)]);

    // A deleted link is dropped.
    ip(&["link", "del", &ours]);
    eventually("the link dropped", || responder.interfaces().is_empty()).await;
    assert!(responder.interfaces_for(vip).is_empty());
    assert!(*changes.borrow() > generation);

    // Released IPs are forgotten, counters included.
    responder.set_owned([(vip, Scope::All)]);
    assert!(!responder.owns(scoped));
    assert_eq!(responder.ip_counters().len(), 1);
    responder.set_owned(std::iter::empty());
    assert!(responder.ip_counters().is_empty());
    let global = responder.counters().snapshot();
    assert!(global.responses_sent > 0 && global.gratuitous_sent > 0);
    assert_eq!(global.send_errors, 0);
}
