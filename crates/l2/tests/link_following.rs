//! The responder follows links over netlink: a link made after it started is answered on, a
//! deleted one is dropped without error, a MAC change is answered with the new MAC, and a
//! link whose name MetalLB's list excludes is not answered on unless an IP's scope names it,
//! and an IP scoped to named links is not answered on the others.
//!
//! Needs root (network namespaces, veth pairs, AF_PACKET). Everything lives in network
//! namespaces made here, one where `l2-responder --follow` runs and one where the client
//! resolves the VIP (`fl2r<pid>`/`fl2c<pid>`, and `fl2s<pid>`/`fl2d<pid>` for the scope
//! test), all deleted on exit, which takes their links along.
//! Without root the test is skipped, except under CI (`CI=true`), where it fails.

mod common;

use ferrolb_testns::{Netns, ip, privileged};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const VIP: &str = "198.51.100.77";
const CLIENT_IP: &str = "198.51.100.1/24";

/// `l2-responder --follow` in a namespace, stopped by pid when dropped.
struct ResponderProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl ResponderProcess {
    fn start(netns: &str, args: &[&str]) -> ResponderProcess {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_l2-responder")])
            .args(["--follow", "--ip", VIP])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting l2-responder");
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    stderr
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&text);
                }
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.trim() == "ready" {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let process = ResponderProcess { child, stderr };
        assert!(
            ready_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "l2-responder did not get ready; stderr:\n{}",
            process.stderr()
        );
        process
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("polling l2-responder");
        assert!(
            status.is_none(),
            "l2-responder exited ({status:?}); stderr:\n{}",
            self.stderr()
        );
    }

    /// SIGTERM by pid, and the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("waiting for l2-responder")
    }
}

impl Drop for ResponderProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes a veth pair, `ours` (with `mac`) in the responder's namespace and `theirs` in the
/// client's with the client address, both up.
fn veth_pair(responder: &Netns, client: &Netns, ours: &str, mac: &str, theirs: &str) {
    ip(&[
        "-n",
        &responder.0,
        "link",
        "add",
        ours,
        "address",
        mac,
        "type",
        "veth",
        "peer",
        "name",
        theirs,
        "netns",
        &client.0,
    ]);
    ip(&["-n", &client.0, "addr", "add", CLIENT_IP, "dev", theirs]);
    ip(&["-n", &client.0, "link", "set", theirs, "up"]);
    ip(&["-n", &responder.0, "link", "set", ours, "up"]);
}

