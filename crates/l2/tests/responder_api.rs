//! `Responder::start` in-process: link generations, `interfaces_for`, per-IP counters, scope
//! changes, the periodic refresh, MAC changes and link removal, seen through the API the
//! speaker uses. And the per-link socket filter: a flood of requests for addresses the
//! responder does not own is dropped in the kernel, while requests for owned ones are
//! answered (`flood_in_namespace`, in namespace `fl2f<pid>`).
//!
//! The responder must run inside a network namespace of its own, or it would open sockets
//! on the host's links; entering one needs `setns`, which this crate does not do. So the
//! outer test makes two namespaces (`fl2a<pid>` for the responder, `fl2b<pid>` for the
//! client) and runs this same test binary's `in_namespace` test inside the first with
//! `ip netns exec`. Needs root: skipped without it, except under CI (`CI=true`), where it
//! fails.

mod common;

use ferrolb_testns::{Netns, ip, privileged};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::IntoRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrolb_l2::{
    AnnounceSchedule, ArpOperation, CounterSnapshot, IpCounts, MacAddr, Responder,
    ResponderOptions, Scope, owned_filter, parse_arp, solicited_node_multicast,
};
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use socket2::{Domain, SockFilter, Socket, Type};

const INNER: &str = "FERROLB_L2_TEST_IN_NAMESPACE";
const CLIENT_NS: &str = "FERROLB_L2_TEST_CLIENT_NS";
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 88);
const SCOPED_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 89);

#[test]
fn the_responder_api_follows_links() {
    if !privileged("responder_api") {
        return;
    }
    let id = std::process::id() % 100_000;
    let responder_ns = Netns::new(format!("fl2a{id}"));
    let client_ns = Netns::new(format!("fl2b{id}"));
    run_inside(&responder_ns, "in_namespace", &client_ns.0);
}

#[test]
fn the_kernel_drops_requests_for_addresses_not_owned() {
    if !privileged("responder_api") {
        return;
    }
    let id = std::process::id() % 100_000;
    let netns = Netns::new(format!("fl2f{id}"));
    run_inside(&netns, "flood_in_namespace", "");
}

/// Runs this test binary's `test` inside `netns`, and fails if it does.
fn run_inside(netns: &Netns, test: &str, client_ns: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    // `.output()` waits for the child: it cannot outlive the namespaces.
    let out = Command::new("ip")
        .args(["netns", "exec", &netns.0])
        .arg(exe)
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(INNER, "1")
        .env(CLIENT_NS, client_ns)
        .output()
        .expect("running the test binary in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The measurements, for whoever runs the tests with --nocapture.
    for line in stdout.lines().filter(|line| line.starts_with("flood:")) {
        println!("{line}");
    }
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

const FLOOD_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 90);
const FLOOD_VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x290);
/// Owned only from the third phase on.
const LATE_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 91);
const FLOOD_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Enough IPv6 addresses that the owned-address filter does not fit (about 450 do).
const TOO_MANY: u16 = 500;

/// The AF_PACKET socket of the client's end, through pnet, with `filter` attached first.
fn client_channel(
    name: &str,
    filter: &[SockFilter],
) -> (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>) {
    let interface = pnet_datalink::interfaces()
        .into_iter()
        .find(|interface| interface.name == name)
        .unwrap_or_else(|| panic!("no link {name}"));
    let socket = Socket::new(Domain::PACKET, Type::RAW, None).expect("an AF_PACKET socket");
    socket.attach_filter(filter).expect("attaching a filter");
    let config = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(50)),
        socket_fd: Some(socket.into_raw_fd()),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(&interface, config) {
        Ok(Channel::Ethernet(sender, receiver)) => (sender, receiver),
        Ok(_) => panic!("not an Ethernet channel"),
        Err(error) => panic!("binding to {name}: {error}"),
    }
}

/// An ARP request from the client for `target`, byte by byte.
fn arp_request(source: MacAddr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&MacAddr::BROADCAST.octets());
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&FLOOD_CLIENT.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame.resize(60, 0);
    frame
}

/// A Neighbor Solicitation from the client for `target`, to its solicited-node group.
fn neighbor_solicitation(source: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node_multicast(target);
    let octets = group.octets();
    common::NsSpec {
        eth_destination: MacAddr([0x33, 0x33, octets[12], octets[13], octets[14], octets[15]]),
        eth_source: source,
        destination: group,
        target,
        options: common::source_link_layer_option(source),
        ..common::NsSpec::client_resolving_vip()
    }
    .frame()
}

/// Requests for addresses nobody owns (198.51.100.100 to .249, 500 IPv6 ones), half ARP
/// and half NDP.
fn flood_frames(source: MacAddr) -> Vec<Vec<u8>> {
    (0..500u16)
        .flat_map(|i| {
            let low = 100 + (i % 150) as u8;
            [
                arp_request(source, Ipv4Addr::new(198, 51, 100, low)),
                neighbor_solicitation(source, Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 1, i)),
            ]
        })
        .collect()
}

