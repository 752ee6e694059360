//! `ferrolb migrate FILE`: a legacy MetalLB ConfigMap in, metallb.io resources out, and those
//! resources pass `ferrolb validate`.

use std::process::Command;

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: default\n      protocol: layer2\n      addresses:\n      - 198.51.100.200-198.51.100.250\n";

#[test]
fn a_legacy_configmap_migrates_to_resources_that_validate() {
    let dir = std::env::temp_dir().join(format!("ferrolb-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let legacy = dir.join("configmap.yaml");
    std::fs::write(&legacy, CONFIGMAP).expect("write legacy");
    let bin = env!("CARGO_BIN_EXE_ferrolb");
    let out = Command::new(bin)
        .arg("migrate")
        .arg(&legacy)
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        yaml.contains("kind: IPAddressPool")
            && yaml.contains("kind: L2Advertisement")
            && yaml.contains("name: l2advertisement1"),
        "{yaml}"
    );
    let resources = dir.join("resources.yaml");
    std::fs::write(&resources, &yaml).expect("write resources");
    let check = Command::new(bin)
        .arg("validate")
        .arg(&resources)
        .output()
        .expect("run validate");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid: 2 metallb.io objects"));
}

#[test]
fn a_broken_legacy_file_is_explained() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["migrate", "/nonexistent/legacy.yaml"])
        .output()
        .expect("run migrate");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