/// The MAC the client resolves the VIP to on `dev`, from a fresh ARP exchange, waiting up to
/// `patience` for one. Needs bash for its `/dev/udp`, and nothing else beyond iproute2.
fn resolve(client: &Netns, dev: &str, patience: Duration) -> Option<String> {
    let deadline = Instant::now() + patience;
    loop {
        let _ = Command::new("ip")
            .args(["-n", &client.0, "neigh", "flush", "dev", dev])
            .output();
        // A datagram to the VIP makes the kernel ARP for it; nothing needs to receive it.
        let _ = Command::new("ip")
            .args(["netns", "exec", &client.0, "bash", "-c"])
            .arg(format!("echo probe > /dev/udp/{VIP}/9"))
            .output();
        thread::sleep(Duration::from_millis(300));
        let out = Command::new("ip")
            .args(["-n", &client.0, "neigh", "show", VIP, "dev", dev])
            .output()
            .expect("running ip neigh show");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        if words.any(|word| word == "lladdr")
            && let Some(mac) = words.next()
        {
            return Some(mac.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn links_are_followed() {
    if !privileged("link_following") {
        return;
    }
    let id = std::process::id() % 100_000;
    let responder_ns = Netns::new(format!("fl2r{id}"));
    let client_ns = Netns::new(format!("fl2c{id}"));
    let mut responder = ResponderProcess::start(&responder_ns.0, &[]);

    // A link made after the start is answered on.
    let (ours, theirs) = (format!("fr1{id}"), format!("fc1{id}"));
    veth_pair(
        &responder_ns,
        &client_ns,
        &ours,
        "02:00:5e:10:00:01",
        &theirs,
    );
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(10)).as_deref(),
        Some("02:00:5e:10:00:01"),
        "the new link is answered on; stderr:\n{}",
        responder.stderr()
    );

    // A MAC change is answered with the new MAC.
    let live = Command::new("ip")
        .args([
            "-n",
            &responder_ns.0,
            "link",
            "set",
            &ours,
            "address",
            "02:00:5e:10:00:11",
        ])
        .output()
        .expect("running ip link set address");
    if live.status.success() {
        // Followed in place, without reopening the link.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !responder.stderr().contains("MAC changed") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            responder.stderr().contains("MAC changed; announcing again"),
            "the MAC change is seen; stderr:\n{}",
            responder.stderr()
        );
    } else {
        // Drivers without live MAC changes need the link down, which closes and reopens it.
        ip(&["-n", &responder_ns.0, "link", "set", &ours, "down"]);
        ip(&[
            "-n",
            &responder_ns.0,
            "link",
            "set",
            &ours,
            "address",
            "02:00:5e:10:00:11",
        ]);
        ip(&["-n", &responder_ns.0, "link", "set", &ours, "up"]);
    }
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(10)).as_deref(),
        Some("02:00:5e:10:00:11"),
        "answers carry the new MAC; stderr:\n{}",
        responder.stderr()
    );

    // A deleted link is dropped, and the responder goes on.
    ip(&["-n", &responder_ns.0, "link", "del", &ours]);
    thread::sleep(Duration::from_millis(300));
    responder.assert_running();

    // A link named like container plumbing is not answered on.
    let (excluded, theirs) = (format!("veth{id}"), format!("fc3{id}"));
    veth_pair(
        &responder_ns,
        &client_ns,
        &excluded,
        "02:00:5e:10:00:03",
        &theirs,
    );
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(3)),
        None,
        "an excluded link is not answered on"
    );
    ip(&["-n", &responder_ns.0, "link", "del", &excluded]);

    // Another new link after all that is answered on too.
    let (ours, theirs) = (format!("fr2{id}"), format!("fc2{id}"));
    veth_pair(
        &responder_ns,
        &client_ns,
        &ours,
        "02:00:5e:10:00:02",
        &theirs,
    );
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(10)).as_deref(),
        Some("02:00:5e:10:00:02"),
        "a second new link is answered on; stderr:\n{}",
        responder.stderr()
    );

    let status = responder.stop();
    let stderr = responder.stderr();
    assert!(
        status.success(),
        "l2-responder exited with {status}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN"),
        "no errors or warnings; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("no longer answering on the link"),
        "the deleted link was dropped; stderr:\n{stderr}"
    );
}

#[test]
fn a_scope_naming_links_overrides_the_exclusions_and_limits_the_answers() {
    if !privileged("link_following") {
        return;
    }
    let id = std::process::id() % 100_000;
    let responder_ns = Netns::new(format!("fl2s{id}"));
    let client_ns = Netns::new(format!("fl2d{id}"));
    let named = format!("veth{id}");
    let mut responder = ResponderProcess::start(&responder_ns.0, &["--interface", &named]);

    // Excluded by name, but named by the VIP's scope: answered on.
    let theirs = format!("fd1{id}");
    veth_pair(
        &responder_ns,
        &client_ns,
        &named,
        "02:00:5e:10:01:01",
        &theirs,
    );
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(10)).as_deref(),
        Some("02:00:5e:10:01:01"),
        "the named link is answered on; stderr:\n{}",
        responder.stderr()
    );
    ip(&["-n", &responder_ns.0, "link", "del", &named]);

    // In the default set, but not named: the VIP is not answered there.
    let (ours, theirs) = (format!("fs2{id}"), format!("fd2{id}"));
    veth_pair(
        &responder_ns,
        &client_ns,
        &ours,
        "02:00:5e:10:01:02",
        &theirs,
    );
    assert_eq!(
        resolve(&client_ns, &theirs, Duration::from_secs(3)),
        None,
        "a link outside the scope is not answered on"
    );
    responder.assert_running();
    let status = responder.stop();
    assert!(
        status.success(),
        "l2-responder exited with {status}; stderr:\n{}",
        responder.stderr()
    );
}
