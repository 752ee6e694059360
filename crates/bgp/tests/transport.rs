//! The TCP transport against the real kernel: MD5 signatures, source addresses, TTL and GTSM,
//! device (VRF) binding, IPv4 and IPv6.
//!
//! MD5 keys, addresses and devices are kernel state, so every test runs in a network namespace
//! of its own (`bgpt-<pid>-<n>`, deleted when the test ends, also on failure) with loopback
//! up and the documentation addresses 198.51.100.1-3 and 2001:db8:100::1-3 on it. Entering a
//! namespace takes `setns`, which has no safe wrapper among this crate's dependencies; so, as
//! the l2 crate's tests do, each outer test makes the namespace and runs this same binary's
//! matching `inside_*` test in it with `ip netns exec`. Needs root and iproute2: skipped
//! without them, except under CI (`CI=true`), where that fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use ferrolb_bgp::transport::{
    BGP_PORT, ConnectOptions, Listener, TransportError, connect, set_min_ttl, set_ttl,
};
use ferrolb_testns::{Netns, ip};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set for the test binary run inside a namespace.
const INSIDE: &str = "FERROLB_BGP_TRANSPORT_IN_NAMESPACE";

/// The listener's address, and two addresses a client may connect from.
const V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
    Ipv4Addr::new(198, 51, 100, 3),
];
const V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 3),
];

/// Where VRF binding is tested when the kernel has VRFs (`vrf_binding_when_the_kernel_has_vrfs`).
const VRF: &str = "vrf-bgpt";
const VRF_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

// ---------------------------------------------------------------------------------------------
// Outer tests: each makes a namespace and runs its `inside_*` counterpart in it.

macro_rules! in_namespace {
    ($($outer:ident => $inner:ident;)*) => {$(
        #[test]
        fn $outer() {
            if !privileged() {
                return;
            }
            let netns = test_netns();
            run_inside(&netns, stringify!($inner));
        }
    )*};
}

in_namespace! {
    matching_md5_keys_connect_and_carry_data => inside_matching_md5_keys;
    mismatched_or_one_sided_md5_keys_time_out => inside_mismatched_md5_keys;
    the_peer_sees_the_source_address => inside_source_address;
    ttl_and_gtsm_are_applied => inside_ttl_and_gtsm;
    a_missing_vrf_device_is_named_in_the_error => inside_missing_device;
}

#[test]
fn vrf_binding_when_the_kernel_has_vrfs() {
    if !privileged() {
        return;
    }
    let netns = test_netns();
    let vrf = ip_may_fail(&[
        "-n", &netns.0, "link", "add", VRF, "type", "vrf", "table", "10",
    ]);
    if let Err(why) = vrf {
        println!("SKIPPED real VRF binding: this kernel has no VRF devices ({why})");
        return;
    }
    let dummy = ip_may_fail(&["-n", &netns.0, "link", "add", "bgpt0", "type", "dummy"]);
    if let Err(why) = dummy {
        println!("SKIPPED real VRF binding: this kernel has no dummy devices ({why})");
        return;
    }
    ip(&["-n", &netns.0, "link", "set", "bgpt0", "master", VRF]);
    ip(&["-n", &netns.0, "link", "set", VRF, "up"]);
    ip(&["-n", &netns.0, "link", "set", "bgpt0", "up"]);
    let address = format!("{VRF_ADDRESS}/32");
    ip(&["-n", &netns.0, "addr", "add", &address, "dev", "bgpt0"]);
    run_inside(&netns, "inside_vrf");
}

fn privileged() -> bool {
    ferrolb_testns::privileged("the transport tests")
}

fn ip_may_fail(args: &[&str]) -> Result<(), String> {
    ferrolb_testns::try_ip(args)
}

/// A namespace with loopback up and the test addresses on it; deleted (with its devices) when
/// dropped, also when an assertion fails.
fn test_netns() -> Netns {
    let netns = Netns::unique("bgpt");
    for address in V4 {
        ip(&[
            "-n",
            &netns.0,
            "addr",
            "add",
            &format!("{address}/32"),
            "dev",
            "lo",
        ]);
    }
    for address in V6 {
        let address = format!("{address}/128");
        ip(&[
            "-n", &netns.0, "addr", "add", &address, "dev", "lo", "nodad",
        ]);
    }
    netns
}

/// Runs this binary's test `test` inside `netns` and fails if it fails or does not run.
fn run_inside(netns: &Netns, test: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    // `.output()` waits for the child, so it cannot outlive the namespace.
    let out = Command::new("ip")
        .args(["netns", "exec", &netns.0])
        .arg(exe)
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output()
        .expect("running the test binary in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed in namespace {} ({}):\n{stdout}\n{stderr}",
        netns.0,
        out.status
    );
    for line in stdout.lines().filter(|line| line.starts_with("note:")) {
        println!("{line}");
    }
}