/// Sends `frames` round and round, `count` in all, at `rate` per second (as fast as it
/// can when `None`), or until `stop`.
fn flood(
    sender: &mut dyn DataLinkSender,
    frames: &[Vec<u8>],
    count: usize,
    rate: Option<u32>,
    stop: &AtomicBool,
) -> usize {
    let start = Instant::now();
    let mut sent = 0;
    for frame in frames.iter().cycle().take(count) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(rate) = rate {
            // Batches of 1 ms worth of frames, on schedule.
            if sent % (rate as usize / 1000).max(1) == 0 {
                let due = start + Duration::from_secs_f64(sent as f64 / f64::from(rate));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        match sender.send_to(frame, None) {
            Some(Ok(())) => sent += 1,
            // The transmit queue is full: try the next one.
            _ => std::thread::yield_now(),
        }
    }
    sent
}

/// Resolves `vip` `probes` times from the client's end, one at a time, and returns the
/// sorted times to the answer (missing answers are not counted).
fn probe(
    sender: &mut dyn DataLinkSender,
    receiver: &mut dyn DataLinkReceiver,
    source: MacAddr,
    vip: Ipv4Addr,
    probes: usize,
) -> Vec<Duration> {
    let request = arp_request(source, vip);
    let mut times = Vec::with_capacity(probes);
    for _ in 0..probes {
        let start = Instant::now();
        if !matches!(sender.send_to(&request, None), Some(Ok(()))) {
            continue;
        }
        while start.elapsed() < Duration::from_millis(500) {
            let Ok(frame) = receiver.next() else { continue };
            let answered = parse_arp(frame)
                .is_ok_and(|arp| arp.operation == ArpOperation::Reply && arp.sender_ip == vip);
            if answered {
                times.push(start.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    times.sort();
    times
}

/// CPU time of the tokio workers (the responder's receiving), in clock ticks.
fn worker_ticks() -> u64 {
    let mut ticks = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("tokio-r") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        for field in fields.iter().skip(11).take(2) {
            ticks += field.parse::<u64>().unwrap_or(0);
        }
    }
    ticks
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::MAX;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Answer times and responder CPU under a 50,000 frames/s flood, printed as a `flood:` line.
fn measure(
    label: &str,
    link: &str,
    client_mac: MacAddr,
    frames: &Arc<Vec<Vec<u8>>>,
) -> (Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (stop, frames, link) = (stop.clone(), frames.clone(), link.to_owned());
        std::thread::spawn(move || {
            let (mut sender, _receiver) = client_channel(&link, &owned_filter(&[]));
            flood(sender.as_mut(), &frames, usize::MAX, Some(50_000), &stop)
        })
    };
    // Only the answers to the client, not the flood it sends.
    let (mut sender, mut receiver) =
        client_channel(link, &owned_filter(&[IpAddr::V4(FLOOD_CLIENT)]));
    std::thread::sleep(Duration::from_millis(200));
    let (ticks, start) = (worker_ticks(), Instant::now());
    let times = probe(
        sender.as_mut(),
        receiver.as_mut(),
        client_mac,
        FLOOD_VIP,
        200,
    );
    let (ticks, elapsed) = (worker_ticks() - ticks, start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().expect("the flood thread");
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "flood: {label}: {} of 200 answered under {:.0} frames/s, p50 {:?}, p99 {:?}, max {:?}; responder CPU {:.1} %",
        times.len(),
        sent as f64 / (elapsed.as_secs_f64() + 0.2),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
        ticks as f64 / hz / elapsed.as_secs_f64() * 100.0,
    );
    (times, sent)
}

/// Waits until the counters stop moving for 300 ms, and returns them.
async fn settled(responder: &Responder) -> CounterSnapshot {
    let mut last = responder.counters().snapshot();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = responder.counters().snapshot();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs inside its own namespace, started by the test above; does nothing when run any
/// other way. Both ends of one veth pair live here: the responder answers on `fa<pid>`, the
/// client floods and resolves from `fb<pid>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_kernel_drops_requests_for_addresses_not_owned inside a network namespace"]
async fn flood_in_namespace() {
    if std::env::var(INNER).is_err() {
        return;
    }
    let id = std::process::id() % 100_000;
    let (ours, theirs) = (format!("fa{id}"), format!("fb{id}"));
    let client_mac: MacAddr = "02:00:5e:10:03:02".parse().expect("a MAC");
    ip(&[
        "link",
        "add",
        &ours,
        "address",
        "02:00:5e:10:03:01",
        "type",
        "veth",
        "peer",
        "name",
        &theirs,
        "address",
        "02:00:5e:10:03:02",
    ]);
    ip(&["link", "set", &ours, "up"]);
    ip(&["link", "set", &theirs, "up"]);
    eventually("the veth pair up", || {
        std::fs::read_to_string(format!("/sys/class/net/{ours}/operstate"))
            .is_ok_and(|state| state.trim() == "up")
    })
    .await;

    let responder = Responder::with_schedule(
        &[&ours],
        AnnounceSchedule {
            rounds: 1,
            interval: Duration::from_millis(100),
        },
    )
    .expect("opening the link");
    let small = [
        (IpAddr::V4(FLOOD_VIP), Scope::All),
        (IpAddr::V6(FLOOD_VIP_V6), Scope::All),
    ];
    responder.set_owned(small.clone());

    // 0. Announced once (one round, no refresh); then again only when asked to.
    eventually("the takeover announcement", || {
        counts(&responder, FLOOD_VIP).gratuitous_sent > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let announced = counts(&responder, FLOOD_VIP).gratuitous_sent;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counts(&responder, FLOOD_VIP).gratuitous_sent, announced);
    responder.announce_again(&[IpAddr::V4(FLOOD_VIP), IpAddr::V4(VIP)]);
    eventually("the address announced again", || {
        counts(&responder, FLOOD_VIP).gratuitous_sent > announced
    })
    .await;
    assert!(
        !responder.owns(IpAddr::V4(VIP)),
        "announce_again took ownership"
    );

    let frames = Arc::new(flood_frames(client_mac));
    let owned_requests = [
        arp_request(client_mac, FLOOD_VIP),
        neighbor_solicitation(client_mac, FLOOD_VIP_V6),
    ];
    let no_stop = AtomicBool::new(false);

    // 1. Filtered: 20,000 requests for other addresses as fast as they go, then 20 for
    // owned ones. Only the owned ones reach the responder, and all are answered.
    let (mut sender, _receiver) = client_channel(&theirs, &owned_filter(&[]));
    let sent = flood(sender.as_mut(), &frames, 20_000, None, &no_stop);
    assert!(sent >= 10_000, "only {sent} flood frames sent");
    for _ in 0..10 {
        for frame in &owned_requests {
            assert!(matches!(sender.send_to(frame, None), Some(Ok(()))));
        }
    }
    eventually("the owned requests answered", || {
        let counters = responder.counters().snapshot();
        counters.requests_received >= 20 && counters.responses_sent >= 20
    })
    .await;
    let before = settled(&responder).await;
    assert_eq!(
        before.frames_received, before.requests_received,
        "frames for addresses not owned reached the responder: {before:?}"
    );
    assert_eq!(before.requests_received, 20);
    println!(
        "flood: owned-address filter: {sent} flood frames sent, {} reached the responder",
        before.frames_received - 20
    );
    let (filtered, _) = measure("owned-address filter", &theirs, client_mac, &frames);
    assert!(filtered.len() >= 190, "answers missing under the flood");
    let after = settled(&responder).await;
    assert_eq!(after.frames_received, after.requests_received);

    // 2. Too many owned addresses for the filter: it passes every request again, so the
    // same flood reaches the responder (which proves the flood did reach the socket).
    let many = small.iter().cloned().chain((1..=TOO_MANY).map(|i| {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, i, 0, 0, 0, 0x290)),
            Scope::All,
        )
    }));
    responder.set_owned(many);
    let before = settled(&responder).await;
    let sent = flood(sender.as_mut(), &frames, 20_000, None, &no_stop);
    let after = settled(&responder).await;
    let reached = after.frames_received - before.frames_received;
    assert!(
        reached as usize >= sent / 10,
        "only {reached} of {sent} flood frames reached the responder without the owned-address filter"
    );
    println!("flood: generic filter: {sent} flood frames sent, {reached} reached the responder");
    let (generic, _) = measure("generic filter", &theirs, client_mac, &frames);
    assert!(!generic.is_empty());
    settled(&responder).await;

    // 3. Back to a small set, with an address owned just now: the filter follows at once.
    responder.set_owned(
        small
            .iter()
            .cloned()
            .chain([(IpAddr::V4(LATE_VIP), Scope::All)]),
    );
    let before = settled(&responder).await;
    let sent = flood(sender.as_mut(), &frames, 20_000, None, &no_stop);
    assert!(matches!(
        sender.send_to(&arp_request(client_mac, LATE_VIP), None),
        Some(Ok(()))
    ));
    eventually("the newly owned address answered", || {
        counts(&responder, LATE_VIP).responses_sent == 1
    })
    .await;
    let after = settled(&responder).await;
    assert_eq!(
        after.frames_received - before.frames_received,
        1,
        "{sent} flood frames sent; {after:?}"
    );
    assert_eq!(after.invalid_frames, 0);
    assert_eq!(after.send_errors, 0);
    drop(responder);
    ip(&["link", "del", &ours]);
}
