//! The committed CRDs (what `kubectl apply` and the Helm chart install) are the generated ones.

use std::path::PathBuf;
use std::{env, fs};

#[test]
fn committed_crds_are_the_generated_ones() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/ferrolb-crds.yaml");
    let generated = ferrolb_api::crds_yaml();
    if env::var_os("UPDATE_CRDS").is_some_and(|value| value == "1") {
        fs::write(&path, &generated).expect("deploy/crds/ is writable");
        return;
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from ferrolb_api::crds_yaml(); regenerate it with \
         `UPDATE_CRDS=1 cargo test -p ferrolb-api --test crds` and review the diff",
        path.display()
    );
}
