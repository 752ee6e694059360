//! What the root-only test suites share (l2's responder tests, bgp's transport tests, bfd's
//! FRR test): whether the suite may run, `ip`, and a network namespace deleted with its links
//! when dropped, also when an assertion fails. Test code only: failures panic.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether `suite` can run (root and iproute2); see [`privileged_with`].
pub fn privileged(suite: &str) -> bool {
    privileged_with(suite, &[])
}

/// Whether `suite` can run: root, iproute2, and every file of `needs` (say, a daemon's
/// binary). Panics under CI (`CI=true`) when it cannot, so that a suite that did not run is
/// never taken for one that passed; elsewhere says SKIPPED and why.
pub fn privileged_with(suite: &str, needs: &[&str]) -> bool {
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
    let missing = needs.iter().find(|path| !Path::new(path).exists());
    let why = match (root, has_ip, missing) {
        (true, true, None) => return true,
        (false, _, _) => "not running as root".to_string(),
        (true, false, _) => "the ip command is missing".to_string(),
        (true, true, Some(path)) => format!("{path} is not installed"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        let needs: Vec<&str> = ["root", "iproute2"]
            .into_iter()
            .chain(needs.iter().copied())
            .collect();
        panic!("{suite} needs {} under CI: {why}", needs.join(", "));
    }
    eprintln!("SKIPPED {suite}: {why}; run as root");
    false
}

/// Runs `ip ARGS`; `Err` holds its complaint.
pub fn try_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| error.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs `ip ARGS`, failing the test if it fails.
pub fn ip(args: &[&str]) {
    if let Err(why) = try_ip(args) {
        panic!("ip {} failed: {why}", args.join(" "));
    }
}

/// A network namespace with loopback up, deleted (with its links) when dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Netns {
        // One left behind by a killed earlier run that had the same pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = Netns(name);
        ip(&["-n", &netns.0, "link", "set", "lo", "up"]);
        netns
    }

    /// A namespace named `PREFIX-PID-N`, N counting up in this process.
    pub fn unique(prefix: &str) -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Netns::new(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}
