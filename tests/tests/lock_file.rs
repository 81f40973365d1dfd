//! The lock file respects the workspace's declared `rust-version`: every locked
//! package that declares a rust-version asks for one no newer than ours, so the
//! workspace builds with the oldest toolchain it promises (the workspace's resolver
//! "3" picks such versions; this catches a feature or a hand edit that pulls a newer
//! one, as zip's `deflate` once pulled zopfli).

use std::path::Path;
use std::process::Command;

/// "1.85" or "1.85.0" as comparable numbers.
fn version(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text.split('.').map(|part| part.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn every_locked_dependency_builds_with_the_declared_rust_version() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // This platform's packages only: the build fetched those, and only those (offline,
    // another platform's would have to be downloaded first).
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &platform])
        .current_dir(&workspace)
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|package| package["name"] == "fusehost")
        .and_then(|package| package["rust_version"].as_str())
        .expect("the host declares a rust-version");
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|package| {
            let wanted = package["rust_version"].as_str()?;
            (version(wanted) > version(ours))
                .then(|| format!("{} {} needs Rust {wanted}", package["name"], package["version"]))
        })
        .collect();
    assert!(packages.len() > 50, "the whole graph was read");
    assert!(too_new.is_empty(), "the workspace declares rust-version {ours}, but the lock file has: {too_new:?}");
}
