//! `ferrolb validate FILE…`: exit 0 and a summary for a valid configuration; exit 1 and one
//! line per problem otherwise.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tests run in parallel threads of one process: each call gets its own directory.
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn validate(files: &[(&str, &str)]) -> (bool, String) {
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ferrolb-validate-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let paths: Vec<_> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write test file");
            path
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("validate")
        .args(&paths)
        .output()
        .expect("run ferrolb validate");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

const POOLS: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec:\n  addresses: [198.51.100.200-198.51.100.250, '2001:db8:100::200/120']\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan}\n";
const PEERS: &str = "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: router}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.3}\n";

#[test]
fn a_valid_configuration_across_files_exits_zero_with_a_summary() {
    let (ok, out) = validate(&[("pools.yaml", POOLS), ("peers.yaml", PEERS)]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "valid: 3 metallb.io objects (1 pools, 1 L2 and 0 BGP advertisements, 1 peers"
        ),
        "{out}"
    );
}

#[test]
fn every_problem_gets_one_line_and_exit_one() {
    let bad = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: other}\nspec:\n  addresses: [198.51.100.240/28, 198.51.100.10-198.51.100.1]\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: broken}\nspec: {myASN: 64500, peerAddress: 198.51.100.3}\n";
    let (ok, out) = validate(&[("pools.yaml", POOLS), ("bad.yaml", bad)]);
    assert!(!ok, "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 2, "{out}");
    assert!(
        out.contains("error: IPAddressPool other: spec.addresses[1]:") && out.contains("reversed"),
        "{out}"
    );
    assert!(
        out.contains("error: BGPPeer broken: spec.peerASN: set peerASN or dynamicASN"),
        "{out}"
    );
}

#[test]
fn a_file_without_metallb_objects_is_not_silently_valid() {
    let (ok, out) = validate(&[(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
    )]);
    assert!(!ok && out.contains("no metallb.io objects"), "{out}");
}