/// Whether this is the run inside a namespace; the `inside_*` tests do nothing otherwise.
fn inside() -> bool {
    std::env::var(INSIDE).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Helpers for the tests inside the namespace.

/// The listener's address, and the client's two source addresses, of each family.
fn families() -> [(IpAddr, IpAddr, IpAddr); 2] {
    [
        (V4[0].into(), V4[1].into(), V4[2].into()),
        (V6[0].into(), V6[1].into(), V6[2].into()),
    ]
}

async fn listen_on_both() -> Listener {
    let addresses = [
        SocketAddr::new(V4[0].into(), BGP_PORT),
        SocketAddr::new(V6[0].into(), BGP_PORT),
    ];
    let listener = Listener::bind(&addresses, None).await.expect("listening");
    assert_eq!(listener.local_addrs(), addresses);
    listener
}

fn options(server: IpAddr, source: IpAddr) -> ConnectOptions {
    ConnectOptions {
        peer: SocketAddr::new(server, BGP_PORT),
        source: Some(source),
        md5_key: None,
        ttl: None,
        vrf: None,
        timeout: Duration::from_secs(5),
    }
}

/// Connects and accepts at once; the client's stream, the server's, and the address the server
/// saw the connection come from.
async fn connect_and_accept(
    listener: &Listener,
    options: &ConnectOptions,
) -> Result<(TcpStream, TcpStream, SocketAddr), TransportError> {
    let (client, accepted) = tokio::join!(
        connect(options),
        tokio::time::timeout(
            options.timeout + Duration::from_millis(200),
            listener.accept()
        )
    );
    let client = client?;
    let (server, seen) = accepted.expect("accept after a successful connect")?;
    Ok((client, server, seen))
}

/// Sends a few bytes each way and checks they arrive.
async fn exchange(client: &mut TcpStream, server: &mut TcpStream) {
    let within = Duration::from_secs(5);
    client.write_all(b"OPEN").await.expect("client write");
    let mut buffer = [0u8; 4];
    tokio::time::timeout(within, server.read_exact(&mut buffer))
        .await
        .expect("the server reads in time")
        .expect("server read");
    assert_eq!(&buffer, b"OPEN");
    server.write_all(b"KEEP").await.expect("server write");
    tokio::time::timeout(within, client.read_exact(&mut buffer))
        .await
        .expect("the client reads in time")
        .expect("client read");
    assert_eq!(&buffer, b"KEEP");
}

/// Whether `stream` is set up as every BGP stream must be: no Nagle, and DSCP CS6.
fn assert_control_socket(stream: &TcpStream) {
    let socket = SockRef::from(stream);
    assert!(stream.nodelay().expect("TCP_NODELAY"), "TCP_NODELAY is on");
    let class = if stream.local_addr().expect("local address").is_ipv4() {
        socket.tos_v4().expect("IP_TOS")
    } else {
        socket.tclass_v6().expect("IPV6_TCLASS")
    };
    assert_eq!(class, 0xc0, "DSCP CS6");
}

fn outgoing_ttl(stream: &TcpStream) -> u32 {
    let socket = SockRef::from(stream);
    if stream.local_addr().expect("local address").is_ipv4() {
        socket.ttl_v4().expect("IP_TTL")
    } else {
        socket.unicast_hops_v6().expect("IPV6_UNICAST_HOPS")
    }
}

/// Whether `stream` receives anything within half a second.
async fn receives_within_half_a_second(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await,
        Ok(Ok(1))
    )
}

// ---------------------------------------------------------------------------------------------
// The tests inside the namespace.

#[tokio::test]
#[ignore = "run by matching_md5_keys_connect_and_carry_data inside a namespace"]
async fn inside_matching_md5_keys() {
    if !inside() {
        return;
    }
    let listener = listen_on_both().await;
    for (server, client_address, other_client) in families() {
        listener
            .set_md5(client_address, Some("bgp-secret"))
            .expect("server key");
        // A key for another peer does not get in the way.
        listener
            .set_md5(other_client, Some("another-secret"))
            .expect("other key");
        let signed = ConnectOptions {
            md5_key: Some("bgp-secret".to_owned()),
            ..options(server, client_address)
        };
        let (mut client, mut server_side, seen) = connect_and_accept(&listener, &signed)
            .await
            .unwrap_or_else(|error| panic!("signed connection to {server}: {error}"));
        assert_eq!(seen.ip(), client_address);
        exchange(&mut client, &mut server_side).await;
        assert_control_socket(&client);
        assert_control_socket(&server_side);

        // The longest key Linux takes, replacing the first.
        let longest = "k".repeat(80);
        listener
            .set_md5(client_address, Some(&longest))
            .expect("80-byte key");
        let longest_options = ConnectOptions {
            md5_key: Some(longest),
            ..options(server, client_address)
        };
        let (mut client, mut server_side, _) = connect_and_accept(&listener, &longest_options)
            .await
            .unwrap_or_else(|error| panic!("80-byte key to {server}: {error}"));
        exchange(&mut client, &mut server_side).await;
    }
}

