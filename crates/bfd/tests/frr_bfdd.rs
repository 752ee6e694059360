//! Our BFD against FRR's bfdd, over a veth pair between two network namespaces: the session
//! comes Up on both sides (IPv4 and IPv6), GTSM drops packets with TTL below 255, FRR's
//! `shutdown` reaches us as Down with diag 3 and remote AdminDown, our `remove` reaches FRR as
//! AdminDown, and killing bfdd takes ours Down with diag 1 within the detection time.
//!
//! Needs root, iproute2 and FRR (/usr/lib/frr/bfdd, vtysh). Without root it prints SKIPPED,
//! unless CI=true, where it fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferrolb_bfd::{Bfd, ControlPacket, Diag, PeerState, Profile, State};
use ferrolb_testns::{Netns, ip, privileged_with};
use nix::sched::CloneFlags;
use tokio::sync::{mpsc, watch};

const OURS_V4: &str = "198.51.100.241";
const FRR_V4: &str = "198.51.100.242";
const OURS_V6: &str = "2001:db8:100::241";
const FRR_V6: &str = "2001:db8:100::242";
const INTERVAL_MS: u64 = 100;
const DETECT_MULT: u8 = 3;

/// Moves the calling thread into `netns` (sockets it opens afterwards live there).
fn enter(netns: &str) {
    let file = File::open(format!("/run/netns/{netns}")).expect("opening the netns file");
    nix::sched::setns(file, CloneFlags::CLONE_NEWNET).expect("setns");
}

/// FRR's bfdd in a namespace, tracked by pid and killed when dropped; its vty socket, pid file
/// and log in a directory of its own.
struct Bfdd {
    child: Option<Child>,
    netns: String,
    dir: PathBuf,
}

