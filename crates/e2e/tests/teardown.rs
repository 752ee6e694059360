//! `testbed down` leaves nothing behind: no namespace, no link in the root namespace, no process,
//! both after a good `up` and after an `up` that failed half-way.
//!
//! It destroys the testbed, so it is `#[ignore]`d and `scripts/test` runs it last, on its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testbed(args: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    Command::new(repo().join("testbed/testbed"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .context("running testbed/testbed")
}

fn state_dir() -> PathBuf {
    std::env::var_os("TESTBED_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/testbed"))
}

/// Every process the testbed tracks, as (name, pid, start time) from its pid files.
fn tracked_processes() -> Result<Vec<(String, u32, String)>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir().join("pids")) else {
        return Ok(found);
    };
    for entry in entries {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let mut fields = text.split_whitespace();
        if let (Some(pid), Some(start)) = (fields.next(), fields.next()) {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            found.push((name, pid.parse()?, start.to_string()));
        }
    }
    Ok(found)
}

/// Whether the process that was `pid` when it started at `start` still runs. A zombie does not:
/// it has released its sockets and namespaces and only waits for init to reap it.
fn process_alive(pid: u32, start: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name (field 2) may hold spaces, so count fields from its ')':
            // state is field 3, start time field 22.
            let after = stat.rsplit_once(')')?.1.to_string();
            let fields: Vec<&str> = after.split_whitespace().collect();
            Some(fields.first() != Some(&"Z") && fields.get(19) == Some(&start))
        })
        .unwrap_or(false)
}

fn netns_names() -> Result<Vec<String>> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

fn is_testbed_netns(name: &str) -> bool {
    ["lan", "cp", "client", "router"].contains(&name)
        || name.starts_with("node-")
        || name.starts_with("pod-")
}

/// Runs `down` and checks that nothing the testbed had is left.
fn down_and_check(processes: &[(String, u32, String)]) -> Result<()> {
    let out = testbed(&["down"], &[])?;
    ensure!(
        out.status.success(),
        "down failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = netns_names()?
        .into_iter()
        .filter(|n| is_testbed_netns(n))
        .collect();
    ensure!(left.is_empty(), "namespaces left after down: {left:?}");
    let link = Command::new("ip")
        .args(["link", "show", "tb-lan"])
        .output()?;
    ensure!(
        !link.status.success(),
        "the root namespace still has the tb-lan link"
    );
    let alive: Vec<_> = processes
        .iter()
        .filter(|(_, pid, start)| process_alive(*pid, start))
        .collect();
    ensure!(alive.is_empty(), "processes alive after down: {alive:?}");
    ensure!(tracked_processes()?.is_empty(), "pid files left after down");
    ensure!(
        !Path::new("/run/ferrolb-testbed.owner").exists(),
        "the ownership marker is left after down"
    );
    Ok(())
}

#[test]
#[ignore = "destroys the testbed: scripts/test runs it last, alone"]
fn down_removes_everything_up_made_even_after_a_failed_up() -> Result<()> {
    // 1. The testbed the other tests used.
    let processes = tracked_processes()?;
    if processes.is_empty() {
        bail!(
            "no testbed is up (no tracked processes in {})",
            state_dir().display()
        );
    }
    ensure!(
        processes
            .iter()
            .all(|(_, pid, start)| process_alive(*pid, start)),
        "a tracked process had died before down: {processes:?}"
    );
    down_and_check(&processes)?;

    // 2. An `up` that fails half-way: kube-proxy refuses an unknown mode after the namespaces,
    //    etcd and the apiserver are already up.
    let out = testbed(
        &["up", "--nodes", "1"],
        &[("TESTBED_PROXY_MODE", "no-such-mode")],
    )?;
    ensure!(
        !out.status.success(),
        "up with a broken kube-proxy mode succeeded"
    );
    let partial = tracked_processes()?;
    let made: Vec<_> = netns_names()?
        .into_iter()
        .filter(|n| is_testbed_netns(n))
        .collect();
    ensure!(
        partial.iter().any(|(name, ..)| name == "kube-apiserver")
            && made.contains(&"node-1".to_string()),
        "the failed up did not get far enough to test cleanup: {partial:?} {made:?}"
    );
    down_and_check(&partial)
}