#[tokio::test]
#[ignore = "run by mismatched_or_one_sided_md5_keys_time_out inside a namespace"]
async fn inside_mismatched_md5_keys() {
    if !inside() {
        return;
    }
    let listener = listen_on_both().await;
    for (server, client_address, _) in families() {
        let with_key = |key: Option<&str>| ConnectOptions {
            md5_key: key.map(str::to_owned),
            timeout: Duration::from_secs(1),
            ..options(server, client_address)
        };
        let cases = [
            (Some("server-key"), Some("client-key"), "different keys"),
            (Some("server-key"), None, "a key on the server only"),
            (None, Some("client-key"), "a key on the client only"),
        ];
        for (server_key, client_key, case) in cases {
            listener
                .set_md5(client_address, server_key)
                .expect("server key");
            let attempt = with_key(client_key);
            match connect(&attempt).await {
                Err(error @ TransportError::ConnectTimeout { .. }) => {
                    let message = error.to_string();
                    assert!(
                        message.contains("timed out") && message.contains(&server.to_string()),
                        "{case}: {message}"
                    );
                }
                Err(error) => panic!("{case} to {server}: not a timeout: {error}"),
                Ok(_) => panic!("{case} to {server}: connected"),
            }
            let accepted =
                tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
            assert!(
                accepted.is_err(),
                "{case}: the server accepted a connection"
            );
        }

        // Matching the server's key to the client's lets it in: set_md5 replaces keys.
        listener
            .set_md5(client_address, Some("client-key"))
            .expect("replacing the key");
        let (mut client, mut server_side, _) =
            connect_and_accept(&listener, &with_key(Some("client-key")))
                .await
                .unwrap_or_else(|error| panic!("after replacing the key, to {server}: {error}"));
        exchange(&mut client, &mut server_side).await;

        // Removing the key lets an unsigned connection in, and removing it twice is fine.
        listener
            .set_md5(client_address, None)
            .expect("removing the key");
        listener
            .set_md5(client_address, None)
            .expect("removing the key again");
        let (mut client, mut server_side, _) = connect_and_accept(&listener, &with_key(None))
            .await
            .unwrap_or_else(|error| panic!("after removing the key, to {server}: {error}"));
        exchange(&mut client, &mut server_side).await;
    }

    // Refused before the kernel sees it.
    let too_long = "k".repeat(81);
    let error = listener
        .set_md5(V4[1].into(), Some(&too_long))
        .err()
        .map(|error| error.to_string());
    assert_eq!(
        error.as_deref(),
        Some("the TCP MD5 key for peer 198.51.100.2 is 81 bytes long; Linux accepts at most 80")
    );
}