impl Bfdd {
    fn start(netns: &str, dir: PathBuf) -> Bfdd {
        std::fs::create_dir_all(&dir).expect("creating bfdd's directory");
        // bfdd drops to user frr: the directory must be its to write its pid file and socket.
        let status = Command::new("chown")
            .args(["frr:frr"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown frr:frr {}", dir.display());
        let log = File::create(dir.join("bfdd.log")).expect("creating bfdd.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "/usr/lib/frr/bfdd",
                "-u",
                "frr",
                "-g",
                "frr",
                "--vty_socket",
            ])
            .arg(&dir)
            .arg("-i")
            .arg(dir.join("bfdd.pid"))
            .args(["-f", "/dev/null", "--log", "stdout"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting bfdd");
        let bfdd = Bfdd {
            child: Some(child),
            netns: netns.to_string(),
            dir,
        };
        let socket = bfdd.dir.join("bfdd.vty");
        wait_for("bfdd's vty socket", Duration::from_secs(20), || {
            socket.exists().then_some(())
        });
        bfdd
    }

    fn vtysh(&self, commands: &[&str]) -> String {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns, "vtysh", "--vty_socket"])
            .arg(&self.dir);
        for line in commands {
            command.args(["-c", line]);
        }
        let out = command.output().expect("running vtysh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "vtysh {commands:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn configure(&self, peer_lines: &[&str]) {
        let mut lines = vec!["configure terminal", "bfd"];
        lines.extend_from_slice(peer_lines);
        self.vtysh(&lines);
    }

    /// FRR's view of the session to `peer`: its `show bfd peers json` entry.
    fn peer(&self, peer: &str) -> Option<serde_json::Value> {
        let json: serde_json::Value =
            serde_json::from_str(&self.vtysh(&["show bfd peers json"])).ok()?;
        json.as_array()?
            .iter()
            .find(|entry| entry["peer"].as_str() == Some(peer))
            .cloned()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Bfdd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("bfdd.log"))
        {
            eprintln!("bfdd log:\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Order {
    Add(IpAddr, IpAddr, Profile),
    Remove(IpAddr),
}

/// Our `Bfd` on a thread of its own inside `netns`, stopped when dropped.
struct Ours {
    orders: mpsc::UnboundedSender<Order>,
    states: watch::Receiver<BTreeMap<IpAddr, PeerState>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Ours {
    fn start(netns: &str, bind: Vec<IpAddr>) -> Ours {
        let netns = netns.to_string();
        let (orders, mut received) = mpsc::unbounded_channel::<Order>();
        let (started_tx, started) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            enter(&netns);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let bfd = Bfd::start(bind).await.expect("starting our BFD");
                started_tx
                    .send(bfd.states())
                    .expect("handing back the states");
                while let Some(order) = received.recv().await {
                    match order {
                        Order::Add(peer, local, profile) => {
                            bfd.add(peer, local, profile).expect("adding a session")
                        }
                        Order::Remove(peer) => bfd.remove(peer),
                    }
                }
                // Let the AdminDown go out before the runtime stops.
                drop(bfd);
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        });
        let states = started
            .recv_timeout(Duration::from_secs(10))
            .expect("our BFD did not start");
        Ours {
            orders,
            states,
            thread: Some(thread),
        }
    }

    fn add(&self, peer: &str, local: &str, profile: Profile) {
        let order = Order::Add(
            peer.parse().expect("address"),
            local.parse().expect("address"),
            profile,
        );
        self.orders
            .send(order)
            .map_err(|_| "our BFD thread has stopped")
            .expect("order");
    }

    fn remove(&self, peer: &str) {
        let order = Order::Remove(peer.parse().expect("address"));
        self.orders
            .send(order)
            .map_err(|_| "our BFD thread has stopped")
            .expect("order");
    }

    fn state(&self, peer: &str) -> Option<PeerState> {
        let peer: IpAddr = peer.parse().expect("address");
        self.states.borrow().get(&peer).copied()
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        self.orders = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `probe` every 10 ms until it gives a value; fails the test after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn frr_status(bfdd: &Bfdd, peer: &str) -> Option<String> {
    bfdd.peer(peer)?["status"].as_str().map(str::to_string)
}

fn profile() -> Profile {
    Profile {
        receive_interval: Duration::from_millis(INTERVAL_MS),
        transmit_interval: Duration::from_millis(INTERVAL_MS),
        detect_multiplier: DETECT_MULT,
        ..Profile::default()
    }
}

fn wait_up(ours: &Ours, bfdd: &Bfdd, peer: &str, frr_peer: &str) {
    wait_for(
        &format!("our session to {peer} Up"),
        Duration::from_secs(20),
        || ours.state(peer).filter(|state| state.state == State::Up),
    );
    wait_for(
        &format!("FRR's session to {frr_peer} up"),
        Duration::from_secs(20),
        || (frr_status(bfdd, frr_peer).as_deref() == Some("up")).then_some(()),
    );
}

/// Sends an AdminDown packet with Your Discriminator 0 (valid in that state, so it is
/// demultiplexed by source address) from FRR's address with the given TTL.
fn forge_admin_down(netns: &str, from: &str, to: &str, ttl: u32) {
    let netns = netns.to_string();
    let from: IpAddr = from.parse().expect("address");
    let to: IpAddr = to.parse().expect("address");
    thread::spawn(move || {
        enter(&netns);
        let socket = UdpSocket::bind(SocketAddr::new(from, 0)).expect("binding the forger");
        socket.set_ttl(ttl).expect("IP_TTL");
        let packet = ControlPacket {
            diag: Diag::AdministrativelyDown,
            state: State::AdminDown,
            poll: false,
            is_final: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0bad_cafe,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 1_000_000,
            required_min_echo_rx_us: 0,
        };
        socket
            .send_to(&packet.encode(), SocketAddr::new(to, 3784))
            .expect("sending");
    })
    .join()
    .expect("forger thread");
}

#[test]
fn against_frr_bfdd() {
    if !privileged_with("frr_bfdd", &["/usr/lib/frr/bfdd"]) {
        return;
    }
    let pid = std::process::id();
    let ours_ns = Netns::new(format!("bfdt-{pid}-a"));
    let frr_ns = Netns::new(format!("bfdt-{pid}-b"));
    let (veth_ours, veth_frr) = (format!("bfdt{pid}a"), format!("bfdt{pid}b"));
    ip(&[
        "link", "add", &veth_ours, "type", "veth", "peer", "name", &veth_frr,
    ]);
    ip(&["link", "set", &veth_ours, "netns", &ours_ns.0]);
    ip(&["link", "set", &veth_frr, "netns", &frr_ns.0]);
    for (netns, link, v4, v6) in [
        (&ours_ns.0, &veth_ours, OURS_V4, OURS_V6),
        (&frr_ns.0, &veth_frr, FRR_V4, FRR_V6),
    ] {
        ip(&["-n", netns, "addr", "add", &format!("{v4}/24"), "dev", link]);
        ip(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            link,
            "nodad",
        ]);
        ip(&["-n", netns, "link", "set", link, "up"]);
    }

    let mut bfdd = Bfdd::start(
        &frr_ns.0,
        std::env::temp_dir().join(format!("bfdt-{pid}-frr")),
    );
    let timers = [
        format!("receive-interval {INTERVAL_MS}"),
        format!("transmit-interval {INTERVAL_MS}"),
        format!("detect-multiplier {DETECT_MULT}"),
    ];
    for (peer, local) in [(OURS_V4, FRR_V4), (OURS_V6, FRR_V6)] {
        let mut lines = vec![format!("peer {peer} local-address {local}")];
        lines.extend(timers.iter().cloned());
        bfdd.configure(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    }

    let ours = Ours::start(
        &ours_ns.0,
        vec![OURS_V4.parse().expect("v4"), OURS_V6.parse().expect("v6")],
    );
    ours.add(FRR_V4, OURS_V4, profile());
    ours.add(FRR_V6, OURS_V6, profile());
    let started = Instant::now();
    wait_up(&ours, &bfdd, FRR_V4, OURS_V4);
    wait_up(&ours, &bfdd, FRR_V6, OURS_V6);
    println!("both sessions Up {:?} after adding them", started.elapsed());
    // The Poll Sequence after Up moved FRR to our 100 ms (its view of our timers).
    let frr_view = wait_for(
        "FRR to see our 100 ms timers",
        Duration::from_secs(10),
        || {
            bfdd.peer(OURS_V4)
                .filter(|entry| entry["remote-transmit-interval"].as_u64() == Some(INTERVAL_MS))
        },
    );
    assert_eq!(
        frr_view["remote-receive-interval"].as_u64(),
        Some(INTERVAL_MS)
    );
    assert_eq!(
        frr_view["remote-detect-multiplier"].as_u64(),
        Some(u64::from(DETECT_MULT))
    );

    // GTSM (RFC 5881 §5): a packet that crossed a router (TTL 254) is dropped; the same packet
    // with TTL 255 is taken.
    forge_admin_down(&frr_ns.0, FRR_V4, OURS_V4, 254);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ours.state(FRR_V4).map(|state| state.state),
        Some(State::Up),
        "TTL 254 packet was accepted"
    );
    forge_admin_down(&frr_ns.0, FRR_V4, OURS_V4, 255);
    let forged = wait_for(
        "the TTL 255 AdminDown to be taken",
        Duration::from_secs(5),
        || {
            ours.state(FRR_V4)
                .filter(|state| state.state == State::Down)
        },
    );
    assert_eq!(forged.diag, Diag::NeighborSignaledSessionDown);
    wait_up(&ours, &bfdd, FRR_V4, OURS_V4);

    // FRR shuts its side: we go Down with "neighbor signaled session down" (RFC 5880 §6.8.6)
    // and see the peer AdminDown, while the IPv6 session stays Up.
    bfdd.configure(&[
        &format!("peer {OURS_V4} local-address {FRR_V4}"),
        "shutdown",
    ]);
    let down = wait_for(
        "our IPv4 session Down after FRR's shutdown",
        Duration::from_secs(5),
        || {
            ours.state(FRR_V4)
                .filter(|state| state.state == State::Down)
        },
    );
    assert_eq!(down.diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(down.remote_state, State::AdminDown);
    // (FRR 8.4 sends its AdminDown with diag 0, so the remote diag is not asserted.)
    assert_eq!(ours.state(FRR_V6).map(|state| state.state), Some(State::Up));
    bfdd.configure(&[
        &format!("peer {OURS_V4} local-address {FRR_V4}"),
        "no shutdown",
    ]);
    wait_up(&ours, &bfdd, FRR_V4, OURS_V4);

    // We remove the IPv6 session: FRR hears AdminDown, and the session comes back when added.
    ours.remove(FRR_V6);
    let frr_down = wait_for("FRR to hear our AdminDown", Duration::from_secs(5), || {
        bfdd.peer(OURS_V6)
            .filter(|entry| entry["status"].as_str() == Some("down"))
    });
    assert_eq!(
        frr_down["remote-diagnostic"].as_str(),
        Some("administratively down"),
        "{frr_down}"
    );
    assert_eq!(
        ours.state(FRR_V6),
        None,
        "a removed session is still published"
    );
    ours.add(FRR_V6, OURS_V6, profile());
    wait_up(&ours, &bfdd, FRR_V6, OURS_V6);

    // bfdd dies: no more packets, both sessions Down with "control detection time expired"
    // within the detection time (3 x 100 ms) plus scheduling slack.
    let killed = Instant::now();
    bfdd.kill();
    let detection = Duration::from_millis(INTERVAL_MS * u64::from(DETECT_MULT));
    for peer in [FRR_V4, FRR_V6] {
        let down = wait_for(
            &format!("our session to {peer} Down after bfdd died"),
            Duration::from_secs(5),
            || ours.state(peer).filter(|state| state.state == State::Down),
        );
        assert_eq!(down.diag, Diag::ControlDetectionTimeExpired);
        let measured = down.last_change.saturating_duration_since(killed);
        println!("detection time to {peer}: measured {measured:?} (negotiated {detection:?})");
        assert!(
            measured <= detection + Duration::from_millis(500),
            "detection took {measured:?}, negotiated {detection:?}"
        );
    }
}
