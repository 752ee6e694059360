//! The compatibility test reads its own copy of MetalLB's schemas (tests/reference/), so that it
//! runs anywhere. This keeps that copy identical to the project's reference in `shared/`, which
//! CI always has beside the checkout.

use std::path::PathBuf;

#[test]
fn vendored_reference_matches_shared_reference() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let vendored = manifest.join("tests/reference/metallb-crds");
    let shared = manifest.join("../../../shared/reference/metallb-crds");
    if !shared.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have shared/ beside the checkout, at {}",
            shared.display()
        );
        eprintln!(
            "no {}: nothing to compare against outside CI",
            shared.display()
        );
        return;
    }
    let names = |dir: &PathBuf| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("readable reference directory")
            .filter_map(|entry| {
                entry
                    .ok()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&vendored),
        names(&shared),
        "the two reference directories hold different files"
    );
    for name in names(&shared) {
        let read = |dir: &PathBuf| std::fs::read(dir.join(&name)).expect("readable reference file");
        assert!(
            read(&vendored) == read(&shared),
            "tests/reference/metallb-crds/{name} differs from shared/"
        );
    }
}