#[tokio::test]
#[ignore = "run by the_peer_sees_the_source_address inside a namespace"]
async fn inside_source_address() {
    if !inside() {
        return;
    }
    let listener = listen_on_both().await;
    for (server, first, second) in families() {
        for source in [first, second] {
            let (client, server_side, seen) =
                connect_and_accept(&listener, &options(server, source))
                    .await
                    .unwrap_or_else(|error| panic!("from {source} to {server}: {error}"));
            assert_eq!(seen.ip(), source, "the accepted address");
            assert_eq!(server_side.peer_addr().expect("peer address").ip(), source);
            assert_eq!(client.local_addr().expect("local address").ip(), source);
        }

        // An address no interface has cannot be bound; the error names it and the peer.
        let absent: IpAddr = if server.is_ipv4() {
            Ipv4Addr::new(198, 51, 100, 99).into()
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x99).into()
        };
        match connect(&options(server, absent)).await {
            Err(error @ TransportError::BindSource { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains(&absent.to_string()) && message.contains(&server.to_string()),
                    "{message}"
                );
            }
            other => panic!("binding absent {absent}: {other:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "run by ttl_and_gtsm_are_applied inside a namespace"]
async fn inside_ttl_and_gtsm() {
    if !inside() {
        return;
    }
    let default_ttl: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
        .expect("the default TTL")
        .trim()
        .parse()
        .expect("a number");
    let listener = listen_on_both().await;
    for (server, client_address, _) in families() {
        for ttl in [Some(1), Some(2), Some(255), None] {
            let with_ttl = ConnectOptions {
                ttl,
                ..options(server, client_address)
            };
            let (mut client, mut server_side, _) = connect_and_accept(&listener, &with_ttl)
                .await
                .unwrap_or_else(|error| panic!("TTL {ttl:?} to {server}: {error}"));
            let expected = ttl.map_or(default_ttl, u32::from);
            assert_eq!(outgoing_ttl(&client), expected, "TTL {ttl:?} to {server}");
            // TTL 1 still reaches a local peer: single-hop eBGP works on a direct link.
            exchange(&mut client, &mut server_side).await;

            // The passive side's TTL, set after accept.
            set_ttl(&server_side, 7).expect("set_ttl");
            assert_eq!(outgoing_ttl(&server_side), 7);
        }

        // GTSM: with a minimum TTL of 255, the kernel drops what a peer sends with 254 (loopback
        // does not decrement the TTL, so what is sent is what arrives) and passes 255.
        for (sent_ttl, passes) in [(254, false), (255, true)] {
            let with_ttl = ConnectOptions {
                ttl: Some(sent_ttl),
                ..options(server, client_address)
            };
            let (mut client, mut server_side, _) = connect_and_accept(&listener, &with_ttl)
                .await
                .unwrap_or_else(|error| panic!("TTL {sent_ttl} to {server}: {error}"));
            set_min_ttl(&server_side, 255).expect("set_min_ttl");
            client.write_all(b"U").await.expect("client write");
            assert_eq!(
                receives_within_half_a_second(&mut server_side).await,
                passes,
                "GTSM on {server}: sent with TTL {sent_ttl}"
            );
        }
    }
}

#[tokio::test]
#[ignore = "run by a_missing_vrf_device_is_named_in_the_error inside a namespace"]
async fn inside_missing_device() {
    if !inside() {
        return;
    }
    for (server, client_address, _) in families() {
        let in_missing_vrf = ConnectOptions {
            vrf: Some("vrf-missing".to_owned()),
            ..options(server, client_address)
        };
        match connect(&in_missing_vrf).await {
            Err(error @ TransportError::NoSuchDevice { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains("\"vrf-missing\" does not exist"),
                    "{message}"
                );
                assert!(message.contains(&server.to_string()), "{message}");
            }
            other => panic!("connect in a missing VRF: {other:?}"),
        }
        let address = SocketAddr::new(server, BGP_PORT);
        match Listener::bind(&[address], Some("vrf-missing")).await {
            Err(error @ TransportError::NoSuchDevice { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains("\"vrf-missing\" does not exist"),
                    "{message}"
                );
            }
            other => panic!("listening in a missing VRF: {other:?}"),
        }

        // Binding to a device that exists works (here loopback, as the kernel may lack VRFs):
        // the same SO_BINDTODEVICE path a VRF takes.
        let listener = Listener::bind(&[address], Some("lo"))
            .await
            .expect("listening on lo");
        let on_lo = ConnectOptions {
            vrf: Some("lo".to_owned()),
            ..options(server, client_address)
        };
        let (mut client, mut server_side, _) = connect_and_accept(&listener, &on_lo)
            .await
            .unwrap_or_else(|error| panic!("bound to lo, to {server}: {error}"));
        assert_eq!(
            SockRef::from(&client).device().expect("SO_BINDTODEVICE"),
            Some(b"lo".to_vec())
        );
        exchange(&mut client, &mut server_side).await;
    }
}

#[tokio::test]
#[ignore = "run by vrf_binding_when_the_kernel_has_vrfs inside a namespace"]
async fn inside_vrf() {
    if !inside() {
        return;
    }
    let address = SocketAddr::new(VRF_ADDRESS.into(), BGP_PORT);
    let listener = Listener::bind(&[address], Some(VRF))
        .await
        .expect("listening in the VRF");
    let in_vrf = ConnectOptions {
        peer: address,
        source: None,
        md5_key: Some("vrf-secret".to_owned()),
        ttl: Some(1),
        vrf: Some(VRF.to_owned()),
        timeout: Duration::from_secs(5),
    };
    listener
        .set_md5(VRF_ADDRESS.into(), Some("vrf-secret"))
        .expect("server key");
    let (mut client, mut server_side, _) = connect_and_accept(&listener, &in_vrf)
        .await
        .unwrap_or_else(|error| panic!("connecting in the VRF: {error}"));
    assert_eq!(
        SockRef::from(&client).device().expect("SO_BINDTODEVICE"),
        Some(VRF.as_bytes().to_vec())
    );
    exchange(&mut client, &mut server_side).await;

    // Outside the VRF the address is not reachable: the main table has no route to it.
    let outside = ConnectOptions {
        vrf: None,
        timeout: Duration::from_secs(1),
        ..in_vrf
    };
    assert!(
        connect(&outside).await.is_err(),
        "connected from outside the VRF"
    );
    println!("note: real VRF binding tested on device {VRF}");
}
