//! `ferrolb crds` prints exactly the CRDs committed under deploy/crds/, which install manifests use.

use std::process::Command;

#[test]
fn crds_subcommand_prints_the_committed_crds() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("crds")
        .output()
        .expect("run ferrolb crds");
    assert!(
        output.status.success(),
        "ferrolb crds failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/ferrolb-crds.yaml"
    ))
    .expect("read deploy/crds/ferrolb-crds.yaml");
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "`ferrolb crds` differs from deploy/crds/ferrolb-crds.yaml; regenerate with UPDATE_CRDS=1 cargo test -p ferrolb-api --test crds"
    );
    for kind in [
        "IPAddressPool",
        "L2Advertisement",
        "BGPAdvertisement",
        "BGPPeer",
        "BFDProfile",
        "Community",
        "ServiceL2Status",
        "ServiceBGPStatus",
        "ConfigurationState",
    ] {
        assert!(
            committed.contains(&format!("kind: {kind}\n")),
            "no CRD for {kind}"
        );
    }
}
