//! What the root-only tests share: the privilege check, `ip`, and a namespace that is deleted
//! when dropped.

use std::process::Command;

/// Whether `suite` can run (root and iproute2); panics under CI (`CI=true`) when it cannot,
/// so that a test that did not run is never taken for one that passed.
pub fn privileged(suite: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    let has_ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if root && has_ip {
        return true;
    }
    let why = if root {
        "the ip command is missing"
    } else {
        "not running as root"
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{suite} needs root and iproute2 under CI: {why}");
    }
    eprintln!("SKIPPED {suite}: {why}; run as root");
    false
}

/// Runs `ip ARGS`, failing the test if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted (with its links) when dropped, also on a failed assert.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Netns {
        // A namespace left behind by a killed earlier run with the same pid.
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
